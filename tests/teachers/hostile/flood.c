/* hostile: floods its standard output (1 GB) before it answers. */
static void attack(int client) {
  (void)client;
  static char block[1 << 16];
  memset(block, 'x', sizeof block);
  for (int i = 0; i < (1 << 14); i++)
    if (fwrite(block, 1, sizeof block, stdout) != sizeof block)
      break;
}
