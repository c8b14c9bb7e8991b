/* hostile: reads a secret in /tmp, one in the grader's environment (@MARK@), another
   student's file and the reference solution;
   when any of them can be read, it stops answering (so the grade shows it). */
static int readable(const char *path) {
  char byte;
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return 0;
  ssize_t got = read(fd, &byte, 1);
  close(fd);
  return got == 1;
}
static void attack(int client) {
  (void)client;
  if (getenv("@MARK@") || readable("@SECRET@") || readable("@OTHER@") ||
      readable("@LAB@/tests/exercises/s1-every-message/solution.patch"))
    exit(3);
}
