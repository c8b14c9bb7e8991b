/*
 * step6_socketserver/socketserver_private.h - what the framework's files share, and no
 * program sees: the server's own state, the mix-in's place in it, and the helpers every
 * file calls. socketserver.h is the public side; socketserver.c says which file holds what.
 */
#ifndef SOCKETSERVER_PRIVATE_H
#define SOCKETSERVER_PRIVATE_H

#include "socketserver.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

enum { ACCEPT_BACKOFF_MS = 100 }; /* how long to leave the listener alone after EMFILE */

/*
 * A mix-in, as its file defines it: the methods its class body holds (see "The classes,
 * as data" in socketserver.c), and its own state, which only its file knows. open makes
 * that state (and the mix-in's descriptors) in server_new; free, in server_free once
 * server_close has run, ends what server_close left running and releases the state. The
 * pools answer serve_forever's two questions: whether the serving thread accepts now, and
 * which descriptor (or -1) also ends its wait. Each may be NULL: nothing to do, always
 * accepts, no descriptor.
 */
struct mixin {
  const struct server_ops *methods;
  int (*open)(struct server *s); /* 0, or -1 with errno set */
  void (*free)(struct server *s);
  bool (*serving_thread_accepts)(struct server *s);
  int (*wake_fd)(struct server *s);
};

extern const struct mixin threading_mixin;   /* socketserver_threading.c */
extern const struct mixin forking_mixin;     /* socketserver_forking.c */
extern const struct mixin prefork_mixin;     /* socketserver_prefork.c */
extern const struct mixin thread_pool_mixin; /* socketserver_pool.c */

/* The framework's own state, behind s->state: what Python keeps in underscore names. A
 * mix-in's own is behind `mixin`, Redis's apidata: a struct its file defines. */
struct server_state {
  atomic_int shutdown_request; /* set by server_shutdown, even from a signal handler */
  int wake_pipe[2];            /* self-pipe: a byte here wakes serve_forever at once */
  int children_pipe[2];        /* forking, prefork, pool: closing [1] ends the workers' reads */
  bool in_child;               /* forking, prefork: this process is a child of the server */
  bool unix_path_bound;        /* server_close removes the path it bound ... */
  dev_t unix_path_dev;         /* ... if it is still the file bind made (a newer server */
  ino_t unix_path_ino;         /*     may have bound the same path after an `rm -f`) */
  int unix_lock_fd;            /* PATH.lock, flock'ed for the server's life */
  _Atomic pid_t owner_pid;     /* the process serving; its forked children differ */
  double accepts_paused_until; /* EMFILE: leave the listener alone until then */
  char *packet_buffer;         /* datagrams: max_packet_size bytes for recvmsg */
  size_t packet_buffer_size;
  pthread_mutex_t lock; /* guards the fields below, and the mix-ins' thread registries */
  pthread_cond_t changed;
  bool serving;
  pthread_t serving_thread;
  pid_t serving_pid;
  void *mixin; /* the mix-in's own state: NULL for a sync server */
};

/* ---- socketserver.c: the core ---------------------------------------------------------- */

double now(void);
int to_ms(double seconds);       /* seconds to poll()'s ms, rounded up; <0: for ever */
int ms_until(double deadline);   /* ms left until DEADLINE (now()'s clock), 0 once past */
int open_pipe(int fds[2]);       /* O_CLOEXEC | O_NONBLOCK */
void close_fd(int *fd);          /* close, and set -1 */
void close_pipes(struct server *s); /* the framework's own descriptors, the socket aside */
void set_error(struct request *req, const char *what, int err);
int wait_io(int fd, short events, int stop_fd, int timeout_ms);
bool is_stream(const struct server *s);
bool is_unix(const struct server *s);
bool accept_failed_for_want_of_memory(int err); /* EMFILE, ENFILE, ENOBUFS, ENOMEM */
int verify_and_process(struct server *s, struct request *req);

/* Prefork and pool: the workers a failed fork() or pthread_create() leaves unstarted. */
struct worker_starts {
  double paused_until; /* no new try until then */
  int failed;          /* ... after so many failures in a row */
};
void worker_start_failed(struct worker_starts *starts, int err);
bool may_start_workers(const struct worker_starts *starts);

/* ---- socketserver_address.c: TCP, UDP, Unix, and their addresses ----------------------- */

extern _Thread_local char address_error[2 * PATH_MAX]; /* see server_address_error */
void format_address(const struct sockaddr_storage *addr, socklen_t len, char *out);
int resolve_address(struct server *s, const char *address);

/* ---- socketserver_signals.c: the stop, and the signals that ask for it ----------------- */

int take_signals(void);
void release_signals(struct server *s);
/* A forked child or prefork worker: its connection, which a stop signal shuts down. */
extern atomic_int child_connection;
extern atomic_int child_stop;

/* ---- socketserver_threading.c: threads, and the registry the pool shares --------------- */

/* One handler thread (threading, pool), in the server's registry. */
struct worker {
  struct worker *next;
  struct server *server;
  struct request *request;
  pthread_t thread;
  int connection; /* what server_close cuts (shutdown SHUT_RDWR); -1 once released */
  bool finished;  /* the thread has ended and waits to be joined */
  char name[24];
};

/* The live threads and the finished, unjoined ones; under s->state->lock. */
struct thread_registry {
  struct worker *workers;
  size_t worker_count;
  bool stopping; /* the connections are cut; no pool worker takes one on */
};

extern _Thread_local char thread_name[24]; /* "Thread-N", "Process-PID"; "" in the main one */
void join_workers(struct server *s, bool all);
void cut_connections(struct server *s);
void become_worker(struct worker *w);
int start_worker(struct server *s, struct request *req, void *(*main)(void *));

/* ---- socketserver_forking.c: children, and the list the prefork shares ----------------- */

struct children {
  pid_t *pids; /* the pids of our children */
  size_t count, capacity;
};

struct children *children_of(struct server *s); /* NULL: no children */
void reap_children(struct server *s, bool blocking, void (*ended)(struct server *, pid_t, int));
void end_children(struct server *s);
void let_go_of_parent(struct server *s); /* a new child: drop what is the parent's */

#endif
