//! Transforms end to end: jq programs reshape, re-encode and drop deliveries as they are sent,
//! in the real binary's worker processes; the signature covers what is sent (checked with the
//! official `standardwebhooks` library); a runaway program fails its own endpoint's attempts
//! and nobody else's; a replay after the program is fixed sends what the fixed one makes.

use crate::harness::*;
use hookgate::model::event::DeliveryStatus;

fn charge(id: &str, amount: u64) -> String {
    serde_json::json!({
        "id": id, "type": "charge.succeeded",
        "data": { "object": { "id": "ch_1", "object": "charge", "amount": amount,
                              "currency": "usd", "paid": true } },
    })
    .to_string()
}

fn endpoint(id: &str, url: &str, extra: &str) -> String {
    format!(
        "[[endpoints]]\nid = \"{id}\"\nurl = \"{url}\"\nsecret = \"{OUTBOUND_SECRET}\"\n{extra}\n"
    )
}

#[tokio::test]
async fn transforms_reshape_re_encode_and_drop_and_the_signature_covers_what_is_sent() {
    let (slim, form, big_only, plain) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let config = format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{}\n{}{}{}{}",
        orders_source(),
        endpoint(
            "slim",
            &slim.url,
            r#"transform = '{body: {id: .body.id, amount: .body.data.object.amount, kind: .event_type}, headers: (.headers + {"x-shape": "slim"})}'"#
        ),
        endpoint(
            "form",
            &form.url,
            r#"transform = '.body |= "id=\(.id | @uri)&amount=\(.data.object.amount)" | .headers["content-type"] = "application/x-www-form-urlencoded"'"#
        ),
        endpoint(
            "big-only",
            &big_only.url,
            r#"transform = 'if .body.data.object.amount < 1000 then null else . end'"#
        ),
        endpoint("plain", &plain.url, ""),
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let (s, small) = send(&gw.url("orders"), "m-1", &charge("evt_small", 500)).await;
    assert_eq!(s, 202, "{small}");
    let (s, big) = send(&gw.url("orders"), "m-2", &charge("evt big", 25000)).await;
    assert_eq!(s, 202, "{big}");
    let (small, big) = (event_id(&small), event_id(&big));

    let got = slim.wait_for(2).await;
    for r in &got {
        verify_outbound(r);
        assert_eq!(r.header("x-shape"), "slim");
        assert_eq!(r.header("content-type"), "application/json");
    }
    let mut bodies: Vec<serde_json::Value> = got
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    bodies.sort_by_key(|b| b["amount"].as_u64());
    assert_eq!(
        bodies,
        [
            serde_json::json!({ "id": "evt_small", "amount": 500, "kind": "charge.succeeded" }),
            serde_json::json!({ "id": "evt big", "amount": 25000, "kind": "charge.succeeded" }),
        ]
    );

    let got = form.wait_for(2).await;
    let mut bodies: Vec<String> = got
        .iter()
        .map(|r| {
            verify_outbound(r);
            assert_eq!(
                r.header("content-type"),
                "application/x-www-form-urlencoded"
            );
            String::from_utf8_lossy(&r.body).into_owned()
        })
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        ["id=evt%20big&amount=25000", "id=evt_small&amount=500"]
    );

    // The small charge was dropped by `big-only`: final without a request.
    let got = big_only.wait_for(1).await;
    verify_outbound(&got[0]);
    let settled = gw.settled(small).await;
    assert!(
        settled
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered)
    );
    assert_eq!(big_only.count(), 1, "the small charge never went out");
    let dropped = settled
        .iter()
        .find(|d| d.endpoint_id == "big-only")
        .expect("big-only's delivery");
    let (_, detail) = admin_call(
        &gw,
        reqwest::Method::GET,
        &format!("/deliveries/{}", dropped.id),
        "",
    )
    .await;
    assert!(
        detail
            .to_string()
            .contains("dropped by the endpoint's transform"),
        "{detail}"
    );
    gw.settled(big).await;
    // The stored event is the original: transforms run at send time.
    let (_, stored) = gw.store.event(big).await.expect("read").expect("kept");
    assert_eq!(stored.body, charge("evt big", 25000).as_bytes());
    assert_eq!(plain.wait_for(2).await.len(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_runaway_transform_is_cut_off_and_fails_only_its_own_attempts() {
    let (looping, recursing, fine) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let retry = r#"retry = { max_attempts = 2, base = "10ms", max_delay = "20ms" }
breaker = "off""#;
    let config = format!(
        "{}\n{}{}{}",
        orders_source_with("[delivery.transform]\ntimeout = \"100ms\""),
        endpoint(
            "looping",
            &looping.url,
            &format!("transform = 'last(repeat(1))'\n{retry}")
        ),
        endpoint(
            "recursing",
            &recursing.url,
            &format!("transform = 'def f: 1 + f; f'\n{retry}")
        ),
        endpoint(
            "fine",
            &fine.url,
            r#"transform = '.headers["x-ok"] = "yes"'"#
        ),
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (s, answer) = send(&gw.url("orders"), &format!("m-{i}"), &charge("evt", i)).await;
        assert_eq!(s, 202, "{answer}");
        ids.push(event_id(&answer));
    }
    // Every event reaches the healthy endpoint, transformed, while the others fail theirs.
    let got = fine.wait_for(20).await;
    assert!(got.iter().all(|r| r.header("x-ok") == "yes"));
    for id in &ids {
        let settled = gw.settled(*id).await;
        for d in settled.iter().filter(|d| d.endpoint_id != "fine") {
            assert_eq!(d.status, DeliveryStatus::Dead, "{d:?}");
            let error = d.last_error.as_deref().unwrap_or("");
            assert!(error.contains("transform:"), "{error}");
        }
    }
    assert_eq!(looping.count() + recursing.count(), 0, "nothing went out");
    let dead = gw.deliveries(ids[0]).await;
    let looped = dead
        .iter()
        .find(|d| d.endpoint_id == "looping")
        .expect("looping");
    assert!(
        looped
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("timed out"),
        "{looped:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_replay_after_the_transform_is_fixed_sends_what_the_fixed_program_makes() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{}",
        orders_source()
    ))
    .await;
    let create = serde_json::json!({
        "id": "fixme", "url": receiver.url, "secret": OUTBOUND_SECRET,
        "transform": r#"{body: {id: .body.id, total: (.body.data.object.amount / .body.nothing)}}"#,
        "retry": { "max_attempts": 1 }, "breaker": "off",
    });
    let (status, answer) = admin_call(
        &gw,
        reqwest::Method::POST,
        "/endpoints",
        &create.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (s, answer) = send(&gw.url("orders"), "m-1", &charge("evt_1", 700)).await;
    assert_eq!(s, 202, "{answer}");
    let id = event_id(&answer);
    let settled = gw.settled(id).await;
    assert_eq!(settled[0].status, DeliveryStatus::Dead);
    assert!(
        settled[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("last error: transform: runtime error"),
        "{settled:?}"
    );
    assert_eq!(receiver.count(), 0);
    let fix = serde_json::json!({ "transform": "{body: {id: .body.id, total: .body.data.object.amount, fixed: true}}" });
    let (status, answer) = admin_call(
        &gw,
        reqwest::Method::PATCH,
        "/endpoints/fixme",
        &fix.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = admin_call(
        &gw,
        reqwest::Method::POST,
        "/dead-letters/replay",
        r#"{"endpoint": "fixme"}"#,
    )
    .await;
    assert!(status == 200 || status == 202, "{answer}");
    let got = receiver.wait_for(1).await;
    verify_outbound(&got[0]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[0].body).expect("json"),
        serde_json::json!({ "id": "evt_1", "total": 700, "fixed": true })
    );
    gw.stop().await;
}

#[tokio::test]
async fn test_transform_shows_the_output_a_drop_or_the_error_and_masks_configured_headers() {
    let receiver = Receiver::start().await;
    let config = format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{}\n{}",
        orders_source(),
        endpoint(
            "t",
            &receiver.url,
            "headers = { \"x-api-key\" = \"k-secret-123\" }\ntransform = '.body |= {id}'"
        ),
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let (s, answer) = send(&gw.url("orders"), "m-1", &charge("evt_1", 700)).await;
    assert_eq!(s, 202, "{answer}");
    let id = event_id(&answer);
    let call = |body: serde_json::Value| {
        let gw = &gw;
        async move {
            admin_call(
                gw,
                reqwest::Method::POST,
                "/endpoints/t/test-transform",
                &body.to_string(),
            )
            .await
        }
    };
    let (status, v) = call(serde_json::json!({ "event_id": id.to_string() })).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"], "send");
    assert_eq!(v["body"], r#"{"id":"evt_1"}"#);
    assert_eq!(v["headers"]["x-api-key"], "***", "{v}");
    assert!(!v.to_string().contains("k-secret-123"));
    let (_, v) = call(serde_json::json!({ "body": { "id": "p" }, "transform": "null" })).await;
    assert_eq!(v["result"], "drop", "{v}");
    let (_, v) =
        call(serde_json::json!({ "body": "raw text", "transform": "error(\"nope\")" })).await;
    assert_eq!(v["result"], "error", "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").starts_with("transform:"),
        "{v}"
    );
    let (status, v) = call(serde_json::json!({ "body": {}, "transform": ".body |" })).await;
    assert_eq!(status, 400, "{v}");
    assert!(error_message(&v).starts_with("transform:"), "{v}");
    let (status, v) = admin_call(
        &gw,
        reqwest::Method::POST,
        "/endpoints",
        &serde_json::json!({ "id": "bad", "url": receiver.url, "transform": "{" }).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(error_message(&v).starts_with("transform:"), "{v}");
    // Nothing was sent by any of it.
    gw.settled(id).await;
    assert_eq!(receiver.count(), 1);
    gw.stop().await;
}

/// A delivery whose transform is still running in a worker holds neither a sending slot nor
/// the global cap: with `max_concurrency = 1`, one endpoint's looping program does not keep
/// another endpoint's delivery from going out.
#[tokio::test]
async fn a_transform_still_running_holds_no_sending_slot() {
    let (slow, quick) = (Receiver::start().await, Receiver::start().await);
    let config = format!(
        "{}\n{}{}",
        orders_source_with("max_concurrency = 1\n[delivery.transform]\ntimeout = \"10s\""),
        endpoint(
            "slow",
            &slow.url,
            "transform = 'last(repeat(1))'\nevent_types = [\"a.slow\"]\nbreaker = \"off\""
        ),
        endpoint("quick", &quick.url, "event_types = [\"b.quick\"]"),
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let (s, a) = send(&gw.url("orders"), "m-a", r#"{"id":"a","type":"a.slow"}"#).await;
    assert_eq!(s, 202, "{a}");
    let a = event_id(&a);
    eventually_async("the slow one is taken", async || {
        gw.statuses(a).await == [DeliveryStatus::Delivering]
    })
    .await;
    let (s, b) = send(&gw.url("orders"), "m-b", r#"{"id":"b","type":"b.quick"}"#).await;
    assert_eq!(s, 202, "{b}");
    // Sent while the slow one's program still loops (for up to 10 s): its attempt is not
    // over, so nothing of it has been recorded.
    quick.wait_for(1).await;
    let slow_one = gw.deliveries(a).await;
    assert_eq!(slow_one.len(), 1);
    assert_eq!(slow_one[0].attempts, 0, "{slow_one:?}");
    assert_eq!(slow.count(), 0);
    gw.stop().await;
}
