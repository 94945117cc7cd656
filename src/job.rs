//! `Job`: one request on its way from a connection to whoever executes it.
//!
//! A connection turns every frame it decodes into exactly one job, in order, including
//! frames it already knows the answer to (a bad body, an unknown opcode, the error
//! frame before a close). Sending those through the same path as real requests is what
//! keeps every connection's responses in request order while some are being executed
//! elsewhere.

use crate::protocol::encode::ReplyTo;
use crate::protocol::{Opcode, Request, RequestId, Status};
use std::fmt;

/// Which connection a job belongs to: its slab index and that slot's generation.
///
/// Slab indices are reused after a close; the generation tells a reply for the old
/// connection from one for the new occupant, so a late reply is dropped instead of
/// reaching the wrong client.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// Slot in the reactor's slab.
    pub index: u32,
    /// How many times the slot had been used when this connection took it.
    pub generation: u32,
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn{}.{}", self.index, self.generation)
    }
}

/// One request and where its response goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The connection that sent it.
    pub conn: ConnId,
    /// The request id to echo.
    pub id: RequestId,
    /// The protocol version of the connection when the request arrived: its answer is
    /// written in it.
    pub version: u8,
    /// What to do.
    pub op: JobOp,
}

impl Job {
    /// Where the answer goes: the request id, in the connection's version.
    pub fn reply_to(&self) -> ReplyTo {
        ReplyTo {
            version: self.version,
            request_id: self.id,
        }
    }

    /// Request bytes the job holds (keys, values, payloads): what a connection counts
    /// against its limit on decoded requests.
    pub fn request_len(&self) -> usize {
        match &self.op {
            JobOp::Request(r) => match r {
                Request::Get { key } | Request::Delete { key, .. } => key.len(),
                Request::Put { key, value, .. } | Request::Cas { key, value, .. } => {
                    key.len() + value.len()
                }
                Request::Scan { prefix, cursor, .. } => prefix.len() + cursor.len(),
                Request::Ping { payload } => payload.len(),
                Request::Hello { token, .. } => token.len(),
                Request::Subscribe { prefix, .. } => prefix.len(),
                Request::Publish { subject, payload } => subject.len() + payload.len(),
                Request::Stats | Request::Unsubscribe { .. } => 0,
            },
            JobOp::Reject { .. } => 0,
        }
    }
}

/// What a job asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOp {
    /// Execute a request against the store.
    Request(Request),
    /// Answer with an error the connection already decided on.
    Reject {
        /// The opcode to echo (0 when the header never arrived).
        opcode: Opcode,
        /// The error status.
        status: Status,
        /// The message body.
        reason: &'static str,
    },
}
