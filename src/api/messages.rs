//! A pull endpoint's messages (issue 19): `POST /api/v1/endpoints/{id}/messages:receive`,
//! `…:ack`, `…:nack` and `…:extend`. The rules are `delivery::pull`'s; here, bodies are read
//! (400s that name the field), receipts parsed, and answers shaped. A receipt that is not
//! current (settled, or its lease taken again) **changes nothing and answers 409**, naming
//! it; the others in the same request are applied.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::grammar::EntryId;
use super::params::{self, ApiError, bad_request};
use super::views::ErrorBody;
use super::{AdminState, ApiResult};
use crate::delivery::pull::{self, Message, Pull, Receipt, Receive, Settle};
use crate::model::Endpoint;
use crate::respond;

pub(crate) mod stream;
pub use stream::{__path_stream, Streams, stream};

/// What a receive asks for; every field optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveBody {
    /// Messages at most (1 to 100; default 10).
    pub max: Option<u64>,
    /// How long to wait for a first message when none is due (`20s`; default `0s`, at most
    /// `60s`).
    #[schema(value_type = Option<String>)]
    pub wait: Option<crate::config::Duration>,
    /// How long the messages are leased to this consumer (`30s` by default, at most `12h`):
    /// unacked by then, each counts as a failed attempt and is due again by the backoff.
    #[schema(value_type = Option<String>)]
    pub visibility: Option<crate::config::Duration>,
}

/// Receipts to ack or extend.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsBody {
    /// The receipts of received messages (1 to 100).
    pub receipts: Vec<String>,
    /// `extend` only: the new visibility timeout, from now (default `30s`).
    #[schema(value_type = Option<String>)]
    pub visibility: Option<crate::config::Duration>,
}

/// Receipts to nack.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackBody {
    pub receipts: Vec<String>,
    /// When each is due again (`5s`); none: the endpoint's backoff.
    #[schema(value_type = Option<String>)]
    pub delay: Option<crate::config::Duration>,
    /// Why, kept as the attempt's error.
    pub reason: Option<String>,
}

/// A message as a consumer gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// What acks, nacks or extends this message (good until it is settled or taken again).
    pub receipt: String,
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: Option<String>,
    pub source: String,
    /// This attempt's number: 1 the first time; each nack or lease run out adds one.
    pub attempt: u32,
    /// When the event arrived (RFC 3339).
    pub received_at: String,
    /// Until when it is leased to this consumer (RFC 3339).
    pub visible_until: String,
    /// As a POST would carry them, signed (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature` when the endpoint has a secret).
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body, exactly as signed, when it is UTF-8 text (JSON is); else null and
    /// `payload_base64` holds it.
    pub payload: Option<String>,
    pub payload_base64: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Messages {
    pub messages: Vec<MessageView>,
}

/// What an ack, nack or extend did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Settled {
    /// Receipts applied.
    pub applied: usize,
    /// Receipts that were not current: settled already, their lease taken again, or not
    /// this endpoint's. Non-empty answers 409.
    pub stale: Vec<String>,
}

/// A 409: an error (`not_a_pull_endpoint`, or `stale_receipt` with what the request did
/// beside it: the receipts applied, and those that were stale).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Conflict {
    pub error: respond::ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<Vec<String>>,
}

/// Takes up to `max` due messages, waiting up to `wait` for one.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/messages:receive", operation_id = "receive_messages", tag = "messages",
    params(("id" = EntryId, Path)), request_body(content = ReceiveBody),
    responses((status = 200, body = Messages), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn receive(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let e = pull_endpoint(&st, &id)?;
    let req = parse_receive(&body)?;
    let dispatcher = Arc::clone(&st.dispatcher);
    let paused_id = e.id.clone();
    let messages = pull_of(&st)
        .receive(
            &e,
            req,
            move || dispatcher.is_paused(&paused_id).unwrap_or(false),
            st.stopping.clone(),
        )
        .await?;
    let messages = messages.into_iter().map(view).collect();
    Ok(respond::typed(StatusCode::OK, &Messages { messages }))
}

/// Completes messages: each is delivered.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/messages:ack", operation_id = "ack_messages", tag = "messages",
    params(("id" = EntryId, Path)), request_body(content = ReceiptsBody),
    responses((status = 200, body = Settled), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = Conflict), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn ack(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let e = pull_endpoint(&st, &id)?;
    let (given, receipts) = parse_ack(&body)?;
    let applied = pull_of(&st).settle(&e, &receipts, &Settle::Ack).await?;
    Ok(settled(&given, &applied))
}

/// Fails messages: each counts an attempt and is due again after `delay` (or the backoff),
/// or is dead once the retry policy gives up.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/messages:nack", operation_id = "nack_messages", tag = "messages",
    params(("id" = EntryId, Path)), request_body(content = NackBody),
    responses((status = 200, body = Settled), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = Conflict), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn nack(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let e = pull_endpoint(&st, &id)?;
    let (given, receipts, how) = parse_nack(&body)?;
    let applied = pull_of(&st).settle(&e, &receipts, &how).await?;
    Ok(settled(&given, &applied))
}

/// Prolongs messages' leases to `visibility` from now.
#[utoipa::path(post, path = "/api/v1/endpoints/{id}/messages:extend", operation_id = "extend_messages", tag = "messages",
    params(("id" = EntryId, Path)), request_body(content = ReceiptsBody),
    responses((status = 200, body = Settled), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = Conflict), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn extend(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let e = pull_endpoint(&st, &id)?;
    let (given, receipts, visibility) = parse_extend(&body)?;
    let applied = pull_of(&st).extend(&e, &receipts, visibility).await?;
    Ok(settled(&given, &applied))
}

/// A receive's body (none at all: every default).
pub fn parse_receive(body: &[u8]) -> Result<Receive, ApiError> {
    let b: ReceiveBody = params::json_body_or_default(body)?;
    let max = match b.max {
        None => 10,
        Some(n @ 1..=100) => n as usize,
        Some(_) => return Err(bad_request("max", "must be from 1 to 100")),
    };
    let wait = b.wait.map_or(Duration::ZERO, |d| d.0);
    if wait > pull::MAX_WAIT {
        return Err(bad_request("wait", "must be at most 60s"));
    }
    Ok(Receive {
        max,
        wait,
        visibility: visibility(b.visibility, "visibility")?,
    })
}

/// An ack's body: the receipts as given, and parsed.
pub fn parse_ack(body: &[u8]) -> Result<(Vec<String>, Vec<Receipt>), ApiError> {
    let b: ReceiptsBody = params::json_body(body)?;
    if b.visibility.is_some() {
        return Err(bad_request("visibility", "is for extend, not ack"));
    }
    let receipts = receipts(&b.receipts)?;
    Ok((b.receipts, receipts))
}

/// A nack's body: the receipts as given and parsed, and what to record.
pub fn parse_nack(body: &[u8]) -> Result<(Vec<String>, Vec<Receipt>, Settle), ApiError> {
    let b: NackBody = params::json_body(body)?;
    let receipts = receipts(&b.receipts)?;
    if let Some(reason) = &b.reason
        && (reason.len() > 1024 || reason.chars().any(char::is_control))
    {
        return Err(bad_request(
            "reason",
            "must be at most 1024 bytes of printable text",
        ));
    }
    let how = Settle::Nack {
        delay: b.delay.map(|d| d.0),
        reason: b.reason,
    };
    Ok((b.receipts, receipts, how))
}

/// An extend's body: the receipts as given and parsed, and the new visibility timeout.
pub fn parse_extend(body: &[u8]) -> Result<(Vec<String>, Vec<Receipt>, Duration), ApiError> {
    let b: ReceiptsBody = params::json_body(body)?;
    let receipts = receipts(&b.receipts)?;
    let visibility = visibility(b.visibility, "visibility")?;
    Ok((b.receipts, receipts, visibility))
}

fn pull_of(st: &AdminState) -> Pull<'_> {
    Pull {
        store: &st.store,
        clock: &st.clock,
        metrics: &st.metrics,
        routes: &st.routes,
    }
}

/// The endpoint `id`, which must be a pull endpoint (409 otherwise).
fn pull_endpoint(st: &AdminState, id: &str) -> Result<Endpoint, ApiError> {
    let e = super::endpoints::find(st, id)?;
    if !e.destination.is_pull() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_pull_endpoint",
            format!("endpoint {id:?} is a push endpoint: its deliveries are POSTed to its URL"),
        ));
    }
    Ok(e)
}

fn visibility(given: Option<crate::config::Duration>, field: &str) -> Result<Duration, ApiError> {
    let v = given.map_or(pull::DEFAULT_VISIBILITY, |d| d.0);
    if v.is_zero() || v > pull::MAX_VISIBILITY {
        return Err(bad_request(field, "must be more than 0s and at most 12h"));
    }
    Ok(v)
}

fn receipts(given: &[String]) -> Result<Vec<Receipt>, ApiError> {
    if given.is_empty() || given.len() > pull::MAX_MESSAGES {
        return Err(bad_request("receipts", "give 1 to 100 receipts"));
    }
    given
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Receipt::parse(r)
                .ok_or_else(|| bad_request(&format!("receipts[{i}]"), "is not a receipt"))
        })
        .collect()
}

fn settled(given: &[String], applied: &[bool]) -> axum::response::Response {
    let stale: Vec<String> = given
        .iter()
        .zip(applied)
        .filter(|(_, ok)| !**ok)
        .map(|(r, _)| r.clone())
        .collect();
    let applied = applied.iter().filter(|a| **a).count();
    if stale.is_empty() {
        return respond::typed(StatusCode::OK, &Settled { applied, stale });
    }
    let body = Conflict {
        error: respond::ErrorDetail {
            code: "stale_receipt".into(),
            message: format!(
                "{} of {} receipts are not current (settled, or taken again since): they changed nothing",
                stale.len(),
                given.len()
            ),
        },
        applied: Some(applied),
        stale: Some(stale),
    };
    let mut r = respond::typed(StatusCode::CONFLICT, &body);
    r.extensions_mut()
        .insert(respond::ErrorCode("stale_receipt".into()));
    r
}

/// A body as a message carries it: as text when it is UTF-8, else in base64.
fn payload_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    use base64::Engine;
    match std::str::from_utf8(body) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(body)),
        ),
    }
}

fn view(m: Message) -> MessageView {
    let (payload, payload_base64) = payload_fields(&m.body);
    MessageView {
        receipt: m.receipt.encode(),
        delivery_id: m.receipt.delivery_id.to_string(),
        event_id: m.event_id.to_string(),
        event_type: m.event_type,
        source: m.source,
        attempt: m.attempt,
        received_at: params::rfc3339(m.received_ms),
        visible_until: params::rfc3339(m.visible_at_ms),
        headers: m.headers.into_iter().collect(),
        payload,
        payload_base64,
    }
}
