/* hostile: connects to a service on the grading machine's loopback (port @PORT@). */
static void attack(int client) {
  (void)client;
  struct sockaddr_in outside = {.sin_family = AF_INET, .sin_port = htons(@PORT@)};
  outside.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0) {
    (void)connect(fd, (struct sockaddr *)&outside, sizeof outside);
    close(fd);
  }
}
