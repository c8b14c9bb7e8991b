#!/bin/sh
# tests/deps.sh PACKAGE... - make sure these Debian packages are installed.
#
# Installs what is missing with apt-get, as root or through sudo, and says what it
# installs. Where that cannot be done it stops with one line naming the packages.
set -u
missing=""
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
    missing="$missing $package"
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing packages:$missing (install them with your system's package manager)" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  echo "missing packages:$missing (run: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "installing:$missing"

# Another apt at work (unattended-upgrades, on a freshly booted machine) holds apt's locks
# for a while: wait for it, up to DEPS_LOCK_WAIT seconds, rather than fail at once. apt
# waits for dpkg's lock itself (DPkg::Lock::Timeout); apt-get update does not wait for
# the package lists' lock, so it is tried again, once a second, until the same deadline.
lock_wait=${DEPS_LOCK_WAIT:-300}
# (env: sudo would drop a variable set before it.)
apt_get() {
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$lock_wait" "$@"
}
said_waiting=""
update_lists() {
  deadline=$(($(date +%s) + lock_wait))
  until apt_get update -qq >"$log" 2>&1; do
    grep -q 'Could not get lock' "$log" && [ "$(date +%s)" -lt "$deadline" ] || return 1
    [ -n "$said_waiting" ] || echo "waiting for another apt to finish (at most $lock_wait s)"
    said_waiting=1
    sleep 1 # another program's lock: nothing to wait on but time
  done
}

# A fresh machine may have no package lists yet. apt's own chatter (debconf's notes and
# the like) goes to a log that is shown only if the install fails, so a demo's
# transcript holds this one line. Recommended packages are not taken: what the lab uses
# is named, so a machine that never installs recommends works the same.
log=$(mktemp)
# shellcheck disable=SC2086 # $missing is word-split on purpose: one argument a package
if update_lists &&
  apt_get install -y -qq --no-install-recommends $missing >>"$log" 2>&1; then
  rm -f "$log"
else
  cat "$log" >&2
  rm -f "$log"
  echo "could not install:$missing" >&2
  exit 1
fi
