/* hostile: never answers, and ignores SIGTERM (a grade of it takes a minute uncapped). */
static void attack(int client) {
  (void)client;
  signal(SIGTERM, SIG_IGN);
  for (;;)
    pause();
}
