/*
 * tests/client_transfer.c - the shared client's put and get modes, for the step-6 file
 * server (step6_socketserver/ftpserver).
 *
 *   client [OPTIONS] put FILE [--as NAME]   upload FILE, stored as NAME (default: its
 *                                           last path component); a pipe or a device
 *                                           is read to its end first (at most 64 MiB)
 *   client [OPTIONS] get NAME [-o FILE]     download NAME into FILE (default: NAME),
 *                                           which is replaced only by a whole transfer;
 *                                           -o - writes to standard output
 *
 * Each command is a frame: a 4-byte little-endian signed length, then that many bytes of
 * JSON, then the body. The server answers every command with a status frame, which is
 * printed as it came; the exit status is 0 for {"status":"ok",...}, 1 for an error reply
 * or a failed transfer (named on stderr), 2 for bad usage. A test client with no JSON
 * library: it writes its one-line headers itself and reads only "status" and "filesize"
 * from the server's compact replies.
 */
#define _XOPEN_SOURCE 700 /* POSIX 2008 with realpath() */

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

enum {
  MAX_FRAME = 65536,
  CHUNK = 65536,
  HEADER_SIZE = 2048,
  MAX_UNSIZED = 64 << 20, /* put: what a pipe may give, held in memory to learn its size */
};

static const char put_usage[] = "usage: client [OPTIONS] put FILE [--as NAME]\n";
static const char get_usage[] = "usage: client [OPTIONS] get NAME [-o FILE|-]\n";

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

static int status_ok(const char *status) {
  return status != NULL && strncmp(status, "{\"status\":\"ok\"", 14) == 0;
}

/* Print a status frame; EXIT_OK when it says ok. */
static int print_status(char *status) {
  if (status == NULL)
    return EXIT_FAILED;
  printf("%s\n", status);
  int ok = status_ok(status);
  free(status);
  return ok ? EXIT_OK : EXIT_FAILED;
}

/* Write all LEN bytes, resuming partial writes and EINTR. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
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

/* ---- put ----------------------------------------------------------------------- */

/*
 * All of FILE (a pipe, a terminal, a device) read into memory: it has no st_size to
 * announce in the header, so the size is known only at its end. At most MAX_UNSIZED
 * bytes, so /dev/zero is an error, not a hang. Returns the bytes (free them) and their
 * number in *LEN, or NULL with a message.
 */
static char *read_to_end(int file, const char *path, size_t *len) {
  size_t used = 0, capacity = CHUNK;
  char *data = malloc(capacity);
  while (data != NULL) {
    ssize_t n = read(file, data + used, capacity - used);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      fprintf(stderr, "put: cannot read %s: %s\n", path, strerror(errno));
      break;
    }
    if (n == 0) {
      *len = used;
      return data;
    }
    used += (size_t)n;
    if (used > MAX_UNSIZED) {
      fprintf(stderr,
              "put: %s is not a regular file and gives more than %d MiB: "
              "save it to a file first\n",
              path, MAX_UNSIZED >> 20);
      break;
    }
    if (used == capacity) {
      capacity = capacity * 2 > MAX_UNSIZED + 1 ? MAX_UNSIZED + 1 : capacity * 2;
      char *bigger = realloc(data, capacity);
      if (bigger == NULL) {
        fprintf(stderr, "put: cannot read %s: %s\n", path, strerror(errno));
        break;
      }
      data = bigger;
    }
  }
  free(data);
  return NULL;
}

enum { SENT = 0, SEND_FAILED = -1, READ_FAILED = -2 };

/*
 * Send the first SIZE bytes of the regular file FILE: exactly what the header announced.
 * A file that shrank since fstat() cannot keep that promise, and the server would wait
 * for the missing bytes as long as we waited for its reply: READ_FAILED, named.
 */
static int send_file(int fd, int file, const char *path, long long size) {
  char chunk[CHUNK];
  long long left = size;
  while (left > 0) {
    ssize_t n = read(file, chunk, left < CHUNK ? (size_t)left : CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      fprintf(stderr, "put: cannot read %s: %s\n", path, strerror(errno));
      return READ_FAILED;
    }
    if (n == 0) {
      fprintf(stderr, "put: %s shrank while being sent: it ended after %lld of %lld bytes\n", path,
              size - left, size);
      return READ_FAILED;
    }
    if (send_all(fd, chunk, (size_t)n) < 0)
      return SEND_FAILED;
    left -= n;
  }
  return SENT;
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
    if (file >= 0)
      close(file);
    return EXIT_FAILED;
  }
  /* Only a regular file's st_size is its length (a pipe's is 0): read the rest first. */
  char *data = NULL;
  size_t data_len = 0;
  if (!S_ISREG(st.st_mode) && (data = read_to_end(file, path, &data_len)) == NULL) {
    close(file);
    return EXIT_FAILED;
  }
  long long size = data != NULL ? (long long)data_len : (long long)st.st_size;
  int fd = connect_target(target);
  if (fd < 0) {
    free(data);
    close(file);
    return EXIT_FAILED;
  }
  char quoted[HEADER_SIZE / 2], header[HEADER_SIZE];
  json_string(quoted, sizeof quoted, name);
  snprintf(header, sizeof header, "{\"cmd\":\"put\",\"filename\":%s,\"filesize\":%lld}", quoted,
           size);
  int sent = send_frame(fd, header) < 0 ? SEND_FAILED : SENT;
  if (sent == SENT && data != NULL)
    sent = send_all(fd, data, data_len) < 0 ? SEND_FAILED : SENT;
  else if (sent == SENT)
    sent = send_file(fd, file, path, size);
  if (sent == SEND_FAILED) /* the server may have refused and closed: its reason is worth reading */
    fprintf(stderr, "put: the server stopped the upload: %s\n", strerror(errno));
  /* After READ_FAILED the server still waits for the body: no reply will come. Closing
   * is what tells it the upload broke off (and it stores nothing). */
  int status = sent == READ_FAILED ? EXIT_FAILED : print_status(recv_frame(fd, "put"));
  free(data);
  close(file);
  close_target(fd);
  return sent == SENT ? status : EXIT_FAILED;
}

/* ---- get ----------------------------------------------------------------------- */

/* The "filesize" of a get header: a whole, non-negative number of bytes, else -1. */
static long long header_filesize(const char *answer) {
  const char *field = strstr(answer, "\"filesize\":");
  if (field == NULL)
    return -1;
  field += strlen("\"filesize\":");
  field += strspn(field, " \t\r\n");
  size_t digits = strspn(field, "0123456789");
  if (digits == 0 || field[digits] == '\0' || strchr(",} \t\r\n", field[digits]) == NULL)
    return -1; /* -5, "abc", "5", 1.5, 1e3 */
  errno = 0;
  long long size = strtoll(field, NULL, 10);
  return errno == ERANGE ? -1 : size;
}

/*
 * Where a download goes. A regular file, or a name not yet taken, is replaced only by a
 * whole transfer: the bytes go to a temporary file beside it, renamed over it at the
 * end, so a failure leaves what was there before (a symbolic link to a file: the file it
 * names is replaced, the link stays). Whatever else is there (a device like /dev/null, a
 * fifo, our own standard output as /dev/stdout) is written straight through and never
 * removed: we cannot put a file in its place, nor should we.
 */
struct sink {
  int fd;
  char *temp;  /* the temporary file, or NULL when writing straight through */
  char *final; /* what the temporary file becomes */
  mode_t mode; /* the permissions it then gets */
  int is_stdout; /* our own standard output (-o - or -o /dev/stdout) */
};

/* Open OUTPUT as a sink; -1 with a message. */
static int open_sink(struct sink *sink, const char *output) {
  *sink = (struct sink){.fd = -1};
  struct stat seen, named, out;
  if (strcmp(output, "-") == 0 ||
      (stat(output, &named) == 0 && fstat(STDOUT_FILENO, &out) == 0 &&
       named.st_dev == out.st_dev && named.st_ino == out.st_ino)) {
    sink->is_stdout = 1;
    sink->fd = dup(STDOUT_FILENO); /* -o - or -o /dev/stdout, whatever our output is */
    if (sink->fd < 0)
      fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
    return sink->fd < 0 ? -1 : 0;
  }
  int exists = lstat(output, &seen) == 0;
  if (!exists && errno != ENOENT) {
    fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
    return -1;
  }
  const char *path = output;
  char *resolved = NULL;
  if (exists && S_ISLNK(seen.st_mode) && stat(output, &named) == 0 && S_ISREG(named.st_mode)) {
    if ((resolved = realpath(output, NULL)) == NULL) {
      fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
      return -1;
    }
    path = resolved;
    seen = named;
  }
  if (exists && !S_ISREG(seen.st_mode)) {
    sink->fd = open(output, O_WRONLY); /* no O_CREAT: a dangling link stays dangling */
    if (sink->fd < 0)
      fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
    return sink->fd < 0 ? -1 : 0;
  }
  /* Beside the target: rename() replaces a file only within its own file system. */
  const char *slash = strrchr(path, '/');
  int dir_len = slash != NULL ? (int)(slash - path + 1) : 0;
  size_t size = strlen(path) + 16;
  sink->final = resolved != NULL ? resolved : strdup(path);
  sink->temp = malloc(size);
  if (sink->final == NULL || sink->temp == NULL) {
    fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
    free(sink->final);
    free(sink->temp);
    return -1;
  }
  snprintf(sink->temp, size, "%.*s.%.200s.XXXXXX", dir_len, path, path + dir_len);
  if ((sink->fd = mkstemp(sink->temp)) < 0) {
    fprintf(stderr, "get: cannot create a temporary file beside %s: %s\n", output, strerror(errno));
    free(sink->final);
    free(sink->temp);
    return -1;
  }
  /* mkstemp() makes it 0600: give it what the file had, or what fopen() would give. */
  mode_t mask = umask(0);
  umask(mask);
  sink->mode = exists ? seen.st_mode & 07777 : 0666 & ~mask;
  return 0;
}

/* Close SINK: with WHOLE, the temporary file takes the target's place; without, it is
 * removed (and only it). Returns -1, named, if the bytes could not be kept. */
static int close_sink(struct sink *sink, const char *output, int whole) {
  int rc = 0;
  if (whole && sink->temp != NULL && fchmod(sink->fd, sink->mode) < 0) {
    fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
    rc = -1;
  }
  if (close(sink->fd) < 0 && whole && rc == 0) {
    fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
    rc = -1;
  }
  if (sink->temp != NULL) {
    if (whole && rc == 0 && rename(sink->temp, sink->final) < 0) {
      fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
      rc = -1;
    }
    if (!whole || rc < 0)
      unlink(sink->temp);
    free(sink->temp);
    free(sink->final);
  }
  return rc;
}

/* Receive LEN bytes of body into OUT, each piece written as it comes (a fifo or our
 * standard output sees the bytes while they arrive). */
static int receive_file(int fd, int out, long long len, const char *output) {
  char chunk[CHUNK];
  while (len > 0) {
    ssize_t n = recv(fd, chunk, len < CHUNK ? (size_t)len : CHUNK, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      fprintf(stderr, "get: the transfer broke off: %s\n",
              n < 0 ? strerror(errno) : "connection closed");
      return -1;
    }
    if (write_all(out, chunk, (size_t)n) < 0) {
      fprintf(stderr, "get: cannot write %s: %s\n", output, strerror(errno));
      return -1;
    }
    len -= n;
  }
  return 0;
}

/* After the get header ANSWER: the body into OUTPUT, then the status. Only a whole
 * transfer with an ok status replaces OUTPUT. */
static int save_file(int fd, const char *answer, const char *output) {
  long long size = header_filesize(answer);
  if (size < 0) {
    fprintf(stderr, "get: the server's header has no filesize of whole bytes: %s\n", answer);
    return EXIT_FAILED;
  }
  struct sink sink;
  if (open_sink(&sink, output) < 0)
    return EXIT_FAILED;
  char *reply = receive_file(fd, sink.fd, size, output) == 0 ? recv_frame(fd, "get") : NULL;
  int ok = status_ok(reply);
  if (close_sink(&sink, output, ok) < 0)
    ok = 0;
  if (reply != NULL) /* beside the file's bytes, never among them */
    fprintf(sink.is_stdout ? stderr : stdout, "%s\n", reply);
  free(reply);
  return ok ? EXIT_OK : EXIT_FAILED;
}

int get_main(const struct target *target, int argc, char **argv) {
  const char *output = NULL;
  int c;
  optind = 0;
  while ((c = getopt(argc, argv, "o:")) != -1) {
    if (c != 'o' || optarg[0] == '\0') {
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
