#!/usr/bin/env python3
# tests/articles/callcenter_client.py - the call-center article's client of the 10086 line, in Python 3.
#
# Usage: callcenter_client.py HOST PORT
# Changes from the article: Python 3 (bytes are encoded and decoded as UTF-8, print and
# input are functions), the address comes from the arguments, and the end of input
# ends the call as `exit` would.
import socket
import sys

ip_port = (sys.argv[1], int(sys.argv[2]))
sk = socket.socket()
sk.connect(ip_port)
sk.settimeout(5)

while True:
    data = sk.recv(1024)
    print('receive:', data.decode())
    try:
        inp = input('please input:')
    except EOFError:
        break
    sk.sendall(inp.encode())
    if inp == 'exit':
        break

sk.close()
