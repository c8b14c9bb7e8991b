/*
 * step6_socketserver/callcenter.c - the seed's 10086 call center, on the framework.
 *
 * What it shows: a handler that speaks first. On connect the line greets the caller;
 * then `0` reaches an operator, `exit` hangs up, and anything else is asked again. As in
 * the seed each recv() is one message; unlike the seed, a message is compared with its
 * trailing whitespace trimmed (so `exit` typed with its newline still hangs up), and a
 * caller who simply goes away ends the session instead of a busy loop on recv() == 0.
 *
 * How to see it: `make step6`, or
 *   step6_socketserver/callcenter &  python3 tests/articles/callcenter_client.py 127.0.0.1 9999
 */
#define _POSIX_C_SOURCE 200809L

#include "program.h"

#include <string.h>

static const char greeting[] = "欢迎致电 10086,请输入1xxx,0转人工服务.";
static const char operator_reply[] = "通过可能会被录音.balabala一大推";
static const char ask_again[] = "请重新输入.";

static int callcenter_handle(struct handler *h) {
  char buf[1024]; /* the seed's recv(1024) */
  ssize_t n;
  if (session_reply(h, greeting, strlen(greeting)) < 0)
    return session_status(h);
  while ((n = session_receive(h, buf, sizeof buf)) > 0) {
    size_t len = program_trimmed_length(buf, (size_t)n);
    if (len == 4 && memcmp(buf, "exit", 4) == 0)
      break; /* the caller hangs up: finish logs it as "disconnected" */
    const char *answer = len == 1 && buf[0] == '0' ? operator_reply : ask_again;
    if (session_reply(h, answer, strlen(answer)) < 0)
      break;
  }
  return session_status(h);
}

int main(int argc, char **argv) {
  struct program callcenter = {
      .about = "The 10086 call center: 0 for an operator, exit to hang up.",
      .handle = callcenter_handle,
  };
  return program_main(&callcenter, argc, argv);
}
