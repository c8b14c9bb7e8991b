# tests/exercises/sandbox.bash - where a student's code runs while it is graded.
#
# A student's file is code from someone else: the grader builds it and runs it, and both
# the compiler (an `#include "/some/file"` prints that file) and the server could do
# anything the grader may do. So `check` (sourced here) grades inside a sandbox:
#
# - the whole grade runs in namespaces of its own, made by bubblewrap (bwrap): a network
#   of its own with loopback only (the grader's clients share it; nothing outside hears
#   anything), processes of its own (when the grade ends, every process in it ends), a
#   private /tmp, and of the files only the system, the lab's tests and step 6's library,
#   read-only, the reference and wrong solutions hidden (opening one is refused), and the
#   student's own file;
# - the student's build and server run as a user of their own (a numeric user that no
#   one else has, without capabilities, with an environment of its own, in a session and
#   process group of their own, so no signal of theirs reaches the grader), with limits
#   on processes, memory (each process's), CPU time, file size (their output) and, for
#   the build, wall-clock time.
#
# What cannot be had is said in one line on standard error, and the rest still holds:
# without bwrap (or where namespaces are refused) the student's code runs as its own user
# with the limits, and what it left is removed at the end; a grader that is not root
# cannot change user, and runs the student's code as itself. `check --unsandboxed` runs
# it with none of this, and says so. SANDBOX_NO_NAMESPACES=1 asks for the fallback where
# bwrap would work (tests/teachers.bats shows that it holds too).

# The student's user: a number of its own for each grade (the outermost grader's pid),
# so that a class graded in parallel is one user per student.
SANDBOX_UID=${SANDBOX_UID:-$((2100000000 + $$))}
# Limits for the student's processes (prlimit): a memory or CPU hog, a flood of output
# each stops at its limit, and a fork bomb at the process limit, which counts every
# process of a user, so it is set only where the student has a user of its own. They are
# wide enough for a server under valgrind with a few hundred clients.
SANDBOX_LIMITS=(--as=2147483648 --cpu=120 --fsize=16777216 --core=0)
SANDBOX_PROCESSES=256
SANDBOX_BUILD_SECONDS=60

# sandbox_mode - how the student's code runs here: namespaces (bwrap, as root),
# namespaces-same-user (bwrap, not root), user (no bwrap, as root), limits (neither), or
# none (--unsandboxed).
sandbox_mode() {
  if [ "${UNSANDBOXED:-0}" = 1 ]; then
    echo none
  elif [ "${SANDBOX_NO_NAMESPACES:-0}" != 1 ] && command -v bwrap >/dev/null &&
    bwrap --unshare-net --unshare-pid --ro-bind / / true 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then echo namespaces; else echo namespaces-same-user; fi
  elif [ "$(id -u)" = 0 ]; then
    echo user
  else
    echo limits
  fi
}

# sandbox_enter SRC OPTION... - run this check again inside the sandbox, and exit with
# its status, unless it is already there; OPTION... are check's options, SRC the
# student's file (absolute). First say, in one line, which protections cannot be had.
sandbox_enter() {
  local src=$1 mode
  shift
  if [ -n "${SANDBOX_MODE:-}" ]; then # inside already: the users' files are read
    exec 8<&- 9<&-
    return 0
  fi
  mode=$(sandbox_mode)
  export SANDBOX_MODE=$mode SANDBOX_UID
  case $mode in
  none) echo "sandbox: none (--unsandboxed): the student's code runs as you, with your files and network" >&2 ;;
  user) echo "sandbox: no namespaces (bwrap missing or refused): the student's code runs as user $SANDBOX_UID with limits; it shares this machine's network, /tmp and world-readable files" >&2 ;;
  limits) echo "sandbox: not root and no namespaces: the student's code runs as you, with limits only" >&2 ;;
  namespaces-same-user) echo "sandbox: not root: namespaces and limits, but the student's code runs as you" >&2 ;;
  esac
  case $mode in
  namespaces | namespaces-same-user)
    sandbox_binds "$src"
    # The machine's users are none of the student's business (the compiler prints a file
    # it includes): the sandbox's /etc/passwd and /etc/group name root and the student.
    exec 8< <(printf 'root:x:0:0:root:/root:/bin/sh\nstudent:x:%s:%s::/nonexistent:/bin/false\n' \
      "$SANDBOX_UID" "$SANDBOX_UID")
    exec 9< <(printf 'root:x:0:\nstudent:x:%s:\n' "$SANDBOX_UID")
    # The grader's folder is one of this machine's, bound in: a failed grade's evidence
    # stays there, at the path the grade prints. The student's folder is in the
    # sandbox's /tmp, and goes with it.
    local status=0 kept
    kept=$(mktemp -d "${TMPDIR:-/tmp}/exercise-$ID.XXXXXX")
    bwrap "${BWRAP_OPTIONS[@]}" "${BWRAP_BINDS[@]}" --bind "$kept" "$kept" \
      --ro-bind-data 8 /etc/passwd --ro-bind-data 9 /etc/group \
      env TMPDIR="$kept" PATH="$(sandbox_path)" "$0" "$@" "$ID" "$src" || status=$?
    rmdir "$kept" 2>/dev/null # empty unless the grade kept its evidence
    # bwrap returns as its namespace's processes are being killed: the grade ends when
    # the last of the student's has gone.
    [ "$mode" != namespaces ] || wait_until 5 no_student_processes || sandbox_clean
    exit "$status"
    ;;
  esac
}

no_student_processes() { ! pgrep -U "$SANDBOX_UID" >/dev/null; }

# The namespaces and the system, read-only. --new-session: no terminal to type into.
BWRAP_OPTIONS=(--unshare-net --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try
  --die-with-parent --new-session
  --ro-bind /usr /usr --ro-bind /etc /etc --proc /proc --dev /dev
  --size 268435456 --perms 1777 --tmpfs /tmp)
# /bin, /lib and the like: links into /usr where the system has them so (merged /usr),
# folders of their own where not.
for system_folder in /bin /sbin /lib /lib32 /lib64; do
  if [ -L "$system_folder" ]; then
    BWRAP_OPTIONS+=(--symlink "$(readlink "$system_folder")" "$system_folder")
  elif [ -d "$system_folder" ]; then
    BWRAP_OPTIONS+=(--ro-bind "$system_folder" "$system_folder")
  fi
done
unset system_folder
[ "$(id -u)" != 0 ] || BWRAP_OPTIONS+=(--cap-add ALL) # the grader's; the student's are dropped

# sandbox_binds SRC - BWRAP_BINDS, bwrap's options for the lab's files: the tests and
# step 6's library read-only, every solution hidden (under /dev/null, a device where
# devices are refused: opening it fails), the python that runs the grader's clients when
# it is not the system's, and SRC.
sandbox_binds() {
  local hidden python
  BWRAP_BINDS=()
  sandbox_folders "$LAB/tests"
  sandbox_folders "$1"
  BWRAP_BINDS+=(--ro-bind "$LAB/tests" "$LAB/tests"
    --ro-bind "$LAB/step6_socketserver" "$LAB/step6_socketserver")
  for hidden in "$LAB"/tests/exercises/*/solution* "$LAB"/tests/exercises/*/wrong-*; do
    [ ! -e "$hidden" ] || BWRAP_BINDS+=(--ro-bind /dev/null "$hidden")
  done
  python=$(python3 -c 'import sys; print(sys.base_prefix)')
  [ "$python" = /usr ] || BWRAP_BINDS+=(--ro-bind "$python" "$python")
  BWRAP_BINDS+=(--ro-bind "$1" "$1")
}

# sandbox_folders PATH - the folders above PATH, made in the sandbox for the student's
# user to pass through (bwrap makes them 0700 otherwise).
sandbox_folders() {
  local folder=${1%/*}
  [ -n "$folder" ] || return 0
  sandbox_folders "$folder"
  BWRAP_BINDS+=(--perms 0755 --dir "$folder")
}

sandbox_path() {
  local python
  python=$(python3 -c 'import os, sys; print(os.path.dirname(os.path.realpath(sys.executable)))')
  echo "$python:/usr/local/bin:/usr/bin:/usr/sbin"
}

# sandbox_prepare - STUDENT_DIR, the one folder the student's user may write (its build
# goes there), and STUDENT_RUN, the command prefix that runs a student's program: in a
# session of its own, with the limits, as the student's user. Where the student has a
# user of its own, STUDENT_DIR is a folder of /tmp (the grader's, GRADER_TMP, may lie
# where that user cannot pass): the sandbox's own /tmp, or without namespaces the
# machine's, removed at the end (check's EXIT trap, to which this adds) with whatever
# else that user left there.
sandbox_prepare() {
  STUDENT_DIR="$GRADER_TMP/student"
  STUDENT_RUN=(setsid)
  case $SANDBOX_MODE in
  none | limits | namespaces-same-user)
    mkdir -p "$STUDENT_DIR"
    [ "$SANDBOX_MODE" = none ] || STUDENT_RUN+=(prlimit "${SANDBOX_LIMITS[@]}" --)
    return 0
    ;;
  esac
  STUDENT_DIR=$(mktemp -d /tmp/exercise-student.XXXXXX) || exit 2
  eval "set -- $(trap -p EXIT)" # ($3: the trap's command as check set it)
  # shellcheck disable=SC2064 # check's command is put in now, STUDENT_DIR at the end
  trap "sandbox_clean; rm -rf \"\$STUDENT_DIR\"; ${3:-}" EXIT
  chown "$SANDBOX_UID:$SANDBOX_UID" "$STUDENT_DIR"
  # An environment of its own: the grader's may hold what the student must not read.
  STUDENT_RUN+=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$STUDENT_DIR" TMPDIR="$STUDENT_DIR"
    ${LANG:+"LANG=$LANG"} ${LC_ALL:+"LC_ALL=$LC_ALL"})
  STUDENT_RUN+=(prlimit --nproc="$SANDBOX_PROCESSES" "${SANDBOX_LIMITS[@]}" --
    setpriv --reuid="$SANDBOX_UID" --regid="$SANDBOX_UID" --clear-groups
    --inh-caps=-all --bounding-set=-all --no-new-privs --)
}

# sandbox_build COMMAND... - the student's build: as the student, with the limits, a
# wall-clock cap and nothing to read on standard input (`#include "/dev/stdin"`).
# Without namespaces the student's user may not read the teacher's folders: it builds a
# copy of SRC, made in its own folder.
sandbox_build() {
  local arg command=()
  for arg in "$@"; do
    if [ "$SANDBOX_MODE" = user ] && [ "$arg" = "$SRC" ]; then
      arg="$STUDENT_DIR/${SRC##*/}"
      cp "$SRC" "$arg" && chmod 644 "$arg"
    fi
    command+=("$arg")
  done
  TMPDIR="$STUDENT_DIR" timeout --kill-after=5 "$SANDBOX_BUILD_SECONDS" "${STUDENT_RUN[@]}" "${command[@]}" </dev/null
}

# server_launcher - start_server's hook (tests/helpers.bash): the server runs as the
# student, and under valgrind writes its logs in the student's folder (valgrind runs
# inside the student's process: what it reports the student's code could reach anyway).
server_launcher() {
  # shellcheck disable=SC2034 # RUNNER is helpers.bash's
  RUNNER=("${STUDENT_RUN[@]}")
  if [ "${VALGRIND:-0}" = 1 ] && [ "$SANDBOX_MODE" != none ]; then
    VALGRIND_LOG="$STUDENT_DIR/valgrind-${BATS_TEST_TMPDIR##*/}/valgrind"
    mkdir -p "${VALGRIND_LOG%/*}"
    if [ "$SANDBOX_MODE" = namespaces ] || [ "$SANDBOX_MODE" = user ]; then
      chown "$SANDBOX_UID" "${VALGRIND_LOG%/*}"
    fi
  fi
  return 0
}

# sandbox_clean - end every process of the student's user and remove the files it left
# where anyone may write: what namespaces would have done, where there are none (or they
# were slow to).
sandbox_clean() {
  while pkill -KILL -U "$SANDBOX_UID" 2>/dev/null; do :; done
  find /tmp /var/tmp /dev/shm -xdev -user "$SANDBOX_UID" -delete 2>/dev/null
  return 0
}
