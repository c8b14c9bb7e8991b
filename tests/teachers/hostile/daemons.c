/* hostile: leaves a setsid daemon and two sleeping children behind. */
static void attack(int client) {
  (void)client;
  if (fork() == 0) {
    setsid();
    if (fork() == 0)
      for (;;)
        pause();
    _exit(0);
  }
  for (int i = 0; i < 2; i++)
    if (fork() == 0) {
      signal(SIGTERM, SIG_IGN);
      for (;;)
        pause();
    }
}
