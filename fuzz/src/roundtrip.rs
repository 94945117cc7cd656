//! The `roundtrip` target: arbitrary requests and responses, encoded into one
//! pipelined buffer, must decode to the same values and re-encode to the same bytes.
//!
//! Input: a derived `Arbitrary` [`Input`], read with `arbitrary::Unstructured`: a
//! `bool` picking the limits (true: the smallest frame limit, false: the default),
//! then up to [`MAX_ITEMS`] [`Item`]s, each after a continuation byte (odd: another
//! item follows), as `Unstructured::arbitrary_iter` reads them. Requests are
//! [`fit`](super::values::fit) to the limits; responses marked canonical are made so
//! with [`canonical`](super::values::canonical).

use super::values;
use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use switchboard_protocol::{DecodeError, Decoder, Limits, Request, RequestId, Response};

/// Most items per input: enough for pipelining, small enough to stay fast.
pub const MAX_ITEMS: usize = 32;

/// One frame of the pipelined buffer.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A request under this id (cut to the limits before encoding).
    Request(RequestId, Request),
    /// A response; a canonical one must come back equal, others only re-encode stably.
    Response {
        /// Make the header agree with the body first.
        canonical: bool,
        /// The response.
        response: Response,
    },
}

/// A whole `roundtrip` input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The smallest frame limit instead of the default one.
    pub small_frames: bool,
    /// The frames, in order.
    pub items: Vec<Item>,
}

/// Reads an input as the target does.
pub fn parse(data: &[u8]) -> Input {
    let mut u = Unstructured::new(data);
    // Integers, enum tags and byte strings read zeros past the end: no error occurs.
    let small_frames = bool::arbitrary(&mut u).unwrap_or(false);
    let items = u
        .arbitrary_iter::<Item>()
        .expect("an iterator")
        .take(MAX_ITEMS)
        .map_while(Result::ok)
        .collect();
    Input {
        small_frames,
        items,
    }
}

enum Encoded {
    Request(RequestId, Request, BytesMut),
    Response(Response, bool, BytesMut),
}

/// Runs the `roundtrip` target on one input.
pub fn check(data: &[u8]) {
    run(parse(data));
}

/// Runs the `roundtrip` checks on a parsed input.
pub fn run(input: Input) {
    let limits = if input.small_frames {
        Limits::with_max_frame(Limits::MIN_MAX_FRAME)
    } else {
        Limits::default()
    };
    let max_frame = limits.max_frame as usize;
    let mut wire = BytesMut::new();
    let mut items = Vec::new();
    for item in input.items {
        let mut one = BytesMut::new();
        match item {
            Item::Request(id, request) => {
                let request = values::fit(request, &limits);
                request.encode(id, &mut one);
                // The limits leave room for the largest key and value in one frame.
                assert!(one.len() <= max_frame, "{request:?} does not fit a frame");
                wire.extend_from_slice(&one);
                items.push(Encoded::Request(id, request, one));
            }
            Item::Response {
                canonical,
                response,
            } => {
                let response = if canonical {
                    values::canonical(response)
                } else {
                    response
                };
                response.encode(&mut one);
                if one.len() > max_frame {
                    // Too big for this peer: refused from the length alone.
                    let err = Decoder::new(limits.max_frame).decode(&mut one.clone());
                    assert!(matches!(err, Err(DecodeError::TooLarge { .. })), "{err:?}");
                    continue;
                }
                wire.extend_from_slice(&one);
                items.push(Encoded::Response(response, canonical, one));
            }
        }
    }

    let mut decoder = Decoder::new(limits.max_frame);
    for item in items {
        let frame = decoder
            .decode(&mut wire)
            .expect("encoded frames decode")
            .expect("a whole frame is buffered");
        let mut again = BytesMut::new();
        match item {
            Encoded::Request(id, request, bytes) => {
                assert_eq!(frame.header.request_id, id);
                let decoded = Request::decode(&frame, &limits).expect("valid requests parse");
                assert_eq!(decoded, request);
                decoded.encode(id, &mut again);
                assert_eq!(again, bytes, "re-encoding {decoded:?} changed the bytes");
            }
            Encoded::Response(response, canonical, bytes) => match Response::decode(&frame) {
                Ok(decoded) => {
                    if canonical {
                        assert_eq!(decoded, response);
                    }
                    decoded.encode(&mut again);
                    assert_eq!(again, bytes, "re-encoding {decoded:?} changed the bytes");
                }
                Err(e) => assert!(!canonical, "{response:?} does not parse: {e}"),
            },
        }
    }
    assert!(wire.is_empty(), "bytes left after the last frame");
    assert_eq!(decoder.decode(&mut wire), Ok(None));
}
