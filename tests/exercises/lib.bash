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
#   requirements.md   one table: each requirement of task.md, the wrong solution that
#                     breaks it alone, the criterion that fails it
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
#   misbehave MODE ...          tests/tools/misbehave.py, giving up after 10 s
#   cause TEXT        a cause seen for certain: it becomes the failure's hint
# A failed criterion prints its evidence (the assertion, the last command run and what
# it printed, what that means), bounded; each criterion has a deadline, and so has the
# grade (GRADE_SECONDS, CRITERION_SECONDS): see tests/exercises/README.md.

# helpers.bash is written for bats: give it what it takes from bats.
BATS_TEST_DIRNAME="$LAB/tests"
bats_require_minimum_version() { :; }
# bats's `run`, as much of it as the helpers use: status, output and lines of COMMAND.
# The grader keeps the last command and what it printed, as evidence (file `ran`).
run() {
  echo "ran: $(shown "$@") (it had not ended)" >"$BATS_TEST_TMPDIR/ran"
  output=$("$@" 2>&1) && status=0 || status=$?
  mapfile -t lines <<<"$output"
  printf 'ran: %s\n%s\n' "$(shown "$@")" "$output" >"$BATS_TEST_TMPDIR/ran"
}

# shown WORD... - the words as a reader would type them: quoted when they hold anything
# but letters, digits and _./:=@%+,-; the lab's own paths shortened.
shown() {
  local word words=()
  for word in "$@"; do
    word=${word#"$LAB/"}
    [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]] || word="'$word'"
    words+=("$word")
  done
  echo "${words[*]}"
}
# shellcheck source=tests/helpers.bash
source "$LAB/tests/helpers.bash"

# What check counts. GRADER_PASS is `list` while check reads the criteria without running
# them (to learn their points and names), `run` while it grades.
CRITERIA_PASSED=0 CRITERIA_FAILED=0 FIRST_FAILED="" SCORE=0 SCORE_MAX=0
GRADER_PASS=run CRITERIA_LISTED=() CRITERIA_POINTS=()

# criterion ID DESCRIPTION HINT FUNCTION [POINTS] - run FUNCTION as a test of the server
# SERVER (the student's build), worth POINTS (a whole number, default 1); print
# `passed: ID - DESCRIPTION`, or `failed: ID - DESCRIPTION (hint: HINT)` and its evidence
# (see evidence below). With FIRST_FAILURE=1 the criteria after a failed one are not run;
# with ONLY=ID (check --only ID) that criterion alone runs.
criterion() {
  local id=$1 description=$2 hint=$3 function=$4 points=${5:-1} status seconds
  if [[ ! $points =~ ^[0-9]+$ ]]; then
    echo "grader error: criterion $id has points '$points', not a whole number" >&2
    exit 2
  fi
  if [ "$GRADER_PASS" = list ]; then
    CRITERIA_LISTED+=("$id")
    CRITERIA_POINTS+=("$points")
    [ -n "${ONLY:-}" ] && [ "$id" != "$ONLY" ] || SCORE_MAX=$((SCORE_MAX + points))
    return 0
  fi
  [ -z "${ONLY:-}" ] || [ "$id" = "$ONLY" ] || return 0
  if [ "${FIRST_FAILURE:-0}" = 1 ] && [ "$CRITERIA_FAILED" -gt 0 ]; then
    return 0
  fi
  # What is left of the grade's time, less the 5 s that stopping a criterion and telling
  # what it saw may take on a busy machine.
  seconds=$(((GRADE_START_US - ${EPOCHREALTIME/./}) / 1000000 + GRADE_SECONDS - 5))
  [ "$seconds" -le "$CRITERION_SECONDS" ] || seconds=$CRITERION_SECONDS
  if [ "$seconds" -lt 1 ]; then
    not_run "$id" "the grade's $GRADE_SECONDS s were used up"
    return 0
  fi
  # A server that never printed its ready line would make every criterion wait for it.
  if [ -e "$GRADER_TMP/never-ready" ]; then
    not_run "$id" "the server never printed its ready line"
    return 0
  fi
  BATS_TEST_TMPDIR="$GRADER_TMP/$id"
  mkdir -p "$BATS_TEST_TMPDIR"
  : >"$BATS_TEST_TMPDIR/cause"
  # Not in an && or || list: bash would run the criterion with `set -e` off.
  run_within "$seconds" "$function"
  status=$?
  if [ "$status" -eq 0 ]; then
    echo "passed: $id - $description"
    CRITERIA_PASSED=$((CRITERIA_PASSED + 1))
    SCORE=$((SCORE + points))
  else
    # A cause seen for certain (no ready line, a crash, a stop that failed) says more
    # than the task's hint.
    [ ! -s "$BATS_TEST_TMPDIR/cause" ] || hint=$(head -n 1 "$BATS_TEST_TMPDIR/cause")
    echo "failed: $id - $description (hint: $hint)"
    CRITERIA_FAILED=$((CRITERIA_FAILED + 1))
    FIRST_FAILED=${FIRST_FAILED:-$id}
    evidence "$BATS_TEST_TMPDIR"
  fi
}

# not_run ID WHY - a criterion not run, for WHY: it counts as failed, with no points.
not_run() {
  echo "not run: $1 - $2"
  CRITERIA_FAILED=$((CRITERIA_FAILED + 1))
  FIRST_FAILED=${FIRST_FAILED:-$1}
}

# The bounds of a grade, whatever the server does: GRADE_SECONDS for all of it (the
# build included; a criterion that would start after that is not run, and fails), and
# CRITERION_SECONDS for each criterion, after which it is stopped and fails with what it
# had seen. STOP_SECONDS bounds stop_server's wait (15 s under valgrind).
GRADE_SECONDS=${GRADE_SECONDS:-30} CRITERION_SECONDS=${CRITERION_SECONDS:-20} STOP_SECONDS=5
GRADE_START_US=${GRADE_START_US:-${EPOCHREALTIME/./}} # (check sets it when it starts)

# run_within SECONDS FUNCTION - run FUNCTION as a criterion: in a subshell with `set -e`,
# as bats runs a test, its output in criterion.log. The subshell is a process group of
# its own (set -m), so that at the deadline it and everything it started (the server,
# clients) are ended together. Returns FUNCTION's status, or 124 at the deadline.
CRITERION_PID=""
run_within() {
  local status
  set -m
  (
    set +u # as bats runs a test: bats-assert reads lines that may not be there
    trap grader_teardown EXIT
    set -e
    "$2"
  ) >"$BATS_TEST_TMPDIR/criterion.log" 2>&1 </dev/null 3>&- &
  CRITERION_PID=$!
  set +m
  if DEADLINE_SCALE=1 wait_until "$1" criterion_ended 2>/dev/null; then
    wait "$CRITERION_PID" && status=0 || status=$?
  else
    # SIGTERM to the subshell first: its teardown stops the server and says what it saw.
    kill -TERM "$CRITERION_PID" 2>/dev/null
    DEADLINE_SCALE=1 wait_until 1 criterion_ended 2>/dev/null || true
    end_criterion
    echo "the criterion was stopped after $1 s: what it waited for never came" >>"$BATS_TEST_TMPDIR/cause"
    status=124
  fi
  CRITERION_PID=""
  return "$status"
}

# criterion_ended - the criterion's subshell has ended (its zombie waits for `wait`).
criterion_ended() {
  local stat
  read -r stat <"/proc/$CRITERION_PID/stat" 2>/dev/null || return 0
  stat=${stat##*) }
  [ "${stat%% *}" = Z ]
}

# end_criterion - kill whatever is left of the running criterion's process group.
end_criterion() {
  [ -n "$CRITERION_PID" ] || return 0
  kill -KILL -- "-$CRITERION_PID" 2>/dev/null
  wait "$CRITERION_PID" 2>/dev/null
  CRITERION_PID=""
}

# grader_teardown - at a criterion's end: a server that had ended by itself in the
# middle of the scenario is a cause worth naming; then the suites' teardown.
grader_teardown() {
  local status=0
  if [ -n "${SERVER_PID:-}" ] && server_gone; then
    wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    if [ "$status" -gt 128 ]; then
      cause "the server was killed by SIG$(kill -l "$status") in the middle of the scenario (a crash: run it under gdb or valgrind)"
    else
      cause "the server exited (status $status) in the middle of the scenario, while clients still expected it"
    fi
  fi
  teardown
}

# cause TEXT - what a criterion saw for certain; the first one is the failure's hint.
cause() { echo "$*" >>"$BATS_TEST_TMPDIR/cause"; }

# evidence DIR - what a failed criterion saw, in a few lines of at most 200 characters,
# each `    | `: the cause, the assertion's expected and actual, the last command run
# and what it printed; then where all of it is kept (the grader's folder stays when a
# criterion failed). --verbose shows the whole of criterion.log. The grader's own
# errors are left out, and a client's traceback becomes the words it stands for.
EVIDENCE_LINES=20
evidence() {
  local dir=$1
  if [ "${VERBOSE:-0}" = 1 ]; then
    cut -c 1-200 "$dir/criterion.log" | sed 's/^/    | /'
  else
    {
      tail -n +2 "$dir/cause" 2>/dev/null
      in_words <"$dir/criterion.log" | grep -vxF -f "$dir/cause" 2>/dev/null | head -n 12
      [ ! -s "$dir/ran" ] || what_came_back "$dir/ran" "$dir/criterion.log"
    } | sed "s|$dir/||g; s|$GRADER_TMP/||g; s|$LAB/||g" | cut -c 1-200 | head -n "$EVIDENCE_LINES" | sed 's/^/    | /'
  fi
  echo "    | all it saw: $dir/ (criterion.log, server.out, server.err)"
  KEEP_GRADER_TMP=1
}

# in_words - a criterion's log without the shell's own error lines, its clients'
# tracebacks said in words, a log that a helper dumped whole (a server's output or
# stderr) cut to its last lines, and valgrind's reports cut to what each error is and the
# first place in the student's file (SRC) it names.
in_words() {
  awk -v src="(${SRC##*/}:" '
    BEGIN { placed = 1 } # no frame before the first error
    /^==[0-9]+== / {
      text = $0
      sub(/^==[0-9]+== /, "", text)
      # A descriptor valgrind lists as inherited is not one the program opened.
      if (held != "" && text !~ /<inherited from parent>/) { print "valgrind: " held; placed = 0 }
      held = ""
      if (text ~ /^Open file descriptor [0-9]+:/) { held = text; next }
      if (text ~ /^ +(at|by) /) {
        if (!placed && index(text, src)) { sub(/^ +/, "", text); print "valgrind:   " text; placed = 1 }
        next
      }
      if (text ~ /Invalid|uninitialised|are definitely lost|are indirectly lost|data race|conflicts with|unlocked|lock order|holds [0-9]+ lock|pthread_|Mismatched|free\(\)|Syscall param|overlap/) {
        print "valgrind: " text
        placed = 0
      }
      next
    }
    /^--- .*valgrind\.[0-9]+$/ { next }
    # wait_for_log: "gave up after N s waiting for: grep -qE -- PATTERN FILE"
    /^gave up after [0-9]+ s waiting for: grep -qE -- / {
      pattern = $0
      sub(/^gave up after [0-9]+ s waiting for: grep -qE -- /, "", pattern)
      file = pattern
      sub(/ [^ ]+$/, "", pattern)
      sub(/.* /, "", file)
      print "waited " $4 " s for a line matching " pattern " in " file
      next
    }
    /^(\/[^:]*|bash|environment): line [0-9]+: / { next }
    /^(--)?$|^# failed while testing: / { next }
    /^-- .* --$/ { print substr($0, 4, length($0) - 6) ":"; next }
    # A traceback, as it is or indented in an assertion: its frames are indented more.
    /^ *Traceback \(most recent call last\):$/ { indent = $0; sub(/T.*/, "", indent); traceback = 1; next }
    traceback && index($0, indent " ") == 1 { next }
    traceback {
      traceback = 0
      if ($0 ~ /ConnectionRefused/) print indent "the connection was refused: no server was listening (had it ended?)"
      else if ($0 ~ /ConnectionReset/) print indent "the server reset the connection"
      else if ($0 ~ /BrokenPipe/) print indent "the server closed the connection while the client was still sending"
      else if ($0 ~ /[Tt]imeout/) print indent "the server did not answer in time"
      else print indent "a client failed: " substr($0, length(indent) + 1)
      next
    }
    dump { tail[++n % 4] = $0; next }
    /^server log so far:$|; its stderr:$/ { print $0 " (its last lines)"; dump = 1; next }
    { print }
    END { for (i = n - 3; i <= n; i++) if (i > 0) print "  " tail[i % 4] }'
}

# what_came_back RAN LOG - the last command run, what it printed (unless the assertion in
# LOG showed it already), and what that means when it was talk.py: a connection closed,
# or a reply that never came.
what_came_back() {
  local replies
  sed -n 1p "$1"
  grep -qE '^output( \([0-9]+ lines\))? *:' "$2" || tail -n +2 "$1" | head -n 8 | sed 's/^/  /'
  replies=$(grep -c '^reply: ' "$1")
  if grep -q '^closed$' "$1"; then
    if [ "$replies" = 0 ]; then
      echo "the server closed the connection without a reply"
    else
      echo "the server closed the connection while a reply was still expected (replies before: $replies)"
    fi
  elif grep -q '^no reply within' "$1"; then
    echo "the server sent nothing back in time"
  elif grep -q 'no end of stream within' "$1"; then
    echo "the server never closed the connection: is the client's socket closed once served?"
  fi
}

# start_server BIN [ARGS...] - the suites' start_server (helpers.bash), which fails when
# no ready line comes; the grader names that cause.
eval "helpers_$(declare -f start_server)"
start_server() {
  helpers_start_server "$@" && return 0
  if server_gone; then
    cause "the server ended before its ready line 'serving on HOST:PORT' (its stderr is in server.err)"
  else
    cause "no ready line 'serving on HOST:PORT' within 10 s: print it once listening, and fflush(stdout) (a file, not a terminal, is line-buffered only by hand)"
    : >"$GRADER_TMP/never-ready"
  fi
  return 1
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
stop_server() {
  local signal=${1:-TERM} seconds=$STOP_SECONDS out_size err_size said
  [ -n "${SERVER_PID:-}" ] || return 0
  [ "${VALGRIND:-0}" != 1 ] || seconds=15
  if server_gone; then
    wait_for_exit 1
    stop_failed "the server had already ended (exit status $SERVER_STATUS) before SIG$signal came: it must serve until it is stopped"
    return 1
  fi
  out_size=$(stat -c %s "$SERVER_LOG") err_size=$(stat -c %s "$SERVER_ERR")
  kill -"$signal" "$SERVER_PID"
  if ! DEADLINE_SCALE=1 wait_until "$seconds" server_gone 2>/dev/null; then
    pkill -KILL -P "$SERVER_PID" 2>/dev/null || true
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    stop_failed "the server was still running $seconds s after SIG$signal: killed"
    return 1
  fi
  wait_for_exit 1
  if [ "$SERVER_STATUS" -ne 0 ]; then
    if [ "${VALGRIND:-0}" = 1 ] && [ "$SERVER_STATUS" = "$VALGRIND_STATUS" ]; then
      stop_failed "valgrind found errors in the server: what and where follow"
    else
      stop_failed "the server exited with status $SERVER_STATUS after SIG$signal, not 0"
    fi
    report_valgrind >&2
    return 1
  fi
  said=$( (tail -c +$((out_size + 1)) "$SERVER_LOG" && tail -c +$((err_size + 1)) "$SERVER_ERR") |
    grep -m 1 killed || true)
  if [ -n "$said" ]; then
    stop_failed "after SIG$signal the server wrote '$said': a process it had to kill did not stop by itself"
    return 1
  fi
  if [ "${VALGRIND:-0}" = 1 ] && ! valgrind_clean; then
    stop_failed "valgrind found a leak or a descriptor left open: what and where follow"
    report_valgrind >&2
    return 1
  fi
}

# The criteria many exercises share.

stop_failed() {
  echo "$*" >&2
  cause "$*"
}

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
      not_run "$tool" "$FIRST_FAILED failed"
      return 0
    fi
  elif [ "${NO_VALGRIND:-0}" = 1 ]; then
    CRITERIA_LISTED+=("$tool")
    CRITERIA_POINTS+=("${5:-1}")
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

# misbehave MODE ARGS... - helpers.bash's misbehaving clients, which give up reading
# replies after 10 s, under valgrind too, so that they say what they saw before the
# criterion's deadline.
misbehave() { python3 "$MISBEHAVE" --port "$SERVER_PORT" --within 10 "$@"; }

# talk MESSAGE... - tests/exercises/talk.py at the running server: whole lines, blank too.
talk() { python3 "$LAB/tests/exercises/talk.py" --port "$SERVER_PORT" "$@"; }

# values_refused OPTION VALUE... - the server refuses each VALUE of OPTION with the usage
# and exit status 2. It is given 2 s: one that takes the value serves until `timeout`
# ends it.
values_refused() {
  local option=$1 value
  shift
  for value in "$@"; do
    run timeout 2 "$SERVER" --port 0 "$option" "$value"
    [ "$status" = 2 ] || fail "$option '$value': exit status $status, not 2 (the usage)"
  done
}

# help_names OPTION - --help exits 0 and names OPTION (the usage names every option).
help_names() {
  run timeout 2 "$SERVER" --help
  [ "$status" = 0 ] || fail "--help: exit status $status, not 0"
  [[ $output == *"$1"* ]] || fail "--help does not name $1: $output"
}

# Clients in the background for scenarios where several come, wait and leave (each
# leaves with `let_go NAME`, and resets then if it was given --reset):
# member NAME [CLIENT-OPTIONS...] - a chat client that sends its NAME and has had it back
# upper-cased: it is being served.
member() {
  in_background "$1" "$CLIENT" --port "$SERVER_PORT" "${@:2}" chat
  say "$1" "$1"
  wait_until 5 output_of "$1" "recv from server: ${1^^}"
}

# waiter NAME - a chat client that must wait (a server at its limit): it sends its NAME
# and a second later says it got no reply (the client's own --reply-timeout); it was
# neither answered nor refused.
waiter() {
  in_background "$1" "$CLIENT" --port "$SERVER_PORT" --reply-timeout 1 chat
  say "$1" "$1"
  wait_until 10 output_of "$1" "recv from server|no reply within|closed"
  output_of "$1" "no reply within" || fail "$1 did not wait: $(cat "$BATS_TEST_TMPDIR/$1.out")"
}

# served NAME - the waiter NAME has had its reply.
served() {
  wait_until 5 output_of "$1" "recv from server: ${1^^}" ||
    fail "$1 was not served once a place was free: $(cat "$BATS_TEST_TMPDIR/$1.out")"
}
