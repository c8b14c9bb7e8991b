#!/usr/bin/env bats
# passes: plain:6
# The teachers' kit: the sandbox a student's code is graded in, `grade -j N` for a class,
# `make handout` and `make gradescope`. The sandbox is shown with hostile submissions
# (tests/teachers/hostile/): each is the reference solution of s1-every-message with one
# attack spliced in, called at every client; each attack must be contained, graded on
# what it did, and leave nothing behind. Where an attack must be seen to work without
# the sandbox, the same file is graded --unsandboxed too, so the test can fail.

load helpers

EXERCISES="$LAB/tests/exercises"
HOSTILE="$LAB/tests/teachers/hostile"

setup_file() {
  # The reference solution of s1-every-message, which every hostile file starts from.
  local root="$BATS_FILE_TMPDIR/solved"
  mkdir -p "$root/step1_blocking"
  cp "$LAB/step1_blocking/server.c" "$root/step1_blocking/"
  (cd "$root" && git apply "$EXERCISES/s1-every-message/solution.patch")
  export SOLVED="$root/step1_blocking/server.c"
}

setup() {
  # The graders' folders go here, so that a test can tell that nothing was left.
  export TMPDIR="$BATS_TEST_TMPDIR/graders"
  mkdir -p "$TMPDIR"
  # The student's user, known to the test: no process of it may outlive a grade.
  export SANDBOX_UID=$((2000000000 + BASHPID))
  export GRADE_UID_BASE=$((2050000000 + BASHPID % 100000 * 100))
  # A name for what an attack leaves (a file, a process name: 15 characters at most).
  MARK="kit$RANDOM$RANDOM"
}

# need_sandbox - a test of the sandbox itself needs what it is made of here: root (to give
# the student a user of its own) and bwrap's namespaces; elsewhere it is skipped, said so.
need_sandbox() {
  if [ "$(id -u)" != 0 ] || ! bwrap --unshare-net --unshare-pid --ro-bind / / true 2>/dev/null; then
    skip "the sandbox's own tests need root and bwrap's namespaces"
  fi
}

# hostile NAME [FILE] - FILE (default NAME.c in the test's folder): the solution with the
# attack of tests/teachers/hostile/NAME.c (or tests/teachers/NAME.c) spliced in before
# handle_client(), which calls it first with the client's socket. @LAB@, @MARK@, @PORT@,
# @SECRET@ and @OTHER@ are filled in.
hostile() {
  local file=${2:-$BATS_TEST_TMPDIR/$1.c} fragment="$HOSTILE/$1.c"
  [ -f "$fragment" ] || fragment="$LAB/tests/teachers/$1.c"
  sed -e "s#@LAB@#$LAB#g" -e "s#@MARK@#$MARK#g" -e "s#@PORT@#${PORT:-0}#g" \
    -e "s#@SECRET@#${SECRET:-}#g" -e "s#@OTHER@#${OTHER:-}#g" "$fragment" >"$BATS_TEST_TMPDIR/attack"
  awk -v attack="$BATS_TEST_TMPDIR/attack" '
    /^static void handle_client\(/ { while ((getline line < attack) > 0) print line; print; print "  attack(client);"; next }
    { print }' "$SOLVED" >"$file"
  grep -q '^  attack(client);$' "$file"
}

# grade_alone NAME [CHECK-OPTIONS...] - check s1-every-message on hostile NAME, without
# valgrind: status and output as bats's run gives them.
grade_alone() {
  local name=$1
  shift
  hostile "$name"
  run "$EXERCISES/check" --no-valgrind "$@" s1-every-message "$BATS_TEST_TMPDIR/$name.c"
}

# nothing_left - no process of the student's user runs, none named MARK (the name an
# attack gives its daemons), and the graders' folder holds nothing of the student's: no
# file of its user, nothing but the evidence a failed grade keeps (exercise-ID.*).
nothing_left() {
  run pgrep -U "$SANDBOX_UID"
  assert_failure
  run pgrep -x "$MARK"
  assert_failure
  run find "$TMPDIR" -user "$SANDBOX_UID"
  assert_output ""
  run find "$TMPDIR" -mindepth 1 -maxdepth 1 ! -name 'exercise-*'
  assert_output ""
}

# all_passed / first_failed CRITERION - what check's output says.
all_passed() {
  assert_success
  assert_line --regexp '^score: ([0-9]+)/\1$'
  assert_line --index -1 --regexp '^[0-9]+ passed, 0 failed$'
}
first_failed() {
  assert_failure 1
  [ "$(sed -nE 's/^failed: ([^ ]+) - .*/\1/p' <<<"$output" | head -n 1)" = "$1" ] || fail "not $1 first: $output"
}

@test "sandbox: the reference passes in it; the student's code runs as its own user, in a session of its own" {
  need_sandbox
  run "$EXERCISES/check" --no-valgrind s1-every-message "$SOLVED"
  all_passed
  refute_output --partial "sandbox:"
  grade_alone whoami --verbose
  local who
  who=$(sed -nE 's/^ *\| actual +: reply: (uid .*)/\1/p' <<<"$output" | head -n 1)
  [[ $who =~ ^uid\ $SANDBOX_UID\ sid\ ([0-9]+)\ pgid\ ([0-9]+)\ pid\ ([0-9]+)$ ]] || fail "who: $who"
  [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[3]}" ] && [ "${BASH_REMATCH[2]}" = "${BASH_REMATCH[3]}" ] || fail "$who"
  nothing_left
}

@test "sandbox: the server's network is its own: a service on the machine's loopback hears nothing" {
  need_sandbox
  # The service prints a line per connection, in the order they came.
  in_background listener python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
while True:
    s.accept()
    print("connection", flush=True)'
  wait_until 5 output_of listener '^[0-9]+$'
  PORT=$(head -n 1 "$BATS_TEST_TMPDIR/listener.out")
  grade_alone net-outside
  all_passed
  # A connection of the test's own: once it is counted, every earlier one was too.
  exec {probe}<>"/dev/tcp/127.0.0.1/$PORT"
  exec {probe}>&-
  wait_until 5 output_of listener '^connection$'
  run grep -c '^connection$' "$BATS_TEST_TMPDIR/listener.out"
  assert_output 1
  # Without the sandbox the same file reaches the service: this test can see it.
  run "$EXERCISES/check" --no-valgrind --unsandboxed s1-every-message "$BATS_TEST_TMPDIR/net-outside.c"
  wait_until 5 bash -c "[ \$(grep -c '^connection\$' '$BATS_TEST_TMPDIR/listener.out') -gt 1 ]"
  nothing_left
}

@test "sandbox: the lab is read-only and /tmp private: the lab's task.md unchanged, no file in /tmp" {
  need_sandbox
  local before
  before=$(cksum <"$EXERCISES/s1-every-message/task.md")
  grade_alone write-lab
  all_passed
  [ "$(cksum <"$EXERCISES/s1-every-message/task.md")" = "$before" ]
  [ ! -e "/tmp/hostile-$MARK" ]
  nothing_left
}

@test "sandbox: a setsid daemon and sleeping children end with the grade, namespaces or not" {
  need_sandbox
  grade_alone daemons
  nothing_left
  # Without namespaces the student's user is what ends them.
  SANDBOX_NO_NAMESPACES=1 grade_alone daemons
  assert_line --partial "sandbox: no namespaces"
  nothing_left
}

@test "sandbox: a secret in /tmp or the grader's environment, another student's file and the reference solution cannot be read" {
  need_sandbox
  export "$MARK=the teacher's token"
  SECRET="$BATS_TEST_TMPDIR/secret"
  echo "the teacher's secret" >"$SECRET"
  OTHER="$BATS_TEST_TMPDIR/class/other student.c"
  mkdir -p "${OTHER%/*}"
  cp "$SOLVED" "$OTHER"
  # It stops answering when it reads one: passes in the sandbox, fails without it.
  grade_alone read-secrets
  all_passed
  run "$EXERCISES/check" --no-valgrind --unsandboxed s1-every-message "$BATS_TEST_TMPDIR/read-secrets.c"
  first_failed two-messages
  assert_line --index 0 --partial "sandbox: none (--unsandboxed)"
  nothing_left
}

@test "sandbox: a fork bomb stops at the process limit, and its processes end with the grade" {
  need_sandbox
  grade_alone fork-bomb
  all_passed
  nothing_left
}

@test "sandbox: kill(0, SIGTERM) stops the student's own server only: the grade goes on to its summary" {
  need_sandbox
  grade_alone kill-group
  first_failed two-messages
  assert_line --index -1 --regexp '^1 passed, [1-9][0-9]* failed$'
  nothing_left
}

@test "sandbox: a server that writes a passing summary into the grader's output cannot; it is graded on what it did" {
  need_sandbox
  grade_alone forge-summary
  first_failed two-messages
  refute_output --partial forged
  assert_line --index -1 --regexp '^1 passed, [1-9][0-9]* failed$'
  nothing_left
  SANDBOX_NO_NAMESPACES=1 grade_alone forge-summary
  refute_output --partial forged
  assert_line --index -1 --regexp '^1 passed, [1-9][0-9]* failed$'
  nothing_left
}

@test "sandbox: a flood of output stops at the file-size limit; the grader's output stays small" {
  need_sandbox
  grade_alone flood
  first_failed two-messages
  [ "${#output}" -lt 10000 ]
  nothing_left
  SANDBOX_NO_NAMESPACES=1 grade_alone flood
  first_failed two-messages
  nothing_left
}

@test "sandbox: #include \"/dev/zero\" fails the build within its limits" {
  need_sandbox
  grade_alone include-zero
  first_failed builds
  assert_output --partial "out of memory"
  nothing_left
}

@test "sandbox: #include \"/dev/stdin\" reads nothing, even when the grader's input stays open" {
  need_sandbox
  local input
  mkfifo "$BATS_TEST_TMPDIR/input"
  exec {input}<>"$BATS_TEST_TMPDIR/input"
  hostile include-stdin
  # (timeout: without the sandbox the build would wait on this input for ever)
  run timeout 60 "$EXERCISES/check" --no-valgrind s1-every-message "$BATS_TEST_TMPDIR/include-stdin.c" <&"$input"
  exec {input}>&-
  all_passed
  nothing_left
}

@test "sandbox: #include of /etc/passwd or the reference solution shows nothing of the machine or the answer" {
  need_sandbox
  grade_alone include-passwd
  first_failed builds
  # The machine's other users (daemon, bin, ...) are not in the sandbox's /etc/passwd.
  local user
  user=$(sed -n '2s/:.*//p' /etc/passwd)
  [ -n "$user" ] && [ "$user" != root ]
  refute_output --partial "$user:"
  # The reference solution cannot be opened there; without the sandbox its text shows.
  grade_alone include-solution
  first_failed builds
  assert_output --partial "solution.patch: Permission denied"
  refute_output --partial "a/step1_blocking/server.c"
  run "$EXERCISES/check" --no-valgrind --unsandboxed s1-every-message "$BATS_TEST_TMPDIR/include-solution.c"
  first_failed builds
  assert_output --partial "a/step1_blocking/server.c"
  nothing_left
}

# no_student_left - no process of the class's students' users runs (grade gives each its
# own: GRADE_UID_BASE and the student's index, below 100 here).
no_student_left() {
  run bash -c "ps -eo uid= | awk '\$1 >= $GRADE_UID_BASE && \$1 < $GRADE_UID_BASE + 100' | wc -l"
  assert_output 0
  run ls -A "$TMPDIR"
  assert_output ""
}

@test "grade -j 2: a line per student as each ends, any file name, skipped files named, an RFC 4180 CSV" {
  local class="$BATS_TEST_TMPDIR/class" name
  mkdir -p "$class"
  for name in good 'Smith, Anna' -dash 'say "hi"' $'new\nline' .hidden; do cp "$SOLVED" "$class/$name.c"; done
  cp "$SOLVED" "$class/UPPER.C"
  ln -s nowhere.c "$class/dangling.c"
  cp "$LAB/step1_blocking/server.c" "$class/unchanged.c"
  echo 'int main(void) { return undeclared; }' >"$class/broken.c"
  hostile kill-group "$class/kills.c"
  run "$EXERCISES/grade" -j 2 --no-valgrind s1-every-message "$class" "$BATS_TEST_TMPDIR/grades.csv"
  assert_failure 1
  for name in 1 2 3 4 5 6 7 8; do assert_line "graded $name of 8"; done
  assert_line "skipped: .hidden.c - a hidden file (its name begins with a dot)"
  assert_line "skipped: UPPER.C - not a .c file"
  assert_line "skipped: dangling.c - a link to nothing"
  assert_line --regexp '^Smith, Anna: score ([0-9]+)/\1, [0-9]+ passed, 0 failed$'
  assert_line --regexp "^\\\$'new\\\\nline': score ([0-9]+)/\\1, [0-9]+ passed, 0 failed\$"
  assert_line --regexp '^broken: score 0/[0-9]+, 0 passed, 1 failed \(builds\)$'
  assert_line --regexp '^kills: score 0/[0-9]+, 1 passed, [0-9]+ failed \(two-messages'
  assert_line "graded 8, skipped 3"
  # Read back as a spreadsheet would: one row per entry, in the folder's order; a row
  # shown as its name, its file and `full` (every point, nothing failed), its score and
  # first failed criterion, or its note.
  run python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
print(rows[0])
for student, file, score, most, passed, failed, failures, note in rows[1:]:
    if note:
        verdict = note
    elif score == most and failed == "0" and int(passed) > 1:
        verdict = "full"
    else:
        verdict = "%s of %s, %s first" % (score, most, failures.split(" ")[0])
    print(repr([student, file, verdict]))' "$BATS_TEST_TMPDIR/grades.csv"
  assert_line --index 0 "['student', 'file', 'score', 'max_score', 'passed', 'failed', 'failed_criteria', 'note']"
  assert_line --index 1 "['-dash', '-dash.c', 'full']"
  assert_line --index 2 "['.hidden', '.hidden.c', 'skipped: a hidden file (its name begins with a dot)']"
  assert_line --index 3 "['Smith, Anna', 'Smith, Anna.c', 'full']"
  assert_line --index 4 "['UPPER.C', 'UPPER.C', 'skipped: not a .c file']"
  assert_line --regexp "^\\['broken', 'broken.c', '0 of [0-9]+, builds first'\\]\$"
  assert_line --index 6 "['dangling', 'dangling.c', 'skipped: a link to nothing']"
  assert_line --index 7 "['good', 'good.c', 'full']"
  assert_line --regexp "^\\['kills', 'kills.c', '0 of [0-9]+, two-messages first'\\]\$"
  assert_line --index 9 "['new\\nline', 'new\\nline.c', 'full']"
  assert_line --index 10 "['say \"hi\"', 'say \"hi\".c', 'full']"
  assert_line --regexp "^\\['unchanged', 'unchanged.c', '0 of [0-9]+, two-messages first'\\]\$"
  [ "${#lines[@]}" = 12 ]
  grep -q "undeclared" "$BATS_TEST_TMPDIR/grades.log"
  no_student_left
}

@test "grade --cap: a student that never answers and ignores SIGTERM is stopped at the cap, the others graded" {
  local class="$BATS_TEST_TMPDIR/class"
  mkdir -p "$class"
  hostile hang "$class/hangs.c"
  cp "$SOLVED" "$class/good.c"
  run "$EXERCISES/grade" -j 2 --cap 5 --no-valgrind s1-every-message "$class" "$BATS_TEST_TMPDIR/grades.csv"
  assert_failure 1
  assert_line --regexp '^hangs: score 0/[0-9]+, 0 passed, 1 failed.* - stopped at the cap of 5 s$'
  assert_line --regexp '^good: score ([0-9]+)/\1, [0-9]+ passed, 0 failed$'
  run grep -c 'stopped at the cap' "$BATS_TEST_TMPDIR/grades.csv"
  assert_output 1
  no_student_left
}

@test "make handout: no solution in it; it builds; its check-exercise fails the unchanged file and passes a solution" {
  local handout="$BATS_TEST_TMPDIR/handout" answers file
  run make -s --no-print-directory -C "$LAB" handout DIR="$handout"
  assert_success
  # No file named as an answer, and no file with an answer's bytes under another name.
  run find "$handout" -name 'solution*' -o -name 'wrong-*' -o -name requirements.md -o -name .git
  assert_output ""
  answers=$(cksum "$EXERCISES"/*/solution.* "$EXERCISES"/*/wrong-* | cut -d' ' -f1,2 | sort -u)
  while IFS= read -r -d '' file; do
    ! grep -qxF "$(cksum <"$file")" <<<"$answers" || fail "an answer's copy: $file"
  done < <(find "$handout" -type f -print0)
  # What reads the answers stays in the teacher's copy: the proof and this suite; no
  # suite left names an answer, and the handout's make test lists only suites it has.
  for file in tests/exercises/prove tests/exercises/regenerate tests/exercises.bats tests/teachers.bats; do
    [ -e "$LAB/$file" ] && [ ! -e "$handout/$file" ] || fail "$file"
  done
  run grep -lE 'solution\.(patch|c)|wrong-[a-z*]|requirements\.md' "$handout"/tests/*.bats
  assert_output ""
  for file in $(make -s --no-print-directory -C "$handout" --eval 'suites: ; @echo $(SUITES)' suites); do
    [ -f "$handout/$file" ] || fail "make test would run $file, which is not in the handout"
  done
  run make -s --no-print-directory -C "$handout" -j 2 all
  assert_success
  run make -s --no-print-directory -C "$handout" check-exercise EX=s1-every-message
  assert_failure
  assert_line --regexp '^failed: two-messages '
  run make -s --no-print-directory -C "$handout" check-exercise EX=s1-every-message SRC="$SOLVED"
  assert_success
  assert_line --regexp '^score: ([0-9]+)/\1$'
}

# autograde FILE - run_autograder, in a folder laid out as Gradescope's (AUTOGRADER_ROOT),
# on FILE submitted as server.c; the results as python3's json reads them, one line each.
autograde() {
  local root="$BATS_TEST_TMPDIR/autograder"
  rm -rf "$root/submission" "$root/results"
  mkdir -p "$root/submission"
  cp "$1" "$root/submission/server.c"
  AUTOGRADER_ROOT="$root" "$root/source/run_autograder"
  run python3 -c '
import json, sys
results = json.load(open(sys.argv[1]))
most = sum(test["max_score"] for test in results["tests"])
print("score", "full" if results["score"] == most else "%d of %d" % (results["score"], most))
for test in results["tests"]:
    assert set(test) == {"name", "score", "max_score", "status", "output", "visibility"}, test
    # A test scores its points when it passed, none when it failed; the build is worth none.
    assert test["score"] == (test["max_score"] if test["status"] == "passed" else 0), test
    assert (test["max_score"] == 0) == (test["name"].startswith("builds ")), test
    print(test["status"], test["name"].split(" ")[0])
print("output:", " | ".join(test["output"].replace("\n", " | ") for test in results["tests"]))' \
    "$root/results/results.json"
}

@test "make gradescope: setup.sh and run_autograder at the zip's root; results.json for the unchanged file, the reference, a build failure" {
  local zip="$BATS_TEST_TMPDIR/autograder.zip" root="$BATS_TEST_TMPDIR/autograder"
  run make -s --no-print-directory -C "$LAB" gradescope EX=s1-every-message OUT="$zip"
  assert_success
  # Unpacked as Gradescope does, into source/, each file with its mode.
  mkdir -p "$root/source"
  run python3 -c '
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for info in archive.infolist():
        path = archive.extract(info, sys.argv[2])
        os.chmod(path, info.external_attr >> 16)
        if "/" not in info.filename:
            print(info.filename, oct(info.external_attr >> 16 & 0o111))
    assert not [n for n in archive.namelist() if "solution" in n or "wrong-" in n]' "$zip" "$root/source"
  assert_success
  assert_line "setup.sh 0o111"
  assert_line "run_autograder 0o111"
  make -s -C "$root/source/lab" tests/client # (setup.sh's make all, for what s1 uses)

  autograde "$LAB/step1_blocking/server.c"
  assert_line --index 0 --regexp '^score 0 of [1-9]'
  assert_line --index 1 "passed builds"
  assert_line --index 2 "failed two-messages"
  assert_line "failed memcheck"
  assert_line --regexp '^output: .*expected : reply: WORLD'

  autograde "$SOLVED"
  assert_line --index 0 "score full"
  assert_line --index 2 "passed two-messages"
  assert_line "passed memcheck"
  refute_line --regexp '^failed' 

  echo 'int main(void) { return undeclared; }' >"$BATS_TEST_TMPDIR/broken.c"
  autograde "$BATS_TEST_TMPDIR/broken.c"
  assert_line --index 0 --regexp '^score 0 of [1-9]'
  assert_line --index 1 "failed builds"
  assert_line --index 2 "failed two-messages"
  assert_line --regexp '^output: .*error: .undeclared. undeclared.* \| not run: the build failed'

  # A submission without the step's file name: a result that says so, not a crash.
  rm -rf "$root/submission" "$root/results"
  mkdir -p "$root/submission"
  cp "$SOLVED" "$root/submission/mine.c"
  AUTOGRADER_ROOT="$root" "$root/source/run_autograder"
  run python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["score"], r["output"])' \
    "$root/results/results.json"
  assert_output "0 no file named server.c in the submission: submit the exercise's file, server.c"
}
