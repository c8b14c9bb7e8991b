/*
 * step6_socketserver/test_socketserver.c - unit tests of the framework, after CPython's
 * Lib/test/test_socketserver.py, plus the places where we do better than Python.
 *
 * They check what a black box cannot see: counters inside the handler and the server's
 * methods, the descriptor count, the thread registry, exit statuses of children; and
 * that the header's example compiles (not under valgrind, which would trace the compiler).
 * Usage: test_socketserver [--no-fork] [WORD...] runs the tests whose names contain a
 * WORD (all by default), without the forking ones if asked; the last line is
 * "N passed, N failed", and the exit status is 1 on a failure.
 * Every wait has a deadline; an alarm() ends a test that hangs.
 */
#define _GNU_SOURCE /* pthread_kill is POSIX; this is for the same headers as the library */

#include "socketserver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { DEADLINE_S = 30 };      /* generous: valgrind is slow */
enum { BIG_WRITE = 16 << 20 }; /* CPython's SOCK_MAX_SIZE */

static int checks_failed;
static const char *current_test;
static bool no_fork; /* --no-fork: for ThreadSanitizer, whose own thread forbids forking */
static char tmpdir[64];

#define CHECK(cond) check((cond), #cond, __LINE__)

/* A test that hangs is a failure too: SIGALRM names it and ends the run. */
static void on_alarm(int signo) {
  (void)signo;
  static const char text[] = "FAIL (timed out) ";
  ssize_t n = write(1, text, sizeof text - 1);
  n += write(1, current_test, strlen(current_test));
  n += write(1, "\n", 1);
  _exit(n > 0 ? 1 : 2);
}

static bool check(bool ok, const char *what, int line) {
  if (!ok) {
    fprintf(stderr, "  line %d: CHECK(%s) failed\n", line, what);
    checks_failed++;
  }
  return ok;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fd_count(void) {
  DIR *dir = opendir("/proc/self/fd");
  int n = 0;
  while (dir != NULL && readdir(dir) != NULL)
    n++;
  if (dir != NULL)
    closedir(dir);
  return n;
}

static int child_status(pid_t pid) {
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
    return -1;
  return WEXITSTATUS(status);
}

/* ---- What the handlers and overridden methods record -------------------------------- */

struct record {
  atomic_int handled, errors, shutdowns, timeouts;
  int handle_status; /* what fail_handle returns */
  int marks;         /* forking: a pipe the children write their marks to */
  char error[SERVER_ERROR_SIZE];
  char thread_names[2][24];
  pthread_mutex_t lock; /* with changed: "a handler has started" */
  pthread_cond_t changed;
  bool started;
  pthread_t handler_thread;
  ssize_t written;
};

static void record_init(struct record *r) {
  memset(r, 0, sizeof *r);
  r->marks = -1;
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->changed, NULL);
}

static void mark(struct record *r, char c) {
  if (r->marks >= 0 && write(r->marks, &c, 1) != 1)
    perror("mark");
}

static void note_started(struct handler *h) {
  struct record *r = h->user;
  pthread_mutex_lock(&r->lock);
  r->started = true;
  r->handler_thread = pthread_self();
  pthread_cond_broadcast(&r->changed);
  pthread_mutex_unlock(&r->lock);
}

static bool wait_started(struct record *r) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += DEADLINE_S;
  pthread_mutex_lock(&r->lock);
  int rc = 0;
  while (!r->started && rc == 0)
    rc = pthread_cond_timedwait(&r->changed, &r->lock, &until);
  pthread_mutex_unlock(&r->lock);
  return r->started;
}

/* Python's test handler: self.wfile.write(self.rfile.readline()). */
static int echo_handle(struct handler *h) {
  char line[1024];
  ssize_t n = rfile_readline(&h->rfile, line, sizeof line);
  if (n < 0)
    return HANDLER_ERROR;
  return wfile_write(&h->wfile, line, (size_t)n) < 0 ? HANDLER_ERROR : HANDLER_OK;
}

/* BadHandler: notes the call, returns the status the test chose. */
static int fail_handle(struct handler *h) {
  struct record *r = h->user;
  atomic_fetch_add(&r->handled, 1);
  mark(r, 'H');
  return r->handle_status;
}

/* Reads until end of stream: blocks while a client is silent. */
static int stall_handle(struct handler *h) {
  note_started(h);
  char buf[64];
  ssize_t n;
  while ((n = rfile_read1(&h->rfile, buf, sizeof buf)) > 0)
    continue;
  return n < 0 ? HANDLER_ERROR : HANDLER_OK;
}

static void counting_handle_error(struct server *s, struct request *req) {
  struct record *r = s->user;
  atomic_fetch_add(&r->errors, 1);
  snprintf(r->error, sizeof r->error, "%s", req->error);
  mark(r, 'E');
}

static void counting_shutdown_request(struct server *s, struct request *req) {
  struct record *r = s->user;
  atomic_fetch_add(&r->shutdowns, 1);
  mark(r, 'S');
  (s->socket_type == SOCK_STREAM ? tcp_server_shutdown_request : base_server_shutdown_request)(s,
                                                                                               req);
}

static const struct handler_class echo_handler = {.handle = echo_handle};
static const struct handler_class fail_handler = {.handle = fail_handle};
static const struct handler_class stall_handler = {.handle = stall_handle};
/* StreamRequestHandler.timeout: a read may wait 50 ms. */
static const struct handler_class patient_handler = {.handle = echo_handle, .timeout = 0.05};

/* ---- Clients ----------------------------------------------------------------------- */

static const char *kind_address(enum server_kind kind) {
  static char path[128];
  static int n;
  if (kind == SERVER_TCP || kind == SERVER_UDP)
    return "127.0.0.1:0";
  snprintf(path, sizeof path, "%s/server-%d", tmpdir, n++);
  return path;
}

/* A server on a fresh address, with R (if any) as its user pointer. */
static struct server *make_server(enum server_kind kind, enum server_mode mode,
                                  const struct handler_class *handler, struct record *r) {
  if (r != NULL)
    record_init(r);
  struct server *s = server_new(kind, mode, kind_address(kind), handler, r);
  CHECK(s != NULL);
  return s;
}

/* A client of s; a Unix datagram client binds a path of its own, or it gets no reply. */
static int client_of(struct server *s, bool bind_path) {
  static int n;
  int fd = socket(s->address_family, s->socket_type, 0);
  if (fd >= 0 && s->kind == SERVER_UNIX_DGRAM && bind_path) {
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s/client-%d-%d", tmpdir, (int)getpid(), n++);
    if (bind(fd, (struct sockaddr *)&un, sizeof un) < 0)
      perror("bind client");
  }
  if (fd >= 0 && connect(fd, (struct sockaddr *)&s->server_address, s->server_address_len) < 0) {
    perror("connect");
    close(fd);
    return -1;
  }
  return fd;
}

static void close_client(int fd) {
  struct sockaddr_un un;
  socklen_t len = sizeof un;
  if (getsockname(fd, (struct sockaddr *)&un, &len) == 0 && un.sun_family == AF_UNIX &&
      len > offsetof(struct sockaddr_un, sun_path) && un.sun_path[0])
    unlink(un.sun_path);
  close(fd);
}

/* recv with a deadline: a stream up to a newline or end of stream, a datagram once. */
static ssize_t recv_reply(int fd, char *buf, size_t size, bool stream) {
  size_t total = 0;
  while (total < size) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, DEADLINE_S * 1000) != 1)
      return -1;
    ssize_t n = recv(fd, buf + total, size - total, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    total += (size_t)n;
    if (!stream || n == 0 || buf[total - 1] == '\n')
      break;
  }
  return (ssize_t)total;
}

/* A client that connects, and the one request handle_request takes from it. */
static int handled_client(struct server *s) {
  int fd = client_of(s, true);
  server_handle_request(s);
  return fd;
}

/* The server closed the connection (end of stream before the deadline); close ours. */
static bool hung_up(int fd) {
  char c;
  bool ok = recv_reply(fd, &c, 1, true) == 0;
  close(fd);
  return ok;
}

/* stream_examine / dgram_examine: send a line, expect it back. */
static bool exchange(struct server *s, const char *line) {
  int fd = client_of(s, true);
  char reply[1024];
  bool ok =
      fd >= 0 && send(fd, line, strlen(line), 0) == (ssize_t)strlen(line) &&
      recv_reply(fd, reply, sizeof reply, s->socket_type == SOCK_STREAM) == (ssize_t)strlen(line) &&
      memcmp(reply, line, strlen(line)) == 0;
  if (fd >= 0)
    close_client(fd);
  return ok;
}

/* ---- serve_forever in a thread, stopped with a deadline ------------------------------- */

struct serving {
  struct server *server;
  double poll_interval;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t done_changed;
  bool done;
  int status;
};

static void *serve_main(void *arg) {
  struct serving *sv = arg;
  int status = server_serve_forever(sv->server, sv->poll_interval);
  pthread_mutex_lock(&sv->lock);
  sv->status = status;
  sv->done = true;
  pthread_cond_broadcast(&sv->done_changed);
  pthread_mutex_unlock(&sv->lock);
  return NULL;
}

static void start_serving(struct serving *sv, struct server *s, double poll_interval) {
  memset(sv, 0, sizeof *sv);
  sv->server = s;
  sv->poll_interval = poll_interval;
  pthread_mutex_init(&sv->lock, NULL);
  pthread_cond_init(&sv->done_changed, NULL);
  if (pthread_create(&sv->thread, NULL, serve_main, sv) != 0) {
    perror("pthread_create");
    exit(1);
  }
}

/* Wait for serve_forever to return; a thread that will not end fails the whole run. */
static void join_serving(struct serving *sv, double deadline_s) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)deadline_s;
  pthread_mutex_lock(&sv->lock);
  while (!sv->done && pthread_cond_timedwait(&sv->done_changed, &sv->lock, &until) == 0)
    continue;
  bool done = sv->done;
  pthread_mutex_unlock(&sv->lock);
  if (!check(done, "serve_forever returned before the deadline", __LINE__))
    exit(1);
  pthread_join(sv->thread, NULL);
  pthread_mutex_destroy(&sv->lock);
  pthread_cond_destroy(&sv->done_changed);
}

static void stop_serving(struct serving *sv) {
  server_shutdown(sv->server);
  join_serving(sv, DEADLINE_S);
}

/* ---- SocketServerTest: the 12 echo combinations --------------------------------------- */

static const char *const kind_names[] = {"tcp", "udp", "unix_stream", "unix_dgram"};
static const char *const mode_names[] = {"sync", "threading", "forking"};

/* run_server + stream_examine/dgram_examine: 3 clients one after another. */
static void echo_in_thread(enum server_kind kind, enum server_mode mode) {
  struct server *s = make_server(kind, mode, &echo_handler, NULL);
  if (s == NULL)
    return;
  CHECK(strcmp(s->server_address_name, "127.0.0.1:0") != 0);
  struct serving sv;
  start_serving(&sv, s, 0.01);
  for (int i = 0; i < 3; i++)
    CHECK(exchange(s, "hello world\n"));
  if (s->socket_type == SOCK_DGRAM)
    CHECK(exchange(s, "")); /* the reply goes out even when empty */
  stop_serving(&sv);
  server_close(s);
  CHECK(server_fileno(s) == -1);
  CHECK(server_thread_count(s) == 0);
  server_free(s);
}

/*
 * Forking: the process must not run other threads, so the server runs in the main
 * thread and the client in a child process, which stops the server with SIGTERM.
 * simple_subprocess: a foreign child's exit status (72) survives the server.
 */
static void echo_forking(enum server_kind kind) {
  struct server *s = make_server(kind, SERVER_FORKING, &echo_handler, NULL);
  if (s == NULL)
    return;
  pid_t foreign = fork();
  if (foreign == 0)
    _exit(72);
  pid_t client = fork();
  if (client == 0) {
    bool ok = exchange(s, "hello world\n") && exchange(s, "hello world\n") &&
              exchange(s, "hello world\n");
    kill(getppid(), SIGTERM);
    _exit(ok ? 0 : 1);
  }
  server_shutdown_on_signals(s);
  CHECK(server_serve_forever(s, 0.01) == 0);
  server_close(s);
  CHECK(server_fileno(s) == -1);
  CHECK(server_active_children(s) == 0);
  CHECK(child_status(client) == 0);
  CHECK(child_status(foreign) == 72);
  server_free(s);
}

static void test_echo(void) {
  for (int kind = SERVER_TCP; kind <= SERVER_UNIX_DGRAM; kind++)
    for (int mode = SERVER_SYNC; mode <= (no_fork ? SERVER_THREADING : SERVER_FORKING); mode++) {
      int before = checks_failed;
      if (mode == SERVER_FORKING)
        echo_forking(kind);
      else
        echo_in_thread(kind, mode);
      if (checks_failed != before)
        fprintf(stderr, "  (echo %s %s)\n", kind_names[kind], mode_names[mode]);
    }
}

/* The pools (beyond Python): both of ThreadPoolMixIn's, on TCP and a Unix stream, echo
 * with two workers in the registry; closed, nothing is left. Datagrams are refused. */
static void test_thread_pool(void) {
  for (int by = ACCEPT_BY_WORKERS; by <= ACCEPT_BY_MAIN; by++)
    for (int kind = SERVER_TCP; kind <= SERVER_UNIX_STREAM; kind += SERVER_UNIX_STREAM) {
      int fds = fd_count();
      struct server *s = make_server(kind, SERVER_POOL, &echo_handler, NULL);
      if (s == NULL)
        return;
      s->workers = 2;
      s->accept_by = by;
      struct serving sv;
      start_serving(&sv, s, 0.01);
      for (int i = 0; i < 3; i++)
        CHECK(exchange(s, "hello pool\n"));
      CHECK(server_thread_count(s) == 2);
      stop_serving(&sv);
      server_close(s);
      CHECK(server_thread_count(s) == 0);
      server_free(s);
      CHECK(fd_count() == fds);
    }
  for (int mode = SERVER_PREFORK; mode <= SERVER_POOL; mode++)
    for (int kind = SERVER_UDP; kind <= SERVER_UNIX_DGRAM; kind += SERVER_UNIX_DGRAM - SERVER_UDP) {
      errno = 0;
      CHECK(server_new(kind, mode, kind_address(kind), &echo_handler, NULL) == NULL);
      CHECK(errno == EINVAL);
    }
}

/* PreforkingMixIn with each accept lock: two workers echo for a client (a child, which
 * then stops the server with SIGTERM); afterwards no worker is left. */
static void test_prefork(void) {
  for (int lock = ACCEPT_LOCK_NONE; lock <= ACCEPT_LOCK_MUTEX; lock++) {
    struct server *s = server_new_unbound(SERVER_TCP, SERVER_PREFORK, kind_address(SERVER_TCP),
                                          &echo_handler, NULL);
    if (!CHECK(s != NULL))
      return;
    s->workers = 2;
    s->accept_lock = lock; /* before activate, which makes the lock */
    if (!CHECK(server_bind_and_activate(s) == 0)) {
      server_free(s);
      return;
    }
    pid_t client = fork();
    if (client == 0) {
      bool ok = exchange(s, "hello\n") && exchange(s, "hello\n") && exchange(s, "hello\n");
      kill(getppid(), SIGTERM);
      _exit(ok ? 0 : 1);
    }
    server_shutdown_on_signals(s);
    CHECK(server_serve_forever(s, 0.01) == 0);
    server_close(s);
    CHECK(server_active_children(s) == 0);
    CHECK(child_status(client) == 0);
    server_free(s);
  }
}

/* test_shutdown (Issue #2302): serve_forever started and shutdown() at once, 20 times. */
static void test_shutdown_race(void) {
  for (int mode = SERVER_SYNC; mode <= SERVER_THREADING; mode++)
    for (int i = 0; i < 20; i++) {
      struct server *s = make_server(SERVER_TCP, mode, &echo_handler, NULL);
      if (s == NULL)
        return;
      struct serving sv;
      start_serving(&sv, s, 0.5);
      stop_serving(&sv);
      server_free(s);
    }
}

/* Better than Python (gh-88932): shutdown() does not wait for the poll interval. */
static void test_shutdown_is_immediate(void) {
  struct server *s = make_server(SERVER_TCP, SERVER_THREADING, &echo_handler, NULL);
  if (s == NULL)
    return;
  struct serving sv;
  start_serving(&sv, s, 3600);
  CHECK(exchange(s, "ping\n")); /* serve_forever is surely in its wait now */
  double start = now();
  stop_serving(&sv);
  CHECK(now() - start < 5);
  server_free(s);
}

/* A stray shutdown(), with nothing serving, ends the next serve_forever at once. */
static void test_shutdown_before_serving(void) {
  struct server *s = make_server(SERVER_TCP, SERVER_SYNC, &echo_handler, NULL);
  if (s == NULL)
    return;
  server_shutdown(s); /* returns: nothing to wait for (Python would hang here) */
  CHECK(server_serve_forever(s, 3600) == 0);
  server_free(s);
}

/* A handler stops its own server: no deadlock (bpo-39797), in either mode. */
static int shutdown_handle(struct handler *h) {
  server_shutdown(h->server);
  return echo_handle(h);
}
static const struct handler_class shutdown_handler = {.handle = shutdown_handle};

static void test_shutdown_from_handler(void) {
  for (int mode = SERVER_SYNC; mode <= SERVER_THREADING; mode++) {
    struct server *s = make_server(SERVER_TCP, mode, &shutdown_handler, NULL);
    if (s == NULL)
      return;
    struct serving sv;
    start_serving(&sv, s, 3600);
    exchange(s, "bye\n"); /* sync: the reply may be cut by the stop itself */
    join_serving(&sv, DEADLINE_S);
    CHECK(sv.status == 0);
    server_free(s);
  }
}

/* test_tcpserver_bind_leak (Issue #22435), 2048 times, and for the other failures. */
static void test_bind_failure_leaks_nothing(void) {
  struct server *taken = server_new(SERVER_TCP, SERVER_SYNC, "127.0.0.1:0", &echo_handler, NULL);
  if (!CHECK(taken != NULL))
    return;
  char missing[128];
  snprintf(missing, sizeof missing, "%s/no/such/dir", tmpdir);
  int before = fd_count();
  for (int i = 0; i < 2048; i++) {
    errno = 0;
    CHECK(server_new(SERVER_TCP, i % 3, taken->server_address_name, &echo_handler, NULL) == NULL);
    CHECK(errno == EADDRINUSE);
  }
  CHECK(server_new(SERVER_UNIX_STREAM, SERVER_FORKING, missing, &echo_handler, NULL) == NULL);
  CHECK(errno == ENOENT);
  CHECK(server_new(SERVER_UDP, SERVER_SYNC, "no.such.host.invalid:0", &echo_handler, NULL) == NULL);
  CHECK(errno == EADDRNOTAVAIL);
  CHECK(server_new(SERVER_TCP, SERVER_SYNC, "no-port", &echo_handler, NULL) == NULL);
  CHECK(fd_count() == before);
  server_free(taken);
}

/* test_close_immediately and test_context_manager: fileno() is -1 after close. */
static void test_close_without_serving(void) {
  for (int kind = SERVER_TCP; kind <= SERVER_UNIX_DGRAM; kind++) {
    struct server *s = make_server(kind, SERVER_THREADING, &echo_handler, NULL);
    if (s == NULL)
      return;
    CHECK(server_fileno(s) >= 0);
    server_close(s);
    CHECK(server_fileno(s) == -1);
    server_close(s);                /* twice is harmless, as in Python */
    if (kind >= SERVER_UNIX_STREAM) /* better than Python: the path is gone */
      CHECK(access(((struct sockaddr_un *)&s->server_address)->sun_path, F_OK) < 0);
    server_free(s);
  }
}

/* ---- ErrorHandlerTest ------------------------------------------------------------------ */

static struct server *error_server(enum server_mode mode, struct record *r) {
  struct server *s = make_server(SERVER_TCP, mode, &fail_handler, r);
  if (s != NULL) {
    s->ops.handle_error = counting_handle_error;
    s->ops.shutdown_request = counting_shutdown_request;
  }
  return s;
}

/* A client connects and leaves; handle_request(); server_close(). */
static void check_error_handling(enum server_mode mode, int handle_status) {
  struct record r;
  struct server *s = error_server(mode, &r);
  if (s == NULL)
    return;
  r.handle_status = handle_status;
  int marks[2];
  if (mode == SERVER_FORKING && CHECK(pipe(marks) == 0))
    r.marks = marks[1];
  int fd = client_of(s, true);
  close(fd);
  int status = server_handle_request(s);
  server_close(s);
  /* A fatal status leaves the sync server's loop, as SystemExit does. */
  CHECK(status == (mode == SERVER_SYNC && handle_status == HANDLER_FATAL ? HANDLER_FATAL : 0));
  const char *expected = handle_status == HANDLER_ERROR ? "HES" : "HS";
  if (mode == SERVER_FORKING) { /* the counts are the child's: read its marks */
    char got[8] = "";
    close(marks[1]);
    CHECK(read(marks[0], got, sizeof got - 1) == (ssize_t)strlen(expected));
    CHECK(strcmp(got, expected) == 0);
    close(marks[0]);
  } else {
    CHECK(r.handled == 1);
    CHECK(r.errors == (handle_status == HANDLER_ERROR));
    CHECK(r.shutdowns == 1);
  }
  server_free(s);
}

static void test_error_handling(void) {
  for (int mode = SERVER_SYNC; mode <= SERVER_FORKING; mode++) {
    check_error_handling(mode, HANDLER_ERROR); /* test_*_handled */
    check_error_handling(mode, HANDLER_FATAL); /* test_*_not_handled */
  }
}

/* test_shutdown_request_called_if_verify_request_false (Issue #26309). */
static bool refuse(struct server *s, struct request *req) {
  (void)s, (void)req;
  return false;
}

static void *idle_thread(void *arg) {
  wait_started(arg); /* the test's go-ahead to end */
  return NULL;
}

static bool under_valgrind(void) {
  const char *preload = getenv("LD_PRELOAD");
  return preload != NULL && strstr(preload, "valgrind") != NULL;
}

/*
 * A request turned down is shut down exactly once and leaks nothing: by verify_request
 * (no handle_error), or by a forking server in a process that runs other threads, where
 * fork() is unsafe (gh-100228): handle_error says why, as for a failed fork().
 */
static void test_refused_request_shut_down_once(void) {
  static const char *const why[] = {"", "fork refused"};
  for (int refusal = 0; refusal < 2; refusal++) {
    struct record r;
    struct server *s = error_server(refusal == 1 ? SERVER_FORKING : SERVER_THREADING, &r);
    if (s == NULL)
      return;
    pthread_t thread;
    if (refusal == 0)
      s->ops.verify_request = refuse;
    else
      pthread_create(&thread, NULL, idle_thread, &r);
    int before = fd_count();
    CHECK(hung_up(handled_client(s))); /* at once, not a hang */
    CHECK(r.shutdowns == 1 && r.handled == 0 && r.errors == (refusal > 0));
    CHECK(strstr(r.error, why[refusal]) != NULL);
    CHECK(fd_count() == before);
    CHECK(server_active_children(s) == 0 && server_thread_count(s) == 0);
    if (refusal == 1) {
      pthread_mutex_lock(&r.lock);
      r.started = true;
      pthread_cond_broadcast(&r.changed);
      pthread_mutex_unlock(&r.lock);
      pthread_join(thread, NULL);
    }
    server_free(s);
  }
}

/* test_threads_reaped (bpo-37193): the registry stays small over many requests. */
static void test_thread_registry_bounded(void) {
  struct server *s = make_server(SERVER_TCP, SERVER_THREADING, &echo_handler, NULL);
  if (s == NULL)
    return;
  size_t most = 0;
  for (int i = 0; i < 500; i++) {
    int fd = client_of(s, true);
    CHECK(send(fd, "x\n", 2, 0) == 2);
    server_handle_request(s);
    char reply[8];
    CHECK(recv_reply(fd, reply, sizeof reply, true) == 2);
    CHECK(recv_reply(fd, reply, sizeof reply, true) == 0); /* the handler is done */
    close(fd);
    size_t n = server_thread_count(s);
    most = n > most ? n : most;
  }
  /* Python before bpo-37193 held all 500; we hold the threads that have not ended yet
     and those that ended since the last request: one or two, a few on a busy machine. */
  if (!CHECK(most <= 20))
    fprintf(stderr, "  the registry held %zu threads\n", most);
  double deadline = now() + DEADLINE_S; /* and a poll tick joins the ones that ended */
  while (server_thread_count(s) > 0 && now() < deadline)
    s->ops.service_actions(s);
  CHECK(server_thread_count(s) == 0);
  server_free(s);
}

/* Threads are named as Python names them; sync handlers run in "MainThread". */
static int name_handle(struct handler *h) {
  struct record *r = h->user;
  int i = atomic_fetch_add(&r->handled, 1);
  snprintf(r->thread_names[i % 2], sizeof r->thread_names[0], "%s", current_thread_name());
  return echo_handle(h);
}
static const struct handler_class name_handler = {.handle = name_handle};

static void test_thread_names(void) {
  struct record r;
  struct server *s = make_server(SERVER_TCP, SERVER_THREADING, &name_handler, &r);
  if (s == NULL)
    return;
  struct serving sv;
  start_serving(&sv, s, 0.01);
  CHECK(exchange(s, "a\n"));
  CHECK(exchange(s, "b\n"));
  stop_serving(&sv);
  server_free(s);
  unsigned first, second;
  CHECK(sscanf(r.thread_names[0], "Thread-%u", &first) == 1);
  CHECK(sscanf(r.thread_names[1], "Thread-%u", &second) == 1 && second == first + 1);
  s = make_server(SERVER_TCP, SERVER_SYNC, &name_handler, &r);
  if (s == NULL)
    return;
  int fd = client_of(s, true);
  CHECK(send(fd, "c\n", 2, 0) == 2);
  server_handle_request(s);
  close(fd);
  CHECK(strcmp(r.thread_names[0], "MainThread") == 0);
  server_free(s);
}

/* ---- SocketWriterTest.test_write: 16 MiB through wfile while signals interrupt ------- */

static void on_sigusr1(int signo) { (void)signo; }

static int big_write_handle(struct handler *h) {
  struct record *r = h->user;
  char *data = malloc(BIG_WRITE);
  if (data == NULL)
    return HANDLER_ERROR;
  for (size_t i = 0; i < BIG_WRITE; i++)
    data[i] = (char)(i % 251);
  note_started(h);
  r->written = wfile_write(&h->wfile, data, BIG_WRITE);
  free(data);
  char c; /* stay alive, and signalable, until the client hangs up */
  while (rfile_read1(&h->rfile, &c, 1) > 0)
    continue;
  return HANDLER_OK;
}
static const struct handler_class big_write_handler = {.handle = big_write_handle};

static void test_big_write_with_signals(void) {
  struct sigaction action = {.sa_handler = on_sigusr1}, saved; /* no SA_RESTART */
  sigemptyset(&action.sa_mask);
  sigaction(SIGUSR1, &action, &saved);
  struct record r;
  struct server *s = make_server(SERVER_TCP, SERVER_THREADING, &big_write_handler, &r);
  if (s == NULL)
    return;
  struct serving sv;
  start_serving(&sv, s, 0.01);
  int fd = client_of(s, true);
  CHECK(wait_started(&r));
  char *buf = malloc(1 << 16);
  size_t total = 0;
  bool same = true;
  int signals = 0;
  while (total < BIG_WRITE) {
    if (signals < 2000 && pthread_kill(r.handler_thread, SIGUSR1) == 0)
      signals++;
    ssize_t n = recv_reply(fd, buf, 1 << 16, false);
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; i++)
      same &= buf[i] == (char)((total + (size_t)i) % 251);
    total += (size_t)n;
  }
  close(fd);
  stop_serving(&sv);
  server_close(s); /* joins the handler thread */
  CHECK(total == BIG_WRITE);
  CHECK(same);
  CHECK(r.written == BIG_WRITE);
  CHECK(signals > 0);
  free(buf);
  server_free(s);
  sigaction(SIGUSR1, &saved, NULL);
}

/* ---- Stopping with handlers still at work (bpo-40305 and friends) --------------------- */

/*
 * A silent client cannot keep a server from stopping: sync ends the session at
 * shutdown(), threading at server_close (bpo-40305: Python hangs there for ever), and
 * forking at server_close too, by closing the pipe its children watch. The forking
 * server runs in this (single-threaded) process, through handle_request.
 */
static void test_stop_ends_stalled_session(void) {
  for (int mode = SERVER_SYNC; mode <= (no_fork ? SERVER_THREADING : SERVER_FORKING); mode++) {
    struct record r;
    struct server *s = make_server(mode == SERVER_SYNC ? SERVER_UNIX_STREAM : SERVER_TCP, mode,
                                   &stall_handler, &r);
    if (s == NULL)
      return;
    struct serving sv;
    int fd;
    if (mode == SERVER_FORKING) {
      fd = handled_client(s);
      CHECK(server_active_children(s) == 1);
    } else {
      start_serving(&sv, s, 0.01);
      fd = client_of(s, true);
      CHECK(wait_started(&r));
      stop_serving(&sv);
    }
    server_close(s); /* the alarm ends the run if this hangs */
    CHECK(server_active_children(s) == 0);
    CHECK(hung_up(fd));
    server_free(s);
  }
}

/* StreamRequestHandler.timeout: a silent client is an error, handled. */
static void test_handler_timeout(void) {
  struct record r;
  struct server *s = make_server(SERVER_TCP, SERVER_SYNC, &patient_handler, &r);
  if (s == NULL)
    return;
  s->ops.handle_error = counting_handle_error;
  int fd = handled_client(s);
  close(fd);
  CHECK(r.errors == 1);
  CHECK(strstr(r.error, "timed out") != NULL);
  server_free(s);
}

/* handle_request with a timeout calls handle_timeout. */
static void count_timeout(struct server *s) {
  atomic_fetch_add(&((struct record *)s->user)->timeouts, 1);
}

static void test_handle_request_timeout(void) {
  struct record r;
  struct server *s = make_server(SERVER_UDP, SERVER_SYNC, &echo_handler, &r);
  if (s == NULL)
    return;
  s->timeout = 0.01;
  s->ops.handle_timeout = count_timeout;
  CHECK(server_handle_request(s) == 0);
  CHECK(r.timeouts == 1);
  server_free(s);
}

/* ---- Datagrams: too long, or a reply with nowhere to go -------------------------------- */

/* DatagramRequestHandler.packet: the whole datagram, sent back as it came. */
static int packet_handle(struct handler *h) {
  atomic_fetch_add(&((struct record *)h->user)->handled, 1);
  return wfile_write(&h->wfile, h->packet, h->packet_len) < 0 ? HANDLER_ERROR : HANDLER_OK;
}
static const struct handler_class packet_handler = {.handle = packet_handle};

static void quiet_stderr(int *saved) {
  fflush(stderr);
  *saved = dup(2);
  int null = open("/dev/null", O_WRONLY);
  dup2(null, 2);
  close(null);
}

static void restore_stderr(int saved) {
  dup2(saved, 2);
  close(saved);
}

static void test_datagram_too_long(void) {
  struct record r;
  struct server *s = make_server(SERVER_UDP, SERVER_SYNC, &packet_handler, &r);
  if (s == NULL)
    return;
  int fd = client_of(s, true);
  static char big[8193];
  CHECK(send(fd, big, sizeof big, 0) == (ssize_t)sizeof big);
  CHECK(send(fd, big, 8192, 0) == 8192);
  int saved;
  quiet_stderr(&saved);
  server_handle_request(s); /* logged and dropped */
  restore_stderr(saved);
  CHECK(r.handled == 0);
  server_handle_request(s); /* 8192 bytes are whole */
  CHECK(r.handled == 1);
  char reply[8200];
  CHECK(recv_reply(fd, reply, sizeof reply, false) == 8192);
  close(fd);
  server_free(s);
}

static void test_datagram_reply_failure(void) {
  struct server *s = make_server(SERVER_UNIX_DGRAM, SERVER_SYNC, &echo_handler, NULL);
  if (s == NULL)
    return;
  int unbound = client_of(s, false);
  CHECK(send(unbound, "lost\n", 5, 0) == 5);
  int saved;
  quiet_stderr(&saved);
  CHECK(server_handle_request(s) == 0); /* the reply cannot go out: logged */
  restore_stderr(saved);
  close(unbound);
  struct serving sv;
  start_serving(&sv, s, 0.01);
  CHECK(exchange(s, "still serving\n"));
  stop_serving(&sv);
  server_free(s);
}

/* ---- EMFILE on accept: logged and backed off, not a busy loop ------------------------- */

static struct request *counting_get_request(struct server *s) {
  atomic_fetch_add(&((struct record *)s->user)->handled, 1);
  return tcp_server_get_request(s);
}

static void test_emfile_backs_off(void) {
  struct record r;
  struct server *s = make_server(SERVER_TCP, SERVER_SYNC, &echo_handler, &r);
  if (s == NULL)
    return;
  s->ops.get_request = counting_get_request;
  int fd = client_of(s, true);
  CHECK(send(fd, "late\n", 5, 0) == 5);
  /* Fill the descriptor table, so accept() fails with EMFILE. */
  struct rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  int *spare = malloc(sizeof *spare * (size_t)limit.rlim_cur), held = 0;
  int saved;
  quiet_stderr(&saved);
  while (spare != NULL && (spare[held] = dup(fd)) >= 0)
    held++;
  CHECK(errno == EMFILE);
  struct serving sv;
  start_serving(&sv, s, 0.001);
  struct timespec window = {.tv_nsec = 300 * 1000 * 1000}; /* a measurement, not a wait */
  nanosleep(&window, NULL);
  stop_serving(&sv);
  while (held > 0)
    close(spare[--held]);
  free(spare);
  restore_stderr(saved);
  CHECK(r.handled >= 1 && r.handled <= 10); /* a 100 ms pause each: 3 or 4, not thousands */
  /* Descriptors again: the client waiting in the backlog is served. Not under valgrind,
     which takes the kernel's descriptor above its own limit and closes it. */
  if (!under_valgrind()) {
    server_handle_request(s);
    char reply[8];
    CHECK(recv_reply(fd, reply, sizeof reply, true) == 5);
  }
  close(fd);
  server_free(s);
}

/* ---- rfile ------------------------------------------------------------------------ */

/*
 * read1 as Python's: with nothing buffered, a caller's buffer of at least a buffer's
 * worth gets all that is there in one read (so a 16 KiB message is not cut at 8 KiB),
 * and a small one is served from the buffer, a byte at a time if it asks so.
 */
static void test_rfile_read1_large_and_small(void) {
  enum { MESSAGE = 2 * RFILE_BUFFER_SIZE + 10 };
  int sv[2];
  if (!CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0))
    return;
  char *out = malloc(MESSAGE), *in = malloc(MESSAGE);
  for (size_t i = 0; i < MESSAGE; i++)
    out[i] = (char)('a' + i % 26);
  CHECK(write(sv[1], out, MESSAGE) == MESSAGE);
  struct rfile rf = {.fd = sv[0], .stop_fd = -1, .timeout_ms = 1000};
  CHECK(rfile_read1(&rf, in, MESSAGE) == MESSAGE);
  CHECK(memcmp(in, out, MESSAGE) == 0);
  CHECK(write(sv[1], "xyz\n", 4) == 4);
  char c = 0;
  CHECK(rfile_read1(&rf, &c, 1) == 1 && c == 'x');
  CHECK(rfile_read1(&rf, in, MESSAGE) == 3 && memcmp(in, "yz\n", 3) == 0); /* the rest */
  close(sv[1]);
  CHECK(rfile_read1(&rf, in, MESSAGE) == 0);
  close(sv[0]);
  free(out);
  free(in);
}

/* ---- Stopping early, time that is up, addresses refused (tests/step6_stop.bats too) ---- */

/* PID's exit status, if it ends within SECONDS; else it is killed and -1. */
static int child_status_within(pid_t pid, double seconds) {
  double deadline = now() + seconds;
  int status;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    poll(NULL, 0, 10);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * A SIGTERM while the server is still binding (before server_shutdown_on_signals) is
 * neither fatal nor lost: serve_forever returns at once and the path is removed. In a
 * child process, whose SIGTERM the test may leave to the framework.
 */
static void test_sigterm_before_serving(void) {
  const char *path = kind_address(SERVER_UNIX_STREAM);
  pid_t pid = fork();
  if (pid == 0) {
    struct server *s = server_new_unbound(SERVER_UNIX_STREAM, SERVER_SYNC, path, &echo_handler,
                                          NULL);
    raise(SIGTERM);
    int bound = s != NULL ? server_bind_and_activate(s) : -1;
    int caught = bound == 0 ? server_shutdown_on_signals(s) : -1;
    int status = caught == 0 ? server_serve_forever(s, 10) : -1; /* 10 s: not the poll tick */
    server_free(s);
    _exit(status == 0 && access(path, F_OK) != 0 ? 0 : 3);
  }
  CHECK(child_status_within(pid, DEADLINE_S) == 0);
}

static int started_echo_handle(struct handler *h) {
  note_started(h);
  return echo_handle(h);
}

/* A timeout shorter than a millisecond is still a timeout: it must not round to "none". */
static const struct handler_class hasty_handler = {.handle = echo_handle, .timeout = 1e-7};

static void test_tiny_timeout_is_a_timeout(void) {
  pid_t pid = fork();
  if (pid == 0) { /* a hang is seen as a child that does not end */
    struct record r;
    struct server *s = make_server(SERVER_TCP, SERVER_SYNC, &hasty_handler, &r);
    if (s == NULL)
      _exit(3);
    s->ops.handle_error = counting_handle_error;
    int fd = handled_client(s); /* silent */
    close(fd);
    bool timed_out = r.errors == 1 && strstr(r.error, "timed out") != NULL;
    server_free(s);
    _exit(timed_out ? 0 : 4);
  }
  CHECK(child_status_within(pid, 5) == 0);
}

/* A signal that interrupts the wait after its deadline has passed: the time is up, not
 * "wait for ever". The handler thread is flooded with SIGUSR1 around its deadline, which
 * is not a whole number of milliseconds, so poll()'s rounded-up wait ends past it. Five
 * silent clients, one after the other: each must be hung up on. */
static const struct handler_class brief_handler = {.handle = started_echo_handle,
                                                   .timeout = 0.0205};

static void test_eintr_after_deadline(void) {
  struct sigaction action = {.sa_handler = on_sigusr1}, saved; /* no SA_RESTART */
  sigemptyset(&action.sa_mask);
  sigaction(SIGUSR1, &action, &saved);
  struct record r;
  struct server *s = make_server(SERVER_TCP, SERVER_SYNC, &brief_handler, &r);
  if (s == NULL)
    return;
  s->ops.handle_error = counting_handle_error;
  struct serving sv;
  start_serving(&sv, s, 0.01);
  int hung_up_in_time = 0;
  for (int client = 0; client < 5; client++) {
    pthread_mutex_lock(&r.lock);
    r.started = false;
    pthread_mutex_unlock(&r.lock);
    int fd = client_of(s, true); /* silent */
    CHECK(wait_started(&r));
    bool hung_up = false;
    for (double deadline = now() + 3; !hung_up && now() < deadline;) {
      pthread_kill(r.handler_thread, SIGUSR1); /* the serving thread: alive till joined */
      struct pollfd p = {.fd = fd, .events = POLLIN};
      hung_up = poll(&p, 1, 0) == 1;
    }
    hung_up_in_time += hung_up;
    close(fd);
  }
  stop_serving(&sv);
  CHECK(hung_up_in_time == 5);
  CHECK(r.errors == 5 && strstr(r.error, "timed out") != NULL);
  server_free(s);
  sigaction(SIGUSR1, &saved, NULL);
}

/* Addresses that must not be served: an empty host (every interface), an empty path (an
 * abstract name nobody can reach); a name that does not resolve says why. */
static void test_addresses_refused(void) {
  errno = 0;
  CHECK(server_new(SERVER_TCP, SERVER_SYNC, ":0", &echo_handler, NULL) == NULL);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(server_new(SERVER_UNIX_STREAM, SERVER_SYNC, "", &echo_handler, NULL) == NULL);
  CHECK(errno == EINVAL);
  CHECK(server_new(SERVER_TCP, SERVER_SYNC, "nonsense.invalid:0", &echo_handler, NULL) == NULL);
  CHECK(strstr(server_address_error(), "cannot resolve nonsense.invalid: ") != NULL);
  /* "[HOST]" where HOST came with its brackets already: one pair is the host's syntax. */
  struct server *s = server_new(SERVER_TCP, SERVER_SYNC, "[[127.0.0.1]]:0", &echo_handler, NULL);
  CHECK(s != NULL && strncmp(s->server_address_name, "127.0.0.1:", 10) == 0);
  CHECK(server_address_error()[0] == '\0');
  server_free(s);
}

/* The header's example is a whole server, and must compile as written: it is cut out of
 * the comment (each line loses its " *   ") and handed to the compiler, syntax only. */
static void test_header_example(void) {
  const char *slash = strrchr(__FILE__, '/'); /* the header sits beside this file */
  int dir_len = slash != NULL ? (int)(slash - __FILE__) : 1;
  const char *dir = slash != NULL ? __FILE__ : ".";
  char header[256], example[256], command[1024];
  snprintf(header, sizeof header, "%.*s/socketserver.h", dir_len, dir);
  snprintf(example, sizeof example, "%s/example.c", tmpdir);
  FILE *in = fopen(header, "r");
  FILE *out = fopen(example, "w");
  CHECK(in != NULL && out != NULL);
  char line[256];
  bool inside = false, seen_main = false, complete = false;
  while (in != NULL && out != NULL && !complete && fgets(line, sizeof line, in) != NULL) {
    if (strcmp(line, " *   #include \"socketserver.h\"\n") == 0)
      inside = true;
    if (!inside)
      continue;
    fputs(strncmp(line, " *   ", 5) == 0 ? line + 5 : "\n", out);
    if (strncmp(line, " *   int main(", 14) == 0)
      seen_main = true;
    complete = seen_main && strcmp(line, " *   }\n") == 0;
  }
  if (in != NULL)
    fclose(in);
  if (out != NULL)
    fclose(out);
  CHECK(complete);
  const char *cc = getenv("CC") != NULL ? getenv("CC") : "cc";
  snprintf(command, sizeof command,
           "%s -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I '%.*s' '%s'", cc, dir_len,
           dir, example);
  int status = system(command);
  CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- The runner -------------------------------------------------------------------------- */

static const struct {
  const char *name;
  void (*run)(void);
  bool forks;
  bool runs_compiler; /* not under valgrind, which would trace the compiler and its leaks */
} tests[] = {
    {"shutdown_race", test_shutdown_race, false, false},
    {"shutdown_is_immediate", test_shutdown_is_immediate, false, false},
    {"shutdown_before_serving", test_shutdown_before_serving, false, false},
    {"shutdown_from_handler", test_shutdown_from_handler, false, false},
    {"bind_failure_leaks_nothing", test_bind_failure_leaks_nothing, false, false},
    {"close_without_serving", test_close_without_serving, false, false},
    {"thread_registry_bounded", test_thread_registry_bounded, false, false},
    {"thread_names", test_thread_names, false, false},
    {"big_write_with_signals", test_big_write_with_signals, false, false},
    {"stop_ends_stalled_session", test_stop_ends_stalled_session, false, false},
    {"handler_timeout", test_handler_timeout, false, false},
    {"handle_request_timeout", test_handle_request_timeout, false, false},
    {"datagram_too_long", test_datagram_too_long, false, false},
    {"datagram_reply_failure", test_datagram_reply_failure, false, false},
    {"emfile_backs_off", test_emfile_backs_off, false, false},
    {"refused_request_shut_down_once", test_refused_request_shut_down_once, false, false},
    {"error_handling", test_error_handling, true, false},
    {"echo", test_echo, false, false},
    {"thread_pool", test_thread_pool, false, false},
    {"prefork", test_prefork, true, false},
    {"rfile_read1_large_and_small", test_rfile_read1_large_and_small, false, false},
    {"sigterm_before_serving", test_sigterm_before_serving, true, false},
    {"tiny_timeout_is_a_timeout", test_tiny_timeout_is_a_timeout, true, false},
    {"eintr_after_deadline", test_eintr_after_deadline, false, false},
    {"addresses_refused", test_addresses_refused, false, false},
    {"header_example", test_header_example, true, true}, /* system() forks the compiler */
};

/* No words: every test. */
static bool selected(const char *name, char **words) {
  for (char **w = words; *w != NULL; w++)
    if (strstr(name, *w) != NULL)
      return true;
  return words[0] == NULL;
}

static void remove_tmpdir(void) {
  DIR *dir = opendir(tmpdir);
  struct dirent *e;
  char path[512];
  while (dir != NULL && (e = readdir(dir)) != NULL) {
    snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
    unlink(path);
  }
  if (dir != NULL)
    closedir(dir);
  rmdir(tmpdir);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(tmpdir, sizeof tmpdir, "/tmp/test_socketserver.XXXXXX");
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  no_fork = argc > 1 && strcmp(argv[1], "--no-fork") == 0;
  const char *preload = getenv("LD_PRELOAD"); /* valgrind preloads its vgpreload_*.so */
  bool under_valgrind = preload != NULL && strstr(preload, "vgpreload") != NULL;
  char **words = no_fork ? argv + 2 : argv + 1;
  signal(SIGALRM, on_alarm);
  int passed = 0, failed = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    if (!selected(tests[i].name, words) || (no_fork && tests[i].forks))
      continue;
    if (under_valgrind && tests[i].runs_compiler) {
      printf("skip %s (under valgrind)\n", tests[i].name);
      continue;
    }
    int before = checks_failed;
    current_test = tests[i].name;
    alarm(4 * DEADLINE_S);
    tests[i].run();
    alarm(0);
    bool ok = checks_failed == before;
    printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
    if (ok)
      passed++;
    else
      failed++;
  }
  remove_tmpdir();
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
