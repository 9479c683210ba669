//! JSON responses shared by both listeners. Every error has the one shape
//! `{"error": {"code": "...", "message": "..."}}`, with a stable code to branch on.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// A JSON body with a status.
pub fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// A typed body with a status.
pub fn typed<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    json(
        status,
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null),
    )
}

/// `{"error": {"code", "message"}}`: the one shape of every error either listener answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs to branch on (`invalid_request`, `unknown_event`, ...).
    pub code: String,
    /// For people; a 400's message starts with the field at fault.
    pub message: String,
}

/// The code of an error response, kept in its extensions so that metrics can count refusals by
/// reason without parsing bodies.
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

/// An error in the shared shape.
pub fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let mut r = typed(
        status,
        &ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.to_string(),
            },
        },
    );
    r.extensions_mut().insert(ErrorCode(code.to_string()));
    r
}

/// A 429 that tells the client when to come back.
pub fn too_many(code: &str, message: impl std::fmt::Display, retry_after_secs: u64) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, code, message);
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs.max(1)),
    );
    r
}

/// A 503 that tells the client when to come back.
pub fn unavailable(code: &str, message: impl std::fmt::Display, retry_after_secs: u32) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}
