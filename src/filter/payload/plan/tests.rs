//! Plans share what filters ask alike and never change an answer (random filters and events
//! are in `tests/properties.rs`).

use serde_json::{Value, json};

use super::super::{PayloadFilter, Subject};
use super::{Plan, UNKNOWN};

fn compiled(docs: &[Value]) -> Vec<PayloadFilter> {
    docs.iter()
        .map(|d| PayloadFilter::compile(d).unwrap_or_else(|e| panic!("{d}: {e}")))
        .collect()
}

/// Each filter's answer in the plan, beside its answer alone, and how many shared answers the
/// event's memo holds afterwards.
fn answers(filters: &[PayloadFilter], body: &Value) -> (Vec<bool>, Vec<bool>, usize) {
    let plan = Plan::new(filters.iter().map(Some));
    let headers = vec![("x-github-event".to_string(), b"pull_request".to_vec())];
    let s = plan.subject(Some(body), &headers, "site=eu");
    let planned: Vec<bool> = (0..filters.len())
        .map(|i| plan.matches(i, &s).expect("a filter"))
        .collect();
    let alone = Subject::new(Some(body), &headers, "site=eu");
    let single: Vec<bool> = filters.iter().map(|f| f.matches(&alone)).collect();
    let remembered = s
        .memo
        .iter()
        .filter(|c| c.load(std::sync::atomic::Ordering::Relaxed) != UNKNOWN)
        .count();
    (planned, single, remembered)
}

/// The bench's shape: four clauses every filter has, and one of each filter's own.
fn bench_like(i: usize) -> Value {
    json!({ "body": { "$and": [
        { "type": "bench.event" }, { "pad": { "$exist": true } },
        { "n": { "$startsWith": "0" } }, { "type": { "$regex": "^bench[.]" } },
        { "k": format!("{i:04}") },
    ] } })
}

#[test]
fn clauses_written_alike_in_several_filters_are_shared_wherever_they_stand() {
    let filters = compiled(&(0..10).map(bench_like).collect::<Vec<_>>());
    let plan = Plan::new(filters.iter().map(Some));
    // The four common clauses, and the ten `k` clauses as one equality group; each whole
    // filter is its own.
    assert_eq!(plan.shared(), 4 + 10);
    assert_eq!(plan.groups.len(), 1);
    let body = json!({ "type": "bench.event", "k": "0003", "n": "0001", "pad": "x" });
    let (planned, single, remembered) = answers(&filters, &body);
    assert_eq!(planned, single);
    assert_eq!(planned.iter().filter(|m| **m).count(), 1);
    assert_eq!(remembered, 4 + 10);

    // The same clause under another path in its filter ($or, $not, an object's fields) and a
    // header clause; but not the same words under another part.
    let filters = compiled(&[
        json!({ "headers": { "x-github-event": "pull_request" }, "body": { "action": "opened" } }),
        json!({ "$or": [ { "headers": { "x-github-event": "pull_request" } }, { "query": { "x": 1 } } ] }),
        json!({ "body": { "$not": { "action": "opened" } } }),
        json!({ "query": { "x-github-event": "pull_request" } }),
    ]);
    let plan = Plan::new(filters.iter().map(Some));
    // The headers part and its clause, alike in 0 and 1; `action: opened` in 0 and 2.
    assert_eq!(plan.shared(), 3);
    let (planned, single, _) = answers(&filters, &json!({ "action": "opened" }));
    assert_eq!(planned, single);
    assert_eq!(planned, [true, true, false, false]);
}

#[test]
fn a_shared_clause_asked_of_each_element_of_an_array_body_is_not_remembered_for_the_body() {
    // Fields of one object hold in one element: `a: 1` is true of the first element only,
    // `b: 2` of the second only, so filter 0 fails; filters 1 and 2 ask `a: 1` of the body.
    let filters = compiled(&[
        json!({ "body": { "a": 1, "b": 2 } }),
        json!({ "body": { "a": 1 } }),
        json!({ "body": { "b": 2, "$not": { "a": 1 } } }),
        json!({ "body": { "b": 2 } }),
    ]);
    let body = json!([{ "a": 1, "b": 3 }, { "a": 2, "b": 2 }]);
    let (planned, single, _) = answers(&filters, &body);
    assert_eq!(planned, single);
    assert_eq!(planned, [false, true, false, true]);
}

#[test]
fn endpoints_without_a_filter_have_none_in_the_plan() {
    let f = compiled(&[json!({ "body": { "a": 1 } })]);
    let plan = Plan::new([None, Some(&f[0]), None]);
    let body = json!({ "a": 1 });
    let s = plan.subject(Some(&body), &[], "");
    assert_eq!(plan.len(), 3);
    assert_eq!(plan.matches(0, &s), None);
    assert_eq!(plan.matches(1, &s), Some(true));
    assert_eq!(plan.matches(3, &s), None);
    assert_eq!(plan.shared(), 0);
}

#[test]
fn equality_clauses_on_one_path_are_answered_together_and_exactly() {
    let filters = compiled(&[
        json!({ "body": { "site": "eu" } }),
        json!({ "body": { "site": "us" } }),
        json!({ "body": { "site": { "$eq": "eu" }, "n": 1 } }),
        json!({ "body": { "a.site": "eu" } }),
        json!({ "body": { "a.site": "us" } }),
    ]);
    let plan = Plan::new(filters.iter().map(Some));
    assert_eq!(plan.groups.len(), 2);
    for body in [
        json!({ "site": "eu", "n": 1 }),
        json!({ "site": "fr" }),
        json!({ "site": 5 }),
        json!({}),
        json!({ "site": ["us", "eu"] }),
        json!({ "site": null, "a": "eu" }),
        json!({ "a": { "site": "us" } }),
        json!({ "a": [{ "site": "x" }, { "site": "eu" }] }),
        json!([{ "site": "eu" }]),
    ] {
        let (planned, single, _) = answers(&filters, &body);
        assert_eq!(planned, single, "{body}");
    }
    // One clause asked answers the others of its group: `site` read once for the three.
    let body = json!({ "site": "us" });
    let s = plan.subject(Some(&body), &[], "");
    assert_eq!(plan.matches(1, &s), Some(true));
    let known = |s: &Subject<'_>| {
        s.memo
            .iter()
            .filter(|c| c.load(std::sync::atomic::Ordering::Relaxed) != UNKNOWN)
            .count()
    };
    assert_eq!(known(&s), 2);
    assert_eq!(plan.matches(0, &s), Some(false));
    assert_eq!(plan.matches(4, &s), Some(false));
    assert_eq!(known(&s), 4);
    // An array on the way: nothing is answered for the group; each clause asks for itself.
    let body = json!({ "site": ["us"] });
    let s = plan.subject(Some(&body), &[], "");
    assert_eq!(plan.matches(1, &s), Some(true));
    assert_eq!(plan.matches(0, &s), Some(false));
    assert_eq!(known(&s), 2);
}
