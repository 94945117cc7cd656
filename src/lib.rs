//! switchboard: a versioned in-memory record store served over a compact binary
//! protocol, built for many connections and pipelined requests.
//!
//! # Threads
//! ```text
//!                 ┌──────────────────────── reactor thread ────────────────────────┐
//!   clients ◄────►│ mio Poll ─► Registry (Slab<Slot>) ─► Connection (sans-IO)      │
//!   (TCP)         │   ▲ waker        │ read, decode          ▲ responses, in order │
//!                 └───┼──────────────┼───────────────────────┼─────────────────────┘
//!                     │              │ one Vec<Job> per      │ one DoneBatch per
//!                     │              ▼ worker per iteration  │ job batch
//!                     │     [crossbeam channels: bounded jobs, done]
//!                     │              │                       ▲
//!                 ┌───┴──────────────▼── worker threads ─────┴─────────────────────┐
//!                 │ command::apply(job) ──► Store (16 lock-striped hash tables)     │
//!                 └─────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * **Reactor** ([`server`]): owns every socket, the listener and the connection
//!   slab. It blocks only in `poll`. Each iteration it reads what is ready, lets each
//!   [`conn::Connection`] decode frames into [`job::Job`]s, sends every worker at most
//!   one batch, then writes out the responses workers have returned.
//! * **Workers** ([`worker`]): block only on their job channel. Each executes its
//!   batch against the shared [`store::Store`] with [`command::apply`], encodes all the
//!   responses into one buffer, sends it back, and wakes the reactor only if it is
//!   asleep ([`server::wake`]). A connection always maps to the same worker, so its
//!   responses come back in request order.
//! * With `--workers 0` the reactor executes jobs itself: no hand-off at all. With
//!   workers, an iteration's batch of at most `--inline-max-batch` cheap requests also
//!   runs on the reactor (when none of those connections has requests at a worker):
//!   for small requests the hand-off costs about as much as the work. Workers take
//!   expensive requests and very large batches.
//!
//! # Modules
//! * [`protocol`]: the wire format (the `switchboard-protocol` crate), sans-IO.
//! * [`conn`]: one connection's state machine, sans-IO: bytes in, jobs and bytes out.
//! * [`server`]: the mio reactor, listener, socket helpers, slab registry, waker.
//! * [`worker`]: the pool and its batches.
//! * [`command`]: executing one job against the store.
//! * [`store`]: the versioned record map.
//! * [`client`]: a blocking client with pipelining, used by the CLI and tests.
//! * [`config`]: every limit, its default and unit; [`stats`]: the counters.
//!
//! # Limits
//! Every bound lives in [`config`] (server) or [`protocol::Limits`] (wire), with
//! the outcome of passing it: an error frame, a refused write, a paused read, or a
//! closed connection. Nothing grows without bound and nothing on an input path panics.
#![warn(missing_docs, missing_debug_implementations)]

pub use switchboard_protocol as protocol;

pub mod client;
pub mod command;
pub mod config;
pub mod conn;
pub mod exec;
pub mod job;
pub mod server;
pub mod stats;
pub mod store;
pub mod worker;
