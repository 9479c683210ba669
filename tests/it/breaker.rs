//! The circuit breaker end to end, on loopback: a receiver that fails every request opens its
//! endpoint's breaker, then gets exactly one probe per cool-down (no attempt or retry budget
//! spent on the rest); when it answers again, the probe closes the breaker and what was held
//! goes out at the rate limit. An endpoint failing for `disable_after` is disabled: new events
//! are held, not dropped, and an enable sends them.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;

use crate::harness::*;

/// An endpoint whose breaker opens at 5 attempts, half failed, for 1 s (doubling), retrying
/// for as long as a test runs, one request at a time, at most 20 per second.
fn config(url: &str, extra: &str) -> String {
    format!(
        r#"{}
        [admin]
        token = "{ADMIN_TOKEN}"
        [[endpoints]]
        id = "flaky"
        url = "{url}"
        max_in_flight = 1
        rate_limit = {{ per_second = 20, burst = 5 }}
        retry = {{ max_attempts = 1000, base = "10ms", max_delay = "20ms" }}
        breaker = {{ window = "1m", min_attempts = 5, failure_rate = 0.5, cool_down = "1s" }}
        {extra}
        "#,
        orders_source()
    )
}

/// The events `receiver` answered 2xx, by `webhook-id`.
fn delivered(receiver: &Receiver) -> HashSet<String> {
    receiver
        .got()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.header("webhook-id").to_string())
        .collect()
}

/// The endpoint's breaker as the API shows it.
async fn health(gw: &Gateway) -> serde_json::Value {
    let (status, e) = admin_call(gw, Method::GET, "/endpoints/flaky", "").await;
    assert_eq!(status, 200, "{e}");
    e["health"].clone()
}

async fn send_events(gw: &Gateway, from: usize, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in from..from + n {
        let (status, answer) = send(
            &gw.url("orders"),
            &format!("msg_{i}"),
            &format!(r#"{{"n":{i}}}"#),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        ids.push(answer["event_id"].as_str().expect("id").to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_one_probe_per_cool_down_and_recovery_is_paced() {
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let (gw, _dir) = Gateway::start(&config(&receiver.url, "")).await;
    let ids = send_events(&gw, 0, 10).await;
    eventually_async("the breaker opens", async || {
        health(&gw).await["state"] == "open"
    })
    .await;
    let h = health(&gw).await;
    assert_eq!(h["trips"], 1);
    assert_eq!(h["held"], 10, "every event is held, none dropped: {h}");
    // Each cool-down brings one probe, and its failure one more trip: from one trip to the
    // next, one request, whatever the time it took (the cool-down doubles: 1 s, then 2 s).
    // (Counted from the first failed probe: the request started while the opening result
    // was being committed may still arrive just after the breaker shows open.)
    eventually_async("a probe failed", async || health(&gw).await["trips"] == 2).await;
    let after_first = receiver.count();
    eventually_async("a second probe failed", async || {
        health(&gw).await["trips"] == 3
    })
    .await;
    assert_eq!(
        receiver.count(),
        after_first + 1,
        "exactly one probe per cool-down"
    );
    assert!(
        after_first <= 5 + 1 + 1,
        "five to open, one started meanwhile, one probe"
    );
    let text = metrics_text(&gw.admin).await;
    assert!(
        text.contains(r#"hookgate_endpoint_breaker_state{endpoint="flaky"} 1"#),
        "{text}"
    );
    // The receiver answers again: the next probe closes the breaker and the rest go out, at
    // the rate limit (20/s), not in a burst.
    receiver.set_default_status(200);
    let before = receiver.count();
    eventually("all ten delivered", || {
        let ok = delivered(&receiver);
        ids.iter().all(|id| ok.contains(id))
    })
    .await;
    assert_eq!(health(&gw).await["state"], "closed");
    assert_eq!(receiver.count() - before, 10, "each held delivery once");
    assert!(
        receiver.most_within_from(before, Duration::from_millis(100)) <= 3,
        "paced at 20/s: the burst of 5 the idle bucket held was spent when the breaker closed"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_endpoint_holds_new_events_until_enabled() {
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let (gw, _dir) = Gateway::start(&config(&receiver.url, r#"disable_after = "2s""#)).await;
    send_events(&gw, 0, 6).await;
    eventually_async("disabled after failing 2 s", async || {
        health(&gw).await["state"] == "disabled"
    })
    .await;
    let at_disable = receiver.count();
    // New events are stored and held; nothing is sent and nothing dead-lettered.
    let late = send_events(&gw, 100, 4).await;
    let h = health(&gw).await;
    assert_eq!(h["held"], 10, "{h}");
    assert!(h["held_since"].is_string());
    let (_, dead) = admin_call(&gw, Method::GET, "/dead-letters", "").await;
    assert_eq!(dead["data"].as_array().map(Vec::len), Some(0), "{dead}");
    consistently(
        "nothing sent while disabled",
        Duration::from_millis(300),
        || receiver.count() == at_disable,
    )
    .await;
    // Refused bodies change nothing.
    let (status, refused) = admin_call(
        &gw,
        Method::POST,
        "/endpoints/flaky/enable",
        r#"{"discard":true}"#,
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(health(&gw).await["state"], "disabled");
    let (status, missing) = admin_call(&gw, Method::POST, "/endpoints/nope/enable", "").await;
    assert_eq!(status, 404, "{missing}");
    // Enabled: everything held goes out, the late events too.
    receiver.set_default_status(200);
    let (status, enabled) = admin_call(&gw, Method::POST, "/endpoints/flaky/enable", "").await;
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(
        (enabled["held"].as_u64(), enabled["discarded"].as_u64()),
        (Some(10), Some(0))
    );
    eventually("the late events delivered", || {
        let ok = delivered(&receiver);
        late.iter().all(|id| ok.contains(id)) && ok.len() == 10
    })
    .await;
    assert_eq!(health(&gw).await["state"], "closed");
    gw.stop().await;
}
