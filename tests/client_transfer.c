/*
 * tests/client_transfer.c - the shared client's put and get modes, for the step-6 file
 * server (step6_socketserver/ftpserver).
 *
 *   client [OPTIONS] put FILE [--as NAME]   upload FILE, stored as NAME (default: its
 *                                           last path component)
 *   client [OPTIONS] get NAME [-o FILE]     download NAME into FILE (default: NAME)
 *
 * Each command is a frame: a 4-byte little-endian signed length, then that many bytes of
 * JSON, then the body. The server answers every command with a status frame, which is
 * printed as it came; the exit status is 0 for {"status":"ok",...}, 1 for an error reply
 * or a failed transfer (named on stderr), 2 for bad usage. A test client with no JSON
 * library: it writes its one-line headers itself and reads only "status" and "filesize"
 * from the server's compact replies.
 */
#define _POSIX_C_SOURCE 200809L

#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_FRAME = 65536, CHUNK = 65536, HEADER_SIZE = 2048 };

static const char put_usage[] = "usage: client [OPTIONS] put FILE [--as NAME]\n";
static const char get_usage[] = "usage: client [OPTIONS] get NAME [-o FILE]\n";

/* Exactly LEN bytes; -1 on error or (errno 0) an early end of stream. */
static int recv_all(int fd, char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = recv(fd, buf, len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = 0;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

static int send_frame(int fd, const char *json) {
  size_t len = strlen(json);
  char length[4] = {(char)(len & 0xff), (char)(len >> 8 & 0xff), (char)(len >> 16 & 0xff),
                    (char)(len >> 24 & 0xff)};
  return send_all(fd, length, sizeof length) < 0 ? -1 : send_all(fd, json, len);
}

/* The next frame's JSON text, NUL-terminated (free it), or NULL with a message. */
static char *recv_frame(int fd, const char *mode) {
  unsigned char length[4];
  if (recv_all(fd, (char *)length, sizeof length) < 0) {
    fprintf(stderr, "%s: no reply from the server: %s\n", mode,
            errno ? strerror(errno) : "connection closed");
    return NULL;
  }
  unsigned long len = length[0] | length[1] << 8 | (unsigned long)length[2] << 16 |
                      (unsigned long)length[3] << 24;
  char *text = len >= 1 && len <= MAX_FRAME ? malloc(len + 1) : NULL;
  if (text == NULL || recv_all(fd, text, len) < 0) {
    fprintf(stderr, "%s: a broken reply frame (length %lu)\n", mode, len);
    free(text);
    return NULL;
  }
  text[len] = '\0';
  return text;
}

/* Print a status frame; EXIT_OK when it says ok. */
static int print_status(char *status) {
  if (status == NULL)
    return EXIT_FAILED;
  printf("%s\n", status);
  int ok = strncmp(status, "{\"status\":\"ok\"", 14) == 0;
  free(status);
  return ok ? EXIT_OK : EXIT_FAILED;
}

/* S as a JSON string, quotes and escapes included. */
static void json_string(char *out, size_t size, const char *s) {
  size_t n = 0;
  out[n++] = '"';
  for (; *s != '\0' && n + 8 < size; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      n += (size_t)snprintf(out + n, size - n, "\\%c", c);
    else if (c < 0x20)
      n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
    else
      out[n++] = (char)c;
  }
  snprintf(out + n, size - n, "\"");
}

/* The word after the mode and its options: exactly one, or usage. */
static const char *one_word(int argc, char **argv, const char *usage) {
  if (optind != argc - 1) {
    fputs(usage, stderr);
    exit(EXIT_USAGE);
  }
  return argv[optind];
}

int put_main(const struct target *target, int argc, char **argv) {
  static const struct option options[] = {{"as", required_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
  const char *name = NULL;
  int c;
  optind = 0; /* client.c has run getopt over its own options: start afresh (glibc) */
  while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
    if (c != 'a') {
      fputs(put_usage, stderr);
      return EXIT_USAGE;
    }
    name = optarg;
  }
  const char *path = one_word(argc, argv, put_usage);
  if (name == NULL)
    name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  int file = open(path, O_RDONLY);
  struct stat st;
  if (file < 0 || fstat(file, &st) < 0) {
    fprintf(stderr, "put: cannot read %s: %s\n", path, strerror(errno));
    return EXIT_FAILED;
  }
  int fd = connect_target(target);
  if (fd < 0) {
    close(file);
    return EXIT_FAILED;
  }
  char quoted[HEADER_SIZE / 2], header[HEADER_SIZE], chunk[CHUNK];
  json_string(quoted, sizeof quoted, name);
  snprintf(header, sizeof header, "{\"cmd\":\"put\",\"filename\":%s,\"filesize\":%lld}",
           quoted, (long long)st.st_size);
  int sent = send_frame(fd, header);
  ssize_t n = 0;
  while (sent == 0 && (n = read(file, chunk, sizeof chunk)) > 0)
    sent = send_all(fd, chunk, (size_t)n);
  if (sent < 0) /* the server may have refused and closed: its reason is still worth reading */
    fprintf(stderr, "put: the server stopped the upload: %s\n", strerror(errno));
  if (n < 0)
    fprintf(stderr, "put: cannot read %s: %s\n", path, strerror(errno));
  int status = n < 0 ? EXIT_FAILED : print_status(recv_frame(fd, "put"));
  close(file);
  close_target(fd);
  return sent < 0 ? EXIT_FAILED : status;
}

/* Receive LEN bytes of body into OUT. */
static int receive_file(int fd, FILE *out, long long len) {
  char chunk[CHUNK];
  while (len > 0) {
    size_t want = len < CHUNK ? (size_t)len : CHUNK;
    if (recv_all(fd, chunk, want) < 0) {
      fprintf(stderr, "get: the transfer broke off: %s\n",
              errno ? strerror(errno) : "connection closed");
      return -1;
    }
    if (fwrite(chunk, 1, want, out) != want) {
      fprintf(stderr, "get: cannot write: %s\n", strerror(errno));
      return -1;
    }
    len -= (long long)want;
  }
  return 0;
}

/* After the get header ANSWER: the body into OUTPUT, then the status. Nothing half
 * written is left behind. */
static int save_file(int fd, const char *answer, const char *output) {
  const char *size_field = strstr(answer, "\"filesize\":");
  if (size_field == NULL) {
    fprintf(stderr, "get: a header without a filesize: %s\n", answer);
    return EXIT_FAILED;
  }
  FILE *out = fopen(output, "wb");
  if (out == NULL) {
    fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
    return EXIT_FAILED;
  }
  int received = receive_file(fd, out, strtoll(size_field + 11, NULL, 10));
  if (fclose(out) != 0 && received == 0) {
    fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
    received = -1;
  }
  int status = received == 0 ? print_status(recv_frame(fd, "get")) : EXIT_FAILED;
  if (status != EXIT_OK)
    unlink(output);
  return status;
}

int get_main(const struct target *target, int argc, char **argv) {
  const char *output = NULL;
  int c;
  optind = 0;
  while ((c = getopt(argc, argv, "o:")) != -1) {
    if (c != 'o') {
      fputs(get_usage, stderr);
      return EXIT_USAGE;
    }
    output = optarg;
  }
  const char *name = one_word(argc, argv, get_usage);
  int fd = connect_target(target);
  if (fd < 0)
    return EXIT_FAILED;
  char quoted[HEADER_SIZE / 2], header[HEADER_SIZE];
  json_string(quoted, sizeof quoted, name);
  snprintf(header, sizeof header, "{\"cmd\":\"get\",\"filename\":%s}", quoted);
  char *answer = send_frame(fd, header) == 0 ? recv_frame(fd, "get") : NULL;
  int status = EXIT_FAILED;
  if (answer != NULL && strncmp(answer, "{\"cmd\":\"get\"", 12) != 0) {
    status = print_status(answer); /* a refusal comes instead of the header */
  } else if (answer != NULL) {
    status = save_file(fd, answer, output ? output : name);
    free(answer);
  }
  close_target(fd);
  return status;
}
