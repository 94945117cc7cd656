//! `arbitrary::Arbitrary` for the message types, behind the `arbitrary` feature.
//!
//! The integer fields, ids, opcodes and statuses are derived. `Bytes` has no
//! `Arbitrary` impl, so byte strings are read here: a `u16` (little-endian, as
//! `arbitrary` reads every integer), then that many bytes, cut to a maximum and to
//! the input left. Requests come out valid under [`Limits::default`] (non-empty keys
//! within `max_key`, values within `max_value`, HELLO tokens within
//! [`MAX_TOKEN`](crate::msg::hello::MAX_TOKEN) and a non-zero version), because only
//! a valid request can be encoded and decoded back; responses may hold anything.

use crate::limits::Limits;
use crate::msg::hello::MAX_TOKEN;
use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;

/// A `u16` length, then that many bytes, cut to `max` and to what is left.
fn bytes_up_to(u: &mut Unstructured<'_>, max: usize) -> Result<Bytes> {
    let len = usize::from(u16::arbitrary(u)?).min(max).min(u.len());
    Ok(Bytes::copy_from_slice(u.bytes(len)?))
}

/// Any byte string a `u16` length can describe.
pub(crate) fn bytes(u: &mut Unstructured<'_>) -> Result<Bytes> {
    bytes_up_to(u, usize::MAX)
}

/// A key: non-empty (an empty draw stands for `k`) and within the default key limit.
pub(crate) fn key(u: &mut Unstructured<'_>) -> Result<Bytes> {
    let key = bytes_up_to(u, Limits::DEFAULT_MAX_KEY as usize)?;
    Ok(if key.is_empty() {
        Bytes::from_static(b"k")
    } else {
        key
    })
}

/// A SCAN prefix or cursor: possibly empty, within the default key limit.
pub(crate) fn key_or_empty(u: &mut Unstructured<'_>) -> Result<Bytes> {
    bytes_up_to(u, Limits::DEFAULT_MAX_KEY as usize)
}

/// A value within the default value limit.
pub(crate) fn value(u: &mut Unstructured<'_>) -> Result<Bytes> {
    bytes_up_to(u, Limits::default().max_value as usize)
}

/// A HELLO token within [`MAX_TOKEN`].
pub(crate) fn token(u: &mut Unstructured<'_>) -> Result<Bytes> {
    bytes_up_to(u, MAX_TOKEN)
}

/// A HELLO version: 0 is refused by the decoder, so it stands for 1.
pub(crate) fn version(u: &mut Unstructured<'_>) -> Result<u8> {
    Ok(u8::arbitrary(u)?.max(1))
}

#[cfg(test)]
mod tests {
    use crate::{Limits, Request, RequestId};
    use arbitrary::{Arbitrary, Unstructured};
    use bytes::BytesMut;

    #[test]
    fn arbitrary_requests_round_trip_under_the_default_limits() {
        let limits = Limits::default();
        let data: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..256 {
            let mut u = Unstructured::new(&data[start..]);
            let request = Request::arbitrary(&mut u).expect("never short of data");
            let mut buf = BytesMut::new();
            request.encode(RequestId(1), &mut buf);
            let frame = crate::Decoder::new(limits.max_frame)
                .decode(&mut buf)
                .expect("valid frame")
                .expect("whole frame");
            assert_eq!(Request::decode(&frame, &limits), Ok(request));
        }
    }

    #[test]
    fn byte_strings_are_length_prefixed_and_cut_to_the_input() {
        let mut u = Unstructured::new(&[3, 0, b'a', b'b', b'c', 9, 0, b'x']);
        assert_eq!(&super::bytes(&mut u).unwrap()[..], b"abc");
        assert_eq!(&super::bytes(&mut u).unwrap()[..], b"x");
        assert_eq!(&super::key(&mut u).unwrap()[..], b"k");
    }
}
