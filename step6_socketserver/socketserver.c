/*
 * step6_socketserver/socketserver.c - Python's socketserver module, in C: the core.
 *
 * Read it next to CPython's Lib/socketserver.py: the sections follow its classes, and
 * each function says which Python method it is. Where we do better than Python on
 * purpose (README.md lists it), a comment says why. The classes, as Python draws them
 * (the Unix ones are TCPServer and UDPServer with another address family):
 *
 *       BaseServer                        BaseRequestHandler
 *           |                              |               |
 *       TCPServer ------ UnixStreamServer  StreamRequest-  DatagramRequest-
 *           |                              Handler         Handler
 *       UDPServer ------ UnixDatagramServer
 *
 *   mix-ins, listed first:  ThreadingMixIn  ForkingMixIn  (Python's)
 *                           PreforkingMixIn ThreadPoolMixIn  (Stevens' serv02-04, serv07-08)
 *
 * This file: the classes as data, the handlers and their rfile and wfile, BaseServer
 * (serve_forever, handle_request) and the construction. Read next, in this order:
 *   socketserver_address.c    TCPServer, UDPServer, the Unix ones; resolving addresses
 *   socketserver_signals.c    shutdown(), and the SIGINT/SIGTERM that ask for it
 *   socketserver_threading.c  ThreadingMixIn: a thread per request
 *   socketserver_forking.c    ForkingMixIn: a process per request
 *   socketserver_prefork.c    PreforkingMixIn: processes made at start (serv02-04)
 *   socketserver_pool.c       ThreadPoolMixIn: threads made at start (serv07-08)
 * socketserver_private.h holds what these files share; socketserver.h is the public API.
 */
#define _GNU_SOURCE /* MSG_DONTWAIT for datagram replies */

#include "socketserver_private.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { WORKER_BACKOFF_MS = 500, WORKER_BACKOFF_MAX_MS = 4000 }; /* pools: fork, pthread_create */

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

/* The mix-ins: each file's methods table (threading_mixin_methods, ...) and state. */
static const struct mixin *const mixins[] = {
    [SERVER_SYNC] = NULL, /* no mix-in */
    [SERVER_THREADING] = &threading_mixin,
    [SERVER_FORKING] = &forking_mixin,
    [SERVER_PREFORK] = &prefork_mixin,
    [SERVER_POOL] = &thread_pool_mixin,
};

static const struct server_class *class_of(const struct server *s) {
  return &server_classes[s->kind];
}

/* ---- Small helpers ------------------------------------------------------------------ */

double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds to poll()'s milliseconds, rounded up: a positive time never becomes 0, which
 * would be "do not wait". Negative means "wait for ever" (SERVER_NO_TIMEOUT): callers
 * with a deadline use ms_until() instead. */
int to_ms(double seconds) {
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
int ms_until(double deadline) {
  double left = deadline - now();
  return left > 0 ? to_ms(left) : 0;
}

/* Our pipes, like our sockets, are not inherited by programs the server runs (PEP 446:
 * O_CLOEXEC), and never block: a signal handler's write must not. */
int open_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC | O_NONBLOCK); }

void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* The framework's own descriptors, besides the server socket. */
void close_pipes(struct server *s) {
  struct server_state *state = s->state;
  close_fd(&state->wake_pipe[0]);
  close_fd(&state->wake_pipe[1]);
  close_fd(&state->children_pipe[0]);
  close_fd(&state->children_pipe[1]);
  close_fd(&state->unix_lock_fd);
}

void set_error(struct request *req, const char *what, int err) {
  snprintf(req->error, sizeof req->error, "%s: %s", what, strerror(err));
}

/*
 * Wait until fd is ready for EVENTS, the server stops (stop_fd readable: returns 0) or
 * timeout_ms passes (-1, ETIMEDOUT). Signals do not cut the wait short (EINTR retried).
 */
int wait_io(int fd, short events, int stop_fd, int timeout_ms) {
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
bool is_stream(const struct server *s) { return s->socket_type == SOCK_STREAM; }
bool is_unix(const struct server *s) { return s->address_family == AF_UNIX; }

/* accept() failed for want of descriptors or memory: the listener is left alone a while. */
bool accept_failed_for_want_of_memory(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* fork() or pthread_create() failed with ERR: the machine is out of processes or
 * threads. Say so, and try again only after a pause that doubles with each failure in a
 * row, up to WORKER_BACKOFF_MAX_MS: a retry at every tick would take each process the
 * machine frees, and fill stderr. */
void worker_start_failed(struct worker_starts *starts, int err) {
  int ms = WORKER_BACKOFF_MS;
  for (int i = 0; i < starts->failed && ms < WORKER_BACKOFF_MAX_MS; i++)
    ms *= 2;
  fprintf(stderr, "cannot start a worker: %s (trying again in %d ms)\n", strerror(err), ms);
  starts->paused_until = now() + ms / 1000.0;
  starts->failed++;
}

/* Whether service_actions may start the workers the pool lacks (see worker_start_failed). */
bool may_start_workers(const struct worker_starts *starts) { return now() >= starts->paused_until; }

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
int verify_and_process(struct server *s, struct request *req) {
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
    if (accept_failed_for_want_of_memory(errno)) {
      fprintf(stderr, "accept: %s (pausing for %d ms)\n", strerror(errno), ACCEPT_BACKOFF_MS);
      s->state->accepts_paused_until = now() + ACCEPT_BACKOFF_MS / 1000.0;
    }
    return 0;
  }
  return verify_and_process(s, req);
}

/* Whether the serving thread accepts now, as the mix-in says: a prefork parent never
 * does, nor a pool whose workers accept; one whose main thread accepts, only while a
 * worker is idle. */
static bool serving_thread_accepts(struct server *s) {
  const struct mixin *mixin = mixins[s->mode];
  return mixin == NULL || mixin->serving_thread_accepts == NULL || mixin->serving_thread_accepts(s);
}

/* Besides the self-pipe and the listener, what ends serve_forever's wait: a pool's idle
 * pipe, where the main thread accepts. */
static int mixin_wake_fd(struct server *s) {
  const struct mixin *mixin = mixins[s->mode];
  return mixin == NULL || mixin->wake_fd == NULL ? -1 : mixin->wake_fd(s);
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
  fds[2] = (struct pollfd){.fd = mixin_wake_fd(s), .events = POLLIN};
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
    inherit(&s->ops, mixins[s->mode]->methods);
  for (size_t i = 0; i < CLASS_MRO_LENGTH && class_of(s)->mro[i] != NULL; i++)
    inherit(&s->ops, class_of(s)->mro[i]);
}

/* What server_new_unbound can fail at, in order. */
static int open_server(struct server *s, const char *address) {
  if (take_signals() < 0 || resolve_address(s, address) < 0 || open_pipe(s->state->wake_pipe) < 0)
    return -1;
  const struct mixin *mixin = mixins[s->mode];
  if (mixin != NULL && mixin->open != NULL && mixin->open(s) < 0)
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
  state->unix_lock_fd = -1;
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
  const struct mixin *mixin = mixins[s->mode];
  if (mixin != NULL && mixin->free != NULL)
    mixin->free(s); /* threads server_close did not wait for are cut and joined here */
  release_signals(s); /* last: a stop signal during the clean-up is not the default's */
  close_pipes(s);
  pthread_mutex_destroy(&state->lock);
  pthread_cond_destroy(&state->changed);
  free(state->packet_buffer);
  free(state);
  free(s);
}
