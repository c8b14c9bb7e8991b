#!/usr/bin/env bats
# The exercises' graders are honest (tests/exercises/). For every exercise, each on a
# temporary copy of its file: the grader fails the unchanged file, for the reason the
# exercise names; passes the reference solution (solution.patch), valgrind included; and
# fails each deliberately wrong solution (wrong-NAME.patch) at the criterion its first
# line names. setup_file grades them all, three at a time (tests/exercises/prove); each
# test reads its exercise's results. Then `make exercises` (the teachers' `grade` is
# tests/teachers.bats's).
# EXERCISES_PROOF=quick leaves the valgrind criteria out of the reference runs (the wrong
# solutions that valgrind must catch are still run under it); EXERCISES_JOBS sets how
# many exercises are proven at once (default 3: most of a grader's time is waiting).

load helpers

EXERCISES="$LAB/tests/exercises"

setup_file() {
  export PROOF="$BATS_FILE_TMPDIR/proof"
  # The graders' builds and servers live here, so that the last test can tell whether
  # any of them is still running.
  export TMPDIR="$BATS_FILE_TMPDIR/graders"
  mkdir -p "$TMPDIR"
  local ids options=()
  ids=$(cd "$EXERCISES" && ls -d */ | tr -d /)
  [ "${EXERCISES_PROOF:-full}" != quick ] || options=(--no-valgrind)
  xargs -P "${EXERCISES_JOBS:-3}" -I '{}' "$EXERCISES/prove" "${options[@]}" '{}' "$PROOF/{}" <<<"$ids"
}

# first_failure OUTPUT - the ID of the first criterion OUTPUT says failed.
first_failure() { sed -nE 's/^failed: ([^ ]+) - .*/\1/p' "$1" | head -n 1; }

# proven ID - the results of tests/exercises/prove for exercise ID are what they must be.
proven() {
  local results="$PROOF/$1" expected wrong count=0
  expected=$(sed -n 's/^UNCHANGED_FAILS=//p' "$EXERCISES/$1/exercise")
  [ -n "$expected" ] || fail "$1/exercise names no UNCHANGED_FAILS"
  [ "$(cat "$results/unchanged.status")" = 1 ] || fail "unchanged: $(cat "$results/unchanged")"
  [ "$(first_failure "$results/unchanged")" = "$expected" ] ||
    fail "the unchanged file must fail $expected first: $(cat "$results/unchanged")"

  [ "$(cat "$results/solution.status")" = 0 ] || fail "the reference solution: $(cat "$results/solution")"
  run tail -n 1 "$results/solution"
  assert_output --regexp '^[0-9]+ passed, 0 failed$'

  for wrong in "$EXERCISES/$1"/wrong-*.patch; do
    [ -f "$wrong" ] || continue
    count=$((count + 1))
    wrong=$(basename "$wrong" .patch)
    expected=$(sed -nE '1s/^fails: ([^ ]+).*/\1/p' "$EXERCISES/$1/$wrong.patch")
    [ -n "$expected" ] || fail "$wrong.patch does not begin with 'fails: CRITERION'"
    [ "$(cat "$results/$wrong.status")" = 1 ] || fail "$wrong: $(cat "$results/$wrong")"
    [ "$(first_failure "$results/$wrong")" = "$expected" ] ||
      fail "$wrong must fail $expected first: $(cat "$results/$wrong")"
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

@test "the tutorial points to every exercise's check, in its step's chapter" {
  local id step chapter
  while read -r id _ step _; do
    # The chapter of step N runs from its "## Step N:" heading to the next "## " heading.
    chapter=$(awk -v n="$step" '/^## /{inside = ($0 ~ "^## Step " n ":")} inside' "$LAB/TUTORIAL.md")
    grep -qF "| \`$id\` |" <<<"$chapter" || fail "step $step's chapter of TUTORIAL.md does not list $id"
  done < <("$EXERCISES/list")
  grep -qF 'make check-exercise EX=ID' "$LAB/TUTORIAL.md"
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
