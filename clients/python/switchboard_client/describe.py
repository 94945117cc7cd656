"""Canonical descriptions: ``describe_*`` functions that print decoded values in the
text the test vectors of protocol-spec.md use.
"""

from .codec import Push, REQUEST_LAYOUT, opcode_name, status_name


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
