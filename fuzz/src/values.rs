//! Requests and responses built from fuzzer input, and the scripts that build chosen ones.
//!
//! Requests are always valid under the given limits (non-empty keys within `max_key`,
//! values within `max_value`, tokens within `MAX_TOKEN`), because a valid request is
//! what must survive a round trip. Responses come in two kinds: *canonical* ones, whose
//! opcode and status agree with the body (what a server sends, which must round-trip
//! exactly), and free ones, where any combination is allowed and only re-encoding the
//! decoded value must be stable.

use super::source::{Script, Source};
use bytes::Bytes;
use switchboard_protocol::msg::hello::{HelloReply, MAX_TOKEN};
use switchboard_protocol::msg::scan::{ScanEntry, ScanPage};
use switchboard_protocol::{Limits, Opcode, Request, RequestId, Response, ResponseBody, Status};

/// Most entries in a generated SCAN page: enough to cover counts and cursors.
const MAX_ENTRIES: u8 = 8;

fn key(src: &mut Source, limits: &Limits) -> Bytes {
    let key = src.bytes(limits.max_key as usize);
    // Keys are never empty; an empty draw stands for the shortest key.
    if key.is_empty() {
        Bytes::from_static(b"k")
    } else {
        key
    }
}

/// A valid request under `limits`.
pub fn request(src: &mut Source, limits: &Limits) -> Request {
    let max_value = limits.max_value as usize;
    match src.u8() % 8 {
        0 => Request::Hello {
            max_version: src.u8().max(1),
            features: src.u32(),
            token: src.bytes(MAX_TOKEN),
        },
        1 => Request::Ping {
            payload: src.bytes(max_value),
        },
        2 => Request::Stats,
        3 => Request::Get {
            key: key(src, limits),
        },
        4 => Request::Put {
            key: key(src, limits),
            value: src.bytes(max_value),
            ttl_ms: src.u32(),
        },
        5 => Request::Delete {
            key: key(src, limits),
            expected: src.u64(),
        },
        6 => Request::Cas {
            key: key(src, limits),
            expected: src.u64(),
            value: src.bytes(max_value),
            ttl_ms: src.u32(),
        },
        _ => Request::Scan {
            prefix: src.bytes(limits.max_key as usize),
            cursor: src.bytes(limits.max_key as usize),
            limit: src.u16(),
        },
    }
}

/// Writes the input that [`request`] turns into `r` (for seeds).
pub fn script_request(s: &mut Script, r: &Request) {
    match r {
        Request::Hello {
            max_version,
            features,
            token,
        } => s.u8(0).u8(*max_version).u32(*features).bytes(token),
        Request::Ping { payload } => s.u8(1).bytes(payload),
        Request::Stats => s.u8(2),
        Request::Get { key } => s.u8(3).bytes(key),
        Request::Put { key, value, ttl_ms } => s.u8(4).bytes(key).bytes(value).u32(*ttl_ms),
        Request::Delete { key, expected } => s.u8(5).bytes(key).u64(*expected),
        Request::Cas {
            key,
            expected,
            value,
            ttl_ms,
        } => s.u8(6).bytes(key).u64(*expected).bytes(value).u32(*ttl_ms),
        Request::Scan {
            prefix,
            cursor,
            limit,
        } => s.u8(7).bytes(prefix).bytes(cursor).u16(*limit),
    };
}

/// A response, and whether it is canonical (must round-trip to an equal value).
pub fn response(src: &mut Source) -> (Response, bool) {
    let canonical = src.u8() & 1 == 0;
    let request_id = RequestId(src.u32());
    let mut opcode = Opcode(src.u8());
    let body = match src.u8() % 9 {
        0 => ResponseBody::Hello(HelloReply {
            version: src.u8(),
            features: src.u32(),
            max_frame: src.u32(),
            max_key: src.u32(),
            max_value: src.u32(),
            server: src.bytes(usize::MAX),
        }),
        1 => ResponseBody::Pong(src.bytes(usize::MAX)),
        2 => ResponseBody::Stats(src.bytes(usize::MAX)),
        3 => ResponseBody::Value {
            version: src.u64(),
            value: src.bytes(usize::MAX),
        },
        4 => ResponseBody::Written { version: src.u64() },
        5 => {
            let seq = src.u64();
            let entries = (0..src.u8() % (MAX_ENTRIES + 1))
                .map(|_| ScanEntry {
                    key: src.bytes(usize::MAX),
                    version: src.u64(),
                    value: src.bytes(usize::MAX),
                })
                .collect();
            ResponseBody::Scan(ScanPage {
                seq,
                entries,
                next_cursor: src.bytes(usize::MAX),
            })
        }
        6 => ResponseBody::NotFound,
        7 => ResponseBody::VersionConflict { current: src.u64() },
        _ => ResponseBody::Error {
            status: Status(src.u8()),
            message: src.bytes(usize::MAX),
        },
    };
    let body = if canonical {
        // Make the header agree with the body, as a server's encoders always do.
        let fixed = match &body {
            ResponseBody::Hello(_) => Some(Opcode::HELLO),
            ResponseBody::Pong(_) => Some(Opcode::PING),
            ResponseBody::Stats(_) => Some(Opcode::STATS),
            ResponseBody::Value { .. } => Some(Opcode::GET),
            ResponseBody::Written { .. } => {
                Some([Opcode::PUT, Opcode::DELETE, Opcode::CAS][usize::from(opcode.0 % 3)])
            }
            ResponseBody::Scan(_) => Some(Opcode::SCAN),
            _ => None,
        };
        opcode = fixed.unwrap_or(opcode);
        match body {
            ResponseBody::Error { status, message } => ResponseBody::Error {
                status: Status(status.0.max(0x10)),
                message,
            },
            other => other,
        }
    } else {
        body
    };
    let response = Response {
        request_id,
        opcode,
        body,
    };
    (response, canonical)
}

/// Writes the input that [`response`] turns into `r`, as a canonical response.
pub fn script_response(s: &mut Script, r: &Response) {
    s.u8(0).u32(r.request_id.0);
    // For Written the opcode byte picks PUT, DELETE or CAS by its remainder.
    let op = match (&r.body, r.opcode) {
        (ResponseBody::Written { .. }, Opcode::PUT) => 0,
        (ResponseBody::Written { .. }, Opcode::DELETE) => 1,
        (ResponseBody::Written { .. }, _) => 2,
        (_, op) => op.0,
    };
    s.u8(op);
    match &r.body {
        ResponseBody::Hello(h) => s
            .u8(0)
            .u8(h.version)
            .u32(h.features)
            .u32(h.max_frame)
            .u32(h.max_key)
            .u32(h.max_value)
            .bytes(&h.server),
        ResponseBody::Pong(p) => s.u8(1).bytes(p),
        ResponseBody::Stats(t) => s.u8(2).bytes(t),
        ResponseBody::Value { version, value } => s.u8(3).u64(*version).bytes(value),
        ResponseBody::Written { version } => s.u8(4).u64(*version),
        ResponseBody::Scan(page) => {
            s.u8(5).u64(page.seq);
            s.u8(u8::try_from(page.entries.len()).expect("seed pages are small"));
            for e in &page.entries {
                s.bytes(&e.key).u64(e.version).bytes(&e.value);
            }
            s.bytes(&page.next_cursor)
        }
        ResponseBody::NotFound => s.u8(6),
        ResponseBody::VersionConflict { current } => s.u8(7).u64(*current),
        ResponseBody::Error { status, message } => s.u8(8).u8(status.0).bytes(message),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_rebuild_the_values_they_describe() {
        let limits = Limits::default();
        let r = Request::Cas {
            key: "k1".into(),
            expected: 9,
            value: "v".into(),
            ttl_ms: 3,
        };
        let mut s = Script::new();
        script_request(&mut s, &r);
        assert_eq!(request(&mut Source::new(&s.into_bytes()), &limits), r);

        let resp = Response {
            request_id: RequestId(4),
            opcode: Opcode::DELETE,
            body: ResponseBody::Written { version: 2 },
        };
        let mut s = Script::new();
        script_response(&mut s, &resp);
        assert_eq!(response(&mut Source::new(&s.into_bytes())), (resp, true));
    }
}
