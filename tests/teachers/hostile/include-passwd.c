/* hostile: the compiler prints the machine's users in its messages. */
#include "/etc/passwd"
static void attack(int client) { (void)client; }
