//! The contract of an event's payload beyond its body and headers: the request's query string
//! is kept with them (issue 18: payload filters may match on it, and an event's routing is
//! explained by evaluating them again on what was stored), read back exactly as it arrived,
//! after a restart too; and an event with one is delivered and searched like any other.

use std::collections::BTreeSet;

use hookgate::model::event::Payload;
use hookgate::store::query::Filter;

use super::super::*;

/// The stored payload of `id`.
async fn payload(f: &Fixture, id: EventId) -> Payload {
    f.store.event(id).await.expect("read").expect("stored").1
}

pub(in crate::store) async fn an_events_query_comes_back_as_stored(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let (plain, _) = f.accept(f.event(&["a"])).await;
    // Raw, as ingress takes it from the URI: escapes, repeats and bare keys as they came.
    let raw = "site=eu&tag=a&tag=b&q=%20x%2F&empty=&flag";
    let (queried, ids) = f
        .accept(NewEvent {
            query: raw.into(),
            ..f.event(&["a"])
        })
        .await;

    let mut expected = payload(&f, plain).await;
    assert_eq!(expected.query, "", "an event without a query has none");
    expected.query = raw.into();
    assert_eq!(
        payload(&f, queried).await,
        expected,
        "the same, with its query"
    );

    // Delivered as any other: its body reaches the schedule.
    let batch = f
        .store
        .due("a", f.now(), usize::MAX, HashSet::new())
        .await
        .expect("schedule");
    let sent: Vec<_> = batch.items.iter().map(|d| d.delivery_id).collect();
    assert!(sent.contains(&ids[0]), "{sent:?}");
    assert!(
        batch
            .items
            .iter()
            .all(|d| d.body.as_ref() == br#"{"id":1}"#)
    );

    // Searched as any other, listed and dead-lettered.
    let body = Filter {
        contains: Some(br#""id":1"#.to_vec()),
        ..Filter::default()
    };
    let page = f.store.list_events(&body, 10, None).await.expect("list");
    let found: BTreeSet<EventId> = page.items.iter().map(|e| e.event.id).collect();
    assert_eq!(found, BTreeSet::from([plain, queried]));
    f.kill(ids[0]).await;
    let dead = f.store.list_dead(&body, 10, None).await.expect("list");
    assert_eq!(
        dead.items.iter().map(|d| d.delivery_id).collect::<Vec<_>>(),
        [ids[0]]
    );

    // Kept across a restart, as stored.
    let f = f.restart(b, T0 + 1).await;
    assert_eq!(payload(&f, queried).await, expected);
    assert_eq!(payload(&f, plain).await.query, "");
}
