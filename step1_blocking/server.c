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

enum { BUFFER_SIZE = 1024 }; /* the seed's recv(1024) */
enum { PEER_NAME_SIZE = INET6_ADDRSTRLEN + 8 }; /* "IP:PORT" */

struct options {
  const char *host;
  const char *port;
};

static const char usage_text[] =
    "usage: %s [--host HOST] [--port PORT]\n"
    "\n"
    "Upper-case echo server, one recv per client, one client at a time.\n"
    "\n"
    "  -H, --host HOST   address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT   port to listen on, 0 picks a free one (default 9999)\n"
    "  -h, --help        print this help and exit\n";

/*
 * Set by SIGINT/SIGTERM. Checking it and then blocking in accept() or recv() would be a
 * race: a signal that lands between the check and the call is handled, and the call then
 * waits for ever. So the handler also writes a byte into a pipe, and every wait watches
 * that pipe too (wait_for() below). The byte stays there: a stop that came early ends the
 * wait at once. This is the "self-pipe trick".
 */
static volatile sig_atomic_t stop_requested = 0;
static int stop_pipe[2] = {-1, -1}; /* [0] is watched, [1] is written by the handler */

static void on_stop_signal(int signo) {
  (void)signo;
  int saved_errno = errno; /* the code it interrupted may be about to read errno */
  stop_requested = 1;
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

static const char *parse_port(const char *text, const char *program) {
  char *end;
  errno = 0;
  long port = strtol(text, &end, 10); /* which takes " 80" and "+80": hence isdigit */
  if (errno != 0 || !isdigit((unsigned char)text[0]) || *end != '\0' || port > 65535) {
    fprintf(stderr, "%s: bad port: %s\n", program, text);
    usage(stderr, program, 2);
  }
  return text;
}

static struct options parse_options(int argc, char **argv) {
  static const struct option long_options[] = {
      {"host", required_argument, NULL, 'H'},
      {"port", required_argument, NULL, 'p'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct options opts = {.host = "127.0.0.1", .port = "9999"};
  int c;
  while ((c = getopt_long(argc, argv, "H:p:h", long_options, NULL)) != -1) {
    switch (c) {
    case 'H':
      opts.host = optarg;
      break;
    case 'p':
      opts.port = parse_port(optarg, argv[0]);
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

static void install_signal_handlers(void) {
  if (pipe(stop_pipe) < 0 || fcntl(stop_pipe[1], F_SETFL, O_NONBLOCK) < 0)
    die("pipe"); /* non-blocking: the handler must never wait on a full pipe */
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0; /* no SA_RESTART: a blocked call must return EINTR */
  if (sigaction(SIGINT, &action, NULL) < 0 || sigaction(SIGTERM, &action, NULL) < 0)
    die("sigaction");
  /* A log that cannot be written (standard output a closed pipe) must not kill the
   * server: with SIGPIPE ignored, such a write fails with EPIPE and serving goes on. */
  action.sa_handler = SIG_IGN;
  if (sigaction(SIGPIPE, &action, NULL) < 0)
    die("sigaction");
}

/*
 * Wait until FD is ready for EVENTS (POLLIN, POLLOUT) or a stop arrives. Returns 0 when
 * FD is ready, -1 with errno EINTR when the server is stopping, as an interrupted call
 * would. A stop wins over a ready FD, so a client that never pauses cannot delay it.
 */
static int wait_for(int fd, short events) {
  struct pollfd fds[2] = {{.fd = fd, .events = events}, {.fd = stop_pipe[0], .events = POLLIN}};
  for (;;) {
    int ready = poll(fds, 2, -1);
    if (stop_requested) {
      errno = EINTR;
      return -1;
    }
    if (ready > 0)
      return 0;
    if (errno != EINTR)
      die("poll");
  }
}

/* One recv(), after wait_for(): a stop ends the wait (-1, errno EINTR). */
static ssize_t receive(int fd, char *buf, size_t size) {
  if (wait_for(fd, POLLIN) < 0)
    return -1;
  return recv(fd, buf, size, 0);
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

/* Bind and listen on HOST:PORT; on failure exit 1 with one line naming it. */
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

/* The protocol: ASCII a-z become A-Z, every other byte is left alone. */
static void upper_case(char *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (buf[i] >= 'a' && buf[i] <= 'z')
      buf[i] = (char)(buf[i] - 'a' + 'A');
}

/*
 * send() may write only part of the buffer: loop until all of it is gone. It never
 * blocks (MSG_DONTWAIT): while the client's socket is full, the wait is wait_for()'s,
 * which a stop ends. MSG_NOSIGNAL turns "the client has gone" into EPIPE instead of a
 * SIGPIPE that would kill the whole server.
 */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_for(fd, POLLOUT) < 0)
        return -1;
      continue;
    }
    if (n < 0)
      return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/*
 * Log what a client wrote, trailing whitespace trimmed as the seed's strip() does. Any
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

/* Replies go out as soon as they are written: no waiting for Nagle's algorithm. */
static void disable_nagle(int client) {
  int on = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* Errors that mean "this client has gone", as opposed to "the server is broken". */
static int client_reset(int err) {
  return err == ECONNRESET || err == EPIPE;
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
    if (client_reset(errno))
      printf("%s reset\n", peer);
    else if (errno != EINTR)
      fprintf(stderr, "%s recv: %s\n", peer, strerror(errno));
    return 0;
  }
  log_message(peer, buf, (size_t)n);
  upper_case(buf, (size_t)n);
  if (write_all(client, buf, (size_t)n) < 0) {
    if (client_reset(errno))
      printf("%s reset\n", peer);
    else if (errno != EINTR)
      fprintf(stderr, "%s send: %s\n", peer, strerror(errno));
    return 0;
  }
  return 1;
}

/* The handler of the seed's first example: one recv, one reply, then hang up. */
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

  while (wait_for(listener, POLLIN) == 0) { /* a client is waiting, or a stop came */
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int client = accept(listener, (struct sockaddr *)&addr, &len);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      die("accept");
    }
    char peer[PEER_NAME_SIZE];
    format_address((struct sockaddr *)&addr, peer, sizeof peer);
    printf("%s connected\n", peer);
    disable_nagle(client);
    handle_client(client, peer);
    close(client); /* the next client waits in the backlog until now */
  }

  close(listener);
  close(stop_pipe[0]);
  close(stop_pipe[1]);
  return 0;
}
