/*
 * step6_socketserver/socketserver.c - Python's socketserver module, in C.
 *
 * Read it next to CPython's Lib/socketserver.py: the sections follow its classes, and
 * each function says which Python method it is. Where we do better than Python on
 * purpose (README.md lists it), a comment says why.
 */
#define _GNU_SOURCE /* pthread_setname_np for "Thread-N"; MSG_DONTWAIT for datagram replies */

#include "socketserver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { ACCEPT_BACKOFF_MS = 100 }; /* how long to leave the listener alone after EMFILE */
enum { CHILD_POLL_MS = 10 };     /* forking: how often a wait for children looks again */
enum { CHILD_CONT_MS = 1000 };   /* forking: after SIGCONT, how long before SIGKILL */
enum { WORKER_BACKOFF_MS = 500, WORKER_BACKOFF_MAX_MS = 4000 }; /* pools: fork, pthread_create */

/* One handler thread (threading mode), in the server's registry. */
struct worker {
  struct worker *next;
  struct server *server;
  struct request *request;
  pthread_t thread;
  int connection; /* what server_close cuts (shutdown SHUT_RDWR); -1 once released */
  bool finished;  /* the thread has ended and waits to be joined */
  char name[24];
};

/* The framework's own state, behind s->state: what Python keeps in underscore names. */
struct server_state {
  atomic_int shutdown_request; /* set by server_shutdown, even from a signal handler */
  int wake_pipe[2];            /* self-pipe: a byte here wakes serve_forever at once */
  int children_pipe[2];        /* forking: closing [1] ends the children's reads */
  bool in_child;               /* forking: this process is a child serving one request */
  bool unix_path_bound;        /* server_close removes the path it bound ... */
  dev_t unix_path_dev;         /* ... if it is still the file bind made (a newer server */
  ino_t unix_path_ino;         /*     may have bound the same path after an `rm -f`) */
  int unix_lock_fd;            /* PATH.lock, flock'ed for the server's life */
  _Atomic pid_t owner_pid;     /* the process serving; its forked children differ */
  double accepts_paused_until; /* EMFILE: leave the listener alone until then */
  double starts_paused_until;  /* pools: a worker could not start; no new try until then */
  int failed_starts;           /* ... after so many failures in a row */
  char *packet_buffer;         /* datagrams: max_packet_size bytes for recvmsg */
  size_t packet_buffer_size;
  pthread_mutex_t lock; /* guards the fields below */
  pthread_cond_t changed;
  bool serving;
  pthread_t serving_thread;
  pid_t serving_pid;
  struct worker *workers; /* threading: live threads and finished, unjoined ones */
  size_t worker_count;
  pid_t *active_children; /* forking, prefork: the pids of our children */
  size_t child_count, child_capacity;
  bool stopping; /* threading, pool: the connections are cut; none is taken on */
  /* Prefork: the accept lock the workers share, a file's or a mutex in shared memory. */
  int accept_lock_fd;
  pthread_mutex_t *shared_accept_lock;
  /* Pool. By workers: the mutex they take turns at accept under. By main: the requests
     handed over (a ring of s->workers), the workers waiting for one and not yet given
     one, and a pipe a worker writes to when it becomes idle, which wakes serve_forever. */
  pthread_mutex_t pool_accept_lock;
  pthread_cond_t handed_over;
  struct request **handover;
  size_t handover_first, handover_count, idle_workers;
  int idle_pipe[2];
};

/* Python numbers every thread it creates, in one sequence for the whole process. */
static atomic_ulong thread_counter;
static _Thread_local char thread_name[24];
static _Thread_local struct worker *current_worker; /* threading: this thread's entry */

/* The one server the SIGINT/SIGTERM handlers stop: a signal handler has no argument. */
static struct server *_Atomic signal_target;
static struct sigaction saved_actions[2]; /* SIGINT's and SIGTERM's before we took them */
static pid_t signals_taken_by;            /* the process that installed our handlers */
static atomic_int live_servers;           /* the handlers go when the last server does */
static atomic_int stop_pending;           /* a stop signal came with no server to stop */
static atomic_int stop_signalled;         /* a stop signal came: keep the handlers to the end */
/* A forked child: its connection, which a stop signal shuts down, ending its session. */
static atomic_int child_connection = -1;
static atomic_int child_stop;

static _Thread_local char address_error[2 * PATH_MAX]; /* see server_address_error */

static void reap_children(struct server *s, bool blocking, void (*ended)(struct server *, pid_t, int));
static void end_children(struct server *s);
static int verify_and_process(struct server *s, struct request *req);

/* ---- The classes, as data ----------------------------------------------------------- */

/*
 * Each class's table holds the methods its own body defines, as Python's class statement
 * does; NULL: not defined there. set_class_ops looks every method up along the server's
 * classes in Python's order (its __mro__): the mix-in first, then the socket class, then
 * its bases. So ThreadingUDPServer(ThreadingMixIn, UDPServer) finds ThreadingMixIn's
 * process_request, UDPServer's get_request, TCPServer's server_bind, BaseServer's
 * finish_request.
 */
static const struct server_ops base_server_methods = {
    .server_activate = base_server_server_activate,
    .verify_request = base_server_verify_request,
    .process_request = base_server_process_request,
    .finish_request = base_server_finish_request,
    .shutdown_request = base_server_shutdown_request,
    .close_request = base_server_close_request,
    .handle_error = base_server_handle_error,
    .handle_timeout = base_server_handle_timeout,
    .service_actions = base_server_service_actions,
    .server_close = base_server_server_close,
};

static const struct server_ops tcp_server_methods = {
    .server_bind = tcp_server_server_bind,
    .server_activate = tcp_server_server_activate,
    .get_request = tcp_server_get_request,
    .shutdown_request = tcp_server_shutdown_request,
    .close_request = tcp_server_close_request,
    .server_close = tcp_server_server_close,
    .fileno = tcp_server_fileno,
};

/* UDPServer(TCPServer): no listen(), no accept(), and a request is no connection. */
static const struct server_ops udp_server_methods = {
    .server_activate = base_server_server_activate,
    .get_request = udp_server_get_request,
    .shutdown_request = base_server_shutdown_request,
    .close_request = base_server_close_request,
};

static const struct server_ops threading_mixin_methods = {
    .process_request = threading_mixin_process_request,
    .service_actions = threading_mixin_service_actions,
    .server_close = threading_mixin_server_close,
};

static const struct server_ops forking_mixin_methods = {
    .process_request = forking_mixin_process_request,
    .handle_timeout = forking_mixin_handle_timeout,
    .service_actions = forking_mixin_service_actions,
    .server_close = forking_mixin_server_close,
};

static const struct server_ops prefork_mixin_methods = {
    .server_activate = prefork_mixin_server_activate,
    .service_actions = prefork_mixin_service_actions,
    .server_close = prefork_mixin_server_close,
};

static const struct server_ops thread_pool_mixin_methods = {
    .process_request = thread_pool_mixin_process_request,
    .service_actions = thread_pool_mixin_service_actions,
    .server_close = thread_pool_mixin_server_close,
};

/* The handler base class whose setup and finish fit the socket (NULL in a handler_class
 * means these); BaseRequestHandler's are for a subclass that wants neither. */
static const struct handler_class stream_request_handler = {
    .setup = stream_request_handler_setup,
    .finish = stream_request_handler_finish,
};

static const struct handler_class datagram_request_handler = {
    .setup = datagram_request_handler_setup,
    .finish = datagram_request_handler_finish,
};

enum { CLASS_MRO_LENGTH = 3 }; /* the longest: UDPServer, TCPServer, BaseServer */

/* A socket class: its class attributes, and its __mro__ (the class, then its bases). The
 * Unix classes are TCPServer and UDPServer with another address_family, as in Python. */
struct server_class {
  int address_family, socket_type;
  const struct handler_class *request_handler; /* the fitting handler base class */
  const struct server_ops *mro[CLASS_MRO_LENGTH];
};

static const struct server_class server_classes[] = {
    [SERVER_TCP] = {.address_family = AF_INET,
                    .socket_type = SOCK_STREAM,
                    .request_handler = &stream_request_handler,
                    .mro = {&tcp_server_methods, &base_server_methods}},
    [SERVER_UDP] = {.address_family = AF_INET,
                    .socket_type = SOCK_DGRAM,
                    .request_handler = &datagram_request_handler,
                    .mro = {&udp_server_methods, &tcp_server_methods, &base_server_methods}},
    [SERVER_UNIX_STREAM] = {.address_family = AF_UNIX,
                            .socket_type = SOCK_STREAM,
                            .request_handler = &stream_request_handler,
                            .mro = {&tcp_server_methods, &base_server_methods}},
    [SERVER_UNIX_DGRAM] = {.address_family = AF_UNIX,
                           .socket_type = SOCK_DGRAM,
                           .request_handler = &datagram_request_handler,
                           .mro = {&udp_server_methods, &tcp_server_methods, &base_server_methods}},
};

static const struct server_ops *const mixins[] = {
    [SERVER_SYNC] = NULL, /* no mix-in */
    [SERVER_THREADING] = &threading_mixin_methods,
    [SERVER_FORKING] = &forking_mixin_methods,
    [SERVER_PREFORK] = &prefork_mixin_methods,
    [SERVER_POOL] = &thread_pool_mixin_methods,
};

static const struct server_class *class_of(const struct server *s) {
  return &server_classes[s->kind];
}

/* ---- Small helpers ------------------------------------------------------------------ */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds to poll()'s milliseconds, rounded up: a positive time never becomes 0, which
 * would be "do not wait". Negative means "wait for ever" (SERVER_NO_TIMEOUT): callers
 * with a deadline use ms_until() instead. */
static int to_ms(double seconds) {
  if (seconds < 0)
    return -1;
  double ms = seconds * 1000;
  if (ms >= INT_MAX)
    return INT_MAX;
  int whole = (int)ms;
  return whole < ms ? whole + 1 : whole;
}

/* The milliseconds left until DEADLINE: 0 once it has passed, for time up is time up,
 * never "for ever". */
static int ms_until(double deadline) {
  double left = deadline - now();
  return left > 0 ? to_ms(left) : 0;
}

/* Our pipes, like our sockets, are not inherited by programs the server runs (PEP 446:
 * O_CLOEXEC), and never block: a signal handler's write must not. */
static int open_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC | O_NONBLOCK); }

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* The framework's own descriptors, besides the server socket. */
static void close_pipes(struct server *s) {
  struct server_state *state = s->state;
  close_fd(&state->wake_pipe[0]);
  close_fd(&state->wake_pipe[1]);
  close_fd(&state->children_pipe[0]);
  close_fd(&state->children_pipe[1]);
  close_fd(&state->idle_pipe[0]);
  close_fd(&state->idle_pipe[1]);
  close_fd(&state->unix_lock_fd);
}

/* Numeric "IP:PORT" or the Unix path: never a reverse DNS lookup. */
static void format_address(const struct sockaddr_storage *addr, socklen_t len, char *out) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (addr->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    snprintf(out, SERVER_NAME_SIZE, "%s:%u", ip, ntohs(in->sin_port));
  } else if (addr->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(out, SERVER_NAME_SIZE, "%s:%u", ip, ntohs(in6->sin6_port));
  } else {
    const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
    size_t offset = offsetof(struct sockaddr_un, sun_path);
    if (len > offset && un->sun_path[0] != '\0')
      snprintf(out, SERVER_NAME_SIZE, "%.*s", (int)(len - offset), un->sun_path);
    else
      snprintf(out, SERVER_NAME_SIZE, "unnamed"); /* an unbound client; Python gives '' */
  }
}

static bool is_stream(const struct server *s) { return s->socket_type == SOCK_STREAM; }
static bool is_unix(const struct server *s) { return s->address_family == AF_UNIX; }

/* Fill s->server_address from "HOST:PORT", "[V6]:PORT" or a path. */
static int resolve_address(struct server *s, const char *address) {
  address_error[0] = '\0';
  if (is_unix(s)) {
    struct sockaddr_un *un = (struct sockaddr_un *)&s->server_address;
    if (address[0] == '\0') { /* Linux would bind an abstract name no client can name */
      errno = EINVAL;
      return -1;
    }
    if (strlen(address) >= sizeof un->sun_path) {
      errno = ENAMETOOLONG;
      return -1;
    }
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, address);
    s->server_address_len = sizeof *un;
    return 0;
  }
  char host[SERVER_NAME_SIZE];
  const char *colon = strrchr(address, ':');
  if (colon == NULL || (size_t)(colon - address) >= sizeof host) {
    errno = EINVAL;
    return -1;
  }
  bool bracketed = colon - address >= 2 && address[0] == '[' && colon[-1] == ']'; /* "[V6]" */
  int skip = bracketed ? 1 : 0;
  snprintf(host, sizeof host, "%.*s", (int)(colon - address - 2 * skip), address + skip);
  size_t len = strlen(host);
  if (len >= 2 && host[0] == '[' && host[len - 1] == ']') { /* a host given as "[::1]" */
    memmove(host, host + 1, len - 2);
    host[len - 2] = '\0';
  }
  /* "" would be getaddrinfo's NULL, every interface: an unset $HOST must not expose the
     server. Other brackets are no host's. */
  if (host[0] == '\0' || strpbrk(host, "[]") != NULL) {
    snprintf(address_error, sizeof address_error, "%s",
             host[0] == '\0' ? "empty host" : "brackets inside the host");
    errno = EINVAL;
    return -1;
  }
  struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = s->socket_type};
  struct addrinfo *found;
  int rc = getaddrinfo(host, colon + 1, &hints, &found);
  if (rc != 0) {
    int err = errno;
    snprintf(address_error, sizeof address_error, "cannot resolve %s: %s", host,
             rc == EAI_SYSTEM ? strerror(err) : gai_strerror(rc));
    errno = rc == EAI_SYSTEM ? err : rc == EAI_NONAME ? EADDRNOTAVAIL : EINVAL;
    return -1;
  }
  struct addrinfo *use = found; /* IPv4 first, as Python's AF_INET; IPv6 when only that */
  for (struct addrinfo *a = found; a != NULL; a = a->ai_next)
    if (a->ai_family == AF_INET && use->ai_family != AF_INET)
      use = a;
  memcpy(&s->server_address, use->ai_addr, use->ai_addrlen);
  s->server_address_len = use->ai_addrlen;
  s->address_family = use->ai_family;
  freeaddrinfo(found);
  return 0;
}

const char *server_address_error(void) { return address_error; }

static void set_error(struct request *req, const char *what, int err) {
  snprintf(req->error, sizeof req->error, "%s: %s", what, strerror(err));
}

/*
 * Wait until fd is ready for EVENTS, the server stops (stop_fd readable: returns 0) or
 * timeout_ms passes (-1, ETIMEDOUT). Signals do not cut the wait short (EINTR retried).
 */
static int wait_io(int fd, short events, int stop_fd, int timeout_ms) {
  if (stop_fd < 0 && timeout_ms < 0)
    return 1; /* nothing to watch: let the blocking call itself wait */
  double deadline = now() + timeout_ms / 1000.0;
  for (;;) {
    struct pollfd fds[2] = {{.fd = fd, .events = events}, {.fd = stop_fd, .events = POLLIN}};
    int n = poll(fds, stop_fd < 0 ? 1 : 2, timeout_ms < 0 ? -1 : ms_until(deadline));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    return stop_fd >= 0 && fds[1].revents ? 0 : 1;
  }
}

/* ---- Handler I/O: rfile and wfile --------------------------------------------------- */

/* One recv() of at most SIZE bytes into INTO, once data is there. Returns its size, 0 at
 * end of stream or when the server is stopping, -1 on error (ETIMEDOUT after the
 * handler's timeout). */
static ssize_t rfile_recv(struct rfile *rf, void *into, size_t size) {
  if (rf->fd < 0 && rf->data != NULL)
    return 0; /* a datagram: the packet is all there is */
  if (rf->fd < 0) {
    errno = EBADF; /* BaseRequestHandler's setup made no rfile */
    return -1;
  }
  int ready = wait_io(rf->fd, POLLIN, rf->stop_fd, rf->timeout_ms);
  if (ready <= 0)
    return ready; /* a stopping server reads as end of stream */
  ssize_t n;
  do
    n = recv(rf->fd, into, size, 0);
  while (n < 0 && errno == EINTR);
  return n;
}

/* Refill the empty buffer with one recv(); returns as rfile_recv does. */
static ssize_t rfile_fill(struct rfile *rf) {
  ssize_t n = rfile_recv(rf, rf->buffer, sizeof rf->buffer);
  if (n > 0) {
    rf->data = rf->buffer;
    rf->pos = 0;
    rf->len = (size_t)n;
  }
  return n;
}

ssize_t rfile_read1(struct rfile *rf, void *buf, size_t n) {
  /* As Python's read1(): with nothing buffered, a caller who asks for at least a
     buffer's worth gets one recv() straight into its own buffer, not capped at ours. */
  if (rf->pos == rf->len && n >= sizeof rf->buffer)
    return rfile_recv(rf, buf, n);
  if (rf->pos == rf->len) {
    ssize_t got = rfile_fill(rf);
    if (got <= 0)
      return got;
  }
  size_t take = rf->len - rf->pos < n ? rf->len - rf->pos : n;
  memcpy(buf, rf->data + rf->pos, take);
  rf->pos += take;
  return (ssize_t)take;
}

ssize_t rfile_read(struct rfile *rf, void *buf, size_t n) {
  size_t total = 0;
  while (total < n) {
    ssize_t got = rfile_read1(rf, (char *)buf + total, n - total);
    if (got < 0)
      return -1;
    if (got == 0)
      break;
    total += (size_t)got;
  }
  return (ssize_t)total;
}

ssize_t rfile_readline(struct rfile *rf, char *buf, size_t size) {
  size_t total = 0;
  while (total + 1 < size && (total == 0 || buf[total - 1] != '\n')) {
    if (rf->pos == rf->len) {
      ssize_t got = rfile_fill(rf);
      if (got < 0)
        return -1;
      if (got == 0)
        break;
    }
    buf[total++] = rf->data[rf->pos++];
  }
  if (size > 0)
    buf[total] = '\0';
  return (ssize_t)total;
}

/* A datagram reply grows in memory until finish sends it. */
static ssize_t wfile_append(struct wfile *wf, const void *buf, size_t n) {
  if (n == 0)
    return 0; /* nothing to add, and memcpy may not be handed a reply not yet allocated */
  if (wf->len + n > wf->cap) {
    size_t cap = wf->cap ? wf->cap : 256;
    while (cap < wf->len + n)
      cap *= 2;
    char *data = realloc(wf->data, cap);
    if (data == NULL)
      return -1;
    wf->data = data;
    wf->cap = cap;
  }
  memcpy(wf->data + wf->len, buf, n);
  wf->len += n;
  return (ssize_t)n;
}

ssize_t wfile_write(struct wfile *wf, const void *buf, size_t n) {
  if (wf->collect)
    return wfile_append(wf, buf, n);
  /* With a stop or a timeout to watch, send what the socket takes now and wait only when
     it is full: a reply that fits costs no poll(), and a slow reader cannot hold a send
     past either. Without, a blocking send() does the waiting. */
  bool watched = wf->stop_fd >= 0 || wf->timeout_ms >= 0;
  const char *p = buf;
  size_t left = n;
  while (left > 0) {
    /* MSG_NOSIGNAL: a client that has gone is EPIPE, not a SIGPIPE that kills us. */
    ssize_t sent = send(wf->fd, p, left, MSG_NOSIGNAL | (watched ? MSG_DONTWAIT : 0));
    if (sent < 0 && watched && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int ready = wait_io(wf->fd, POLLOUT, wf->stop_fd, wf->timeout_ms);
      if (ready == 0)
        errno = EPIPE; /* the server is stopping: the client will not get the rest */
      if (ready <= 0)
        return -1;
      continue;
    }
    if (sent < 0 && errno == EINTR)
      continue;
    if (sent < 0)
      return -1;
    p += sent;
    left -= (size_t)sent;
  }
  return (ssize_t)n;
}

/* ---- Request handlers --------------------------------------------------------------- */

int base_request_handler_setup(struct handler *h) {
  (void)h;
  return 0;
}

void base_request_handler_finish(struct handler *h) { (void)h; }

/*
 * What ends a blocked read or write when the server stops. A sync server's handler runs
 * inside serve_forever, so it watches the self-pipe; a forked child watches the pipe the
 * parent closes in server_close. Threads are cut off by shutdown(SHUT_RDWR) instead.
 */
static int handler_stop_fd(const struct server *s) {
  struct server_state *state = s->state;
  if (state->in_child)
    return state->children_pipe[0];
  return s->mode == SERVER_SYNC ? state->wake_pipe[0] : -1;
}

int stream_request_handler_setup(struct handler *h) {
  const struct handler_class *hc = h->server->handler;
  if (hc->disable_nagle_algorithm && !is_unix(h->server)) {
    int on = 1;
    setsockopt(h->connection, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  h->rfile.fd = h->wfile.fd = h->connection;
  h->rfile.stop_fd = h->wfile.stop_fd = handler_stop_fd(h->server);
  h->rfile.timeout_ms = h->wfile.timeout_ms = hc->timeout > 0 ? to_ms(hc->timeout) : -1;
  return 0;
}

void stream_request_handler_finish(struct handler *h) { (void)h; }

int datagram_request_handler_setup(struct handler *h) {
  h->rfile.data = h->packet;
  h->rfile.len = h->packet_len;
  h->wfile.collect = true;
  return 0;
}

/*
 * Python sends the reply always, even empty, and so do we. Better than Python: a reply
 * that cannot go out (a Unix client that has gone, gh-152024) is logged, and the server
 * goes on; MSG_DONTWAIT keeps a client that does not read from blocking the server.
 */
void datagram_request_handler_finish(struct handler *h) {
  struct request *req = h->request;
  ssize_t n;
  do
    n = sendto(h->connection, h->wfile.data ? h->wfile.data : "", h->wfile.len,
               MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&req->client_address,
               req->client_address_len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    fprintf(stderr, "cannot reply to %s: %s\n", h->client_address, strerror(errno));
}

/* The defaults of a handler_class: StreamRequestHandler's or DatagramRequestHandler's,
 * whichever the server's class names. */
int request_handler_setup(struct handler *h) {
  return class_of(h->server)->request_handler->setup(h);
}

void request_handler_finish(struct handler *h) { class_of(h->server)->request_handler->finish(h); }

/* ---- BaseServer --------------------------------------------------------------------- */

int base_server_server_activate(struct server *s) {
  (void)s;
  return 0;
}

bool base_server_verify_request(struct server *s, struct request *req) {
  (void)s;
  (void)req;
  return true;
}

/* finish_request: the handler's constructor, setup(); try: handle() finally: finish().
 * The instance is the class's instance_size (a subclass's struct, struct handler first),
 * zeroed, so a subclass's own fields start as Python's class attributes would: unset. */
int base_server_finish_request(struct server *s, struct request *req) {
  const struct handler_class *hc = s->handler;
  size_t size = hc->instance_size > sizeof(struct handler) ? hc->instance_size
                                                           : sizeof(struct handler);
  struct handler *h = calloc(1, size);
  if (h == NULL) {
    set_error(req, "cannot create the handler", errno);
    return HANDLER_ERROR;
  }
  *h = (struct handler){
      .server = s,
      .request = req,
      .client_address = req->client_name,
      .connection = req->fd,
      .packet = req->packet,
      .packet_len = req->packet_len,
      .rfile = {.fd = -1, .stop_fd = -1, .timeout_ms = -1},
      .wfile = {.fd = -1, .stop_fd = -1, .timeout_ms = -1},
      .user = s->user,
  };
  /* The class's methods; where it has none, the defaults. */
  int (*setup)(struct handler *) = hc->setup ? hc->setup : request_handler_setup;
  void (*finish)(struct handler *) = hc->finish ? hc->finish : request_handler_finish;
  int status = HANDLER_ERROR;
  errno = 0;
  if (setup(h) != 0) {
    set_error(req, "setup failed", errno); /* as in Python: no finish() when setup() failed */
  } else {
    status = hc->handle ? hc->handle(h) : HANDLER_OK;
    if (status == HANDLER_ERROR && req->error[0] == '\0')
      set_error(req, "handler failed", errno); /* the errno of the call that failed it */
    finish(h);
  }
  free(h->wfile.data); /* the framework's buffer: an override of finish cannot leak it */
  free(h);
  return status;
}

/* Sync: the request is handled here, in the serving thread. An error skips
 * shutdown_request; handle_request_noblock does it after handle_error. */
int base_server_process_request(struct server *s, struct request *req) {
  int status = s->ops.finish_request(s, req);
  if (status != HANDLER_OK)
    return status;
  s->ops.shutdown_request(s, req);
  return HANDLER_OK;
}

void base_server_shutdown_request(struct server *s, struct request *req) {
  s->ops.close_request(s, req);
}

/* In C a request is memory too: close_request is where it is released. */
void base_server_close_request(struct server *s, struct request *req) {
  (void)s;
  free(req);
}

/* Python's 40 dashes on stderr; where Python prints the traceback, we print why. */
void base_server_handle_error(struct server *s, struct request *req) {
  (void)s;
  flockfile(stderr); /* one block, not interleaved with another thread's */
  fprintf(stderr,
          "----------------------------------------\n"
          "Error occurred during processing of request from %s\n%s\n"
          "----------------------------------------\n",
          req->client_name, req->error[0] ? req->error : "handler failed");
  funlockfile(stderr);
}

void base_server_handle_timeout(struct server *s) { (void)s; }
void base_server_service_actions(struct server *s) { (void)s; }
void base_server_server_close(struct server *s) { (void)s; }

/* The part of _handle_request_noblock after get_request; a prefork worker's too. */
static int verify_and_process(struct server *s, struct request *req) {
  if (!s->ops.verify_request(s, req)) {
    s->ops.shutdown_request(s, req);
    return 0;
  }
  int status = s->ops.process_request(s, req);
  if (status == HANDLER_ERROR)
    s->ops.handle_error(s, req);
  if (status != HANDLER_OK)
    s->ops.shutdown_request(s, req);
  return status == HANDLER_FATAL ? HANDLER_FATAL : 0;
}

/*
 * _handle_request_noblock: every request get_request returns reaches shutdown_request
 * exactly once in the process that owns it; here on refusal (bpo-26309) and on error.
 */
int base_server_handle_request_noblock(struct server *s) {
  struct request *req = s->ops.get_request(s);
  if (req == NULL) {
    /* Python ignores this, and spins: the connection stays in the backlog. We log it
       and leave the listener alone for a moment. */
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      fprintf(stderr, "accept: %s (pausing for %d ms)\n", strerror(errno), ACCEPT_BACKOFF_MS);
      s->state->accepts_paused_until = now() + ACCEPT_BACKOFF_MS / 1000.0;
    }
    return 0;
  }
  return verify_and_process(s, req);
}

/* Whether the serving thread accepts now: not in a prefork parent nor where pool workers
 * accept; where the pool's main thread accepts, only while a worker is idle. The pool's
 * idle pipe is drained first, so a worker that becomes idle after the look writes a byte
 * the wait sees. */
static bool serving_thread_accepts(struct server *s) {
  struct server_state *state = s->state;
  if (s->mode == SERVER_PREFORK || (s->mode == SERVER_POOL && s->accept_by == ACCEPT_BY_WORKERS))
    return false;
  if (s->mode != SERVER_POOL)
    return true;
  char drain[64];
  while (read(state->idle_pipe[0], drain, sizeof drain) > 0)
    continue;
  pthread_mutex_lock(&state->lock);
  bool idle = state->idle_workers > 0;
  pthread_mutex_unlock(&state->lock);
  return idle;
}

/*
 * Wait for a request, or (watch_pipe) for a stop request on the self-pipe, at most
 * timeout_ms. After EMFILE the listener is left out until the pause is over; so is it
 * while the serving thread does not accept, and then a pool worker becoming idle
 * (fds[2]) ends the wait too.
 */
static int wait_for_request(struct server *s, struct pollfd fds[3], int timeout_ms,
                            bool watch_pipe) {
  double pause = s->state->accepts_paused_until - now();
  bool paused = pause > 0;
  if (paused && (timeout_ms < 0 || to_ms(pause) < timeout_ms))
    timeout_ms = to_ms(pause);
  bool accepting = serving_thread_accepts(s);
  fds[0] = (struct pollfd){.fd = watch_pipe ? s->state->wake_pipe[0] : -1, .events = POLLIN};
  fds[1] = (struct pollfd){.fd = paused || !accepting ? -1 : s->ops.fileno(s), .events = POLLIN};
  fds[2] = (struct pollfd){.fd = s->state->idle_pipe[0], .events = POLLIN};
  int n = poll(fds, 3, timeout_ms); /* poll() ignores negative fds */
  if (n < 0)
    fds[0].revents = fds[1].revents = fds[2].revents = 0; /* EINTR: the caller looks at its flag */
  return n;
}

int server_serve_forever(struct server *s, double poll_interval) {
  struct server_state *state = s->state;
  pthread_mutex_lock(&state->lock);
  state->serving = true;
  state->serving_thread = pthread_self();
  state->serving_pid = getpid();
  pthread_mutex_unlock(&state->lock);
  atomic_store(&state->owner_pid, getpid());
  int status = 0;
  if (s->mode == SERVER_PREFORK || s->mode == SERVER_POOL)
    s->ops.service_actions(s); /* the workers start: the pool exists before any client */
  while (!atomic_load(&state->shutdown_request)) {
    struct pollfd fds[3];
    wait_for_request(s, fds, to_ms(poll_interval), true);
    if (fds[0].revents) /* the self-pipe: a stop, maybe from a forked child */
      atomic_store(&state->shutdown_request, 1);
    if (atomic_load(&state->shutdown_request))
      break; /* bpo-35017: nothing is accepted after shutdown() */
    if (fds[1].revents)
      status = base_server_handle_request_noblock(s);
    if (status == HANDLER_FATAL)
      break;
    s->ops.service_actions(s);
  }
  char drain[64];
  while (read(state->wake_pipe[0], drain, sizeof drain) > 0)
    continue;
  atomic_store(&state->shutdown_request, 0);
  pthread_mutex_lock(&state->lock);
  state->serving = false;
  pthread_cond_broadcast(&state->changed);
  pthread_mutex_unlock(&state->lock);
  return status;
}

int server_handle_request(struct server *s) {
  double deadline = now() + s->timeout;
  for (;;) {
    double left = s->timeout < 0 ? -1 : deadline - now();
    if (s->timeout >= 0 && left < 0) {
      s->ops.handle_timeout(s);
      return 0;
    }
    struct pollfd fds[3];
    if (wait_for_request(s, fds, to_ms(left), false) > 0 && fds[1].revents)
      return base_server_handle_request_noblock(s);
  }
}

void server_shutdown_from_signal(struct server *s) {
  int saved_errno = errno;
  atomic_store(&s->state->shutdown_request, 1);
  ssize_t n = write(s->state->wake_pipe[1], "x", 1); /* full pipe: a byte is there already */
  (void)n;
  errno = saved_errno;
}

void server_shutdown(struct server *s) {
  struct server_state *state = s->state;
  server_shutdown_from_signal(s);
  pthread_mutex_lock(&state->lock);
  /* Python deadlocks when the serving thread calls shutdown(); we only ask. */
  while (state->serving && state->serving_pid == getpid() &&
         !pthread_equal(state->serving_thread, pthread_self()))
    pthread_cond_wait(&state->changed, &state->lock);
  pthread_mutex_unlock(&state->lock);
}

/*
 * SIGINT, SIGTERM. In the serving process: stop the target server, or, before there is
 * one, keep the stop for it. In a forked child (the parent's handler is inherited): end
 * the child's own session by shutting its connection down, never the parent's wake pipe,
 * which would stop the whole server for one stuck session.
 */
static void on_stop_signal(int signo) {
  (void)signo;
  int saved_errno = errno;
  struct server *s = atomic_load(&signal_target);
  if (s != NULL && getpid() != atomic_load(&s->state->owner_pid)) {
    atomic_store(&child_stop, 1);
    int fd = atomic_load(&child_connection);
    if (fd >= 0)
      shutdown(fd, SHUT_RDWR); /* async-signal-safe; the handler reads end of stream */
  } else {
    atomic_store(&stop_signalled, 1);
    if (s != NULL) {
      server_shutdown_from_signal(s);
    } else {
      /* Set first, then look again: server_shutdown_on_signals sets the target, then
         takes the pending stop, so one of us two hands it over. */
      atomic_store(&stop_pending, 1);
      s = atomic_load(&signal_target);
      if (s != NULL && atomic_exchange(&stop_pending, 0))
        server_shutdown_from_signal(s);
    }
  }
  errno = saved_errno;
}

/*
 * server_new: the process's signals are the framework's from its first server on.
 * SIGPIPE is ignored for good, as Python does at start: a log line into a closed stdout
 * or a reply to a gone client is then EPIPE, an error to handle, not the death of the
 * service (and of a Unix socket's clean-up). SIGINT and SIGTERM are caught before bind,
 * so a stop that comes while binding is kept, not fatal. No SA_RESTART: poll() returns
 * EINTR either way; the self-pipe does the waking.
 */
static int take_signals(void) {
  atomic_fetch_add(&live_servers, 1);
  if (signals_taken_by == getpid())
    return 0;
  struct sigaction action = {.sa_handler = on_stop_signal};
  sigemptyset(&action.sa_mask);
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || sigaction(SIGINT, &action, &saved_actions[0]) < 0 ||
      sigaction(SIGTERM, &action, &saved_actions[1]) < 0)
    return -1;
  signals_taken_by = getpid();
  return 0;
}

int server_shutdown_on_signals(struct server *s) {
  if (signals_taken_by != getpid() && take_signals() < 0)
    return -1;
  atomic_store(&signal_target, s);
  if (atomic_exchange(&stop_pending, 0))
    server_shutdown_from_signal(s); /* it came before the target was named */
  return 0;
}

/*
 * The end of server_free: the signals do again what they did before, once the last
 * server has gone, unless a stop signal has come: the process is then on its way out,
 * and a second SIGTERM during the clean-up or the exit must not kill it with the
 * default action.
 */
static void release_signals(struct server *s) {
  struct server *expected = s;
  atomic_compare_exchange_strong(&signal_target, &expected, NULL);
  if (atomic_fetch_sub(&live_servers, 1) != 1 || signals_taken_by != getpid() ||
      atomic_load(&stop_signalled))
    return;
  sigaction(SIGINT, &saved_actions[0], NULL);
  sigaction(SIGTERM, &saved_actions[1], NULL);
  signals_taken_by = 0;
}

/* ---- TCPServer, UnixStreamServer ---------------------------------------------------- */

/*
 * A Unix path in use: is it a socket a dead server left behind? Nobody listening there
 * (ECONNREFUSED) says so; a live server answers, or is busy (EAGAIN: its backlog is full).
 * The probe does not block, and only a socket file is ever taken for stale.
 */
static bool unix_path_is_stale(struct server *s) {
  const char *path = ((struct sockaddr_un *)&s->server_address)->sun_path;
  struct stat st;
  if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
    return false;
  int probe = socket(AF_UNIX, s->socket_type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0)
    return false;
  int rc = connect(probe, (struct sockaddr *)&s->server_address, s->server_address_len);
  bool stale = rc < 0 && errno == ECONNREFUSED;
  close(probe);
  return stale;
}

/*
 * A Unix path is this server's only while it holds the lock on PATH.lock, a file beside
 * it, for its whole life (flock: the kernel lets go when the process ends, however it
 * ends). Without it, two servers started at once could each find the other's socket
 * bound but not yet listening, take it for stale and unlink it: both would say "serving
 * on", one of them unreachable. A lock file that its last holder removed (server_close)
 * while we waited for it is no longer the one the path names: we try again.
 */
static int lock_unix_path(struct server *s) {
  struct server_state *state = s->state;
  const char *path = ((struct sockaddr_un *)&s->server_address)->sun_path;
  char lock_path[PATH_MAX];
  snprintf(lock_path, sizeof lock_path, "%s.lock", path); /* sun_path is much shorter */
  for (int tries = 0; tries < 100; tries++) {
    int fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      int err = errno;
      snprintf(address_error, sizeof address_error, "cannot open %s: %s", lock_path, strerror(err));
      errno = err;
      return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      int err = errno;
      close(fd);
      if (err == EWOULDBLOCK)
        snprintf(address_error, sizeof address_error, "cannot lock %s: another server serves on %s",
                 lock_path, path);
      else
        snprintf(address_error, sizeof address_error, "cannot lock %s: %s", lock_path, strerror(err));
      errno = err == EWOULDBLOCK ? EADDRINUSE : err;
      return -1;
    }
    struct stat held, named;
    if (fstat(fd, &held) == 0 && stat(lock_path, &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      state->unix_lock_fd = fd;
      return 0;
    }
    close(fd);
  }
  snprintf(address_error, sizeof address_error, "cannot lock %s: it keeps being replaced", lock_path);
  errno = EAGAIN;
  return -1;
}

/* The end of lock_unix_path's lock: the file goes first, if it is still the one we hold. */
static void unlock_unix_path(struct server *s) {
  struct server_state *state = s->state;
  if (state->unix_lock_fd < 0)
    return;
  char lock_path[PATH_MAX];
  snprintf(lock_path, sizeof lock_path, "%s.lock",
           ((struct sockaddr_un *)&s->server_address)->sun_path);
  struct stat held, named;
  if (!state->in_child && fstat(state->unix_lock_fd, &held) == 0 &&
      lstat(lock_path, &named) == 0 && held.st_dev == named.st_dev && held.st_ino == named.st_ino)
    unlink(lock_path);
  close_fd(&state->unix_lock_fd);
}

int tcp_server_server_bind(struct server *s) {
  struct server_state *state = s->state;
  if (is_unix(s) && lock_unix_path(s) < 0)
    return -1;
  int on = 1;
  if (s->allow_reuse_address)
    setsockopt(s->socket, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
#ifdef SO_REUSEPORT
  /* Linux answers EOPNOTSUPP for Unix sockets (gh-128916): inet only. */
  if (s->allow_reuse_port && !is_unix(s))
    setsockopt(s->socket, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
#endif
  int rc = bind(s->socket, (struct sockaddr *)&s->server_address, s->server_address_len);
  if (rc < 0 && errno == EADDRINUSE && is_unix(s)) {
    if (!unix_path_is_stale(s)) {
      errno = EADDRINUSE; /* the probe's own errno is not the caller's business */
      return -1;
    }
    unlink(((struct sockaddr_un *)&s->server_address)->sun_path);
    rc = bind(s->socket, (struct sockaddr *)&s->server_address, s->server_address_len);
  }
  if (rc < 0)
    return -1;
  struct stat st;
  if (is_unix(s) && lstat(((struct sockaddr_un *)&s->server_address)->sun_path, &st) == 0) {
    state->unix_path_bound = true;
    state->unix_path_dev = st.st_dev;
    state->unix_path_ino = st.st_ino;
  }
  s->server_address_len = sizeof s->server_address;
  if (getsockname(s->socket, (struct sockaddr *)&s->server_address, &s->server_address_len) < 0)
    return -1;
  format_address(&s->server_address, s->server_address_len, s->server_address_name);
  return 0;
}

/* listen(), on a non-blocking listener: a client that resets between poll() and accept()
 * must not leave us blocked in accept(), deaf to shutdown. */
int tcp_server_server_activate(struct server *s) {
  int flags = fcntl(s->socket, F_GETFL);
  if (flags < 0 || fcntl(s->socket, F_SETFL, flags | O_NONBLOCK) < 0)
    return -1;
  return listen(s->socket, s->request_queue_size);
}

/* A request with room for a packet of PACKET_SIZE bytes. */
static struct request *new_request(int fd, const struct sockaddr_storage *addr, socklen_t len,
                                   size_t packet_size) {
  struct request *req = calloc(1, sizeof *req + packet_size);
  if (req == NULL)
    return NULL;
  req->fd = fd;
  memcpy(&req->client_address, addr, len);
  req->client_address_len = len;
  format_address(addr, len, req->client_name);
  return req;
}

struct request *tcp_server_get_request(struct server *s) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  int fd;
  do
    fd = accept(s->socket, (struct sockaddr *)&addr, &len);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return NULL; /* EAGAIN: the client left between poll() and accept() */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* BSD inherits it; we block */
  struct request *req = new_request(fd, &addr, len, 0);
  if (req == NULL)
    close(fd);
  return req;
}

/* Send the FIN now: another copy of the descriptor (a forked child's) would delay it. */
void tcp_server_shutdown_request(struct server *s, struct request *req) {
  shutdown(req->fd, SHUT_WR); /* ENOTCONN when the client has gone: nothing to do */
  s->ops.close_request(s, req);
}

void tcp_server_close_request(struct server *s, struct request *req) {
  close(req->fd);
  base_server_close_request(s, req);
}

/* Better than Python: the path this server bound is removed, so a restart can bind it;
 * only if it is still the file our bind made, not a newer server's after an `rm -f`. */
void tcp_server_server_close(struct server *s) {
  struct server_state *state = s->state;
  close_fd(&s->socket);
  const char *path = ((struct sockaddr_un *)&s->server_address)->sun_path;
  struct stat st;
  if (state->unix_path_bound && !state->in_child && lstat(path, &st) == 0 &&
      st.st_dev == state->unix_path_dev && st.st_ino == state->unix_path_ino)
    unlink(path);
  state->unix_path_bound = false;
  unlock_unix_path(s);
}

int tcp_server_fileno(struct server *s) { return s->socket; }

/* ---- UDPServer, UnixDatagramServer -------------------------------------------------- */

/* The receive buffer, max_packet_size bytes: Python reads the attribute at every request,
 * so a change made after server_new takes effect here. */
static int fit_packet_buffer(struct server *s) {
  struct server_state *state = s->state;
  if (state->packet_buffer != NULL && state->packet_buffer_size == s->max_packet_size)
    return 0;
  char *buffer = realloc(state->packet_buffer, s->max_packet_size + 1); /* + 1: never 0 */
  if (buffer == NULL)
    return -1;
  state->packet_buffer = buffer;
  state->packet_buffer_size = s->max_packet_size;
  return 0;
}

/* recvfrom(max_packet_size), except that a longer datagram is seen (MSG_TRUNC) and
 * dropped with a log line, where Python cuts it silently. */
struct request *udp_server_get_request(struct server *s) {
  struct server_state *state = s->state;
  if (fit_packet_buffer(s) < 0)
    return NULL;
  struct sockaddr_storage addr = {.ss_family = AF_UNSPEC}; /* an unbound sender: no name */
  struct iovec iov = {.iov_base = state->packet_buffer, .iov_len = s->max_packet_size};
  struct msghdr msg = {
      .msg_name = &addr, .msg_namelen = sizeof addr, .msg_iov = &iov, .msg_iovlen = 1};
  ssize_t n;
  /* MSG_DONTWAIT: poll() said readable, but a datagram can still be gone (a bad UDP
     checksum is dropped only here), and a blocking wait would be deaf to a stop. */
  do
    n = recvmsg(s->socket, &msg, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return NULL;
  struct request *req = new_request(s->socket, &addr, msg.msg_namelen, (size_t)n);
  if (req != NULL && (msg.msg_flags & MSG_TRUNC)) {
    fprintf(stderr, "datagram from %s longer than %zu bytes: dropped\n", req->client_name,
            s->max_packet_size);
    free(req);
    errno = EMSGSIZE;
    return NULL;
  }
  if (req != NULL) {
    memcpy(req->packet, state->packet_buffer, (size_t)n);
    req->packet_len = (size_t)n;
  }
  return req;
}

/* ---- ThreadingMixIn ----------------------------------------------------------------- */

/* Join the threads that have ended (bpo-37193: the registry must not grow). */
static void join_workers(struct server *s, bool all) {
  struct server_state *state = s->state;
  struct worker *done = NULL;
  pthread_mutex_lock(&state->lock);
  for (struct worker **p = &state->workers; *p != NULL;) {
    struct worker *w = *p;
    if (all || w->finished) {
      *p = w->next;
      w->next = done;
      done = w;
      state->worker_count--;
    } else {
      p = &w->next;
    }
  }
  pthread_mutex_unlock(&state->lock);
  while (done != NULL) {
    struct worker *w = done;
    done = w->next;
    pthread_join(w->thread, NULL);
    free(w);
  }
}

/* Better than Python (bpo-40305): a handler blocked in recv cannot hang server_close. */
static void cut_connections(struct server *s) {
  struct server_state *state = s->state;
  pthread_mutex_lock(&state->lock);
  state->stopping = true; /* a pool worker takes no connection on from here */
  pthread_cond_broadcast(&state->handed_over);
  for (struct worker *w = state->workers; w != NULL; w = w->next)
    if (w->connection >= 0)
      shutdown(w->connection, SHUT_RDWR); /* the handler reads end of stream */
  pthread_mutex_unlock(&state->lock);
}

void threading_mixin_process_request_thread(struct server *s, struct request *req) {
  if (s->ops.finish_request(s, req) == HANDLER_ERROR)
    s->ops.handle_error(s, req);
  /* HANDLER_FATAL, Python's SystemExit in a thread: the thread ends, quietly. */
  if (current_worker != NULL) { /* before the close: the number may be reused at once */
    pthread_mutex_lock(&s->state->lock);
    current_worker->connection = -1;
    pthread_mutex_unlock(&s->state->lock);
  }
  s->ops.shutdown_request(s, req);
}

/* The calling thread becomes W: its name for the log and for the kernel (ps, gdb). */
static void become_worker(struct worker *w) {
  snprintf(thread_name, sizeof thread_name, "%s", w->name);
  char short_name[16]; /* the kernel keeps 15 characters */
  snprintf(short_name, sizeof short_name, "%.15s", w->name);
  pthread_setname_np(pthread_self(), short_name);
  current_worker = w;
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct server *s = w->server;
  become_worker(w);
  threading_mixin_process_request_thread(s, w->request);
  pthread_mutex_lock(&s->state->lock);
  w->finished = true; /* joined at the next request or poll tick */
  pthread_mutex_unlock(&s->state->lock);
  return NULL;
}

/* A thread named Thread-N running MAIN(w), in the registry; 0, or an errno. */
static int start_worker(struct server *s, struct request *req, void *(*main)(void *)) {
  struct server_state *state = s->state;
  struct worker *w = calloc(1, sizeof *w);
  if (w == NULL)
    return errno;
  w->server = s;
  w->request = req;
  /* A datagram's is the server socket: not cut. A pool worker's is set per request. */
  w->connection = req != NULL && is_stream(s) ? req->fd : -1;
  snprintf(w->name, sizeof w->name, "Thread-%lu", atomic_fetch_add(&thread_counter, 1) + 1);
  /* Registered only once it runs (Python appends first), under the lock so the thread
     cannot finish before it is in the registry. */
  pthread_mutex_lock(&state->lock);
  int rc = pthread_create(&w->thread, NULL, main, w);
  if (rc == 0) {
    w->next = state->workers;
    state->workers = w;
    state->worker_count++;
  }
  pthread_mutex_unlock(&state->lock);
  if (rc != 0)
    free(w);
  return rc;
}

int threading_mixin_process_request(struct server *s, struct request *req) {
  join_workers(s, false);
  int rc = start_worker(s, req, worker_main);
  if (rc != 0) {
    set_error(req, "cannot start a thread", rc);
    return HANDLER_ERROR; /* handle_error, then shutdown_request closes it once */
  }
  return HANDLER_OK;
}

void threading_mixin_service_actions(struct server *s) { join_workers(s, false); }

void threading_mixin_server_close(struct server *s) {
  tcp_server_server_close(s);
  if (s->block_on_close && !s->daemon_threads) {
    cut_connections(s);
    join_workers(s, true);
  }
}

size_t server_thread_count(struct server *s) {
  struct server_state *state = s->state;
  pthread_mutex_lock(&state->lock);
  size_t n = state->worker_count;
  pthread_mutex_unlock(&state->lock);
  return n;
}

const char *current_thread_name(void) { return thread_name[0] ? thread_name : "MainThread"; }

/* ---- ForkingMixIn ------------------------------------------------------------------- */

/* Linux: the number of threads in this process, from /proc; 1 where we cannot tell. */
static long threads_in_process(void) {
  FILE *f = fopen("/proc/self/status", "r");
  long n = 1;
  char line[128];
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "Threads: %ld", &n) == 1)
      break;
  if (f != NULL)
    fclose(f);
  return n;
}

/* Drop entry I: the last one takes its place. */
static void forget_child(struct server *s, size_t i) {
  struct server_state *state = s->state;
  state->child_count--;
  state->active_children[i] = state->active_children[state->child_count];
}

/* Reap those of our children that have ended (blocking: wait for each), asking for our
 * own pids only; ENDED, if given, hears of each with its wait status. */
static void reap_children(struct server *s, bool blocking, void (*ended)(struct server *, pid_t, int)) {
  struct server_state *state = s->state;
  for (size_t i = state->child_count; i-- > 0;) {
    pid_t pid;
    int status = 0;
    do
      pid = waitpid(state->active_children[i], &status, blocking ? 0 : WNOHANG);
    while (pid < 0 && errno == EINTR);
    if (pid > 0 || (pid < 0 && errno == ECHILD)) {
      pid_t child = state->active_children[i];
      forget_child(s, i);
      if (ended != NULL && pid > 0)
        ended(s, child, status);
      if (s->child_ended != NULL && pid > 0)
        s->child_ended(s, child, status);
    }
  }
}

/*
 * Reap our children. Only at max_children does it wait for any child (waitpid(-1)), as
 * Python does, and that can reap a child the program forked itself; otherwise it asks
 * for our own pids only, so the program's children keep their exit status.
 */
void forking_mixin_collect_children(struct server *s, bool blocking) {
  struct server_state *state = s->state;
  /* Not a blocking waitpid(): a stop that came just before it would wait for a child to
     end. We look, and between looks wait on the self-pipe, which a stop fills. */
  while (state->child_count > 0 && state->child_count >= s->max_children &&
         !atomic_load(&state->shutdown_request)) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (size_t i = 0; i < state->child_count; i++)
        if (state->active_children[i] == pid) {
          forget_child(s, i);
          if (s->child_ended != NULL)
            s->child_ended(s, pid, status);
        }
    } else if (pid < 0 && errno == ECHILD) {
      state->child_count = 0;
    } else if (pid == 0 || errno == EINTR) {
      struct pollfd wake = {.fd = state->wake_pipe[0], .events = POLLIN};
      if (poll(&wake, 1, CHILD_POLL_MS) > 0)
        break; /* a stop request: serve_forever sees it */
    } else {
      break;
    }
  }
  reap_children(s, blocking, NULL);
}

void forking_mixin_handle_timeout(struct server *s) { forking_mixin_collect_children(s, false); }
void forking_mixin_service_actions(struct server *s) { forking_mixin_collect_children(s, false); }

/* The child: handle the one request, then _exit, never back into the server's loop. */
static void serve_in_child(struct server *s, struct request *req) {
  struct server_state *state = s->state;
  state->in_child = true;
  close_fd(&state->children_pipe[1]); /* else the parent's close could never end our reads */
  close_fd(&state->unix_lock_fd);      /* the parent's: a child must not outlive it holding it */
  /* A stream child lets the listener go, and a stop signal to it ends this session only
     (see on_stop_signal; one that came before the connection was known ends it here). A
     datagram child keeps the server socket: its reply goes out through it. */
  if (is_stream(s)) {
    close_fd(&s->socket);
    atomic_store(&child_connection, req->fd);
    if (atomic_load(&child_stop))
      shutdown(req->fd, SHUT_RDWR);
  }
  snprintf(thread_name, sizeof thread_name, "Process-%ld", (long)getpid());
  int status = 1;
  int result = s->ops.finish_request(s, req);
  if (result == HANDLER_OK)
    status = 0;
  else if (result == HANDLER_ERROR)
    s->ops.handle_error(s, req);
  s->ops.shutdown_request(s, req);
  close_fd(&s->socket);
  close_pipes(s);
  fflush(NULL); /* _exit does not flush, and the parent flushed before fork */
  _exit(status);
}

int forking_mixin_process_request(struct server *s, struct request *req) {
  struct server_state *state = s->state;
  long threads = threads_in_process();
  if (threads > 1) { /* the child could inherit a lock held by another thread (gh-100228) */
    snprintf(req->error, sizeof req->error, "fork refused: the process runs %ld threads", threads);
    return HANDLER_ERROR;
  }
  if (state->child_count == state->child_capacity) {
    size_t cap = state->child_capacity ? 2 * state->child_capacity : 16;
    pid_t *pids = realloc(state->active_children, cap * sizeof *pids);
    if (pids == NULL) {
      set_error(req, "fork", errno);
      return HANDLER_ERROR;
    }
    state->active_children = pids;
    state->child_capacity = cap;
  }
  fflush(NULL); /* or the child would print our buffered output again */
  pid_t pid = fork();
  if (pid < 0) {
    set_error(req, "fork", errno);
    return HANDLER_ERROR;
  }
  if (pid == 0)
    serve_in_child(s, req);
  state->active_children[state->child_count++] = pid;
  s->ops.close_request(s, req); /* close, not shutdown: the child owns the connection */
  return HANDLER_OK;
}

/* Reap children until none is left (true), or none has ended for MS milliseconds: a
 * slow but steady end (hundreds of children, or children under valgrind) is no hang. */
static bool children_end_within(struct server *s, int ms) {
  struct server_state *state = s->state;
  double deadline = now() + ms / 1000.0;
  size_t left = state->child_count;
  for (;;) {
    reap_children(s, false, NULL);
    if (state->child_count == 0)
      return true;
    if (state->child_count < left) {
      left = state->child_count;
      deadline = now() + ms / 1000.0;
    }
    if (now() >= deadline)
      return false;
    poll(NULL, 0, CHILD_POLL_MS); /* a pause between looks; EINTR only shortens it */
  }
}

static void signal_children(struct server *s, int signo) {
  for (size_t i = 0; i < s->state->child_count; i++)
    kill(s->state->active_children[i], signo);
}

/*
 * Closing the children's pipe ends their reads (end of stream), so waiting is short;
 * but a child that is stopped (SIGSTOP) or stuck outside the framework's reads would
 * make it for ever. After the grace period: SIGCONT, so a stopped child sees its pipe
 * closed and ends; then SIGKILL for what is left. Either way it is said on stderr.
 */
void forking_mixin_server_close(struct server *s) {
  tcp_server_server_close(s);
  if (!s->block_on_close) {
    forking_mixin_collect_children(s, false);
    return;
  }
  end_children(s);
}

/* Close the children's pipe and wait for them; a stopped or stuck one gets SIGCONT, then
 * SIGKILL (see forking_mixin_server_close). */
static void end_children(struct server *s) {
  struct server_state *state = s->state;
  close_fd(&state->children_pipe[1]);
  if (children_end_within(s, CHILD_GRACE_MS))
    return;
  fprintf(stderr, "stopping: %zu children still running after %d ms: SIGCONT\n", state->child_count,
          CHILD_GRACE_MS);
  signal_children(s, SIGCONT);
  if (children_end_within(s, CHILD_CONT_MS))
    return;
  fprintf(stderr, "stopping: %zu children still running: SIGKILL\n", state->child_count);
  signal_children(s, SIGKILL);
  reap_children(s, true, NULL); /* SIGKILL cannot be caught: this is short */
}

size_t server_active_children(struct server *s) { return s->state->child_count; }

/* ---- PreforkingMixIn (beyond Python: Stevens' serv02, serv03, serv04) --------------- */

/* The lock a worker takes before accept(); 0, or -1 with errno set. */
static int take_accept_lock(struct server *s) {
  struct server_state *state = s->state;
  if (s->accept_lock == ACCEPT_LOCK_FILE) {
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    while (fcntl(state->accept_lock_fd, F_SETLKW, &lock) < 0)
      if (errno != EINTR)
        return -1;
  } else if (s->accept_lock == ACCEPT_LOCK_MUTEX) {
    int rc = pthread_mutex_lock(state->shared_accept_lock);
    if (rc == EOWNERDEAD) /* a worker died holding it (SIGKILL in accept): it guarded no data */
      rc = pthread_mutex_consistent(state->shared_accept_lock);
    if (rc != 0) {
      errno = rc;
      return -1;
    }
  }
  return 0;
}

static void release_accept_lock(struct server *s) {
  struct server_state *state = s->state;
  if (s->accept_lock == ACCEPT_LOCK_FILE) {
    struct flock unlock = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
    fcntl(state->accept_lock_fd, F_SETLK, &unlock);
  } else if (s->accept_lock == ACCEPT_LOCK_MUTEX) {
    pthread_mutex_unlock(state->shared_accept_lock);
  }
}

/* serv03's lock file is unlinked at once: only the open descriptor, which the workers
 * inherit, names it, and nothing is left behind. serv04's mutex lives in memory the
 * workers share; robust, so a worker killed while holding it does not block the rest. */
static int make_accept_lock(struct server *s) {
  struct server_state *state = s->state;
  if (s->accept_lock == ACCEPT_LOCK_FILE) {
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/accept-lock.XXXXXX", dir);
    state->accept_lock_fd = mkostemp(path, O_CLOEXEC);
    if (state->accept_lock_fd < 0) {
      int err = errno;
      snprintf(address_error, sizeof address_error, "cannot make the accept lock file in %s: %s",
               dir, strerror(err));
      errno = err;
      return -1;
    }
    unlink(path);
  } else if (s->accept_lock == ACCEPT_LOCK_MUTEX) {
    void *shared = mmap(NULL, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
      return -1;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(shared, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
      munmap(shared, sizeof(pthread_mutex_t));
      errno = rc;
      return -1;
    }
    state->shared_accept_lock = shared;
  }
  return 0;
}

static void free_accept_lock(struct server *s) {
  struct server_state *state = s->state;
  close_fd(&state->accept_lock_fd);
  if (state->shared_accept_lock != NULL) {
    if (!state->in_child)
      pthread_mutex_destroy(state->shared_accept_lock);
    munmap(state->shared_accept_lock, sizeof(pthread_mutex_t));
    state->shared_accept_lock = NULL;
  }
}

/* listen(), on a non-blocking listener, and the accept lock. Stevens' workers block in
 * accept(); ours wait in poll() for the listener or the children's pipe, whose end of
 * stream says the parent is gone, however it went: a SIGKILLed parent's workers would
 * else hold the port for ever, taking clients nobody serves. */
int prefork_mixin_server_activate(struct server *s) {
  if (tcp_server_server_activate(s) < 0)
    return -1;
  return make_accept_lock(s);
}

/* A worker: accept and handle until the listener is shut down or the children's pipe
 * ends (the parent stops, or has died), then _exit; never back into the parent's loop. */
static void prefork_worker(struct server *s) {
  struct server_state *state = s->state;
  state->in_child = true;
  close_fd(&state->children_pipe[1]); /* else the parent's close could never end our reads */
  close_fd(&state->unix_lock_fd);      /* the parent's: a child must not outlive it holding it */
  snprintf(thread_name, sizeof thread_name, "Process-%ld", (long)getpid());
  int status = 0;
  for (;;) {
    if (take_accept_lock(s) < 0) {
      fprintf(stderr, "%s: accept lock: %s\n", thread_name, strerror(errno));
      status = 1;
      break;
    }
    int ready = wait_io(s->socket, POLLIN, state->children_pipe[0], -1);
    struct request *req = ready > 0 ? s->ops.get_request(s) : NULL;
    int err = errno;
    release_accept_lock(s);
    if (ready == 0)
      break; /* the pipe: the parent stops, or is gone */
    if (req == NULL) {
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        fprintf(stderr, "accept: %s (pausing for %d ms)\n", strerror(err), ACCEPT_BACKOFF_MS);
        struct pollfd stop = {.fd = state->children_pipe[0], .events = POLLIN};
        if (poll(&stop, 1, ACCEPT_BACKOFF_MS) > 0)
          break; /* the pipe closed: the parent stops, or it is gone (else we spin here) */
        continue;
      }
      if (err == ECONNABORTED || err == EPROTO || err == EAGAIN)
        continue; /* that client left, or another worker took it (no lock) */
      break; /* EINVAL: the listener is shut down, the server stops */
    }
    /* A stop signal to a worker ends its session, not the worker (see on_stop_signal). */
    atomic_store(&child_connection, req->fd);
    int result = verify_and_process(s, req);
    atomic_store(&child_connection, -1);
    if (result == HANDLER_FATAL) {
      status = 1;
      break;
    }
  }
  free_accept_lock(s);
  close_fd(&s->socket);
  close_pipes(s);
  fflush(NULL); /* _exit does not flush, and the parent flushed before fork */
  _exit(status);
}

/*
 * Who holds the accept lock: a worker's pid, or 0 (none, or we cannot tell). The file
 * lock's holder is fcntl's to say (F_GETLK). A robust mutex's word holds the thread id of
 * its owner, by the kernel's robust-futex rules (a worker is one thread: its pid), and
 * glibc keeps that word in __data.__lock.
 */
static pid_t accept_lock_holder(struct server *s) {
  struct server_state *state = s->state;
  if (s->accept_lock == ACCEPT_LOCK_FILE) {
    struct flock probe = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(state->accept_lock_fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK)
      return probe.l_pid;
  }
#ifdef __GLIBC__
  if (s->accept_lock == ACCEPT_LOCK_MUTEX)
    return __atomic_load_n(&state->shared_accept_lock->__data.__lock, __ATOMIC_RELAXED) &
           FUTEX_TID_MASK;
#endif
  return 0;
}

/*
 * A worker stopped (SIGSTOP) while it holds the accept lock stops them all: the others
 * wait for the lock for as long as it stays stopped, and clients wait in the backlog.
 * That is Stevens' design (serv03, serv04); a parent that sees it kills that worker,
 * whose lock the kernel then frees, and service_actions starts another. waitid's
 * WNOWAIT asks without taking the news: a worker that is continued is no longer seen
 * as stopped. Without a lock, a stopped worker stops only itself, and is left alone.
 */
static void end_stopped_lock_holder(struct server *s) {
  pid_t holder = accept_lock_holder(s);
  siginfo_t info = {.si_pid = 0};
  if (holder <= 0 || waitid(P_PID, (id_t)holder, &info, WSTOPPED | WNOHANG | WNOWAIT) < 0 ||
      info.si_pid != holder)
    return;
  fprintf(stderr, "worker Process-%ld is stopped, holding the accept lock: killing it\n",
          (long)holder);
  kill(holder, SIGKILL);
}

/* The parent hears of a worker that ended while serving: a line on stderr. */
static void worker_ended(struct server *s, pid_t pid, int status) {
  if (s->state->stopping)
    return;
  if (WIFSIGNALED(status))
    fprintf(stderr, "worker Process-%ld killed by signal %d: starting another\n", (long)pid,
            WTERMSIG(status));
  else
    fprintf(stderr, "worker Process-%ld exited with status %d: starting another\n", (long)pid,
            WEXITSTATUS(status));
}

/* fork() or pthread_create() failed with ERR: the machine is out of processes or
 * threads. Say so, and try again only after a pause that doubles with each failure in a
 * row, up to WORKER_BACKOFF_MAX_MS: a retry at every tick would take each process the
 * machine frees, and fill stderr. */
static void worker_start_failed(struct server *s, int err) {
  struct server_state *state = s->state;
  int ms = WORKER_BACKOFF_MS;
  for (int i = 0; i < state->failed_starts && ms < WORKER_BACKOFF_MAX_MS; i++)
    ms *= 2;
  fprintf(stderr, "cannot start a worker: %s (trying again in %d ms)\n", strerror(err), ms);
  state->starts_paused_until = now() + ms / 1000.0;
  state->failed_starts++;
}

/* Whether service_actions may start the workers the pool lacks (see worker_start_failed). */
static bool may_start_workers(struct server *s) {
  return now() >= s->state->starts_paused_until;
}

void prefork_mixin_service_actions(struct server *s) {
  struct server_state *state = s->state;
  end_stopped_lock_holder(s);
  reap_children(s, false, worker_ended);
  if (!may_start_workers(s))
    return;
  if (state->child_capacity < s->workers) {
    pid_t *pids = realloc(state->active_children, s->workers * sizeof *pids);
    if (pids == NULL) {
      fprintf(stderr, "cannot start the workers: %s\n", strerror(errno));
      return;
    }
    state->active_children = pids;
    state->child_capacity = s->workers;
  }
  while (state->child_count < s->workers && !atomic_load(&state->shutdown_request)) {
    fflush(NULL); /* or the child would print our buffered output again */
    pid_t pid = fork();
    if (pid < 0) {
      worker_start_failed(s, errno);
      return;
    }
    if (pid == 0)
      prefork_worker(s);
    state->active_children[state->child_count++] = pid;
  }
  state->failed_starts = 0;
}

/* Race-free: a worker waiting in poll(), or for the lock held by one that is, cannot miss
 * the stop, for the shut-down listener is readable and fails every accept, then and later. */
void prefork_mixin_server_close(struct server *s) {
  struct server_state *state = s->state;
  state->stopping = true; /* the workers that end now are not replaced, nor reported */
  if (s->socket >= 0)
    shutdown(s->socket, SHUT_RDWR);
  end_children(s);
  free_accept_lock(s);
  tcp_server_server_close(s);
}

/* ---- ThreadPoolMixIn (beyond Python: Stevens' serv07, serv08) ----------------------- */

/* Take REQ's connection on as W's, unless the pool is stopping; under the lock, so a
 * stop cuts either it or nothing. */
static bool take_on(struct server *s, struct worker *w, struct request *req) {
  pthread_mutex_lock(&s->state->lock);
  bool stopping = s->state->stopping;
  if (!stopping)
    w->connection = req->fd;
  pthread_mutex_unlock(&s->state->lock);
  return !stopping;
}

/* A worker of the pool's end: the registry joins it. */
static void *pool_worker_ends(struct server *s, struct worker *w) {
  pthread_mutex_lock(&s->state->lock);
  w->finished = true;
  pthread_mutex_unlock(&s->state->lock);
  return NULL;
}

/* serv07: under the mutex, wait for a client or the stop (the children's pipe, closed
 * by server_close), accept, release, serve. */
static void *pool_worker_accepting(void *arg) {
  struct worker *w = arg;
  struct server *s = w->server;
  struct server_state *state = s->state;
  become_worker(w);
  for (;;) {
    pthread_mutex_lock(&state->pool_accept_lock);
    struct pollfd fds[2] = {{.fd = state->children_pipe[0], .events = POLLIN},
                            {.fd = s->socket, .events = POLLIN}};
    int n;
    do
      n = poll(fds, 2, -1);
    while (n < 0 && errno == EINTR);
    struct request *req = n > 0 && !fds[0].revents ? s->ops.get_request(s) : NULL;
    int err = errno;
    pthread_mutex_unlock(&state->pool_accept_lock);
    if (n < 0 || fds[0].revents)
      break; /* the stop */
    if (req == NULL) {
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        fprintf(stderr, "accept: %s (pausing for %d ms)\n", strerror(err), ACCEPT_BACKOFF_MS);
        poll(fds, 1, ACCEPT_BACKOFF_MS); /* the stop still ends it */
      }
      continue; /* EAGAIN: the client left between poll() and accept() */
    }
    if (!s->ops.verify_request(s, req)) {
      s->ops.shutdown_request(s, req);
      continue;
    }
    if (!take_on(s, w, req)) {
      s->ops.shutdown_request(s, req);
      break;
    }
    threading_mixin_process_request_thread(s, req); /* handle_error; FATAL ends nothing */
  }
  return pool_worker_ends(s, w);
}

/* serv08: wait until the serving thread hands a request over, or the stop. Each time it
 * waits, it says so on the idle pipe, which lets serve_forever accept again. */
static void *pool_worker_handed(void *arg) {
  struct worker *w = arg;
  struct server *s = w->server;
  struct server_state *state = s->state;
  for (become_worker(w);;) {
    pthread_mutex_lock(&state->lock);
    state->idle_workers++;
    ssize_t n = write(state->idle_pipe[1], "i", 1); /* full: a byte is there already */
    (void)n;
    while (!state->stopping && state->handover_count == 0)
      pthread_cond_wait(&state->handed_over, &state->lock);
    if (state->stopping) {
      pthread_mutex_unlock(&state->lock);
      break; /* server_close closes what is still handed over */
    }
    struct request *req = state->handover[state->handover_first];
    state->handover_first = (state->handover_first + 1) % s->workers;
    state->handover_count--;
    w->connection = req->fd;
    pthread_mutex_unlock(&state->lock);
    threading_mixin_process_request_thread(s, req);
  }
  return pool_worker_ends(s, w);
}

/* serve_forever accepted REQ while a worker was idle (serving_thread_accepts): hand it
 * to that worker. The ring has a place for each worker, so it is never full. */
int thread_pool_mixin_process_request(struct server *s, struct request *req) {
  struct server_state *state = s->state;
  pthread_mutex_lock(&state->lock);
  bool handed = state->idle_workers > 0 && !state->stopping;
  if (handed) {
    state->handover[(state->handover_first + state->handover_count) % s->workers] = req;
    state->handover_count++;
    state->idle_workers--;
    pthread_cond_signal(&state->handed_over);
  }
  pthread_mutex_unlock(&state->lock);
  if (!handed) {
    snprintf(req->error, sizeof req->error, "no idle worker");
    return HANDLER_ERROR;
  }
  return HANDLER_OK;
}

/* At the start of serve_forever, and at each poll tick: join the workers that have
 * ended (a handler's HANDLER_FATAL ends its thread, as in ThreadingMixIn) and start
 * those the pool lacks. */
void thread_pool_mixin_service_actions(struct server *s) {
  struct server_state *state = s->state;
  join_workers(s, false);
  if (state->handover == NULL) {
    state->handover = calloc(s->workers, sizeof *state->handover);
    if (state->handover == NULL) {
      fprintf(stderr, "cannot start the workers: %s\n", strerror(errno));
      return;
    }
  }
  if (!may_start_workers(s))
    return;
  void *(*main)(void *) = s->accept_by == ACCEPT_BY_MAIN ? pool_worker_handed : pool_worker_accepting;
  while (server_thread_count(s) < s->workers) {
    int rc = start_worker(s, NULL, main);
    if (rc != 0) {
      worker_start_failed(s, rc);
      return;
    }
  }
  state->failed_starts = 0;
}

/* The idle workers wake (the pipe for those at accept, the condition for those waiting
 * for a request), the busy ones' connections are cut, all are joined; then the
 * listener goes, which nobody polls any more, and what was handed over but not taken. */
void thread_pool_mixin_server_close(struct server *s) {
  struct server_state *state = s->state;
  close_fd(&state->children_pipe[1]);
  cut_connections(s);
  join_workers(s, true);
  while (state->handover_count > 0) {
    s->ops.shutdown_request(s, state->handover[state->handover_first]);
    state->handover_first = (state->handover_first + 1) % s->workers;
    state->handover_count--;
  }
  tcp_server_server_close(s);
}

/* ---- Construction and the end of the `with` block ----------------------------------- */

/* Every method NULL in OPS so far comes from CLASS_METHODS (a method found stays). */
static void inherit(struct server_ops *ops, const struct server_ops *class_methods) {
#define INHERIT(method) if (ops->method == NULL) ops->method = class_methods->method
  INHERIT(server_bind);
  INHERIT(server_activate);
  INHERIT(get_request);
  INHERIT(verify_request);
  INHERIT(process_request);
  INHERIT(finish_request);
  INHERIT(shutdown_request);
  INHERIT(close_request);
  INHERIT(handle_error);
  INHERIT(handle_timeout);
  INHERIT(service_actions);
  INHERIT(server_close);
  INHERIT(fileno);
#undef INHERIT
}

/* Python's method lookup, done once: s->ops holds each method of the first class in the
 * server's __mro__ that defines it (see "The classes, as data"). */
static void set_class_ops(struct server *s) {
  s->ops = (struct server_ops){0};
  if (mixins[s->mode] != NULL)
    inherit(&s->ops, mixins[s->mode]);
  for (size_t i = 0; i < CLASS_MRO_LENGTH && class_of(s)->mro[i] != NULL; i++)
    inherit(&s->ops, class_of(s)->mro[i]);
}

/* What server_new_unbound can fail at, in order. */
static int open_server(struct server *s, const char *address) {
  if (take_signals() < 0 || resolve_address(s, address) < 0 || open_pipe(s->state->wake_pipe) < 0)
    return -1;
  if (s->mode == SERVER_PREFORK || s->mode == SERVER_POOL) {
    if (!is_stream(s)) { /* workers that wait in accept(): datagrams have none */
      errno = EINVAL;
      return -1;
    }
  }
  if ((s->mode == SERVER_FORKING || s->mode == SERVER_PREFORK || s->mode == SERVER_POOL) &&
      open_pipe(s->state->children_pipe) < 0)
    return -1;
  if (s->mode == SERVER_POOL && open_pipe(s->state->idle_pipe) < 0)
    return -1;
  s->socket = socket(s->address_family, s->socket_type | SOCK_CLOEXEC, 0);
  return s->socket < 0 ? -1 : 0;
}

struct server *server_new_unbound(enum server_kind kind, enum server_mode mode, const char *address,
                                  const struct handler_class *handler, void *user) {
  struct server *s = calloc(1, sizeof *s);
  struct server_state *state = calloc(1, sizeof *state);
  if (s == NULL || state == NULL) {
    free(s);
    free(state);
    return NULL;
  }
  s->state = state;
  s->handler = handler;
  s->user = user;
  s->kind = kind;
  s->mode = mode;
  s->address_family = class_of(s)->address_family;
  s->socket_type = class_of(s)->socket_type;
  s->socket = -1;
  s->timeout = mode == SERVER_FORKING ? 300 : SERVER_NO_TIMEOUT; /* ForkingMixIn.timeout */
  s->request_queue_size = SOMAXCONN;
  s->max_packet_size = 8192;
  s->block_on_close = true;
  s->max_children = 40;
  s->workers = 4;
  set_class_ops(s);
  state->wake_pipe[0] = state->wake_pipe[1] = -1;
  state->children_pipe[0] = state->children_pipe[1] = -1;
  state->idle_pipe[0] = state->idle_pipe[1] = -1;
  state->accept_lock_fd = -1;
  state->unix_lock_fd = -1;
  pthread_mutex_init(&state->pool_accept_lock, NULL);
  pthread_cond_init(&state->handed_over, NULL);
  atomic_store(&state->owner_pid, getpid());
  pthread_mutex_init(&state->lock, NULL);
  pthread_cond_init(&state->changed, NULL);
  if (open_server(s, address) < 0) {
    int saved_errno = errno;
    server_free(s);
    errno = saved_errno;
    return NULL;
  }
  return s;
}

int server_bind_and_activate(struct server *s) {
  if (s->ops.server_bind(s) == 0 && s->ops.server_activate(s) == 0)
    return 0;
  int saved_errno = errno;
  s->ops.server_close(s); /* bpo-22435: a failed constructor leaks nothing */
  errno = saved_errno;
  return -1;
}

struct server *server_new(enum server_kind kind, enum server_mode mode, const char *address,
                          const struct handler_class *handler, void *user) {
  struct server *s = server_new_unbound(kind, mode, address, handler, user);
  if (s != NULL && server_bind_and_activate(s) < 0) {
    int saved_errno = errno;
    server_free(s);
    errno = saved_errno;
    return NULL;
  }
  return s;
}

void server_close(struct server *s) { s->ops.server_close(s); }
int server_fileno(struct server *s) { return s->ops.fileno(s); }

void server_free(struct server *s) {
  if (s == NULL)
    return;
  struct server_state *state = s->state;
  s->ops.server_close(s);
  cut_connections(s); /* threads server_close did not wait for: memory goes away now */
  join_workers(s, true);
  release_signals(s); /* last: a stop signal during the clean-up is not the default's */
  close_pipes(s);
  pthread_mutex_destroy(&state->lock);
  pthread_cond_destroy(&state->changed);
  pthread_mutex_destroy(&state->pool_accept_lock);
  pthread_cond_destroy(&state->handed_over);
  free(state->handover);
  free(state->active_children);
  free(state->packet_buffer);
  free(state);
  free(s);
}
