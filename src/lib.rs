//! switchboard: a versioned in-memory record store served over a compact binary
//! protocol, built for many connections and pipelined requests.
//!
//! # Threads
//! ```text
//!                 ┌──────────────────────── reactor thread ────────────────────────┐
//!   clients ◄────►│ mio Poll ─► Registry (Slab<Slot>) ─► Connection (sans-IO)      │
//!   (TCP)         │   ▲ waker     │ one run of jobs at a time, with a credit       │
//!                 │   │           ├─► cheap runs: exec::run_batch here ─► Outgoing │
//!                 │   │           │   changes ─► Sequencer ─► ordered stream       │
//!                 └───┼───────────┼──────────────────────────────────▲─────────────┘
//!                     │           │ Batch per worker and lane        │ DoneBatch:
//!                     │           ▼ (cheap lane first)               │ answers, changes
//!                 ┌───┴──────────────── worker threads ──────────────┴─────────────┐
//!                 │ exec::run_batch ─► execute ─► Outcome (+ Change) ─► encode      │
//!                 │                      └──► Store (16 stripes, one write counter) │
//!                 └─────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * **Reactor** ([`server`]): owns every socket, the listener and the connection
//!   slab. It blocks only in `poll`. Each iteration it reads what is ready, lets each
//!   [`conn::Connection`] hand out its next run of [`job::Job`]s, runs the cheap runs
//!   itself within a budget ([`exec`]), sends every worker at most one batch per lane,
//!   and writes out the answers.
//! * **Workers** (`worker`): block only on their job channels. Each executes its
//!   batch with [`exec::run_batch`], writing answers into one buffer (long values by
//!   reference), sends it back with the jobs it did not start, and wakes the reactor
//!   only if it is asleep (`wake`).
//! * With `--workers 0` the reactor executes every run itself, within a budget per
//!   connection turn.
//!
//! A connection has one run in flight, so answers come back in request order whatever
//! executes them; a run stops at its connection's output credit, so a client that
//! does not read holds at most its output limit plus one answer. Executing a request
//! yields a typed [`exec::outcome::Outcome`] and, for a committed write, a
//! [`store::Change`] numbered by the store's one counter; the [`sequencer`] puts every
//! executor's changes back in number order, the one stream change events, the
//! write-ahead log and drain are to consume. A connection's answers leave through its
//! [`conn::Outgoing`] queue, where an answer can be held (until its write is durable)
//! with everything behind it.
//!
//! # Modules
//! * [`protocol`]: the wire format (the `switchboard-protocol` crate), sans-IO.
//! * [`conn`]: one connection's state machine, sans-IO: bytes in, jobs and bytes out.
//! * [`exec`]: running requests: the batch executor, typed outcomes and their
//!   encoding, the per-opcode cost table, answer sinks.
//! * [`sequencer`]: every executor's changes, put back into one stream in order.
//! * [`server`]: the mio reactor, listener, socket helpers, slab registry, waker.
//! * `worker`: the pool, its lanes and its batches.
//! * `wake`: how other threads wake the reactor, at most once per sleep.

//! * [`store`]: the versioned record map.
//! * [`client`]: a blocking client with pipelining, used by the CLI and tests.
//! * [`tls`]: TLS settings and certificate loading; TLS sits between the socket and
//!   the connection (`server::tls`), so frames are the same inside it.
//! * [`config`]: every limit, its default and unit; [`stats`]: the counters.
//!
//! # Limits
//! Every bound lives in [`config`] (server) or [`protocol::Limits`] (wire), with
//! the outcome of passing it: an error frame, a refused write, a paused read, or a
//! closed connection. Nothing grows without bound and nothing on an input path panics.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub use switchboard_protocol as protocol;

pub mod auth;
pub mod client;

pub mod config;
pub mod conn;
pub mod durability;
pub mod exec;
pub mod job;
pub mod metrics;
pub mod push;
pub mod sequencer;
pub mod server;
pub mod stats;
pub mod store;
pub mod tls;
mod wake;
pub mod wal;
mod worker;
