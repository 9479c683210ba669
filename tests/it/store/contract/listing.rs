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

/// A filter that searches the payload for `needle`.
fn containing(needle: &[u8]) -> Filter {
    Filter {
        contains: Some(needle.to_vec()),
        ..Filter::default()
    }
}

pub(in crate::store) async fn contains_finds_a_literal_in_the_payload_bytes(b: &impl Backend) {
    let f = Fixture::open(b).await;
    let with_body = |body: &'static [u8]| NewEvent {
        body: bytes::Bytes::from_static(body),
        ..f.event(&["a"])
    };
    f.clock.set(T0);
    let (json, _) = f
        .accept(with_body(br#"{"customer":"cus_42","total":10}"#))
        .await;
    f.clock.set(T0 + 1);
    let (binary, _) = f.accept(with_body(b"\x00\xff\xfecus_42\x80\x00")).await;
    f.clock.set(T0 + 2);
    let (other, _) = f.accept(with_body(br#"{"customer":"cus_7"}"#)).await;
    f.clock.set(T0 + 3);
    let (crm, _) = f
        .accept(NewEvent {
            source: "crm".into(),
            ..with_body(br#"{"customer":"cus_42"}"#)
        })
        .await;
    let by = async |filter: Filter| events(&f, &filter, 10, None).await;

    // A literal substring of the bytes, whatever they are, newest first.
    assert_eq!(
        by(containing(b"cus_42")).await,
        (vec![crm, binary, json], None)
    );
    assert_eq!(by(containing(b"\xff\xfecus")).await, (vec![binary], None));
    assert_eq!(by(containing(b"\x00")).await, (vec![binary], None));
    // Case-sensitive, no wildcards, and a text found nowhere finds nothing.
    assert_eq!(by(containing(b"CUS_42")).await, (vec![], None));
    assert_eq!(by(containing(b"cus_%")).await, (vec![], None));
    assert_eq!(by(containing(b"cus_.")).await, (vec![], None));
    assert_eq!(by(containing(b"nowhere")).await, (vec![], None));
    // With the other filters: all must hold.
    let shop = Filter {
        source: Some("shop".into()),
        ..containing(b"\"cus_")
    };
    assert_eq!(by(shop).await, (vec![other, json], None));
    // Pages of one go on with the same search.
    let (page, next) = events(&f, &containing(b"cus_42"), 1, None).await;
    assert_eq!(page, [crm]);
    let (page, _) = events(&f, &containing(b"cus_42"), 1, next.as_deref()).await;
    assert_eq!(page, [binary]);
}

pub(in crate::store) async fn contains_keeps_the_scan_bound_and_says_where_it_stopped(
    b: &impl Backend,
) {
    use hookgate::store::query::SCAN_LIMIT;
    let f = Fixture::open(b).await;
    // The only match is the oldest event, under SCAN_LIMIT + 5 that do not match.
    f.clock.set(T0);
    let (needle, _) = f
        .accept(NewEvent {
            body: bytes::Bytes::from_static(b"{\"note\":\"the needle\"}"),
            ..f.event(&[])
        })
        .await;
    f.clock.set(T0 + 1_000);
    // In batches the ingest queue takes (it answers Busy past its depth), each committed at
    // once rather than one by one.
    let mut left = SCAN_LIMIT + 5;
    while left > 0 {
        let batch = left.min(100);
        left -= batch;
        let mut ingests = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let (store, event) = (f.store.clone(), f.event(&[]));
            ingests.spawn(async move { store.ingest(event).await.expect("ingest") });
        }
        while let Some(done) = ingests.join_next().await {
            assert!(matches!(
                done.expect("ingested"),
                IngestOutcome::Accepted { .. }
            ));
        }
    }
    let filter = containing(b"needle");
    // The first page looks at SCAN_LIMIT rows, finds nothing, and says where it stopped: a
    // cursor among the events it did not look at, newer than the needle.
    let (page, next) = events(&f, &filter, 50, None).await;
    assert!(page.is_empty());
    let next = next.expect("a page stopped at its bound has a cursor");
    let stopped: EventId = next.parse().expect("an event id");
    assert!(stopped > needle, "{stopped} is not newer than {needle}");
    assert_eq!(stopped.timestamp_ms(), T0 + 1_000);
    // Going on from there finds it, and the end.
    assert_eq!(
        events(&f, &filter, 50, Some(&next)).await,
        (vec![needle], None)
    );
}

pub(in crate::store) async fn dead_letters_list_and_replay_by_payload_text(b: &impl Backend) {
    use hookgate::store::Requeue;
    use std::collections::BTreeSet;
    let f = Fixture::open(b).await;
    let dead_with = async |body: &'static [u8]| {
        let (_, ds) = f
            .accept(NewEvent {
                body: bytes::Bytes::from_static(body),
                ..f.event(&["a"])
            })
            .await;
        f.kill(ds[0]).await;
        ds[0]
    };
    f.clock.set(T0);
    let json = dead_with(br#"{"customer":"cus_42"}"#).await;
    f.clock.set(T0 + 1);
    let other = dead_with(br#"{"customer":"cus_7"}"#).await;
    f.clock.set(T0 + 2);
    let binary = dead_with(b"\xffcus_42\x00").await;
    let listed = async |filter: &Filter| -> Vec<DeliveryId> {
        let page = f.store.list_dead(filter, 10, None).await.expect("list");
        page.items.iter().map(|d| d.delivery_id).collect()
    };
    // Listed: only those whose event's body holds the text, byte for byte.
    assert_eq!(listed(&containing(b"cus_42")).await, [binary, json]);
    assert_eq!(listed(&containing(b"CUS_42")).await, []);
    let with_endpoint = Filter {
        endpoint: Some("b".into()),
        ..containing(b"cus_42")
    };
    assert_eq!(listed(&with_endpoint).await, []);
    // A replay by the same filter takes exactly what the list showed, and no other.
    let r = f
        .store
        .requeue(Requeue::Dead {
            filter: containing(b"cus_42"),
            ids: None,
            after: None,
        })
        .await
        .expect("replay");
    let replayed: BTreeSet<DeliveryId> = r.deliveries.iter().map(|(d, _)| *d).collect();
    assert_eq!(replayed, BTreeSet::from([json, binary]));
    assert_eq!(f.dead_letters().await, [other]);
}
