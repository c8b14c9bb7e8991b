/*
 * tests/exercises/s6-handle/starter.c - an upper-case echo on the step-6 framework, that
 * answers nothing (solved: the framework is handed the handler).
 *
 * What it shows: a handler that is never called. The seed's Python server defined
 * `def handler(self)` where socketserver calls handle(): the method was never called,
 * BaseRequestHandler's own handle() did nothing, and every client met silence. Here the
 * handler is written but the program never hands it to the framework.
 *
 * How to see it: build it (make check-exercise EX=s6-handle does), run it with --port 0,
 * and talk to it with tests/client: no reply, the connection just closes.
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

enum { BUFFER_SIZE = 1024 }; /* the seed's recv(1024) */

static int upper_handler(struct handler *h) {
  char buf[BUFFER_SIZE];
  ssize_t n;
  while ((n = session_receive(h, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] >= 'a' && buf[i] <= 'z')
        buf[i] = (char)(buf[i] - 'a' + 'A');
    n = (ssize_t)program_trimmed_length(buf, (size_t)n); /* the message, without its newline */
    if (session_reply(h, buf, (size_t)n) < 0)
      break;
  }
  return session_status(h);
}

int main(int argc, char **argv) {
  struct program upper = {
      .about = "The upper-case echo, or it would be.",
      .handle = upper_handler, /* what the framework calls for each client */
  };
  return program_main(&upper, argc, argv);
}
