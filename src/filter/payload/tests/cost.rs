//! What `matches` costs on ingest's budget (100 endpoints × 5 clauses per event), measured by
//! hand: no timed assertions. Run with
//! `cargo test --release --lib filter::payload::tests::cost -- --ignored --nocapture`.

use serde_json::{Value, json};

use super::super::{PayloadFilter, Subject};
use super::{Event, github, invoice};

/// The mean time of `round` (one event against every filter), which must find `matching`
/// matches each time.
fn per_round(matching: usize, mut round: impl FnMut() -> usize) -> std::time::Duration {
    let rounds = 20_000u32;
    let start = std::time::Instant::now();
    let matched: usize = (0..rounds).map(|_| round()).sum();
    let per = start.elapsed() / rounds;
    assert_eq!(matched, rounds as usize * matching);
    per
}

/// Prints the time per event of evaluating `filters` (compiled from `doc(i)`, i in 0..100),
/// and checks how many match, so the loop is not optimized away and measures what it says.
fn measure(name: &str, e: &Event, doc: impl Fn(usize) -> Value, matching: usize) {
    let filters: Vec<PayloadFilter> = (0..100)
        .map(|i| PayloadFilter::compile(&doc(i)).expect("compiles"))
        .collect();
    let s = Subject::new(e.body.as_ref(), &e.headers, &e.query);
    let per_event = per_round(matching, || {
        filters
            .iter()
            .filter(|f| f.matches(std::hint::black_box(&s)))
            .count()
    });
    // The same filters planned together, as a route table has them: shared clauses once.
    let plan = super::super::Plan::new(filters.iter().map(Some));
    let per_planned = per_round(matching, || {
        let s = plan.subject(e.body.as_ref(), &e.headers, &e.query);
        (0..filters.len())
            .filter(|i| plan.matches(*i, std::hint::black_box(&s)) == Some(true))
            .count()
    });
    println!(
        "{name}: {per_event:?} per event; planned ({} shared clauses, subject included): \
         {per_planned:?}",
        plan.shared()
    );
}

#[test]
#[ignore]
fn hot_path_cost() {
    // Every clause holds, so evaluation goes all the way: the costliest case (and the one in
    // which ingest also writes 100 deliveries).
    measure(
        "GitHub, all 500 clauses hold",
        &github(),
        |i| {
            json!({
                "headers": { "x-github-event": "pull_request" },
                "body": {
                    "action": { "$in": ["opened", "reopened", "synchronize"] },
                    "pull_request.draft": false,
                    "pull_request.labels.name": { "$neq": format!("skip-{i}") },
                    "repository.full_name": { "$startsWith": "Codertocat/" },
                },
            })
        },
        100,
    );
    // The usual case: the event's type, in a header, rules most endpoints out.
    measure(
        "GitHub, the event header misses",
        &github(),
        |i| {
            json!({
                "headers": { "x-github-event": "push" },
                "body": { "action": "opened", "pull_request.labels.name": format!("l{i}"),
                          "pull_request.draft": false, "repository.full_name": "a/b" },
            })
        },
        0,
    );
    // The type in the body, one endpoint in ten taking it.
    let types = [
        "invoice.paid",
        "invoice.created",
        "charge.succeeded",
        "customer.created",
        "payment_intent.succeeded",
        "invoice.finalized",
        "charge.refunded",
        "customer.subscription.updated",
        "checkout.session.completed",
        "invoice.payment_failed",
    ];
    measure(
        "Stripe, type in the body, 10% match",
        &invoice(),
        |i| {
            json!({
                "body": {
                    "type": types[i % 10],
                    "data.object.amount_paid": { "$gte": 100 },
                    "data.object.currency": { "$in": ["usd", "eur"] },
                    "livemode": false,
                    "data.object.customer_email": { "$endsWith": "@example.com" },
                },
            })
        },
        10,
    );
}

/// The bench's `filters` phase, evaluated alone: 100 filters of a 5-clause `$and` (four hold
/// for every event, one picks the endpoint) over its 1 KiB body.
#[test]
#[ignore]
fn bench_phase_cost() {
    let body =
        json!({ "type": "bench.event", "k": "0042", "n": "0000000042", "pad": "x".repeat(980) });
    let e = Event {
        body: Some(body),
        headers: vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("webhook-id".into(), b"msg_1".to_vec()),
            ("webhook-timestamp".into(), b"1700000000".to_vec()),
            ("webhook-signature".into(), b"v1,abc".to_vec()),
            ("user-agent".into(), b"wrk".to_vec()),
            ("host".into(), b"127.0.0.1:8080".to_vec()),
        ],
        query: String::new(),
    };
    measure(
        "bench filters phase",
        &e,
        |i| {
            json!({ "body": { "$and": [
                { "type": "bench.event" }, { "pad": { "$exist": true } },
                { "n": { "$startsWith": "0" } }, { "type": { "$regex": "^bench[.]" } },
                { "k": format!("{i:04}") },
            ] } })
        },
        1,
    );
    measure(
        "bench filters phase, $endsWith for the $regex",
        &e,
        |i| {
            json!({ "body": { "$and": [
                { "type": "bench.event" }, { "pad": { "$exist": true } },
                { "n": { "$startsWith": "0" } }, { "type": { "$endsWith": ".event" } },
                { "k": format!("{i:04}") },
            ] } })
        },
        1,
    );
    measure(
        "bench filters phase, one clause",
        &e,
        |i| json!({ "body": { "k": format!("{i:04}") } }),
        1,
    );
    let rounds = 100_000u32;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(Subject::new(e.body.as_ref(), &e.headers, &e.query));
    }
    println!("Subject::new: {:?} per event", start.elapsed() / rounds);
    let raw = serde_json::to_vec(&e.body).expect("json");
    let start = std::time::Instant::now();
    for _ in 0..rounds / 10 {
        std::hint::black_box(serde_json::from_slice::<Value>(&raw).ok());
    }
    println!(
        "parsing the body: {:?} per event",
        start.elapsed() / (rounds / 10)
    );
}
