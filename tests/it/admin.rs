//! The admin API: authentication, and pausing and resuming endpoints.

use std::time::Duration;

use crate::harness::*;
use hookgate::store::DeliveryStatus;

const TOKEN: &str = "test-admin-token";

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

    // Without a configured token the API is closed to everyone.
    let (gw, _dir) =
        Gateway::start(&config(&receiver.url).replace(&format!("token = \"{TOKEN}\""), "")).await;
    let (status, answer) = admin_post(&gw, "/endpoints/r/pause", Some(TOKEN)).await;
    assert_eq!(status, 401);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("admin.token"),
        "{answer}"
    );
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
            gw.statuses(*id),
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
