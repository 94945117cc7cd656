#!/usr/bin/env python3
"""A switchboard client written from protocol-spec.md, standard library only.

The module has three layers:

* a sans-IO codec: ``encode_request`` / ``decode_request``, ``encode_response`` /
  ``decode_response`` and ``FrameDecoder`` (bytes in, whole frames out);
* ``describe_*`` functions that print decoded values in the canonical text the
  spec's test vectors use;
* ``Client``, a blocking socket client with HELLO, every request, pipelining,
  subscriptions (``subscribe``, ``next_push``) and ``watch``, the list-then-watch
  recipe of section 13.5.

Run ``python3 switchboard_client.py --addr HOST:PORT`` for a demo round against a
live server; it exits 0 only if every answer was the expected one.
"""

import argparse
import collections
import os
import select
import socket
import struct
import sys
import time

# ---------------------------------------------------------------------------
# Constants (protocol-spec.md, "Opcodes" and "Status codes")
# ---------------------------------------------------------------------------

VERSION = 1
LENGTH_LEN = 4
HEADER_LEN = 8
PREFIX_LEN = LENGTH_LEN + HEADER_LEN
FLAG_PUSH = 0x01

FEATURE_PUSH = 1 << 0
FEATURE_TTL = 1 << 1

DEFAULT_MAX_FRAME = (1 << 20) + 4096
# The server's default listen address.
DEFAULT_ADDR = "127.0.0.1:7420"
DEFAULT_MAX_KEY = 1024
VALUE_RESERVE = 4096
MAX_TOKEN = 256

OPCODES = {
    "HELLO": 0x01,
    "PING": 0x02,
    "STATS": 0x03,
    "GET": 0x10,
    "PUT": 0x11,
    "DELETE": 0x12,
    "CAS": 0x13,
    "SCAN": 0x14,
    "SUBSCRIBE": 0x20,
    "UNSUBSCRIBE": 0x21,
    "PUBLISH": 0x22,
    "EVENT": 0x30,
    "MESSAGE": 0x31,
    "GOAWAY": 0x32,
    "GAP": 0x33,
    "PROGRESS": 0x34,
    "LOST": 0x35,
}
OPCODE_NAMES = {v: k for k, v in OPCODES.items()}
# Opcodes a version 1 server serves; the others are reserved.
SERVED = ("HELLO", "PING", "STATS", "GET", "PUT", "DELETE", "CAS", "SCAN",
          "SUBSCRIBE", "UNSUBSCRIBE", "PUBLISH")

STATUSES = {
    "OK": 0x00,
    "NOT_FOUND": 0x01,
    "VERSION_CONFLICT": 0x02,
    "BAD_REQUEST": 0x10,
    "UNKNOWN_OPCODE": 0x11,
    "UNSUPPORTED_VERSION": 0x12,
    "FRAME_TOO_LARGE": 0x13,
    "MALFORMED_FRAME": 0x14,
    "KEY_TOO_LARGE": 0x15,
    "VALUE_TOO_LARGE": 0x16,
    "UNSUPPORTED": 0x17,
    "SUBSCRIPTION_LIMIT": 0x18,
    "MEMORY_LIMIT": 0x20,
    "SERVER_FULL": 0x21,
    "SHUTTING_DOWN": 0x22,
    "CLIENT_MEMORY_LIMIT": 0x23,
    "INTERNAL_ERROR": 0x30,
}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}
FATAL_STATUSES = (
    "UNSUPPORTED_VERSION",
    "FRAME_TOO_LARGE",
    "MALFORMED_FRAME",
    "SERVER_FULL",
    "CLIENT_MEMORY_LIMIT",
)

# The fields of each request body, in wire order, as (name, kind). Kinds:
# u8/u16/u32/u64 integers; "b16" a u16 length then bytes; "rest" the rest of the body.
REQUEST_LAYOUT = {
    "HELLO": (("max_version", "u8"), ("features", "u32"), ("token", "b16")),
    "PING": (("payload", "rest"),),
    "STATS": (),
    "GET": (("key", "b16"),),
    "PUT": (("ttl_ms", "u32"), ("key", "b16"), ("value", "rest")),
    "DELETE": (("expected", "u64"), ("key", "b16")),
    "CAS": (("expected", "u64"), ("ttl_ms", "u32"), ("key", "b16"), ("value", "rest")),
    "SCAN": (("limit", "u16"), ("prefix", "b16"), ("cursor", "b16")),
    "SUBSCRIBE": (("flags", "u8"), ("from", "u64"), ("history", "u64"), ("progress_ms", "u32"),
                  ("prefix", "b16")),
    "UNSUBSCRIBE": (("sub_id", "u32"),),
    "PUBLISH": (("subject", "b16"), ("payload", "rest")),
}
RESUME = 0x01  # SUBSCRIBE flag: replay the logged changes after `from` first

# The fields of each push this version defines (section 13.1), in wire order. Kind
# "kind" is the EVENT kind byte, decoded to "put" (1) or "delete" (2).
PUSH_LAYOUT = {
    "EVENT": (("sub_id", "u32"), ("seq", "u64"), ("kind", "kind"), ("key", "b16"),
              ("value", "rest")),
    "MESSAGE": (("sub_id", "u32"), ("subject", "b16"), ("payload", "rest")),
    "GAP": (("sub_id", "u32"), ("history", "u64"), ("after", "u64"), ("oldest", "u64"),
            ("current", "u64")),
    "PROGRESS": (("sub_id", "u32"), ("history", "u64"), ("seq", "u64")),
    "LOST": (("sub_id", "u32"), ("count", "u64")),
    "PING": (),
}
EVENT_KINDS = {"put": 1, "delete": 2}
EVENT_KIND_NAMES = {v: k for k, v in EVENT_KINDS.items()}

_INT = {"u8": ">B", "u16": ">H", "u32": ">I", "u64": ">Q"}


def opcode_name(op):
    return OPCODE_NAMES.get(op, "0x%02x" % op)


def status_name(status):
    return STATUS_NAMES.get(status, "0x%02x" % status)


def is_error_status(status):
    return status >= 0x10


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class ProtocolError(Exception):
    """The peer sent something this codec cannot accept; the connection must close."""


class FatalFrameError(ProtocolError):
    """The byte stream itself is broken (spec: "fatal" outcomes)."""

    def __init__(self, status, opcode, request_id, reason):
        super().__init__("%s: %s" % (status, reason))
        self.status = status  # a status name, e.g. "FRAME_TOO_LARGE"
        self.opcode = opcode  # int or None when the header had not arrived
        self.request_id = request_id  # int or None


class Rejected(Exception):
    """A whole request frame that a server refuses with a status (connection stays open)."""

    def __init__(self, status, reason):
        super().__init__("%s: %s" % (status, reason))
        self.status = status


class ServerError(Exception):
    """A response with an error status, raised by ``Client`` calls."""

    def __init__(self, response):
        super().__init__(
            "%s %s: %s"
            % (
                opcode_name(response.opcode),
                status_name(response.status),
                response.fields.get("message", b"").decode("utf-8", "replace"),
            )
        )
        self.response = response


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


class Frame:
    """One whole frame: header fields and the raw body."""

    __slots__ = ("version", "opcode", "flags", "status", "request_id", "body")

    def __init__(self, version, opcode, flags, status, request_id, body):
        self.version = version
        self.opcode = opcode
        self.flags = flags
        self.status = status
        self.request_id = request_id
        self.body = body

    def __repr__(self):
        return "Frame(v%d %s flags=0x%02x %s #%d %r)" % (
            self.version,
            opcode_name(self.opcode),
            self.flags,
            status_name(self.status),
            self.request_id,
            self.body,
        )


class Request:
    """A request: an opcode name and its fields (see REQUEST_LAYOUT).

    SUBSCRIBE also takes ``resume`` (True sets the RESUME flag) and ``from_`` (for the
    field ``from``, a Python keyword): ``Request("SUBSCRIBE", prefix=b"user:",
    resume=True, from_=41, history=h)``. Without ``resume`` the request is live only
    and ``from`` and ``history`` stay 0.
    """

    def __init__(self, op, **fields):
        if op not in REQUEST_LAYOUT:
            raise ValueError("not a request opcode: %r" % (op,))
        self.op = op
        if op == "SUBSCRIBE":
            if "from_" in fields:
                fields["from"] = fields.pop("from_")
            if "resume" in fields:
                if "flags" in fields:
                    raise TypeError("SUBSCRIBE takes resume or flags, not both")
                fields["flags"] = RESUME if fields.pop("resume") else 0
        names = [n for n, _ in REQUEST_LAYOUT[op]]
        defaults = {"ttl_ms": 0, "expected": 0, "limit": 0, "prefix": b"", "cursor": b"",
                    "payload": b"", "token": b"", "features": 0, "max_version": VERSION,
                    "flags": 0, "from": 0, "history": 0, "progress_ms": 0}
        self.fields = {}
        for n in names:
            if n in fields:
                v = fields.pop(n)
            elif n in defaults:
                v = defaults[n]
            else:
                raise TypeError("%s needs %s" % (op, n))
            self.fields[n] = _to_bytes(v) if _kind(op, n) in ("b16", "rest") else int(v)
        if fields:
            raise TypeError("%s has no field %s" % (op, ", ".join(fields)))

    @property
    def resume(self):
        """SUBSCRIBE only: whether the RESUME flag is set."""
        return bool(self.fields.get("flags", 0) & RESUME)

    def __eq__(self, other):
        return isinstance(other, Request) and (self.op, self.fields) == (other.op, other.fields)

    def __repr__(self):
        return "Request(%s %r)" % (self.op, self.fields)


class Response:
    """A response: request id, opcode (int), status (int) and decoded fields."""

    def __init__(self, request_id, opcode, status, **fields):
        self.request_id = request_id
        self.opcode = opcode
        self.status = status
        self.fields = fields

    @property
    def ok(self):
        return self.status == 0

    def __eq__(self, other):
        return isinstance(other, Response) and (
            self.request_id, self.opcode, self.status, self.fields
        ) == (other.request_id, other.opcode, other.status, other.fields)

    def __repr__(self):
        return "Response(%s)" % describe_response(self)


class Push:
    """A frame the server sent with the PUSH flag: not an answer to any request.

    ``Push("EVENT", sub_id=1, seq=42, kind="put", key=b"k", value=b"v")`` builds one of
    the pushes of PUSH_LAYOUT; its ``fields`` are a dict and ``push["seq"]`` reads one.
    A push this version does not define (GOAWAY, an unassigned opcode) is kept as
    ``Push(opcode, request_id=..., status=..., body=...)`` with ``fields`` None.
    """

    def __init__(self, op, request_id=0, status=0, body=b"", **fields):
        self.opcode = OPCODES[op] if isinstance(op, str) else op
        layout = PUSH_LAYOUT.get(self.name)
        if layout is None:
            if fields:
                raise TypeError("push %s has no fields" % self.name)
            self.request_id, self.status, self.body = request_id, status, bytes(body)
            self.fields = None
            return
        self.request_id, self.status = 0, 0  # section 13.1: always 0 in a defined push
        self.fields = {}
        for n, kind in layout:
            if n not in fields:
                raise TypeError("push %s needs %s" % (self.name, n))
            v = fields.pop(n)
            if kind == "kind":
                if v not in EVENT_KINDS:
                    raise ValueError("EVENT kind is put or delete, not %r" % (v,))
            elif kind in ("b16", "rest"):
                v = _to_bytes(v)
            else:
                v = int(v)
            self.fields[n] = v
        if fields:
            raise TypeError("push %s has no field %s" % (self.name, ", ".join(fields)))
        if self.name == "EVENT" and self.fields["kind"] == "delete" and self.fields["value"]:
            raise ValueError("a delete EVENT carries no value")
        self.body = _push_body(self.name, self.fields)

    @property
    def name(self):
        return opcode_name(self.opcode)

    @property
    def defined(self):
        """True for the pushes this version defines (their fields are decoded)."""
        return self.fields is not None

    @property
    def sub_id(self):
        """The subscription the push belongs to; None for PING and undefined pushes."""
        return (self.fields or {}).get("sub_id")

    def __getitem__(self, name):
        return self.fields[name]

    def __eq__(self, other):
        return isinstance(other, Push) and (
            self.opcode, self.request_id, self.status, self.body, self.fields
        ) == (other.opcode, other.request_id, other.status, other.body, other.fields)

    def __repr__(self):
        return "Push(%s)" % describe_push(self)


def _to_bytes(v):
    if isinstance(v, str):
        return v.encode("utf-8")
    return bytes(v)


def _kind(op, name):
    for n, k in REQUEST_LAYOUT[op]:
        if n == name:
            return k
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


def encode_frame(opcode, request_id, body, status=0, flags=0, version=VERSION):
    """The length field, the 8-byte header and the body."""
    return struct.pack(">IBBBBI", HEADER_LEN + len(body), version, opcode, flags, status,
                       request_id) + body


def encode_request(request, request_id):
    out = []
    for name, kind in REQUEST_LAYOUT[request.op]:
        v = request.fields[name]
        if kind in _INT:
            out.append(struct.pack(_INT[kind], v))
        elif kind == "b16":
            if len(v) > 0xFFFF:
                raise ValueError("%s is over 65535 bytes" % name)
            out.append(struct.pack(">H", len(v)) + v)
        else:
            out.append(v)
    return encode_frame(OPCODES[request.op], request_id, b"".join(out))


def _push_body(name, fields):
    out = []
    for n, kind in PUSH_LAYOUT[name]:
        v = fields[n]
        if kind == "kind":
            out.append(bytes([EVENT_KINDS[v]]))
        elif kind in _INT:
            out.append(struct.pack(_INT[kind], v))
        elif kind == "b16":
            if len(v) > 0xFFFF:
                raise ValueError("%s is over 65535 bytes" % n)
            out.append(struct.pack(">H", len(v)) + v)
        else:
            out.append(v)
    return b"".join(out)


def encode_push(push):
    """Encodes a Push as decode_response would have produced it."""
    return encode_frame(push.opcode, push.request_id, push.body, status=push.status,
                        flags=FLAG_PUSH)


def encode_response(response):
    """Encodes a Response (or a Push) as decode_response would have produced it."""
    if isinstance(response, Push):
        return encode_push(response)
    op, st, f = response.opcode, response.status, response.fields
    name = opcode_name(op)
    if st == 0:
        if name == "HELLO":
            body = struct.pack(">BIIIIQ", f["version"], f["features"], f["max_frame"],
                               f["max_key"], f["max_value"], f["history"]) + f["server"]
        elif name == "PING":
            body = f["payload"]
        elif name == "STATS":
            body = f["text"]
        elif name == "GET":
            body = struct.pack(">Q", f["version"]) + f["value"]
        elif name in ("PUT", "DELETE", "CAS"):
            body = struct.pack(">Q", f["version"])
        elif name == "SCAN":
            parts = [struct.pack(">QI", f["seq"], len(f["entries"]))]
            for key, version, value in f["entries"]:
                parts.append(struct.pack(">H", len(key)) + key)
                parts.append(struct.pack(">QI", version, len(value)) + value)
            parts.append(struct.pack(">H", len(f["next_cursor"])) + f["next_cursor"])
            body = b"".join(parts)
        elif name == "SUBSCRIBE":
            body = struct.pack(">IQQ", f["sub_id"], f["history"], f["seq"])
        elif name == "UNSUBSCRIBE":
            body = b""
        elif name == "PUBLISH":
            body = struct.pack(">I", f["receivers"])
        else:
            raise ValueError("no OK layout for opcode %s" % name)
    elif st == STATUSES["NOT_FOUND"]:
        body = b""
    elif st == STATUSES["VERSION_CONFLICT"]:
        body = struct.pack(">Q", f["current"])
    else:
        body = f["message"]
    return encode_frame(op, response.request_id, body, status=st)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


class FrameDecoder:
    """Takes whole frames off the front of a growing buffer.

    ``feed`` appends bytes; ``next_frame`` returns a Frame, or None when more bytes are
    needed, or raises FatalFrameError. After an error the stream is unusable.
    """

    def __init__(self, max_frame=DEFAULT_MAX_FRAME):
        self.max_frame = max_frame
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data

    def next_frame(self):
        buf = self.buf
        if len(buf) < LENGTH_LEN:
            return None
        (declared,) = struct.unpack_from(">I", buf, 0)
        have_header = len(buf) >= PREFIX_LEN
        opcode = buf[5] if have_header else None
        request_id = struct.unpack_from(">I", buf, 8)[0] if have_header else None
        total = declared + LENGTH_LEN
        if total > self.max_frame:
            raise FatalFrameError("FRAME_TOO_LARGE", opcode, request_id,
                                  "frame of %d bytes is over the limit %d"
                                  % (total, self.max_frame))
        if declared < HEADER_LEN:
            raise FatalFrameError("MALFORMED_FRAME", None, None,
                                  "declared length %d is shorter than a header" % declared)
        if not have_header:
            return None
        if buf[4] != VERSION:
            raise FatalFrameError("UNSUPPORTED_VERSION", opcode, request_id,
                                  "version %d" % buf[4])
        if len(buf) < total:
            return None
        frame = Frame(buf[4], buf[5], buf[6], buf[7], request_id, bytes(buf[PREFIX_LEN:total]))
        del buf[:total]
        return frame


class _Reader:
    def __init__(self, body, error):
        self.body = body
        self.pos = 0
        self.error = error  # called with a reason; must raise

    def take(self, n):
        if self.pos + n > len(self.body):
            self.error("body is shorter than its layout")
        v = self.body[self.pos:self.pos + n]
        self.pos += n
        return v

    def int(self, kind):
        size = struct.calcsize(_INT[kind])
        return struct.unpack(_INT[kind], self.take(size))[0]

    def b16(self):
        return self.take(self.int("u16"))

    def b32(self):
        return self.take(self.int("u32"))

    def rest(self):
        v = self.body[self.pos:]
        self.pos = len(self.body)
        return v

    def finish(self):
        if self.pos != len(self.body):
            self.error("body is longer than its layout")


def _reject_bad(reason):
    raise Rejected("BAD_REQUEST", reason)


def decode_request(frame, max_frame=DEFAULT_MAX_FRAME, max_key=DEFAULT_MAX_KEY):
    """What a server makes of a whole request frame: a Request, or raises Rejected.

    Checks run in the spec's order: opcode, flags, status, then body fields in wire
    order (the first bad field decides), then trailing bytes.
    """
    max_value = max_frame - VALUE_RESERVE
    name = OPCODE_NAMES.get(frame.opcode)
    if name not in SERVED:
        raise Rejected("UNKNOWN_OPCODE", "unknown opcode")
    if frame.flags != 0:
        raise Rejected("BAD_REQUEST", "requests must not set flags")
    if frame.status != 0:
        raise Rejected("BAD_REQUEST", "requests must have status 0")
    r = _Reader(frame.body, _reject_bad)
    fields = {}
    for field, kind in REQUEST_LAYOUT[name]:
        if name == "SUBSCRIBE" and field == "progress_ms":
            # The flags, from and history have been read: check them before the prefix.
            if fields["flags"] & ~RESUME:
                raise Rejected("BAD_REQUEST", "SUBSCRIBE sets a reserved flag")
            if not fields["flags"] & RESUME and (fields["from"] or fields["history"]):
                raise Rejected("BAD_REQUEST", "SUBSCRIBE names a sequence without RESUME")
        if kind in _INT:
            v = r.int(kind)
        elif kind == "b16":
            v = r.b16()
            if field in ("key", "subject") and not v:
                raise Rejected("BAD_REQUEST", "empty %s" % field)
            if field != "token" and len(v) > max_key:  # key, subject, prefix, cursor
                raise Rejected("KEY_TOO_LARGE", "%s is over the key limit" % field)
        else:
            v = r.rest()
            if len(v) > max_value:
                raise Rejected("VALUE_TOO_LARGE", "%s is over the value limit" % field)
        fields[field] = v
    r.finish()
    if name == "HELLO":
        if fields["max_version"] == 0:
            raise Rejected("BAD_REQUEST", "HELLO names version 0")
        if len(fields["token"]) > MAX_TOKEN:
            raise Rejected("BAD_REQUEST", "HELLO token is over 256 bytes")
    return Request(name, **fields)


def _invalid(reason):
    raise ProtocolError(reason)


def decode_push(frame):
    """A Push out of a frame with the PUSH flag; raises ProtocolError for a push this
    version defines whose header or body is wrong. Pushes it does not define are kept
    undecoded, for the caller to ignore."""
    name = OPCODE_NAMES.get(frame.opcode)
    if name not in PUSH_LAYOUT:
        return Push(frame.opcode, request_id=frame.request_id, status=frame.status,
                    body=frame.body)
    if frame.status != 0 or frame.request_id != 0:
        raise ProtocolError("push frames carry status 0 and request id 0")
    r = _Reader(frame.body, _invalid)
    fields = {}
    for field, kind in PUSH_LAYOUT[name]:
        if kind == "kind":
            byte = r.int("u8")
            if byte not in EVENT_KIND_NAMES:
                raise ProtocolError("unknown EVENT kind %d" % byte)
            v = EVENT_KIND_NAMES[byte]
        elif kind in _INT:
            v = r.int(kind)
        elif kind == "b16":
            v = r.b16()
        else:
            v = r.rest()
        fields[field] = v
    r.finish()
    if name == "EVENT" and fields["kind"] == "delete" and fields["value"]:
        raise ProtocolError("a delete EVENT carries a value")
    return Push(name, **fields)


def decode_response(frame):
    """A Response, or a Push for frames with the PUSH flag; raises ProtocolError for
    a frame no conforming server sends."""
    if frame.flags & FLAG_PUSH:
        return decode_push(frame)
    r = _Reader(frame.body, _invalid)
    st = frame.status
    name = OPCODE_NAMES.get(frame.opcode)
    f = {}
    if st == 0:
        if name == "HELLO":
            f["version"] = r.int("u8")
            f["features"] = r.int("u32")
            f["max_frame"] = r.int("u32")
            f["max_key"] = r.int("u32")
            f["max_value"] = r.int("u32")
            f["history"] = r.int("u64")
            f["server"] = r.rest()
        elif name == "PING":
            f["payload"] = r.rest()
        elif name == "STATS":
            f["text"] = r.rest()
        elif name == "GET":
            f["version"] = r.int("u64")
            f["value"] = r.rest()
        elif name in ("PUT", "DELETE", "CAS"):
            f["version"] = r.int("u64")
        elif name == "SCAN":
            f["seq"] = r.int("u64")
            count = r.int("u32")
            entries = []
            for _ in range(count):
                key = r.b16()
                version = r.int("u64")
                value = r.b32()
                entries.append((key, version, value))
            f["entries"] = entries
            f["next_cursor"] = r.b16()
        elif name == "SUBSCRIBE":
            f["sub_id"] = r.int("u32")
            f["history"] = r.int("u64")
            f["seq"] = r.int("u64")
        elif name == "UNSUBSCRIBE":
            pass
        elif name == "PUBLISH":
            f["receivers"] = r.int("u32")
        else:
            raise ProtocolError("OK response to opcode %s, which has no OK layout"
                                % opcode_name(frame.opcode))
        r.finish()
    elif st == STATUSES["NOT_FOUND"]:
        r.finish()
    elif st == STATUSES["VERSION_CONFLICT"]:
        f["current"] = r.int("u64")
        r.finish()
    elif is_error_status(st):
        f["message"] = r.rest()
    else:
        raise ProtocolError("unknown non-error status 0x%02x" % st)
    return Response(frame.request_id, frame.opcode, st, **f)


def parse_stats(text):
    """STATS text to a dict of name -> int; lines that do not parse are skipped."""
    out = {}
    for line in text.decode("utf-8", "replace").split("\n"):
        parts = line.split(" ")
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


# ---------------------------------------------------------------------------
# Canonical descriptions (protocol-spec.md, "Test vectors")
# ---------------------------------------------------------------------------


def describe_bytes(b):
    b = bytes(b)
    if len(b) >= 32 and b.count(b[0]) == len(b):
        return "%s*%d" % (describe_bytes(b[:1]), len(b))
    out = ['"']
    for c in b:
        if c == 0x22:
            out.append('\\"')
        elif c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c <= 0x7E:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    out.append('"')
    return "".join(out)


def _describe_value(v):
    return describe_bytes(v) if isinstance(v, (bytes, bytearray)) else str(v)


def describe_request(request, request_id):
    parts = ["#%d" % request_id, request.op]
    for name, _ in REQUEST_LAYOUT[request.op]:
        if request.op == "SUBSCRIBE" and (
                name == "flags" or (name in ("from", "history") and not request.resume)):
            continue  # section 15.3: from and history only with RESUME; flags never
        parts.append("%s=%s" % (name, _describe_value(request.fields[name])))
    return " ".join(parts)


def describe_push(push):
    if not push.defined:
        return "push #%d %s" % (push.request_id, push.name)
    return " ".join(["push", push.name] + ["%s=%s" % (n, _describe_value(v))
                                           for n, v in push.fields.items()])


def describe_response(response):
    if isinstance(response, Push):
        return describe_push(response)
    parts = ["#%d" % response.request_id, opcode_name(response.opcode),
             status_name(response.status)]
    for name, v in response.fields.items():
        if name == "entries":
            items = ["{key=%s version=%d value=%s}" % (describe_bytes(k), ver, describe_bytes(val))
                     for k, ver, val in v]
            parts.append("entries=[%s]" % " ".join(items))
        else:
            parts.append("%s=%s" % (name, _describe_value(v)))
    return " ".join(parts)


def describe_fatal(err):
    return "fatal %s op=%s id=%s" % (
        err.status,
        "none" if err.opcode is None else opcode_name(err.opcode),
        "none" if err.request_id is None else err.request_id,
    )


def describe_reject(frame, err):
    return "reject #%d %s %s" % (frame.request_id, opcode_name(frame.opcode), err.status)


# ---------------------------------------------------------------------------
# Blocking client
# ---------------------------------------------------------------------------


Change = collections.namedtuple("Change", "kind key version value")
Change.__doc__ = """What ``Client.watch`` yields: kind "put" (value is the record's value) or
"delete" (value None; version is the deletion's sequence number, or 0 when a
re-listing found the record gone without saying when)."""


class Client:
    """One connection. Requests may be pipelined: responses come back in order.

    Push frames (section 13) that arrive while the client waits for responses are
    queued in ``self.pushes``; ``next_push`` hands them out in arrival order. A
    keepalive PING push is answered with a PING request whenever the client reads
    (``auto_pong``, on by default; the answer to that PING is consumed and dropped),
    so a subscriber must keep calling ``next_push`` (or anything else) to stay
    connected. With ``auto_pong`` False, PING pushes are queued like any other and
    the caller answers them (``ping()`` will do).
    """

    def __init__(self, addr=DEFAULT_ADDR, port=None, timeout=10.0, sock=None, auto_pong=True):
        """Connects to ``addr``, "HOST:PORT" as the Rust client and the CLI take it
        (``Client("127.0.0.1:7420")``), or to ``addr`` and ``port`` given apart; or
        uses ``sock``, an already connected socket."""
        if sock is None:
            host, port = parse_addr(addr) if port is None else (addr, port)
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock.settimeout(timeout)
        self.sock = sock
        self.decoder = FrameDecoder()
        self.next_id = 1
        self.hello_reply = None
        self.auto_pong = auto_pong
        self.pushes = collections.deque()  # push frames received and not yet handed out
        self.subscriptions = {}  # sub_id -> {"prefix", "history", "seq"} from SUBSCRIBE
        self._outbox = bytearray()  # request bytes not yet written
        self._in_flight = collections.deque()  # (request id, opcode name, automatic?)
        self._answers = collections.deque()  # responses to our requests, not yet taken

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the byte stream ----------------------------------------------------------

    def _queue(self, request, automatic=False):
        rid = self.next_id
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF
        self._outbox += encode_request(request, rid)
        self._in_flight.append((rid, request.op, automatic))

    def _dispatch(self):
        """Takes every whole frame off the receive buffer: pushes go to ``self.pushes``
        (or are answered, for PING), responses are matched with the oldest request in
        flight. Answers to automatic PINGs are dropped."""
        while True:
            frame = self.decoder.next_frame()
            if frame is None:
                return
            resp = decode_response(frame)
            if isinstance(resp, Push):
                if self.auto_pong and resp.name == "PING":
                    self._queue(Request("PING"), automatic=True)
                else:
                    self.pushes.append(resp)
                continue
            if status_name(resp.status) in FATAL_STATUSES:
                raise ServerError(resp)
            if not self._in_flight:
                raise ProtocolError("a response to no request: %s" % describe_response(resp))
            rid, op, automatic = self._in_flight.popleft()
            if resp.request_id != rid or resp.opcode != OPCODES[op]:
                raise ProtocolError("expected a response to #%d %s, got %s"
                                    % (rid, op, describe_response(resp)))
            if not automatic:
                self._answers.append(resp)

    def _receive(self):
        data = self.sock.recv(65536)
        if not data:
            raise ProtocolError("server closed the connection")
        self.decoder.feed(data)
        self._dispatch()

    def _pump(self, wait):
        """Writes what the socket takes and reads what has arrived, waiting at most
        ``wait`` seconds (None: no limit) for either; False if nothing moved."""
        writers = [self.sock] if self._outbox else []
        readable, writable, _ = select.select([self.sock], writers, [], wait)
        if not readable and not writable:
            return False
        if writable:
            with memoryview(self._outbox) as view:
                sent = self.sock.send(view)
            del self._outbox[:sent]
        if readable:
            self._receive()
        return True

    def _flush(self):
        """Writes out the outbox (an automatic PING queued while reading), reading
        meanwhile so that a server waiting for us to read cannot stall it."""
        while self._outbox:
            if not self._pump(self.sock.gettimeout()):
                raise socket.timeout("no progress for %s s" % self.sock.gettimeout())

    # -- requests -----------------------------------------------------------------

    def pipeline(self, requests):
        """Sends every request as one buffer, then reads one response per request.

        The buffer is written as fast as the socket takes it while responses are read
        as they arrive, so a large batch cannot deadlock against a server that stops
        reading until its answers are read. Returns the responses in request order,
        having checked that each echoes its request's id and opcode. A fatal status
        (after which the server closes) raises ServerError. Push frames that arrive
        meanwhile are queued for ``next_push``.
        """
        if self._answers:
            raise ProtocolError("responses left over from an earlier call")
        for req in requests:
            self._queue(req)
        timeout = self.sock.gettimeout()
        out = []
        while len(out) < len(requests):
            if self._answers:
                out.append(self._answers.popleft())
            elif not self._pump(timeout):
                raise socket.timeout("no progress for %s s" % timeout)
        self._flush()
        return out

    def call(self, request):
        return self.pipeline([request])[0]

    def _expect(self, request, allowed=("OK",)):
        resp = self.call(request)
        if status_name(resp.status) not in allowed:
            raise ServerError(resp)
        return resp

    def hello(self, features=0, token=b""):
        """HELLO; ask for ``features=FEATURE_PUSH`` to subscribe. Returns the OK fields
        (version, features granted, limits, history, server)."""
        resp = self._expect(Request("HELLO", max_version=VERSION, features=features,
                                    token=token))
        self.hello_reply = resp.fields
        self.decoder.max_frame = resp.fields["max_frame"]
        return resp.fields

    def ping(self, payload=b""):
        return self._expect(Request("PING", payload=payload)).fields["payload"]

    def stats(self):
        return parse_stats(self._expect(Request("STATS")).fields["text"])

    def get(self, key):
        """(version, value), or None when the key has no record."""
        resp = self._expect(Request("GET", key=key), ("OK", "NOT_FOUND"))
        return (resp.fields["version"], resp.fields["value"]) if resp.ok else None

    def put(self, key, value):
        return self._expect(Request("PUT", key=key, value=value)).fields["version"]

    def cas(self, key, expected, value):
        """(True, new version) or (False, current version; 0 when absent)."""
        resp = self._expect(Request("CAS", key=key, expected=expected, value=value),
                            ("OK", "VERSION_CONFLICT"))
        return (True, resp.fields["version"]) if resp.ok else (False, resp.fields["current"])

    def delete(self, key, expected=0):
        """("OK", seq) | ("NOT_FOUND", None) | ("VERSION_CONFLICT", current)."""
        resp = self._expect(Request("DELETE", key=key, expected=expected),
                            ("OK", "NOT_FOUND", "VERSION_CONFLICT"))
        return status_name(resp.status), resp.fields.get("version", resp.fields.get("current"))

    def scan_page(self, prefix=b"", cursor=b"", limit=0):
        return self._expect(Request("SCAN", prefix=prefix, cursor=cursor, limit=limit)).fields

    def scan(self, prefix=b"", limit=0, max_pages=1_000_000):
        """Every (key, version, value) under prefix, following cursors page by page."""
        entries = []
        cursor = b""
        for _ in range(max_pages):
            page = self.scan_page(prefix, cursor, limit)
            entries.extend(page["entries"])
            cursor = page["next_cursor"]
            if not cursor:
                return entries
        raise ProtocolError("SCAN did not finish within %d pages" % max_pages)

    # -- subscriptions --------------------------------------------------------------

    def subscribe(self, prefix=b"", from_seq=None, history=0, progress_ms=0):
        """Subscribes to the changes and messages under ``prefix`` (needs HELLO with
        FEATURE_PUSH). With ``from_seq`` the subscription resumes: the logged changes
        after that sequence of ``history`` (0: the server's current one) come first.
        Returns the subscription id; ``self.subscriptions[id]`` keeps the prefix and the
        answer's history and seq."""
        resp = self._expect(Request("SUBSCRIBE", prefix=prefix, resume=from_seq is not None,
                                    from_=from_seq or 0,
                                    history=history if from_seq is not None else 0,
                                    progress_ms=progress_ms))
        f = resp.fields
        self.subscriptions[f["sub_id"]] = {"prefix": _to_bytes(prefix),
                                           "history": f["history"], "seq": f["seq"]}
        return f["sub_id"]

    def unsubscribe(self, sub_id):
        """Ends a subscription: True, or False when the server held no such one. Its
        pushes still queued are dropped (none come after the answer)."""
        resp = self._expect(Request("UNSUBSCRIBE", sub_id=sub_id), ("OK", "NOT_FOUND"))
        self.subscriptions.pop(sub_id, None)
        self.pushes = collections.deque(p for p in self.pushes if p.sub_id != sub_id)
        return resp.ok

    def publish(self, subject, payload):
        """Publishes a message; returns how many connections it was delivered to."""
        return self._expect(Request("PUBLISH", subject=subject, payload=payload)
                            ).fields["receivers"]

    def _take_push(self, sub_id):
        for i, p in enumerate(self.pushes):
            if sub_id is None or p.sub_id == sub_id:
                del self.pushes[i]
                return p
        return None

    def next_push(self, timeout=None, sub_id=None):
        """The next push frame (a Push), oldest first, waiting at most ``timeout``
        seconds (None: no limit); None when the time passed. With ``sub_id``, the next
        push of that subscription (others stay queued)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            push = self._take_push(sub_id)
            if push is not None:
                if self._outbox:
                    self._flush()
                return push
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._pump(wait):
                return None
            if self._answers:
                raise ProtocolError("a response while no request was waiting: %s"
                                    % describe_response(self._answers[0]))

    def watch(self, prefix=b"", limit=0, timeout=None):
        """Lists ``prefix`` and then follows its changes (section 13.5): yields a Change
        for each record of the listing, in key order, then one for each later change.
        After a GAP it lists again and yields the differences. With ``timeout``, yields
        None after that many seconds without a change (iterate on to keep waiting).

        Needs HELLO with FEATURE_PUSH; ``limit`` is the SCAN page size (0: the server's).
        Messages published under the prefix are ignored. Closing the generator ends the
        subscription. With ``auto_pong`` off, answer keepalives when it yields None.
        """
        state = {}  # key -> (version, value): the records as yielded so far
        while True:
            sub_id, listing = self._list_and_subscribe(prefix, limit)
            try:
                for key in sorted(set(state) | set(listing)):
                    old, new = state.get(key), listing.get(key, (0, None))
                    if new[1] is not None and new != old:
                        yield Change("put", key, new[0], new[1])
                    elif new[1] is None and old is not None:
                        yield Change("delete", key, new[0], None)
                state = {k: v for k, v in listing.items() if v[1] is not None}  # step 4
                while True:
                    push = self.next_push(timeout, sub_id)
                    if push is None:
                        yield None
                    elif push.name == "GAP":
                        break  # step 5: list again
                    elif push.name == "EVENT":
                        key, seq = push["key"], push["seq"]
                        if seq <= state.get(key, (0, None))[0]:
                            continue  # the listing showed this change, or a later one
                        if push["kind"] == "put":
                            state[key] = (seq, push["value"])
                            yield Change("put", key, seq, push["value"])
                        elif state.pop(key, None) is not None:
                            yield Change("delete", key, seq, None)
            except GeneratorExit:
                try:
                    self.unsubscribe(sub_id)
                except (OSError, ProtocolError, ServerError):
                    pass
                raise
            self.unsubscribe(sub_id)

    def _list_and_subscribe(self, prefix, limit):
        """Steps 1 to 3 of section 13.5: the first SCAN page, SUBSCRIBE with RESUME from
        its seq, then the other pages, keeping per key the highest version seen from
        pages and events (a deletion as a tombstone, value None). Starts again if a GAP
        comes meanwhile. Returns (sub_id, {key: (version, value or None)})."""
        history = (self.hello_reply or {}).get("history", 0)
        while True:
            page = self.scan_page(prefix, b"", limit)
            sub_id = self.subscribe(prefix, from_seq=page["seq"], history=history)
            seen = {}
            gap = False

            def keep(key, version, value):
                if version > seen.get(key, (0, None))[0]:
                    seen[key] = (version, value)

            while True:
                for key, version, value in page["entries"]:
                    keep(key, version, value)
                push = self._take_push(sub_id)
                while push is not None:
                    if push.name == "GAP":
                        gap = True
                    elif push.name == "EVENT":
                        keep(push["key"], push["seq"],
                             push["value"] if push["kind"] == "put" else None)
                    push = self._take_push(sub_id)
                if gap or not page["next_cursor"]:
                    break
                page = self.scan_page(prefix, page["next_cursor"], limit)
            if not gap:
                return sub_id, seen
            self.unsubscribe(sub_id)


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


def parse_addr(addr):
    """"HOST:PORT" (or "[V6]:PORT") as (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("the address must be HOST:PORT, got %r" % addr)
    return host.strip("[]"), int(port)


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


if __name__ == "__main__":
    sys.exit(main())
