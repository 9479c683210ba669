//! Properties over random filters and payloads: `matches` agrees with `explain`, `$not`
//! inverts, `$neq` is `$not $eq`, and neither compiling nor evaluating panics.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::{PayloadFilter, Subject, fuzz};

/// Payload values over a small vocabulary, so filters find what they look for.
fn payload() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        prop_oneof![Just(1.5), Just(-0.5), Just(2.0)].prop_map(Value::from),
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("ab"),
            Just("1"),
            Just("true"),
            Just("")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(String::from)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        prop_oneof![Just("a"), Just("b"), Just("1"), Just("true")].prop_map(Value::from),
    ]
}

/// Field conditions, mostly valid.
fn condition() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        scalar(),
        scalar().prop_map(|v| json!({ "$eq": v })),
        scalar().prop_map(|v| json!({ "$neq": v })),
        (-3i64..4).prop_map(|n| json!({ "$gt": n })),
        (-3i64..4).prop_map(|n| json!({ "$lte": n })),
        prop::collection::vec(scalar(), 1..3).prop_map(|v| json!({ "$in": v })),
        prop::collection::vec(scalar(), 1..3).prop_map(|v| json!({ "$nin": v })),
        any::<bool>().prop_map(|b| json!({ "$exist": b })),
        prop_oneof![Just("^a"), Just("b$"), Just("[")].prop_map(|r| json!({ "$regex": r })),
        prop_oneof![Just("a"), Just("")].prop_map(|p| json!({ "$startsWith": p })),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| json!({ "$not": c })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "$or": v })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "$and": v })),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            (
                prop_oneof![Just("a"), Just("b"), Just("a.b"), Just("c.a")],
                inner
            )
                .prop_map(|(k, c)| json!({ k: c })),
        ]
    })
}

fn filter() -> impl Strategy<Value = Value> {
    let fields = prop::collection::btree_map(
        prop_oneof![Just("a"), Just("b"), Just("a.b"), Just("c")].prop_map(String::from),
        condition(),
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
    .boxed();
    let part = prop_oneof![
        fields.clone().prop_map(|f| json!({ "body": f })),
        fields.clone().prop_map(|f| json!({ "headers": f })),
        fields.prop_map(|f| json!({ "query": f })),
    ];
    part.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|f| json!({ "$not": f })),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({ "$or": v })),
            prop::collection::vec(inner, 1..3).prop_map(|v| json!({ "$and": v })),
        ]
    })
}

/// Arbitrary JSON whose keys include the filter's own words.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    let word = prop_oneof![
        Just("body"),
        Just("headers"),
        Just("query"),
        Just("$and"),
        Just("$or"),
        Just("$not"),
        Just("$eq"),
        Just("$neq"),
        Just("$gt"),
        Just("$in"),
        Just("$nin"),
        Just("$exist"),
        Just("$regex"),
        Just("$startsWith"),
        Just("a"),
        Just("a.b"),
        Just(""),
        Just("$x"),
    ]
    .prop_map(String::from);
    leaf.prop_recursive(6, 48, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(word.clone(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Headers and a query over the same small vocabulary as payloads.
fn pairs() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(
        (
            key(),
            prop_oneof![
                Just("a"),
                Just("b"),
                Just("1"),
                Just(" 2 "),
                Just("true"),
                Just("\u{ff}")
            ]
            .prop_map(|v| v.as_bytes().to_vec()),
        ),
        0..4,
    )
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (key(), prop_oneof![Just("a"), Just("1"), Just("b%20")]),
        0..4,
    )
    .prop_map(|kv| {
        kv.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn compiled(doc: &Value) -> Option<PayloadFilter> {
    PayloadFilter::compile(doc).ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matches_agrees_with_explain(
        doc in filter(), body in proptest::option::of(payload()), headers in pairs(), q in query()
    ) {
        if let Some(f) = compiled(&doc) {
            let s = Subject::new(body.as_ref(), &headers, &q);
            let explained = f.explain(&s);
            prop_assert_eq!(f.matches(&s), explained.is_ok(), "{:?}", explained);
            if let Err(r) = explained {
                prop_assert!(!r.clause.is_empty() && !r.reason.is_empty());
            }
        }
    }

    #[test]
    fn not_inverts(
        doc in filter(), c in condition(), body in proptest::option::of(payload()),
        headers in pairs(), q in query()
    ) {
        let s = Subject::new(body.as_ref(), &headers, &q);
        if let (Some(f), Some(not)) = (compiled(&doc), compiled(&json!({ "$not": doc }))) {
            prop_assert_eq!(not.matches(&s), !f.matches(&s));
        }
        // On one field of an object body, a field's $not inverts its condition too.
        let object = json!({ "a": body.clone().unwrap_or(Value::Null) });
        let s = Subject::new(Some(&object), &headers, &q);
        let plain = compiled(&json!({"body": {"a": c.clone()}}));
        let not = compiled(&json!({"body": {"a": {"$not": c}}}));
        if let (Some(plain), Some(not)) = (plain, not) {
            prop_assert_eq!(not.matches(&s), !plain.matches(&s));
        }
    }

    #[test]
    fn neq_is_not_eq(
        v in scalar(), path in prop_oneof![Just("a"), Just("a.b"), Just("c.a")],
        body in proptest::option::of(payload()), headers in pairs(), q in query()
    ) {
        let s = Subject::new(body.as_ref(), &headers, &q);
        for part in ["body", "headers", "query"] {
            let neq = compiled(&json!({ part: { path: { "$neq": v.clone() } } }));
            let not_eq = compiled(&json!({ part: { path: { "$not": { "$eq": v.clone() } } } }));
            let (Some(neq), Some(not_eq)) = (neq, not_eq) else {
                prop_assert!(false, "both compile");
                return Ok(());
            };
            prop_assert_eq!(neq.matches(&s), not_eq.matches(&s));
        }
    }

    #[test]
    fn compile_never_panics(doc in any_json()) {
        let _ = PayloadFilter::compile(&doc);
    }

    #[test]
    fn evaluation_never_panics(doc in any_json(), body in any_json(), headers in pairs(), q in ".{0,12}") {
        if let Some(f) = compiled(&doc) {
            let s = Subject::new(Some(&body), &headers, &q);
            prop_assert_eq!(f.matches(&s), f.explain(&s).is_ok());
        }
    }

    #[test]
    fn fuzz_entry_never_panics(data in prop::collection::vec(any::<u8>(), 0..64), doc in filter(), body in payload()) {
        fuzz::fuzz_filter(&data);
        let mut input = serde_json::to_vec(&doc).unwrap_or_default();
        input.push(0);
        input.extend(serde_json::to_vec(&body).unwrap_or_default());
        input.extend(b"\0a=1&b=2\0a: 1\nB: b\n");
        fuzz::fuzz_filter(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Filters planned together, many of them sharing clauses (each a combination of a few
    /// random ones), answer as each does alone.
    #[test]
    fn a_plan_answers_as_each_filter_alone(
        docs in prop::collection::vec(filter(), 1..4),
        picks in prop::collection::vec((0usize..8, 0usize..8, 0usize..3), 1..8),
        body in proptest::option::of(payload()), headers in pairs(), q in query()
    ) {
        let combined: Vec<Value> = picks
            .iter()
            .map(|&(a, b, how)| {
                let (a, b) = (&docs[a % docs.len()], &docs[b % docs.len()]);
                match how {
                    0 => a.clone(),
                    1 => json!({ "$and": [a, b] }),
                    _ => json!({ "$or": [a, { "$not": b }] }),
                }
            })
            .collect();
        let filters: Vec<Option<PayloadFilter>> = combined.iter().map(compiled).collect();
        let plan = super::super::Plan::new(filters.iter().map(Option::as_ref));
        let s = plan.subject(body.as_ref(), &headers, &q);
        let alone = Subject::new(body.as_ref(), &headers, &q);
        for (i, f) in filters.iter().enumerate() {
            prop_assert_eq!(plan.matches(i, &s), f.as_ref().map(|f| f.matches(&alone)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Equality clauses on a few paths, the most group-prone shape, against random bodies.
    #[test]
    fn equality_groups_answer_as_each_filter_alone(
        wanted in prop::collection::vec(
            (prop_oneof![Just("a"), Just("b"), Just("a.b"), Just("c.a")], word()), 2..8
        ),
        // Mostly objects whose fields are the filters' own words, so groups find them.
        root in prop::collection::btree_map(key(), prop_oneof![3 => word(), 1 => payload()], 0..4),
        shape in 0u8..4,
    ) {
        let root = Value::Object(root.into_iter().collect());
        let body = match shape {
            0 => Some(json!({ "a": root.clone(), "c": [root] })),
            1 => Some(json!([root])),
            2 => None,
            _ => Some(root),
        };
        let filters: Vec<Option<PayloadFilter>> = wanted
            .iter()
            .map(|(path, value)| compiled(&json!({ "body": { *path: value } })))
            .collect();
        let plan = super::super::Plan::new(filters.iter().map(Option::as_ref));
        let s = plan.subject(body.as_ref(), &[], "");
        let alone = Subject::new(body.as_ref(), &[], "");
        for (i, f) in filters.iter().enumerate() {
            prop_assert_eq!(plan.matches(i, &s), f.as_ref().map(|f| f.matches(&alone)));
        }
    }
}
/// Mostly the strings equality groups are made of.
fn word() -> impl Strategy<Value = Value> {
    prop_oneof![3 => prop_oneof![Just("a"), Just("b")].prop_map(Value::from), 1 => scalar()]
}
