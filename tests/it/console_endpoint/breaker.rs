//! The endpoint page when the breaker holds an endpoint: what it says, to whom it offers
//! Enable, and what an Enable with "dead-letter what it held" does.

use crate::console_user::User;
use crate::harness::*;

const VIEWER: &str = "viewer-token-breaker-page";
const OPERATOR: &str = "operator-token-breaker-page";

#[tokio::test]
async fn an_open_breaker_is_shown_and_an_operator_enables_it_discarding_what_it_held() {
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let config = format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\ntokens = [{{ token = \"{VIEWER}\", role = \"viewer\" }}, {{ token = \"{OPERATOR}\", role = \"operator\" }}]\n[[endpoints]]\nid = \"r\"\nurl = \"{}\"\nmax_in_flight = 1\nretry = {{ max_attempts = 1000, base = \"10ms\", max_delay = \"20ms\" }}\nbreaker = {{ window = \"1m\", min_attempts = 3, failure_rate = 0.5, cool_down = \"1h\" }}\n",
        orders_source(),
        receiver.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    for i in 0..3 {
        let (status, _) = send(&gw.url("orders"), &format!("msg_{i}"), r#"{"type":"a"}"#).await;
        assert_eq!(status, 202);
    }
    let viewer = User::sign_in(&gw.admin, VIEWER).await;
    eventually_async("the page says the breaker is open", async || {
        viewer
            .get("/console/endpoints/r")
            .await
            .html
            .contains("breaker open")
    })
    .await;
    let page = viewer.get("/console/endpoints/r").await;
    assert!(page.html.contains("3 deliveries are held"), "{}", page.html);
    assert!(
        !page.html.contains("/console/endpoints/r/enable"),
        "a viewer gets no form"
    );
    let list = viewer.get("/console/endpoints").await;
    assert!(list.html.contains("open: 3 held"), "{}", list.html);
    let refused = viewer.post("/console/endpoints/r/enable", &[]).await;
    assert_eq!(refused.status, 403);

    let operator = User::sign_in(&gw.admin, OPERATOR).await;
    let page = operator.get("/console/endpoints/r").await;
    assert!(
        page.html
            .contains(r#"action="/console/endpoints/r/enable""#),
        "{}",
        page.html
    );
    let done = operator
        .post("/console/endpoints/r/enable", &[("discard_held", "true")])
        .await;
    assert_eq!(done.status, 303, "{}", done.html);
    assert_eq!(done.location, "/console/endpoints/r?enabled=3&discarded=3");
    let page = operator.get(&done.location).await;
    assert!(
        page.html
            .contains("3 of the 3 deliveries it held were dead-lettered"),
        "{}",
        page.html
    );
    assert!(!page.html.contains("breaker open"));
    let (_, dead) = admin_call(&gw, reqwest::Method::GET, "/dead-letters", "").await;
    let reasons: Vec<&str> = dead["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["last_error"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(reasons, ["discarded on enable"; 3], "{dead}");
    gw.stop().await;
}
