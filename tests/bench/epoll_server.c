/*
 * tests/bench/epoll_server.c - the benchmark's ceiling: the upper-case echo in one thread
 * with epoll, the "where next" after step 3.
 *
 * What it adds to step 3: epoll instead of select(). The kernel keeps the list of
 * descriptors we watch, so each turn of the loop costs one epoll_wait() that returns
 * only the ready clients, instead of copying two fd_sets of every descriptor in and
 * out and scanning them all; and there is no FD_SETSIZE wall. The rest is step 3's:
 * non-blocking sockets, a per-client output buffer resumed where a partial send
 * stopped, a client not read from while its replies are unsent, SIGPIPE never raised,
 * one log line per message (as every server of the lab, so the comparison is fair;
 * --quiet leaves the per-message lines out, to measure what logging costs).
 *
 * How to see it: `make bench-quick`, where it is the line every other is read against.
 */
#define _GNU_SOURCE /* accept4() */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER_SIZE = 16384 }; /* one recv() takes a whole 16 KiB message */
enum { PEER_NAME_SIZE = INET6_ADDRSTRLEN + 8 }; /* "IP:PORT" */
enum { MAX_EVENTS = 256 };                     /* ready clients taken per epoll_wait() */

struct options {
  const char *host;
  const char *port;
  int quiet;
};

static const char usage_text[] =
    "usage: %s [--host HOST] [--port PORT] [--quiet]\n"
    "\n"
    "Upper-case echo server, many clients at once, one thread, epoll.\n"
    "\n"
    "  -H, --host HOST   address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT   port to listen on, 0 picks a free one (default 9999)\n"
    "  -q, --quiet       no log line per message (connects and disconnects still logged)\n"
    "  -h, --help        print this help and exit\n";

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int signo) {
  (void)signo;
  stop_requested = 1;
}

/* The server cannot go on: name the failure on one line and exit 1. */
static void die(const char *what) {
  fprintf(stderr, "%s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(FILE *out, const char *program, int status) {
  fprintf(out, usage_text, program);
  exit(status);
}

static const char *parse_port(const char *text, const char *program) {
  char *end;
  errno = 0;
  long port = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || port < 0 || port > 65535) {
    fprintf(stderr, "%s: bad port: %s\n", program, text);
    usage(stderr, program, 2);
  }
  return text;
}

static struct options parse_options(int argc, char **argv) {
  static const struct option long_options[] = {
      {"host", required_argument, NULL, 'H'},
      {"port", required_argument, NULL, 'p'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct options opts = {.host = "127.0.0.1", .port = "9999", .quiet = 0};
  int c;
  while ((c = getopt_long(argc, argv, "H:p:qh", long_options, NULL)) != -1) {
    switch (c) {
    case 'H':
      opts.host = optarg;
      break;
    case 'p':
      opts.port = parse_port(optarg, argv[0]);
      break;
    case 'q':
      opts.quiet = 1;
      break;
    case 'h':
      usage(stdout, argv[0], 0);
      break;
    default: /* getopt_long has already named the bad option */
      usage(stderr, argv[0], 2);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument: %s\n", argv[0], argv[optind]);
    usage(stderr, argv[0], 2);
  }
  return opts;
}

/*
 * SIGINT and SIGTERM are blocked everywhere except inside epoll_pwait(), which unblocks
 * them atomically while it waits: a stop request can arrive only there, so none is
 * missed between the loop's test and the wait, and no other call sees EINTR from them.
 */
static void install_signal_handlers(sigset_t *wait_mask) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGINT, &action, NULL) < 0 || sigaction(SIGTERM, &action, NULL) < 0)
    die("sigaction");
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &stops, wait_mask) < 0)
    die("sigprocmask");
  sigdelset(wait_mask, SIGINT);
  sigdelset(wait_mask, SIGTERM);
}

/* Format a numeric "IP:PORT"; never a reverse DNS lookup. */
static void format_address(const struct sockaddr *addr, char *out, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (addr->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    port = ntohs(in->sin_port);
  } else if (addr->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    port = ntohs(in6->sin6_port);
  }
  snprintf(out, size, "%s:%u", ip, port);
}

/* Bind and listen on HOST:PORT, non-blocking; on failure exit 1 with one line. */
static int open_listener(const struct options *opts) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo *addrs;
  int rc = getaddrinfo(opts->host, opts->port, &hints, &addrs);
  if (rc != 0) {
    fprintf(stderr, "cannot bind %s:%s: %s\n", opts->host, opts->port, gai_strerror(rc));
    exit(1);
  }
  int listener = -1;
  int saved_errno = 0;
  for (struct addrinfo *a = addrs; a != NULL && listener < 0; a = a->ai_next) {
    listener = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK, a->ai_protocol);
    if (listener < 0) {
      saved_errno = errno;
      continue;
    }
    int on = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(listener, a->ai_addr, a->ai_addrlen) < 0 || listen(listener, SOMAXCONN) < 0) {
      saved_errno = errno;
      close(listener);
      listener = -1;
    }
  }
  freeaddrinfo(addrs);
  if (listener < 0) {
    fprintf(stderr, "cannot bind %s:%s: %s\n", opts->host, opts->port, strerror(saved_errno));
    exit(1);
  }
  return listener;
}

static void announce(int listener) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
    die("getsockname");
  char name[PEER_NAME_SIZE];
  format_address((struct sockaddr *)&addr, name, sizeof name);
  printf("serving on %s\n", name);
}

static void upper_case(char *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (buf[i] >= 'a' && buf[i] <= 'z')
      buf[i] = (char)(buf[i] - 'a' + 'A');
}

/* The steps' own log line, control bytes shown as '.', so that it costs the same. */
static void log_message(const char *peer, const char *buf, size_t len) {
  char shown[BUFFER_SIZE]; /* len is at most one recv(), BUFFER_SIZE bytes */
  while (len > 0 && (buf[len - 1] == ' ' || (buf[len - 1] >= '\t' && buf[len - 1] <= '\r')))
    len--;
  for (size_t i = 0; i < len; i++)
    shown[i] = (unsigned char)buf[i] < ' ' || buf[i] == 127 ? '.' : buf[i];
  printf("%s wrote: %.*s\n", peer, (int)len, shown);
}

/*
 * One connected client. A reply the socket did not take at once waits in `out`;
 * out[0, sent) has gone, the next send resumes at `sent`. While anything waits there
 * the client is not read from: epoll watches it for EPOLLOUT only, so a client that
 * sends without reading fills its own socket buffers, not our memory.
 */
struct client {
  int fd;
  char peer[PEER_NAME_SIZE];
  char *out;
  size_t len, sent;
  struct client *prev, *next; /* every client, so a stop can close them all */
};

static struct client *clients = NULL; /* the list's head */

static int watch(int epfd, int op, struct client *c) {
  struct epoll_event ev = {.events = c->sent < c->len ? EPOLLOUT : EPOLLIN, .data.ptr = c};
  return epoll_ctl(epfd, op, c->fd, &ev);
}

static void drop_client(int epfd, struct client *c, const char *how) {
  if (how != NULL)
    printf("%s %s\n", c->peer, how);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    clients = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->out);
  free(c);
}

/* Send from `buf`; returns the bytes sent (maybe fewer: EAGAIN), or -1 if the client is gone. */
static ssize_t send_some(struct client *c, const char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = send(c->fd, buf + done, len - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      if (errno != ECONNRESET && errno != EPIPE)
        fprintf(stderr, "%s send: %s\n", c->peer, strerror(errno));
      return -1;
    }
    done += (size_t)n;
  }
  return (ssize_t)done;
}

/*
 * The client is readable: one recv(), its reply sent straight from the stack buffer,
 * and only what the socket did not take is copied to the client's own buffer.
 * Returns 0 when the session is over (logged), 1 while it goes on.
 */
static int on_readable(int epfd, struct client *c, int quiet) {
  char buf[BUFFER_SIZE];
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n == 0) {
    printf("%s disconnected\n", c->peer);
    return 0;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return 1;
    if (errno == ECONNRESET)
      printf("%s reset\n", c->peer);
    else
      fprintf(stderr, "%s recv: %s\n", c->peer, strerror(errno));
    return 0;
  }
  if (!quiet)
    log_message(c->peer, buf, (size_t)n);
  upper_case(buf, (size_t)n);
  ssize_t sent = send_some(c, buf, (size_t)n);
  if (sent < 0) {
    printf("%s reset\n", c->peer);
    return 0;
  }
  if ((size_t)sent < (size_t)n) { /* the socket is full: keep the rest, wait for EPOLLOUT */
    c->len = (size_t)n - (size_t)sent;
    c->sent = 0;
    c->out = malloc(c->len);
    if (c->out == NULL) {
      fprintf(stderr, "%s: no memory for the reply\n", c->peer);
      return 0;
    }
    memcpy(c->out, buf + sent, c->len);
    if (watch(epfd, EPOLL_CTL_MOD, c) < 0)
      die("epoll_ctl");
  }
  return 1;
}

/* The client can take more of its pending reply. Returns 0 when the session is over. */
static int on_writable(int epfd, struct client *c) {
  ssize_t sent = send_some(c, c->out + c->sent, c->len - c->sent);
  if (sent < 0) {
    printf("%s reset\n", c->peer);
    return 0;
  }
  c->sent += (size_t)sent;
  if (c->sent == c->len) { /* all gone: read again */
    free(c->out);
    c->out = NULL;
    c->len = c->sent = 0;
    if (watch(epfd, EPOLL_CTL_MOD, c) < 0)
      die("epoll_ctl");
  }
  return 1;
}

/* Take every connection waiting in the backlog (the listener is non-blocking). */
static void accept_clients(int epfd, int listener) {
  for (;;) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int fd = accept4(listener, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == ECONNABORTED)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        fprintf(stderr, "accept: %s\n", strerror(errno)); /* the backlog keeps it */
        return;
      }
      die("accept");
    }
    struct client *c = calloc(1, sizeof *c);
    if (c == NULL) {
      fprintf(stderr, "accept: no memory for a client\n");
      close(fd);
      continue;
    }
    c->fd = fd;
    format_address((struct sockaddr *)&addr, c->peer, sizeof c->peer);
    int on = 1; /* replies go out at once, never held back by Nagle's algorithm */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (watch(epfd, EPOLL_CTL_ADD, c) < 0) {
      fprintf(stderr, "%s epoll_ctl: %s\n", c->peer, strerror(errno));
      close(fd);
      free(c);
      continue;
    }
    c->next = clients;
    if (clients != NULL)
      clients->prev = c;
    clients = c;
    printf("%s connected\n", c->peer);
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* one log line at a time, even into a pipe */
  struct options opts = parse_options(argc, argv);
  sigset_t wait_mask;
  install_signal_handlers(&wait_mask);
  int listener = open_listener(&opts);
  announce(listener);

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0)
    die("epoll_create1");
  struct epoll_event listen_ev = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: the listener */
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &listen_ev) < 0)
    die("epoll_ctl");

  struct epoll_event events[MAX_EVENTS];
  while (!stop_requested) {
    int ready = epoll_pwait(epfd, events, MAX_EVENTS, -1, &wait_mask);
    if (ready < 0) {
      if (errno == EINTR)
        continue; /* a stop signal: the loop's test decides */
      die("epoll_pwait");
    }
    for (int i = 0; i < ready; i++) {
      struct client *c = events[i].data.ptr;
      if (c == NULL) {
        accept_clients(epfd, listener);
        continue;
      }
      /* An error or hang-up is reported with EPOLLIN/EPOLLOUT's recv/send, which name it. */
      int alive = c->sent < c->len ? on_writable(epfd, c) : on_readable(epfd, c, opts.quiet);
      if (!alive)
        drop_client(epfd, c, NULL);
    }
  }

  close(listener); /* nobody else gets in */
  while (clients != NULL)
    drop_client(epfd, clients, "closed by server");
  close(epfd);
  return 0;
}
