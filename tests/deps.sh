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
# A fresh machine may have no package lists yet. apt's own chatter (debconf's notes and
# the like) goes to a log that is shown only if the install fails, so a demo's
# transcript holds this one line. Recommended packages are not taken: what the lab uses
# is named, so a machine that never installs recommends works the same.
log=$(mktemp)
# shellcheck disable=SC2086 # $missing is word-split on purpose: one argument a package
if $sudo apt-get update -qq >"$log" 2>&1 &&
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    $missing >>"$log" 2>&1; then
  rm -f "$log"
else
  cat "$log" >&2
  rm -f "$log"
  echo "could not install:$missing" >&2
  exit 1
fi
