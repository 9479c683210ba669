//! The console's overview, sources page and endpoint health, over plain HTTP against a
//! gateway with real traffic: accepted, duplicate and refused requests, an endpoint that
//! answers 500, a paused one and a healthy one.

use crate::console_user::{User, http};
use crate::harness::*;
use crate::webdriver::Browser;
use hookgate::model::event::DeliveryStatus;

/// Three endpoints: `ok` answers 200, `bad` answers 500 (one attempt each), `held` is paused.
fn config(ok: &str, bad: &str) -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
         [[endpoints]]\nid = \"ok\"\nurl = \"{ok}\"\n\
         [[endpoints]]\nid = \"bad\"\nurl = \"{bad}\"\nretry = {{ max_attempts = 1 }}\n\
         [[endpoints]]\nid = \"held\"\nurl = \"{ok}\"\n",
        orders_source()
    )
}

/// A page that must answer 200: its HTML.
async fn page(user: &User, path: &str) -> String {
    let a = user.get(path).await;
    assert_eq!(a.status, 200, "{path}");
    a.html
}

/// The table row of `html` that contains `marker`.
fn row_with<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"));
    let start = html[..at].rfind("<tr").expect("a row");
    let end = at + html[at..].find("</tr>").expect("row end");
    &html[start..end]
}

/// Sends the traffic every test here reads: 3 accepted, 1 duplicate, 2 with a wrong secret
/// and 1 too old; waits until `ok` delivered and `bad` failed all three.
async fn traffic(gw: &Gateway, bad: &Receiver) -> Vec<hookgate::ids::EventId> {
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, answer) = send(&gw.url("orders"), &format!("msg_{i}"), "{}").await;
        assert_eq!(status, 202);
        ids.push(event_id(&answer));
    }
    let (status, _) = send(&gw.url("orders"), "msg_0", "{}").await;
    assert_eq!(status, 200, "a duplicate");
    let wrong = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    for i in 0..2 {
        let headers = signed(wrong, &format!("msg_wrong_{i}"), now_secs(), b"{}");
        let (status, _) = post(&gw.url("orders"), &headers, "{}").await;
        assert_eq!(status, 401);
    }
    let headers = signed(INBOUND_SECRET, "msg_old", now_secs() - 3600, b"{}");
    let (status, _) = post(&gw.url("orders"), &headers, "{}").await;
    assert_eq!(status, 401);
    bad.wait_for(3).await;
    for id in &ids {
        eventually_async("delivered to ok, dead at bad", async || {
            let statuses = gw.statuses(*id).await;
            statuses.contains(&DeliveryStatus::Delivered)
                && statuses.contains(&DeliveryStatus::Dead)
        })
        .await;
    }
    ids
}

async fn start() -> (Gateway, tempfile::TempDir, Receiver, Receiver) {
    let ok = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.set_default_status(500);
    let (gw, dir) = Gateway::start(&config(&ok.url, &bad.url)).await;
    let (status, _) = admin_call(&gw, reqwest::Method::POST, "/endpoints/held/pause", "").await;
    assert_eq!(status, 200);
    (gw, dir, ok, bad)
}

#[tokio::test]
async fn the_sources_page_counts_requests_by_code_and_shows_the_inbound_url() {
    let (gw, _dir, _ok, bad) = start().await;
    traffic(&gw, &bad).await;
    let user = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
    let html = page(&user, "/console/sources").await;
    let row = row_with(&html, "id=\"url-orders\"");
    assert!(
        row.contains(&format!(
            "<code id=\"url-orders\">{}/in/orders</code>",
            gw.ingress
        )),
        "the bound ingress address, so port 0 shows the port taken: {row}"
    );
    assert!(
        row.contains("data-copy=\"url-orders\" aria-label=\"Copy the inbound URL of orders\" hidden>Copy</button>"),
        "{row}"
    );
    assert!(row.contains(">standard-webhooks<"), "{row}");
    assert!(row.contains("data-label=\"Accepted\">3<"), "{row}");
    assert!(row.contains("data-label=\"Duplicates\">1<"), "{row}");
    assert!(
        row.contains("<span class=\"mono\">bad_signature</span> × 2"),
        "{row}"
    );
    assert!(
        row.contains("<span class=\"mono\">stale_timestamp</span> × 1"),
        "{row}"
    );
    assert!(
        row.starts_with("<tr class=\"refusals\""),
        "refusals are highlighted: {row}"
    );
    assert!(
        !html.contains(&INBOUND_SECRET["whsec_".len()..]),
        "no secret on the page"
    );

    // A request for a source that does not exist is counted under one name.
    let (status, _) = send(&gw.url("nosuch"), "msg_x", "{}").await;
    assert_eq!(status, 404);
    let html = page(&user, "/console/sources").await;
    assert!(html.contains("Requests for no known source"), "{html}");
    assert!(
        !html.contains("nosuch"),
        "the name a client sent is not shown"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_overview_counts_and_lists_a_paused_and_a_failing_endpoint() {
    let (gw, _dir, _ok, bad) = start().await;
    let r = http()
        .get(format!("{}/console", gw.admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/console/overview")
    );
    traffic(&gw, &bad).await;
    let user = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
    let html = page(&user, "/console/overview").await;
    assert!(html.contains("<a href=\"/console/overview\" aria-current=\"page\">Overview</a>"));
    // The chart is an inline SVG with a title, a description and the numbers as text.
    assert!(html.contains("<svg class=\"chart\""), "{html}");
    assert!(html.contains("<title id=\"chart-title\">"), "{html}");
    let summary = "In the last hour: 3 events in, 3 delivered, 3 dead, 6 attempts.";
    assert!(html.contains(summary), "{html}");
    assert!(
        html.contains("<rect "),
        "a bar for the minute the events came in"
    );
    // Pending: the paused endpoint's three.
    assert!(
        html.contains(
            "<span class=\"tile-label\">Pending now</span><span class=\"tile-value\">3</span>"
        ),
        "{html}"
    );
    // Dead: bad's three, counted by the store.
    assert!(
        html.contains(
            "<span class=\"tile-label\">Dead letters</span><span class=\"tile-value\">3</span>"
        ),
        "{html}"
    );
    let held = row_with(&html, "href=\"/console/endpoints/held\"");
    assert!(held.contains("badge paused"), "{held}");
    assert!(held.contains("paused by an operator"), "{held}");
    assert!(
        held.contains("href=\"/console/events?endpoint=held\""),
        "{held}"
    );
    let failing = row_with(&html, "href=\"/console/endpoints/bad\"");
    assert!(failing.contains("badge failing"), "{failing}");
    assert!(failing.contains("its last 3 attempts failed"), "{failing}");
    assert!(
        !html.contains("href=\"/console/endpoints/ok\""),
        "a healthy endpoint needs no attention"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_endpoints_list_shows_state_success_rate_and_latency() {
    let (gw, _dir, _ok, bad) = start().await;
    traffic(&gw, &bad).await;
    let user = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
    let html = page(&user, "/console/endpoints").await;
    let ok = row_with(&html, "href=\"/console/endpoints/ok\"");
    assert!(ok.contains("badge active"), "{ok}");
    assert!(
        ok.contains("100\u{a0}% <span class=\"muted\">of 3</span>"),
        "{ok}"
    );
    assert!(ok.contains("mean "), "{ok}");
    assert!(ok.contains("href=\"/console/events?endpoint=ok\""), "{ok}");
    let failing = row_with(&html, "href=\"/console/endpoints/bad\"");
    assert!(failing.contains("badge failing"), "{failing}");
    assert!(
        failing.contains("0\u{a0}% <span class=\"muted\">of 3</span>"),
        "{failing}"
    );
    let held = row_with(&html, "href=\"/console/endpoints/held\"");
    assert!(held.contains("badge paused"), "{held}");
    assert!(held.contains("no attempts"), "{held}");
    assert!(held.contains("aria-label=\"Resume held\""), "{held}");
    gw.stop().await;
}

/// The overview and sources pages in a real browser at both widths, for a person to look at.
#[tokio::test]
async fn the_overview_and_sources_in_a_browser() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => {
            println!("SKIPPED the_overview_and_sources_in_a_browser: {why}");
            return;
        }
    };
    let (gw, _dir, _ok, bad) = start().await;
    traffic(&gw, &bad).await;
    browser.goto(&format!("{}/console", gw.admin)).await;
    browser.fill("#token", ADMIN_TOKEN).await;
    browser.click("form.card button[type=submit]").await;
    browser
        .goto(&format!("{}/console/overview", gw.admin))
        .await;
    browser.find("svg.chart").await;
    browser.screenshot("overview").await;
    browser.goto(&format!("{}/console/sources", gw.admin)).await;
    browser.find("#url-orders").await;
    browser.screenshot("sources").await;
    browser
        .goto(&format!("{}/console/endpoints", gw.admin))
        .await;
    browser.find("table.list").await;
    browser.screenshot("endpoints-health").await;
    browser.close().await;
    gw.stop().await;
}
