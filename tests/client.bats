#!/usr/bin/env bats
# The shared client's chat and hold modes, against the step 2 server.

load helpers

setup() { start_server "$LAB/step2_loop/server"; }

@test "client: chat from a pipe sends each line and prints each reply, no prompt" {
  run --separate-stderr client <<<$'hello\nworld'
  assert_success
  assert_output $'recv from server: HELLO\nrecv from server: WORLD'
  wait_for_log "wrote: world$"
  stop_server
}

@test "client: chat sends a line without its newline" {
  client <<<"abc" >"$BATS_TEST_TMPDIR/out"
  # Had the newline been sent, the reply would carry it and print an extra line.
  cmp "$BATS_TEST_TMPDIR/out" <(printf 'recv from server: ABC\n')
  stop_server
}

@test "client: chat on a terminal prompts with '>>: '" {
  # Both lines are typed ahead, at once. A terminal echoes what is typed as it comes, so
  # with its echo on, "hi" and "there" would land before or after the first prompt as the
  # timing falls: --echo never leaves on the terminal only what the client writes.
  run script --echo never -qec "$CLIENT --port $SERVER_PORT" /dev/null <<<$'hi\nthere'
  assert_success
  assert_output $'>>: recv from server: HI\r\n>>: recv from server: THERE\r\n>>: '
  stop_server
}

@test "client: chat prints a long reply whole, however many pieces it comes in" {
  # 100,000 bytes come back in pieces of the server's 1 KiB reads: printed piece by
  # piece, the rest would be taken for the next line's reply.
  local long
  long=$(head -c 100000 /dev/zero | tr '\0' 'a')
  run --separate-stderr client <<<"$long"$'\nnext'
  assert_success
  [ "${#lines[@]}" -eq 2 ] || fail "${#lines[@]} lines of output, not 2"
  assert_equal "${lines[1]}" "recv from server: NEXT"
  [ "${lines[0]}" = "recv from server: ${long^^}" ] ||
    fail "the first reply is not the 100,000 bytes upper-cased: ${#lines[0]} characters"
  stop_server
}

@test "client: chat says so when the server closes in the middle of a reply (exit 1)" {
  stop_server
  start_server "$LAB/step1_blocking/server" # one recv of 1 KiB, its reply, hang up
  local long
  long=$(head -c 2000 /dev/zero | tr '\0' 'a')
  run --separate-stderr client <<<"$long"$'\nnever sent'
  assert_failure 1
  assert_output "recv from server: $(head -c 1024 <<<"${long^^}")"
  assert_equal "$stderr" "chat: the server closed the connection after 1024 of the reply's 2000 bytes"
  stop_server
}

@test "client: an empty line sends nothing and the chat goes on" {
  run client <<<$'a\n\nb'
  assert_output $'recv from server: A\nrecv from server: B'
  stop_server
}

@test "client: --recv-first prints what the server says when it hangs up first" {
  mkfifo "$BATS_TEST_TMPDIR/in"
  client --recv-first <>"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" &
  local waiting=$!
  wait_for_log " connected$"
  # Nothing was printed: the client is waiting for the server's first words.
  [ ! -s "$BATS_TEST_TMPDIR/out" ]
  stop_server
  wait "$waiting"
  assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" "server closed the connection"
}

@test "client: --reply-timeout says so once and goes on waiting" {
  hold_open busy
  client --reply-timeout 0.2 <<<"later" >"$BATS_TEST_TMPDIR/out" &
  local waiting=$!
  wait_until 5 grep -q "no reply within 0.2 s" "$BATS_TEST_TMPDIR/out"
  release busy
  wait "$waiting"
  run cat "$BATS_TEST_TMPDIR/out"
  assert_output $'no reply within 0.2 s: the server is busy with someone else\nrecv from server: LATER'
  stop_server
}

@test "client: --reset makes the server see a reset, not an end of stream" {
  run client --reset <<<"x"
  wait_for_log "reset$"
  run grep -c "disconnected$" "$SERVER_LOG"
  assert_output 0
  stop_server
}

@test "client: hold names its own address, says nothing, and hangs up on SIGTERM" {
  hold_open quiet
  run cat "$BATS_TEST_TMPDIR/quiet.out"
  assert_output --regexp '^connected from 127\.0\.0\.1:[0-9]+$'
  local port=${output##*:}
  wait_for_log "127\.0\.0\.1:$port connected$"
  release quiet
  wait_for_log "127\.0\.0\.1:$port disconnected$"
  run grep -c "wrote:" "$SERVER_LOG"
  assert_output 0
  stop_server
}

@test "client: a refused connection is exit 1 with one line naming it" {
  stop_server
  run --separate-stderr "$CLIENT" --port "$SERVER_PORT" <<<"x"
  assert_failure 1
  [ "$stderr" = "cannot connect to 127.0.0.1:$SERVER_PORT: Connection refused" ]
}

@test "client: started with standard output and error closed, it prints nothing to the server" {
  # Its socket would take the number 1, and "recv from server: HELLO" go to the server.
  "$CLIENT" --port "$SERVER_PORT" <<<"hello" >&- 2>&-
  wait_for_log "disconnected$" # after every byte the client sent
  run grep -c "wrote:" "$SERVER_LOG"
  assert_output 1
  stop_server
}

@test "client: hold, put and get with --udp are usage (exit 2)" {
  # A datagram socket has no connection to hold and no stream for a file: put waited
  # for ever for a reply, get failed without a word.
  local words
  for words in "hold" "put $BATS_TEST_TMPDIR/f" "get f"; do
    # shellcheck disable=SC2086 # the mode and its arguments, word-split on purpose
    run --separate-stderr timeout 10 "$CLIENT" --port "$SERVER_PORT" --udp $words </dev/null
    [ "$status" -eq 2 ] || fail "--udp $words: exit $status, stderr: $stderr"
    [[ "$stderr" == *"--udp is for chat and bench, not ${words%% *}"*"usage:"* ]] ||
      fail "--udp $words: $stderr"
  done
  stop_server
}

@test "client: an empty --unix path is usage (exit 2)" {
  run --separate-stderr "$CLIENT" --unix '' <<<"hello"
  assert_failure 2
  [[ "$stderr" == *"bad --unix: an empty path"*"usage:"* ]] || fail "--unix '': $stderr"
  stop_server
}

@test "client: --help exits 0; a bad option or an unknown mode exits 2" {
  run --separate-stderr "$CLIENT" --help
  assert_success
  for option in --host --port --unix --udp --recv-first --reply-timeout --reset chat hold bench; do
    assert_output --partial -- "$option"
  done
  run --separate-stderr "$CLIENT" --bogus
  assert_failure 2
  [[ "$stderr" == *usage:* ]]
  run --separate-stderr "$CLIENT" dance
  assert_failure 2
  run --separate-stderr "$CLIENT" --reply-timeout never
  assert_failure 2
}

# ---- numbers ----------------------------------------------------------------------------

@test "client: --port is a whole decimal number from 1 to 65535, anything else is usage (exit 2)" {
  # 99999 once connected to port 34463 (getaddrinfo keeps the low 16 bits); strtol took ' 80'.
  for port in 99999 65536 0 abc -1 '' ' 80' '80 ' +80 0x50; do
    for option in --port -p; do
      run --separate-stderr "$CLIENT" "$option" "$port" <<<"x"
      [ "$status" -eq 2 ] || fail "$option '$port': exit $status; stderr: $stderr"
      [ "${stderr%%$'\n'*}" = "$CLIENT: bad --port: '$port' (expected a whole number, 1 to 65535)" ] ||
        fail "$option '$port': stderr: $stderr"
      [[ $stderr == *$'\n'usage:* ]] || fail "$option '$port': no usage on stderr: $stderr"
      [ -z "$output" ] || fail "$option '$port': wrote to stdout: $output"
    done
  done
  for timeout in ' 1' 0x1 1e1 inf -1 '' .; do
    run --separate-stderr "$CLIENT" --port "$SERVER_PORT" --reply-timeout "$timeout" <<<"x"
    [ "$status" -eq 2 ] || fail "--reply-timeout '$timeout': exit $status; stderr: $stderr"
    [[ $stderr == *"bad --reply-timeout: '$timeout'"* ]] || fail "stderr: $stderr"
  done
  run client --reply-timeout .5 <<<"x" # the plain forms still work
  assert_success
  assert_output "recv from server: X"
  stop_server
}

# ---- hold and its release ---------------------------------------------------------------

# hold_cycles N - N hold clients one after another, each sent SIGTERM at a random moment
# (half right after its "connected from" line, half anywhere from its start); each must
# be gone within 2 s. The listener is the driver's own, so no server's pace matters.
hold_cycles() {
  python3 - "$CLIENT" "$1" "${2:-$RANDOM}" <<'PY'
import os, random, signal, socket, subprocess, sys, time
client, cycles, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
listener = socket.create_server(('127.0.0.1', 0))
listener.setblocking(False)
port = str(listener.getsockname()[1])
for i in range(cycles):
    r, w = os.pipe()  # its input never ends: we hold the writing end
    p = subprocess.Popen([client, '--port', port, 'hold'], stdin=r, stdout=subprocess.PIPE)
    os.close(r)
    if i % 2:
        p.stdout.readline()
        delay = rng.uniform(0, 50e-6)
    else:
        delay = rng.uniform(0, 3e-3)
    # The moment of the release is what is random here; nothing waits on it.
    until = time.perf_counter() + delay
    while time.perf_counter() < until:
        pass
    p.send_signal(signal.SIGTERM)
    try:
        status = p.wait(timeout=2)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        sys.exit('cycle %d (seed %d): still holding 2 s after SIGTERM, sent %.0f us in'
                 % (i, seed, delay * 1e6))
    finally:
        p.stdout.close()
        os.close(w)
    # 0: released; -SIGTERM: the signal came before the handler was in place.
    if status not in (0, -signal.SIGTERM):
        sys.exit('cycle %d (seed %d): exit status %d' % (i, seed, status))
    try:
        while True:
            listener.accept()[0].close()
    except BlockingIOError:
        pass
print('%d cycles' % cycles)
PY
}

@test "client: hold is released by SIGTERM whenever it lands (200 cycles, none may hang)" {
  stop_server
  # A signal between the check of the flag and a blocking read() was lost: the old hold
  # hung in about a third of these cycles.
  run hold_cycles 200
  assert_success
  assert_output "200 cycles"
}

# ---- put and get ------------------------------------------------------------------------

FTPSERVER="$LAB/step6_socketserver/ftpserver"

# fake_ftp NAME get HEADER BODY [STATUS] - a file server that answers every command with
# the frame HEADER, the bytes BODY and (if given) the frame STATUS, then closes.
# fake_ftp NAME stall - one that reads a command's header, prints it, reads nothing more
# until `say NAME ...`, then counts the body bytes until the end of stream.
# Either prints "serving on 127.0.0.1:PORT" first; the port goes to FAKE_PORT. Its log is
# NAME.out; `let_go NAME` stops it.
fake_ftp() {
  local name=$1
  shift
  cat >"$BATS_TEST_TMPDIR/fake_ftp.py" <<'PY'
import select, socket, struct, sys
mode = sys.argv[1]
def frame(text):
    return struct.pack('<i', len(text.encode())) + text.encode()
def recv_exact(c, n):
    data = b''
    while len(data) < n:
        chunk = c.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
listener = socket.socket()
# A small receive buffer (no autotuning): a stalled upload stays mostly on the client's side.
listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
listener.bind(('127.0.0.1', 0))
listener.listen(8)
print('serving on 127.0.0.1:%d' % listener.getsockname()[1], flush=True)
while True:
    ready = select.select([listener, sys.stdin], [], [])[0]
    if sys.stdin in ready and not sys.stdin.readline():
        break  # let_go
    if listener not in ready:
        continue
    c = listener.accept()[0]
    header = recv_exact(c, struct.unpack('<i', recv_exact(c, 4))[0]).decode()
    print('header: ' + header, flush=True)
    if mode == 'get':
        c.sendall(frame(sys.argv[2]) + sys.argv[3].encode() +
                  (frame(sys.argv[4]) if len(sys.argv) > 4 else b''))
    else:
        if not sys.stdin.readline():
            break
        total = 0
        while chunk := c.recv(65536):
            total += len(chunk)
        print('body: %d bytes' % total, flush=True)
    c.close()
PY
  in_background "$name" python3 "$BATS_TEST_TMPDIR/fake_ftp.py" "$@"
  wait_until 10 output_of "$name" '^serving on '
  FAKE_PORT=$(sed -n '1s/^serving on .*://p' "$BATS_TEST_TMPDIR/$name.out")
}

@test "client get: a transfer that breaks off leaves the file that was there, and no temporary file" {
  stop_server
  fake_ftp fake get '{"cmd":"get","filename":"f","filesize":100}' 'only ten b'
  local dl="$BATS_TEST_TMPDIR/dl"
  mkdir "$dl"
  printf 'the old contents\n' >"$dl/f"
  run --separate-stderr "$CLIENT" --port "$FAKE_PORT" get f -o "$dl/f"
  assert_failure 1
  assert_equal "$stderr" "get: the transfer broke off: connection closed"
  assert_equal "$(cat "$dl/f")" "the old contents"
  # Where nothing was, nothing is left.
  run --separate-stderr "$CLIENT" --port "$FAKE_PORT" get f -o "$dl/new"
  assert_failure 1
  assert_equal "$(ls -A "$dl")" f
  let_go fake
}

@test "client get: a fifo or a device is written straight through and never removed" {
  stop_server
  local dl="$BATS_TEST_TMPDIR/dl"
  mkdir "$dl"
  mkfifo "$dl/pipe"
  fake_ftp broken get '{"cmd":"get","filename":"f","filesize":100}' 'only ten b'
  cat "$dl/pipe" >"$dl/pipe.out" &
  local reader=$!
  run --separate-stderr "$CLIENT" --port "$FAKE_PORT" get f -o "$dl/pipe"
  assert_failure 1
  wait "$reader"
  [ -p "$dl/pipe" ] || fail "the fifo is gone: $(ls -l "$dl")"
  assert_equal "$(cat "$dl/pipe.out")" "only ten b" # what came, as it came
  let_go broken
  # A whole transfer into /dev/null or /dev/stdout: no temporary file beside either.
  fake_ftp whole get '{"cmd":"get","filename":"f","filesize":4}' 'abcd' '{"status":"ok"}'
  run --separate-stderr "$CLIENT" --port "$FAKE_PORT" get f -o /dev/null
  assert_success
  assert_output '{"status":"ok"}'
  [ -c /dev/null ] && [ -z "$(ls -A /dev | grep '^\.null\.')" ]
  # To standard output, by its name or as -: the file's bytes alone, the status beside.
  local output
  cd "$dl" # where a file named - would land
  for output in /dev/stdout -; do
    run --separate-stderr "$CLIENT" --port "$FAKE_PORT" get f -o "$output"
    assert_success
    assert_output 'abcd'
    assert_equal "$stderr" '{"status":"ok"}'
  done
  [ ! -e ./- ] || fail "get -o - wrote a file named -"
  let_go whole
}

@test "client get: a filesize that is not a whole, non-negative number is refused" {
  stop_server
  local dl="$BATS_TEST_TMPDIR/dl" fakes=0 size target
  mkdir "$dl"
  printf 'kept\n' >"$dl/f"
  for size in -5 '"abc"' '"5"' 1.5 1e3 99999999999999999999 null; do
    fakes=$((fakes + 1))
    fake_ftp "fake$fakes" get "{\"cmd\":\"get\",\"filename\":\"f\",\"filesize\":$size}" '' '{"status":"ok"}'
    for target in f new; do
      run --separate-stderr "$CLIENT" --port "$FAKE_PORT" get f -o "$dl/$target"
      [ "$status" -eq 1 ] || fail "filesize $size: exit $status; stdout: $output"
      assert_equal "$stderr" "get: the server's header has no filesize of whole bytes: {\"cmd\":\"get\",\"filename\":\"f\",\"filesize\":$size}"
    done
    assert_equal "$(cat "$dl/f")" kept
    assert_equal "$(ls -A "$dl")" f
    let_go "fake$fakes"
  done
}

@test "client get: a whole transfer replaces the file at once, keeping its mode and a link to it" {
  stop_server
  start_server "$FTPSERVER" --dir "$BATS_TEST_TMPDIR/up"
  local dl="$BATS_TEST_TMPDIR/dl"
  mkdir "$dl"
  printf 'new contents\n' >"$BATS_TEST_TMPDIR/src"
  client put "$BATS_TEST_TMPDIR/src" --as f
  printf 'old\n' >"$dl/f"
  chmod 640 "$dl/f"
  ln -s f "$dl/link"
  run client get f -o "$dl/link"
  assert_success
  [ -L "$dl/link" ] || fail "the link was replaced: $(ls -l "$dl")"
  cmp "$BATS_TEST_TMPDIR/src" "$dl/f"
  assert_equal "$(stat -c %a "$dl/f")" 640
  assert_equal "$(ls -A "$dl")" $'f\nlink'
  stop_server
}

@test "client put: a pipe is read to its end and uploaded whole" {
  stop_server
  local up="$BATS_TEST_TMPDIR/up"
  start_server "$FTPSERVER" --dir "$up"
  # The pipe's st_size is 0: the old client announced 0 bytes, said ok, then sent the text.
  run --separate-stderr bash -c 'echo text | "$0" --port "$1" put /dev/stdin --as notes' \
    "$CLIENT" "$SERVER_PORT"
  assert_success
  assert_output '{"status":"ok","filename":"notes","filesize":5}'
  assert_equal "$(cat "$up/notes")" text
  mkfifo "$BATS_TEST_TMPDIR/fifo"
  seq 1 30000 >"$BATS_TEST_TMPDIR/fifo" &
  run --separate-stderr client put "$BATS_TEST_TMPDIR/fifo" --as numbers
  assert_success
  cmp "$up/numbers" <(seq 1 30000)
  # No end, or too much to hold: refused before anything is sent.
  run --separate-stderr client put /dev/zero --as zero
  assert_failure 1
  assert_equal "$stderr" "put: /dev/zero is not a regular file and gives more than 64 MiB: save it to a file first"
  run --separate-stderr client put "$BATS_TEST_TMPDIR" --as dir
  assert_failure 1
  assert_equal "$stderr" "put: cannot read $BATS_TEST_TMPDIR: Is a directory"
  assert_equal "$(ls -A "$up")" $'notes\nnumbers'
  stop_server
}

@test "client put: a file that shrinks during the upload is an error, never a hang" {
  stop_server
  fake_ftp fake stall
  local big="$BATS_TEST_TMPDIR/big" status=0
  head -c 33554432 /dev/zero >"$big"
  # timeout is the deadline for a hang, not a pause: the client exits long before it.
  timeout $((20 * DEADLINE_SCALE)) "$CLIENT" --port "$FAKE_PORT" put "$big" \
    >"$BATS_TEST_TMPDIR/put.out" 2>"$BATS_TEST_TMPDIR/put.err" &
  local putting=$!
  wait_until 5 output_of fake '^header: .*"filesize":33554432}$'
  # The fake server takes no body bytes yet, so the client is stuck well short of the end.
  : >"$big"
  say fake go
  wait "$putting" || status=$?
  assert_equal "$status" 1
  run cat "$BATS_TEST_TMPDIR/put.err"
  assert_output --regexp "^put: $big shrank while being sent: it ended after [0-9]+ of 33554432 bytes$"
  [ ! -s "$BATS_TEST_TMPDIR/put.out" ] # no status: none was waited for
  wait_until 5 output_of fake '^body: [0-9]+ bytes$'
  run grep -c '^body: 33554432 bytes$' "$BATS_TEST_TMPDIR/fake.out"
  assert_output 0
  let_go fake
}
