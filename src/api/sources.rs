//! `/api/v1/sources`: list, create, show, change (PATCH), delete. Secrets are never returned:
//! a source shows how many it holds.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::params::{self, ApiError};
use super::{AdminState, ApiResult};
use crate::catalog::Origin;
use crate::config::{FieldRef, Source};
use crate::respond;
use crate::store::EntryKind;

fn field(f: &Option<FieldRef>) -> Value {
    match f {
        None => Value::Null,
        Some(FieldRef::Header(h)) => json!({ "header": h }),
        Some(FieldRef::Json(p)) => json!({ "json": p }),
    }
}

fn view(st: &AdminState, s: &Source) -> Value {
    json!({
        "id": s.id,
        "verify": s.scheme.name(),
        "origin": st.catalog.origin(EntryKind::Source, &s.id).unwrap_or(Origin::File).as_str(),
        "inbound_url": format!("/in/{}", s.id),
        "dedup": field(&s.dedup),
        "event_type": field(&s.event_type),
        "dedup_window_ms": s.dedup_window.as_millis_u64(),
    })
}

fn find(st: &AdminState, id: &str) -> Result<Source, ApiError> {
    st.routes
        .current()
        .sources
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("unknown_source", format!("no source {id:?}")))
}

pub async fn list(State(st): State<Arc<AdminState>>) -> ApiResult {
    let routes = st.routes.current();
    let data: Vec<Value> = routes.sources.values().map(|s| view(&st, s)).collect();
    Ok(respond::json(
        StatusCode::OK,
        json!({ "data": data, "next_cursor": null }),
    ))
}

pub async fn show(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    Ok(respond::json(StatusCode::OK, view(&st, &find(&st, &id)?)))
}

/// Creates a source from the same keys as the file's `[[sources]]`, as JSON.
pub async fn create(State(st): State<Arc<AdminState>>, body: Bytes) -> ApiResult {
    let value: Value = params::json_body(&body)?;
    let id = st
        .catalog
        .create(EntryKind::Source, value, &st.dispatcher)
        .await?;
    Ok(respond::json(
        StatusCode::CREATED,
        view(&st, &find(&st, &id)?),
    ))
}

pub async fn update(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let patch: Value = params::json_body(&body)?;
    st.catalog
        .update(EntryKind::Source, &id, patch, &st.dispatcher)
        .await?;
    Ok(respond::json(StatusCode::OK, view(&st, &find(&st, &id)?)))
}

pub async fn delete(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    st.catalog
        .delete(EntryKind::Source, &id, &st.dispatcher)
        .await?;
    Ok(respond::json(
        StatusCode::OK,
        json!({ "id": id, "deleted": true }),
    ))
}
