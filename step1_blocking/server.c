/*
 * step1_blocking/server.c - an upper-case echo server that reads once per client.
 *
 * What this step shows: Python's socketserver.TCPServer with a handler that calls
 * recv(1024) once. The server accepts a client, reads one message, sends it back
 * upper-cased, closes the connection and only then accepts the next client.
 *
 * How to see it: `make step1`, or run the server and two `tests/client`s. The first
 * client's second message gets no reply (the server has already closed), and the
 * second client connects (the kernel's backlog accepts it) but is not answered until
 * the first one is done.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER_SIZE = 1024 }; /* the blog's recv(1024) */
enum { PEER_NAME_SIZE = INET6_ADDRSTRLEN + 8 }; /* "IP:PORT" */
enum { POLL_INTERVAL_MS = 500 }; /* socketserver's poll_interval=0.5 */

struct options {
  const char *host;
  const char *port;
};
static const struct options default_options = {.host = "127.0.0.1", .port = "9999"};

static const char usage_text[] =
    "usage: %s [--host HOST] [--port PORT]\n"
    "\n"
    "Upper-case echo server, one recv per client, one client at a time.\n"
    "\n"
    "  -H, --host HOST   address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT   port to listen on, 0 picks a free one (default 9999)\n"
    "  -h, --help        print this help and exit\n";

static const struct option long_options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The stop. Checking a flag, then blocking in accept() or recv() would lose a signal that
 * lands in between. So SIGINT and SIGTERM write a byte into this pipe, which every wait
 * watches too (wait_for()): a stop that came early ends the wait at once. A self-pipe. */
static int stop_pipe[2] = {-1, -1}; /* [0] is watched, [1] is written by the handler */

/* Below the banner at the end, the same in every step: */
static struct options parse_options(int argc, char **argv);
static void usage(FILE *out, const char *program, int status);
static long parse_number(const char *text, long min, long max, const char *what, const char *prog);
static void install_signal_handlers(void); /* the stop pipe; SIGPIPE ignored */
static void open_stop_pipe(void);
static void close_stop_pipe(void);
static void die(const char *what);
static int open_listener(const struct options *opts);
static void announce(int listener); /* the ready line */
static int accept_client(int listener, char *peer);
static int out_of_descriptors(int err);
static int wait_for(int fd, short events, int timeout_ms);
static void upper_case(char *buf, size_t len);
static void log_message(const char *peer, const char *buf, size_t len);
static void log_failure(const char *peer, const char *call);
static ssize_t send_some(int fd, const char *buf, size_t len);

/* This step's own helpers, after main(): */
static void set_step_option(struct options *opts, int option, const char *arg, const char *program);
static int accept_client_or_stop(int listener, char *peer);
static int echo_once(int client, const char *peer);
static ssize_t receive(int fd, char *buf, size_t size);
static int write_all(int fd, const char *buf, size_t len);

/* The handler of the blog's first example: one recv, one reply, then hang up. */
static void handle_client(int client, const char *peer) {
  if (echo_once(client, peer))
    printf("%s closed by server\n", peer);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* one log line at a time, even into a pipe */
  struct options opts = parse_options(argc, argv);
  install_signal_handlers();
  int listener = open_listener(&opts);
  announce(listener);

  char peer[PEER_NAME_SIZE];
  int client;
  while ((client = accept_client_or_stop(listener, peer)) >= 0) { /* -1: told to stop */
    printf("%s connected\n", peer);
    handle_client(client, peer);
    close(client); /* the next client waits in the backlog until now */
  }

  close(listener);
  close_stop_pipe();
  return 0;
}

/* This step has no option of its own, so getopt_long() hands none over. */
static void set_step_option(struct options *opts, int option, const char *arg,
                            const char *program) {
  (void)opts;
  (void)option;
  (void)arg;
  usage(stderr, program, 2);
}

/*
 * Wait for the next client and accept it: its descriptor, with "IP:PORT" in PEER.
 * Returns -1 only when the server has been told to stop (SIGINT, SIGTERM), which ends
 * the wait at once. Nothing else ends the loop: a client that gave up before accept()
 * is skipped, and with no descriptor free the loop rests instead of spinning.
 */
static int accept_client_or_stop(int listener, char *peer) {
  while (wait_for(listener, POLLIN, -1) > 0) { /* a client is waiting, or a stop came */
    int client = accept_client(listener, peer);
    if (client >= 0)
      return client;
    if (out_of_descriptors(errno)) /* the client stays in the backlog: rest, not spin */
      wait_for(-1, 0, POLL_INTERVAL_MS);
  }
  return -1;
}

/*
 * Receive one message and send it back upper-cased. Returns 1 when the reply went
 * out, 0 when the session is over: the client closed or reset (both logged), or the
 * server is stopping.
 */
static int echo_once(int client, const char *peer) {
  char buf[BUFFER_SIZE];
  ssize_t n = receive(client, buf, sizeof buf);
  if (n == 0) {
    printf("%s disconnected\n", peer);
    return 0;
  }
  if (n < 0) {
    log_failure(peer, "recv");
    return 0;
  }
  log_message(peer, buf, (size_t)n);
  upper_case(buf, (size_t)n);
  if (write_all(client, buf, (size_t)n) < 0) {
    log_failure(peer, "send");
    return 0;
  }
  return 1;
}

/* One recv(), after wait_for(): a stop ends the wait (-1, errno EINTR). */
static ssize_t receive(int fd, char *buf, size_t size) {
  if (wait_for(fd, POLLIN, -1) < 0)
    return -1;
  return recv(fd, buf, size, 0);
}

/*
 * Send the whole buffer: send_some() as often as it takes. While the client's socket is
 * full, the wait is wait_for()'s, which a stop ends.
 */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send_some(fd, buf, len);
    if (n < 0 || (n == 0 && wait_for(fd, POLLOUT, -1) < 0))
      return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ---- Unchanged in every step: options, signals, listener, waits, logs, sends ---- */

/* The stop signal's handler: the byte in the pipe is the whole message (see wait_for()). */
static void on_stop_signal(int signo) {
  (void)signo;
  int saved_errno = errno; /* the code it interrupted may be about to read errno */
  ssize_t ignored = write(stop_pipe[1], "x", 1); /* a full pipe has a byte already */
  (void)ignored;
  errno = saved_errno;
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

/* A decimal number from MIN to MAX, or the usage: strtol() alone takes " 80" and "+80". */
static long parse_number(const char *text, long min, long max, const char *what,
                         const char *program) {
  char *end;
  errno = 0;
  long n = strtol(text, &end, 10);
  if (errno != 0 || !isdigit((unsigned char)text[0]) || *end != '\0' || n < min || n > max) {
    fprintf(stderr, "%s: bad %s: %s\n", program, what, text);
    usage(stderr, program, 2);
  }
  return n;
}

/* --host, --port and --help here; this step's own options go to set_step_option(). */
static struct options parse_options(int argc, char **argv) {
  struct options opts = default_options;
  int c;
  while ((c = getopt_long(argc, argv, "H:p:h", long_options, NULL)) != -1) {
    switch (c) {
    case 'H':
      opts.host = optarg;
      break;
    case 'p':
      parse_number(optarg, 0, 65535, "port", argv[0]);
      opts.port = optarg; /* getaddrinfo() takes the port as text */
      break;
    case 'h':
      usage(stdout, argv[0], 0);
      break;
    case '?': /* getopt_long has already named the bad option */
      usage(stderr, argv[0], 2);
      break;
    default:
      set_step_option(&opts, c, optarg, argv[0]);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument: %s\n", argv[0], argv[optind]);
    usage(stderr, argv[0], 2);
  }
  return opts;
}

/*
 * Descriptors 0, 1 and 2 are standard input, output and error to every library call.
 * Started with one of them closed, the server's first open() would take its number:
 * the stop pipe, say, on 1 and 2, and the first error line would be a stop. So each one
 * that is closed is opened onto /dev/null first (open() takes the lowest free number).
 */
static void keep_standard_descriptors_open(void) {
  for (int fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
      die("/dev/null");
}

/* The stop pipe, non-blocking at the writing end: the handler must never wait on it.
 * It is the first descriptor the server opens. */
static void open_stop_pipe(void) {
  keep_standard_descriptors_open();
  if (pipe(stop_pipe) < 0 || fcntl(stop_pipe[1], F_SETFL, O_NONBLOCK) < 0)
    die("pipe");
}

static void close_stop_pipe(void) {
  close(stop_pipe[0]);
  close(stop_pipe[1]);
}

static void install_signal_handlers(void) {
  open_stop_pipe();
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  /* SA_RESTART: a log line is not cut short by a stop. The waits, poll() and select(),
   * are never restarted, and they watch the pipe anyway. */
  action.sa_flags = SA_RESTART;
  if (sigaction(SIGINT, &action, NULL) < 0 || sigaction(SIGTERM, &action, NULL) < 0)
    die("sigaction");
  /* A log that cannot be written (standard output a closed pipe) must not kill the
   * server: with SIGPIPE ignored, such a write fails with EPIPE and serving goes on. */
  action.sa_handler = SIG_IGN;
  if (sigaction(SIGPIPE, &action, NULL) < 0)
    die("sigaction");
}

/*
 * Wait until FD is ready for EVENTS (POLLIN, POLLOUT), a stop arrives, or TIMEOUT_MS pass
 * (-1: no limit; FD -1: wait for the stop and the time only). Returns 1 when FD is ready,
 * 0 when the time is up, -1 with errno EINTR when the server is stopping, as an
 * interrupted call would. The stop wins over a ready FD, so a client that never pauses
 * cannot delay it, and the pipe's byte is never read: every later wait, in any thread,
 * sees the stop too.
 */
static int wait_for(int fd, short events, int timeout_ms) {
  struct pollfd fds[2] = {{.fd = stop_pipe[0], .events = POLLIN}, {.fd = fd, .events = events}};
  int ready;
  while ((ready = poll(fds, 2, timeout_ms)) < 0)
    if (errno != EINTR) /* EINTR: the handler has written the pipe; poll again to see it */
      die("poll");
  if (fds[0].revents != 0) {
    errno = EINTR;
    return -1;
  }
  return ready > 0;
}

/* Format a numeric "IP:PORT"; never a reverse DNS lookup, which can take seconds. */
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

/*
 * Bind and listen on HOST:PORT; on failure exit 1 with one line naming it. The listener
 * is non-blocking: a client poll() announced may have gone before accept(), which must
 * then say EAGAIN rather than wait for the next one, deaf to a stop.
 */
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
    listener = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (listener < 0) {
      saved_errno = errno;
      continue;
    }
    /* Restarting the server must not wait for old connections' TIME_WAIT to expire. */
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
  if (fcntl(listener, F_SETFL, O_NONBLOCK) < 0)
    die("fcntl");
  return listener;
}

/* The ready line: tests and demos wait for it, so it names the port really bound. */
static void announce(int listener) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
    die("getsockname");
  char name[PEER_NAME_SIZE];
  format_address((struct sockaddr *)&addr, name, sizeof name);
  printf("serving on %s\n", name);
}

/* Out of descriptors (EMFILE for this process, ENFILE for the system) or memory. */
static int out_of_descriptors(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/*
 * Take the next client from the backlog and name it "IP:PORT" in PEER. Returns its
 * descriptor, or -1 when there is none to serve now: the backlog is empty (EAGAIN), the
 * client has given up already (ECONNABORTED), or the server is out of descriptors
 * (logged; the client stays in the backlog, so the caller rests before it retries).
 * Anything else means the server cannot go on.
 */
static int accept_client(int listener, char *peer) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  int client = accept(listener, (struct sockaddr *)&addr, &len);
  if (client < 0) {
    if (out_of_descriptors(errno))
      fprintf(stderr, "accept: %s (resting a poll interval)\n", strerror(errno));
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR)
      die("accept");
    return -1;
  }
  format_address((struct sockaddr *)&addr, peer, PEER_NAME_SIZE);
  /* Replies go out as soon as they are written: no waiting for Nagle's algorithm. */
  int on = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  return client;
}

/* The protocol: ASCII a-z become A-Z, every other byte is left alone. */
static void upper_case(char *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (buf[i] >= 'a' && buf[i] <= 'z')
      buf[i] = (char)(buf[i] - 'a' + 'A');
}

/*
 * Log what a client wrote, trailing whitespace trimmed as the blog's strip() does. Any
 * other control byte is shown as '.': a newline or a NUL from a client must not forge a
 * log line of its own or hide what follows it.
 */
static void log_message(const char *peer, const char *buf, size_t len) {
  char shown[BUFFER_SIZE]; /* len is at most one recv(), BUFFER_SIZE bytes */
  while (len > 0 && (buf[len - 1] == ' ' || (buf[len - 1] >= '\t' && buf[len - 1] <= '\r')))
    len--;
  for (size_t i = 0; i < len; i++)
    shown[i] = (unsigned char)buf[i] < ' ' || buf[i] == 127 ? '.' : buf[i];
  printf("%s wrote: %.*s\n", peer, (int)len, shown);
}

/*
 * A client's recv() or send() failed (CALL names it). ECONNRESET and EPIPE mean "this
 * client has gone", logged as a reset; EINTR means the server is stopping, nothing to
 * say; anything else is an error, this client's only: the server goes on.
 */
static void log_failure(const char *peer, const char *call) {
  if (errno == ECONNRESET || errno == EPIPE)
    printf("%s reset\n", peer);
  else if (errno != EINTR)
    fprintf(stderr, "%s %s: %s\n", peer, call, strerror(errno));
}

/*
 * Send what the client's socket takes now, never waiting (MSG_DONTWAIT). Returns the
 * bytes sent, 0 when its buffer is full, or -1. send() may take only part of the buffer,
 * so the caller resumes where it stopped. MSG_NOSIGNAL turns "the client has gone" into
 * EPIPE instead of a SIGPIPE that would kill the whole server.
 */
static ssize_t send_some(int fd, const char *buf, size_t len) {
  ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0;
  return n;
}
