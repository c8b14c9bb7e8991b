/*
 * step5_forking/server.c - an upper-case echo server with a child process per client.
 *
 * What this step adds: the seed's ForkingTCPServer. The parent only accepts: for each
 * client it fork()s a child that runs step 2's session loop and then _exit()s. Each side
 * closes the socket it does not use (the parent the client, the child the listener).
 * The parent waits in poll() with a timeout, the poll interval, and reaps finished
 * children on every tick, as socketserver's service_actions() does, so no zombie outlives
 * its client by more than that. --max-children caps the children: at the cap the parent
 * stops accepting until one ends. On SIGINT or SIGTERM it stops accepting, passes
 * SIGTERM on to its children, reaps them all (killing any left after 5 s) and exits.
 *
 * How to see it: `make step5`. Three clients talk at once, and `ps` shows the server
 * with one child per client; when they hang up, the children are gone, zombies too.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { BUFFER_SIZE = 16384 }; /* a 16 KiB message in one recv, not sixteen */
enum { PEER_NAME_SIZE = INET6_ADDRSTRLEN + 8 }; /* "IP:PORT" */
enum { POLL_INTERVAL_MS = 500 };                /* serve_forever's poll_interval=0.5 */
enum { STOP_GRACE_MS = 5000 };                  /* at a stop, children get this long */
enum { DEFAULT_MAX_CHILDREN = 40, MAX_CHILDREN_LIMIT = 100000 };

struct options {
  const char *host;
  const char *port;
  long max_children;
};

static const char usage_text[] =
    "usage: %s [--host HOST] [--port PORT] [--max-children N]\n"
    "\n"
    "Upper-case echo server, a child process per client.\n"
    "\n"
    "  -H, --host HOST       address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT       port to listen on, 0 picks a free one (default 9999)\n"
    "      --max-children N  serve at most N clients at once, 1 to 100000 (default 40)\n"
    "  -h, --help            print this help and exit\n";

/* Set by SIGINT/SIGTERM; the loops below check it whenever a call returns EINTR. */
static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int signo) {
  (void)signo;
  stop_requested = 1;
}

/*
 * Nothing to do here, on purpose. The reaping happens in the loop, as socketserver's
 * service_actions() does it: a handler runs in the middle of whatever the parent was
 * doing, so it could not safely update the table of children (nor printf). Catching
 * SIGCHLD still helps: its arrival interrupts the parent's poll(), so a child that ends
 * is reaped at once instead of at the next tick. Left at its default, SIGCHLD is
 * ignored and interrupts nothing.
 */
static void on_child_exit(int signo) {
  (void)signo;
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

static long parse_max_children(const char *text, const char *program) {
  char *end;
  errno = 0;
  long n = strtol(text, &end, 10); /* which takes " 5" and "+5": hence isdigit */
  if (errno != 0 || !isdigit((unsigned char)text[0]) || *end != '\0' || n < 1 ||
      n > MAX_CHILDREN_LIMIT) {
    fprintf(stderr, "%s: bad --max-children: %s\n", program, text);
    usage(stderr, program, 2);
  }
  return n;
}

static struct options parse_options(int argc, char **argv) {
  static const struct option long_options[] = {
      {"host", required_argument, NULL, 'H'},
      {"port", required_argument, NULL, 'p'},
      {"max-children", required_argument, NULL, 'm'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct options opts = {.host = "127.0.0.1", .port = "9999"};
  opts.max_children = DEFAULT_MAX_CHILDREN;
  int c;
  while ((c = getopt_long(argc, argv, "H:p:h", long_options, NULL)) != -1) {
    switch (c) {
    case 'H':
      opts.host = optarg;
      break;
    case 'p':
      opts.port = parse_port(optarg, argv[0]);
      break;
    case 'm':
      opts.max_children = parse_max_children(optarg, argv[0]);
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
  action.sa_handler = on_child_exit;
  action.sa_flags = SA_NOCLDSTOP; /* only an exit matters, not a stop */
  if (sigaction(SIGCHLD, &action, NULL) < 0)
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
 * send() may write only part of the buffer, or be interrupted: loop until all of it
 * is gone. MSG_NOSIGNAL turns "the client has gone" into EPIPE instead of a SIGPIPE
 * that would kill the whole server.
 */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR && !stop_requested)
        continue;
      return -1;
    }
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
  ssize_t n;
  do
    n = recv(client, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR && !stop_requested);
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

/* The seed's handle() loop: receive and reply until the client closes its end. */
static void handle_client(int client, const char *peer) {
  /* A stop ends the session even when its client never pauses: a busy client keeps
   * recv() from blocking, so no EINTR would ever tell it. */
  while (!stop_requested && echo_once(client, peer))
    continue;
}

/*
 * The children the parent has forked and not yet reaped. Only these pids are ever
 * signalled: a pid stays ours until waitpid() has collected it, so it cannot have
 * been reused by an unrelated process.
 */
struct children {
  pid_t *pids;
  size_t count;
  size_t max;
};

static void forget_child(struct children *children, pid_t pid) {
  for (size_t i = 0; i < children->count; i++) {
    if (children->pids[i] == pid) {
      children->pids[i] = children->pids[--children->count]; /* order does not matter */
      return;
    }
  }
}

/*
 * socketserver's collect_children(): reap every child that has ended, without
 * waiting for the others (WNOHANG). Called on every turn of the loop, at least once
 * per poll interval, so a zombie lasts no longer than that. Every process this
 * server forks is a child in the table, so waitpid(-1) may reap any of them.
 */
static void collect_children(struct children *children) {
  pid_t pid;
  while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
    forget_child(children, pid);
}

static long milliseconds_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/*
 * At shutdown: tell every child to stop and reap them all, so no orphan outlives the
 * server. A child ends its session when SIGTERM interrupts its recv() or send(). The
 * signal is sent again on every tick, because one that lands just before a child
 * enters recv() sets its flag but interrupts nothing; the next one does. A child still
 * there after the grace period is stuck, or stopped (SIGSTOP: a stopped process keeps
 * its SIGTERM pending). SIGKILL ends it either way, and the log says so.
 */
static void stop_children(struct children *children) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (children->count > 0 && milliseconds_since(&start) < STOP_GRACE_MS) {
    for (size_t i = 0; i < children->count; i++)
      kill(children->pids[i], SIGTERM);
    poll(NULL, 0, POLL_INTERVAL_MS); /* a child's exit (SIGCHLD) cuts this short */
    collect_children(children);
  }
  for (size_t i = 0; i < children->count; i++) {
    printf("child %ld did not stop within %d s: killed\n", (long)children->pids[i],
           STOP_GRACE_MS / 1000);
    kill(children->pids[i], SIGKILL);
  }
  while (children->count > 0) { /* SIGKILL always ends a child: wait for each */
    pid_t pid = waitpid(-1, NULL, 0);
    if (pid < 0 && errno != EINTR)
      die("waitpid");
    if (pid > 0)
      forget_child(children, pid);
  }
}

/*
 * The child's whole life: it closes its copy of the listening socket (only the parent
 * accepts), runs step 2's session, and ends with _exit(), never returning into the
 * parent's loop. _exit() skips the atexit and stdio clean-up that belong to the
 * parent; with line-buffered output and every log line ending in a newline, the child
 * has nothing unprinted to lose, and nothing it inherited is printed twice.
 */
static void serve_in_child(int listener, int client, const char *peer) {
  close(listener); /* child closes the listening socket */
  handle_client(client, peer);
  close(client);
  _exit(0);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* one log line at a time, even into a pipe */
  struct options opts = parse_options(argc, argv);
  install_signal_handlers();
  int listener = open_listener(&opts);
  announce(listener);

  struct children children = {.max = (size_t)opts.max_children};
  children.pids = calloc(children.max, sizeof *children.pids);
  if (children.pids == NULL)
    die("calloc");

  while (!stop_requested) {
    collect_children(&children); /* socketserver's service_actions() */
    /*
     * Wait for a client, a child's exit or a stop signal, but never longer than the
     * poll interval, so reaping happens even when no one connects. At the cap the
     * listener is left out (poll ignores a negative fd): new clients wait in the
     * kernel's backlog, and the wait ends when a child does. Python blocks in
     * waitpid() here; poll() also wakes for a stop signal, and its timeout bounds
     * the case of a signal arriving just before the wait begins.
     */
    struct pollfd wait_for = {.fd = children.count < children.max ? listener : -1,
                              .events = POLLIN};
    int ready = poll(&wait_for, 1, POLL_INTERVAL_MS);
    if (ready < 0 && errno != EINTR)
      die("poll");
    if (ready <= 0 || stop_requested)
      continue;

    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int client = accept(listener, (struct sockaddr *)&addr, &len);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
        die("accept");
      /* Out of descriptors or memory: the client stays in the backlog. Retrying at once
       * would spin, since poll() keeps saying it is there; rest one poll interval, in
       * which finished children give their descriptors back. */
      fprintf(stderr, "accept: %s (retrying in a poll interval)\n", strerror(errno));
      poll(NULL, 0, POLL_INTERVAL_MS);
      continue;
    }
    char peer[PEER_NAME_SIZE];
    format_address((struct sockaddr *)&addr, peer, sizeof peer);
    printf("%s connected\n", peer);
    disable_nagle(client);
    pid_t pid = fork();
    if (pid == 0)
      serve_in_child(listener, client, peer); /* does not return */
    if (pid < 0) /* this client cannot be served; the others can */
      fprintf(stderr, "%s fork: %s\n", peer, strerror(errno));
    else
      children.pids[children.count++] = pid;
    close(client); /* parent closes the connected socket: the child owns it now */
  }

  close(listener); /* stop accepting: new clients are refused from here on */
  stop_children(&children);
  free(children.pids);
  return 0;
}
