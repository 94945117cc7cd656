"""Runs the test vectors of protocol-spec.md through the Python codec, both directions.

    python3 -m unittest discover -s clients/python -p 'test_*.py'
"""

import os
import re
import unittest

import switchboard_client as sb

SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "protocol-spec.md")
MAX_FRAME = sb.DEFAULT_MAX_FRAME


def parse_hex(text):
    """Whitespace-separated tokens: hex digit pairs, or HH*N for byte HH repeated N times."""
    out = bytearray()
    for token in text.split():
        if "*" in token:
            byte, count = token.split("*")
            if len(byte) != 2 or not count.isdigit():
                raise ValueError("bad repeat token %r" % token)
            out += bytes.fromhex(byte) * int(count)
        else:
            if len(token) % 2:
                raise ValueError("odd hex token %r" % token)
            out += bytes.fromhex(token)
    return bytes(out)


def parse_vectors(text):
    """Every ```vector block of the document, as dicts (expect is a list)."""
    vectors = []
    blocks = re.findall(r"^```vector[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)
    for block in blocks:
        v = {"expect": []}
        last = None
        for line in block.splitlines():
            if not line.strip():
                continue
            if line[0] in " \t":
                if last != "hex":
                    raise ValueError("continuation line after %r: %r" % (last, line))
                v["hex"] += " " + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError("not a key: value line: %r" % line)
            key, value = key.strip(), value.strip()
            if key == "expect":
                v["expect"].append(value)
            elif key in v:
                raise ValueError("duplicate %s in %r" % (key, block))
            else:
                v[key] = value
            last = key
        for key in ("name", "direction", "hex"):
            if key not in v:
                raise ValueError("vector without %s: %r" % (key, block))
        if not v["expect"]:
            raise ValueError("vector %s has no expect" % v["name"])
        v["bytes"] = parse_hex(v["hex"])
        vectors.append(v)
    return vectors


def load_vectors():
    with open(SPEC, encoding="utf-8") as f:
        return parse_vectors(f.read())


def run_vector(v):
    """Checks one vector; returns the set of (direction, opcode, status) it exercised."""
    seen = set()
    dec = sb.FrameDecoder(MAX_FRAME)
    dec.feed(v["bytes"])
    expects = v["expect"]
    for i, expect in enumerate(expects):
        last = i == len(expects) - 1
        before = bytes(dec.buf)
        try:
            frame = dec.next_frame()
        except sb.FatalFrameError as e:
            assert last, "a fatal error must be the last step"
            assert sb.describe_fatal(e) == expect, "%r != %r" % (sb.describe_fatal(e), expect)
            seen.add(("fatal", None, sb.STATUSES[e.status]))
            return seen
        if frame is None:
            assert expect == "need-more-bytes", "need more bytes, expected %r" % expect
            assert last, "need-more-bytes must be the last step"
            assert bytes(dec.buf) == before, "a partial frame must stay buffered"
            return seen
        consumed = before[: len(before) - len(dec.buf)]
        if v["direction"] == "request":
            try:
                req = sb.decode_request(frame)
            except sb.Rejected as e:
                got = sb.describe_reject(frame, e)
                assert got == expect, "%r != %r" % (got, expect)
                seen.add(("reject", frame.opcode, sb.STATUSES[e.status]))
                continue
            got = sb.describe_request(req, frame.request_id)
            assert got == expect, "%r != %r" % (got, expect)
            again = sb.encode_request(req, frame.request_id)
            assert again == consumed, "re-encoded %s != %s" % (again.hex(), consumed.hex())
            seen.add(("request", frame.opcode, None))
        elif v["direction"] == "response":
            try:
                resp = sb.decode_response(frame)
            except sb.ProtocolError:
                assert expect == "invalid", "decoding failed, expected %r" % expect
                continue
            got = sb.describe_response(resp)
            assert got == expect, "%r != %r" % (got, expect)
            if isinstance(resp, sb.Push):
                again = sb.encode_push(resp)
                if resp.defined:
                    seen.add(("push", resp.opcode, None))
            else:
                again = sb.encode_response(resp)
                seen.add(("response", resp.opcode, resp.status))
            assert again == consumed, "re-encoded %s != %s" % (again.hex(), consumed.hex())
        else:
            raise AssertionError("unknown direction %r" % v["direction"])
    assert not dec.buf, "bytes left over after the last frame: %s" % bytes(dec.buf).hex()
    return seen


class SpecVectors(unittest.TestCase):
    def setUp(self):
        self.vectors = load_vectors()

    def test_vectors_are_plentiful_and_uniquely_named(self):
        names = [v["name"] for v in self.vectors]
        self.assertGreater(len(names), 50)
        self.assertEqual(len(names), len(set(names)), "duplicate vector names")

    def test_every_vector(self):
        for v in self.vectors:
            with self.subTest(vector=v["name"]):
                run_vector(v)

    def test_every_opcode_and_status_has_a_vector(self):
        seen = set()
        for v in self.vectors:
            seen |= run_vector(v)
        for name in sb.SERVED:
            op = sb.OPCODES[name]
            self.assertIn(("request", op, None), seen, "no request vector for %s" % name)
            self.assertIn(("response", op, 0), seen, "no OK response vector for %s" % name)
        for name in sb.PUSH_LAYOUT:
            self.assertIn(("push", sb.OPCODES[name], None), seen, "no push vector for %s" % name)
        statuses = {st for kind, _, st in seen if kind == "response"}
        for name, st in sb.STATUSES.items():
            self.assertIn(st, statuses, "no response vector with status %s" % name)

    def test_a_corrupted_vector_fails(self):
        v = next(v for v in self.vectors if v["name"] == "get")
        for i in range(len(v["bytes"])):
            bad = dict(v)
            b = bytearray(v["bytes"])
            b[i] ^= 0x01
            bad["bytes"] = bytes(b)
            with self.assertRaises(AssertionError, msg="flipping byte %d went unnoticed" % i):
                run_vector(bad)


class Parsing(unittest.TestCase):
    def test_hex_tokens(self):
        self.assertEqual(parse_hex("00 0a0B 41*3"), b"\x00\x0a\x0bAAA")
        with self.assertRaises(ValueError):
            parse_hex("abc")

    def test_describe_bytes(self):
        self.assertEqual(sb.describe_bytes(b'a"\\\n\x7f'), '"a\\"\\\\\\x0a\\x7f"')
        self.assertEqual(sb.describe_bytes(b"k" * 32), '"k"*32')
        self.assertEqual(sb.describe_bytes(b"k" * 31), '"' + "k" * 31 + '"')


if __name__ == "__main__":
    unittest.main()
