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
                self.sock.sendall(self.answer(frame))
        except Exception as e:  # reported by the test through self.error
            self.error = e
        finally:
            self.sock.shutdown(socket.SHUT_WR)


def echo(frame):
    return sb.encode_frame(frame.opcode, frame.request_id, frame.body)


def reply(frame, status, body=b""):
    return sb.encode_frame(frame.opcode, frame.request_id, body, status=sb.STATUSES[status])


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
            return sb.encode_frame(sb.OPCODES["GOAWAY"], 0, b"", flags=sb.FLAG_PUSH) + echo(frame)

        (payload, pushes), _ = self.run_client(1, answer, lambda c: (c.ping(b"x"), c.pushes))
        self.assertEqual(payload, b"x")
        self.assertEqual([p.opcode for p in pushes], [sb.OPCODES["GOAWAY"]])

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


if __name__ == "__main__":
    unittest.main()
