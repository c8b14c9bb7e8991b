/*
 * step4_threading/server.c - an upper-case echo server with a thread per client.
 *
 * What this step adds: seed 000's ThreadingTCPServer. The accept loop waits in poll()
 * with a timeout (--poll-interval, 0.5 s as in serve_forever) so it notices a stop
 * request; each client it accepts gets a thread, named Thread-1, Thread-2, ... in accept
 * order, that runs step 2's session loop. A registry of the running sessions lets the
 * server join finished threads as it goes and, on SIGINT/SIGTERM, close every client and
 * join every thread before it exits: socketserver's block_on_close.
 *
 * How to see it: `make step4`. Three clients talk at once, the log says which thread
 * serves each, and /proc shows one thread per client next to the main one.
 */
/*
 * _GNU_SOURCE instead of step 2's _POSIX_C_SOURCE: pthread_setname_np(), which names the
 * threads for ps and /proc, is a GNU extension. _GNU_SOURCE includes POSIX.1-2008.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER_SIZE = 16384 }; /* a 16 KiB message in one recv, not sixteen */
enum { PEER_NAME_SIZE = INET6_ADDRSTRLEN + 8 }; /* "IP:PORT" */
enum { THREAD_NAME_SIZE = 16 }; /* the kernel keeps 15 characters of a thread's name */

struct options {
  const char *host;
  const char *port;
  int poll_ms; /* --poll-interval, in milliseconds for poll() */
};

static const char usage_text[] =
    "usage: %s [--host HOST] [--port PORT] [--poll-interval SECONDS]\n"
    "\n"
    "Upper-case echo server, a thread per client, each until it hangs up.\n"
    "\n"
    "  -H, --host HOST              address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT              port to listen on, 0 picks a free one (default 9999)\n"
    "      --poll-interval SECONDS  how often the accept loop looks for a stop request,\n"
    "                               0.001 to 3600 (default 0.5)\n"
    "  -h, --help                   print this help and exit\n";

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

static int parse_poll_interval(const char *text, const char *program) {
  char *end;
  errno = 0;
  double seconds = strtod(text, &end); /* which takes hex, "inf" and " 1": digits only */
  if (errno != 0 || !isdigit((unsigned char)text[0]) || text[strspn(text, "0123456789.")] != '\0' ||
      *end != '\0' || !(seconds >= 0.001 && seconds <= 3600)) {
    fprintf(stderr, "%s: bad poll interval: %s\n", program, text);
    usage(stderr, program, 2);
  }
  return (int)(seconds * 1000 + 0.5);
}

static struct options parse_options(int argc, char **argv) {
  static const struct option long_options[] = {
      {"host", required_argument, NULL, 'H'},
      {"port", required_argument, NULL, 'p'},
      {"poll-interval", required_argument, NULL, 'i'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  struct options opts = {.host = "127.0.0.1", .port = "9999", .poll_ms = 500};
  int c;
  while ((c = getopt_long(argc, argv, "H:p:h", long_options, NULL)) != -1) {
    switch (c) {
    case 'H':
      opts.host = optarg;
      break;
    case 'p':
      opts.port = parse_port(optarg, argv[0]);
      break;
    case 'i':
      opts.poll_ms = parse_poll_interval(optarg, argv[0]);
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
  while (echo_once(client, peer))
    continue;
}

/*
 * One client and the thread that serves it. The accept loop allocates it on the heap:
 * a variable of the loop would be overwritten by the next client while the thread still
 * reads it. The accept loop puts it in the registry and is the only one to unlink, join
 * and free it; the thread only closes its client and marks itself finished.
 */
struct session {
  pthread_t thread;
  int client;                  /* -1 once the thread has closed it */
  int finished;                /* the thread's last word, under registry_lock */
  char name[THREAD_NAME_SIZE]; /* "Thread-N" */
  char speaker[THREAD_NAME_SIZE + 2 + PEER_NAME_SIZE]; /* "Thread-N: IP:PORT", for the log */
  struct session *next;
};

/* The running sessions. `client` and `finished` change under the lock; the list itself
 * is only ever touched by the main thread. */
static struct session *sessions = NULL;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * A session's thread: step 2's session loop, with the thread's name on every log line.
 * SIGINT and SIGTERM are blocked here, so its recv and send never return EINTR: the
 * main thread ends a session by shutting its socket down instead.
 */
static void *serve_session(void *arg) {
  struct session *session = arg;
  pthread_setname_np(pthread_self(), session->name); /* what ps -L and /proc show */
  printf("%s connected\n", session->speaker);
  handle_client(session->client, session->speaker);
  pthread_mutex_lock(&registry_lock);
  close(session->client); /* under the lock: the main thread may be shutting it down */
  session->client = -1;
  session->finished = 1;
  pthread_mutex_unlock(&registry_lock);
  return NULL;
}

/*
 * The threads are joinable, not detached: at shutdown the main thread must be able to
 * wait for every one (a detached thread still running at exit is valgrind's "possibly
 * lost", socketserver's bpo-31233). But a joinable thread that is never joined keeps its
 * stack, so the registry must not grow with every client ever served (bpo-37193): once
 * per poll interval the main thread joins the finished ones and drops them. Joining
 * under the lock is safe: a finished thread has nothing left to do but return.
 */
static void reap_sessions(void) {
  pthread_mutex_lock(&registry_lock);
  struct session **link = &sessions;
  while (*link != NULL) {
    struct session *session = *link;
    if (session->finished) {
      *link = session->next;
      pthread_join(session->thread, NULL);
      free(session);
    } else {
      link = &session->next;
    }
  }
  pthread_mutex_unlock(&registry_lock);
}

/*
 * Give the client a thread of its own, named in accept order. The stop signals are
 * blocked while the thread is created, so it inherits a mask without them: only the
 * main thread, the one in poll(), is ever interrupted by SIGINT or SIGTERM.
 */
static void start_session(int client, const char *peer, unsigned long number) {
  struct session *session = calloc(1, sizeof *session);
  if (session == NULL) {
    fprintf(stderr, "%s: out of memory\n", peer);
    close(client);
    return;
  }
  session->client = client;
  snprintf(session->name, sizeof session->name, "Thread-%lu", number);
  snprintf(session->speaker, sizeof session->speaker, "%s: %s", session->name, peer);
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  int rc = pthread_create(&session->thread, NULL, serve_session, session);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (rc != 0) { /* pthread_create returns the error; it does not set errno */
    fprintf(stderr, "%s: cannot start a thread: %s\n", session->speaker, strerror(rc));
    close(client);
    free(session);
    return;
  }
  pthread_mutex_lock(&registry_lock);
  session->next = sessions;
  sessions = session;
  pthread_mutex_unlock(&registry_lock);
}

/*
 * Stopping: shut every client's socket down, which wakes a thread blocked in recv (it
 * returns 0) or send (EPIPE) and tells the client, then wait for every thread. The joins
 * happen outside the lock, which a thread needs to finish.
 */
static void stop_sessions(void) {
  pthread_mutex_lock(&registry_lock);
  for (struct session *session = sessions; session != NULL; session = session->next)
    if (session->client >= 0)
      shutdown(session->client, SHUT_RDWR);
  pthread_mutex_unlock(&registry_lock);
  while (sessions != NULL) {
    struct session *session = sessions;
    sessions = session->next;
    pthread_join(session->thread, NULL);
    free(session);
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* one log line at a time, even into a pipe */
  struct options opts = parse_options(argc, argv);
  install_signal_handlers();
  int listener = open_listener(&opts);
  announce(listener);
  unsigned long threads_started = 0; /* only the main thread counts: no lock needed */

  while (!stop_requested) {
    reap_sessions();
    /* Wait for a client, but at most one poll interval: a stop signal that arrives just
     * before poll() starts waiting is seen when it times out. */
    struct pollfd wanted = {.fd = listener, .events = POLLIN};
    int ready = poll(&wanted, 1, opts.poll_ms);
    if (ready < 0 && errno != EINTR)
      die("poll");
    if (ready <= 0)
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
       * which finished sessions give their descriptors back. */
      fprintf(stderr, "accept: %s (retrying in a poll interval)\n", strerror(errno));
      poll(NULL, 0, opts.poll_ms);
      continue;
    }
    char peer[PEER_NAME_SIZE];
    format_address((struct sockaddr *)&addr, peer, sizeof peer);
    disable_nagle(client);
    start_session(client, peer, ++threads_started);
  }

  close(listener); /* stop accepting first: clients still in the backlog are refused */
  stop_sessions();
  return 0;
}
