#!/usr/bin/env bats
# passes: plain
# The Makefile as a newcomer meets it: `make help` names every target, `make
# check-stepN` is quick and ends with its count, and `make test`'s pass runner
# (tests/run_passes) counts every pass, lists the failures again and goes on after one.

load helpers

# Every phony target of the Makefile and its fragments, one a line.
phony_targets() {
  make -C "$LAB" -pRrq : 2>/dev/null | sed -n 's/^\.PHONY: //p' | tr ' ' '\n' | sed '/^$/d' | sort -u
}

@test "make help: one line for every target of the Makefile and its fragments" {
  run make -C "$LAB" --no-print-directory help
  assert_success
  local listed target missing=()
  # stepN, check-stepN, diff-N and trace-stepN stand for their numbered targets.
  listed=$(sed -E 's/^  make ([^ ]+) .*/\1/' <<<"$output" |
    sed -E 's/^(.*)N$/\1[1-6]/; s/^(.*)N(-.*)?$/\1[1-6]\2/')
  for target in $(phony_targets); do
    grep -qxE -- "$(tr '\n' '|' <<<"$listed" | sed 's/|$//')" <<<"$target" || missing+=("$target")
  done
  [ "${#missing[@]}" -eq 0 ] || fail "not in make help: ${missing[*]}"
  # One line a target: no name twice.
  [ -z "$(sed -E 's/^  make ([^ ]+) .*/\1/' <<<"$output" | sort | uniq -d)" ] ||
    fail "listed twice: $(sed -E 's/^  make ([^ ]+) .*/\1/' <<<"$output" | sort | uniq -d)"
}

@test "make check-step1: step 1's suites, ending with N passed, 0 failed" {
  run clean_env make -C "$LAB" --no-print-directory check-step1
  assert_success
  assert_line --partial "step 1: "
  [[ ${lines[-1]} =~ ^[1-9][0-9]*\ passed,\ 0\ failed$ ]] || fail "last line: ${lines[-1]}"
  refute_output --partial "step 2: "
}

@test "run_passes: a failing pass does not stop the next; failures listed again; one count" {
  local dir=$BATS_TEST_TMPDIR/suites
  mkdir -p "$dir"
  printf '%s\n' '@test "good one" { true; }' '@test "bad one" { false; }' >"$dir/mixed.bats"
  printf '%s\n' '@test "good two" { true; }' >"$dir/good.bats"
  # The plain pass has a failure; the memcheck pass (a good suite) must still run.
  run clean_env PLAIN_SUITES="$dir/mixed.bats" VALGRIND_SUITES="$dir/good.bats" \
    "$LAB/tests/run_passes"
  assert_failure 1
  assert_output --partial "== memcheck:"
  assert_output --partial "ok 1 good two"
  assert_line "Failures:"
  assert_line --regexp '^  plain [^ ]*/mixed.bats: not ok 2 bad one( in [0-9]+ms)?$'
  assert_equal "${lines[-1]}" "2 passed, 1 failed"
}

@test "run_passes: all passing is exit 0 and a count with no failures list" {
  local dir=$BATS_TEST_TMPDIR/suites
  mkdir -p "$dir"
  printf '%s\n' '@test "good" { true; }' '@test "skipped" { skip "not here"; }' >"$dir/good.bats"
  run clean_env PLAIN_SUITES="$dir/good.bats" "$LAB/tests/run_passes"
  assert_success
  refute_line "Failures:"
  assert_equal "${lines[-1]}" "1 passed, 0 failed, 1 skipped"
}

# One of the Makefile's variables, as make sees it.
make_value() {
  make -C "$LAB" -s --no-print-directory --eval "print-value: ; @echo \$($1)" print-value
}

@test "the passes' lists come from each suite's own '# passes:' line, heaviest first" {
  local dir=$BATS_TEST_TMPDIR/suites
  mkdir -p "$dir"
  printf '%s\n' '#!/usr/bin/env bats' '# passes: plain memcheck:2' >"$dir/a.bats"
  printf '%s\n' '#!/usr/bin/env bats' '# passes: plain:9 memcheck:5 helgrind' >"$dir/b.bats"
  printf '%s\n' '#!/usr/bin/env bats' '# passes: plain' >"$dir/c.bats"
  run "$LAB/tests/suites" memcheck "$dir"/{a,b,c}.bats
  assert_success
  assert_output "$(printf '%s\n' "$dir/b.bats" "$dir/a.bats")"
  run "$LAB/tests/suites" plain "$dir"/{a,b,c}.bats
  assert_output "$(printf '%s\n' "$dir/b.bats" "$dir/a.bats" "$dir/c.bats")"
  # A suite that says nothing would join no pass: an error that names it.
  printf '%s\n' '#!/usr/bin/env bats' '# no word of passes' >"$dir/d.bats"
  run "$LAB/tests/suites" plain "$dir"/{a,d}.bats
  assert_failure
  assert_output --partial "$dir/d.bats has no \"# passes:\" line"
  # The Makefile's lists are these, over the lab's own suites, each of which says its passes.
  cd "$LAB"
  run tests/suites plain tests/*.bats
  assert_success
  assert_equal "$(wc -l <<<"$output")" "$(ls tests/*.bats | wc -l)"
  assert_equal "$(make_value SUITES)" "$(tests/suites plain tests/*.bats | tr '\n' ' ' | sed 's/ $//')"
  assert_equal "$(make_value VALGRIND_SUITES)" "$(tests/suites memcheck tests/*.bats | tr '\n' ' ' | sed 's/ $//')"
  assert_equal "$(make_value HELGRIND_SUITES)" "$(tests/suites helgrind tests/*.bats | tr '\n' ' ' | sed 's/ $//')"
  [[ " $(make_value VALGRIND_SUITES) " == *" tests/stop.bats "* ]]
}
