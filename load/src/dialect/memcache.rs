//! memcached's text protocol for get, set, delete, and `version` as the ping.

use super::resp::{line_end, parse_int, put_decimal};
use crate::dialect::{Broken, Found, Req, Verdict};
use crate::workload::{check_value, Op};
use bytes::{BufMut, BytesMut};

/// Appends one command.
pub fn encode(op: Op, key: &[u8], value: &[u8], out: &mut BytesMut) {
    match op {
        Op::Get => {
            out.put_slice(b"get ");
            out.put_slice(key);
            out.put_slice(b"\r\n");
        }
        Op::Put => {
            out.put_slice(b"set ");
            out.put_slice(key);
            out.put_slice(b" 0 0 ");
            put_decimal(out, value.len());
            out.put_slice(b"\r\n");
            out.put_slice(value);
            out.put_slice(b"\r\n");
        }
        Op::Del => {
            out.put_slice(b"delete ");
            out.put_slice(key);
            out.put_slice(b"\r\n");
        }
        Op::Ping => out.put_slice(b"version\r\n"),
        // Refused before the run starts (see Protocol::unsupported).
        Op::Cas => unreachable!("cas is refused for memcache before the run"),
    }
}

/// Finds the end of the first whole reply.
pub fn find(buf: &[u8], max_response: usize) -> Result<Option<Found>, Broken> {
    let Some(end) = line_end(buf) else {
        if buf.len() > max_response {
            return Err("memcached reply line longer than any expected reply");
        }
        return Ok(None);
    };
    if !buf.starts_with(b"VALUE ") {
        return Ok(Some(Found { len: end, id: None }));
    }
    // VALUE <key> <flags> <bytes>\r\n<data>\r\nEND\r\n
    let bytes = buf[..end - 2]
        .split(|&b| b == b' ')
        .nth(3)
        .and_then(parse_int)
        .filter(|&n| n >= 0)
        .ok_or("memcached VALUE line without a byte count")?;
    let total = end + bytes as usize + 2 + b"END\r\n".len();
    if total > max_response {
        return Err("memcached value longer than any expected reply");
    }
    Ok((buf.len() >= total).then_some(Found {
        len: total,
        id: None,
    }))
}

/// Judges one whole reply against its command.
pub fn judge(req: &Req, reply: &[u8]) -> Verdict {
    match (req.op, reply) {
        (Op::Get, b"END\r\n") | (Op::Del, b"NOT_FOUND\r\n") => Verdict::Miss,
        (Op::Get, _) if reply.starts_with(b"VALUE ") => {
            let Some(end) = line_end(reply) else {
                return Verdict::WrongStatus;
            };
            let mut key = [0u8; crate::workload::KEY_LEN];
            crate::workload::key_name(req.key, &mut key);
            let returned_key = reply[6..end - 2].split(|&b| b == b' ').next();
            if returned_key != Some(&key[..]) || !reply.ends_with(b"\r\nEND\r\n") {
                return Verdict::WrongStatus;
            }
            if check_value(req.key, &reply[end..reply.len() - 7]) {
                Verdict::Ok(None)
            } else {
                Verdict::WrongValue
            }
        }
        (Op::Put, b"STORED\r\n") | (Op::Del, b"DELETED\r\n") => Verdict::Ok(None),
        (Op::Ping, _) if reply.starts_with(b"VERSION ") => Verdict::Ok(None),
        _ => Verdict::WrongStatus,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::fill_value;

    fn req(op: Op, key: u64) -> Req {
        Req::for_test(op, key, 8)
    }

    #[test]
    fn commands_are_text_lines() {
        let mut out = BytesMut::new();
        encode(Op::Put, b"key:000000000001", b"abc", &mut out);
        assert_eq!(&out[..], b"set key:000000000001 0 0 3\r\nabc\r\n");
        out.clear();
        encode(Op::Get, b"key:000000000001", b"", &mut out);
        assert_eq!(&out[..], b"get key:000000000001\r\n");
    }

    #[test]
    fn replies_are_delimited_and_judged() {
        let mut v = Vec::new();
        fill_value(1, 5, &mut v);
        let mut reply = b"VALUE key:000000000001 0 5\r\n".to_vec();
        reply.extend_from_slice(&v);
        reply.extend_from_slice(b"\r\nEND\r\nSTORED\r\n");
        let f = find(&reply, 1024).unwrap().unwrap();
        assert_eq!(f.len, reply.len() - 8);
        assert_eq!(judge(&req(Op::Get, 1), &reply[..f.len]), Verdict::Ok(None));
        // The value of key 1 returned for key 2: another key's name and bytes.
        assert_eq!(
            judge(&req(Op::Get, 2), &reply[..f.len]),
            Verdict::WrongStatus
        );
        assert_eq!(find(&reply[..f.len - 1], 1024), Ok(None));
        assert_eq!(judge(&req(Op::Put, 1), &reply[f.len..]), Verdict::Ok(None));
        assert_eq!(judge(&req(Op::Get, 1), b"END\r\n"), Verdict::Miss);
        assert_eq!(judge(&req(Op::Del, 1), b"NOT_FOUND\r\n"), Verdict::Miss);
        assert_eq!(
            judge(&req(Op::Put, 1), b"SERVER_ERROR out of memory\r\n"),
            Verdict::WrongStatus
        );
        assert_eq!(
            judge(&req(Op::Ping, 1), b"VERSION 1.6.18\r\n"),
            Verdict::Ok(None)
        );
        let mut bad = b"VALUE key:000000000001 0 5\r\n".to_vec();
        bad.extend_from_slice(b"zzzzz\r\nEND\r\n");
        assert_eq!(judge(&req(Op::Get, 1), &bad), Verdict::WrongValue);
    }
}
