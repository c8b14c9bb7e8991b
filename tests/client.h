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

/* TEXT as a whole decimal number from MIN to MAX: digits only, so no sign, no space,
 * no hex (strtoull alone takes " 80", "+80" and "-1", the last as a huge number).
 * Returns 0 with the value in *OUT, or -1. */
int parse_decimal(const char *text, unsigned long long min, unsigned long long max,
                  unsigned long long *out);

/* TEXT as decimal seconds (digits, with at most one point: "2", "0.5", ".5") from MIN to
 * MAX; strtod alone takes " 1", "0x1", "1e3" and "inf" too. 0 with *OUT, or -1. */
int parse_seconds(const char *text, double min, double max, double *out);

/* Exit statuses shared by every mode. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

int bench_main(const struct target *target, int argc, char **argv);
int put_main(const struct target *target, int argc, char **argv);
int get_main(const struct target *target, int argc, char **argv);

#endif
