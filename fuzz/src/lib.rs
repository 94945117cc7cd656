//! Checks shared by the fuzz targets and by the root workspace's corpus replay test.
//!
//! Each target is a `check(&[u8])` function that panics when a promise of the codec or
//! of the connection state machine is broken. The libFuzzer binaries in
//! `fuzz_targets/` call them; `tests/fuzz_corpus.rs` includes this file by path and
//! calls them on every committed corpus file and reproducer, so a plain
//! `cargo test` on stable guards every finding without libFuzzer.
//!
//! Nothing here depends on `libfuzzer-sys`, which is what lets the root workspace
//! compile it; `roundtrip` and `connection` read their inputs as derived `arbitrary`
//! values, so the root workspace has `arbitrary` and `switchboard-protocol`'s
//! `arbitrary` feature as dev-dependencies.

pub mod connection;
pub mod connection_seeds;
pub mod decode;
pub mod roundtrip;
pub mod seeds;
pub mod values;

/// A target's name and its check, for code that walks every target.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[Target] = &[
    ("decode", decode::check),
    ("roundtrip", roundtrip::check),
    ("connection", connection::check),
];
