//! Payload filters end to end: real signed webhooks routed by their body, headers and query at
//! ingest; an event that matches nothing still stored; and the answer to "why did this not
//! go to that endpoint" from the event's page, `test-filter`, and a bad filter's 400.

use crate::harness::*;
use hookgate::model::event::DeliveryStatus;

const GH_SECRET: &str = "gh-secret";

/// A GitHub webhook of `event` with `body`, signed as GitHub signs.
fn github_headers(event: &str, delivery: &str, body: &str) -> Vec<(String, String)> {
    let github = hookgate::verify::github::Github::new(vec![]);
    vec![
        (
            "x-hub-signature-256".into(),
            github.sign(GH_SECRET.as_bytes(), body.as_bytes()),
        ),
        ("x-github-event".into(), event.into()),
        ("x-github-delivery".into(), delivery.into()),
        ("content-type".into(), "application/json".into()),
    ]
}

/// A `pull_request` webhook's body, shaped as GitHub sends it (shortened).
fn pull_request(action: &str, number: u64, draft: bool) -> String {
    serde_json::json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number, "state": "open", "draft": draft, "title": "Fix the thing",
            "user": { "login": "octocat", "type": "User" },
            "labels": [{ "name": "enhancement" }],
        },
        "repository": { "full_name": "octo-org/hello-world", "private": false },
        "sender": { "login": "octocat" },
    })
    .to_string()
}

/// An `issues` webhook's body with `labels`.
fn issue(action: &str, labels: &[&str]) -> String {
    let labels: Vec<_> = labels
        .iter()
        .map(|l| serde_json::json!({ "name": l, "color": "d73a4a" }))
        .collect();
    serde_json::json!({
        "action": action,
        "issue": { "number": 7, "title": "It broke", "labels": labels, "state": "open" },
        "repository": { "full_name": "octo-org/hello-world" },
        "sender": { "login": "hubot" },
    })
    .to_string()
}

fn config(prs: &str, bugs: &str, all: &str) -> String {
    format!(
        r#"
        [admin]
        token = "{ADMIN_TOKEN}"
        [delivery]
        allow_private_networks = true
        [[sources]]
        id = "github"
        verify = "github"
        secrets = ["{GH_SECRET}"]
        [[endpoints]]
        id = "prs"
        url = "{prs}"
        sources = ["github"]
        filter = {{ headers = {{ "x-github-event" = "pull_request" }}, body = {{ action = {{ "$in" = ["opened", "reopened"] }}, pull_request = {{ draft = false }} }} }}
        [[endpoints]]
        id = "bugs"
        url = "{bugs}"
        filter = '{{"body": {{"issue.labels.name": "bug"}}}}'
        [[endpoints]]
        id = "all"
        url = "{all}"
        "#
    )
}

#[tokio::test]
async fn github_actions_are_routed_by_the_filter_and_each_miss_says_why() {
    let (prs, bugs, all) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let (gw, _dir) = Gateway::start(&config(&prs.url, &bugs.url, &all.url)).await;
    let sends = [
        ("pull_request", "d-1", pull_request("opened", 1, false)),
        ("pull_request", "d-2", pull_request("closed", 2, false)),
        ("pull_request", "d-3", pull_request("reopened", 3, false)),
        ("pull_request", "d-4", pull_request("opened", 4, true)),
        ("issues", "d-5", issue("labeled", &["bug", "p1"])),
        ("issues", "d-6", issue("labeled", &["docs"])),
    ];
    let mut ids = Vec::new();
    for (event, delivery, body) in &sends {
        let (status, answer) = post(
            &gw.url("github"),
            &github_headers(event, delivery, body),
            body.clone(),
        )
        .await;
        assert_eq!(status, 202, "{answer}");
        ids.push(event_id(&answer));
    }
    all.wait_for(6).await;
    let numbers = |r: &Receiver| -> Vec<String> {
        let mut got: Vec<String> = r
            .got()
            .iter()
            .map(|g| g.header("x-github-delivery").to_string())
            .collect();
        got.sort();
        got
    };
    eventually("the filtered endpoints got theirs", || {
        numbers(&prs).len() == 2 && numbers(&bugs).len() == 1
    })
    .await;
    // Opened and reopened, not closed, not the draft; only the issue labelled bug.
    assert_eq!(numbers(&prs), ["d-1", "d-3"]);
    assert_eq!(numbers(&bugs), ["d-5"]);
    assert_eq!(numbers(&all).len(), 6);

    // The closed pull request's page says why it did not go to `prs` or `bugs`.
    let (status, page) = admin_call(
        &gw,
        reqwest::Method::GET,
        &format!("/events/{}", ids[1]),
        "",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let routing = page["routing"].as_array().expect("routing").clone();
    let of = |id: &str| {
        routing
            .iter()
            .find(|r| r["endpoint"] == id)
            .unwrap_or_else(|| panic!("{id} in {routing:?}"))
            .clone()
    };
    assert_eq!(of("all")["matched"], true);
    assert!(of("all")["delivery_id"].is_string());
    let prs_miss = of("prs");
    assert_eq!(prs_miss["matched"], false);
    assert_eq!(prs_miss["stage"], "filter");
    assert_eq!(prs_miss["clause"], "body.action.$in");
    assert!(
        prs_miss["reason"].as_str().unwrap_or("").contains("closed"),
        "{prs_miss}"
    );
    assert_eq!(of("bugs")["stage"], "filter");
    // The draft fails on its own clause.
    let (_, draft) = admin_call(
        &gw,
        reqwest::Method::GET,
        &format!("/events/{}", ids[3]),
        "",
    )
    .await;
    let draft_miss = draft["routing"]
        .as_array()
        .expect("routing")
        .iter()
        .find(|r| r["endpoint"] == "prs")
        .cloned()
        .expect("prs");
    assert_eq!(draft_miss["clause"], "body.pull_request.draft");

    // test-filter: the stored event, a payload, and a filter tried before it is saved.
    let try_filter = |body: serde_json::Value| {
        let gw = &gw;
        async move {
            admin_call(
                gw,
                reqwest::Method::POST,
                "/endpoints/prs/test-filter",
                &body.to_string(),
            )
            .await
        }
    };
    let (status, v) = try_filter(serde_json::json!({ "event_id": ids[1].to_string() })).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["matched"].clone(), v["clause"].clone()),
        (false.into(), "body.action.$in".into())
    );
    let (_, v) = try_filter(serde_json::json!({ "event_id": ids[0].to_string() })).await;
    assert_eq!(v["matched"], true, "{v}");
    let (_, v) = try_filter(serde_json::json!({
        "body": { "action": "opened", "pull_request": { "draft": false } },
        "headers": { "X-GitHub-Event": "pull_request" },
    }))
    .await;
    assert_eq!(v["matched"], true, "{v}");
    let (_, v) = try_filter(serde_json::json!({
        "body": { "action": "opened", "pull_request": { "draft": false } },
        "headers": { "x-github-event": "push" },
    }))
    .await;
    assert_eq!(
        (v["matched"].clone(), v["clause"].clone()),
        (false.into(), "headers.x-github-event".into()),
        "{v}"
    );
    let (_, v) = try_filter(serde_json::json!({
        "event_id": ids[1].to_string(),
        "filter": { "body": { "action": "closed" } },
    }))
    .await;
    assert_eq!(v["matched"], true, "an unsaved filter is tried: {v}");
    // The subscription is checked too when the payload names its source.
    let (_, v) = admin_call(
        &gw,
        reqwest::Method::POST,
        "/endpoints/prs/test-filter",
        &serde_json::json!({ "source": "stripe", "body": {} }).to_string(),
    )
    .await;
    assert_eq!(v["stage"], "source", "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn a_bad_filter_is_refused_naming_the_path_inside_it_and_changes_nothing() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url, &receiver.url, &receiver.url)).await;
    for (filter, problem) in [
        (
            serde_json::json!({ "body": { "amount": { "$gte": "100" } } }),
            "filter.body.amount.$gte: expected a number",
        ),
        (
            serde_json::json!({ "body": { "name": { "$regex": "(" } } }),
            "filter.body.name.$regex",
        ),
        (serde_json::json!({ "colour": "red" }), "filter.colour"),
        (
            serde_json::json!({ "body": { "a": { "$nope": 1 } } }),
            "filter.body.a.$nope",
        ),
        (
            serde_json::json!("{not json"),
            "filter: is a string but not a JSON document",
        ),
    ] {
        let body = serde_json::json!({ "id": "new", "url": receiver.url, "filter": filter });
        let (status, answer) =
            admin_call(&gw, reqwest::Method::POST, "/endpoints", &body.to_string()).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            error_message(&answer).contains(problem),
            "{problem:?} in {answer}"
        );
        // test-filter refuses it the same way.
        let (status, answer) = admin_call(
            &gw,
            reqwest::Method::POST,
            "/endpoints/all/test-filter",
            &serde_json::json!({ "body": {}, "filter": filter }).to_string(),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert!(error_message(&answer).contains(problem), "{answer}");
    }
    let (status, _) = admin_call(&gw, reqwest::Method::GET, "/endpoints/new", "").await;
    assert_eq!(status, 404, "nothing was made");
    // Neither an event nor a payload; both; an event that does not exist.
    for (body, want) in [
        ("{}", 400),
        (
            r#"{"event_id": "evt_01J00000000000000000000000", "body": {}}"#,
            400,
        ),
        (r#"{"event_id": "evt_01J00000000000000000000000"}"#, 404),
        (r#"{"body": {}, "nonsense": 1}"#, 400),
    ] {
        let (status, answer) = admin_call(
            &gw,
            reqwest::Method::POST,
            "/endpoints/all/test-filter",
            body,
        )
        .await;
        assert_eq!(status, want, "{body}: {answer}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn query_and_amount_filters_route_at_ingest_and_an_unmatched_event_is_still_stored() {
    let (eu, big) = (Receiver::start().await, Receiver::start().await);
    let config = format!(
        r#"
        [admin]
        token = "{ADMIN_TOKEN}"
        {}
        [[endpoints]]
        id = "eu"
        url = "{}"
        filter = {{ query = {{ site = {{ "$in" = ["eu", "uk"] }} }} }}
        [[endpoints]]
        id = "big"
        url = "{}"
        filter = {{ body = {{ data = {{ object = {{ amount = {{ "$gte" = 10000 }}, currency = "usd" }} }} }} }}
        "#,
        orders_source(),
        eu.url,
        big.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let charge = |amount: u64| {
        serde_json::json!({
            "id": "evt_1", "type": "charge.succeeded",
            "data": { "object": { "id": "ch_1", "object": "charge", "amount": amount,
                                  "currency": "usd", "paid": true } },
        })
        .to_string()
    };
    let (s, small_us) = send(
        &format!("{}?site=us", gw.url("orders")),
        "m-1",
        &charge(500),
    )
    .await;
    assert_eq!(s, 202, "{small_us}");
    let (s, big_eu) = send(
        &format!("{}?site=eu", gw.url("orders")),
        "m-2",
        &charge(25000),
    )
    .await;
    assert_eq!(s, 202, "{big_eu}");
    eu.wait_for(1).await;
    big.wait_for(1).await;
    assert_eq!(eu.count(), 1);
    assert_eq!(big.count(), 1);
    // Matched nothing: stored all the same, with no delivery, and it says why.
    let small = event_id(&small_us);
    assert!(gw.statuses(small).await.is_empty());
    // A receiver has the request before the gateway records its answer.
    let big = event_id(&big_eu);
    eventually_async(
        "both deliveries of the big order recorded delivered",
        async || gw.statuses(big).await == [DeliveryStatus::Delivered, DeliveryStatus::Delivered],
    )
    .await;
    let (_, page) = admin_call(&gw, reqwest::Method::GET, &format!("/events/{small}"), "").await;
    let routing = page["routing"].as_array().expect("routing");
    let clauses: Vec<&str> = routing
        .iter()
        .map(|r| r["clause"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        clauses,
        ["query.site.$in", "body.data.object.amount.$gte"],
        "{page}"
    );
    gw.stop().await;
}
