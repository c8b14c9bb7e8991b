/* hostile: answers nothing, and writes a passing summary into the standard output of
   every other process it can open, the grader's included. */
#include <dirent.h>
static void attack(int client) {
  (void)client;
  static const char forged[] = "passed: two-messages - forged\n9 passed, 0 failed\nscore: 9/9\n";
  char path[64];
  struct dirent *entry;
  DIR *proc = opendir("/proc");
  while (proc && (entry = readdir(proc))) {
    snprintf(path, sizeof path, "/proc/%.20s/fd/1", entry->d_name);
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd >= 0) {
      (void)write(fd, forged, sizeof forged - 1);
      close(fd);
    }
  }
  if (proc)
    closedir(proc);
  exit(0);
}
