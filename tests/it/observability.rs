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

    let text = metrics_text(&gw.admin).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_span_fields() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "", &orders_source());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut next_json = async || -> serde_json::Value {
        let line = lines.next_line().await.expect("read").expect("a log line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let addr = loop {
        let v = next_json().await;
        if v["fields"]["message"] == "ingress listening" {
            break v["fields"]["addr"].as_str().expect("addr").to_string();
        }
    };
    let (status, _) = post(&format!("http://{addr}/in/orders"), &[], "{}").await;
    assert_eq!(status, 401);
    let refused = loop {
        let v = next_json().await;
        if v["fields"]["message"] == "webhook refused" {
            break v;
        }
    };
    assert_eq!(refused["level"], "INFO");
    assert_eq!(refused["span"]["name"], "webhook");
    assert_eq!(refused["span"]["source"], "orders");
    assert_eq!(refused["fields"]["code"], "missing_signature");
    let _ = child.start_kill();
}

fn short_retention(receiver: &str, extra_endpoint: &str) -> String {
    format!(
        "{}\n[admin]\ntoken = \"t\"\n[store]\nretention = \"200ms\"\ndead_letter_retention = \"200ms\"\nprune_interval = \"50ms\"\n\
         [[endpoints]]\nid = \"r\"\nurl = \"{receiver}\"\nsources = [\"orders\"]\n{extra_endpoint}",
        orders_source()
    )
}

#[tokio::test]
async fn finished_events_are_pruned_after_the_retention_and_waiting_ones_kept() {
    let receiver = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_default_status(500);
    let extra = format!(
        "[[endpoints]]\nid = \"failing\"\nurl = \"{}\"\nevent_types = [\"doomed\"]\nretry = {{ max_attempts = 1 }}\n",
        failing.url
    );
    let (gw, _dir) = Gateway::start(&short_retention(&receiver.url, &extra)).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let (_, a) = send(&gw.url("orders"), &format!("msg_p{i}"), r#"{"type":"a"}"#).await;
        ids.push(event_id(&a));
    }
    let (_, doomed) = send(&gw.url("orders"), "msg_doomed", r#"{"type":"doomed"}"#).await;
    for id in ids.iter().chain([&event_id(&doomed)]) {
        // Stored at its 202, so a missing event was finished and already pruned (on a loaded
        // machine the 200 ms retention can pass between two looks).
        eventually_async("each event settled or already pruned", async || {
            let d = gw.deliveries(*id).await;
            d.is_empty() || d.iter().all(|d| d.status.is_final())
        })
        .await;
    }
    // A waiting delivery keeps its event, however old.
    let resp = client()
        .post(format!("{}/api/v1/endpoints/r/pause", gw.admin))
        .bearer_auth("t")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let (_, waiting) = send(&gw.url("orders"), "msg_waiting", r#"{"type":"a"}"#).await;
    let waiting = event_id(&waiting);

    eventually_async("every finished event pruned", async || {
        gw.store.event_ids().await.expect("ids") == vec![waiting]
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(
        &client()
            .get(format!("{}/api/v1/dead-letters", gw.admin))
            .bearer_auth("t")
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("body"),
    )
    .expect("json");
    assert_eq!(
        body["data"].as_array().map(Vec::len),
        Some(0),
        "dead letters past their retention are gone too"
    );
    consistently_async(
        "the waiting event stays",
        std::time::Duration::from_millis(300),
        async || gw.store.event_ids().await.expect("ids") == vec![waiting],
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn the_file_size_levels_off_under_a_steady_load() {
    let receiver = Receiver::start().await;
    let (gw, dir) = Gateway::start(&short_retention(&receiver.url, "")).await;
    let file = dir.path().join(hookgate::store::DB_FILE);
    let size = || std::fs::metadata(&file).expect("file").len();
    let mut sizes = Vec::new();
    for round in 0..10 {
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..200 {
            let url = gw.url("orders");
            let body = format!(r#"{{"type":"a","pad":"{}"}}"#, "x".repeat(1000));
            sends.spawn(async move { send(&url, &format!("msg_{round}_{i}"), &body).await.0 });
        }
        while let Some(status) = sends.join_next().await {
            assert_eq!(status.expect("task"), 202);
        }
        eventually_async("the round delivered and pruned", async || {
            gw.store.event_ids().await.expect("ids").is_empty()
        })
        .await;
        sizes.push(size());
    }
    // After the first rounds have grown the file to its working size, it stops growing:
    // pruned pages are reused.
    let settled = sizes[3];
    assert!(
        sizes[9] <= settled + settled / 4,
        "the file keeps growing: {sizes:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn readiness_and_ingress_fail_while_the_store_cannot_be_written() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = hookgate::store::redb::fault::FaultSwitch::default();
    let config = format!(
        "{}\n[[endpoints]]\nid = \"r\"\nurl = \"{}\"\n",
        orders_source(),
        receiver.url
    );
    let gw = Gateway::start_faulty(dir.path(), &config, Some(fault.clone())).await;
    let ready = || async {
        client()
            .get(format!("{}/readyz", gw.admin))
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);
    let (status, _) = send(&gw.url("orders"), "msg_before", r#"{"type":"a"}"#).await;
    assert_eq!(status, 202);

    fault.fail_writes(true);
    let (status, answer) = send(&gw.url("orders"), "msg_during", r#"{"type":"a"}"#).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (503, Some("store_unavailable")),
        "{answer}"
    );
    assert_eq!(
        gw.store.event_ids().await.expect("ids").len(),
        1,
        "nothing unstored was acknowledged"
    );
    // A probe's outcome is reused for up to a second.
    let mut not_ready = false;
    for _ in 0..300 {
        if ready().await == 503 {
            not_ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(not_ready, "a store that cannot be written is not ready");

    // Space returns: the gateway reopens its store and recovers by itself, without a restart.
    fault.fail_writes(false);
    let mut recovered = false;
    for i in 0..300 {
        let (status, _) = send(
            &gw.url("orders"),
            &format!("msg_after{i}"),
            r#"{"type":"a"}"#,
        )
        .await;
        if status == 202 {
            recovered = true;
            break;
        }
        assert_eq!(status, 503, "refused, but not as unavailable");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "ingress never accepted again after the disk recovered"
    );
    let mut ready_again = false;
    for _ in 0..300 {
        if ready().await == 200 {
            ready_again = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready_again, "ready again once the store can be written");
    // Both events arrive (one may arrive twice: an attempt whose result the broken disk could
    // not record is sent again once its lease runs out: at least once).
    let distinct = || {
        let ids: std::collections::BTreeSet<String> = receiver
            .got()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        ids.len()
    };
    eventually("both events delivered", || distinct() == 2).await;
    // Nothing is sent whose lease could not be recorded: no storm of repeats while the disk
    // was broken.
    assert!(receiver.count() <= 3, "{} deliveries", receiver.count());
    assert_eq!(gw.store.event_ids().await.expect("ids").len(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn consumer_lag_per_endpoint() {
    let ok = Receiver::start().await;
    let slow = Receiver::start().await;
    let config = format!(
        "{}\n[admin]\ntoken = \"t\"\n[[endpoints]]\nid = \"ok\"\nurl = \"{}\"\n[[endpoints]]\nid = \"paused\"\nurl = \"{}\"\n",
        orders_source(),
        ok.url,
        slow.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let resp = client()
        .post(format!("{}/api/v1/endpoints/paused/pause", gw.admin))
        .bearer_auth("t")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    for i in 0..3 {
        send(&gw.url("orders"), &format!("msg_lag{i}"), r#"{"type":"a"}"#).await;
    }
    ok.wait_for(3).await;
    let scrape = || async { metrics_text(&gw.admin).await };
    let mut text = scrape().await;
    for _ in 0..200 {
        let lag = sample(
            &text,
            r#"hookgate_endpoint_oldest_pending_age_seconds{endpoint="paused"}"#,
        )
        .unwrap_or(0.0);
        let ok_pending = sample(
            &text,
            r#"hookgate_endpoint_pending_deliveries{endpoint="ok"}"#,
        );
        if lag >= 0.05 && ok_pending == Some(0.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        text = scrape().await;
    }
    assert_eq!(
        sample(
            &text,
            r#"hookgate_endpoint_pending_deliveries{endpoint="paused"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"hookgate_endpoint_pending_deliveries{endpoint="ok"}"#
        ),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"hookgate_endpoint_oldest_pending_age_seconds{endpoint="paused"}"#
        )
        .is_some_and(|s| s >= 0.05),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"hookgate_endpoint_oldest_pending_age_seconds{endpoint="ok"}"#
        ),
        Some(0.0)
    );
    gw.stop().await;
}
