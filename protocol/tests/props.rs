//! Property tests of the codec: round trips, arbitrary splits, and hostile bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use switchboard_protocol::msg::hello::HelloReply;
use switchboard_protocol::msg::scan::{ScanEntry, ScanPage};
use switchboard_protocol::msg::subscribe::Resume;
use switchboard_protocol::*;

fn key() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 1..64).prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            1u8..=255,
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(max_version, features, token)| Request::Hello {
                max_version,
                features,
                token: token.into()
            }),
        value().prop_map(|payload| Request::Ping { payload }),
        Just(Request::Stats),
        key().prop_map(|key| Request::Get { key }),
        (key(), value(), any::<u32>()).prop_map(|(key, value, ttl_ms)| Request::Put {
            key,
            value,
            ttl_ms
        }),
        (key(), any::<u64>()).prop_map(|(key, expected)| Request::Delete { key, expected }),
        (key(), any::<u64>(), value(), any::<u32>()).prop_map(|(key, expected, value, ttl_ms)| {
            Request::Cas {
                key,
                expected,
                value,
                ttl_ms,
            }
        }),
        (value(), value(), any::<u16>()).prop_map(|(prefix, cursor, limit)| Request::Scan {
            prefix,
            cursor,
            limit
        }),
        (
            value(),
            proptest::option::of((any::<u64>(), any::<u64>())),
            any::<u32>()
        )
            .prop_map(|(prefix, resume, progress_ms)| Request::Subscribe {
                prefix,
                resume: resume.map(|(from, history)| Resume { from, history }),
                progress_ms
            }),
        any::<u32>().prop_map(|sub_id| Request::Unsubscribe { sub_id }),
        (key(), value()).prop_map(|(subject, payload)| Request::Publish { subject, payload }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let entry = (key(), any::<u64>(), value()).prop_map(|(key, version, value)| ScanEntry {
        key,
        version,
        value,
    });
    let body = prop_oneof![
        (
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            value()
        )
            .prop_map(
                |(version, features, max_frame, max_key, max_value, history, server)| (
                    Opcode::HELLO,
                    ResponseBody::Hello(HelloReply {
                        version,
                        features,
                        max_frame,
                        max_key,
                        max_value,
                        history,
                        server
                    })
                )
            ),
        value().prop_map(|p| (Opcode::PING, ResponseBody::Pong(p))),
        value().prop_map(|t| (Opcode::STATS, ResponseBody::Stats(t))),
        (any::<u64>(), value())
            .prop_map(|(version, value)| (Opcode::GET, ResponseBody::Value { version, value })),
        any::<u64>().prop_map(|version| (Opcode::PUT, ResponseBody::Written { version })),
        any::<u64>().prop_map(|version| (Opcode::DELETE, ResponseBody::Written { version })),
        Just((Opcode::GET, ResponseBody::NotFound)),
        any::<u64>().prop_map(|current| (Opcode::CAS, ResponseBody::VersionConflict { current })),
        (
            any::<u64>(),
            proptest::collection::vec(entry, 0..8),
            value()
        )
            .prop_map(|(seq, entries, next_cursor)| (
                Opcode::SCAN,
                ResponseBody::Scan(ScanPage {
                    seq,
                    entries,
                    next_cursor
                })
            )),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(sub_id, history, seq)| (
            Opcode::SUBSCRIBE,
            ResponseBody::Subscribed {
                sub_id,
                history,
                seq
            }
        )),
        Just((Opcode::UNSUBSCRIBE, ResponseBody::Unsubscribed)),
        any::<u32>().prop_map(|receivers| (Opcode::PUBLISH, ResponseBody::Published { receivers })),
        (0x10u8..=0xff, value(), any::<u8>()).prop_map(|(s, message, op)| (
            Opcode(op),
            ResponseBody::Error {
                status: Status(s),
                message
            }
        )),
    ];
    (body, any::<u32>()).prop_map(|((opcode, body), id)| Response {
        request_id: RequestId(id),
        opcode,
        body,
    })
}

fn push() -> impl Strategy<Value = Push> {
    prop_oneof![
        (any::<u32>(), any::<u64>(), key(), value(), any::<bool>()).prop_map(
            |(sub_id, seq, key, value, put)| Push::Event {
                sub_id,
                seq,
                kind: if put {
                    EventKind::Put
                } else {
                    EventKind::Delete
                },
                key,
                value: if put { value } else { Bytes::new() },
            }
        ),
        (any::<u32>(), key(), value()).prop_map(|(sub_id, subject, payload)| Push::Message {
            sub_id,
            subject,
            payload
        }),
        (any::<u32>(), any::<[u64; 4]>()).prop_map(
            |(sub_id, [history, after, oldest, current])| {
                Push::Gap {
                    sub_id,
                    history,
                    after,
                    oldest,
                    current,
                }
            }
        ),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(sub_id, history, seq)| {
            Push::Progress {
                sub_id,
                history,
                seq,
            }
        }),
        (any::<u32>(), any::<u64>()).prop_map(|(sub_id, count)| Push::Lost { sub_id, count }),
        Just(Push::Ping),
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(
            |(count, message)| Push::GoAway {
                count,
                message: message.into()
            }
        ),
    ]
}

/// Limits wide enough for every generated request.
fn limits() -> Limits {
    Limits::default()
}

fn decode_all(buf: &mut BytesMut) -> Vec<Frame> {
    let mut decoder = Decoder::new(limits().max_frame);
    let mut frames = Vec::new();
    while let Some(f) = decoder.decode(buf).expect("valid stream") {
        frames.push(f);
    }
    frames
}

proptest! {
    #[test]
    fn any_request_round_trips(req in request(), id in any::<u32>()) {
        let mut buf = BytesMut::new();
        req.encode(RequestId(id), &mut buf);
        let encoded = buf.clone();
        let frames = decode_all(&mut buf);
        prop_assert_eq!(frames.len(), 1);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frames[0].header.request_id, RequestId(id));
        let decoded = Request::decode(&frames[0], &limits()).unwrap();
        prop_assert_eq!(&decoded, &req);
        let owned = Request::decode_owned(frames[0].clone(), &limits()).unwrap();
        prop_assert_eq!(&owned, &req);
        let mut again = BytesMut::new();
        decoded.encode(RequestId(id), &mut again);
        prop_assert_eq!(again, encoded);
    }

    #[test]
    fn any_response_round_trips(resp in response()) {
        let mut buf = BytesMut::new();
        resp.encode(&mut buf);
        let frames = decode_all(&mut buf);
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(Response::decode(&frames[0]).unwrap(), resp);
    }

    #[test]
    fn any_push_round_trips(push in push()) {
        let version = MAX_VERSION;
        let mut buf = BytesMut::new();
        push.encode(version, &mut buf);
        let encoded = buf.clone();
        let frames = decode_all(&mut buf);
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(frames[0].header.version, version);
        prop_assert!(Response::decode(&frames[0]).is_err(), "a push is not a response");
        let decoded = Push::decode(&frames[0]).unwrap();
        prop_assert_eq!(&decoded, &push);
        let mut again = BytesMut::new();
        decoded.encode(version, &mut again);
        prop_assert_eq!(again, encoded);
    }

    #[test]
    fn a_stream_split_anywhere_decodes_the_same(
        reqs in proptest::collection::vec(request(), 1..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut whole = BytesMut::new();
        for (i, r) in reqs.iter().enumerate() {
            r.encode(RequestId(i as u32), &mut whole);
        }
        let bytes = whole.to_vec();
        let expected = decode_all(&mut whole);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let mut decoder = Decoder::new(limits().max_frame);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut from = 0;
        for cut in cuts {
            buf.extend_from_slice(&bytes[from..cut]);
            from = cut;
            while let Some(f) = decoder.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overbuffer(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16),
    ) {
        let max = Limits::MIN_MAX_FRAME;
        let mut decoder = Decoder::new(max);
        let mut buf = BytesMut::new();
        'feed: for chunk in chunks {
            buf.extend_from_slice(&chunk);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        let limits = Limits::with_max_frame(max);
                        let borrowed = Request::decode(&frame, &limits);
                        prop_assert_eq!(borrowed, Request::decode_owned(frame.clone(), &limits));
                        let _ = Response::decode(&frame);
                        let _ = Push::decode(&frame);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
            // Reserved room never exceeds one frame, whatever length was declared.
            prop_assert!(buf.capacity() <= (max as usize).max(buf.len()) + 1024);
        }
    }
}

#[test]
fn a_declared_length_near_u32_max_is_rejected_before_buffering() {
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    let err = Decoder::new(Limits::DEFAULT_MAX_FRAME)
        .decode(&mut buf)
        .unwrap_err();
    assert!(
        matches!(err, DecodeError::TooLarge { declared, request_id: None, .. } if declared == u64::from(u32::MAX) + 4)
    );
    assert!(buf.capacity() < 1024);
}

#[test]
fn one_byte_short_at_every_boundary_is_partial() {
    let mut full = BytesMut::new();
    Request::Cas {
        key: "key".into(),
        expected: 9,
        value: "value".into(),
        ttl_ms: 0,
    }
    .encode(RequestId(3), &mut full);
    for len in 0..full.len() {
        let mut part = BytesMut::from(&full[..len]);
        assert_eq!(
            Decoder::new(Limits::DEFAULT_MAX_FRAME).decode(&mut part),
            Ok(None),
            "{len} bytes"
        );
        assert_eq!(part.len(), len, "partial input is left in place");
    }
}
