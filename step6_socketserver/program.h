/*
 * step6_socketserver/program.h - what the four step-6 programs share.
 *
 * A program is its handle() and, if it has any, its own options. Everything else the
 * contract asks of every server is here, once: the options (--host, --port, --mode,
 * --max-children, --help; --udp and --unix for the programs that offer them), the
 * pools (--workers, --accept-lock, --accept-by), --log-worker, the
 * defences (--timeout, --max-clients, --allow), the
 * usage and its exit statuses, the server of the chosen kind and mode, the ready line,
 * SIGINT/SIGTERM, and the log lines:
 *
 *   IP:PORT connected           when a stream handler starts (setup)
 *   IP:PORT wrote: TEXT         each message received, trailing whitespace trimmed,
 *                               control bytes as '.'; a line longer than PIPE_BUF (4096
 *                               bytes) is cut and ends in "[... N more bytes]"
 *   IP:PORT disconnected        when a stream handler ends (finish) ...
 *   IP:PORT reset               ... or this, when the client reset the connection
 *   IP:PORT timed out           ... or this, when it stayed silent beyond --timeout
 *   IP:PORT refused: WHY        a connection closed at once (--allow, --max-clients)
 *
 * With --log-worker each line but the ready line starts with the name of the worker that
 * logs it and ': ' (`Thread-2: 127.0.0.1:40000 connected`), as step 4 logs: who served
 * whom, for the benchmark's per-worker counts and its timelines.
 *
 * Names: session_NAME(h, ...) acts on one session, the handler its handle() is given;
 * program_NAME is the rest (the command line, the server, the text helpers).
 * The files: program_options.c (the command line), program_defences.c (--allow,
 * --max-clients), program_session.c (the session and its log lines), program.c (the
 * server).
 *
 * A whole program (upper.c is one): Python's
 * `ThreadingTCPServer(address, Handler).serve_forever()`, the handler's class and the
 * address coming from the command line.
 *
 *   static int upper_handle(struct handler *h) {
 *     char buf[1024];
 *     ssize_t n;
 *     while ((n = session_receive(h, buf, sizeof buf)) > 0) {
 *       upper_case(buf, n);
 *       if (session_reply(h, buf, n) < 0)
 *         break;
 *     }
 *     return session_status(h);
 *   }
 *
 *   int main(int argc, char **argv) {
 *     struct program upper = {.about = "...", .handle = upper_handle};
 *     program_parse(&upper, argc, argv);
 *     struct server *server = program_server_new(&upper);
 *     if (server == NULL)
 *       return 1;
 *     int status = server_serve_forever(server, 0.5);
 *     server_free(server);
 *     return status == 0 ? 0 : 1;
 *   }
 *
 * (program_main(&upper, argc, argv) is those lines in one call.)
 */
#ifndef SOCKETS_LAB_PROGRAM_H
#define SOCKETS_LAB_PROGRAM_H

#include "socketserver.h"

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A program's own options take getopt values from here on (the common ones are below). */
enum { PROGRAM_OPTION = 512 };
enum { PROGRAM_MAX_ALLOW = 16 }; /* --allow CIDRs */
/* --workers: at most this many (--help says why). */
#define PROGRAM_MAX_WORKERS 256
#define PROGRAM_MAX_WORKERS_TEXT "256"

/* One --allow network: FAMILY's address bytes, the first BITS of which must match. */
struct program_network {
  int family; /* AF_INET or AF_INET6 */
  unsigned char address[16];
  int bits;
};

struct program {
  /* Said by the program. */
  const char *about;              /* the usage's description, one or more lines */
  int (*handle)(struct handler *h);
  bool datagrams;                 /* offers --udp and --unix PATH */
  bool disable_nagle_algorithm;   /* replies in several writes go out at once */
  const struct option *options;   /* its own long options, {0}-terminated, or NULL */
  const char *options_help;       /* their lines in the usage */
  int (*parse_option)(int option, const char *value, void *data); /* 0, or -1: bad value */
  void *data;                     /* its own (ftpserver: the folder): for parse_option,
                                     and for handle() as session_program(h)->data */

  /* Filled by program_parse from the command line. */
  const char *host, *port, *unix_path;
  bool udp;
  enum server_mode mode;
  size_t max_children;
  size_t workers;                 /* --workers: prefork, pool */
  enum server_accept_lock accept_lock; /* --accept-lock: prefork */
  enum server_accept_by accept_by;     /* --accept-by: pool */
  bool log_worker;                /* --log-worker: each log line names its worker */
  double timeout;                 /* --timeout: the handler's idle timeout, 0: none */
  size_t max_clients;             /* --max-clients: threading, live handlers; 0: no limit */
  struct program_network allow[PROGRAM_MAX_ALLOW]; /* --allow: a peer must be in one, if
                                                      any is given */
  size_t allow_count;
  const char *name;               /* argv[0], for messages */

  /* Filled by program_server_new: the RequestHandlerClass, handle() in a session. */
  struct handler_class handler_class;
};

/* ---- For main() -------------------------------------------------------------------- */

/* Parse the command line into P. --help prints the usage and exits 0; anything wrong
 * prints the usage on stderr and exits 2. Also makes stdout line-buffered, and first
 * opens /dev/null on whichever of descriptors 0 to 2 came closed, so that nothing the
 * server opens later lands there. */
void program_parse(struct program *p, int argc, char **argv);

/*
 * The server P's command line asks for, bound and listening, SIGINT and SIGTERM ending
 * its serve_forever, the ready line printed: Python's `ThreadingTCPServer(address,
 * Handler)`, with s->user the program. NULL when it cannot serve, with one line on stderr
 * naming why (exit 1, then). P must outlive the server.
 */
struct server *program_server_new(struct program *p);

/* program_server_new, server_serve_forever, server_free: serve until SIGINT or SIGTERM.
 * Returns the exit status: 0 after a clean stop, 1 when it cannot serve. */
int program_serve(struct program *p);

/* program_parse, then program_serve: main() of a program without preparations. */
int program_main(struct program *p, int argc, char **argv);

/* TEXT as a decimal whole number from MIN (0 or more) to MAX: digits only, no sign, no
 * space, no 0x; else -1. Every numeric option is read with it, the programs' own too. */
long long program_parse_whole(const char *text, long long min, long long max);

/* ---- For handlers ------------------------------------------------------------------ */

/*
 * One message: what one read brings, at most SIZE bytes (a datagram: the packet), logged
 * as "wrote:". Returns its length, or 0 when the session is over: end of stream, the
 * server stopping, a reset, or an error (session_status tells which mattered).
 */
ssize_t session_receive(struct handler *h, char *buf, size_t size);

/* Send all LEN bytes (a datagram: add them to the reply). 0, or -1: the session is over. */
int session_reply(struct handler *h, const void *buf, size_t len);

/*
 * A read or write on h's connection failed with errno: remember how, for the log and for
 * session_status. A reset (ECONNRESET, EPIPE) is the client's doing and is logged as
 * "reset"; anything else is an error for handle_error. Returns -1.
 */
int session_failed(struct handler *h, const char *what);

/* What handle() returns at the end: HANDLER_ERROR after an error, else HANDLER_OK. */
int session_status(struct handler *h);

/* The program the session serves (its data, its options). */
const struct program *session_program(struct handler *h);

/* "IP:PORT TEXT" on stdout (with --log-worker, "WORKER: IP:PORT TEXT"), for what a
 * program logs beyond the common lines. */
void session_log_event(struct handler *h, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* "IP:PORT wrote: TEXT", TEXT's trailing whitespace trimmed. */
void session_log_wrote(struct handler *h, const char *text, size_t len);

/* LEN less the trailing whitespace of TEXT, as Python's rstrip() sees it. */
size_t program_trimmed_length(const char *text, size_t len);

/* ---- The session and the server's methods, for program_server_new ------------------- */

/* How a stream session ended: its last log line. */
enum session_end { SESSION_DISCONNECTED, SESSION_RESET, SESSION_TIMED_OUT };

/* The handler subclass every handle() runs in (handler_class.instance_size): the
 * framework's handler first, so the h a handler is given is the session's; then what the
 * program layer keeps per session. h->state stays the program's own. */
struct session {
  struct handler handler;
  enum session_end end; /* SESSION_DISCONNECTED until session_failed says otherwise */
};

/* setup and finish: the defaults (request_handler_setup/finish) with the log lines
 * around them ("connected"; "disconnected", "reset" or "timed out"). */
int session_setup(struct handler *h);
void session_finish(struct handler *h);

/* BaseServer.verify_request, overridden: --allow, then --max-clients. */
bool program_verify_request(struct server *s, struct request *req);

#endif
