#!/usr/bin/env bats
# The exercises' graders are honest (tests/exercises/). For every exercise, each on a
# temporary copy of its file: the grader fails the unchanged file, for the reason the
# exercise names; passes the reference solution (solution.patch), valgrind included; and
# fails each deliberately wrong solution (wrong-NAME.patch) on the criterion its first
# line names, graded on that criterion alone. setup_file grades them all, one build per
# variant, EXERCISES_JOBS at once (default 4: most of a grader's time is waiting), the
# reference runs first (the longest); each test reads its exercise's results
# (tests/exercises/prove). Then requirements.md, `make exercises`, the teachers' `grade`
# and the graders' own bounds.
# EXERCISES_PROOF=quick leaves the valgrind criteria out of the reference runs (the wrong
# solutions that valgrind must catch are still run under it); EXERCISES_ONLY="ID..."
# proves those exercises alone (the others' tests are skipped): for work on one grader.

load helpers

EXERCISES="$LAB/tests/exercises"

setup_file() {
  export PROOF="$BATS_FILE_TMPDIR/proof"
  # The graders' builds and servers live here, so that the last test can tell whether
  # any of them is still running.
  export TMPDIR="$BATS_FILE_TMPDIR/graders"
  mkdir -p "$TMPDIR"
  local ids id variant options=()
  ids=${EXERCISES_ONLY:-$(cd "$EXERCISES" && ls -d */ | tr -d /)}
  [ "${EXERCISES_PROOF:-full}" != quick ] || options=(--no-valgrind)
  # One job per variant: ID, its results' folder, the variant; the references first.
  for id in $ids; do printf '%s\0' "$id" "$PROOF/$id" solution; done >"$BATS_FILE_TMPDIR/jobs"
  for id in $ids; do
    while read -r variant; do
      [ "$variant" = solution ] || printf '%s\0' "$id" "$PROOF/$id" "$variant"
    done < <("$EXERCISES/prove" --variants "$id")
  done >>"$BATS_FILE_TMPDIR/jobs"
  xargs -0 -r -n 3 -P "${EXERCISES_JOBS:-4}" "$EXERCISES/prove" "${options[@]}" <"$BATS_FILE_TMPDIR/jobs"
}

# first_failure OUTPUT - the ID of the first criterion OUTPUT says failed.
first_failure() { sed -nE 's/^failed: ([^ ]+) - .*/\1/p' "$1" | head -n 1; }

# proven ID - the results of tests/exercises/prove for exercise ID are what they must be.
proven() {
  local results="$PROOF/$1" expected wrong count=0
  [ -d "$results" ] || skip "$1 is not proven in this run (EXERCISES_ONLY)"
  expected=$(sed -n 's/^UNCHANGED_FAILS=//p' "$EXERCISES/$1/exercise")
  [ -n "$expected" ] || fail "$1/exercise names no UNCHANGED_FAILS"
  [ "$(cat "$results/unchanged.status")" = 1 ] || fail "unchanged: $(cat "$results/unchanged")"
  [ "$(first_failure "$results/unchanged")" = "$expected" ] ||
    fail "the unchanged file must fail $expected first: $(cat "$results/unchanged")"

  [ "$(cat "$results/solution.status")" = 0 ] || fail "the reference solution: $(cat "$results/solution")"
  run tail -n 2 "$results/solution"
  assert_line --index 0 --regexp '^score: ([0-9]+)/\1$'
  assert_line --index 1 --regexp '^[0-9]+ passed, 0 failed$'

  for wrong in "$EXERCISES/$1"/wrong-*.patch; do
    [ -f "$wrong" ] || continue
    count=$((count + 1))
    wrong=$(basename "$wrong" .patch)
    expected=$(sed -nE '1s/^fails: ([^ ]+).*/\1/p' "$EXERCISES/$1/$wrong.patch")
    [ -n "$expected" ] || fail "$wrong.patch does not begin with 'fails: CRITERION'"
    [ "$(cat "$results/$wrong.status")" = 1 ] || fail "$wrong: $(cat "$results/$wrong")"
    [ "$(first_failure "$results/$wrong")" = "$expected" ] ||
      fail "$wrong must fail $expected: $(cat "$results/$wrong")"
  done
  [ "$count" -ge 1 ] || fail "$1 has no wrong solution"
}

@test "every exercise has its test here, task text and hints, a reference and a wrong solution" {
  local dir id
  for dir in "$EXERCISES"/*/; do
    id=$(basename "$dir")
    grep -q "^@test \"$id: " "$BATS_TEST_FILENAME" || fail "no test for $id in exercises.bats"
    [ -s "$dir/task.md" ] || fail "$id has no task.md"
    grep -qi '^hints' "$dir/task.md" || fail "$id's task.md has no hints"
    [ -s "$dir/solution.patch" ] || fail "$id has no solution.patch"
  done
}

@test "make exercises: at least three exercises per step, ID first, then the step and the task" {
  run make -s --no-print-directory -C "$LAB" exercises
  assert_success
  [ "${#lines[@]}" -ge 18 ]
  for step in 1 2 3 4 5 6; do
    [ "$(grep -cE "^[a-z0-9-]+ +step $step  [^ ]" <<<"$output")" -ge 3 ] || fail "step $step: $output"
  done
  [ "$(grep -cvE '^[a-z0-9-]+ +step [1-6]  [^ ]' <<<"$output")" = 0 ] || fail "$output"
}

@test "s1-every-message: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s1-every-message
}

@test "s1-greeting: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s1-greeting
}

@test "s1-requests: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s1-requests
}

@test "s1-whole-request: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s1-whole-request
}

@test "s2-byte-count: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s2-byte-count
}

@test "s2-idle-timeout: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s2-idle-timeout
}

@test "s2-lines: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s2-lines
}

@test "s3-chat: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s3-chat
}

@test "s3-max-clients: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s3-max-clients
}

@test "s3-poll: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s3-poll
}

@test "s4-max-threads: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s4-max-threads
}

@test "s4-shared-counter: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s4-shared-counter
}

@test "s4-who: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s4-who
}

@test "s5-exit-status: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s5-exit-status
}

@test "s5-prefork: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s5-prefork
}

@test "s5-sigchld: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s5-sigchld
}

@test "s6-blank-line: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s6-blank-line
}

@test "s6-handle: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s6-handle
}

@test "s6-kvstore: the grader fails the unchanged file, passes the reference, fails the wrong ones" {
  proven s6-kvstore
}

@test "grade: one line per student and a CSV, for a good, a wrong and a non-compiling file" {
  local class="$BATS_TEST_TMPDIR/class"
  mkdir -p "$class"
  cp "$LAB/step1_blocking/server.c" "$class/unchanged.c"
  cp "$LAB/step1_blocking/server.c" "$class/good.c"
  (cd "$class" && patch_to good.c "$EXERCISES/s1-every-message/solution.patch")
  echo 'int main(void) { return undeclared; }' >"$class/broken.c"
  run "$EXERCISES/grade" s1-every-message "$class" "$BATS_TEST_TMPDIR/grades.csv"
  assert_failure 1
  assert_line --index 0 "broken: 0 passed, 1 failed (builds)"
  assert_line --index 1 --regexp '^good: [0-9]+ passed, 0 failed$'
  assert_line --index 2 --regexp '^unchanged: [0-9]+ passed, [1-9][0-9]* failed \(two-messages.*\)$'
  run cat "$BATS_TEST_TMPDIR/grades.csv"
  assert_line --index 0 "student,passed,failed,failed_criteria"
  assert_line --index 1 "broken,0,1,builds"
  assert_line --index 2 --regexp '^good,[0-9]+,0,$'
  assert_line --index 3 --regexp '^unchanged,[0-9]+,[1-9][0-9]*,two-messages'
  grep -q "undeclared" "$BATS_TEST_TMPDIR/grades.log"
}

# patch_to FILE PATCH - apply PATCH, written for another path, to FILE.
patch_to() {
  sed -E '/^(---|\+\+\+) /s#[ab]/[^ ]*#a/'"$1"'#' "$2" | git apply -p1
}

@test "the tutorial points to every exercise's check, in its step's chapter" {
  local id step chapter
  while read -r id _ step _; do
    # The chapter of step N runs from its "## Step N:" heading to the next "## " heading.
    chapter=$(awk -v n="$step" '/^## /{inside = ($0 ~ "^## Step " n ":")} inside' "$LAB/TUTORIAL.md")
    grep -qF "| \`$id\` |" <<<"$chapter" || fail "step $step's chapter of TUTORIAL.md does not list $id"
  done < <("$EXERCISES/list")
  grep -qF 'make check-exercise EX=ID' "$LAB/TUTORIAL.md"
}

# in_grader SCRIPT - run bash SCRIPT as a criterion's code runs: lib.bash's functions, a
# grader's folder, the test's folder as the criterion's.
in_grader() {
  run bash -c 'LAB=$1 GRADER_TMP=$2 BATS_TEST_TMPDIR=$2; source "$LAB/tests/exercises/lib.bash"; eval "$3"' \
    in-grader "$LAB" "$BATS_TEST_TMPDIR" "$1"
}

@test "check: each criterion's points make 'score: X/Y', before 'N passed, M failed'; the build is worth none" {
  in_grader '
    good() { true; }
    bad() { false; }
    criteria() {
      criterion one "passes" "" good 2
      criterion two "fails" "" bad 3
      criterion three "passes, worth 1" "" good
    }
    GRADER_PASS=list && criteria && GRADER_PASS=run && criteria
    echo "score: $SCORE/$SCORE_MAX, $CRITERIA_PASSED passed, $CRITERIA_FAILED failed"'
  assert_line --index 0 "passed: one - passes"
  assert_line --index 1 "failed: two - fails (hint: )"
  assert_line --index 2 "passed: three - passes, worth 1"
  assert_line --index 3 "score: 3/6, 2 passed, 1 failed"
  in_grader 'criteria() { criterion one "half a point" "" true 0.5; }; criteria'
  assert_failure 2
  assert_output --partial "points '0.5', not a whole number"

  run "$EXERCISES/check" s1-every-message
  assert_failure 1
  assert_line --index 0 "passed: builds - compiles with the lab's flags"
  assert_line --index -2 "score: 0/4"
  assert_line --index -1 "1 passed, 4 failed"
}

@test "check: a valgrind criterion after a failed one is not run; --only runs one criterion; --only names a real one" {
  run "$EXERCISES/check" s1-every-message
  assert_line "failed: two-messages - two messages on one connection are both answered (hint: loop in handle_client() until echo_once() says the session is over)"
  assert_line "not run: memcheck - two-messages failed"
  refute_output --partial "failed: memcheck"
  run "$EXERCISES/check" --only next-client s1-every-message
  assert_failure 1
  [ "${#lines[@]}" = 4 ] || fail "$output"
  assert_line --index 1 --partial "failed: next-client - "
  assert_line --index 2 "score: 0/1"
  # Alone, with no failure before it, the valgrind criterion runs (its scenario fails here).
  run "$EXERCISES/check" --only memcheck s1-every-message
  assert_failure 1
  assert_line --index 1 --partial "failed: memcheck - "
  run "$EXERCISES/check" --only no-such-thing s1-every-message
  assert_failure 2
  assert_output "s1-every-message has no criterion 'no-such-thing'; its criteria: two-messages blank-message next-client memcheck"
}

# A server for stop_server: it prints its ready line and waits, with the SIGTERM handler
# (and the SIGUSR1 one) given.
fake_server() {
  printf '#!/usr/bin/env bash\ntrap %q TERM\ntrap "exit 0" USR1\necho "serving on 127.0.0.1:9"\nwhile :; do read -r -t 1 _ <> <(:); done\n' \
    "$1" >"$BATS_TEST_TMPDIR/fake"
  chmod +x "$BATS_TEST_TMPDIR/fake"
}

@test "the graders' stop_server passes only a server that ended its work itself on SIGTERM" {
  fake_server "exit 0"
  in_grader 'start_server "$BATS_TEST_TMPDIR/fake" && stop_server'
  assert_success
  in_grader 'start_server "$BATS_TEST_TMPDIR/fake" && kill -USR1 $SERVER_PID && wait_until 5 server_gone && stop_server'
  assert_failure
  assert_output "the server had already ended (exit status 0) before SIGTERM came: it must serve until it is stopped"
  fake_server 'echo "child 12 did not stop within 5 s: killed"; exit 0'
  in_grader 'start_server "$BATS_TEST_TMPDIR/fake" && stop_server'
  assert_failure
  assert_line --index 0 "after SIGTERM the server wrote:"
  assert_line --index 1 "child 12 did not stop within 5 s: killed"
  fake_server ''
  in_grader 'STOP_SECONDS=1 && start_server "$BATS_TEST_TMPDIR/fake" && stop_server'
  assert_failure
  assert_output "the server was still running 1 s after SIGTERM: killed"
  fake_server 'exit 3'
  in_grader 'start_server "$BATS_TEST_TMPDIR/fake" && stop_server'
  assert_failure
  assert_output "the server exited with status 3 after SIGTERM, not 0"
}

@test "talk.py --exact shows a reply's bytes: a newline, or none, and the bytes that do not print" {
  start_server "$LAB/step2_loop/server"
  run python3 "$EXERCISES/talk.py" --port "$SERVER_PORT" --exact 'hi\n' 'no newline' '\ttab\\\x01\r\n'
  assert_line --index 1 'reply: HI\n'
  assert_line --index 2 'reply: NO NEWLINE'
  assert_line --index 3 'reply: \tTAB\\\x01\r\n'
  run python3 "$EXERCISES/talk.py" --port "$SERVER_PORT" 'hi\n' 'no newline'
  assert_line --index 1 'reply: HI'
  assert_line --index 2 'reply: NO NEWLINE'
  stop_server
}

@test "make check-exercise SRC=PATH grades a file whose name holds spaces and quotes" {
  local src="$BATS_TEST_TMPDIR/a student's file.c"
  cp "$LAB/step1_blocking/server.c" "$src"
  (cd "$BATS_TEST_TMPDIR" && patch_to "a student's file.c" "$EXERCISES/s1-every-message/solution.patch")
  run make -s --no-print-directory -C "$LAB" check-exercise EX=s1-every-message SRC="$src"
  assert_success
  assert_line --index -1 "5 passed, 0 failed"
}

@test "the graders leave no process behind: every server and client they started has ended" {
  # One left behind keeps running, and holds this suite's output open: bats would wait
  # for it for ever. Fail, naming it, and end it. A grader's server runs from its
  # folder under TMPDIR; its clients read from fifos there.
  local proc left=() pid
  for proc in /proc/[0-9]*; do
    if [[ $(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null) == "$TMPDIR"/* ||
      $(readlink "$proc/fd/0" 2>/dev/null) == "$TMPDIR"/* ]]; then
      left+=("${proc#/proc/}")
    fi
  done
  [ "${#left[@]}" = 0 ] && return 0
  for pid in "${left[@]}"; do ps -o pid=,args= -p "$pid" || true; done >"$BATS_TEST_TMPDIR/left"
  kill -KILL "${left[@]}" 2>/dev/null || true
  fail "still running: $(cat "$BATS_TEST_TMPDIR/left")"
}
