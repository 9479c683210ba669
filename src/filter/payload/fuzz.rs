//! The payload filter's fuzz entry point, for the cargo-fuzz target and the corpus replay.
//!
//! Input: the filter as JSON, a NUL byte, the payload (the body; not JSON is a body that is
//! not JSON), and optionally a NUL, the query string, a NUL, and header lines (`name: value`).
//! A filter that compiles must never panic on evaluation, `matches` and `explain` must agree,
//! and a filter that does not read the body must not depend on it.

use serde_json::Value;

use super::{PayloadFilter, Subject};

pub fn fuzz_filter(data: &[u8]) {
    let mut parts = data.splitn(4, |b| *b == 0);
    let filter = parts.next().unwrap_or_default();
    let payload = parts.next().unwrap_or_default();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let headers = header_lines(parts.next().unwrap_or_default());

    let Ok(document) = serde_json::from_slice::<Value>(filter) else {
        return;
    };
    let Ok(f) = PayloadFilter::compile(&document) else {
        return;
    };
    let body = serde_json::from_slice::<Value>(payload).ok();
    let s = Subject::new(body.as_ref(), &headers, &query);
    let matched = f.matches(&s);
    let explained = f.explain(&s);
    assert_eq!(
        matched,
        explained.is_ok(),
        "matches and explain disagree: {explained:?}"
    );
    if !f.needs_body() {
        let without = Subject::new(None, &headers, &query);
        assert_eq!(
            f.matches(&without),
            matched,
            "a filter without body clauses read it"
        );
    }
}

/// `name: value` lines, names lower-cased as ingress gives them.
fn header_lines(block: &[u8]) -> Vec<(String, Vec<u8>)> {
    block
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
            Some((name, line[colon + 1..].to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_seed_shapes() {
        fuzz_filter(b"{\"body\":{\"a\":{\"$gt\":1}}}\0{\"a\":[1,2]}");
        fuzz_filter(
            b"{\"headers\":{\"x-a\":5},\"query\":{\"q\":[\"1\",\"2\"]}}\0x\0q=1&q=2\0X-A: 5\n",
        );
        fuzz_filter(b"not json");
        fuzz_filter(b"");
        fuzz_filter(b"{\"$not\":{\"body\":{}}}\0\xff");
    }
}
