//! The console's static files, compiled into the binary: one stylesheet, htmx, and
//! `console.js` (copy buttons and the live tail; hand-written, no build step).
//!
//! htmx 2.0.11, `dist/htmx.min.js` of npm's `htmx.org` package, unmodified; its license is the
//! Zero-Clause BSD (no conditions). Its file name carries its version, so it is cached for a
//! year; the stylesheet changes with the console, so browsers revalidate it.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::page;

/// The htmx build served; the templates load it by this name.
pub const HTMX_NAME: &str = "htmx-2.0.11.min.js";
const HTMX: &[u8] = include_bytes!("../../assets/console/htmx-2.0.11.min.js");
const CSS: &[u8] = include_bytes!("../../assets/console/console.css");
const JS: &[u8] = include_bytes!("../../assets/console/console.js");

pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, content_type, cache) = match name.as_str() {
        HTMX_NAME => (
            HTMX,
            "text/javascript; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        "console.css" => (CSS, "text/css; charset=utf-8", "no-cache"),
        "console.js" => (JS, "text/javascript; charset=utf-8", "no-cache"),
        _ => return page::problem(StatusCode::NOT_FOUND, "There is no such file."),
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}
