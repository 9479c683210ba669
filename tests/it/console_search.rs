//! "Payload contains" on the events list: the console's field and the API's `contains`
//! parameter over a real gateway (the store's side, and its scan bound, are pinned by the
//! contract suite for both backends).

use crate::harness::*;

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Signs in; returns the `Cookie` header to send.
async fn sign_in(gw: &Gateway) -> String {
    let r = http()
        .post(format!("{}/console/sign-in", gw.admin))
        .header("origin", &gw.admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}&next=%2Fconsole%2Fevents"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 303);
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie");
    set.split(';').next().expect("cookie pair").to_string()
}

async fn page(gw: &Gateway, cookie: &str, path: &str) -> (u16, String) {
    let r = http()
        .get(format!("{}{path}", gw.admin))
        .header("cookie", cookie)
        .send()
        .await
        .expect("sent");
    (r.status().as_u16(), r.text().await.expect("page"))
}

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
    let cookie = sign_in(&gw).await;

    // The field is there, labelled, and says how it matches.
    let (status, html) = page(&gw, &cookie, "/console/events").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<label for="f-contains">Payload contains</label>"#));
    assert!(html.contains("case-sensitive"), "{html}");

    // It finds the two events whose payload has the text, and keeps it in the form.
    let (status, html) = page(&gw, &cookie, "/console/events?contains=cus_42&source=").await;
    assert_eq!(status, 200);
    assert!(html.contains(&ids[0]) && html.contains(&ids[2]), "{html}");
    assert!(!html.contains(&ids[1]), "{html}");
    assert!(html.contains(r#"name="contains" value="cus_42""#), "{html}");
    // Case-sensitive.
    let (_, html) = page(&gw, &cookie, "/console/events?contains=CUS_42").await;
    assert!(html.contains("No events match"), "{html}");
    assert!(!ids.iter().any(|id| html.contains(id.as_str())));
    // The next page's link searches for the same text.
    let (_, html) = page(&gw, &cookie, "/console/events?contains=cus_42&limit=1").await;
    assert!(html.contains(&ids[2]) && !html.contains(&ids[0]), "{html}");
    assert!(html.contains("?contains=cus_42&#38;cursor=evt_"), "{html}");

    // Too long: a clear error that names the field, and no rows.
    let long = "x".repeat(hookgate::store::query::MAX_CONTAINS_CHARS + 1);
    let (status, html) = page(&gw, &cookie, &format!("/console/events?contains={long}")).await;
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
