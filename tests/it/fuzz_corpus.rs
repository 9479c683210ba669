//! Replays every saved fuzz input (seeds and any crash reproducers) as an ordinary test, so CI
//! covers what the fuzzers found without running them.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_file() {
            run(&std::fs::read(&path).expect("read"));
            count += 1;
        }
    }
    assert!(count > 0, "no inputs in {}", dir.display());
}

#[test]
fn verify_standard_webhooks_corpus() {
    replay(
        "verify_standard_webhooks",
        hookgate::fuzzing::verify_standard_webhooks,
    );
}

#[test]
fn verify_hmac_corpus() {
    replay("verify_hmac", hookgate::fuzzing::verify_hmac);
}

#[test]
fn config_corpus() {
    replay("config", hookgate::fuzzing::config);
}

#[test]
fn the_seed_vectors_verify() {
    // The seeds are meant to exercise the accepting path too: check they still do.
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/verify_standard_webhooks/sw1-valid"),
    )
    .expect("seed");
    let (headers, body) = hookgate::fuzzing::split_request(&data);
    let key = hookgate::verify::standard_webhooks::decode_secret(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .expect("key");
    let keys = hookgate::verify::standard_webhooks::Keys {
        keys: vec![key],
        public_keys: Vec::new(),
        tolerance: 300,
    };
    assert_eq!(
        hookgate::verify::standard_webhooks::verify(
            &keys,
            &headers,
            body,
            hookgate::fuzzing::FUZZ_NOW
        ),
        Ok(())
    );
}
