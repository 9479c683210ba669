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
    for (target, scheme) in fuzzing::VERIFY_TARGETS.iter() {
        for (_, data) in inputs(target) {
            fuzzing::verify(scheme, &data);
        }
    }
}

/// The fuzz targets that are not verifiers, with their entry points.
/// A fuzz entry point.
type Entry = fn(&[u8]);

const PARSER_TARGETS: &[(&str, Entry)] = &[
    ("key_value_header", fuzzing::key_value_header),
    ("config", fuzzing::config),
    ("api_body", fuzzing::api_body),
    ("messages_body", fuzzing::messages_body),
    ("durations", fuzzing::durations),
    ("endpoint_url", fuzzing::endpoint_url),
    ("payload_filter", fuzzing::payload_filter),
    ("transform_output", fuzzing::transform_output),
];

#[test]
fn parser_corpora_replay() {
    for (target, entry) in PARSER_TARGETS {
        for (_, data) in inputs(target) {
            entry(&data);
        }
    }
}

#[test]
fn every_fuzz_target_is_replayed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let known: Vec<&str> = fuzzing::VERIFY_TARGETS
        .iter()
        .map(|(t, _)| *t)
        .chain(PARSER_TARGETS.iter().map(|(t, _)| *t))
        .collect();
    for entry in std::fs::read_dir(&dir).expect("fuzz_targets") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        let target = name.trim_end_matches(".rs");
        assert!(
            known.contains(&target),
            "{target} has no corpus replay here"
        );
    }
    for target in &known {
        assert!(dir.join(format!("{target}.rs")).exists(), "{target}");
    }
}
