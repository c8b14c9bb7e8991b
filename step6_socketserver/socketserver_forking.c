/*
 * step6_socketserver/socketserver_forking.c - ForkingMixIn: a process per request.
 *
 * Python's counterpart: ForkingMixIn in Lib/socketserver.py (process_request forks, the
 * child handles the request and _exits; collect_children reaps, and waits at
 * max_children). UNP's serv01 is the same design. Its state is the list of its
 * children's pids, struct children, which the prefork (socketserver_prefork.c) shares.
 * Read next: socketserver_prefork.c.
 */
#include "socketserver_private.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { CHILD_POLL_MS = 10 };   /* how often a wait for children looks again */
enum { CHILD_CONT_MS = 1000 }; /* after SIGCONT, how long before SIGKILL */

static const struct server_ops forking_mixin_methods = {
    .process_request = forking_mixin_process_request,
    .handle_timeout = forking_mixin_handle_timeout,
    .service_actions = forking_mixin_service_actions,
    .server_close = forking_mixin_server_close,
};

static int forking_mixin_open(struct server *s) {
  s->state->mixin = calloc(1, sizeof(struct children));
  if (s->state->mixin == NULL)
    return -1;
  return open_pipe(s->state->children_pipe);
}

static void forking_mixin_free(struct server *s) {
  struct children *children = s->state->mixin;
  if (children != NULL)
    free(children->pids);
  free(children);
}

const struct mixin forking_mixin = {
    .methods = &forking_mixin_methods,
    .open = forking_mixin_open,
    .free = forking_mixin_free,
};

/* The children: the forking mix-in's state, and the first field of the prefork's. */
struct children *children_of(struct server *s) {
  if (s->mode != SERVER_FORKING && s->mode != SERVER_PREFORK)
    return NULL;
  return s->state->mixin;
}

/* A new child, forked or a prefork worker: it lets go at once of what is the parent's.
 * Else the parent's close of the children's pipe could never end our reads, and a child
 * could outlive the parent holding the lock on a Unix path. */
void let_go_of_parent(struct server *s) {
  struct server_state *state = s->state;
  state->in_child = true;
  close_fd(&state->children_pipe[1]);
  close_fd(&state->unix_lock_fd);
}

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
static void forget_child(struct children *children, size_t i) {
  children->count--;
  children->pids[i] = children->pids[children->count];
}

/* Reap those of our children that have ended (blocking: wait for each), asking for our
 * own pids only; ENDED, if given, hears of each with its wait status. */
void reap_children(struct server *s, bool blocking, void (*ended)(struct server *, pid_t, int)) {
  struct children *children = children_of(s);
  if (children == NULL)
    return;
  for (size_t i = children->count; i-- > 0;) {
    pid_t pid;
    int status = 0;
    do
      pid = waitpid(children->pids[i], &status, blocking ? 0 : WNOHANG);
    while (pid < 0 && errno == EINTR);
    if (pid > 0 || (pid < 0 && errno == ECHILD)) {
      pid_t child = children->pids[i];
      forget_child(children, i);
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
  struct children *children = children_of(s);
  if (children == NULL)
    return;
  /* Not a blocking waitpid(): a stop that came just before it would wait for a child to
     end. We look, and between looks wait on the self-pipe, which a stop fills. */
  while (children->count > 0 && children->count >= s->max_children &&
         !atomic_load(&state->shutdown_request)) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (size_t i = 0; i < children->count; i++)
        if (children->pids[i] == pid) {
          forget_child(children, i);
          if (s->child_ended != NULL)
            s->child_ended(s, pid, status);
        }
    } else if (pid < 0 && errno == ECHILD) {
      children->count = 0;
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
  let_go_of_parent(s);
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
  struct children *children = children_of(s);
  long threads = threads_in_process();
  if (threads > 1) { /* the child could inherit a lock held by another thread (gh-100228) */
    snprintf(req->error, sizeof req->error, "fork refused: the process runs %ld threads", threads);
    return HANDLER_ERROR;
  }
  if (children->count == children->capacity) {
    size_t cap = children->capacity ? 2 * children->capacity : 16;
    pid_t *pids = realloc(children->pids, cap * sizeof *pids);
    if (pids == NULL) {
      set_error(req, "fork", errno);
      return HANDLER_ERROR;
    }
    children->pids = pids;
    children->capacity = cap;
  }
  fflush(NULL); /* or the child would print our buffered output again */
  pid_t pid = fork();
  if (pid < 0) {
    set_error(req, "fork", errno);
    return HANDLER_ERROR;
  }
  if (pid == 0)
    serve_in_child(s, req);
  children->pids[children->count++] = pid;
  s->ops.close_request(s, req); /* close, not shutdown: the child owns the connection */
  return HANDLER_OK;
}

/* Reap children until none is left (true), or none has ended for MS milliseconds: a
 * slow but steady end (hundreds of children, or children under valgrind) is no hang. */
static bool children_end_within(struct server *s, int ms) {
  struct children *children = children_of(s);
  double deadline = now() + ms / 1000.0;
  size_t left = children->count;
  for (;;) {
    reap_children(s, false, NULL);
    if (children->count == 0)
      return true;
    if (children->count < left) {
      left = children->count;
      deadline = now() + ms / 1000.0;
    }
    if (now() >= deadline)
      return false;
    poll(NULL, 0, CHILD_POLL_MS); /* a pause between looks; EINTR only shortens it */
  }
}

static void signal_children(struct server *s, int signo) {
  struct children *children = children_of(s);
  for (size_t i = 0; i < children->count; i++)
    kill(children->pids[i], signo);
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
void end_children(struct server *s) {
  close_fd(&s->state->children_pipe[1]);
  struct children *children = children_of(s);
  if (children == NULL)
    return;
  if (children_end_within(s, CHILD_GRACE_MS))
    return;
  fprintf(stderr, "stopping: %zu children still running after %d ms: SIGCONT\n", children->count,
          CHILD_GRACE_MS);
  signal_children(s, SIGCONT);
  if (children_end_within(s, CHILD_CONT_MS))
    return;
  fprintf(stderr, "stopping: %zu children still running: SIGKILL\n", children->count);
  signal_children(s, SIGKILL);
  reap_children(s, true, NULL); /* SIGKILL cannot be caught: this is short */
}

size_t server_active_children(struct server *s) {
  struct children *children = children_of(s);
  return children == NULL ? 0 : children->count;
}
