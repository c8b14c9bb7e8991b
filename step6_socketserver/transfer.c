/*
 * step6_socketserver/transfer.c - the file server's frames and folder (see transfer.h).
 *
 * The header is parsed by cJSON, never by hand. A name is refused when it could leave the
 * folder or hide in it: empty, too long, with a slash, "..", a leading dot (so never one
 * of our temp files either), a NUL or another control byte. An upload is written to a
 * temp file made with O_EXCL, then renamed: a client that stops half-way leaves nothing.
 */
#define _POSIX_C_SOURCE 200809L

#include "transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { CHUNK = 65536, PATH_SIZE = 4096 };
enum { OPT_DIR = PROGRAM_OPTION, OPT_MAX_SIZE };

/* cJSON keeps where the last parse failed in one global (cJSON_GetErrorPtr), written by
 * every parse: the handler threads take turns at parsing, or they race on it. */
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- Frames ---------------------------------------------------------------------- */

int send_frame(struct handler *h, cJSON *json) {
  char *text = cJSON_PrintUnformatted(json);
  size_t len = text ? strlen(text) : 0;
  char *frame = text ? malloc(4 + len) : NULL;
  int rc = -1;
  if (frame != NULL) {
    for (int i = 0; i < 4; i++)
      frame[i] = (char)(len >> (8 * i) & 0xff);
    memcpy(frame + 4, text, len);
    rc = reply(h, frame, 4 + len); /* one write: header and length travel together */
  }
  free(frame);
  free(text);
  cJSON_Delete(json);
  return rc;
}

int send_status(struct handler *h, const char *reason, const char *name, long long size) {
  cJSON *status = cJSON_CreateObject();
  cJSON_AddStringToObject(status, "status", reason ? "error" : "ok");
  if (reason != NULL) {
    cJSON_AddStringToObject(status, "reason", reason);
    log_event(h, "error: %s", reason);
  } else {
    log_event(h, "ok: %s, %lld bytes", name, size);
    cJSON_AddStringToObject(status, "filename", name);
    cJSON_AddNumberToObject(status, "filesize", (double)size);
  }
  return send_frame(h, status);
}

cJSON *read_header(struct handler *h) {
  unsigned char length[4];
  char text[MAX_HEADER + 1];
  ssize_t n = rfile_read(&h->rfile, length, sizeof length);
  if (n != sizeof length) {
    if (n < 0)
      session_failed(h, "recv");
    return NULL;
  }
  uint32_t bits = length[0] | length[1] << 8 | (uint32_t)length[2] << 16 |
                  (uint32_t)length[3] << 24;
  long long len = bits > INT32_MAX ? (long long)bits - 4294967296LL : (long long)bits;
  if (len < 1 || len > MAX_HEADER) {
    snprintf(text, sizeof text, "header length %lld is not from 1 to %d", len, MAX_HEADER);
    send_status(h, text, NULL, 0);
    return NULL;
  }
  if ((n = rfile_read(&h->rfile, text, (size_t)len)) != len) {
    if (n < 0)
      session_failed(h, "recv");
    return NULL;
  }
  text[len] = '\0';
  log_wrote(h, text, (size_t)len);
  /* cJSON would cut a name at a NUL: refuse one in any form, raw or escaped. */
  bool nul = memchr(text, '\0', (size_t)len) != NULL || strstr(text, "\\u0000") != NULL;
  cJSON *header = NULL;
  if (!nul) {
    pthread_mutex_lock(&parse_lock);
    header = cJSON_ParseWithLength(text, (size_t)len);
    pthread_mutex_unlock(&parse_lock);
  }
  if (!cJSON_IsObject(header)) {
    send_status(h, nul ? "a NUL in the header" : "header is not a JSON object", NULL, 0);
    cJSON_Delete(header);
    return NULL;
  }
  return header;
}

const char *header_text(const cJSON *header, const char *key) {
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(header, key));
}

long long header_size(const cJSON *header, const char *key) {
  const cJSON *number = cJSON_GetObjectItemCaseSensitive(header, key);
  double size = cJSON_IsNumber(number) ? number->valuedouble : -1;
  /* A double holds every whole number up to 2^53 exactly; past it, bytes would be lost. */
  return size >= 0 && size <= 0x1p53 && size == (double)(long long)size ? (long long)size : -1;
}

/* ---- The folder ------------------------------------------------------------------ */

const struct option folder_options[] = {{"dir", required_argument, NULL, OPT_DIR},
                                        {"max-size", required_argument, NULL, OPT_MAX_SIZE},
                                        {NULL, 0, NULL, 0}};

const char folder_options_help[] =
    "      --dir DIR           the folder files go to and come from, created\n"
    "                          if missing (default ./file_upload)\n"
    "      --max-size BYTES    refuse uploads larger than this (default 1 GiB)\n";

int folder_parse_option(int option, const char *value, void *user) {
  struct folder *folder = user;
  char *end;
  if (option == OPT_DIR) {
    folder->dir = value;
    return value[0] != '\0' ? 0 : -1;
  }
  errno = 0;
  folder->max_size = strtoll(value, &end, 10);
  return errno == 0 && end != value && *end == '\0' && folder->max_size >= 0 ? 0 : -1;
}

int folder_prepare(const struct folder *folder) {
  struct stat st;
  if (strlen(folder->dir) > PATH_SIZE - MAX_NAME - 2)
    errno = ENAMETOOLONG;
  else if ((mkdir(folder->dir, 0755) == 0 || errno == EEXIST) && stat(folder->dir, &st) == 0)
    errno = S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  if (errno != 0) {
    fprintf(stderr, "cannot use %s as the folder: %s\n", folder->dir, strerror(errno));
    return -1;
  }
  /* Past the size limit (ulimit -f), a write fails with EFBIG and is answered as any
     other failed write, where SIGXFSZ would kill the server. */
  signal(SIGXFSZ, SIG_IGN);
  return 0;
}

/* Why NAME may not be stored or sent, or NULL when it may. */
static const char *name_problem(const char *name) {
  if (name == NULL || name[0] == '\0')
    return "no file name";
  if (strlen(name) > MAX_NAME)
    return "file name too long";
  if (name[0] == '.' || strstr(name, "..") != NULL)
    return "file name starts with a dot or contains ..";
  for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++)
    if (*c == '/' || *c < 0x20 || *c == 0x7f)
      return "file name contains a slash or a control byte";
  return NULL;
}

/* Read SIZE bytes of body into FD (-1: read and drop them, so the stream stays in step).
 * Returns 0 when all of it came, else -1; a failed write is left in *write_error. */
static int receive_body(struct handler *h, int fd, long long size, int *write_error) {
  char chunk[CHUNK];
  for (long long left = size; left > 0;) {
    ssize_t n = rfile_read1(&h->rfile, chunk, left < CHUNK ? (size_t)left : CHUNK);
    if (n <= 0)
      return n < 0 ? session_failed(h, "recv") : -1;
    left -= n;
    for (ssize_t done = 0, w = 0; fd >= 0 && *write_error == 0 && done < n; done += w)
      if ((w = write(fd, chunk + done, (size_t)(n - done))) < 0)
        *write_error = errno;
  }
  return 0;
}

int folder_receive(struct handler *h, const struct folder *folder, const char *name,
                   long long size, char reason[SERVER_ERROR_SIZE]) {
  const char *problem = name_problem(name); /* the body is read and dropped, then we go on */
  char temp[PATH_SIZE];
  snprintf(temp, sizeof temp, "%s/.upload-XXXXXX", folder->dir);
  int fd = problem ? -1 : mkstemp(temp); /* O_EXCL: a new file, never someone else's */
  int error = problem || fd >= 0 ? 0 : errno;
  if (receive_body(h, fd, size, &error) < 0) {
    if (fd >= 0 && close(fd) == 0 && unlink(temp) == 0)
      log_event(h, "put %s: interrupted, nothing stored", name);
    return -1;
  }
  if (fd >= 0) {
    char path[PATH_SIZE];
    snprintf(path, sizeof path, "%s/%s", folder->dir, name);
    if ((fchmod(fd, 0644) < 0 || close(fd) < 0) && error == 0)
      error = errno;
    if (error != 0 || rename(temp, path) < 0) { /* rename replaces a link, never follows it */
      error = error ? error : errno;
      unlink(temp);
    }
  }
  if (problem != NULL)
    snprintf(reason, SERVER_ERROR_SIZE, "%s", problem);
  else if (error != 0)
    snprintf(reason, SERVER_ERROR_SIZE, "cannot store %s: %s", name, strerror(error));
  else
    reason[0] = '\0';
  return 0;
}

int folder_open(const struct folder *folder, const char *name, off_t *size,
                char reason[SERVER_ERROR_SIZE]) {
  const char *problem = name_problem(name);
  char path[PATH_SIZE];
  struct stat st;
  if (problem != NULL) {
    snprintf(reason, SERVER_ERROR_SIZE, "%s", problem);
    return -1;
  }
  snprintf(path, sizeof path, "%s/%s", folder->dir, name);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK); /* no link, and no fifo waited on */
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    snprintf(reason, SERVER_ERROR_SIZE, "cannot send %s: %s", name,
             fd < 0 ? strerror(errno) : "not a regular file");
    if (fd >= 0)
      close(fd);
    return -1;
  }
  *size = st.st_size;
  return fd;
}

int send_file(struct handler *h, int fd, const char *name, off_t size) {
  char chunk[CHUNK];
  cJSON *header = cJSON_CreateObject();
  cJSON_AddStringToObject(header, "cmd", "get");
  cJSON_AddStringToObject(header, "filename", name);
  cJSON_AddNumberToObject(header, "filesize", (double)size);
  int rc = send_frame(h, header);
  for (off_t left = size; rc == 0 && left > 0;) {
    ssize_t n = read(fd, chunk, left < CHUNK ? (size_t)left : CHUNK);
    if (n == 0)
      errno = ENODATA; /* the file shrank: the bytes promised cannot come */
    rc = n > 0 ? reply(h, chunk, (size_t)n) : session_failed(h, "read");
    left -= n;
  }
  return rc;
}
