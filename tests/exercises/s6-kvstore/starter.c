/*
 * tests/exercises/s6-kvstore/starter.c - a key-value store on the step-6 framework, to be
 * written: for now it knows no command.
 *
 * What it shows, once written: a program on the framework whose clients share state.
 * The protocol is one line per request, one line per answer:
 *   set KEY VALUE   -> OK           (KEY: no space; VALUE: the rest of the line)
 *   get KEY         -> VALUE, or NOT FOUND
 *   anything else   -> ERROR
 * In --mode threading every client's handler runs in a thread of its own, and they all
 * read and write the same store.
 *
 * How to see it: tests/exercises/talk.py --port PORT 'set colour blue\n' 'get colour\n'
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <string.h>

enum { LINE_SIZE = 1024 };

static int kv_handle(struct handler *h) {
  char line[LINE_SIZE];
  ssize_t n;
  while ((n = session_receive(h, line, sizeof line)) > 0) {
    static const char error[] = "ERROR\n";
    if (session_reply(h, error, strlen(error)) < 0)
      break;
  }
  return session_status(h);
}

int main(int argc, char **argv) {
  struct program kvstore = {
      .about = "A key-value store: set KEY VALUE, get KEY, one line each.",
      .handle = kv_handle,
  };
  return program_main(&kvstore, argc, argv);
}
