//! One endpoint's console page and its operations over real HTTP: create and edit through the
//! form (validated as the API validates), the test event, recover since a time, reveal and
//! rotate the secret, delete; the roles each needs; and the whole flow once in a browser.

use reqwest::Method;

use crate::harness::*;
use hookgate::model::event::DeliveryStatus;

mod breaker;
mod browser;
mod client;

use crate::console_user::User;
use client::{test_event_of, verifies};

const VIEWER: &str = "viewer-token-endpoint-page";
const OPERATOR: &str = "operator-token-endpoint-page";
/// The file endpoint's secret.
const FILE_SECRET: &str = "whsec_Vq3nR8sYkT2mW5xZa7bC9dE1fG4hJ6kL";

/// Tokens for the three roles, the `orders` source, and the file endpoint `r` (one attempt).
fn config(receiver: &str) -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\ntokens = [{{ token = \"{VIEWER}\", role = \"viewer\" }}, {{ token = \"{OPERATOR}\", role = \"operator\" }}]\n[[endpoints]]\nid = \"r\"\nurl = \"{receiver}\"\nsecret = \"{FILE_SECRET}\"\nsources = [\"orders\"]\nretry = {{ max_attempts = 1 }}\n",
        orders_source()
    )
}

/// A refused form: its fields, the status, what the page says, the field marked invalid.
type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str, &'a str);

#[tokio::test]
async fn an_endpoint_made_in_the_form_gets_a_test_event_for_it_alone() {
    let file_receiver = Receiver::start().await;
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&file_receiver.url)).await;
    let admin = User::sign_in(&gw.admin, ADMIN_TOKEN).await;

    let form = admin.get("/console/endpoints/new").await;
    assert_eq!(form.status, 200);
    assert!(form.html.contains("<label for=\"f-url\">"), "{}", form.html);
    let made = admin
        .post(
            "/console/endpoints/new",
            &[
                ("id", "shop"),
                ("url", &receiver.url),
                ("sources", "orders"),
                ("event_types", "order.*"),
                ("advanced", r#"{"retry": {"max_attempts": 2}}"#),
                ("sign", "on"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    assert_eq!(made.location, "/console/endpoints/shop?done=created");
    let (status, view) = admin_call(&gw, Method::GET, "/endpoints/shop", "").await;
    assert_eq!(status, 200);
    assert_eq!(view["origin"], "api");
    assert_eq!(view["sources"], serde_json::json!(["orders"]));
    assert_eq!(view["event_types"], serde_json::json!(["order.*"]));
    assert_eq!(view["retry"]["max_attempts"], 2);
    assert_eq!(view["signs"], true);
    let (_, secret) = admin_call(&gw, Method::GET, "/endpoints/shop/secret", "").await;
    let secret = secret["secret"]
        .as_str()
        .expect("a generated secret")
        .to_string();

    let page = admin.get(&made.location).await;
    assert_eq!(page.status, 200);
    assert!(
        page.html.contains("The endpoint is created"),
        "{}",
        page.html
    );
    assert!(page.html.contains("made in the API"), "{}", page.html);
    assert!(
        !page.html.contains(&secret["whsec_".len()..]),
        "no secret on the page"
    );

    // The test event goes to `shop` only, though `r` takes every event of `orders` too.
    let sent = admin.post("/console/endpoints/shop/test", &[]).await;
    assert_eq!(sent.status, 303, "{}", sent.html);
    let event = test_event_of(&sent.location);
    let page = admin.get(&sent.location).await;
    assert!(
        page.html
            .contains(&format!("href=\"/console/events/{event}\"")),
        "the page links to the test event: {}",
        page.html
    );
    let deliveries = gw.settled(event).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].endpoint_id, "shop");
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    let got = receiver.got();
    let r = got
        .iter()
        .find(|r| r.header("webhook-id") == event.to_string())
        .expect("the receiver got the test event");
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(body["type"], "hookgate.test");
    assert_eq!(body["endpoint"], "shop");
    assert!(verifies(r, &secret), "signed with the generated secret");
    assert_eq!(file_receiver.count(), 0, "the other endpoint got nothing");
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_field_reshows_the_form_and_stores_nothing() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let admin = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
    let cases: [Case; 4] = [
        (
            &[
                ("id", "shop"),
                ("url", "ftp://example.com/hook"),
                ("sources", "orders"),
            ],
            400,
            "url:",
            "f-url",
        ),
        (
            &[
                ("id", "shop"),
                ("url", &receiver.url),
                ("sources", "orders, nosuch"),
            ],
            400,
            "nosuch",
            "f-sources",
        ),
        (
            &[
                ("id", "shop"),
                ("url", &receiver.url),
                ("advanced", "{\"retry\": "),
            ],
            400,
            "Advanced settings",
            "f-advanced",
        ),
        (
            &[("id", "r"), ("url", &receiver.url)],
            409,
            "already exists",
            "f-id",
        ),
    ];
    for (fields, status, says, field) in cases {
        let a = admin.post("/console/endpoints/new", fields).await;
        assert_eq!(a.status, status, "{fields:?}: {}", a.html);
        assert!(a.html.contains(says), "{fields:?} says {says}: {}", a.html);
        let marked = format!("id=\"{field}\"");
        let at = a.html.find(&marked).unwrap_or_else(|| panic!("{marked}"));
        let tag_end = at + a.html[at..].find('>').expect("tag end");
        assert!(
            a.html[at..tag_end].contains("aria-invalid=\"true\""),
            "{field} is marked: {}",
            &a.html[at..tag_end]
        );
        // The values typed are kept.
        let url = fields.iter().find(|(k, _)| *k == "url").map(|(_, v)| *v);
        assert!(a.html.contains(&format!("value=\"{}\"", url.unwrap_or(""))));
    }
    let (status, _) = admin_call(&gw, Method::GET, "/endpoints/shop", "").await;
    assert_eq!(status, 404, "nothing was stored");
    let (_, list) = admin_call(&gw, Method::GET, "/endpoints", "").await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    gw.stop().await;
}

#[tokio::test]
async fn an_api_endpoint_is_edited_and_deleted_and_a_file_endpoint_says_why_not() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let url = format!("{}?token=hush-hush", receiver.url);
    let (status, _) = admin_call(
        &gw,
        Method::POST,
        "/endpoints",
        &serde_json::json!({"id": "shop", "url": url, "headers": {"authorization": "Bearer sesame"},
            "max_in_flight": 3})
        .to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let admin = User::sign_in(&gw.admin, ADMIN_TOKEN).await;

    let form = admin.get("/console/endpoints/shop/edit").await;
    assert_eq!(form.status, 200);
    for hidden in ["hush-hush", "sesame"] {
        assert!(!form.html.contains(hidden), "the form shows {hidden}");
    }
    assert!(form.html.contains("token=***"), "{}", form.html);
    assert!(form.html.contains("max_in_flight"), "{}", form.html);
    assert!(
        form.html.contains("<code>authorization</code>"),
        "{}",
        form.html
    );

    // The URL comes back masked, so it is kept; the rest changes.
    let masked = format!("{}?token=***", receiver.url);
    let saved = admin
        .post(
            "/console/endpoints/shop/edit",
            &[
                ("url", &masked),
                ("sources", "orders"),
                ("event_types", "order.paid"),
                ("advanced", r#"{"timeout": "7s"}"#),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    assert_eq!(saved.location, "/console/endpoints/shop?done=saved");
    let (_, view) = admin_call(&gw, Method::GET, "/endpoints/shop", "").await;
    assert_eq!(view["event_types"], serde_json::json!(["order.paid"]));
    assert_eq!(view["timeout_ms"], 7000);
    let (_, default) = admin_call(&gw, Method::GET, "/endpoints/r", "").await;
    assert_eq!(
        view["max_in_flight"], default["max_in_flight"],
        "taken out of the JSON: back to the default"
    );
    assert_eq!(
        view["headers"],
        serde_json::json!(["authorization"]),
        "kept"
    );
    let (_, secret) = admin_call(&gw, Method::GET, "/endpoints/shop/secret", "").await;
    assert_eq!(
        secret["url"].as_str(),
        Some(url.as_str()),
        "the URL is kept"
    );

    // A refused edit changes nothing.
    let refused = admin
        .post(
            "/console/endpoints/shop/edit",
            &[("url", "not a url"), ("event_types", "x")],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.html.contains("url:"), "{}", refused.html);
    let (_, after) = admin_call(&gw, Method::GET, "/endpoints/shop", "").await;
    assert_eq!(after, view);

    // The file's endpoint: no edit form, no buttons to change it, and the reason.
    for answer in [
        admin.get("/console/endpoints/r/edit").await,
        admin
            .post("/console/endpoints/r/edit", &[("url", &receiver.url)])
            .await,
        admin.get("/console/endpoints/r/rotate").await,
        admin.get("/console/endpoints/r/delete").await,
    ] {
        assert_eq!(answer.status, 409);
        assert!(
            answer.html.contains("defined in the config file"),
            "{}",
            answer.html
        );
    }
    let page = admin.get("/console/endpoints/r").await;
    assert!(
        page.html.contains("defined in the config file"),
        "{}",
        page.html
    );
    for control in ["/edit\"", "/rotate\"", "/delete\""] {
        assert!(
            !page.html.contains(control),
            "the file endpoint offers {control}"
        );
    }
    assert!(page.html.contains("/secret\""), "an admin may reveal it");

    // Delete, after a confirmation page.
    let confirm = admin.get("/console/endpoints/shop/delete").await;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm
            .html
            .contains("action=\"/console/endpoints/shop/delete\"")
    );
    let deleted = admin.post("/console/endpoints/shop/delete", &[]).await;
    assert_eq!(deleted.status, 303, "{}", deleted.html);
    let (status, _) = admin_call(&gw, Method::GET, "/endpoints/shop", "").await;
    assert_eq!(status, 404);
    assert_eq!(admin.get("/console/endpoints/shop").await.status, 404);
    gw.stop().await;
}

#[tokio::test]
async fn recover_since_a_time_sends_again_what_was_not_delivered() {
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let (_, answer) = send(&gw.url("orders"), "msg_lost", r#"{"type":"order.paid"}"#).await;
    let event = event_id(&answer);
    eventually_async("dead", async || {
        gw.statuses(event).await == vec![DeliveryStatus::Dead]
    })
    .await;
    receiver.set_default_status(200);
    let operator = User::sign_in(&gw.admin, OPERATOR).await;

    // A time the events filter would refuse is refused here, naming the field.
    let bad = operator
        .post("/console/endpoints/r/recover", &[("since", "yesterday")])
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.html.contains("since:"), "{}", bad.html);
    assert_eq!(gw.statuses(event).await, vec![DeliveryStatus::Dead]);

    let done = operator
        .post("/console/endpoints/r/recover", &[("since", "1h")])
        .await;
    assert_eq!(done.status, 303, "{}", done.html);
    assert_eq!(
        done.location,
        "/console/endpoints/r?recovered=1&in_flight=0"
    );
    let page = operator.get(&done.location).await;
    assert!(
        page.html.contains("1 delivery is queued to be sent again."),
        "{}",
        page.html
    );
    eventually_async("delivered after recovery", async || {
        gw.statuses(event).await == vec![DeliveryStatus::Delivered]
    })
    .await;
    assert_eq!(receiver.count(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn each_role_sees_and_may_do_what_the_api_lets_it() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let secret = &FILE_SECRET["whsec_".len()..];

    // A viewer: the page, without a secret and without a form that changes the endpoint (the
    // one form it has tries the filter on a sample, which changes nothing).
    let viewer = User::sign_in(&gw.admin, VIEWER).await;
    let page = viewer.get("/console/endpoints/r").await;
    assert_eq!(page.status, 200);
    assert!(!page.html.contains(secret));
    assert_eq!(
        page.html.matches("action=\"/console/endpoints/").count(),
        page.html
            .matches("action=\"/console/endpoints/r/try#trial\"")
            .count(),
        "{}",
        page.html
    );
    assert!(!page.html.contains("/secret\""), "{}", page.html);
    assert_eq!(
        viewer.post("/console/endpoints/r/test", &[]).await.status,
        403
    );
    assert_eq!(
        viewer
            .post("/console/endpoints/r/recover", &[("since", "1h")])
            .await
            .status,
        403
    );

    // An operator: pause, resume, recover and test; not the secret, nor creating one.
    let operator = User::sign_in(&gw.admin, OPERATOR).await;
    let page = operator.get("/console/endpoints/r").await;
    for offered in ["/pause\"", "/recover\"", "/test\""] {
        assert!(page.html.contains(offered), "{offered}: {}", page.html);
    }
    assert!(!page.html.contains("/secret\""), "{}", page.html);
    let paused = operator
        .post("/console/endpoints/r/pause", &[("back", "endpoint")])
        .await;
    assert_eq!(paused.location, "/console/endpoints/r?done=paused");
    let (_, view) = admin_call(&gw, Method::GET, "/endpoints/r", "").await;
    assert_eq!(view["paused"], true);
    assert!(
        operator
            .get(&paused.location)
            .await
            .html
            .contains("/resume\"")
    );
    assert_eq!(
        operator.get("/console/endpoints/r/secret").await.status,
        403
    );
    let refused = operator.post("/console/endpoints/r/secret", &[]).await;
    assert_eq!(refused.status, 403);
    assert!(!refused.html.contains(secret));
    for path in ["/console/endpoints/r/rotate", "/console/endpoints/r/delete"] {
        assert_eq!(operator.post(path, &[]).await.status, 403, "{path}");
    }
    assert_eq!(operator.get("/console/endpoints/new").await.status, 403);
    let made = operator
        .post(
            "/console/endpoints/new",
            &[("id", "x"), ("url", &receiver.url)],
        )
        .await;
    assert_eq!(made.status, 403);
    let (status, _) = admin_call(&gw, Method::GET, "/endpoints/x", "").await;
    assert_eq!(status, 404);

    // An admin: a confirmation first (without the secret), then the secret once.
    let admin = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
    let confirm = admin.get("/console/endpoints/r/secret").await;
    assert_eq!(confirm.status, 200);
    assert!(!confirm.html.contains(secret));
    assert!(
        confirm
            .html
            .contains("action=\"/console/endpoints/r/secret\"")
    );
    let shown = admin.post("/console/endpoints/r/secret", &[]).await;
    assert_eq!(shown.status, 200);
    assert!(
        shown
            .html
            .contains(&format!("<code id=\"secret\">{FILE_SECRET}</code>")),
        "{}",
        shown.html
    );
    assert!(shown.html.contains("data-copy=\"secret\""));
    gw.stop().await;
}

/// The reveal is logged, with the endpoint and the role, never the secret: seen in the real
/// binary's log.
#[tokio::test]
async fn a_revealed_secret_is_logged_without_the_secret() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let rest = format!(
        "{}\n[[endpoints]]\nid = \"r\"\nurl = \"{}\"\nsecret = \"{FILE_SECRET}\"\n",
        orders_source(),
        receiver.url
    );
    let path = binary_config(dir.path(), &format!("token = \"{ADMIN_TOKEN}\""), &rest);
    let bin = Binary::start(&path).await;
    let admin = User::sign_in(&bin.admin, ADMIN_TOKEN).await;
    let shown = admin.post("/console/endpoints/r/secret", &[]).await;
    assert!(shown.html.contains(FILE_SECRET));
    let line = || {
        bin.log
            .lock()
            .expect("log")
            .iter()
            .find(|l| l.contains("secret of an endpoint was revealed"))
            .cloned()
    };
    eventually("the reveal is logged", || line().is_some()).await;
    let line = line().unwrap_or_default();
    assert!(line.contains("endpoint=r"), "{line}");
    assert!(line.contains("admin"), "{line}");
    assert!(line.contains("WARN"), "{line}");
    let log = bin.log.lock().expect("log").join("\n");
    assert!(!log.contains(&FILE_SECRET["whsec_".len()..]), "{log}");
    bin.kill_9().await;
}

#[tokio::test]
async fn rotating_the_secret_signs_with_a_new_one_beside_the_old() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let (status, _) = admin_call(
        &gw,
        Method::POST,
        "/endpoints",
        &serde_json::json!({"id": "shop", "url": receiver.url, "secret": OUTBOUND_SECRET})
            .to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let admin = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
    let confirm = admin.get("/console/endpoints/shop/rotate").await;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm.html.contains("name=\"overlap\""),
        "{}",
        confirm.html
    );
    let bad = admin
        .post("/console/endpoints/shop/rotate", &[("overlap", "a while")])
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.html.contains("overlap"), "{}", bad.html);
    let (_, unchanged) = admin_call(&gw, Method::GET, "/endpoints/shop/secret", "").await;
    assert_eq!(unchanged["secret"], OUTBOUND_SECRET);

    let rotated = admin
        .post("/console/endpoints/shop/rotate", &[("overlap", "1h")])
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.html);
    let (_, now) = admin_call(&gw, Method::GET, "/endpoints/shop/secret", "").await;
    let new = now["secret"].as_str().expect("a secret").to_string();
    assert_ne!(new, OUTBOUND_SECRET);
    assert!(
        rotated
            .html
            .contains(&format!("<code id=\"secret\">{new}</code>")),
        "the new secret is shown once: {}",
        rotated.html
    );

    let sent = admin.post("/console/endpoints/shop/test", &[]).await;
    let event = test_event_of(&sent.location);
    gw.settled(event).await;
    let got = receiver.got();
    let r = got
        .iter()
        .find(|r| r.header("webhook-id") == event.to_string())
        .expect("delivered");
    assert!(verifies(r, &new), "signed with the new secret");
    assert!(
        verifies(r, OUTBOUND_SECRET),
        "and the old, during the overlap"
    );
    gw.stop().await;
}
