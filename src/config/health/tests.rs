//! The health and ordering keys: defaults, `[delivery]` fallback, each error with its key
//! path, and the reserved `hookgate` source.

use super::super::{Config, ConfigError, Validated};
use crate::model::{BreakerPolicy, HealthPolicy, Ordering};
use crate::verify::FieldRef;

const MIN: u64 = 60_000;
const DAY: u64 = 24 * 60 * MIN;

fn validate(text: &str) -> Result<Validated, ConfigError> {
    Config::from_toml(text).and_then(Config::validate)
}

/// `[delivery]` keys, then one endpoint with `keys`.
fn config(delivery: &str, keys: &str) -> String {
    format!(
        "[delivery]\n{delivery}\n[[endpoints]]\nid = \"e\"\nurl = \"https://e.example\"\n{keys}\n"
    )
}

fn endpoint(delivery: &str, keys: &str) -> crate::model::Endpoint {
    let text = config(delivery, keys);
    match validate(&text) {
        Ok(v) => v.endpoints[0].clone(),
        Err(e) => panic!("{text}: {e}"),
    }
}

fn err(delivery: &str, keys: &str) -> ConfigError {
    let text = config(delivery, keys);
    match validate(&text) {
        Ok(_) => panic!("expected an error for {text}"),
        Err(e) => e,
    }
}

#[test]
fn an_endpoint_that_says_nothing_gets_the_documented_defaults() {
    let e = endpoint("", "");
    assert_eq!(e.health, HealthPolicy::default());
    assert_eq!(e.health.breaker, Some(BreakerPolicy::DEFAULT));
    assert_eq!(e.health.disable_after_ms, Some(3 * DAY));
    assert_eq!(e.ordering, None);
}

#[test]
fn each_breaker_field_falls_back_to_delivery_then_to_the_default() {
    let e = endpoint(
        "breaker = { min_attempts = 5, cool_down = \"2m\" }\ndisable_after = \"5d\"",
        "breaker = { window = \"2m\", failure_rate = 1 }",
    );
    assert_eq!(
        e.health,
        HealthPolicy {
            breaker: Some(BreakerPolicy {
                window_ms: 2 * MIN,
                min_attempts: 5,
                failure_rate: 1.0,
                cool_down_ms: 2 * MIN,
            }),
            disable_after_ms: Some(5 * DAY),
        }
    );
    // Saying nothing takes [delivery]'s breaker whole.
    let e = endpoint("breaker = { min_attempts = 5 }", "");
    assert_eq!(
        e.health.breaker,
        Some(BreakerPolicy {
            min_attempts: 5,
            ..BreakerPolicy::DEFAULT
        })
    );
    // The endpoint's own disable_after wins over [delivery]'s.
    let e = endpoint("disable_after = \"5d\"", "disable_after = \"1h\"");
    assert_eq!(e.health.disable_after_ms, Some(60 * MIN));
    let e = endpoint("disable_after = \"5d\"", "disable_after = \"off\"");
    assert_eq!(e.health.disable_after_ms, None);
    let e = endpoint("disable_after = \"off\"", "");
    assert_eq!(
        e.health,
        HealthPolicy {
            breaker: Some(BreakerPolicy::DEFAULT),
            disable_after_ms: None,
        }
    );
}

#[test]
fn breaker_off_means_no_breaker_and_no_disable() {
    assert_eq!(endpoint("", "breaker = \"off\"").health, HealthPolicy::OFF);
    assert_eq!(
        endpoint("", "breaker = \"off\"\ndisable_after = \"off\"").health,
        HealthPolicy::OFF
    );
    // [delivery]'s disable_after is a default, not a demand: an endpoint without a breaker
    // simply has none.
    assert_eq!(
        endpoint("disable_after = \"5d\"", "breaker = \"off\"").health,
        HealthPolicy::OFF
    );
    assert_eq!(endpoint("breaker = \"off\"", "").health, HealthPolicy::OFF);
    // An endpoint may turn on what [delivery] turned off, from the built-in values.
    let e = endpoint("breaker = \"off\"", "breaker = { min_attempts = 3 }");
    assert_eq!(
        e.health,
        HealthPolicy {
            breaker: Some(BreakerPolicy {
                min_attempts: 3,
                ..BreakerPolicy::DEFAULT
            }),
            disable_after_ms: Some(HealthPolicy::DEFAULT_DISABLE_AFTER_MS),
        }
    );
}

#[test]
fn breaker_values_out_of_range_name_their_key() {
    for (keys, key, problem) in [
        (
            "breaker = { window = \"999ms\" }",
            "breaker.window",
            "must be 1s to 1h",
        ),
        (
            "breaker = { window = \"61m\" }",
            "breaker.window",
            "must be 1s to 1h",
        ),
        (
            "breaker = { cool_down = \"0s\" }",
            "breaker.cool_down",
            "must be 1s to 1h",
        ),
        (
            "breaker = { cool_down = \"2h\" }",
            "breaker.cool_down",
            "must be 1s to 1h",
        ),
        (
            "breaker = { min_attempts = 0 }",
            "breaker.min_attempts",
            "must be >= 1",
        ),
        (
            "breaker = { failure_rate = 0 }",
            "breaker.failure_rate",
            "must be > 0 and <= 1",
        ),
        (
            "breaker = { failure_rate = -0.5 }",
            "breaker.failure_rate",
            "must be > 0 and <= 1",
        ),
        (
            "breaker = { failure_rate = 1.01 }",
            "breaker.failure_rate",
            "must be > 0 and <= 1",
        ),
        (
            "breaker = { failure_rate = nan }",
            "breaker.failure_rate",
            "must be > 0 and <= 1",
        ),
    ] {
        let e = err("", keys);
        assert_eq!(
            (e.key.as_str(), e.problem.as_str()),
            (format!("endpoints[0].{key}").as_str(), problem),
            "{keys}"
        );
        let e = err(keys, "");
        assert_eq!(
            (e.key.as_str(), e.problem.as_str()),
            (format!("delivery.{key}").as_str(), problem),
            "[delivery] {keys}"
        );
    }
    // The bounds themselves are allowed.
    let e = endpoint("", "breaker = { window = \"1s\", cool_down = \"1h\" }");
    assert_eq!(
        e.health.breaker.map(|b| (b.window_ms, b.cool_down_ms)),
        Some((1_000, 60 * MIN))
    );
}

#[test]
fn disable_after_must_outlast_the_cool_down_and_needs_a_breaker() {
    let longer = "must be longer than breaker.cool_down, or \"off\"";
    for (delivery, keys, key, problem) in [
        (
            "",
            "disable_after = \"30s\"",
            "endpoints[0].disable_after",
            longer,
        ),
        (
            "",
            "breaker = { cool_down = \"10m\" }\ndisable_after = \"9m\"",
            "endpoints[0].disable_after",
            longer,
        ),
        // An inherited disable_after is held to the endpoint's own cool_down.
        (
            "disable_after = \"10m\"",
            "breaker = { cool_down = \"1h\" }",
            "endpoints[0].disable_after",
            longer,
        ),
        (
            "disable_after = \"1s\"",
            "",
            "delivery.disable_after",
            longer,
        ),
        (
            "",
            "breaker = \"off\"\ndisable_after = \"3d\"",
            "endpoints[0].disable_after",
            "needs a breaker (breaker is \"off\")",
        ),
        (
            "breaker = \"off\"",
            "disable_after = \"3d\"",
            "endpoints[0].disable_after",
            "needs a breaker (breaker is \"off\")",
        ),
        (
            "breaker = \"off\"\ndisable_after = \"3d\"",
            "",
            "delivery.disable_after",
            "needs a breaker (breaker is \"off\")",
        ),
    ] {
        let e = err(delivery, keys);
        assert_eq!(
            (e.key.as_str(), e.problem.as_str()),
            (key, problem),
            "{delivery} / {keys}"
        );
    }
    let e = endpoint("", "disable_after = \"31s\"");
    assert_eq!(e.health.disable_after_ms, Some(31_000));
}

#[test]
fn shapes_are_named_by_their_key_path() {
    for (delivery, keys, key, problem) in [
        (
            "",
            "breaker = \"on\"",
            "endpoints[0].breaker",
            "must be \"off\" or a table",
        ),
        (
            "",
            "breaker = 5",
            "endpoints[0].breaker",
            "\"off\" or a table",
        ),
        (
            "",
            "breaker = { windw = \"1m\" }",
            "endpoints[0].breaker.windw",
            "unknown field `windw`",
        ),
        (
            "",
            "breaker = { window = 60 }",
            "endpoints[0].breaker.window",
            "invalid type",
        ),
        (
            "breaker = { zzz = 1 }",
            "",
            "delivery.breaker.zzz",
            "unknown field `zzz`",
        ),
        (
            "",
            "disable_after = \"soon\"",
            "endpoints[0].disable_after",
            "or \"off\"",
        ),
        (
            "disable_after = 3",
            "",
            "delivery.disable_after",
            "invalid type",
        ),
        (
            "",
            "ordering = \"key\"",
            "endpoints[0].ordering",
            "must be \"endpoint\" or { key = … }",
        ),
        (
            "",
            "ordering = {}",
            "endpoints[0].ordering",
            "must be \"endpoint\" or { key = … }",
        ),
        (
            "",
            "ordering = true",
            "endpoints[0].ordering",
            "\"endpoint\" or { key = … }",
        ),
        (
            "",
            "ordering = { key = { json = \"/a\" }, by = 1 }",
            "endpoints[0].ordering.by",
            "unknown field `by`",
        ),
        (
            "",
            "ordering = { key = { body = \"/a\" } }",
            "endpoints[0].ordering.key",
            "unknown variant `body`",
        ),
        (
            "",
            "ordering = { key = { json = \"customer_id\" } }",
            "endpoints[0].ordering.key.json",
            "is not a JSON pointer",
        ),
        (
            "",
            "ordering = { key = { header = \"x order\" } }",
            "endpoints[0].ordering.key.header",
            "is not a header name",
        ),
    ] {
        let e = err(delivery, keys);
        assert_eq!(e.key, key, "{delivery} / {keys}: {e}");
        assert!(e.problem.contains(problem), "{delivery} / {keys}: {e}");
    }
}

#[test]
fn ordering_is_read_into_the_model() {
    assert_eq!(
        endpoint("", "ordering = \"endpoint\"").ordering,
        Some(Ordering::Endpoint)
    );
    assert_eq!(
        endpoint("", "ordering = { key = { json = \"/customer_id\" } }").ordering,
        Some(Ordering::Key(FieldRef::Json("/customer_id".into())))
    );
    assert_eq!(
        endpoint("", "ordering = { key = { header = \"x-order-key\" } }").ordering,
        Some(Ordering::Key(FieldRef::Header("x-order-key".into())))
    );
}

#[test]
fn the_hookgate_source_is_reserved_but_may_be_subscribed_to() {
    let e = validate("[[sources]]\nid = \"hookgate\"\nverify = \"none\"\n").expect_err("reserved");
    assert_eq!(
        e.to_string(),
        "sources[0].id: \"hookgate\" is reserved for hookgate's own events"
    );
    let e = endpoint("", "sources = [\"hookgate\"]");
    assert_eq!(e.sources, ["hookgate"]);
    // Other undeclared sources are still refused.
    let e = err("", "sources = [\"hookgate\", \"nope\"]");
    assert_eq!(e.key, "endpoints[0].sources[1]");

    // The admin API's bodies go through the same checks, with keys relative to the entry.
    let v = validate("").expect("valid");
    let e = Validated::source_from_json(&serde_json::json!({"id": "hookgate", "verify": "none"}))
        .expect_err("reserved");
    assert_eq!(e.key, "id");
    assert!(
        e.problem.contains("reserved for hookgate's own events"),
        "{e}"
    );
    let ep =
        serde_json::json!({"id": "ops", "url": "https://ops.example", "sources": ["hookgate"]});
    let ok = v.endpoint_from_json(&ep, &v.sources).expect("subscribes");
    assert_eq!(ok.sources, ["hookgate"]);
}

#[test]
fn api_bodies_take_the_same_keys_with_relative_paths() {
    let v = validate("[delivery]\nbreaker = { min_attempts = 7 }\n").expect("valid");
    let body = |extra: serde_json::Value| {
        let mut b = serde_json::json!({"id": "a", "url": "https://a.example"});
        if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(extra.clone());
        }
        b
    };
    let e = v
        .endpoint_from_json(
            &body(serde_json::json!({
                "breaker": {"window": "2m", "failure_rate": 0.25, "cool_down": null},
                "disable_after": "1d",
                "ordering": {"key": {"json": "/customer_id"}},
            })),
            &v.sources,
        )
        .expect("valid");
    assert_eq!(
        e.health,
        HealthPolicy {
            breaker: Some(BreakerPolicy {
                window_ms: 2 * MIN,
                min_attempts: 7,
                failure_rate: 0.25,
                cool_down_ms: BreakerPolicy::DEFAULT.cool_down_ms,
            }),
            disable_after_ms: Some(DAY),
        }
    );
    assert_eq!(
        e.ordering,
        Some(Ordering::Key(FieldRef::Json("/customer_id".into())))
    );
    // null is "not given", as for every other key.
    let e = v
        .endpoint_from_json(
            &body(serde_json::json!({"breaker": null, "disable_after": null, "ordering": null})),
            &v.sources,
        )
        .expect("valid");
    assert_eq!(e.health.breaker.map(|b| b.min_attempts), Some(7));
    assert_eq!(e.ordering, None);
    for (extra, message) in [
        (
            serde_json::json!({"breaker": {"failure_rate": 2}}),
            "breaker.failure_rate: must be > 0 and <= 1",
        ),
        (
            serde_json::json!({"breaker": "off", "disable_after": "3d"}),
            "disable_after: needs a breaker (breaker is \"off\")",
        ),
        (
            serde_json::json!({"ordering": "customer"}),
            "ordering: must be \"endpoint\" or { key = … }",
        ),
        (
            serde_json::json!({"breaker": {"colour": 1}}),
            "breaker.colour: unknown field `colour`",
        ),
    ] {
        let e = v
            .endpoint_from_json(&body(extra.clone()), &v.sources)
            .expect_err("refused");
        assert!(e.to_string().starts_with(message), "{extra}: {e}");
    }
}
