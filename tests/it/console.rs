//! The web console: sessions, cookies, CSRF and `Origin` checks over plain HTTP, then the
//! pages in a real headless Chromium against a gateway with real traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::harness::*;
use crate::webdriver::Browser;
use hookgate::RunOptions;
use hookgate::clock::Clock;
use hookgate::model::event::DeliveryStatus;

fn config(receiver: &str) -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[[endpoints]]\nid = \"r\"\nurl = \"{receiver}\"\nretry = {{ max_attempts = 1 }}\n",
        orders_source()
    )
}

/// A client that shows redirects rather than following them, and keeps no cookies.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Signs in over HTTP; returns the `Cookie` header to send and the whole `Set-Cookie`.
async fn sign_in(gw: &Gateway, extra: &[(&str, &str)]) -> (String, String) {
    let mut req = http()
        .post(format!("{}/console/sign-in", gw.admin))
        .header("origin", &gw.admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}&next=%2Fconsole%2Fendpoints"));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("sent");
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), "/console/endpoints");
    let set = header(&r, "set-cookie");
    let pair = set.split(';').next().expect("cookie pair").to_string();
    (pair, set)
}

/// The CSRF token in a page's forms.
async fn csrf_of(gw: &Gateway, cookie: &str) -> String {
    let page = http()
        .get(format!("{}/console/endpoints", gw.admin))
        .header("cookie", cookie)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("page");
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 64].to_string()
}

async fn post_form(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut req = http()
        .post(format!("{}{path}", gw.admin))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("sent").status().as_u16()
}

#[tokio::test]
async fn signed_out_pages_lead_to_sign_in_and_sign_in_sets_a_strict_cookie() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let r = http()
        .get(format!("{}/console/events?source=orders", gw.admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 303);
    assert_eq!(
        header(&r, "location"),
        "/console/sign-in?next=%2Fconsole%2Fevents%3Fsource%3Dorders"
    );
    let form = http()
        .get(format!("{}/console/sign-in", gw.admin))
        .send()
        .await
        .expect("sent");
    assert_eq!(form.status(), 200);
    let csp = header(&form, "content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&form, "x-frame-options"), "DENY");
    assert_eq!(header(&form, "x-content-type-options"), "nosniff");
    let html = form.text().await.expect("html");
    assert!(html.contains("<label for=\"token\">"), "{html}");
    assert!(
        !html.contains("admin-token"),
        "a configured token: no file to point at"
    );

    // A wrong token: no cookie.
    let r = http()
        .post(format!("{}/console/sign-in", gw.admin))
        .header("origin", &gw.admin)
        .body("token=wrong")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());

    let (cookie, set) = sign_in(&gw, &[]).await;
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let (_, set) = sign_in(&gw, &[("x-forwarded-proto", "https")]).await;
    assert!(set.contains("; Secure"), "{set}");

    let page = http()
        .get(format!("{}/console/events", gw.admin))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "cache-control"), "no-store");

    // Signing out ends the session on the server, not only in the browser.
    let csrf = csrf_of(&gw, &cookie).await;
    let origin = gw.admin.clone();
    let status = post_form(
        &gw,
        "/console/sign-out",
        &[("origin", &origin), ("cookie", &cookie)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(status, 303);
    let r = http()
        .get(format!("{}/console/events", gw.admin))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 303);
    gw.stop().await;
}

/// The gateway's clock, moved ahead by hand.
struct Shifted(AtomicU64);

impl Clock for Shifted {
    fn now_ms(&self) -> u64 {
        hookgate::clock::system_now_ms() + self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_session_expires() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let clock = Arc::new(Shifted(AtomicU64::new(0)));
    let opts = RunOptions {
        clock: Arc::clone(&clock) as Arc<dyn Clock>,
        shutdown_grace: Duration::from_millis(500),
        ..RunOptions::default()
    };
    let gw = Gateway::start_with(dir.path(), &config(&receiver.url), opts).await;
    let (cookie, _) = sign_in(&gw, &[]).await;
    let get = || async {
        http()
            .get(format!("{}/console/endpoints", gw.admin))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    };
    clock.0.store(11 * 3600 * 1000, Ordering::SeqCst);
    assert_eq!(get().await, 200);
    clock.0.store(12 * 3600 * 1000, Ordering::SeqCst);
    assert_eq!(get().await, 303);
    gw.stop().await;
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let (cookie, _) = sign_in(&gw, &[]).await;
    let csrf = csrf_of(&gw, &cookie).await;
    let origin = gw.admin.clone();
    let pause = "/console/endpoints/r/pause";
    let good = format!("csrf={csrf}");
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("origin", "http://evil.example"), ("cookie", &cookie)],
            &good,
        ),
        (&[("cookie", &cookie)], &good),
        (&[("origin", &origin), ("cookie", &cookie)], ""),
        (&[("origin", &origin), ("cookie", &cookie)], "csrf=0000"),
        (&[("origin", &origin)], &good),
    ];
    for (i, (headers, body)) in cases.iter().enumerate() {
        let status = post_form(&gw, pause, headers, body).await;
        // Without a session, the browser is sent to sign in; nothing is paused either way.
        let want = if i == 4 { 303 } else { 403 };
        assert_eq!(status, want, "case {i}");
    }
    let (_, answer) = admin_call(&gw, reqwest::Method::GET, "/endpoints/r", "").await;
    assert_eq!(answer["paused"], false);
    // Signing in from another site is refused too.
    let status = post_form(
        &gw,
        "/console/sign-in",
        &[("origin", "http://evil.example")],
        &format!("token={ADMIN_TOKEN}"),
    )
    .await;
    assert_eq!(status, 403);
    // The same request from the console itself goes through.
    let status = post_form(
        &gw,
        pause,
        &[("origin", &origin), ("cookie", &cookie)],
        &good,
    )
    .await;
    assert_eq!(status, 303);
    let (_, answer) = admin_call(&gw, reqwest::Method::GET, "/endpoints/r", "").await;
    assert_eq!(answer["paused"], true);
    gw.stop().await;
}

#[tokio::test]
async fn the_ingress_listener_has_no_console() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    for path in [
        "/console",
        "/console/sign-in",
        "/console/events",
        "/console/assets/console.css",
    ] {
        let r = http()
            .get(format!("{}{path}", gw.ingress))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 404, "{path}");
    }
    gw.stop().await;
}

/// Everything a person does in the console, in a real browser: sign in, find an event by
/// filter, read an attempt's response, retry and replay, replay dead letters by filter, pause
/// and resume; with a screenshot of each page at both widths.
#[tokio::test]
async fn the_console_in_a_browser() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => {
            println!("SKIPPED the_console_in_a_browser: {why}");
            return;
        }
    };
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let (_, created) = send(
        &gw.url("orders"),
        "msg_created",
        r#"{"type":"order.created","id":"ord_1"}"#,
    )
    .await;
    let (_, paid) = send(
        &gw.url("orders"),
        "msg_paid",
        r#"{"type":"order.paid","id":"ord_1","amount":4200}"#,
    )
    .await;
    let (created, paid) = (event_id(&created), event_id(&paid));
    for id in [created, paid] {
        eventually_async("dead", async || {
            gw.statuses(id).await == vec![DeliveryStatus::Dead]
        })
        .await;
    }

    // Sign in: the page asked for comes back after.
    browser.goto(&format!("{}/console/events", gw.admin)).await;
    assert!(browser.path().await.starts_with("/console/sign-in"));
    browser.screenshot("sign-in").await;
    browser.fill("#token", ADMIN_TOKEN).await;
    browser.click("form.card button[type=submit]").await;
    browser.find("table.list").await;
    assert_eq!(browser.path().await, "/console/events");

    // Find the paid event by its type.
    browser.fill("#f-type", "order.paid").await;
    browser.click(".filters button[type=submit]").await;
    browser.find("#f-type[value='order.paid']").await;
    let rows = browser
        .client
        .find_all(fantoccini::Locator::Css("table.list tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(
        browser
            .text("table.list tbody")
            .await
            .contains(&paid.to_string())
    );
    browser.screenshot("events").await;

    // Open it and read the attempt's response.
    browser
        .click(&format!("a[href='/console/events/{paid}']"))
        .await;
    browser.find("ol.timeline").await;
    assert!(browser.text("ol.timeline").await.contains("HTTP 500"));
    browser.click("ol.timeline details summary").await;
    assert_eq!(browser.text("pre.response").await, "receiver says hi");
    assert!(
        browser
            .text("pre.payload")
            .await
            .contains("\"amount\": 4200")
    );
    assert!(browser.text("table.kv").await.contains("(masked)"));
    browser.screenshot("event").await;

    // Retry the delivery: the receiver gets it, now answering 200.
    receiver.set_default_status(200);
    browser.click("form[action$='/retry'] button").await;
    browser.find("p.notice.ok").await;
    receiver.wait_for(3).await;
    eventually_async("delivered", async || {
        gw.statuses(paid).await == vec![DeliveryStatus::Delivered]
    })
    .await;
    // Replay the whole event.
    browser.click("form[action$='/replay'] button").await;
    browser.find("p.notice.ok").await;
    receiver.wait_for(4).await;
    browser
        .goto(&format!("{}/console/events/{paid}", gw.admin))
        .await;
    browser.find("ol.timeline").await;
    browser.screenshot("event-delivered").await;

    // Dead letters: replay every match of a filter, after a confirmation with the count.
    browser
        .goto(&format!(
            "{}/console/dead-letters?type=order.created",
            gw.admin
        ))
        .await;
    assert!(
        browser
            .text("table.list")
            .await
            .contains(&created.to_string())
    );
    browser.screenshot("dead-letters").await;
    browser.click("a.button.danger").await;
    assert!(
        browser
            .text("p.count")
            .await
            .contains("1 dead letter matches")
    );
    browser.screenshot("replay-confirm").await;
    browser.click("form button.danger").await;
    assert!(
        browser
            .text("p.notice.ok")
            .await
            .contains("1 dead letter is queued")
    );
    eventually("the replayed dead letter arrives", || {
        receiver
            .got()
            .iter()
            .any(|r| r.header("webhook-id") == created.to_string())
    })
    .await;

    // Pause and resume the endpoint: htmx swaps the row in place, the page is not reloaded
    // (a mark left on the window survives) and focus stays on the button.
    browser
        .goto(&format!("{}/console/endpoints", gw.admin))
        .await;
    browser
        .client
        .execute("window.stayed = true; return null", vec![])
        .await
        .expect("mark");
    browser.click("button[aria-label='Pause r']").await;
    browser.find("button[aria-label='Resume r']").await;
    let (_, answer) = admin_call(&gw, reqwest::Method::GET, "/endpoints/r", "").await;
    assert_eq!(answer["paused"], true);
    let kept = browser
        .client
        .execute(
            "return [window.stayed === true, document.activeElement.getAttribute('aria-label')]",
            vec![],
        )
        .await
        .expect("read");
    assert_eq!(
        kept,
        serde_json::json!([true, "Resume r"]),
        "row swapped in place"
    );
    browser.screenshot("endpoints").await;
    browser.click("button[aria-label='Resume r']").await;
    browser.find("button[aria-label='Pause r']").await;

    browser.close().await;
    gw.stop().await;
}

/// With no token configured, `serve` generates one into the data directory; the sign-in page
/// tells a local user where it is (the path, never the token).
#[tokio::test]
async fn the_sign_in_page_points_at_a_generated_token() {
    let receiver = Receiver::start().await;
    let (gw, dir) =
        Gateway::start(&config(&receiver.url).replace(&format!("token = \"{ADMIN_TOKEN}\""), ""))
            .await;
    let html = http()
        .get(format!("{}/console/sign-in", gw.admin))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("html");
    let file = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&file).expect("generated");
    assert!(html.contains(&file.display().to_string()), "{html}");
    assert!(
        !html.contains(token.trim()),
        "the token itself is never shown"
    );
    gw.stop().await;
}

/// A viewer in a real browser: the pages render, but offer nothing to change and show no
/// secret; and the viewer's own session, with a valid CSRF token and `Origin`, is refused a
/// mutating action outright (the server checks the role, not only the page).
#[tokio::test]
async fn a_viewer_in_a_browser_sees_nothing_to_change_and_no_secret() {
    const VIEWER: &str = "viewer-token-console-browser";
    const ENDPOINT_SECRET: &str = "whsec_Vq3nR8sYkT2mW5xZa7bC9dE1fG4hJ6kL";
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => {
            println!("SKIPPED a_viewer_in_a_browser_sees_nothing_to_change_and_no_secret: {why}");
            return;
        }
    };
    let receiver = Receiver::start().await;
    let config = format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\ntokens = [{{ token = \"{VIEWER}\", role = \"viewer\" }}]\n[[endpoints]]\nid = \"r\"\nurl = \"{}\"\nsecret = \"{ENDPOINT_SECRET}\"\nretry = {{ max_attempts = 1 }}\n",
        orders_source(),
        receiver.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let (_, delivered) = send(&gw.url("orders"), "msg_ok", r#"{"type":"order.created"}"#).await;
    let delivered = event_id(&delivered);
    eventually_async("delivered", async || {
        gw.statuses(delivered).await == vec![DeliveryStatus::Delivered]
    })
    .await;
    receiver.set_default_status(500);
    let (_, dead) = send(&gw.url("orders"), "msg_dead", r#"{"type":"order.paid"}"#).await;
    let dead = event_id(&dead);
    eventually_async("dead", async || {
        gw.statuses(dead).await == vec![DeliveryStatus::Dead]
    })
    .await;

    // No page's source holds the endpoint's signing secret (nor the inbound one).
    let secrets = [
        &ENDPOINT_SECRET["whsec_".len()..],
        &INBOUND_SECRET["whsec_".len()..],
    ];
    let no_secret = async |page: &str| {
        let html = browser.client.source().await.expect("source");
        for secret in secrets {
            assert!(!html.contains(secret), "{page} shows a secret");
        }
        html
    };

    browser.goto(&format!("{}/console/events", gw.admin)).await;
    browser.fill("#token", VIEWER).await;
    browser.click("form.card button[type=submit]").await;
    browser.find("table.list").await;
    assert_eq!(browser.path().await, "/console/events");
    assert_eq!(browser.text("header.top .role").await, "viewer");
    let list = browser.text("table.list tbody").await;
    assert!(
        list.contains(&delivered.to_string()) && list.contains(&dead.to_string()),
        "{list}"
    );
    no_secret("the events list").await;

    for id in [delivered, dead] {
        browser
            .goto(&format!("{}/console/events/{id}", gw.admin))
            .await;
        browser.find("ol.timeline").await;
        let html = no_secret("an event").await;
        for action in ["Retry delivery", "Replay", "/retry\"", "/replay\""] {
            assert!(!html.contains(action), "an event page offers {action}");
        }
    }

    browser
        .goto(&format!("{}/console/dead-letters", gw.admin))
        .await;
    assert!(browser.text("table.list").await.contains(&dead.to_string()));
    let html = no_secret("the dead letters").await;
    assert!(!html.contains("Replay every match"), "{html}");
    assert!(!html.contains("/console/dead-letters/replay"), "{html}");

    browser
        .goto(&format!("{}/console/endpoints", gw.admin))
        .await;
    browser.find("table.list").await;
    let html = no_secret("the endpoints").await;
    for control in ["Pause r", "Resume r", "/pause\"", "/resume\""] {
        assert!(
            !html.contains(control),
            "the endpoints page offers {control}"
        );
    }

    // The viewer's session, taken from the browser, with the page's CSRF token and the
    // console's own `Origin`: still refused, and nothing changes.
    let cookie = browser
        .client
        .get_all_cookies()
        .await
        .expect("cookies")
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(!cookie.is_empty(), "the browser holds a session");
    let csrf = csrf_of(&gw, &cookie).await;
    let origin = gw.admin.clone();
    let good = format!("csrf={csrf}");
    let headers = [("origin", origin.as_str()), ("cookie", cookie.as_str())];
    let delivery = gw.deliveries(dead).await[0].id;
    for (path, body) in [
        ("/console/endpoints/r/pause".to_string(), good.clone()),
        (format!("/console/events/{dead}/replay"), good.clone()),
        (
            format!("/console/deliveries/{delivery}/retry"),
            format!("{good}&event={dead}"),
        ),
        ("/console/dead-letters/replay".to_string(), good.clone()),
    ] {
        assert_eq!(post_form(&gw, &path, &headers, &body).await, 403, "{path}");
    }
    let (_, answer) = admin_call(&gw, reqwest::Method::GET, "/endpoints/r", "").await;
    assert_eq!(answer["paused"], false);
    assert_eq!(gw.statuses(dead).await, vec![DeliveryStatus::Dead]);
    assert_eq!(receiver.count(), 2, "nothing was sent again");
    // The same token and Origin do pass the CSRF check: signing out goes through.
    assert_eq!(
        post_form(&gw, "/console/sign-out", &headers, &good).await,
        303
    );

    browser.close().await;
    gw.stop().await;
}
