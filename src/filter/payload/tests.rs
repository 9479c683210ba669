//! Each operator, matching and not, against the providers' published example payloads in
//! `tests/data/filters/`, and explanations of representative misses (properties over random
//! filters and payloads are in `properties`).

use serde_json::{Value, json};

use super::*;

mod cost;
mod properties;

const GITHUB: &str = include_str!("../../../tests/data/filters/github-pull_request.opened.json");
const INVOICE: &str = include_str!("../../../tests/data/filters/stripe-invoice.paid.json");
const CHARGE: &str = include_str!("../../../tests/data/filters/stripe-charge.succeeded.json");
const SHOPIFY: &str = include_str!("../../../tests/data/filters/shopify-orders-create.json");

/// One request: a body (`None`: not JSON), headers as ingress gives them, a query string.
struct Event {
    body: Option<Value>,
    headers: Vec<(String, Vec<u8>)>,
    query: String,
}

impl Event {
    fn new(body: &str, headers: &[(&str, &str)], query: &str) -> Event {
        Event {
            body: Some(serde_json::from_str(body).expect("example payload is JSON")),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            query: query.to_string(),
        }
    }

    /// Compiles `filter` and evaluates it both ways, which must agree.
    fn check(&self, filter: &Value) -> Result<(), Rejection> {
        let f = PayloadFilter::compile(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let s = Subject::new(self.body.as_ref(), &self.headers, &self.query);
        let explained = f.explain(&s);
        assert_eq!(f.matches(&s), explained.is_ok(), "{filter}: {explained:?}");
        explained
    }

    #[track_caller]
    fn yes(&self, filter: Value) {
        if let Err(r) = self.check(&filter) {
            panic!("{filter} should match, but {r}");
        }
    }

    #[track_caller]
    fn no(&self, filter: Value) -> Rejection {
        match self.check(&filter) {
            Ok(()) => panic!("{filter} should not match"),
            Err(r) => r,
        }
    }

    /// Does not match, failing at `clause` for `reason`.
    #[track_caller]
    fn rejects(&self, filter: Value, clause: &str, reason: &str) {
        let r = self.no(filter.clone());
        assert_eq!(
            (r.clause.as_str(), r.reason.as_str()),
            (clause, reason),
            "{filter}"
        );
    }
}

fn github() -> Event {
    Event::new(
        GITHUB,
        &[
            ("user-agent", "GitHub-Hookshot/044aadd"),
            ("content-type", "application/json"),
            ("x-github-event", "pull_request"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-github-hook-id", "292430182"),
            (
                "x-hub-signature-256",
                "sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c",
            ),
        ],
        "site=eu",
    )
}

fn invoice() -> Event {
    Event::new(
        INVOICE,
        &[(
            "stripe-signature",
            "t=1686089970,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
        )],
        "",
    )
}

fn charge() -> Event {
    Event::new(CHARGE, &[("stripe-signature", "t=1679090539,v1=00")], "")
}

fn shopify() -> Event {
    Event::new(
        SHOPIFY,
        &[
            ("x-shopify-topic", "orders/create"),
            (
                "x-shopify-hmac-sha256",
                "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=",
            ),
            ("x-shopify-shop-domain", "example.myshopify.com"),
            ("x-shopify-api-version", "2024-01"),
            (
                "x-shopify-webhook-id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("x-shopify-test", "true"),
            ("content-length", " 2140 "),
        ],
        "",
    )
}

#[test]
fn the_briefs_example_matches_a_github_pull_request() {
    github().yes(json!({
        "body": { "action": { "$in": ["opened", "reopened"] }, "pull_request": { "draft": false } },
        "headers": { "x-github-event": "pull_request" },
        "query": { "site": "eu" }
    }));
}

#[test]
fn equality_and_nesting() {
    let e = github();
    e.yes(json!({"body": {"action": "opened", "number": 2}}));
    e.yes(json!({"body": {"pull_request": {"user": {"login": "Codertocat"}}}}));
    e.yes(json!({"body": {"pull_request.user.login": "Codertocat"}}));
    e.yes(json!({"body": {"pull_request.merged_at": null, "pull_request.locked": false}}));
    e.no(json!({"body": {"pull_request": {"user": {"login": "octocat"}}}}));
    e.no(json!({"body": {"pull_request.draft": true}}));
    e.no(json!({"body": {"pull_request.auto_merge": null}})); // absent is not null
    e.yes(json!({"body": {"action": {"$eq": "opened"}}}));
    e.no(json!({"body": {"action": {"$eq": "closed"}}}));
    // Numbers by value; an $eq operand may be any JSON value, compared deeply.
    let i = invoice();
    i.yes(json!({"body": {"data.object.total": 2000.0}}));
    i.yes(json!({"body": {"data.object.lines.data.amount": {"$eq": 2e3}}}));
    i.yes(json!({"body": {"request": {"$eq": {
        "id": "req_6yTIYsbgxAKdR1", "idempotency_key": "8f1d3bcc-0a2b-4c5d-9e6f-708192a3b4c5"}}}}));
    i.no(json!({"body": {"request": {"$eq": {"id": "req_6yTIYsbgxAKdR1"}}}}));
    // A body string is not a number.
    charge().rejects(
        json!({"body": {"data.object.metadata.order_id": 6735}}),
        "body.data.object.metadata.order_id",
        r#"found "6735", expected 6735"#,
    );
    charge().yes(json!({"body": {"data.object.metadata.order_id": "6735"}}));
}

#[test]
fn neq_and_not() {
    let e = github();
    e.yes(json!({"body": {"pull_request.user.login": {"$neq": "dependabot[bot]"}}}));
    e.rejects(
        json!({"body": {"pull_request.user.login": {"$neq": "Codertocat"}}}),
        "body.pull_request.user.login.$neq",
        r#"found "Codertocat", expected anything but "Codertocat""#,
    );
    e.yes(json!({"body": {"pull_request.auto_merge": {"$neq": null}}})); // absent
    e.yes(json!({"body": {"action": {"$not": {"$in": ["closed", "locked"]}}}}));
    e.no(json!({"body": {"action": {"$not": "opened"}}}));
    e.yes(json!({"$not": {"headers": {"x-github-event": "push"}}}));
    e.rejects(
        json!({"$not": {"headers": {"x-github-event": "pull_request"}}}),
        "$not",
        "the negated condition matched",
    );
    e.yes(json!({"body": {"$not": {"action": "closed"}}}));
}

#[test]
fn arrays_match_when_any_element_does() {
    let e = github();
    e.yes(json!({"body": {"pull_request": {"labels": {"name": "bug"}}}}));
    e.yes(json!({"body": {"pull_request.labels.name": "enhancement"}}));
    e.yes(json!({"body": {"pull_request.labels.name": {"$in": ["wontfix", "bug"]}}}));
    e.yes(json!({"body": {"pull_request.labels.name": {"$regex": "^enh"}}}));
    e.rejects(
        json!({"body": {"pull_request.labels.name": "wontfix"}}),
        "body.pull_request.labels.name",
        r#"no element of pull_request.labels matched; found [{"color":"d73a4a","default":true,"description":"Something isn't working","id":1…"#,
    );
    // A nested object's fields hold in one element.
    e.yes(json!({"body": {"pull_request.labels": {"name": "bug", "color": "d73a4a"}}}));
    e.no(json!({"body": {"pull_request.labels": {"name": "bug", "color": "a2eeef"}}}));
    // A negation applies where it stands: under the path, to each element; on the array, to
    // the array as a whole.
    e.yes(json!({"body": {"pull_request.labels.name": {"$neq": "bug"}}}));
    e.no(json!({"body": {"pull_request.labels": {"$not": {"name": "bug"}}}}));
    e.yes(json!({"body": {"pull_request.labels": {"$not": {"name": "wontfix"}}}}));
    e.no(json!({"body": {"$not": {"pull_request.labels.name": "bug"}}}));
    // An array of scalars: $neq / $nin mean no element equals.
    let mut tags = github();
    tags.body = Some(json!({"tags": ["a", "b"], "nested": [[1, 2], [3]], "empty": []}));
    tags.yes(json!({"body": {"tags": "b"}}));
    tags.no(json!({"body": {"tags": {"$neq": "a"}}}));
    tags.yes(json!({"body": {"tags": {"$neq": "c"}}}));
    tags.no(json!({"body": {"tags": {"$nin": ["c", "a"]}}}));
    tags.yes(json!({"body": {"tags": {"$eq": ["a", "b"]}}})); // the whole array
    tags.yes(json!({"body": {"nested": 3}})); // at any depth
    tags.yes(json!({"body": {"nested": {"$gt": 2}}}));
    tags.no(json!({"body": {"empty": {"$exist": false}}}));
    tags.rejects(
        json!({"body": {"empty.x": 1}}),
        "body.empty.x",
        "found [] of empty, an empty array: no element to match",
    );
}

#[test]
fn array_literals_need_a_match_for_every_element() {
    let e = github();
    e.yes(json!({"body": {"pull_request.labels": [{"name": "enhancement"}, {"name": "bug"}]}}));
    e.yes(json!({"body": {"pull_request.labels": []}}));
    e.rejects(
        json!({"body": {"pull_request.labels": [{"name": "bug"}, {"name": "wontfix"}]}}),
        "body.pull_request.labels[1].name",
        r#"no element of [{"color":"d73a4a","default":true,"description":"Something isn't working","id":1… matches this"#,
    );
    e.rejects(
        json!({"body": {"action": ["opened"]}}),
        "body.action",
        r#"found "opened", expected an array"#,
    );
    let mut tags = github();
    tags.body = Some(json!({"tags": ["b", "c", "a"]}));
    tags.yes(json!({"body": {"tags": ["a", "b"]}}));
    tags.yes(json!({"body": {"tags": [{"$startsWith": "c"}]}}));
    tags.no(json!({"body": {"tags": ["a", "d"]}}));
}

#[test]
fn comparisons() {
    let i = invoice();
    i.yes(json!({"body": {"data.object.amount_paid": {"$gte": 2000, "$lte": 2000}}}));
    i.yes(json!({"body": {"data.object.amount_paid": {"$gt": 1999.5, "$lt": 2000.5}}}));
    i.rejects(
        json!({"body": {"data.object.amount_paid": {"$gt": 2000}}}),
        "body.data.object.amount_paid.$gt",
        "found 2000, expected a number > 2000",
    );
    i.rejects(
        json!({"body": {"data.object.amount_remaining": {"$lt": 0}}}),
        "body.data.object.amount_remaining.$lt",
        "found 0, expected a number < 0",
    );
    i.no(json!({"body": {"data.object.tax": {"$gte": 0}}})); // null is not a number
    i.rejects(
        json!({"body": {"data.object.discount": {"$lte": 10}}}),
        "body.data.object.discount.$lte",
        "field is absent",
    );
    // Integers compare exactly, even past 2^53.
    let s = shopify();
    s.yes(json!({"body": {"id": {"$gt": 820982911946154507_u64, "$lt": 820982911946154509_u64}}}));
    s.no(json!({"body": {"id": {"$gt": 820982911946154508_u64}}}));
    // Shopify's prices are strings, which a body never compares as numbers.
    s.rejects(
        json!({"body": {"total_price": {"$gte": 100}}}),
        "body.total_price.$gte",
        r#"found "199.00", expected a number >= 100"#,
    );
    s.yes(json!({"body": {"total_price": {"$regex": "^[1-9][0-9]{2,}\\."}}}));
    charge().yes(json!({"body": {"data.object.outcome.risk_score": {"$lt": 50}}}));
}

#[test]
fn in_and_nin() {
    let e = github();
    e.rejects(
        json!({"body": {"action": {"$in": ["closed", "reopened"]}}}),
        "body.action.$in",
        r#"found "opened", expected one of ["closed","reopened"]"#,
    );
    e.yes(json!({"body": {"number": {"$in": [1, 2.0, "3"]}}}));
    e.yes(json!({"body": {"action": {"$nin": ["closed", "reopened"]}}}));
    e.rejects(
        json!({"body": {"action": {"$nin": ["opened"]}}}),
        "body.action.$nin",
        r#"found "opened", expected none of ["opened"]"#,
    );
    let i = invoice();
    i.yes(json!({"body": {"data.object.currency": {"$in": ["eur", "usd"]}}}));
    i.no(json!({"body": {"data.object.currency": {"$in": ["USD"]}}})); // case-sensitive
}

#[test]
fn exist() {
    let c = charge();
    c.yes(json!({"body": {"data.object.metadata.order_id": {"$exist": true}}}));
    c.yes(json!({"body": {"data.object.billing_details.email": {"$exist": true}}})); // null
    c.yes(json!({"body": {"data.object.metadata.cart": {"$exist": false}}}));
    c.rejects(
        json!({"body": {"data.object.metadata.cart": {"$exist": true}}}),
        "body.data.object.metadata.cart.$exist",
        "field is absent",
    );
    c.rejects(
        json!({"body": {"data.object.captured": {"$exist": false}}}),
        "body.data.object.captured.$exist",
        "field is present: found true",
    );
    // A step into a scalar finds nothing.
    c.yes(json!({"body": {"data.object.amount.value": {"$exist": false}}}));
    invoice().yes(json!({"body": {"data.object.metadata.order_id": {"$exist": false}}}));
    shopify().yes(json!({"headers": {"x-github-event": {"$exist": false}}}));
}

#[test]
fn strings() {
    let e = github();
    e.yes(json!({"body": {"pull_request.html_url": {"$startsWith": "https://github.com/Codertocat/"}}}));
    e.yes(json!({"body": {"pull_request.html_url": {"$endsWith": "/pull/2"}}}));
    e.rejects(
        json!({"body": {"pull_request.head.ref": {"$startsWith": "fix/"}}}),
        "body.pull_request.head.ref.$startsWith",
        r#"found "changes", expected a string starting with "fix/""#,
    );
    e.rejects(
        json!({"body": {"pull_request.title": {"$endsWith": "readme"}}}),
        "body.pull_request.title.$endsWith",
        r#"found "Update the README with new information.", expected a string ending with "readme""#,
    );
    e.yes(json!({"body": {"pull_request.title": {"$regex": "(?i)readme"}}}));
    e.rejects(
        json!({"body": {"pull_request.head.ref": {"$regex": "^(fix|feat)/"}}}),
        "body.pull_request.head.ref.$regex",
        r#"found "changes", expected a string matching /^(fix|feat)//"#,
    );
    // Strings only: a number does not match a pattern of digits.
    e.no(json!({"body": {"number": {"$regex": "2"}}}));
    e.no(json!({"body": {"number": {"$startsWith": "2"}}}));
    let s = shopify();
    s.yes(json!({"body": {"tags": {"$regex": "(^|, )tag2(,|$)"}}}));
    s.no(json!({"body": {"tags": {"$regex": "(^|, )tag(,|$)"}}}));
    charge().yes(
        json!({"body": {"data.object.payment_method_details.card.last4": {"$endsWith": "42"}}}),
    );
}

#[test]
fn and_or_not_at_every_level() {
    let c = charge();
    // Among a field's operators.
    c.yes(json!({"body": {"data.object.amount": {"$or": [{"$lt": 500}, {"$gt": 1000}]}}}));
    c.rejects(
        json!({"body": {"data.object.amount": {"$or": [{"$lt": 500}, {"$gt": 2000}]}}}),
        "body.data.object.amount.$or",
        "no alternative matched (body.data.object.amount.$or[0].$lt: found 1099, expected a \
         number < 500; body.data.object.amount.$or[1].$gt: found 1099, expected a number > 2000)",
    );
    c.yes(json!({"body": {"data.object.amount": {"$and": [{"$gt": 1000}, {"$lt": 1100}]}}}));
    c.no(json!({"body": {"data.object.amount": {"$and": [{"$gt": 1000}, {"$lt": 1099}]}}}));
    c.yes(json!({"body": {"data.object": {"$or": [{"refunded": true}, {"paid": true}]}}}));
    // Inside a part.
    c.yes(json!({"body": {"$or": [{"type": "charge.failed"}, {"type": "charge.succeeded"}]}}));
    c.yes(json!({"body": {"type": {"$startsWith": "charge."}, "$and": [{"livemode": false}, {"data.object.paid": true}]}}));
    c.no(json!({"body": {"$and": [{"livemode": false}, {"data.object.paid": false}]}}));
    // At the top, over parts.
    let s = shopify();
    s.yes(json!({"$or": [
        {"headers": {"x-shopify-topic": "orders/paid"}},
        {"headers": {"x-shopify-topic": "orders/create"}, "body": {"financial_status": "paid"}}
    ]}));
    s.rejects(
        json!({"$or": [{"headers": {"x-shopify-topic": "orders/paid"}}, {"body": {"test": false}}]}),
        "$or",
        r#"no alternative matched ($or[0].headers.x-shopify-topic: found "orders/create", expected "orders/paid"; $or[1].body.test: found true, expected false)"#,
    );
    s.yes(json!({"$and": [{"headers": {"x-shopify-topic": "orders/create"}}, {"body": {"currency": "USD"}}]}));
}

#[test]
fn or_lists_a_few_alternatives() {
    let alternatives: Vec<Value> = (0..6)
        .map(|i| json!({"body": {"number": i + 10}}))
        .collect();
    let r = github().no(json!({"$or": alternatives}));
    assert_eq!(r.clause, "$or");
    assert!(
        r.reason
            .starts_with("no alternative matched ($or[0].body.number: found 2, expected 10; "),
        "{r}"
    );
    assert!(r.reason.ends_with("; and 2 more)"), "{r}");
}

#[test]
fn headers_are_text() {
    let s = shopify();
    s.yes(json!({"headers": {"X-Shopify-Topic": "orders/create"}})); // any case
    s.yes(json!({"headers": {"x-shopify-topic": {"$startsWith": "orders/"}}}));
    s.yes(json!({"headers": {"x-shopify-test": true}})); // its text
    s.no(json!({"headers": {"x-shopify-test": false}}));
    s.yes(json!({"headers": {"content-length": 2140, "x-shopify-api-version": {"$regex": "^20\\d\\d-"}}})); // trimmed
    s.yes(json!({"headers": {"content-length": {"$gt": 1000.5, "$lte": 2140}}}));
    s.no(json!({"headers": {"x-shopify-api-version": {"$gt": 2023}}})); // "2024-01" is not a number
    s.rejects(
        json!({"headers": {"x-shopify-topic": "orders/paid"}}),
        "headers.x-shopify-topic",
        r#"found "orders/create", expected "orders/paid""#,
    );
    s.rejects(
        json!({"headers": {"x-github-event": "push"}}),
        "headers.x-github-event",
        "field is absent",
    );
    // Repeated headers are an array of their values; raw bytes are read as lossy UTF-8.
    let mut e = shopify();
    e.headers.push(("x-tag".into(), b"a".to_vec()));
    e.headers.push(("x-tag".into(), b"b\xff".to_vec()));
    e.yes(json!({"headers": {"x-tag": "a"}}));
    e.yes(json!({"headers": {"x-tag": "b\u{fffd}"}}));
    e.yes(json!({"headers": {"x-tag": ["b\u{fffd}", "a"]}}));
    e.no(json!({"headers": {"x-tag": {"$neq": "a"}}}));
}

#[test]
fn query_values_are_text_and_repeat() {
    let mut e = github();
    e.query = "?site=eu&tag=a&tag=b&n=5&flag=true&q=a%20b+c".into();
    e.yes(json!({"query": {"site": "eu", "n": 5, "flag": true, "q": "a b c"}}));
    e.yes(json!({"query": {"n": {"$gte": 5, "$lt": 5.5}, "tag": "b"}}));
    e.yes(json!({"query": {"tag": ["b", "a"], "tag ": {"$exist": false}}}));
    e.yes(json!({"query": {"tag": {"$eq": ["a", "b"]}}}));
    e.no(json!({"query": {"site": ["eu"]}})); // one value is not an array
    e.no(json!({"query": {"Site": "eu"}})); // names are case-sensitive
    e.rejects(
        json!({"query": {"tag": {"$nin": ["b"]}}}),
        "query.tag.$nin",
        r#"found ["a","b"], expected none of ["b"]"#,
    );
    e.rejects(
        json!({"query": {"tag": {"$neq": "a"}}}),
        "query.tag.$neq",
        r#"found ["a","b"], expected no element equal to "a""#,
    );
}

#[test]
fn a_body_that_is_not_json() {
    let mut e = github();
    e.body = None;
    e.rejects(
        json!({"body": {"action": "opened"}}),
        "body",
        "body is not JSON",
    );
    e.yes(json!({"$not": {"body": {"action": "opened"}}}));
    e.yes(json!({"headers": {"x-github-event": "pull_request"}}));
    // A JSON body that is an array: its fields hold in some element.
    e.body = Some(json!([{"event": "delivered"}, {"event": "open", "ip": "1.2.3.4"}]));
    e.yes(json!({"body": {"event": "open", "ip": {"$exist": true}}}));
    e.rejects(
        json!({"body": {"event": "delivered", "ip": {"$exist": true}}}),
        "body",
        r#"no element matched; found [{"event":"delivered"},{"event":"open","ip":"1.2.3.4"}]"#,
    );
    e.rejects(
        json!({"body": {"event": "bounce"}}),
        "body.event",
        r#"no element matched; found [{"event":"delivered"},{"event":"open","ip":"1.2.3.4"}]"#,
    );
}

#[test]
fn needs_body_and_document() {
    let doc = json!({"headers": {"x-a": 1}, "$or": [{"query": {"a": 1}}, {"body": {"b": 2}}]});
    let f = PayloadFilter::compile(&doc).expect("compiles");
    assert!(f.needs_body());
    assert_eq!(f.document(), &doc);
    let f = PayloadFilter::compile(&json!({"headers": {"x-a": 1}})).expect("compiles");
    assert!(!f.needs_body());
    // The empty filter matches anything.
    let f = PayloadFilter::compile(&json!({})).expect("compiles");
    let s = Subject::new(None, &[], "");
    assert!(f.matches(&s));
}

/// The module documentation's examples compile, and do what they say on the examples here.
#[test]
fn the_documented_examples() {
    let source = include_str!("../payload.rs");
    let mut examples = Vec::new();
    let mut block: Option<String> = None;
    for line in source.lines().filter_map(|l| l.strip_prefix("//!")) {
        let line = line.strip_prefix(' ').unwrap_or(line);
        match (&mut block, line) {
            (None, "```json") => block = Some(String::new()),
            (Some(text), "```") => {
                examples.push(serde_json::from_str::<Value>(text).expect("example is JSON"));
                block = None;
            }
            (Some(text), line) => text.push_str(line),
            (None, _) => {}
        }
    }
    let [
        brief,
        pull_requests,
        labels,
        invoice_paid,
        live_charges,
        shopify_orders,
    ] = &examples[..]
    else {
        panic!("{} examples", examples.len());
    };
    github().yes(brief.clone());
    github().yes(pull_requests.clone());
    github().yes(labels.clone());
    // The example invoice is of 20.00.
    invoice().rejects(
        invoice_paid.clone(),
        "body.data.object.amount_paid.$gte",
        "found 2000, expected a number >= 10000",
    );
    charge().rejects(
        live_charges.clone(),
        "body.livemode",
        "found false, expected true",
    );
    // Its second line holds two of the product, but the order is not tagged wholesale.
    shopify().rejects(
        shopify_orders.clone(),
        "body.tags.$regex",
        r#"found "tag1, tag2", expected a string matching /(^|, )wholesale(,|$)/"#,
    );
}

#[test]
fn filters_and_subjects_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<PayloadFilter>();
    shared::<Subject<'_>>();
    shared::<FilterError>();
    shared::<Rejection>();
}

#[test]
fn shown_values_are_cut() {
    let mut e = github();
    let long = "é".repeat(100);
    e.body = Some(json!({ "x": long }));
    let r = e.no(json!({"body": {"x": "y"}}));
    let shown = r
        .reason
        .trim_start_matches("found ")
        .trim_end_matches(", expected \"y\"");
    assert!(
        shown.ends_with('…') && shown.len() <= 80 + '…'.len_utf8(),
        "{shown}"
    );
    assert_eq!(
        FilterError {
            path: String::new(),
            message: "m".into()
        }
        .to_string(),
        "m"
    );
}
