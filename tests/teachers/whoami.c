/* not an attack: answers its first client with the user, session and process group it
   runs as, and its own pid, then ends. */
static void attack(int client) {
  char who[128];
  int len = snprintf(who, sizeof who, "uid %d sid %d pgid %d pid %d\n", (int)getuid(),
                     (int)getsid(0), (int)getpgid(0), (int)getpid());
  (void)write(client, who, (size_t)len);
  exit(1);
}
