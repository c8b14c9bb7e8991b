#!/usr/bin/env bats
# passes: plain
# tests/client_bench.bats - the shared client's load mode, `client bench`.
#
# A load generator that cannot see a wrong reply makes every benchmark lie, so most of
# these run bench against tests/fixtures/bad_echo, which breaks the protocol on purpose
# (--fault KIND), and insist on exit 1 and an error naming what went wrong. The correct
# cases run against step 2 (one client at a time) and against bad_echo --fault none
# (many clients at once, the control).

bats_require_minimum_version 1.5.0
load helpers

STEP2="$LAB/step2_loop/server"
BAD_ECHO="$LAB/tests/fixtures/bad_echo"
# connections=C messages=M bytes=B seconds=S msgs/s=R MB/s=T p50_us= p99_us= max_us= errors=E client_cpu_s=U
SUMMARY='^connections=[0-9]+ messages=[0-9]+ bytes=[0-9]+ seconds=[0-9]+\.[0-9]{3} msgs/s=[0-9]+ MB/s=[0-9]+\.[0-9]{2} p50_us=[0-9]+ p99_us=[0-9]+ max_us=[0-9]+ errors=[0-9]+ client_cpu_s=[0-9]+\.[0-9]{3}$'

setup() {
  CLIENT_ARGS=() # options before the mode word: --unix PATH, --udp
  for bin in "$CLIENT" "$STEP2" "$BAD_ECHO"; do
    [ -x "$bin" ] || fail "$bin is not built (make)"
  done
}

# field NAME - the value of NAME=... in the summary line ($output).
field() {
  sed -n "s/.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\) .*/\1/p" <<<"$output"
}

# bench_ok ARGS... - run `client [CLIENT_ARGS] bench ARGS` and insist on exit 0, one
# summary line in the documented format, and errors=0.
bench_ok() {
  run --separate-stderr "$CLIENT" --port "${SERVER_PORT:-}" "${CLIENT_ARGS[@]}" bench "$@"
  if [ "$status" -ne 0 ]; then
    echo "exit $status; stderr: $stderr" >&2
    return 1
  fi
  [ "${#lines[@]}" -eq 1 ] || fail "expected one line on stdout, got: $output"
  [[ $output =~ $SUMMARY ]] || fail "summary line not in the documented format: $output"
  [ "$(field errors)" = 0 ] || fail "errors in: $output"
}

# bench_fails FAULT MESSAGE ARGS... - against bad_echo --fault FAULT, bench exits 1 and
# says MESSAGE (an extended regular expression) on stderr.
bench_fails() {
  local fault=$1 message=$2
  shift 2
  start_server "$BAD_ECHO" --fault "$fault"
  run --separate-stderr client bench "$@"
  [ "$status" -eq 1 ] || fail "exit $status against --fault $fault; stdout: $output"
  [[ $output =~ $SUMMARY ]] || fail "no summary line: $output"
  [ "$(field errors)" -gt 0 ] || fail "errors=0 against --fault $fault: $output"
  grep -qE -- "$message" <<<"$stderr" || fail "stderr lacks /$message/: $stderr"
}

@test "bench --help names every option and exits 0" {
  run --separate-stderr "$CLIENT" bench --help
  assert_success
  for option in --connections --messages --size --random-size --seed --churn --timeout --help; do
    assert_output --partial -- "$option"
  done
}

@test "bench with a bad option, a bad value or a stray argument exits 2 with the usage" {
  for args in "--bogus" "-c 0" "-n x" "-s 0" "--random-size 9:3" "--random-size 5" \
    "--timeout 0" "stray"; do
    run --separate-stderr "$CLIENT" bench $args
    [ "$status" -eq 2 ] || fail "bench $args: exit $status"
    [[ $stderr == *"usage: "* ]] || fail "bench $args: no usage on stderr: $stderr"
    [ -z "$output" ] || fail "bench $args: wrote to stdout: $output"
  done
}

@test "bench numbers are decimal and whole: a sign, a space, hex or an exponent is usage" {
  # strtoull took ' 5', '+5' and ' -5' (as a huge number: --seed accepted it), strtod ' 1',
  # '0x1' and '1e1'. Each pair is an option and a value it must refuse.
  local pairs=(-c ' 5' -c +5 -c '' -n 0x10 -n '5 ' -s 1e3 --seed ' -5' --seed -1
    --seed 18446744073709551616 --loss-ms ' 5' --loss-ms +5 --timeout ' 1' --timeout 0x1
    --timeout 1e1 --timeout inf --random-size ' 1:5' --random-size 1:+5)
  local pair
  for ((pair = 0; pair < ${#pairs[@]}; pair += 2)); do
    run --separate-stderr "$CLIENT" bench "${pairs[pair]}" "${pairs[pair + 1]}"
    [ "$status" -eq 2 ] || fail "bench ${pairs[pair]} '${pairs[pair + 1]}': exit $status; $stderr"
    [[ $stderr == "bench: bad ${pairs[pair]}"*"'"*"usage: "* ]] ||
      fail "bench ${pairs[pair]} '${pairs[pair + 1]}': stderr: $stderr"
    [ -z "$output" ] || fail "bench ${pairs[pair]} '${pairs[pair + 1]}': wrote to stdout: $output"
  done
}

@test "bench -c 1 -n 1000 -s 64 against step 2: every round trip counted and checked" {
  start_server "$STEP2"
  bench_ok -c 1 -n 1000 -s 64
  assert_equal "$(field connections)" 1
  assert_equal "$(field messages)" 1000
  assert_equal "$(field bytes)" 128000 # 64 sent + 64 received, 1000 times
  [ "$(field p50_us)" -le "$(field p99_us)" ] || fail "p50 above p99: $output"
  [ "$(field p99_us)" -le "$(field max_us)" ] || fail "p99 above max: $output"
  stop_server
}

@test "bench with 64 KiB and with random-size messages against step 2 (replies in pieces)" {
  start_server "$STEP2"
  bench_ok -n 20 -s 65536
  assert_equal "$(field bytes)" $((20 * 65536 * 2))
  bench_ok -n 40 --random-size 1:65536 --seed 5
  assert_equal "$(field messages)" 40
  stop_server
}

@test "bench --random-size is deterministic with --seed, and the seed matters" {
  start_server "$BAD_ECHO" --fault none
  bench_ok -c 3 -n 10 --random-size 1:5000 --seed 9
  local first
  first=$(field bytes)
  bench_ok -c 3 -n 10 --random-size 1:5000 --seed 9
  assert_equal "$(field bytes)" "$first"
  bench_ok -c 3 -n 10 --random-size 1:5000 --seed 10
  [ "$(field bytes)" != "$first" ] || fail "seeds 9 and 10 gave the same sizes"
  stop_server
}

@test "bench --churn against step 2: a new connection for every round trip" {
  start_server "$STEP2"
  bench_ok --churn -c 1 -n 30
  assert_equal "$(field messages)" 30
  stop_server
  assert_equal "$(grep -c ' connected$' "$SERVER_LOG")" 30
}

@test "bench -c 2000 -n 5: two thousand connections at once from one thread" {
  [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 2100 ] ||
    skip "the hard descriptor limit $(ulimit -Hn) is below 2100"
  start_server "$BAD_ECHO" --fault none
  bench_ok -c 2000 -n 5 -s 64
  assert_equal "$(field connections)" 2000
  assert_equal "$(field messages)" 10000
  stop_server
}

@test "bench --churn -c 10 and --unix against a many-client server" {
  start_server "$BAD_ECHO" --fault none
  bench_ok --churn -c 10 -n 50
  assert_equal "$(field messages)" 500
  stop_server
  local path="$BATS_TEST_TMPDIR/echo.sock"
  start_server "$BAD_ECHO" --fault none --unix "$path"
  CLIENT_ARGS=(--unix "$path")
  bench_ok -c 50 -n 20 --random-size 1:3000
  assert_equal "$(field messages)" 1000
  stop_server
}

@test "bench --udp: one datagram a message, checked; a missing reply is an error" {
  start_server "$BAD_ECHO" --fault none --udp
  CLIENT_ARGS=(--udp)
  bench_ok -c 10 -n 20 -s 512
  assert_equal "$(field messages)" 200
  stop_server
  start_server "$BAD_ECHO" --fault silent --udp
  run --separate-stderr client --udp bench -c 2 -n 3
  assert_failure 1
  [[ $stderr == *"no reply datagram within"* ]] || fail "stderr: $stderr"
}

@test "bench exits 1 when letters come back unchanged" {
  bench_fails no-upper 'reply byte [0-9]+ of 64 is 0x[67][0-9a-f], expected 0x[45]' -c 5 -n 5
}

@test "bench exits 1 when bytes above 127 are upper-cased too (it sends them)" {
  bench_fails latin1 'reply byte [0-9]+ of 300 is 0x[cd][0-9a-f], expected 0x[ef]' -n 5 -s 300
}

@test "bench exits 1 on an extra byte in a reply" {
  bench_fails extra '1 extra byte\(s\) after the 64-byte reply' -c 3 -n 5 --timeout 5
}

@test "bench exits 1 on an extra byte after the last reply, before end of stream" {
  bench_fails eof-extra 'connection 1, after message 5: 1 byte\(s\) after the last reply' -n 5
}

@test "bench exits 1 when the server hangs up early" {
  bench_fails hangup 'message 1: end of stream after 0 of 64 reply bytes' -c 2 -n 5
}

@test "bench exits 1 on a missing byte, at its --timeout, naming what was outstanding" {
  bench_fails drop 'timed out after 1 s .* 4 mid-message' -c 4 -n 5 --timeout 1
  grep -q 'sent 64 of 64 bytes, received 63' <<<"$stderr" || fail "stderr: $stderr"
}

@test "bench exits 1 when nothing answers or nothing listens" {
  bench_fails silent 'timed out after 1 s' -c 3 --timeout 1
  stop_server
  run --separate-stderr client bench -c 3 # the port just freed: nothing listens
  assert_failure 1
  [[ $stderr == *"connect: Connection refused"* ]] || fail "stderr: $stderr"
  [[ $output == *" errors=3 "* ]] || fail "stdout: $output"
}
