/*
 * tests/exercises/s6-blank-line/starter.c - the seed's upper-case echo, on the step-6
 * framework, with the seed's own mistake.
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
  while ((n = session_receive(h, buf, sizeof buf)) > 0) {
    size_t len = program_trimmed_length(buf, (size_t)n); /* the seed's strip() */
    size_t start = 0;
    while (start < len && (buf[start] == ' ' || buf[start] == '\t'))
      start++;
    if (start == len) /* `if not data: break` */
      break;
    for (size_t i = start; i < len; i++)
      if (buf[i] >= 'a' && buf[i] <= 'z')
        buf[i] = (char)(buf[i] - 'a' + 'A');
    if (session_reply(h, buf + start, len - start) < 0)
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
