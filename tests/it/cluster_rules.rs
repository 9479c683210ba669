//! Filters and transforms on PostgreSQL, with the real binary on two nodes: the same routing
//! and the same reshaping as on redb, an endpoint made through one node filtering and
//! transforming on the other (its JSON kept in the shared catalog), and the why-not answer
//! from either node.

use reqwest::Method;

use crate::cluster::{TestDatabase, endpoint, node_configs};
use crate::harness::*;

#[tokio::test]
async fn filters_and_transforms_behave_the_same_on_two_postgres_nodes() {
    let Some(db) =
        TestDatabase::create("filters_and_transforms_behave_the_same_on_two_postgres_nodes").await
    else {
        return;
    };
    let (big, slim) = (Receiver::start().await, Receiver::start().await);
    let rest = endpoint(
        "big",
        &big.url,
        r#"filter = { body = { amount = { "$gte" = 1000 } } }"#,
    );
    let (_dir, configs) = node_configs(&db, &["a", "b"], &rest).await;
    let a = Binary::start(&configs[0]).await;
    let b = Binary::start(&configs[1]).await;
    // Made through a, with a filter and a transform: b must route and reshape by them.
    let create = serde_json::json!({
        "id": "slim", "url": slim.url, "secret": OUTBOUND_SECRET, "sources": ["orders"],
        "filter": { "body": { "kind": { "$startsWith": "order." } } },
        "transform": "{body: {n: .body.n}, headers: (.headers + {\"x-node-shape\": \"slim\"})}",
    });
    let (status, answer) =
        admin_at(&a.admin, Method::POST, "/endpoints", &create.to_string()).await;
    assert_eq!(status, 201, "{answer}");
    eventually_async("node b knows the endpoint", async || {
        let (status, e) = admin_at(&b.admin, Method::GET, "/endpoints/slim", "").await;
        status == 200 && e["transform"].is_string() && e["filter"].is_object()
    })
    .await;
    let mut small_id = None;
    for n in 0..12u64 {
        let node = if n % 2 == 0 { &a } else { &b };
        let kind = if n % 3 == 0 {
            "refund.created"
        } else {
            "order.created"
        };
        let body = serde_json::json!({ "n": n, "kind": kind, "amount": n * 200 }).to_string();
        let (status, answer) = send(&node.url("orders"), &format!("m-{n}"), &body).await;
        assert_eq!(status, 202, "{answer}");
        if n == 1 {
            small_id = Some(event_id(&answer));
        }
    }
    // amount >= 1000: n = 5..=11; order.* kinds: n not a multiple of 3.
    let got = big.wait_for(7).await;
    let mut ns: Vec<u64> = got
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["n"]
                .as_u64()
                .expect("n")
        })
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, [5, 6, 7, 8, 9, 10, 11]);
    let got = slim.wait_for(8).await;
    let mut ns: Vec<u64> = got
        .iter()
        .map(|r| {
            assert_eq!(r.header("x-node-shape"), "slim");
            verify_outbound(r);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
            body["n"].as_u64().expect("n")
        })
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, [1, 2, 4, 5, 7, 8, 10, 11]);
    // Either node says why event 1 did not go to `big`.
    let small = small_id.expect("event 1");
    for node in [&a, &b] {
        let (status, page) =
            admin_at(&node.admin, Method::GET, &format!("/events/{small}"), "").await;
        assert_eq!(status, 200, "{page}");
        let miss = page["routing"]
            .as_array()
            .expect("routing")
            .iter()
            .find(|r| r["endpoint"] == "big")
            .cloned()
            .expect("big");
        assert_eq!(miss["clause"], "body.amount.$gte", "{miss}");
    }
    a.kill_9().await;
    b.kill_9().await;
    db.drop().await;
}
