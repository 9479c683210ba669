//! `/api/v1/sources`: list, create, show, change (PATCH), delete. Secrets are never returned:
//! a source shows how many it holds.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use super::entries::{SourceBody, SourcePatch};
use super::grammar::EntryId;
use super::params::{self, ApiError};
use super::views::{Deleted, ErrorBody, FieldView, Page, SourceView};
use super::{AdminState, ApiResult};
use crate::catalog::Origin;
use crate::model::Source;
use crate::respond;
use crate::store::EntryKind;
use crate::verify::FieldRef;

fn field(f: &Option<FieldRef>) -> Option<FieldView> {
    match f {
        None => None,
        Some(FieldRef::Header(h)) => Some(FieldView::Header(h.clone())),
        Some(FieldRef::Json(p)) => Some(FieldView::Json(p.clone())),
    }
}

fn view(st: &AdminState, s: &Source) -> SourceView {
    SourceView {
        id: s.id.clone(),
        verify: s.scheme.name().into(),
        origin: st
            .catalog
            .origin(EntryKind::Source, &s.id)
            .unwrap_or(Origin::File)
            .as_str()
            .into(),
        inbound_url: format!("/in/{}", s.id),
        dedup: field(&s.dedup),
        event_type: field(&s.event_type),
        dedup_window_ms: s.dedup_window_ms(),
    }
}

fn find(st: &AdminState, id: &str) -> Result<Source, ApiError> {
    st.routes
        .current()
        .sources
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("unknown_source", format!("no source {id:?}")))
}

/// Sources, with their origin; secrets are never shown.
#[utoipa::path(get, path = "/api/v1/sources", operation_id = "list_sources", tag = "sources",
    responses((status = 200, body = Page<SourceView>)), security(("bearer" = [])))]
pub async fn list(State(st): State<Arc<AdminState>>) -> ApiResult {
    let routes = st.routes.current();
    let body = Page {
        data: routes
            .sources
            .values()
            .map(|s| view(&st, s))
            .collect::<Vec<_>>(),
        next_cursor: None,
    };
    Ok(respond::typed(StatusCode::OK, &body))
}

/// One source.
#[utoipa::path(get, path = "/api/v1/sources/{id}", operation_id = "get_source", tag = "sources",
    params(("id" = EntryId, Path)),
    responses((status = 200, body = SourceView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    Ok(respond::typed(StatusCode::OK, &view(&st, &find(&st, &id)?)))
}

/// Creates a source from the same keys as the file's `[[sources]]`, as JSON.
#[utoipa::path(post, path = "/api/v1/sources", operation_id = "create_source", tag = "sources",
    request_body = SourceBody,
    responses((status = 201, body = SourceView), (status = 400, body = ErrorBody),
        (status = 409, description = "A source with this id exists", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(State(st): State<Arc<AdminState>>, body: Bytes) -> ApiResult {
    let value: Value = params::json_body(&body)?;
    let id = st
        .catalog
        .create(EntryKind::Source, value, &st.dispatcher)
        .await?;
    Ok(respond::typed(
        StatusCode::CREATED,
        &view(&st, &find(&st, &id)?),
    ))
}

/// Changes an API-made source.
#[utoipa::path(patch, path = "/api/v1/sources/{id}", operation_id = "update_source", tag = "sources",
    params(("id" = EntryId, Path)),
    request_body = SourcePatch,
    responses((status = 200, body = SourceView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Declared in the config file", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let patch: Value = params::json_body(&body)?;
    st.catalog
        .update(EntryKind::Source, &id, patch, &st.dispatcher)
        .await?;
    Ok(respond::typed(StatusCode::OK, &view(&st, &find(&st, &id)?)))
}

/// Deletes an API-made source no endpoint subscribes to.
#[utoipa::path(delete, path = "/api/v1/sources/{id}", operation_id = "delete_source", tag = "sources",
    params(("id" = EntryId, Path)),
    responses((status = 200, body = Deleted), (status = 404, body = ErrorBody),
        (status = 409, description = "Declared in the config file, or an endpoint subscribes to it", body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> ApiResult {
    st.catalog
        .delete(EntryKind::Source, &id, &st.dispatcher)
        .await?;
    Ok(respond::typed(
        StatusCode::OK,
        &Deleted {
            id,
            deleted: true,
            dead_lettered: None,
        },
    ))
}
