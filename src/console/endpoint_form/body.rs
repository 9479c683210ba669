//! The endpoint form's values as typed, and the API bodies made of them (pure): a create, or a
//! PATCH of an entry as stored. Filter and transform have fields of their own (a JSON textarea
//! and a jq textarea); everything else beyond id, URL, sources and event types goes in the
//! advanced JSON textarea, never the secrets.

use serde_json::{Map, Value};

use super::super::Action;
use super::super::trial::{self, Kind};

/// The keys with a field of their own.
const OWN_FIELDS: [&str; 6] = ["id", "url", "sources", "event_types", "filter", "transform"];
/// The keys the form never carries: secrets, which rotation changes.
const SECRET_KEYS: [&str; 2] = ["secret", "previous_secrets"];

/// What the form holds, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub id: String,
    pub url: String,
    /// Comma- or space-separated.
    pub sources: String,
    pub event_types: String,
    /// The payload filter, a JSON document; empty: none.
    pub filter: String,
    /// The transform, a jq program; empty: none.
    pub transform: String,
    /// A JSON object of the other keys, or nothing.
    pub advanced: String,
    /// Create only: generate a signing secret.
    pub sign: bool,
    /// What "Test filter" and "Test transform" try: an event id or a payload body. Never saved.
    pub sample: String,
}

impl Values {
    pub fn from_action(action: &Action) -> Values {
        let f = |name| action.field(name).unwrap_or("").trim().to_string();
        // Textareas come back as typed, but a browser sends their line breaks as CRLF.
        let text = |name| action.field(name).unwrap_or("").replace("\r\n", "\n");
        Values {
            id: f("id"),
            url: f("url"),
            sources: f("sources"),
            event_types: f("event_types"),
            filter: text("filter"),
            transform: text("transform"),
            advanced: text("advanced"),
            sign: action.field("sign").is_some(),
            sample: text("sample"),
        }
    }
}

/// A form value the console refuses before the API sees it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

fn list(text: &str) -> Vec<Value> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_string()))
        .collect()
}

fn advanced_object(text: &str) -> Result<Map<String, Value>, FieldError> {
    let bad = |problem: String| FieldError {
        field: "advanced",
        problem,
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let Value::Object(map) =
        serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?
    else {
        return Err(bad(
            "must be a JSON object, like {\"timeout\": \"10s\"}".into()
        ));
    };
    if let Some(k) = map.keys().find(|k| OWN_FIELDS.contains(&k.as_str())) {
        return Err(bad(format!("{k:?} has a field of its own")));
    }
    if let Some(k) = map.keys().find(|k| SECRET_KEYS.contains(&k.as_str())) {
        return Err(bad(format!(
            "{k:?} cannot be set here: rotate the secret instead"
        )));
    }
    Ok(map)
}

/// The filter field as the API takes it: nothing when empty, else its JSON document (checked
/// by the API, which names the path at fault).
pub fn filter_value(text: &str) -> Result<Option<Value>, FieldError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|e| FieldError {
        field: "filter",
        problem: format!(
            "not JSON ({e}); a filter is a JSON object like {{\"body\": {{\"action\": \"opened\"}}}}"
        ),
    })
}

/// The transform field as the API takes it: nothing when empty (blank lines included).
pub fn transform_value(text: &str) -> Option<&str> {
    (!text.trim().is_empty()).then_some(text)
}

/// The API's create body for the form; `secret` is the one to sign with, if any.
pub fn create_body(v: &Values, secret: Option<String>) -> Result<Value, FieldError> {
    let mut body = advanced_object(&v.advanced)?;
    body.insert("id".into(), Value::String(v.id.clone()));
    // A pull endpoint (`"kind": "pull"` under Advanced) has no URL: an empty field names none,
    // and a push endpoint without one is refused with the URL field at fault.
    if !v.url.trim().is_empty() {
        body.insert("url".into(), Value::String(v.url.clone()));
    }
    let sources = list(&v.sources);
    if !sources.is_empty() {
        body.insert("sources".into(), Value::Array(sources));
    }
    let types = list(&v.event_types);
    if !types.is_empty() {
        body.insert("event_types".into(), Value::Array(types));
    }
    if let Some(filter) = filter_value(&v.filter)? {
        body.insert("filter".into(), filter);
    }
    if let Some(program) = transform_value(&v.transform) {
        body.insert("transform".into(), Value::String(program.to_string()));
    }
    if let Some(s) = secret {
        body.insert("secret".into(), Value::String(s));
    }
    Ok(Value::Object(body))
}

/// The advanced keys of a stored entry as the form shows them: every key without a field of
/// its own, but the secrets and the headers (whose values may be credentials).
pub fn advanced_text(stored: &Value) -> String {
    let shown = shown_advanced(stored);
    if shown.is_empty() {
        String::new()
    } else {
        serde_json::to_string_pretty(&Value::Object(shown)).unwrap_or_default()
    }
}

fn shown_advanced(stored: &Value) -> Map<String, Value> {
    stored
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !OWN_FIELDS.contains(&k.as_str())
                        && !SECRET_KEYS.contains(&k.as_str())
                        && *k != "headers"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The filter as the edit form shows it: its document laid out, or nothing.
pub fn filter_text(filter: Option<&Value>) -> String {
    filter
        .and_then(|f| serde_json::to_string_pretty(f).ok())
        .unwrap_or_default()
}

/// The API's PATCH body for an edit of `stored`: the URL unless it came back as shown
/// (`shown_url`, masked), the lists, filter and transform (empty removes them), the advanced
/// keys given, and `null` for each advanced key shown that the form no longer has.
pub fn patch_body(v: &Values, stored: &Value, shown_url: &str) -> Result<Value, FieldError> {
    let advanced = advanced_object(&v.advanced)?;
    let mut patch = Map::new();
    for k in shown_advanced(stored).keys() {
        if !advanced.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    patch.extend(advanced);
    if v.url != shown_url {
        // The form shows credentials as `***`: a URL changed around them would store the
        // stars in their place, and the endpoint would start failing its authentication.
        if shown_url.contains("***") && v.url.contains("***") {
            return Err(FieldError {
                field: "url",
                problem: "still holds *** where the stored URL has a credential; to change \
                          the URL, type it whole, credentials included"
                    .into(),
            });
        }
        patch.insert("url".into(), Value::String(v.url.clone()));
    }
    for (key, text) in [("sources", &v.sources), ("event_types", &v.event_types)] {
        let items = list(text);
        patch.insert(
            key.into(),
            if items.is_empty() {
                Value::Null
            } else {
                Value::Array(items)
            },
        );
    }
    patch.insert(
        "filter".into(),
        filter_value(&v.filter)?.unwrap_or(Value::Null),
    );
    patch.insert(
        "transform".into(),
        transform_value(&v.transform).map_or(Value::Null, |p| Value::String(p.to_string())),
    );
    Ok(Value::Object(patch))
}

/// The body of the trial `kind` of the form's rules as typed (unsaved) on its sample, and what
/// the result says it was tried on. An emptied filter is tried as `{}`, which every event
/// passes, as it would with none; an emptied transform has nothing to try.
pub fn trial_request(v: &Values, kind: Kind) -> Result<(Value, String), FieldError> {
    let sample = trial::sample(&v.sample)?;
    let body = match kind {
        Kind::Filter => {
            let filter = filter_value(&v.filter)?.unwrap_or_else(|| Value::Object(Map::new()));
            trial::filter_request(&sample, Some(filter))?
        }
        Kind::Transform => {
            let program = transform_value(&v.transform).ok_or_else(|| FieldError {
                field: "transform",
                problem: "type a program to try (with none, deliveries are sent as they are)"
                    .into(),
            })?;
            trial::transform_request(&sample, Some(program))
        }
    };
    Ok((body, sample.label()))
}

/// The form field an API error names (its message starts with the key): one of the own
/// fields, or else the advanced textarea.
pub fn field_named(message: &str) -> &'static str {
    let key = message.split([':', '.', '[']).next().unwrap_or("").trim();
    OWN_FIELDS
        .into_iter()
        .find(|f| *f == key)
        .unwrap_or("advanced")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values() -> Values {
        Values {
            id: "shop".into(),
            url: "https://example.com/hook".into(),
            sources: "orders, billing".into(),
            event_types: "order.* invoice.paid".into(),
            advanced: r#"{"timeout": "10s"}"#.into(),
            sign: true,
            ..Values::default()
        }
    }

    #[test]
    fn a_create_body_has_the_fields_and_the_advanced_keys() {
        let body = create_body(&values(), Some("whsec_x".into())).expect("valid");
        assert_eq!(
            body,
            json!({"id": "shop", "url": "https://example.com/hook",
                "sources": ["orders", "billing"], "event_types": ["order.*", "invoice.paid"],
                "timeout": "10s", "secret": "whsec_x"})
        );
        let bare = Values {
            sources: String::new(),
            event_types: " ".into(),
            advanced: String::new(),
            filter: " \n".into(),
            transform: "\n".into(),
            ..values()
        };
        assert_eq!(
            create_body(&bare, None).expect("valid"),
            json!({"id": "shop", "url": "https://example.com/hook"})
        );
    }

    #[test]
    fn a_pull_endpoint_is_made_with_no_url() {
        let pull = Values {
            url: " ".into(),
            advanced: r#"{"kind": "pull"}"#.into(),
            sources: String::new(),
            event_types: String::new(),
            ..values()
        };
        assert_eq!(
            create_body(&pull, None).expect("valid"),
            json!({"id": "shop", "kind": "pull"})
        );
    }

    #[test]
    fn filter_and_transform_go_in_as_typed_and_a_filter_must_be_json() {
        let v = Values {
            filter: r#"{"body": {"action": {"$in": ["opened"]}}}"#.into(),
            transform: "{body: {id: .body.id}}\n".into(),
            ..values()
        };
        let body = create_body(&v, None).expect("valid");
        assert_eq!(
            body["filter"],
            json!({"body": {"action": {"$in": ["opened"]}}})
        );
        assert_eq!(body["transform"], "{body: {id: .body.id}}\n");
        // What the filter says is the API's to judge; that it is JSON, the form's.
        for bad in ["{", "body.action = opened"] {
            let e = create_body(
                &Values {
                    filter: bad.into(),
                    ..values()
                },
                None,
            )
            .expect_err(bad);
            assert_eq!(e.field, "filter");
            assert!(e.to_string().starts_with("filter: not JSON"), "{e}");
        }
    }

    #[test]
    fn the_advanced_keys_are_a_json_object_without_fields_or_secrets() {
        for (advanced, says) in [
            ("{", "not JSON"),
            ("[1]", "JSON object"),
            (r#"{"url": "https://x/"}"#, "field of its own"),
            (r#"{"filter": {"body": {}}}"#, "field of its own"),
            (r#"{"transform": "."}"#, "field of its own"),
            (r#"{"secret": "whsec_AAAA"}"#, "rotate"),
        ] {
            let v = Values {
                advanced: advanced.into(),
                ..values()
            };
            let e = create_body(&v, None).expect_err(advanced);
            assert_eq!(e.field, "advanced");
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn a_patch_sends_what_changed_and_removes_what_was_taken_out() {
        let stored = json!({"id": "shop", "url": "https://u:p@example.com/hook",
            "secret": "whsec_x", "headers": {"authorization": "Bearer t"},
            "timeout": "5s", "max_in_flight": 4,
            "filter": {"body": {"a": 1}}, "transform": "."});
        let shown = advanced_text(&stored);
        assert!(
            !shown.contains("whsec_x") && !shown.contains("Bearer"),
            "{shown}"
        );
        assert!(shown.contains("max_in_flight"), "{shown}");
        assert!(
            !shown.contains("filter") && !shown.contains("transform"),
            "{shown}"
        );
        let v = Values {
            url: "https://***:***@example.com/hook".into(),
            filter: filter_text(stored.get("filter")),
            transform: ".".into(),
            ..values()
        };
        let patch = patch_body(&v, &stored, "https://***:***@example.com/hook").expect("valid");
        assert_eq!(
            patch,
            json!({"timeout": "10s", "max_in_flight": null,
                "sources": ["orders", "billing"], "event_types": ["order.*", "invoice.paid"],
                "filter": {"body": {"a": 1}}, "transform": "."})
        );
        let v = Values {
            sources: String::new(),
            event_types: String::new(),
            advanced: String::new(),
            ..values()
        };
        let patch = patch_body(&v, &stored, "masked").expect("valid");
        assert_eq!(patch["url"], "https://example.com/hook");
        // A masked URL changed elsewhere would store the stars: refused, naming the field.
        let moved = Values {
            url: "https://***:***@other.example/hook".into(),
            ..values()
        };
        let e = patch_body(&moved, &stored, "https://***:***@example.com/hook")
            .expect_err("stars kept");
        assert_eq!(e.field, "url");
        assert_eq!(patch["sources"], Value::Null);
        assert_eq!(patch["timeout"], Value::Null);
        // Emptied, the filter and the transform are removed.
        assert_eq!(patch["filter"], Value::Null);
        assert_eq!(patch["transform"], Value::Null);
        assert!(patch.get("headers").is_none(), "headers are kept");
    }

    #[test]
    fn a_trial_tries_the_rules_as_typed() {
        let v = Values {
            filter: r#"{"body": {"action": "opened"}}"#.into(),
            transform: "{body: {id: .body.id}}".into(),
            sample: r#"{"action": "closed", "id": 7}"#.into(),
            ..values()
        };
        let (body, on) = trial_request(&v, Kind::Filter).expect("valid");
        assert_eq!(
            body,
            json!({"body": {"action": "closed", "id": 7},
                "filter": {"body": {"action": "opened"}}})
        );
        assert_eq!(on, "the sample body");
        let (body, _) = trial_request(&v, Kind::Transform).expect("valid");
        assert_eq!(body["transform"], "{body: {id: .body.id}}");
        // Emptied: no filter holds for all; no program to try; no sample to try on.
        let empty = Values {
            filter: String::new(),
            transform: " ".into(),
            ..v.clone()
        };
        let (body, _) = trial_request(&empty, Kind::Filter).expect("valid");
        assert_eq!(body["filter"], json!({}));
        let e = trial_request(&empty, Kind::Transform).expect_err("no program");
        assert_eq!(e.field, "transform");
        let e = trial_request(
            &Values {
                sample: String::new(),
                ..v.clone()
            },
            Kind::Filter,
        )
        .expect_err("no sample");
        assert_eq!(e.field, "sample");
        let e = trial_request(
            &Values {
                filter: "{".into(),
                ..v
            },
            Kind::Filter,
        )
        .expect_err("not JSON");
        assert_eq!(e.field, "filter");
    }

    #[test]
    fn api_errors_name_their_field() {
        assert_eq!(field_named("url: must be http or https"), "url");
        assert_eq!(field_named("sources[1]: no source \"x\""), "sources");
        assert_eq!(field_named("retry.base: bad duration"), "advanced");
        assert_eq!(field_named("endpoint \"a\" already exists"), "advanced");
        assert_eq!(
            field_named("filter.body.amount.$gte: expected a number"),
            "filter"
        );
        assert_eq!(field_named("filter: is a string"), "filter");
        assert_eq!(field_named("transform: 1:3: unexpected token"), "transform");
    }
}
