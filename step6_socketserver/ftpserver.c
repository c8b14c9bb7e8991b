/*
 * step6_socketserver/ftpserver.c - the seed's file-upload server, on the framework.
 *
 * What it shows: a protocol with frames. Each command is a 4-byte little-endian signed
 * length, that many bytes of a JSON header, then the body: `put` stores FILESIZE bytes
 * under FILENAME, `get` sends a file back with a header of its own. Every command gets a
 * framed status reply, {"status":"ok",...} or {"status":"error","reason":"..."}, which
 * the seed's own client never reads, and need not. Where the seed trusts its client, we
 * do not: a name must stay inside --dir (no slash, no "..", no leading dot, no NUL or
 * control byte, not too long), an upload goes to a temp file that is renamed only once
 * complete, so an interrupted one leaves nothing, and a frame we cannot trust ends the
 * connection. The header is parsed by cJSON, never by hand.
 *
 * How to see it: `make step6`, or
 *   step6_socketserver/ftpserver --dir /tmp/up &  tests/client put FILE; tests/client get NAME
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_HEADER = 8192, MAX_NAME = 255, CHUNK = 65536, PATH_SIZE = 4096 };
enum { OPT_DIR = PROGRAM_OPTION, OPT_MAX_SIZE };

struct folder {
  const char *dir;
  long long max_size; /* --max-size, bytes */
};

/* Why NAME may not be stored or sent, or NULL when it may. */
static const char *name_problem(const char *name) {
  if (name == NULL || name[0] == '\0')
    return "no file name";
  if (strlen(name) > MAX_NAME)
    return "file name too long";
  if (name[0] == '.' || strstr(name, "..") != NULL) /* and so not our temp files either */
    return "file name starts with a dot or contains ..";
  for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++)
    if (*c == '/' || *c < 0x20 || *c == 0x7f)
      return "file name contains a slash or a control byte";
  return NULL;
}

/* One frame: the length as Python's struct.pack('<i'), then the JSON text. */
static int send_frame(struct handler *h, cJSON *json) {
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

/* {"status":"ok","filename":NAME,"filesize":SIZE}, or with REASON, the error. */
static int send_status(struct handler *h, const char *reason, const char *name, double size) {
  cJSON *status = cJSON_CreateObject();
  cJSON_AddStringToObject(status, "status", reason ? "error" : "ok");
  if (reason != NULL) {
    cJSON_AddStringToObject(status, "reason", reason);
    log_event(h, "error: %s", reason);
  } else {
    log_event(h, "ok: %s, %.0f bytes", name, size);
    cJSON_AddStringToObject(status, "filename", name);
    cJSON_AddNumberToObject(status, "filesize", size);
  }
  return send_frame(h, status);
}

/* The next command's header, or NULL when the session is over (a frame we cannot trust
 * is answered first, then the connection ends). */
static cJSON *read_header(struct handler *h) {
  unsigned char length[4];
  char text[MAX_HEADER + 1];
  ssize_t n = rfile_read(&h->rfile, length, sizeof length);
  if (n != sizeof length) {
    if (n < 0)
      session_failed(h, "recv");
    return NULL;
  }
  uint32_t bits = length[0] | length[1] << 8 | (uint32_t)length[2] << 16 | (uint32_t)length[3] << 24;
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
  cJSON *header = nul ? NULL : cJSON_ParseWithLength(text, (size_t)len);
  if (!cJSON_IsObject(header)) {
    send_status(h, nul ? "a NUL in the header" : "header is not a JSON object", NULL, 0);
    cJSON_Delete(header);
    return NULL;
  }
  return header;
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

/* The seed's put(), into a temp file that becomes NAME only once it is whole. */
static int put(struct handler *h, cJSON *header, const struct folder *folder) {
  const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(header, "filename"));
  const cJSON *filesize = cJSON_GetObjectItemCaseSensitive(header, "filesize");
  double size = cJSON_IsNumber(filesize) ? filesize->valuedouble : -1;
  if (!(size >= 0 && size <= 0x1p53) || size != (double)(long long)size) {
    send_status(h, "filesize is not a whole number of bytes", NULL, 0);
    return -1; /* where the body ends is unknown, and so where the next frame starts */
  }
  if (size > (double)folder->max_size) {
    send_status(h, "file larger than --max-size", NULL, 0);
    return -1; /* a body not worth reading */
  }
  const char *problem = name_problem(name); /* the body is read and dropped, then we go on */
  char temp[PATH_SIZE], path[PATH_SIZE], reason[SERVER_ERROR_SIZE];
  snprintf(temp, sizeof temp, "%s/.upload-XXXXXX", folder->dir);
  int fd = problem ? -1 : mkstemp(temp); /* O_EXCL: a new file, never someone else's */
  int error = problem || fd >= 0 ? 0 : errno;
  if (receive_body(h, fd, (long long)size, &error) < 0) {
    if (fd >= 0 && close(fd) == 0 && unlink(temp) == 0)
      log_event(h, "put %s: interrupted, nothing stored", name);
    return -1;
  }
  if (fd >= 0) {
    snprintf(path, sizeof path, "%s/%s", folder->dir, name);
    if ((fchmod(fd, 0644) < 0 || close(fd) < 0) && error == 0)
      error = errno;
    if (error != 0 || rename(temp, path) < 0) { /* rename replaces a link, never follows it */
      error = error ? error : errno;
      unlink(temp);
    }
  }
  if (problem == NULL && error != 0)
    snprintf(reason, sizeof reason, "cannot store %s: %s", name, strerror(error));
  return send_status(h, problem ? problem : error ? reason : NULL, name, size);
}

/* A file back: a header {"cmd":"get","filename":NAME,"filesize":N}, N bytes, the status. */
static int get(struct handler *h, cJSON *header, const struct folder *folder) {
  const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(header, "filename"));
  const char *problem = name_problem(name);
  char path[PATH_SIZE], reason[SERVER_ERROR_SIZE], chunk[CHUNK];
  struct stat st = {.st_mode = 0};
  int fd = -1;
  if (problem == NULL) { /* no link followed, and no fifo waited on */
    snprintf(path, sizeof path, "%s/%s", folder->dir, name);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
      snprintf(reason, sizeof reason, "cannot send %s: %s", name,
               fd < 0 ? strerror(errno) : "not a regular file");
    problem = fd < 0 || !S_ISREG(st.st_mode) ? reason : NULL;
  }
  if (problem != NULL) {
    if (fd >= 0)
      close(fd);
    return send_status(h, problem, NULL, 0);
  }
  cJSON *answer = cJSON_CreateObject();
  cJSON_AddStringToObject(answer, "cmd", "get");
  cJSON_AddStringToObject(answer, "filename", name);
  cJSON_AddNumberToObject(answer, "filesize", (double)st.st_size);
  int rc = send_frame(h, answer);
  for (off_t left = st.st_size; rc == 0 && left > 0;) {
    ssize_t n = read(fd, chunk, left < CHUNK ? (size_t)left : CHUNK);
    if (n == 0)
      errno = ENODATA; /* the file shrank: the bytes promised cannot come */
    rc = n > 0 ? reply(h, chunk, (size_t)n) : session_failed(h, "read");
    left -= n;
  }
  close(fd);
  return rc < 0 ? -1 : send_status(h, NULL, name, (double)st.st_size);
}

/* The seed's handle(): read a header, run the command it names (hasattr/getattr). */
static int ftp_handle(struct handler *h) {
  static const struct {
    const char *name;
    int (*run)(struct handler *h, cJSON *header, const struct folder *folder);
  } commands[] = {{"put", put}, {"get", get}};
  cJSON *header;
  int rc = 0;
  while (rc == 0 && (header = read_header(h)) != NULL) {
    const char *cmd = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(header, "cmd"));
    size_t i = 0;
    while (i < sizeof commands / sizeof commands[0] && !(cmd && !strcmp(cmd, commands[i].name)))
      i++;
    rc = i < sizeof commands / sizeof commands[0] ? commands[i].run(h, header, h->user)
                                                   : send_status(h, "unknown command", NULL, 0);
    cJSON_Delete(header);
  }
  return session_status(h);
}

static int parse_option(int option, const char *value, void *user) {
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

/* The folder exists (we make it if need be) and is one. */
static int prepare(const char *dir) {
  struct stat st;
  if (strlen(dir) > PATH_SIZE - MAX_NAME - 2)
    errno = ENAMETOOLONG;
  else if ((mkdir(dir, 0755) == 0 || errno == EEXIST) && stat(dir, &st) == 0)
    errno = S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  return errno == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  static const struct option options[] = {{"dir", required_argument, NULL, OPT_DIR},
                                          {"max-size", required_argument, NULL, OPT_MAX_SIZE},
                                          {NULL, 0, NULL, 0}};
  struct folder folder = {.dir = "file_upload", .max_size = 1LL << 30};
  struct program ftp = {
      .about = "The file server: put and get files, framed JSON headers, in one folder.",
      .handle = ftp_handle,
      .disable_nagle_algorithm = true, /* a get is several writes: send each at once */
      .options = options,
      .options_help = "      --dir DIR           the folder files go to and come from, created\n"
                      "                          if missing (default ./file_upload)\n"
                      "      --max-size BYTES    refuse uploads larger than this (default 1 GiB)\n",
      .parse_option = parse_option,
      .user = &folder,
  };
  program_parse(&ftp, argc, argv);
  /* A file past the size limit (ulimit -f) is a write failing with EFBIG, answered as any
     other failed write, not a SIGXFSZ that kills the server. */
  signal(SIGXFSZ, SIG_IGN);
  if (prepare(folder.dir) < 0) {
    fprintf(stderr, "cannot use %s as the folder: %s\n", folder.dir, strerror(errno));
    return 1;
  }
  return program_serve(&ftp);
}
