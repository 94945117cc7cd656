//! The `decode` target: arbitrary bytes through `Decoder`, `Request::decode` and
//! `Response::decode`, checking what the codec promises rather than only "no panic".
//!
//! Input layout: one byte picking the frame limit, one byte picking the read size,
//! then the stream. The stream is decoded twice, all at once and in reads of that
//! size, and both runs must agree.
//!
//! Invariants checked on every `decode` call:
//! * `Ok(Some)` consumes exactly `4 + declared` bytes, at most the frame limit; the
//!   body is `declared - 8` bytes and the header is the 8 bytes after the length.
//! * `Ok(None)` leaves the buffer's bytes alone, and only once the length is visible
//!   and within the limit (a bad length is reported as soon as its 4 bytes arrive).
//! * The buffer's capacity stays within twice the frame limit plus the input: the
//!   decoder may reserve room for one accepted frame, never for a rejected length.
//! * `Err` leaves the buffer alone, repeats exactly on the next call, keeps its status
//!   as more bytes arrive, and ends as the same error the unsplit stream gives.
//! * Every request that parses re-encodes to the exact frame, with keys and values
//!   within the limits; every response that parses re-encodes to the same bytes (but
//!   for flag bits a response does not carry).

use bytes::{BufMut, BytesMut};
use switchboard_protocol::msg::hello::MAX_TOKEN;
use switchboard_protocol::{
    DecodeError, Decoder, Flags, Frame, Header, Limits, Opcode, Push, Request, Response, Status,
    BASE_VERSION, HEADER_LEN, LENGTH_LEN, MAX_VERSION, PREFIX_LEN,
};

/// What decoding a whole stream produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Frame>,
    error: Option<DecodeError>,
    leftover: Vec<u8>,
}

/// Runs the `decode` target on one input.
pub fn check(data: &[u8]) {
    let (limit_sel, read_sel, stream) = match data {
        [a, b, rest @ ..] => (*a, *b, rest),
        _ => return,
    };
    // Small limits make the length checks reachable with small inputs; 0xff tries the
    // default limit, where reservations are large.
    let max_frame = match limit_sel {
        0xff => Limits::default().max_frame,
        n => 8 + u32::from(n) * 32,
    };
    let whole = decode_stream(stream, max_frame, stream.len().max(1));
    let split = decode_stream(stream, max_frame, usize::from(read_sel) + 1);
    assert_eq!(whole, split, "splitting the stream changed the outcome");
}

fn decode_stream(stream: &[u8], max_frame: u32, read: usize) -> Outcome {
    let mut decoder = Decoder::new(max_frame);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut error: Option<DecodeError> = None;
    let mut consumed = 0;
    for chunk in stream.chunks(read) {
        buf.extend_from_slice(chunk);
        if let Some(first) = error {
            // More bytes after a fatal error: still fatal, for the same reason.
            let again = step(&mut decoder, &mut buf, stream.len()).expect_err("error is sticky");
            assert_eq!(again.status(), first.status(), "{first:?} became {again:?}");
            error = Some(again);
            continue;
        }
        loop {
            match step(&mut decoder, &mut buf, stream.len()) {
                Ok(Some(frame)) => {
                    // The frame is exactly the next bytes of the stream.
                    let bytes = frame_bytes(&frame);
                    assert_eq!(&stream[consumed..consumed + bytes.len()], &bytes[..]);
                    consumed += bytes.len();
                    check_frame(&frame, max_frame);
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
    }
    // Whatever was not consumed is the stream's tail, byte for byte.
    assert_eq!(&buf[..], &stream[consumed..], "buffered bytes were altered");
    Outcome {
        frames,
        error,
        leftover: buf.to_vec(),
    }
}

/// One `decode` call, with the invariants every call must keep.
fn step(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    input_len: usize,
) -> Result<Option<Frame>, DecodeError> {
    let max_frame = decoder.max_frame();
    // Only the prefix is copied: copying the whole buffer on every call would make
    // one-byte reads quadratic. The end of the stream compares every byte left.
    let before = Snapshot::of(buf);
    let declared = before
        .head
        .get(..LENGTH_LEN)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    let total = declared.map(|d| u64::from(d) + LENGTH_LEN as u64);
    let header = before.head.get(LENGTH_LEN..).and_then(Header::read);
    let result = decoder.decode(buf);
    match &result {
        Ok(Some(frame)) => {
            let total = total.expect("a frame has a length") as usize;
            let declared = declared.expect("a frame has a length") as usize;
            assert_eq!(before.len - buf.len(), total, "consumed one frame");
            assert!(total <= max_frame as usize && total >= PREFIX_LEN);
            assert_eq!(frame.body.len(), declared - HEADER_LEN);
            assert_eq!(Some(frame.header), header);
            assert!((BASE_VERSION..=MAX_VERSION).contains(&frame.header.version));
        }
        Ok(None) => {
            assert!(before.same(buf), "waiting must not change the bytes");
            if let Some(total) = total {
                assert!(
                    total <= u64::from(max_frame),
                    "oversized length not rejected"
                );
                assert!(total >= PREFIX_LEN as u64, "undersized length not rejected");
                if let Some(h) = header {
                    assert!((BASE_VERSION..=MAX_VERSION).contains(&h.version));
                    assert!(total > before.len as u64, "a whole frame was not returned");
                }
            }
        }
        Err(e) => {
            assert!(before.same(buf), "an error must not consume bytes");
            assert!(e.status().is_fatal() && e.status().is_error());
            assert!(!e.to_string().is_empty());
            let total = total.expect("errors need a length");
            match *e {
                DecodeError::TooLarge {
                    declared,
                    limit,
                    request_id,
                    opcode,
                } => {
                    assert_eq!((declared, limit), (total, max_frame));
                    assert!(declared > u64::from(limit));
                    assert_eq!(request_id, header.map(|h| h.request_id));
                    assert_eq!(opcode, header.map(|h| h.opcode));
                }
                DecodeError::TooShort { declared } => {
                    assert!(total < PREFIX_LEN as u64 && total <= u64::from(max_frame));
                    assert_eq!(u64::from(declared) + LENGTH_LEN as u64, total);
                }
                DecodeError::UnsupportedVersion {
                    version,
                    request_id,
                    opcode,
                } => {
                    let h = header.expect("the version is in the header");
                    assert_eq!((version, request_id), (h.version, h.request_id));
                    assert_eq!(opcode, h.opcode);
                    assert!(!(BASE_VERSION..=MAX_VERSION).contains(&version));
                }
            }
            assert_eq!(decoder.decode(buf), result, "an error repeats");
            assert!(before.same(buf));
        }
    }
    // Amortised growth may double a buffer, but nothing may reserve for a length past
    // the limit: the capacity stays within twice the limit plus everything fed.
    let bound = 2 * (max_frame as usize + input_len) + 64;
    assert!(
        buf.capacity() <= bound,
        "capacity {} over {bound}",
        buf.capacity()
    );
    result
}

/// A buffer's length and first bytes, to tell whether a call changed it.
struct Snapshot {
    len: usize,
    head: Vec<u8>,
}

impl Snapshot {
    fn of(buf: &BytesMut) -> Snapshot {
        Snapshot {
            len: buf.len(),
            head: buf[..buf.len().min(2 * PREFIX_LEN)].to_vec(),
        }
    }

    fn same(&self, buf: &BytesMut) -> bool {
        buf.len() == self.len && buf.starts_with(&self.head)
    }
}

/// The bytes a frame was read from.
pub fn frame_bytes(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_LEN + frame.body.len());
    out.put_u32((HEADER_LEN + frame.body.len()) as u32);
    let mut h = [0; HEADER_LEN];
    frame.header.write(&mut h);
    out.extend_from_slice(&h);
    out.extend_from_slice(&frame.body);
    out
}

/// Parses one whole frame as a request and as a response, checking both parsers.
pub fn check_frame(frame: &Frame, max_frame: u32) {
    let limits = Limits::with_max_frame(max_frame);
    let bytes = frame_bytes(frame);
    let h = frame.header;
    let decoded = Request::decode(frame, &limits);
    // Taking the frame (as the server does) must decide exactly the same.
    assert_eq!(Request::decode_owned(frame.clone(), &limits), decoded);
    match decoded {
        Ok(request) => {
            assert_eq!(request.opcode(), h.opcode);
            assert_eq!((h.flags, h.status), (Flags::NONE, Status::OK));
            check_request_limits(&request, &limits);
            let mut again = BytesMut::new();
            request.encode(h.request_id, &mut again);
            assert_eq!(&again[..], &bytes[..], "{request:?} re-encodes differently");
        }
        Err(e) => {
            assert!(!e.status.is_fatal(), "{e}: a bad request must not be fatal");
            let known = [
                Opcode::HELLO,
                Opcode::PING,
                Opcode::STATS,
                Opcode::GET,
                Opcode::PUT,
                Opcode::DELETE,
                Opcode::CAS,
                Opcode::SCAN,
                Opcode::SUBSCRIBE,
                Opcode::UNSUBSCRIBE,
                Opcode::PUBLISH,
            ]
            .contains(&h.opcode);
            let expected: &[Status] = if known {
                &[
                    Status::BAD_REQUEST,
                    Status::KEY_TOO_LARGE,
                    Status::VALUE_TOO_LARGE,
                ]
            } else {
                &[Status::UNKNOWN_OPCODE]
            };
            assert!(expected.contains(&e.status), "{e} for {h:?}");
        }
    }
    if let Ok(response) = Response::decode(frame) {
        assert!(!h.flags.contains(Flags::PUSH));
        assert_eq!(
            (response.request_id, response.opcode),
            (h.request_id, h.opcode)
        );
        assert_eq!(response.body.status(), h.status);
        let mut again = BytesMut::new();
        response.encode(&mut again);
        // Responses carry no flags, so unknown flag bits are the only thing dropped.
        let mut expected = bytes.clone();
        expected[LENGTH_LEN + 2] = 0;
        assert_eq!(
            &again[..],
            &expected[..],
            "{response:?} re-encodes differently"
        );
    }
    if let Ok(push) = Push::decode(frame) {
        assert!(h.flags.contains(Flags::PUSH));
        let mut again = BytesMut::new();
        push.encode(h.version, &mut again);
        // Only the PUSH flag is written, so other flag bits are all that is dropped.
        let mut expected = bytes;
        expected[LENGTH_LEN + 2] = Flags::PUSH.0;
        assert_eq!(&again[..], &expected[..], "{push:?} re-encodes differently");
    }
}

/// A parsed request keeps every size rule of the protocol.
pub fn check_request_limits(request: &Request, limits: &Limits) {
    let key_ok = |k: &[u8]| !k.is_empty() && k.len() <= limits.max_key as usize;
    let value_ok = |v: &[u8]| v.len() <= limits.max_value as usize;
    let ok = match request {
        Request::Hello {
            max_version, token, ..
        } => *max_version >= 1 && token.len() <= MAX_TOKEN,
        Request::Ping { payload } => value_ok(payload),
        Request::Stats => true,
        Request::Get { key } | Request::Delete { key, .. } => key_ok(key),
        Request::Put { key, value, .. } | Request::Cas { key, value, .. } => {
            key_ok(key) && value_ok(value)
        }
        Request::Scan { prefix, cursor, .. } => {
            prefix.len() <= limits.max_key as usize && cursor.len() <= limits.max_key as usize
        }
        Request::Subscribe { prefix, .. } => prefix.len() <= limits.max_key as usize,
        Request::Unsubscribe { .. } => true,
        Request::Publish { subject, payload } => key_ok(subject) && value_ok(payload),
    };
    assert!(ok, "{request:?} passed the parser but breaks the limits");
}
