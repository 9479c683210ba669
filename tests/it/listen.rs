//! `hookgate listen` (the real binary) against a running gateway: it forwards each event to a
//! local receiver signed as the gateway signs, acks a 2xx, nacks a 500, and removes its
//! temporary endpoint when it is interrupted; a temporary endpoint whose `listen` died expires.

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::*;

fn config() -> String {
    format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{}", orders_source())
}

/// The status of `event`'s one delivery, and its last error.
async fn delivery_of(gw: &Gateway, event: &str) -> (String, String) {
    let (_, e) = admin_call(gw, Method::GET, &format!("/events/{event}"), "").await;
    let d = &e["deliveries"][0];
    (
        d["status"].as_str().unwrap_or("").to_string(),
        d["last_error"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn listen_forwards_signed_acks_2xx_nacks_500_and_removes_its_endpoint_on_exit() {
    let (gw, _dir) = Gateway::start(&config()).await;
    let app = Receiver::start().await;
    app.fail_when("fail-me");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["listen", "--url", &gw.admin, "--token", ADMIN_TOKEN])
        .args(["--forward-to", &app.url, "--source", "orders", "--print"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("listen starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut secret, mut endpoint) = (None, None);
    while endpoint.is_none() {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("listen says what it listens to");
        if let Some(s) = line.split("made for this session: ").nth(1) {
            secret = Some(s.trim().to_string());
        }
        if let Some(rest) = line.split("forwarding ").nth(1) {
            endpoint = rest.split('\'').next().map(str::to_string);
        }
    }
    let (secret, endpoint) = (secret.expect("a secret"), endpoint.expect("an endpoint"));
    let (status, e) = admin_call(&gw, Method::GET, &format!("/endpoints/{endpoint}"), "").await;
    assert_eq!(status, 200, "{e}");
    assert_eq!(
        (e["kind"].as_str(), e["sources"].clone()),
        (Some("pull"), json!(["orders"]))
    );

    let (_, ok) = send(&gw.url("orders"), "ok-1", r#"{"fine":true}"#).await;
    let (_, bad) = send(&gw.url("orders"), "bad-1", r#"{"fail-me":true}"#).await;
    let (ok, bad) = (
        ok["event_id"].as_str().expect("id").to_string(),
        bad["event_id"].as_str().expect("id").to_string(),
    );
    let got = app.wait_for(2).await;
    for r in &got {
        let mut headers = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            headers.insert(name, r.headers[name].clone());
        }
        standardwebhooks::Webhook::new(&secret)
            .expect("secret")
            .verify(&r.body, &headers)
            .expect("forwarded as the gateway signs it");
    }
    eventually_async("the 2xx acked, the 500 nacked", async || {
        let (s_ok, _) = delivery_of(&gw, &ok).await;
        let (s_bad, err) = delivery_of(&gw, &bad).await;
        s_ok == "delivered" && s_bad == "retrying" && err.contains("local app answered 500")
    })
    .await;

    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let mut rest = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push(line);
    }
    let status = child.wait().await.expect("listen exits");
    assert!(status.success(), "{status:?}: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains(&ok)),
        "a line per event: {rest:?}"
    );
    assert!(
        rest.iter().any(|l| l == r#"{"fine":true}"#),
        "--print shows each payload: {rest:?}"
    );
    let (status, _) = admin_call(&gw, Method::GET, &format!("/endpoints/{endpoint}"), "").await;
    assert_eq!(status, 404, "Ctrl-C leaves nothing behind");
    gw.stop().await;
}

#[tokio::test]
async fn an_api_endpoint_past_its_expires_at_is_removed() {
    let (gw, _dir) = Gateway::start(&config()).await;
    let soon = hookgate::api::params::rfc3339(hookgate::clock::system_now_ms() + 1_000);
    let body = json!({"id": "temp", "kind": "pull", "expires_at": soon}).to_string();
    let (status, answer) = admin_call(&gw, Method::POST, "/endpoints", &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["expires_at"].as_str(), Some(soon.as_str()));
    let (status, answer) = admin_call(
        &gw,
        Method::POST,
        "/endpoints",
        &json!({"id": "bad", "kind": "pull", "expires_at": "tomorrow"}).to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_message(&answer).starts_with("expires_at"), "{answer}");
    eventually_async("the endpoint expired", async || {
        admin_call(&gw, Method::GET, "/endpoints/temp", "").await.0 == 404
    })
    .await;
    gw.stop().await;
}
