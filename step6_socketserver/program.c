/*
 * step6_socketserver/program.c - the server a step-6 program's command line asks for.
 *
 * Python's `ThreadingTCPServer(address, Handler)`, with the kind (TCP, UDP, Unix stream,
 * Unix datagram), the mode and the address from the options (program_options.c), and
 * the handler class made of the program's handle() in a session (program_session.c).
 * Before it binds, the server gets what every program wants of it: the address reusable
 * at once, --max-children, the pools' --workers, --accept-lock and --accept-by, the
 * defences' verify_request (program_defences.c), the program as its user pointer. Then SIGINT and SIGTERM, and the ready line.
 *
 * How to see it: step6_socketserver/upper --port 0 prints "serving on 127.0.0.1:PORT";
 * upper --host 10.255.255.1 says why it cannot bind and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct server *program_server_new(struct program *p) {
  enum server_kind kind = p->unix_path ? (p->udp ? SERVER_UNIX_DGRAM : SERVER_UNIX_STREAM)
                                       : (p->udp ? SERVER_UDP : SERVER_TCP);
  char address[SERVER_NAME_SIZE + 8];
  if (p->unix_path != NULL)
    snprintf(address, sizeof address, "%s", p->unix_path);
  else /* an IPv6 address goes in brackets (unless given in them), so its colons are not
          the port's */
    snprintf(address, sizeof address,
             strchr(p->host, ':') && p->host[0] != '[' ? "[%s]:%s" : "%s:%s", p->host, p->port);
  p->handler_class = (struct handler_class){
      .setup = session_setup,
      .handle = p->handle,
      .finish = session_finish,
      .disable_nagle_algorithm = p->disable_nagle_algorithm,
      .timeout = p->timeout, /* StreamRequestHandler.timeout: reads and writes fail after it */
      .instance_size = sizeof(struct session),
  };
  struct server *s = server_new_unbound(kind, p->mode, address, &p->handler_class, p);
  if (s != NULL) {
    s->allow_reuse_address = true; /* a restart need not wait for TIME_WAIT */
    s->max_children = p->max_children;
    s->workers = p->workers;
    s->accept_lock = p->accept_lock;
    s->accept_by = p->accept_by;
    s->ops.verify_request = program_verify_request;
  }
  if (s == NULL || server_bind_and_activate(s) < 0) {
    /* A failed name lookup or lock file in its own words, which errno cannot carry;
       else the whole path (ADDRESS may have cut a long one short) and why. */
    if (server_address_error()[0] != '\0')
      fprintf(stderr, "%s\n", server_address_error());
    else
      fprintf(stderr, "cannot bind %s: %s\n", p->unix_path ? p->unix_path : address,
              strerror(errno));
    server_free(s);
    return NULL;
  }
  if (server_shutdown_on_signals(s) < 0) {
    fprintf(stderr, "cannot catch SIGINT and SIGTERM: %s\n", strerror(errno));
    server_free(s);
    return NULL;
  }
  printf("serving on %s\n", s->server_address_name);
  return s;
}

/* upper.c's main() spells these lines out, as the seed's last two lines do. */
int program_serve(struct program *p) {
  struct server *server = program_server_new(p);
  if (server == NULL)
    return 1;
  int status = server_serve_forever(server, 0.5); /* Python's poll_interval */
  server_free(server);
  return status == 0 ? 0 : 1;
}

int program_main(struct program *p, int argc, char **argv) {
  program_parse(p, argc, argv);
  return program_serve(p);
}
