#!/usr/bin/env bats
# passes: plain
# An exercise leaves the lesson whole (tests/exercises/workspace, make exercise-*): made
# in the copy that `make exercise-start` gives, it changes no file of the lesson; made in
# the lesson's own files, `make exercise-undo` gives them back byte for byte, and the
# step's suites pass again. Each test works in a copy of the lab of its own (a git
# repository whose one commit is this tree), so the lab itself is never touched.

load helpers

# lab_copy - a copy of the lab's files as they are now, committed in a repository of
# its own, in $COPY.
lab_copy() {
  COPY="$BATS_TEST_TMPDIR/lab"
  mkdir -p "$COPY"
  git -C "$LAB" ls-files -z --cached --others --exclude-standard |
    (cd "$LAB" && xargs -0 cp --parents -t "$COPY" 2>/dev/null) || true
  git -C "$COPY" init -q
  git -C "$COPY" add -A
  git -C "$COPY" -c user.name=lab -c user.email=lab@localhost commit -q -m lesson
}

# in_copy COMMAND... - run COMMAND in the copy, as a student's shell would (make's own
# variables and bats's do not leak in).
in_copy() { (cd "$COPY" && clean_env "$@"); }

# same_as_lab FILE - FILE in the copy is the lab's, byte for byte.
same_as_lab() { cmp "$LAB/$1" "$COPY/$1" || fail "$1 is not the lesson's"; }

@test "exercise-start: the work is a copy outside the lesson; check-exercise grades it; reset restores it" {
  lab_copy
  run in_copy make -s exercise-start EX=s1-greeting
  assert_success
  assert_output --partial "exercises-work/s1-greeting/server.c is a fresh copy of step1_blocking/server.c"
  local work="$COPY/exercises-work/s1-greeting/server.c"
  cmp "$LAB/step1_blocking/server.c" "$work"
  # A wrong attempt, in the copy: the lesson's file and the repository stay as they were.
  patch -s "$work" <"$LAB/tests/exercises/s1-greeting/wrong-after-reading.patch"
  ! cmp -s "$LAB/step1_blocking/server.c" "$work" || fail "the attempt changed nothing"
  same_as_lab step1_blocking/server.c
  run in_copy git status --porcelain
  assert_output ""
  # check-exercise grades the copy, or the file SRC names.
  run in_copy make -n check-exercise EX=s1-greeting
  assert_line "tests/exercises/check 's1-greeting' 'exercises-work/s1-greeting/server.c'"
  run in_copy make -n check-exercise EX=s1-greeting SRC=mine.c
  assert_line "tests/exercises/check 's1-greeting' 'mine.c'"
  # A second start keeps the work; reset starts it over.
  run in_copy make -s exercise-start EX=s1-greeting
  assert_failure
  assert_output --partial "exists already"
  ! cmp -s "$LAB/step1_blocking/server.c" "$work" || fail "start again overwrote the work"
  run in_copy make -s exercise-reset EX=s1-greeting
  assert_success
  cmp "$LAB/step1_blocking/server.c" "$work"
}

@test "exercise-undo: attempts made in the lesson's own files are undone byte for byte, and saved" {
  lab_copy
  # One wrong attempt at an exercise of each step, made where the student edits by default.
  local patch file files=()
  for patch in s1-greeting/wrong-after-reading s2-lines/wrong-last-line-lost s3-chat/wrong-echoed-back \
    s4-who/wrong-reset-counted s5-sigchld/wrong-reaped-in-handler s6-handle/wrong-one-message; do
    in_copy git apply "$LAB/tests/exercises/$patch.patch"
    file=$(sed -n 's/^FILE=//p' "$LAB/tests/exercises/${patch%/*}/exercise")
    files+=("$file")
    cp "$COPY/$file" "$BATS_TEST_TMPDIR/attempt-${patch%/*}"
    ! cmp -s "$LAB/$file" "$COPY/$file" || fail "$patch changed nothing"
  done
  run in_copy make -s exercise-undo
  assert_success
  for file in "${files[@]}"; do
    same_as_lab "$file"
    assert_line "$file is the lesson's again; your version is in exercises-work/undone/$file"
  done
  for patch in s1-greeting s2-lines s3-chat s4-who s5-sigchld s6-handle; do
    file=$(sed -n 's/^FILE=//p' "$LAB/tests/exercises/$patch/exercise")
    cmp "$BATS_TEST_TMPDIR/attempt-$patch" "$COPY/exercises-work/undone/$file"
  done
  run in_copy git status --porcelain
  assert_output ""
  run in_copy make -s exercise-undo
  assert_output "the lesson's files are as committed: nothing to undo"
}

@test "exercise-undo EX=ID: that exercise's file alone; then the step's own suites pass again" {
  lab_copy
  in_copy git apply "$LAB/tests/exercises/s1-every-message/wrong-strip.patch"
  in_copy git apply "$LAB/tests/exercises/s2-lines/wrong-last-line-lost.patch"
  run in_copy make -s exercise-undo EX=s1-every-message
  assert_success
  same_as_lab step1_blocking/server.c
  ! cmp -s "$LAB/step2_loop/server.c" "$COPY/step2_loop/server.c" || fail "step 2's attempt was undone too"
  run in_copy make -s all
  assert_success
  run in_copy make --no-print-directory check-step1
  assert_success
  [[ ${lines[-1]} =~ ^[1-9][0-9]*\ passed,\ 0\ failed$ ]] || fail "last line: ${lines[-1]}"
}
