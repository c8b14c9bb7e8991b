/* hostile: appends to the lab's task.md and leaves a file in /tmp. */
static void attack(int client) {
  (void)client;
  int fd = open("@LAB@/tests/exercises/s1-every-message/task.md", O_WRONLY | O_APPEND);
  if (fd >= 0) {
    (void)write(fd, "hostile was here\n", 17);
    close(fd);
  }
  fd = open("/tmp/hostile-@MARK@", O_WRONLY | O_CREAT, 0644);
  if (fd >= 0)
    close(fd);
}
