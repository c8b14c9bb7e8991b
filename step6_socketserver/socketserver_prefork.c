/*
 * step6_socketserver/socketserver_prefork.c - PreforkingMixIn: processes made at start.
 *
 * Beyond Python, after Stevens (UNIX Network Programming, ch. 30): the server forks its
 * workers once, and each accepts and serves clients in turn; the parent only starts
 * another when one ends. UNP's serv02 lets them all wait in accept() (no lock), serv03
 * takes a file lock around accept(), serv04 a mutex in memory the workers share:
 * --accept-lock none, file, mutex. Its state, struct prefork_state, begins with the
 * forking mix-in's list of children. Read next: socketserver_pool.c.
 */
#define _GNU_SOURCE /* mkostemp, MAP_ANONYMOUS, the robust mutex, waitid */

#include "socketserver_private.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct prefork_state {
  struct children children; /* first: children_of() finds it here */
  bool stopping;            /* the workers that end now are not replaced, nor reported */
  struct worker_starts starts;
  int accept_lock_fd;                  /* serv03: the lock file, already unlinked */
  pthread_mutex_t *shared_accept_lock; /* serv04: the mutex, in shared memory */
};

static const struct server_ops prefork_mixin_methods = {
    .server_activate = prefork_mixin_server_activate,
    .service_actions = prefork_mixin_service_actions,
    .server_close = prefork_mixin_server_close,
};

static struct prefork_state *prefork_of(struct server *s) { return s->state->mixin; }

/* Workers that wait in accept(): datagrams have none. */
static int prefork_mixin_open(struct server *s) {
  if (!is_stream(s)) {
    errno = EINVAL;
    return -1;
  }
  struct prefork_state *prefork = calloc(1, sizeof *prefork);
  if (prefork == NULL)
    return -1;
  prefork->accept_lock_fd = -1;
  s->state->mixin = prefork;
  return open_pipe(s->state->children_pipe);
}

static void free_accept_lock(struct server *s);

static void prefork_mixin_free(struct server *s) {
  struct prefork_state *prefork = prefork_of(s);
  if (prefork == NULL)
    return;
  free_accept_lock(s); /* if server_close has not freed it already */
  free(prefork->children.pids);
  free(prefork);
}

/* The parent only starts and reaps workers: they accept. */
static bool parent_accepts(struct server *s) {
  (void)s;
  return false;
}

const struct mixin prefork_mixin = {
    .methods = &prefork_mixin_methods,
    .open = prefork_mixin_open,
    .free = prefork_mixin_free,
    .serving_thread_accepts = parent_accepts,
};

/* The lock a worker takes before accept(); 0, or -1 with errno set. */
static int take_accept_lock(struct server *s) {
  struct prefork_state *prefork = prefork_of(s);
  if (s->accept_lock == ACCEPT_LOCK_FILE) {
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    while (fcntl(prefork->accept_lock_fd, F_SETLKW, &lock) < 0)
      if (errno != EINTR)
        return -1;
  } else if (s->accept_lock == ACCEPT_LOCK_MUTEX) {
    int rc = pthread_mutex_lock(prefork->shared_accept_lock);
    if (rc == EOWNERDEAD) /* a worker died holding it (SIGKILL in accept): it guarded no data */
      rc = pthread_mutex_consistent(prefork->shared_accept_lock);
    if (rc != 0) {
      errno = rc;
      return -1;
    }
  }
  return 0;
}

static void release_accept_lock(struct server *s) {
  struct prefork_state *prefork = prefork_of(s);
  if (s->accept_lock == ACCEPT_LOCK_FILE) {
    struct flock unlock = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
    fcntl(prefork->accept_lock_fd, F_SETLK, &unlock);
  } else if (s->accept_lock == ACCEPT_LOCK_MUTEX) {
    pthread_mutex_unlock(prefork->shared_accept_lock);
  }
}

/* serv03's lock file is unlinked at once: only the open descriptor, which the workers
 * inherit, names it, and nothing is left behind. serv04's mutex lives in memory the
 * workers share; robust, so a worker killed while holding it does not block the rest. */
static int make_accept_lock(struct server *s) {
  struct prefork_state *prefork = prefork_of(s);
  if (s->accept_lock == ACCEPT_LOCK_FILE) {
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/accept-lock.XXXXXX", dir);
    prefork->accept_lock_fd = mkostemp(path, O_CLOEXEC);
    if (prefork->accept_lock_fd < 0) {
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
    prefork->shared_accept_lock = shared;
  }
  return 0;
}

static void free_accept_lock(struct server *s) {
  struct prefork_state *prefork = prefork_of(s);
  if (prefork == NULL)
    return;
  close_fd(&prefork->accept_lock_fd);
  if (prefork->shared_accept_lock != NULL) {
    if (!s->state->in_child)
      pthread_mutex_destroy(prefork->shared_accept_lock);
    munmap(prefork->shared_accept_lock, sizeof(pthread_mutex_t));
    prefork->shared_accept_lock = NULL;
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
  let_go_of_parent(s);
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
      if (accept_failed_for_want_of_memory(err)) {
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
  struct prefork_state *prefork = prefork_of(s);
  if (s->accept_lock == ACCEPT_LOCK_FILE) {
    struct flock probe = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(prefork->accept_lock_fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK)
      return probe.l_pid;
  }
#ifdef __GLIBC__
  if (s->accept_lock == ACCEPT_LOCK_MUTEX)
    return __atomic_load_n(&prefork->shared_accept_lock->__data.__lock, __ATOMIC_RELAXED) &
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
  if (prefork_of(s)->stopping)
    return;
  if (WIFSIGNALED(status))
    fprintf(stderr, "worker Process-%ld killed by signal %d: starting another\n", (long)pid,
            WTERMSIG(status));
  else
    fprintf(stderr, "worker Process-%ld exited with status %d: starting another\n", (long)pid,
            WEXITSTATUS(status));
}

void prefork_mixin_service_actions(struct server *s) {
  struct prefork_state *prefork = prefork_of(s);
  struct children *children = &prefork->children;
  end_stopped_lock_holder(s);
  reap_children(s, false, worker_ended);
  if (!may_start_workers(&prefork->starts))
    return;
  if (children->capacity < s->workers) {
    pid_t *pids = realloc(children->pids, s->workers * sizeof *pids);
    if (pids == NULL) {
      fprintf(stderr, "cannot start the workers: %s\n", strerror(errno));
      return;
    }
    children->pids = pids;
    children->capacity = s->workers;
  }
  while (children->count < s->workers && !atomic_load(&s->state->shutdown_request)) {
    fflush(NULL); /* or the child would print our buffered output again */
    pid_t pid = fork();
    if (pid < 0) {
      worker_start_failed(&prefork->starts, errno);
      return;
    }
    if (pid == 0)
      prefork_worker(s);
    children->pids[children->count++] = pid;
  }
  prefork->starts.failed = 0;
}

/* Race-free: a worker waiting in poll(), or for the lock held by one that is, cannot miss
 * the stop, for the shut-down listener is readable and fails every accept, then and later. */
void prefork_mixin_server_close(struct server *s) {
  struct prefork_state *prefork = prefork_of(s);
  if (prefork != NULL)
    prefork->stopping = true; /* the workers that end now are not replaced, nor reported */
  if (s->socket >= 0)
    shutdown(s->socket, SHUT_RDWR);
  end_children(s);
  free_accept_lock(s);
  tcp_server_server_close(s);
}
