/*
 * step6_socketserver/socketserver_pool.c - ThreadPoolMixIn: threads made at start.
 *
 * Beyond Python, after Stevens (UNIX Network Programming, ch. 30): a pool of threads
 * made once, each serving clients in turn. UNP's serv07 lets each worker accept under a
 * mutex (--accept-by workers); in serv08 the main thread accepts and hands each client
 * to an idle worker (--accept-by main). Its state, struct pool_state, begins with the
 * threading mix-in's registry of threads, which joins and cuts them as ThreadingMixIn's.
 */
#include "socketserver_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* By workers: the mutex they take turns at accept under. By main: the requests handed
 * over (a ring of s->workers places), the workers waiting for one and not yet given one,
 * and a pipe a worker writes to when it becomes idle, which wakes serve_forever. The
 * registry's and these fields but the accept lock are under s->state->lock. */
struct pool_state {
  struct thread_registry threads; /* first: thread_registry_of() finds it here */
  struct worker_starts starts;
  pthread_mutex_t accept_lock;
  pthread_cond_t handed_over;
  struct request **handover;
  size_t handover_first, handover_count, idle_workers;
  int idle_pipe[2];
};

static const struct server_ops thread_pool_mixin_methods = {
    .process_request = thread_pool_mixin_process_request,
    .service_actions = thread_pool_mixin_service_actions,
    .server_close = thread_pool_mixin_server_close,
};

static struct pool_state *pool_of(struct server *s) { return s->state->mixin; }

/* Workers that wait in accept(): datagrams have none. */
static int thread_pool_mixin_open(struct server *s) {
  if (!is_stream(s)) {
    errno = EINVAL;
    return -1;
  }
  struct pool_state *pool = calloc(1, sizeof *pool);
  if (pool == NULL)
    return -1;
  pool->idle_pipe[0] = pool->idle_pipe[1] = -1;
  pthread_mutex_init(&pool->accept_lock, NULL);
  pthread_cond_init(&pool->handed_over, NULL);
  s->state->mixin = pool;
  if (open_pipe(s->state->children_pipe) < 0 || open_pipe(pool->idle_pipe) < 0)
    return -1;
  return 0;
}

static void thread_pool_mixin_free(struct server *s) {
  struct pool_state *pool = pool_of(s);
  if (pool == NULL)
    return;
  cut_connections(s); /* done already, unless server_close never ran to its end */
  join_workers(s, true);
  close_fd(&pool->idle_pipe[0]);
  close_fd(&pool->idle_pipe[1]);
  pthread_mutex_destroy(&pool->accept_lock);
  pthread_cond_destroy(&pool->handed_over);
  free(pool->handover);
  free(pool);
}

static bool main_thread_accepts(struct server *s);
static int idle_pipe_fd(struct server *s);

const struct mixin thread_pool_mixin = {
    .methods = &thread_pool_mixin_methods,
    .open = thread_pool_mixin_open,
    .free = thread_pool_mixin_free,
    .serving_thread_accepts = main_thread_accepts,
    .wake_fd = idle_pipe_fd,
};

/* serve_forever accepts only where the main thread does (serv08), and only while a
 * worker is idle. The idle pipe is drained first, so a worker that becomes idle after
 * the look writes a byte the wait (on idle_pipe_fd) sees. */
static bool main_thread_accepts(struct server *s) {
  struct pool_state *pool = pool_of(s);
  if (s->accept_by != ACCEPT_BY_MAIN)
    return false;
  char drain[64];
  while (read(pool->idle_pipe[0], drain, sizeof drain) > 0)
    continue;
  pthread_mutex_lock(&s->state->lock);
  bool idle = pool->idle_workers > 0;
  pthread_mutex_unlock(&s->state->lock);
  return idle;
}

static int idle_pipe_fd(struct server *s) {
  return pool_of(s) != NULL ? pool_of(s)->idle_pipe[0] : -1;
}

/* Take REQ's connection on as W's, unless the pool is stopping; under the lock, so a
 * stop cuts either it or nothing. */
static bool take_on(struct server *s, struct worker *w, struct request *req) {
  pthread_mutex_lock(&s->state->lock);
  bool stopping = pool_of(s)->threads.stopping;
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
  struct pool_state *pool = pool_of(s);
  become_worker(w);
  for (;;) {
    pthread_mutex_lock(&pool->accept_lock);
    struct pollfd fds[2] = {{.fd = state->children_pipe[0], .events = POLLIN},
                            {.fd = s->socket, .events = POLLIN}};
    int n;
    do
      n = poll(fds, 2, -1);
    while (n < 0 && errno == EINTR);
    struct request *req = n > 0 && !fds[0].revents ? s->ops.get_request(s) : NULL;
    int err = errno;
    pthread_mutex_unlock(&pool->accept_lock);
    if (n < 0 || fds[0].revents)
      break; /* the stop */
    if (req == NULL) {
      if (accept_failed_for_want_of_memory(err)) {
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
  struct pool_state *pool = pool_of(s);
  for (become_worker(w);;) {
    pthread_mutex_lock(&state->lock);
    pool->idle_workers++;
    ssize_t n = write(pool->idle_pipe[1], "i", 1); /* full: a byte is there already */
    (void)n;
    while (!pool->threads.stopping && pool->handover_count == 0)
      pthread_cond_wait(&pool->handed_over, &state->lock);
    if (pool->threads.stopping) {
      pthread_mutex_unlock(&state->lock);
      break; /* server_close closes what is still handed over */
    }
    struct request *req = pool->handover[pool->handover_first];
    pool->handover_first = (pool->handover_first + 1) % s->workers;
    pool->handover_count--;
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
  struct pool_state *pool = pool_of(s);
  pthread_mutex_lock(&state->lock);
  bool handed = pool->idle_workers > 0 && !pool->threads.stopping;
  if (handed) {
    pool->handover[(pool->handover_first + pool->handover_count) % s->workers] = req;
    pool->handover_count++;
    pool->idle_workers--;
    pthread_cond_signal(&pool->handed_over);
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
  struct pool_state *pool = pool_of(s);
  join_workers(s, false);
  if (pool->handover == NULL) {
    pool->handover = calloc(s->workers, sizeof *pool->handover);
    if (pool->handover == NULL) {
      fprintf(stderr, "cannot start the workers: %s\n", strerror(errno));
      return;
    }
  }
  if (!may_start_workers(&pool->starts))
    return;
  void *(*main)(void *) = s->accept_by == ACCEPT_BY_MAIN ? pool_worker_handed : pool_worker_accepting;
  while (server_thread_count(s) < s->workers) {
    int rc = start_worker(s, NULL, main);
    if (rc != 0) {
      worker_start_failed(&pool->starts, rc);
      return;
    }
  }
  pool->starts.failed = 0;
}

/* The idle workers wake (the pipe for those at accept, the condition for those waiting
 * for a request), the busy ones' connections are cut, all are joined; then the
 * listener goes, which nobody polls any more, and what was handed over but not taken. */
void thread_pool_mixin_server_close(struct server *s) {
  struct server_state *state = s->state;
  struct pool_state *pool = pool_of(s);
  close_fd(&state->children_pipe[1]);
  cut_connections(s);
  if (pool != NULL) { /* the workers waiting for a request see the stop */
    pthread_mutex_lock(&state->lock);
    pthread_cond_broadcast(&pool->handed_over);
    pthread_mutex_unlock(&state->lock);
  }
  join_workers(s, true);
  while (pool != NULL && pool->handover_count > 0) {
    s->ops.shutdown_request(s, pool->handover[pool->handover_first]);
    pool->handover_first = (pool->handover_first + 1) % s->workers;
    pool->handover_count--;
  }
  tcp_server_server_close(s);
}
