//! Ordered delivery end to end (`ordering = { key = … }`): per key, the receiver sees the
//! events one at a time in the order they were committed, with no gaps, while it fails
//! requests at random; a key that keeps failing holds only itself up. The crash and cluster
//! runs of the same check are in `crash.rs` and `cluster.rs`.

use std::collections::BTreeMap;

use crate::harness::*;

/// The keys and events per key of the FIFO runs.
pub const KEYS: usize = 50;
pub const PER_KEY: usize = 40;

/// The body of event `n` of key `key`: what [`check_fifo`] reads back.
pub fn body(key: &str, n: usize) -> String {
    format!(r#"{{"type":"seq","k":"{key}","n":{n}}}"#)
}

pub fn key_name(i: usize) -> String {
    format!("k{i:02}")
}

/// An endpoint that orders by the body's `k`, retrying for as long as a test runs, its
/// breaker off (these runs fail a third of the requests or more on purpose).
pub fn ordered_endpoint(url: &str, max_in_flight: u32) -> String {
    format!(
        r#"
        [[endpoints]]
        id = "fifo"
        url = "{url}"
        max_in_flight = {max_in_flight}
        ordering = {{ key = {{ json = "/k" }} }}
        retry = {{ max_attempts = 1000, base = "10ms", max_delay = "50ms" }}
        breaker = "off"
        "#
    )
}

/// Sends `per_key` events for each key, each key's in turn (the next after the previous was
/// answered 202, so each key's commit order is its numbering), all keys at once.
pub async fn send_keys(url: &str, keys: &[String], per_key: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for key in keys {
        let key = key.clone();
        let url = url.to_string();
        tasks.spawn(async move {
            for n in 0..per_key {
                let (status, answer) = send(&url, &format!("msg_{key}_{n}"), &body(&key, n)).await;
                assert_eq!(status, 202, "{answer}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("sender");
    }
}

/// Per key, how many events were delivered in order so far, or the first breach of the
/// order: a request for an event that is not its key's head (the first not yet answered
/// 2xx). With `resends`, a request for the event just before the head is allowed too: the
/// same event sent again after a crash lost its result (at least once), never a later one.
pub fn check_fifo(got: &[Received], resends: bool) -> Result<BTreeMap<String, usize>, String> {
    let mut head: BTreeMap<String, usize> = BTreeMap::new();
    for (i, r) in got.iter().enumerate() {
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).map_err(|e| format!("request {i}: {e}"))?;
        let (Some(key), Some(n)) = (v["k"].as_str(), v["n"].as_u64()) else {
            continue;
        };
        let n = n as usize;
        let expected = head.entry(key.to_string()).or_default();
        let resent = resends && n + 1 == *expected;
        if n != *expected && !resent {
            return Err(format!(
                "request {i}: key {key} event {n} while its head is event {expected}"
            ));
        }
        if n == *expected && (200..300).contains(&r.status) {
            *expected += 1;
        }
    }
    Ok(head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_arrives_in_commit_order_while_the_receiver_fails_at_random() {
    let receiver = Receiver::start().await;
    receiver.fail_percent(30);
    receiver.fail_when(r#""k":"poison""#);
    let config = format!(
        "{}\n{}",
        orders_source(),
        ordered_endpoint(&receiver.url, 16)
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let keys: Vec<String> = (0..KEYS).map(key_name).collect();
    let url = gw.url("orders");
    send_keys(&url, &["poison".to_string()], 3).await;
    send_keys(&url, &keys, PER_KEY).await;
    // Every other key drains in order while the poisoned one's head keeps failing.
    eventually_async("every key but the poisoned one delivered", async || {
        let done = check_fifo(&receiver.got(), false).expect("in order");
        keys.iter().all(|k| done.get(k) == Some(&PER_KEY))
    })
    .await;
    let got = receiver.got();
    let poisoned: Vec<u64> = got
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .filter(|v| v["k"] == "poison")
        .filter_map(|v| v["n"].as_u64())
        .collect();
    assert!(poisoned.len() > 1, "its head was retried: {poisoned:?}");
    assert!(
        poisoned.iter().all(|n| *n == 0),
        "nothing behind its failing head went: {poisoned:?}"
    );
    assert!(
        got.iter()
            .any(|r| r.status == 500 && !r.body.windows(6).any(|w| w == b"poison")),
        "the random failures happened"
    );
    // Once it answers again, the poisoned key drains too, in order.
    receiver.stop_failing();
    eventually_async("the poisoned key delivered", async || {
        let done = check_fifo(&receiver.got(), false).expect("in order");
        done.get("poison") == Some(&3)
    })
    .await;
    gw.stop().await;
}
