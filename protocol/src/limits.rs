//! Size limits a decoder and a request parser enforce.

use crate::header::PREFIX_LEN;

/// Room kept in a frame for everything except a value: the prefix, the fixed fields of
/// PUT and CAS, and the largest key. `max_value` is `max_frame - VALUE_RESERVE`, so a
/// value that passes its limit always fits in a frame, and so does a SCAN page holding it.
pub const VALUE_RESERVE: u32 = 4096;

/// Sizes the codec enforces on untrusted input.
///
/// Build one with [`Limits::with_max_frame`] (or take the default) so that the three
/// limits stay consistent: a value that passes `max_value` together with a key that
/// passes `max_key` always fits in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame in bytes, counting the 4-byte length field. A declared length past
    /// this is rejected before any of the body is buffered.
    pub max_frame: u32,
    /// Largest key in bytes. Keys are never empty.
    pub max_key: u32,
    /// Largest value in bytes (PUT, CAS and PING payloads).
    pub max_value: u32,
}

impl Limits {
    /// Default frame limit: 1 MiB of value plus the reserve for key and fields,
    /// the same value limit as memcached's item size and NATS's payload.
    pub const DEFAULT_MAX_FRAME: u32 = (1 << 20) + VALUE_RESERVE;
    /// Default key limit, in bytes. Keys are names, not data; memcached allows 250.
    pub const DEFAULT_MAX_KEY: u32 = 1024;
    /// Smallest frame limit accepted: room for the largest key and a few bytes of value.
    pub const MIN_MAX_FRAME: u32 = 2 * VALUE_RESERVE;
    /// Largest frame limit accepted (1 GiB), far below where a u32 length could wrap.
    pub const MAX_MAX_FRAME: u32 = 1 << 30;

    /// Limits for a given frame size, clamped to
    /// [`MIN_MAX_FRAME`](Self::MIN_MAX_FRAME)..=[`MAX_MAX_FRAME`](Self::MAX_MAX_FRAME),
    /// with the default key limit and the value limit derived from the frame.
    pub fn with_max_frame(max_frame: u32) -> Limits {
        let max_frame = max_frame.clamp(Self::MIN_MAX_FRAME, Self::MAX_MAX_FRAME);
        Limits {
            max_frame,
            max_key: Self::DEFAULT_MAX_KEY,
            max_value: max_frame - VALUE_RESERVE,
        }
    }

    /// Largest body a frame may carry under these limits.
    pub fn max_body(&self) -> u32 {
        self.max_frame - PREFIX_LEN as u32
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::with_max_frame(Self::DEFAULT_MAX_FRAME)
    }
}
