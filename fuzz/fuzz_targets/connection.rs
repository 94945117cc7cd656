//! libFuzzer entry point for the `connection` target; the checks live in
//! `switchboard_fuzz::connection` so that `tests/fuzz_corpus.rs` can replay them on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::connection::check(data));
