//! The incremental frame decoder: bytes in, whole frames out.
//!
//! The decoder is a function of the buffer plus one limit. It never panics, never
//! overflows on a length the peer chose, and rejects an oversized declared length
//! before it reserves room for the body, so a hostile length cannot make it allocate.

use crate::error::DecodeError;
use crate::header::{Header, LENGTH_LEN, PREFIX_LEN};
use crate::{BASE_VERSION, MAX_VERSION};
use byteorder::{BigEndian, ByteOrder};
use bytes::{Bytes, BytesMut};

/// One whole frame: its header and its body.
///
/// The body is a slice of the buffer the frame was read into: nothing was copied, and
/// keys and values parsed from it are further slices of the same allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame's header.
    pub header: Header,
    /// Everything after the header.
    pub body: Bytes,
}

/// Takes frames off the front of a `BytesMut`.
///
/// Call [`decode`](Self::decode) after every read until it returns `Ok(None)`. It
/// consumes exactly one frame per `Ok(Some)`, leaves partial input in place, and
/// reserves room for the rest of a partial frame once its length passed the limit check.
///
/// After an `Err` the stream is unusable: the caller reports the error and closes.
#[derive(Clone, Debug)]
pub struct Decoder {
    max_frame: u32,
}

impl Decoder {
    /// A decoder that accepts frames of at most `max_frame` bytes, length field included.
    pub fn new(max_frame: u32) -> Decoder {
        Decoder { max_frame }
    }

    /// The frame limit in force.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Decodes the next frame from the front of `buf`.
    ///
    /// * `Ok(None)`: `buf` holds no whole frame yet; read more and call again.
    /// * `Ok(Some(frame))`: one frame, removed from `buf`.
    /// * `Err(e)`: the stream is broken; see [`DecodeError`].
    ///
    /// # Errors
    /// A declared length under the header size, over the frame limit, or a version
    /// byte outside `BASE_VERSION..=MAX_VERSION`.
    ///
    /// # Panics
    /// Never.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(len_bytes) = buf.get(..LENGTH_LEN) else {
            return Ok(None);
        };
        let declared = BigEndian::read_u32(len_bytes);
        let header = Header::read(&buf[LENGTH_LEN..]);
        // u64 so that a length near u32::MAX cannot wrap when the prefix is added.
        let total = u64::from(declared) + LENGTH_LEN as u64;
        if total > u64::from(self.max_frame) {
            return Err(DecodeError::TooLarge {
                declared: total,
                limit: self.max_frame,
                opcode: header.map(|h| h.opcode),
                request_id: header.map(|h| h.request_id),
            });
        }
        if (total as usize) < PREFIX_LEN {
            return Err(DecodeError::TooShort { declared });
        }
        let Some(header) = header else {
            return Ok(None);
        };
        if !(BASE_VERSION..=MAX_VERSION).contains(&header.version) {
            return Err(DecodeError::UnsupportedVersion {
                version: header.version,
                opcode: header.opcode,
                request_id: header.request_id,
            });
        }
        // `total` is at most max_frame (checked above), so this cast cannot truncate.
        let total = total as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let body = buf.split_to(total).freeze().slice(PREFIX_LEN..);
        Ok(Some(Frame { header, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Opcode, RequestId, Status};

    #[test]
    fn too_large_names_the_header_only_once_it_arrived() {
        let mut d = Decoder::new(8192);
        let mut only_length = BytesMut::from(&[0x00, 0x00, 0x20, 0x00][..]);
        let e = d.decode(&mut only_length).unwrap_err();
        assert_eq!(e.status(), Status::FRAME_TOO_LARGE);
        assert_eq!((e.opcode(), e.request_id()), (None, None));

        let mut with_header =
            BytesMut::from(&[0x00, 0x00, 0x20, 0x00, 1, 0x11, 0, 0, 0, 0, 0, 5][..]);
        let e = d.decode(&mut with_header).unwrap_err();
        assert_eq!(e.opcode(), Some(Opcode::PUT));
        assert_eq!(e.request_id(), Some(RequestId(5)));
    }

    #[test]
    fn unsupported_version_names_the_opcode() {
        let mut d = Decoder::new(8192);
        let mut buf = BytesMut::from(&[0, 0, 0, 8, 2, 0x02, 0, 0, 0, 0, 0, 9][..]);
        let e = d.decode(&mut buf).unwrap_err();
        assert_eq!(e.status(), Status::UNSUPPORTED_VERSION);
        assert_eq!(e.opcode(), Some(Opcode::PING));
        assert_eq!(e.request_id(), Some(RequestId(9)));
    }
}
