/*
 * step6_socketserver/ftpserver.c - the seed's file-upload server, on the framework.
 *
 * What it shows: a protocol with frames. A command is a 4-byte length, a JSON header and
 * maybe a body. This file is the seed's handler (read a header, run the method its cmd
 * names) with a get added and a framed status after every command. What the seed left
 * out (exact reads, names kept inside --dir, uploads that appear only when whole) is in
 * transfer.c.
 *
 * How to see it: `make step6`, or
 *   step6_socketserver/ftpserver --dir /tmp/up &  tests/client put FILE; tests/client get NAME
 */
#define _POSIX_C_SOURCE 200809L

#include "transfer.h"

#include <string.h>
#include <unistd.h>

/* The seed's put(): the FILESIZE bytes after the header become the file FILENAME. */
static int put(struct handler *h, cJSON *header, const struct folder *folder) {
  const char *name = header_text(header, "filename");
  long long size = header_size(header, "filesize");
  char problem[SERVER_ERROR_SIZE];
  if (size < 0 || size > folder->max_size) {
    /* Either where the body ends is unknown, or it is not worth reading: the session
       ends, since the next frame would start after it. */
    send_status(h, size < 0 ? "filesize is not a whole number of bytes"
                            : "file larger than --max-size", NULL, 0);
    return -1;
  }
  if (folder_receive(h, folder, name, size, problem) < 0)
    return -1;
  return send_status(h, problem[0] != '\0' ? problem : NULL, name, size);
}

/* The seed's put() the other way: the file FILENAME goes back, then the status. */
static int get(struct handler *h, cJSON *header, const struct folder *folder) {
  const char *name = header_text(header, "filename");
  char problem[SERVER_ERROR_SIZE];
  off_t size;
  int fd = folder_open(folder, name, &size, problem);
  if (fd < 0)
    return send_status(h, problem, NULL, 0);
  int rc = send_file(h, fd, name, size);
  close(fd);
  return rc < 0 ? -1 : send_status(h, NULL, name, size);
}

/* The seed's handle(): read a header, run the command it names (hasattr/getattr). */
static int ftp_handle(struct handler *h) {
  static const struct {
    const char *name;
    int (*run)(struct handler *h, cJSON *header, const struct folder *folder);
  } commands[] = {{"put", put}, {"get", get}};
  enum { COMMANDS = sizeof commands / sizeof commands[0] };
  const struct folder *folder = session_program(h)->data;
  cJSON *header;
  int rc = 0;
  while (rc == 0 && (header = read_header(h)) != NULL) {
    const char *cmd = header_text(header, "cmd");
    size_t i = 0;
    while (i < COMMANDS && !(cmd != NULL && strcmp(cmd, commands[i].name) == 0))
      i++;
    rc = i < COMMANDS ? commands[i].run(h, header, folder)
                      : send_status(h, "unknown command", NULL, 0);
    cJSON_Delete(header);
  }
  return session_status(h);
}

int main(int argc, char **argv) {
  struct folder folder = {.dir = "file_upload", .max_size = 1LL << 30};
  struct program ftp = {
      .about = "The file server: put and get files, framed JSON headers, in one folder.",
      .handle = ftp_handle,
      .disable_nagle_algorithm = true, /* a get is several writes: send each at once */
      .options = folder_options,
      .options_help = folder_options_help,
      .parse_option = folder_parse_option,
      .data = &folder,
  };
  program_parse(&ftp, argc, argv);
  if (folder_prepare(&folder) < 0)
    return 1;
  struct server *server = program_server_new(&ftp);
  if (server == NULL)
    return 1;
  server->child_ended = folder_child_ended; /* one killed mid-put leaves its temp file */
  int status = server_serve_forever(server, 0.5);
  server_free(server);
  return status == 0 ? 0 : 1;
}
