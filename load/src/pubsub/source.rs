//! A publisher (pubsub) or writer (watch): keeps `--pipeline` sends in flight, each
//! payload stamped, until told to stop, then collects the answers still owed.

use super::wire::{Stamp, Wire};
use super::{read_more, Shared, SourceResult, Workload, SUBJECT};
use crate::clock::now_ns;
use bytes::BytesMut;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;

/// A publisher or writer: keeps `pipeline` sends in flight until told to stop, then
/// collects the answers still owed.
pub(super) fn source(shared: &Shared, id: u32, mut stream: TcpStream) -> SourceResult {
    let mut wire = Wire::new(shared.proto);
    let mut out = BytesMut::with_capacity(64 << 10);
    let mut input = BytesMut::with_capacity(64 << 10);
    let mut result = SourceResult::default();
    let mut seq = 0u64;
    let mut in_flight = 0usize;
    // Send times of the sends in flight, in order, to count those in the window.
    let mut sent_at = std::collections::VecDeque::with_capacity(shared.pipeline);
    shared.start.wait();
    let mut key = u64::from(id);
    let mut send = |wire: &mut Wire, out: &mut BytesMut, seq: &mut u64| {
        *seq += 1;
        let now = now_ns();
        let stamp = Stamp {
            source: id,
            seq: *seq,
            sent_ns: now,
        };
        let mut payload = BytesMut::with_capacity(shared.value_size);
        stamp.write(&mut payload, shared.value_size);
        match shared.workload {
            Workload::Watch => {
                key = (key + 7919) % shared.keys;
                let name = format!("key:{key:012}");
                wire.put(out, name.as_bytes(), &payload);
            }
            _ => wire.publish(out, SUBJECT, &payload),
        }
        now
    };
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        while !stopping && in_flight < shared.pipeline {
            sent_at.push_back(send(&mut wire, &mut out, &mut seq));
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                result.errors += in_flight as u64;
                break;
            }
            out.clear();
        }
        if read_more(&mut stream, &mut input).is_err() {
            result.errors += in_flight as u64;
            break;
        }
        loop {
            match wire.answer(&mut input) {
                Ok(Some(answer)) => {
                    in_flight -= 1;
                    let at = sent_at.pop_front().unwrap_or(0);
                    let window = shared.window.load(Ordering::Relaxed);
                    let end = shared.window_end.load(Ordering::Relaxed);
                    match answer {
                        Ok(version) => {
                            if at >= window && at < end {
                                result.in_window += 1;
                            }
                            if shared.workload == Workload::Watch {
                                result.written.push(version);
                                shared.last[id as usize].fetch_max(version, Ordering::SeqCst);
                            }
                        }
                        Err(_) => result.errors += 1,
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    result.errors += in_flight as u64;
                    return result;
                }
            }
        }
    }
    if shared.workload != Workload::Watch {
        shared.last[id as usize].store(seq, Ordering::SeqCst);
    }
    result
}
