//! JSON responses shared by both listeners. Every error has the one shape
//! `{"error": {"code": "...", "message": "..."}}`, with a stable code to branch on.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

/// An error in the shared shape.
pub fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    json(
        status,
        json!({ "error": { "code": code, "message": message.to_string() } }),
    )
}

/// A 503 that tells the client when to come back.
pub fn unavailable(code: &str, message: impl std::fmt::Display, retry_after_secs: u32) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}
