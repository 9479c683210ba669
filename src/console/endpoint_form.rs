//! Creating (`/console/endpoints/new`) and editing (`/console/endpoints/{id}/edit`) an endpoint
//! made through the API, for admins.
//!
//! The form has a field for the id, URL, sources and event types, and **one JSON textarea for
//! the advanced keys** (retry, timeout, rate limit, max in flight, headers, forwarded headers):
//! a field each would double the form for keys most endpoints leave alone. The form becomes
//! the API's own body (a create, or a PATCH of what changed) and goes through the API's own
//! handler, so it is validated by the same code as `/api/v1`; a refused field re-shows the
//! form with the field named and every value kept, and nothing is stored.
//!
//! Secrets stay out of the form: the secret is made (random) on create when "sign" is ticked
//! and changed only by rotation; header values and the URL's credentials are never shown (the
//! URL is shown masked, and left as it is when it comes back unchanged).

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value};

use super::endpoint::{self, FILE_REASON};
use super::page::{self, Chrome};
use super::{Action, Shared, Signed};
use crate::api::access::Role;
use crate::api::views::EndpointView;
use crate::catalog::CatalogError;
use crate::store::EntryKind;

/// The keys with a field of their own.
const OWN_FIELDS: [&str; 4] = ["id", "url", "sources", "event_types"];
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
    /// A JSON object of the other keys, or nothing.
    pub advanced: String,
    /// Create only: generate a signing secret.
    pub sign: bool,
}

impl Values {
    fn from_action(action: &Action) -> Values {
        let f = |name| action.field(name).unwrap_or("").trim().to_string();
        Values {
            id: f("id"),
            url: f("url"),
            sources: f("sources"),
            event_types: f("event_types"),
            advanced: action.field("advanced").unwrap_or("").to_string(),
            sign: action.field("sign").is_some(),
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

/// The API's create body for the form; `secret` is the one to sign with, if any.
pub fn create_body(v: &Values, secret: Option<String>) -> Result<Value, FieldError> {
    let mut body = advanced_object(&v.advanced)?;
    body.insert("id".into(), Value::String(v.id.clone()));
    body.insert("url".into(), Value::String(v.url.clone()));
    let sources = list(&v.sources);
    if !sources.is_empty() {
        body.insert("sources".into(), Value::Array(sources));
    }
    let types = list(&v.event_types);
    if !types.is_empty() {
        body.insert("event_types".into(), Value::Array(types));
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

/// The API's PATCH body for an edit of `stored`: the URL unless it came back as shown
/// (`shown_url`, masked), the lists (empty removes them), the advanced keys given, and `null`
/// for each advanced key shown that the form no longer has.
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
    Ok(Value::Object(patch))
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

#[derive(Template)]
#[template(path = "console/endpoint_form.html")]
struct Form {
    chrome: Chrome,
    creating: bool,
    action: String,
    cancel: String,
    v: Values,
    /// The refusal, and the field it names.
    error: Option<String>,
    field: &'static str,
    /// Edit: the headers set now, by name.
    header_names: Vec<String>,
}

fn form(user: &Signed, creating: bool, id: &str, v: Values, header_names: Vec<String>) -> Form {
    let (title, action, cancel) = if creating {
        (
            "New endpoint".to_string(),
            "/console/endpoints/new".to_string(),
            "/console/endpoints".to_string(),
        )
    } else {
        (
            format!("Edit endpoint {id}"),
            format!("{}/edit", endpoint::link(id, &[])),
            endpoint::link(id, &[]),
        )
    };
    Form {
        chrome: Chrome::new("endpoints", title, user),
        creating,
        action,
        cancel,
        v,
        error: None,
        field: "",
        header_names,
    }
}

fn refused(user: &Signed) -> Option<Response> {
    (!user.may(Role::Admin))
        .then(|| page::problem(StatusCode::FORBIDDEN, "Your role may not do this."))
}

/// The re-shown form after a refusal: the status, the message naming the field, the values.
fn again(mut f: Form, status: StatusCode, message: String, field: &'static str) -> Response {
    f.error = Some(message);
    f.field = field;
    page::render(status, &f)
}

pub async fn new_form(user: Signed) -> Response {
    if let Some(r) = refused(&user) {
        return r;
    }
    let v = Values {
        sign: true,
        ..Values::default()
    };
    page::render(StatusCode::OK, &form(&user, true, "", v, Vec::new()))
}

pub async fn create(State(st): State<Shared>, action: Action) -> Response {
    if let Some(r) = action.refused_unless(Role::Admin) {
        return r;
    }
    let v = Values::from_action(&action);
    let f = form(&action.user, true, "", v.clone(), Vec::new());
    let secret = v.sign.then(|| {
        use base64::Engine;
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
        )
    });
    let body = match create_body(&v, secret) {
        Ok(b) => b,
        Err(e) => return again(f, StatusCode::BAD_REQUEST, e.to_string(), e.field),
    };
    let answer =
        crate::api::endpoints::create(State(Arc::clone(&st.admin)), Bytes::from(body.to_string()))
            .await;
    match answer {
        Ok(_) => {
            tracing::info!(endpoint = %v.id, role = page::role_name(action.user.session.role), "console: endpoint created");
            Redirect::to(&endpoint::link(&v.id, &[("done", "created")])).into_response()
        }
        Err(e) => refused_by_api(f, e),
    }
}

/// The form again after the API refused it, naming the field at fault.
fn refused_by_api(f: Form, e: crate::api::params::ApiError) -> Response {
    let field = if e.code == "already_exists" {
        "id"
    } else {
        field_named(&e.message)
    };
    again(f, e.status, e.message, field)
}

/// An endpoint made through the API: its view and its stored JSON; or the page that says
/// why there is none to edit.
fn editable(st: &Shared, id: &str) -> Result<(EndpointView, Value), Box<Response>> {
    let Some((view, _)) = endpoint::find(st, id) else {
        return Err(Box::new(endpoint::not_found(id)));
    };
    match st.admin.catalog.api_entry(EntryKind::Endpoint, id) {
        Ok(stored) => Ok((view, stored)),
        Err(CatalogError::FileDeclared(..)) => {
            Err(Box::new(page::problem(StatusCode::CONFLICT, FILE_REASON)))
        }
        Err(CatalogError::NotFound(..)) => Err(Box::new(endpoint::not_found(id))),
        Err(e) => Err(Box::new(page::api_error(e.into()))),
    }
}

pub async fn edit_form(State(st): State<Shared>, user: Signed, Path(id): Path<String>) -> Response {
    if let Some(r) = refused(&user) {
        return r;
    }
    let (view, stored) = match editable(&st, &id) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let v = Values {
        id: id.clone(),
        url: view.url.clone(),
        sources: view.sources.join(", "),
        event_types: view.event_types.clone().unwrap_or_default().join(", "),
        advanced: advanced_text(&stored),
        sign: false,
    };
    page::render(StatusCode::OK, &form(&user, false, &id, v, view.headers))
}

pub async fn update(State(st): State<Shared>, Path(id): Path<String>, action: Action) -> Response {
    if let Some(r) = action.refused_unless(Role::Admin) {
        return r;
    }
    let (view, stored) = match editable(&st, &id) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let v = Values {
        id: id.clone(),
        ..Values::from_action(&action)
    };
    let f = form(&action.user, false, &id, v.clone(), view.headers.clone());
    let patch = match patch_body(&v, &stored, &view.url) {
        Ok(p) => p,
        Err(e) => return again(f, StatusCode::BAD_REQUEST, e.to_string(), e.field),
    };
    let answer = crate::api::endpoints::update(
        State(Arc::clone(&st.admin)),
        Path(id.clone()),
        Bytes::from(patch.to_string()),
    )
    .await;
    match answer {
        Ok(_) => {
            tracing::info!(endpoint = %id, role = page::role_name(action.user.session.role), "console: endpoint changed");
            Redirect::to(&endpoint::link(&id, &[("done", "saved")])).into_response()
        }
        Err(e) => refused_by_api(f, e),
    }
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
            ..values()
        };
        assert_eq!(
            create_body(&bare, None).expect("valid"),
            json!({"id": "shop", "url": "https://example.com/hook"})
        );
    }

    #[test]
    fn the_advanced_keys_are_a_json_object_without_fields_or_secrets() {
        for (advanced, says) in [
            ("{", "not JSON"),
            ("[1]", "JSON object"),
            (r#"{"url": "https://x/"}"#, "field of its own"),
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
            "timeout": "5s", "max_in_flight": 4});
        let shown = advanced_text(&stored);
        assert!(
            !shown.contains("whsec_x") && !shown.contains("Bearer"),
            "{shown}"
        );
        assert!(shown.contains("max_in_flight"), "{shown}");
        let v = Values {
            url: "https://***:***@example.com/hook".into(),
            ..values()
        };
        let patch = patch_body(&v, &stored, "https://***:***@example.com/hook").expect("valid");
        assert_eq!(
            patch,
            json!({"timeout": "10s", "max_in_flight": null,
                "sources": ["orders", "billing"], "event_types": ["order.*", "invoice.paid"]})
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
        assert!(patch.get("headers").is_none(), "headers are kept");
    }

    #[test]
    fn api_errors_name_their_field() {
        assert_eq!(field_named("url: must be http or https"), "url");
        assert_eq!(field_named("sources[1]: no source \"x\""), "sources");
        assert_eq!(field_named("retry.base: bad duration"), "advanced");
        assert_eq!(field_named("endpoint \"a\" already exists"), "advanced");
    }
}
