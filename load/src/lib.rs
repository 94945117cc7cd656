//! switchboard-load: a load generator for switchboard, Redis and memcached.
//!
//! It drives a server closed-loop (each connection sends again as soon as a pipeline
//! slot frees: the server's throughput) or open-loop at a fixed rate decided before the
//! run (latency measured from each request's intended send time, so a stalled server
//! cannot hide the requests it delayed), checks every response, and reports
//! percentiles as text, JSON and an SVG spectrum.
//!
//! ```text
//!   Settings ──resolve──▶ addresses
//!      │
//!      ▼
//!   run::run ── connects, starts one engine thread per --threads at one StartLine
//!      │            engine: mio loop over its connections
//!      │              send ─ workload (what) ─ schedule (when) ─ dialect::encode
//!      │              receive ─ dialect::find / judge ─ Outcome (per thread)
//!      ▼
//!   Outcome::absorb + finish ──▶ report::{to_text, to_json, plot}
//!   search::find_max_rate: runs at rising, then bisected, rates against an Slo
//! ```
//!
//! The binary is a thin shell over this library: flags to [`Settings`], signals to
//! the `interrupted` flag, a progress line from the live counters, and the report
//! written where it was asked for.

pub mod auth;
pub mod clock;
pub mod dialect;
pub mod engine;
pub mod pubsub;
pub mod report;
pub mod run;
pub mod schedule;
pub mod search;
pub mod settings;
pub mod tls;
pub mod workload;

pub use dialect::Protocol;
pub use report::Outcome;
pub use run::{run, Run};
pub use settings::{Error, Settings, Slo};
