/*
 * tests/exercises/s6-blank-line/starter.c - the seed's upper-case echo, on the step-6
 * framework, with the seed's own mistake (solved: only end of stream ends a session).
 *
 * What it shows: the seed's handle() read `data = self.request.recv(1024).strip()` and
 * ended the session `if not data`. A blank line, or one of spaces, strips to nothing: it
 * ends the session as end of stream does, and what the client sent is not what it gets
 * back (the whitespace is gone).
 *
 * How to see it: tests/exercises/talk.py --port PORT 'one\n' '\n' 'two\n': the blank
 * line closes the connection.
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

enum { BUFFER_SIZE = 1024 }; /* the seed's recv(1024) */

static int upper_handle(struct handler *h) {
  char buf[BUFFER_SIZE];
  ssize_t n;
  /* session_receive() returns 0 at end of stream only: a blank message is a message. */
  while ((n = session_receive(h, buf, sizeof buf)) > 0) {
    if (program_trimmed_length(buf, (size_t)n) == 0) /* nothing said: the client is done */
      break;
    for (ssize_t i = 0; i < n; i++) /* every byte back, none stripped */
      if (buf[i] >= 'a' && buf[i] <= 'z')
        buf[i] = (char)(buf[i] - 'a' + 'A');
    if (session_reply(h, buf, (size_t)n) < 0)
      break;
  }
  return session_status(h);
}

int main(int argc, char **argv) {
  struct program upper = {
      .about = "The upper-case echo, as the seed wrote it.",
      .handle = upper_handle,
  };
  return program_main(&upper, argc, argv);
}
