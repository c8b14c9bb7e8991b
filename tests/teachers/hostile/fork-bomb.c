/* hostile: forks until fork() fails, the children sleeping; when it gets 1000 of them
   (no process limit held it), it stops answering (so the grade shows it). */
static int fork_sleeper(void) {
  pid_t child = fork();
  if (child == 0)
    for (;;)
      pause();
  return child < 0 ? -1 : 0;
}
static void attack(int client) {
  (void)client;
  int children = 0;
  while (children < 1000 && fork_sleeper() == 0)
    children++;
  if (children == 1000)
    exit(3);
}
