//! The compiler's errors, each naming its path, and its limits.

use super::*;
use serde_json::json;

fn err(filter: Value) -> String {
    match super::compile(&filter) {
        Ok(_) => panic!("compiled: {filter}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_their_path() {
    let cases = [
        (
            json!({"colour": 1}),
            "colour: expected one of body, headers, query, $and, $or, $not",
        ),
        (
            json!([]),
            "expected an object: expected one of body, headers, query, $and, $or, $not",
        ),
        (
            json!({"body": {"amount": {"$gte": "5"}}}),
            "body.amount.$gte: expected a number",
        ),
        (
            json!({"body": {"amount": {"$lt": null}}}),
            "body.amount.$lt: expected a number",
        ),
        (
            json!({"body": {"action": {"$in": []}}}),
            "body.action.$in: expected a non-empty array",
        ),
        (
            json!({"body": {"action": {"$nin": "x"}}}),
            "body.action.$nin: expected a non-empty array",
        ),
        (
            json!({"body": {"x": {"$exist": 1}}}),
            "body.x.$exist: expected true or false",
        ),
        (
            json!({"body": {"x": {"$regex": 1}}}),
            "body.x.$regex: expected a string",
        ),
        (
            json!({"body": {"x": {"$startsWith": []}}}),
            "body.x.$startsWith: expected a string",
        ),
        (
            json!({"body": {"x": {"$endsWith": {}}}}),
            "body.x.$endsWith: expected a string",
        ),
        (
            json!({"$or": [{"body": {"x": 1}}, {"body": {"x": {"$regex": "("}}}]}),
            "$or[1].body.x.$regex: invalid regex: unclosed group",
        ),
        (
            json!({"$or": []}),
            "$or: expected a non-empty array of conditions",
        ),
        (
            json!({"$and": {}}),
            "$and: expected a non-empty array of conditions",
        ),
        (
            json!({"$not": [1]}),
            "$not: expected an object: expected one of body, headers, query, $and, $or, $not",
        ),
        (
            json!({"$or": [{"body": {}}, {"heads": {}}]}),
            "$or[1].heads: expected one of body, headers, query, $and, $or, $not",
        ),
        (
            json!({"body": []}),
            "body: expected an object of field names and conditions",
        ),
        (
            json!({"headers": "x"}),
            "headers: expected an object of field names and conditions",
        ),
        (
            json!({"body": {"x": {"$gt": 1, "y": 2}}}),
            "body.x: mixes the operator $gt with the field name \"y\": put nested fields and operators in separate objects (e.g. inside $and)",
        ),
        (
            json!({"body": {"x": {"$exists": true}}}),
            "body.x.$exists: unknown operator $exists (expected one of $eq, $neq, $gt, $gte, $lt, $lte, $in, $nin, $exist, $regex, $startsWith, $endsWith, $and, $or, $not)",
        ),
        (
            json!({"body": {"$gt": 1}}),
            "body.$gt: $gt applies to a field: at this level expected a field name or $and, $or, $not",
        ),
        (
            json!({"body": {"$foo": 1}}),
            "body.$foo: unknown operator $foo (expected one of $eq, $neq, $gt, $gte, $lt, $lte, $in, $nin, $exist, $regex, $startsWith, $endsWith, $and, $or, $not)",
        ),
        (
            json!({"body": {"x": {}}}),
            "body.x: an empty object is not a condition: expected a value, an array, or an object of fields or of operators ($exist: true for any value)",
        ),
        (
            json!({"body": {"a..b": 1}}),
            "body.a..b: an empty segment in the field's path (a name with dots is a path)",
        ),
        (json!({"body": {"": 1}}), "body.: an empty field name"),
        (
            json!({"headers": {"x-a": {"b": 1}}}),
            "headers.x-a: headers values are text, so they have no fields: expected a value, an array, or an object of operators",
        ),
        (
            json!({"query": {"site": {"eu": true}}}),
            "query.site: query values are text, so they have no fields: expected a value, an array, or an object of operators",
        ),
        (
            json!({"headers": {"bad name": 1}}),
            "headers.bad name: not a valid header name",
        ),
        (
            json!({"body": {"x": {"$not": [1]}}}),
            "body.x.$not: expected one condition (an object or a value), not an array",
        ),
        (
            json!({"body": {"x": {"$or": [1, {"$in": 2}]}}}),
            "body.x.$or[1].$in: expected a non-empty array",
        ),
        (
            json!({"body": {"$and": [{"x": 1}, 2]}}),
            "body.$and[1]: expected an object of field names and conditions",
        ),
        (
            json!({"body": {"labels": [{"name": {"$regex": "["}}]}}),
            "body.labels[0].name.$regex: invalid regex: unclosed character class",
        ),
        (
            json!({"body": {"data.object.amount": {"$gte": true}}}),
            "body.data.object.amount.$gte: expected a number",
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(err(filter.clone()), want, "{filter}");
    }
}

#[test]
fn limits_are_enforced_and_named() {
    // Depth: the root is level 1, so 32 nested objects fit and 33 do not.
    let nest = |levels: usize| {
        let mut v = json!(1);
        for _ in 0..levels - 1 {
            v = json!({ "a": v });
        }
        json!({ "body": v })
    };
    assert!(super::compile(&nest(32)).is_ok());
    let e = super::compile(&nest(33)).expect_err("too deep");
    assert_eq!(e.message, "nesting deeper than 32 levels (the limit)");
    assert_eq!(e.path, format!("body{}", ".a".repeat(31)));
    // ... including inside operands, which the compiler does not walk itself.
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let e = super::compile(&json!({"body": {"x": {"$eq": deep}}})).expect_err("deep operand");
    assert!(e.message.starts_with("nesting deeper than 32"), "{e}");
    assert!(e.path.starts_with("body.x.$eq[0][0]"), "{e}");

    // Clauses: 256 fit, the 257th is named.
    let fields: Map<String, Value> = (0..256).map(|i| (format!("f{i:03}"), json!(i))).collect();
    assert!(super::compile(&json!({ "body": fields.clone() })).is_ok());
    let mut more = fields;
    more.insert("g".into(), json!(1));
    assert_eq!(
        err(json!({ "body": more })),
        "body.g: more than 256 clauses (the limit)"
    );
    let list: Vec<u32> = (0..257).collect();
    assert_eq!(
        err(json!({"body": {"id": {"$in": list}}})),
        "body.id.$in: more than 256 clauses (the limit)"
    );

    // Strings, keys and regular expressions.
    let long = "a".repeat(4097);
    assert_eq!(
        err(json!({"body": {"x": long.clone()}})),
        "body.x: a string longer than 4096 bytes (the limit)"
    );
    assert_eq!(
        err(json!({"body": {"x": {"$regex": long.clone()}}})),
        "body.x.$regex: a string longer than 4096 bytes (the limit)"
    );
    assert_eq!(
        err(json!({"body": { long.clone(): 1 }})),
        "body: a key longer than 4096 bytes (the limit)"
    );
    assert!(super::compile(&json!({"body": {"x": "a".repeat(4096)}})).is_ok());
    let path = vec!["a"; 33].join(".");
    assert_eq!(
        err(json!({"body": { path.clone(): 1 }})),
        format!("body.{path}: a path of more than 32 segments (the limit)")
    );
    // A regex within the length limit that would compile too large is refused too.
    let e = err(json!({"body": {"x": {"$regex": "\\w{1000}\\w{1000}"}}}));
    assert!(e.starts_with("body.x.$regex: invalid regex: "), "{e}");
}

#[test]
fn header_names_are_lower_cased_and_body_paths_split() {
    let (root, needs_body) =
        super::compile(&json!({"headers": {"X-GitHub-Event": "push"}})).expect("compiles");
    assert!(!needs_body);
    let Kind::Part(Part::Headers, inner) = &root.kind else {
        panic!("{root:?}")
    };
    let Kind::Named(name, _) = &inner.kind else {
        panic!("{inner:?}")
    };
    assert_eq!(&**name, "x-github-event");
    // The clause keeps the name as written.
    assert_eq!(&*inner.clause, "headers.X-GitHub-Event");

    let (root, needs_body) =
        super::compile(&json!({"body": {"data.object.amount": 1}})).expect("compiles");
    assert!(needs_body);
    let Kind::Part(Part::Body, inner) = &root.kind else {
        panic!("{root:?}")
    };
    let Kind::Path(segments, _) = &inner.kind else {
        panic!("{inner:?}")
    };
    assert_eq!(
        segments.iter().map(|s| &**s).collect::<Vec<_>>(),
        ["data", "object", "amount"]
    );
    // A body inside $not still needs the body.
    assert!(
        super::compile(&json!({"$not": {"body": {"a": 1}}}))
            .expect("ok")
            .1
    );
    // An empty filter matches everything and reads nothing.
    assert!(!super::compile(&json!({})).expect("ok").1);
}
