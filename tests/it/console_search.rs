//! "Payload contains" on the events list: the console's field and the API's `contains`
//! parameter over a real gateway (the store's side, and its scan bound, are pinned by the
//! contract suite for both backends).

use crate::console_user::User;
use crate::harness::*;

#[tokio::test]
async fn the_events_page_finds_events_by_payload_text() {
    let config = format!("{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n", orders_source());
    let (gw, _dir) = Gateway::start(&config).await;
    let mut ids = Vec::new();
    for (i, body) in [
        r#"{"customer":"cus_42","n":1}"#,
        r#"{"customer":"cus_7"}"#,
        r#"{"customer":"cus_42","n":2}"#,
    ]
    .iter()
    .enumerate()
    {
        let (status, answer) = send(&gw.url("orders"), &format!("msg_search_{i}"), body).await;
        assert_eq!(status, 202, "{answer}");
        ids.push(event_id(&answer).to_string());
    }
    let user = User::sign_in(&gw.admin, ADMIN_TOKEN).await;

    // The field is there, labelled, and says how it matches.
    let a = user.get("/console/events").await;
    let (status, html) = (a.status, a.html);
    assert_eq!(status, 200);
    assert!(html.contains(r#"<label for="f-contains">Payload contains</label>"#));
    assert!(html.contains("case-sensitive"), "{html}");

    // It finds the two events whose payload has the text, and keeps it in the form.
    let a = user.get("/console/events?contains=cus_42&source=").await;
    let (status, html) = (a.status, a.html);
    assert_eq!(status, 200);
    assert!(html.contains(&ids[0]) && html.contains(&ids[2]), "{html}");
    assert!(!html.contains(&ids[1]), "{html}");
    assert!(html.contains(r#"name="contains" value="cus_42""#), "{html}");
    // Case-sensitive.
    let a = user.get("/console/events?contains=CUS_42").await;
    let html = a.html;
    assert!(html.contains("No events match"), "{html}");
    assert!(!ids.iter().any(|id| html.contains(id.as_str())));
    // The next page's link searches for the same text.
    let a = user.get("/console/events?contains=cus_42&limit=1").await;
    let html = a.html;
    assert!(html.contains(&ids[2]) && !html.contains(&ids[0]), "{html}");
    assert!(html.contains("?contains=cus_42&#38;cursor=evt_"), "{html}");

    // Too long: a clear error that names the field, and no rows.
    let long = "x".repeat(hookgate::store::query::MAX_CONTAINS_CHARS + 1);
    let a = user.get(&format!("/console/events?contains={long}")).await;
    let (status, html) = (a.status, a.html);
    assert_eq!(status, 400);
    assert!(
        html.contains("contains: must be 1 to 256 characters"),
        "{html}"
    );
    assert!(!ids.iter().any(|id| html.contains(id.as_str())));
}

#[tokio::test]
async fn the_api_searches_payloads_and_refuses_an_empty_or_long_text() {
    let config = format!("{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n", orders_source());
    let (gw, _dir) = Gateway::start(&config).await;
    let (_, wanted) = send(&gw.url("orders"), "msg_api_1", r#"{"order":"ord_9"}"#).await;
    send(&gw.url("orders"), "msg_api_2", r#"{"order":"ord_1"}"#).await;
    let get = reqwest::Method::GET;
    let (status, page) = admin_call(&gw, get.clone(), "/events?contains=%22ord_9%22", "").await;
    assert_eq!(status, 200, "{page}");
    let data = page["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{page}");
    assert_eq!(data[0]["event_id"], wanted["event_id"]);
    for bad in [
        "contains=".to_string(),
        format!("contains={}", "é".repeat(257)),
    ] {
        let (status, answer) = admin_call(&gw, get.clone(), &format!("/events?{bad}"), "").await;
        assert_eq!(status, 400, "{answer}");
        assert!(error_message(&answer).starts_with("contains: "), "{answer}");
    }
    // Dead letters take the same filter, and refuse the same bad values.
    let (status, answer) = admin_call(&gw, get.clone(), "/dead-letters?contains=ord_9", "").await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = admin_call(&gw, get, "/dead-letters?contains=", "").await;
    assert_eq!(status, 400, "{answer}");
    assert!(error_message(&answer).starts_with("contains: "), "{answer}");
    let post = reqwest::Method::POST;
    let (status, answer) =
        admin_call(&gw, post, "/dead-letters/replay", r#"{"contains":""}"#).await;
    assert_eq!(status, 400, "{answer}");
    assert!(error_message(&answer).starts_with("contains: "), "{answer}");
}
