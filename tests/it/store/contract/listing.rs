//! The contract of listing: events and dead letters newest first, filtered, in pages whose
//! opaque cursors go on where the last stopped, and a cursor the listing did not give out is
//! refused.

use hookgate::model::event::DeliveryStatus::Dead;
use hookgate::store::query::Filter;

use super::super::*;

/// The ids of a page of events, and whether it has a next one.
async fn events(
    f: &Fixture,
    filter: &Filter,
    limit: usize,
    cursor: Option<&str>,
) -> (Vec<EventId>, Option<String>) {
    let page = f
        .store
        .list_events(filter, limit, cursor)
        .await
        .expect("list");
    (
        page.items.iter().map(|e| e.event.id).collect(),
        page.next_cursor,
    )
}

pub(in crate::store) async fn listing_pages_newest_first_with_filters_and_cursors(
    b: &impl Backend,
) {
    let f = Fixture::open(b).await;
    let mut ids = Vec::new();
    for (i, endpoints) in [&["a"][..], &["a", "b"], &["b"], &["a"], &[]]
        .iter()
        .enumerate()
    {
        f.clock.set(T0 + i as u64);
        ids.push(f.accept(f.event(endpoints)).await);
    }
    f.clock.set(T0 + 5);
    let other = f
        .accept(NewEvent {
            source: "crm".into(),
            ..f.event(&["a"])
        })
        .await;
    f.clock.set(T0 + 10);
    f.kill(ids[1].1[0]).await;
    f.clock.set(T0 + 20);
    f.kill(ids[3].1[0]).await;
    let e = |i: usize| ids[i].0;

    // Every event, newest first, two at a time.
    let all = Filter::default();
    let (page, next) = events(&f, &all, 2, None).await;
    assert_eq!(page, [other.0, e(4)]);
    let (page, next) = events(&f, &all, 2, next.as_deref()).await;
    assert_eq!(page, [e(3), e(2)]);
    let (page, next) = events(&f, &all, 2, next.as_deref()).await;
    assert_eq!((page, next), (vec![e(1), e(0)], None));
    // Filters: by endpoint, by a delivery's status, by source, by arrival.
    let f = &f;
    let by = async |filter: Filter| events(f, &filter, 10, None).await.0;
    assert_eq!(by(endpoint_b()).await, [e(2), e(1)]);
    let dead = Filter {
        status: Some(Dead),
        ..Filter::default()
    };
    assert_eq!(by(dead).await, [e(3), e(1)]);
    let source = Filter {
        source: Some("crm".into()),
        ..Filter::default()
    };
    assert_eq!(by(source).await, [other.0]);
    let window = Filter {
        since_ms: Some(T0 + 1),
        until_ms: Some(T0 + 3),
        ..Filter::default()
    };
    assert_eq!(by(window).await, [e(2), e(1)]);

    // Dead letters, most recently dead first, one at a time.
    let page = f.store.list_dead(&all, 1, None).await.expect("list");
    assert_eq!(page.items.len(), 1);
    let d = &page.items[0];
    assert_eq!(
        (
            d.delivery_id,
            d.event_id,
            d.endpoint_id.as_str(),
            d.dead_at_ms
        ),
        (ids[3].1[0], e(3), "a", T0 + 20)
    );
    assert_eq!(
        (d.source.as_str(), d.event_type.as_deref(), d.attempts),
        ("shop", Some("order.paid"), 1)
    );
    assert_eq!(d.last_error.as_deref(), Some("gave up"));
    let cursor = page.next_cursor.expect("a next page");
    let page = f
        .store
        .list_dead(&all, 1, Some(&cursor))
        .await
        .expect("list");
    assert_eq!(page.items[0].delivery_id, ids[1].1[0]);
    assert_eq!(page.next_cursor, None);
    let since = Filter {
        since_ms: Some(T0 + 15),
        ..Filter::default()
    };
    let page = f.store.list_dead(&since, 10, None).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert!(
        f.store
            .list_dead(&endpoint_b(), 10, None)
            .await
            .expect("list")
            .items
            .is_empty()
    );

    // A cursor this listing did not give out.
    let events_cursor = events(f, &all, 1, None).await.1.expect("a cursor");
    for (listing, bad) in [
        ("events", cursor.as_str()),
        ("events", "garbage"),
        ("dead", events_cursor.as_str()),
    ] {
        let refused = match listing {
            "events" => f.store.list_events(&all, 1, Some(bad)).await.err(),
            _ => f.store.list_dead(&all, 1, Some(bad)).await.err(),
        };
        assert_eq!(refused, Some(StoreError::BadCursor), "{listing} {bad}");
    }
}

fn endpoint_b() -> Filter {
    Filter {
        endpoint: Some("b".into()),
        ..Filter::default()
    }
}

pub(in crate::store) async fn a_filter_that_rarely_matches_still_pages_in_order(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let mut rare = Vec::new();
    for i in 0..300u64 {
        f.clock.set(T0 + i);
        let source = if i % 140 == 10 { "rare" } else { "shop" };
        let (id, _) = f
            .accept(NewEvent {
                source: source.into(),
                ..f.event(&["a"])
            })
            .await;
        if source == "rare" {
            rare.push(id);
        }
    }
    let filter = Filter {
        source: Some("rare".into()),
        ..Filter::default()
    };
    let (page, next) = events(&f, &filter, 2, None).await;
    assert_eq!(page, [rare[2], rare[1]]);
    let (page, next) = events(&f, &filter, 2, next.as_deref()).await;
    assert_eq!((page, next), (vec![rare[0]], None));
}
