#!/usr/bin/env bash
# setup.sh - Gradescope runs it once, as root, when it builds the autograder's image (its
# Ubuntu): the compiler and make, then the packages the lab's graders need (make deps:
# bats, valgrind, bubblewrap, ...), then the lab built (step 6's exercises link its
# framework). The lab is in source/lab, without the solutions (make handout).
set -eu
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  gcc libc6-dev make python3 git ca-certificates procps
make -C /autograder/source/lab deps
make -C /autograder/source/lab -s all
