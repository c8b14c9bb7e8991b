# tests/exercises/lib.bash - what every exercise's grader shares.
#
# An exercise is a folder tests/exercises/ID/ with
#   exercise          sourced by tests/exercises/check: STEP, FILE (what the student edits,
#                     from the repository's root), TASK (one line), UNCHANGED_FAILS (the
#                     criterion the unchanged FILE fails), and criteria(): one `criterion`
#                     call per thing the grader checks, in order
#   task.md           the task for the student, with hints
#   solution.patch    the reference solution, against FILE (git apply, from the root)
#   wrong-NAME.patch  a deliberately wrong solution; its first line, above the diff,
#                     says `fails: CRITERION`, the criterion that must catch it
# Step 6's exercises start from a file of their own (FILE is ID/starter.c) and keep the
# solved files too (solution.c, wrong-NAME.c), from which tests/exercises/regenerate
# writes the patches again.
#
# A criterion runs in a subshell of its own, as a bats test does: with `set -e`,
# tests/helpers.bash's functions (start_server, stop_server, wait_until, round_trip, ...)
# and bats-assert's. The grader is a black box: it builds the student's file and talks to
# the server through sockets and /proc, never reading the source.
#
# What an exercise's criteria() may use (each is described where it is defined below):
#   criterion ID DESCRIPTION HINT FUNCTION [POINTS]   a criterion, worth POINTS (default 1);
#                     check ends with `score: X/Y` and `N passed, M failed`
#   memcheck_of NAME [POINTS], helgrind_of NAME [POINTS]
#                     memcheck_NAME or helgrind_NAME under valgrind; run only when every
#                     criterion before passed, else `not run: memcheck - CRITERION failed`
#   stop_server       stricter than the suites': the server was still running, ends on
#                     SIGTERM by itself with status 0 within 5 s, and writes no `killed`
#   talk [--exact] MESSAGE...   talk.py at the server; --exact shows a reply's bytes

# helpers.bash is written for bats: give it what it takes from bats.
BATS_TEST_DIRNAME="$LAB/tests"
bats_require_minimum_version() { :; }
# bats's `run`, as much of it as the helpers use: status, output and lines of COMMAND.
run() {
  output=$("$@" 2>&1) && status=0 || status=$?
  mapfile -t lines <<<"$output"
}
# shellcheck source=tests/helpers.bash
source "$LAB/tests/helpers.bash"

# What check counts. GRADER_PASS is `list` while check reads the criteria without running
# them (to learn their points and names), `run` while it grades.
CRITERIA_PASSED=0 CRITERIA_FAILED=0 FIRST_FAILED="" SCORE=0 SCORE_MAX=0
GRADER_PASS=run CRITERIA_LISTED=()

# criterion ID DESCRIPTION HINT FUNCTION [POINTS] - run FUNCTION as a test of the server
# SERVER (the student's build), worth POINTS (a whole number, default 1); print
# `passed: ID - DESCRIPTION` or `failed: ID - DESCRIPTION (hint: HINT)`.
# With FIRST_FAILURE=1 the criteria after a failed one are not run; with ONLY=ID (check
# --only ID) that criterion alone runs.
criterion() {
  local id=$1 description=$2 hint=$3 function=$4 points=${5:-1} status
  if [[ ! $points =~ ^[0-9]+$ ]]; then
    echo "grader error: criterion $id has points '$points', not a whole number" >&2
    exit 2
  fi
  if [ "$GRADER_PASS" = list ]; then
    CRITERIA_LISTED+=("$id")
    [ -n "${ONLY:-}" ] && [ "$id" != "$ONLY" ] || SCORE_MAX=$((SCORE_MAX + points))
    return 0
  fi
  [ -z "${ONLY:-}" ] || [ "$id" = "$ONLY" ] || return 0
  if [ "${FIRST_FAILURE:-0}" = 1 ] && [ "$CRITERIA_FAILED" -gt 0 ]; then
    return 0
  fi
  BATS_TEST_TMPDIR="$GRADER_TMP/$id"
  mkdir -p "$BATS_TEST_TMPDIR"
  (
    trap teardown EXIT
    set -e
    "$function"
  ) >"$BATS_TEST_TMPDIR/criterion.log" 2>&1 </dev/null 3>&-
  status=$?
  if [ "$status" -eq 0 ]; then
    echo "passed: $id - $description"
    CRITERIA_PASSED=$((CRITERIA_PASSED + 1))
    SCORE=$((SCORE + points))
  else
    echo "failed: $id - $description (hint: $hint)"
    CRITERIA_FAILED=$((CRITERIA_FAILED + 1))
    FIRST_FAILED=${FIRST_FAILED:-$id}
    if [ "${VERBOSE:-0}" = 1 ]; then sed 's/^/    | /' "$BATS_TEST_TMPDIR/criterion.log"; fi
  fi
}

# under_valgrind TOOL FUNCTION - FUNCTION with every server under valgrind's TOOL
# (memcheck or helgrind): stop_server then fails on any report, leak or open descriptor.
under_valgrind() {
  VALGRIND=1 DEADLINE_SCALE=10
  [ "$1" = memcheck ] || VALGRIND_TOOL=$1
  "$2"
}

# stop_server [SIGNAL] - the graders' stop is stricter than the suites': it passes only
# when the server itself ended its work on the signal. It was still running when the
# signal came (a server that exits by itself has not waited for the stop); it exited 0
# within STOP_SECONDS (15 under valgrind), not killed; and nothing it wrote after the
# signal says `killed` (a pool that kills its workers after a grace period has not
# stopped them). With VALGRIND=1, valgrind's report must be clean too.
STOP_SECONDS=5
stop_server() {
  local signal=${1:-TERM} seconds=$STOP_SECONDS out_size err_size said
  [ -n "${SERVER_PID:-}" ] || return 0
  [ "${VALGRIND:-0}" != 1 ] || seconds=15
  if server_gone; then
    wait_for_exit 1
    echo "the server had already ended (exit status $SERVER_STATUS) before SIG$signal came: it must serve until it is stopped" >&2
    return 1
  fi
  out_size=$(stat -c %s "$SERVER_LOG") err_size=$(stat -c %s "$SERVER_ERR")
  kill -"$signal" "$SERVER_PID"
  if ! DEADLINE_SCALE=1 wait_until "$seconds" server_gone 2>/dev/null; then
    pkill -KILL -P "$SERVER_PID" 2>/dev/null || true
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    echo "the server was still running $seconds s after SIG$signal: killed" >&2
    return 1
  fi
  wait_for_exit 1
  if [ "$SERVER_STATUS" -ne 0 ]; then
    echo "the server exited with status $SERVER_STATUS after SIG$signal, not 0" >&2
    report_valgrind >&2
    return 1
  fi
  said=$( (tail -c +$((out_size + 1)) "$SERVER_LOG" && tail -c +$((err_size + 1)) "$SERVER_ERR") |
    grep -m 3 killed || true)
  if [ -n "$said" ]; then
    printf 'after SIG%s the server wrote:\n%s\n(a process it had to kill did not stop by itself)\n' "$signal" "$said" >&2
    return 1
  fi
  if [ "${VALGRIND:-0}" = 1 ] && ! valgrind_clean; then
    report_valgrind >&2
    return 1
  fi
}

# The criteria many exercises share.

# memcheck_of NAME [POINTS] / helgrind_of NAME [POINTS] - a criterion that runs the
# function memcheck_NAME (or helgrind_NAME: scenarios that end with stop_server, under
# under_valgrind) and checks what valgrind saw. It runs only when every criterion before it
# passed: a scenario that already failed would only fail again under valgrind, for
# another reason. Otherwise it prints `not run: memcheck - CRITERION failed` and counts
# as failed, with no points. With NO_VALGRIND=1 (check --no-valgrind) it is skipped, said
# so, and counted neither way.
memcheck_of() {
  valgrind_criterion memcheck "clean under valgrind's memcheck: no error, no leak, no descriptor left open after SIGTERM" \
    "run it under valgrind --leak-check=full --track-fds=yes; free what you allocate and close what you open" \
    "memcheck_$1" "${2:-1}"
}
helgrind_of() {
  valgrind_criterion helgrind "clean under valgrind's helgrind: no data race, no lock misused" \
    "every variable two threads touch needs the same mutex around each access" "helgrind_$1" "${2:-1}"
}

valgrind_criterion() {
  local tool=$1
  if [ "$GRADER_PASS" = run ]; then
    [ -z "${ONLY:-}" ] || [ "$ONLY" = "$tool" ] || return 0
    [ "${FIRST_FAILURE:-0}" = 1 ] && [ "$CRITERIA_FAILED" -gt 0 ] && return 0
    if [ "${NO_VALGRIND:-0}" = 1 ]; then
      echo "skipped: $tool - not run (--no-valgrind)"
      return 0
    fi
    if [ "$CRITERIA_FAILED" -gt 0 ]; then
      echo "not run: $tool - $FIRST_FAILED failed"
      CRITERIA_FAILED=$((CRITERIA_FAILED + 1))
      return 0
    fi
  elif [ "${NO_VALGRIND:-0}" = 1 ]; then
    CRITERIA_LISTED+=("$tool")
    return 0
  fi
  criterion "$@"
}

# echo_works - a plain round trip, then a clean stop: the lesson did not break the echo.
echo_works() {
  start_server "$SERVER" "${SERVER_OPTIONS[@]}"
  round_trip "still an echo"
  stop_server
}

# talk MESSAGE... - tests/exercises/talk.py at the running server: whole lines, blank too.
talk() { python3 "$LAB/tests/exercises/talk.py" --port "$SERVER_PORT" "$@"; }
