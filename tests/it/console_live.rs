//! The console's live tail: `GET /console/events/live` over plain HTTP (a streaming body read
//! as server-sent events), then the events page's toggle in a real headless Chromium; and the
//! copy buttons of an event's page.

use std::time::Duration;

use crate::console_user::{User, http};
use crate::harness::*;
use crate::webdriver::Browser;
use hookgate::model::event::DeliveryStatus;

/// The stream caps of `console::live`: in all, and per session.
const MAX_STREAMS: usize = 32;
const PER_SESSION: usize = 4;

fn config(receiver: &str) -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[[endpoints]]\nid = \"r\"\nurl = \"{receiver}\"\nretry = {{ max_attempts = 1 }}\n",
        orders_source()
    )
}

/// One server-sent message: its fields (a comment-only message has none of them).
#[derive(Debug, Default)]
struct Message {
    event: String,
    id: String,
    data: String,
    retry: Option<String>,
}

/// An open stream, read message by message.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(gw: &Gateway, cookie: &str, query: &str) -> Stream {
        let response = get_live(gw, Some(cookie), query).await;
        assert_eq!(response.status(), 200);
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(kind, "text/event-stream");
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next message, or `None` once the server ended the stream cleanly. Panics if the
    /// stream fails or nothing comes for 30 s (a deadline, not a measurement).
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut m = Message::default();
                for line in raw.lines() {
                    match line.split_once(':') {
                        Some(("event", v)) => m.event = v.trim_start().to_string(),
                        Some(("id", v)) => m.id = v.trim_start().to_string(),
                        Some(("data", v)) => m.data.push_str(v.trim_start()),
                        Some(("retry", v)) => m.retry = Some(v.trim_start().to_string()),
                        _ => {}
                    }
                }
                return Some(m);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("a message within 30 s")
                .expect("the stream ended cleanly");
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// Messages up to and including the first that `stop` picks.
    async fn until(&mut self, stop: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut seen = Vec::new();
        loop {
            let m = self.next().await.expect("the stream goes on");
            let done = stop(&m);
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
}

async fn get_live(gw: &Gateway, cookie: Option<&str>, query: &str) -> reqwest::Response {
    let mut req = http().get(format!("{}/console/events/live{query}", gw.admin));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.expect("sent")
}

#[tokio::test]
async fn the_live_stream_sends_new_events_that_match_its_filter() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let user = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
    let cookie = user.cookie.as_str();

    // Without a session: sent to sign in, not a stream.
    let r = get_live(&gw, None, "").await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| l.starts_with("/console/sign-in")),
        "{r:?}"
    );
    // A bad filter: a page that says so, not a stream.
    assert_eq!(
        get_live(&gw, Some(cookie), "?status=lost").await.status(),
        400
    );
    // Nor a payload search, which an announcement (no payload) cannot honour.
    assert_eq!(
        get_live(&gw, Some(cookie), "?contains=cus_42")
            .await
            .status(),
        400
    );

    let mut orders = Stream::open(&gw, cookie, "?source=orders&type=order.paid").await;
    let mut billing = Stream::open(&gw, cookie, "?source=billing").await;
    let first = orders.next().await.expect("a first message");
    assert_eq!(first.retry.as_deref(), Some("3000"), "{first:?}");

    let (status, answer) = send(
        &gw.url("orders"),
        "msg_live",
        r#"{"type":"order.paid","id":"ord_9"}"#,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let id = event_id(&answer).to_string();
    let seen = orders.until(|m| m.event == "row").await;
    let row = seen.last().expect("a row");
    assert_eq!(row.id, id);
    assert!(
        row.data.contains(&format!("href=\"/console/events/{id}\""))
            && row.data.contains("order.paid"),
        "{row:?}"
    );
    // Then its delivery's result, for the row the page shows.
    let delivery = gw.deliveries(event_id(&answer)).await[0].id.to_string();
    let seen = orders.until(|m| m.event == "status").await;
    let status = seen.last().expect("a status");
    assert!(
        status.data.contains(&delivery) && status.data.contains("\"delivered\""),
        "{status:?}"
    );
    // The other source's stream hears the result (results are not filtered by source), and
    // before it, in commit order, no row: the event was filtered out.
    let seen = billing.until(|m| m.event == "status").await;
    assert!(
        !seen
            .iter()
            .any(|m| m.event == "row" || m.data.contains(&id)),
        "{seen:?}"
    );

    // A browser reconnecting (it names the last message it had) is told it may have missed
    // some: nothing is replayed from the store.
    let response = http()
        .get(format!("{}/console/events/live", gw.admin))
        .header("cookie", cookie)
        .header("last-event-id", &id)
        .send()
        .await
        .expect("sent");
    let mut again = Stream {
        response,
        buffer: String::new(),
    };
    let seen = again.until(|m| m.event == "gap").await;
    assert!(
        seen.last().is_some_and(|m| m.data.contains("Reload")),
        "{seen:?}"
    );

    // One session holds a few streams: three are open, a fourth fits, a fifth does not.
    let mut more = vec![Stream::open(&gw, cookie, "").await];
    assert_eq!(get_live(&gw, Some(cookie), "").await.status(), 429);
    // All sessions together hold at most MAX_STREAMS: other sessions fill the rest.
    let mut open = PER_SESSION;
    let mut others = Vec::new();
    while open < MAX_STREAMS {
        let other = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
        for _ in 0..PER_SESSION.min(MAX_STREAMS - open) {
            more.push(Stream::open(&gw, &other.cookie, "").await);
            open += 1;
        }
        others.push(other);
    }
    let late = User::sign_in(&gw.admin, ADMIN_TOKEN).await;
    assert_eq!(get_live(&gw, Some(&late.cookie), "").await.status(), 503);
    // A stream that ends gives its place back.
    drop(more.pop());
    eventually_async("a closed stream's place is free", async || {
        get_live(&gw, Some(&late.cookie), "").await.status() == 200
    })
    .await;

    // Stopping the gateway ends every stream cleanly, rather than cutting it at the grace
    // period.
    let stopped = tokio::spawn(gw.stop());
    loop {
        if orders.next().await.is_none() {
            break;
        }
    }
    stopped.await.expect("stopped");
}

/// The events page's live tail in a real browser: turned on after the page opened, it shows
/// an event sent after that, without moving the list being read; and an event's page copies
/// its payload.
#[tokio::test]
async fn the_live_tail_in_a_browser() {
    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => {
            println!("SKIPPED the_live_tail_in_a_browser: {why}");
            return;
        }
    };
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&config(&receiver.url)).await;
    let mut earlier = Vec::new();
    for i in 0..3 {
        let (_, a) = send(
            &gw.url("orders"),
            &format!("msg_old_{i}"),
            r#"{"type":"order.created"}"#,
        )
        .await;
        earlier.push(event_id(&a));
    }
    for id in &earlier {
        eventually_async("delivered", async || {
            gw.statuses(*id).await == vec![DeliveryStatus::Delivered]
        })
        .await;
    }

    browser.goto(&format!("{}/console/events", gw.admin)).await;
    browser.fill("#token", ADMIN_TOKEN).await;
    browser.click("form.card button[type=submit]").await;
    browser.find("table.list").await;
    // Where the list being read is, and what it holds.
    let list = async || {
        browser
            .client
            .execute(
                "const body = document.querySelector('main > .scroll table.list tbody'); \
                 return [window.scrollY, body.rows[0].getBoundingClientRect().top, body.innerText];",
                vec![],
            )
            .await
            .expect("script")
    };
    browser.click("#live-toggle").await;
    eventually_async("the live tail connects", async || {
        browser
            .text("#live-status")
            .await
            .contains("Waiting for new events")
    })
    .await;
    let before = list().await;

    let (_, answer) = send(
        &gw.url("orders"),
        "msg_new",
        r#"{"type":"order.paid","id":"ord_live"}"#,
    )
    .await;
    let id = event_id(&answer).to_string();
    eventually_async("the new event is announced", async || {
        browser.text("#live-status").await.contains("1 new event")
    })
    .await;
    assert_eq!(list().await, before, "the list being read moved or changed");
    browser.screenshot("events-live-waiting").await;

    browser.click("#live-show").await;
    let row = browser
        .text(&format!("#live-rows tr[data-event='{id}']"))
        .await;
    assert!(row.contains("order.paid"), "{row}");
    // Its delivery's result reaches the row.
    eventually_async("the row shows the delivery", async || {
        browser
            .text(&format!("#live-rows tr[data-event='{id}']"))
            .await
            .contains("r: delivered")
    })
    .await;
    // The cursor page itself is as it was: the new row is only in the live region.
    let main = browser.text("main > .scroll table.list tbody").await;
    assert!(!main.contains(&id), "{main}");
    for old in &earlier {
        assert!(main.contains(&old.to_string()), "{main}");
    }
    browser.screenshot("events-live").await;

    // An event's page: copy buttons for its id and payload.
    browser
        .goto(&format!("{}/console/events/{id}", gw.admin))
        .await;
    // What the page hands the clipboard, noted on the way (reading the clipboard back needs
    // a permission headless Chromium does not grant).
    browser
        .client
        .execute(
            "window.noted = null; \
             if (navigator.clipboard) { \
               const write = navigator.clipboard.writeText.bind(navigator.clipboard); \
               navigator.clipboard.writeText = (t) => { window.noted = t; return write(t); }; \
             }",
            vec![],
        )
        .await
        .expect("script");
    browser.click("button.copy[data-copy='payload']").await;
    eventually_async("the copy is acknowledged", async || {
        !browser.text("#console-said").await.is_empty()
    })
    .await;
    let said = browser.text("#console-said").await;
    let copied = browser
        .client
        .execute(
            "return window.noted ?? window.getSelection().toString();",
            vec![],
        )
        .await
        .expect("script");
    assert!(said == "Copied." || said.starts_with("Selected"), "{said}");
    assert!(
        copied.as_str().is_some_and(|t| t.contains("\"ord_live\"")),
        "{copied:?}"
    );
    assert!(
        browser
            .find("button.copy[data-copy='event-id']")
            .await
            .is_displayed()
            .await
            .expect("shown")
    );
    browser.screenshot("event-copy").await;

    browser.close().await;
    gw.stop().await;
}
