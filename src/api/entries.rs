//! The bodies that create and change sources and endpoints: the keys of the config file's
//! `[[sources]]` and `[[endpoints]]`, as JSON. The handlers pass them to the catalog, which
//! parses them with the config's own types (`deny_unknown_fields`) and validates them as the
//! file's. The schemas here state their shape exactly: every key, its type, which are required,
//! the enums, the id and secret patterns, and nothing else allowed. A test checks them against
//! the config types' own key lists.
//!
//! What a JSON Schema cannot state is checked after the shape, and a value that breaks it is a
//! 400 naming its key: a URL that is not http(s) or names an internal address, a source that
//! does not exist, a glob that does not compile, a source secret that does not suit its scheme,
//! a duration that does not parse or is out of range, `max_in_flight` above
//! `delivery.max_concurrency`, a header name hookgate sets itself, a `disable_after` not longer
//! than the breaker's `cool_down` (or set beside `breaker = "off"`), a source named `hookgate`, a
//! payload filter that does not compile (the error names the path inside it), a transform that
//! is not a jq program. The API fuzzer
//! (`tests/api_fuzz`) accepts a 400 to a schema-valid body on these four routes only.

use std::borrow::Cow;

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

const U32_MAX: u64 = u32::MAX as u64;

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(schema: Value) -> Value {
    json!({ "oneOf": [{ "type": "null" }, schema] })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn strings() -> Value {
    json!({ "type": "array", "items": string() })
}

fn object(required: &[&str], properties: Value) -> Value {
    let mut o = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

fn rate_limit() -> Value {
    object(
        &["per_second"],
        json!({
            "per_second": { "type": "integer", "minimum": 1, "maximum": U32_MAX },
            "burst": nullable(json!({ "type": "integer", "minimum": 1, "maximum": U32_MAX })),
        }),
    )
}

/// `{"header": name}` or `{"json": pointer}`.
fn field_ref() -> Value {
    json!({ "oneOf": [
        object(&["header"], json!({ "header": string() })),
        object(&["json"], json!({ "json": string() })),
    ]})
}

/// `breaker`: `"off"` or a table of thresholds, each falling back to `[delivery]`'s.
fn breaker() -> Value {
    let bounded =
        json!({ "type": "string", "description": "A duration from 1s to 1h: 250ms, 5s, 1h" });
    json!({ "oneOf": [
        { "type": "string", "enum": ["off"] },
        object(&[], json!({
            "window": nullable(bounded.clone()),
            "min_attempts": nullable(json!({ "type": "integer", "minimum": 1, "maximum": U32_MAX })),
            "failure_rate": nullable(json!({ "type": "number", "exclusiveMinimum": 0, "maximum": 1 })),
            "cool_down": nullable(bounded),
        })),
    ]})
}

/// `ordering`: `"endpoint"` or `{"key": {"json": pointer}}` / `{"key": {"header": name}}`.
fn ordering() -> Value {
    json!({ "oneOf": [
        { "type": "string", "enum": ["endpoint"] },
        object(&["key"], json!({ "key": field_ref() })),
    ]})
}

/// An endpoint's keys: (name, schema when present, may it be null in a create).
fn endpoint_keys() -> Vec<(&'static str, Value, bool)> {
    let duration = || json!({ "type": "string", "description": "A duration: 250ms, 5s, 1h, 3d" });
    vec![
        ("id", reference("EntryId"), false),
        (
            "kind",
            json!({ "type": "string", "enum": ["push", "pull"], "description":
                "push (the default: POSTed to url) or pull (no url: consumers take its messages)" }),
            true,
        ),
        (
            "url",
            json!({ "type": "string", "description": "An http or https URL (required unless kind is pull, which has none)" }),
            false,
        ),
        ("sources", strings(), false),
        ("event_types", strings(), true),
        ("secret", reference("SigningSecret"), true),
        (
            "previous_secrets",
            json!({ "type": "array", "items": object(&["secret", "until"], json!({
                "secret": reference("SigningSecret"),
                "until": { "type": "string", "description": "RFC 3339" },
            }))}),
            false,
        ),
        ("rate_limit", rate_limit(), true),
        (
            "max_in_flight",
            json!({ "type": "integer", "minimum": 1, "maximum": U32_MAX }),
            true,
        ),
        (
            "retry",
            object(
                &[],
                json!({
                    "max_attempts": nullable(json!({ "type": "integer", "minimum": 0, "maximum": U32_MAX })),
                    "base": nullable(duration()),
                    "max_delay": nullable(duration()),
                    "max_age": nullable(duration()),
                }),
            ),
            false,
        ),
        ("timeout", duration(), true),
        (
            "headers",
            json!({ "type": "object", "additionalProperties": string() }),
            false,
        ),
        ("forward_headers", strings(), true),
        ("breaker", breaker(), true),
        (
            "disable_after",
            json!({ "type": "string", "description": "A duration longer than the breaker's cool_down (250ms, 5s, 1h, 3d), or \"off\"" }),
            true,
        ),
        ("ordering", ordering(), true),
        (
            "filter",
            json!({ "oneOf": [{ "type": "object" }, { "type": "string" }], "description":
                "A payload filter: which events, among those it subscribes to, the endpoint gets. \
                 A JSON document (or a string holding one) with `body`, `headers` and `query` \
                 parts and the operators $eq $neq $gt $gte $lt $lte $in $nin $exist $regex $and \
                 $or $not $startsWith $endsWith; see the README" }),
            true,
        ),
        (
            "transform",
            json!({ "type": "string", "minLength": 1, "maxLength": 65536, "description":
                "A jq program run on each delivery as it is sent: it maps {body, headers, \
                 event_type} to a new one, or to null to drop the delivery" }),
            true,
        ),
        (
            "expires_at",
            json!({ "type": "string", "description": "RFC 3339: when the endpoint removes itself" }),
            true,
        ),
    ]
}

/// A source's keys: (name, schema when present, may it be null in a create).
fn source_keys() -> Vec<(&'static str, Value, bool)> {
    let duration = || json!({ "type": "string", "description": "A duration: 250ms, 5s, 1h, 3d" });
    vec![
        ("id", reference("EntryId"), false),
        (
            "verify",
            json!({ "type": "string", "enum": crate::verify::SchemeKind::names() }),
            false,
        ),
        ("secrets", strings(), false),
        ("tolerance", duration(), false),
        ("dedup", field_ref(), true),
        ("dedup_window", duration(), false),
        ("dedup_body", json!({ "type": "boolean" }), true),
        ("event_type", field_ref(), true),
        ("public_url", string(), true),
        (
            "hmac",
            object(
                &["header"],
                json!({
                    "header": string(),
                    "algorithm": { "type": "string", "enum": ["sha1", "sha256", "sha512"] },
                    "encoding": { "type": "string", "enum": ["hex", "base64"] },
                    "prefix": string(),
                    "timestamp_header": nullable(string()),
                    "signed": nullable(string()),
                }),
            ),
            true,
        ),
        ("token_header", string(), true),
        ("verify_token", string(), true),
        ("rate_limit", rate_limit(), true),
        (
            "response",
            object(
                &["status"],
                json!({
                    "status": { "type": "integer", "minimum": 0, "maximum": u16::MAX },
                    "content_type": nullable(string()),
                    "body": string(),
                }),
            ),
            true,
        ),
    ]
}

/// A create body: the required keys, each key's schema, `null` where the config takes it.
fn create_body(keys: Vec<(&'static str, Value, bool)>, required: &[&str], about: &str) -> Value {
    let mut properties = serde_json::Map::new();
    for (name, schema, null_ok) in keys {
        properties.insert(name.into(), if null_ok { nullable(schema) } else { schema });
    }
    let mut body = object(required, Value::Object(properties));
    body["description"] = Value::String(about.into());
    body
}

/// A PATCH body: any of the keys; `null` removes one. `id`, if given, must be the entry's own.
fn patch_body(keys: Vec<(&'static str, Value, bool)>, about: &str) -> Value {
    let mut properties = serde_json::Map::new();
    for (name, schema, _) in keys {
        properties.insert(
            name.into(),
            if name == "id" {
                schema
            } else {
                nullable(schema)
            },
        );
    }
    let mut body = object(&[], Value::Object(properties));
    body["description"] = Value::String(about.into());
    body
}

fn schema(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).unwrap_or_else(|_| RefOr::T(Schema::default()))
}

macro_rules! body_schema {
    ($name:ident, $value:expr) => {
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                schema($value)
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

const AFTER_SHAPE: &str = " Beyond this shape, each value is validated as the config file's are, and one that fails is a 400 whose message starts with its key.";

body_schema!(
    EndpointBody,
    create_body(
        endpoint_keys(),
        &["id"],
        &format!("An `[[endpoints]]` entry of the config file, as JSON.{AFTER_SHAPE}")
    )
);
body_schema!(
    EndpointPatch,
    patch_body(
        endpoint_keys(),
        &format!(
            "Keys of `[[endpoints]]` that replace the stored ones; `null` removes one (and a required one cannot be removed). `id` cannot change.{AFTER_SHAPE}"
        )
    )
);
body_schema!(
    SourceBody,
    create_body(
        source_keys(),
        &["id", "verify"],
        &format!("A `[[sources]]` entry of the config file, as JSON.{AFTER_SHAPE}")
    )
);
body_schema!(
    SourcePatch,
    patch_body(
        source_keys(),
        &format!(
            "Keys of `[[sources]]` that replace the stored ones; `null` removes one (and a required one cannot be removed). `id` cannot change.{AFTER_SHAPE}"
        )
    )
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Validated};
    use utoipa::PartialSchema;

    /// The names a serde error lists after "expected" (`expected one of `a`, `b``).
    fn expected_names(message: &str) -> Vec<String> {
        let Some((_, after)) = message.split_once("expected") else {
            panic!("no key list in {message:?}");
        };
        let mut names: Vec<String> = after
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    fn keys_of(schema: &Value) -> Vec<String> {
        let mut names: Vec<String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn endpoint_error(value: Value) -> String {
        let config = Config::from_toml("")
            .and_then(Config::validate)
            .expect("default config");
        config
            .endpoint_from_json(&value, &config.sources)
            .expect_err("refused")
            .to_string()
    }

    fn source_error(value: Value) -> String {
        Validated::source_from_json(&value)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn the_schemas_have_the_config_types_keys() {
        let endpoint = create_body(endpoint_keys(), &[], "");
        let ep = json!({ "id": "a", "url": "https://example.com/" });
        let with = |key: &str, value: Value| {
            let mut v = ep.clone();
            v[key] = value;
            v
        };
        assert_eq!(
            keys_of(&endpoint),
            expected_names(&endpoint_error(with("zzz", json!(1))))
        );
        assert_eq!(
            keys_of(&rate_limit()),
            expected_names(&endpoint_error(with("rate_limit", json!({ "zzz": 1 }))))
        );
        assert_eq!(
            keys_of(&endpoint["properties"]["retry"]),
            expected_names(&endpoint_error(with("retry", json!({ "zzz": 1 }))))
        );
        assert_eq!(
            keys_of(&breaker()["oneOf"][1]),
            expected_names(&endpoint_error(with("breaker", json!({ "zzz": 1 }))))
        );
        assert_eq!(
            keys_of(&ordering()["oneOf"][1]),
            expected_names(&endpoint_error(with("ordering", json!({ "zzz": 1 }))))
        );
        assert_eq!(
            vec!["header".to_string(), "json".to_string()],
            expected_names(&endpoint_error(with(
                "ordering",
                json!({ "key": { "zzz": "x" } })
            )))
        );
        assert_eq!(
            keys_of(&endpoint["properties"]["previous_secrets"]["items"]),
            expected_names(&endpoint_error(with(
                "previous_secrets",
                json!([{ "zzz": 1 }])
            )))
        );

        let source = create_body(source_keys(), &[], "");
        let src = json!({ "id": "s", "verify": "none" });
        let with = |key: &str, value: Value| {
            let mut v = src.clone();
            v[key] = value;
            v
        };
        assert_eq!(
            keys_of(&source),
            expected_names(&source_error(with("zzz", json!(1))))
        );
        let hmac = &source["properties"]["hmac"]["oneOf"][1];
        assert_eq!(
            keys_of(hmac),
            expected_names(&source_error(with("hmac", json!({ "zzz": 1 }))))
        );
        for key in ["algorithm", "encoding"] {
            let mut names: Vec<String> = hmac["properties"][key]["enum"]
                .as_array()
                .expect("enum")
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect();
            names.sort();
            assert_eq!(
                names,
                expected_names(&source_error(with(
                    "hmac",
                    json!({ "header": "h", key: "zzz" })
                )))
            );
        }
        assert_eq!(
            keys_of(&source["properties"]["response"]["oneOf"][1]),
            expected_names(&source_error(with("response", json!({ "zzz": 1 }))))
        );
        assert_eq!(
            vec!["header".to_string(), "json".to_string()],
            expected_names(&source_error(with("dedup", json!({ "zzz": "x" }))))
        );
        // serde lists each scheme's names and aliases.
        let mut schemes: Vec<String> = crate::verify::SchemeKind::names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        schemes.sort();
        assert_eq!(
            schemes,
            expected_names(&source_error(with("verify", json!("zzz"))))
        );
    }

    #[test]
    fn the_schemas_survive_utoipa_unchanged() {
        for (schema, value) in [
            (
                EndpointBody::schema(),
                create_body(endpoint_keys(), &["id"], ""),
            ),
            (SourcePatch::schema(), patch_body(source_keys(), "")),
        ] {
            let mut shown = serde_json::to_value(schema).expect("json");
            shown["description"] = Value::String(String::new());
            assert_eq!(shown, value);
        }
    }
}
