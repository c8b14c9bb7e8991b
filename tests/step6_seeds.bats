#!/usr/bin/env bats
# passes: plain memcheck:5
# Step 6: the Python articles' own clients (tests/articles/, in Python 3) against our programs,
# transcripts checked line for line.

load helpers

STEP6="$LAB/step6_socketserver"
SEEDS="$LAB/tests/articles"
# Each binary may be overridden, to watch the suite fail against a broken variant.
UPPER="${UPPER:-$STEP6/upper}"
CALLCENTER="${CALLCENTER:-$STEP6/callcenter}"
FTPSERVER="${FTPSERVER:-$STEP6/ftpserver}"
THREADNAME="${THREADNAME:-$STEP6/threadname}"

@test "seed 003's socketclient talks to upper in every mode" {
  for mode in sync threading forking; do
    start_server "$UPPER" --mode "$mode"
    run python3 "$SEEDS/socketclient.py" "$SERVER_HOST" "$SERVER_PORT" <<<$'aa\nbb\nfrom client1'
    assert_success
    assert_output ">>: recv from server:  b'AA'
>>: recv from server:  b'BB'
>>: recv from server:  b'FROM CLIENT1'
>>: "
    wait_for_log " wrote: from client1$"
    stop_server
  done
}

@test "seed 000's 10086 client calls the call center" {
  start_server "$CALLCENTER"
  run python3 "$SEEDS/callcenter_client.py" "$SERVER_HOST" "$SERVER_PORT" <<<$'1001\n0\nexit'
  assert_success
  assert_output "receive: 欢迎致电 10086,请输入1xxx,0转人工服务.
please input:receive: 请重新输入.
please input:receive: 通过可能会被录音.balabala一大推
please input:"
  wait_for_log "^127\.0\.0\.1:[0-9]+ disconnected$"
  stop_server
}

@test "seed 002's put client (struct.pack('i'), never reads a reply) uploads to ftpserver" {
  for mode in sync threading forking; do
    rm -rf "$BATS_TEST_TMPDIR/up"
    start_server "$FTPSERVER" --mode "$mode" --dir "$BATS_TEST_TMPDIR/up"
    head -c 3000000 /dev/urandom >"$BATS_TEST_TMPDIR/photo.jpg"
    run python3 "$SEEDS/put_client.py" "$SERVER_HOST" "$SERVER_PORT" "$BATS_TEST_TMPDIR/photo.jpg"
    assert_success
    assert_output ""
    wait_for_log "ok: photo.jpg, 3000000 bytes"
    cmp "$BATS_TEST_TMPDIR/photo.jpg" "$BATS_TEST_TMPDIR/up/photo.jpg"
    [ "$(ls -A "$BATS_TEST_TMPDIR/up")" = photo.jpg ]
    stop_server
    [ ! -s "$SERVER_ERR" ] # the unread reply is no error
  done
}

@test "seed 004's three clients get Thread-1, Thread-2, Thread-3 from threadname" {
  start_server "$THREADNAME"
  run python3 "$SEEDS/threadname_clients.py" "$SERVER_HOST" "$SERVER_PORT"
  assert_success
  assert_output "Client received: Thread-1: Hello from client1
Client received: Thread-2: Hello from client2
Client received: Thread-3: Hello from client3"
  stop_server
}
