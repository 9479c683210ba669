//! What only the embedded backend has: a write that fails (a full or broken disk, through the
//! test's fault switch) and what the writer keeps in memory across it.

use hookgate::store::ClaimLimits;
use hookgate::store::redb::fault::FaultSwitch;

use super::super::*;
use crate::harness::eventually_async;

/// A result whose recording failed is tried again by its lane under the same lease token. The
/// failed batch already forgot that token; the retry must still count (the lease is the
/// current one: no other claim took the delivery), not be taken for a stale finish and dropped,
/// which would leave the delivery to be sent again when its lease ran out.
#[tokio::test]
async fn a_result_recorded_again_after_a_failed_write_counts() {
    recorded_again_after_a_failed_write(false).await;
}

/// The same for a pull consumer's ack, whose fence is strict: the failed batch must not leave
/// the writer without the lease's token (the ack retried would be taken for a stale receipt,
/// and the message delivered again once its lease ran out).
#[tokio::test]
async fn a_consumers_ack_sent_again_after_a_failed_write_counts() {
    recorded_again_after_a_failed_write(true).await;
}

async fn recorded_again_after_a_failed_write(pull: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = FaultSwitch::default();
    let clock = Arc::new(ManualClock(AtomicU64::new(T0)));
    let opts = StoreOptions {
        max_backlog: u64::MAX,
        queue_capacity: 1024,
        clock: clock.clone(),
        metrics: None,
        fault: Some(fault.clone()),
        quick_repair: false,
    };
    let store = Store::open(dir.path(), opts).expect("the store opens");
    let event = NewEvent {
        source: "shop".into(),
        event_type: Some("order.paid".into()),
        received_ms: T0,
        dedup: None,
        dedup_scope: None,
        body_dedup: None,
        budget: None,
        headers: Vec::new(),
        query: String::new(),
        body: bytes::Bytes::from_static(b"{}"),
        endpoints: vec!["e".into()],
        order_keys: Vec::new(),
    };
    let IngestOutcome::Accepted { deliveries, .. } = store.ingest(event).await.expect("ingest")
    else {
        panic!("not accepted");
    };
    let id = deliveries[0].0;
    let batch = store
        .claim(
            "e",
            T0,
            1,
            HashSet::new(),
            T0 + LEASE_MS,
            ClaimLimits {
                pull,
                ..ClaimLimits::default()
            },
        )
        .await
        .expect("claim");
    store.probe().await.expect("leased");
    let completion = Completion {
        delivery_id: id,
        lease_token: batch.items[0].lease_token,
        attempt: Attempt {
            at_ms: T0,
            status_code: Some(200),
            latency_ms: 1,
            error: None,
            response_excerpt: b"ok".to_vec(),
        },
        next: Next::Delivered,
        health: None,
        strict: pull,
        waited_on: false,
    };
    fault.fail_writes(true);
    assert!(store.complete(completion.clone()).await.is_err());
    fault.fail_writes(false);
    // The writer reopens the file before its next write (at most every 500 ms).
    eventually_async("recorded on a retry", async || {
        store
            .complete(completion.clone())
            .await
            .is_ok_and(|done| !done.stale)
    })
    .await;
    let d = store.delivery(id).await.expect("read").expect("stored");
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Delivered, 1));
    store.close().await;
}
