/* hostile: stops "its workers" with kill(0, SIGTERM), at its first client. */
static void attack(int client) {
  (void)client;
  kill(0, SIGTERM);
}
