/*
 * step6_socketserver/socketserver.h - Python's socketserver module, in C.
 *
 * What this step adds: the five hand-written servers become one small framework with
 * Python's shape. A server is a struct of attributes plus a table of operations (the
 * "methods"); a "subclass" replaces some of them and calls the defaults as `super()`
 * does. The three concurrency models of steps 2, 4 and 5 are the mix-ins: sync,
 * threading, forking. README.md maps every Python name to its C name.
 *
 * How to see it: `make step6`. A whole server, the upper-case echo over TCP:
 *
 *   #include "socketserver.h"
 *   #include <stdio.h>
 *
 *   static int upper_handle(struct handler *h) {
 *     char buf[1024];
 *     ssize_t n;
 *     while ((n = rfile_read1(&h->rfile, buf, sizeof buf)) > 0) {
 *       for (ssize_t i = 0; i < n; i++)
 *         if (buf[i] >= 'a' && buf[i] <= 'z')
 *           buf[i] = (char)(buf[i] - 'a' + 'A');
 *       if (wfile_write(&h->wfile, buf, (size_t)n) < 0)
 *         return HANDLER_ERROR;
 *     }
 *     return n < 0 ? HANDLER_ERROR : HANDLER_OK;
 *   }
 *
 *   static const struct handler_class upper = {.handle = upper_handle};
 *
 *   int main(void) {
 *     setvbuf(stdout, NULL, _IOLBF, 0);
 *     struct server *s = server_new(SERVER_TCP, SERVER_THREADING, "127.0.0.1:9999", &upper, NULL);
 *     if (s == NULL) {
 *       perror("cannot bind 127.0.0.1:9999");
 *       return 1;
 *     }
 *     printf("serving on %s\n", s->server_address_name);
 *     server_shutdown_on_signals(s); // SIGINT and SIGTERM end serve_forever
 *     int status = server_serve_forever(s, 0.5);
 *     server_free(s); // Python's `with` block ends here: server_close, then free
 *     return status == 0 ? 0 : 1;
 *   }
 *
 * The same handler serves SERVER_UDP, SERVER_UNIX_STREAM and SERVER_UNIX_DGRAM, in any
 * mode: rfile and wfile are the connection for a stream and the datagram for datagrams.
 *
 * As in Python's docstrings, each function below says who calls it: "for the caller"
 * (the program), "may be overridden" (an operation in struct server_ops, replaced by a
 * "subclass"), or "for derived types" (a default an override calls as `super()` would).
 *
 * Errors: C has no exceptions. A handler returns HANDLER_OK, HANDLER_ERROR (Python's
 * Exception: handle_error runs, the server goes on) or HANDLER_FATAL (Python's
 * SystemExit: handle_error is NOT called; a sync server's serve_forever/handle_request
 * return it, a thread ends quietly, a child exits 1). Functions that can fail return -1
 * (or NULL) with errno set, as the POSIX calls they wrap do.
 */
#ifndef SOCKETS_LAB_SOCKETSERVER_H
#define SOCKETS_LAB_SOCKETSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* TCPServer, UDPServer, UnixStreamServer, UnixDatagramServer. */
enum server_kind { SERVER_TCP, SERVER_UDP, SERVER_UNIX_STREAM, SERVER_UNIX_DGRAM };

/* No mix-in, ThreadingMixIn, ForkingMixIn; beyond Python, Stevens' pools (UNP vol. 1,
 * ch. 30): PreforkingMixIn (N processes forked at start, each accepting) and
 * ThreadPoolMixIn (N threads made at start). Both serve stream sockets only. */
enum server_mode { SERVER_SYNC, SERVER_THREADING, SERVER_FORKING, SERVER_PREFORK, SERVER_POOL };

/* Prefork: what the workers take before accept(): nothing (serv02), an fcntl lock on a
 * file (serv03), a process-shared mutex (serv04). */
enum server_accept_lock { ACCEPT_LOCK_NONE, ACCEPT_LOCK_FILE, ACCEPT_LOCK_MUTEX };

/* Pool: who accepts. The workers, in turn under a mutex (serv07), or the serving thread,
 * which hands each connection to an idle worker (serv08). */
enum server_accept_by { ACCEPT_BY_WORKERS, ACCEPT_BY_MAIN };

/* What a handler (and process_request, finish_request) returns; see "Errors" above. */
enum { HANDLER_OK = 0, HANDLER_ERROR = -1, HANDLER_FATAL = -2 };

#define SERVER_NO_TIMEOUT (-1.0) /* Python's timeout = None */

enum { SERVER_NAME_SIZE = 112 };   /* "IP:PORT", or a Unix path (sun_path is 108) */
enum { SERVER_ERROR_SIZE = 160 };  /* one line saying why a request failed */
enum { RFILE_BUFFER_SIZE = 8192 }; /* Python's io.DEFAULT_BUFFER_SIZE */
enum { CHILD_GRACE_MS = 2000 };    /* forking: how long a stop waits for a child to end */

struct server;

/*
 * One request, from get_request until close_request frees it. For a stream it is the
 * connection; for datagrams it is the packet, and fd is the server's own socket, on
 * which the reply goes out (Python's `(data, socket)` pair).
 */
struct request {
  int fd;
  struct sockaddr_storage client_address; /* Python's client_address */
  socklen_t client_address_len;
  char client_name[SERVER_NAME_SIZE]; /* the same, formatted: "IP:PORT" or the path */
  char error[SERVER_ERROR_SIZE];      /* why it failed, for handle_error ("" if unknown) */
  size_t packet_len;                  /* datagrams: the packet */
  char packet[];
};

/*
 * StreamRequestHandler.rfile: a buffered reader over the connection, or (datagrams) a
 * reader over the packet. Reads wait with poll(), so the handler's timeout and the
 * server's stop request reach a blocked read; EINTR is retried.
 */
struct rfile {
  int fd;           /* -1 with data set: read the packet only (a datagram) */
  int stop_fd;      /* readable when the server stops; -1: none */
  int timeout_ms;   /* the handler's timeout; -1: none */
  const char *data; /* buffered bytes: data[pos..len) */
  size_t pos, len;
  char buffer[RFILE_BUFFER_SIZE];
};

/*
 * StreamRequestHandler.wfile: every write sends all of it at once (Python's
 * _SocketWriter, wbufsize 0). For datagrams it collects the reply, which finish sends.
 */
struct wfile {
  int fd;
  bool collect; /* datagrams: collect the reply in memory, for finish */
  int stop_fd;
  int timeout_ms;
  char *data; /* datagrams: the reply so far */
  size_t len, cap;
};

/* Python's RequestHandler instance: one per request, alive during setup/handle/finish. */
struct handler {
  struct server *server;
  struct request *request;
  const char *client_address; /* request->client_name */
  int connection;             /* Stream: the connection. Datagram: the server socket (.socket) */
  const char *packet;         /* Datagram: the packet, packet_len bytes */
  size_t packet_len;
  struct rfile rfile;
  struct wfile wfile;
  void *user;  /* the server's user pointer: shared state instead of globals */
  void *state; /* per request, NULL at first: the handler's own state */
};

/*
 * RequestHandlerClass. Each member may be overridden; NULL means the default:
 * setup/finish are request_handler_setup/finish (StreamRequestHandler's or
 * DatagramRequestHandler's, whichever fits the server's socket), handle does nothing.
 * Overrides of setup and finish call the defaults as super() would. A subclass with
 * attributes of its own declares a struct whose first member is a struct handler and
 * names its size in instance_size; the framework then creates each instance that big,
 * zeroed, and the subclass's methods turn h back into their struct with a cast.
 */
struct handler_class {
  int (*setup)(struct handler *h);   /* 0, or -1: the request fails without finish */
  int (*handle)(struct handler *h);  /* HANDLER_OK, HANDLER_ERROR or HANDLER_FATAL */
  void (*finish)(struct handler *h); /* always runs after handle */
  double timeout;                    /* seconds a read or write may wait; 0: for ever */
  bool disable_nagle_algorithm;      /* TCP_NODELAY on the connection (TCP only) */
  size_t instance_size;              /* a subclass's struct, which starts with a struct
                                        handler; 0: a plain struct handler */
};

/*
 * The methods of a server. server_new fills s->ops with the defaults for its kind and
 * mode; every entry may be overridden (assign s->ops.NAME before serving, or, for
 * server_bind and server_activate, between server_new_unbound and
 * server_bind_and_activate). An override calls the default it replaces by name.
 */
struct server_ops {
  int (*server_bind)(struct server *s);
  int (*server_activate)(struct server *s);
  struct request *(*get_request)(struct server *s);
  bool (*verify_request)(struct server *s, struct request *req);
  int (*process_request)(struct server *s, struct request *req);
  int (*finish_request)(struct server *s, struct request *req);
  void (*shutdown_request)(struct server *s, struct request *req);
  void (*close_request)(struct server *s, struct request *req); /* must free req (super) */
  void (*handle_error)(struct server *s, struct request *req);
  void (*handle_timeout)(struct server *s);
  void (*service_actions)(struct server *s);
  void (*server_close)(struct server *s);
  int (*fileno)(struct server *s);
};

struct server {
  /* Attributes, with Python's defaults. Change them before serving. */
  struct server_ops ops;
  const struct handler_class *handler; /* RequestHandlerClass */
  void *user;                          /* handed to every handler as h->user */
  enum server_kind kind;
  enum server_mode mode;
  int address_family, socket_type;
  int socket;                             /* -1 once closed */
  struct sockaddr_storage server_address; /* after bind: getsockname(), so port 0 is real */
  socklen_t server_address_len;
  char server_address_name[SERVER_NAME_SIZE]; /* "IP:PORT" or the path, for "serving on" */
  double timeout;           /* handle_request's wait; SERVER_NO_TIMEOUT, forking 300 */
  bool allow_reuse_address; /* before bind: SO_REUSEADDR (false) */
  bool allow_reuse_port;    /* before bind: SO_REUSEPORT, inet only (false) */
  int request_queue_size;   /* before activate: the listen() backlog (SOMAXCONN) */
  size_t max_packet_size;   /* datagrams: longer ones are logged and dropped (8192) */
  bool daemon_threads;      /* threading: server_close does not wait (false) */
  bool block_on_close;      /* threading, forking: server_close waits (true) */
  size_t max_children;      /* forking: at most this many children (40) */
  size_t workers;           /* prefork, pool: the processes or threads made at start (4) */
  enum server_accept_lock accept_lock; /* prefork, before activate (ACCEPT_LOCK_NONE) */
  enum server_accept_by accept_by;     /* pool (ACCEPT_BY_WORKERS) */
  /* Beyond Python: forking, prefork. Called in the serving process with the wait status
     of each child or worker it reaps, so that a program can clean up after one that was
     killed (NULL: nothing to do). */
  void (*child_ended)(struct server *s, pid_t pid, int status);

  struct server_state *state; /* private: the framework's own, in socketserver_private.h */
};

/* ---- For the caller ---------------------------------------------------------------- */

/*
 * Create a server of a kind and mode on ADDRESS ("HOST:PORT", "[IPv6]:PORT", or a Unix
 * path), bind and activate it: Python's `ThreadingTCPServer(address, Handler)`. Returns
 * NULL with errno set if anything fails, having released everything (bpo-22435).
 * An empty host or path is refused (EINVAL): it would mean "every interface" or an
 * unreachable abstract name. A host that cannot be resolved gives EADDRNOTAVAIL, and
 * server_address_error() says why. A Unix path is held with a lock on PATH.lock, a file
 * beside it, for the server's life: a path another server holds is EADDRINUSE, and
 * server_address_error() says so; one left by a server that died is taken over; one that
 * another program listens on is EADDRINUSE.
 *
 * The first server of a process takes over its signals: SIGPIPE is ignored (as Python
 * does at start: a closed stdout or a gone client is an error to handle, not death), and
 * SIGINT and SIGTERM are caught from here on, so one that comes while the server is
 * still binding is kept for server_shutdown_on_signals rather than killing the process
 * with its socket file left behind.
 */
struct server *server_new(enum server_kind kind, enum server_mode mode, const char *address,
                          const struct handler_class *handler, void *user);

/* The same with bind_and_activate=False: set bind-time attributes and ops, then call
 * server_bind_and_activate. */
struct server *server_new_unbound(enum server_kind kind, enum server_mode mode, const char *address,
                                  const struct handler_class *handler, void *user);

/* ops.server_bind then ops.server_activate; on failure ops.server_close and -1 (errno
 * kept), and the caller still owns s: server_free it. */
int server_bind_and_activate(struct server *s);

/*
 * Handle requests until server_shutdown. Waits with poll() on the socket and on the
 * self-pipe, so a stop is seen at once; poll_interval (seconds) only paces
 * service_actions. Returns 0, or HANDLER_FATAL when a sync handler returned it.
 */
int server_serve_forever(struct server *s, double poll_interval);

/* Handle one request, waiting at most s->timeout, then ops.handle_timeout. Returns 0 or
 * HANDLER_FATAL. Like Python's, it neither runs service_actions nor sees shutdown. */
int server_handle_request(struct server *s);

/*
 * Stop serve_forever and wait until it has returned. Safe from any thread, including a
 * handler's (sync mode, or the serving thread itself: it then only asks), and from a
 * forked child (it reaches the parent through the self-pipe). Called when nothing is
 * serving, it makes the next serve_forever return at once, as Python's does.
 */
void server_shutdown(struct server *s);

/* The part of server_shutdown a signal handler may do: async-signal-safe, never waits. */
void server_shutdown_from_signal(struct server *s);

/* Make SIGINT and SIGTERM (caught without SA_RESTART since server_new) call
 * server_shutdown_from_signal(s); one that came before is handed to s now. One server per
 * process. In a forked child a stop signal ends only the child's own session. server_free
 * restores the previous handlers at its very end, unless a stop signal has come: then
 * they stay, so a second SIGTERM during the clean-up or the exit is harmless. */
int server_shutdown_on_signals(struct server *s);

/* Python's server_close(): ops.server_close. Afterwards server_fileno returns -1. */
void server_close(struct server *s);

/* The end of Python's `with` block, then free: server_close, and anything still running
 * (threads of daemon_threads or block_on_close=false) is cut off and joined. */
void server_free(struct server *s);

/* Why the last server_new in this thread failed, where errno cannot say it all ("" if
 * not so): the name lookup's own message; a Unix path's lock file, or prefork's accept
 * lock file, that could not be made or taken. */
const char *server_address_error(void);

int server_fileno(struct server *s);             /* ops.fileno */
size_t server_active_children(struct server *s); /* forking: live children */
size_t server_thread_count(struct server *s);    /* threading, pool: the registry's size */

/* The name of the calling thread: "Thread-N" for handler threads and pool workers
 * (numbered as Python numbers them, in order of creation), "Process-PID" in a forked
 * child or a prefork worker, else "MainThread". */
const char *current_thread_name(void);

/* ---- Handler I/O, for handlers --------------------------------------------------- */

/* rfile.read1(n): at most n bytes, whatever arrives first. 0 at end of stream (also when
 * the server stops), -1 on error (ETIMEDOUT after the handler's timeout). */
ssize_t rfile_read1(struct rfile *rf, void *buf, size_t n);

/* rfile.read(n): exactly n bytes, fewer only at end of stream; -1 on error. */
ssize_t rfile_read(struct rfile *rf, void *buf, size_t n);

/* rfile.readline(size - 1): up to and including '\n', NUL-terminated. Returns the length,
 * 0 at end of stream, -1 on error. */
ssize_t rfile_readline(struct rfile *rf, char *buf, size_t size);

/* wfile.write(b): all n bytes (short writes and EINTR retried, never SIGPIPE). Returns n
 * or -1 (EPIPE when the client or the server has gone). */
ssize_t wfile_write(struct wfile *wf, const void *buf, size_t n);

/* ---- Default handler methods, for derived types ----------------------------------- */

int base_request_handler_setup(struct handler *h);       /* nothing */
void base_request_handler_finish(struct handler *h);     /* nothing */
int stream_request_handler_setup(struct handler *h);     /* rfile, wfile, timeout, nagle */
void stream_request_handler_finish(struct handler *h);   /* nothing to flush (wbufsize 0) */
int datagram_request_handler_setup(struct handler *h);   /* rfile over the packet */
void datagram_request_handler_finish(struct handler *h); /* send wfile's bytes, even none */
int request_handler_setup(struct handler *h);            /* stream or datagram, by socket */
void request_handler_finish(struct handler *h);

/* ---- Default server methods, for derived types ------------------------------------ */

/* BaseServer */
int base_server_server_activate(struct server *s);                        /* nothing */
int base_server_handle_request_noblock(struct server *s);                 /* get/verify/process */
bool base_server_verify_request(struct server *s, struct request *req);   /* true */
int base_server_process_request(struct server *s, struct request *req);   /* finish + shutdown */
int base_server_finish_request(struct server *s, struct request *req);    /* run the handler */
void base_server_shutdown_request(struct server *s, struct request *req); /* close_request */
void base_server_close_request(struct server *s, struct request *req);    /* free req */
void base_server_handle_error(struct server *s, struct request *req);     /* the dashed block */
void base_server_handle_timeout(struct server *s);                        /* nothing */
void base_server_service_actions(struct server *s);                       /* nothing */
void base_server_server_close(struct server *s);                          /* nothing */

/* TCPServer (and UnixStreamServer) */
int tcp_server_server_bind(struct server *s);             /* reuse options, bind, getsockname */
int tcp_server_server_activate(struct server *s);         /* listen(request_queue_size) */
struct request *tcp_server_get_request(struct server *s); /* accept */
void tcp_server_shutdown_request(struct server *s, struct request *req); /* SHUT_WR, close */
void tcp_server_close_request(struct server *s, struct request *req);    /* close, free */
void tcp_server_server_close(struct server *s); /* close the socket (and unlink a path) */
int tcp_server_fileno(struct server *s);

/* UDPServer (and UnixDatagramServer); the rest is TCPServer's and BaseServer's */
struct request *udp_server_get_request(struct server *s); /* recvmsg, MSG_TRUNC checked */

/* ThreadingMixIn */
int threading_mixin_process_request(struct server *s, struct request *req);
void threading_mixin_process_request_thread(struct server *s, struct request *req);
void threading_mixin_service_actions(struct server *s); /* join finished threads */
void threading_mixin_server_close(struct server *s);

/* ForkingMixIn */
int forking_mixin_process_request(struct server *s, struct request *req);
void forking_mixin_collect_children(struct server *s, bool blocking);
void forking_mixin_handle_timeout(struct server *s);  /* collect_children */
void forking_mixin_service_actions(struct server *s); /* collect_children */
/* Closes the children's pipe and waits for them (block_on_close) until CHILD_GRACE_MS
 * pass with none ending; then those left get SIGCONT, and SIGKILL if they still do not
 * end, each with a line on stderr: a stopped or stuck child cannot hang the stop. */
void forking_mixin_server_close(struct server *s);

/*
 * PreforkingMixIn (beyond Python; Stevens' serv02-04). serve_forever starts s->workers
 * children; each loops: take the accept lock, accept() (blocking, as Stevens' workers
 * do), release it, handle the request. The parent accepts nothing: it waits for a stop,
 * and every poll_interval reaps and replaces a worker that died (a line on stderr).
 */
int prefork_mixin_server_activate(struct server *s);  /* listen, blocking; make the lock */
void prefork_mixin_service_actions(struct server *s); /* reap and start workers */
/* shutdown(SHUT_RDWR) on the listener: every accept() blocked in a worker, and every
 * later one, fails at once, so a worker waiting for the lock or in accept ends; one in
 * a session sees the children's pipe closed. Then forking_mixin_server_close's wait. */
void prefork_mixin_server_close(struct server *s);

/*
 * ThreadPoolMixIn (beyond Python; Stevens' serv07, serv08). serve_forever starts
 * s->workers threads, Thread-1 ... Thread-N. ACCEPT_BY_WORKERS: each takes a mutex,
 * waits for the listener (or the stop), accepts, releases it, handles the request.
 * ACCEPT_BY_MAIN: serve_forever accepts only while a worker is idle, and process_request
 * hands the connection over; with every worker busy the next client waits in the
 * backlog, neither refused nor given a thread.
 */
int thread_pool_mixin_process_request(struct server *s, struct request *req); /* hand over */
void thread_pool_mixin_service_actions(struct server *s); /* join ended ones, start missing */
/* Wakes the idle workers, cuts the busy ones' connections (as ThreadingMixIn does), joins
 * them all, then closes the listener. */
void thread_pool_mixin_server_close(struct server *s);

#endif
