//! The values a program sees and gives: the input object built from an [`Input`], and the
//! validation of the output into an [`Output`] (pure; no process, no I/O).
//!
//! The output body is encoded by our own JSON writer rather than jaq's, because jaq's writer
//! may print values that are not JSON (byte strings, `NaN`, non-string keys): here those are
//! errors naming their place, or (`NaN`, infinities) what jq prints for them.

use std::io::Write as _;

use bytes::Bytes;
use jaq_json::{Num, Val};

use super::{Input, TransformError};
use crate::model::endpoint::is_reserved_header;

/// The deepest output body the JSON writer follows (its recursion, in the worker).
pub const MAX_OUTPUT_DEPTH: usize = 512;

/// What a transform decided for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The program gave `null`: the delivery is not sent.
    Drop,
    /// Send this instead.
    Send {
        body: Bytes,
        /// Lower-cased names, valid HTTP header names and values, none reserved — unless the
        /// program left `headers` out, in which case these are the input's, as given.
        headers: Vec<(String, String)>,
        event_type: Option<String>,
    },
}

impl Output {
    /// Validates a program's output against the rules of a transform: `null`, or an object
    /// whose absent keys keep `input`'s values.
    pub fn from_value(value: Val, input: &Input) -> Result<Self, TransformError> {
        Self::validate(value, input, None)
    }

    /// [`from_value`](Self::from_value), knowing the body value the program was given: a body
    /// the program left as it was (the very same array or object) is sent as its original
    /// bytes, neither re-encoded nor changed by a byte.
    pub(crate) fn validate(
        value: Val,
        input: &Input,
        given_body: Option<&Val>,
    ) -> Result<Self, TransformError> {
        let map = match value {
            Val::Null => return Ok(Self::Drop),
            Val::Obj(map) => map,
            other => {
                return Err(invalid(format!(
                    "the program gave {}; give an object with body, headers and event_type \
                     (each optional), or null to drop the delivery",
                    describe(&other)
                )));
            }
        };
        let mut body = None;
        let mut headers = None;
        let mut event_type = None;
        for (key, value) in map.iter() {
            let Val::TStr(name) = key else {
                return Err(invalid(format!(
                    "the output object has a key that is not a string: {}",
                    describe(key)
                )));
            };
            // Compared as bytes: no string is built for a key unless it is wrong.
            match &name[..] {
                b"body" => body = Some(encode_body(value, input, given_body)?),
                b"headers" => headers = Some(decode_headers(value)?),
                b"event_type" => event_type = Some(decode_event_type(value)?),
                other => {
                    return Err(invalid(format!(
                        "unknown key {:?} in the output object (expected body, headers, \
                         event_type)",
                        String::from_utf8_lossy(other)
                    )));
                }
            }
        }
        let (body, json) = match body {
            Some(body) => body,
            None => {
                let json = match given_body {
                    Some(given) => !is_string(given),
                    None => !is_string(&body_value(&input.body)),
                };
                (input.body.clone(), json)
            }
        };
        let mut headers = headers.unwrap_or_else(|| input.headers.clone());
        if json
            && !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type".into(), "application/json".into()));
        }
        let event_type = event_type.unwrap_or_else(|| input.event_type.clone());
        Ok(Self::Send {
            body,
            headers,
            event_type,
        })
    }

    /// The bytes of the output that count against a pool's `max_output`: body, header names
    /// and values, event type.
    pub fn size(&self) -> usize {
        match self {
            Self::Drop => 0,
            Self::Send {
                body,
                headers,
                event_type,
            } => {
                body.len()
                    + headers
                        .iter()
                        .map(|(n, v)| n.len() + v.len())
                        .sum::<usize>()
                    + event_type.as_ref().map_or(0, String::len)
            }
        }
    }
}

fn invalid(message: String) -> TransformError {
    TransformError::InvalidOutput(message)
}

/// The object a program is given, `{ "body", "headers", "event_type" }`, and its body.
pub fn input_value(input: &Input) -> (Val, Val) {
    // Sized up front, and each header hashed once (an entry, not a look-up then an insert).
    let mut headers =
        jaq_json::Map::with_capacity_and_hasher(input.headers.len(), Default::default());
    for (name, value) in &input.headers {
        let key = Val::utf8_str(name.to_ascii_lowercase().into_bytes());
        headers
            .entry(key)
            .and_modify(|before| {
                let joined = match before {
                    Val::TStr(before) => {
                        let mut both = before.to_vec();
                        both.extend_from_slice(b", ");
                        both.extend_from_slice(value.as_bytes());
                        both
                    }
                    _ => value.as_bytes().to_vec(),
                };
                *before = Val::utf8_str(joined);
            })
            .or_insert_with(|| Val::utf8_str(value.as_bytes().to_vec()));
    }
    let event_type = match &input.event_type {
        Some(t) => Val::utf8_str(t.clone().into_bytes()),
        None => Val::Null,
    };
    let body = body_value(&input.body);
    let mut object = jaq_json::Map::with_capacity_and_hasher(3, Default::default());
    object.insert(Val::utf8_str(&b"body"[..]), body.clone());
    object.insert(Val::utf8_str(&b"headers"[..]), Val::obj(headers));
    object.insert(Val::utf8_str(&b"event_type"[..]), event_type);
    (Val::obj(object), body)
}

fn is_string(value: &Val) -> bool {
    matches!(value, Val::TStr(_) | Val::BStr(_))
}

/// The same array or object (not merely an equal one): the program did not touch it.
fn same_container(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Arr(x), Val::Arr(y)) => jaq_json::Rc::ptr_eq(x, y),
        (Val::Obj(x), Val::Obj(y)) => jaq_json::Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// The deepest JSON body given to a program as a value (a deeper one comes as a string).
pub const MAX_BODY_DEPTH: usize = 128;

/// A stored body as the program sees it: parsed when it is strict JSON nested at most
/// [`MAX_BODY_DEPTH`] deep (numbers keep their text, as jq 1.7 keeps them), else the bytes as
/// a string.
pub fn body_value(body: &Bytes) -> Val {
    super::json::parse(body, MAX_BODY_DEPTH).unwrap_or_else(|| Val::utf8_str(body.clone()))
}

/// A short description of a value for an error message: its type and the start of its text.
fn describe(value: &Val) -> String {
    let kind = match value {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::TStr(_) => "a string",
        Val::BStr(_) => "a byte string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    };
    let text = value.to_string();
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{kind} ({short})")
}

/// The body to send, and whether it is JSON (which gets a content type when the headers name
/// none).
fn encode_body(
    value: &Val,
    input: &Input,
    given_body: Option<&Val>,
) -> Result<(Bytes, bool), TransformError> {
    match value {
        Val::TStr(bytes) | Val::BStr(bytes) => Ok(((**bytes).clone(), false)),
        other if given_body.is_some_and(|given| same_container(given, other)) => {
            Ok((input.body.clone(), true))
        }
        other => {
            // Small to start: outputs are often much smaller than their input.
            let mut out = Vec::with_capacity(256);
            write_json(&mut out, other, 0).map_err(|e| {
                let mut place = String::from("body");
                for segment in e.path.iter().rev() {
                    place.push_str(segment);
                }
                invalid(format!("{place}: {}", e.reason))
            })?;
            Ok((Bytes::from(out), true))
        }
    }
}

fn decode_headers(value: &Val) -> Result<Vec<(String, String)>, TransformError> {
    let Val::Obj(map) = value else {
        return Err(invalid(format!(
            "headers must be an object of names to string values, not {}",
            describe(value)
        )));
    };
    let mut headers: Vec<(String, String)> = Vec::with_capacity(map.len());
    for (name, value) in map.iter() {
        let Val::TStr(raw) = name else {
            return Err(invalid(format!(
                "headers: a header name must be a string, not {}",
                describe(name)
            )));
        };
        let name = String::from_utf8_lossy(raw).to_ascii_lowercase();
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(invalid(format!(
                "headers: {name:?} is not a valid HTTP header name"
            )));
        }
        if is_reserved_header(&name) {
            return Err(invalid(format!(
                "headers: {name:?} is set by hookgate or the connection; a transform cannot set it"
            )));
        }
        if headers.iter().any(|(n, _)| *n == name) {
            return Err(invalid(format!(
                "headers: {name:?} is given twice (names are not case-sensitive)"
            )));
        }
        let value = match value {
            Val::TStr(v) => String::from_utf8(v.to_vec()).map_err(|_| {
                invalid(format!("headers: the value of {name:?} is not valid UTF-8"))
            })?,
            other => {
                return Err(invalid(format!(
                    "headers: the value of {name:?} must be a string, not {}",
                    describe(other)
                )));
            }
        };
        if !is_header_value(&value) {
            return Err(invalid(format!(
                "headers: the value of {name:?} is not a valid HTTP header value (control \
                 characters or line breaks)"
            )));
        }
        headers.push((name, value));
    }
    Ok(headers)
}

/// What `http::HeaderValue::from_str` accepts (visible ASCII, spaces, tabs and any non-ASCII
/// UTF-8), checked without building the value it would allocate; a test holds the two equal.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

fn decode_event_type(value: &Val) -> Result<Option<String>, TransformError> {
    match value {
        Val::Null => Ok(None),
        Val::TStr(s) => {
            let text = String::from_utf8(s.to_vec())
                .map_err(|_| invalid("event_type is not valid UTF-8".into()))?;
            if text.chars().any(char::is_control) {
                return Err(invalid(
                    "event_type holds a control character (a NUL, a line break…)".into(),
                ));
            }
            Ok(Some(text))
        }
        other => Err(invalid(format!(
            "event_type must be a string or null, not {}",
            describe(other)
        ))),
    }
}

/// Why a value cannot be written as JSON, and where (path segments, innermost first).
struct JsonError {
    reason: String,
    path: Vec<String>,
}

impl JsonError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            path: Vec::new(),
        }
    }

    fn at(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }
}

/// Writes `value` as compact JSON. Strings that are not valid UTF-8 are written with
/// replacement characters; `NaN` is written as `null` and infinities as the largest finite
/// numbers, as jq does.
fn write_json(out: &mut Vec<u8>, value: &Val, depth: usize) -> Result<(), JsonError> {
    if depth > MAX_OUTPUT_DEPTH {
        return Err(JsonError::new(format!(
            "nests deeper than {MAX_OUTPUT_DEPTH}"
        )));
    }
    match value {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Num(n) => write_number(out, n, value),
        Val::TStr(s) => write_string(out, s),
        Val::BStr(_) => {
            return Err(JsonError::new(
                "a byte string cannot be written as JSON (tostring gives text)",
            ));
        }
        Val::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item, depth + 1).map_err(|e| e.at(format!("[{i}]")))?;
            }
            out.push(b']');
        }
        Val::Obj(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                let Val::TStr(k) = key else {
                    return Err(JsonError::new(format!(
                        "an object key must be a string, not {}",
                        describe(key)
                    )));
                };
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_json(out, item, depth + 1)
                    .map_err(|e| e.at(format!("[{}]", String::from_utf8_lossy(k))))?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Writes a number straight into `out` (writing into a `Vec` cannot fail).
fn write_number(out: &mut Vec<u8>, n: &Num, value: &Val) {
    match n {
        Num::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Num::BigInt(i) => {
            let _ = write!(out, "{i}");
        }
        Num::Dec(d) if is_json_number(d) => out.extend_from_slice(d.as_bytes()),
        Num::Float(f) => write_float(out, *f),
        Num::Dec(_) => {
            let f = jaq_std::ValT::as_f64(value).unwrap_or(f64::NAN);
            write_float(out, f);
        }
    }
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(b"null");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 {
            &b"1.7976931348623157e+308"[..]
        } else {
            &b"-1.7976931348623157e+308"[..]
        });
    } else {
        // jaq's own rendering of a finite float (ryu), which is valid JSON.
        let _ = write!(out, "{}", Num::Float(f));
    }
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // `from_utf8` first: its ASCII fast path is several times quicker than the lossy scan,
    // and strings are almost always valid.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    out.push(b'"');
    let mut start = 0;
    for (i, c) in text.bytes().enumerate() {
        let escape: Option<&[u8]> = match c {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&text.as_bytes()[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&text.as_bytes()[start..]);
    out.push(b'"');
}

/// Fuzz entry point: any bytes read as a jaq value (JSON with jaq's extensions: byte strings,
/// `NaN`, non-string keys) are validated as a transform's output. Never panics unless an
/// accepted output breaks a rule (a reserved or invalid header, a JSON body that is not JSON).
#[cfg(any(test, feature = "test-support"))]
pub fn fuzz_transform_output(data: &[u8]) {
    // jaq's reader recurses per level: keep the fuzzer's own stack safe.
    let mut depth = 0usize;
    for &b in data {
        match b {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 200 {
            return;
        }
    }
    let Ok(value) = jaq_json::read::parse_single(data) else {
        return;
    };
    let body_is_string = match &value {
        Val::Obj(map) => map
            .get(&Val::utf8_str(&b"body"[..]))
            .is_none_or(|b| matches!(b, Val::TStr(_) | Val::BStr(_))),
        _ => true,
    };
    let input = Input {
        body: Bytes::from_static(b"{\"id\":1}"),
        headers: vec![("x-original".into(), "1".into())],
        event_type: Some("t".into()),
    };
    let Ok(output) = Output::from_value(value, &input) else {
        return;
    };
    if let Output::Send { body, headers, .. } = output {
        for (name, value) in &headers {
            if name == "x-original" {
                continue;
            }
            assert_eq!(name, &name.to_ascii_lowercase());
            assert!(http::HeaderName::from_bytes(name.as_bytes()).is_ok());
            assert!(http::HeaderValue::from_str(value).is_ok());
            assert!(!is_reserved_header(name));
        }
        if !body_is_string {
            match serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                Ok(_) => {}
                Err(e) => assert!(e.to_string().contains("recursion limit"), "{e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
