//! Evaluating a compiled filter against a [`Subject`]: ingest's hot path, so nothing here
//! allocates (paths are pre-split, header names pre-lower-cased, text numbers parsed in place)
//! and every combination short-circuits.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::Value;

use super::plan::{self, Anchor, FALSE, TRUE};
use super::{Kind, Node, Num, Pair, Part, Subject};

/// The value a condition is asked of.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'v> {
    /// The whole request: what top-level conditions read.
    Top,
    /// A headers or query part: its entries.
    Pairs(&'v [Pair<'v>]),
    /// A field that is not there.
    Absent,
    Json(&'v Value),
    /// A header or query value.
    Text(&'v str),
    /// A header or query name given more than once: all its entries (adjacent, as
    /// [`Subject::new`] sorts them by name). It behaves as an array of text.
    Many(&'v [Pair<'v>]),
}

/// The values of a repeated name, in order.
pub(super) fn many<'v>(run: &'v [Pair<'v>]) -> impl Iterator<Item = &'v str> {
    run.iter().map(|(_, v)| v.as_ref())
}

/// A name's value among `pairs` (sorted by name): absent, one text, or several.
pub(super) fn lookup<'v>(pairs: &'v [Pair<'v>], name: &str) -> Val<'v> {
    let Some(first) = pairs.iter().position(|(n, _)| n == name) else {
        return Val::Absent;
    };
    let rest = &pairs[first..];
    let len = rest.iter().take_while(|(n, _)| n == name).count();
    match &rest[..len] {
        [(_, one)] => Val::Text(one),
        run => Val::Many(run),
    }
}

/// The part of the request a top-level part reads; `None` for a body that is not JSON.
pub(super) fn part<'v>(part: Part, s: &'v Subject<'_>) -> Option<Val<'v>> {
    match part {
        Part::Body => s.body.map(Val::Json),
        Part::Headers => Some(Val::Pairs(&s.headers)),
        Part::Query => Some(Val::Pairs(&s.query)),
    }
}

/// Whether `n` holds of `v`.
pub(super) fn holds(n: &Node, v: Val<'_>, s: &Subject<'_>) -> bool {
    match &n.kind {
        Kind::All(nodes) => nodes.iter().all(|c| holds(c, v, s)),
        Kind::Any(nodes) => nodes.iter().any(|c| holds(c, v, s)),
        Kind::Not(inner) => !holds(inner, v, s),
        Kind::Part(p, inner) => part(*p, s).is_some_and(|pv| holds(inner, pv, s)),
        Kind::Fields(fields) => match v {
            // Nested fields hold together, in one element.
            Val::Json(Value::Array(items)) => items.iter().any(|e| holds(n, Val::Json(e), s)),
            Val::Many(run) => many(run).any(|t| holds(n, Val::Text(t), s)),
            _ => fields.iter().all(|c| holds(c, v, s)),
        },
        Kind::Path(segments, inner) => path_holds(segments, inner, v, s),
        Kind::Named(name, inner) => match v {
            Val::Pairs(pairs) => holds(inner, lookup(pairs, name), s),
            _ => holds(inner, Val::Absent, s),
        },
        Kind::Eq(lit) => equals(v, lit),
        Kind::Neq(lit) => !equals(v, lit),
        Kind::Cmp(cmp, bound) => any_scalar(v, &|x| {
            number(x)
                .and_then(|n| n.compare(*bound))
                .is_some_and(|o| cmp.holds(o))
        }),
        Kind::In(lits) => lits.iter().any(|l| equals(v, l)),
        Kind::Nin(lits) => !lits.iter().any(|l| equals(v, l)),
        Kind::Exist(want) => present(v) == *want,
        Kind::Regex(re) => any_scalar(v, &|x| text(x).is_some_and(|t| re.is_match(t))),
        Kind::StartsWith(p) => any_scalar(v, &|x| text(x).is_some_and(|t| t.starts_with(&**p))),
        Kind::EndsWith(p) => any_scalar(v, &|x| text(x).is_some_and(|t| t.ends_with(&**p))),
        Kind::Shared(m, inner) => {
            let Some(cell) = s
                .memo
                .get(m.id as usize)
                .filter(|_| at_anchor(v, m.anchor, s))
            else {
                return holds(inner, v, s);
            };
            let known = |cell: &std::sync::atomic::AtomicU8| match cell.load(Relaxed) {
                TRUE => Some(true),
                FALSE => Some(false),
                _ => None,
            };
            if let Some(answer) = known(cell) {
                return answer;
            }
            // An equality group answers all its clauses at once, when it can.
            if let Some(g) = m.group
                && plan::resolve(g, s)
                && let Some(answer) = known(cell)
            {
                return answer;
            }
            let answer = holds(inner, v, s);
            cell.store(if answer { TRUE } else { FALSE }, Relaxed);
            answer
        }
        Kind::Contains(elements) => match v {
            Val::Json(Value::Array(items)) => elements
                .iter()
                .all(|c| items.iter().any(|e| holds(c, Val::Json(e), s))),
            Val::Many(run) => elements
                .iter()
                .all(|c| many(run).any(|t| holds(c, Val::Text(t), s))),
            _ => false,
        },
    }
}

/// Whether `v` is the very value clauses anchored at `anchor` read on this event (and not,
/// say, one element of a body that is an array): only then is a shared answer valid.
fn at_anchor(v: Val<'_>, anchor: Anchor, s: &Subject<'_>) -> bool {
    match (anchor, v) {
        (Anchor::Top, Val::Top) => true,
        (Anchor::Part(Part::Body), Val::Json(x)) => s.body.is_some_and(|b| std::ptr::eq(x, b)),
        (Anchor::Part(Part::Headers), Val::Pairs(p)) => std::ptr::eq(p, s.headers.as_slice()),
        (Anchor::Part(Part::Query), Val::Pairs(p)) => std::ptr::eq(p, s.query.as_slice()),
        _ => false,
    }
}

/// Walks `segments` down from `v`, through every element of each array on the way, and asks
/// `inner` of what it reaches (absent once a step is missing).
pub(super) fn path_holds(segments: &[Box<str>], inner: &Node, v: Val<'_>, s: &Subject<'_>) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return holds(inner, v, s);
    };
    match v {
        Val::Json(Value::Object(map)) => match field(map, first) {
            Some(child) => path_holds(rest, inner, Val::Json(child), s),
            None => holds(inner, Val::Absent, s),
        },
        Val::Json(Value::Array(items)) => items
            .iter()
            .any(|e| path_holds(segments, inner, Val::Json(e), s)),
        _ => holds(inner, Val::Absent, s),
    }
}

/// A field of an object. A small object is scanned: most of its keys differ from `key` in
/// length, which `==` checks before comparing bytes, while the tree's ordered search compares
/// the bytes of every key it passes.
pub(super) fn field<'v>(map: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v Value> {
    if map.len() <= SCANNED {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// The most keys an object may have for [`field`] to scan it: what one node of the standard
/// B-tree holds, so the scan never crosses nodes.
const SCANNED: usize = 11;

/// Whether the field is there (`null` is).
pub(super) fn present(v: Val<'_>) -> bool {
    !matches!(v, Val::Absent)
}

/// A single value a scalar operator looks at: a JSON value that is not an array, or a text.
#[derive(Clone, Copy)]
pub(super) enum Scalar<'v> {
    Json(&'v Value),
    Text(&'v str),
}

/// Whether any scalar in `v` (itself, or any element of an array, at any depth) satisfies `f`.
pub(super) fn any_scalar(v: Val<'_>, f: &dyn Fn(Scalar<'_>) -> bool) -> bool {
    match v {
        Val::Json(Value::Array(items)) => items.iter().any(|e| any_scalar(Val::Json(e), f)),
        Val::Json(x) => f(Scalar::Json(x)),
        Val::Text(t) => f(Scalar::Text(t)),
        Val::Many(run) => many(run).any(|t| f(Scalar::Text(t))),
        Val::Top | Val::Pairs(_) | Val::Absent => false,
    }
}

/// A scalar as a number: a JSON number, or a text that reads as one.
pub(super) fn number(x: Scalar<'_>) -> Option<Num> {
    match x {
        Scalar::Json(Value::Number(n)) => Num::of(n),
        Scalar::Json(_) => None,
        Scalar::Text(t) => Num::parse(t),
    }
}

/// A scalar as a string: a JSON string or a text.
pub(super) fn text(x: Scalar<'_>) -> Option<&str> {
    match x {
        Scalar::Json(Value::String(t)) => Some(t),
        Scalar::Text(t) => Some(t),
        Scalar::Json(_) => None,
    }
}

/// `$eq`: the value equals `lit`, or (for an array) any element does.
pub(super) fn equals(v: Val<'_>, lit: &Value) -> bool {
    match v {
        Val::Json(x) => json_equals(x, lit),
        Val::Text(t) => text_equals(t, lit),
        Val::Many(run) => {
            // The whole list against an array literal, else any one value.
            let whole = match lit {
                Value::Array(items) => {
                    run.len() == items.len() && many(run).zip(items).all(|(t, l)| text_equals(t, l))
                }
                _ => false,
            };
            whole || many(run).any(|t| text_equals(t, lit))
        }
        Val::Top | Val::Pairs(_) | Val::Absent => false,
    }
}

fn json_equals(x: &Value, lit: &Value) -> bool {
    same(x, lit)
        || match x {
            Value::Array(items) => items.iter().any(|e| json_equals(e, lit)),
            _ => false,
        }
}

/// Deep equality with numbers by value.
pub(super) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (Num::of(x), Num::of(y)) {
            (Some(x), Some(y)) => x.compare(y) == Some(std::cmp::Ordering::Equal),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

/// Header and query text against a value: strings exactly, numbers by value, booleans by
/// their text.
pub(super) fn text_equals(t: &str, lit: &Value) -> bool {
    match lit {
        Value::String(s) => t == s,
        Value::Number(n) => match (Num::parse(t), Num::of(n)) {
            (Some(a), Some(b)) => a.compare(b) == Some(std::cmp::Ordering::Equal),
            _ => false,
        },
        Value::Bool(true) => t == "true",
        Value::Bool(false) => t == "false",
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}
