//! Filters and transforms in the console. In a real browser: an admin writes both in the
//! endpoint form (a refused filter is named at its path, every value kept), tries them on a
//! sample before saving, saves them, and the event page of an event the filter turned away
//! names the clause. Over plain HTTP: the edit form tries the rules as typed through the
//! endpoint and removes emptied ones; each role gets the trials its API route allows.

use reqwest::Method;
use serde_json::{Value, json};

use crate::console_user::User;
use crate::harness::*;
use crate::webdriver::Browser;

const VIEWER: &str = "viewer-token-console-rules";
const OPERATOR: &str = "operator-token-console-rules";

/// Pull requests opened or reopened.
const FILTER: &str = r#"{"body": {"action": {"$in": ["opened", "reopened"]}}}"#;
/// Sends only the id and the state.
const TRANSFORM: &str = ".body |= {id, state: .action}";
/// The clause [`FILTER`] fails at.
const CLAUSE: &str = "body.action.$in";

/// Tokens for the three roles, and the `orders` source.
fn config() -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\ntokens = [{{ token = \"{VIEWER}\", role = \"viewer\" }}, {{ token = \"{OPERATOR}\", role = \"operator\" }}]\n",
        orders_source()
    )
}

/// A pull request's webhook, as `orders` takes it.
fn pull_request(action: &str, id: &str) -> String {
    json!({"type": "pull_request", "action": action, "id": id, "draft": false}).to_string()
}

/// Sends a pull request's webhook; its event id.
async fn sent(gw: &Gateway, action: &str, id: &str) -> String {
    let (status, answer) = send(
        &gw.url("orders"),
        &format!("msg_{id}"),
        &pull_request(action, id),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    event_id(&answer).to_string()
}

/// Makes the endpoint `prs` through the API, with [`FILTER`] and [`TRANSFORM`].
async fn make_prs(gw: &Gateway, url: &str) {
    let body = json!({"id": "prs", "url": url, "sources": ["orders"],
        "filter": serde_json::from_str::<Value>(FILTER).expect("json"), "transform": TRANSFORM});
    let (status, answer) = admin_call(gw, Method::POST, "/endpoints", &body.to_string()).await;
    assert_eq!(status, 201, "{answer}");
}

/// Text as the console's templates write it into a page.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
}

/// Whether `html` holds `text`, escaped as askama escapes it.
fn shows(html: &str, text: &str) -> bool {
    html.contains(&escaped(text)) || html.contains(text)
}

/// The text of the textarea `id` in a page.
fn textarea<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("<textarea id=\"{id}\""))
        .unwrap_or_else(|| panic!("no textarea {id}"));
    let start = at + html[at..].find('>').expect("tag end") + 1;
    let end = start + html[start..].find("</textarea>").expect("textarea end");
    &html[start..end]
}

/// A form field's current value in the browser.
async fn value(browser: &Browser, css: &str) -> String {
    browser
        .find(css)
        .await
        .prop("value")
        .await
        .expect("prop")
        .unwrap_or_default()
}

#[tokio::test]
async fn an_admin_writes_tries_and_saves_a_filter_and_a_transform_in_a_browser() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => {
            println!(
                "SKIPPED an_admin_writes_tries_and_saves_a_filter_and_a_transform_in_a_browser: {why}"
            );
            return;
        }
    };
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config()).await;
    // A closed pull request, stored before the endpoint exists: the sample to try.
    let closed = sent(&gw, "closed", "pr-1").await;

    browser
        .goto(&format!("{}/console/endpoints/new", gw.admin))
        .await;
    browser.fill("#token", ADMIN_TOKEN).await;
    browser.click("form.card button[type=submit]").await;
    browser.find("#f-filter").await;
    browser.fill("#f-id", "prs").await;
    browser.fill("#f-url", &receiver.url).await;
    browser.fill("#f-sources", "orders").await;
    let bad = r#"{"body": {"amount": {"$gte": "100"}}}"#;
    browser.fill("#f-filter", bad).await;
    browser.fill("#f-transform", TRANSFORM).await;
    browser.click("#f-submit").await;

    // Refused by the API's own check, named at the path inside the filter, at the field.
    let said = "filter.body.amount.$gte: expected a number";
    assert!(browser.text("#form-error").await.contains(said));
    assert!(browser.text("#f-filter-error").await.contains(said));
    let marked = browser.find("#f-filter").await.attr("aria-invalid").await;
    assert_eq!(marked.expect("attr").as_deref(), Some("true"));
    for (field, typed) in [
        ("#f-id", "prs"),
        ("#f-url", receiver.url.as_str()),
        ("#f-sources", "orders"),
        ("#f-filter", bad),
        ("#f-transform", TRANSFORM),
    ] {
        assert_eq!(value(&browser, field).await, typed, "{field} is kept");
    }
    browser.screenshot("endpoint-rules-refused").await;

    // Tried before saving: the stored closed pull request is turned away at its clause.
    browser.fill("#f-filter", FILTER).await;
    browser.fill("#f-sample", &closed).await;
    browser.click("button[name=try][value=filter]").await;
    let verdict = browser.text("#trial-verdict").await;
    assert!(verdict.contains("Not matched"), "{verdict}");
    assert_eq!(browser.text("#trial-clause").await, CLAUSE);
    assert!(browser.text("#trial-result").await.contains("closed"));
    assert_eq!(value(&browser, "#f-filter").await, FILTER);
    assert_eq!(value(&browser, "#f-sample").await, closed);
    // The answer opens scrolled to the result, below the buttons, not at the top of the form.
    let in_view = browser
        .client
        .execute(
            "const r = document.getElementById('trial-result').getBoundingClientRect(); \
             return window.scrollY > 0 && r.top >= 0 && r.top < window.innerHeight;",
            vec![],
        )
        .await
        .expect("script ran");
    assert_eq!(in_view, Value::Bool(true));
    browser.screenshot("endpoint-rules-filter-trial").await;

    // The transform, on a body pasted in: the reshaped body it would send.
    browser
        .fill(
            "#f-sample",
            r#"{"action": "opened", "id": "pr-2", "draft": false}"#,
        )
        .await;
    browser.click("button[name=try][value=transform]").await;
    let body: Value = serde_json::from_str(&browser.text("#trial-body").await).expect("JSON");
    assert_eq!(body, json!({"id": "pr-2", "state": "opened"}));
    assert_eq!(value(&browser, "#f-transform").await, TRANSFORM);
    browser.screenshot("endpoint-rules-transform-trial").await;

    browser.click("#f-submit").await;
    browser.find(".endpoint-actions").await;
    assert_eq!(browser.path().await, "/console/endpoints/prs?done=created");
    assert!(browser.text("#filter").await.contains("\"$in\""));
    assert_eq!(browser.text("#transform").await, TRANSFORM);
    let (_, view) = admin_call(&gw, Method::GET, "/endpoints/prs", "").await;
    assert_eq!(
        view["filter"],
        serde_json::from_str::<Value>(FILTER).expect("json")
    );
    assert_eq!(view["transform"], TRANSFORM);
    browser.screenshot("endpoint-rules").await;

    // In force: an opened pull request goes out reshaped; a closed one does not, and its
    // page says which clause turned the endpoint away.
    sent(&gw, "opened", "pr-3").await;
    let got = receiver.wait_for(1).await;
    let body: Value = serde_json::from_slice(&got[0].body).expect("JSON");
    assert_eq!(body, json!({"id": "pr-3", "state": "opened"}));
    let missed = sent(&gw, "closed", "pr-4").await;
    browser
        .goto(&format!("{}/console/events/{missed}", gw.admin))
        .await;
    let row = browser.text("#routing-table tr[data-endpoint='prs']").await;
    assert!(row.contains("not matched"), "{row}");
    assert!(row.contains("filter"), "{row}");
    assert_eq!(
        browser
            .text("#routing-table tr[data-endpoint='prs'] code")
            .await,
        CLAUSE
    );
    assert!(row.contains("closed"), "the reason: {row}");
    browser.screenshot("event-routing").await;
    assert_eq!(receiver.count(), 1);
    browser.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn the_edit_form_tries_the_rules_as_typed_and_saving_them_emptied_removes_them() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config()).await;
    make_prs(&gw, &receiver.url).await;
    let closed = sent(&gw, "closed", "pr-1").await;
    let admin = User::sign_in(&gw.admin, ADMIN_TOKEN).await;

    let form = admin.get("/console/endpoints/prs/edit").await;
    assert_eq!(form.status, 200);
    assert!(
        shows(&form.html, "\"$in\": ["),
        "the filter, laid out: {}",
        form.html
    );
    assert!(shows(&form.html, TRANSFORM), "{}", form.html);
    assert!(
        textarea(&form.html, "f-advanced").is_empty(),
        "filter and transform are not in the advanced JSON: {}",
        form.html
    );

    let fields = |filter: &'static str, transform: &'static str, sample: &str, kind: &str| {
        [
            ("url", receiver.url.clone()),
            ("sources", "orders".to_string()),
            ("filter", filter.to_string()),
            ("transform", transform.to_string()),
            ("sample", sample.to_string()),
            ("try", kind.to_string()),
        ]
    };
    let post = |path: &'static str, f: [(&'static str, String); 6]| {
        let admin = &admin;
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            admin.post(path, &pairs).await
        }
    };
    // Unsaved: a filter that takes closed ones matches the stored event, through the endpoint.
    let takes_closed = r#"{"body": {"action": "closed"}}"#;
    let tried = post(
        "/console/endpoints/prs/edit/try",
        fields(takes_closed, TRANSFORM, &closed, "filter"),
    )
    .await;
    assert_eq!(tried.status, 200, "{}", tried.html);
    assert!(
        tried.html.contains("<strong>Matched</strong>"),
        "{}",
        tried.html
    );
    assert!(shows(&tried.html, takes_closed), "kept: {}", tried.html);
    assert!(tried.html.contains(&closed), "the sample is kept");
    // As saved, the filter turns it away.
    let tried = post(
        "/console/endpoints/prs/edit/try",
        fields(FILTER, TRANSFORM, &closed, "filter"),
    )
    .await;
    assert!(tried.html.contains("Not matched"), "{}", tried.html);
    assert!(
        tried
            .html
            .contains(&format!("<code id=\"trial-clause\">{CLAUSE}</code>")),
        "{}",
        tried.html
    );
    // The transform as typed, on the stored event.
    let tried = post(
        "/console/endpoints/prs/edit/try",
        fields(FILTER, ".body |= {kept: .id}", &closed, "transform"),
    )
    .await;
    assert_eq!(tried.status, 200, "{}", tried.html);
    assert!(shows(&tried.html, "\"kept\": \"pr-1\""), "{}", tried.html);

    // Refusals name the field and keep the values; none of it changed the endpoint.
    let bad = r#"{"body": {"amount": {"$gte": "100"}}}"#;
    for (f, status, says, field) in [
        (
            fields(bad, TRANSFORM, &closed, "filter"),
            400,
            "filter.body.amount.$gte: expected a number",
            "f-filter",
        ),
        (
            fields(FILTER, "", &closed, "transform"),
            400,
            "transform: type a program",
            "f-transform",
        ),
        (
            fields(FILTER, ".body |", &closed, "transform"),
            400,
            "transform:",
            "f-transform",
        ),
        (
            fields(FILTER, TRANSFORM, "", "filter"),
            400,
            "sample:",
            "f-sample",
        ),
        (
            fields(FILTER, TRANSFORM, "a=1", "filter"),
            400,
            "neither an event id nor JSON",
            "f-sample",
        ),
        (
            fields(
                FILTER,
                TRANSFORM,
                "evt_01JD0000000000000000000000",
                "filter",
            ),
            404,
            "no event",
            "f-sample",
        ),
    ] {
        let a = post("/console/endpoints/prs/edit/try", f.clone()).await;
        assert_eq!(a.status, status, "{f:?}: {}", a.html);
        assert!(shows(&a.html, says), "{f:?} says {says}: {}", a.html);
        let marked = format!("id=\"{field}\"");
        let at = a.html.find(&marked).unwrap_or_else(|| panic!("{marked}"));
        let tag_end = at + a.html[at..].find('>').expect("tag end");
        assert!(
            a.html[at..tag_end].contains("aria-invalid=\"true\""),
            "{field}: {}",
            &a.html[at..tag_end]
        );
        assert!(shows(&a.html, &f[2].1), "the filter is kept");
    }
    let saved = admin
        .post(
            "/console/endpoints/prs/edit",
            &[
                ("url", &receiver.url),
                ("sources", "orders"),
                ("filter", bad),
            ],
        )
        .await;
    assert_eq!(saved.status, 400, "{}", saved.html);
    assert!(shows(
        &saved.html,
        "filter.body.amount.$gte: expected a number"
    ));
    let advanced = admin
        .post(
            "/console/endpoints/prs/edit",
            &[
                ("url", &receiver.url),
                ("advanced", r#"{"transform": "."}"#),
            ],
        )
        .await;
    assert_eq!(advanced.status, 400);
    assert!(
        advanced.html.contains("has a field of its own"),
        "{}",
        advanced.html
    );
    let (_, view) = admin_call(&gw, Method::GET, "/endpoints/prs", "").await;
    assert_eq!(view["transform"], TRANSFORM, "{view}");

    // Saved emptied: both removed.
    let saved = admin
        .post(
            "/console/endpoints/prs/edit",
            &[
                ("url", &receiver.url),
                ("sources", "orders"),
                ("filter", "\r\n"),
                ("transform", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let (_, view) = admin_call(&gw, Method::GET, "/endpoints/prs", "").await;
    assert_eq!(
        (&view["filter"], &view["transform"]),
        (&Value::Null, &Value::Null),
        "{view}"
    );
    let page = admin.get("/console/endpoints/prs").await;
    assert!(page.html.contains("id=\"filter-none\""), "{}", page.html);
    assert!(page.html.contains("id=\"transform-none\""), "{}", page.html);
    gw.stop().await;
}

#[tokio::test]
async fn each_role_tries_what_its_api_route_allows() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config()).await;
    make_prs(&gw, &receiver.url).await;
    let closed = sent(&gw, "closed", "pr-1").await;

    // A viewer sees the rules and the routing, and may test the filter, not the transform.
    let viewer = User::sign_in(&gw.admin, VIEWER).await;
    let page = viewer.get("/console/endpoints/prs").await;
    assert!(page.html.contains("<pre id=\"filter\""), "{}", page.html);
    assert!(shows(&page.html, TRANSFORM), "{}", page.html);
    assert!(page.html.contains("value=\"filter\""), "{}", page.html);
    assert!(!page.html.contains("value=\"transform\""), "{}", page.html);
    let tried = viewer
        .post(
            "/console/endpoints/prs/try",
            &[("sample", &closed), ("try", "filter")],
        )
        .await;
    assert_eq!(tried.status, 200, "{}", tried.html);
    assert!(tried.html.contains("Not matched"), "{}", tried.html);
    assert!(shows(&tried.html, CLAUSE), "{}", tried.html);
    assert!(tried.html.contains(&closed), "the sample is kept");
    for (path, kind) in [
        ("/console/endpoints/prs/try", "transform"),
        ("/console/endpoints/prs/edit/try", "filter"),
        ("/console/endpoints/new/try", "filter"),
    ] {
        let refused = viewer
            .post(
                path,
                &[("sample", &closed), ("try", kind), ("filter", FILTER)],
            )
            .await;
        assert_eq!(refused.status, 403, "{path} {kind}");
    }
    let event = viewer.get(&format!("/console/events/{closed}")).await;
    assert!(
        event.html.contains("data-endpoint=\"prs\""),
        "{}",
        event.html
    );
    assert!(
        event.html.contains(&format!("<code>{CLAUSE}</code>")),
        "{}",
        event.html
    );
    // A sample that cannot be tried says why at the field.
    for (sample, status, says) in [
        ("a=1", 400, "neither an event id nor JSON"),
        ("evt_01JD0000000000000000000000", 404, "no event"),
        ("", 400, "give an event id"),
    ] {
        let a = viewer
            .post(
                "/console/endpoints/prs/try",
                &[("sample", sample), ("try", "filter")],
            )
            .await;
        assert_eq!(a.status, status, "{sample}: {}", a.html);
        assert!(a.html.contains("id=\"trial-error\""), "{}", a.html);
        assert!(a.html.contains(says), "{sample}: {}", a.html);
    }

    // A real payload pasted in is larger than the console's other forms take.
    let big = json!({"action": "opened", "padding": "x".repeat(100_000)}).to_string();
    let tried = viewer
        .post(
            "/console/endpoints/prs/try",
            &[("sample", &big), ("try", "filter")],
        )
        .await;
    assert_eq!(tried.status, 200);
    assert!(tried.html.contains("<strong>Matched</strong>"));

    // An operator may test the transform too, on a body pasted in.
    let operator = User::sign_in(&gw.admin, OPERATOR).await;
    let page = operator.get("/console/endpoints/prs").await;
    assert!(page.html.contains("value=\"transform\""), "{}", page.html);
    let tried = operator
        .post(
            "/console/endpoints/prs/try",
            &[
                ("sample", r#"{"id": "x", "action": "opened"}"#),
                ("try", "transform"),
            ],
        )
        .await;
    assert_eq!(tried.status, 200, "{}", tried.html);
    assert!(
        shows(&tried.html, "\"state\": \"opened\""),
        "{}",
        tried.html
    );
    assert_eq!(
        operator
            .post("/console/endpoints/new/try", &[("try", "transform")])
            .await
            .status,
        403,
        "the form is an admin's"
    );
    gw.stop().await;
    assert_eq!(receiver.count(), 0, "nothing tried was sent");
}
