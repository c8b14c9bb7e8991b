/*
 * step6_socketserver/program_defences.c - who is served: --allow and --max-clients.
 *
 * Both are Python's hook for it, BaseServer.verify_request(), overridden: the framework
 * calls it with each new connection before any handler runs, and closes the connection
 * when it returns false. A refusal is logged ("IP:PORT refused: WHY"); the client is not
 * told why. The program is the server's user pointer (program_server_new makes it so).
 * The third defence, --timeout, is no refusal: it is the handler's timeout
 * (handler_class.timeout, in program.c), and its "timed out" is the session's last log
 * line (program_session.c).
 *
 * How to see it: step6_socketserver/upper --allow 10.0.0.0/8, then tests/client: the
 * log says "refused: not in --allow"; upper --max-clients 1 and two clients at once.
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static bool peer_allowed(const struct program *p, const struct request *req);
static bool refuse(const struct program *p, const struct request *req, const char *why);

/* --allow, then --max-clients (threading: the live handler threads, once the finished
 * ones are joined). */
bool program_verify_request(struct server *s, struct request *req) {
  const struct program *p = s->user;
  if (p->allow_count > 0 && !peer_allowed(p, req))
    return refuse(p, req, "not in --allow");
  if (p->max_clients > 0) {
    threading_mixin_service_actions(s); /* join the threads that have ended */
    if (server_thread_count(s) >= p->max_clients) {
      char why[64];
      snprintf(why, sizeof why, "already serving %zu, the --max-clients limit", p->max_clients);
      return refuse(p, req, why);
    }
  }
  return base_server_verify_request(s, req);
}

/* "IP:PORT refused: WHY" in the log (with --log-worker, after the name of the worker that
 * refused, as the session's lines are); the framework then closes the connection. */
static bool refuse(const struct program *p, const struct request *req, const char *why) {
  printf("%s%s%s refused: %s\n", p->log_worker ? current_thread_name() : "",
         p->log_worker ? ": " : "", req->client_name, why);
  return false;
}

/* Whether ADDRESS is in NET. */
static bool in_network(const struct program_network *net, const unsigned char *address) {
  int whole = net->bits / 8, rest = net->bits % 8;
  return memcmp(net->address, address, (size_t)whole) == 0 &&
         (rest == 0 || ((net->address[whole] ^ address[whole]) & (0xff << (8 - rest))) == 0);
}

/* --allow: whether the peer is in one of the networks (an IPv4 peer seen as ::ffff:a.b.c.d
 * is matched as IPv4 too). */
static bool peer_allowed(const struct program *p, const struct request *req) {
  const struct sockaddr_storage *ss = &req->client_address;
  const unsigned char *v4 = NULL, *v6 = NULL;
  if (ss->ss_family == AF_INET) {
    v4 = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
  } else if (ss->ss_family == AF_INET6) {
    v6 = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)ss)->sin6_addr))
      v4 = v6 + 12;
  }
  for (size_t i = 0; i < p->allow_count; i++) {
    const unsigned char *address = p->allow[i].family == AF_INET ? v4 : v6;
    if (address != NULL && in_network(&p->allow[i], address))
      return true;
  }
  return false;
}
