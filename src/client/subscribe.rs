//! Subscriptions on the blocking client: a [`Subscriber`] that resumes from its last
//! sequence after a lost connection, and a [`Watch`] that lists a prefix and then
//! follows every change, the recipe of protocol-spec.md section 13.5.

use super::{Client, ClientError, Endpoint, Result};
use crate::protocol::msg::subscribe::Resume;
use crate::protocol::{features, EventKind, Push};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// What SUBSCRIBE answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscribed {
    /// The subscription's id on its connection; every push for it carries it.
    pub sub_id: u32,
    /// The server's history id.
    pub history: u64,
    /// The server's change sequence when the subscription began.
    pub seq: u64,
}

/// Reconnection attempts before a [`Subscriber`] gives up, and the pause between them.
const RECONNECT_ATTEMPTS: u32 = 50;
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// One subscription on a connection of its own, which resumes where it left off when
/// the connection is lost: it reconnects and subscribes again from the last sequence it
/// delivered, so it receives every change or a GAP saying what it missed.
#[derive(Debug)]
pub struct Subscriber {
    endpoint: Endpoint,
    client: Client,
    prefix: Bytes,
    progress_ms: u32,
    subscribed: Subscribed,
    /// Every matching change up to here has been delivered (or covered by a GAP).
    last: u64,
}

impl Subscriber {
    /// Connects, asks for PUSH, and subscribes to `prefix`, resuming after `resume`
    /// when given (else live from now).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub fn connect(
        addr: SocketAddr,
        prefix: impl Into<Bytes>,
        resume: Option<Resume>,
        progress_ms: u32,
    ) -> Result<Subscriber> {
        Subscriber::connect_to(Endpoint::plain(addr), prefix, resume, progress_ms)
    }

    /// As [`connect`](Self::connect), to an [`Endpoint`] (over TLS if it says so).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub fn connect_to(
        endpoint: Endpoint,
        prefix: impl Into<Bytes>,
        resume: Option<Resume>,
        progress_ms: u32,
    ) -> Result<Subscriber> {
        let prefix = prefix.into();
        let (client, subscribed) = open(&endpoint, &prefix, resume, progress_ms)?;
        Ok(Subscriber {
            endpoint,
            client,
            prefix,
            progress_ms,
            last: resume.map_or(subscribed.seq, |r| r.from),
            subscribed,
        })
    }

    /// The connection, for ordinary requests between pushes.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// What the (latest) SUBSCRIBE answered.
    pub fn subscribed(&self) -> Subscribed {
        self.subscribed
    }

    /// The sequence up to which every matching change has been delivered.
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// The next push within `timeout` (`None` = wait for ever), reconnecting and
    /// resuming if the connection is lost. `Ok(None)` when the time passes.
    ///
    /// # Errors
    /// When the server stays unreachable, or sends something invalid.
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<Push>> {
        loop {
            match self.client.next_push(timeout) {
                Ok(Some(push)) => {
                    match &push {
                        Push::Event { seq, .. } => self.last = self.last.max(*seq),
                        Push::Gap { oldest, .. } => self.last = oldest.saturating_sub(1),
                        Push::Progress { seq, .. } => self.last = self.last.max(*seq),
                        _ => {}
                    }
                    return Ok(Some(push));
                }
                Ok(None) => return Ok(None),
                Err(ClientError::Closed | ClientError::Io(_) | ClientError::GoingAway { .. }) => {
                    self.reconnect()?
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reconnects and subscribes again after the last sequence delivered.
    fn reconnect(&mut self) -> Result<()> {
        let resume = Resume {
            from: self.last,
            history: self.subscribed.history,
        };
        let mut last_error = ClientError::Closed;
        for _ in 0..RECONNECT_ATTEMPTS {
            match open(&self.endpoint, &self.prefix, Some(resume), self.progress_ms) {
                Ok((client, subscribed)) => {
                    self.client = client;
                    self.subscribed = subscribed;
                    return Ok(());
                }
                Err(e) => last_error = e,
            }
            std::thread::sleep(RECONNECT_PAUSE);
        }
        Err(last_error)
    }
}

fn open(
    endpoint: &Endpoint,
    prefix: &Bytes,
    resume: Option<Resume>,
    progress_ms: u32,
) -> Result<(Client, Subscribed)> {
    let mut client = Client::connect_to(endpoint)?;
    client.hello(features::PUSH)?;
    let subscribed = client.subscribe(prefix.clone(), resume, progress_ms)?;
    Ok((client, subscribed))
}

/// What a [`Watch`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The record `key` holds `value` at `version`: from the listing, or a change.
    Put {
        /// The key.
        key: Bytes,
        /// Its version.
        version: u64,
        /// Its value.
        value: Bytes,
    },
    /// The record `key` was deleted by change `seq`.
    Delete {
        /// The key.
        key: Bytes,
        /// The deletion's sequence number.
        seq: u64,
    },
    /// Every record under the prefix has been reported, up to change `seq`: what came
    /// before is the prefix's contents; what follows are changes.
    Synced {
        /// The sequence the contents reflect.
        seq: u64,
    },
    /// Changes were missed (the server's log no longer held them): forget the
    /// contents; the records are listed again, then `Synced`.
    Reset,
}

/// A prefix's records, then every change to them: lists with SCAN, subscribes from the
/// first page's sequence, and keeps per key the highest version seen (deletions
/// included) so that no page entry or event older than one already reported is
/// reported, and a deletion is never undone by a later page. Re-lists by itself after
/// a GAP, and resumes after a lost connection.
#[derive(Debug)]
pub struct Watch {
    sub: Subscriber,
    prefix: Bytes,
    /// Highest version seen per key; deletions are kept until the listing completes.
    seen: HashMap<Bytes, u64>,
    ready: VecDeque<WatchEvent>,
    /// The listing is done and PROGRESS has not yet said the replay caught up.
    syncing: bool,
    /// Events at or below this sequence are already reflected in the listing.
    floor: u64,
}

impl Watch {
    /// Starts watching `prefix` on the server at `addr`.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub fn start(addr: SocketAddr, prefix: impl Into<Bytes>) -> Result<Watch> {
        Watch::start_at(Endpoint::plain(addr), prefix)
    }

    /// As [`start`](Self::start), at an [`Endpoint`] (over TLS if it says so).
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub fn start_at(endpoint: Endpoint, prefix: impl Into<Bytes>) -> Result<Watch> {
        let prefix = prefix.into();
        let mut client = Client::connect_to(&endpoint)?;
        let hello = client.hello(features::PUSH)?;
        let first = client.scan(prefix.clone(), Bytes::new(), 0)?;
        drop(client);
        let resume = Resume {
            from: first.seq,
            history: hello.history,
        };
        let sub = Subscriber::connect_to(endpoint, prefix.clone(), Some(resume), 0)?;
        let mut watch = Watch {
            sub,
            prefix,
            seen: HashMap::new(),
            ready: VecDeque::new(),
            syncing: true,
            floor: first.seq,
        };
        watch.list(first)?;
        Ok(watch)
    }

    /// The next record or change within `timeout` (`None` = wait for ever).
    ///
    /// # Errors
    /// When the server stays unreachable, or sends something invalid.
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let Some(push) = self.sub.next(timeout)? else {
                return Ok(None);
            };
            match push {
                Push::Event {
                    seq,
                    kind,
                    key,
                    value,
                    ..
                } => {
                    if seq <= self.floor || !self.newer(&key, seq) {
                        continue;
                    }
                    let event = match kind {
                        EventKind::Put => WatchEvent::Put {
                            key,
                            version: seq,
                            value,
                        },
                        EventKind::Delete => WatchEvent::Delete { key, seq },
                    };
                    self.ready.push_back(event);
                }
                Push::Progress { seq, .. } if self.syncing => {
                    self.syncing = false;
                    // The listing is complete and the replay caught up: deletions no
                    // longer need remembering, since events arrive in order.
                    self.ready.push_back(WatchEvent::Synced { seq });
                }
                Push::Gap { .. } => self.resync()?,
                _ => {}
            }
        }
    }

    /// The connection, for ordinary requests.
    pub fn client(&mut self) -> &mut Client {
        self.sub.client()
    }

    /// True (and remembered) when `version` is above anything seen for `key`.
    fn newer(&mut self, key: &Bytes, version: u64) -> bool {
        match self.seen.get_mut(key) {
            Some(v) if *v >= version => false,
            Some(v) => {
                *v = version;
                true
            }
            None => {
                self.seen.insert(key.clone(), version);
                true
            }
        }
    }

    /// Reports the pages of a listing, from `page` on.
    fn list(&mut self, mut page: crate::protocol::msg::scan::ScanPage) -> Result<()> {
        loop {
            for entry in std::mem::take(&mut page.entries) {
                if self.newer(&entry.key, entry.version) {
                    self.ready.push_back(WatchEvent::Put {
                        key: entry.key,
                        version: entry.version,
                        value: entry.value,
                    });
                }
            }
            if page.next_cursor.is_empty() {
                return Ok(());
            }
            let prefix = self.prefix.clone();
            page = self.sub.client().scan(prefix, page.next_cursor, 0)?;
        }
    }

    /// Changes were missed: list again from scratch on the same subscription. Events
    /// up to the new listing's sequence are dropped by the version rule.
    fn resync(&mut self) -> Result<()> {
        self.seen.clear();
        self.ready.clear();
        self.ready.push_back(WatchEvent::Reset);
        self.syncing = true;
        let prefix = self.prefix.clone();
        let first = self.sub.client().scan(prefix, Bytes::new(), 0)?;
        let seq = first.seq;
        // Changes up to the listing's sequence are reflected in it: the ones the log
        // still replays are dropped, listed keys or not (a put of a key deleted before
        // the listing would otherwise come back).
        self.floor = seq;
        self.list(first)?;
        self.ready.push_back(WatchEvent::Synced { seq });
        self.syncing = false;
        Ok(())
    }
}
