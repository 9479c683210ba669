//! Several real `hookgate` processes on one PostgreSQL database: what must hold across nodes.
//! Each test makes a database of its own on the server `HOOKGATE_TEST_DATABASE_URL` names,
//! applies the schema with `hookgate migrate`, and starts the real binary; without that
//! variable each test says it is skipped, by name, and passes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;

use crate::harness::*;

/// A database of this test's own on the test server.
pub(crate) struct TestDatabase {
    base: String,
    name: String,
}

impl TestDatabase {
    /// A fresh database, or `None` (and a line saying so) without a server to make it on.
    pub(crate) async fn create(test: &str) -> Option<TestDatabase> {
        let Ok(base) = std::env::var("HOOKGATE_TEST_DATABASE_URL") else {
            eprintln!("SKIPPED cluster::{test}: HOOKGATE_TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!(
            "hookgate_cluster_{}_{}",
            std::process::id(),
            rand::random::<u64>()
        );
        let admin = connect(&base).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        Some(TestDatabase { base, name })
    }

    fn url(&self) -> String {
        with_database(&self.base, &self.name)
    }

    pub(crate) async fn drop(self) {
        let admin = connect(&self.base).await;
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the test database server is reachable");
    tokio::spawn(connection);
    client
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (head, tail) = url.split_at(url.rfind('/').expect("a URL with a database"));
    let query = tail.find('?').map_or("", |q| &tail[q..]);
    format!("{head}/{db}{query}")
}

/// A node's config: its own data directory and ports, the shared database, the `orders`
/// source and whatever `rest` adds (endpoints).
fn node_config(dir: &Path, db: &TestDatabase, rest: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("node dir");
    binary_config(
        dir,
        &format!("token = \"{ADMIN_TOKEN}\""),
        &format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{}\"\npool_size = 4\n{}\n{rest}",
            db.url(),
            orders_source()
        ),
    )
}

/// The configs of nodes named `names` (each its own directory under the returned one) on
/// `db`, with the schema applied.
pub(crate) async fn node_configs(
    db: &TestDatabase,
    names: &[&str],
    rest: &str,
) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let configs: Vec<PathBuf> = names
        .iter()
        .map(|n| node_config(&dir.path().join(n), db, rest))
        .collect();
    migrate(&configs[0]).await;
    (dir, configs)
}

pub(crate) fn endpoint(id: &str, url: &str, extra: &str) -> String {
    format!("[[endpoints]]\nid = \"{id}\"\nurl = \"{url}\"\n{extra}\n")
}

/// Runs `hookgate migrate` on `config`.
async fn migrate(config: &Path) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["migrate", "--config"])
        .arg(config)
        .output()
        .await
        .expect("migrate runs");
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn signal(node: &Binary, sig: &str) {
    let pid = node.child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test]
async fn nodes_share_one_outbox_and_deliver_each_event_once() {
    let Some(db) = TestDatabase::create("nodes_share_one_outbox_and_deliver_each_event_once").await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let rest = endpoint("e", &receiver.url, "");
    let (_dir, configs) = node_configs(&db, &["a", "b"], &rest).await;
    let a = Binary::start(&configs[0]).await;
    let b = Binary::start(&configs[1]).await;
    let mut accepted = HashSet::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, answer) = send(&node.url("orders"), &format!("msg_{i}"), "{}").await;
        assert_eq!(status, 202, "{answer}");
        accepted.insert(answer["event_id"].as_str().expect("id").to_string());
    }
    let got = receiver.wait_for(40).await;
    let delivered: HashSet<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    assert_eq!(
        delivered, accepted,
        "every event, whichever node took it in"
    );
    consistently(
        "no event delivered twice",
        Duration::from_millis(500),
        || receiver.count() == 40,
    )
    .await;
    // Either node answers for every event.
    let (status, page) = admin_at(&b.admin, Method::GET, "/events?limit=100", "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(40));
    a.kill_9().await;
    b.kill_9().await;
    db.drop().await;
}

#[tokio::test]
async fn a_change_through_one_node_takes_effect_on_the_other() {
    let Some(db) =
        TestDatabase::create("a_change_through_one_node_takes_effect_on_the_other").await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let (_dir, configs) = node_configs(&db, &["a", "b"], "").await;
    let a = Binary::start(&configs[0]).await;
    let b = Binary::start(&configs[1]).await;
    let body = format!(
        r#"{{"id": "late", "url": "{}", "sources": ["orders"]}}"#,
        receiver.url
    );
    let (status, answer) = admin_at(&a.admin, Method::POST, "/endpoints", &body).await;
    assert_eq!(status, 201, "{answer}");
    // Node b learns of it: its ingest routes to it.
    eventually_async("node b knows the endpoint", async || {
        admin_at(&b.admin, Method::GET, "/endpoints/late", "")
            .await
            .0
            == 200
    })
    .await;
    let (status, _) = send(&b.url("orders"), "msg_after_create", "{}").await;
    assert_eq!(status, 202);
    receiver.wait_for(1).await;
    // Paused through a: b sees it paused.
    let (status, answer) = admin_at(&a.admin, Method::POST, "/endpoints/late/pause", "").await;
    assert!((200..300).contains(&status), "{answer}");
    eventually_async("node b holds the endpoint paused", async || {
        let (_, e) = admin_at(&b.admin, Method::GET, "/endpoints/late", "").await;
        e["paused"] == true
    })
    .await;
    // Deleted through a: gone from b.
    let (status, answer) = admin_at(&a.admin, Method::DELETE, "/endpoints/late", "").await;
    assert!((200..300).contains(&status), "{answer}");
    eventually_async("node b dropped the endpoint", async || {
        admin_at(&b.admin, Method::GET, "/endpoints/late", "")
            .await
            .0
            == 404
    })
    .await;
    a.kill_9().await;
    b.kill_9().await;
    db.drop().await;
}

/// Kill -9 one of three nodes during a burst from 8 senders, five times
/// (`HOOKGATE_KILL_ROUNDS` sets how many, for a longer run by hand): every acknowledged event
/// is delivered (the survivors take the dead node's leases back once its heartbeat lapses),
/// and each kill sends again at most what the killed node could have had in flight: the
/// endpoint's `max_in_flight`, 16, which holds across the nodes together.
#[tokio::test]
async fn a_node_killed_mid_burst_loses_no_acknowledged_event() {
    let Some(db) =
        TestDatabase::create("a_node_killed_mid_burst_loses_no_acknowledged_event").await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    // Slow enough that the killed node has attempts in flight.
    receiver.delay(Duration::from_millis(50));
    let rest = endpoint("e", &receiver.url, "max_in_flight = 16");
    let (_dir, configs) = node_configs(&db, &["a", "b", "c"], &rest).await;
    let mut nodes = Vec::new();
    for c in &configs {
        nodes.push(Some(Binary::start(c).await));
    }
    let mut accepted: HashSet<String> = HashSet::new();
    let rounds: usize = std::env::var("HOOKGATE_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let duplicates = |receiver: &Receiver| {
        let got = receiver.got();
        let unique: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        got.len() - unique.len()
    };
    for round in 0..rounds {
        let victim = round % 3;
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| n.as_ref().expect("running").url("orders"))
            .collect();
        let mut senders = tokio::task::JoinSet::new();
        for s in 0..8 {
            let urls = urls.clone();
            senders.spawn(async move {
                let mut acked = Vec::new();
                let http = client();
                for i in 0..25 {
                    let url = &urls[(s + i) % urls.len()];
                    let id = format!("msg_{round}_{s}_{i}");
                    let headers = signed(INBOUND_SECRET, &id, now_secs(), b"{}");
                    // The killed node refuses connections or drops them: not acknowledged.
                    let Ok(resp) = post_raw(&http, url, &headers, "{}").await else {
                        continue;
                    };
                    if resp.status().as_u16() != 202 {
                        continue;
                    }
                    let Ok(text) = resp.text().await else {
                        continue;
                    };
                    let Ok(answer) = serde_json::from_str::<serde_json::Value>(&text) else {
                        continue;
                    };
                    acked.push(answer["event_id"].as_str().expect("id").to_string());
                }
                acked
            });
        }
        // Mid-burst: once some deliveries are under way.
        let before = receiver.count();
        let duplicates_before = duplicates(&receiver);
        eventually("the burst is being delivered", || {
            receiver.count() >= before + 20
        })
        .await;
        nodes[victim].take().expect("running").kill_9().await;
        while let Some(acked) = senders.join_next().await {
            accepted.extend(acked.expect("sender"));
        }
        // Every acknowledged event arrives, whatever the killed node held.
        eventually("every acknowledged event delivered", || {
            let got: HashSet<String> = receiver
                .got()
                .iter()
                .map(|r| r.header("webhook-id").to_string())
                .collect();
            accepted.is_subset(&got)
        })
        .await;
        // Arrival is not the end: what the killed node had in flight arrived once already
        // and is sent again when its leases come back. Counted once nothing is left to send.
        let survivor = nodes[(victim + 1) % 3].as_ref().expect("running");
        eventually_async("nothing left to send", async || {
            let mut open = 0;
            for status in ["pending", "delivering", "retrying"] {
                let (_, page) = admin_at(
                    &survivor.admin,
                    Method::GET,
                    &format!("/events?status={status}&limit=1"),
                    "",
                )
                .await;
                open += page["data"].as_array().map_or(1, Vec::len);
            }
            open == 0
        })
        .await;
        let sent_again = duplicates(&receiver) - duplicates_before;
        eprintln!("kill round {round}: node {victim} killed, {sent_again} sent again");
        assert!(
            sent_again <= 16,
            "round {round}: {sent_again} deliveries sent twice; at most 16 were in flight"
        );
        nodes[victim] = Some(Binary::start(&configs[victim]).await);
    }
    assert!(
        accepted.len() >= rounds * 100,
        "most sends acknowledged: {}",
        accepted.len()
    );
    for n in nodes.into_iter().flatten() {
        n.kill_9().await;
    }
    db.drop().await;
}

/// A node stopped past its lease (SIGSTOP) whose delivery another node took over cannot
/// overwrite that node's result when it wakes (SIGCONT): its late finish changes nothing.
#[tokio::test]
async fn a_stalled_nodes_late_finish_changes_nothing() {
    let Some(db) = TestDatabase::create("a_stalled_nodes_late_finish_changes_nothing").await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.hang();
    let dir = tempfile::tempdir().expect("tempdir");
    let rest = endpoint("e", &receiver.url, "timeout = \"10s\"");
    let stalled_config = node_config(&dir.path().join("s"), &db, &rest);
    let taker_config = node_config(&dir.path().join("t"), &db, &rest);
    migrate(&stalled_config).await;
    let stalled = Binary::start(&stalled_config).await;
    let (status, answer) = send(&stalled.url("orders"), "msg_stall", "{}").await;
    assert_eq!(status, 202);
    let event = answer["event_id"].as_str().expect("id").to_string();
    receiver.wait_for(1).await;
    signal(&stalled, "-STOP");
    // The next request is answered, but only after a while: the taker's attempt is still open
    // when the stalled node wakes.
    receiver.unhang();
    receiver.delay(Duration::from_secs(6));
    let taker = Binary::start(&taker_config).await;
    receiver.wait_for(2).await;
    let (_, ev) = admin_at(&taker.admin, Method::GET, &format!("/events/{event}"), "").await;
    let delivery = ev["deliveries"][0]["delivery_id"]
        .as_str()
        .expect("a delivery")
        .to_string();
    signal(&stalled, "-CONT");
    // The stalled node's attempt timed out while it slept; it records that now, under a lease
    // that is no longer its own.
    eventually_async("the stalled node finished its attempt", async || {
        metrics_text(&stalled.admin)
            .await
            .contains("hookgate_delivery_attempts_total{endpoint=\"e\",outcome=\"timeout\"} 1")
    })
    .await;
    // Its finish (queued right after that count) changes nothing: the delivery stays the
    // taker's, with no attempt recorded, while the taker's slow attempt is still open.
    let show = format!("/deliveries/{delivery}");
    consistently_async(
        "the late finish recorded nothing",
        Duration::from_secs(1),
        async || {
            let (_, d) = admin_at(&taker.admin, Method::GET, &show, "").await;
            d["status"] == "delivering" && d["attempts"] == 0
        },
    )
    .await;
    // The taker's result stands.
    eventually_async("the taker's attempt delivered it", async || {
        let (_, d) = admin_at(
            &taker.admin,
            Method::GET,
            &format!("/deliveries/{delivery}"),
            "",
        )
        .await;
        d["status"] == "delivered"
    })
    .await;
    let (_, d) = admin_at(
        &taker.admin,
        Method::GET,
        &format!("/deliveries/{delivery}"),
        "",
    )
    .await;
    assert_eq!(
        (d["attempts"].as_u64(), d["last_status_code"].as_u64()),
        (Some(1), Some(200))
    );
    stalled.kill_9().await;
    taker.kill_9().await;
    db.drop().await;
}

/// An endpoint's `max_in_flight` and `rate_limit` hold across every node together, measured
/// at the receiver: never more requests open at once than `max_in_flight`, and never more
/// within a second than the rate plus the burst.
#[tokio::test]
async fn an_endpoints_limits_hold_across_nodes() {
    let Some(db) = TestDatabase::create("an_endpoints_limits_hold_across_nodes").await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(60));
    let rest = endpoint(
        "e",
        &receiver.url,
        "max_in_flight = 2\nrate_limit = { per_second = 20, burst = 2 }",
    );
    let (_dir, configs) = node_configs(&db, &["a", "b"], &rest).await;
    let a = Binary::start(&configs[0]).await;
    let b = Binary::start(&configs[1]).await;
    for i in 0..60 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, _) = send(&node.url("orders"), &format!("msg_{i}"), "{}").await;
        assert_eq!(status, 202);
    }
    receiver.wait_for(60).await;
    assert!(
        receiver.most_concurrent() <= 2,
        "{} requests open at once; max_in_flight is 2 across both nodes",
        receiver.most_concurrent()
    );
    // GCRA allows at most 21 sends in any second at 20/s, burst 2: two at once, then one
    // every 50 ms. They are counted at arrival, and a request's trip varies: one that left
    // just before the window and arrived late joins it, so one more is within the limit.
    let most = receiver.most_within(Duration::from_secs(1));
    assert!(
        most <= 21 + 1,
        "{most} requests within a second; at 20/s, burst 2, at most 21 leave in any second"
    );
    a.kill_9().await;
    b.kill_9().await;
    db.drop().await;
}

/// **No head-of-line blocking across nodes**: one endpoint that hangs, with 100,000 deliveries
/// due, does not hold up another endpoint's claims on either node. Claims go by endpoint (its
/// lane) through the `(endpoint, due)` index, so the stuck endpoint's rows are never scanned
/// past; were work claimed oldest first across endpoints, the other endpoint's new events would
/// wait behind the backlog and this test would not see them delivered.
#[tokio::test]
async fn a_hanging_endpoint_with_a_deep_backlog_holds_up_no_other() {
    let Some(db) =
        TestDatabase::create("a_hanging_endpoint_with_a_deep_backlog_holds_up_no_other").await
    else {
        return;
    };
    let stuck = Receiver::start().await;
    stuck.hang();
    let healthy = Receiver::start().await;
    let rest = format!(
        "{}{}",
        endpoint(
            "stuck",
            &stuck.url,
            "event_types = [\"stuck.*\"]\nmax_in_flight = 16\ntimeout = \"60s\""
        ),
        endpoint("healthy", &healthy.url, "event_types = [\"healthy.*\"]")
    );
    let (_dir, configs) = node_configs(&db, &["a", "b"], &rest).await;
    // The backlog, written straight into the schema (ingesting 100,000 events over HTTP
    // would take most of the suite's time): events, their progress and one due delivery each.
    connect(&db.url())
        .await
        .batch_execute(
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms), \
             ids AS MATERIALIZED ( \
               SELECT ms, \
                 substring(int8send(ms) FROM 3 FOR 6) \
                   || substring(uuid_send(gen_random_uuid()) FROM 1 FOR 10) AS ev, \
                 substring(int8send(ms) FROM 3 FOR 6) \
                   || substring(uuid_send(gen_random_uuid()) FROM 1 FOR 10) AS d \
               FROM generate_series(1, 100000), now), \
             e AS (INSERT INTO events (id, source, event_type, received_ms, delivery_ids, \
                     endpoints, header_names, header_values, body) \
                   SELECT ev, 'orders', 'stuck.backlog', ms, ARRAY[d], ARRAY['stuck'], \
                     '{}'::text[], '{}'::bytea[], '\\x7b7d'::bytea FROM ids), \
             p AS (INSERT INTO event_progress (event_id, open) SELECT ev, 1 FROM ids) \
             INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts, due_ms, \
               created_ms, updated_ms, cycle_base, cycle_started_ms) \
             SELECT d, ev, 'stuck', 'pending', 0, ms, ms, ms, 0, ms FROM ids",
        )
        .await
        .expect("the backlog is written");
    let a = Binary::start(&configs[0]).await;
    let b = Binary::start(&configs[1]).await;
    // The stuck endpoint's lanes, on both nodes, hold all the requests it may have open.
    eventually("the stuck endpoint is saturated", || stuck.count() >= 16).await;
    let mut sent = HashSet::new();
    for i in 0..100 {
        let node = if i % 2 == 0 { &a } else { &b };
        let id = format!("msg_healthy_{i}");
        let (status, answer) = send(&node.url("orders"), &id, r#"{"type":"healthy.ping"}"#).await;
        assert_eq!(status, 202);
        sent.insert(event_id(&answer).to_string());
    }
    let got = healthy.wait_for(100).await;
    let ids: HashSet<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    assert_eq!(ids, sent, "every healthy event, delivered");
    assert!(
        stuck.most_concurrent() <= 16,
        "{} open at the stuck endpoint; its max_in_flight is 16 across both nodes",
        stuck.most_concurrent()
    );
    a.kill_9().await;
    b.kill_9().await;
    db.drop().await;
}

/// Ordered delivery on two nodes: 50 keys × 40 events, each key's events taken in by both
/// nodes in turn, the receiver failing a third at random, and one node killed mid-delivery.
/// Per key the receiver sees the events in commit order with no gaps: the survivor takes the
/// dead node's keys back and never sends a later event of a key before an earlier one.
#[tokio::test]
async fn ordered_keys_stay_in_order_across_two_nodes_and_a_kill_9() {
    use crate::ordering::{KEYS, PER_KEY, body, check_fifo, key_name, ordered_endpoint};
    let Some(db) =
        TestDatabase::create("ordered_keys_stay_in_order_across_two_nodes_and_a_kill_9").await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.fail_percent(30);
    let (_dir, configs) =
        node_configs(&db, &["a", "b"], &ordered_endpoint(&receiver.url, 16)).await;
    let a = Binary::start(&configs[0]).await;
    let b = Binary::start(&configs[1]).await;
    let urls = [a.url("orders"), b.url("orders")];
    let keys: Vec<String> = (0..KEYS).map(key_name).collect();
    let mut senders = tokio::task::JoinSet::new();
    for key in &keys {
        let key = key.clone();
        let urls = urls.clone();
        senders.spawn(async move {
            for n in 0..PER_KEY {
                let url = &urls[n % 2];
                let (status, answer) = send(url, &format!("msg_{key}_{n}"), &body(&key, n)).await;
                assert_eq!(status, 202, "{answer}");
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.expect("sender");
    }
    eventually("deliveries under way", || receiver.count() >= 600).await;
    a.kill_9().await;
    eventually_async("every key delivered in order by the survivor", async || {
        let done = check_fifo(&receiver.got(), true).expect("in order");
        keys.iter().all(|k| done.get(k) == Some(&PER_KEY))
    })
    .await;
    b.kill_9().await;
    db.drop().await;
}
