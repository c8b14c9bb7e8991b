#!/usr/bin/env bats
# passes: plain
# Lesson first: each step's server.c opens with its own code (handler, loop, main) and
# ends, under one banner line, with the plumbing every step shares, byte for byte the
# same in steps 1 to 5: a reader meets the step's idea on the first screen, and
# `make diff-N` shows only the new idea.
#
# STEPS_DIR=PATH runs the checks against a copy of the tree (to watch them fail).

load helpers

STEPS_DIR=${STEPS_DIR:-$LAB}
BANNER='^/\* ---- Unchanged in every step: .* ---- \*/$'
MAX_LINE=110 # the handler and main start within the first screens

steps() { printf '%s\n' "$STEPS_DIR"/step[1-5]_*/server.c; }

# shared_block FILE - the banner line and everything below it.
shared_block() { awk -v banner="$BANNER" '$0 ~ banner { below = 1 } below' "$1"; }

# first_line FILE REGEX - the number of the first line matching REGEX, or nothing.
first_line() { grep -nE "$2" "$1" | head -n 1 | cut -d: -f1; }

@test "steps_shared: there are five steps to compare" {
  run steps
  [ "${#lines[@]}" -eq 5 ] || fail "steps found: $output"
}

@test "steps_shared: every step has the banner exactly once" {
  local file count
  for file in $(steps); do
    count=$(grep -cE "$BANNER" "$file" || true)
    [ "$count" -eq 1 ] || fail "${file#"$STEPS_DIR"/}: the banner $count times"
  done
}

@test "steps_shared: below the banner every step is byte-identical to step 1" {
  local first file
  first=$(steps | head -n 1)
  shared_block "$first" >"$BATS_TEST_TMPDIR/first"
  [ "$(wc -l <"$BATS_TEST_TMPDIR/first")" -gt 100 ] || fail "no shared block in $first"
  for file in $(steps); do
    shared_block "$file" >"$BATS_TEST_TMPDIR/this"
    run diff -u "$BATS_TEST_TMPDIR/first" "$BATS_TEST_TMPDIR/this"
    [ "$status" -eq 0 ] || fail "${file#"$STEPS_DIR"/} differs below the banner from ${first#"$STEPS_DIR"/}:
$output"
  done
}

@test "steps_shared: the handler and main start within the first $MAX_LINE lines" {
  local file handler main
  for file in $(steps); do
    # The definition, not the prototype: it ends in an opening brace.
    handler=$(first_line "$file" '^static [a-z]+ handle_client\(.*\) \{$')
    main=$(first_line "$file" '^int main\(')
    [ -n "$handler" ] || fail "${file#"$STEPS_DIR"/}: no handle_client()"
    [ -n "$main" ] || fail "${file#"$STEPS_DIR"/}: no main()"
    [ "$handler" -le "$MAX_LINE" ] || fail "${file#"$STEPS_DIR"/}: handle_client() at line $handler"
    [ "$main" -le "$MAX_LINE" ] || fail "${file#"$STEPS_DIR"/}: main() at line $main"
  done
}
