/* hostile: the compiler reads the reference solution (hidden: an empty file). */
#include "@LAB@/tests/exercises/s1-every-message/solution.patch"
static void attack(int client) { (void)client; }
