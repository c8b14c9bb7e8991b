/*
 * step6_socketserver/program_session.c - one client's session, and its log lines.
 *
 * The session is a handler subclass (struct session in program.h): the framework's
 * handler, then how the session ended. Its setup and finish are the framework's with a
 * log line around them, "connected" and then "disconnected", "reset" or "timed out";
 * in between, session_receive logs each message as "wrote:". A reset or a timeout is the
 * client's doing, not an error: session_failed keeps it in the session, for finish to
 * log, and session_status still says HANDLER_OK. A datagram is logged only as "wrote:".
 * With --log-worker every line starts with the worker's name (current_thread_name()).
 *
 * How to see it: step6_socketserver/upper, then tests/client; or upper --timeout 1 and
 * tests/client hold ("timed out").
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The session h is: the framework created it instance_size big, h first. */
static struct session *session_of(struct handler *h) { return (struct session *)h; }

/* Each stream session is logged from its start to its end; a datagram only as "wrote:". */
static bool is_stream(const struct handler *h) { return h->server->socket_type == SOCK_STREAM; }

enum { WORKER_PREFIX_SIZE = 40 }; /* "Process-PID: " */

/* "NAME: " with --log-worker, else "": what starts each of h's log lines. */
static const char *worker_prefix(struct handler *h, char prefix[WORKER_PREFIX_SIZE]) {
  prefix[0] = '\0';
  if (session_program(h)->log_worker)
    snprintf(prefix, WORKER_PREFIX_SIZE, "%s: ", current_thread_name());
  return prefix;
}

int session_setup(struct handler *h) {
  char prefix[WORKER_PREFIX_SIZE];
  if (is_stream(h))
    printf("%s%s connected\n", worker_prefix(h, prefix), h->client_address);
  return request_handler_setup(h);
}

void session_finish(struct handler *h) {
  static const char *const last_line[] = {[SESSION_DISCONNECTED] = "disconnected",
                                          [SESSION_RESET] = "reset",
                                          [SESSION_TIMED_OUT] = "timed out"};
  char prefix[WORKER_PREFIX_SIZE];
  request_handler_finish(h);
  if (is_stream(h))
    printf("%s%s %s\n", worker_prefix(h, prefix), h->client_address,
           last_line[session_of(h)->end]);
}

ssize_t session_receive(struct handler *h, char *buf, size_t size) {
  ssize_t n = rfile_read1(&h->rfile, buf, size);
  if (n < 0) {
    session_failed(h, "recv");
    return 0;
  }
  if (n > 0)
    session_log_wrote(h, buf, (size_t)n);
  return n;
}

int session_reply(struct handler *h, const void *buf, size_t len) {
  return wfile_write(&h->wfile, buf, len) < 0 ? session_failed(h, "send") : 0;
}

int session_failed(struct handler *h, const char *what) {
  if (errno == ECONNRESET || errno == EPIPE)
    session_of(h)->end = SESSION_RESET;
  else if (errno == ETIMEDOUT) /* --timeout: the client's silence, not our error */
    session_of(h)->end = SESSION_TIMED_OUT;
  else
    snprintf(h->request->error, sizeof h->request->error, "%s: %s", what, strerror(errno));
  return -1;
}

int session_status(struct handler *h) {
  return h->request->error[0] != '\0' ? HANDLER_ERROR : HANDLER_OK;
}

/* The server's user pointer, which the framework hands to each handler as h->user. */
const struct program *session_program(struct handler *h) { return h->user; }

/* ---- Log lines ---------------------------------------------------------------------- */

void session_log_event(struct handler *h, const char *format, ...) {
  char line[SERVER_NAME_SIZE + 1024];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof line, format, args);
  va_end(args);
  char prefix[WORKER_PREFIX_SIZE];
  printf("%s%s %s\n", worker_prefix(h, prefix), h->client_address, line);
}

/*
 * Control bytes are shown as '.': a client's newline or NUL must not forge or hide a line.
 * The line goes out in one write() of at most PIPE_BUF bytes, which the kernel never
 * splices with another's: in forking and prefork mode every process writes to the same
 * standard output, and a longer line, written in pieces, would be cut into by the others'
 * lines. What does not fit is left out, and the line says how much.
 */
void session_log_wrote(struct handler *h, const char *text, size_t len) {
  enum { CUT_NOTE_SIZE = 40 }; /* " [... 18446744073709551615 more bytes]" */
  char line[PIPE_BUF], prefix[WORKER_PREFIX_SIZE];
  size_t used = (size_t)snprintf(line, sizeof line, "%s%s wrote: ", worker_prefix(h, prefix),
                                 h->client_address);
  len = program_trimmed_length(text, len);
  size_t room = sizeof line - used - 1; /* the newline's */
  size_t shown = len <= room ? len : room - CUT_NOTE_SIZE;
  for (size_t i = 0; i < shown; i++) {
    unsigned char c = (unsigned char)text[i];
    line[used++] = c < ' ' || c == 127 ? '.' : (char)c;
  }
  if (shown < len)
    used += (size_t)snprintf(line + used, CUT_NOTE_SIZE + 1, " [... %zu more bytes]", len - shown);
  line[used++] = '\n';
  flockfile(stdout); /* after what stdio holds (the ready line), before another thread's */
  fflush(stdout);
  ssize_t n;
  do
    n = write(STDOUT_FILENO, line, used);
  while (n < 0 && errno == EINTR);
  funlockfile(stdout);
}

size_t program_trimmed_length(const char *text, size_t len) {
  while (len > 0 && (text[len - 1] == ' ' || (text[len - 1] >= '\t' && text[len - 1] <= '\r')))
    len--;
  return len;
}
