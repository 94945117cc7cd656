//! Push: subscriptions, published messages and change events, delivered to clients.
//!
//! A [`Hub`] is shared by every executor, behind one lock. Executing SUBSCRIBE,
//! UNSUBSCRIBE and PUBLISH ([`State::subscribe`], [`State::unsubscribe`],
//! [`State::publish`]) changes the subscriptions and leaves work for the reactor;
//! the reactor, which owns the connections, delivers (`deliver`): every change the
//! sequencer emits, in order, every published message, and the replays of
//! subscriptions that are behind.
//!
//! # A change subscription is a cursor, not a queue
//! Each subscription has a cursor: every matching change up to it has been delivered
//! (or covered by a GAP). A live subscription gets each new change as it is emitted.
//! When its connection's output is at its limit, the subscription falls *behind*: it
//! stops taking events and keeps its cursor; once the client drains its output, it is
//! caught up from the change log ([`log`]), which the server keeps anyway, and then
//! is live again. So a stalled subscriber costs its output limit and a cursor, and if
//! the log has rolled past its cursor meanwhile it gets a GAP, never silence.
//!
//! Published messages are not logged: one that does not fit a subscriber's output is
//! dropped for that subscription, counted, and announced by a LOST push before the
//! next message it receives.
//!
//! # Ordering
//! Changes reach each subscription in sequence order with no duplicate: live delivery
//! skips anything at or below the cursor, and a subscription behind takes nothing live
//! until its replay reaches the end of the log. SUBSCRIBE and UNSUBSCRIBE run on the
//! reactor (their cost class is `Local`), so no push for a subscription can overtake
//! the answer that names it. Messages leave in the order they were published.
//!
//! # Bounds
//! Subscriptions per connection and in all are limited (SUBSCRIPTION_LIMIT); the log by
//! events and bytes; the replays' work per reactor iteration by [`REPLAY_BUDGET`]; each
//! connection's pushes by its output limit, like its answers.

pub mod deliver;
pub mod index;
pub mod log;

use crate::job::ConnId;
use crate::protocol::msg::subscribe::Resume;
use crate::protocol::Status;
use crate::store::Change;
use bytes::Bytes;
use index::{PrefixIndex, SubKey};
use log::ChangeLog;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Default number of changes the change log keeps.
pub const DEFAULT_CHANGE_LOG_EVENTS: usize = 100_000;
/// Default bytes the change log may hold.
pub const DEFAULT_CHANGE_LOG_BYTES: usize = 64 << 20;
/// Default subscriptions one connection may hold.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 1024;
/// Default subscriptions the server holds in all.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 1_000_000;
/// Default longest PUBLISH subject and SUBSCRIBE prefix: the default key limit, since
/// keys are the subjects of change events.
pub const DEFAULT_MAX_SUBJECT: usize = 1024;
/// Default largest PUBLISH payload: the default value limit.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;
/// Default quiet time after which a subscriber's connection is sent a PING push.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
/// Keepalive intervals a subscriber may leave a PING unanswered, while its output
/// drains, before it is closed.
pub const KEEPALIVE_MISSES: u32 = 3;
/// Log entries the replays of all subscribers look at in one reactor iteration
/// (about a quarter of a millisecond); what is left waits for the next.
pub const REPLAY_BUDGET: usize = 16_384;

/// The push limits and bounds.
#[derive(Clone, Copy, Debug)]
pub struct PushConfig {
    /// Changes the change log keeps.
    pub change_log_events: usize,
    /// Bytes the change log may hold.
    pub change_log_bytes: usize,
    /// Subscriptions per connection.
    pub max_per_connection: usize,
    /// Subscriptions in all.
    pub max_subscriptions: usize,
    /// Quiet time before a PING push to a subscriber.
    pub keepalive: Duration,
    /// Longest PUBLISH subject and SUBSCRIBE prefix (the key limit also applies).
    pub max_subject: usize,
    /// Largest PUBLISH payload (the value limit also applies).
    pub max_payload: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            change_log_events: DEFAULT_CHANGE_LOG_EVENTS,
            change_log_bytes: DEFAULT_CHANGE_LOG_BYTES,
            max_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            keepalive: DEFAULT_KEEPALIVE,
            max_subject: DEFAULT_MAX_SUBJECT,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// One subscription.
#[derive(Debug)]
pub struct Sub {
    /// Subjects and keys it selects.
    pub prefix: Bytes,
    /// Every matching change up to here has been delivered or covered by a GAP.
    pub cursor: u64,
    /// Taking nothing live: waiting for room, then for its replay to reach the end.
    pub behind: bool,
    /// A GAP is owed first: the sequence the client asked to continue after.
    pub gap_after: Option<u64>,
    /// A PROGRESS is owed when the replay catches up.
    pub progress_owed: bool,
    /// Messages dropped since the last one delivered.
    pub lost: u64,
    /// Send PROGRESS after this long with nothing sent; `None` = never.
    pub progress_every: Option<Duration>,
    /// The last time anything was sent on it.
    pub last_sent: Instant,
}

/// A connection's subscriptions.
#[derive(Debug, Default)]
struct ConnSubs {
    ids: Vec<u32>,
    next_id: u32,
    /// When a keepalive PING went out and no frame has come since.
    ping_sent: Option<Instant>,
}

/// A message waiting to be delivered.
#[derive(Debug)]
struct Outbound {
    subject: Bytes,
    payload: Bytes,
}

/// What a connection must be told by the reactor: it now holds subscriptions (true)
/// or none (false).
pub type Notice = (ConnId, bool);

/// Counts of what push did, for STATS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushCounts {
    /// EVENT pushes sent.
    pub events_sent: u64,
    /// MESSAGE pushes sent.
    pub messages_sent: u64,
    /// Messages dropped for a full output.
    pub messages_lost: u64,
    /// GAP pushes sent.
    pub gaps_sent: u64,
    /// Live subscriptions that fell behind because their connection's output was full
    /// (a slow subscriber); each is caught up from the change log once it drains.
    pub fell_behind: u64,
    /// PUBLISH requests executed.
    pub published: u64,
    /// Keepalive PINGs sent.
    pub pings_sent: u64,
    /// Subscribers closed for answering no keepalive.
    pub keepalive_closes: u64,
}

/// Everything push knows, behind the hub's lock.
#[derive(Debug)]
pub struct State {
    /// This server's history id.
    pub history: u64,
    /// Recent changes.
    pub log: ChangeLog,
    index: PrefixIndex,
    subs: HashMap<SubKey, Sub, foldhash::fast::RandomState>,
    conns: HashMap<ConnId, ConnSubs, foldhash::fast::RandomState>,
    outbox: Vec<Outbound>,
    /// Connections with a subscription to catch up now.
    ready: Vec<ConnId>,
    notices: Vec<Notice>,
    /// Reused to count a message's receivers.
    scratch: Vec<ConnId>,
    /// Reused to encode a change's event once for all its subscribers.
    scratch_event: bytes::BytesMut,
    config: PushConfig,
    /// What was done.
    pub counts: PushCounts,
}

/// Why SUBSCRIBE or UNSUBSCRIBE was refused.
pub type Refusal = (Status, &'static str);

/// The push state shared by the executors and the reactor.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    /// Set when executing left work for the reactor (messages, replays, notices).
    pending: AtomicBool,
    /// Subscriptions held, kept beside the state so closing connections need not
    /// lock it when there are none.
    held: std::sync::atomic::AtomicUsize,
    /// This server's history id.
    pub history: u64,
}

impl Hub {
    /// A hub for a new history whose changes so far end at `last`.
    pub fn new(config: PushConfig, last: u64) -> Hub {
        Hub::with_history(config, last, new_history_id())
    }

    /// A hub continuing `history`, whose changes so far end at `last`.
    pub fn with_history(config: PushConfig, last: u64, history: u64) -> Hub {
        Hub {
            state: Mutex::new(State {
                history,
                log: ChangeLog::new(last, config.change_log_events, config.change_log_bytes),
                index: PrefixIndex::default(),
                subs: HashMap::default(),
                conns: HashMap::default(),
                outbox: Vec::new(),
                ready: Vec::new(),
                notices: Vec::new(),
                scratch: Vec::new(),
                scratch_event: bytes::BytesMut::new(),
                config,
                counts: PushCounts::default(),
            }),
            pending: AtomicBool::new(false),
            held: std::sync::atomic::AtomicUsize::new(0),
            history,
        }
    }

    /// Fills the change log with `changes` (read back from the write-ahead log at
    /// start), oldest first, numbered after the hub's start.
    pub fn preload(&self, changes: impl IntoIterator<Item = Change>) {
        let mut state = self.lock();
        for change in changes {
            state.log.push(change);
        }
    }

    /// The state, locked. A panic while it was held (a bug) leaves it usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when any connection holds a subscription.
    pub fn has_subscriptions(&self) -> bool {
        self.held.load(Ordering::Relaxed) > 0
    }

    /// True when executing has left work for the reactor; clears the flag.
    pub fn take_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::Acquire)
    }

    fn set_pending(&self) {
        self.pending.store(true, Ordering::Release);
    }

    /// Executes SUBSCRIBE for `conn`: returns the subscription's id and the
    /// server's sequence (`current`, the last number handed out).
    ///
    /// # Errors
    /// SUBSCRIPTION_LIMIT at either limit; KEY_TOO_LARGE past `--max-subject`.
    pub fn subscribe(
        &self,
        conn: ConnId,
        prefix: Bytes,
        resume: Option<Resume>,
        progress_ms: u32,
        current: u64,
        now: Instant,
    ) -> Result<u32, Refusal> {
        let mut state = self.lock();
        let id = state.subscribe(conn, prefix, resume, progress_ms, current, now)?;
        self.held.store(state.subs.len(), Ordering::Relaxed);
        drop(state);
        self.set_pending();
        Ok(id)
    }

    /// Executes UNSUBSCRIBE: true if `conn` held `sub_id`.
    pub fn unsubscribe(&self, conn: ConnId, sub_id: u32) -> bool {
        let mut state = self.lock();
        let done = state.unsubscribe(conn, sub_id);
        self.held.store(state.subs.len(), Ordering::Relaxed);
        drop(state);
        self.set_pending();
        done
    }

    /// Forgets every subscription of a connection that closed.
    pub fn drop_conn(&self, conn: ConnId) {
        let mut state = self.lock();
        state.drop_conn(conn);
        self.held.store(state.subs.len(), Ordering::Relaxed);
    }

    /// Executes PUBLISH: queues the message for delivery and returns how many
    /// connections hold a matching subscription.
    ///
    /// # Errors
    /// KEY_TOO_LARGE past `--max-subject`, VALUE_TOO_LARGE past `--max-payload`.
    pub fn publish(&self, subject: Bytes, payload: Bytes) -> Result<u32, Refusal> {
        let mut state = self.lock();
        if subject.len() > state.config.max_subject {
            return Err((
                Status::KEY_TOO_LARGE,
                "subject is over the server's --max-subject",
            ));
        }
        if payload.len() > state.config.max_payload {
            return Err((
                Status::VALUE_TOO_LARGE,
                "payload is over the server's --max-payload",
            ));
        }
        state.counts.published += 1;
        let receivers = state.receivers(&subject);
        if receivers > 0 {
            state.outbox.push(Outbound { subject, payload });
            drop(state);
            self.set_pending();
        }
        Ok(receivers)
    }
}

impl State {
    fn subscribe(
        &mut self,
        conn: ConnId,
        prefix: Bytes,
        resume: Option<Resume>,
        progress_ms: u32,
        current: u64,
        now: Instant,
    ) -> Result<u32, Refusal> {
        if prefix.len() > self.config.max_subject {
            return Err((
                Status::KEY_TOO_LARGE,
                "prefix is over the server's --max-subject",
            ));
        }
        if self.subs.len() >= self.config.max_subscriptions {
            return Err((
                Status::SUBSCRIPTION_LIMIT,
                "the server holds as many subscriptions as --max-subscriptions allows",
            ));
        }
        let subs = self.conns.entry(conn).or_default();
        if subs.ids.len() >= self.config.max_per_connection {
            return Err((
                Status::SUBSCRIPTION_LIMIT,
                "this connection holds as many subscriptions as \
                 --max-subscriptions-per-connection allows",
            ));
        }
        if subs.ids.is_empty() {
            self.notices.push((conn, true));
        }
        subs.next_id += 1;
        let id = subs.next_id;
        subs.ids.push(id);
        let mut sub = Sub {
            prefix: prefix.clone(),
            cursor: current,
            behind: false,
            gap_after: None,
            progress_owed: false,
            lost: 0,
            progress_every: (progress_ms > 0)
                .then(|| Duration::from_millis(u64::from(progress_ms))),
            last_sent: now,
        };
        if let Some(Resume { from, history }) = resume {
            sub.behind = true;
            sub.progress_owed = true;
            let foreign = history != 0 && history != self.history;
            if (foreign && from != 0) || from > current {
                // Not a point of this history: say so, then give what the log holds.
                sub.gap_after = Some(from);
                sub.cursor = 0;
            } else {
                sub.cursor = from;
            }
            self.ready.push(conn);
        }
        self.index.insert(prefix, (conn, id));
        self.subs.insert((conn, id), sub);
        Ok(id)
    }

    fn unsubscribe(&mut self, conn: ConnId, sub_id: u32) -> bool {
        let Some(sub) = self.subs.remove(&(conn, sub_id)) else {
            return false;
        };
        self.index.remove(&sub.prefix, (conn, sub_id));
        if let Some(subs) = self.conns.get_mut(&conn) {
            subs.ids.retain(|&i| i != sub_id);
            // The entry stays (its ids are never reused) until the connection closes.
            if subs.ids.is_empty() {
                self.notices.push((conn, false));
            }
        }
        true
    }

    /// Forgets every subscription of a connection that closed.
    fn drop_conn(&mut self, conn: ConnId) {
        let Some(subs) = self.conns.remove(&conn) else {
            return;
        };
        for id in subs.ids {
            if let Some(sub) = self.subs.remove(&(conn, id)) {
                self.index.remove(&sub.prefix, (conn, id));
            }
        }
    }

    /// Connections holding a subscription that matches `subject`.
    fn receivers(&mut self, subject: &[u8]) -> u32 {
        let mut conns = std::mem::take(&mut self.scratch);
        self.index
            .for_each_match(subject, |(conn, _)| conns.push(conn));
        conns.sort_unstable_by_key(|c| (c.index, c.generation));
        conns.dedup();
        let n = conns.len() as u32;
        conns.clear();
        self.scratch = conns;
        n
    }

    /// Subscriptions held in all.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// Connections holding subscriptions.
    pub fn subscribed_connections(&self) -> usize {
        self.conns.values().filter(|c| !c.ids.is_empty()).count()
    }

    /// A frame came from `conn`: any outstanding keepalive PING is answered.
    pub fn heard_from(&mut self, conn: ConnId) {
        if let Some(subs) = self.conns.get_mut(&conn) {
            subs.ping_sent = None;
        }
    }
}

/// A history id: random, never 0 (which in SUBSCRIBE means "the current one").
pub(crate) fn new_history_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish().max(1)
}
