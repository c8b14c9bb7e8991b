/*
 * step3_select/server.c - an upper-case echo server for many clients at once, in one thread.
 *
 * What this step adds: select(). One process with one thread waits for whichever client
 * is ready and serves it a little, so nobody waits for another's session to end. So
 * nothing in the loop may block: the sockets are non-blocking, and a reply a client is
 * not reading yet waits in that client's output buffer, to be sent from where it stopped
 * when select() says the client can take more. A client whose unsent replies pass
 * OUTPUT_LIMIT is not read from until it catches up, so a client that sends without
 * reading cannot make the server grow. select() has a wall: an fd_set holds descriptors
 * below FD_SETSIZE (1024) only, so a connection given a descriptor at or above it is
 * refused (logged, closed). SIGINT or SIGTERM closes every client and exits 0.
 *
 * How to see it: `make step3`. Three clients talk at the same time, each answered while
 * the others stay connected, and /proc shows a server of one thread and no child. A
 * client that never reads (`tests/client hold`) no longer keeps anybody waiting.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { BUFFER_SIZE = 16384 }; /* a 16 KiB message in one recv, not sixteen */
enum { PEER_NAME_SIZE = INET6_ADDRSTRLEN + 8 }; /* "IP:PORT" */
enum { OUTPUT_LIMIT = 64 * 1024 }; /* unsent bytes past which a client is not read */
enum { POLL_INTERVAL_MS = 500 };   /* socketserver's serve_forever(poll_interval=0.5) */

struct options {
  const char *host;
  const char *port;
};

static const char usage_text[] =
    "usage: %s [--host HOST] [--port PORT]\n"
    "\n"
    "Upper-case echo server, many clients at once, one thread, select().\n"
    "\n"
    "  -H, --host HOST   address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT   port to listen on, 0 picks a free one (default 9999)\n"
    "  -h, --help        print this help and exit\n";

/* Set by SIGINT/SIGTERM; the loops below check it whenever a call returns EINTR. */
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
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0; /* no SA_RESTART: a blocked accept or recv must return EINTR */
  if (sigaction(SIGINT, &action, NULL) < 0 || sigaction(SIGTERM, &action, NULL) < 0)
    die("sigaction");
  /* A log that cannot be written (standard output a closed pipe) must not kill the
   * server: with SIGPIPE ignored, such a write fails with EPIPE and serving goes on. */
  action.sa_handler = SIG_IGN;
  if (sigaction(SIGPIPE, &action, NULL) < 0)
    die("sigaction");
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
 * One connected client. Its replies wait in `out` until the socket takes them;
 * out[0, sent) has gone already, and the next send resumes at `sent`, never at 0.
 */
struct client {
  int fd;
  char peer[PEER_NAME_SIZE];
  char *out;
  size_t len, sent, cap; /* bytes in out, bytes of them sent, bytes allocated */
  int eof;               /* the client has closed its end: flush, then close */
};

/* Everything the loop watches, by descriptor. */
struct server {
  int listener;
  int maxfd;                          /* the highest descriptor in the sets */
  fd_set read_set, write_set;         /* the masters; select() is given copies */
  struct client *clients[FD_SETSIZE]; /* NULL where there is no client */
  int accept_paused;                  /* out of descriptors: the listener rests */
  struct timespec paused_at;
};

/* Append a reply behind what is still unsent. Returns 0, or -1 when memory ran out. */
static int queue_output(struct client *c, const char *buf, size_t len) {
  if (c->sent > 0) { /* what has gone is dead space: move the rest to the front */
    memmove(c->out, c->out + c->sent, c->len - c->sent);
    c->len -= c->sent;
    c->sent = 0;
  }
  if (c->len + len > c->cap) {
    size_t cap = c->cap > 0 ? c->cap : BUFFER_SIZE;
    while (cap < c->len + len)
      cap *= 2;
    char *out = realloc(c->out, cap);
    if (out == NULL)
      return -1;
    c->out = out;
    c->cap = cap;
  }
  memcpy(c->out + c->len, buf, len);
  c->len += len;
  return 0;
}

/*
 * Send what is queued until it has all gone or the socket's buffer is full (EAGAIN:
 * the rest waits for select() to say the client can take more). MSG_NOSIGNAL turns
 * "the client has gone" into EPIPE instead of a SIGPIPE that would kill the whole
 * server. Returns 1 while the session goes on, 0 when it is over (logged).
 */
static int send_queued(struct client *c) {
  while (c->sent < c->len) {
    ssize_t n = send(c->fd, c->out + c->sent, c->len - c->sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 1;
      if (client_reset(errno))
        printf("%s reset\n", c->peer);
      else
        fprintf(stderr, "%s send: %s\n", c->peer, strerror(errno));
      return 0;
    }
    c->sent += (size_t)n; /* a partial send: resume from here */
  }
  c->len = c->sent = 0;
  return 1;
}

/*
 * Receive one message, whatever one recv() gives, and send it back upper-cased. Returns
 * 1 while the session goes on, 0 when it is over: the client reset (logged) or the
 * server cannot keep its replies. End of stream only marks the client: what is queued
 * for it still goes out, since a client that half-closes after sending is owed every
 * reply.
 */
static int echo_once(struct client *c) {
  char buf[BUFFER_SIZE];
  ssize_t n;
  do
    n = recv(c->fd, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR && !stop_requested);
  if (n == 0) {
    c->eof = 1;
    return 1;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return 1; /* readiness was a false alarm: nothing lost, try again later */
    if (client_reset(errno))
      printf("%s reset\n", c->peer);
    else
      fprintf(stderr, "%s recv: %s\n", c->peer, strerror(errno));
    return 0;
  }
  log_message(c->peer, buf, (size_t)n);
  upper_case(buf, (size_t)n);
  if (queue_output(c, buf, (size_t)n) < 0) {
    fprintf(stderr, "%s: no memory for the reply\n", c->peer);
    return 0;
  }
  return send_queued(c); /* most replies go at once; the rest waits its turn */
}

/* One turn for a client select() found ready. Returns 0 when its session is over. */
static int serve_client(struct client *c, int readable, int writable) {
  if (readable && !echo_once(c))
    return 0;
  if (writable && !send_queued(c))
    return 0;
  if (c->eof && c->sent == c->len) {
    printf("%s disconnected\n", c->peer);
    return 0;
  }
  return 1;
}

/*
 * Say in the master sets what this client waits for. Input, unless it has ended or the
 * client's unsent replies pass OUTPUT_LIMIT: then the bytes it sends pile up in its own
 * socket buffers, its sends block, and it slows down to the pace it reads at. The
 * chance to write, only while something is queued, or select() would return at once,
 * every time.
 */
static void watch(struct server *srv, const struct client *c) {
  if (!c->eof && c->len - c->sent < OUTPUT_LIMIT)
    FD_SET(c->fd, &srv->read_set);
  else
    FD_CLR(c->fd, &srv->read_set);
  if (c->sent < c->len)
    FD_SET(c->fd, &srv->write_set);
  else
    FD_CLR(c->fd, &srv->write_set);
}

static void add_client(struct server *srv, int fd, const char *peer) {
  struct client *c = calloc(1, sizeof *c);
  if (c == NULL) {
    fprintf(stderr, "%s: no memory for a client\n", peer);
    close(fd);
    return;
  }
  c->fd = fd;
  snprintf(c->peer, sizeof c->peer, "%s", peer);
  srv->clients[fd] = c;
  if (fd > srv->maxfd)
    srv->maxfd = fd;
  watch(srv, c);
}

static void remove_client(struct server *srv, struct client *c) {
  FD_CLR(c->fd, &srv->read_set);
  FD_CLR(c->fd, &srv->write_set);
  srv->clients[c->fd] = NULL;
  while (srv->maxfd > srv->listener && srv->clients[srv->maxfd] == NULL)
    srv->maxfd--;
  close(c->fd);
  free(c->out);
  free(c);
}

/*
 * Out of descriptors (EMFILE for this process, ENFILE for the system): the connection
 * stays in the backlog, so select() would report the listener ready again at once, for
 * ever. Stop watching it until a client leaves or a poll interval has passed.
 */
static void pause_accepting(struct server *srv) {
  fprintf(stderr, "accept: %s (not accepting for now)\n", strerror(errno));
  FD_CLR(srv->listener, &srv->read_set);
  srv->accept_paused = 1;
  clock_gettime(CLOCK_MONOTONIC, &srv->paused_at);
}

static void resume_accepting(struct server *srv) {
  FD_SET(srv->listener, &srv->read_set);
  srv->accept_paused = 0;
}

static int poll_interval_passed(const struct timespec *since) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  long long ms = (now.tv_sec - since->tv_sec) * 1000LL;
  ms += (now.tv_nsec - since->tv_nsec) / 1000000;
  return ms >= POLL_INTERVAL_MS;
}

static void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    die("fcntl");
}

/*
 * Take every connection waiting in the backlog: the listener is non-blocking, so EAGAIN
 * says the backlog is empty.
 */
static void accept_clients(struct server *srv) {
  while (!stop_requested) {
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int client = accept(srv->listener, (struct sockaddr *)&addr, &len);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      if (errno == EMFILE || errno == ENFILE) {
        pause_accepting(srv);
        return;
      }
      die("accept");
    }
    char peer[PEER_NAME_SIZE];
    format_address((struct sockaddr *)&addr, peer, sizeof peer);
    if (client >= FD_SETSIZE) { /* FD_SET would write past the end of every fd_set */
      printf("%s refused: descriptor %d is not below FD_SETSIZE %d\n", peer, client, FD_SETSIZE);
      close(client);
      continue;
    }
    printf("%s connected\n", peer);
    disable_nagle(client);
    set_nonblocking(client); /* select() says "ready", not "ready for this much" */
    add_client(srv, client, peer);
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* one log line at a time, even into a pipe */
  struct options opts = parse_options(argc, argv);
  install_signal_handlers();
  int listener = open_listener(&opts);
  announce(listener);

  struct server srv = {.listener = listener, .maxfd = listener}; /* no clients yet */
  FD_ZERO(&srv.read_set);
  FD_ZERO(&srv.write_set);
  set_nonblocking(listener);
  FD_SET(listener, &srv.read_set);

  while (!stop_requested) {
    if (srv.accept_paused && poll_interval_passed(&srv.paused_at))
      resume_accepting(&srv);
    fd_set readable = srv.read_set; /* select() overwrites the sets it is given */
    fd_set writable = srv.write_set;
    struct timeval timeout = {.tv_sec = 0, .tv_usec = POLL_INTERVAL_MS * 1000};
    if (select(srv.maxfd + 1, &readable, &writable, NULL, &timeout) < 0) {
      if (errno == EINTR)
        continue; /* a stop signal, most likely: the loop's test decides */
      die("select");
    }
    if (FD_ISSET(listener, &readable))
      accept_clients(&srv);
    for (int fd = 0; fd <= srv.maxfd; fd++) {
      struct client *c = srv.clients[fd];
      if (c == NULL)
        continue;
      if (serve_client(c, FD_ISSET(fd, &readable), FD_ISSET(fd, &writable))) {
        watch(&srv, c);
      } else {
        remove_client(&srv, c);
        if (srv.accept_paused)
          resume_accepting(&srv); /* a descriptor has just come free */
      }
    }
  }

  close(listener); /* nobody else gets in */
  for (int fd = 0; fd <= srv.maxfd; fd++)
    if (srv.clients[fd] != NULL) {
      printf("%s closed by server\n", srv.clients[fd]->peer);
      remove_client(&srv, srv.clients[fd]);
    }
  return 0;
}
