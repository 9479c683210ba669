//! The console with a keyboard and a screen reader's questions, in a real headless Chromium:
//! on every page, every control has a label (or an accessible name), every button says what
//! it does, the page has a language and one heading; and the Tab key alone reaches every
//! control, starting with the skip link, each showing a visible focus ring.
//!
//! The checks run in the browser, over the DOM it built, so they see what assistive
//! technology sees rather than what a template meant.

use crate::harness::*;
use crate::webdriver::Browser;
use fantoccini::key::Key;
use serde_json::Value;

/// What a page breaks, as found by the browser: an empty list when it is fine.
const AUDIT: &str = r#"
const problems = [];
const name = el => (el.getAttribute('aria-label') || el.textContent || el.value || el.title || '').trim();
if (!document.documentElement.lang) problems.push('no lang on <html>');
if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one <h1>');
for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  if (el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    problems.push('no label: ' + el.outerHTML.slice(0, 120));
}
for (const el of document.querySelectorAll('button, a[href]')) {
  if (!name(el)) problems.push('no accessible name: ' + el.outerHTML.slice(0, 120));
}
for (const el of document.querySelectorAll('img, svg')) {
  const labelled = el.getAttribute('alt') !== null || el.getAttribute('aria-label')
    || el.getAttribute('aria-hidden') === 'true' || el.querySelector('title');
  if (!labelled) problems.push('unnamed image: ' + el.outerHTML.slice(0, 120));
}
for (const th of document.querySelectorAll('thead th')) {
  if (!th.getAttribute('scope')) problems.push('header cell without scope: ' + th.outerHTML.slice(0, 80));
}
return problems;
"#;

/// The controls a keyboard user should reach: visible, enabled, focusable ones.
const REACHABLE: &str = r#"
const all = document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary');
return Array.from(all)
  .filter(el => !el.disabled && el.offsetParent !== null && el.getAttribute('tabindex') !== '-1')
  .map(el => el.outerHTML.slice(0, 100));
"#;

/// The element with focus, and whether a focus ring is drawn around it.
const FOCUSED: &str = r#"
const el = document.activeElement;
const style = getComputedStyle(el);
return [el.outerHTML.slice(0, 100), style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2];
"#;

async fn run(browser: &Browser, script: &str) -> Value {
    browser
        .client
        .execute(script, vec![])
        .await
        .expect("script ran")
}

/// Tabs through a freshly loaded page; returns each element focused, in order, until focus
/// comes round again (through the browser's own controls, where focus rests on the body).
/// Fails if one shows no focus ring.
async fn tab_through(browser: &Browser, page: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..200 {
        browser
            .client
            .active_element()
            .await
            .expect("an active element")
            .send_keys(&Key::Tab.to_string())
            .await
            .expect("tab");
        let Value::Array(found) = run(browser, FOCUSED).await else {
            panic!("{page}: no answer about focus")
        };
        let html = found[0].as_str().unwrap_or("").to_string();
        if seen.first() == Some(&html) {
            break;
        }
        if html.starts_with("<body") {
            continue;
        }
        assert_eq!(
            found[1],
            Value::Bool(true),
            "{page}: no visible focus ring on {html}"
        );
        seen.push(html);
    }
    seen
}

/// The page the browser shows: its problems, and that Tab alone reaches every control, from
/// the skip link when the page was loaded `from_top` (a trial's answer is loaded at its
/// result, `#trial`, where Tab goes on from).
async fn audit(browser: &Browser, page: &str, from_top: bool) -> Vec<String> {
    browser.find("main h1").await;
    let mut problems = Vec::new();
    if let Value::Array(found) = run(browser, AUDIT).await {
        problems.extend(found.iter().map(|p| format!("{page}: {p}")));
    }
    let reached = tab_through(browser, page).await;
    // A page that puts focus somewhere itself (sign-in's token field) starts there.
    let autofocus = run(
        browser,
        "return document.querySelector('[autofocus]') !== null",
    )
    .await;
    assert!(
        !from_top
            || autofocus == Value::Bool(true)
            || reached
                .first()
                .is_some_and(|h| h.contains("class=\"skip\"")),
        "{page}: the first Tab does not land on the skip link: {reached:?}"
    );
    let Value::Array(reachable) = run(browser, REACHABLE).await else {
        panic!("{page}: no list of controls")
    };
    for control in reachable.iter().filter_map(Value::as_str) {
        assert!(
            reached.iter().any(|r| r == control),
            "{page}: Tab never reaches {control}; it reached {reached:?}"
        );
    }
    problems
}

#[tokio::test]
async fn every_page_is_labelled_and_reachable_by_keyboard() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED every_page_is_labelled_and_reachable_by_keyboard: {why}");
            return;
        }
    };
    let receiver = Receiver::start().await;
    receiver.script(&[(500, &[])]);
    // `rules` has a filter no event here passes, and a transform: the event pages' routing
    // names its clause, and its page shows both and tries them.
    let config = format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[[endpoints]]\nid = \"r\"\nurl = \"{}\"\nretry = {{ max_attempts = 1 }}\n[[endpoints]]\nid = \"rules\"\nurl = \"{}\"\nfilter = '{{\"body\": {{\"type\": \"order.refunded\"}}}}'\ntransform = '.body |= {{type}}'\n",
        orders_source(),
        receiver.url,
        receiver.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    // One event dead (the receiver's first answer is 500), one delivered.
    let (_, first) = send(
        &gw.url("orders"),
        "msg_a11y_1",
        r#"{"type":"order.created"}"#,
    )
    .await;
    let dead = event_id(&first);
    eventually_async("the first event is dead", async || {
        gw.statuses(dead).await == vec![hookgate::model::event::DeliveryStatus::Dead]
    })
    .await;
    send(&gw.url("orders"), "msg_a11y_2", r#"{"type":"order.paid"}"#).await;
    receiver.wait_for(2).await;

    browser.goto(&format!("{}/console/sign-in", gw.admin)).await;
    let pages = [
        "/console/sign-in".to_string(),
        "/console/overview".to_string(),
        "/console/events".to_string(),
        format!("/console/events/{dead}"),
        "/console/dead-letters".to_string(),
        "/console/endpoints".to_string(),
        "/console/endpoints/r".to_string(),
        "/console/endpoints/rules".to_string(),
        "/console/endpoints/new".to_string(),
        "/console/sources".to_string(),
    ];
    // The sign-in page first, signed out; then the rest, signed in as an admin, who sees
    // every control.
    let mut problems = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        if i == 1 {
            browser.fill("#token", ADMIN_TOKEN).await;
            browser.click("form button[type=submit]").await;
            browser.find("header.top nav").await;
        }
        browser.goto(&format!("{}{page}", gw.admin)).await;
        problems.extend(audit(&browser, page, true).await);
    }
    // The states a trial leaves: a verdict on the endpoint page; on the form, a transform's
    // output, then a refusal marked at its field.
    browser
        .goto(&format!("{}/console/endpoints/rules", gw.admin))
        .await;
    browser.fill("#sample", &dead.to_string()).await;
    browser.click("button[name=try][value=filter]").await;
    browser.find("#trial-verdict").await;
    problems.extend(audit(&browser, "the endpoint page, a filter tried", false).await);
    browser
        .goto(&format!("{}/console/endpoints/new", gw.admin))
        .await;
    browser.fill("#f-transform", ".body |= {type}").await;
    browser
        .fill("#f-sample", r#"{"type": "order.paid", "id": 1}"#)
        .await;
    browser.click("button[name=try][value=transform]").await;
    browser.find("#trial-body").await;
    problems.extend(audit(&browser, "the form, a transform tried", false).await);
    browser
        .fill("#f-filter", r#"{"body": {"n": {"$gte": "1"}}}"#)
        .await;
    browser.click("button[name=try][value=filter]").await;
    browser.find("#f-filter-error").await;
    problems.extend(audit(&browser, "the form, a filter refused", false).await);
    browser.close().await;
    assert!(problems.is_empty(), "{problems:#?}");
}
