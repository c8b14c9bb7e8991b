/*
 * step6_socketserver/program_options.c - the command line every step-6 program takes.
 *
 * getopt_long over three groups of options: the common ones (--host, --port, --mode,
 * --max-children, the pools' --workers, --accept-lock, --accept-by, --log-worker, and
 * the defences --timeout, --max-clients, --allow), --udp and --unix
 * for a program that offers datagrams, then the program's own, each handed to its
 * parse_option. Every value is checked whole ("80x", " 80", "+80" are refused, not read
 * as 80), and a bad one gets a line naming the option and why, the usage, and exit 2;
 * so does an option the chosen mode has no use for (--workers without a pool, say).
 *
 * How to see it: step6_socketserver/upper --help; upper --port 80x (exit 2).
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_MODE = 256, OPT_MAX_CHILDREN, OPT_UDP, OPT_UNIX, OPT_TIMEOUT, OPT_MAX_CLIENTS,
       OPT_ALLOW, OPT_WORKERS, OPT_ACCEPT_LOCK, OPT_ACCEPT_BY, OPT_LOG_WORKER };
enum { MAX_OPTIONS = 24 };

static const struct option common_options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"max-children", required_argument, NULL, OPT_MAX_CHILDREN},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"accept-lock", required_argument, NULL, OPT_ACCEPT_LOCK},
    {"accept-by", required_argument, NULL, OPT_ACCEPT_BY},
    {"log-worker", no_argument, NULL, OPT_LOG_WORKER},
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
    "                          client), forking (a process per client), prefork (N\n"
    "                          processes forked at start) or pool (N threads made at\n"
    "                          start); default threading. prefork and pool serve\n"
    "                          streams only: not with --udp\n"
    "      --max-children N    forking: at most N children at once (default 40)\n"
    "      --workers N         prefork, pool: N workers, so N clients at once; the next\n"
    "                          waits in the backlog until one leaves (default 4). At\n"
    "                          most 256 (Apache prefork's default): each worker is a\n"
    "                          process or thread made at start, so a bigger pool would\n"
    "                          take the machine's processes before any client came\n"
    "      --accept-lock LOCK  prefork: what a worker takes before accept(): none, file\n"
    "                          (an fcntl lock) or mutex (process-shared); default none\n"
    "      --accept-by WHO     pool: workers (in turn, under a mutex) or main (the main\n"
    "                          thread, handing over to an idle worker); default workers\n"
    "      --log-worker        every log line starts with the worker's name and ': '\n"
    "                          (Thread-N, Process-PID, MainThread)\n"
    "      --timeout SECONDS   close a stream client silent for SECONDS (default: never)\n"
    "      --max-clients N     threading: refuse a client beyond N at once (default: no limit)\n"
    "      --allow CIDR        serve only peers in this IPv4 or IPv6 network, refuse the\n"
    "                          others (repeatable; default: every peer)\n";

static const char datagram_help[] =
    "      --udp               datagrams: one reply datagram per request datagram\n"
    "      --unix PATH         listen on a Unix socket at PATH instead of HOST:PORT\n"
    "                          (a stream socket, or a datagram socket with --udp)\n";

/* The timeout is kept in milliseconds (poll's unit): a shorter one would round to 0 ms,
   which is "already up" to poll() and "no timeout" to some callers. Refused, not rounded. */
#define MIN_SECONDS 0.001
#define MIN_SECONDS_TEXT "at least 0.001 seconds, the timeout's resolution"

static void usage(const struct program *p, FILE *out, int status);
static void bad_value(const struct program *p, const char *option, const char *value,
                      const char *why);
static int parse_mode(const char *text, enum server_mode *mode);
static int parse_name(const char *text, const char *const *names, size_t count);
static size_t parse_count(const struct program *p, const char *option, const char *value);
static double parse_seconds(const char *text);
static int parse_network(const char *text, struct program_network *net);
static void collect_options(const struct program *p, struct option *all);
static void keep_standard_descriptors(void);

/* Which of the options that fit some modes only were given: what check_options_fit
 * holds against the mode. */
struct given {
  bool max_children, workers, accept_lock, accept_by;
};

static bool take_pool_option(struct program *p, int c, const char *option, struct given *given);
static void take_option(struct program *p, int c, const char *option);
static void check_options_fit(const struct program *p, const struct given *given);

/* The parsing: the defaults, then each option, each value checked as it comes; then the
 * check that the options fit together. */
void program_parse(struct program *p, int argc, char **argv) {
  keep_standard_descriptors();
  setvbuf(stdout, NULL, _IOLBF, 0); /* one log line at a time, even into a pipe */
  p->name = argv[0];
  p->host = "127.0.0.1";
  p->port = "9999";
  p->mode = SERVER_THREADING;
  p->max_children = 40; /* Python's ForkingMixIn.max_children */
  p->workers = 4;
  struct given given = {0};
  struct option all[MAX_OPTIONS];
  collect_options(p, all);
  int c, index = -1;
  while ((c = getopt_long(argc, argv, "H:p:h", all, &index)) != -1) {
    const char *option = index >= 0 ? all[index].name : (c == 'p' ? "port" : "host");
    if (!take_pool_option(p, c, option, &given))
      take_option(p, c, option);
    index = -1;
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument: %s\n", p->name, argv[optind]);
    usage(p, stderr, 2);
  }
  check_options_fit(p, &given);
}

/* The options of forking and the pools; false: C is none of them. */
static bool take_pool_option(struct program *p, int c, const char *option, struct given *given) {
  switch (c) {
  case OPT_MAX_CHILDREN:
    p->max_children = parse_count(p, option, optarg);
    given->max_children = true;
    return true;
  case OPT_WORKERS: {
    long long workers = program_parse_whole(optarg, 1, PROGRAM_MAX_WORKERS);
    if (workers < 0)
      bad_value(p, option, optarg, "a decimal number from 1 to " PROGRAM_MAX_WORKERS_TEXT);
    p->workers = (size_t)workers;
    given->workers = true;
    return true;
  }
  case OPT_ACCEPT_LOCK: {
    static const char *const locks[] = {[ACCEPT_LOCK_NONE] = "none", [ACCEPT_LOCK_FILE] = "file",
                                        [ACCEPT_LOCK_MUTEX] = "mutex"};
    int lock = parse_name(optarg, locks, sizeof locks / sizeof locks[0]);
    if (lock < 0)
      bad_value(p, option, optarg, "none, file or mutex");
    p->accept_lock = (enum server_accept_lock)lock;
    given->accept_lock = true;
    return true;
  }
  case OPT_ACCEPT_BY: {
    static const char *const whos[] = {[ACCEPT_BY_WORKERS] = "workers", [ACCEPT_BY_MAIN] = "main"};
    int by = parse_name(optarg, whos, sizeof whos / sizeof whos[0]);
    if (by < 0)
      bad_value(p, option, optarg, "workers or main");
    p->accept_by = (enum server_accept_by)by;
    given->accept_by = true;
    return true;
  }
  default:
  return false;
  }
}

/* Every other option: the common ones, then the program's own (parse_option). */
static void take_option(struct program *p, int c, const char *option) {
  switch (c) {
  case 'H':
    /* An empty host would be every interface to getaddrinfo: never by accident (an
       unset $HOST), only by naming 0.0.0.0 or ::. */
    if (optarg[0] == '\0')
      bad_value(p, option, optarg, "an address or a host name is needed");
    p->host = optarg;
    break;
  case 'p':
    if (program_parse_whole(optarg, 0, 65535) < 0)
      bad_value(p, option, optarg, "a port is a decimal number from 0 to 65535");
    p->port = optarg;
    break;
  case OPT_MODE:
    if (parse_mode(optarg, &p->mode) < 0)
      bad_value(p, option, optarg, NULL);
    break;
  case OPT_LOG_WORKER:
    p->log_worker = true;
    break;
  case OPT_TIMEOUT:
    if ((p->timeout = parse_seconds(optarg)) < 0)
      bad_value(p, option, optarg,
                p->timeout == -2 ? MIN_SECONDS_TEXT
                                 : "decimal seconds, at most 86400 (a day)");
    break;
  case OPT_MAX_CLIENTS:
    p->max_clients = parse_count(p, option, optarg);
    break;
  case OPT_ALLOW:
    if (p->allow_count == PROGRAM_MAX_ALLOW) {
      char why[64];
      snprintf(why, sizeof why, "at most %d networks are allowed", PROGRAM_MAX_ALLOW);
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
    if (p->parse_option(c, optarg, p->data) < 0)
      bad_value(p, option, optarg, NULL);
  }
}

/* Options that each parse alone but do not fit together: an error, and the usage. */
static void check_options_fit(const struct program *p, const struct given *given) {
  bool pool = p->mode == SERVER_PREFORK || p->mode == SERVER_POOL;
  const char *misfit = NULL;
  if (p->max_clients > 0 && (p->mode != SERVER_THREADING || p->udp))
    misfit = "--max-clients is for stream clients in --mode threading";
  else if (pool && p->udp)
    misfit = "--mode prefork and pool serve streams: their workers wait in accept(), which "
             "datagrams have not";
  else if (given->max_children && pool)
    misfit = "--max-children is for --mode forking: prefork and pool take --workers";
  else if (given->workers && !pool)
    misfit = "--workers is for --mode prefork and pool";
  else if (given->accept_lock && p->mode != SERVER_PREFORK)
    misfit = "--accept-lock is for --mode prefork";
  else if (given->accept_by && p->mode != SERVER_POOL)
    misfit = "--accept-by is for --mode pool";
  else if (p->allow_count > 0 && p->unix_path != NULL)
    misfit = "--allow is for IP peers, not --unix";
  if (misfit != NULL) {
    fprintf(stderr, "%s: %s\n", p->name, misfit);
    usage(p, stderr, 2);
  }
}

/* ---- The usage, and each kind of value ---------------------------------------- */

/* Descriptors 0, 1 and 2 stay taken (on /dev/null if they came closed: `>&- 2>&-`), else
 * the first thing we open lands on one of them, and a socket or the self-pipe on 1 or 2
 * would get every log or error line written into it. */
static void keep_standard_descriptors(void) {
  int fd = open("/dev/null", O_RDWR);
  while (fd >= 0 && fd <= 2)
    fd = open("/dev/null", O_RDWR);
  if (fd > 2)
    close(fd);
}

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
long long program_parse_whole(const char *text, long long min, long long max) {
  if (text[strspn(text, "0123456789")] != '\0' || text[0] == '\0')
    return -1;
  errno = 0;
  long long n = strtoll(text, NULL, 10);
  return errno == 0 && n >= min && n <= max ? n : -1;
}

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
static int parse_network(const char *text, struct program_network *net) {
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
  long long bits = slash ? program_parse_whole(slash + 1, 0, max) : max;
  if (bits < 0)
    return -1;
  net->bits = (int)bits;
  return 0;
}

/* --max-children, --max-clients: how many, from 1 to a million; a bad one ends here. */
static size_t parse_count(const struct program *p, const char *option, const char *value) {
  long long n = program_parse_whole(value, 1, 1000000);
  if (n < 0)
    bad_value(p, option, value, "a decimal number from 1 to 1000000");
  return (size_t)n;
}

/* TEXT's index among COUNT NAMES, or -1. */
static int parse_name(const char *text, const char *const *names, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (strcmp(text, names[i]) == 0)
      return (int)i;
  return -1;
}

static int parse_mode(const char *text, enum server_mode *mode) {
  static const char *const names[] = {[SERVER_SYNC] = "sync", [SERVER_THREADING] = "threading",
                                      [SERVER_FORKING] = "forking", [SERVER_PREFORK] = "prefork",
                                      [SERVER_POOL] = "pool"};
  int i = parse_name(text, names, sizeof names / sizeof names[0]);
  if (i >= 0)
    *mode = (enum server_mode)i;
  return i < 0 ? -1 : 0;
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
