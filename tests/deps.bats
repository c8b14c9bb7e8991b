#!/usr/bin/env bats
# The dependency step (make deps, tests/deps.sh): the packages it names are the ones the
# lab needs, and it installs them on a fresh Debian machine.

load helpers

# deps_packages - every package `make deps` installs, one a line.
deps_packages() {
  # shellcheck disable=SC2016 # $(DEPS_PACKAGES) is make's, not the shell's
  make -s --no-print-directory -C "$LAB" --eval='print-deps: ; @echo $(DEPS_PACKAGES)' \
    print-deps | tr ' ' '\n'
}

# header_path HEADER DIR... - where the compiler finds <HEADER>: the first DIR that has it.
header_path() {
  local header=$1 dir
  shift
  for dir in "$@"; do
    [ -e "$dir/$header" ] && { echo "$dir/$header"; return; }
  done
  return 1
}

@test "deps: every header the C sources include is in a package the dependency step installs" {
  command -v dpkg >/dev/null || skip "not a Debian system: no dpkg to ask who owns a file"
  # The compiler's search list, and cJSON's folder as the step-6 build adds it.
  local dirs=() cjson compiler_own dir
  compiler_own=$(cc -print-file-name=include)
  while read -r dir; do dirs+=("$dir"); done < <(cc -E -v -x c /dev/null -o /dev/null 2>&1 |
    sed -n '/^#include <...> search starts here:/,/^End of search list\./s/^ //p')
  read -ra cjson < <(pkg-config --cflags-only-I libcjson | sed 's/-I//g')
  dirs+=("${cjson[@]}")
  local header path paths=()
  for header in $(cd "$LAB" && git ls-files '*.c' '*.h' |
    xargs sed -n 's/^#include <\(.*\)>.*/\1/p' | sort -u); do
    path=$(header_path "$header" "${dirs[@]}") || fail "<$header>: not found in ${dirs[*]}"
    # The compiler's own headers (stddef.h, stdatomic.h, ...) come with the compiler.
    [[ $path == "$compiler_own"/* ]] || paths+=("$(realpath "$path")")
  done
  # dpkg -S answers "PACKAGE:ARCH: PATH" a line; a package is named once, with one header.
  local listed line owner missing=""
  listed=" $(deps_packages | tr '\n' ' ') "
  while IFS= read -r line; do
    owner=${line%%: /*}
    owner=${owner%%[:,]*}
    [[ $listed == *" $owner "* || $missing == *" $owner "* ]] ||
      missing+=" $owner (${line#*: /usr/include/})"
  done < <(dpkg -S "${paths[@]}")
  [ -z "$missing" ] || fail "headers from packages that no list of the Makefile names:$missing"
}

# stub_apt LOCKED_UPDATES - stand-ins on PATH for a root shell (id), dpkg-query (nothing is
# installed) and apt-get, which logs its arguments a line a call into apt.calls and fails
# its first LOCKED_UPDATES updates as apt does when another apt holds the lists' lock.
stub_apt() {
  local bin="$BATS_TEST_TMPDIR/bin"
  mkdir -p "$bin"
  printf '#!/bin/sh\necho 0\n' >"$bin/id"
  printf '#!/bin/sh\nexit 1\n' >"$bin/dpkg-query"
  cat >"$bin/apt-get" <<STUB
#!/bin/sh
echo "\$*" >>"$BATS_TEST_TMPDIR/apt.calls"
case " \$* " in
*" update "*)
  if [ "\$(grep -c ' update ' "$BATS_TEST_TMPDIR/apt.calls")" -le $1 ]; then
    echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)"
    exit 100
  fi ;;
esac
STUB
  chmod +x "$bin"/*
  PATH="$bin:$PATH"
}

@test "deps.sh waits for another apt's locks, dpkg's through apt's own timeout" {
  stub_apt 1
  DEPS_LOCK_WAIT=30 run "$LAB/tests/deps.sh" some-package
  assert_success
  assert_line "installing: some-package"
  assert_line "waiting for another apt to finish (at most 30 s)"
  run grep -c ' update ' "$BATS_TEST_TMPDIR/apt.calls"
  assert_output 2 # locked once, then through
  run grep ' install ' "$BATS_TEST_TMPDIR/apt.calls"
  assert_output --partial "-o DPkg::Lock::Timeout=30 install -y -qq --no-install-recommends some-package"
}

@test "deps.sh gives up on a lock held past its bound, showing apt's words" {
  stub_apt 1000
  DEPS_LOCK_WAIT=0 run --separate-stderr "$LAB/tests/deps.sh" some-package
  assert_failure 1
  [[ $stderr == *"Could not get lock /var/lib/apt/lists/lock"*"could not install: some-package" ]] ||
    fail "stderr: $stderr"
  run grep -c ' install ' "$BATS_TEST_TMPDIR/apt.calls"
  assert_output 0
}
