//! A bounds-checked cursor over a frame body.
//!
//! Every read checks the remaining length first and fails with `BAD_REQUEST` instead of
//! panicking, and byte strings come out as slices of the body (no copy).

use crate::error::RequestError;
use byteorder::{BigEndian, ByteOrder};
use bytes::{Buf, Bytes};

/// Reads fields off the front of a frame body.
#[derive(Debug)]
pub struct Reader {
    body: Bytes,
    pos: usize,
}

const TRUNCATED: RequestError = RequestError::bad("body is shorter than its layout");

impl Reader {
    /// A reader at the start of `body`.
    pub fn new(body: Bytes) -> Reader {
        Reader { body, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], RequestError> {
        let end = self.pos.checked_add(n).ok_or(TRUNCATED)?;
        let slice = self.body.get(self.pos..end).ok_or(TRUNCATED)?;
        self.pos = end;
        Ok(slice)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, RequestError> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, RequestError> {
        self.take(2).map(BigEndian::read_u16)
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, RequestError> {
        self.take(4).map(BigEndian::read_u32)
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, RequestError> {
        self.take(8).map(BigEndian::read_u64)
    }

    /// `n` bytes, as a slice of the body.
    pub fn bytes(&mut self, n: usize) -> Result<Bytes, RequestError> {
        let start = self.pos;
        self.take(n)?;
        if self.pos == self.body.len() {
            // The last field: hand over the reader's own reference to the buffer
            // instead of taking another (two atomic operations per request saved).
            let mut last = std::mem::take(&mut self.body);
            last.advance(start);
            self.pos = 0;
            return Ok(last);
        }
        Ok(self.body.slice(start..self.pos))
    }

    /// A `u16` length, then that many bytes.
    pub fn bytes_u16(&mut self) -> Result<Bytes, RequestError> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// A `u32` length, then that many bytes.
    pub fn bytes_u32(&mut self) -> Result<Bytes, RequestError> {
        let n = self.u32()?;
        self.bytes(n as usize)
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> Bytes {
        let mut rest = std::mem::take(&mut self.body);
        rest.advance(self.pos);
        self.pos = 0;
        rest
    }

    /// Fails unless the whole body was read: trailing bytes are a layout error.
    pub fn finish(&self) -> Result<(), RequestError> {
        if self.pos == self.body.len() {
            Ok(())
        } else {
            Err(RequestError::bad("body is longer than its layout"))
        }
    }
}
