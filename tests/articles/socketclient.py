#!/usr/bin/env python3
# tests/articles/socketclient.py - the echo article's socketclient, in Python 3.
#
# Usage: socketclient.py HOST PORT
# Changes from the article: the address comes from the arguments, and the end of input
# (or an empty line, which the article would send as nothing and then wait for ever)
# ends the conversation.
import socket
import sys

client = socket.socket()
client.connect((sys.argv[1], int(sys.argv[2])))
while True:
    try:
        msg = input(">>: ").strip()
    except EOFError:
        break
    if not msg:
        break
    client.send(msg.encode("UTF-8"))
    data = client.recv(1024)  # receive up to 1024 bytes
    print("recv from server: ", data)
client.close()
