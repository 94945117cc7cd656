//! Replays every committed fuzz input through the fuzz targets' own checks.
//!
//! The checks live in `fuzz/src/` and are included here by path, so a plain
//! `cargo test` on stable runs them without libFuzzer or a nightly toolchain. Every
//! file under `fuzz/corpus/<target>/` (seeds and kept finds) and
//! `fuzz/regressions/<target>/` (minimised reproducers of fixed bugs) is replayed, so
//! a fixed crash stays fixed.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of one target's directory under `kind`, sorted (none if it is missing).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut count = 0;
    for (target, check) in fuzz::TARGETS {
        for path in inputs(kind, target) {
            let data = fs::read(&path).expect("readable input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_corpus_input_passes_its_target() {
    // The seeds alone are dozens of files: an empty replay means the path is wrong.
    assert!(replay("corpus") >= fuzz::TARGETS.len(), "corpus not found");
}

#[test]
fn every_regression_input_passes_its_target() {
    // Reproducers of fixed bugs are committed: finding none means the path is wrong.
    assert!(replay("regressions") > 0, "regressions not found");
}

#[test]
fn every_seed_passes_its_target() {
    // Generating the seeds also checks that each structured one reads back as written.
    for (target, name, data) in fuzz::seeds::all() {
        let (_, check) = fuzz::TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .expect("seeds name a target");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: seed {name} fails");
    }
}

#[test]
fn every_generated_reproducer_is_committed() {
    // The reproducers are written by the seed generator: the committed files must be
    // what it writes, so the input format cannot change under them unnoticed.
    for (target, name, data) in fuzz::seeds::regressions() {
        let path = fuzz_dir().join("regressions").join(target).join(&name);
        let committed = fs::read(&path).expect("reproducer committed");
        assert_eq!(
            committed, data,
            "{target}/{name} differs from the generator's"
        );
    }
}

/// Rewrites `fuzz/corpus/<target>/seed_*` and the generated reproducers in
/// `fuzz/regressions/<target>/` from the seed generator:
/// `cargo test --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore = "writes files; run by hand to regenerate the seed corpus"]
fn write_seeds() {
    let corpus = fuzz::seeds::all()
        .into_iter()
        .map(|(target, name, data)| ("corpus", target, format!("seed_{name}"), data));
    let regressions = fuzz::seeds::regressions()
        .into_iter()
        .map(|(target, name, data)| ("regressions", target, name, data));
    for (kind, target, name, data) in corpus.chain(regressions) {
        let dir = fuzz_dir().join(kind).join(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        fs::write(dir.join(name), data).expect("seed written");
    }
}
