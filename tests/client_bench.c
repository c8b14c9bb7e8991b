/*
 * tests/client_bench.c - the shared client's load mode: many connections, one thread.
 *
 * `client bench -c CONNECTIONS -n MESSAGES -s BYTES` opens every connection first, then
 * runs MESSAGES round trips on each with exactly one message in flight, checks every
 * reply byte for byte against the upper-cased message, and prints one summary line.
 * One thread and epoll: 2000 connections cost 2000 descriptors, not 2000 threads, so the
 * load generator stays cheap next to the servers it measures (its CPU time is printed).
 *
 * Entry point: bench_main(target, argc, argv), argv[0] == "bench", from client.c.
 */
#define _GNU_SOURCE /* epoll and SOCK_NONBLOCK are Linux's */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

enum {
  MAX_CONNECTING = 128, /* connects in progress at once: well below any listen backlog */
  PATTERN_SLACK = 4093, /* messages start at varying offsets into one shared pattern */
  SCRATCH_SIZE = 65536, /* one recv's worth; also bigger than any UDP datagram */
  MAX_EVENTS = 256,
  MAX_REPORTED = 5,     /* errors detailed on stderr; the rest are only counted */
  UDP_MAX_SIZE = 65507, /* the largest UDP payload */
  MAX_SIZE = 64 << 20,  /* the pattern is allocated at this size, so cap it */
  SPARE_FDS = 32,       /* stdio, epoll, a resolver's socket: beyond one per connection */
};

enum conn_state { IDLE, CONNECTING, READY, EXCHANGING, CLOSING, DONE };

/* One connection, or with --churn one slot that connects again and again. */
struct conn {
  int fd;
  enum conn_state state;
  uint32_t events;    /* what epoll watches for this fd now */
  unsigned index;     /* 0-based; with the round number, it picks the message */
  unsigned done;      /* round trips (with --churn: whole cycles) completed */
  size_t offset, len; /* the message in flight is pattern[offset, offset + len) */
  size_t sent, received;
  uint64_t started_us; /* when it was first sent (with --churn: when the connect began) */
};

struct bench {
  const struct target *target;
  unsigned connections, messages;
  size_t min_size, max_size;
  uint64_t seed;
  int churn, udp;
  double timeout_s;
  unsigned loss_ms; /* --udp: a datagram reply this late counts as lost */
  struct sockaddr_storage addr; /* resolved once; every stream connect reuses it */
  socklen_t addrlen;
  int epfd;
  struct conn *conns;
  unsigned char *pattern, *expected; /* expected is the pattern upper-cased */
  uint32_t *latencies;               /* one per completed round trip, microseconds */
  size_t completed;
  uint64_t bytes;
  unsigned long errors, untold; /* untold: counted but not detailed on stderr */
  unsigned *queue;              /* ring of connections waiting to connect */
  unsigned queue_head, queue_len, connecting, finished;
  int retry_soon; /* a Unix socket's backlog was full: connect again in a moment */
};

static unsigned char scratch[SCRATCH_SIZE];

static const char usage_text[] =
    "usage: client [--host HOST] [--port PORT] [--unix PATH] [--udp] bench [OPTIONS]\n"
    "\n"
    "Load from one thread: CONNECTIONS connections, all opened first, then MESSAGES round\n"
    "trips on each, one message in flight, every reply checked byte for byte against the\n"
    "message upper-cased; then each shuts down its sending side and expects end of stream.\n"
    "\n"
    "  -c, --connections N        connections at once (default 1)\n"
    "  -n, --messages N           round trips per connection (default 100)\n"
    "  -s, --size BYTES           message size (default 64)\n"
    "      --random-size MIN:MAX  instead, each message a random size from MIN to MAX\n"
    "      --seed N               seed for sizes and contents (default 1)\n"
    "      --churn                connect, one round trip, close, again: -c is how many\n"
    "                             run at once, -n how many cycles each\n"
    "      --timeout SECONDS      fail, naming what is outstanding, after this long (60)\n"
    "      --loss-ms MS           --udp: a reply this late counts as lost (1000)\n"
    "  -h, --help                 print this help and exit\n"
    "\n"
    "With --udp: one datagram per message (at most 65507 bytes), a reply not back within\n"
    "--loss-ms is an error (UDP loses datagrams under load); no connect phase, no --churn;\n"
    "with --unix too, only -c 1.\n"
    "\n"
    "Prints one line: connections=C messages=M bytes=B seconds=S msgs/s=R MB/s=T\n"
    "p50_us=P p99_us=Q max_us=X errors=E client_cpu_s=U\n"
    "  messages  round trips completed and checked; bytes: their payload sent + received\n"
    "  seconds   first message to last reply (--churn: from the first connect); MB = 10^6 B\n"
    "  *_us      latency, first byte sent to last reply byte (--churn: connect to end of\n"
    "            stream); exact nearest-rank percentiles\n"
    "  errors    failed connections, the first few detailed on stderr\n"
    "  client_cpu_s  this process's user + system CPU time: is the client the bottleneck?\n"
    "Exit status: 0 every byte checked, 1 any error, 2 bad usage.\n";

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* splitmix64: cheap, good enough, and the same on every machine. */
static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15u;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

/* Count an error; only the first few are detailed, so a broken server does not flood. */
static void report(struct bench *b, const struct conn *c, const char *fmt, ...) {
  if (++b->errors > MAX_REPORTED) {
    b->untold++;
    return;
  }
  if (c != NULL && c->state == CLOSING && !b->churn)
    fprintf(stderr, "bench: connection %u, after message %u: ", c->index + 1, c->done);
  else if (c != NULL)
    fprintf(stderr, "bench: %s %u, %s %u: ", b->churn ? "slot" : "connection", c->index + 1,
            b->churn ? "cycle" : "message", c->done + 1);
  else
    fprintf(stderr, "bench: ");
  va_list args;
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fputc('\n', stderr);
}

static void set_events(struct bench *b, struct conn *c, uint32_t events) {
  if (c->events == events)
    return; /* the common case: no syscall per message */
  struct epoll_event ev = {.events = events, .data.u32 = c->index};
  epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev);
  c->events = events;
}

static int watch(struct bench *b, struct conn *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.u32 = c->index};
  c->events = events;
  return epoll_ctl(b->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void close_conn(struct bench *b, struct conn *c) {
  if (c->fd >= 0) {
    if (b->udp)
      close_target(c->fd); /* connect_target made it; it may have a path to remove */
    else
      close(c->fd); /* closing also takes it out of the epoll set */
  }
  c->fd = -1;
}

static void finish(struct bench *b, struct conn *c) {
  close_conn(b, c);
  c->state = DONE;
  b->finished++;
}

/* Every error ends its connection: what it would have sent next is simply not sent. */
static void fail(struct bench *b, struct conn *c, const char *what, int err) {
  report(b, c, "%s: %s", what, strerror(err));
  finish(b, c);
}

static void queue_push(struct bench *b, unsigned index, int front) {
  if (front)
    b->queue_head = (b->queue_head + b->connections - 1) % b->connections;
  b->queue[(b->queue_head + (front ? 0 : b->queue_len)) % b->connections] = index;
  b->queue_len++;
}

static void send_some(struct bench *b, struct conn *c) {
  ssize_t n = send(c->fd, b->pattern + c->offset + c->sent, c->len - c->sent, MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      set_events(b, c, EPOLLIN | EPOLLOUT);
      return;
    }
    fail(b, c, "send", errno);
    return;
  }
  c->sent += (size_t)n;
  /* A datagram goes whole or not at all; a stream keeps EPOLLOUT until it is all out. */
  set_events(b, c, c->sent < c->len ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* The message depends only on (seed, connection, round): the same run checks the same bytes. */
static void start_message(struct bench *b, struct conn *c) {
  uint64_t h = mix64(b->seed ^ mix64(((uint64_t)c->index << 32) | c->done));
  c->len = b->min_size + (size_t)(h % (b->max_size - b->min_size + 1));
  c->offset = (size_t)((h >> 40) % PATTERN_SLACK);
  c->sent = c->received = 0;
  c->state = EXCHANGING;
  if (!b->churn)
    c->started_us = now_us();
  send_some(b, c);
}

static void connected(struct bench *b, struct conn *c) {
  if (b->churn) {
    start_message(b, c);
  } else {
    c->state = READY; /* waits for the others; epoll still reports a hang-up */
    set_events(b, c, 0);
  }
}

static void start_connect(struct bench *b, struct conn *c) {
  c->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fail(b, c, "socket", errno);
    return;
  }
  if (b->addr.ss_family != AF_UNIX) {
    int on = 1; /* a reply's tail must not wait for an ACK (Nagle's algorithm) */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  if (b->churn)
    c->started_us = now_us();
  if (connect(c->fd, (struct sockaddr *)&b->addr, b->addrlen) == 0) {
    if (watch(b, c, 0) < 0)
      fail(b, c, "epoll_ctl", errno);
    else
      connected(b, c);
  } else if (errno == EINPROGRESS) {
    c->state = CONNECTING;
    b->connecting++;
    if (watch(b, c, EPOLLOUT) < 0) {
      b->connecting--;
      fail(b, c, "epoll_ctl", errno);
    }
  } else if (errno == EAGAIN) {
    close_conn(b, c); /* a Unix listener's backlog is full: try this one again soon */
    c->state = IDLE;
    queue_push(b, c->index, 1);
    b->retry_soon = 1;
  } else {
    fail(b, c, "connect", errno);
  }
}

/* The last reply byte arrived: count the round trip, then the next message or the end. */
static void record(struct bench *b, struct conn *c) {
  b->latencies[b->completed++] = (uint32_t)(now_us() - c->started_us);
  b->bytes += 2 * (uint64_t)c->len;
  c->done++;
}

static void reply_complete(struct bench *b, struct conn *c) {
  if (!b->churn)
    record(b, c);
  if (!b->churn && c->done < b->messages) {
    start_message(b, c);
  } else if (b->udp) {
    finish(b, c);
  } else {
    shutdown(c->fd, SHUT_WR); /* our end of stream: the server must answer with its own */
    c->state = CLOSING;
    set_events(b, c, EPOLLIN);
  }
}

/* Check n received bytes against the expected reply, from c->received on. */
static int check_bytes(struct bench *b, struct conn *c, size_t n) {
  const unsigned char *want = b->expected + c->offset + c->received;
  if (memcmp(scratch, want, n) == 0)
    return 0;
  size_t i = 0;
  while (scratch[i] == want[i])
    i++;
  report(b, c, "reply byte %zu of %zu is 0x%02x, expected 0x%02x (sent 0x%02x)", c->received + i,
         c->len, scratch[i], want[i], b->pattern[c->offset + c->received + i]);
  finish(b, c);
  return -1;
}

static void receive_datagram(struct bench *b, struct conn *c) {
  ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      fail(b, c, "recv", errno);
    return;
  }
  if (c->state != EXCHANGING || (size_t)n != c->len) {
    report(b, c, "reply datagram of %zd bytes, expected %zu", n,
           c->state == EXCHANGING ? c->len : 0);
    finish(b, c);
    return;
  }
  if (check_bytes(b, c, (size_t)n) == 0)
    reply_complete(b, c);
}

static void receive_stream(struct bench *b, struct conn *c) {
  ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      fail(b, c, c->state == CLOSING ? "waiting for end of stream, recv" : "recv", errno);
    return;
  }
  if (c->state == CLOSING) {
    if (n > 0) {
      report(b, c, "%zd byte(s) after the last reply, expected end of stream", n);
      finish(b, c);
    } else {
      if (b->churn)
        record(b, c); /* a churn cycle ends here: connect to end of stream */
      close_conn(b, c);
      if (b->churn && c->done < b->messages) {
        c->state = IDLE;
        queue_push(b, c->index, 0);
      } else {
        finish(b, c);
      }
    }
    return;
  }
  if (n == 0) {
    report(b, c, "end of stream after %zu of %zu reply bytes", c->received, c->len);
    finish(b, c);
    return;
  }
  size_t missing = c->len - c->received;
  if (check_bytes(b, c, (size_t)n < missing ? (size_t)n : missing) < 0)
    return;
  if ((size_t)n > missing) {
    report(b, c, "%zu extra byte(s) after the %zu-byte reply", (size_t)n - missing, c->len);
    finish(b, c);
    return;
  }
  c->received += (size_t)n;
  if (c->received == c->len)
    reply_complete(b, c);
}

static int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

static void on_event(struct bench *b, struct conn *c, uint32_t events) {
  int err;
  if (c->state == CONNECTING) {
    b->connecting--;
    if ((err = socket_error(c->fd)) != 0)
      fail(b, c, "connect", err);
    else
      connected(b, c);
  } else if (c->state == READY && !b->udp) {
    err = socket_error(c->fd);
    report(b, c, "connection closed before the first message (%s)",
           err != 0 ? strerror(err) : "end of stream");
    finish(b, c);
  } else if (c->state != DONE) {
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      if (b->udp)
        receive_datagram(b, c);
      else
        receive_stream(b, c);
    }
    if (c->state == EXCHANGING && (events & EPOLLOUT) && c->sent < c->len)
      send_some(b, c);
  }
}

/* Datagrams can vanish: a reply not back in time is an error, not a hang. */
static void check_udp_losses(struct bench *b, uint64_t now) {
  for (unsigned i = 0; i < b->connections; i++) {
    struct conn *c = &b->conns[i];
    if (c->state == EXCHANGING && now - c->started_us > b->loss_ms * 1000u) {
      report(b, c, "no reply datagram within %u ms (lost?)", b->loss_ms);
      finish(b, c);
    }
  }
}

/* The deadline passed: say what was still outstanding, so a hung server is visible. */
static void report_outstanding(struct bench *b) {
  unsigned counts[DONE] = {0};
  const struct conn *first = NULL;
  for (unsigned i = 0; i < b->connections; i++) {
    struct conn *c = &b->conns[i];
    if (c->state == DONE)
      continue;
    counts[c->state]++;
    if (first == NULL || (first->state != EXCHANGING && c->state == EXCHANGING))
      first = c;
  }
  unsigned left = b->connections - b->finished;
  fprintf(stderr,
          "bench: timed out after %g s with %u of %u connections unfinished: %u waiting to "
          "connect, %u connecting, %u connected and idle, %u mid-message, %u waiting for "
          "end of stream\n",
          b->timeout_s, left, b->connections, counts[IDLE], counts[CONNECTING], counts[READY],
          counts[EXCHANGING], counts[CLOSING]);
  if (first != NULL && first->state == EXCHANGING)
    fprintf(stderr, "bench: for example %s %u, %s %u: sent %zu of %zu bytes, received %zu\n",
            b->churn ? "slot" : "connection", first->index + 1, b->churn ? "cycle" : "message",
            first->done + 1, first->sent, first->len, first->received);
  b->errors += left; /* counted, not detailed: the line above is the detail */
  for (unsigned i = 0; i < b->connections; i++)
    if (b->conns[i].state != DONE)
      finish(b, &b->conns[i]);
}

static int usage(FILE *out, int status) {
  fputs(usage_text, out);
  return status;
}

/* A whole decimal number in [min, max], or -1 with a message naming the option. */
static int parse_number(const char *text, const char *option, unsigned long long min,
                        unsigned long long max, unsigned long long *out) {
  if (parse_decimal(text, min, max, out) < 0) {
    fprintf(stderr, "bench: bad %s: '%s' (expected a whole number, %llu to %llu)\n", option, text,
            min, max);
    return -1;
  }
  return 0;
}

static int parse_range(struct bench *b, char *text) {
  char *colon = strchr(text, ':');
  unsigned long long min, max;
  if (colon == NULL) {
    fprintf(stderr, "bench: bad --random-size: '%s' (expected MIN:MAX)\n", text);
    return -1;
  }
  *colon = '\0'; /* argv is ours to write; put it back for anyone reading it later */
  int rc = parse_number(text, "--random-size MIN", 1, MAX_SIZE, &min);
  *colon = ':';
  if (rc < 0 || parse_number(colon + 1, "--random-size MAX", min, MAX_SIZE, &max) < 0)
    return -1;
  b->min_size = (size_t)min;
  b->max_size = (size_t)max;
  return 0;
}

/* Returns -1 to go on, or the exit status (0 after --help, 2 for bad usage). */
static int parse_options(struct bench *b, int argc, char **argv) {
  enum { OPT_RANDOM_SIZE = 256, OPT_SEED, OPT_CHURN, OPT_TIMEOUT, OPT_LOSS_MS };
  static const struct option long_options[] = {
      {"connections", required_argument, NULL, 'c'},
      {"messages", required_argument, NULL, 'n'},
      {"size", required_argument, NULL, 's'},
      {"random-size", required_argument, NULL, OPT_RANDOM_SIZE},
      {"seed", required_argument, NULL, OPT_SEED},
      {"churn", no_argument, NULL, OPT_CHURN},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"loss-ms", required_argument, NULL, OPT_LOSS_MS},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  unsigned long long value = 0; /* read after a failed parse too, though then unused */
  int c;
  optind = 0; /* client.c has run getopt over its own options: start afresh (glibc) */
  while ((c = getopt_long(argc, argv, "c:n:s:h", long_options, NULL)) != -1) {
    int bad = 0;
    switch (c) {
    case 'c':
      bad = parse_number(optarg, "-c", 1, 1000000, &value);
      b->connections = (unsigned)value;
      break;
    case 'n':
      bad = parse_number(optarg, "-n", 1, 1000000000, &value);
      b->messages = (unsigned)value;
      break;
    case 's':
      bad = parse_number(optarg, "-s", 1, MAX_SIZE, &value);
      b->min_size = b->max_size = (size_t)value;
      break;
    case OPT_RANDOM_SIZE:
      bad = parse_range(b, optarg);
      break;
    case OPT_SEED:
      bad = parse_number(optarg, "--seed", 0, UINT64_MAX, &value);
      b->seed = value;
      break;
    case OPT_CHURN:
      b->churn = 1;
      break;
    case OPT_TIMEOUT:
      if (parse_seconds(optarg, 0, 1e6, &b->timeout_s) < 0 || !(b->timeout_s > 0)) {
        fprintf(stderr, "bench: bad --timeout: '%s' (expected seconds, above 0)\n", optarg);
        bad = -1;
      }
      break;
    case OPT_LOSS_MS:
      bad = parse_number(optarg, "--loss-ms", 1, 3600000, &value);
      b->loss_ms = (unsigned)value;
      break;
    case 'h':
      return usage(stdout, EXIT_OK);
    default: /* getopt_long has already named the bad option */
      bad = -1;
    }
    if (bad < 0)
      return usage(stderr, EXIT_USAGE);
  }
  if (optind < argc) {
    fprintf(stderr, "bench: unexpected argument: %s\n", argv[optind]);
    return usage(stderr, EXIT_USAGE);
  }
  /* connect_target gives a process one Unix datagram path, so one such socket at a time. */
  if (b->udp && (b->churn || b->max_size > UDP_MAX_SIZE ||
                 (b->target->unix_path != NULL && b->connections > 1))) {
    fprintf(stderr,
            "bench: with --udp: no --churn, at most %d bytes a message, and with "
            "--unix only -c 1\n",
            UDP_MAX_SIZE);
    return usage(stderr, EXIT_USAGE);
  }
  return -1;
}

/* One descriptor per connection: lift the soft limit as far as needed, if the hard allows. */
static int raise_fd_limit(unsigned connections) {
  struct rlimit lim;
  rlim_t need = (rlim_t)connections + SPARE_FDS;
  if (getrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur >= need)
    return 0;
  lim.rlim_cur = need;
  if (setrlimit(RLIMIT_NOFILE, &lim) == 0)
    return 0;
  fprintf(stderr,
          "bench: %u connections need %llu descriptors, the hard limit is %llu (ulimit -Hn)\n",
          connections, (unsigned long long)need, (unsigned long long)lim.rlim_max);
  return -1;
}

/* Stream connects are non-blocking, so connect_target will not do: resolve once here. */
static int resolve_target(struct bench *b) {
  const struct target *t = b->target;
  if (t->unix_path != NULL) {
    struct sockaddr_un *un = (struct sockaddr_un *)&b->addr;
    if (strlen(t->unix_path) >= sizeof un->sun_path) {
      fprintf(stderr, "bench: Unix socket path too long: %s\n", t->unix_path);
      return -1;
    }
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, t->unix_path);
    b->addrlen = sizeof *un;
    return 0;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
  struct addrinfo *addrs;
  int rc = getaddrinfo(t->host, t->port, &hints, &addrs);
  if (rc != 0) {
    fprintf(stderr, "bench: cannot resolve %s: %s\n", target_name(t), gai_strerror(rc));
    return -1;
  }
  memcpy(&b->addr, addrs->ai_addr, addrs->ai_addrlen);
  b->addrlen = addrs->ai_addrlen;
  freeaddrinfo(addrs);
  return 0;
}

/* Letters of both cases, digits, controls, NUL and bytes above 127 (which must stay as sent). */
static void make_pattern(struct bench *b, size_t size) {
  static const char punct[] = " \n\t.,;:!?-_/'\"\r";
  uint64_t state = b->seed;
  for (size_t i = 0; i < size; i++) {
    uint64_t r = mix64(state++);
    unsigned kind = (unsigned)(r % 100), pick = (unsigned)(r >> 32);
    unsigned char byte;
    if (kind < 40)
      byte = (unsigned char)('a' + pick % 26);
    else if (kind < 55)
      byte = (unsigned char)('A' + pick % 26);
    else if (kind < 67)
      byte = (unsigned char)('0' + pick % 10);
    else if (kind < 80)
      byte = (unsigned char)punct[pick % (sizeof punct - 1)];
    else if (kind < 95)
      byte = (unsigned char)(0x80 + pick % 128);
    else
      byte = (unsigned char)(pick % 32 == 31 ? 0x7f : pick % 32);
    b->pattern[i] = byte;
    b->expected[i] = byte >= 'a' && byte <= 'z' ? (unsigned char)(byte - 'a' + 'A') : byte;
  }
}

/* UDP has no connect phase: each "connection" is a connected datagram socket at once. */
static void open_datagram_sockets(struct bench *b) {
  for (unsigned i = 0; i < b->connections; i++) {
    struct conn *c = &b->conns[i];
    c->fd = connect_target(b->target);
    if (c->fd < 0) {
      report(b, c, "cannot open a datagram socket to %s", target_name(b->target));
      finish(b, c);
    } else if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0 ||
               watch(b, c, EPOLLIN) < 0) {
      fail(b, c, "fcntl/epoll_ctl", errno);
    } else {
      c->state = READY;
    }
  }
}

static int compare_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Nearest rank: the smallest latency that at least q of the round trips stay within. */
static uint32_t percentile(const uint32_t *sorted, size_t n, unsigned percent) {
  if (n == 0)
    return 0;
  size_t rank = (n * percent + 99) / 100; /* integers: no rounding surprises at 99% */
  return sorted[rank == 0 ? 0 : rank - 1];
}

static void print_summary(struct bench *b, double seconds) {
  qsort(b->latencies, b->completed, sizeof *b->latencies, compare_u32);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  double rate = seconds > 0 ? (double)b->completed / seconds : 0;
  double mbps = seconds > 0 ? (double)b->bytes / seconds / 1e6 : 0;
  printf("connections=%u messages=%zu bytes=%llu seconds=%.3f msgs/s=%.0f MB/s=%.2f "
         "p50_us=%u p99_us=%u max_us=%u errors=%lu client_cpu_s=%.3f\n",
         b->connections, b->completed, (unsigned long long)b->bytes, seconds, rate, mbps,
         (unsigned)percentile(b->latencies, b->completed, 50),
         (unsigned)percentile(b->latencies, b->completed, 99),
         (unsigned)(b->completed ? b->latencies[b->completed - 1] : 0), b->errors, cpu);
  if (b->untold > 0)
    fprintf(stderr, "bench: %lu more error(s) not shown\n", b->untold);
  fflush(stdout);
}

/* The event loop: connects (bounded), then every connection's round trips, to the deadline. */
static void run(struct bench *b) {
  uint64_t start = now_us(), deadline = start + (uint64_t)(b->timeout_s * 1e6);
  uint64_t first_message = 0, next_loss_check = start;
  int messages_started = b->churn; /* otherwise: once every connection is open */
  struct epoll_event events[MAX_EVENTS];
  if (messages_started)
    first_message = start;
  if (b->udp)
    open_datagram_sockets(b);
  else
    for (unsigned i = 0; i < b->connections; i++)
      queue_push(b, i, 0);

  while (b->finished < b->connections) {
    while (b->connecting < MAX_CONNECTING && b->queue_len > 0 && !b->retry_soon) {
      unsigned index = b->queue[b->queue_head];
      b->queue_head = (b->queue_head + 1) % b->connections;
      b->queue_len--;
      start_connect(b, &b->conns[index]);
    }
    if (!messages_started && b->queue_len == 0 && b->connecting == 0) {
      messages_started = 1; /* every connection is open (or failed): now the load */
      first_message = now_us();
      for (unsigned i = 0; i < b->connections; i++)
        if (b->conns[i].state == READY)
          start_message(b, &b->conns[i]);
      continue;
    }
    uint64_t now = now_us();
    if (now >= deadline) {
      report_outstanding(b);
      break;
    }
    int wait_ms = (int)((deadline - now) / 1000) + 1;
    if (b->retry_soon)
      wait_ms = 1;
    if (b->udp && wait_ms > 100)
      wait_ms = 100; /* so lost datagrams are noticed */
    b->retry_soon = 0;
    int n = epoll_wait(b->epfd, events, MAX_EVENTS, wait_ms);
    if (n < 0 && errno != EINTR) {
      report(b, NULL, "epoll_wait: %s", strerror(errno));
      break;
    }
    for (int i = 0; i < n; i++)
      on_event(b, &b->conns[events[i].data.u32], events[i].events);
    if (b->udp && (now = now_us()) >= next_loss_check) {
      check_udp_losses(b, now);
      next_loss_check = now + 100000;
    }
  }
  uint64_t end = now_us();
  for (unsigned i = 0; i < b->connections; i++)
    close_conn(b, &b->conns[i]); /* only after a failed epoll_wait is any still open */
  print_summary(b, messages_started ? (double)(end - first_message) / 1e6 : 0);
}

int bench_main(const struct target *target, int argc, char **argv) {
  struct bench b = {.target = target,
                    .connections = 1,
                    .messages = 100,
                    .min_size = 64,
                    .max_size = 64,
                    .seed = 1,
                    .udp = target->udp,
                    .timeout_s = 60,
                    .loss_ms = 1000,
                    .epfd = -1};
  int status = parse_options(&b, argc, argv);
  if (status >= 0)
    return status;
  if (raise_fd_limit(b.connections) < 0 || (!b.udp && resolve_target(&b) < 0))
    return EXIT_FAILED;

  size_t pattern_size = b.max_size + PATTERN_SLACK;
  size_t rounds = (size_t)b.connections * b.messages;
  b.conns = calloc(b.connections, sizeof *b.conns);
  b.queue = calloc(b.connections, sizeof *b.queue);
  b.pattern = malloc(pattern_size);
  b.expected = malloc(pattern_size);
  b.latencies =
      rounds <= SIZE_MAX / sizeof *b.latencies ? malloc(rounds * sizeof *b.latencies) : NULL;
  b.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (b.conns == NULL || b.queue == NULL || b.pattern == NULL || b.expected == NULL ||
      b.latencies == NULL || b.epfd < 0) {
    fprintf(stderr, "bench: cannot set up %u connections x %u messages: %s\n", b.connections,
            b.messages, strerror(errno));
    status = EXIT_FAILED;
  } else {
    for (unsigned i = 0; i < b.connections; i++)
      b.conns[i] = (struct conn){.fd = -1, .index = i};
    make_pattern(&b, pattern_size);
    run(&b);
    status = b.errors == 0 ? EXIT_OK : EXIT_FAILED;
  }
  if (b.epfd >= 0)
    close(b.epfd);
  free(b.conns);
  free(b.queue);
  free(b.pattern);
  free(b.expected);
  free(b.latencies);
  return status;
}
