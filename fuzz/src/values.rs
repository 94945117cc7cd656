//! Fitting derived `Arbitrary` requests and responses to what a target checks.
//!
//! `switchboard-protocol`'s `arbitrary` feature derives `Arbitrary` for `Request` and
//! `Response`. Its requests are valid under the default limits; [`fit`] cuts them to
//! tighter limits, because a valid request is what must survive a round trip. Responses
//! come in two kinds: *canonical* ones, whose opcode and status agree with the body
//! (what a server sends, which must round-trip exactly; [`canonical`] makes them so),
//! and free ones, where any combination is allowed and only re-encoding the decoded
//! value must be stable.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use switchboard_protocol::msg::hello::MAX_TOKEN;
use switchboard_protocol::{Limits, Opcode, Request, Response, ResponseBody, Status};

/// A raw byte string read like the protocol's own: a `u16` length (little-endian, as
/// `arbitrary` reads integers), then that many bytes, cut to what is left. For
/// `#[arbitrary(with = raw)]` on `Vec<u8>` fields, which `Vec`'s own impl would read
/// at two input bytes per byte.
pub fn raw(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let len = usize::from(u16::arbitrary(u)?).min(u.len());
    Ok(u.bytes(len)?.to_vec())
}

fn cut(b: Bytes, max: u32) -> Bytes {
    b.slice(..b.len().min(max as usize))
}

/// `request`, valid under `limits`: keys, prefixes and cursors cut to `max_key`
/// (keys stay non-empty), values and payloads to `max_value`.
///
/// # Panics
/// If `request` was not valid under the default limits to begin with (an empty key,
/// a token over `MAX_TOKEN`, version 0): the derived impl never makes one.
pub fn fit(request: Request, limits: &Limits) -> Request {
    let (k, v) = (limits.max_key, limits.max_value);
    let r = match request {
        Request::Hello {
            max_version,
            features,
            token,
        } => Request::Hello {
            max_version,
            features,
            token,
        },
        Request::Ping { payload } => Request::Ping {
            payload: cut(payload, v),
        },
        Request::Stats => Request::Stats,
        Request::Get { key } => Request::Get { key: cut(key, k) },
        Request::Put { key, value, ttl_ms } => Request::Put {
            key: cut(key, k),
            value: cut(value, v),
            ttl_ms,
        },
        Request::Delete { key, expected } => Request::Delete {
            key: cut(key, k),
            expected,
        },
        Request::Cas {
            key,
            expected,
            value,
            ttl_ms,
        } => Request::Cas {
            key: cut(key, k),
            expected,
            value: cut(value, v),
            ttl_ms,
        },
        Request::Scan {
            prefix,
            cursor,
            limit,
        } => Request::Scan {
            prefix: cut(prefix, k),
            cursor: cut(cursor, k),
            limit,
        },
        Request::Subscribe {
            prefix,
            resume,
            progress_ms,
        } => Request::Subscribe {
            prefix: cut(prefix, k),
            resume,
            progress_ms,
        },
        Request::Unsubscribe { sub_id } => Request::Unsubscribe { sub_id },
        Request::Publish { subject, payload } => Request::Publish {
            subject: cut(subject, k),
            payload: cut(payload, v),
        },
    };
    match &r {
        Request::Hello {
            max_version, token, ..
        } => assert!(*max_version > 0 && token.len() <= MAX_TOKEN, "{r:?}"),
        Request::Get { key }
        | Request::Put { key, .. }
        | Request::Delete { key, .. }
        | Request::Cas { key, .. } => assert!(!key.is_empty(), "{r:?}"),
        _ => {}
    }
    r
}

/// `response` with its header made to agree with its body, as a server's encoders
/// always do: the opcode of the request a body answers (for `Written`, PUT, DELETE or
/// CAS: kept if it is one of them, else picked by the opcode byte), and an error
/// status for `Error`. Canonical responses are left as they are.
pub fn canonical(response: Response) -> Response {
    let Response {
        request_id,
        opcode,
        body,
    } = response;
    let writes = [Opcode::PUT, Opcode::DELETE, Opcode::CAS];
    let opcode = match &body {
        ResponseBody::Hello(_) => Opcode::HELLO,
        ResponseBody::Pong(_) => Opcode::PING,
        ResponseBody::Stats(_) => Opcode::STATS,
        ResponseBody::Value { .. } => Opcode::GET,
        ResponseBody::Written { .. } if writes.contains(&opcode) => opcode,
        ResponseBody::Written { .. } => writes[usize::from(opcode.0 % 3)],
        ResponseBody::Scan(_) => Opcode::SCAN,
        ResponseBody::Subscribed { .. } => Opcode::SUBSCRIBE,
        ResponseBody::Unsubscribed => Opcode::UNSUBSCRIBE,
        ResponseBody::Published { .. } => Opcode::PUBLISH,
        _ => opcode,
    };
    let body = match body {
        ResponseBody::Error { status, message } => ResponseBody::Error {
            status: Status(status.0.max(0x10)),
            message,
        },
        other => other,
    };
    Response {
        request_id,
        opcode,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::RequestId;

    #[test]
    fn fitting_cuts_to_the_limits_and_keeps_keys() {
        let small = Limits::with_max_frame(Limits::MIN_MAX_FRAME);
        let big = Bytes::from(vec![1; small.max_value as usize + 5]);
        let r = fit(
            Request::Put {
                key: "k".into(),
                value: big,
                ttl_ms: 1,
            },
            &small,
        );
        let Request::Put { key, value, .. } = r else {
            unreachable!()
        };
        assert_eq!(
            (&key[..], value.len()),
            (&b"k"[..], small.max_value as usize)
        );
    }

    #[test]
    fn canonical_responses_are_kept() {
        let r = Response {
            request_id: RequestId(4),
            opcode: Opcode::DELETE,
            body: ResponseBody::Written { version: 2 },
        };
        assert_eq!(canonical(r.clone()), r);
        let odd = Response {
            opcode: Opcode(0x7f),
            ..r
        };
        assert_eq!(canonical(odd).opcode, Opcode::DELETE);
    }
}
