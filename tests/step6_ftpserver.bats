#!/usr/bin/env bats
# passes: plain:2 memcheck:14 helgrind:4
# Step 6: the file server - put and get byte for byte, names that stay in the folder,
# frames that cannot be trusted, uploads that never appear half-done.

load helpers

# FTPSERVER overrides the binary, to watch the suite fail against a broken variant.
FTPSERVER="${FTPSERVER:-$LAB/step6_socketserver/ftpserver}"

setup() {
  UP="$BATS_TEST_TMPDIR/up"
  cd "$BATS_TEST_TMPDIR" || return 1
}

serve() { start_server "$FTPSERVER" --dir "$UP" "$@"; }

# raw BYTES - send BYTES (a Python expression; struct and json are imported), close the
# sending side, and print the JSON of every frame the server answers, one a line, until
# it closes the connection (or resets it, having left some of BYTES unread).
raw() {
  python3 - "$SERVER_PORT" "$1" <<'EOF'
import json, socket, struct, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.settimeout(30)
s.sendall(eval(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
data = b''
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        break
    if not chunk:
        break
    data += chunk
while data:
    n = struct.unpack('<i', data[:4])[0]
    print(data[4:4 + n].decode())
    data = data[4 + n:]
EOF
}

# frame TEXT - the Python expression of one frame: length, then TEXT.
frame() { printf "struct.pack('<i', len(%s)) + %s" "$1" "$1"; }

# still_serving - a put and a get still work, and the folder holds nothing else.
still_serving() {
  printf 'fine' >"$BATS_TEST_TMPDIR/fine"
  run client put "$BATS_TEST_TMPDIR/fine"
  assert_success
  assert_output '{"status":"ok","filename":"fine","filesize":4}'
  [ "$(ls -A "$UP")" = fine ]
}

put_get_round_trip() {
  serve --mode "$1"
  head -c 5242880 /dev/urandom >"$BATS_TEST_TMPDIR/big"
  run client put "$BATS_TEST_TMPDIR/big" --as big.bin
  assert_success
  assert_output '{"status":"ok","filename":"big.bin","filesize":5242880}'
  cmp "$BATS_TEST_TMPDIR/big" "$UP/big.bin"
  [ "$(ls -A "$UP")" = big.bin ] # no temp file left over
  run client get big.bin -o "$BATS_TEST_TMPDIR/back"
  assert_success
  assert_output '{"status":"ok","filename":"big.bin","filesize":5242880}'
  cmp "$BATS_TEST_TMPDIR/big" "$BATS_TEST_TMPDIR/back"
  : >"$BATS_TEST_TMPDIR/empty"
  client put "$BATS_TEST_TMPDIR/empty"
  client get empty -o "$BATS_TEST_TMPDIR/empty.back"
  [ -f "$BATS_TEST_TMPDIR/empty.back" ] && [ ! -s "$BATS_TEST_TMPDIR/empty.back" ]
  stop_server
  [ ! -s "$SERVER_ERR" ]
}

@test "ftpserver --mode sync: 5 MiB put and get, byte-identical" { put_get_round_trip sync; }
@test "ftpserver --mode threading: 5 MiB put and get, byte-identical" { put_get_round_trip threading; }
@test "ftpserver --mode forking: 5 MiB put and get, byte-identical" { put_get_round_trip forking; }

@test "ftpserver: a put replaces a file whole; several commands on one connection" {
  serve
  run raw "$(frame "json.dumps({'cmd':'put','filename':'a','filesize':3}).encode()") + b'one' + \
    $(frame "json.dumps({'cmd':'put','filename':'a','filesize':5}).encode()") + b'two!!' + \
    $(frame "json.dumps({'cmd':'get','filename':'a'}).encode()")"
  assert_success
  assert_output --partial '{"status":"ok","filename":"a","filesize":3}
{"status":"ok","filename":"a","filesize":5}
{"cmd":"get","filename":"a","filesize":5}'
  [ "$(cat "$UP/a")" = 'two!!' ]
  stop_server
}

@test "ftpserver: the folder is made if missing; ./file_upload by default" {
  start_server "$FTPSERVER"
  [ -d "$BATS_TEST_TMPDIR/file_upload" ]
  printf 'x' >"$BATS_TEST_TMPDIR/x"
  client put "$BATS_TEST_TMPDIR/x"
  [ "$(cat "$BATS_TEST_TMPDIR/file_upload/x")" = x ]
  stop_server
  printf 'not a folder' >"$BATS_TEST_TMPDIR/file"
  run --separate-stderr "$FTPSERVER" --dir "$BATS_TEST_TMPDIR/file" --port 0
  assert_failure 1
  [ "$stderr" = "cannot use $BATS_TEST_TMPDIR/file as the folder: Not a directory" ]
}

@test "ftpserver: names that would leave the folder, hide, or carry control bytes are refused" {
  serve
  printf 'evil' >"$BATS_TEST_TMPDIR/evil"
  local name long
  long=$(printf 'a%.0s' $(seq 300))
  for name in ../escape a/b /abs .. . .hidden .upload-x a..b "" $'new\nline' $'tab\there' "$long"; do
    run client put "$BATS_TEST_TMPDIR/evil" --as "$name"
    assert_failure 1
    assert_output --regexp '^\{"status":"error","reason":"[^"]+"\}$'
  done
  [ ! -e "$BATS_TEST_TMPDIR/escape" ] && [ ! -e /abs ]
  [ -z "$(ls -A "$UP")" ]
  still_serving
  stop_server
}

@test "ftpserver: a NUL in a name, raw or escaped, is refused" {
  serve
  run raw "$(frame "b'{\"cmd\":\"put\",\"filename\":\"a\\\\u0000b\",\"filesize\":1}'") + b'x'"
  assert_output '{"status":"error","reason":"a NUL in the header"}'
  run raw "$(frame "b'{\"cmd\":\"put\",\"filename\":\"a\\x00b\",\"filesize\":1}'") + b'x'"
  assert_output '{"status":"error","reason":"a NUL in the header"}'
  [ -z "$(ls -A "$UP")" ]
  still_serving
  stop_server
}

@test "ftpserver: get refuses names outside the folder, links and fifos, and missing files" {
  serve
  printf 'secret' >"$BATS_TEST_TMPDIR/secret"
  ln -s "$BATS_TEST_TMPDIR/secret" "$UP/link"
  mkfifo "$UP/fifo"
  local name
  for name in ../secret "$BATS_TEST_TMPDIR/secret" link fifo missing; do
    run client get "$name" -o "$BATS_TEST_TMPDIR/got"
    assert_failure 1
    assert_output --regexp '^\{"status":"error","reason":"[^"]+"\}$'
    [ ! -e "$BATS_TEST_TMPDIR/got" ]
  done
  run client get link -o "$BATS_TEST_TMPDIR/got"
  assert_output --partial "Too many levels of symbolic links" # O_NOFOLLOW
  stop_server
}

@test "ftpserver: a header length of 0, -1 or 9000 is answered, then the connection ends" {
  serve
  local length
  for length in 0 -1 9000; do
    run raw "struct.pack('<i', $length) + b'{}' * 10"
    assert_success
    assert_output "{\"status\":\"error\",\"reason\":\"header length $length is not from 1 to 8192\"}"
  done
  still_serving
  stop_server
}

@test "ftpserver: a header that is not a JSON object is answered, then the connection ends" {
  serve
  local header
  for header in "b'hello'" "b'[1, 2]'" "b'{\"cmd\":'" "b'\"put\"'"; do
    run raw "$(frame "$header") + $(frame "b'{\"cmd\":\"get\",\"filename\":\"x\"}'")"
    assert_success
    assert_output '{"status":"error","reason":"header is not a JSON object"}' # and no more
  done
  still_serving
  stop_server
}

@test "ftpserver: a bad filesize or an unknown command is refused" {
  serve
  local size
  for size in -1 1.5 '"3"' null; do
    run raw "$(frame "b'{\"cmd\":\"put\",\"filename\":\"f\",\"filesize\":$size}'") + b'abc'"
    assert_output '{"status":"error","reason":"filesize is not a whole number of bytes"}'
  done
  run raw "$(frame "b'{\"cmd\":\"delete\",\"filename\":\"f\"}'") + $(frame "b'{\"filename\":\"f\"}'")"
  assert_output '{"status":"error","reason":"unknown command"}
{"status":"error","reason":"unknown command"}' # the session goes on after each
  [ -z "$(ls -A "$UP")" ]
  still_serving
  stop_server
}

@test "ftpserver --max-size: a larger upload is refused and nothing is stored" {
  serve --max-size 1000
  head -c 1001 /dev/zero >"$BATS_TEST_TMPDIR/big"
  head -c 1000 /dev/zero >"$BATS_TEST_TMPDIR/small"
  run client put "$BATS_TEST_TMPDIR/big"
  assert_failure 1
  assert_output --partial '{"status":"error","reason":"file larger than --max-size"}'
  run client put "$BATS_TEST_TMPDIR/small"
  assert_success
  [ "$(ls -A "$UP")" = small ]
  stop_server
}

# interrupted_upload MODE HOW - a client sends half of its body, then closes (fin) or
# resets (reset): nothing is stored, not even a temp file.
interrupted_upload() {
  serve --mode "$1"
  python3 - "$SERVER_PORT" "$2" <<'EOF'
import json, socket, struct, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
head = json.dumps({'cmd': 'put', 'filename': 'half', 'filesize': 1 << 20}).encode()
s.sendall(struct.pack('<i', len(head)) + head + b'h' * (1 << 19))
if sys.argv[2] == 'reset':
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()
EOF
  wait_for_log "put half: interrupted, nothing stored" 10
  [ -z "$(ls -A "$UP")" ]
  still_serving
  stop_server
}

@test "ftpserver --mode sync: an upload cut short by the client's close leaves nothing" {
  interrupted_upload sync fin
}
@test "ftpserver --mode threading: an upload cut short by a reset leaves nothing" {
  interrupted_upload threading reset
}
@test "ftpserver --mode forking: an upload cut short by a reset leaves nothing" {
  interrupted_upload forking reset
}

@test "ftpserver: stopping the server in the middle of an upload leaves nothing" {
  local header='{"cmd":"put","filename":"cut","filesize":999999}' mode conn
  for mode in sync threading forking; do
    serve --mode "$mode"
    exec {conn}<>"/dev/tcp/$SERVER_HOST/$SERVER_PORT"
    printf "\\x$(printf %02x ${#header})\\x00\\x00\\x00%s" "$header" >&"$conn"
    head -c 1000 /dev/zero >&"$conn"
    wait_until 5 compgen -G "$UP/.upload-*" # the temp file is there, not the name ...
    [ ! -e "$UP/cut" ]
    stop_server
    exec {conn}>&-
    [ -z "$(ls -A "$UP")" ] # ... and gone
  done
}

# ---- Hostile input, the cases above do not cover ----------------------------------

@test "ftpserver: a header length larger than what follows ends the connection, nothing more" {
  serve
  run raw "struct.pack('<i', 100) + b'{\"cmd\":\"ge'" # 10 of the 100 bytes, then the close
  assert_success
  assert_output '' # no frame to answer: the connection just ends
  wait_for_log '^127\.0\.0\.1:[0-9]+ disconnected$'
  still_serving
  stop_server
}

@test "ftpserver: a filename that is missing or not a string is refused, and the session goes on" {
  serve
  local header body
  # A put's body is read and dropped, so the get after it is a frame of its own.
  while read -r header body; do
    run raw "$(frame "json.dumps($header).encode()") + $body + \
      $(frame "json.dumps({'cmd':'get','filename':'missing'}).encode()")"
    assert_success
    assert_line --index 0 '{"status":"error","reason":"no file name"}'
    assert_line --index 1 --regexp '^\{"status":"error","reason":"cannot send missing: [^"]+"\}$'
  done <<'EOF'
{'cmd':'put','filename':7,'filesize':3} b'abc'
{'cmd':'put','filesize':3} b'abc'
{'cmd':'put','filename':['a'],'filesize':3} b'abc'
{'cmd':'get','filename':7} b''
{'cmd':'get'} b''
EOF
  run raw "$(frame "json.dumps({'cmd':7}).encode()") + $(frame "json.dumps({'cmd':None}).encode()")"
  assert_output '{"status":"error","reason":"unknown command"}
{"status":"error","reason":"unknown command"}'
  [ -z "$(ls -A "$UP")" ]
  still_serving
  stop_server
}

@test "ftpserver: a name of 255 bytes is stored, 256 refused; DEL, ESC and CR are refused" {
  serve
  printf 'x' >"$BATS_TEST_TMPDIR/x"
  local n255 n256 name
  n255=$(printf 'b%.0s' $(seq 255))
  n256=$(printf 'b%.0s' $(seq 256))
  run client put "$BATS_TEST_TMPDIR/x" --as "$n255"
  assert_success
  run client put "$BATS_TEST_TMPDIR/x" --as "$n256"
  assert_output '{"status":"error","reason":"file name too long"}'
  for name in $'del\x7f' $'esc\x1b[31m' $'cr\r' $'bell\x07'; do
    run client put "$BATS_TEST_TMPDIR/x" --as "$name"
    assert_output '{"status":"error","reason":"file name contains a slash or a control byte"}'
  done
  [ "$(ls -A "$UP")" = "$n255" ]
  stop_server
}

@test "ftpserver: a put to the name of a planted symlink replaces the link, never writes through it" {
  serve
  printf 'outside' >"$BATS_TEST_TMPDIR/outside"
  ln -s "$BATS_TEST_TMPDIR/outside" "$UP/trap"
  printf 'evil' >"$BATS_TEST_TMPDIR/evil"
  run client put "$BATS_TEST_TMPDIR/evil" --as trap
  assert_success
  [ "$(cat "$BATS_TEST_TMPDIR/outside")" = outside ] # the file outside is untouched
  [ ! -L "$UP/trap" ] && [ "$(cat "$UP/trap")" = evil ]
  stop_server
}

@test "ftpserver under ulimit -f: a write the disk refuses is an error reply, and leaves nothing" {
  # 64 KiB per file; SIGXFSZ is left at its default here: the server must ignore it.
  start_server bash -c 'ulimit -f 64 && exec "$0" "$@"' "$FTPSERVER" --dir "$UP"
  head -c 200000 /dev/urandom >"$BATS_TEST_TMPDIR/big"
  run client put "$BATS_TEST_TMPDIR/big"
  assert_failure 1
  assert_output '{"status":"error","reason":"cannot store big: File too large"}'
  [ -z "$(ls -A "$UP")" ] # neither the temp file nor anything under the name
  still_serving # and the connection's whole body was read: the session was in step
  stop_server
}

@test "ftpserver: two uploads of one name at once end as one of them whole, never a mix" {
  serve
  head -c 2097152 /dev/urandom >"$BATS_TEST_TMPDIR/a"
  head -c 2097152 /dev/urandom >"$BATS_TEST_TMPDIR/b"
  # Both headers first, then the two bodies interleaved 64 KiB at a time, so the two
  # uploads are surely under way together.
  python3 - "$SERVER_PORT" "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" <<'EOF'
import json, socket, struct, sys
bodies = [open(path, 'rb').read() for path in sys.argv[2:]]
conns = [socket.create_connection(('127.0.0.1', int(sys.argv[1]))) for _ in bodies]
for c, body in zip(conns, bodies):
    head = json.dumps({'cmd': 'put', 'filename': 'same', 'filesize': len(body)}).encode()
    c.sendall(struct.pack('<i', len(head)) + head)
for at in range(0, len(bodies[0]), 65536):
    for c, body in zip(conns, bodies):
        c.sendall(body[at:at + 65536])
for c in conns:
    c.shutdown(socket.SHUT_WR)
    c.settimeout(30)
    reply = b''
    while chunk := c.recv(65536):
        reply += chunk
    assert b'"status":"ok"' in reply, reply
EOF
  cmp -s "$UP/same" "$BATS_TEST_TMPDIR/a" || cmp -s "$UP/same" "$BATS_TEST_TMPDIR/b"
  [ "$(ls -A "$UP")" = same ]
  stop_server
}

@test "ftpserver: a header Python's json would read otherwise is refused: bytes after it, a key twice, not UTF-8" {
  serve
  local header reason
  # Each is answered with the reason, then the connection ends (the get after it is not
  # answered): which filesize the client meant is not known, so neither is the next frame.
  while IFS='|' read -r header reason; do
    run raw "$(frame "$header") + b'abc' + $(frame "b'{\"cmd\":\"get\",\"filename\":\"f\"}'")"
    assert_success
    assert_output "{\"status\":\"error\",\"reason\":\"$reason\"}"
  done <<'CASES'
b'{"cmd":"put","filename":"f","filesize":3}{}'|trailing bytes after the JSON header
b'{"cmd":"put","filename":"f","filesize":3} x'|trailing bytes after the JSON header
b'{"cmd":"put","filename":"f","filesize":3}3'|trailing bytes after the JSON header
b'{"cmd":"put","filename":"f","filesize":3,"filesize":1}'|key \"filesize\" twice in the header
b'{"cmd":"put","filename":"f","filesize":3,"file\\u0073ize":1}'|key \"filesize\" twice in the header
b'{"cmd":"put","filename":"f","filename":"g","filesize":3}'|key \"filename\" twice in the header
b'{"cmd":"put","filename":"f","filesize":3,"x":{"a":1,"a":2}}'|key \"a\" twice in the header
b'{"cmd":"put","filename":"caf\xe9","filesize":3}'|header is not valid UTF-8
b'{"cmd":"put","filename":"\xc0\xaf","filesize":3}'|header is not valid UTF-8
b'{"cmd":"put","filename":"\xed\xa0\x80","filesize":3}'|header is not valid UTF-8
b'{"cmd":"put","filename":"\xf4\x90\x80\x80","filesize":3}'|header is not valid UTF-8
b'{"cmd":"put","filename":"f\xc3","filesize":3}'|header is not valid UTF-8
b'{"cmd":"put",\x0c"filename":"f","filesize":3}'|a control byte in the header
CASES
  [ -z "$(ls -A "$UP")" ]
  # Whitespace around the object is JSON's own, and a UTF-8 name is stored and echoed.
  run raw "$(frame "b' \\t{\"cmd\":\"put\",\"filename\":\"caf\\xc3\\xa9\",\"filesize\":3} \\r\\n'") + b'abc'"
  assert_success
  assert_output '{"status":"ok","filename":"café","filesize":3}'
  [ "$(cat "$UP/café")" = abc ]
  stop_server
}

# upload_under_way FILESIZE - connect and send a put of "cut" with FILESIZE bytes, only 1000
# of them; CONN is the connection, and the temp file is there once this returns.
upload_under_way() {
  local header="{\"cmd\":\"put\",\"filename\":\"cut\",\"filesize\":$1}"
  exec {CONN}<>"/dev/tcp/$SERVER_HOST/$SERVER_PORT"
  printf "\\x$(printf %02x ${#header})\\x00\\x00\\x00%s" "$header" >&"$CONN"
  head -c 1000 /dev/zero >&"$CONN"
  wait_until 5 compgen -G "$UP/.upload-*"
}

@test "ftpserver --mode forking, prefork: a receiver killed mid-upload: its temp file goes when it is reaped" {
  local mode
  for mode in forking prefork; do
    serve --mode "$mode"
    upload_under_way 999999
    # shellcheck disable=SC2046 # the pids, word-split on purpose
    kill -KILL $(ps -o pid= --ppid "$SERVER_PID") # as the OOM killer would: no clean-up
    wait_until 10 eval '[ -z "$(compgen -G "$UP/.upload-*")" ]' ||
      fail "$mode: the temp file stayed: $(ls -A "$UP")"
    exec {CONN}>&-
    still_serving
    stop_server
    rm -f "$UP/fine"
  done
}

@test "ftpserver --mode forking: a child killed mid-upload just before a stop leaves nothing" {
  serve --mode forking
  upload_under_way 999999
  kill -KILL "$(ps -o pid= --ppid "$SERVER_PID")"
  stop_server
  exec {CONN}>&-
  [ -z "$(ls -A "$UP")" ] || fail "left behind: $(ls -A "$UP")"
}

@test "ftpserver: a server killed mid-upload leaves a temp file, which the next start removes" {
  serve --mode forking
  upload_under_way 999999
  local child
  child=$(ps -o pid= --ppid "$SERVER_PID")
  # Neither may clean up: the child would if it saw its parent go (the children's pipe
  # ends) and the parent if it reaped the child, so the parent is stopped first.
  kill -STOP "$SERVER_PID"
  kill -KILL $child "$SERVER_PID"
  wait_for_exit 10
  wait_until 10 eval "! kill -0 $child 2>/dev/null" # its lock goes with it
  exec {CONN}>&-
  compgen -G "$UP/.upload-*" # left behind ...
  : >"$UP/.keep" # not of the temp files' pattern: left alone
  : >"$UP/.upload-abc"
  serve
  [ -z "$(compgen -G "$UP/.upload-??????")" ] # ... and removed at the start
  [ -e "$UP/.keep" ] && [ -e "$UP/.upload-abc" ] && [ ! -e "$UP/cut" ]
  rm "$UP/.keep" "$UP/.upload-abc"
  still_serving
  stop_server
}

@test "ftpserver: a start in the same folder leaves another server's upload under way alone" {
  serve
  upload_under_way 2000
  # A second server on the folder, started by hand (start_server holds one server).
  "$FTPSERVER" --dir "$UP" --port 0 </dev/null >"$BATS_TEST_TMPDIR/second.out" 2>&1 3>&- &
  local second=$!
  wait_until 10 grep -q '^serving on ' "$BATS_TEST_TMPDIR/second.out"
  compgen -G "$UP/.upload-*" # the first server's temp file is still there ...
  head -c 1000 /dev/zero >&"$CONN"
  wait_for_log ' ok: cut, 2000 bytes$' 10
  exec {CONN}>&-
  [ "$(stat -c %s "$UP/cut")" = 2000 ] # ... and became the file, whole
  [ "$(ls -A "$UP")" = cut ]
  kill -TERM "$second"
  wait "$second"
  stop_server
}
