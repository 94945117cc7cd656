"""The demo round: ``demo`` runs every request against a live server and checks each
answer; ``main`` is its command line (``python3 -m switchboard_client --addr
HOST:PORT``, or the ``switchboard-client-demo`` script), exiting 0 only if every
answer was the expected one.
"""

import argparse
import os
import sys
import time

from .client import Change, Client, parse_addr
from .codec import FEATURE_PUSH, ProtocolError, Request, ServerError, status_name
from .describe import describe_response


# ---------------------------------------------------------------------------
# Demo round
# ---------------------------------------------------------------------------


class Checker:
    def __init__(self):
        self.passed = 0

    def check(self, what, cond, detail=""):
        if not cond:
            raise AssertionError("FAILED: %s %s" % (what, detail))
        self.passed += 1
        print("ok   %s" % what)


def demo(host, port, batch=128):
    c = Checker()
    prefix = ("demo:%d:%d:" % (os.getpid(), time.time_ns())).encode()
    with Client(host, port=port) as cl:
        reply = cl.hello()
        c.check("HELLO negotiated version 1", reply["version"] == 1, repr(reply))
        c.check("HELLO granted no unrequested feature", reply["features"] == 0, repr(reply))
        c.check("HELLO limits are consistent",
                reply["max_value"] <= reply["max_frame"] and reply["max_key"] >= 1, repr(reply))
        print("     server: %s" % reply["server"].decode("utf-8", "replace"))

        c.check("PING echoes its payload", cl.ping(b"\x00hi\xff") == b"\x00hi\xff")

        k1 = prefix + b"a"
        v1 = cl.put(k1, b"one")
        c.check("PUT returns a non-zero version", v1 > 0, str(v1))
        c.check("GET returns the value and version", cl.get(k1) == (v1, b"one"), repr(cl.get(k1)))
        v2 = cl.put(k1, b"two")
        c.check("a second PUT returns a larger version", v2 > v1, "%d then %d" % (v1, v2))

        ok, cur = cl.cas(k1, v1, b"stale")
        c.check("CAS at a stale version conflicts with the current version",
                (ok, cur) == (False, v2), repr((ok, cur)))
        ok, cur = cl.cas(k1, 0, b"create")
        c.check("CAS expected=0 on an existing key conflicts", (ok, cur) == (False, v2),
                repr((ok, cur)))
        ok, cur = cl.cas(prefix + b"missing", 7, b"x")
        c.check("CAS expected!=0 on a missing key conflicts with 0", (ok, cur) == (False, 0),
                repr((ok, cur)))
        ok, v3 = cl.cas(k1, v2, b"three")
        c.check("CAS at the current version succeeds", ok and v3 > v2, repr((ok, v3)))
        c.check("GET sees the CAS write", cl.get(k1) == (v3, b"three"))

        for suffix in (b"c", b"b", b"d"):
            cl.put(prefix + suffix, suffix * 3)
        page = cl.scan_page(prefix, b"", 2)
        keys = [e[0] for e in page["entries"]]
        c.check("SCAN page of 2 is in key order", keys == [prefix + b"a", prefix + b"b"],
                repr(keys))
        c.check("SCAN page has a cursor to continue", page["next_cursor"] != b"",
                repr(page["next_cursor"]))
        c.check("SCAN seq covers our writes", page["seq"] >= v3, repr(page["seq"]))
        rest = cl.scan_page(prefix, page["next_cursor"], 0)
        keys = [e[0] for e in rest["entries"]]
        c.check("SCAN continues strictly after the cursor",
                keys == [prefix + b"c", prefix + b"d"], repr(keys))
        c.check("SCAN ends with an empty cursor", rest["next_cursor"] == b"")
        c.check("SCAN by prefix sees exactly our 4 keys", len(cl.scan(prefix, limit=1)) == 4)

        status, seq = cl.delete(k1, expected=v1)
        c.check("DELETE at a stale version conflicts", (status, seq) == ("VERSION_CONFLICT", v3),
                repr((status, seq)))
        status, seq = cl.delete(k1)
        c.check("DELETE returns a sequence number past the last write",
                status == "OK" and seq > v3, repr((status, seq)))
        c.check("GET after DELETE is NOT_FOUND", cl.get(k1) is None)
        status, _ = cl.delete(k1)
        c.check("DELETE of a missing key is NOT_FOUND", status == "NOT_FOUND", status)
        v4 = cl.put(k1, b"again")
        c.check("a re-created record never reuses a version", v4 > seq, "%d after %d"
                % (v4, seq))

        resp = cl.call(Request("PUT", key=prefix + b"ttl", value=b"x", ttl_ms=1000))
        c.check("PUT with a TTL is UNSUPPORTED without the TTL feature",
                status_name(resp.status) == "UNSUPPORTED", describe_response(resp))
        resp = cl.call(Request("HELLO"))
        c.check("a second HELLO is BAD_REQUEST", status_name(resp.status) == "BAD_REQUEST",
                describe_response(resp))
        c.check("the connection is still usable", cl.ping(b"still") == b"still")

        # Pipelining: one write with `batch` PUTs and `batch` GETs, then read them all.
        reqs = [Request("PUT", key=prefix + b"p%04d" % i, value=b"v%d" % i)
                for i in range(batch)]
        reqs += [Request("GET", key=prefix + b"p%04d" % i) for i in range(batch)]
        first_id = cl.next_id
        resps = cl.pipeline(reqs)
        c.check("pipelined %d requests came back in order with their ids" % len(reqs),
                [r.request_id for r in resps] == list(range(first_id, first_id + len(reqs))))
        put_versions = [r.fields.get("version") for r in resps[:batch]]
        c.check("every pipelined PUT succeeded with increasing versions",
                all(r.ok for r in resps[:batch])
                and all(a < b for a, b in zip(put_versions, put_versions[1:])))
        c.check("every pipelined GET read its PUT",
                all(r.ok and r.fields["value"] == b"v%d" % i
                    and r.fields["version"] == put_versions[i]
                    for i, r in enumerate(resps[batch:])))

        # Subscriptions: a second connection with PUSH watches while this one writes.
        with Client(host, port=port) as sub:
            reply = sub.hello(FEATURE_PUSH)
            c.check("HELLO grants PUSH and names a history", reply["features"] == FEATURE_PUSH
                    and reply["history"] != 0, repr(reply))
            sp = prefix + b"sub:"
            sid = sub.subscribe(sp)
            ver = cl.put(sp + b"k", b"v")
            push = sub.next_push(5.0)
            c.check("a PUT under the prefix is pushed as an EVENT",
                    push is not None and push.name == "EVENT" and push.fields == {
                        "sub_id": sid, "seq": ver, "kind": "put", "key": sp + b"k",
                        "value": b"v"}, repr(push))
            c.check("PUBLISH reaches the subscriber", cl.publish(sp + b"chat", b"hi") >= 1)
            push = sub.next_push(5.0)
            c.check("the message is pushed as a MESSAGE",
                    push is not None and push.name == "MESSAGE"
                    and (push["subject"], push["payload"]) == (sp + b"chat", b"hi"), repr(push))
            c.check("UNSUBSCRIBE ends it, a second one is NOT_FOUND",
                    sub.unsubscribe(sid) and not sub.unsubscribe(sid))

            cl.put(sp + b"w1", b"one")
            cl.put(sp + b"w2", b"two")
            watch = sub.watch(sp + b"w", limit=1, timeout=5.0)
            listed = [next(watch), next(watch)]
            c.check("watch lists the records first",
                    [(ch.kind, ch.key, ch.value) for ch in listed]
                    == [("put", sp + b"w1", b"one"), ("put", sp + b"w2", b"two")], repr(listed))
            _, seq = cl.delete(sp + b"w1")
            change = next(watch)
            c.check("then yields each change", change == Change("delete", sp + b"w1", seq, None),
                    repr(change))
            watch.close()
            c.check("closing the watch ends its subscription", sub.subscriptions == {})

        text = cl._expect(Request("STATS")).fields["text"].decode("utf-8")
        lines = text.split("\n")
        c.check("STATS is newline-terminated \"name value\" lines",
                lines[-1] == "" and all(len(line.split(" ")) == 2
                                        and line.split(" ")[1].isdigit()
                                        for line in lines[:-1]), repr(text[:200]))
    return c.passed



def main(argv=None):
    ap = argparse.ArgumentParser(description="switchboard demo client")
    ap.add_argument("--addr", required=True, help="server address, HOST:PORT")
    ap.add_argument("--batch", type=int, default=128,
                    help="PUTs (and as many GETs) in the pipelined batch")
    args = ap.parse_args(argv)
    try:
        host, port = parse_addr(args.addr)
        passed = demo(host, port, args.batch)
    except AssertionError as e:
        print(e, file=sys.stderr)
        return 1
    except (OSError, ProtocolError, ServerError, ValueError) as e:
        print("FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 2
    print("all %d checks passed" % passed)
    return 0
