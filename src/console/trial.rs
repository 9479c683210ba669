//! Trying a filter or a transform on a sample from the console, without sending or saving
//! anything: the "Test filter" and "Test transform" buttons of the endpoint form (the rules as
//! typed, unsaved) and of the endpoint page (the rules in force).
//!
//! A sample is what a user has at hand when a webhook "went missing": an event id (`evt_…`,
//! a stored event, headers and all), or a payload body pasted in. It becomes the body of the
//! API's own `test-filter` or `test-transform` and goes through its handler (`api::trials`)
//! with the session's role checked as the API checks it (test-filter: viewer; test-transform:
//! operator), so the console and the API cannot answer differently. A new endpoint has no id
//! yet: its trials go through the handlers' counterparts for rules on no endpoint
//! (`trials::test_filter_alone`, `trials::test_transform_alone`), which read, check and
//! answer with the same code.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::endpoint_form::FieldError;
use super::page;
use crate::api::AdminState;
use crate::api::access::{self, Role};
use crate::api::params::{self, ApiError};
use crate::api::trials::{self, FilterVerdict, TransformTrial};

/// Which button was pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Filter,
    Transform,
}

impl Kind {
    /// The button's value (`try=filter`, `try=transform`).
    pub fn from_field(value: Option<&str>) -> Option<Kind> {
        match value {
            Some("filter") => Some(Kind::Filter),
            Some("transform") => Some(Kind::Transform),
            _ => None,
        }
    }

    /// Its `/api/v1` route.
    fn route(self) -> &'static str {
        match self {
            Kind::Filter => "/endpoints/{id}/test-filter",
            Kind::Transform => "/endpoints/{id}/test-transform",
        }
    }

    /// The role its `/api/v1` route needs, from the API's own table (`api::access::ROUTES`);
    /// admin if the route were missing there, as the API would.
    pub fn role(self) -> Role {
        access::required_role(&Method::POST, self.route()).unwrap_or(Role::Admin)
    }
}

/// A sample as typed: a stored event's id, or a payload body (JSON, or any other text).
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Event(String),
    Json(Value),
    Text(String),
}

impl Sample {
    /// What the result says it was tried on.
    pub fn label(&self) -> String {
        match self {
            Sample::Event(id) => format!("event {id}"),
            Sample::Json(_) | Sample::Text(_) => "the sample body".into(),
        }
    }
}

fn sample_error(problem: impl Into<String>) -> FieldError {
    FieldError {
        field: "sample",
        problem: problem.into(),
    }
}

/// Reads the sample field: an event id, else JSON, else text (which only a transform can take).
pub fn sample(text: &str) -> Result<Sample, FieldError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(sample_error(
            "give an event id (evt_…) or a payload body to try",
        ));
    }
    if let Some(id) = crate::api::grammar::event_id(t) {
        return Ok(Sample::Event(id.to_string()));
    }
    if t.starts_with("evt_") && !t.contains(char::is_whitespace) {
        return Err(sample_error(format!(
            "{t:?} is not an event id (evt_ and 26 letters and digits)"
        )));
    }
    Ok(match serde_json::from_str(t) {
        Ok(v) => Sample::Json(v),
        Err(_) => Sample::Text(text.to_string()),
    })
}

/// The `test-filter` body trying `filter` (`None`: the endpoint's own) on `sample`.
pub fn filter_request(sample: &Sample, filter: Option<Value>) -> Result<Value, FieldError> {
    let mut body = Map::new();
    match sample {
        Sample::Event(id) => body.insert("event_id".into(), Value::String(id.clone())),
        Sample::Json(v) => body.insert("body".into(), v.clone()),
        Sample::Text(_) => {
            return Err(sample_error(
                "is neither an event id nor JSON: a filter is tried on a stored event or a JSON \
                 body (a body that is not JSON matches no body condition)",
            ));
        }
    };
    if let Some(f) = filter {
        body.insert("filter".into(), f);
    }
    Ok(Value::Object(body))
}

/// The `test-transform` body trying `program` (`None`: the endpoint's own) on `sample`; text
/// that is not JSON is a body sent as it is.
pub fn transform_request(sample: &Sample, program: Option<&str>) -> Value {
    let mut body = Map::new();
    match sample {
        Sample::Event(id) => body.insert("event_id".into(), Value::String(id.clone())),
        Sample::Json(v) => body.insert("body".into(), v.clone()),
        Sample::Text(t) => body.insert("body".into(), Value::String(t.clone())),
    };
    if let Some(p) = program {
        body.insert("transform".into(), Value::String(p.to_string()));
    }
    Value::Object(body)
}

/// The body of the trial `kind` of an endpoint's rules in force on the sample typed, and what
/// the result says it was tried on.
pub fn saved_request(kind: Kind, sample_text: &str) -> Result<(Value, String), FieldError> {
    let sample = sample(sample_text)?;
    let body = match kind {
        Kind::Filter => filter_request(&sample, None)?,
        Kind::Transform => transform_request(&sample, None),
    };
    Ok((body, sample.label()))
}

/// A trial's result as a page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shown {
    /// `filter` or `transform`.
    pub kind: &'static str,
    /// What it was tried on: `event evt_…`, or `the sample body`.
    pub on: String,
    /// `matched`, `unmatched`, `send`, `drop` or `error`.
    pub outcome: &'static str,
    /// What turned it away: `its sources`, `its event types` or `its filter`.
    pub stage: String,
    /// The filter clause that failed (`body.action.$in`), or empty.
    pub clause: String,
    /// Why it matched or not, in a sentence.
    pub reason: String,
    /// The body it would send, laid out when JSON.
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub event_type: String,
    /// `transform: …` when the run failed.
    pub error: String,
}

/// A routing stage as pages name it: `source` → `sources`, `event_type` → `event types`,
/// `filter`, and `changed` (an endpoint that would take the event now) → `changed since`.
pub fn stage_name(stage: &str) -> &'static str {
    match stage {
        "source" => "sources",
        "event_type" => "event types",
        "filter" => "filter",
        "changed" => "changed since",
        _ => "",
    }
}

/// A `test-filter` answer as shown.
pub fn shown_verdict(v: FilterVerdict, on: String) -> Shown {
    let stage = match v.stage.as_deref().map(stage_name) {
        Some(name) if !name.is_empty() => format!("its {name}"),
        _ => String::new(),
    };
    Shown {
        kind: "filter",
        on,
        outcome: if v.matched { "matched" } else { "unmatched" },
        stage,
        clause: v.clause.unwrap_or_default(),
        reason: if v.reason == "matches" {
            "it passes every clause of the filter".into()
        } else {
            v.reason
        },
        ..Shown::default()
    }
}

/// A `test-transform` answer as shown.
pub fn shown_trial(t: TransformTrial, on: String) -> Shown {
    let body = t.body.unwrap_or_default();
    let laid_out = if serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok() {
        page::indent_json(&body)
    } else {
        body
    };
    Shown {
        kind: "transform",
        on,
        outcome: match t.result.as_str() {
            "send" => "send",
            "drop" => "drop",
            _ => "error",
        },
        body: laid_out,
        headers: t.headers.into_iter().collect(),
        event_type: t.event_type.unwrap_or_default(),
        error: t.error.unwrap_or_default(),
        ..Shown::default()
    }
}

/// The form field an API refusal of a trial names: the filter, the transform, or else the
/// sample (`event_id: …`, `body: …`, a 404 for an event that is not stored).
pub fn field_of(e: &ApiError) -> &'static str {
    let key = e.message.split([':', '.', '[']).next().unwrap_or("").trim();
    match key {
        "filter" => "filter",
        "transform" => "transform",
        _ => "sample",
    }
}

/// The JSON answer of an API handler, read back.
async fn answer<T: DeserializeOwned>(result: Result<Response, ApiError>) -> Result<T, ApiError> {
    let response = result?;
    let bytes = axum::body::to_bytes(response.into_body(), crate::api::MAX_BODY_BYTES)
        .await
        .ok();
    bytes
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the trial ran, but its answer could not be read",
            )
        })
}

/// Runs a trial with `body` (from [`filter_request`] or [`transform_request`]): through the
/// API's own handler for the endpoint `id`, or, with none, on no endpoint.
pub async fn run(
    admin: &Arc<AdminState>,
    id: Option<&str>,
    kind: Kind,
    body: &Value,
    on: String,
) -> Result<Shown, ApiError> {
    let bytes = Bytes::from(body.to_string());
    match (kind, id) {
        (Kind::Filter, Some(id)) => {
            let r = trials::test_filter(State(Arc::clone(admin)), Path(id.to_string()), bytes);
            Ok(shown_verdict(answer(r.await).await?, on))
        }
        (Kind::Filter, None) => {
            let v = trials::test_filter_alone(admin, params::json_body(&bytes)?).await?;
            Ok(shown_verdict(v, on))
        }
        (Kind::Transform, Some(id)) => {
            let r = trials::test_transform(State(Arc::clone(admin)), Path(id.to_string()), bytes);
            Ok(shown_trial(answer(r.await).await?, on))
        }
        (Kind::Transform, None) => {
            let t = trials::test_transform_alone(admin, params::json_body(&bytes)?).await?;
            Ok(shown_trial(t, on))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    const EVENT: &str = "evt_01JD0000000000000000000000";

    #[test]
    fn a_sample_is_an_event_id_or_a_body() {
        assert_eq!(
            sample(&format!("  {EVENT}\n")),
            Ok(Sample::Event(EVENT.into()))
        );
        assert_eq!(
            sample(r#"{"action": "opened"}"#),
            Ok(Sample::Json(json!({"action": "opened"})))
        );
        assert_eq!(sample("a=1&b=2"), Ok(Sample::Text("a=1&b=2".into())));
        for bad in ["", " \n", "evt_nope"] {
            let e = sample(bad).expect_err(bad);
            assert_eq!(e.field, "sample");
            assert!(e.to_string().starts_with("sample: "), "{e}");
        }
        assert_eq!(
            sample(EVENT).map(|s| s.label()),
            Ok(format!("event {EVENT}"))
        );
    }

    #[test]
    fn samples_become_the_api_bodies() {
        let event = Sample::Event(EVENT.into());
        let body = Sample::Json(json!({"action": "closed"}));
        let filter = json!({"body": {"action": "opened"}});
        assert_eq!(
            filter_request(&event, Some(filter.clone())),
            Ok(json!({"event_id": EVENT, "filter": filter}))
        );
        assert_eq!(
            filter_request(&body, None),
            Ok(json!({"body": {"action": "closed"}}))
        );
        let e = filter_request(&Sample::Text("a=1".into()), None).expect_err("text");
        assert_eq!(e.field, "sample");
        assert_eq!(
            transform_request(&Sample::Text("a=1".into()), Some(".")),
            json!({"body": "a=1", "transform": "."})
        );
        assert_eq!(transform_request(&event, None), json!({"event_id": EVENT}));
    }

    #[test]
    fn the_rules_in_force_are_tried_without_naming_them() {
        let (body, on) = saved_request(Kind::Filter, EVENT).expect("an event");
        assert_eq!(body, json!({"event_id": EVENT}));
        assert_eq!(on, format!("event {EVENT}"));
        let (body, on) = saved_request(Kind::Transform, "a=1").expect("a body");
        assert_eq!(body, json!({"body": "a=1"}));
        assert_eq!(on, "the sample body");
        assert!(saved_request(Kind::Filter, "a=1").is_err());
    }

    #[test]
    fn verdicts_and_trials_are_shown_plainly() {
        let missed = shown_verdict(
            FilterVerdict {
                matched: false,
                stage: Some("filter".into()),
                clause: Some("body.action.$in".into()),
                reason: "found \"closed\"".into(),
            },
            "the sample body".into(),
        );
        assert_eq!(
            (
                missed.outcome,
                missed.stage.as_str(),
                missed.clause.as_str()
            ),
            ("unmatched", "its filter", "body.action.$in")
        );
        let matched = shown_verdict(
            FilterVerdict {
                matched: true,
                stage: None,
                clause: None,
                reason: "matches".into(),
            },
            String::new(),
        );
        assert_eq!(matched.outcome, "matched");
        assert!(matched.reason.contains("every clause"));
        let sent = shown_trial(
            TransformTrial {
                result: "send".into(),
                body: Some(r#"{"id":"evt_1"}"#.into()),
                headers: BTreeMap::from([("x-api-key".into(), "***".into())]),
                event_type: Some("order.paid".into()),
                error: None,
            },
            String::new(),
        );
        assert_eq!(sent.outcome, "send");
        assert_eq!(sent.body, "{\n  \"id\": \"evt_1\"\n}");
        assert_eq!(sent.headers, [("x-api-key".to_string(), "***".to_string())]);
        let text = shown_trial(
            TransformTrial {
                result: "send".into(),
                body: Some("a=1".into()),
                headers: BTreeMap::new(),
                event_type: None,
                error: None,
            },
            String::new(),
        );
        assert_eq!(text.body, "a=1");
        let failed = shown_trial(
            TransformTrial {
                result: "error".into(),
                body: None,
                headers: BTreeMap::new(),
                event_type: None,
                error: Some("transform: runtime error: nope".into()),
            },
            String::new(),
        );
        assert_eq!(failed.outcome, "error");
        assert!(failed.error.starts_with("transform:"));
    }

    #[test]
    fn a_refused_trial_names_its_field() {
        let e = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m);
        assert_eq!(
            field_of(&e("filter.body.a.$gte: expected a number")),
            "filter"
        );
        assert_eq!(field_of(&e("transform: 1:2: unexpected")), "transform");
        assert_eq!(field_of(&e("event_id: \"x\" is not an event id")), "sample");
        assert_eq!(field_of(&e("no event evt_1")), "sample");
    }

    #[test]
    fn the_roles_are_the_apis() {
        assert_eq!(Kind::from_field(Some("filter")), Some(Kind::Filter));
        assert_eq!(Kind::from_field(Some("transform")), Some(Kind::Transform));
        assert_eq!(Kind::from_field(Some("x")), None);
        assert_eq!(Kind::Filter.role(), Role::Viewer);
        assert_eq!(Kind::Transform.role(), Role::Operator);
    }
}
