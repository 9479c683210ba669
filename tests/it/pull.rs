//! Pull endpoints end to end (issue 19): consumers take signed webhooks through
//! `messages:receive`, ack and nack them; an unacked lease comes back as a new attempt; a
//! message nacked past `max_attempts` is a dead letter, and a replay makes it receivable
//! again; stale receipts answer 409; leases survive a kill -9, on redb and on PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use hookgate::model::event::DeliveryStatus;

use crate::cluster::{TestDatabase, node_configs};
use crate::harness::*;

/// A pull endpoint `work` on the `orders` source, signing with [`OUTBOUND_SECRET`].
fn pull_endpoint(extra: &str) -> String {
    format!(
        "[[endpoints]]\nid = \"work\"\nkind = \"pull\"\nsources = [\"orders\"]\n\
         secret = \"{OUTBOUND_SECRET}\"\n{extra}\n"
    )
}

fn config(extra: &str) -> String {
    format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{}\n{}",
        orders_source(),
        pull_endpoint(extra)
    )
}

async fn call(admin: &str, verb: &str, body: Value) -> (u16, Value) {
    admin_at(
        admin,
        Method::POST,
        &format!("/endpoints/work/messages:{verb}"),
        &body.to_string(),
    )
    .await
}

/// Receives until `n` messages came (each receive waiting up to 10 s), or panics.
async fn receive_n(admin: &str, n: usize, visibility: &str) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..20 {
        let (status, answer) = call(
            admin,
            "receive",
            json!({"max": n - got.len(), "wait": "10s", "visibility": visibility}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        got.extend(answer["messages"].as_array().cloned().unwrap_or_default());
        if got.len() >= n {
            return got;
        }
    }
    panic!("received {} of {n} messages", got.len());
}

fn receipts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["receipt"].as_str().expect("receipt").to_string())
        .collect()
}

fn event_ids(messages: &[Value]) -> BTreeSet<String> {
    messages
        .iter()
        .map(|m| m["event_id"].as_str().expect("event_id").to_string())
        .collect()
}

/// Checks a message's signature with the official `standardwebhooks` library, as a worker
/// (or `hookgate listen`'s local app) would.
fn verify_message(m: &Value) {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let v = m["headers"][name].as_str().expect("signed header");
        headers.insert(name, v.parse().expect("header value"));
    }
    let body = m["payload"].as_str().expect("payload");
    standardwebhooks::Webhook::new(OUTBOUND_SECRET)
        .expect("secret")
        .verify(body.as_bytes(), &headers)
        .expect("signed with the endpoint's secret, over the payload given");
}

async fn send_n(url: &str, n: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let (status, answer) = send(url, &format!("msg_{i}"), &format!(r#"{{"n":{i}}}"#)).await;
        assert_eq!(status, 202, "{answer}");
        ids.insert(answer["event_id"].as_str().expect("id").to_string());
    }
    ids
}

#[tokio::test]
async fn a_consumer_that_acks_7_of_10_and_crashes_gets_the_3_back_as_attempt_2() {
    let (gw, _dir) = Gateway::start(&config("retry = { base = \"50ms\" }")).await;
    let sent = send_n(&gw.url("orders"), 10).await;
    let first = receive_n(&gw.admin, 10, "1s").await;
    assert_eq!(event_ids(&first), sent);
    for m in &first {
        assert_eq!(m["attempt"], 1, "{m}");
        assert_eq!(m["source"], "orders");
        verify_message(m);
        let n: Value = serde_json::from_str(m["payload"].as_str().expect("text")).expect("json");
        assert!(n["n"].is_u64(), "{m}");
    }
    let (acked, kept) = first.split_at(7);
    let (status, answer) = call(&gw.admin, "ack", json!({"receipts": receipts(acked)})).await;
    assert_eq!(
        (status, answer["applied"].as_u64()),
        (200, Some(7)),
        "{answer}"
    );
    // The consumer dies holding 3: nothing else is due until their leases run out.
    let (status, answer) = call(&gw.admin, "receive", json!({"max": 10})).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["messages"],
        json!([]),
        "leased messages are not given twice"
    );
    let again = receive_n(&gw.admin, 3, "30s").await;
    assert_eq!(event_ids(&again), event_ids(kept));
    for m in &again {
        assert_eq!(m["attempt"], 2, "a lease run out is a failed attempt: {m}");
        verify_message(m);
    }
    // The old receipts are spent; the new ones ack.
    let (status, answer) = call(&gw.admin, "ack", json!({"receipts": receipts(kept)})).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["stale"].as_array().map(Vec::len), Some(3));
    let (status, _) = call(&gw.admin, "ack", json!({"receipts": receipts(&again)})).await;
    assert_eq!(status, 200);
    for id in sent {
        let (_, event) = admin_call(&gw, Method::GET, &format!("/events/{id}"), "").await;
        assert_eq!(event["deliveries"][0]["status"], "delivered", "{event}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn nacked_past_max_attempts_is_a_dead_letter_and_a_replay_makes_it_receivable() {
    let (gw, _dir) = Gateway::start(&config("retry = { max_attempts = 2 }")).await;
    let sent = send_n(&gw.url("orders"), 1).await;
    let first = receive_n(&gw.admin, 1, "30s").await;
    let nack = json!({"receipts": receipts(&first), "delay": "0s", "reason": "model not loaded"});
    let (status, answer) = call(&gw.admin, "nack", nack).await;
    assert_eq!(status, 200, "{answer}");
    // Its receipt is spent: an ack under it now would deliver what the consumer failed.
    let (status, answer) = call(&gw.admin, "ack", json!({"receipts": receipts(&first)})).await;
    assert_eq!(status, 409, "{answer}");
    let second = receive_n(&gw.admin, 1, "30s").await;
    assert_eq!(second[0]["attempt"], 2);
    let (status, _) = call(&gw.admin, "nack", json!({"receipts": receipts(&second)})).await;
    assert_eq!(status, 200);
    let (_, dead) = admin_call(&gw, Method::GET, "/dead-letters", "").await;
    let rows = dead["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{dead}");
    assert!(
        rows[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("nacked by the consumer")),
        "{dead}"
    );
    let (status, answer) = call(&gw.admin, "receive", json!({})).await;
    assert_eq!(
        (status, &answer["messages"]),
        (200, &json!([])),
        "dead: not given"
    );
    let (status, answer) = admin_call(&gw, Method::POST, "/dead-letters/replay", "{}").await;
    assert_eq!(status, 200, "{answer}");
    let replayed = receive_n(&gw.admin, 1, "30s").await;
    assert_eq!(event_ids(&replayed), sent);
    assert_eq!(replayed[0]["attempt"], 3, "the attempt log goes on");
    let (status, _) = call(&gw.admin, "ack", json!({"receipts": receipts(&replayed)})).await;
    assert_eq!(status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn stale_and_malformed_receipts_and_bodies_are_refused_and_change_nothing() {
    let receiver = Receiver::start().await;
    let push = format!("[[endpoints]]\nid = \"push\"\nurl = \"{}\"\n", receiver.url);
    let (gw, _dir) = Gateway::start(&format!("{}\n{push}", config(""))).await;
    send_n(&gw.url("orders"), 2).await;
    let got = receive_n(&gw.admin, 2, "30s").await;
    let one = vec![receipts(&got)[0].clone()];
    let (status, _) = call(&gw.admin, "ack", json!({"receipts": one})).await;
    assert_eq!(status, 200);
    // The same receipt again, beside a current one: 409 names the stale one; the other applies.
    let both = receipts(&got);
    let (status, answer) = call(&gw.admin, "ack", json!({"receipts": both})).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["stale"], json!([both[0]]));
    assert_eq!(answer["applied"], 1);
    let cases = [
        ("ack", json!({"receipts": ["nope"]}), "receipts[0]"),
        ("ack", json!({"receipts": []}), "receipts"),
        ("ack", json!({"receipt": both[0]}), "receipt"),
        (
            "nack",
            json!({"receipts": [both[0]], "delay": "soon"}),
            "delay",
        ),
        ("receive", json!({"max": 0}), "max"),
        ("receive", json!({"max": 101}), "max"),
        ("receive", json!({"wait": "2m"}), "wait"),
        ("receive", json!({"visibility": "0s"}), "visibility"),
        (
            "extend",
            json!({"receipts": [both[0]], "visibility": "13h"}),
            "visibility",
        ),
    ];
    for (verb, body, field) in cases {
        let (status, answer) = call(&gw.admin, verb, body.clone()).await;
        assert_eq!(status, 400, "{verb} {body}: {answer}");
        assert!(
            error_message(&answer).starts_with(field),
            "{verb} {body}: {answer}"
        );
    }
    let (status, answer) =
        admin_call(&gw, Method::POST, "/endpoints/push/messages:receive", "{}").await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "not_a_pull_endpoint");
    let (status, _) = admin_call(&gw, Method::POST, "/endpoints/nope/messages:receive", "{}").await;
    assert_eq!(status, 404);
    // Nothing changed: both delivered, whatever was refused.
    let (_, events) = admin_call(&gw, Method::GET, "/events?endpoint=work", "").await;
    for e in events["data"].as_array().expect("events") {
        let d = e["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .find(|d| d["endpoint_id"] == "work")
            .cloned()
            .expect("work's delivery");
        assert_eq!(d["status"], "delivered", "{e}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_waiting_receive_answers_when_an_event_arrives_and_a_pull_endpoint_is_checked() {
    let (gw, _dir) = Gateway::start(&config("")).await;
    let admin = gw.admin.clone();
    let waiting =
        tokio::spawn(async move { call(&admin, "receive", json!({"wait": "30s"})).await });
    // Not answered before there is a message (the receive waits, it does not poll the API).
    consistently("the receive waits", Duration::from_millis(300), || {
        !waiting.is_finished()
    })
    .await;
    let sent = send_n(&gw.url("orders"), 1).await;
    let (status, answer) = waiting.await.expect("joined");
    assert_eq!(status, 200, "{answer}");
    let messages = answer["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(event_ids(&messages), sent);
    // An endpoint made through the API: a pull endpoint names no URL, and has no breaker.
    for (body, field) in [
        (
            json!({"id": "p2", "kind": "pull", "url": "http://127.0.0.1:1/"}),
            "url",
        ),
        (json!({"id": "p2"}), "url"),
        (
            json!({"id": "p2", "kind": "pull", "breaker": "off"}),
            "breaker",
        ),
        (json!({"id": "p2", "kind": "puller"}), "kind"),
        (
            json!({"id": "p2", "kind": "pull", "rate_limit": {"per_second": 5}}),
            "rate_limit",
        ),
    ] {
        let (status, answer) = admin_call(&gw, Method::POST, "/endpoints", &body.to_string()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            error_message(&answer).starts_with(field),
            "{body}: {answer}"
        );
    }
    let (status, answer) = admin_call(
        &gw,
        Method::POST,
        "/endpoints",
        &json!({"id": "p2", "kind": "pull"}).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["kind"], "pull");
    assert!(answer.get("url").is_none(), "{answer}");
    gw.stop().await;
}

/// Receives and acks 2 of 5 messages, kills the gateway (-9) holding the other 3, restarts
/// it: the held receipts still ack, and what was not acked comes back once its lease runs
/// out. Nothing is lost.
async fn kill_9_while_consumers_hold_leases_loses_nothing(configs: &[std::path::PathBuf]) {
    let node = Binary::start(&configs[0]).await;
    let sent = send_n(&node.url("orders"), 5).await;
    let held = receive_n(&node.admin, 5, "3s").await;
    assert_eq!(event_ids(&held), sent);
    node.kill_9().await;
    // Another node (or the same one, restarted) takes over.
    let node = Binary::start(configs.last().expect("a config")).await;
    let (status, answer) = call(
        &node.admin,
        "ack",
        json!({"receipts": receipts(&held[..2])}),
    )
    .await;
    assert_eq!(
        status, 200,
        "leases and receipts survive the kill: {answer}"
    );
    let back = receive_n(&node.admin, 3, "30s").await;
    assert_eq!(event_ids(&back), event_ids(&held[2..]));
    assert!(back.iter().all(|m| m["attempt"] == 2), "{back:?}");
    let (status, _) = call(&node.admin, "ack", json!({"receipts": receipts(&back)})).await;
    assert_eq!(status, 200);
    node.kill_9().await;
}

#[tokio::test]
async fn kill_9_while_consumers_hold_leases_loses_nothing_on_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rest = format!(
        "{}\n{}",
        orders_source(),
        pull_endpoint("retry = { base = \"50ms\" }")
    );
    let config = binary_config(dir.path(), &format!("token = \"{ADMIN_TOKEN}\""), &rest);
    kill_9_while_consumers_hold_leases_loses_nothing(&[config]).await;
}

#[tokio::test]
async fn kill_9_while_consumers_hold_leases_loses_nothing_across_postgres_nodes() {
    let Some(db) = TestDatabase::create("kill_9_while_consumers_hold_leases_loses_nothing").await
    else {
        return;
    };
    let rest = pull_endpoint("retry = { base = \"50ms\" }");
    let (_dir, configs) = node_configs(&db, &["a", "b"], &rest).await;
    kill_9_while_consumers_hold_leases_loses_nothing(&configs).await;
    db.drop().await;
}

#[tokio::test]
async fn a_consumer_token_reaches_its_endpoints_routes_and_nothing_else() {
    let text = format!(
        "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[[admin.tokens]]\ntoken = \"consumer-token\"\n\
         role = \"operator\"\nendpoints = [\"work\"]\n{}\n{}\
         [[endpoints]]\nid = \"other\"\nkind = \"pull\"\n",
        orders_source(),
        pull_endpoint("")
    );
    let (gw, _dir) = Gateway::start(&text).await;
    let sent = send_n(&gw.url("orders"), 1).await;
    let as_consumer = |method: Method, path: &'static str, body: &'static str| {
        let admin = gw.admin.clone();
        async move { admin_as(&admin, "consumer-token", method, path, body).await }
    };
    let (status, answer) =
        as_consumer(Method::POST, "/endpoints/work/messages:receive", "{}").await;
    assert_eq!(status, 200, "{answer}");
    let messages = answer["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(event_ids(&messages), sent);
    let (status, _) = as_consumer(Method::GET, "/endpoints/work", "").await;
    assert_eq!(status, 200, "its endpoint, as an operator sees it");
    for (method, path) in [
        (Method::POST, "/endpoints/other/messages:receive"),
        (Method::GET, "/endpoints/other"),
        (Method::GET, "/events"),
        (Method::GET, "/endpoints"),
        (Method::POST, "/dead-letters/replay"),
        // Its own endpoint, but past its role: an operator sees no secret.
        (Method::GET, "/endpoints/work/secret"),
    ] {
        let (status, answer) = as_consumer(method.clone(), path, "{}").await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_example_worker_acks_what_it_processed_and_nacks_what_failed() {
    let (gw, _dir) = Gateway::start(&config("retry = { max_attempts = 2 }")).await;
    let (_, good) = send(&gw.url("orders"), "img-1", r#"{"image":"cat.jpg"}"#).await;
    let (_, bad) = send(
        &gw.url("orders"),
        "img-2",
        r#"{"image":"x.jpg","corrupt":true}"#,
    )
    .await;
    let worker = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/worker.py");
    let out = tokio::process::Command::new("python3")
        .arg(worker)
        .arg("work")
        .env("HOOKGATE_URL", &gw.admin)
        .env("HOOKGATE_TOKEN", ADMIN_TOKEN)
        .env("WORKER_STEP_SECONDS", "0")
        .env("WORKER_IDLE_EXIT", "6")
        .env("WORKER_WAIT", "1s")
        .output()
        .await
        .expect("python3 runs the worker");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (good, bad) = (event_id(&good), event_id(&bad));
    assert!(
        stdout.contains(&format!("{good} attempt 1: cat")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{bad} attempt 2: failed")),
        "{stdout}"
    );
    assert_eq!(gw.statuses(good).await, [DeliveryStatus::Delivered]);
    assert_eq!(
        gw.statuses(bad).await,
        [DeliveryStatus::Dead],
        "nacked past max_attempts"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_ordered_pull_endpoint_gives_one_message_per_key_at_a_time_and_none_while_paused() {
    let (gw, _dir) = Gateway::start(&config("ordering = { key = { json = \"/customer\" } }")).await;
    let mut sent = Vec::new();
    for (i, customer) in ["a", "a", "b", "a"].iter().enumerate() {
        let body = format!(r#"{{"customer":"{customer}","n":{i}}}"#);
        let (status, answer) = send(&gw.url("orders"), &format!("o{i}"), &body).await;
        assert_eq!(status, 202, "{answer}");
        sent.push(answer["event_id"].as_str().expect("id").to_string());
    }
    let heads = receive_n(&gw.admin, 2, "30s").await;
    assert_eq!(
        event_ids(&heads),
        BTreeSet::from([sent[0].clone(), sent[2].clone()]),
        "the head of each key, and nothing behind a head in flight"
    );
    let (_, more) = call(&gw.admin, "receive", json!({"max": 10})).await;
    assert_eq!(more["messages"], json!([]));
    // Paused: nothing is given, even what is due.
    let a_head = heads
        .iter()
        .find(|m| m["event_id"] == sent[0].as_str())
        .cloned();
    let (status, _) = call(
        &gw.admin,
        "ack",
        json!({"receipts": receipts(&[a_head.expect("a's head")])}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = admin_call(&gw, Method::POST, "/endpoints/work/pause", "").await;
    assert_eq!(status, 200);
    let (_, paused) = call(&gw.admin, "receive", json!({"max": 10})).await;
    assert_eq!(paused["messages"], json!([]), "paused");
    let (status, _) = admin_call(&gw, Method::POST, "/endpoints/work/resume", "").await;
    assert_eq!(status, 200);
    let next = receive_n(&gw.admin, 1, "30s").await;
    assert_eq!(
        event_ids(&next),
        BTreeSet::from([sent[1].clone()]),
        "a's next, in order"
    );
    gw.stop().await;
}

#[tokio::test]
async fn consumers_on_two_postgres_nodes_share_an_endpoint_and_never_get_one_message_twice() {
    let Some(db) = TestDatabase::create("consumers_on_two_nodes_share_an_endpoint").await else {
        return;
    };
    let (_dir, configs) = node_configs(&db, &["a", "b"], &pull_endpoint("")).await;
    let a = Binary::start(&configs[0]).await;
    let b = Binary::start(&configs[1]).await;
    let sent = send_n(&a.url("orders"), 40).await;
    // One consumer holding messages does not hold up another: each gets its own.
    let held_a = receive_n(&a.admin, 5, "30s").await;
    let held_b = receive_n(&b.admin, 5, "30s").await;
    assert!(event_ids(&held_a).is_disjoint(&event_ids(&held_b)));
    for (node, held) in [(&a, &held_a), (&b, &held_b)] {
        let (status, _) = call(&node.admin, "ack", json!({"receipts": receipts(held)})).await;
        assert_eq!(status, 200);
    }
    // Then both take at once, in batches of 5, until nothing is left.
    let consume = |admin: String| async move {
        let mut got = Vec::new();
        loop {
            let (status, answer) = call(&admin, "receive", json!({"max": 5, "wait": "1s"})).await;
            assert_eq!(status, 200, "{answer}");
            let batch = answer["messages"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                return got;
            }
            let (status, _) = call(&admin, "ack", json!({"receipts": receipts(&batch)})).await;
            assert_eq!(status, 200, "acked under its own lease");
            got.extend(batch);
        }
    };
    let (from_a, from_b) = tokio::join!(consume(a.admin.clone()), consume(b.admin.clone()));
    let ids_a: BTreeSet<String> = event_ids(&from_a)
        .union(&event_ids(&held_a))
        .cloned()
        .collect();
    let ids_b: BTreeSet<String> = event_ids(&from_b)
        .union(&event_ids(&held_b))
        .cloned()
        .collect();
    assert_eq!(ids_a.len() + ids_b.len(), 40, "no message given twice");
    assert!(ids_a.is_disjoint(&ids_b));
    assert_eq!(&ids_a | &ids_b, sent);
    a.kill_9().await;
    b.kill_9().await;
    db.drop().await;
}
