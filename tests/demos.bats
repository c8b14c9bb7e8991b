#!/usr/bin/env bats
# passes: plain:2
# Every guided demo runs whole, as a student runs it: `make step1` ... `make step6`, each
# from its start to its end. TUTORIAL.md quotes step 6 part by part (tests/demo/step6.sh
# PART), so tests/tutorial.bats alone would not see a part that breaks only after the
# others ran in the same demo folder. Each demo must exit 0, write nothing on standard
# error (a demo's own failures, "demo failed: ..." and any command's complaint, go
# there), and show every line of a client that its parts show when run alone.
#
# setup_file runs the six demos and step 6's parts side by side (they start their
# servers on free ports, each in a folder of its own); the tests read what they printed.

load helpers

STEP6_PARTS="upper callcenter ftpserver threadname pools"

setup_file() {
  make -C "$LAB" -s --no-print-directory all 3>&- || return 1
  local n part pids=()
  for n in 1 2 3 4 5 6; do
    (cd "$LAB" && make -s --no-print-directory "step$n" >"$BATS_FILE_TMPDIR/step$n.out" \
      2>"$BATS_FILE_TMPDIR/step$n.err"; echo $? >"$BATS_FILE_TMPDIR/step$n.status") 3>&- &
    pids+=($!)
  done
  for part in $STEP6_PARTS; do
    ("$LAB/tests/demo/step6.sh" "$part" >"$BATS_FILE_TMPDIR/part-$part.out" 2>&1) 3>&- &
    pids+=($!)
  done
  wait "${pids[@]}"
}

# client_lines FILE - the lines a client printed (NAME| ..., never server| ...), with
# the numbers that change between runs (ports, pids) made X.
client_lines() {
  grep -E '^[A-Za-z0-9]+\| ' "$1" | grep -v '^server| ' | sed -E 's/[0-9]+/X/g'
}

# ran_whole N - make stepN exited 0 and wrote nothing on standard error.
ran_whole() {
  local out="$BATS_FILE_TMPDIR/step$1"
  [ "$(cat "$out.status")" = 0 ] || fail "make step$1 exited $(cat "$out.status"):
$(cat "$out.err" "$out.out")"
  [ ! -s "$out.err" ] || fail "make step$1 wrote on standard error:
$(cat "$out.err")"
  [ "$(client_lines "$out.out" | wc -l)" -gt 0 ] || fail "make step$1 shows no client"
}

@test "demos: make step1 runs whole: exit 0, nothing on standard error" { ran_whole 1; }
@test "demos: make step2 runs whole: exit 0, nothing on standard error" { ran_whole 2; }
@test "demos: make step3 runs whole: exit 0, nothing on standard error" { ran_whole 3; }
@test "demos: make step4 runs whole: exit 0, nothing on standard error" { ran_whole 4; }
@test "demos: make step5 runs whole: exit 0, nothing on standard error" { ran_whole 5; }
@test "demos: make step6 runs whole: exit 0, nothing on standard error" { ran_whole 6; }

@test "demos: make step6 whole shows every client line its parts show alone, in order" {
  local part
  for part in $STEP6_PARTS; do
    client_lines "$BATS_FILE_TMPDIR/part-$part.out"
  done >"$BATS_TEST_TMPDIR/parts"
  [ -s "$BATS_TEST_TMPDIR/parts" ] || fail "the parts show no client"
  client_lines "$BATS_FILE_TMPDIR/step6.out" >"$BATS_TEST_TMPDIR/whole"
  run diff -u "$BATS_TEST_TMPDIR/parts" "$BATS_TEST_TMPDIR/whole"
  [ "$status" -eq 0 ] || fail "make step6 (+) differs from its parts run alone (-):
$output"
}
