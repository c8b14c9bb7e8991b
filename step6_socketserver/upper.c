/*
 * step6_socketserver/upper.c - the upper-case echo of steps 1 to 5, on the framework.
 *
 * What it shows: the whole server of steps 1 to 5 is now one handle(), the seed's
 * `while True: data = recv(); send(data.upper())`. How many clients it serves at once is
 * the framework's business (--mode sync, threading, forking, prefork or pool), and so is
 * the socket: the same handle() serves TCP, UDP (--udp), a Unix stream socket
 * (--unix PATH) and a Unix datagram socket (--unix PATH --udp). For a datagram, the packet is the one
 * message and the reply datagram goes out when the handler finishes, even empty.
 * main() is the seed's last two lines, `server = ThreadingTCPServer(addr, Handler)` and
 * `server.serve_forever()`: the kind, mode and address come from the command line.
 *
 * How to see it: `make step6`, or
 *   step6_socketserver/upper --mode sync      (and a second client waits)
 *   step6_socketserver/upper --udp            (tests/client --udp talks to it)
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

/* The protocol: ASCII a-z become A-Z, every other byte is left alone. */
static void upper_case(char *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (buf[i] >= 'a' && buf[i] <= 'z')
      buf[i] = (char)(buf[i] - 'a' + 'A');
}

/* One read takes a 16 KiB message whole, as in steps 2 to 5, and any datagram. */
enum { BUFFER_SIZE = 16384 };

static int upper_handle(struct handler *h) {
  char buf[BUFFER_SIZE];
  ssize_t n;
  while ((n = session_receive(h, buf, sizeof buf)) > 0) {
    upper_case(buf, (size_t)n);
    if (session_reply(h, buf, (size_t)n) < 0)
      break;
  }
  return session_status(h);
}

int main(int argc, char **argv) {
  struct program upper = {
      .about = "The upper-case echo: every byte comes back, with a-z turned into A-Z.",
      .handle = upper_handle,
      .datagrams = true,
      .disable_nagle_algorithm = true, /* a long reply is several writes: send each at once */
  };
  program_parse(&upper, argc, argv);
  struct server *server = program_server_new(&upper); /* ThreadingTCPServer(addr, Handler) */
  if (server == NULL)
    return 1; /* why is on stderr */
  int status = server_serve_forever(server, 0.5); /* until SIGINT or SIGTERM */
  server_free(server);
  return status == 0 ? 0 : 1;
}
