//! The records' round trips, versions and golden bytes.

use super::*;

#[test]
fn records_round_trip_and_carry_a_version() {
    let rec = DeliveryRecord {
        event_id: 7,
        endpoint_id: "billing".into(),
        status: StatusRecord::Retrying,
        attempts: 2,
        due_ms: 10,
        created_ms: 1,
        updated_ms: 2,
        last_status_code: Some(503),
        last_error: Some("HTTP 503".into()),
        cycle_base: 0,
        cycle_started_ms: 1,
        ext: DeliveryExt::default(),
    };
    let bytes = rec.encode();
    assert_eq!(bytes[0], RECORD_VERSION);
    assert_eq!(DeliveryRecord::decode(&bytes), Ok(rec.clone()));
    let ordered = DeliveryRecord {
        ext: DeliveryExt {
            order: Some(("cus_1".into(), 42)),
            blocked: true,
            cycle_held_ms: 9,
        },
        ..rec.clone()
    };
    let bytes = ordered.encode();
    assert_eq!(bytes[0], DELIVERY_EXT_VERSION);
    assert_eq!(DeliveryRecord::decode(&bytes), Ok(ordered));
    // Version 2 is version 1's bytes with the extension after them.
    assert!(bytes[1..].starts_with(&rec.encode()[1..]));
}

#[test]
fn payloads_keep_the_encoding_of_earlier_builds() {
    // Version 1 as first written: bytes as sequences of u8.
    #[derive(Serialize)]
    struct Before {
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    }
    let before = encode(&Before {
        headers: vec![("webhook-id".into(), b"msg_1".to_vec())],
        body: (0..=255u8).collect(),
    });
    let now = PayloadRef {
        headers: vec![("webhook-id", serde_bytes::Bytes::new(b"msg_1"))],
        body: &(0..=255u8).collect::<Vec<_>>(),
        query: "",
    }
    .encode();
    assert_eq!(before, now);
    let decoded: Payload = PayloadRecord::decode(&before).expect("decodes").into();
    assert_eq!(decoded.header("webhook-id"), Some(&b"msg_1"[..]));
    assert_eq!(decoded.body, (0..=255u8).collect::<Vec<_>>());
    // A record of a build before the query was kept reads as one without a query.
    assert_eq!(decoded.query, "");
}

#[test]
fn a_payload_with_a_query_is_version_1_with_the_query_after_it() {
    let plain = PayloadRecord {
        headers: vec![("h".into(), serde_bytes::ByteBuf::from(b"v".to_vec()))],
        body: b"{}".to_vec(),
        query: String::new(),
    };
    let with_query = PayloadRecord {
        query: "site=eu&x=%20".into(),
        ..plain.clone()
    };
    let bytes = with_query.encode();
    assert_eq!(bytes[0], PAYLOAD_QUERY_VERSION);
    assert!(bytes[1..].starts_with(&plain.encode()[1..]));
    assert_eq!(PayloadRecord::decode(&bytes), Ok(with_query.clone()));
    let borrowed = PayloadRef::decode(&bytes).expect("decodes");
    assert_eq!(
        (borrowed.body, borrowed.query),
        (&b"{}"[..], "site=eu&x=%20")
    );
    // Without a query: version 1, read back with none, by both forms.
    let bytes = plain.encode();
    assert_eq!(bytes[0], RECORD_VERSION);
    assert_eq!(PayloadRecord::decode(&bytes), Ok(plain));
    assert_eq!(PayloadRef::decode(&bytes).expect("decodes").query, "");
}

#[test]
fn a_broken_or_unknown_payload_is_an_error() {
    let with_query = PayloadRecord {
        headers: vec![],
        body: b"{}".to_vec(),
        query: "a=1".into(),
    }
    .encode();
    // The query cut short, or missing after a version 2's fields.
    for cut in [with_query.len() - 1, with_query.len() - 4] {
        assert!(
            matches!(
                PayloadRecord::decode(&with_query[..cut]),
                Err(StoreError::Corrupt(_))
            ),
            "{cut}"
        );
        assert!(PayloadRef::decode(&with_query[..cut]).is_err(), "{cut}");
    }
    // Not UTF-8 where the query should be.
    let mut bad = with_query.clone();
    let last = bad.len() - 1;
    bad[last] = 0xff;
    assert!(PayloadRecord::decode(&bad).is_err());
    assert!(PayloadRef::decode(&bad).is_err());
    for bytes in [&[][..], &[3u8, 0, 0][..], &[PAYLOAD_QUERY_VERSION][..]] {
        assert!(PayloadRecord::decode(bytes).is_err(), "{bytes:?}");
        assert!(PayloadRef::decode(bytes).is_err(), "{bytes:?}");
    }
}

proptest::proptest! {
    /// Both forms write the same bytes, and either reads back what was written.
    #[test]
    fn payloads_round_trip_through_both_forms(
        headers in proptest::collection::vec(
            ("[a-z-]{1,12}", proptest::collection::vec(proptest::num::u8::ANY, 0..16)),
            0..4,
        ),
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        query in "[ -~]{0,40}",
    ) {
        let owned = PayloadRecord {
            headers: headers
                .iter()
                .map(|(n, v)| (n.clone(), serde_bytes::ByteBuf::from(v.clone())))
                .collect(),
            body: body.clone(),
            query: query.clone(),
        };
        let borrowed = PayloadRef {
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str(), serde_bytes::Bytes::new(v)))
                .collect(),
            body: &body,
            query: &query,
        };
        let bytes = owned.encode();
        proptest::prop_assert_eq!(&bytes, &borrowed.encode());
        proptest::prop_assert_eq!(PayloadRecord::decode(&bytes), Ok(owned));
        let back = PayloadRef::decode(&bytes).expect("decodes");
        proptest::prop_assert_eq!((back.body, back.query), (&body[..], query.as_str()));
    }
}

/// The bytes each record has always had (taken from the build before the records became
/// private to the store): a change of the model or of these types must not change them.
#[test]
fn the_format_is_byte_for_byte_what_it_was() {
    let statuses = [
        (DeliveryStatus::Pending, 0u8),
        (DeliveryStatus::Delivering, 1),
        (DeliveryStatus::Retrying, 2),
        (DeliveryStatus::Delivered, 3),
        (DeliveryStatus::Dead, 4),
    ];
    for (status, index) in statuses {
        let d = Delivery {
            id: DeliveryId(99),
            event_id: EventId(7),
            endpoint_id: "billing".into(),
            status,
            attempts: 2,
            due_ms: 10,
            created_ms: 1,
            updated_ms: 2,
            last_status_code: Some(503),
            last_error: Some("HTTP 503".into()),
            cycle_base: 0,
            cycle_started_ms: 1,
            order: None,
            blocked: false,
            cycle_held_ms: 0,
        };
        let bytes = DeliveryRecord::from(d.clone()).encode();
        let expected =
            format!("01070762696c6c696e67{index:02x}020a010201f703010848545450203530330001");
        assert_eq!(hex::encode(&bytes), expected, "{status:?}");
        let back = DeliveryRecord::decode(&bytes).expect("decodes");
        assert_eq!(back.into_model(99), d);
        // Version 2: the same, then (order key and place, blocked, held clock).
        let ordered = Delivery {
            order: Some(("k".into(), 300)),
            blocked: true,
            cycle_held_ms: 5,
            ..d.clone()
        };
        let bytes = DeliveryRecord::from(ordered.clone()).encode();
        let expected = format!(
            "02070762696c6c696e67{index:02x}020a010201f703010848545450203530330001\
             01016bac020105"
        );
        assert_eq!(hex::encode(&bytes), expected, "{status:?}");
        let back = DeliveryRecord::decode(&bytes).expect("decodes");
        assert_eq!(back.into_model(99), ordered);
    }
    let ev = EventRecord {
        source: "s".into(),
        event_type: Some("t".into()),
        received_ms: 1_700_000_000_000,
        dedup_key: Some("k".into()),
        deliveries: vec![(u128::MAX - 1, "e".into())],
    };
    assert_eq!(
        hex::encode(encode(&ev)),
        "01017301017480d095ffbc3101016b01feffffffffffffffffffffffffffffffffff030165"
    );
    let attempt = Attempt {
        at_ms: 5,
        status_code: Some(200),
        latency_ms: 3,
        error: None,
        response_excerpt: b"ok".to_vec(),
    };
    let bytes = encode(&AttemptRecord::from(&attempt));
    assert_eq!(hex::encode(&bytes), "010501c8010300026f6b");
    assert_eq!(
        Attempt::from(decode::<AttemptRecord>(&bytes).expect("decodes")),
        attempt
    );
    let payload = PayloadRecord {
        headers: vec![("h".into(), serde_bytes::ByteBuf::from(b"v".to_vec()))],
        body: b"{}".to_vec(),
        query: String::new(),
    };
    assert_eq!(hex::encode(payload.encode()), "010101680176027b7d");
    // Version 2: the same, then the query.
    let with_query = PayloadRecord {
        query: "site=eu".into(),
        ..payload.clone()
    };
    let bytes = with_query.encode();
    assert_eq!(hex::encode(&bytes), "020101680176027b7d07736974653d6575");
    assert_eq!(PayloadRecord::decode(&bytes), Ok(with_query));
    let back: Payload = PayloadRecord::decode(&hex::decode("010101680176027b7d").expect("hex"))
        .expect("decodes")
        .into();
    assert_eq!((back.query.as_str(), back.body.as_ref()), ("", &b"{}"[..]));
}

#[test]
fn unknown_versions_and_garbage_are_errors() {
    let mut bytes = encode(&EventRecord {
        source: "s".into(),
        event_type: None,
        received_ms: 0,
        dedup_key: None,
        deliveries: vec![],
    });
    bytes[0] = 99;
    assert!(matches!(
        decode::<EventRecord>(&bytes),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        decode::<EventRecord>(&[]),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        decode::<EventRecord>(&[RECORD_VERSION, 0xff]),
        Err(StoreError::Corrupt(_))
    ));
}
