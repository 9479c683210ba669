//! Why a filter did not match: the first failing clause, found by walking the filter the way
//! [`holds`] does and descending only into parts that fail. Off the hot path, so it may
//! allocate.

use std::io;

use serde_json::Value;

use super::eval::{Val, holds, lookup, many, part};
use super::{Kind, Node, Rejection, Subject};

/// The longest shown value, in bytes (cut at a character boundary, then `…`).
const SHOWN: usize = 80;

/// How many of an `$or`'s alternatives are listed.
const ALTERNATIVES: usize = 4;

/// The first failing clause of `n` on `v`; `n` must not hold of `v`.
pub(super) fn reason(n: &Node, v: Val<'_>, s: &Subject<'_>) -> Rejection {
    match &n.kind {
        Kind::All(nodes) => match nodes.iter().find(|c| !holds(c, v, s)) {
            Some(c) => reason(c, v, s),
            None => at(n, "did not match".to_string()),
        },
        Kind::Any(nodes) => {
            let listed: Vec<String> = nodes
                .iter()
                .take(ALTERNATIVES)
                .map(|c| reason(c, v, s).to_string())
                .collect();
            let more = match nodes.len().saturating_sub(ALTERNATIVES) {
                0 => String::new(),
                n => format!("; and {n} more"),
            };
            at(
                n,
                format!("no alternative matched ({}{more})", listed.join("; ")),
            )
        }
        Kind::Not(_) => at(
            n,
            match v {
                Val::Top | Val::Pairs(_) => "the negated condition matched".to_string(),
                Val::Absent => "field is absent, which the negated condition accepts".to_string(),
                _ => format!("found {}, which the negated condition matches", show(v)),
            },
        ),
        Kind::Shared(_, inner) => reason(inner, v, s),
        Kind::Part(p, inner) => match part(*p, s) {
            Some(pv) => reason(inner, pv, s),
            None => at(n, "body is not JSON".to_string()),
        },
        Kind::Fields(fields) => match v {
            Val::Json(Value::Array(items)) => match items.as_slice() {
                [only] => reason(n, Val::Json(only), s),
                _ => no_element(n, "", v),
            },
            Val::Many(..) => no_element(n, "", v),
            _ => match fields.iter().find(|c| !holds(c, v, s)) {
                Some(c) => reason(c, v, s),
                None => at(n, "did not match".to_string()),
            },
        },
        Kind::Path(segments, inner) => path_reason(n, segments, 0, inner, v, s),
        Kind::Named(name, inner) => match v {
            Val::Pairs(pairs) => reason(inner, lookup(pairs, name), s),
            _ => reason(inner, Val::Absent, s),
        },
        _ => leaf(n, v, s),
    }
}

/// Follows the path as [`super::eval::path_holds`] does; `k` segments are walked.
fn path_reason(
    n: &Node,
    segments: &[Box<str>],
    k: usize,
    inner: &Node,
    v: Val<'_>,
    s: &Subject<'_>,
) -> Rejection {
    let Some(first) = segments.get(k) else {
        return reason(inner, v, s);
    };
    match v {
        Val::Json(Value::Object(map)) => match map.get(&**first) {
            Some(child) => path_reason(n, segments, k + 1, inner, Val::Json(child), s),
            None => reason(inner, Val::Absent, s),
        },
        Val::Json(Value::Array(items)) => match items.as_slice() {
            [only] => path_reason(n, segments, k, inner, Val::Json(only), s),
            _ => no_element(n, &segments[..k].join("."), v),
        },
        _ => reason(inner, Val::Absent, s),
    }
}

/// An array none of whose elements satisfied `n`; `of` names it when it is on a path.
fn no_element(n: &Node, of: &str, v: Val<'_>) -> Rejection {
    let of = if of.is_empty() {
        String::new()
    } else {
        format!(" of {of}")
    };
    let reason = if is_empty_array(v) {
        format!("found []{of}, an empty array: no element to match")
    } else {
        format!("no element{of} matched; found {}", show(v))
    };
    at(n, reason)
}

fn is_empty_array(v: Val<'_>) -> bool {
    matches!(v, Val::Json(Value::Array(items)) if items.is_empty())
}

fn leaf(n: &Node, v: Val<'_>, s: &Subject<'_>) -> Rejection {
    let absent = matches!(v, Val::Absent);
    let found = show(v);
    let reason = match &n.kind {
        Kind::Exist(false) => format!("field is present: found {found}"),
        _ if absent => "field is absent".to_string(),
        Kind::Eq(lit) => format!("found {found}, expected {}", json(lit)),
        Kind::Neq(lit) if is_many(v) => {
            format!("found {found}, expected no element equal to {}", json(lit))
        }
        Kind::Neq(lit) => format!("found {found}, expected anything but {}", json(lit)),
        Kind::Cmp(cmp, bound) => {
            format!("found {found}, expected a number {} {bound}", cmp.symbol())
        }
        Kind::In(lits) => format!("found {found}, expected one of {}", json_list(lits)),
        Kind::Nin(lits) => format!("found {found}, expected none of {}", json_list(lits)),
        Kind::Regex(re) => format!(
            "found {found}, expected a string matching /{}/",
            shorten(re.as_str())
        ),
        Kind::StartsWith(p) => format!(
            "found {found}, expected a string starting with {}",
            json(&Value::String(p.to_string()))
        ),
        Kind::EndsWith(p) => format!(
            "found {found}, expected a string ending with {}",
            json(&Value::String(p.to_string()))
        ),
        Kind::Contains(elements) => {
            // The first element of the literal that nothing in the array matched.
            let unmatched = elements.iter().find(|c| match v {
                Val::Json(Value::Array(items)) => !items.iter().any(|e| holds(c, Val::Json(e), s)),
                Val::Many(run) => !many(run).any(|t| holds(c, Val::Text(t), s)),
                _ => false,
            });
            match unmatched {
                Some(c) => return at(c, format!("no element of {found} matches this")),
                None => format!("found {found}, expected an array"),
            }
        }
        _ => format!("found {found}, which does not match"),
    };
    at(n, reason)
}

fn is_many(v: Val<'_>) -> bool {
    matches!(v, Val::Many(..) | Val::Json(Value::Array(_)))
}

fn at(n: &Node, reason: String) -> Rejection {
    Rejection {
        clause: n.clause.to_string(),
        reason,
    }
}

/// A value as shown in a reason: JSON, cut to [`SHOWN`] bytes.
fn show(v: Val<'_>) -> String {
    match v {
        Val::Json(x) => json(x),
        Val::Text(t) => capped(&t),
        Val::Many(run) => capped(&many(run).collect::<Vec<_>>()),
        Val::Absent => "nothing".to_string(),
        Val::Top | Val::Pairs(_) => "the request".to_string(),
    }
}

fn json(v: &Value) -> String {
    capped(v)
}

fn json_list(values: &[Value]) -> String {
    capped(&values)
}

/// Serializes `v` into at most [`SHOWN`] bytes (and an ellipsis), stopping the serializer once
/// it has written that much, so a large body costs no more than a small one.
fn capped(v: &impl serde::Serialize) -> String {
    let mut out = Capped(Vec::with_capacity(SHOWN + 1));
    // Running out of room is an error that ends serialization early: expected.
    let _ = serde_json::to_writer(&mut out, v);
    let bytes = out.0;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        // Cut inside a character: keep what is whole.
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    };
    if bytes.len() > SHOWN {
        format!("{}…", cut(text))
    } else {
        text.to_string()
    }
}

/// `text` cut to at most [`SHOWN`] bytes, with an ellipsis if it was longer.
fn shorten(text: &str) -> String {
    let short = cut(text);
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short.to_string()
    }
}

/// `text` cut to at most [`SHOWN`] bytes at a character boundary.
fn cut(text: &str) -> &str {
    if text.len() <= SHOWN {
        return text;
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A writer that takes one byte more than [`SHOWN`] (to tell a cut value from one that fit),
/// then refuses.
struct Capped(Vec<u8>);

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = (SHOWN + 1).saturating_sub(self.0.len());
        if room == 0 {
            return Err(io::Error::other("enough to show"));
        }
        let n = room.min(buf.len());
        self.0.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
