//! Reading the event type and the provider's delivery id out of a request: from a header or a
//! JSON pointer into the body, as the source configures or its scheme defaults to. The body is
//! parsed as JSON at most once, and only if a pointer is asked for.

use http::HeaderMap;

use crate::verify::Field;

/// The longest dedup key or event type kept; longer values are refused.
pub const MAX_FIELD_LEN: usize = 512;

/// Why an event type or dedup key cannot be kept, if it cannot: longer than
/// [`MAX_FIELD_LEN`], or holding a NUL (JSON allows `\u0000`; PostgreSQL's text does not,
/// and one such value would fail the whole group commit it joined).
pub fn unstorable(value: &str) -> Option<String> {
    if value.len() > MAX_FIELD_LEN {
        Some(format!("is longer than {MAX_FIELD_LEN} bytes"))
    } else if value.contains('\0') {
        Some("contains a NUL character (\\u0000)".to_string())
    } else {
        None
    }
}

/// The body as JSON, parsed on first use.
pub struct LazyJson<'a> {
    body: &'a [u8],
    parsed: Option<Option<serde_json::Value>>,
}

impl<'a> LazyJson<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Self { body, parsed: None }
    }

    /// What it has parsed so far: `None` if it never tried, `Some(None)` if the body is not
    /// JSON. Ingest reuses it, so a body is parsed at most once per request.
    pub fn into_parsed(self) -> Option<Option<serde_json::Value>> {
        self.parsed
    }

    /// `body` with what an earlier reader parsed of it ([`LazyJson::into_parsed`]).
    pub fn from_parsed(body: &'a [u8], parsed: Option<Option<serde_json::Value>>) -> Self {
        Self { body, parsed }
    }

    /// What it has parsed so far, without parsing: as [`LazyJson::into_parsed`], borrowed.
    pub fn parsed(&self) -> Option<Option<&serde_json::Value>> {
        self.parsed.as_ref().map(Option::as_ref)
    }

    pub fn value(&mut self) -> Option<&serde_json::Value> {
        let body = self.body;
        self.parsed
            .get_or_insert_with(|| serde_json::from_slice(body).ok())
            .as_ref()
    }
}

/// The value a field reference points at, if present. JSON strings are taken as they are;
/// numbers by their text; anything else is absent.
pub fn field(f: Field<'_>, headers: &HeaderMap, json: &mut LazyJson<'_>) -> Option<String> {
    match f {
        Field::Header(name) => headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        Field::Json(pointer) => match json.value()?.pointer(pointer)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
    }
}

/// The first present value among `refs`.
pub fn first_field(
    fields: &[Field<'_>],
    headers: &HeaderMap,
    json: &mut LazyJson<'_>,
) -> Option<String> {
    fields.iter().find_map(|f| field(*f, headers, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_and_json_pointers() {
        let mut h = HeaderMap::new();
        h.insert("x-github-event", "push".parse().expect("value"));
        let body = br#"{"id":"evt_1","data":{"object":{"n":42,"o":{}}},"type":""}"#;
        let mut json = LazyJson::new(body);
        assert_eq!(
            field(Field::Header("x-github-event"), &h, &mut json).as_deref(),
            Some("push")
        );
        assert_eq!(field(Field::Header("x-missing"), &h, &mut json), None);
        assert_eq!(
            field(Field::Json("/id"), &h, &mut json).as_deref(),
            Some("evt_1")
        );
        assert_eq!(
            field(Field::Json("/data/object/n"), &h, &mut json).as_deref(),
            Some("42")
        );
        assert_eq!(field(Field::Json("/data/object/o"), &h, &mut json), None);
        assert_eq!(field(Field::Json("/type"), &h, &mut json), None);
    }

    #[test]
    fn non_json_bodies_have_no_pointer_values() {
        let h = HeaderMap::new();
        let mut json = LazyJson::new(b"a=1&b=2");
        assert_eq!(field(Field::Json("/a"), &h, &mut json), None);
        let refs = [Field::Json("/a"), Field::Header("x")];
        assert_eq!(first_field(&refs, &h, &mut json), None);
    }
}
