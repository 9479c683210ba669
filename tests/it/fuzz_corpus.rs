//! Replays every saved fuzz input (seeds and any crash reproducers) as an ordinary test, so CI
//! covers what the fuzzers found without running them.

use std::path::{Path, PathBuf};

use hookgate::fuzzing;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let data = std::fs::read(&path).expect("read");
            out.push((path, data));
        }
    }
    assert!(!out.is_empty(), "no inputs in {}", dir.display());
    out
}

#[test]
fn every_verifier_corpus_replays() {
    for (target, scheme) in fuzzing::VERIFY_TARGETS {
        for (_, data) in inputs(target) {
            fuzzing::verify(scheme, &data);
        }
    }
}

#[test]
fn parser_corpora_replay() {
    for (_, data) in inputs("key_value_header") {
        fuzzing::key_value_header(&data);
    }
    for (_, data) in inputs("config") {
        fuzzing::config(&data);
    }
}

#[test]
fn every_fuzz_target_has_a_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for (target, _) in fuzzing::VERIFY_TARGETS {
        assert!(dir.join(format!("{target}.rs")).exists(), "{target}");
    }
}
