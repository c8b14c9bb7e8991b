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
  side_grades
  xargs -0 -r -n 3 -P "${EXERCISES_JOBS:-4}" "$EXERCISES/prove" "${options[@]}" <"$BATS_FILE_TMPDIR/jobs"
  wait
}

# side_grades - the grades of servers made hostile or broken, for the tests of the
# graders' bounds and hints below, in the background beside the proof: most of their
# time is waiting for deadlines. SIDE/NAME.out is a grade's output, SIDE/NAME.ms its time.
side_grades() {
  export SIDE="$BATS_FILE_TMPDIR/side"
  mkdir -p "$SIDE"
  hostile_servers "$SIDE"
  cp "$LAB/step3_select/server.c" "$SIDE/unchanged-chat.c"
  cp "$LAB/step2_loop/server.c" "$SIDE/unchanged-count.c"
  sed 's/^  announce(listener);$/  (void)announce;/' "$LAB/step1_blocking/server.c" >"$SIDE/silent.c"
  echo 'int main(void) { return 3; }' >"$SIDE/gone.c"
  sed 's/^  if (echo_once(client, peer))$/  raise(SIGSEGV);\n&/' "$LAB/step1_blocking/server.c" >"$SIDE/crash.c"
  cp "$LAB/step1_blocking/server.c" "$SIDE/leak.c"
  (cd "$SIDE" && patch_to leak.c "$EXERCISES/s1-every-message/solution.patch")
  sed -i 's/^  while (echo_once(client, peer))/  printf("%s leaks %p\\n", peer, malloc(64));\n&/' "$SIDE/leak.c"
  grep -qF '(void)announce;' "$SIDE/silent.c" && grep -qF 'raise(SIGSEGV)' "$SIDE/crash.c" &&
    grep -qF 'leaks %p' "$SIDE/leak.c" ||
    fail "the broken servers were not made: step 1's server.c has changed"
  local grade id name options
  for grade in s1-whole-request:no-close s1-every-message:deaf s1-every-message:dribble \
    s1-every-message:flood s3-chat:unchanged-chat s2-byte-count:unchanged-count \
    s1-every-message:silent s1-every-message:gone s1-every-message:crash s1-every-message:leak:memcheck; do
    IFS=: read -r id name options <<<"$grade"
    (
      start=${EPOCHREALTIME/./}
      "$EXERCISES/check" ${options:+--only "$options"} "$id" "$SIDE/$name.c" >"$SIDE/$name.out" 2>&1 || true
      echo $(((${EPOCHREALTIME/./} - start) / 1000)) >"$SIDE/$name.ms"
    ) &
  done
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
  for wrong in "$results"/*.status; do well_told "${wrong%.status}"; done
}

# well_told OUTPUT - a grade's output: under 64 KiB, no error of the grader's own shell
# or clients, and its last two lines the score and the counts.
well_told() {
  local size
  size=$(stat -c %s "$1")
  [ "$size" -lt 65536 ] || fail "$1: $size bytes"
  ! grep -nE 'line [0-9]+: |unbound variable|command not found|syntax error|Traceback' "$1" ||
    fail "$1 shows the grader's own error"
  [ "$(tail -n 2 "$1" | sed -nE '1s#^score: [0-9]+/[0-9]+$#ok#p; 2s#^[0-9]+ passed, [0-9]+ failed$#ok#p' |
    paste -sd ' ')" = "ok ok" ] || fail "$1 does not end with the score and the counts: $(tail -n 2 "$1")"
}

# mapped ID - ID/requirements.md is one table `| requirement (task.md) | wrong solution |
# criterion |`, a row for each requirement of task.md. Each row names a wrong-NAME.patch
# of the folder whose first line says `fails: CRITERION` with the row's criterion; every
# wrong-*.patch of the folder has its row; every criterion of the grader (the build
# aside) is in the table at least once.
mapped() {
  local dir="$EXERCISES/$1" requirement wrong criterion cells rows=0 named
  [ -f "$dir/requirements.md" ] || fail "$1 has no requirements.md"
  [ "$(grep -cE '^\| *requirement \(task\.md\) *\| *wrong solution *\| *criterion *\| *$' "$dir/requirements.md")" = 1 ] ||
    fail "$1/requirements.md has not one table '| requirement (task.md) | wrong solution | criterion |'"
  # The rows: the table's lines after its header and its | --- | line, backticks dropped.
  awk '/^\| *requirement \(task\.md\)/ { table = 1; next }
    table && /^\|/ && !/^\|[ :-]*\|[ :-]*\|[ :-]*\| *$/ { print; next }
    table && !/^\|/ { table = 0 }' "$dir/requirements.md" | tr -d '`' >"$BATS_TEST_TMPDIR/rows"
  while IFS='|' read -r _ requirement wrong criterion cells; do
    rows=$((rows + 1))
    criterion=$(echo $criterion) # trimmed
    [ -n "$(echo $requirement)" ] && [ -n "$criterion" ] && [ -z "$(echo $cells)" ] ||
      fail "$1/requirements.md, row $rows: not three cells, each filled"
    named=$(grep -oE 'wrong-[A-Za-z0-9_.-]+\.patch' <<<"$wrong" || true)
    [ "$(wc -w <<<"$named")" = 1 ] || fail "$1/requirements.md, row $rows names no wrong-NAME.patch: $wrong"
    [ -f "$dir/$named" ] || fail "$1/requirements.md, row $rows: no $named in $1/"
    [ "$(sed -nE '1s/^fails: ([^ ]+).*/\1/p' "$dir/$named")" = "$criterion" ] ||
      fail "$1/$named begins '$(head -n 1 "$dir/$named")', not 'fails: $criterion' as its row says"
    echo "$named" >>"$BATS_TEST_TMPDIR/named"
    echo "$criterion" >>"$BATS_TEST_TMPDIR/criteria"
  done <"$BATS_TEST_TMPDIR/rows"
  [ "$rows" -ge 1 ] || fail "$1/requirements.md has no row"
  for wrong in "$dir"/wrong-*.patch; do
    [ -f "$wrong" ] || continue
    grep -qxF "$(basename "$wrong")" "$BATS_TEST_TMPDIR/named" || fail "$1/$(basename "$wrong") is in no row of requirements.md"
  done
  while read -r criterion _; do
    grep -qxF "$criterion" "$BATS_TEST_TMPDIR/criteria" || fail "$1's criterion $criterion is in no row of requirements.md"
  done < <("$EXERCISES/check" --list "$1")
}

@test "s1-every-message: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s1-every-message
}

@test "s1-greeting: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s1-greeting
}

@test "s1-requests: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s1-requests
}

@test "s1-whole-request: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s1-whole-request
}

@test "s2-byte-count: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s2-byte-count
}

@test "s2-idle-timeout: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s2-idle-timeout
}

@test "s2-lines: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s2-lines
}

@test "s3-chat: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s3-chat
}

@test "s3-max-clients: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s3-max-clients
}

@test "s3-poll: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s3-poll
}

@test "s4-max-threads: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s4-max-threads
}

@test "s4-shared-counter: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s4-shared-counter
}

@test "s4-who: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s4-who
}

@test "s5-exit-status: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s5-exit-status
}

@test "s5-prefork: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s5-prefork
}

@test "s5-sigchld: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s5-sigchld
}

@test "s6-blank-line: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s6-blank-line
}

@test "s6-handle: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s6-handle
}

@test "s6-kvstore: requirements.md maps each requirement to a wrong solution and the criterion that fails it" {
  mapped s6-kvstore
}

@test "every exercise has its test here, task text and hints, a reference and a wrong solution" {
  local dir id
  for dir in "$EXERCISES"/*/; do
    id=$(basename "$dir")
    grep -q "^@test \"$id: the grader fails" "$BATS_TEST_FILENAME" || fail "no test for $id's grader in exercises.bats"
    grep -q "^@test \"$id: requirements.md " "$BATS_TEST_FILENAME" || fail "no test for $id's requirements.md in exercises.bats"
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
    GRADER_PASS=list && criteria && GRADER_PASS=run && criteria >"$GRADER_TMP/grade"
    grep -v "^    | " "$GRADER_TMP/grade" # the evidence aside
    echo "score: $SCORE/$SCORE_MAX, $CRITERIA_PASSED passed, $CRITERIA_FAILED failed"'
  assert_line --index 0 "passed: one - passes"
  assert_line --index 1 "failed: two - fails (hint: )"
  assert_line --index 2 "passed: three - passes, worth 1"
  assert_line --index 3 "score: 3/6, 2 passed, 1 failed"
  in_grader 'criteria() { criterion one "half a point" "" true 0.5; }; criteria'
  assert_failure 2
  assert_output --partial "points '0.5', not a whole number"

  # A real grade: the unchanged file of s1-every-message, whose criteria --list gives.
  local total
  total=$("$EXERCISES/check" --list s1-every-message | awk '{ total += $2 } END { print total }')
  run "$EXERCISES/check" s1-every-message
  assert_failure 1
  assert_line --index 0 "passed: builds - compiles with the lab's flags"
  assert_line --index -2 --regexp "^score: [0-9]+/$total\$"
  assert_line --index -1 --regexp '^[0-9]+ passed, [1-9][0-9]* failed$'
}

@test "check: a valgrind criterion after a failed one is not run; --only runs one criterion; --only names a real one" {
  local first points criteria
  first=$(sed -n 's/^UNCHANGED_FAILS=//p' "$EXERCISES/s1-every-message/exercise")
  points=$("$EXERCISES/check" --list s1-every-message | awk -v id="$first" '$1 == id { print $2 }')
  criteria=$("$EXERCISES/check" --list s1-every-message | cut -d ' ' -f 1 | paste -sd ' ')
  run "$EXERCISES/check" s1-every-message
  assert_line --regexp "^failed: $first - "
  assert_line "not run: memcheck - $first failed"
  refute_output --partial "failed: memcheck"
  run "$EXERCISES/check" --only "$first" s1-every-message
  assert_failure 1
  run grep -v '^    | ' <<<"$output" # the evidence aside
  [ "${#lines[@]}" = 4 ] || fail "$output"
  assert_line --index 1 --regexp "^failed: $first - "
  assert_line --index 2 "score: 0/$points"
  # Alone, with no failure before it, the valgrind criterion runs.
  run "$EXERCISES/check" --only memcheck s1-every-message
  assert_line --index 1 --regexp '^(passed|failed): memcheck - '
  run "$EXERCISES/check" --only no-such-thing s1-every-message
  assert_failure 2
  assert_output "s1-every-message has no criterion 'no-such-thing'; its criteria: $criteria"
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
  assert_output "after SIGTERM the server wrote 'child 12 did not stop within 5 s: killed': a process it had to kill did not stop by itself"
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

@test "a failed criterion shows what was sent, what was expected and what came back, and keeps the rest" {
  # A criterion of its own, against step 1's server, which answers one message only.
  in_grader '
    SERVER=$LAB/step1_blocking/server
    two() {
      start_server "$SERVER"
      run talk "hello\n" "world\n"
      assert_line --index 2 "reply: WORLD"
      stop_server
    }
    criterion two "two messages are answered" "loop until the client hangs up" two
    [ "$CRITERIA_FAILED" = 0 ]'
  assert_failure 1
  assert_line --index 0 "failed: two - two messages are answered (hint: loop until the client hangs up)"
  assert_line --index 1 "    | line differs:"
  assert_line "    | expected : reply: WORLD"
  assert_line "    | actual   : closed"
  assert_line "    | ran: talk 'hello\n' 'world\n'"
  assert_line "    | the server closed the connection while a reply was still expected (replies before: 1)"
  local kept
  kept=$(sed -nE 's#^    \| all it saw: ([^ ]+) .*#\1#p' <<<"$output")
  grep -q '^reply: HELLO$' "$kept/ran" || fail "not kept: $kept"
}

@test "a failed criterion's hint names the cause seen: no ready line, an exit before it, a crash, valgrind's errors" {
  run sed -n 2p "$SIDE/silent.out"
  assert_output --partial "(hint: no ready line 'serving on HOST:PORT' within 10 s: print it once listening, and fflush(stdout)"
  # and the criteria after it do not wait for it again
  grep -qE "^not run: [a-z0-9-]+ - the server never printed its ready line$" "$SIDE/silent.out"
  run sed -n 2p "$SIDE/gone.out"
  assert_output --partial "(hint: the server ended before its ready line 'serving on HOST:PORT' (its stderr is in server.err))"
  run sed -n 2p "$SIDE/crash.out"
  assert_output --partial "(hint: the server was killed by SIGSEGV in the middle of the scenario"
  # valgrind's report, cut to the error and where in the student's file it is
  run cat "$SIDE/leak.out"
  assert_line --index 1 --partial "(hint: valgrind found errors in the server: what and where follow)"
  assert_line --index 2 --regexp '^    \| valgrind: [0-9,]+ bytes in [0-9,]+ blocks are definitely lost in loss record [0-9,]+ of [0-9,]+$'
  assert_line --index 3 --regexp '^    \| valgrind:   by 0x[0-9A-F]+: handle_client \(leak\.c:[0-9]+\)$'
}

# hostile_servers DIR - step 1's server.c made hostile, each the way a submission can be:
#   no-close   s1-whole-request's answer, but the client is never closed: no end of stream
#   deaf       s1-every-message's answer, but SIGTERM is ignored
#   dribble    sends one byte every 0.9 s, for 15 minutes, and reads nothing
#   flood      logs 25000 lines of 200 bytes per client (5 MB) and sends 10 MB, no newline
hostile_servers() {
  local dir=$1
  cp "$LAB/step1_blocking/server.c" "$dir/no-close.c"
  (cd "$dir" && patch_to no-close.c "$EXERCISES/s1-whole-request/solution.patch")
  sed -i '/close(client); \/\* the next client waits/d' "$dir/no-close.c"
  cp "$LAB/step1_blocking/server.c" "$dir/deaf.c"
  (cd "$dir" && patch_to deaf.c "$EXERCISES/s1-every-message/solution.patch")
  sed -i 's/sigaction(SIGTERM, &action, NULL) < 0/signal(SIGTERM, SIG_IGN) == SIG_ERR/' "$dir/deaf.c"
  sed 's/^  if (echo_once(client, peer))$/  for (int i = 0; i < 1000 \&\& send(client, "x", 1, MSG_NOSIGNAL) == 1; i++)\n    poll(NULL, 0, 900);\n&/' \
    "$LAB/step1_blocking/server.c" >"$dir/dribble.c"
  sed 's/^  if (echo_once(client, peer))$/  static char flood[1 << 16];\n  memset(flood, 0x41, sizeof flood);\n  for (int i = 0; i < 25000; i++)\n    printf("%s wrote: %.*s\\n", peer, 200, flood);\n  for (int i = 0; i < 160 \&\& send(client, flood, sizeof flood, MSG_NOSIGNAL) > 0; i++)\n    continue;\n&/' \
    "$LAB/step1_blocking/server.c" >"$dir/flood.c"
  grep -qF 'close(client); /* the next client waits' "$LAB/step1_blocking/server.c" &&
    grep -qF 'signal(SIGTERM, SIG_IGN)' "$dir/deaf.c" && grep -qF 'poll(NULL, 0, 900)' "$dir/dribble.c" &&
    grep -qF 'i < 25000' "$dir/flood.c" || fail "the hostile servers were not made: step 1's server.c has changed"
}

@test "a grade ends within 30 s and prints under 64 KiB, with no error of its own, whatever the server does" {
  local name
  for name in no-close deaf dribble flood unchanged-chat unchanged-count silent gone crash leak; do
    echo "# $name: $(cat "$SIDE/$name.ms") ms, $(stat -c %s "$SIDE/$name.out") bytes" >&3
    [ "$(cat "$SIDE/$name.ms")" -le 30000 ] || fail "$name: graded in $(cat "$SIDE/$name.ms") ms"
    well_told "$SIDE/$name.out"
    grep -q '^failed: ' "$SIDE/$name.out" || fail "$name passed: $(cat "$SIDE/$name.out")"
  done
  grep -qF "(hint: the server was still running 5 s after SIGTERM: killed)" "$SIDE/deaf.out"
}

# descendants PID - the processes PID started, and theirs, all the way down.
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1"); do
    echo "$child"
    descendants "$child"
  done
}

# a_server_under PID - a process named server runs among PID's descendants.
a_server_under() {
  local pid
  for pid in $(descendants "$1"); do
    [ "$(ps -o comm= -p "$pid")" != server ] || return 0
  done
  return 1
}

@test "a grade stopped by SIGTERM or Ctrl-C ends the server it started, and says nothing more" {
  local signal check started pid
  for signal in TERM INT; do
    # (env: a command started with & would ignore SIGINT, as a terminal's Ctrl-C does not)
    env --default-signal=INT "$EXERCISES/check" s1-every-message "$SIDE/deaf.c" \
      >"$BATS_TEST_TMPDIR/$signal.out" 2>&1 3>&- &
    check=$!
    wait_until 10 a_server_under "$check"
    started=$(descendants "$check")
    kill -"$signal" "$check"
    wait "$check" || true
    for pid in $started; do
      ! kill -0 "$pid" 2>/dev/null || wait_until 5 eval "! kill -0 $pid 2>/dev/null" ||
        fail "SIG$signal: $(ps -o args= -p "$pid") still runs"
    done
    run cat "$BATS_TEST_TMPDIR/$signal.out"
    refute_output --partial "score:"
  done
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
