//! `GET /console/sign-in` (the form), `POST /console/sign-in` (the admin token, exchanged for
//! a session cookie) and `POST /console/sign-out`.
//!
//! Signing in needs no session, so it has no CSRF token yet: the `Origin` check of every
//! console POST is what keeps another site from signing a browser in.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{self, Chrome};
use super::{Action, Shared, over_https, session};

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignIn {
    chrome: Chrome,
    error: Option<&'static str>,
    next: String,
    /// Where the token `serve` generated is, when no token is configured: a local user finds
    /// it there.
    token_file: Option<String>,
}

/// Where to go after signing in: only a console path, so the form cannot be made to send a
/// browser to another site.
fn next_of(query: Option<&str>) -> String {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .filter(|v| safe_next(v))
        .unwrap_or_else(|| "/console/overview".into())
}

fn safe_next(v: &str) -> bool {
    (v == "/console" || v.starts_with("/console/"))
        && !v.contains("//")
        && !v.contains('\\')
        && !v.starts_with("/console/sign-")
}

fn token_file(st: &Shared) -> Option<String> {
    st.admin
        .access
        .token_file()
        .map(|p| p.display().to_string())
}

pub async fn form(State(st): State<Shared>, RawQuery(query): RawQuery) -> Response {
    page::render(
        StatusCode::OK,
        &SignIn {
            chrome: Chrome::anonymous("Sign in"),
            error: None,
            next: next_of(query.as_deref()),
            token_file: token_file(&st),
        },
    )
}

pub async fn submit(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut token = String::new();
    let mut next = String::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "token" => token = v.into_owned(),
            "next" => next = v.into_owned(),
            _ => {}
        }
    }
    if !safe_next(&next) {
        next = "/console/overview".into();
    }
    let Some(role) = st.admin.access.role_of(&token) else {
        tracing::warn!("console sign-in with a wrong token");
        return page::render(
            StatusCode::UNAUTHORIZED,
            &SignIn {
                chrome: Chrome::anonymous("Sign in"),
                error: Some("That token is not right."),
                next,
                token_file: token_file(&st),
            },
        );
    };
    let now = st.now_ms();
    let id = st.sessions.start(role, now);
    tracing::info!(role = page::role_name(role), "console sign-in");
    let cookie = session::cookie(&id, session::SESSION_TTL_MS / 1000, over_https(&headers));
    with_cookie(Redirect::to(&next).into_response(), &cookie)
}

pub async fn sign_out(State(st): State<Shared>, headers: HeaderMap, action: Action) -> Response {
    st.sessions.end(&action.user.id);
    with_cookie(
        Redirect::to("/console/sign-in").into_response(),
        &session::cleared_cookie(over_https(&headers)),
    )
}

fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_leads_back_into_the_console() {
        assert_eq!(
            next_of(Some("next=%2Fconsole%2Fevents%3Fsource%3Da")),
            "/console/events?source=a"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/console//evil",
            "/api/v1/events",
            "/console/sign-in",
        ] {
            assert!(!safe_next(bad), "{bad}");
        }
        assert_eq!(next_of(None), "/console/overview");
    }
}
