/* hostile: the compiler reads the grader's standard input. */
#include "/dev/stdin"
static void attack(int client) { (void)client; }
