//! A pull endpoint's message stream (`messages:stream`, server-sent events): under a burst a
//! consumer never holds more than `max_unacked`, and a reconnect with `Last-Event-ID` loses
//! nothing.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const MAX_UNACKED: usize = 5;

fn config() -> String {
    format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{}\n[[endpoints]]\nid = \"work\"\nkind = \"pull\"\n",
        orders_source()
    )
}

/// One open stream, read event by event.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

/// One `message` event: its id and its message.
struct Got {
    id: String,
    message: Value,
}

impl Sse {
    async fn open(admin: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = client()
            .get(format!(
                "{admin}/api/v1/endpoints/work/messages:stream?max_unacked={MAX_UNACKED}&visibility=60s"
            ))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.expect("stream opens");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().expect("ascii"),
            "text/event-stream"
        );
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next `message` event (comments skipped), waiting up to `within`.
    async fn next_within(&mut self, within: Duration) -> Option<Got> {
        tokio::time::timeout(within, self.read()).await.ok()
    }

    /// The next `message` event; a stream silent for 30 s fails the test.
    async fn next(&mut self) -> Got {
        self.next_within(Duration::from_secs(30))
            .await
            .expect("a message within 30 s")
    }

    async fn read(&mut self) -> Got {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut data, mut kind) = (None, String::new(), None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = Some(v.trim().to_string());
                    }
                }
                if kind.as_deref() == Some("message") {
                    return Got {
                        id: id.expect("a message has an id"),
                        message: serde_json::from_str(&data).expect("a message is JSON"),
                    };
                }
            }
            let chunk = self
                .resp
                .chunk()
                .await
                .expect("stream readable")
                .expect("the stream stays open");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }
}

async fn ack(admin: &str, receipts: &[String]) {
    let body = json!({ "receipts": receipts }).to_string();
    let (status, answer) = admin_at(
        admin,
        reqwest::Method::POST,
        "/endpoints/work/messages:ack",
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

fn receipt(g: &Got) -> String {
    g.message["receipt"].as_str().expect("receipt").to_string()
}

fn event_id(g: &Got) -> String {
    g.message["event_id"]
        .as_str()
        .expect("event id")
        .to_string()
}

#[tokio::test]
async fn a_stream_never_holds_more_than_max_unacked_and_a_reconnect_loses_nothing() {
    let (gw, _dir) = Gateway::start(&config()).await;
    let mut sent = BTreeSet::new();
    for i in 0..100 {
        let (status, answer) = send(&gw.url("orders"), &format!("m{i}"), "{}").await;
        assert_eq!(status, 202, "{answer}");
        sent.insert(answer["event_id"].as_str().expect("id").to_string());
    }
    let mut acked: HashSet<String> = HashSet::new();
    let mut delivered: BTreeSet<String> = BTreeSet::new();
    let mut stream = Sse::open(&gw.admin, None).await;
    let mut reconnected = false;
    while delivered.len() < sent.len() {
        // Take a full window: the stream sends no more until some are acked.
        let mut window = Vec::new();
        while window.len() < MAX_UNACKED && delivered.len() + window.len() < sent.len() {
            window.push(stream.next().await);
        }
        let extra = stream.next_within(Duration::from_millis(300)).await;
        assert!(
            extra.is_none(),
            "a {}th unacked message was sent",
            MAX_UNACKED + 1
        );
        if !reconnected && delivered.len() >= 50 {
            // The connection drops: say only the first two arrived, so the rest of the window
            // must come again on the new connection, with the same receipts.
            reconnected = true;
            drop(stream);
            stream = Sse::open(&gw.admin, Some(&window[1].id)).await;
            let mut again = Vec::new();
            for _ in 2..window.len() {
                again.push(stream.next().await);
            }
            let resent: Vec<String> = again.iter().map(receipt).collect();
            let expected: Vec<String> = window[2..].iter().map(receipt).collect();
            assert_eq!(
                resent, expected,
                "resumed after the last id the consumer saw"
            );
            window.truncate(2);
            window.extend(again);
        }
        let receipts: Vec<String> = window
            .iter()
            .map(receipt)
            .filter(|r| acked.insert(r.clone()))
            .collect();
        ack(&gw.admin, &receipts).await;
        delivered.extend(window.iter().map(event_id));
    }
    assert!(reconnected);
    assert_eq!(delivered, sent, "every event, none lost");
    gw.stop().await;
}
