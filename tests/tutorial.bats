#!/usr/bin/env bats
# passes: plain:1
# TUTORIAL.md tells the truth: every block it shows is checked against the programs.
#
# The conventions live in tests/tutorial/check (the markers) and tests/tutorial/normalise
# (what may differ between runs). The first tests prove the checker can fail; the last
# ones hold the real tutorial to real runs. `make tutorial-update` rewrites transcripts.

load helpers

CHECK="$LAB/tests/tutorial/check"
NORMALISE="$LAB/tests/tutorial/normalise"
TUTORIAL=${TUTORIAL:-$LAB/TUTORIAL.md} # TUTORIAL=FILE holds another text to the same rules

# Chapter 1 shows the first server run before its plumbing: the first line a client
# prints comes within FIRST_RUN_WITHIN lines of the chapter's heading, and none of these
# words comes before it (they are explained after the run, in "What keeps the loop alive").
FIRST_RUN_WITHIN=120
PLUMBING_WORDS='EMFILE|self-pipe|stop pipe|SA_RESTART|sigaction|TCP_NODELAY|Nagle|EAGAIN|ECONNABORTED'

# fixture NAME - write stdin to $BATS_TEST_TMPDIR/NAME and print its path.
fixture() {
  cat >"$BATS_TEST_TMPDIR/$1"
  printf '%s\n' "$BATS_TEST_TMPDIR/$1"
}

@test "tutorial: the normaliser names ports, pids and temporary paths, and nothing else" {
  run "$NORMALISE" <<'EOF'
server| serving on 127.0.0.1:43001
$ tests/client --port 43001 hold   (A, in the background)
A| connected from 127.0.0.1:51234
server| 127.0.0.1:51234 connected
server| 127.0.0.1:51300 wrote: hello, 12345 and 10.0.0.1
server| 127.0.0.1:51234 wrote: again	tab   
$ step5_forking/server --port 0 --max-children 2
server| serving on [::1]:43999
server| [::1]:51234 connected
$ ps -o pid,ppid,args --pid <server> --ppid <server>
    PID    PPID COMMAND
1234567    4242 step5_forking/server --port 0
1234570 1234567 step5_forking/server --port 0
demo dir /tmp/sockets-lab-demo.Ab12Cd, exit 0
$ python3 tests/articles/socketclient.py 127.0.0.1 43001
to 10.0.0.1 51234


EOF
  assert_success
  assert_output - <<'EOF'
server| serving on 127.0.0.1:PORT
$ tests/client --port PORT hold   (A, in the background)
A| connected from 127.0.0.1:C1
server| 127.0.0.1:C1 connected
server| 127.0.0.1:C2 wrote: hello, 12345 and 10.0.0.1
server| 127.0.0.1:C1 wrote: again       tab
$ step5_forking/server --port 0 --max-children 2
server| serving on [::1]:PORT2
server| [::1]:C1 connected
$ ps -o pid,ppid,args --pid <server> --ppid <server>
   PID   PPID COMMAND
    P1     P2 step5_forking/server --port 0
    P3     P1 step5_forking/server --port 0
demo dir /tmp/sockets-lab-demo.XXXXXX, exit 0
$ python3 tests/articles/socketclient.py 127.0.0.1 PORT
to 10.0.0.1 51234
EOF
}

@test "tutorial: the checker fails with a readable diff when a transcript drifts" {
  local doc
  doc=$(fixture doc.md <<'EOF'
# A tutorial

<!-- transcript: printf 'serving on 127.0.0.1:40000\n127.0.0.1:40001 wrote: hello\n' -->
```text
serving on 127.0.0.1:PORT
127.0.0.1:C1 wrote: HELLO
```
EOF
  )
  run "$CHECK" --root "$LAB" --tutorial "$doc"
  assert_failure 1
  assert_output --partial "the transcript differs from a real run"
  assert_output --partial "-127.0.0.1:C1 wrote: HELLO"
  assert_output --partial "+127.0.0.1:C1 wrote: hello"
  assert_output --partial "make tutorial-update"

  # --update rewrites the block from the run; then the check passes.
  run "$CHECK" --root "$LAB" --tutorial "$doc" --update
  assert_success
  assert_output --partial "updated 1 transcript block(s)"
  run grep -c "127.0.0.1:C1 wrote: hello" "$doc"
  assert_output 1
  run "$CHECK" --root "$LAB" --tutorial "$doc"
  assert_success
  assert_output --partial "ok (1 transcript"
}

@test "tutorial: the checker fails on a misquoted code line, an unmarked block, a failing command" {
  local doc
  doc=$(fixture doc.md <<'EOF'
<!-- code: step2_loop/server.c -->
```c
static void handle_client(int client, const char *peer) {
  while (echo_once(client, peer)) /* a stop ends it too: echo_once's wait sees it */
    continue;
}
  ...
  close(listener);
```

<!-- code: step2_loop/server.c -->
```c
static void handle_client(int client, const char *peer) {
  if (echo_once(client, peer))
```

```text
a block that says nowhere where it comes from
```

<!-- excerpt: make --no-print-directory -s diff-2 -->
```diff
-/* The handler of the blog's first example: one recv, one reply, then hang up. */
+/* The blog's handle() loop: receive and reply until the client closes its end. */
```

<!-- transcript: echo half; exit 3 -->
```text
half
```

<!-- unchecked: a sketch -->
```python
def handle(self)
    pass
```
EOF
  )
  run "$CHECK" --root "$LAB" --tutorial "$doc"
  assert_failure 1
  # The first code block and the excerpt are right; every other block is a problem.
  assert_output --partial "doc.md:11: these lines are not in step2_loop/server.c as quoted"
  assert_output --partial "-  if (echo_once(client, peer))"
  assert_output --partial "+  while (echo_once(client, peer)) /* a stop ends it too: echo_once's wait sees it */"
  assert_output --partial "doc.md:17: fenced block without a marker"
  assert_output --partial '`echo half; exit 3` failed (3)'
  assert_output --partial "the Python snippet does not compile"
  assert_output --partial "4 problem(s)"
  refute_output --partial "doc.md:1:"
  refute_output --partial "doc.md:21:"
}

@test "tutorial: every quoted code block is in its file, verbatim" {
  run "$CHECK" --only code,unchecked
  assert_success
}

@test "tutorial: every transcript and excerpt matches a real run" {
  # The demos start servers of their own; 3>&- keeps bats from waiting on them.
  run "$CHECK" --only transcript,excerpt 3>&-
  assert_success
}

# first_run FILE - chapter 1's heading line, and the line of the first reply a client
# prints after it ("recv from server: ..."), as "HEADING FIRST".
first_run() {
  awk '/^## Step 1:/ && !heading { heading = NR }
       heading && /^([A-Za-z0-9]+\| )?recv from server: / { print heading, NR; exit }' "$1"
}

@test "tutorial: chapter 1 shows the first server run within $FIRST_RUN_WITHIN lines, before its plumbing" {
  local heading first
  read -r heading first < <(first_run "$TUTORIAL")
  [ -n "$first" ] || fail "no client output after chapter 1's heading in $TUTORIAL"
  [ $((first - heading)) -le "$FIRST_RUN_WITHIN" ] ||
    fail "the first client output is $((first - heading)) lines into chapter 1 (line $first)"
  run grep -nE "$PLUMBING_WORDS" <(sed -n "${heading},${first}p" "$TUTORIAL")
  [ "$status" -eq 1 ] || fail "plumbing before chapter 1's first run (lines from line $heading):
$output"
}

@test "tutorial: no \"seed\", no history of the lab; the glossary names its tools" {
  run grep -niE 'seed|the issue that' "$TUTORIAL"
  [ "$status" -eq 1 ] || fail "words a student cannot look up, or the lab's history:
$output"
  local terms term
  # The glossary's terms: the first cell of each row of its table.
  terms=$(sed -n '/^## Glossary/,/^## /p' "$TUTORIAL" | awk -F'|' '/^\|/ { print $2 }')
  for term in valgrind helgrind strace '`ss`' /proc FIN-WAIT-2 copy-on-write; do
    grep -qiF -- "$term" <<<"$terms" || fail "no glossary entry for $term"
  done
}

