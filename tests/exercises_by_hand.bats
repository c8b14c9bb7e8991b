#!/usr/bin/env bats
# passes: plain
# Each task can be tried by hand: the "Try it by hand" part of every
# tests/exercises/ID/task.md, run as written against the reference solution, prints what
# it says it prints (tests/exercises/by_hand reads it, starts the server, runs every
# command, types what the student types, and compares). setup_file tries them all,
# three at a time; each test reads one step's results.

load helpers

EXERCISES="$LAB/tests/exercises"

setup_file() {
  export TRIED="$BATS_FILE_TMPDIR/tried"
  mkdir -p "$TRIED"
  # shellcheck disable=SC2016
  (cd "$EXERCISES" && ls -d */ | tr -d /) |
    xargs -P 3 -I '{}' bash -c '"$1/by_hand" "$2" >"$3/$2" 2>&1; echo $? >"$3/$2.status"' \
      by-hand "$EXERCISES" '{}' "$TRIED"
}

# tried_by_hand STEP - every exercise of STEP was tried by hand, and matched.
tried_by_hand() {
  local dir id count=0
  for dir in "$EXERCISES"/s"$1"-*/; do
    id=$(basename "$dir")
    count=$((count + 1))
    grep -q '^## Try it by hand$' "$dir/task.md" || fail "$id/task.md has no '## Try it by hand'"
    [ "$(cat "$TRIED/$id.status")" = 0 ] || fail "$(cat "$TRIED/$id")"
  done
  [ "$count" -ge 1 ] || fail "no exercise for step $1"
}

@test "by hand: step 1's tasks, against their reference solutions" { tried_by_hand 1; }
@test "by hand: step 2's tasks, against their reference solutions" { tried_by_hand 2; }
@test "by hand: step 3's tasks, against their reference solutions" { tried_by_hand 3; }
@test "by hand: step 4's tasks, against their reference solutions" { tried_by_hand 4; }
@test "by hand: step 5's tasks, against their reference solutions" { tried_by_hand 5; }
@test "by hand: step 6's tasks, against their reference solutions" { tried_by_hand 6; }

@test "by hand: a server that does not do the task is caught, with what it printed" {
  run "$EXERCISES/by_hand" s4-who "$LAB/step4_threading/server"
  assert_failure
  assert_line "FAILED s4-who: python3 tests/exercises/talk.py --port 9999 'who\\n' 'hi\\n' printed 'reply: WHO' where the task shows 'reply: 1 connected'"
}
