"""The blocking socket ``Client``: HELLO, every request, pipelining, subscriptions
(``subscribe``, ``next_push``) and ``watch``, the list-then-watch recipe of section
13.5; plus ``Change``, what ``watch`` yields, and ``parse_addr`` for "HOST:PORT".
"""

import collections
import select
import socket
import ssl
import time

from .codec import (
    DEFAULT_ADDR,
    FATAL_STATUSES,
    OPCODES,
    VERSION,
    FrameDecoder,
    GoingAway,
    ProtocolError,
    Push,
    Request,
    ServerError,
    _to_bytes,
    decode_response,
    encode_request,
    parse_stats,
    status_name,
)
from .describe import describe_response


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

    When the server stops it sends GOAWAY (section 12.4): ``self.goaway`` then holds
    its count, and every request after the count fails with ``GoingAway`` (it was not
    carried out: send it again elsewhere or after a restart), as does any request
    made afterwards.
    """

    def __init__(self, addr=DEFAULT_ADDR, port=None, timeout=10.0, sock=None, auto_pong=True,
                 token=None, features=0, tls=False, ca_file=None, cert_file=None,
                 key_file=None, server_hostname=None, ssl_context=None):
        """Connects to ``addr``, "HOST:PORT" as the Rust client and the CLI take it
        (``Client("127.0.0.1:7420")``), or to ``addr`` and ``port`` given apart; or
        uses ``sock``, an already connected socket.

        ``token`` (bytes or str) is for a server started with ``--auth-token-file``:
        the client sends HELLO carrying it (and asking for ``features``, e.g.
        ``FEATURE_PUSH`` to subscribe) at once. A wrong token raises ServerError
        (AUTH_FAILED).

        TLS (``tls=True``, implied by any of the TLS arguments) wraps the socket with
        the standard ``ssl`` module and finishes the handshake here, so a certificate
        that is not trusted, expired or for another host raises ``ssl.SSLError`` from
        the constructor. ``ca_file`` is the PEM file of CAs to trust (default: the
        system's); ``cert_file`` and ``key_file`` a client certificate for servers
        that require one; ``server_hostname`` the name the server's certificate must
        carry (default: the host connected to); ``ssl_context`` a context of your own
        instead of all of these."""
        host = None
        if sock is None:
            host, port = parse_addr(addr) if port is None else (addr, port)
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock.settimeout(timeout)
        if tls or ca_file or cert_file or server_hostname or ssl_context:
            context = ssl_context or tls_context(ca_file, cert_file, key_file)
            try:
                sock = context.wrap_socket(sock, server_hostname=server_hostname or host)
            except BaseException:
                sock.close()
                raise
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
        self._answered = 0  # responses received: requests, from the first, answered
        self.goaway = None  # the count of the server's GOAWAY, once it sent one
        if isinstance(token, str):
            token = token.encode()
        self.token = token or b""
        if self.token:
            self.hello(features)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the byte stream ----------------------------------------------------------

    def _queue(self, request, automatic=False):
        if self.goaway is not None:
            raise GoingAway(self.goaway, not_carried_out=[request])
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
                if resp.name == "GOAWAY":
                    self.goaway = resp["count"]
                elif self.goaway is not None:
                    pass  # nothing follows a GOAWAY; a keepalive would go unanswered
                elif self.auto_pong and resp.name == "PING":
                    self._queue(Request("PING"), automatic=True)
                else:
                    self.pushes.append(resp)
                continue
            if status_name(resp.status) in FATAL_STATUSES:
                raise ServerError(resp)
            if not self._in_flight:
                raise ProtocolError("a response to no request: %s" % describe_response(resp))
            rid, op, automatic = self._in_flight.popleft()
            self._answered += 1
            if resp.request_id != rid or resp.opcode != OPCODES[op]:
                raise ProtocolError("expected a response to #%d %s, got %s"
                                    % (rid, op, describe_response(resp)))
            if not automatic:
                self._answers.append(resp)

    def _going_away(self):
        """True when the GOAWAY says no request still in flight will be answered."""
        return self.goaway is not None and self._answered >= self.goaway

    def _receive(self):
        data = self.sock.recv(65536)
        if not data:
            if self._going_away():
                raise GoingAway(self.goaway)
            raise ProtocolError("server closed the connection")
        self.decoder.feed(data)
        self._dispatch()

    def _pump(self, wait):
        """Writes what the socket takes and reads what has arrived, waiting at most
        ``wait`` seconds (None: no limit) for either; False if nothing moved."""
        writers = [self.sock] if self._outbox else []
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            # Decrypted bytes already buffered: select cannot see them.
            readable, writable = [self.sock], []
        else:
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
        if self.goaway is not None:
            raise GoingAway(self.goaway, not_carried_out=requests)
        for req in requests:
            self._queue(req)
        timeout = self.sock.gettimeout()
        out = []
        while len(out) < len(requests):
            if self._answers:
                out.append(self._answers.popleft())
            elif self._going_away():
                self._in_flight.clear()
                self._outbox.clear()
                raise GoingAway(self.goaway, out, requests[len(out):])
            else:
                try:
                    progressed = self._pump(timeout)
                except GoingAway:
                    continue  # the answers that came with it are taken above
                if not progressed:
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

    def hello(self, features=0, token=None):
        """HELLO; ask for ``features=FEATURE_PUSH`` to subscribe. Carries ``token``, or
        the client's own (see ``__init__``). Returns the OK fields (version, features
        granted, limits, history, server)."""
        token = self.token if token is None else token
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



TLS_ALPN = "switchboard/1"


def tls_context(ca_file=None, cert_file=None, key_file=None):
    """A client ``ssl.SSLContext`` for switchboard: certificates verified against
    ``ca_file`` (PEM; default: the system's CAs) and the host name, the client
    certificate ``cert_file``/``key_file`` if given, and the protocol's ALPN id."""
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols([TLS_ALPN])
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def parse_addr(addr):
    """"HOST:PORT" (or "[V6]:PORT") as (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("the address must be HOST:PORT, got %r" % addr)
    return host.strip("[]"), int(port)
