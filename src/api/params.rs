//! Query parameters and JSON bodies of the admin API, parsed strictly: an unknown parameter, a
//! bad value or a wrong JSON type is a 400 that names the field.

use std::time::{Duration, UNIX_EPOCH};

use super::grammar;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::model::event::DeliveryStatus;
use crate::respond;
use crate::store::StoreError;
use crate::store::query::{Filter, MAX_CONTAINS_CHARS};

/// Items per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// An API error: its status, stable code and message, answered in the shared JSON shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            code,
            message: message.to_string(),
        }
    }

    pub fn not_found(code: &'static str, message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            respond::unavailable(self.code, self.message, 1)
        } else {
            respond::error(self.status, self.code, self.message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadCursor => bad_request("cursor", e),
            _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e),
        }
    }
}

impl From<crate::catalog::CatalogError> for ApiError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        use crate::catalog::CatalogError as C;
        match e {
            C::NotFound(kind, _) => ApiError::not_found(
                if kind == "source" {
                    "unknown_source"
                } else {
                    "unknown_endpoint"
                },
                e,
            ),
            C::FileDeclared(..) => ApiError::new(StatusCode::CONFLICT, "declared_in_file", e),
            C::Exists(..) => ApiError::new(StatusCode::CONFLICT, "already_exists", e),
            C::InUse(..) => ApiError::new(StatusCode::CONFLICT, "in_use", e),
            C::Invalid(c) => bad_request(&c.key, c.problem),
            C::Store(s) => s.into(),
        }
    }
}

/// A 400 naming the field at fault.
pub fn bad_request(field: &str, problem: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("{field}: {problem}"),
    )
}

/// A list request: its filter, page size and cursor.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub filter: Filter,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// Parses `query`, accepting only the parameters in `allowed` (besides `limit` and `cursor`),
/// each at most once, and a cursor only if `cursor_ok` says it has the shape of one.
pub fn list_query(
    query: Option<&str>,
    allowed: &[&str],
    cursor_ok: fn(&str) -> bool,
    now_ms: u64,
) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        limit: DEFAULT_LIMIT,
        ..ListQuery::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if seen.iter().any(|k| *k == key) {
            return Err(bad_request(&key, "is given more than once"));
        }
        seen.push(key.to_string());
        let value = value.into_owned();
        match key.as_ref() {
            "limit" => {
                q.limit = Some(&value)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad_request("limit", format!("must be a number from 1 to {MAX_LIMIT}"))
                    })?;
            }
            "cursor" => {
                if !cursor_ok(&value) {
                    return Err(bad_request(
                        "cursor",
                        "is not the next_cursor of a page of this list",
                    ));
                }
                q.cursor = Some(value)
            }
            k if !allowed.contains(&k) => {
                return Err(bad_request(k, "is not a parameter of this list"));
            }
            "source" => q.filter.source = Some(value),
            "type" => q.filter.event_type = Some(value),
            "endpoint" => q.filter.endpoint = Some(value),
            "status" => {
                q.filter.status = Some(parse_status(&value).ok_or_else(|| {
                    bad_request(
                        "status",
                        "must be pending, delivering, retrying, delivered or dead",
                    )
                })?)
            }
            "since" => {
                q.filter.since_ms =
                    Some(parse_time(&value, now_ms).map_err(|p| bad_request("since", p))?)
            }
            "until" => {
                q.filter.until_ms =
                    Some(parse_time(&value, now_ms).map_err(|p| bad_request("until", p))?)
            }
            "contains" => q.filter.contains = Some(parse_contains(value)?),
            other => return Err(bad_request(other, "is not a parameter of this list")),
        }
    }
    Ok(q)
}

/// A `contains` filter: 1 to [`MAX_CONTAINS_CHARS`] characters, searched for as they are.
pub fn parse_contains(value: String) -> Result<Vec<u8>, ApiError> {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_CONTAINS_CHARS {
        return Err(bad_request(
            "contains",
            format!(
                "must be 1 to {MAX_CONTAINS_CHARS} characters (text the payload contains, \
                 case-sensitive), not {chars}"
            ),
        ));
    }
    Ok(value.into_bytes())
}

pub fn parse_status(s: &str) -> Option<DeliveryStatus> {
    DeliveryStatus::ALL.into_iter().find(|st| st.as_str() == s)
}

/// An RFC 3339 time, or a duration before now such as `2h` or `30m`, as Unix milliseconds:
/// the grammar of [`grammar::TIME_PATTERN`] (a time before 1970 is 1970, a duration longer
/// than the time since then reaches back to it).
pub fn parse_time(s: &str, now_ms: u64) -> Result<u64, String> {
    grammar::time(s, now_ms).ok_or_else(|| {
        format!(
            "{s:?} is neither an RFC 3339 time nor a duration like 2h (whole numbers and units)"
        )
    })
}

/// An optional time field of a body, parsed as [`parse_time`]; a bad one is a 400 naming it.
pub fn optional_time(
    field: &str,
    value: Option<&str>,
    now_ms: u64,
) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| parse_time(v, now_ms).map_err(|p| bad_request(field, p)))
        .transpose()
}

/// Unix milliseconds as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Like [`json_body`], but no body at all is `T::default()`: for bodies that are all optional
/// fields. (A blank one is not JSON, so it is a 400 like any other.)
pub fn json_body_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        Ok(T::default())
    } else {
        json_body(body)
    }
}

/// Parses a JSON body into `T`; errors name the field (`ids[2]: invalid type ...`).
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        bad_request(&field, e.inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_relative() {
        assert_eq!(parse_time("2h", 10_000_000), Ok(10_000_000 - 7_200_000));
        assert_eq!(parse_time("2026-11-25T00:00:00Z", 0), Ok(1_795_564_800_000));
        assert!(parse_time("yesterday", 0).is_err());
        assert!(parse_time("", 0).is_err());
        assert_eq!(rfc3339(1_795_564_800_000), "2026-11-25T00:00:00.000Z");
    }

    #[test]
    fn unknown_and_bad_parameters_are_refused() {
        let any = |_: &str| true;
        assert!(list_query(Some("source=a&colour=red"), &["source"], any, 0).is_err());
        assert!(list_query(Some("endpoint=a"), &["source"], any, 0).is_err());
        assert!(list_query(Some("limit=0"), &[], any, 0).is_err());
        assert!(list_query(Some("limit=501"), &[], any, 0).is_err());
        assert!(list_query(Some("limit=%2B5"), &[], any, 0).is_err());
        assert!(list_query(Some("limit="), &[], any, 0).is_err());
        assert!(list_query(Some("status=lost"), &["status"], any, 0).is_err());
        assert!(list_query(Some("since="), &["since"], any, 0).is_err());
        assert!(list_query(Some("source=a&source=b"), &["source"], any, 0).is_err());
        assert!(list_query(Some("cursor=c"), &[], |c| c == "d", 0).is_err());
        assert!(list_query(Some("contains=a"), &["source"], any, 0).is_err());
        let long = format!("contains={}", "é".repeat(MAX_CONTAINS_CHARS + 1));
        for bad in ["contains=", long.as_str()] {
            let e = list_query(Some(bad), &["contains"], any, 0).expect_err(bad);
            assert!(e.message.starts_with("contains: "), "{}", e.message);
        }
        let most = format!("contains={}", "é".repeat(MAX_CONTAINS_CHARS));
        let q = list_query(Some(&most), &["contains"], any, 0).expect("at the limit");
        assert_eq!(
            q.filter.contains.map(|c| c.len()),
            Some(2 * MAX_CONTAINS_CHARS)
        );
        let q = list_query(Some("contains=%22id%22%3A+%2242"), &["contains"], any, 0).expect("ok");
        assert_eq!(q.filter.contains.as_deref(), Some(&b"\"id\": \"42"[..]));
        let q = list_query(
            Some("source=a&type=b&limit=5&cursor=c&status=dead"),
            &["source", "type", "status"],
            any,
            0,
        )
        .expect("valid");
        assert_eq!(
            (
                q.filter.source.as_deref(),
                q.filter.event_type.as_deref(),
                q.limit,
                q.cursor.as_deref()
            ),
            (Some("a"), Some("b"), 5, Some("c"))
        );
        assert_eq!(q.filter.status, Some(DeliveryStatus::Dead));
    }

    #[test]
    fn only_a_missing_body_is_the_default() {
        #[derive(Debug, Default, serde::Deserialize)]
        struct All {
            #[allow(dead_code)]
            a: Option<u8>,
        }
        assert!(json_body_or_default::<All>(b"").is_ok());
        assert!(json_body_or_default::<All>(b"{}").is_ok());
        assert!(json_body_or_default::<All>(b" ").is_err());
        assert!(json_body_or_default::<All>(b"null").is_err());
    }
}
