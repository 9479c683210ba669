//! The admin API: authentication, and pausing and resuming endpoints.

use std::time::Duration;

use crate::harness::*;
use hookgate::model::event::DeliveryStatus;

const TOKEN: &str = ADMIN_TOKEN;

fn config(receiver: &str) -> String {
    format!(
        "{}\n[admin]\ntoken = \"{TOKEN}\"\n[[endpoints]]\nid = \"r\"\nurl = \"{receiver}\"\nmax_in_flight = 1\n",
        orders_source()
    )
}

async fn admin_post(gw: &Gateway, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = client().post(format!("{}/api/v1{path}", gw.admin));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.expect("body")).unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_api_needs_the_right_token() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let (status, answer) = admin_post(&gw, "/endpoints/r/pause", None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = admin_post(&gw, "/endpoints/r/pause", Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, answer) = admin_post(&gw, "/endpoints/nope/pause", Some(TOKEN)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("unknown_endpoint"))
    );
    let (status, answer) = admin_post(&gw, "/endpoints/r/pause", Some(TOKEN)).await;
    assert_eq!((status, answer["paused"].as_bool()), (200, Some(true)));
    gw.stop().await;

    // Without a configured token, only the one generated into the data directory opens it.
    let (gw, _dir) =
        Gateway::start(&config(&receiver.url).replace(&format!("token = \"{TOKEN}\""), "")).await;
    let (status, answer) = admin_post(&gw, "/endpoints/r/pause", Some(TOKEN)).await;
    assert_eq!(status, 401);
    assert_eq!(error_message(&answer), "the token is wrong");
    let generated = std::fs::read_to_string(gw.data_dir.join("admin-token")).expect("generated");
    let (status, _) = admin_post(&gw, "/endpoints/r/pause", Some(generated.trim())).await;
    assert_eq!(status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn paused_endpoints_keep_their_work_across_a_restart_and_resume_in_order() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start_in(dir.path(), &config(&receiver.url)).await;
    let (status, _) = admin_post(&gw, "/endpoints/r/pause", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, answer) =
            send(&gw.url("orders"), &format!("msg_p{i}"), r#"{"type":"a"}"#).await;
        assert_eq!(status, 202);
        ids.push(event_id(&answer));
    }
    consistently(
        "nothing is sent while paused",
        Duration::from_millis(300),
        || receiver.count() == 0,
    )
    .await;
    for id in &ids {
        assert_eq!(
            gw.statuses(*id).await,
            [DeliveryStatus::Pending],
            "no attempt is spent while paused"
        );
    }
    gw.stop().await;

    // Still paused after a restart.
    let gw = Gateway::start_in(dir.path(), &config(&receiver.url)).await;
    consistently(
        "still paused after a restart",
        Duration::from_millis(300),
        || receiver.count() == 0,
    )
    .await;
    let (status, answer) = admin_post(&gw, "/endpoints/r/resume", Some(TOKEN)).await;
    assert_eq!((status, answer["paused"].as_bool()), (200, Some(false)));
    let got = receiver.wait_for(5).await;
    let order: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    let sent: Vec<String> = ids.iter().map(ToString::to_string).collect();
    assert_eq!(order, sent, "resumed in order of due time");
    assert!(got.iter().all(|r| r.header("hookgate-attempt") == "1"));
    gw.stop().await;
}

/// A lane holding claimed work when its endpoint is paused gives that work back rather than
/// hold it (perhaps past its lease, after which another node could take it over): what waits
/// behind a hanging attempt is pending again, not delivering, while paused.
#[tokio::test]
async fn pausing_gives_back_the_work_a_lane_holds() {
    let receiver = Receiver::start().await;
    receiver.hang();
    let config = config(&receiver.url).replace(
        "max_in_flight = 1\n",
        "max_in_flight = 1\ntimeout = \"60s\"\n",
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, answer) =
            send(&gw.url("orders"), &format!("msg_g{i}"), r#"{"type":"a"}"#).await;
        assert_eq!(status, 202);
        ids.push(event_id(&answer));
    }
    // The first hangs at the receiver; the lane has claimed the next behind it, and waits
    // for the one sending slot.
    receiver.wait_for(1).await;
    eventually_async("the lane holds the second", async || {
        gw.statuses(ids[1]).await == [DeliveryStatus::Delivering]
    })
    .await;
    let (status, _) = admin_post(&gw, "/endpoints/r/pause", Some(TOKEN)).await;
    assert_eq!(status, 200);
    eventually_async("the two waiting are given back", async || {
        gw.statuses(ids[1]).await == [DeliveryStatus::Pending]
            && gw.statuses(ids[2]).await == [DeliveryStatus::Pending]
    })
    .await;
    assert_eq!(
        gw.statuses(ids[0]).await,
        [DeliveryStatus::Delivering],
        "the attempt in flight goes on"
    );
    assert_eq!(receiver.count(), 1);
    gw.stop().await;
}

async fn admin_get(gw: &Gateway, path: &str) -> (u16, serde_json::Value) {
    admin_call(gw, reqwest::Method::GET, path, "").await
}

async fn admin_post_json(gw: &Gateway, path: &str, body: &str) -> (u16, serde_json::Value) {
    admin_call(gw, reqwest::Method::POST, path, body).await
}

#[tokio::test]
async fn events_page_filter_show_and_payload() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let ty = if i % 2 == 0 {
            "order.created"
        } else {
            "order.paid"
        };
        let body = format!("{{\"type\":\"{ty}\", \"n\": {i}}}");
        let (status, answer) = send(&gw.url("orders"), &format!("msg_e{i}"), &body).await;
        assert_eq!(status, 202);
        ids.push(event_id(&answer).to_string());
    }
    // Three pages of 3, 3, 1, newest first, every event once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let path = match &cursor {
            None => "/events?limit=3".to_string(),
            Some(c) => format!("/events?limit=3&cursor={c}"),
        };
        let (status, body) = admin_get(&gw, &path).await;
        assert_eq!(status, 200, "{body}");
        let data = body["data"].as_array().expect("data");
        assert!(data.len() <= 3);
        seen.extend(
            data.iter()
                .map(|e| e["event_id"].as_str().expect("id").to_string()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(page < 5, "paging does not end");
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let (_, body) = admin_get(&gw, "/events?type=order.paid").await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(3));
    let (_, body) = admin_get(&gw, "/events?source=elsewhere").await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0));

    let (status, body) = admin_get(&gw, &format!("/events/{}", ids[0])).await;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "orders");
    assert_eq!(body["type"], "order.created");
    assert!(
        body["received_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(body["deliveries"][0]["endpoint_id"], "r");

    let resp = client()
        .get(format!("{}/api/v1/events/{}/payload", gw.admin, ids[0]))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(
        resp.text().await.expect("body"),
        "{\"type\":\"order.created\", \"n\": 0}"
    );

    for (path, field) in [
        ("/events?colour=red", "colour"),
        ("/events?limit=9999", "limit"),
        ("/events?since=yesterday", "since"),
        ("/events?status=lost", "status"),
        ("/events?cursor=garbage", "cursor"),
    ] {
        let (status, body) = admin_get(&gw, path).await;
        assert_eq!(status, 400, "{path}");
        let message = error_message(&body);
        assert!(message.starts_with(field), "{path}: {message}");
    }
    let (status, _) = admin_get(&gw, "/events/evt_nope").await;
    assert_eq!(status, 404);
    gw.stop().await;
}

#[tokio::test]
async fn dead_letters_list_replay_by_filter_and_retry_one() {
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    a.set_default_status(500);
    b.set_default_status(500);
    let config = format!(
        "{}\n[admin]\ntoken = \"{TOKEN}\"\n\
         [[endpoints]]\nid = \"a\"\nurl = \"{}\"\nretry = {{ max_attempts = 1 }}\n\
         [[endpoints]]\nid = \"b\"\nurl = \"{}\"\nretry = {{ max_attempts = 1 }}\n",
        orders_source(),
        a.url,
        b.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let (_, answer) = send(&gw.url("orders"), "msg_dl", r#"{"type":"order.created"}"#).await;
    let id = event_id(&answer);
    gw.settled(id).await;

    let (status, body) = admin_get(&gw, "/dead-letters").await;
    assert_eq!(status, 200);
    let data = body["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert!(
        data.iter().all(|d| d["event_id"] == id.to_string()
            && d["last_error"] == "gave up after 1 attempts; last error: HTTP 500"),
        "{body}"
    );
    let (_, body) = admin_get(&gw, "/dead-letters?endpoint=a").await;
    let a_delivery = body["data"][0]["delivery_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));

    // Fix the subscriber, replay only endpoint a's dead letters.
    a.set_default_status(200);
    let (status, body) = admin_post_json(&gw, "/dead-letters/replay", r#"{"endpoint": "a"}"#).await;
    assert_eq!((status, body["replayed"].as_u64()), (200, Some(1)));
    let got = a.wait_for(2).await;
    assert_eq!(
        got[1].header("webhook-id"),
        id.to_string(),
        "the original id is kept"
    );
    eventually_async("a delivered", async || {
        gw.store
            .delivery(a_delivery.parse().expect("id"))
            .await
            .expect("read")
            .is_some_and(|d| d.status == hookgate::model::event::DeliveryStatus::Delivered)
    })
    .await;
    let (_, body) = admin_get(&gw, "/dead-letters").await;
    assert_eq!(
        body["data"].as_array().map(Vec::len),
        Some(1),
        "b's is still dead"
    );
    let (_, body) = admin_post_json(&gw, "/dead-letters/replay", r#"{"endpoint": "a"}"#).await;
    assert_eq!(
        body["replayed"].as_u64(),
        Some(0),
        "nothing of a's is dead any more"
    );

    // The delivery's attempt log has both attempts.
    let (status, body) = admin_get(&gw, &format!("/deliveries/{a_delivery}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "delivered");
    let log = body["attempt_log"].as_array().expect("log");
    assert_eq!(
        log.iter()
            .map(|a| a["status_code"].as_u64())
            .collect::<Vec<_>>(),
        [Some(500), Some(200)]
    );
    assert_eq!(log[0]["response_excerpt"], "receiver says hi");

    // Retry one delivered delivery: it is sent again.
    let (status, _) = admin_post_json(&gw, &format!("/deliveries/{a_delivery}/retry"), "").await;
    assert_eq!(status, 202);
    a.wait_for(3).await;
    let (status, _) =
        admin_post_json(&gw, "/deliveries/dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV/retry", "").await;
    assert_eq!(status, 404);

    // Bad replay bodies name the field.
    for (body, field) in [
        (r#"{"ids": [1]}"#, "ids[0]"),
        (r#"{"ids": ["nope"]}"#, "ids[0]"),
        (r#"{"since": "soon"}"#, "since"),
        ("[", "body"),
    ] {
        let (status, answer) = admin_post_json(&gw, "/dead-letters/replay", body).await;
        assert_eq!(status, 400, "{body}");
        let message = error_message(&answer);
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let (status, answer) = admin_post_json(&gw, "/dead-letters/replay", r#"{"colour": 1}"#).await;
    assert_eq!(status, 400);
    assert!(error_message(&answer).contains("colour"), "{answer}");
    gw.stop().await;
}

#[tokio::test]
async fn producers_publish_events_with_an_idempotency_key() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let publish = |key: Option<&'static str>, body: &'static str| {
        let mut req = client()
            .post(format!("{}/api/v1/events", gw.admin))
            .bearer_auth(TOKEN)
            .body(body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        async move {
            let resp = req.send().await.expect("sent");
            let status = resp.status().as_u16();
            let body: serde_json::Value =
                serde_json::from_str(&resp.text().await.expect("body")).unwrap_or_default();
            (status, body)
        }
    };
    let body = r#"{"type": "user.created", "payload": {"id": 7, "name": "Zoë"}, "headers": {"x-trace": "t-1"}}"#;
    let (status, first) = publish(Some("key-1"), body).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = publish(Some("key-1"), body).await;
    assert_eq!(
        (status, &again["event_id"], &again["duplicate"]),
        (200, &first["event_id"], &serde_json::json!(true))
    );

    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!(
        r.header("webhook-id"),
        first["event_id"].as_str().expect("id")
    );
    assert_eq!(r.header("hookgate-event-type"), "user.created");
    assert_eq!(r.header("hookgate-source"), "api");
    assert_eq!(r.header("content-type"), "application/json");
    let payload: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(payload, serde_json::json!({"id": 7, "name": "Zoë"}));

    // An inbound webhook whose delivery id equals an idempotency key is not a duplicate of it.
    let (status, _) = send(&gw.url("orders"), "key-1", r#"{"type":"order.created"}"#).await;
    assert_eq!(status, 202);

    for (body, field) in [
        (r#"{"payload": {}}"#, "missing field `type`"),
        (r#"{"type": "", "payload": {}}"#, "type"),
        (r#"{"type": 5, "payload": {}}"#, "type"),
        (r#"{"type": "a\u0000b", "payload": {}}"#, "type"),
        (r#"{"type": "a", "payload": {}, "source": "a b"}"#, "source"),
        (
            r#"{"type": "a", "payload": {}, "headers": {"webhook-id": "x"}}"#,
            "headers.webhook-id",
        ),
        (r#"{"type": "a", "payload": {}, "extra": 1}"#, "extra"),
    ] {
        let (status, answer) = publish(None, body).await;
        assert_eq!(status, 400, "{body}");
        let message = error_message(&answer);
        assert!(message.contains(field), "{body}: {message}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn recover_requeues_dead_and_never_attempted_deliveries_in_a_window() {
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let config = format!(
        "{}\n[admin]\ntoken = \"{TOKEN}\"\n[[endpoints]]\nid = \"r\"\nurl = \"{}\"\nretry = {{ max_attempts = 1 }}\n",
        orders_source(),
        receiver.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let (_, dead) = send(&gw.url("orders"), "msg_dead", r#"{"type":"a"}"#).await;
    gw.settled(event_id(&dead)).await;
    admin_post(&gw, "/endpoints/r/pause", Some(TOKEN)).await;
    let (_, waiting) = send(&gw.url("orders"), "msg_waiting", r#"{"type":"a"}"#).await;
    assert_eq!(
        gw.statuses(event_id(&waiting)).await,
        [hookgate::model::event::DeliveryStatus::Pending]
    );

    let (status, body) = admin_post_json(
        &gw,
        "/endpoints/r/recover",
        r#"{"since": "2999-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(
        (status, body["recovered"].as_u64()),
        (200, Some(0)),
        "nothing arrived in that window"
    );
    let (status, body) = admin_post_json(&gw, "/endpoints/r/recover", r#"{"since": "1h"}"#).await;
    assert_eq!(
        (status, body["recovered"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    receiver.set_default_status(200);
    admin_post(&gw, "/endpoints/r/resume", Some(TOKEN)).await;
    for answer in [&dead, &waiting] {
        let d = gw.settled(event_id(answer)).await.remove(0);
        assert_eq!(d.status, hookgate::model::event::DeliveryStatus::Delivered);
    }
    let (status, _) = admin_post_json(&gw, "/endpoints/nope/recover", "").await;
    assert_eq!(status, 404);
    gw.stop().await;
}

#[tokio::test]
async fn sources_and_endpoints_made_at_run_time_work_at_once_and_survive_a_restart() {
    use reqwest::Method;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let file_receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start_in(dir.path(), &config(&file_receiver.url)).await;

    // A new source and an endpoint subscribed to it, through the API.
    let (status, body) = admin_call(
        &gw,
        Method::POST,
        "/sources",
        &format!(
            r#"{{"id": "partner", "verify": "standard-webhooks", "secrets": ["{INBOUND_SECRET}"]}}"#
        ),
    )
    .await;
    assert_eq!(
        (status, body["origin"].as_str()),
        (201, Some("api")),
        "{body}"
    );
    assert!(body.get("secrets").is_none(), "secrets are never shown");
    let endpoint = format!(
        r#"{{"id": "partner-sink", "url": "{}", "sources": ["partner"], "secret": "{OUTBOUND_SECRET}", "max_in_flight": 2}}"#,
        first.url
    );
    let (status, body) = admin_call(&gw, Method::POST, "/endpoints", &endpoint).await;
    assert_eq!(
        (status, body["signs"].as_bool()),
        (201, Some(true)),
        "{body}"
    );
    let (status, _) = send(&gw.url("partner"), "msg_rt1", r#"{"type":"a"}"#).await;
    assert_eq!(status, 202);
    assert_eq!(
        first.wait_for(1).await[0].header("hookgate-source"),
        "partner"
    );

    // Refusals: the file's entries, a duplicate, a bad field, a source in use.
    let (status, body) = admin_call(
        &gw,
        Method::PATCH,
        "/endpoints/r",
        r#"{"max_in_flight": 3}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("declared_in_file"))
    );
    let (status, body) = admin_call(&gw, Method::POST, "/endpoints", &endpoint).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_exists"))
    );
    let (status, body) = admin_call(
        &gw,
        Method::POST,
        "/endpoints",
        r#"{"id": "x", "url": "ftp://nope"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body).starts_with("url:"), "{body}");
    let (status, body) = admin_call(
        &gw,
        Method::POST,
        "/endpoints",
        r#"{"id": "x", "url": "http://a.example", "colour": 1}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body).contains("colour"), "{body}");
    let (status, body) = admin_call(&gw, Method::DELETE, "/sources/partner", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("in_use"))
    );
    let (status, body) = admin_call(&gw, Method::GET, "/endpoints/partner-sink/secret", "").await;
    assert_eq!(
        (status, body["secret"].as_str()),
        (200, Some(OUTBOUND_SECRET))
    );
    gw.stop().await;

    // After a restart both are still in force.
    let gw = Gateway::start_in(dir.path(), &config(&file_receiver.url)).await;
    let (status, _) = send(&gw.url("partner"), "msg_rt2", r#"{"type":"a"}"#).await;
    assert_eq!(status, 202);
    first.wait_for(2).await;

    // PATCH moves the endpoint; later deliveries go to the new URL.
    let (status, body) = admin_call(
        &gw,
        Method::PATCH,
        "/endpoints/partner-sink",
        &format!(r#"{{"url": "{}"}}"#, second.url),
    )
    .await;
    assert_eq!(
        (status, body["url"].as_str()),
        (200, Some(second.url.as_str())),
        "{body}"
    );
    send(&gw.url("partner"), "msg_rt3", r#"{"type":"a"}"#).await;
    second.wait_for(1).await;

    // DELETE: what was still waiting is dead-lettered, not lost.
    admin_post(&gw, "/endpoints/partner-sink/pause", Some(TOKEN)).await;
    let (_, waiting) = send(&gw.url("partner"), "msg_rt4", r#"{"type":"a"}"#).await;
    let (status, body) = admin_call(&gw, Method::DELETE, "/endpoints/partner-sink", "").await;
    assert_eq!(
        (status, body["dead_lettered"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    // The file's endpoint `r` subscribes to every source, so the event has two deliveries.
    let d = gw
        .settled(event_id(&waiting))
        .await
        .into_iter()
        .find(|d| d.endpoint_id == "partner-sink")
        .expect("the deleted endpoint's delivery");
    assert_eq!(
        (d.status, d.last_error.as_deref()),
        (
            hookgate::model::event::DeliveryStatus::Dead,
            Some("endpoint deleted")
        )
    );
    let (status, _) = admin_call(&gw, Method::GET, "/endpoints/partner-sink", "").await;
    assert_eq!(status, 404);
    let (status, _) = admin_call(&gw, Method::DELETE, "/sources/partner", "").await;
    assert_eq!(status, 200);
    let (status, _) = send(&gw.url("partner"), "msg_rt5", r#"{"type":"a"}"#).await;
    assert_eq!(status, 404, "the deleted source no longer takes webhooks");
    gw.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_keeps_signing_beside_the_new_one_during_the_overlap() {
    use reqwest::Method;
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let endpoint = format!(
        r#"{{"id": "rot", "url": "{}", "secret": "{OUTBOUND_SECRET}"}}"#,
        receiver.url
    );
    let (status, _) = admin_call(&gw, Method::POST, "/endpoints", &endpoint).await;
    assert_eq!(status, 201);
    let (status, body) = admin_call(
        &gw,
        Method::POST,
        "/endpoints/rot/rotate-secret",
        &format!(r#"{{"secret": "{INBOUND_SECRET}", "overlap": "1h"}}"#),
    )
    .await;
    assert_eq!(
        (status, body["secret"].as_str()),
        (200, Some(INBOUND_SECRET)),
        "{body}"
    );

    let (_, answer) = send(&gw.url("orders"), "msg_rot", r#"{"type":"a"}"#).await;
    let id = event_id(&answer).to_string();
    eventually("the rotated endpoint got it", || {
        receiver
            .got()
            .iter()
            .any(|r| r.header("webhook-id") == id && r.header("webhook-signature").contains(' '))
    })
    .await;
    let got = receiver.got();
    let r = got
        .iter()
        .find(|r| r.header("webhook-id") == id && r.header("webhook-signature").contains(' '))
        .expect("delivery");
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.headers[name].clone());
    }
    for secret in [OUTBOUND_SECRET, INBOUND_SECRET] {
        standardwebhooks::Webhook::new(secret)
            .expect("secret")
            .verify(&r.body, &headers)
            .unwrap_or_else(|e| panic!("{secret} must verify during the overlap: {e:?}"));
    }

    // A generated secret, readable through the secret route; the file's endpoints and bad
    // bodies are refused.
    let (status, body) = admin_call(&gw, Method::POST, "/endpoints/rot/rotate-secret", "").await;
    let generated = body["secret"].as_str().unwrap_or("").to_string();
    assert!(status == 200 && generated.starts_with("whsec_"), "{body}");
    let (_, body) = admin_call(&gw, Method::GET, "/endpoints/rot/secret", "").await;
    assert_eq!(body["secret"].as_str(), Some(generated.as_str()));
    let (status, _) = admin_call(&gw, Method::POST, "/endpoints/r/rotate-secret", "").await;
    assert_eq!(status, 409);
    let (status, body) = admin_call(
        &gw,
        Method::POST,
        "/endpoints/rot/rotate-secret",
        r#"{"overlap": "a while"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&body).starts_with("overlap"), "{body}");
    gw.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_and_matches_the_committed_one() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let (status, body) = admin_get(&gw, "/openapi.json").await;
    assert_eq!(status, 200);
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
            .expect("committed"),
    )
    .expect("json");
    assert_eq!(body, committed);
    let resp = client()
        .get(format!("{}/api/v1/openapi.json", gw.admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        resp.status().as_u16(),
        401,
        "like the rest of /api/v1, it needs the token"
    );
    gw.stop().await;
}

/// A lane takes deliveries ahead of its free slots. When a PATCH replaces it, those it took but
/// had not started are given back at once, not left leased until their leases run out (a
/// minute and more with the default timeout).
#[tokio::test]
async fn a_patch_gives_back_what_the_old_lane_had_not_started() {
    use reqwest::Method;
    let file_receiver = Receiver::start().await;
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&file_receiver.url)).await;
    // The hung request times out after 1s and is retried soon after.
    let endpoint = format!(
        r#"{{"id": "one-at-a-time", "url": "{}", "sources": ["orders"], "max_in_flight": 1,
            "timeout": "1s", "retry": {{"base": "50ms", "max_delay": "100ms"}}}}"#,
        receiver.url
    );
    let (status, body) = admin_call(&gw, Method::POST, "/endpoints", &endpoint).await;
    assert_eq!(status, 201, "{body}");
    receiver.hang();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, answer) = send(&gw.url("orders"), &format!("msg_ahead{i}"), "{}").await;
        assert_eq!(status, 202);
        ids.push(answer["event_id"].as_str().expect("id").to_string());
    }
    // The first hangs in flight; the other two wait in the lane for its one slot.
    receiver.wait_for(1).await;
    let (status, body) = admin_call(
        &gw,
        Method::PATCH,
        "/endpoints/one-at-a-time",
        r#"{"headers": {"x-changed": "yes"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    receiver.unhang();
    eventually("the two not started are delivered by the new lane", || {
        let got = receiver.got();
        ids[1..].iter().all(|id| {
            got.iter()
                .any(|r| r.header("webhook-id") == id && r.header("x-changed") == "yes")
        })
    })
    .await;
    // The one that hung through the change (past the 500 ms shutdown grace) is not stuck in
    // flight either: its attempt timed out on the old lane, and the new lane sends it again.
    eventually(
        "the one in flight during the change is delivered too",
        || {
            receiver
                .got()
                .iter()
                .any(|r| r.header("webhook-id") == ids[0] && r.header("x-changed") == "yes")
        },
    )
    .await;
    gw.stop().await;
}

/// A PATCH does not wait for the old lane's attempts in flight: they finish in the background,
/// on the old settings, and the change is in force at once.
#[tokio::test]
async fn a_patch_does_not_wait_for_attempts_in_flight() {
    use reqwest::Method;
    let file_receiver = Receiver::start().await;
    let slow = Receiver::start().await;
    let moved_to = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = hookgate::RunOptions {
        shutdown_grace: Duration::from_secs(600),
        ..hookgate::RunOptions::default()
    };
    let gw = Gateway::start_with(dir.path(), &config(&file_receiver.url), opts).await;
    let endpoint = format!(
        r#"{{"id": "mover", "url": "{}", "sources": ["orders"], "max_in_flight": 1}}"#,
        slow.url
    );
    let (status, body) = admin_call(&gw, Method::POST, "/endpoints", &endpoint).await;
    assert_eq!(status, 201, "{body}");
    slow.delay(Duration::from_secs(3));
    let (status, answer) = send(&gw.url("orders"), "msg_slow", "{}").await;
    assert_eq!(status, 202);
    let slow_event = event_id(&answer);
    slow.wait_for(1).await;
    let patch = format!(r#"{{"url": "{}"}}"#, moved_to.url);
    let (status, body) = admin_call(&gw, Method::PATCH, "/endpoints/mover", &patch).await;
    assert_eq!(status, 200, "{body}");
    // Answered while the old lane's attempt is still waiting for its slow response.
    let mover_status = async || {
        let (event, _) = gw
            .store
            .event(slow_event)
            .await
            .expect("read")
            .expect("stored");
        let (id, _) = event
            .deliveries
            .iter()
            .find(|(_, e)| e == "mover")
            .expect("a delivery to mover");
        gw.store
            .delivery(*id)
            .await
            .expect("read")
            .expect("stored")
            .status
    };
    assert_eq!(mover_status().await, DeliveryStatus::Delivering);
    let (status, answer) = send(&gw.url("orders"), "msg_after_move", "{}").await;
    assert_eq!(status, 202);
    let moved = moved_to.wait_for(1).await;
    assert_eq!(
        moved[0].header("webhook-id"),
        answer["event_id"].as_str().expect("id")
    );
    // The slow attempt ends on the old lane and is recorded there; it is not sent again.
    eventually_async("the slow attempt recorded as delivered", async || {
        mover_status().await == DeliveryStatus::Delivered
    })
    .await;
    gw.stop().await;
    assert_eq!(moved_to.count(), 1);
    assert_eq!(slow.count(), 1);
}
