#!/usr/bin/env python3
"""Hostile and clumsy clients against a server binary, and Redis beside it.

Each scenario starts its own server on a free loopback port, runs for a few seconds,
stops it, and prints one line of figures. Standard library only.

    benches/hostile.py nonreaders BINARY [server flags...]
        16 clients that pipeline 300 requests and never read (8 GETs of a 512 KiB
        value, 8 SCANs of 1,000 records), a PING every 50 ms from another client;
        resident memory before, during and after, and the PINGs' latency.
    benches/hostile.py idle BINARY --idle-timeout 1 [server flags...]
        One client pipelines 300 GETs of a 512 KiB value and never reads; another
        PINGs every 50 ms for 3 s, past the first one's idle deadline: the PINGs'
        worst latency, or how many went unanswered within 2 s.
    benches/hostile.py biggets BINARY|redis [server flags...]
        4 clients pipelining GETs of a 1 MB value (16 at a time, reading them), and
        a PING on a fresh connection every 25 ms: its latency, median and worst of 40.
    benches/hostile.py scans BINARY [server flags...]
        50 clients each pipeline 100 SCANs (page limit 1,000, over 20,000 records)
        and read every answer: the time until all are answered and the server's CPU
        per SCAN page.
    benches/hostile.py stop BINARY [server flags...]
        50 clients each pipeline 100 SCANs (page limit 1,000, over 20,000 records),
        then, half a second later, SIGTERM: how long the server took to exit, its
        status, and how many requests were answered OK, answered SHUTTING_DOWN, or
        not answered.
"""

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

# --- switchboard frames -------------------------------------------------------------


def frame(opcode, rid, body):
    return struct.pack(">IBBBBI", 8 + len(body), 1, opcode, 0, 0, rid) + body


def sb_put(key, value):
    return frame(0x11, 0, struct.pack(">IH", 0, len(key)) + key + value)


def sb_get(key, rid=0):
    return frame(0x10, rid, struct.pack(">H", len(key)) + key)


def sb_scan(prefix, rid, limit=1000):
    return frame(0x14, rid, struct.pack(">HH", limit, len(prefix)) + prefix + b"\0\0")


SB_PING = frame(0x02, 7, b"")


class Frames:
    """Reads whole switchboard frames from a socket: (status, request id)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def next(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    status, rid = self.buf[7], struct.unpack(">I", self.buf[8:12])[0]
                    del self.buf[: 4 + n]
                    return status, rid
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            self.buf += data


# --- RESP (Redis) -------------------------------------------------------------------


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def resp_read_one(sock, buf):
    """Reads one RESP reply (simple string, error, integer or bulk) into nothing."""
    while True:
        i = buf.find(b"\r\n")
        if i >= 0:
            kind = buf[:1]
            if kind in (b"+", b"-", b":"):
                del buf[: i + 2]
                return True
            if kind == b"$":
                n = int(buf[1:i])
                need = i + 2 + max(n, 0) + (2 if n >= 0 else 0)
                if len(buf) >= need:
                    del buf[:need]
                    return True
        data = sock.recv(1 << 20)
        if not data:
            return False
        buf += data


# --- servers ------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, flags):
    if binary == "redis":
        port = free_port()
        p = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"] + flags,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                return p, ("127.0.0.1", port)
            except OSError:
                time.sleep(0.05)
        raise SystemExit("redis did not start")
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0"] + flags,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    host, port = p.stdout.readline().decode().split()[-1].rsplit(":", 1)
    return p, (host, int(port))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def settled_rss(pid):
    last = rss_mib(pid)
    for _ in range(50):
        time.sleep(0.2)
        now = rss_mib(pid)
        if abs(now - last) < 1:
            return now
        last = now
    return last


def fill(addr, count, value):
    s = socket.create_connection(addr)
    f = Frames(s)
    for base in range(0, count, 1000):
        n = min(1000, count - base)
        s.sendall(b"".join(sb_put(b"scan:%08d" % i, value) for i in range(base, base + n)))
        for _ in range(n):
            f.next()
    s.close()


# --- scenarios ----------------------------------------------------------------------


def nonreaders(binary, flags):
    p, addr = start(binary, flags)
    s = socket.create_connection(addr)
    s.sendall(sb_put(b"big", b"v" * (512 << 10)))
    Frames(s).next()
    fill(addr, 20_000, b"v" * 200)
    before = settled_rss(p.pid)
    stuck = []
    for _ in range(8):
        t = socket.create_connection(addr)
        t.sendall(b"".join(sb_get(b"big", j) for j in range(300)))
        stuck.append(t)
        t = socket.create_connection(addr)
        t.sendall(b"".join(sb_scan(b"scan:", j) for j in range(300)))
        stuck.append(t)
    pinger = socket.create_connection(addr)
    frames = Frames(pinger)
    lat = []
    for _ in range(40):
        t0 = time.time()
        pinger.sendall(SB_PING)
        frames.next()
        lat.append((time.time() - t0) * 1000)
        time.sleep(0.05)
    during = settled_rss(p.pid)
    for t in stuck:
        t.close()
    time.sleep(0.5)
    after = settled_rss(p.pid)
    p.terminate()
    p.wait()
    lat.sort()
    print(f"nonreaders {binary} {' '.join(flags)}: RSS before {before:.0f} MiB, "
          f"during {during:.0f} MiB, after {after:.0f} MiB; "
          f"PING p50 {lat[20]:.1f} ms, worst {lat[-1]:.1f} ms")


def idle(binary, flags):
    p, addr = start(binary, flags)
    s = socket.create_connection(addr)
    s.sendall(sb_put(b"big", b"v" * (512 << 10)))
    Frames(s).next()
    stuck = socket.create_connection(addr)
    stuck.sendall(b"".join(sb_get(b"big", j) for j in range(300)))
    pinger = socket.create_connection(addr)
    pinger.settimeout(2)
    frames = Frames(pinger)
    worst, lost = 0.0, 0
    end = time.time() + 3
    while time.time() < end and lost == 0:
        t0 = time.time()
        pinger.sendall(SB_PING)
        try:
            frames.next()
            worst = max(worst, (time.time() - t0) * 1000)
        except socket.timeout:
            lost += 1
        time.sleep(0.05)
    p.kill()
    p.wait()
    verdict = f"a PING unanswered after 2 s (the server froze)" if lost else f"worst PING {worst:.1f} ms"
    print(f"idle {binary} {' '.join(flags)}: {verdict}")


def biggets(binary, flags):
    redis = binary == "redis"
    p, addr = start(binary, flags)
    load = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release",
                        "switchboard-load")
    common = [load, "--addr", "%s:%d" % addr, "--protocol", "resp" if redis else "switchboard",
              "--keys", "1", "--value-size", str(1 << 20), "--quiet"]
    # One 1 MB value, then four connections reading GETs of it, 16 in flight each: the
    # load runs in its own process, so the PINGs below are timed without contention
    # in this one.
    subprocess.run(common + ["--mix", "put=1", "--requests", "1", "--warmup", "0s",
                             "--connections", "1"], check=True, stdout=subprocess.DEVNULL)
    loader = subprocess.Popen(common + ["--mix", "get=1", "--connections", "4", "--pipeline",
                                        "16", "--duration", "4s", "--warmup", "0s"],
                              stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    lat = []
    for _ in range(40):
        t0 = time.time()
        c = socket.create_connection(addr)
        if redis:
            c.sendall(resp(b"PING"))
            resp_read_one(c, bytearray())
        else:
            c.sendall(SB_PING)
            Frames(c).next()
        lat.append((time.time() - t0) * 1000)
        c.close()
        time.sleep(0.025)
    loader.wait()
    p.terminate()
    p.wait()
    lat.sort()
    print(f"biggets {binary} {' '.join(flags)}: fresh-connection PING "
          f"median {lat[20]:.1f} ms, worst of 40 {lat[-1]:.1f} ms")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scans(binary, flags):
    p, addr = start(binary, flags)
    fill(addr, 20_000, b"v")

    def client():
        c = socket.create_connection(addr)
        c.sendall(b"".join(sb_scan(b"scan:", j) for j in range(100)))
        frames = Frames(c)
        for _ in range(100):
            frames.next()

    cpu = cpu_seconds(p.pid)
    t0 = time.time()
    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - t0
    cpu = cpu_seconds(p.pid) - cpu
    p.terminate()
    p.wait()
    print(f"scans {binary} {' '.join(flags)}: 5000 SCAN pages answered in {took:.2f} s; "
          f"server CPU {cpu * 1e6 / 5000:.0f} us per page")


def stop_scenario(binary, flags):
    p, addr = start(binary, flags)
    fill(addr, 20_000, b"v")
    results = []

    def client():
        c = socket.create_connection(addr)
        c.sendall(b"".join(sb_scan(b"scan:", j) for j in range(100)))
        frames = Frames(c)
        ok = refused = 0
        while True:
            try:
                got = frames.next()
            except OSError:
                got = None
            if got is None:
                break
            if got[0] == 0x00:
                ok += 1
            elif got[0] == 0x22:
                refused += 1
        results.append((ok, refused))

    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    # Every pipeline is written and, a moment later, read by the server.
    time.sleep(0.5)
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        status = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        status = "killed after 60 s"
    took = time.time() - t0
    for t in threads:
        t.join(timeout=10)
    ok = sum(r[0] for r in results)
    refused = sum(r[1] for r in results)
    print(f"stop {binary} {' '.join(flags)}: exited after {took:.2f} s with status {status}; "
          f"of 5000 requests {ok} OK, {refused} SHUTTING_DOWN, {5000 - ok - refused} unanswered; "
          f"{sum(1 for r in results if r[0] + r[1] < 100)} connections short of their answers")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    scenario, binary, flags = sys.argv[1], sys.argv[2], sys.argv[3:]
    scenarios = {
        "idle": idle,
        "nonreaders": nonreaders,
        "biggets": biggets,
        "scans": scans,
        "stop": stop_scenario,
    }
    scenarios[scenario](binary, flags)
