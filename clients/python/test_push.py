"""Codec checks for subscriptions and push frames beyond the spec's vectors (no server)."""

import unittest

import switchboard_client as sb


def request_frame(op, body, request_id=5, flags=0):
    data = sb.encode_frame(sb.OPCODES[op], request_id, body, flags=flags)
    dec = sb.FrameDecoder()
    dec.feed(data)
    return dec.next_frame()


def push_frame(op, body, request_id=0, status=0):
    opcode = sb.OPCODES[op] if isinstance(op, str) else op
    dec = sb.FrameDecoder()
    dec.feed(sb.encode_frame(opcode, request_id, body, status=status, flags=sb.FLAG_PUSH))
    return dec.next_frame()


def subscribe_body(flags=0, from_=0, history=0, progress_ms=0, prefix=b"p", tail=b""):
    return (bytes([flags]) + from_.to_bytes(8, "big") + history.to_bytes(8, "big")
            + progress_ms.to_bytes(4, "big") + len(prefix).to_bytes(2, "big") + prefix + tail)


class RequestChecks(unittest.TestCase):
    def status(self, op, body):
        try:
            sb.decode_request(request_frame(op, body))
        except sb.Rejected as e:
            return e.status
        return "OK"

    def test_subscribe(self):
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body()), "OK")
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body(flags=1, from_=3)), "OK")
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body(flags=0x80)), "BAD_REQUEST")
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body(flags=3)), "BAD_REQUEST")
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body(history=1)), "BAD_REQUEST")
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body(tail=b"x")), "BAD_REQUEST")
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body()[:-1]), "BAD_REQUEST")
        long = b"p" * (sb.DEFAULT_MAX_KEY + 1)
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body(prefix=long)), "KEY_TOO_LARGE")
        # Section 12.2: field by field, so the long prefix decides before trailing bytes.
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body(prefix=long, tail=b"x")),
                         "KEY_TOO_LARGE")
        self.assertEqual(self.status("SUBSCRIBE", subscribe_body(flags=2, prefix=long)),
                         "BAD_REQUEST")

    def test_unsubscribe_and_publish(self):
        self.assertEqual(self.status("UNSUBSCRIBE", b"\x00\x00\x00\x01"), "OK")
        self.assertEqual(self.status("UNSUBSCRIBE", b"\x00\x00\x00\x01\x00"), "BAD_REQUEST")
        self.assertEqual(self.status("PUBLISH", b"\x00\x01s"), "OK")
        self.assertEqual(self.status("PUBLISH", b"\x00\x00hi"), "BAD_REQUEST")
        long = b"s" * (sb.DEFAULT_MAX_KEY + 1)
        self.assertEqual(self.status("PUBLISH", len(long).to_bytes(2, "big") + long),
                         "KEY_TOO_LARGE")
        big = b"\x00\x01s" + b"x" * (sb.DEFAULT_MAX_FRAME - sb.VALUE_RESERVE + 1)
        self.assertEqual(self.status("PUBLISH", big), "VALUE_TOO_LARGE")

    def test_subscribe_request_round_trip(self):
        live = sb.Request("SUBSCRIBE", prefix=b"user:", progress_ms=5)
        self.assertFalse(live.resume)
        self.assertEqual(sb.describe_request(live, 1), '#1 SUBSCRIBE progress_ms=5 prefix="user:"')
        resume = sb.Request("SUBSCRIBE", prefix=b"user:", resume=True, from_=41, history=9)
        self.assertTrue(resume.resume)
        self.assertEqual(resume.fields["from"], 41)
        self.assertEqual(sb.describe_request(resume, 2),
                         '#2 SUBSCRIBE from=41 history=9 progress_ms=0 prefix="user:"')
        for req in (live, resume):
            dec = sb.FrameDecoder()
            dec.feed(sb.encode_request(req, 3))
            self.assertEqual(sb.decode_request(dec.next_frame()), req)


class Pushes(unittest.TestCase):
    EXAMPLES = [
        sb.Push("EVENT", sub_id=1, seq=42, kind="put", key=b"k", value=b"v"),
        sb.Push("EVENT", sub_id=1, seq=43, kind="delete", key=b"k", value=b""),
        sb.Push("MESSAGE", sub_id=2, subject=b"chat", payload=b"\x00hi"),
        sb.Push("GAP", sub_id=1, history=7, after=10, oldest=35, current=50),
        sb.Push("PROGRESS", sub_id=1, history=7, seq=50),
        sb.Push("LOST", sub_id=2, count=3),
        sb.Push("GOAWAY", count=12, message=b"the server is shutting down"),
        sb.Push("PING"),
    ]

    def test_round_trip(self):
        for push in self.EXAMPLES:
            with self.subTest(push=push):
                wire = sb.encode_push(push)
                dec = sb.FrameDecoder()
                dec.feed(wire)
                got = sb.decode_response(dec.next_frame())
                self.assertEqual(got, push)
                self.assertEqual(sb.encode_response(got), wire)
        self.assertEqual(self.EXAMPLES[0]["seq"], 42)
        self.assertEqual(self.EXAMPLES[0].sub_id, 1)
        self.assertIsNone(self.EXAMPLES[-1].sub_id)

    def test_undefined_pushes_are_kept_raw(self):
        for op, rid in ((0x36, 0), (0x3f, 0), (0x5a, 9)):
            push = sb.decode_response(push_frame(op, b"\x01\x02", request_id=rid))
            self.assertFalse(push.defined)
            self.assertEqual(sb.describe_response(push),
                             "push #%d %s" % (rid, sb.opcode_name(push.opcode)))
            self.assertEqual(sb.encode_push(push),
                             sb.encode_frame(push.opcode, rid, b"\x01\x02", flags=sb.FLAG_PUSH))

    def test_malformed_defined_pushes_are_invalid(self):
        bad = [
            push_frame("PING", b"x"),
            push_frame("PING", b"", request_id=1),
            push_frame("PING", b"", status=0x10),
            push_frame("LOST", b"\x00" * 11),
            push_frame("LOST", b"\x00" * 13),
            push_frame("EVENT", b"\x00" * 4 + b"\x00" * 8 + b"\x00" + b"\x00\x01k"),
            push_frame("EVENT", b"\x00" * 4 + b"\x00" * 8 + b"\x02" + b"\x00\x01kv"),
            push_frame("MESSAGE", b"\x00" * 4 + b"\x00\x05ab"),
            push_frame("GOAWAY", b"\x00" * 7),
        ]
        for frame in bad:
            with self.subTest(frame=frame), self.assertRaises(sb.ProtocolError):
                sb.decode_response(frame)
        with self.assertRaises(ValueError):
            sb.Push("EVENT", sub_id=1, seq=1, kind="delete", key=b"k", value=b"v")

    def test_new_responses_round_trip(self):
        for resp in (sb.Response(1, sb.OPCODES["SUBSCRIBE"], 0, sub_id=1, history=2, seq=3),
                     sb.Response(2, sb.OPCODES["UNSUBSCRIBE"], 0),
                     sb.Response(3, sb.OPCODES["PUBLISH"], 0, receivers=4),
                     sb.Response(4, sb.OPCODES["SUBSCRIBE"], 0x18, message=b"full"),
                     sb.Response(5, sb.OPCODES["HELLO"], 0, version=1, features=1,
                                 max_frame=8192, max_key=1024, max_value=4096, history=77,
                                 server=b"s")):
            dec = sb.FrameDecoder()
            dec.feed(sb.encode_response(resp))
            self.assertEqual(sb.decode_response(dec.next_frame()), resp)


if __name__ == "__main__":
    unittest.main()
