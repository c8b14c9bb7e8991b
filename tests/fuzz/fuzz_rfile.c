/*
 * tests/fuzz/fuzz_rfile.c - libFuzzer target: the framework's buffered stream reader.
 *
 * The input's first byte seeds the choice of calls; the rest is the stream, written into
 * a socketpair in pieces of random size (so the reader meets short recvs at every
 * boundary), then ended. rfile_readline, rfile_read and rfile_read1 are called in a
 * random order with random sizes until the end of stream, and every call's promise is
 * checked: readline stops after a '\n' or at SIZE - 1 bytes, NUL-terminated; read returns
 * exactly N bytes unless the stream ended; read1 at most N and at least 1; and the bytes
 * read, all together, are the stream, none lost, none repeated. A broken promise aborts.
 */
#define _POSIX_C_SOURCE 200809L
#include "../../step6_socketserver/socketserver.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t next(uint32_t *state) { /* xorshift32: the call sizes */
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

#define CHECK(condition) ((condition) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536)
    return -1;
  uint32_t state = data[0] * 2654435761u | 1;
  const uint8_t *stream = data + 1;
  size_t len = size - 1;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    return -1;
  int big = 1 << 20;
  setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  static struct rfile rf; /* 8 KiB of buffer: not on the stack */
  rf = (struct rfile){.fd = sv[0], .stop_fd = -1, .timeout_ms = 1000};
  uint8_t *got = malloc(len + 1);
  char buf[RFILE_BUFFER_SIZE * 2 + 2];
  size_t total = 0, sent = 0;
  for (;;) {
    unsigned call = next(&state) % 3;
    /* read1 returns what is there, so the stream comes in pieces of random size while
       it is the one called; readline and read would wait for more: all of it first. */
    size_t piece = call == 2 ? 1 + next(&state) % 3000 : len;
    if (sent < len || (len == 0 && sent == 0)) {
      piece = piece < len - sent ? piece : len - sent;
      CHECK(write(sv[1], stream + sent, piece) == (ssize_t)piece);
      sent += piece;
      if (sent == len) {
        shutdown(sv[1], SHUT_WR);
        sent = len + 1; /* all sent, and the end said */
      }
    }
    size_t n = next(&state) % (sizeof buf - 1) + 1;
    ssize_t r;
    size_t copied;
    switch (call) {
    case 0:
      r = rfile_readline(&rf, buf, n);
      CHECK(r >= 0 && (size_t)r < n && buf[r] == '\0');
      CHECK(memchr(buf, '\n', r > 0 ? (size_t)r - 1 : 0) == NULL); /* stops after one */
      if (r > 0 && buf[r - 1] != '\n' && (size_t)r < n - 1)
        CHECK(total + (size_t)r == len); /* short of both: only at the end */
      break;
    case 1:
      r = rfile_read(&rf, buf, n);
      CHECK(r >= 0 && (size_t)r <= n);
      if ((size_t)r < n)
        CHECK(total + (size_t)r == len);
      break;
    default:
      r = rfile_read1(&rf, buf, n);
      CHECK(r >= 0 && (size_t)r <= n);
      break;
    }
    copied = (size_t)r;
    CHECK(total + copied <= len);
    memcpy(got + total, buf, copied);
    total += copied;
    if (r == 0 && (call != 0 || n > 1)) /* end of stream (a readline of size 1 reads none) */
      break;
  }
  CHECK(total == len && memcmp(got, stream, len) == 0);
  free(got);
  close(sv[0]);
  close(sv[1]);
  return 0;
}
