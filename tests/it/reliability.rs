//! Issue 13's defects, each pinned by a test that fails without its fix: attempts that end
//! without a result, dead lanes, the global cap's shares, limits across lane replacements,
//! and durations too long to add to a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;

use crate::harness::*;

/// Calls the admin API and insists on `want`; returns the answer.
async fn admin_expect(
    gw: &Gateway,
    method: Method,
    path: &str,
    body: &str,
    want: u16,
) -> serde_json::Value {
    let (status, answer) = admin_call(gw, method, path, body).await;
    assert_eq!(status, want, "{path}: {answer}");
    answer
}

/// Sends `n` signed events to the `orders` source, ids `<prefix><i>`, each accepted.
async fn send_many(gw: &Gateway, prefix: &str, n: usize) {
    for i in 0..n {
        let (status, answer) = send(&gw.url("orders"), &format!("{prefix}{i}"), "{}").await;
        assert_eq!(status, 202, "{answer}");
    }
}

fn with_admin(rest: &str) -> String {
    format!(
        "{}\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{rest}",
        orders_source()
    )
}

/// A receiver that answers after `delay` and records how many requests it had open at most.
#[derive(Clone, Default)]
struct ConcurrencyProbe {
    open: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl ConcurrencyProbe {
    async fn start(delay: Duration) -> (ConcurrencyProbe, String) {
        let probe = ConcurrencyProbe::default();
        let p = probe.clone();
        let app = axum::Router::new().fallback(move || {
            let p = p.clone();
            async move {
                let now = p.open.fetch_add(1, Ordering::SeqCst) + 1;
                p.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                p.open.fetch_sub(1, Ordering::SeqCst);
                p.done.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (probe, url)
    }
}

/// A lane that dies is started again, and the attempt it was running when it died is not
/// left in flight: its lease is given back and the delivery is sent again.
#[tokio::test]
async fn a_dead_lane_is_restarted_and_its_attempts_give_their_leases_back() {
    let receiver = Receiver::start().await;
    receiver.hang();
    let fault = Arc::new(AtomicBool::new(false));
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = hookgate::RunOptions {
        shutdown_grace: Duration::from_millis(500),
        lane_fault: Some(Arc::clone(&fault)),
        ..hookgate::RunOptions::default()
    };
    let config = with_admin(&format!(
        "[[endpoints]]\nid = \"r\"\nurl = \"{}\"\ntimeout = \"60s\"\n",
        receiver.url
    ));
    let gw = Gateway::start_with(dir.path(), &config, opts).await;
    let (status, first) = send(&gw.url("orders"), "msg_before_the_fault", "{}").await;
    assert_eq!(status, 202);
    let first = first["event_id"].as_str().expect("id").to_string();
    receiver.wait_for(1).await;
    // The first attempt hangs (for up to 60 s); the lane dies at its next turn.
    receiver.unhang();
    fault.store(true, Ordering::SeqCst);
    let (status, second) = send(&gw.url("orders"), "msg_wakes_the_lane", "{}").await;
    assert_eq!(status, 202);
    let second = second["event_id"].as_str().expect("id").to_string();
    eventually("the restarted lane sends both", || {
        let got = receiver.got();
        let sent = |id: &str| got.iter().filter(|r| r.header("webhook-id") == id).count();
        sent(&first) >= 2 && sent(&second) >= 1
    })
    .await;
    assert!(!fault.load(Ordering::SeqCst), "the fault fired");
    let metrics = metrics_text(&gw.admin).await;
    assert!(
        metrics.contains("hookgate_lane_restarts_total{endpoint=\"r\"} 1"),
        "{metrics}"
    );
    gw.stop().await;
}

/// Hanging endpoints that together could take the whole global cap leave a healthy endpoint
/// its share: it still gets its events while they hang.
#[tokio::test]
async fn hanging_endpoints_cannot_take_the_whole_global_cap() {
    let hanging = Receiver::start().await;
    hanging.hang();
    let healthy = Receiver::start().await;
    let mut config = format!(
        r#"
        [delivery]
        allow_private_networks = true
        max_concurrency = 8
        [[sources]]
        id = "orders"
        verify = "standard-webhooks"
        secrets = ["{INBOUND_SECRET}"]
        [[sources]]
        id = "slow"
        verify = "standard-webhooks"
        secrets = ["{INBOUND_SECRET}"]
        [[endpoints]]
        id = "healthy"
        url = "{}"
        sources = ["orders"]
        "#,
        healthy.url
    );
    // Four endpoints of max_in_flight 8 could hold the cap of 8 four times over.
    for i in 0..4 {
        config.push_str(&format!(
            "[[endpoints]]\nid = \"hang{i}\"\nurl = \"{}\"\nsources = [\"slow\"]\nmax_in_flight = 8\ntimeout = \"120s\"\n",
            hanging.url
        ));
    }
    let (gw, _dir) = Gateway::start(&config).await;
    for i in 0..16 {
        let (status, _) = send(&gw.url("slow"), &format!("msg_slow_{i}"), "{}").await;
        assert_eq!(status, 202);
    }
    // Each hanging endpoint holds its share (8 / 5 endpoints = 1), no more.
    eventually("every hanging endpoint has a request open", || {
        hanging.count() >= 4
    })
    .await;
    send_many(&gw, "msg_ok_", 200).await;
    eventually("the healthy endpoint gets all 200", || {
        healthy.count() >= 200
    })
    .await;
    assert_eq!(
        hanging.count(),
        4,
        "hanging endpoints stay within their shares"
    );
    gw.stop().await;
}

/// With `max_in_flight = 1`, quick changes to the endpoint never let two requests be open at
/// once: the old lane's attempt still holds the endpoint's one slot.
#[tokio::test]
async fn max_in_flight_holds_across_changes() {
    let (probe, url) = ConcurrencyProbe::start(Duration::from_millis(150)).await;
    let (gw, _dir) = Gateway::start(&with_admin("")).await;
    let endpoint =
        format!(r#"{{"id": "one", "url": "{url}", "sources": ["orders"], "max_in_flight": 1}}"#);
    admin_expect(&gw, Method::POST, "/endpoints", &endpoint, 201).await;
    send_many(&gw, "msg_one_", 12).await;
    for i in 0..6 {
        let patch = format!(r#"{{"headers": {{"x-change": "{i}"}}}}"#);
        admin_expect(&gw, Method::PATCH, "/endpoints/one", &patch, 200).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    eventually("all twelve delivered", || {
        probe.done.load(Ordering::SeqCst) >= 12
    })
    .await;
    assert_eq!(probe.most.load(Ordering::SeqCst), 1, "never two at once");
    gw.stop().await;
}

/// Raising and lowering `max_in_flight` resizes the endpoint's slots in place.
#[tokio::test]
async fn max_in_flight_changes_take_effect_on_the_same_slots() {
    let (probe, url) = ConcurrencyProbe::start(Duration::from_millis(300)).await;
    let (gw, _dir) = Gateway::start(&with_admin("")).await;
    let endpoint =
        format!(r#"{{"id": "wide", "url": "{url}", "sources": ["orders"], "max_in_flight": 4}}"#);
    admin_expect(&gw, Method::POST, "/endpoints", &endpoint, 201).await;
    admin_expect(
        &gw,
        Method::PATCH,
        "/endpoints/wide",
        r#"{"max_in_flight": 2}"#,
        200,
    )
    .await;
    send_many(&gw, "msg_wide_", 8).await;
    eventually("all eight delivered", || {
        probe.done.load(Ordering::SeqCst) >= 8
    })
    .await;
    assert_eq!(probe.most.load(Ordering::SeqCst), 2);
    gw.stop().await;
}

/// Durations too long to add to a time are refused, naming the key, instead of overflowing
/// in a lane (which then died silently) or in the rotation handler.
#[tokio::test]
async fn durations_beyond_ten_years_are_refused_with_their_key() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&with_admin("")).await;
    let endpoint = format!(
        r#"{{"id": "e", "url": "{}", "sources": ["orders"], "timeout": "18446744073709551615s"}}"#,
        receiver.url
    );
    let body = admin_expect(&gw, Method::POST, "/endpoints", &endpoint, 400).await;
    assert!(error_message(&body).starts_with("timeout"), "{body}");
    let endpoint = format!(
        r#"{{"id": "e", "url": "{}", "sources": ["orders"]}}"#,
        receiver.url
    );
    admin_expect(&gw, Method::POST, "/endpoints", &endpoint, 201).await;
    let body = admin_expect(
        &gw,
        Method::POST,
        "/endpoints/e/rotate-secret",
        r#"{"overlap": "10000y"}"#,
        400,
    )
    .await;
    assert!(error_message(&body).starts_with("overlap"), "{body}");
    // The gateway still works.
    let (status, _) = send(&gw.url("orders"), "msg_still_fine", "{}").await;
    assert_eq!(status, 202);
    receiver.wait_for(1).await;
    gw.stop().await;
}

/// A change to an endpoint does not hand it a fresh rate-limit burst: with 2 per second and
/// a burst of 1, attempts stay at least about half a second apart (on the gateway's own
/// clock) even when the endpoint is changed right after each one.
#[tokio::test]
async fn the_rate_limit_holds_across_changes() {
    let receiver = Receiver::start().await;
    let (gw, _dir) = Gateway::start(&with_admin("")).await;
    let endpoint = format!(
        r#"{{"id": "paced", "url": "{}", "sources": ["orders"], "rate_limit": {{"per_second": 2, "burst": 1}}}}"#,
        receiver.url
    );
    admin_expect(&gw, Method::POST, "/endpoints", &endpoint, 201).await;
    let mut events = Vec::new();
    for i in 0..5 {
        let (status, answer) = send(&gw.url("orders"), &format!("msg_paced_{i}"), "{}").await;
        assert_eq!(status, 202);
        events.push(event_id(&answer));
    }
    for k in 1..5 {
        receiver.wait_for(k).await;
        let patch = format!(r#"{{"headers": {{"x-change": "{k}"}}}}"#);
        admin_expect(&gw, Method::PATCH, "/endpoints/paced", &patch, 200).await;
    }
    receiver.wait_for(5).await;
    let mut starts: Vec<u64> = Vec::new();
    for event in events {
        gw.settled(event).await;
        let (id, _) = gw
            .store
            .event(event)
            .await
            .expect("read")
            .expect("stored")
            .0
            .deliveries[0]
            .clone();
        let attempts = gw.store.attempts(id).await.expect("read");
        starts.extend(attempts.iter().map(|a| a.at_ms));
    }
    starts.sort_unstable();
    for pair in starts.windows(2) {
        // 500 ms apart at 2 per second; the rate limiter's own rounding allows a little less.
        assert!(
            pair[1] - pair[0] >= 450,
            "attempts {} ms apart: {starts:?}",
            pair[1] - pair[0]
        );
    }
    gw.stop().await;
}

fn new_event(endpoints: &[&str]) -> hookgate::store::NewEvent {
    hookgate::store::NewEvent {
        source: "orders".into(),
        event_type: None,
        received_ms: hookgate::clock::system_now_ms(),
        dedup: None,
        dedup_scope: None,
        body_dedup: None,
        budget: None,
        headers: Vec::new(),
        query: String::new(),
        body: bytes::Bytes::from_static(b"{}"),
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        order_keys: Vec::new(),
    }
}

/// The store refuses to make work for an endpoint that no longer exists, whatever snapshot
/// of the routes the caller had: an ingest routed before a deletion committed gets no
/// delivery for it, and a retry of a delivery of a deleted endpoint requeues nothing.
#[tokio::test]
async fn the_store_makes_no_work_for_a_deleted_endpoint() {
    use hookgate::store::{EntryKind, IngestOutcome, Requeue};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let dead = store
        .set_endpoints(["a".to_string(), "b".to_string()].into())
        .await
        .expect("set");
    assert_eq!(dead, 0);
    let IngestOutcome::Accepted { deliveries, .. } =
        store.ingest(new_event(&["a", "b"])).await.expect("ingest")
    else {
        panic!("not accepted")
    };
    let of_b = deliveries
        .iter()
        .find(|(_, e)| e == "b")
        .map(|(id, _)| *id)
        .expect("a delivery to b");
    store
        .put_entry(EntryKind::Endpoint, "b", b"{}".to_vec())
        .await
        .expect("put");
    assert_eq!(
        store
            .delete_entry(EntryKind::Endpoint, "b")
            .await
            .expect("delete"),
        1
    );
    // Routed from a snapshot taken before the deletion.
    let IngestOutcome::Accepted { deliveries, .. } =
        store.ingest(new_event(&["a", "b"])).await.expect("ingest")
    else {
        panic!("not accepted")
    };
    assert_eq!(
        deliveries
            .iter()
            .map(|(_, e)| e.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    let r = store.requeue(Requeue::One(of_b)).await.expect("requeue");
    assert!(r.deliveries.is_empty());
    assert_eq!(r.removed, [of_b]);
    let d = store.delivery(of_b).await.expect("read").expect("stored");
    assert_eq!(d.last_error.as_deref(), Some("endpoint deleted"));
    // Two deliveries to a, none pending for b.
    assert_eq!(store.pending_count().await.expect("count"), 2);
    store.close().await;
}

/// What a previous run left for endpoints no longer in force (removed from the file, or an
/// API-made one that no longer validates) is dead-lettered at start with the reason
/// `endpoint removed`; retry and replay of it answer 409; the broken entry can be deleted.
#[tokio::test]
async fn work_left_for_removed_endpoints_is_dead_lettered_at_start() {
    let receiver = Receiver::start().await;
    receiver.set_default_status(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let slow_retry = r#"retry = { base = "1h", max_delay = "1h" }"#;
    let partner = format!(
        "[[sources]]\nid = \"partner\"\nverify = \"standard-webhooks\"\nsecrets = [\"{INBOUND_SECRET}\"]\n"
    );
    let gone = format!(
        "[[endpoints]]\nid = \"gone\"\nurl = \"{}\"\nsources = [\"orders\"]\n{slow_retry}\n",
        receiver.url
    );
    let gw = Gateway::start_in(dir.path(), &with_admin(&format!("{partner}{gone}"))).await;
    let endpoint = format!(
        r#"{{"id": "api-ep", "url": "{}", "sources": ["partner"], "retry": {{"base": "1h", "max_delay": "1h"}}}}"#,
        receiver.url
    );
    admin_expect(&gw, Method::POST, "/endpoints", &endpoint, 201).await;
    let (status, a) = send(&gw.url("orders"), "msg_to_gone", "{}").await;
    assert_eq!(status, 202);
    let (status, b) = send(&gw.url("partner"), "msg_to_api_ep", "{}").await;
    assert_eq!(status, 202);
    let (a, b) = (event_id(&a), event_id(&b));
    receiver.wait_for(2).await;
    gw.stop().await;

    // Restart without the `gone` endpoint and without the source `api-ep` needs.
    let gw = Gateway::start_in(dir.path(), &with_admin("")).await;
    for event in [a, b] {
        eventually_async("dead-lettered at start", async || {
            gw.statuses(event).await == [hookgate::model::event::DeliveryStatus::Dead]
        })
        .await;
        let d = gw.deliveries(event).await.remove(0);
        assert_eq!(d.last_error.as_deref(), Some("endpoint removed"));
    }
    let (event, _) = gw.store.event(a).await.expect("read").expect("stored");
    let id = event.deliveries[0].0;
    let (status, body) =
        admin_call(&gw, Method::POST, &format!("/deliveries/{id}/retry"), "").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "endpoint_removed");
    admin_expect(
        &gw,
        Method::POST,
        "/dead-letters/replay",
        r#"{"endpoint": "gone"}"#,
        409,
    )
    .await;
    assert_eq!(gw.store.pending_count().await.expect("count"), 0);
    // The stored entry that no longer validates is not in force, but can be deleted.
    let (status, _) = admin_call(&gw, Method::GET, "/endpoints/api-ep", "").await;
    assert_eq!(status, 404);
    admin_expect(&gw, Method::DELETE, "/endpoints/api-ep", "", 200).await;
    let (status, _) = admin_call(&gw, Method::DELETE, "/endpoints/api-ep", "").await;
    assert_eq!(status, 404);
    gw.stop().await;
}

/// Makes `n` dead letters for `endpoint`, dead at `first_ms`, `first_ms + 1`, ...
async fn dead_letters(store: &hookgate::store::Store, endpoint: &str, n: u64, first_ms: u64) {
    use hookgate::model::event::Attempt;
    use hookgate::store::{Completion, IngestOutcome, Next};
    let mut ingests = tokio::task::JoinSet::new();
    for i in 0..n {
        let (store, endpoint) = (store.clone(), endpoint.to_string());
        ingests.spawn(async move {
            match store.ingest(new_event(&[&endpoint])).await.expect("ingest") {
                IngestOutcome::Accepted { deliveries, .. } => (i, deliveries[0].0),
                IngestOutcome::Duplicate { .. } => panic!("duplicate"),
            }
        });
    }
    let mut completes = tokio::task::JoinSet::new();
    while let Some(done) = ingests.join_next().await {
        let (i, id) = done.expect("ingested");
        let store = store.clone();
        completes.spawn(async move {
            let attempt = Attempt {
                at_ms: first_ms + i,
                status_code: Some(500),
                latency_ms: 1,
                error: None,
                response_excerpt: Vec::new(),
            };
            store
                .complete(Completion {
                    delivery_id: id,
                    lease_token: None,
                    attempt,
                    next: Next::Dead("test".into()),
                    health: None,
                    strict: false,
                    waited_on: false,
                })
                .await
                .expect("complete");
        });
    }
    while let Some(done) = completes.join_next().await {
        done.expect("completed");
    }
}

/// Paging dead letters loses nothing: neither at page boundaries (the cursor was the first
/// row not returned, and the next page began strictly after it) nor at the scan limit.
#[tokio::test]
async fn dead_letter_pages_lose_no_row() {
    use hookgate::store::query::{Filter, SCAN_LIMIT};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = roomy_store(dir.path(), Arc::new(hookgate::clock::SystemClock));
    // Oldest: 5 for "rare"; then enough for "common" that a page scanning newest first
    // stops at its limit exactly on the first of "rare".
    dead_letters(&store, "rare", 5, 1_000_000).await;
    dead_letters(&store, "common", SCAN_LIMIT as u64, 2_000_000).await;
    let page_all = async |filter: &Filter, limit: usize| {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list_dead(filter, limit, cursor.as_deref())
                .await
                .expect("page");
            seen.extend(page.items.iter().map(|d| d.delivery_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return seen,
            }
        }
    };
    let all = page_all(&Filter::default(), 100_000).await;
    assert_eq!(all.len(), SCAN_LIMIT + 5);
    // Page through the newest 1,000 by 7, against the same rows in one read.
    let newest: Vec<_> = all.iter().take(1000).copied().collect();
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    while paged.len() < 1000 {
        let page = store
            .list_dead(&Filter::default(), 7, cursor.as_deref())
            .await
            .expect("page");
        paged.extend(page.items.iter().map(|d| d.delivery_id));
        cursor = page.next_cursor;
    }
    paged.truncate(1000);
    assert_eq!(paged, newest);
    let rare = Filter {
        endpoint: Some("rare".into()),
        ..Filter::default()
    };
    assert_eq!(
        page_all(&rare, 100).await.len(),
        5,
        "none lost at the scan limit"
    );
    store.close().await;
}

/// GitHub signs no timestamp and its delivery id is an unsigned header: a captured request
/// sent again under a fresh id is still a duplicate, by the hash of its body. A source can
/// turn that off.
#[tokio::test]
async fn a_replayed_body_under_a_fresh_delivery_id_is_a_duplicate() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"
        [delivery]
        allow_private_networks = true
        [[sources]]
        id = "gh"
        verify = "github"
        secrets = ["It's a Secret to Everybody"]
        [[sources]]
        id = "gh-repeats"
        verify = "github"
        secrets = ["It's a Secret to Everybody"]
        dedup_body = false
        [[endpoints]]
        id = "r"
        url = "{}"
        "#,
        receiver.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let github = hookgate::verify::github::Github::new(Vec::new());
    let post_github = |source: &'static str, delivery: &'static str, body: &'static str| {
        let url = gw.url(source);
        let sig = github.sign(b"It's a Secret to Everybody", body.as_bytes());
        async move {
            let headers = vec![
                ("x-hub-signature-256".to_string(), sig),
                ("x-github-delivery".to_string(), delivery.to_string()),
                ("x-github-event".to_string(), "push".to_string()),
            ];
            post(&url, &headers, body).await
        }
    };
    let (status, first) = post_github("gh", "d-1", r#"{"ref":"main","n":1}"#).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = post_github("gh", "d-forged", r#"{"ref":"main","n":1}"#).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], first["event_id"]);
    let (status, _) = post_github("gh", "d-2", r#"{"ref":"main","n":2}"#).await;
    assert_eq!(status, 202);
    // With dedup_body = false only the delivery id counts.
    let (status, _) = post_github("gh-repeats", "d-1", r#"{"same":true}"#).await;
    assert_eq!(status, 202);
    let (status, _) = post_github("gh-repeats", "d-2", r#"{"same":true}"#).await;
    assert_eq!(status, 202);
    receiver.wait_for(4).await;
    gw.stop().await;
}

/// A clock that stands still: what the gateway reuses by its clock is reused forever.
struct StillClock(u64);

impl hookgate::clock::Clock for StillClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

/// `/readyz` needs no token, so its probe (an fsync'd commit) is reused for a second: a
/// flood of readiness checks does not become a flood of commits.
#[tokio::test]
async fn readiness_checks_reuse_a_recent_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Arc::new(hookgate::telemetry::Metrics::new());
    let opts = hookgate::RunOptions {
        clock: Arc::new(StillClock(hookgate::clock::system_now_ms())),
        metrics: Arc::clone(&metrics),
        ..hookgate::RunOptions::default()
    };
    let gw = Gateway::start_with(dir.path(), "", opts).await;
    let commits = || {
        let text = client().get(format!("{}/metrics", gw.admin)).send();
        async move {
            let text = text.await.expect("sent").text().await.expect("body");
            text.lines()
                .find_map(|l| l.strip_prefix("hookgate_commit_batch_count "))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    let ready = || client().get(format!("{}/readyz", gw.admin)).send();
    assert_eq!(ready().await.expect("sent").status().as_u16(), 200);
    let before = commits().await;
    for _ in 0..50 {
        assert_eq!(ready().await.expect("sent").status().as_u16(), 200);
    }
    assert_eq!(commits().await, before, "no commit for a reused probe");
    gw.stop().await;
}

/// Credentials in an endpoint URL are masked everywhere but the secret route, and the
/// header that carries a `token` or `basic` source's secret is not stored with the payload.
#[tokio::test]
async fn credentials_are_neither_listed_nor_stored() {
    let receiver = Receiver::start().await;
    let config = format!(
        "{}\n[[sources]]\nid = \"tok\"\nverify = \"token\"\nsecrets = [\"s3cret-token\"]\n",
        with_admin("")
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let with_credentials = receiver
        .url
        .replace("http://", "http://hook-user:hook-pass@")
        + "?token=abc123&v=2";
    let endpoint = format!(r#"{{"id": "creds", "url": "{with_credentials}", "sources": ["tok"]}}"#);
    let body = admin_expect(&gw, Method::POST, "/endpoints", &endpoint, 201).await;
    let (_, list) = admin_call(&gw, Method::GET, "/endpoints", "").await;
    let (_, one) = admin_call(&gw, Method::GET, "/endpoints/creds", "").await;
    for shown in [list.to_string(), one.to_string(), body.to_string()] {
        for secret in ["hook-user", "hook-pass", "abc123"] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(shown.contains("token=***"), "{shown}");
    }
    let (_, secret) = admin_call(&gw, Method::GET, "/endpoints/creds/secret", "").await;
    assert_eq!(secret["url"], with_credentials.as_str());

    let (status, answer) = post(
        &gw.url("tok"),
        &[(
            "authorization".to_string(),
            "Bearer s3cret-token".to_string(),
        )],
        r#"{"type":"a"}"#,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let (_, payload) = gw
        .store
        .event(event_id(&answer))
        .await
        .expect("read")
        .expect("stored");
    assert!(
        payload
            .headers
            .iter()
            .all(|(name, _)| !name.eq_ignore_ascii_case("authorization")),
        "{:?}",
        payload.headers
    );
    gw.stop().await;
}

/// A stranger's unsigned junk no longer uses up a source's rate limit (which is charged only
/// for verified requests); the junk is throttled by its own address instead.
#[tokio::test]
async fn junk_does_not_use_up_a_sources_quota() {
    let receiver = Receiver::start().await;
    let config = format!(
        r#"
        [ingress]
        trusted_proxies = ["127.0.0.0/8"]
        failed_requests = {{ per_second = 1, burst = 5 }}
        [delivery]
        allow_private_networks = true
        [[sources]]
        id = "orders"
        verify = "standard-webhooks"
        secrets = ["{INBOUND_SECRET}"]
        rate_limit = {{ per_second = 1, burst = 3 }}
        [[endpoints]]
        id = "r"
        url = "{}"
        "#,
        receiver.url
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let from = |ip: &str| ("x-forwarded-for".to_string(), ip.to_string());
    let mut codes = Vec::new();
    for _ in 0..20 {
        let (status, answer) = post(
            &gw.url("orders"),
            &[from("203.0.113.9")],
            r#"{"type":"junk"}"#,
        )
        .await;
        codes.push((
            status,
            answer["error"]["code"].as_str().unwrap_or("").to_string(),
        ));
    }
    assert!(codes[..5].iter().all(|(s, _)| *s == 401), "{codes:?}");
    assert!(
        codes[5..]
            .iter()
            .all(|(s, c)| *s == 429 && c == "too_many_failures"),
        "{codes:?}"
    );
    // The provider, from its own address, still has its whole burst.
    for i in 0..3 {
        let body = r#"{"type":"real"}"#;
        let mut headers = signed(
            INBOUND_SECRET,
            &format!("msg_real_{i}"),
            now_secs(),
            body.as_bytes(),
        );
        headers.push(from("198.51.100.7"));
        let (status, answer) = post(&gw.url("orders"), &headers, body).await;
        assert_eq!(status, 202, "{answer}");
    }
    receiver.wait_for(3).await;
    gw.stop().await;
}

/// A store whose writer queue takes thousands of concurrent commands.
fn roomy_store(
    dir: &std::path::Path,
    clock: hookgate::clock::SharedClock,
) -> hookgate::store::Store {
    hookgate::store::Store::open(
        dir,
        hookgate::store::StoreOptions {
            max_backlog: u64::MAX,
            queue_capacity: 32_768,
            clock,
            metrics: None,
            fault: None,
            quick_repair: false,
        },
    )
    .expect("store opens")
}

/// Expired dedup keys are pruned on their own cursor: one pass removes all of them, not 500
/// (when no event was old enough to prune, a pass used to stop after one step, so above
/// about 8 new keys a second the dedup tables grew without end).
#[tokio::test]
async fn one_pruning_pass_removes_every_expired_dedup_key() {
    use hookgate::store::retention::{Policy, pass};
    let dir = tempfile::tempdir().expect("tempdir");
    let now = hookgate::clock::system_now_ms();
    let store = roomy_store(dir.path(), Arc::new(hookgate::clock::SystemClock));
    let mut ingests = tokio::task::JoinSet::new();
    for i in 0..1_200 {
        let store = store.clone();
        ingests.spawn(async move {
            let mut ev = new_event(&[]);
            ev.received_ms = now;
            ev.dedup = Some((format!("key-{i}"), 1_000));
            store.ingest(ev).await.expect("ingest");
        });
    }
    while let Some(done) = ingests.join_next().await {
        done.expect("ingested");
    }
    let later: hookgate::clock::SharedClock = Arc::new(StillClock(now + 2_000));
    let policy = Policy {
        retention: Duration::from_secs(7 * 24 * 3600),
        dead_letter_retention: Duration::from_secs(30 * 24 * 3600),
        interval: Duration::from_secs(60),
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (events, dedup) = pass(&store, &later, policy, &stop).await.expect("pass");
    assert_eq!((events, dedup), (0, 1_200));
    store.close().await;
}

/// A replay of many dead letters is a series of bounded steps, each its own transaction,
/// so ingest never waits behind one huge one; stepping goes through all of them once.
#[tokio::test]
async fn a_large_replay_goes_in_bounded_steps() {
    use hookgate::store::{REPLAY_STEP, Requeue, query::Filter};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = roomy_store(dir.path(), Arc::new(hookgate::clock::SystemClock));
    dead_letters(&store, "e", 2_500, 1_000_000).await;
    let mut after = None;
    let mut steps = Vec::new();
    let mut replayed = std::collections::HashSet::new();
    loop {
        let r = store
            .requeue(Requeue::Dead {
                filter: Filter::default(),
                ids: None,
                after,
            })
            .await
            .expect("step");
        steps.push(r.deliveries.len());
        replayed.extend(r.deliveries.iter().map(|(id, _)| *id));
        match r.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert!(steps.iter().all(|n| *n <= REPLAY_STEP), "{steps:?}");
    assert_eq!(replayed.len(), 2_500, "{steps:?}");
    assert_eq!(store.pending_count().await.expect("count"), 2_500);
    store.close().await;
}

/// Request bodies held at once are bounded (`ingress.max_buffered_bytes`): while one client
/// holds the whole budget, another gets 503 before its body is read; once it is released,
/// requests are taken again.
#[tokio::test]
async fn buffered_request_bodies_are_bounded() {
    use tokio::io::AsyncWriteExt;
    let config = format!(
        "[ingress]\nmax_body_bytes = 2000\nmax_buffered_bytes = 2000\n{}",
        orders_source()
    );
    let (gw, _dir) = Gateway::start(&config).await;
    let addr = gw.ingress.trim_start_matches("http://").to_string();
    // A client that declares 2,000 bytes, sends half, and waits.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(
        format!(
            "POST /in/orders HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 2000\r\n\r\n{}",
            "x".repeat(1000)
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut busy = false;
    for i in 0..300 {
        let (status, answer) = send(&gw.url("orders"), &format!("msg_while_held_{i}"), "{}").await;
        if status == 503 {
            assert_eq!(answer["error"]["code"], "busy", "{answer}");
            busy = true;
            break;
        }
        // The slow request may not have reached the handler yet.
        assert_eq!(status, 202, "{answer}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(busy, "refused while the budget is held");
    drop(slow);
    let mut taken = false;
    for i in 0..300 {
        let (status, _) = send(&gw.url("orders"), &format!("msg_after_{i}"), "{}").await;
        if status == 202 {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(taken, "taken again once the budget is released");
    gw.stop().await;
}

/// Pruning reads only what it can remove: dead letters still within their retention are
/// not looked at again and again (they used to be read at every interval).
#[tokio::test]
async fn pruning_does_not_reread_survivors() {
    use hookgate::model::event::Attempt;
    use hookgate::store::{Completion, IngestOutcome, Next, Prune};
    const DAY: u64 = 24 * 3600 * 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = roomy_store(dir.path(), Arc::new(hookgate::clock::SystemClock));
    let t0 = 1_700_000_000_000;
    let mut done = tokio::task::JoinSet::new();
    for i in 0..1_010u64 {
        let store = store.clone();
        done.spawn(async move {
            let mut ev = new_event(&["e"]);
            ev.received_ms = t0;
            let IngestOutcome::Accepted { deliveries, .. } =
                store.ingest(ev).await.expect("ingest")
            else {
                panic!("not accepted")
            };
            let next = if i < 10 {
                Next::Delivered
            } else {
                Next::Dead("gone".into())
            };
            store
                .complete(Completion {
                    delivery_id: deliveries[0].0,
                    lease_token: None,
                    attempt: Attempt {
                        at_ms: t0 + 1_000,
                        status_code: None,
                        latency_ms: 1,
                        error: None,
                        response_excerpt: Vec::new(),
                    },
                    next,
                    health: None,
                    strict: false,
                    waited_on: false,
                })
                .await
                .expect("complete");
        });
    }
    while let Some(d) = done.join_next().await {
        d.expect("done");
    }
    // Eight days on: the delivered events are past their 7 days, the dead letters within
    // their 30.
    let now = t0 + 8 * DAY;
    let step = Prune {
        now_ms: now,
        events_before_ms: now - 7 * DAY,
        dead_before_ms: now - 30 * DAY,
        after: None,
        after_dead: None,
        max_events: 500,
        max_dedup: 500,
    };
    let first = store.prune(step).await.expect("prune");
    assert_eq!((first.events, first.examined), (10, 10));
    let second = store.prune(step).await.expect("prune");
    assert_eq!(
        (second.events, second.examined),
        (0, 0),
        "the 1,000 survivors are not read"
    );
    // Thirty-one days on, the dead letters go too.
    let later = t0 + 31 * DAY;
    let mut pruned = 0;
    let mut after_dead = None;
    loop {
        let p = store
            .prune(Prune {
                now_ms: later,
                events_before_ms: later - 7 * DAY,
                dead_before_ms: later - 30 * DAY,
                after: None,
                after_dead,
                max_events: 500,
                max_dedup: 500,
            })
            .await
            .expect("prune");
        pruned += p.events;
        after_dead = p.next_dead;
        if p.next.is_none() && after_dead.is_none() {
            break;
        }
    }
    assert_eq!(pruned, 1_000);
    assert!(store.event_ids().await.expect("ids").is_empty());
    store.close().await;
}

/// A replay takes what is dead when it starts: deliveries it requeues that die again while
/// it goes on (their key is their new death) are not replayed again by its later steps.
#[tokio::test]
async fn a_replay_does_not_chase_its_own_re_deaths() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let config = with_admin(&format!(
        // Breaker off: this endpoint is meant to fail every request, and the point is the
        // replay's dead letters, not the endpoint's health.
        "[[endpoints]]\nid = \"gone\"\nurl = \"http://127.0.0.1:{port}/x\"\nmax_in_flight = 32\nretry = {{ max_attempts = 1 }}\nbreaker = \"off\"\n"
    ));
    let (gw, _dir) = Gateway::start(&config).await;
    send_many(&gw, "msg_redie_", 350).await;
    eventually_async("all 350 dead", async || {
        gw.store.pending_count().await.expect("count") == 0
    })
    .await;
    let answer = admin_expect(&gw, Method::POST, "/dead-letters/replay", "{}", 200).await;
    assert_eq!(answer["replayed"], 350, "{answer}");
    gw.stop().await;
}
