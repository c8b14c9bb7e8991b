/*
 * step6_socketserver/program.c - what the four step-6 programs share (see program.h).
 *
 * The contract's "every server" part, once: options and usage, the server of the chosen
 * kind and mode, the ready line, signals, exit statuses, and the log lines, which the
 * handler's setup and finish write around each stream session.
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_MODE = 256, OPT_MAX_CHILDREN, OPT_UDP, OPT_UNIX, OPT_TIMEOUT, OPT_MAX_CLIENTS,
       OPT_ALLOW };
enum { MAX_OPTIONS = 16 };

static const struct option common_options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"max-children", required_argument, NULL, OPT_MAX_CHILDREN},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option datagram_options[] = {
    {"udp", no_argument, NULL, OPT_UDP},
    {"unix", required_argument, NULL, OPT_UNIX},
    {NULL, 0, NULL, 0},
};

static const char common_help[] =
    "  -H, --host HOST         address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT         port to listen on, 0 picks a free one (default 9999)\n"
    "      --mode MODE         sync (one client at a time), threading (a thread per\n"
    "                          client) or forking (a process per client); default threading\n"
    "      --max-children N    forking: at most N children at once (default 40)\n"
    "      --timeout SECONDS   close a stream client silent for SECONDS (default: never)\n"
    "      --max-clients N     threading: refuse a client beyond N at once (default: no limit)\n"
    "      --allow CIDR        serve only peers in this IPv4 or IPv6 network, refuse the\n"
    "                          others (repeatable; default: every peer)\n";

static const char datagram_help[] =
    "      --udp               datagrams: one reply datagram per request datagram\n"
    "      --unix PATH         listen on a Unix socket at PATH instead of HOST:PORT\n"
    "                          (a stream socket, or a datagram socket with --udp)\n";

static void usage(const struct program *p, FILE *out, int status) {
  fprintf(out, "usage: %s [OPTIONS]\n\n%s\n\n%s%s%s", p->name, p->about, common_help,
          p->datagrams ? datagram_help : "", p->options_help ? p->options_help : "");
  fprintf(out, "  -h, --help              print this help and exit\n");
  exit(status);
}

/* WHY, when given, says more than "bad value" (a limit, a minimum). */
static void bad_value(const struct program *p, const char *option, const char *value,
                      const char *why) {
  fprintf(stderr, "%s: bad value for --%s: '%s'%s%s\n", p->name, option, value,
          why ? ": " : "", why ? why : "");
  usage(p, stderr, 2);
}

/* strtoll alone would take " 80", "+80" and "-0"; a number here is its digits only. */
long long parse_whole(const char *text, long long min, long long max) {
  if (text[strspn(text, "0123456789")] != '\0' || text[0] == '\0')
    return -1;
  errno = 0;
  long long n = strtoll(text, NULL, 10);
  return errno == 0 && n >= min && n <= max ? n : -1;
}

/* The timeout is kept in milliseconds (poll's unit): a shorter one would round to 0 ms,
   which is "already up" to poll() and "no timeout" to some callers. Refused, not rounded. */
#define MIN_SECONDS 0.001
#define MIN_SECONDS_TEXT "at least 0.001 seconds, the timeout's resolution"

/* SECONDS: decimal seconds (digits, at most one point: "2", "0.5"; no sign, exponent, hex,
 * inf or nan), at most a day; -1 if not, -2 if below MIN_SECONDS. */
static double parse_seconds(const char *text) {
  size_t digits = strspn(text, "0123456789");
  if (text[digits] == '.')
    digits += 1 + strspn(text + digits + 1, "0123456789");
  if (text[digits] != '\0' || strspn(text, ".") == digits) /* other bytes, or no digit */
    return -1;
  double d = strtod(text, NULL);
  if (!isfinite(d) || d > 86400)
    return -1;
  return d >= MIN_SECONDS ? d : -2;
}

/* ADDRESS/BITS, IPv4 or IPv6 (BITS may be left out: the one address); 0, or -1. */
static int parse_network(const char *text, struct network *net) {
  char address[INET6_ADDRSTRLEN];
  const char *slash = strchr(text, '/');
  size_t len = slash ? (size_t)(slash - text) : strlen(text);
  if (len == 0 || len >= sizeof address)
    return -1;
  memcpy(address, text, len);
  address[len] = '\0';
  net->family = strchr(address, ':') ? AF_INET6 : AF_INET;
  int max = net->family == AF_INET6 ? 128 : 32;
  if (inet_pton(net->family, address, net->address) != 1)
    return -1;
  long long bits = slash ? parse_whole(slash + 1, 0, max) : max;
  if (bits < 0)
    return -1;
  net->bits = (int)bits;
  return 0;
}

static int parse_mode(const char *text, enum server_mode *mode) {
  static const char *const names[] = {[SERVER_SYNC] = "sync", [SERVER_THREADING] = "threading",
                                      [SERVER_FORKING] = "forking"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(text, names[i]) == 0) {
      *mode = (enum server_mode)i;
      return 0;
    }
  return -1;
}

/* The common options, the datagram ones if offered, then the program's own. */
static void collect_options(const struct program *p, struct option *all) {
  size_t n = 0;
  const struct option *groups[] = {common_options, p->datagrams ? datagram_options : NULL,
                                   p->options};
  for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
    for (const struct option *o = groups[g]; o != NULL && o->name != NULL; o++)
      if (n + 1 < MAX_OPTIONS)
        all[n++] = *o;
  all[n] = (struct option){NULL, 0, NULL, 0};
}

void program_parse(struct program *p, int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* one log line at a time, even into a pipe */
  p->name = argv[0];
  p->host = "127.0.0.1";
  p->port = "9999";
  p->mode = SERVER_THREADING;
  p->max_children = 40; /* Python's ForkingMixIn.max_children */
  struct option all[MAX_OPTIONS];
  collect_options(p, all);
  int c, index = -1;
  while ((c = getopt_long(argc, argv, "H:p:h", all, &index)) != -1) {
    const char *option = index >= 0 ? all[index].name : (c == 'p' ? "port" : "host");
    long long n;
    switch (c) {
    case 'H':
      /* An empty host would be every interface to getaddrinfo: never by accident (an
         unset $HOST), only by naming 0.0.0.0 or ::. */
      if (optarg[0] == '\0')
        bad_value(p, option, optarg, "an address or a host name is needed");
      p->host = optarg;
      break;
    case 'p':
      if (parse_whole(optarg, 0, 65535) < 0)
        bad_value(p, option, optarg, "a port is a decimal number from 0 to 65535");
      p->port = optarg;
      break;
    case OPT_MODE:
      if (parse_mode(optarg, &p->mode) < 0)
        bad_value(p, option, optarg, NULL);
      break;
    case OPT_MAX_CHILDREN:
      if ((n = parse_whole(optarg, 1, 1000000)) < 0)
        bad_value(p, option, optarg, "a decimal number from 1 to 1000000");
      p->max_children = (size_t)n;
      break;
    case OPT_TIMEOUT:
      if ((p->timeout = parse_seconds(optarg)) < 0)
        bad_value(p, option, optarg,
                  p->timeout == -2 ? MIN_SECONDS_TEXT
                                   : "decimal seconds, at most 86400 (a day)");
      break;
    case OPT_MAX_CLIENTS:
      if ((n = parse_whole(optarg, 1, 1000000)) < 0)
        bad_value(p, option, optarg, "a decimal number from 1 to 1000000");
      p->max_clients = (size_t)n;
      break;
    case OPT_ALLOW:
      if (p->allow_count == MAX_ALLOW) {
        char why[64];
        snprintf(why, sizeof why, "at most %d networks are allowed", MAX_ALLOW);
        bad_value(p, option, optarg, why);
      }
      if (parse_network(optarg, &p->allow[p->allow_count]) < 0)
        bad_value(p, option, optarg, NULL);
      p->allow_count++;
      break;
    case OPT_UDP:
      p->udp = true;
      break;
    case OPT_UNIX:
      if (optarg[0] == '\0')
        bad_value(p, option, optarg, "a path is needed");
      p->unix_path = optarg;
      break;
    case 'h':
      usage(p, stdout, 0);
      break;
    default:
      if (c < PROGRAM_OPTION) /* getopt_long has already named the bad option */
        usage(p, stderr, 2);
      if (p->parse_option(c, optarg, p->user) < 0)
        bad_value(p, option, optarg, NULL);
    }
    index = -1;
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument: %s\n", p->name, argv[optind]);
    usage(p, stderr, 2);
  }
  const char *misfit = NULL;
  if (p->max_clients > 0 && (p->mode != SERVER_THREADING || p->udp))
    misfit = "--max-clients is for stream clients in --mode threading";
  else if (p->allow_count > 0 && p->unix_path != NULL)
    misfit = "--allow is for IP peers, not --unix";
  if (misfit != NULL) {
    fprintf(stderr, "%s: %s\n", p->name, misfit);
    usage(p, stderr, 2);
  }
}

/* ---- Serving ------------------------------------------------------------------------ */

/* Each stream session is logged from its start to its end; a datagram only as "wrote:". */
static bool is_stream(const struct handler *h) { return h->server->socket_type == SOCK_STREAM; }

/* h->state says how the session ended: NULL, &client_reset when the client reset it, or
 * &client_timed_out when it stayed silent beyond --timeout. */
static char client_reset, client_timed_out;

/* The program being served, for verify_request (one server per process). */
static const struct program *serving;

/* Whether ADDRESS is in NET. */
static bool in_network(const struct network *net, const unsigned char *address) {
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

/* BaseServer.verify_request, overridden: --allow, then --max-clients (threading: the live
 * handler threads, once the finished ones are joined). A refusal is logged; the framework
 * then closes the connection. */
static bool program_verify_request(struct server *s, struct request *req) {
  const struct program *p = serving;
  if (p->allow_count > 0 && !peer_allowed(p, req)) {
    printf("%s refused: not in --allow\n", req->client_name);
    return false;
  }
  if (p->max_clients > 0) {
    threading_mixin_service_actions(s); /* join the threads that have ended */
    if (server_thread_count(s) >= p->max_clients) {
      printf("%s refused: already serving %zu, the --max-clients limit\n", req->client_name,
             p->max_clients);
      return false;
    }
  }
  return base_server_verify_request(s, req);
}

static int session_setup(struct handler *h) {
  if (is_stream(h))
    printf("%s connected\n", h->client_address);
  return request_handler_setup(h);
}

static void session_finish(struct handler *h) {
  request_handler_finish(h);
  if (is_stream(h))
    printf("%s %s\n", h->client_address,
           h->state == &client_reset       ? "reset"
           : h->state == &client_timed_out ? "timed out"
                                           : "disconnected");
}

int program_serve(struct program *p) {
  enum server_kind kind = p->unix_path ? (p->udp ? SERVER_UNIX_DGRAM : SERVER_UNIX_STREAM)
                                       : (p->udp ? SERVER_UDP : SERVER_TCP);
  char address[SERVER_NAME_SIZE + 8];
  if (p->unix_path != NULL)
    snprintf(address, sizeof address, "%s", p->unix_path);
  else /* an IPv6 address goes in brackets (unless given in them), so its colons are not
          the port's */
    snprintf(address, sizeof address,
             strchr(p->host, ':') && p->host[0] != '[' ? "[%s]:%s" : "%s:%s", p->host, p->port);
  const struct handler_class handler = {
      .setup = session_setup,
      .handle = p->handle,
      .finish = session_finish,
      .disable_nagle_algorithm = p->disable_nagle_algorithm,
      .timeout = p->timeout, /* StreamRequestHandler.timeout: reads and writes fail after it */
  };
  serving = p;
  struct server *s = server_new_unbound(kind, p->mode, address, &handler, p->user);
  if (s != NULL) {
    s->allow_reuse_address = true; /* a restart need not wait for TIME_WAIT */
    s->max_children = p->max_children;
    s->ops.verify_request = program_verify_request;
  }
  if (s == NULL || server_bind_and_activate(s) < 0) {
    /* A failed name lookup in its own words, which errno cannot carry; else the whole
       path (ADDRESS may have cut a long one short) and why. */
    if (server_address_error()[0] != '\0')
      fprintf(stderr, "%s\n", server_address_error());
    else
      fprintf(stderr, "cannot bind %s: %s\n", p->unix_path ? p->unix_path : address,
              strerror(errno));
    server_free(s);
    return 1;
  }
  if (server_shutdown_on_signals(s) < 0) {
    fprintf(stderr, "cannot catch SIGINT and SIGTERM: %s\n", strerror(errno));
    server_free(s);
    return 1;
  }
  printf("serving on %s\n", s->server_address_name);
  int status = server_serve_forever(s, 0.5);
  server_free(s);
  return status == 0 ? 0 : 1;
}

int program_main(struct program *p, int argc, char **argv) {
  program_parse(p, argc, argv);
  return program_serve(p);
}

/* ---- For handlers ------------------------------------------------------------------- */

size_t trimmed_length(const char *text, size_t len) {
  while (len > 0 && (text[len - 1] == ' ' || (text[len - 1] >= '\t' && text[len - 1] <= '\r')))
    len--;
  return len;
}

void log_event(struct handler *h, const char *format, ...) {
  char line[SERVER_NAME_SIZE + 1024];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof line, format, args);
  va_end(args);
  printf("%s %s\n", h->client_address, line);
}

/* Control bytes are shown as '.': a client's newline or NUL must not forge or hide a line. */
void log_wrote(struct handler *h, const char *text, size_t len) {
  /* Built whole and handed to stdio at once, a 16 KiB message is two write()s, not five;
     a longer one goes in pieces of this size (a message has no size limit). */
  char line[SERVER_NAME_SIZE + 16 + 16384];
  size_t used = (size_t)snprintf(line, SERVER_NAME_SIZE + 16, "%s wrote: ", h->client_address);
  len = trimmed_length(text, len);
  flockfile(stdout); /* one whole line, even when several threads log at once */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    line[used++] = c < ' ' || c == 127 ? '.' : (char)c;
    if (used == sizeof line - 1) { /* full, but for the newline */
      fwrite(line, 1, used, stdout);
      used = 0;
    }
  }
  line[used++] = '\n';
  fwrite(line, 1, used, stdout);
  funlockfile(stdout);
}

int session_failed(struct handler *h, const char *what) {
  if (errno == ECONNRESET || errno == EPIPE)
    h->state = &client_reset;
  else if (errno == ETIMEDOUT) /* --timeout: the client's silence, not our error */
    h->state = &client_timed_out;
  else
    snprintf(h->request->error, sizeof h->request->error, "%s: %s", what, strerror(errno));
  return -1;
}

int session_status(struct handler *h) {
  return h->request->error[0] != '\0' ? HANDLER_ERROR : HANDLER_OK;
}

ssize_t receive(struct handler *h, char *buf, size_t size) {
  ssize_t n = rfile_read1(&h->rfile, buf, size);
  if (n < 0) {
    session_failed(h, "recv");
    return 0;
  }
  if (n > 0)
    log_wrote(h, buf, (size_t)n);
  return n;
}

int reply(struct handler *h, const void *buf, size_t len) {
  return wfile_write(&h->wfile, buf, len) < 0 ? session_failed(h, "send") : 0;
}
