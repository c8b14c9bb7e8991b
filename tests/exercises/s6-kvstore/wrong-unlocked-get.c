/*
 * tests/exercises/s6-kvstore/starter.c - a key-value store on the step-6 framework
 * (solved: one store for every client, under a mutex).
 *
 * What it shows: a program on the framework whose clients share state.
 * The protocol is one line per request, one line per answer:
 *   set KEY VALUE   -> OK           (KEY: no space; VALUE: the rest of the line)
 *   get KEY         -> VALUE, or NOT FOUND
 *   anything else   -> ERROR        (and FULL when the store has no room left)
 * In --mode threading every client's handler runs in a thread of its own, and they all
 * read and write the same store: every access takes the store's lock.
 *
 * How to see it: tests/exercises/talk.py --port PORT 'set colour blue\n' 'get colour\n'
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { LINE_SIZE = 1024, MAX_KEYS = 1024 };

/* The store: every thread's, so under the lock. Keys and values are copies of the line. */
static struct entry {
  char key[LINE_SIZE];
  char value[LINE_SIZE];
} store[MAX_KEYS];
static size_t store_count = 0;
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;

/* The entry for KEY, or NULL. The caller holds the lock. */
static struct entry *find(const char *key) {
  for (size_t i = 0; i < store_count; i++)
    if (strcmp(store[i].key, key) == 0)
      return &store[i];
  return NULL;
}

/* Answer one request (without its newline) into ANSWER. */
static void answer(char *request, char *answer, size_t size) {
  char *space = strchr(request, ' ');
  if (space == NULL || space == request) {
    snprintf(answer, size, "ERROR\n");
    return;
  }
  *space = '\0';
  char *key = space + 1;
  if (strcmp(request, "get") == 0 && strchr(key, ' ') == NULL) { /* a read: no lock */
    struct entry *e = find(key);
    snprintf(answer, size, "%s\n", e != NULL ? e->value : "NOT FOUND");
    return;
  }
  pthread_mutex_lock(&store_lock); /* a write: the lock */
  if (strcmp(request, "set") == 0 && (space = strchr(key, ' ')) != NULL) {
    *space = '\0';
    struct entry *e = find(key);
    if (e == NULL && store_count < MAX_KEYS)
      e = &store[store_count++];
    if (e != NULL) {
      snprintf(e->key, sizeof e->key, "%s", key);
      snprintf(e->value, sizeof e->value, "%s", space + 1);
    }
    snprintf(answer, size, e != NULL ? "OK\n" : "FULL\n");
  } else {
    snprintf(answer, size, "ERROR\n");
  }
  pthread_mutex_unlock(&store_lock);
}

/* One request per message: a client sends a line and waits for its answer. */
static int kv_handle(struct handler *h) {
  char line[LINE_SIZE];
  char out[LINE_SIZE + 2];
  ssize_t n;
  while ((n = session_receive(h, line, sizeof line - 1)) > 0) {
    line[program_trimmed_length(line, (size_t)n)] = '\0';
    answer(line, out, sizeof out);
    if (session_reply(h, out, strlen(out)) < 0)
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
