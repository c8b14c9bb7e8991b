/*
 * step6_socketserver/socketserver_threading.c - ThreadingMixIn: a thread per request.
 *
 * Python's counterpart: ThreadingMixIn in Lib/socketserver.py (process_request starts a
 * thread that runs process_request_thread; server_close joins them, bpo-31233). Its
 * state is the registry of the threads it started, struct thread_registry, which the
 * thread pool (socketserver_pool.c) shares. Read next: socketserver_forking.c.
 */
#define _GNU_SOURCE /* pthread_setname_np for "Thread-N" */

#include "socketserver_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Python numbers every thread it creates, in one sequence for the whole process. */
static atomic_ulong thread_counter;
_Thread_local char thread_name[24];
static _Thread_local struct worker *current_worker; /* this thread's entry, if a worker */

static const struct server_ops threading_mixin_methods = {
    .process_request = threading_mixin_process_request,
    .service_actions = threading_mixin_service_actions,
    .server_close = threading_mixin_server_close,
};

static int threading_mixin_open(struct server *s) {
  s->state->mixin = calloc(1, sizeof(struct thread_registry));
  return s->state->mixin == NULL ? -1 : 0;
}

/* Threads server_close did not wait for (daemon_threads, or no block_on_close) are cut
 * off and joined now: their memory goes away with the server. */
static void threading_mixin_free(struct server *s) {
  cut_connections(s);
  join_workers(s, true);
  free(s->state->mixin);
}

const struct mixin threading_mixin = {
    .methods = &threading_mixin_methods,
    .open = threading_mixin_open,
    .free = threading_mixin_free,
};

/* The registry: the threading mix-in's state, and the first field of the pool's. */
static struct thread_registry *thread_registry_of(struct server *s) {
  if (s->mode != SERVER_THREADING && s->mode != SERVER_POOL)
    return NULL;
  return s->state->mixin;
}

/* Join the threads that have ended (bpo-37193: the registry must not grow). */
void join_workers(struct server *s, bool all) {
  struct server_state *state = s->state;
  struct thread_registry *registry = thread_registry_of(s);
  if (registry == NULL)
    return;
  struct worker *done = NULL;
  pthread_mutex_lock(&state->lock);
  for (struct worker **p = &registry->workers; *p != NULL;) {
    struct worker *w = *p;
    if (all || w->finished) {
      *p = w->next;
      w->next = done;
      done = w;
      registry->worker_count--;
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
void cut_connections(struct server *s) {
  struct server_state *state = s->state;
  struct thread_registry *registry = thread_registry_of(s);
  if (registry == NULL)
    return;
  pthread_mutex_lock(&state->lock);
  registry->stopping = true; /* a pool worker takes no connection on from here */
  for (struct worker *w = registry->workers; w != NULL; w = w->next)
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
void become_worker(struct worker *w) {
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
int start_worker(struct server *s, struct request *req, void *(*main)(void *)) {
  struct server_state *state = s->state;
  struct thread_registry *registry = thread_registry_of(s);
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
    w->next = registry->workers;
    registry->workers = w;
    registry->worker_count++;
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
  struct thread_registry *registry = thread_registry_of(s);
  if (registry == NULL)
    return 0;
  pthread_mutex_lock(&state->lock);
  size_t n = registry->worker_count;
  pthread_mutex_unlock(&state->lock);
  return n;
}

const char *current_thread_name(void) { return thread_name[0] ? thread_name : "MainThread"; }
