/*
 * tests/client.h - what the parts of the shared test client share.
 *
 * client.c holds main(), the common options and the chat and hold modes; each further
 * mode lives in a file of its own and is reached through one *_main function.
 */
#ifndef SOCKETS_LAB_CLIENT_H
#define SOCKETS_LAB_CLIENT_H

#include <stddef.h>

/* Where to connect, from the options every mode shares. */
struct target {
  const char *host;      /* --host, default 127.0.0.1 */
  const char *port;      /* --port, default 9999 */
  const char *unix_path; /* --unix PATH, or NULL for TCP */
  int udp;               /* --udp: datagrams instead of a stream */
};

/*
 * Open one connected socket to the target (for --udp, a connected datagram socket;
 * with --unix and --udp, bound to a path of its own so the server can answer).
 * Returns the descriptor, or -1 with a one-line message on stderr.
 */
int connect_target(const struct target *target);

/* Undo connect_target: close, and remove the datagram client's own path if any. */
void close_target(int fd);

/* Format "connect to ..." for messages: "127.0.0.1:9999" or the Unix path. */
const char *target_name(const struct target *target);

/* Send all LEN bytes, resuming partial sends and EINTR; a peer that has gone is -1
 * (EPIPE, no SIGPIPE), else 0. */
int send_all(int fd, const void *buf, size_t len);

/* Exit statuses shared by every mode. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

int bench_main(const struct target *target, int argc, char **argv);
int put_main(const struct target *target, int argc, char **argv);
int get_main(const struct target *target, int argc, char **argv);

#endif
