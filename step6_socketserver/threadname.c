/*
 * step6_socketserver/threadname.c - the seed's ThreadingMixIn demo, on the framework.
 *
 * What it shows: who handles a request. Each message is answered with the name of the
 * thread that handles it, a colon, a space and the message: `Thread-1: Hello`. Threads
 * are numbered as Python numbers them, one per client in order; with --mode sync the
 * main thread serves everyone (`MainThread`); with --mode forking each client has a
 * process of its own (`Process-PID`).
 *
 * How to see it: `make step6`, or
 *   step6_socketserver/threadname &  python3 tests/articles/threadname_clients.py 127.0.0.1 9999
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <stdio.h>
#include <string.h>

enum { NAME_SIZE = 32 };

static int threadname_handle(struct handler *h) {
  char buf[1024];              /* the seed's recv(1024) */
  char out[NAME_SIZE + sizeof buf];
  ssize_t n;
  while ((n = session_receive(h, buf, sizeof buf)) > 0) {
    /* One write for the whole answer: a client's single recv() gets all of it. */
    int prefix = snprintf(out, NAME_SIZE, "%s: ", current_thread_name());
    memcpy(out + prefix, buf, (size_t)n);
    if (session_reply(h, out, (size_t)prefix + (size_t)n) < 0)
      break;
  }
  return session_status(h);
}

int main(int argc, char **argv) {
  struct program threadname = {
      .about = "Each message is answered with the name of the thread (or process) that\n"
               "handles it, a colon, a space and the message.",
      .handle = threadname_handle,
  };
  return program_main(&threadname, argc, argv);
}
