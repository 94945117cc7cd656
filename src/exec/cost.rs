//! What each opcode costs to execute, and so where it may run.
//!
//! The reactor runs a batch of cheap requests itself (a hand-off to a worker costs about
//! as much as the work), and hands everything else to the pool, where it runs beside
//! the network thread instead of in its way. [`COSTS`] is the one table that decides:
//! adding an opcode means adding its row.

use crate::job::{Job, JobOp};
use crate::protocol::{Opcode, Request};

/// Payload bytes up to which copying a request's payload counts as cheap (PUT and CAS
/// copy the value into the store, PING echoes it).
pub const SMALL_PAYLOAD_BYTES: usize = 16 << 10;

/// Budget units an expensive request is charged, in bytes-copied equivalents: a SCAN
/// page of a thousand records costs about what copying this much does.
pub const HEAVY_UNITS: usize = 64 << 10;

/// How an opcode's execution cost grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Constant work, small answer.
    Fixed,
    /// Work proportional to the request's payload: cheap up to [`SMALL_PAYLOAD_BYTES`].
    Payload,
    /// A point lookup: cheap to run, and the answer carries a stored value of any size
    /// by reference (not copied), so it is cheap whatever the value's size.
    Lookup,
    /// Work that grows with the store or the answer (a SCAN page, the STATS text).
    Heavy,
    /// Cheap, and must run on the reactor: it changes what the reactor pushes to this
    /// connection (a subscription), so its answer must not arrive after a push it
    /// caused.
    Local,
}

/// Every opcode this server executes, with its cost. Opcodes not listed are answered
/// with an error frame, which is [`Cost::Fixed`].
pub const COSTS: &[(Opcode, Cost)] = &[
    (Opcode::HELLO, Cost::Fixed),
    (Opcode::PING, Cost::Payload),
    (Opcode::STATS, Cost::Heavy),
    (Opcode::GET, Cost::Lookup),
    (Opcode::PUT, Cost::Payload),
    (Opcode::DELETE, Cost::Fixed),
    (Opcode::CAS, Cost::Payload),
    (Opcode::SCAN, Cost::Heavy),
    (Opcode::SUBSCRIBE, Cost::Local),
    (Opcode::UNSUBSCRIBE, Cost::Local),
    (Opcode::PUBLISH, Cost::Payload),
];

/// [`COSTS`] indexed by opcode byte, built at compile time: a lookup per request.
const BY_OPCODE: [Cost; 256] = {
    let mut table = [Cost::Fixed; 256];
    let mut i = 0;
    while i < COSTS.len() {
        table[COSTS[i].0 .0 as usize] = COSTS[i].1;
        i += 1;
    }
    table
};

/// The cost class of an opcode.
pub fn cost_of(opcode: Opcode) -> Cost {
    BY_OPCODE[usize::from(opcode.0)]
}

/// The payload bytes a request carries (its value, or PING's echo), which
/// [`Cost::Payload`] requests copy.
pub fn payload_len(request: &Request) -> usize {
    match request {
        Request::Put { value, .. } | Request::Cas { value, .. } => value.len(),
        Request::Ping { payload } | Request::Publish { payload, .. } => payload.len(),
        _ => 0,
    }
}

/// True when a job is cheap enough to run on the network thread.
pub fn is_cheap(job: &Job) -> bool {
    match &job.op {
        JobOp::Reject { .. } => true,
        JobOp::Request(r) => match cost_of(r.opcode()) {
            Cost::Fixed | Cost::Lookup | Cost::Local => true,
            Cost::Payload => payload_len(r) <= SMALL_PAYLOAD_BYTES,
            Cost::Heavy => false,
        },
    }
}

/// True when a job must run on the reactor ([`Cost::Local`]).
pub fn is_local(job: &Job) -> bool {
    matches!(&job.op, JobOp::Request(r) if cost_of(r.opcode()) == Cost::Local)
}

/// Budget units a job is charged before it runs (see [`Budget`](super::Budget)):
/// heavy requests a flat [`HEAVY_UNITS`]; the bytes any request copies are charged
/// after it runs.
pub fn units_before(job: &Job) -> usize {
    match &job.op {
        JobOp::Request(r) if cost_of(r.opcode()) == Cost::Heavy => HEAVY_UNITS,
        JobOp::Request(r) => payload_len(r),
        JobOp::Reject { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ConnId;
    use crate::protocol::{RequestId, Status};
    use bytes::Bytes;

    fn job(request: Request) -> Job {
        Job {
            conn: ConnId {
                index: 3,
                generation: 1,
            },
            id: RequestId(1),
            version: crate::protocol::BASE_VERSION,
            op: JobOp::Request(request),
        }
    }

    #[test]
    fn every_defined_request_opcode_has_a_row() {
        // Pushes are never requests.
        for op in Opcode::ALL.iter().filter(|op| !op.is_push()) {
            assert!(COSTS.iter().any(|(o, _)| o == op), "{op} has no cost row");
        }
    }

    #[test]
    fn lookups_and_small_writes_are_cheap_heavy_and_large_ones_are_not() {
        let put = |len: usize| {
            job(Request::Put {
                key: "k".into(),
                value: Bytes::from(vec![b'v'; len]),
                ttl_ms: 0,
            })
        };
        assert!(is_cheap(&job(Request::Get { key: "k".into() })));
        assert!(is_cheap(&put(SMALL_PAYLOAD_BYTES)));
        assert!(!is_cheap(&put(SMALL_PAYLOAD_BYTES + 1)));
        assert!(!is_cheap(&job(Request::Stats)));
        assert!(!is_cheap(&job(Request::Scan {
            prefix: Bytes::new(),
            cursor: Bytes::new(),
            limit: 10,
        })));
        let reject = Job {
            op: JobOp::Reject {
                opcode: Opcode(0x7f),
                status: Status::UNKNOWN_OPCODE,
                reason: "unknown",
            },
            ..job(Request::Stats)
        };
        assert!(is_cheap(&reject));
        assert_eq!(units_before(&put(100)), 100);
        assert_eq!(units_before(&job(Request::Stats)), HEAVY_UNITS);
    }
}
