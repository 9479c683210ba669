//! hookgate's own operational events, end to end: each of the six types arrives at an
//! endpoint subscribed to the source `hookgate`, signed like any delivery (checked with the
//! official Standard Webhooks SDK); none reaches an endpoint with no `sources` (all sources)
//! or the endpoint an event is about.

use std::collections::BTreeSet;

use reqwest::Method;

use crate::harness::*;

fn config(doomed: &str, flaky: &str, ops: &str, all: &str) -> String {
    format!(
        r#"{}
        [store]
        backlog_high = 5
        [admin]
        token = "{ADMIN_TOKEN}"
        [[endpoints]]
        id = "doomed"
        url = "{doomed}"
        sources = ["orders"]
        retry = {{ max_attempts = 1 }}
        breaker = "off"
        [[endpoints]]
        id = "flaky"
        url = "{flaky}"
        sources = ["orders"]
        max_in_flight = 1
        retry = {{ max_attempts = 1000, base = "10ms", max_delay = "20ms" }}
        breaker = {{ window = "1m", min_attempts = 5, failure_rate = 0.5, cool_down = "1s" }}
        disable_after = "2s"
        [[endpoints]]
        id = "ops"
        url = "{ops}"
        sources = ["hookgate"]
        secret = "{OUTBOUND_SECRET}"
        [[endpoints]]
        id = "all"
        url = "{all}"
        "#,
        orders_source()
    )
}

/// The operational events `receiver` got: (type, endpoint it is about), each checked as a
/// signed hookgate event.
fn ops_got(receiver: &Receiver) -> Vec<(String, String)> {
    receiver
        .got()
        .iter()
        .map(|r| {
            verify_outbound(r);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            assert!(body["timestamp"].is_string(), "{body}");
            (
                body["type"].as_str().unwrap_or("").to_string(),
                body["data"]["endpoint_id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn has(receiver: &Receiver, event_type: &str, about: &str) -> bool {
    ops_got(receiver)
        .iter()
        .any(|(t, e)| t == event_type && e == about)
}

async fn send_orders(gw: &Gateway, from: usize, n: usize) {
    for i in from..from + n {
        let (status, answer) =
            send(&gw.url("orders"), &format!("msg_{i}"), r#"{"type":"a"}"#).await;
        assert_eq!(status, 202, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operational_event_reaches_its_subscribers_signed_and_no_one_else() {
    let (doomed, flaky, ops, all) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    doomed.set_default_status(500);
    flaky.set_default_status(500);
    let (gw, _dir) = Gateway::start(&config(&doomed.url, &flaky.url, &ops.url, &all.url)).await;
    // Six events: each dies at `doomed` (delivery.dead), and `flaky` fails five in a row
    // (endpoint.failing) and holds the rest, which also makes the backlog high.
    send_orders(&gw, 0, 6).await;
    eventually("delivery.dead and endpoint.failing", || {
        has(&ops, "delivery.dead", "doomed") && has(&ops, "endpoint.failing", "flaky")
    })
    .await;
    eventually("backlog.high", || {
        ops_got(&ops).iter().any(|(t, _)| t == "backlog.high")
    })
    .await;
    // It answers again: the probe closes the breaker (endpoint.recovered).
    flaky.set_default_status(200);
    eventually("endpoint.recovered", || {
        has(&ops, "endpoint.recovered", "flaky")
    })
    .await;
    // It fails again, long enough to be disabled (endpoint.disabled), then is enabled.
    flaky.set_default_status(500);
    send_orders(&gw, 100, 6).await;
    eventually("endpoint.disabled", || {
        has(&ops, "endpoint.disabled", "flaky")
    })
    .await;
    let (status, enabled) = admin_call(&gw, Method::POST, "/endpoints/flaky/enable", "").await;
    assert_eq!(status, 200, "{enabled}");
    eventually("endpoint.enabled", || {
        has(&ops, "endpoint.enabled", "flaky")
    })
    .await;
    let types: BTreeSet<String> = ops_got(&ops).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            "backlog.high",
            "delivery.dead",
            "endpoint.disabled",
            "endpoint.enabled",
            "endpoint.failing",
            "endpoint.recovered"
        ]
        .map(String::from)
        .into(),
    );
    // The catch-all endpoint got the orders only; and each event is in the store under
    // the source `hookgate`, once.
    eventually_async("each stored operational event delivered once", async || {
        let (_, page) = admin_call(&gw, Method::GET, "/events?source=hookgate&limit=100", "").await;
        let stored = page["data"].as_array().map_or(0, Vec::len);
        let got = ops.got();
        let received: BTreeSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        stored == received.len() && got.len() == stored
    })
    .await;
    eventually("the catch-all got the twelve orders", || all.count() == 12).await;
    assert!(
        all.got()
            .iter()
            .all(|r| r.body.as_ref() == br#"{"type":"a"}"#),
        "and nothing of hookgate's"
    );
    gw.stop().await;
}

/// An endpoint subscribed to `hookgate` hears nothing about itself: its own failures are not
/// sent back to it, and a delivery of an operational event that dies makes no `delivery.dead`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operational_endpoint_hears_nothing_about_itself() {
    let (pager, watcher) = (Receiver::start().await, Receiver::start().await);
    pager.set_default_status(500);
    let text = format!(
        r#"{}
        [admin]
        token = "{ADMIN_TOKEN}"
        [[endpoints]]
        id = "pager"
        url = "{}"
        sources = ["orders", "hookgate"]
        retry = {{ max_attempts = 1 }}
        breaker = {{ window = "1m", min_attempts = 3, failure_rate = 0.5, cool_down = "1h" }}
        [[endpoints]]
        id = "watcher"
        url = "{}"
        sources = ["hookgate"]
        event_types = ["endpoint.*"]
        "#,
        orders_source(),
        pager.url,
        watcher.url
    );
    let (gw, _dir) = Gateway::start(&text).await;
    send_orders(&gw, 0, 3).await;
    // The watcher hears that pager is failing; pager itself hears nothing of hookgate's.
    eventually("endpoint.failing at the watcher", || {
        watcher
            .got()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(r#""endpoint_id":"pager""#))
    })
    .await;
    let store_events = gw
        .store
        .list_events(&Default::default(), 100, None)
        .await
        .expect("list");
    let from_hookgate: Vec<_> = store_events
        .items
        .iter()
        .filter(|e| e.event.source == "hookgate")
        .collect();
    // pager's three deaths (delivery.dead) and its opening (endpoint.failing) are about
    // pager: none goes to it, though it subscribes to every hookgate event.
    for e in &from_hookgate {
        assert!(
            e.event.deliveries.iter().all(|(_, ep)| ep != "pager"),
            "nothing about pager goes to pager: {:?}",
            e.event
        );
    }
    assert!(
        pager
            .got()
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains("endpoint.failing")),
    );
    gw.stop().await;
}
