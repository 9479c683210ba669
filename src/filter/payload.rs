//! Payload filters: which events an endpoint takes, decided from the request's body, headers
//! and query string, in the operator syntax Convoy, Hookdeck and Outpost share, so rules
//! written for them carry over.
//!
//! # Syntax
//!
//! A filter is a JSON object (in TOML an inline table). Its keys are any of `body`, `headers`
//! and `query`, plus `$and`, `$or` and `$not`; every part present must match.
//!
//! ```json
//! { "body": { "action": { "$in": ["opened", "reopened"] }, "pull_request": { "draft": false } },
//!   "headers": { "x-github-event": "pull_request" },
//!   "query": { "site": "eu" } }
//! ```
//!
//! - `body` is matched against the body parsed as JSON; a body that is not JSON matches no
//!   `body` condition. `headers` is matched against the request's headers (names in any case:
//!   they are compared lower-cased) and `query` against the query string (`a=1&b=2`, decoded;
//!   a repeated key has all its values, as an array). Header and query values are text.
//! - Inside a part, an object maps field names to conditions, and all must hold. A body field
//!   name with dots is a path: `"data.object.amount"` is the same as nesting
//!   `{"data": {"object": {"amount": …}}}`. Header and query names are never split. A payload
//!   key holding a dot, or starting with `$`, cannot be named.
//! - A field's condition is one of:
//!   - a value (string, number, `true`/`false`, `null`): equality. Numbers compare by value
//!     (`1` equals `1.0`); `null` matches a present `null`, not a missing field;
//!   - an object of field names: the nested fields must match (`{"user": {"login": "octocat"}}`);
//!   - an object of operators (keys starting with `$`): all must hold. One object cannot mix
//!     operators and field names;
//!   - an array: the field must be an array holding a match for every element, in any order
//!     (`{"tags": ["a", "b"]}` matches `["b", "c", "a"]`); anything else does not match.
//!
//! ## Arrays in the payload
//!
//! A condition on an array holds when **any element** satisfies it: equality, nested objects
//! and the operators alike. `{"labels": {"name": "bug"}}` and the path `{"labels.name": "bug"}`
//! both match `{"labels": [{"name": "ux"}, {"name": "bug"}]}`, through arrays at any depth, and
//! the fields of one nested object must all hold in the **same** element
//! (`{"line_items": {"sku": "A1", "quantity": {"$gte": 2}}}`).
//!
//! `$neq`, `$nin`, `$exist: false` and `$not` are the negation of the positive form where they
//! stand: `{"tags": {"$neq": "spam"}}` means no element of `tags` is `"spam"`. When a path
//! passes through an array, though, the rest of the condition, negation included, is asked of
//! each element: `{"labels.name": {"$neq": "bug"}}` holds when *some* label is not named
//! `"bug"` (and an empty `labels` has no element, so nothing under it holds). To say that *no*
//! label is named `"bug"`, negate the positive condition on the array:
//! `{"labels": {"$not": {"name": "bug"}}}`, or at the part's level
//! `{"$not": {"labels.name": "bug"}}`.
//!
//! ## Operators
//!
//! | operator | operand | holds when the field… |
//! |---|---|---|
//! | `$eq`, `$neq` | any JSON value | equals it / does not |
//! | `$gt`, `$gte`, `$lt`, `$lte` | a number | is a number `>`, `>=`, `<`, `<=` it |
//! | `$in`, `$nin` | a non-empty array | equals one of its values / none of them |
//! | `$exist` | `true` or `false` | is present (`null` counts as present) / is absent |
//! | `$regex` | a string | is a string matching the regular expression (anywhere, unless anchored) |
//! | `$startsWith`, `$endsWith` | a string | is a string starting / ending with it (case-sensitive) |
//! | `$and`, `$or` | a non-empty array of conditions | all hold / at least one holds |
//! | `$not` | one condition | does not hold |
//!
//! `$and`, `$or` and `$not` work at every level: at the top (their conditions are whole
//! filters), inside a part (objects of fields), and among a field's operators (conditions on
//! that field: `{"amount": {"$or": [{"$lt": 5}, {"$gt": 100}]}}`).
//!
//! Numbers compare exactly between integers and as 64-bit floats otherwise. A body string is
//! never a number (`"199.00"` is not `>= 100`: match it with `$regex`), but header and query
//! values are text, so there a number operand compares with the value read as a number
//! (`"5"` equals `5` and is `$gt: 4`) and `true`/`false` with the text `"true"`/`"false"`.
//! Regular expressions are Rust's `regex` syntax (no look-around or backreferences), matched
//! in time linear in the input.
//!
//! ## Limits
//!
//! A filter may come from an API body, so it is bounded: objects and arrays nested at most 32
//! levels deep, dotted paths of at most 32 segments, at most 256 clauses (each value compared
//! against: a value, an operator, each element of an `$in` list or of an `$eq` operand), and
//! strings (keys and regular expressions included) of at most 4096 bytes.
//!
//! ## Examples
//!
//! GitHub: pull requests opened or reopened, not drafts, except Dependabot's:
//! ```json
//! { "headers": { "x-github-event": "pull_request" },
//!   "body": { "action": { "$in": ["opened", "reopened"] },
//!             "pull_request.draft": false,
//!             "pull_request.user.login": { "$neq": "dependabot[bot]" } } }
//! ```
//! GitHub: anything labelled `bug`, or with a label starting `priority/`:
//! ```json
//! { "body": { "$or": [ { "pull_request.labels.name": "bug" },
//!                      { "pull_request.labels.name": { "$startsWith": "priority/" } } ] } }
//! ```
//! Stripe: paid invoices of at least 100.00 in euros or dollars (amounts are in cents):
//! ```json
//! { "body": { "type": "invoice.paid",
//!             "data.object.amount_paid": { "$gte": 10000 },
//!             "data.object.currency": { "$in": ["eur", "usd"] } } }
//! ```
//! Stripe: charges that carry an `order_id` in their metadata, in live mode only:
//! ```json
//! { "body": { "type": { "$startsWith": "charge." }, "livemode": true,
//!             "data.object.metadata.order_id": { "$exist": true } } }
//! ```
//! Shopify: new orders (the topic is a header) that include a given product, tagged `wholesale`:
//! ```json
//! { "headers": { "x-shopify-topic": "orders/create" },
//!   "body": { "line_items": { "product_id": 632910392, "quantity": { "$gte": 2 } },
//!             "tags": { "$regex": "(^|, )wholesale(,|$)" } } }
//! ```
//!
//! # Evaluation
//!
//! [`PayloadFilter::compile`] checks a filter once (errors name the place at fault, as a path
//! from the filter's root: `body.amount.$gte: expected a number`). A [`Subject`] is built once
//! per event and shared by every endpoint's filter; [`PayloadFilter::matches`] is ingest's hot
//! path and allocates nothing, and [`PayloadFilter::explain`] tells which clause failed and
//! why. The two always agree: `explain` asks `matches`'s evaluation whether the filter holds
//! and only then looks for the reason. Conditions that must all hold are tried cheapest first
//! (headers and query before the body, shallow paths before deep ones, regular expressions
//! last), so the clause `explain` names is the first to fail in that order.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

mod compile;
mod eval;
mod explain;
#[doc(hidden)]
#[cfg(any(test, feature = "test-support"))]
pub mod fuzz;
mod plan;
#[cfg(test)]
mod tests;

pub use plan::Plan;

/// The deepest a filter document's objects and arrays may nest (the root is level 1), and the
/// most segments a dotted path may have.
pub const MAX_DEPTH: usize = 32;
/// The most clauses (values compared against) one filter may hold.
pub const MAX_CLAUSES: usize = 256;
/// The longest string (value, key or regular expression) a filter may hold, in bytes.
pub const MAX_STRING: usize = 4096;

/// A filter that does not compile: where in the filter, and why.
///
/// `path` is dot-joined from the filter's root (`$or[1].body.x.$regex`), without any prefix
/// of the caller's (who knows where the filter itself sits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The root itself has no path: then the message stands alone.
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FilterError {}

/// Why a filter does not match an event: the failing clause (a path in the syntax of
/// [`FilterError`]) and a short sentence with the value found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub clause: String,
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.clause.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.clause, self.reason)
        }
    }
}

/// A compiled payload filter.
#[derive(Debug, Clone)]
pub struct PayloadFilter {
    document: Value,
    root: Node,
    needs_body: bool,
}

/// Two filters are the same when they were written the same.
impl PartialEq for PayloadFilter {
    fn eq(&self, other: &Self) -> bool {
        self.document == other.document
    }
}

impl PayloadFilter {
    /// Checks and compiles a filter document.
    pub fn compile(document: &Value) -> Result<PayloadFilter, FilterError> {
        let (root, needs_body) = compile::compile(document)?;
        Ok(PayloadFilter {
            document: document.clone(),
            root,
            needs_body,
        })
    }

    /// Whether any clause reads the body, so the caller parses it only if one does.
    pub fn needs_body(&self) -> bool {
        self.needs_body
    }

    /// Whether the event matches. Allocates nothing.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        eval::holds(&self.root, eval::Val::Top, s)
    }

    /// Whether the event matches, and if not, the first clause that failed and why.
    pub fn explain(&self, s: &Subject<'_>) -> Result<(), Rejection> {
        // Deciding with `matches`'s own evaluation keeps the two in agreement by construction;
        // the search for a reason runs only on a miss.
        if self.matches(s) {
            Ok(())
        } else {
            Err(explain::reason(&self.root, eval::Val::Top, s))
        }
    }

    /// The filter as written, for API views.
    pub fn document(&self) -> &Value {
        &self.document
    }
}

/// What filters are matched against: one event's body, headers and query, prepared once and
/// shared by every endpoint's filter.
#[derive(Debug)]
pub struct Subject<'a> {
    body: Option<&'a Value>,
    /// Lower-case names; values decoded (lossy UTF-8) and trimmed. Sorted by name.
    headers: Vec<Pair<'a>>,
    /// Decoded names and values; a repeated key appears once per value. Sorted by name.
    query: Vec<Pair<'a>>,
    /// The answers of a [`Plan`]'s shared clauses on this event, as they are found (empty
    /// outside a plan: then nothing is remembered).
    /// Atomic only so a subject stays `Sync`; relaxed accesses cost what plain ones do.
    memo: Vec<std::sync::atomic::AtomicU8>,
    /// The plan's equality groups, and which of them were read on this event.
    groups: &'a [plan::Group],
    resolved: Vec<std::sync::atomic::AtomicBool>,
}

/// A header or query entry: name and value as text.
type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

impl<'a> Subject<'a> {
    /// `body` is `None` when the body is not JSON. Header names must already be lower-case;
    /// their values are raw bytes, read as lossy UTF-8 and trimmed. `query` is the request's
    /// query string without the `?` (one is skipped if present).
    pub fn new(body: Option<&'a Value>, headers: &'a [(String, Vec<u8>)], query: &'a str) -> Self {
        let mut headers: Vec<Pair<'a>> = headers
            .iter()
            .map(|(name, value)| (Cow::Borrowed(name.as_str()), lossy_trimmed(value)))
            .collect();
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut query: Vec<Pair<'a>> = url::form_urlencoded::parse(query.as_bytes()).collect();
        // By name, so a repeated name's values are adjacent (in their order: the sort is
        // stable) and a lookup can take them as one slice.
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        query.sort_by(|a, b| a.0.cmp(&b.0));
        Subject {
            body,
            headers,
            query,
            memo: Vec::new(),
            groups: &[],
            resolved: Vec::new(),
        }
    }
}

/// `bytes` as text, borrowed unless it held invalid UTF-8.
fn lossy_trimmed(bytes: &[u8]) -> Cow<'_, str> {
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    }
}

/// One compiled condition, with its place in the filter for explanations.
#[derive(Debug, Clone)]
struct Node {
    /// The path of this condition in the filter, as compile errors write it.
    clause: Box<str>,
    kind: Kind,
}

/// Which part of the request a top-level key reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Body,
    Headers,
    Query,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Body => "body",
            Part::Headers => "headers",
            Part::Query => "query",
        }
    }
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Gt => ord == Greater,
            Cmp::Gte => ord != Less,
            Cmp::Lt => ord == Less,
            Cmp::Lte => ord != Greater,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }
}

/// A number as compared: integers exactly, the rest as floats.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of(n: &serde_json::Number) -> Option<Num> {
        if let Some(i) = n.as_i64() {
            Some(Num::Int(i128::from(i)))
        } else if let Some(u) = n.as_u64() {
            Some(Num::Int(i128::from(u)))
        } else {
            n.as_f64().filter(|f| f.is_finite()).map(Num::Float)
        }
    }

    /// Header and query text read as a number, if it is one (finite).
    fn parse(text: &str) -> Option<Num> {
        if let Ok(i) = text.parse::<i64>() {
            Some(Num::Int(i128::from(i)))
        } else if let Ok(u) = text.parse::<u64>() {
            Some(Num::Int(i128::from(u)))
        } else {
            text.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Num::Float)
        }
    }

    fn compare(self, other: Num) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.float().partial_cmp(&b.float()),
        }
    }

    fn float(self) -> f64 {
        match self {
            // Precision lost past 2^53 is the documented float comparison.
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}

/// What a compiled condition does.
#[derive(Debug, Clone)]
enum Kind {
    /// All hold (an object's entries, `$and`). Empty: always holds.
    All(Vec<Node>),
    /// At least one holds (`$or`).
    Any(Vec<Node>),
    /// Does not hold (`$not`).
    Not(Box<Node>),
    /// A top-level part, evaluated against that part of the request.
    Part(Part, Box<Node>),
    /// An object of body fields: all hold on one value, so on an array all in one element.
    Fields(Vec<Node>),
    /// A body field by its path (segments pre-split), walking through arrays.
    Path(Box<[Box<str>]>, Box<Node>),
    /// A header or query value by its name (headers' pre-lower-cased).
    Named(Box<str>, Box<Node>),
    Eq(Value),
    Neq(Value),
    Cmp(Cmp, Num),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exist(bool),
    Regex(regex::Regex),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    /// An array literal: an array holding a match for each of these.
    Contains(Vec<Node>),
    /// A clause other filters of a [`Plan`] share: its answer is remembered in the event's
    /// memo at this index, when it is asked of its anchor's value.
    Shared(plan::Memo, Box<Node>),
}
