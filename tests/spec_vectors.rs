//! Checks the codec against every test vector in protocol-spec.md.
//!
//! Each vector is decoded with `Decoder` and `Request::decode` or `Response::decode`,
//! the result is printed in the document's canonical form and compared with the
//! vector's `expect` lines, and every decoded frame is encoded again and compared with
//! the bytes it came from. The test also fails when an opcode or status has no vector.

use bytes::{Bytes, BytesMut};
use std::collections::BTreeSet;
use switchboard::protocol::encode;
use switchboard::protocol::msg::scan::ScanPage;
use switchboard::protocol::*;

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/protocol-spec.md");

#[derive(Debug)]
struct Vector {
    name: String,
    direction: String,
    bytes: Vec<u8>,
    expect: Vec<String>,
}

/// Whitespace-separated tokens: pairs of hex digits, or `HH*N` for byte HH repeated N times.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        let (digits, count) = match token.split_once('*') {
            Some((byte, n)) if byte.len() == 2 => (
                byte,
                n.parse::<usize>().map_err(|e| format!("{token}: {e}"))?,
            ),
            Some(_) => return Err(format!("bad repeat token {token:?}")),
            None => (token, 1),
        };
        if digits.len() % 2 != 0 {
            return Err(format!("odd number of hex digits in {token:?}"));
        }
        let mut bytes = Vec::with_capacity(digits.len() / 2);
        for pair in digits.as_bytes().chunks(2) {
            let pair = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            bytes.push(u8::from_str_radix(pair, 16).map_err(|e| format!("{token}: {e}"))?);
        }
        for _ in 0..count {
            out.extend_from_slice(&bytes);
        }
    }
    Ok(out)
}

/// Every fenced block tagged `vector` in the document.
fn parse_vectors(doc: &str) -> Result<Vec<Vector>, String> {
    let mut vectors = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() != "```vector" {
            continue;
        }
        let (mut name, mut direction, mut hex) = (None, None, None::<String>);
        let mut expect = Vec::new();
        let mut last_key = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line.trim_end() == "```" {
                closed = true;
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match (&mut hex, last_key.as_str()) {
                    (Some(h), "hex") => {
                        h.push(' ');
                        h.push_str(line.trim());
                    }
                    _ => return Err(format!("continuation after {last_key:?}: {line:?}")),
                }
                continue;
            }
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| format!("not a `key: value` line: {line:?}"))?;
            let (key, value) = (key.trim(), value.trim().to_string());
            let slot = match key {
                "name" => &mut name,
                "direction" => &mut direction,
                "hex" => &mut hex,
                "expect" => {
                    expect.push(value);
                    last_key = key.to_string();
                    continue;
                }
                _ => {
                    last_key = key.to_string();
                    continue;
                }
            };
            if slot.replace(value).is_some() {
                return Err(format!("duplicate {key} in a vector"));
            }
            last_key = key.to_string();
        }
        if !closed {
            return Err("unterminated vector block".into());
        }
        let name = name.ok_or("vector without a name")?;
        let direction = direction.ok_or_else(|| format!("{name}: no direction"))?;
        let hex = hex.ok_or_else(|| format!("{name}: no hex"))?;
        if expect.is_empty() {
            return Err(format!("{name}: no expect"));
        }
        let bytes = parse_hex(&hex).map_err(|e| format!("{name}: {e}"))?;
        vectors.push(Vector {
            name,
            direction,
            bytes,
            expect,
        });
    }
    Ok(vectors)
}

/// A byte string in the document's notation: quoted, with `\"`, `\\` and `\xNN`
/// escapes, or `"c"*N` for 32 or more copies of one byte.
fn quote(b: &[u8]) -> String {
    if b.len() >= 32 && b.iter().all(|&c| c == b[0]) {
        return format!("{}*{}", quote(&b[..1]), b.len());
    }
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

fn op_name(op: Opcode) -> String {
    op.name()
        .map_or_else(|| format!("{:#04x}", op.0), str::to_string)
}

fn status_name(st: Status) -> String {
    st.name()
        .map_or_else(|| format!("{:#04x}", st.0), str::to_string)
}

fn describe_request(req: &Request, id: RequestId) -> String {
    let fields = match req {
        Request::Hello {
            max_version,
            features,
            token,
        } => format!(
            " max_version={max_version} features={features} token={}",
            quote(token)
        ),
        Request::Ping { payload } => format!(" payload={}", quote(payload)),
        Request::Stats => String::new(),
        Request::Get { key } => format!(" key={}", quote(key)),
        Request::Put { key, value, ttl_ms } => {
            format!(" ttl_ms={ttl_ms} key={} value={}", quote(key), quote(value))
        }
        Request::Delete { key, expected } => format!(" expected={expected} key={}", quote(key)),
        Request::Cas {
            key,
            expected,
            value,
            ttl_ms,
        } => format!(
            " expected={expected} ttl_ms={ttl_ms} key={} value={}",
            quote(key),
            quote(value)
        ),
        Request::Scan {
            prefix,
            cursor,
            limit,
        } => format!(
            " limit={limit} prefix={} cursor={}",
            quote(prefix),
            quote(cursor)
        ),
        Request::Subscribe {
            prefix,
            resume,
            progress_ms,
        } => {
            let resume = match resume {
                Some(r) => format!(" from={} history={}", r.from, r.history),
                None => String::new(),
            };
            format!(
                "{resume} progress_ms={progress_ms} prefix={}",
                quote(prefix)
            )
        }
        Request::Unsubscribe { sub_id } => format!(" sub_id={sub_id}"),
        Request::Publish { subject, payload } => {
            format!(" subject={} payload={}", quote(subject), quote(payload))
        }
    };
    format!("#{} {}{fields}", id.0, op_name(req.opcode()))
}

fn describe_scan(page: &ScanPage) -> String {
    let entries: Vec<String> = page
        .entries
        .iter()
        .map(|e| {
            format!(
                "{{key={} version={} value={}}}",
                quote(&e.key),
                e.version,
                quote(&e.value)
            )
        })
        .collect();
    format!(
        " seq={} entries=[{}] next_cursor={}",
        page.seq,
        entries.join(" "),
        quote(&page.next_cursor)
    )
}

fn describe_response(resp: &Response) -> String {
    let fields = match &resp.body {
        ResponseBody::Hello(h) => format!(
            " version={} features={} max_frame={} max_key={} max_value={} history={} server={}",
            h.version,
            h.features,
            h.max_frame,
            h.max_key,
            h.max_value,
            h.history,
            quote(&h.server)
        ),
        ResponseBody::Subscribed {
            sub_id,
            history,
            seq,
        } => format!(" sub_id={sub_id} history={history} seq={seq}"),
        ResponseBody::Unsubscribed => String::new(),
        ResponseBody::Published { receivers } => format!(" receivers={receivers}"),
        ResponseBody::Pong(payload) => format!(" payload={}", quote(payload)),
        ResponseBody::Stats(text) => format!(" text={}", quote(text)),
        ResponseBody::Value { version, value } => {
            format!(" version={version} value={}", quote(value))
        }
        ResponseBody::Written { version } => format!(" version={version}"),
        ResponseBody::Scan(page) => describe_scan(page),
        ResponseBody::NotFound => String::new(),
        ResponseBody::VersionConflict { current } => format!(" current={current}"),
        ResponseBody::Error { message, .. } => format!(" message={}", quote(message)),
    };
    format!(
        "#{} {} {}{fields}",
        resp.request_id.0,
        op_name(resp.opcode),
        status_name(resp.body.status())
    )
}

fn describe_push(push: &Push) -> String {
    let fields = match push {
        Push::Event {
            sub_id,
            seq,
            kind,
            key,
            value,
        } => {
            let kind = match kind {
                EventKind::Put => "put",
                EventKind::Delete => "delete",
            };
            format!(
                " sub_id={sub_id} seq={seq} kind={kind} key={} value={}",
                quote(key),
                quote(value)
            )
        }
        Push::Message {
            sub_id,
            subject,
            payload,
        } => format!(
            " sub_id={sub_id} subject={} payload={}",
            quote(subject),
            quote(payload)
        ),
        Push::Gap {
            sub_id,
            history,
            after,
            oldest,
            current,
        } => format!(
            " sub_id={sub_id} history={history} after={after} oldest={oldest} current={current}"
        ),
        Push::Progress {
            sub_id,
            history,
            seq,
        } => format!(" sub_id={sub_id} history={history} seq={seq}"),
        Push::Lost { sub_id, count } => format!(" sub_id={sub_id} count={count}"),
        Push::Ping => String::new(),
        Push::GoAway { count, message } => format!(" count={count} message={}", quote(message)),
    };
    format!("push {}{fields}", op_name(push.opcode()))
}

fn describe_fatal(e: DecodeError) -> String {
    format!(
        "fatal {} op={} id={}",
        status_name(e.status()),
        e.opcode().map_or_else(|| "none".into(), op_name),
        e.request_id()
            .map_or_else(|| "none".into(), |id| id.0.to_string())
    )
}

/// What a vector exercised, for the coverage check.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Request(Opcode),
    Response(Opcode, Status),
    Push(Opcode),
}

/// Runs one vector; returns what it covered, or why it does not hold.
fn run(v: &Vector) -> Result<Vec<Seen>, String> {
    let limits = Limits::default();
    let mut decoder = Decoder::new(limits.max_frame);
    let mut buf = BytesMut::from(&v.bytes[..]);
    let mut seen = Vec::new();
    for (i, expect) in v.expect.iter().enumerate() {
        let last = i + 1 == v.expect.len();
        let before = Bytes::copy_from_slice(&buf);
        let frame = match decoder.decode(&mut buf) {
            Err(e) => {
                let got = describe_fatal(e);
                if !last {
                    return Err(format!("{got} before the last step"));
                }
                return if got == *expect {
                    Ok(seen)
                } else {
                    Err(format!("got `{got}`, expected `{expect}`"))
                };
            }
            Ok(None) => {
                if expect != "need-more-bytes" || !last {
                    return Err(format!("need more bytes, expected `{expect}`"));
                }
                if buf[..] != before[..] {
                    return Err("a partial frame was not left in the buffer".into());
                }
                return Ok(seen);
            }
            Ok(Some(frame)) => frame,
        };
        let consumed = before.slice(..before.len() - buf.len());
        let mut again = BytesMut::new();
        let got = match v.direction.as_str() {
            "request" => match Request::decode(&frame, &limits) {
                Err(e) => {
                    let h = frame.header;
                    let got = format!(
                        "reject #{} {} {}",
                        h.request_id.0,
                        op_name(h.opcode),
                        status_name(e.status)
                    );
                    if got != *expect {
                        return Err(format!("got `{got}`, expected `{expect}`"));
                    }
                    continue;
                }
                Ok(req) => {
                    req.encode(frame.header.request_id, &mut again);
                    seen.push(Seen::Request(req.opcode()));
                    describe_request(&req, frame.header.request_id)
                }
            },
            "response" if frame.header.flags.contains(Flags::PUSH) => {
                if Response::decode(&frame).is_ok() {
                    return Err("a push frame decoded as a response".into());
                }
                let op = frame.header.opcode;
                let defined = op.name().is_some() && (op.is_push() || op == Opcode::PING);
                if !defined {
                    // A push this version does not define: recognised, and ignored.
                    encode::header(&mut again, frame.header, frame.body.len());
                    again.extend_from_slice(&frame.body);
                    format!("push #{} {}", frame.header.request_id.0, op_name(op))
                } else {
                    match Push::decode(&frame) {
                        Err(_) if expect == "invalid" => continue,
                        Err(e) => return Err(format!("{e}, expected `{expect}`")),
                        Ok(push) => {
                            push.encode(frame.header.version, &mut again);
                            seen.push(Seen::Push(push.opcode()));
                            describe_push(&push)
                        }
                    }
                }
            }
            "response" => match Response::decode(&frame) {
                Err(_) if expect == "invalid" => continue,
                Err(e) => return Err(format!("{e}, expected `{expect}`")),
                Ok(resp) => {
                    resp.encode(&mut again);
                    seen.push(Seen::Response(resp.opcode, resp.body.status()));
                    describe_response(&resp)
                }
            },
            other => return Err(format!("unknown direction {other:?}")),
        };
        if got != *expect {
            return Err(format!("got `{got}`, expected `{expect}`"));
        }
        if again[..] != consumed[..] {
            return Err(format!(
                "re-encoding gave {} instead of {}",
                hex(&again),
                hex(&consumed)
            ));
        }
    }
    if !buf.is_empty() {
        return Err(format!("{} bytes left over", buf.len()));
    }
    Ok(seen)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

fn load() -> Vec<Vector> {
    let doc = std::fs::read_to_string(SPEC).expect("read protocol-spec.md");
    parse_vectors(&doc).expect("parse the vectors of protocol-spec.md")
}

#[test]
fn every_vector_holds() {
    let vectors = load();
    assert!(vectors.len() > 50, "only {} vectors", vectors.len());
    let mut failures = Vec::new();
    for v in &vectors {
        if let Err(e) = run(v) {
            failures.push(format!("{}: {e}", v.name));
        }
    }
    assert!(
        failures.is_empty(),
        "failing vectors:\n{}",
        failures.join("\n")
    );
}

#[test]
fn vector_names_are_unique() {
    let vectors = load();
    let names: BTreeSet<&str> = vectors.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), vectors.len(), "duplicate vector names");
}

#[test]
fn every_opcode_and_status_has_a_vector() {
    let mut seen = BTreeSet::new();
    for v in load() {
        seen.extend(run(&v).unwrap_or_default());
    }
    let mut missing = Vec::new();
    for &op in Opcode::ALL {
        if op.is_push() || op == Opcode::PING {
            if !seen.contains(&Seen::Push(op)) {
                missing.push(format!("push {op}"));
            }
            if op.is_push() {
                continue;
            }
        }
        if !seen.contains(&Seen::Request(op)) {
            missing.push(format!("request {op}"));
        }
        if !seen.contains(&Seen::Response(op, Status::OK)) {
            missing.push(format!("OK response {op}"));
        }
    }
    for &st in Status::ALL {
        if !seen
            .iter()
            .any(|s| matches!(s, Seen::Response(_, s) if *s == st))
        {
            missing.push(format!("response with status {st}"));
        }
    }
    assert!(missing.is_empty(), "no vector for: {}", missing.join(", "));
}

#[test]
fn a_corrupted_vector_is_caught() {
    let vectors = load();
    let get = vectors
        .iter()
        .find(|v| v.name == "get")
        .expect("vector `get`");
    for i in 0..get.bytes.len() {
        let mut bytes = get.bytes.clone();
        bytes[i] ^= 0x01;
        let bad = Vector {
            name: get.name.clone(),
            direction: get.direction.clone(),
            bytes,
            expect: get.expect.clone(),
        };
        assert!(run(&bad).is_err(), "flipping byte {i} went unnoticed");
    }
}

#[test]
fn hex_notation() {
    assert_eq!(parse_hex("00 0a0B 41*3").unwrap(), b"\x00\x0a\x0bAAA");
    assert!(parse_hex("abc").is_err());
    assert!(parse_hex("4*3").is_err());
    assert_eq!(quote(b"a\"\\\n\x7f"), r#""a\"\\\x0a\x7f""#);
    assert_eq!(quote(&[b'k'; 32]), "\"k\"*32");
}

/// Where the `decode` fuzz target's seed for a vector lives.
fn seed_path(v: &Vector) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/decode")
        .join(format!("vector_{}", v.name))
}

/// A vector as a `decode` seed: the selector for the default frame limit (`0xff`), a
/// read size of 7 bytes (so frames also arrive split), then the vector's bytes, cut at
/// libFuzzer's default 4 KiB input limit. Only three vectors are longer (values of a
/// mebibyte, past the cut a single repeated byte) and keep their header and lengths.
fn seed_for(v: &Vector) -> Vec<u8> {
    const MAX_SEED: usize = 4096;
    let mut seed = vec![0xff, 6];
    seed.extend_from_slice(&v.bytes[..v.bytes.len().min(MAX_SEED - 2)]);
    seed
}

#[test]
fn every_vector_is_a_fuzz_seed() {
    let mut missing = Vec::new();
    for v in load() {
        match std::fs::read(seed_path(&v)) {
            Ok(seed) if seed == seed_for(&v) => {}
            Ok(_) => missing.push(format!("{} (stale)", v.name)),
            Err(_) => missing.push(v.name.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "vectors without a current seed in fuzz/corpus/decode/: {}\n\
         (regenerate: cargo test --test spec_vectors -- --ignored write_vector_seeds)",
        missing.join(", ")
    );
}

/// Writes every vector's seed: `cargo test --test spec_vectors -- --ignored write_vector_seeds`.
#[test]
#[ignore = "writes files; run by hand after changing the vectors"]
fn write_vector_seeds() {
    for v in load() {
        std::fs::write(seed_path(&v), seed_for(&v)).expect("seed written");
    }
}
