#!/usr/bin/env python3
"""Bytes of server RSS per idle connection.

Usage: idle_memory.py HOST:PORT SERVER_PID [COUNT] [--ping] [--tls CAFILE]

Opens COUNT connections (default 5000; raise `ulimit -n` first), optionally sends one
PING on each and reads the answer, then reports the growth of the server's resident
set divided by COUNT. Redis and memcached can be measured the same way (without
--ping, which speaks switchboard's protocol).

With --tls each connection finishes a TLS handshake first (the certificate checked
against CAFILE and the name localhost), so the figure includes the server's TLS
session; Redis's --tls-port can be measured the same way.
"""

import socket
import ssl
import struct
import sys
import time


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main():
    argv = sys.argv[1:]
    context = None
    if "--tls" in argv:
        i = argv.index("--tls")
        context = ssl.create_default_context(cafile=argv[i + 1])
        del argv[i:i + 2]
    args = [a for a in argv if a != "--ping"]
    ping = "--ping" in argv
    if len(args) < 2:
        sys.exit(__doc__)
    host, port = args[0].rsplit(":", 1)
    pid = int(args[1])
    count = int(args[2]) if len(args) > 2 else 5000
    before = rss(pid)
    socks = []
    for i in range(count):
        s = socket.create_connection((host, int(port)), timeout=10)
        if context is not None:
            s = context.wrap_socket(s, server_hostname="localhost")
        socks.append(s)
        if ping:
            # length 8, version 1, PING, no flags, status 0, request id i
            s.sendall(struct.pack(">IBBBBI", 8, 1, 0x02, 0, 0, i))
    if ping:
        for s in socks:
            if len(s.recv(64)) < 12:
                sys.exit("short PING answer")
    time.sleep(0.5)
    after = rss(pid)
    what = "after one PING each" if ping else "silent"
    if context is not None:
        what += ", TLS"
    print(f"{count} idle connections ({what}): {(after - before) / count:.0f} bytes of RSS each")


if __name__ == "__main__":
    main()
