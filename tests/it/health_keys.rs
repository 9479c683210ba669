//! Issue 17's keys through the admin API: an endpoint body takes `breaker`, `disable_after`
//! and `ordering` and its view shows them resolved; a refused value names its field and stores
//! nothing; the `hookgate` source is reserved, yet endpoints may subscribe to it.

use reqwest::Method;
use serde_json::json;

use crate::harness::*;
use hookgate::store::EntryKind;

fn config() -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n",
        orders_source_with("breaker = { min_attempts = 7 }")
    )
}

/// The ids of the API-made endpoints the store holds.
async fn stored_endpoints(gw: &Gateway) -> Vec<String> {
    gw.store
        .entries(EntryKind::Endpoint)
        .await
        .expect("entries")
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[tokio::test]
async fn endpoint_bodies_take_and_show_the_health_and_ordering_keys() {
    let (gw, _dir) = Gateway::start(&config()).await;

    // A bad value: 400 naming the field, and nothing stored or in force.
    let body = json!({"id": "x", "url": "http://a.example/", "breaker": {"failure_rate": 2}});
    let (status, answer) = admin_call(&gw, Method::POST, "/endpoints", &body.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        error_message(&answer),
        "breaker.failure_rate: must be > 0 and <= 1"
    );
    assert!(stored_endpoints(&gw).await.is_empty());
    let (status, _) = admin_call(&gw, Method::GET, "/endpoints/x", "").await;
    assert_eq!(status, 404);

    let body = json!({
        "id": "x",
        "url": "http://a.example/",
        "breaker": {"window": "2m", "cool_down": "1m"},
        "disable_after": "1d",
        "ordering": {"key": {"json": "/customer_id"}},
    });
    let (status, view) = admin_call(&gw, Method::POST, "/endpoints", &body.to_string()).await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(
        view["breaker"],
        json!({"window_ms": 120_000, "min_attempts": 7, "failure_rate": 0.5, "cool_down_ms": 60_000}),
        "the table's missing fields come from [delivery], then the default"
    );
    assert_eq!(view["disable_after_ms"], json!(86_400_000));
    assert_eq!(view["ordering"], json!({"key": {"json": "/customer_id"}}));

    let (status, view) = admin_call(
        &gw,
        Method::PATCH,
        "/endpoints/x",
        r#"{"breaker": "off", "disable_after": null, "ordering": "endpoint"}"#,
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (
            &view["breaker"],
            &view["disable_after_ms"],
            &view["ordering"]
        ),
        (&json!(null), &json!(null), &json!("endpoint"))
    );

    // A refused PATCH leaves the stored entry as it was.
    let (status, answer) = admin_call(
        &gw,
        Method::PATCH,
        "/endpoints/x",
        r#"{"disable_after": "3d"}"#,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        error_message(&answer),
        "disable_after: needs a breaker (breaker is \"off\")"
    );
    let (status, answer) =
        admin_call(&gw, Method::PATCH, "/endpoints/x", r#"{"ordering": "key"}"#).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        error_message(&answer).starts_with("ordering: must be \"endpoint\" or { key = … }"),
        "{answer}"
    );
    let (status, view) = admin_call(&gw, Method::GET, "/endpoints/x", "").await;
    assert_eq!(
        (status, &view["breaker"], &view["ordering"]),
        (200, &json!(null), &json!("endpoint"))
    );
    let (_, entries) = gw
        .store
        .entries(EntryKind::Endpoint)
        .await
        .expect("entries")
        .remove(0);
    let stored: serde_json::Value = serde_json::from_slice(&entries).expect("json");
    assert_eq!(stored["breaker"], json!("off"));
    assert!(stored.get("disable_after").is_none(), "{stored}");
    gw.stop().await;
}

#[tokio::test]
async fn the_hookgate_source_is_reserved_and_subscribable() {
    let (gw, _dir) = Gateway::start(&config()).await;
    let (status, answer) = admin_call(
        &gw,
        Method::POST,
        "/sources",
        r#"{"id": "hookgate", "verify": "none"}"#,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        error_message(&answer),
        "id: \"hookgate\" is reserved for hookgate's own events"
    );
    let (status, _) = admin_call(&gw, Method::GET, "/sources/hookgate", "").await;
    assert_eq!(status, 404);

    let (status, view) = admin_call(
        &gw,
        Method::POST,
        "/endpoints",
        r#"{"id": "ops", "url": "http://ops.example/", "sources": ["hookgate"]}"#,
    )
    .await;
    assert_eq!(
        (status, &view["sources"]),
        (201, &json!(["hookgate"])),
        "{view}"
    );

    // No producer may publish as hookgate: 400 naming `source`, and nothing stored.
    let (status, answer) = admin_call(
        &gw,
        Method::POST,
        "/events",
        r#"{"type": "endpoint.failing", "payload": {}, "source": "hookgate"}"#,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        error_message(&answer),
        "source: \"hookgate\" is reserved for hookgate's own events"
    );
    let (status, page) = admin_call(&gw, Method::GET, "/events", "").await;
    assert_eq!((status, &page["data"]), (200, &json!([])), "{page}");
    gw.stop().await;
}
