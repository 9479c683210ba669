//! Creating (`/console/endpoints/new`) and editing (`/console/endpoints/{id}/edit`) an endpoint
//! made through the API, for admins.
//!
//! The form has a field for the id, URL, sources and event types, a JSON textarea for the
//! payload filter and one for the transform (a jq program), and **one JSON textarea for the
//! advanced keys** (retry, timeout, rate limit, max in flight, headers, forwarded headers): a
//! field each would double the form for keys most endpoints leave alone. The form becomes the
//! API's own body (`body`: a create, or a PATCH of what changed) and goes through the API's
//! own handler, so it is validated by the same code as `/api/v1`; a refused field re-shows the
//! form with the field named and every value kept, and nothing is stored.
//!
//! **The filter and the transform can be tried before they are saved**: "Test filter" and
//! "Test transform" post the whole form to `…/try`, which runs the rules as typed on the
//! sample (`trial`) and shows the form again with the result, every value kept. The edit
//! form tries them on its endpoint through the API's own handlers; the form for a new one,
//! which has no endpoint yet, on none.
//!
//! Secrets stay out of the form: the secret is made (random) on create when "sign" is ticked
//! and changed only by rotation; header values and the URL's credentials are never shown (the
//! URL is shown masked, and left as it is when it comes back unchanged).

mod body;

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

pub use body::{FieldError, filter_text};
use body::{
    Values, advanced_text, create_body, field_named, filter_value, patch_body, trial_request,
};

use super::endpoint::{self, FILE_REASON};
use super::page::{self, Chrome};
use super::trial::{self, Kind, Shown};
use super::{Action, Shared, Signed};
use crate::api::access::Role;
use crate::api::views::EndpointView;
use crate::catalog::CatalogError;
use crate::store::EntryKind;

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
    /// Where "Test filter" and "Test transform" post the form.
    try_action: String,
    /// What the last of them found.
    trial: Option<Shown>,
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
    // The result is shown below the buttons: the answer scrolls there.
    let try_action = format!("{action}/try#trial");
    Form {
        chrome: Chrome::new("endpoints", title, user),
        creating,
        action,
        cancel,
        v,
        error: None,
        field: "",
        header_names,
        try_action,
        trial: None,
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
    let secret = v
        .sign
        .then(crate::verify::standard_webhooks::generate_secret);
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
        url: view.url.clone().unwrap_or_default(),
        sources: view.sources.join(", "),
        event_types: view.event_types.clone().unwrap_or_default().join(", "),
        filter: filter_text(view.filter.as_ref()),
        transform: view.transform.clone().unwrap_or_default(),
        advanced: advanced_text(&stored),
        sign: false,
        sample: String::new(),
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
    let patch = match patch_body(&v, &stored, view.url.as_deref().unwrap_or("")) {
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

/// "Test filter" or "Test transform" on the form for a new endpoint: the rules as typed, on the
/// sample, on no endpoint.
pub async fn try_new(State(st): State<Shared>, action: Action) -> Response {
    if let Some(r) = action.refused_unless(Role::Admin) {
        return r;
    }
    let v = Values::from_action(&action);
    let kind = Kind::from_field(action.field("try"));
    tried(&st, form(&action.user, true, "", v, Vec::new()), None, kind).await
}

/// "Test filter" or "Test transform" on an endpoint's edit form: the rules as typed, on the
/// sample, through the API's own handlers for that endpoint.
pub async fn try_edit(
    State(st): State<Shared>,
    Path(id): Path<String>,
    action: Action,
) -> Response {
    if let Some(r) = action.refused_unless(Role::Admin) {
        return r;
    }
    let (view, _) = match editable(&st, &id) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let v = Values {
        id: id.clone(),
        ..Values::from_action(&action)
    };
    let kind = Kind::from_field(action.field("try"));
    let f = form(&action.user, false, &id, v, view.headers);
    tried(&st, f, Some(&id), kind).await
}

/// Runs the trial the pressed button asks for, and shows the form again with its result below
/// the buttons, or with the field at fault; every value is kept and nothing is saved.
async fn tried(st: &Shared, mut f: Form, id: Option<&str>, kind: Option<Kind>) -> Response {
    let Some(kind) = kind else {
        let problem = "try: press Test filter or Test transform".to_string();
        return again(f, StatusCode::BAD_REQUEST, problem, "sample");
    };
    let (body, on) = match trial_request(&f.v, kind) {
        Ok(found) => found,
        Err(e) => return again(f, StatusCode::BAD_REQUEST, e.to_string(), e.field),
    };
    match trial::run(&st.admin, id, kind, &body, on).await {
        Ok(mut shown) => {
            if kind == Kind::Filter && matches!(filter_value(&f.v.filter), Ok(None)) {
                // Tried as `{}`, which holds for everything: say what an empty field means.
                shown.reason = "there is no filter: it takes every event it subscribes to".into();
            }
            f.trial = Some(shown);
            page::render(StatusCode::OK, &f)
        }
        Err(e) => {
            let field = trial::field_of(&e);
            again(f, e.status, e.message, field)
        }
    }
}
