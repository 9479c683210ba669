//! What every page shares: the frame around it (`Chrome`: navigation, the signed-in role and
//! the sign-out form), rendering a template into an answer, the problem page, and the few
//! formats pages show (times, byte text, query strings).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Signed;
use crate::api::access::Role;
use crate::api::params::rfc3339;

/// The frame of a page: which navigation entry is current, and who is signed in.
pub struct Chrome {
    /// `events`, `dead-letters`, `endpoints`, or empty.
    pub nav: &'static str,
    pub title: String,
    /// The session's CSRF token, for the forms on the page (sign-out included).
    pub csrf: String,
    /// The role signed in, or empty when no one is.
    pub role: &'static str,
}

impl Chrome {
    pub fn new(nav: &'static str, title: impl Into<String>, user: &Signed) -> Chrome {
        Chrome {
            nav,
            title: title.into(),
            csrf: user.session.csrf.clone(),
            role: role_name(user.session.role),
        }
    }

    /// The frame of a page shown to someone not signed in.
    pub fn anonymous(title: impl Into<String>) -> Chrome {
        Chrome {
            nav: "",
            title: title.into(),
            csrf: String::new(),
            role: "",
        }
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// A rendered page with `status`.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut r = (status, html).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/problem.html")]
struct Problem {
    chrome: Chrome,
    message: String,
}

/// A page that says what went wrong, with `status`.
pub fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error").to_string();
    render(
        status,
        &Problem {
            chrome: Chrome::anonymous(title),
            message: message.into(),
        },
    )
}

/// A store or parameter error as a page: a 400 names the field, a 503 says to try again.
pub fn api_error(e: crate::api::params::ApiError) -> Response {
    problem(e.status, e.message)
}

/// Unix milliseconds as a UTC time to the second, as pages show it.
pub fn time(ms: u64) -> String {
    short_time(&rfc3339(ms))
}

/// An RFC 3339 time of the API's views as pages show it:
/// `2026-11-30T19:20:01.123Z` → `2026-11-30 19:20:01`.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339
        .get(..19)
        .map_or_else(|| rfc3339.to_string(), |t| t.replacen('T', " ", 1))
}

/// Valid JSON text laid out one member per line, indented by two spaces, **with its members in
/// the order they arrived** (parsing into a map would sort them) and every token as it was.
pub fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|n| *n == '}' || *n == ']') {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// A query string of the non-empty `pairs`, with a leading `?` (or nothing).
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(k, v);
    }
    let q = out.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

/// A page of a listing as shown: its rows, the link to the next page, and, when the page
/// stopped short at the store's scan bound, the time it searched back to.
pub struct Paged<R> {
    pub rows: Vec<R>,
    pub next: Option<String>,
    pub searched_to: Option<String>,
}

/// [`Paged`] from a page of `items` read with `limit` and its `cursor`: `row` makes each row,
/// `link` the next page's URL from the cursor, `reached_ms` the time a cursor stands at.
pub fn paged<T, R>(
    items: &[T],
    limit: usize,
    cursor: Option<String>,
    row: impl FnMut(&T) -> R,
    link: impl FnOnce(&str) -> String,
    reached_ms: impl FnOnce(&str) -> Option<u64>,
) -> Paged<R> {
    let mut paged = Paged {
        rows: items.iter().map(row).collect(),
        next: None,
        searched_to: None,
    };
    if let Some(cursor) = cursor {
        // A short page with a cursor stopped at the scan bound, not at `limit`.
        if items.len() < limit {
            paged.searched_to = reached_ms(&cursor).map(time);
        }
        paged.next = Some(link(&cursor));
    }
    paged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(time(1_795_564_800_000), "2026-11-25 00:00:00");
        assert_eq!(query(&[("a", ""), ("b", "x y")]), "?b=x+y");
        assert_eq!(query(&[("a", "")]), "");
        assert_eq!(
            short_time("2026-11-30T19:33:08.351Z"),
            "2026-11-30 19:33:08"
        );
        let laid_out = indent_json(r#"{"z":1, "a":[1,{"s":"x,{\"y:}"}],"e":{} }"#);
        let want = r#"{
  "z": 1,
  "a": [
    1,
    {
      "s": "x,{\"y:}"
    }
  ],
  "e": {}
}"#;
        assert_eq!(laid_out, want);
    }
}
