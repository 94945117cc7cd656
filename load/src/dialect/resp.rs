//! Redis's RESP for the four commands the load generator sends: GET, SET, DEL, PING.
//!
//! Requests are written as RESP arrays of bulk strings, exactly as redis-cli and
//! redis-benchmark send them, so the server does the same parsing work for both.

use crate::dialect::{Broken, Found, Req, Verdict};
use crate::workload::{check_value, Op};
use bytes::{BufMut, BytesMut};

/// Appends one command.
pub fn encode(op: Op, key: &[u8], value: &[u8], out: &mut BytesMut) {
    match op {
        Op::Get => command(out, &[b"GET", key]),
        Op::Put => command(out, &[b"SET", key, value]),
        Op::Del => command(out, &[b"DEL", key]),
        Op::Ping => command(out, &[b"PING"]),
        // Refused before the run starts (see Protocol::unsupported).
        Op::Cas => unreachable!("cas is refused for resp before the run"),
    }
}

fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.put_u8(b'*');
    put_decimal(out, args.len());
    out.put_slice(b"\r\n");
    for arg in args {
        out.put_u8(b'$');
        put_decimal(out, arg.len());
        out.put_slice(b"\r\n");
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

/// Writes `n` in decimal without going through `fmt` (no allocation, no locale).
pub fn put_decimal(out: &mut BytesMut, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// Position just past the first CRLF in `buf`.
pub fn line_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n").map(|p| p + 2)
}

/// Parses an optionally negative decimal.
pub fn parse_int(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n = 0i64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(if neg { -n } else { n })
}

/// Finds the end of the first whole reply.
pub fn find(buf: &[u8], max_response: usize) -> Result<Option<Found>, Broken> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some(end) = line_end(buf) else {
        if buf.len() > max_response {
            return Err("RESP reply line longer than any expected reply");
        }
        return Ok(None);
    };
    match kind {
        b'+' | b'-' | b':' => Ok(Some(Found { len: end, id: None })),
        b'$' => {
            let n = parse_int(&buf[1..end - 2]).ok_or("RESP bulk length is not a number")?;
            if n < 0 {
                return Ok(Some(Found { len: end, id: None }));
            }
            let total = end + n as usize + 2;
            if total > max_response {
                return Err("RESP bulk reply longer than any expected reply");
            }
            Ok((buf.len() >= total).then_some(Found {
                len: total,
                id: None,
            }))
        }
        _ => Err("RESP reply of a type these commands never get"),
    }
}

/// Judges one whole reply against its command.
pub fn judge(req: &Req, reply: &[u8]) -> Verdict {
    match (req.op, reply) {
        (Op::Get, b"$-1\r\n") | (Op::Del, b":0\r\n") => Verdict::Miss,
        (Op::Get, [b'$', ..]) => {
            let Some(end) = line_end(reply) else {
                return Verdict::WrongStatus;
            };
            let value = &reply[end..reply.len() - 2];
            if !reply.ends_with(b"\r\n") {
                Verdict::WrongStatus
            } else if check_value(req.key, value) {
                Verdict::Ok(None)
            } else {
                Verdict::WrongValue
            }
        }
        (Op::Put, b"+OK\r\n") | (Op::Del, b":1\r\n") | (Op::Ping, b"+PONG\r\n") => {
            Verdict::Ok(None)
        }
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
    fn commands_are_resp_arrays() {
        let mut out = BytesMut::new();
        encode(Op::Put, b"key:000000000001", b"abc", &mut out);
        assert_eq!(
            &out[..],
            b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000001\r\n$3\r\nabc\r\n"
        );
        out.clear();
        encode(Op::Ping, b"k", b"", &mut out);
        assert_eq!(&out[..], b"*1\r\n$4\r\nPING\r\n");
    }

    #[test]
    fn replies_are_delimited_and_judged() {
        let mut v = Vec::new();
        fill_value(3, 12, &mut v);
        let mut reply = b"$12\r\n".to_vec();
        reply.extend_from_slice(&v);
        reply.extend_from_slice(b"\r\n+OK\r\n");
        let f = find(&reply, 1024).unwrap().unwrap();
        assert_eq!(f.len, 19);
        assert_eq!(judge(&req(Op::Get, 3), &reply[..f.len]), Verdict::Ok(None));
        assert_eq!(
            judge(&req(Op::Get, 4), &reply[..f.len]),
            Verdict::WrongValue
        );
        assert_eq!(find(&reply[..10], 1024), Ok(None));
        let rest = &reply[f.len..];
        assert_eq!(find(rest, 1024).unwrap().unwrap().len, 5);
        assert_eq!(judge(&req(Op::Put, 3), rest), Verdict::Ok(None));
        assert_eq!(judge(&req(Op::Get, 3), b"$-1\r\n"), Verdict::Miss);
        assert_eq!(judge(&req(Op::Del, 3), b":0\r\n"), Verdict::Miss);
        assert_eq!(
            judge(&req(Op::Put, 3), b"-ERR no\r\n"),
            Verdict::WrongStatus
        );
        assert!(find(b"*1\r\n", 1024).is_err());
        assert!(find(b"$99999\r\n", 1024).is_err());
    }
}
