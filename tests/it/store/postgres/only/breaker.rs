//! The breaker on a database several nodes share: its state, written by one node, holds every
//! node's claims, and when it may probe, **exactly one claim on any node gets the probe**.

use std::collections::HashSet;

use hookgate::model::{BreakerPolicy, HealthPolicy};
use hookgate::store::health::State;
use hookgate::store::{ClaimLimits, Completion, DueBatch};

use super::*;

const COOL_DOWN: u64 = 30_000;

fn policy() -> HealthPolicy {
    HealthPolicy {
        breaker: Some(BreakerPolicy {
            window_ms: 60_000,
            min_attempts: 3,
            failure_rate: 0.5,
            cool_down_ms: COOL_DOWN,
        }),
        disable_after_ms: None,
    }
}

async fn guarded(store: &Store, now: u64) -> DueBatch {
    let limits = ClaimLimits {
        breaker: true,
        ..Default::default()
    };
    store
        .claim("e", now, 10, HashSet::new(), now + 60_000, limits)
        .await
        .expect("claim")
}

#[tokio::test]
async fn one_nodes_open_breaker_holds_the_other_and_only_one_gets_the_probe() {
    let Some(pg) = database("one_nodes_open_breaker_holds_the_other_and_only_one_gets_the_probe")
    else {
        return;
    };
    let clock = manual();
    let a = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    let b = Store::from_backend(pg.node(pg.options(clock.clone(), u64::MAX)).await);
    for _ in 0..6 {
        a.ingest(event(&["e"], T0)).await.expect("ingest");
    }
    // Node a fails three: open, for both.
    let batch = guarded(&a, T0).await;
    for item in batch.items.iter().take(3) {
        let c = Completion {
            delivery_id: item.delivery_id,
            lease_token: item.lease_token,
            attempt: Attempt {
                at_ms: T0,
                status_code: Some(503),
                latency_ms: 1,
                error: Some("HTTP 503".into()),
                response_excerpt: Vec::new(),
            },
            next: Next::RetryAt(T0 + 1),
            health: Some(policy()),
            strict: false,
            waited_on: false,
        };
        a.complete(c).await.expect("recorded");
    }
    let held = guarded(&b, T0 + 1).await;
    assert!(
        held.items.is_empty(),
        "node b sends nothing while it is open"
    );
    assert_eq!(held.health.map(|h| h.state), Some(State::Open));
    // Past the cool-down both claim at once: one probe between them.
    clock.set(T0 + COOL_DOWN);
    let (x, y) = tokio::join!(guarded(&a, T0 + COOL_DOWN), guarded(&b, T0 + COOL_DOWN));
    let probes: Vec<bool> = x.items.iter().chain(&y.items).map(|i| i.probe).collect();
    assert_eq!(probes, [true], "exactly one probe, on one node");
    let healths = b.healths().await.expect("healths");
    assert_eq!(healths[0].1.state, State::HalfOpen);
    a.close().await;
    b.close().await;
}
