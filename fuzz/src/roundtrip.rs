//! The `roundtrip` target: generated requests and responses, encoded into one
//! pipelined buffer, must decode to the same values and re-encode to the same bytes.
//!
//! Input layout: one byte picking the limits (the smallest frame limit or the default),
//! then items until the input runs out: a selector byte, then a request (with its id)
//! or a response, as [`super::values`] reads them.

use super::source::Source;
use super::values;
use bytes::BytesMut;
use switchboard_protocol::{DecodeError, Decoder, Limits, Request, RequestId, Response};

/// Most items per input: enough for pipelining, small enough to stay fast.
const MAX_ITEMS: usize = 32;

enum Item {
    Request(RequestId, Request, BytesMut),
    Response(Response, bool, BytesMut),
}

/// Runs the `roundtrip` target on one input.
pub fn check(data: &[u8]) {
    let mut src = Source::new(data);
    let limits = if src.u8() & 1 == 0 {
        Limits::with_max_frame(Limits::MIN_MAX_FRAME)
    } else {
        Limits::default()
    };
    let max_frame = limits.max_frame as usize;
    let mut wire = BytesMut::new();
    let mut items = Vec::new();
    while !src.is_empty() && items.len() < MAX_ITEMS {
        let mut one = BytesMut::new();
        if src.u8() & 1 == 0 {
            let id = RequestId(src.u32());
            let request = values::request(&mut src, &limits);
            request.encode(id, &mut one);
            // The limits leave room for the largest key and value in one frame.
            assert!(one.len() <= max_frame, "{request:?} does not fit a frame");
            wire.extend_from_slice(&one);
            items.push(Item::Request(id, request, one));
        } else {
            let (response, canonical) = values::response(&mut src);
            response.encode(&mut one);
            if one.len() > max_frame {
                // Too big for this peer: refused from the length alone.
                let err = Decoder::new(limits.max_frame).decode(&mut one.clone());
                assert!(matches!(err, Err(DecodeError::TooLarge { .. })), "{err:?}");
                continue;
            }
            wire.extend_from_slice(&one);
            items.push(Item::Response(response, canonical, one));
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
            Item::Request(id, request, bytes) => {
                assert_eq!(frame.header.request_id, id);
                let decoded = Request::decode(&frame, &limits).expect("valid requests parse");
                assert_eq!(decoded, request);
                decoded.encode(id, &mut again);
                assert_eq!(again, bytes, "re-encoding {decoded:?} changed the bytes");
            }
            Item::Response(response, canonical, bytes) => match Response::decode(&frame) {
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
