//! Delivery end to end: retries, dead letters, the SSRF guard, independent lanes.

use crate::harness::*;
use hookgate::store::DeliveryStatus;

fn config(endpoints: &str) -> String {
    format!("{}\n{endpoints}", orders_source())
}

fn endpoint(id: &str, url: &str, extra: &str) -> String {
    format!("[[endpoints]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n")
}

const FAST_RETRY: &str = r#"retry = { max_attempts = 3, base = "10ms", max_delay = "20ms" }"#;

#[tokio::test]
async fn failures_are_retried_with_the_same_webhook_id_until_delivered() {
    let receiver = Receiver::start().await;
    receiver.script(&[(500, &[]), (503, &[])]);
    let (gw, _dir) = Gateway::start(&config(&endpoint("r", &receiver.url, FAST_RETRY))).await;
    let (status, answer) = send(&gw.url("orders"), "msg_retry", r#"{"type":"a"}"#).await;
    assert_eq!(status, 202);
    let event_id = event_id(&answer);
    let delivery = gw.settled(event_id).await.remove(0);
    let got = receiver.got();
    let attempts: Vec<&str> = got.iter().map(|r| r.header("hookgate-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(
        got.iter()
            .all(|r| r.header("webhook-id") == event_id.to_string())
    );
    assert_eq!(delivery.status, DeliveryStatus::Delivered);
    assert_eq!(delivery.attempts, 3);
    let (event, _) = gw.store.event(event_id).expect("read").expect("stored");
    let attempts = gw
        .store
        .attempts(hookgate::ids::DeliveryId(event.deliveries[0].0))
        .expect("read");
    gw.stop().await;
    let codes: Vec<Option<u16>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(503), Some(200)]);
    assert_eq!(attempts[0].response_excerpt, b"receiver says hi");
    assert_eq!(receiver.count(), 3, "nothing after delivery");
}

#[tokio::test]
async fn always_failing_delivery_dies_after_max_attempts_with_its_last_error() {
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let (gw, _dir) = Gateway::start(&config(&endpoint("r", &receiver.url, FAST_RETRY))).await;
    let (_, answer) = send(&gw.url("orders"), "msg_dead", r#"{"type":"a"}"#).await;
    let event_id = event_id(&answer);
    let delivery = gw.settled(event_id).await.remove(0);
    gw.stop().await;
    assert_eq!(delivery.status, DeliveryStatus::Dead);
    assert_eq!(delivery.attempts, 3);
    let error = delivery.last_error.expect("last error kept");
    assert!(error.contains("HTTP 500"), "{error}");
    assert_eq!(receiver.count(), 3);
}

#[tokio::test]
async fn private_targets_are_refused_and_dead_lettered_at_once() {
    let receiver = Receiver::start().await;
    // No allow_private_networks: the receiver on loopback is out of bounds.
    let config = format!(
        r#"
        [[sources]]
        id = "orders"
        verify = "standard-webhooks"
        secrets = ["{INBOUND_SECRET}"]
        [[endpoints]]
        id = "literal"
        url = "{}"
        [[endpoints]]
        id = "named"
        url = "{}"
        "#,
        receiver.url,
        receiver.url.replace("127.0.0.1", "localhost")
    );
    let (gw, dir) = Gateway::start(&config).await;
    let (_, answer) = send(&gw.url("orders"), "msg_ssrf", r#"{"type":"a"}"#).await;
    let event_id = event_id(&answer);
    let settled = gw.settled(event_id).await;
    gw.stop().await;
    assert_eq!(settled.len(), 2);
    for d in settled {
        assert_eq!(d.status, DeliveryStatus::Dead);
        assert_eq!(
            d.attempts, 1,
            "{}: refused once, not retried",
            d.endpoint_id
        );
        let error = d.last_error.expect("reason kept");
        assert!(
            error.starts_with("blocked: private address"),
            "{}: {error}",
            d.endpoint_id
        );
    }
    assert_eq!(receiver.count(), 0, "nothing reached the private address");
    drop(dir);
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another() {
    let stuck = Receiver::start().await;
    stuck.hang();
    let healthy = Receiver::start().await;
    let endpoints = format!(
        "{}{}",
        endpoint("stuck", &stuck.url, "max_in_flight = 4\ntimeout = \"60s\""),
        endpoint("healthy", &healthy.url, "max_in_flight = 4")
    );
    let (gw, _dir) = Gateway::start(&config(&endpoints)).await;
    for i in 0..50 {
        let (status, _) = send(&gw.url("orders"), &format!("msg_{i}"), r#"{"type":"a"}"#).await;
        assert_eq!(status, 202);
    }
    healthy.wait_for(50).await;
    // The stuck endpoint holds exactly its own in-flight limit, no more.
    stuck.wait_for(4).await;
    assert_eq!(stuck.count(), 4);
    gw.stop().await;
}
