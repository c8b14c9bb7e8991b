/*
 * step6_socketserver/socketserver_signals.c - the stop: shutdown(), and SIGINT and
 * SIGTERM, which ask for it.
 *
 * Python's counterpart: BaseServer.shutdown() and its __shutdown_request flag; Python
 * leaves the signals to the program (KeyboardInterrupt). A C signal handler may do
 * little: it sets a flag and writes a byte to the self-pipe serve_forever watches, which
 * wakes it at once (the self-pipe trick). A forked child that gets the signal ends its
 * own session only. Read next: socketserver_threading.c.
 */
#include "socketserver_private.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

/* The one server the SIGINT/SIGTERM handlers stop: a signal handler has no argument. */
static struct server *_Atomic signal_target;
static struct sigaction saved_actions[2]; /* SIGINT's and SIGTERM's before we took them */
static pid_t signals_taken_by;            /* the process that installed our handlers */
static atomic_int live_servers;           /* the handlers go when the last server does */
static atomic_int stop_pending;           /* a stop signal came with no server to stop */
static atomic_int stop_signalled;         /* a stop signal came: keep the handlers to the end */
/* A forked child: its connection, which a stop signal shuts down, ending its session. */
atomic_int child_connection = -1;
atomic_int child_stop;

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
int take_signals(void) {
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
void release_signals(struct server *s) {
  struct server *expected = s;
  atomic_compare_exchange_strong(&signal_target, &expected, NULL);
  if (atomic_fetch_sub(&live_servers, 1) != 1 || signals_taken_by != getpid() ||
      atomic_load(&stop_signalled))
    return;
  sigaction(SIGINT, &saved_actions[0], NULL);
  sigaction(SIGTERM, &saved_actions[1], NULL);
  signals_taken_by = 0;
}
