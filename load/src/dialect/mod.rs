//! The three wire protocols behind one interface: encode a request into a connection's
//! write buffer, find where the next whole response ends in its read buffer, and judge
//! that response against the request it answers.
//!
//! Switchboard responses carry the request id, so they are matched by id and may come
//! in any order; RESP and the memcached text protocol have no ids and answer in order.
//! Parsing works on borrowed slices of the read buffer and allocates nothing.

mod memcache;
mod resp;
use crate::workload::{check_value, fill_value, key_name, Op, KEY_LEN};
use bytes::BytesMut;
use switchboard_protocol::{msg, Header, Opcode, RequestId, Status, LENGTH_LEN, PREFIX_LEN};

/// Largest value any of the servers stores: switchboard's default value limit, which
/// is also memcached's default item size.
pub const MAX_VALUE: usize = switchboard_protocol::Limits::DEFAULT_MAX_FRAME as usize;

/// Which server dialect to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// switchboard's length-prefixed binary frames.
    Switchboard,
    /// Redis's RESP (GET, SET, DEL, PING).
    Resp,
    /// memcached's text protocol (get, set, delete, version).
    Memcache,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Switchboard => "switchboard",
            Protocol::Resp => "resp",
            Protocol::Memcache => "memcache",
        }
    }

    /// Why this protocol cannot run `op`, if it cannot.
    pub fn unsupported(self, op: Op) -> Option<&'static str> {
        match (self, op) {
            (Protocol::Resp, Op::Cas) => Some(
                "cas is not supported with --protocol resp: Redis has no compare-and-set \
                 command (WATCH/MULTI is a transaction, not one request)",
            ),
            (Protocol::Memcache, Op::Cas) => Some(
                "cas is not supported with --protocol memcache: memcached's cas needs the \
                 cas-unique of a previous gets, which this mix does not model",
            ),
            _ => None,
        }
    }

    /// Largest response this protocol can send for values of at most `max_value` bytes.
    pub fn max_response(self, max_value: usize) -> usize {
        // Framing is a few dozen bytes in every dialect; the key is echoed by memcached.
        max_value + 256
    }
}

/// One request, as the engine sends it.
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub op: Op,
    pub key: u64,
    /// Value length for PUT and CAS.
    pub value_len: usize,
    /// Version CAS expects (0 = absent).
    pub expected: u64,
}

#[cfg(test)]
impl Req {
    /// A request for the dialects' tests: `value_len` bytes for writes, no CAS version.
    pub fn for_test(op: Op, key: u64, value_len: usize) -> Req {
        Req {
            op,
            key,
            value_len,
            expected: 0,
        }
    }
}

/// What a response said, once judged against its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Success; the record's version when the protocol reports one.
    Ok(Option<u64>),
    /// GET or DELETE of an absent key.
    Miss,
    /// CAS lost: the record is at another version (0 = absent).
    Conflict(u64),
    /// A status or layout the request does not allow.
    WrongStatus,
    /// A GET value that is not the one derived from its key.
    WrongValue,
}

/// A whole response found at the front of the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its length in bytes.
    pub len: usize,
    /// The request id it carries (switchboard only).
    pub id: Option<u32>,
}

/// The stream cannot be parsed any further; the connection is dropped.
pub type Broken = &'static str;

/// Appends request `req` with id `id` to `out`. `scratch` holds the value while it is
/// written, so that its buffer is reused across requests.
pub fn encode(proto: Protocol, req: &Req, id: u32, out: &mut BytesMut, scratch: &mut Vec<u8>) {
    let mut key = [0u8; KEY_LEN];
    key_name(req.key, &mut key);
    scratch.clear();
    if matches!(req.op, Op::Put | Op::Cas) {
        fill_value(req.key, req.value_len, scratch);
    }
    match proto {
        Protocol::Switchboard => {
            let id = RequestId(id);
            match req.op {
                Op::Get => msg::get::encode_request(out, id, &key),
                Op::Put => msg::put::encode_request(out, id, &key, scratch, 0),
                Op::Del => msg::delete::encode_request(out, id, &key, 0),
                Op::Cas => msg::cas::encode_request(out, id, &key, req.expected, scratch, 0),
                Op::Ping => msg::ping::encode_request(out, id, &[]),
            }
        }
        Protocol::Resp => resp::encode(req.op, &key, scratch, out),
        Protocol::Memcache => memcache::encode(req.op, &key, scratch, out),
    }
}

/// Finds the end of the first whole response in `buf`: `Ok(None)` when more bytes are
/// needed.
pub fn find(proto: Protocol, buf: &[u8], max_response: usize) -> Result<Option<Found>, Broken> {
    match proto {
        Protocol::Switchboard => {
            if buf.len() < PREFIX_LEN {
                return Ok(None);
            }
            let declared = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            let total = declared + LENGTH_LEN;
            if total < PREFIX_LEN {
                return Err("response frame shorter than a header");
            }
            if total > max_response {
                return Err("response frame longer than any expected response");
            }
            let header = Header::read(&buf[LENGTH_LEN..]).ok_or("short header")?;
            if buf.len() < total {
                return Ok(None);
            }
            Ok(Some(Found {
                len: total,
                id: Some(header.request_id.0),
            }))
        }
        Protocol::Resp => resp::find(buf, max_response),
        Protocol::Memcache => memcache::find(buf, max_response),
    }
}

/// Judges response `bytes` (exactly what [`find`] delimited) as the answer to `req`.
pub fn judge(proto: Protocol, req: &Req, bytes: &[u8]) -> Verdict {
    match proto {
        Protocol::Switchboard => judge_switchboard(req, bytes),
        Protocol::Resp => resp::judge(req, bytes),
        Protocol::Memcache => memcache::judge(req, bytes),
    }
}

fn opcode_of(op: Op) -> Opcode {
    match op {
        Op::Get => Opcode::GET,
        Op::Put => Opcode::PUT,
        Op::Del => Opcode::DELETE,
        Op::Cas => Opcode::CAS,
        Op::Ping => Opcode::PING,
    }
}

fn judge_switchboard(req: &Req, bytes: &[u8]) -> Verdict {
    let Some(h) = Header::read(&bytes[LENGTH_LEN..]) else {
        return Verdict::WrongStatus;
    };
    let body = &bytes[PREFIX_LEN..];
    if h.opcode != opcode_of(req.op) || h.flags.0 != 0 || h.version != 1 {
        return Verdict::WrongStatus;
    }
    let version = |b: &[u8]| -> Option<u64> { Some(u64::from_be_bytes(b.try_into().ok()?)) };
    match (req.op, h.status) {
        (Op::Get, Status::OK) if body.len() >= 8 => {
            let v = version(&body[..8]);
            if check_value(req.key, &body[8..]) {
                Verdict::Ok(v)
            } else {
                Verdict::WrongValue
            }
        }
        (Op::Get | Op::Del, Status::NOT_FOUND) if body.is_empty() => Verdict::Miss,
        (Op::Put | Op::Del | Op::Cas, Status::OK) => match version(body) {
            Some(v) => Verdict::Ok(Some(v)),
            None => Verdict::WrongStatus,
        },
        (Op::Cas, Status::VERSION_CONFLICT) => match version(body) {
            Some(v) => Verdict::Conflict(v),
            None => Verdict::WrongStatus,
        },
        (Op::Ping, Status::OK) if body.is_empty() => Verdict::Ok(None),
        _ => Verdict::WrongStatus,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::encode;

    fn req(op: Op, key: u64) -> Req {
        Req::for_test(op, key, 32)
    }

    #[test]
    fn switchboard_requests_decode_with_the_protocol_crate() {
        let mut out = BytesMut::new();
        let mut scratch = Vec::new();
        encode(
            Protocol::Switchboard,
            &req(Op::Put, 42),
            7,
            &mut out,
            &mut scratch,
        );
        let mut dec = switchboard_protocol::Decoder::new(1 << 20);
        let frame = dec.decode(&mut out).unwrap().unwrap();
        let r = switchboard_protocol::Request::decode(&frame, &Default::default()).unwrap();
        match r {
            switchboard_protocol::Request::Put { key, value, .. } => {
                assert_eq!(&key[..], b"key:000000000042");
                assert!(check_value(42, &value));
                assert_eq!(value.len(), 32);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(frame.header.request_id, RequestId(7));
    }

    #[test]
    fn switchboard_responses_are_found_and_judged() {
        let mut out = BytesMut::new();
        let mut value = Vec::new();
        fill_value(5, 20, &mut value);
        msg::get::encode_response(&mut out, RequestId(3), 9, &value);
        encode::not_found(&mut out, Opcode::GET, RequestId(4));
        let f = find(Protocol::Switchboard, &out, 1 << 20).unwrap().unwrap();
        assert_eq!(f.id, Some(3));
        let (first, rest) = out.split_at(f.len);
        assert_eq!(
            judge(Protocol::Switchboard, &req(Op::Get, 5), first),
            Verdict::Ok(Some(9))
        );
        assert_eq!(
            judge(Protocol::Switchboard, &req(Op::Get, 6), first),
            Verdict::WrongValue
        );
        assert_eq!(
            judge(Protocol::Switchboard, &req(Op::Put, 5), first),
            Verdict::WrongStatus
        );
        let f2 = find(Protocol::Switchboard, rest, 1 << 20).unwrap().unwrap();
        assert_eq!(f2.len, rest.len());
        assert_eq!(
            judge(Protocol::Switchboard, &req(Op::Get, 5), rest),
            Verdict::Miss
        );
        assert_eq!(find(Protocol::Switchboard, &rest[..5], 1 << 20), Ok(None));
    }

    #[test]
    fn switchboard_writes_and_conflicts_carry_versions() {
        let mut out = BytesMut::new();
        encode::written(&mut out, Opcode::CAS, RequestId(1), 12);
        assert_eq!(
            judge(Protocol::Switchboard, &req(Op::Cas, 1), &out),
            Verdict::Ok(Some(12))
        );
        out.clear();
        encode::version_conflict(&mut out, Opcode::CAS, RequestId(1), 13);
        assert_eq!(
            judge(Protocol::Switchboard, &req(Op::Cas, 1), &out),
            Verdict::Conflict(13)
        );
        assert_eq!(
            judge(Protocol::Switchboard, &req(Op::Put, 1), &out),
            Verdict::WrongStatus
        );
        out.clear();
        encode::error(
            &mut out,
            Opcode::PUT,
            RequestId(1),
            Status::INTERNAL_ERROR,
            b"x",
        );
        assert_eq!(
            judge(Protocol::Switchboard, &req(Op::Put, 1), &out),
            Verdict::WrongStatus
        );
    }

    #[test]
    fn oversized_or_undersized_frames_break_the_stream() {
        let huge = [0x7f, 0, 0, 0, 1, 0x10, 0, 0, 0, 0, 0, 1];
        assert!(find(Protocol::Switchboard, &huge, 4096).is_err());
        let tiny = [0, 0, 0, 2, 1, 0x10, 0, 0, 0, 0, 0, 1];
        assert!(find(Protocol::Switchboard, &tiny, 4096).is_err());
    }
}
