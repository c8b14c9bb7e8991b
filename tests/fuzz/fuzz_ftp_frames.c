/*
 * tests/fuzz/fuzz_ftp_frames.c - libFuzzer target: the file server's frames and headers.
 *
 * The input is what a client sends on one connection. It goes into one end of a
 * socketpair; the file server's own handler (ftpserver.c, included whole, its main()
 * renamed, with its transfer.c linked) reads the other end exactly as it reads a client -
 * length prefix, JSON header, body - runs put and get in a scratch folder, and writes its
 * replies back, which are drained. Any crash, leak or undefined behaviour is a finding.
 * Afterwards the folder must hold no temp file (.upload-*): an upload either became its
 * name or left nothing.
 */
#define main ftpserver_main
#include "../../step6_socketserver/ftpserver.c"
#undef main

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

static struct folder folder = {.max_size = 1 << 20};
static struct program program = {.data = &folder}; /* the handler's session_program(h) */
static char dir[] = "/tmp/fuzz-ftp-XXXXXX";

static void check_and_empty_folder(void);

static void remove_folder(void) {
  check_and_empty_folder();
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  if (mkdtemp(dir) == NULL)
    abort();
  folder.dir = dir;
  atexit(remove_folder);
  if (freopen("/dev/null", "w", stdout) == NULL) /* the log lines */
    abort();
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

/* Empty the folder between inputs (files from earlier puts make gets find something). */
static void check_and_empty_folder(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[PATH_MAX];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (strncmp(e->d_name, ".upload-", 8) == 0)
      abort(); /* a temp file outlived its upload */
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int sv[2];
  if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    return -1; /* the whole input must fit in the socket's buffer */
  int big = 1 << 20; /* as much as the system allows (net.core.wmem_max) */
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  for (size_t done = 0; done < size;) {
    ssize_t n = write(sv[1], data + done, size - done);
    if (n <= 0)
      abort();
    done += (size_t)n;
  }
  shutdown(sv[1], SHUT_WR); /* the client has said everything */
  struct request *req = calloc(1, sizeof *req);
  snprintf(req->client_name, sizeof req->client_name, "fuzz:0");
  struct session session = {.handler = {
      .request = req,
      .client_address = req->client_name,
      .connection = sv[0],
      .rfile = {.fd = sv[0], .stop_fd = -1, .timeout_ms = 1000},
      /* Nobody reads the replies: once they fill the buffer, a write times out and the
         session ends, as with a client that never reads. */
      .wfile = {.fd = sv[0], .stop_fd = -1, .timeout_ms = 50},
      .user = &program,
  }};
  ftp_handle(&session.handler);
  close(sv[0]);
  close(sv[1]);
  free(req);
  check_and_empty_folder();
  return 0;
}
