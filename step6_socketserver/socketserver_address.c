/*
 * step6_socketserver/socketserver_address.c - the socket classes: TCPServer and
 * UDPServer, and the Unix ones, which are the same with another address family; and the
 * addresses they bind and log.
 *
 * Python's counterparts: TCPServer, UDPServer, UnixStreamServer, UnixDatagramServer in
 * Lib/socketserver.py. Beyond Python: a Unix path is held with a lock file for the
 * server's life, and a stale one (its server died) is taken over. Read next:
 * socketserver_signals.c.
 */
#define _GNU_SOURCE /* MSG_DONTWAIT for recvmsg */

#include "socketserver_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

_Thread_local char address_error[2 * PATH_MAX]; /* see server_address_error */

/* ---- Addresses ---------------------------------------------------------------------- */

/* Numeric "IP:PORT" or the Unix path: never a reverse DNS lookup. */
void format_address(const struct sockaddr_storage *addr, socklen_t len, char *out) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (addr->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    snprintf(out, SERVER_NAME_SIZE, "%s:%u", ip, ntohs(in->sin_port));
  } else if (addr->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(out, SERVER_NAME_SIZE, "%s:%u", ip, ntohs(in6->sin6_port));
  } else {
    const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
    size_t offset = offsetof(struct sockaddr_un, sun_path);
    if (len > offset && un->sun_path[0] != '\0')
      snprintf(out, SERVER_NAME_SIZE, "%.*s", (int)(len - offset), un->sun_path);
    else
      snprintf(out, SERVER_NAME_SIZE, "unnamed"); /* an unbound client; Python gives '' */
  }
}

/* Fill s->server_address from "HOST:PORT", "[V6]:PORT" or a path. */
int resolve_address(struct server *s, const char *address) {
  address_error[0] = '\0';
  if (is_unix(s)) {
    struct sockaddr_un *un = (struct sockaddr_un *)&s->server_address;
    if (address[0] == '\0') { /* Linux would bind an abstract name no client can name */
      errno = EINVAL;
      return -1;
    }
    if (strlen(address) >= sizeof un->sun_path) {
      errno = ENAMETOOLONG;
      return -1;
    }
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, address);
    s->server_address_len = sizeof *un;
    return 0;
  }
  char host[SERVER_NAME_SIZE];
  const char *colon = strrchr(address, ':');
  if (colon == NULL || (size_t)(colon - address) >= sizeof host) {
    errno = EINVAL;
    return -1;
  }
  bool bracketed = colon - address >= 2 && address[0] == '[' && colon[-1] == ']'; /* "[V6]" */
  int skip = bracketed ? 1 : 0;
  snprintf(host, sizeof host, "%.*s", (int)(colon - address - 2 * skip), address + skip);
  size_t len = strlen(host);
  if (len >= 2 && host[0] == '[' && host[len - 1] == ']') { /* a host given as "[::1]" */
    memmove(host, host + 1, len - 2);
    host[len - 2] = '\0';
  }
  /* "" would be getaddrinfo's NULL, every interface: an unset $HOST must not expose the
     server. Other brackets are no host's. */
  if (host[0] == '\0' || strpbrk(host, "[]") != NULL) {
    snprintf(address_error, sizeof address_error, "%s",
             host[0] == '\0' ? "empty host" : "brackets inside the host");
    errno = EINVAL;
    return -1;
  }
  struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = s->socket_type};
  struct addrinfo *found;
  int rc = getaddrinfo(host, colon + 1, &hints, &found);
  if (rc != 0) {
    int err = errno;
    snprintf(address_error, sizeof address_error, "cannot resolve %s: %s", host,
             rc == EAI_SYSTEM ? strerror(err) : gai_strerror(rc));
    errno = rc == EAI_SYSTEM ? err : rc == EAI_NONAME ? EADDRNOTAVAIL : EINVAL;
    return -1;
  }
  struct addrinfo *use = found; /* IPv4 first, as Python's AF_INET; IPv6 when only that */
  for (struct addrinfo *a = found; a != NULL; a = a->ai_next)
    if (a->ai_family == AF_INET && use->ai_family != AF_INET)
      use = a;
  memcpy(&s->server_address, use->ai_addr, use->ai_addrlen);
  s->server_address_len = use->ai_addrlen;
  s->address_family = use->ai_family;
  freeaddrinfo(found);
  return 0;
}

const char *server_address_error(void) { return address_error; }
/* ---- TCPServer, UnixStreamServer ---------------------------------------------------- */

/*
 * A Unix path in use: is it a socket a dead server left behind? Nobody listening there
 * (ECONNREFUSED) says so; a live server answers, or is busy (EAGAIN: its backlog is full).
 * The probe does not block, and only a socket file is ever taken for stale.
 */
static bool unix_path_is_stale(struct server *s) {
  const char *path = ((struct sockaddr_un *)&s->server_address)->sun_path;
  struct stat st;
  if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
    return false;
  int probe = socket(AF_UNIX, s->socket_type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0)
    return false;
  int rc = connect(probe, (struct sockaddr *)&s->server_address, s->server_address_len);
  bool stale = rc < 0 && errno == ECONNREFUSED;
  close(probe);
  return stale;
}

/*
 * A Unix path is this server's only while it holds the lock on PATH.lock, a file beside
 * it, for its whole life (flock: the kernel lets go when the process ends, however it
 * ends). Without it, two servers started at once could each find the other's socket
 * bound but not yet listening, take it for stale and unlink it: both would say "serving
 * on", one of them unreachable. A lock file that its last holder removed (server_close)
 * while we waited for it is no longer the one the path names: we try again.
 */
static int lock_unix_path(struct server *s) {
  struct server_state *state = s->state;
  const char *path = ((struct sockaddr_un *)&s->server_address)->sun_path;
  char lock_path[PATH_MAX];
  snprintf(lock_path, sizeof lock_path, "%s.lock", path); /* sun_path is much shorter */
  for (int tries = 0; tries < 100; tries++) {
    int fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      int err = errno;
      snprintf(address_error, sizeof address_error, "cannot open %s: %s", lock_path, strerror(err));
      errno = err;
      return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      int err = errno;
      close(fd);
      if (err == EWOULDBLOCK)
        snprintf(address_error, sizeof address_error, "cannot lock %s: another server serves on %s",
                 lock_path, path);
      else
        snprintf(address_error, sizeof address_error, "cannot lock %s: %s", lock_path, strerror(err));
      errno = err == EWOULDBLOCK ? EADDRINUSE : err;
      return -1;
    }
    struct stat held, named;
    if (fstat(fd, &held) == 0 && stat(lock_path, &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      state->unix_lock_fd = fd;
      return 0;
    }
    close(fd);
  }
  snprintf(address_error, sizeof address_error, "cannot lock %s: it keeps being replaced", lock_path);
  errno = EAGAIN;
  return -1;
}

/* The end of lock_unix_path's lock: the file goes first, if it is still the one we hold. */
static void unlock_unix_path(struct server *s) {
  struct server_state *state = s->state;
  if (state->unix_lock_fd < 0)
    return;
  char lock_path[PATH_MAX];
  snprintf(lock_path, sizeof lock_path, "%s.lock",
           ((struct sockaddr_un *)&s->server_address)->sun_path);
  struct stat held, named;
  if (!state->in_child && fstat(state->unix_lock_fd, &held) == 0 &&
      lstat(lock_path, &named) == 0 && held.st_dev == named.st_dev && held.st_ino == named.st_ino)
    unlink(lock_path);
  close_fd(&state->unix_lock_fd);
}

int tcp_server_server_bind(struct server *s) {
  struct server_state *state = s->state;
  if (is_unix(s) && lock_unix_path(s) < 0)
    return -1;
  int on = 1;
  if (s->allow_reuse_address)
    setsockopt(s->socket, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
#ifdef SO_REUSEPORT
  /* Linux answers EOPNOTSUPP for Unix sockets (gh-128916): inet only. */
  if (s->allow_reuse_port && !is_unix(s))
    setsockopt(s->socket, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
#endif
  int rc = bind(s->socket, (struct sockaddr *)&s->server_address, s->server_address_len);
  if (rc < 0 && errno == EADDRINUSE && is_unix(s)) {
    if (!unix_path_is_stale(s)) {
      errno = EADDRINUSE; /* the probe's own errno is not the caller's business */
      return -1;
    }
    unlink(((struct sockaddr_un *)&s->server_address)->sun_path);
    rc = bind(s->socket, (struct sockaddr *)&s->server_address, s->server_address_len);
  }
  if (rc < 0)
    return -1;
  struct stat st;
  if (is_unix(s) && lstat(((struct sockaddr_un *)&s->server_address)->sun_path, &st) == 0) {
    state->unix_path_bound = true;
    state->unix_path_dev = st.st_dev;
    state->unix_path_ino = st.st_ino;
  }
  s->server_address_len = sizeof s->server_address;
  if (getsockname(s->socket, (struct sockaddr *)&s->server_address, &s->server_address_len) < 0)
    return -1;
  format_address(&s->server_address, s->server_address_len, s->server_address_name);
  return 0;
}

/* listen(), on a non-blocking listener: a client that resets between poll() and accept()
 * must not leave us blocked in accept(), deaf to shutdown. */
int tcp_server_server_activate(struct server *s) {
  int flags = fcntl(s->socket, F_GETFL);
  if (flags < 0 || fcntl(s->socket, F_SETFL, flags | O_NONBLOCK) < 0)
    return -1;
  return listen(s->socket, s->request_queue_size);
}

/* A request with room for a packet of PACKET_SIZE bytes. */
static struct request *new_request(int fd, const struct sockaddr_storage *addr, socklen_t len,
                                   size_t packet_size) {
  struct request *req = calloc(1, sizeof *req + packet_size);
  if (req == NULL)
    return NULL;
  req->fd = fd;
  memcpy(&req->client_address, addr, len);
  req->client_address_len = len;
  format_address(addr, len, req->client_name);
  return req;
}

struct request *tcp_server_get_request(struct server *s) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  int fd;
  do
    fd = accept(s->socket, (struct sockaddr *)&addr, &len);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return NULL; /* EAGAIN: the client left between poll() and accept() */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* BSD inherits it; we block */
  struct request *req = new_request(fd, &addr, len, 0);
  if (req == NULL)
    close(fd);
  return req;
}

/* Send the FIN now: another copy of the descriptor (a forked child's) would delay it. */
void tcp_server_shutdown_request(struct server *s, struct request *req) {
  shutdown(req->fd, SHUT_WR); /* ENOTCONN when the client has gone: nothing to do */
  s->ops.close_request(s, req);
}

void tcp_server_close_request(struct server *s, struct request *req) {
  close(req->fd);
  base_server_close_request(s, req);
}

/* Better than Python: the path this server bound is removed, so a restart can bind it;
 * only if it is still the file our bind made, not a newer server's after an `rm -f`. */
void tcp_server_server_close(struct server *s) {
  struct server_state *state = s->state;
  close_fd(&s->socket);
  const char *path = ((struct sockaddr_un *)&s->server_address)->sun_path;
  struct stat st;
  if (state->unix_path_bound && !state->in_child && lstat(path, &st) == 0 &&
      st.st_dev == state->unix_path_dev && st.st_ino == state->unix_path_ino)
    unlink(path);
  state->unix_path_bound = false;
  unlock_unix_path(s);
}

int tcp_server_fileno(struct server *s) { return s->socket; }

/* ---- UDPServer, UnixDatagramServer -------------------------------------------------- */

/* The receive buffer, max_packet_size bytes: Python reads the attribute at every request,
 * so a change made after server_new takes effect here. */
static int fit_packet_buffer(struct server *s) {
  struct server_state *state = s->state;
  if (state->packet_buffer != NULL && state->packet_buffer_size == s->max_packet_size)
    return 0;
  char *buffer = realloc(state->packet_buffer, s->max_packet_size + 1); /* + 1: never 0 */
  if (buffer == NULL)
    return -1;
  state->packet_buffer = buffer;
  state->packet_buffer_size = s->max_packet_size;
  return 0;
}

/* recvfrom(max_packet_size), except that a longer datagram is seen (MSG_TRUNC) and
 * dropped with a log line, where Python cuts it silently. */
struct request *udp_server_get_request(struct server *s) {
  struct server_state *state = s->state;
  if (fit_packet_buffer(s) < 0)
    return NULL;
  struct sockaddr_storage addr = {.ss_family = AF_UNSPEC}; /* an unbound sender: no name */
  struct iovec iov = {.iov_base = state->packet_buffer, .iov_len = s->max_packet_size};
  struct msghdr msg = {
      .msg_name = &addr, .msg_namelen = sizeof addr, .msg_iov = &iov, .msg_iovlen = 1};
  ssize_t n;
  /* MSG_DONTWAIT: poll() said readable, but a datagram can still be gone (a bad UDP
     checksum is dropped only here), and a blocking wait would be deaf to a stop. */
  do
    n = recvmsg(s->socket, &msg, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return NULL;
  struct request *req = new_request(s->socket, &addr, msg.msg_namelen, (size_t)n);
  if (req != NULL && (msg.msg_flags & MSG_TRUNC)) {
    fprintf(stderr, "datagram from %s longer than %zu bytes: dropped\n", req->client_name,
            s->max_packet_size);
    free(req);
    errno = EMSGSIZE;
    return NULL;
  }
  if (req != NULL) {
    memcpy(req->packet, state->packet_buffer, (size_t)n);
    req->packet_len = (size_t)n;
  }
  return req;
}
