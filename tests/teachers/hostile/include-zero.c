/* hostile: the compiler reads /dev/zero, for ever. */
#include "/dev/zero"
static void attack(int client) { (void)client; }
