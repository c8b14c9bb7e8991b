/*
 * tests/client.c - the lab's shared client, for people and for tests.
 *
 * The default mode is the seed's socketclient: read a line, send it, print the reply.
 * On a terminal it prompts with ">>: "; from a pipe it reads the lines silently, so
 * scripts and tests can drive it. The hold mode connects and says nothing, which is
 * what a test needs to keep a one-client-at-a-time server busy. Further modes live in
 * files of their own (tests/client_*.c) and are reached through *_main functions.
 */
#define _POSIX_C_SOURCE 200809L

#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { REPLY_SIZE = 65536 };

static const char usage_text[] =
    "usage: %s [OPTIONS] [chat]          talk line by line (default)\n"
    "       %s [OPTIONS] hold            connect, stay silent until stdin ends\n"
    "       %s [OPTIONS] bench ...       load test, every reply checked (bench --help)\n"
    "       %s [OPTIONS] put FILE [--as NAME]   upload FILE to the step-6 file server\n"
    "       %s [OPTIONS] get NAME [-o FILE]     download NAME from it (-o -: to stdout)\n"
    "\n"
    "  -H, --host HOST       server address (default 127.0.0.1)\n"
    "  -p, --port PORT       server port, 1 to 65535 (default 9999)\n"
    "      --unix PATH       connect to a Unix socket instead of TCP\n"
    "      --udp             use datagrams (with --unix: a Unix datagram socket);\n"
    "                        chat and bench only\n"
    "      --recv-first      chat: print what the server says on connect first\n"
    "      --reply-timeout S chat: if no reply comes within S seconds, say so once\n"
    "                        and go on waiting\n"
    "      --reset           close with a reset (SO_LINGER 0) instead of a FIN\n"
    "  -h, --help            print this help and exit\n"
    "\n"
    "chat sends each line without its newline and prints each reply as\n"
    "'recv from server: REPLY'. An empty line sends nothing. The conversation ends\n"
    "at the end of input, or when the server closes the connection.\n"
    "hold prints 'connected from IP:PORT' once connected, then waits for the end of\n"
    "its input or SIGTERM and closes (or resets, with --reset).\n";

struct chat_options {
  int recv_first;
  int reset;
  int reply_timeout_ms; /* -1: wait for replies without a notice */
};

static void usage(FILE *out, const char *program, int status) {
  fprintf(out, usage_text, program, program, program, program, program);
  exit(status);
}

/* ---- connecting -------------------------------------------------------------- */

static char own_datagram_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char name_buffer[300];

const char *target_name(const struct target *target) {
  if (target->unix_path != NULL)
    snprintf(name_buffer, sizeof name_buffer, "%s", target->unix_path);
  else
    snprintf(name_buffer, sizeof name_buffer, "%s:%s", target->host, target->port);
  return name_buffer;
}

static int fill_unix_address(struct sockaddr_un *addr, const char *path) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr->sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy(addr->sun_path, path);
  return 0;
}

static int connect_unix(const struct target *target) {
  struct sockaddr_un addr;
  if (fill_unix_address(&addr, target->unix_path) < 0)
    return -1;
  int fd = socket(AF_UNIX, target->udp ? SOCK_DGRAM : SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  if (target->udp) {
    /* A Unix datagram server can only answer a client bound to a path of its own. */
    struct sockaddr_un own;
    snprintf(own_datagram_path, sizeof own_datagram_path, "/tmp/sockets-lab-client.%ld",
             (long)getpid());
    unlink(own_datagram_path);
    if (fill_unix_address(&own, own_datagram_path) < 0 ||
        bind(fd, (struct sockaddr *)&own, sizeof own) < 0) {
      own_datagram_path[0] = '\0';
      close(fd);
      return -1;
    }
  }
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int saved = errno;
    close_target(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static int connect_inet(const struct target *target) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = target->udp ? SOCK_DGRAM : SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct addrinfo *addrs;
  int rc = getaddrinfo(target->host, target->port, &hints, &addrs);
  if (rc != 0) {
    fprintf(stderr, "cannot connect to %s: %s\n", target_name(target), gai_strerror(rc));
    errno = 0;
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *a = addrs; a != NULL && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
      int saved = errno;
      close(fd);
      fd = -1;
      errno = saved;
    }
  }
  freeaddrinfo(addrs);
  return fd;
}

int connect_target(const struct target *target) {
  int fd = target->unix_path != NULL ? connect_unix(target) : connect_inet(target);
  if (fd < 0 && errno != 0)
    fprintf(stderr, "cannot connect to %s: %s\n", target_name(target), strerror(errno));
  return fd;
}

void close_target(int fd) {
  close(fd);
  if (own_datagram_path[0] != '\0') {
    unlink(own_datagram_path);
    own_datagram_path[0] = '\0';
  }
}

int send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* SO_LINGER with a zero timeout makes close() send a reset instead of a FIN. */
static void close_with_reset(int fd) {
  struct linger linger = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
  close_target(fd);
}

static void hang_up(int fd, const struct chat_options *opts) {
  if (opts->reset)
    close_with_reset(fd);
  else
    close_target(fd);
}

/* ---- chat ---------------------------------------------------------------------- */

/* What waiting for a reply came to. */
enum reply_outcome {
  REPLY_WHOLE,   /* printed */
  SERVER_CLOSED, /* before any byte of the reply: said so */
  REPLY_CUT,     /* the server closed in the middle of an echo: printed, and named */
};

/* Wait until FD is readable; with a --reply-timeout, say once that it passed:
 * "WHAT within S sREST". */
static void wait_readable(int fd, const struct chat_options *opts, const char *what,
                          const char *rest) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  int rc;
  do
    rc = poll(&pfd, 1, opts->reply_timeout_ms);
  while (rc < 0 && errno == EINTR);
  if (rc == 0)
    printf("%s within %g s%s\n", what, opts->reply_timeout_ms / 1000.0, rest);
}

/* One recv() into BUF; 0 at the end of stream, a reset included (see print_reply). */
static size_t receive_some(int fd, char *buf, size_t size) {
  ssize_t n;
  do
    n = recv(fd, buf, size, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno != ECONNRESET && errno != EPIPE) {
    fprintf(stderr, "recv: %s\n", strerror(errno));
    exit(EXIT_FAILED);
  }
  return n > 0 ? (size_t)n : 0;
}

/* The echo protocol's reply to SENT begins with these LEN bytes: SENT, a-z upper-cased. */
static int starts_echo(const char *sent, const char *reply, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = sent[i] >= 'a' && sent[i] <= 'z' ? (char)(sent[i] - 'a' + 'A') : sent[i];
    if (reply[i] != c)
      return 0;
  }
  return 1;
}

/*
 * Wait for the reply to the SENT_LEN bytes of SENT (none for what a server says on
 * connect) and print it on one line. On a reset or end of stream the same words are
 * printed, so a transcript does not depend on which of the two the kernel reports first.
 *
 * A stream has no message boundaries: a long reply comes in several pieces. The echo
 * protocol answers N bytes with N bytes, so a reply that begins as the echo of SENT is
 * read until all N bytes are in; printed piece by piece, its rest would be taken for the
 * next line's reply, and every later reply shifted. Any other reply (the call center's,
 * threadname's) is printed as it comes; so is a datagram, which is one reply whole.
 * *REPLY (of *CAPACITY bytes) is the buffer, grown as need be.
 */
static enum reply_outcome print_reply(int fd, const struct chat_options *opts, const char *sent,
                                      size_t sent_len, int datagram, char **reply,
                                      size_t *capacity) {
  if (*capacity < sent_len || *capacity < REPLY_SIZE) {
    size_t wanted = sent_len > REPLY_SIZE ? sent_len : REPLY_SIZE;
    char *bigger = realloc(*reply, wanted);
    if (bigger == NULL) {
      fprintf(stderr, "chat: no memory for a reply of %zu bytes\n", sent_len);
      exit(EXIT_FAILED);
    }
    *reply = bigger;
    *capacity = wanted;
  }
  wait_readable(fd, opts, "no reply", ": the server is busy with someone else");
  size_t len = receive_some(fd, *reply, *capacity);
  if (len == 0) {
    printf("server closed the connection\n");
    return SERVER_CLOSED;
  }
  int echo = !datagram && len < sent_len && starts_echo(sent, *reply, len);
  size_t piece = 1;
  while (echo && len < sent_len && piece > 0) {
    char so_far[64];
    snprintf(so_far, sizeof so_far, "%zu of %zu bytes", len, sent_len);
    wait_readable(fd, opts, so_far, ", waiting for the rest");
    piece = receive_some(fd, *reply + len, sent_len - len);
    len += piece;
  }
  printf("recv from server: %.*s\n", (int)len, *reply);
  fflush(stdout);
  if (echo && len < sent_len) {
    fprintf(stderr, "chat: the server closed the connection after %zu of the reply's %zu bytes\n",
            len, sent_len);
    return REPLY_CUT;
  }
  return REPLY_WHOLE;
}

static int chat(const struct target *target, const struct chat_options *opts) {
  int fd = connect_target(target);
  if (fd < 0)
    return EXIT_FAILED;
  int on_terminal = isatty(STDIN_FILENO);
  char *line = NULL, *reply = NULL;
  size_t line_capacity = 0, reply_capacity = 0;
  enum reply_outcome outcome = REPLY_WHOLE;
  if (opts->recv_first)
    outcome = print_reply(fd, opts, "", 0, target->udp, &reply, &reply_capacity);
  while (outcome == REPLY_WHOLE) {
    if (on_terminal) {
      printf(">>: ");
      fflush(stdout);
    }
    ssize_t len = getline(&line, &line_capacity, stdin);
    if (len < 0)
      break;
    if (len > 0 && line[len - 1] == '\n')
      len--;
    if (len == 0)
      continue; /* nothing to send: a zero-byte send is not a message */
    if (send_all(fd, line, (size_t)len) < 0) { /* the seed's client.send() */
      printf("server closed the connection\n");
      break;
    }
    outcome = print_reply(fd, opts, line, (size_t)len, target->udp, &reply, &reply_capacity);
  }
  free(line);
  free(reply);
  hang_up(fd, opts);
  return outcome == REPLY_CUT ? EXIT_FAILED : EXIT_OK;
}

/* ---- hold ---------------------------------------------------------------------- */

static void print_local_address(int fd) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  char host[64] = "?", port[16] = "?";
  if (getsockname(fd, (struct sockaddr *)&addr, &len) == 0 && addr.ss_family != AF_UNIX)
    getnameinfo((struct sockaddr *)&addr, len, host, sizeof host, port, sizeof port,
                NI_NUMERICHOST | NI_NUMERICSERV);
  printf("connected from %s:%s\n", host, port);
  fflush(stdout);
}

static int release_pipe[2] = {-1, -1}; /* [1] is written by the handler, [0] is watched */

static void on_release(int signo) {
  (void)signo;
  int saved_errno = errno; /* the code it interrupted may be about to read errno */
  ssize_t ignored = write(release_pipe[1], "x", 1); /* a full pipe has a byte already */
  (void)ignored;
  errno = saved_errno;
}

/*
 * Stay connected and silent until the end of input or SIGTERM/SIGINT, then hang up.
 * Checking a flag and then blocking in read() would lose a signal that lands between
 * the two (the test's release comes right after our "connected from" line), so the
 * handler writes a byte into a pipe that the wait watches beside standard input: a
 * release that came early is still there (a self-pipe; it works under valgrind and the
 * sanitizers too, which deliver signals at their own moments). The signals are blocked
 * during the connect, so a release is always a hang-up (exit 0), never an interrupted
 * connect.
 */
static int hold(const struct target *target, const struct chat_options *opts) {
  if (pipe(release_pipe) < 0 || fcntl(release_pipe[1], F_SETFL, O_NONBLOCK) < 0) {
    fprintf(stderr, "hold: pipe: %s\n", strerror(errno));
    return EXIT_FAILED;
  }
  sigset_t release_signals;
  sigemptyset(&release_signals);
  sigaddset(&release_signals, SIGTERM);
  sigaddset(&release_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &release_signals, NULL);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_release;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);
  int fd = connect_target(target);
  /* Open even if they came in blocked: a hold must be releasable. */
  sigprocmask(SIG_UNBLOCK, &release_signals, NULL);
  int status = EXIT_FAILED;
  if (fd >= 0) {
    print_local_address(fd);
    struct pollfd waits[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                              {.fd = release_pipe[0], .events = POLLIN}};
    char discard[256];
    for (;;) {
      if (poll(waits, 2, -1) < 0) {
        if (errno == EINTR) /* the handler ran: the pipe says so on the next look */
          continue;
        fprintf(stderr, "hold: poll: %s\n", strerror(errno));
        break;
      }
      if (waits[1].revents != 0) /* released */
        break;
      /* Readable: read() does not block; it returns 0 at the end of input. */
      if (waits[0].revents != 0 && read(STDIN_FILENO, discard, sizeof discard) <= 0)
        break;
    }
    hang_up(fd, opts);
    status = EXIT_OK;
  }
  close(release_pipe[0]);
  close(release_pipe[1]);
  return status;
}

/* ---- numbers ------------------------------------------------------------------- */

static const char decimal_digits[] = "0123456789";

int parse_decimal(const char *text, unsigned long long min, unsigned long long max,
                  unsigned long long *out) {
  if (text[0] == '\0' || text[strspn(text, decimal_digits)] != '\0')
    return -1;
  errno = 0;
  unsigned long long value = strtoull(text, NULL, 10);
  if (errno == ERANGE || value < min || value > max)
    return -1;
  *out = value;
  return 0;
}

int parse_seconds(const char *text, double min, double max, double *out) {
  size_t whole = strspn(text, decimal_digits), point = text[whole] == '.';
  size_t fraction = point ? strspn(text + whole + 1, decimal_digits) : 0;
  if (whole + fraction == 0 || text[whole + point + fraction] != '\0')
    return -1; /* no digit at all, or something after them */
  double value = strtod(text, NULL);
  if (!(value >= min && value <= max))
    return -1;
  *out = value;
  return 0;
}

/* ---- main ---------------------------------------------------------------------- */

/*
 * Descriptors 0, 1 and 2 are standard input, output and error to printf() and friends.
 * Started with one of them closed, the client's socket would take its number, and what
 * it prints would go to the server. So each one that is closed is opened onto
 * /dev/null before anything else (open() takes the lowest free number).
 */
static void keep_standard_descriptors_open(void) {
  for (int fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) {
      fprintf(stderr, "/dev/null: %s\n", strerror(errno));
      exit(EXIT_FAILED);
    }
}

static int parse_timeout_ms(const char *text, const char *program) {
  double seconds;
  if (parse_seconds(text, 0, 86400, &seconds) < 0) {
    fprintf(stderr, "%s: bad --reply-timeout: '%s' (expected seconds, 0 to 86400)\n", program,
            text);
    usage(stderr, program, EXIT_USAGE);
  }
  return (int)(seconds * 1000);
}

/* getaddrinfo() would take "99999" and connect to port 34463 (its low 16 bits). */
static void check_port(const char *text, const char *program) {
  unsigned long long port;
  if (parse_decimal(text, 1, 65535, &port) < 0) {
    fprintf(stderr, "%s: bad --port: '%s' (expected a whole number, 1 to 65535)\n", program, text);
    usage(stderr, program, EXIT_USAGE);
  }
}

int main(int argc, char **argv) {
  enum { OPT_UNIX = 256, OPT_UDP, OPT_RECV_FIRST, OPT_REPLY_TIMEOUT, OPT_RESET };
  static const struct option long_options[] = {
      {"host", required_argument, NULL, 'H'},
      {"port", required_argument, NULL, 'p'},
      {"unix", required_argument, NULL, OPT_UNIX},
      {"udp", no_argument, NULL, OPT_UDP},
      {"recv-first", no_argument, NULL, OPT_RECV_FIRST},
      {"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
      {"reset", no_argument, NULL, OPT_RESET},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  keep_standard_descriptors_open();
  struct target target = {.host = "127.0.0.1", .port = "9999"};
  struct chat_options opts = {.reply_timeout_ms = -1};
  int c;
  /* "+": stop at the first word, so each mode parses the options after it. */
  while ((c = getopt_long(argc, argv, "+H:p:h", long_options, NULL)) != -1) {
    switch (c) {
    case 'H':
      target.host = optarg;
      break;
    case 'p':
      target.port = optarg;
      break;
    case OPT_UNIX:
      if (optarg[0] == '\0') {
        fprintf(stderr, "%s: bad --unix: an empty path\n", argv[0]);
        usage(stderr, argv[0], EXIT_USAGE);
      }
      target.unix_path = optarg;
      break;
    case OPT_UDP:
      target.udp = 1;
      break;
    case OPT_RECV_FIRST:
      opts.recv_first = 1;
      break;
    case OPT_REPLY_TIMEOUT:
      opts.reply_timeout_ms = parse_timeout_ms(optarg, argv[0]);
      break;
    case OPT_RESET:
      opts.reset = 1;
      break;
    case 'h':
      usage(stdout, argv[0], EXIT_OK);
      break;
    default:
      usage(stderr, argv[0], EXIT_USAGE);
    }
  }
  /* With --unix the port is not used, and the suites pass one anyway (their SERVER_PORT
   * is then the socket's path): only a port that will be used is checked. */
  if (target.unix_path == NULL)
    check_port(target.port, argv[0]);
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  const char *mode = optind < argc ? argv[optind] : "chat";
  int words = argc - optind;
  /* A datagram is one message and one reply: there is no connection to hold open, and
   * no stream to carry a file. */
  if (target.udp && strcmp(mode, "chat") != 0 && strcmp(mode, "bench") != 0) {
    fprintf(stderr, "%s: --udp is for chat and bench, not %s\n", argv[0], mode);
    usage(stderr, argv[0], EXIT_USAGE);
  }
  if (strcmp(mode, "chat") == 0 && words <= 1)
    return chat(&target, &opts);
  if (strcmp(mode, "hold") == 0 && words == 1)
    return hold(&target, &opts);
  if (strcmp(mode, "bench") == 0)
    return bench_main(&target, words, argv + optind);
  if (strcmp(mode, "put") == 0)
    return put_main(&target, words, argv + optind);
  if (strcmp(mode, "get") == 0)
    return get_main(&target, words, argv + optind);
  fprintf(stderr, "%s: unknown mode or stray argument: %s\n", argv[0], argv[argc - 1]);
  usage(stderr, argv[0], EXIT_USAGE);
}
