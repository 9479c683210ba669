//! A cross-site POST in a real browser: a page on another origin of the same host (another
//! port: the same *site*, so the `SameSite=Strict` cookie still goes along) submits a form to
//! the console. Even holding the session's CSRF token (the worst case: leaked), it is refused
//! by the `Origin` check and changes nothing.

use crate::harness::*;
use crate::webdriver::Browser;
use serde_json::Value;

/// Serves `html` at `/` of a fresh port on 127.0.0.1; returns its URL.
async fn serve_page(html: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test]
async fn a_form_on_another_origin_cannot_post_to_the_console_in_a_browser() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => {
            eprintln!(
                "SKIPPED a_form_on_another_origin_cannot_post_to_the_console_in_a_browser: {why}"
            );
            return;
        }
    };
    let receiver = Receiver::start().await;
    let config = format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[[endpoints]]\nid = \"r\"\nurl = \"{}\"\n",
        orders_source(),
        receiver.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    browser
        .goto(&format!(
            "{}/console/sign-in?next=%2Fconsole%2Fendpoints",
            gw.admin
        ))
        .await;
    browser.fill("#token", ADMIN_TOKEN).await;
    browser.click("form button[type=submit]").await;
    browser.find("button[aria-label='Pause r']").await;
    let csrf = browser
        .client
        .execute(
            "return document.querySelector('input[name=csrf]').value",
            vec![],
        )
        .await
        .expect("csrf");
    let csrf = csrf.as_str().expect("a token").to_string();

    // The other origin's page posts the pause form as soon as it loads.
    let evil = serve_page(format!(
        r#"<!doctype html><html lang="en"><body>
<form id="f" method="post" action="{}/console/endpoints/r/pause">
<input type="hidden" name="csrf" value="{csrf}"></form>
<script>document.getElementById('f').submit();</script></body></html>"#,
        gw.admin
    ))
    .await;
    browser.goto(&evil).await;
    let refusal = browser.text("main").await;
    assert!(
        refusal.contains("came from another site"),
        "the console's refusal page, not {refusal:?}"
    );
    assert_eq!(browser.path().await, "/console/endpoints/r/pause");
    let (_, answer) = admin_call(&gw, reqwest::Method::GET, "/endpoints/r", "").await;
    assert_eq!(answer["paused"], Value::Bool(false), "nothing changed");

    // The same token from the console's own page works: the refusal was the origin's.
    browser
        .goto(&format!("{}/console/endpoints", gw.admin))
        .await;
    browser.click("button[aria-label='Pause r']").await;
    browser.find("button[aria-label='Resume r']").await;
    let (_, answer) = admin_call(&gw, reqwest::Method::GET, "/endpoints/r", "").await;
    assert_eq!(answer["paused"], Value::Bool(true));
    browser.close().await;
    gw.stop().await;
}
