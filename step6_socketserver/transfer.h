/*
 * step6_socketserver/transfer.h - the file server's frames and folder, kept out of
 * ftpserver.c so that it reads like the seed's handler.
 *
 * A frame is a 4-byte little-endian signed length (Python's struct.pack('<i')), then that
 * many bytes of JSON. The folder is where put stores and get finds files. Where the seed
 * trusts its client, this does not: a read is exact, a frame that cannot be trusted ends
 * the connection, a name cannot leave the folder, and an upload appears under its name
 * only once it is whole.
 */
#ifndef SOCKETS_LAB_TRANSFER_H
#define SOCKETS_LAB_TRANSFER_H

#include "program.h"

#include <cJSON.h>
#include <sys/types.h>

enum { MAX_HEADER = 8192, MAX_NAME = 255 };

/* ---- Frames ---------------------------------------------------------------------- */

/* The next command's header, a JSON object the caller deletes; NULL when the session is
 * over: end of stream, a header not whole within --timeout of the wait for it ("timed
 * out", however often its bytes came), or a frame that cannot be trusted, which gets an
 * error status first (one Python's json would refuse or read otherwise, i.e. not UTF-8,
 * a control byte, bytes after the object, a key twice). */
cJSON *read_header(struct handler *h);

/* JSON as one frame, in one write; JSON is deleted. 0, or -1: the session is over. */
int send_frame(struct handler *h, cJSON *json);

/* The frame every command ends with, logged too: {"status":"ok","filename":NAME,
 * "filesize":SIZE}, or {"status":"error","reason":REASON} when REASON is not NULL. */
int send_status(struct handler *h, const char *reason, const char *name, long long size);

/* HEADER's string KEY, or NULL. */
const char *header_text(const cJSON *header, const char *key);

/* HEADER's number KEY as a whole number of bytes, or -1 when it is not one. */
long long header_size(const cJSON *header, const char *key);

/* ---- The folder ------------------------------------------------------------------ */

struct folder {
  const char *dir;    /* --dir */
  long long max_size; /* --max-size, bytes */
};

/* --dir and --max-size, for a struct program whose data is a struct folder. */
extern const struct option folder_options[];
extern const char folder_options_help[];
int folder_parse_option(int option, const char *value, void *folder);

/* Create the folder if it is missing and check that it is one; remove the temp files of
 * uploads whose receiver died (killed mid-put), never those of a live server sharing the
 * folder; a write past `ulimit -f` then fails with EFBIG instead of killing the server.
 * 0, or -1 with a line on stderr. */
int folder_prepare(const struct folder *folder);

/* The server's child_ended: a child or prefork worker that ended otherwise than by its
 * own exit 0 may have been killed mid-put; the temp files nobody holds are removed then,
 * as folder_prepare does, not only at the next start. The folder is the program's data. */
void folder_child_ended(struct server *s, pid_t pid, int status);

/* Read SIZE bytes of body and store them as NAME, through a temp file renamed only once
 * whole. 0 when the body was read: REASON is then "" (stored) or why not (an unsafe name,
 * a failed write; the bytes were dropped, so the next frame is where it should be).
 * -1 when the session is over; nothing is left behind. */
int folder_receive(struct handler *h, const struct folder *folder, const char *name,
                   long long size, char reason[SERVER_ERROR_SIZE]);

/* NAME opened to be sent: a regular file, no link followed. Its descriptor and *SIZE, or
 * -1 with REASON saying why not. */
int folder_open(const struct folder *folder, const char *name, off_t *size,
                char reason[SERVER_ERROR_SIZE]);

/* The file NAME, open on FD, to the client: a frame {"cmd":"get","filename":NAME,
 * "filesize":SIZE}, then its SIZE bytes. 0, or -1: the session is over. */
int send_file(struct handler *h, int fd, const char *name, off_t size);

#endif
