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

CRITERIA_PASSED=0 CRITERIA_FAILED=0

# criterion ID DESCRIPTION HINT FUNCTION - run FUNCTION as a test of the server SERVER
# (the student's build); print `passed: ID - DESCRIPTION` or `failed: ...` with the hint.
# With FIRST_FAILURE=1 the criteria after a failed one are not run.
criterion() {
  local id=$1 description=$2 hint=$3 function=$4 status
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
  else
    echo "failed: $id - $description (hint: $hint)"
    CRITERIA_FAILED=$((CRITERIA_FAILED + 1))
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

# The criteria many exercises share.

# memcheck_of FUNCTION / helgrind_of FUNCTION - a criterion that runs FUNCTION (a
# scenario that ends with stop_server) under memcheck, or under helgrind. With
# NO_VALGRIND=1 (check --no-valgrind) it is skipped, said so, and counted neither way.
memcheck_of() {
  skipped_without_valgrind memcheck && return 0
  criterion memcheck "clean under valgrind's memcheck: no error, no leak, no descriptor left open after SIGTERM" \
    "run it under valgrind --leak-check=full --track-fds=yes; free what you allocate and close what you open" \
    "memcheck_$1"
}
helgrind_of() {
  skipped_without_valgrind helgrind && return 0
  criterion helgrind "clean under valgrind's helgrind: no data race, no lock misused" \
    "every variable two threads touch needs the same mutex around each access" "helgrind_$1"
}

skipped_without_valgrind() {
  [ "${NO_VALGRIND:-0}" = 1 ] || return 1
  [ "${FIRST_FAILURE:-0}" = 1 ] && [ "$CRITERIA_FAILED" -gt 0 ] && return 0
  echo "skipped: $1 - not run (--no-valgrind)"
}

# echo_works - a plain round trip, then a clean stop: the lesson did not break the echo.
echo_works() {
  start_server "$SERVER" "${SERVER_OPTIONS[@]}"
  round_trip "still an echo"
  stop_server
}

# talk MESSAGE... - tests/exercises/talk.py at the running server: whole lines, blank too.
talk() { python3 "$LAB/tests/exercises/talk.py" --port "$SERVER_PORT" "$@"; }
