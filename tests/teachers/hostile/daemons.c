/* hostile: leaves a setsid daemon and two sleeping children behind, named @MARK@. */
#include <sys/prctl.h>
static void attack(int client) {
  (void)client;
  if (fork() == 0) {
    setsid();
    if (fork() == 0) {
      prctl(PR_SET_NAME, "@MARK@");
      for (;;)
        pause();
    }
    _exit(0);
  }
  for (int i = 0; i < 2; i++)
    if (fork() == 0) {
      prctl(PR_SET_NAME, "@MARK@");
      signal(SIGTERM, SIG_IGN);
      for (;;)
        pause();
    }
}
