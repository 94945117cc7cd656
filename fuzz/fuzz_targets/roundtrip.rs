//! libFuzzer entry point for the `roundtrip` target; the checks live in
//! `switchboard_fuzz::roundtrip` so that `tests/fuzz_corpus.rs` can replay them on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_fuzz::roundtrip::check(data));
