//! The contract of the store's broadcast to live views (`store::notices`): each new event and
//! each recorded result is announced once committed, and what wrote nothing announces nothing.

use std::sync::Arc;

use hookgate::model::event::DeliveryStatus::{Dead, Retrying};
use hookgate::store::notices::Announcement;
use tokio::sync::broadcast::error::TryRecvError;

use super::super::*;

pub(in crate::store) async fn an_ingest_is_announced_after_its_commit(b: &impl Backend) {
    let f = Fixture::with_backlog(b, 2).await;
    let mut live = f.store.notices().subscribe();
    // Whoever hears of an event can read it at once: it was announced after its commit.
    let store = f.store.clone();
    let mut heard = f.store.notices().subscribe();
    let reader = tokio::spawn(async move {
        let announced = heard.recv().await.expect("announced");
        let Announcement::Event { event_id, .. } = *announced else {
            panic!("not an event: {announced:?}");
        };
        store.event(event_id).await.expect("read").is_some()
    });
    let (event_id, ids) = f.accept(f.event(&["a"])).await;
    assert!(reader.await.expect("joined"), "announced before its commit");
    // Announced before the ingest was answered: nothing to wait for.
    let got = live.try_recv().expect("announced");
    assert_eq!(
        *got,
        Announcement::Event {
            event_id,
            source: "shop".into(),
            event_type: Some("order.paid".into()),
            received_ms: f.now(),
            deliveries: vec![(ids[0], "a".to_string())],
        }
    );

    // A duplicate and an event over the backlog write nothing, and announce nothing.
    let keyed = |f: &Fixture| NewEvent {
        dedup: Some(("k1".to_string(), 1_000)),
        ..f.event(&["a"])
    };
    let (first, _) = f.accept(keyed(&f)).await;
    assert!(
        matches!(*live.try_recv().expect("announced"), Announcement::Event { event_id, .. } if event_id == first)
    );
    let again = f.store.ingest(keyed(&f)).await.expect("ingest");
    assert_eq!(again, IngestOutcome::Duplicate { event_id: first });
    let refused = f.store.ingest(f.event(&["a", "b"])).await;
    assert!(
        matches!(refused, Err(StoreError::Backlog { .. })),
        "{refused:?}"
    );
    assert_eq!(
        live.try_recv().map(Arc::unwrap_or_clone),
        Err(TryRecvError::Empty)
    );
}

pub(in crate::store) async fn a_recorded_result_is_announced_with_the_deliverys_new_state(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let id = f.one("a").await;
    let event_id = f.get(id).await.event_id;
    let mut live = f.store.notices().subscribe();
    f.complete(id, 503, Next::RetryAt(T0 + 1_000)).await;
    let result = |status, attempts| Announcement::Result {
        delivery_id: id,
        event_id,
        endpoint: "a".into(),
        status,
        attempts,
    };
    assert_eq!(*live.try_recv().expect("announced"), result(Retrying, 1));
    f.kill(id).await;
    assert_eq!(*live.try_recv().expect("announced"), result(Dead, 2));
    // A second result for a settled delivery changes nothing, and says nothing.
    f.kill(id).await;
    assert_eq!(
        live.try_recv().map(Arc::unwrap_or_clone),
        Err(TryRecvError::Empty)
    );
}

pub(in crate::store) async fn a_requeue_is_announced_with_its_deliveries(b: &impl Backend) {
    use hookgate::store::Requeue;
    let f = Fixture::open(b).await;
    let id = f.one("a").await;
    f.kill(id).await;
    let mut live = f.store.notices().subscribe();
    let replay_all = async || {
        f.store
            .requeue(Requeue::Dead {
                filter: Default::default(),
                ids: None,
                after: None,
            })
            .await
            .expect("replay")
    };
    replay_all().await;
    assert_eq!(
        *live.try_recv().expect("announced"),
        Announcement::Requeued {
            deliveries: vec![(id, "a".into())]
        }
    );
    // A requeue that takes nothing says nothing.
    replay_all().await;
    assert_eq!(
        live.try_recv().map(Arc::unwrap_or_clone),
        Err(TryRecvError::Empty)
    );
}
