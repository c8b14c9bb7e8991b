#!/usr/bin/env python3
# tests/articles/threadname_clients.py - the thread-name article's three clients, in Python 3.
#
# Usage: threadname_clients.py HOST PORT
# The article ran its ThreadingMixIn server in the same process; here the server is
# step6_socketserver/threadname, so only the clients remain, one after another.
import socket
import sys

BUF_SIZE = 1024


def client(ip, port, message):
    """A client to test threading mixin server"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((ip, port))
    try:
        sock.sendall(message.encode())
        response = sock.recv(BUF_SIZE)
        print("Client received: %s" % response.decode())
    finally:
        sock.close()


if __name__ == '__main__':
    ip, port = sys.argv[1], int(sys.argv[2])
    client(ip, port, "Hello from client1")
    client(ip, port, "Hello from client2")
    client(ip, port, "Hello from client3")
