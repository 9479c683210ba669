//! Metrics move with traffic.

use crate::harness::*;

/// The value of the sample whose name and labels start with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_received_rejected_delivered_and_dead() {
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default_status(503);
    let config = format!(
        "{}\n[[endpoints]]\nid = \"ok\"\nurl = \"{}\"\n[[endpoints]]\nid = \"failing\"\nurl = \"{}\"\nretry = {{ max_attempts = 1 }}\n",
        orders_source(),
        ok.url,
        failing.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let (_, answer) = send(&gw.url("orders"), "msg_m1", r#"{"type":"a"}"#).await;
    send(&gw.url("orders"), "msg_m1", r#"{"type":"a"}"#).await;
    post(&gw.url("orders"), &[], "{}").await;
    send(&gw.url("no-such-source-1"), "msg_x", "{}").await;
    send(&gw.url("no-such-source-2"), "msg_y", "{}").await;
    gw.settled(event_id(&answer)).await;

    let text = client()
        .get(format!("{}/metrics", gw.admin))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    let has = |prefix: &str, want: f64| {
        assert_eq!(sample(&text, prefix), Some(want), "{prefix} in\n{text}");
    };
    has(
        r#"hookgate_events_received_total{source="orders",outcome="accepted"}"#,
        1.0,
    );
    has(
        r#"hookgate_events_received_total{source="orders",outcome="duplicate"}"#,
        1.0,
    );
    has(
        r#"hookgate_events_received_total{source="orders",outcome="missing_signature"}"#,
        1.0,
    );
    has(
        r#"hookgate_events_received_total{source="<unknown>",outcome="unknown_source"}"#,
        2.0,
    );
    assert!(
        !text.contains("no-such-source"),
        "a client's source name never becomes a label"
    );
    has(
        r#"hookgate_delivery_attempts_total{endpoint="ok",outcome="2xx"}"#,
        1.0,
    );
    has(
        r#"hookgate_delivery_attempts_total{endpoint="failing",outcome="5xx"}"#,
        1.0,
    );
    has(
        r#"hookgate_deliveries_finished_total{endpoint="ok",outcome="delivered"}"#,
        1.0,
    );
    has(
        r#"hookgate_deliveries_finished_total{endpoint="failing",outcome="dead"}"#,
        1.0,
    );
    has(r#"hookgate_end_to_end_seconds_count{endpoint="ok"}"#, 1.0);
    has("hookgate_ingest_seconds_count", 1.0);
    has("hookgate_pending_deliveries", 0.0);
    assert!(
        sample(&text, "hookgate_store_file_bytes").is_some_and(|b| b > 0.0),
        "{text}"
    );
    assert!(
        sample(&text, "hookgate_commit_batch_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    gw.stop().await;
}
