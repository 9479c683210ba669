//! The endpoint page in a real browser: an admin creates an endpoint through the form (after
//! one refused field) and sends it a test event; screenshots at both widths.

use super::config;
use crate::harness::*;
use crate::webdriver::Browser;

/// An admin in a browser creates an endpoint through the form and sends it a test event.
#[tokio::test]
async fn an_admin_makes_an_endpoint_and_tests_it_in_a_browser() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => {
            println!("SKIPPED an_admin_makes_an_endpoint_and_tests_it_in_a_browser: {why}");
            return;
        }
    };
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    browser
        .goto(&format!("{}/console/endpoints/new", gw.admin))
        .await;
    browser.fill("#token", ADMIN_TOKEN).await;
    browser.click("form.card button[type=submit]").await;
    browser.find("#f-url").await;
    assert_eq!(browser.path().await, "/console/endpoints/new");
    browser.fill("#f-id", "shop").await;
    browser.fill("#f-url", "ftp://nowhere.example/").await;
    browser.fill("#f-sources", "orders").await;
    browser.fill("#f-types", "order.*, invoice.paid").await;
    browser
        .fill(
            "#f-advanced",
            r#"{"timeout": "10s", "retry": {"max_attempts": 5}}"#,
        )
        .await;
    browser.click(".endpoint-form button[type=submit]").await;
    assert!(browser.text("#form-error").await.contains("url"));
    browser.screenshot("endpoint-form").await;
    browser.fill("#f-url", &receiver.url).await;
    browser.click(".endpoint-form button[type=submit]").await;
    browser.find(".endpoint-actions").await;
    assert_eq!(browser.path().await, "/console/endpoints/shop?done=created");

    browser.click("form[action$='/test'] button").await;
    let notice = browser.find("p.notice.ok a").await;
    let href = notice.attr("href").await.expect("attr").expect("a link");
    let event = href.trim_start_matches("/console/events/").to_string();
    eventually("the receiver gets the test event", || {
        receiver
            .got()
            .iter()
            .any(|r| r.header("webhook-id") == event)
    })
    .await;
    browser.screenshot("endpoint").await;
    browser.click("p.notice.ok a").await;
    browser.find("ol.timeline").await;
    assert!(browser.text("main").await.contains("hookgate.test"));

    browser
        .goto(&format!("{}/console/endpoints/shop/secret", gw.admin))
        .await;
    browser.click("main form button[type=submit]").await;
    browser.find("code#secret").await;
    browser.screenshot("endpoint-secret").await;
    browser.close().await;
    gw.stop().await;
}
