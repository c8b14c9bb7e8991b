/*
 * step6_socketserver/transfer.c - the file server's frames and folder (see transfer.h).
 *
 * The header is parsed by cJSON, never by hand, and held to what Python's json.loads
 * takes, so the seed's server and this one read a header alike: UTF-8, one JSON object
 * and nothing after it, each key once. A name is refused when it could leave the
 * folder or hide in it: empty, too long, with a slash, "..", a leading dot (so never one
 * of our temp files either), a NUL or another control byte. An upload is written to a
 * temp file made with O_EXCL, then renamed: a client that stops half-way leaves nothing;
 * a forking child or prefork worker killed half-way leaves a temp file its server removes
 * as it reaps it, and a whole server killed, one the next start removes (see "Temp
 * files" below).
 */
#define _POSIX_C_SOURCE 200809L

#include "transfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { CHUNK = 65536, PATH_SIZE = 4096 };
#define TEMP_PREFIX ".upload-" /* then mkstemp's six letters and digits */
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
    rc = session_reply(h, frame, 4 + len); /* one write: header and length travel together */
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
    session_log_event(h, "error: %s", reason);
  } else {
    session_log_event(h, "ok: %s, %lld bytes", name, size);
    cJSON_AddStringToObject(status, "filename", name);
    cJSON_AddNumberToObject(status, "filesize", (double)size);
  }
  return send_frame(h, status);
}

/* Whether LEN bytes of TEXT are UTF-8 as Python's strict decoder takes it: no stray or
 * missing continuation byte, no overlong form, no surrogate, nothing past U+10FFFF. */
static bool is_utf8(const unsigned char *text, size_t len) {
  for (size_t i = 0; i < len;) {
    unsigned char c = text[i];
    size_t more = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                : c >= 0xf0 && c <= 0xf4 ? 3 : 4; /* 4: never a lead byte */
    if (more == 4 || len - i - 1 < more)
      return false;
    /* The second byte's range is narrower after these leads (RFC 3629's table). */
    unsigned char low = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char high = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    for (size_t k = 1; k <= more; k++)
      if (text[i + k] < (k == 1 ? low : 0x80) || text[i + k] > (k == 1 ? high : 0xbf))
        return false;
    i += 1 + more;
  }
  return true;
}

/* A key that ITEM, or an object inside it, has twice; NULL if none. cJSON's lookup finds
 * the first, Python's json keeps the last: the two servers would read another filesize. */
static const char *duplicate_key(const cJSON *item) {
  for (const cJSON *a = item->child; a != NULL; a = a->next) {
    for (const cJSON *b = a->next; cJSON_IsObject(item) && b != NULL; b = b->next)
      if (strcmp(a->string, b->string) == 0)
        return a->string;
    const char *inner = duplicate_key(a); /* as deep as cJSON nests, 1000 at most */
    if (inner != NULL)
      return inner;
  }
  return NULL;
}

/* What Python's json.loads would refuse in TEXT before parsing it, or NULL. */
static const char *header_bytes_problem(const char *text, size_t len) {
  /* cJSON would cut a name at a NUL: refuse one in any form, raw or escaped. */
  if (memchr(text, '\0', len) != NULL || strstr(text, "\\u0000") != NULL)
    return "a NUL in the header";
  /* JSON has no raw control byte but its four whitespace ones; cJSON skips any of them
     between tokens and keeps them in strings. */
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)text[i] < 0x20 && strchr("\t\n\r", text[i]) == NULL)
      return "a control byte in the header";
  if (!is_utf8((const unsigned char *)text, len))
    return "header is not valid UTF-8";
  return NULL;
}

/* What is wrong with HEADER, parsed from a text that went on from END; NULL if nothing. */
static const char *parsed_problem(const cJSON *header, const char *end,
                                  char problem[SERVER_ERROR_SIZE]) {
  if (!cJSON_IsObject(header))
    return "header is not a JSON object";
  if (end[strspn(end, " \t\n\r")] != '\0') /* no NUL inside: '\0' is the text's end */
    return "trailing bytes after the JSON header";
  const char *duplicate = duplicate_key(header);
  if (duplicate == NULL)
    return NULL;
  snprintf(problem, SERVER_ERROR_SIZE, "key \"%.64s\" twice in the header", duplicate);
  return problem;
}

/* The monotonic clock, in milliseconds. */
static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * N bytes of a header into BUF, all by DEADLINE_MS (now_ms's clock; -1: no deadline).
 * --timeout alone bounds each wait, and a client that sends a byte every 1.5 s under
 * --timeout 2 would hold its worker for hours with one 8 KiB header (slowloris): so the
 * whole header must come within --timeout. Returns as rfile_read; ETIMEDOUT when late.
 */
static ssize_t read_by(struct handler *h, void *buf, size_t n, long long deadline_ms) {
  int idle_ms = h->rfile.timeout_ms;
  size_t got = 0;
  while (got < n) {
    long long left = deadline_ms - now_ms();
    if (deadline_ms >= 0 && left <= 0) {
      h->rfile.timeout_ms = idle_ms;
      errno = ETIMEDOUT;
      return -1;
    }
    if (deadline_ms >= 0 && (idle_ms < 0 || left < idle_ms))
      h->rfile.timeout_ms = (int)left;
    ssize_t k = rfile_read1(&h->rfile, (char *)buf + got, n - got);
    h->rfile.timeout_ms = idle_ms;
    if (k <= 0)
      return k < 0 ? -1 : (ssize_t)got;
    got += (size_t)k;
  }
  return (ssize_t)got;
}

cJSON *read_header(struct handler *h) {
  unsigned char length[4];
  char text[MAX_HEADER + 1];
  /* From the wait for its first byte: an idle client gets no more time than before. */
  long long deadline = h->rfile.timeout_ms < 0 ? -1 : now_ms() + h->rfile.timeout_ms;
  ssize_t n = read_by(h, length, sizeof length, deadline);
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
  if ((n = read_by(h, text, (size_t)len, deadline)) != len) {
    if (n < 0)
      session_failed(h, "recv");
    return NULL;
  }
  text[len] = '\0';
  session_log_wrote(h, text, (size_t)len);
  /* Each refusal ends the session: a header read two ways has no trusted filesize, so
     where the next frame starts is unknown. */
  char problem[SERVER_ERROR_SIZE];
  const char *refusal = header_bytes_problem(text, (size_t)len);
  cJSON *header = NULL;
  if (refusal == NULL) {
    const char *end;
    pthread_mutex_lock(&parse_lock);
    header = cJSON_ParseWithLengthOpts(text, (size_t)len, &end, false);
    pthread_mutex_unlock(&parse_lock);
    refusal = parsed_problem(header, end, problem);
  }
  if (refusal != NULL) {
    send_status(h, refusal, NULL, 0);
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

int folder_parse_option(int option, const char *value, void *data) {
  struct folder *folder = data;
  if (option == OPT_DIR) {
    folder->dir = value;
    return value[0] != '\0' ? 0 : -1;
  }
  folder->max_size = program_parse_whole(value, 0, LLONG_MAX);
  return folder->max_size >= 0 ? 0 : -1;
}

/*
 * Temp files, and who owns them. An upload goes to DIR/.upload-XXXXXX, and whoever
 * receives it (the server, or its child in forking mode) holds an flock on that file
 * from its creation to its rename or unlink. A process that dies, even by SIGKILL or the
 * OOM killer, loses its locks with it, so a temp file that nobody holds locked is the
 * remains of a dead upload, and a start-up, or the server reaping a child that did not
 * end well, removes exactly those (remove_dead_uploads).
 * A live upload of another server in the same folder stays locked and is left alone;
 * a pid in the name could not say as much (pids are reused, and differ between pid
 * namespaces sharing a volume).
 * One window remains: after mkstemp and before its flock, a temp file exists unlocked.
 * So a temp file is created under a shared flock on the folder itself, and the clean-up
 * holds an exclusive one: it never meets a temp file that is not locked yet.
 * flock and not fcntl locks, since those belong to the process (one thread's close would
 * drop another's); an flock belongs to the open file, and each upload opens its own.
 */

/* flock, again after a signal. */
static int lock(int fd, int operation) {
  int rc;
  while ((rc = flock(fd, operation)) < 0 && errno == EINTR)
    continue;
  return rc;
}

/* A new temp file for an upload into DIR, its path in TEMP, locked (see above); its
 * descriptor, or -1 with errno. */
static int create_temp(const char *dir, char temp[PATH_SIZE]) {
  snprintf(temp, PATH_SIZE, "%s/" TEMP_PREFIX "XXXXXX", dir);
  int folder_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder_fd < 0)
    return -1;
  int fd = -1;
  if (lock(folder_fd, LOCK_SH) == 0 && (fd = mkstemp(temp)) >= 0 &&
      lock(fd, LOCK_EX | LOCK_NB) < 0) { /* a file new to all: refused only by the system */
    int error = errno;
    unlink(temp);
    close(fd);
    fd = -1;
    errno = error;
  }
  int error = errno;
  close(folder_fd); /* and with it the shared lock */
  errno = error;
  return fd;
}

/* Whether NAME is one of our temp files: the prefix, then mkstemp's six letters or digits. */
static bool is_temp_name(const char *name) {
  static const char alphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  size_t prefix = strlen(TEMP_PREFIX);
  return strncmp(name, TEMP_PREFIX, prefix) == 0 && strlen(name) == prefix + 6 &&
         strspn(name + prefix, alphabet) == 6;
}

/* Remove the temp files of uploads whose owner has died (see above): a regular file of
 * our pattern that nobody holds locked. 0, or -1 with errno (the folder cannot be read). */
static int remove_dead_uploads(const char *dir) {
  int folder_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *entries = folder_fd >= 0 ? fdopendir(folder_fd) : NULL;
  if (entries == NULL || lock(folder_fd, LOCK_EX) < 0) {
    int error = errno;
    if (entries != NULL)
      closedir(entries);
    else if (folder_fd >= 0)
      close(folder_fd);
    errno = error;
    return -1;
  }
  struct dirent *e;
  while ((e = readdir(entries)) != NULL) {
    if (!is_temp_name(e->d_name))
      continue;
    int fd = openat(folder_fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
      continue; /* gone (renamed by its live owner), a link, or not ours to read */
    /* Ours to lock: its owner is dead, or has just renamed it away and closed it. So the
       name must still be the file we locked (no new temp file can take the name, none
       is made while we hold the folder). */
    struct stat opened, named;
    if (fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode) &&
        lock(fd, LOCK_EX | LOCK_NB) == 0 &&
        fstatat(folder_fd, e->d_name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
        named.st_dev == opened.st_dev && named.st_ino == opened.st_ino)
      unlinkat(folder_fd, e->d_name, 0);
    close(fd);
  }
  closedir(entries); /* and with it the folder's lock */
  return 0;
}

void folder_child_ended(struct server *s, pid_t pid, int status) {
  (void)pid;
  const struct folder *folder = ((const struct program *)s->user)->data;
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && remove_dead_uploads(folder->dir) < 0)
    fprintf(stderr, "cannot clean %s: %s\n", folder->dir, strerror(errno));
}

int folder_prepare(const struct folder *folder) {
  struct stat st;
  if (strlen(folder->dir) > PATH_SIZE - MAX_NAME - 2)
    errno = ENAMETOOLONG;
  else if ((mkdir(folder->dir, 0755) == 0 || errno == EEXIST) && stat(folder->dir, &st) == 0)
    errno = S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  bool usable = errno == 0 && remove_dead_uploads(folder->dir) == 0;
  if (!usable) {
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
  int fd = problem ? -1 : create_temp(folder->dir, temp); /* O_EXCL: never someone else's */
  int error = problem || fd >= 0 ? 0 : errno;
  /* The temp file is renamed or unlinked before it is closed: closed, it is unlocked,
     and a server starting in this folder would take it for a dead upload's. */
  if (receive_body(h, fd, size, &error) < 0) {
    if (fd >= 0 && unlink(temp) == 0)
      session_log_event(h, "put %s: interrupted, nothing stored", name);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if (fd >= 0) {
    char path[PATH_SIZE];
    snprintf(path, sizeof path, "%s/%s", folder->dir, name);
    if (fchmod(fd, 0644) < 0 && error == 0)
      error = errno;
    if (error != 0 || rename(temp, path) < 0) { /* rename replaces a link, never follows it */
      error = error ? error : errno;
      unlink(temp);
    }
    /* A write error a file system reports only at close (NFS) comes after the rename:
       it is still answered as an error, so the client knows to send again. */
    if (close(fd) < 0 && error == 0)
      error = errno;
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
    rc = n > 0 ? session_reply(h, chunk, (size_t)n) : session_failed(h, "read");
    left -= n;
  }
  return rc;
}
