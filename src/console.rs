//! The web console: server-rendered pages under `/console` on the admin listener.
//!
//! **The console is served on the admin listener only**: `api::router` nests [`router`], and
//! ingress knows nothing of it. Pages are plain GETs whose filters live in the URL, rendered
//! from askama templates (`templates/console/`, checked at compile time) with the same store
//! reads, filter parsing (`api::params`) and views (`api::views`) as the JSON API, so the two
//! cannot disagree. Read-only pages need no JavaScript; the few assets (one CSS file, a
//! vendored htmx) are compiled into the binary (`assets`).
//!
//! Access (`session`): the admin token is exchanged once for a session cookie; a page without
//! a live session answers 303 to the sign-in form. **Every console POST checks `Origin` and
//! the session's CSRF token** (the [`Action`] extractor is the only way a handler gets a
//! POST's fields), and **every action checks the session's role** before it acts. Every
//! answer carries a strict CSP (no inline scripts), `frame-ancestors 'none'`, `nosniff` and,
//! except assets, `no-store`.
//!
//! Pages: `events` (the list and one event's detail, with its routing), `dead_letters`,
//! `endpoints`; sign-in and sign-out in `sign_in`; the POSTs that change things in `actions`.
//! One endpoint's page is `endpoint`, its operations `endpoint_actions`, its create and edit
//! form `endpoint_form`; `trial` tries a filter or transform on a sample from either.
//! `overview` (the front page `/console` leads to) and `sources` read this node's recent
//! activity (`telemetry::recent`) and the store's counters, never scanning rows.

mod actions;
mod assets;
#[cfg(test)]
mod contrast;
mod dead_letters;
mod endpoint;
mod endpoint_actions;
mod endpoint_form;
mod endpoints;
mod events;
mod live;
mod overview;
mod page;
pub mod session;
mod sign_in;
mod sources;
mod trial;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::AdminState;
use crate::api::access::Role;
use session::{Session, Sessions};

/// The largest console form body: forms carry a few short fields.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The largest body of the endpoint form and its trials, which carry a filter, a program and
/// a sample payload (URL-encoded, JSON takes up to three times its size).
const MAX_RULES_FORM_BYTES: usize = 1024 * 1024;

/// What console handlers share: the admin API's state, and the sessions.
pub struct Console {
    pub admin: Arc<AdminState>,
    pub sessions: Sessions,
    /// The places of the open live streams (`live::places`).
    live: crate::api::places::Places,
}

type Shared = Arc<Console>;

impl Console {
    fn now_ms(&self) -> u64 {
        self.admin.clock.now_ms()
    }
}

/// The console's routes, to be nested at `/console` of the admin router.
pub fn router<S: Clone + Send + Sync + 'static>(admin: Arc<AdminState>) -> Router<S> {
    let console = Arc::new(Console {
        admin,
        sessions: Sessions::default(),
        live: live::places(),
    });
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/overview") }))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::show))
        .route("/events/{id}/replay", post(actions::replay_event))
        .route("/deliveries/{id}/retry", post(actions::retry_delivery))
        .route("/dead-letters", get(dead_letters::list))
        .route(
            "/dead-letters/replay",
            get(dead_letters::confirm).post(actions::replay_dead),
        )
        .route("/endpoints", get(endpoints::list))
        .route("/endpoints/{id}/pause", post(actions::pause))
        .route("/endpoints/{id}/resume", post(actions::resume))
        .route(
            "/endpoints/new",
            get(endpoint_form::new_form)
                .post(endpoint_form::create)
                .layer(DefaultBodyLimit::max(MAX_RULES_FORM_BYTES)),
        )
        .route(
            "/endpoints/new/try",
            post(endpoint_form::try_new).layer(DefaultBodyLimit::max(MAX_RULES_FORM_BYTES)),
        )
        .route("/endpoints/{id}", get(endpoint::show))
        .route(
            "/endpoints/{id}/try",
            post(endpoint::try_rules).layer(DefaultBodyLimit::max(MAX_RULES_FORM_BYTES)),
        )
        .route(
            "/endpoints/{id}/edit",
            get(endpoint_form::edit_form)
                .post(endpoint_form::update)
                .layer(DefaultBodyLimit::max(MAX_RULES_FORM_BYTES)),
        )
        .route(
            "/endpoints/{id}/edit/try",
            post(endpoint_form::try_edit).layer(DefaultBodyLimit::max(MAX_RULES_FORM_BYTES)),
        )
        .route("/endpoints/{id}/recover", post(endpoint_actions::recover))
        .route("/endpoints/{id}/enable", post(endpoint_actions::enable))
        .route("/endpoints/{id}/test", post(endpoint_actions::send_test))
        .route(
            "/endpoints/{id}/secret",
            get(endpoint_actions::reveal_confirm).post(endpoint_actions::reveal),
        )
        .route(
            "/endpoints/{id}/rotate",
            get(endpoint_actions::rotate_confirm).post(endpoint_actions::rotate),
        )
        .route(
            "/endpoints/{id}/delete",
            get(endpoint_actions::delete_confirm).post(endpoint_actions::delete),
        )
        .route("/overview", get(overview::show))
        .route("/sources", get(sources::list))
        .route("/assets/{name}", get(assets::serve))
        .route("/events/live", get(live::stream))
        .fallback(|| async { page::problem(StatusCode::NOT_FOUND, "There is no such page.") })
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::map_response(security_headers))
        .with_state(console)
}

/// The policy every console answer carries: scripts and styles only from the console itself
/// (no inline script can run), no framing, forms only to the console.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages show events and payloads: no cache may keep them. Assets set their own.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Refuses (403) any request but GET and HEAD whose `Origin` (or, without one, `Referer`) is
/// not this very host: a form on another site cannot post here, even before its missing CSRF
/// token is noticed.
async fn same_origin(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) || is_same_origin(request.headers())
    {
        next.run(request).await
    } else {
        page::problem(
            StatusCode::FORBIDDEN,
            "This request came from another site, so it was refused.",
        )
    }
}

/// Whether a request's `Origin` (or `Referer`) names the host it was sent to.
pub fn is_same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let Some(host) = text(header::HOST) else {
        return false;
    };
    let same = |url: &str| {
        ["http://", "https://"]
            .iter()
            .filter_map(|scheme| url.strip_prefix(scheme))
            .filter_map(|rest| rest.strip_prefix(host))
            .any(|path| path.is_empty() || path.starts_with('/'))
    };
    match (text(header::ORIGIN), text(header::REFERER)) {
        // An origin is a scheme and a host, nothing after.
        (Some(origin), _) => {
            same(origin) && !origin.ends_with('/') && origin.matches('/').count() == 2
        }
        (None, Some(referer)) => same(referer),
        (None, None) => false,
    }
}

/// Whether the browser reached us over https (through a proxy that says so): then the
/// cookie is `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A signed-in browser's session. Without one, a handler asking for it answers 303 to the
/// sign-in form (which brings the browser back here after).
pub struct Signed {
    pub id: String,
    pub session: Session,
}

impl Signed {
    /// Whether the session's role reaches `role`.
    pub fn may(&self, role: Role) -> bool {
        self.session.role >= role
    }
}

impl FromRequestParts<Shared> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, Response> {
        let found = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(session::id_in)
            .find_map(|id| Some((id.to_string(), st.sessions.get(id, st.now_ms())?)));
        match found {
            Some((id, session)) => Ok(Signed { id, session }),
            None => {
                // Nested at /console, a handler sees the path below it. Only a page can be
                // come back to: a POST's path answers no GET.
                let back = if parts.method == Method::GET {
                    format!(
                        "/console{}",
                        parts.uri.path_and_query().map_or("", |p| p.as_str())
                    )
                } else {
                    "/console/events".to_string()
                };
                let to = format!(
                    "/console/sign-in?next={}",
                    url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
                );
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// A console POST from a signed-in browser whose CSRF token matched: its form fields. The
/// only way a handler reads a POST, so none can forget the check.
pub struct Action {
    pub user: Signed,
    pub fields: Vec<(String, String)>,
}

impl Action {
    /// The first value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A 403 page unless the session's role reaches `role`.
    pub fn refused_unless(&self, role: Role) -> Option<Response> {
        (!self.user.may(role))
            .then(|| page::problem(StatusCode::FORBIDDEN, "Your role may not do this."))
    }
}

impl FromRequest<Shared> for Action {
    type Rejection = Response;

    async fn from_request(request: Request, st: &Shared) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let user = Signed::from_request_parts(&mut parts, st).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), st)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let csrf = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map_or("", |(_, v)| v.as_str());
        if !user.session.csrf_matches(csrf) {
            return Err(page::problem(
                StatusCode::FORBIDDEN,
                "This form has expired or was not sent by the console. Go back, reload and try again.",
            ));
        }
        Ok(Action { user, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn only_this_host_is_the_same_origin() {
        let host = ("host", "127.0.0.1:8081");
        assert!(is_same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8081")
        ])));
        assert!(is_same_origin(&headers(&[
            host,
            ("origin", "https://127.0.0.1:8081")
        ])));
        assert!(is_same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:8081/console/events")
        ])));
        assert!(!is_same_origin(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!is_same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:80811")
        ])));
        assert!(!is_same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8081.evil.example")
        ])));
        assert!(!is_same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!is_same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:8081.evil.example/")
        ])));
        assert!(!is_same_origin(&headers(&[host])));
        assert!(!is_same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:8081"
        )])));
    }
}
