"""The sans-IO codec: protocol constants, errors, the Request, Response and Push
types, and encoding and decoding (``encode_request`` / ``decode_request``,
``encode_response`` / ``decode_response``, ``encode_push`` / ``decode_push``), with
``FrameDecoder`` turning bytes in into whole frames out. No sockets here.
"""

import struct


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
    "AUTH_REQUIRED": 0x19,
    "AUTH_FAILED": 0x1A,
    "MEMORY_LIMIT": 0x20,
    "SERVER_FULL": 0x21,
    "SHUTTING_DOWN": 0x22,
    "CLIENT_MEMORY_LIMIT": 0x23,
    "STORAGE_FULL": 0x24,
    "DENIED": 0x25,
    "INTERNAL_ERROR": 0x30,
}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}
FATAL_STATUSES = (
    "UNSUPPORTED_VERSION",
    "FRAME_TOO_LARGE",
    "MALFORMED_FRAME",
    "SERVER_FULL",
    "CLIENT_MEMORY_LIMIT",
    "AUTH_REQUIRED",
    "AUTH_FAILED",
    "DENIED",
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
    "GOAWAY": (("count", "u64"), ("message", "rest")),
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


class GoingAway(Exception):
    """The server is stopping (it sent GOAWAY) and did not carry out these requests:
    they can be sent again, to another server or after a restart (section 12.4).

    ``handled``: how many of the connection's requests, from its first, the server
    handled; ``answered``: the responses a pipeline did receive, in order;
    ``not_carried_out``: the Requests after the count, in order."""

    def __init__(self, handled, answered=(), not_carried_out=()):
        super().__init__(
            "the server is shutting down and did not carry out %d request(s) (it handled "
            "the first %d on this connection); send them again elsewhere or after a restart"
            % (len(not_carried_out), handled))
        self.handled = handled
        self.answered = list(answered)
        self.not_carried_out = list(not_carried_out)


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
        # describe.py imports this module: imported here, when first needed.
        from .describe import describe_response

        return "Response(%s)" % describe_response(self)


class Push:
    """A frame the server sent with the PUSH flag: not an answer to any request.

    ``Push("EVENT", sub_id=1, seq=42, kind="put", key=b"k", value=b"v")`` builds one of
    the pushes of PUSH_LAYOUT; its ``fields`` are a dict and ``push["seq"]`` reads one.
    A push this version does not define (an unassigned opcode) is kept as
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
        from .describe import describe_push

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

