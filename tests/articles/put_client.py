#!/usr/bin/env python3
# tests/articles/put_client.py - the upload client that the upload article's ftpserver implies.
#
# Usage: put_client.py HOST PORT FILE
# The article's server reads struct.unpack('i', recv(4)), then a JSON header
# {"cmd": "put", "filename": ..., "filesize": ...}, then filesize bytes; so this client
# sends exactly that, with the native 'i' of the article, and never reads a reply.
# (sendall where a bare send could send part of a line.)
import json
import os
import socket
import struct
import sys

host, port, file_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.connect((host, port))

filesize = os.path.getsize(file_path)
head_dic = {'cmd': 'put', 'filename': os.path.basename(file_path), 'filesize': filesize}
head_json = json.dumps(head_dic).encode('utf-8')
client.sendall(struct.pack('i', len(head_json)))
client.sendall(head_json)
with open(file_path, 'rb') as f:
    for line in f:
        client.sendall(line)
client.close()
