//! The server-wide limit on memory held for clients (`--max-client-memory`), as
//! Redis's `maxmemory-clients`.
//!
//! Only open connections are closed this way: one already closing holds only what it
//! owes and is dropped by its closing timeout if its client does not take it.
//!
//! Each connection reports what it holds ([`Connection::memory`]: buffered input,
//! pending output, decoded requests not yet answered) whenever it is flushed, and the
//! reactor keeps the sum. Per-connection limits bound each client; this bounds many of
//! them together. Past the limit, the connections holding the most are closed, each
//! with a CLIENT_MEMORY_LIMIT error frame first, until the total is back under it.
//! Each is counted in `client_memory_evictions` at once: its buffers are dropped at
//! once, while its error frame waits for the client to read (bounded by the closing
//! timeout), after which the close counts in `closed_client_memory`.
//!
//! Finding the largest holders sorts the connections that hold anything: a cost paid
//! only when the limit is passed, and each time it frees at least the excess.
//!
//! [`Connection::memory`]: crate::conn::Connection::memory

use super::Server;
use std::time::Instant;

impl Server {
    /// Closes the connections holding the most until client memory is under the limit.
    pub(super) fn enforce_client_memory(&mut self, now: Instant) {
        if self.max_client_memory == 0 || self.client_memory <= self.max_client_memory {
            return;
        }
        let mut holders: Vec<(usize, crate::job::ConnId)> = self
            .registry
            .iter()
            .filter(|slot| slot.memory > 0 && slot.conn.evictable())
            .map(|slot| (slot.memory, slot.conn.id()))
            .collect();
        holders.sort_unstable_by_key(|&(memory, _)| std::cmp::Reverse(memory));
        let mut total = self.client_memory;
        let mut evicted = 0;
        for (memory, id) in holders {
            if total <= self.max_client_memory {
                break;
            }
            if let Some(slot) = self.registry.get_mut(id) {
                slot.conn.handle_evict(now);
                total = total.saturating_sub(memory);
                evicted += 1;
                self.tally.client_memory_evictions += 1;
                self.flush(id, now);
            }
        }
        if evicted > 0 {
            tracing::warn!(
                "client buffers passed --max-client-memory ({} bytes): closed \
                 the {evicted} connection(s) holding the most",
                self.max_client_memory
            );
        }
    }
}
