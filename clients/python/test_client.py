"""Tests the blocking Client against a scripted peer on a socket pair (no server needed)."""

import socket
import threading
import unittest

import switchboard_client as sb


class ScriptedPeer(threading.Thread):
    """Reads `expect` request frames, answering each with `answer(frame)` as it arrives."""

    def __init__(self, sock, expect, answer):
        super().__init__(daemon=True)
        self.sock, self.expect, self.answer = sock, expect, answer
        self.requests = []
        self.error = None

    def run(self):
        dec = sb.FrameDecoder()
        try:
            while len(self.requests) < self.expect:
                frame = dec.next_frame()
                if frame is None:
                    data = self.sock.recv(65536)
                    if not data:
                        break
                    dec.feed(data)
                    continue
                self.requests.append(frame)
                out = self.answer(frame)
                if out:
                    self.sock.sendall(out)
        except Exception as e:  # reported by the test through self.error
            self.error = e
        finally:
            self.sock.shutdown(socket.SHUT_WR)


def echo(frame):
    return sb.encode_frame(frame.opcode, frame.request_id, frame.body)


def reply(frame, status, body=b""):
    return sb.encode_frame(frame.opcode, frame.request_id, body, status=sb.STATUSES[status])


def ok(frame, **fields):
    return sb.encode_response(sb.Response(frame.request_id, frame.opcode, 0, **fields))


def scripted(answers):
    """An answer function giving the i-th request the i-th answer."""
    count = [0]

    def answer(frame):
        count[0] += 1
        return answers[count[0] - 1](frame)

    return answer


class ClientTests(unittest.TestCase):
    def run_client(self, n, answer, body):
        ours, theirs = socket.socketpair()
        peer = ScriptedPeer(theirs, n, answer)
        peer.start()
        client = sb.Client(None, None, timeout=5.0, sock=ours)
        try:
            return body(client), peer
        finally:
            client.close()
            peer.join(5.0)
            theirs.close()
            self.assertIsNone(peer.error)

    def test_pipelined_pings_come_back_in_order(self):
        reqs = [sb.Request("PING", payload=b"%d" % i) for i in range(300)]
        resps, peer = self.run_client(300, echo, lambda c: c.pipeline(reqs))
        self.assertEqual([r.fields["payload"] for r in resps], [b"%d" % i for i in range(300)])
        self.assertEqual([f.request_id for f in peer.requests], list(range(1, 301)))

    def test_push_frames_are_set_aside(self):
        def answer(frame):
            return sb.encode_frame(0x36, 0, b"", flags=sb.FLAG_PUSH) + echo(frame)

        (payload, pushes), _ = self.run_client(1, answer, lambda c: (c.ping(b"x"), c.pushes))
        self.assertEqual(payload, b"x")
        self.assertEqual([p.opcode for p in pushes], [0x36])

    def test_goaway_fails_exactly_the_requests_after_its_count(self):
        goaway = sb.encode_push(sb.Push("GOAWAY", count=2, message=b"stopping"))
        none = lambda frame: b""  # noqa: E731 (read, never answered)
        answer = scripted([echo, lambda f: echo(f) + goaway, none, none, none])
        reqs = [sb.Request("PING", payload=b"%d" % i) for i in range(5)]

        def body(c):
            with self.assertRaises(sb.GoingAway) as cm:
                c.pipeline(reqs)
            with self.assertRaises(sb.GoingAway) as later:
                c.ping()
            return cm.exception, later.exception, c.goaway

        (err, later, count), peer = self.run_client(5, answer, body)
        self.assertIsNone(peer.error)
        self.assertEqual(count, 2)
        self.assertEqual(err.handled, 2)
        self.assertEqual([r.fields["payload"] for r in err.answered], [b"0", b"1"])
        self.assertEqual(err.not_carried_out, reqs[2:])
        self.assertEqual(later.not_carried_out, [sb.Request("PING", payload=b"")])

    def test_goaway_then_close_ends_a_subscriber_with_going_away(self):
        goaway = sb.encode_push(sb.Push("GOAWAY", count=1, message=b""))
        answer = lambda f: echo(f) + goaway  # noqa: E731

        def body(c):
            c.ping()
            with self.assertRaises(sb.GoingAway):
                c.next_push(timeout=5.0)

        _, peer = self.run_client(1, answer, body)
        self.assertIsNone(peer.error)

    def test_a_mismatched_id_is_a_protocol_error(self):
        def answer(frame):
            return sb.encode_frame(frame.opcode, frame.request_id + 1, b"")

        with self.assertRaises(sb.ProtocolError):
            self.run_client(1, answer, lambda c: c.ping())

    def test_a_fatal_status_is_raised(self):
        def answer(frame):
            return sb.encode_frame(0, 0, b"full", status=sb.STATUSES["SERVER_FULL"])

        with self.assertRaises(sb.ServerError) as cm:
            self.run_client(1, answer, lambda c: c.ping())
        self.assertEqual(sb.status_name(cm.exception.response.status), "SERVER_FULL")

    def test_outcomes_map_to_results(self):
        answers = {
            "GET": lambda f: reply(f, "NOT_FOUND"),
            "CAS": lambda f: reply(f, "VERSION_CONFLICT", (9).to_bytes(8, "big")),
            "DELETE": lambda f: reply(f, "OK", (12).to_bytes(8, "big")),
            "SCAN": lambda f: reply(f, "OK", bytes.fromhex("0000000000000005 00000000 0000")),
        }

        def answer(frame):
            return answers[sb.opcode_name(frame.opcode)](frame)

        def body(c):
            return c.get(b"k"), c.cas(b"k", 3, b"v"), c.delete(b"k"), c.scan(b"k")

        got, peer = self.run_client(4, answer, body)
        self.assertEqual(got, (None, (False, 9), ("OK", 12), []))
        self.assertEqual(sb.describe_request(sb.decode_request(peer.requests[1]), 2),
                         '#2 CAS expected=3 ttl_ms=0 key="k" value="v"')

    def test_an_error_status_raises(self):
        with self.assertRaises(sb.ServerError) as cm:
            self.run_client(1, lambda f: reply(f, "MEMORY_LIMIT", b"full"),
                            lambda c: c.put(b"k", b"v"))
        self.assertEqual(sb.status_name(cm.exception.response.status), "MEMORY_LIMIT")

    def test_server_closing_early_is_reported(self):
        with self.assertRaises(sb.ProtocolError):
            self.run_client(1, lambda frame: b"", lambda c: c.ping())

    def test_subscribe_publish_unsubscribe(self):
        answers = [
            lambda f: ok(f, sub_id=3, history=9, seq=20),
            lambda f: ok(f, sub_id=4, history=9, seq=21),
            lambda f: ok(f, receivers=2),
            lambda f: ok(f),
            lambda f: reply(f, "NOT_FOUND"),
        ]
        answer = scripted(answers)

        def body(c):
            return (c.subscribe(b"p", from_seq=5, history=9, progress_ms=100),
                    c.subscribe(b"q", history=9), dict(c.subscriptions), c.publish(b"p1", b"hi"),
                    c.unsubscribe(3), c.unsubscribe(3), dict(c.subscriptions))

        got, peer = self.run_client(5, answer, body)
        self.assertEqual(got, (3, 4, {3: {"prefix": b"p", "history": 9, "seq": 20},
                                      4: {"prefix": b"q", "history": 9, "seq": 21}},
                               2, True, False, {4: {"prefix": b"q", "history": 9, "seq": 21}}))
        described = [sb.describe_request(sb.decode_request(f), f.request_id)
                     for f in peer.requests]
        self.assertEqual(described, [
            '#1 SUBSCRIBE from=5 history=9 progress_ms=100 prefix="p"',
            '#2 SUBSCRIBE progress_ms=0 prefix="q"',
            '#3 PUBLISH subject="p1" payload="hi"',
            "#4 UNSUBSCRIBE sub_id=3",
            "#5 UNSUBSCRIBE sub_id=3",
        ])

    def test_pushes_are_queued_in_order_and_filtered_by_subscription(self):
        event = sb.Push("EVENT", sub_id=1, seq=7, kind="put", key=b"k", value=b"v")
        message = sb.Push("MESSAGE", sub_id=2, subject=b"s", payload=b"m")
        progress = sb.Push("PROGRESS", sub_id=1, history=3, seq=7)

        def answer(frame):
            return sb.encode_push(event) + sb.encode_push(message) + echo(frame) + \
                sb.encode_push(progress)

        def body(c):
            c.ping(b"x")
            got = (c.next_push(1.0, sub_id=2), c.next_push(1.0), c.next_push(1.0))
            with self.assertRaises(sb.ProtocolError):  # the peer closes after one answer
                c.next_push(1.0)
            return got

        got, _ = self.run_client(1, answer, body)
        self.assertEqual(got, (message, event, progress))

    def test_a_keepalive_ping_is_answered_and_its_answer_consumed(self):
        ping = sb.encode_push(sb.Push("PING"))

        def answer(frame):
            if len(answer.seen) == 0:  # the first of the pipelined GETs
                answer.seen.append(frame)
                return reply(frame, "NOT_FOUND") + ping
            answer.seen.append(frame)
            return echo(frame) if sb.opcode_name(frame.opcode) == "PING" else \
                reply(frame, "NOT_FOUND")
        answer.seen = []

        def body(c):
            got = c.pipeline([sb.Request("GET", key=b"k%d" % i) for i in range(3)])
            return [sb.status_name(r.status) for r in got], c.ping(b"mine"), list(c.pushes)

        got, peer = self.run_client(5, answer, body)
        self.assertEqual(got, (["NOT_FOUND"] * 3, b"mine", []))
        self.assertEqual([(sb.opcode_name(f.opcode), f.body) for f in peer.requests],
                         [("GET", b"\x00\x02k0"), ("GET", b"\x00\x02k1"), ("GET", b"\x00\x02k2"),
                          ("PING", b""), ("PING", b"mine")])

    def test_without_auto_pong_the_ping_push_is_handed_out(self):
        ours, theirs = socket.socketpair()
        try:
            c = sb.Client(None, None, timeout=5.0, sock=ours, auto_pong=False)
            theirs.sendall(sb.encode_push(sb.Push("PING")))
            self.assertEqual(c.next_push(1.0), sb.Push("PING"))
            self.assertEqual(c.next_push(0.05), None)
            theirs.setblocking(False)
            with self.assertRaises(BlockingIOError):
                theirs.recv(100)  # nothing was sent
        finally:
            ours.close()
            theirs.close()

    def test_watch_lists_then_follows_and_resynchronises_after_a_gap(self):
        def event(sub, seq, key, value=None):
            kind = "delete" if value is None else "put"
            return sb.encode_push(sb.Push("EVENT", sub_id=sub, seq=seq, kind=kind, key=key,
                                          value=value or b""))

        def page(f, seq, entries, cursor):
            return ok(f, seq=seq, entries=entries, next_cursor=cursor)

        answers = [
            lambda f: ok(f, version=1, features=1, max_frame=sb.DEFAULT_MAX_FRAME,
                         max_key=1024, max_value=sb.DEFAULT_MAX_FRAME - 4096, history=77,
                         server=b"test"),
            lambda f: page(f, 10, [(b"a", 5, b"a5")], b"a"),
            # Events 11 (b deleted before its page) and 12 (c written after S).
            lambda f: ok(f, sub_id=7, history=77, seq=12) + event(7, 11, b"b")
            + event(7, 12, b"c", b"c12"),
            # b's page entry is older than its deletion, c's older than event 12.
            lambda f: page(f, 12, [(b"b", 3, b"b3"), (b"c", 4, b"c4")], b"c"),
            # The last page shows e at 14, written after S; a keepalive follows.
            lambda f: page(f, 14, [(b"d", 6, b"d6"), (b"e", 14, b"e14")], b"")
            + sb.encode_push(sb.Push("PING")),
            # The answer to the automatic PING, then live pushes: 14 is already known,
            # the MESSAGE and PROGRESS are not changes, sub 99 is someone else's; after
            # the GAP (and before the UNSUBSCRIBE answer) nothing counts.
            lambda f: echo(f) + event(7, 13, b"d", b"d13") + event(7, 14, b"e", b"e14")
            + sb.encode_push(sb.Push("MESSAGE", sub_id=7, subject=b"m", payload=b""))
            + event(7, 15, b"a") + event(99, 15, b"a")
            + sb.encode_push(sb.Push("PROGRESS", sub_id=7, history=77, seq=15))
            + sb.encode_push(sb.Push("GAP", sub_id=7, history=77, after=15, oldest=19,
                                     current=20))
            + event(7, 19, b"z", b"z19"),
            lambda f: ok(f),
            lambda f: page(f, 20, [(b"c", 12, b"c12"), (b"d", 13, b"d13"), (b"f", 18, b"f18")],
                           b""),
            lambda f: ok(f, sub_id=8, history=77, seq=20),
            lambda f: ok(f),  # the UNSUBSCRIBE when the generator is closed
        ]

        def body(c):
            c.hello(sb.FEATURE_PUSH)
            changes = []
            watch = c.watch(b"", limit=2, timeout=0.2)
            for change in watch:
                if change is None:
                    break
                changes.append(tuple(change))
            watch.close()
            return changes, list(c.pushes), dict(c.subscriptions)

        (changes, pushes, subs), peer = self.run_client(10, scripted(answers), body)
        self.assertEqual(changes, [
            ("put", b"a", 5, b"a5"), ("put", b"c", 12, b"c12"), ("put", b"d", 6, b"d6"),
            ("put", b"e", 14, b"e14"),  # the listing; b stays deleted
            ("put", b"d", 13, b"d13"), ("delete", b"a", 15, None),  # live
            ("delete", b"e", 0, None), ("put", b"f", 18, b"f18"),  # after the GAP
        ])
        self.assertEqual([p.sub_id for p in pushes], [99])
        self.assertEqual(subs, {})
        described = [sb.describe_request(sb.decode_request(f), f.request_id)
                     for f in peer.requests]
        self.assertEqual(described, [
            "#1 HELLO max_version=1 features=1 token=\"\"",
            '#2 SCAN limit=2 prefix="" cursor=""',
            '#3 SUBSCRIBE from=10 history=77 progress_ms=0 prefix=""',
            '#4 SCAN limit=2 prefix="" cursor="a"',
            '#5 SCAN limit=2 prefix="" cursor="c"',
            '#6 PING payload=""',
            "#7 UNSUBSCRIBE sub_id=7",
            '#8 SCAN limit=2 prefix="" cursor=""',
            '#9 SUBSCRIBE from=20 history=77 progress_ms=0 prefix=""',
            "#10 UNSUBSCRIBE sub_id=8",
        ])


if __name__ == "__main__":
    unittest.main()
