//! The filters of a whole route table, planned together so that a clause several endpoints
//! share is evaluated once per event, not once per endpoint.
//!
//! Endpoints subscribed to one stream of events tend to ask the same things of it: the same
//! `type`, the same `x-github-event`, the same `livemode`, each beside a clause of their own.
//! Content-based publish/subscribe systems share such predicates across subscriptions; this
//! does the same for the clauses whose value is fixed by the event alone (*anchored* ones: a
//! whole filter, a part's condition, and the conditions reached from those through `$and`,
//! `$or`, `$not` and an object of fields). Two anchored clauses that are written alike, under
//! the same anchor, always agree on an event, so the first to be evaluated records its answer
//! in the event's [`Subject`] and the others read it.
//!
//! Endpoints also tend to ask one field for a value of their own (`{"site": "eu"}`, `{"site":
//! "us"}`, …). Such equality clauses on one body path form a *group*: the first of them asked
//! of an event reads the path once and answers every clause of the group from one lookup of
//! the value found (the way publish/subscribe matchers index equality predicates).
//!
//! A plan never changes what matches: a shared clause reached with any other value than its
//! anchor's (the fields of a body that is an array, say, asked of each element) is evaluated
//! as if it were not shared, and a group answers only when its path leads, without passing
//! through an array, to a value (or to nothing): otherwise each clause evaluates itself.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::Value;

use super::{Kind, Node, Part, PayloadFilter, Subject};

/// Where an anchored clause takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Anchor {
    /// The whole request, as top-level conditions read it.
    Top,
    /// The root of a part: the parsed body, the headers or the query.
    Part(Part),
}

/// A route table's filters, in the table's order, with the clauses they share marked.
#[derive(Debug, Default)]
pub struct Plan {
    roots: Vec<Option<Node>>,
    /// How many distinct shared clauses there are: the size of each event's memo.
    shared: usize,
    groups: Vec<Group>,
}

/// A body path's segments, and its equality clauses by key with the string each asks for.
type Equalities = (Box<[Box<str>]>, HashMap<String, String>);

/// A shared clause's place in the event's memo.
#[derive(Debug, Clone, Copy)]
pub(super) struct Memo {
    pub id: u32,
    pub anchor: Anchor,
    /// The equality group it belongs to, if any.
    pub group: Option<u32>,
}

/// Equality clauses asking one body path for a string each: `{path: "a"}`, `{path: "b"}`…
#[derive(Debug)]
pub(super) struct Group {
    segments: Box<[Box<str>]>,
    /// Every clause of the group (their memo ids).
    members: Vec<u32>,
    /// The clause holding for each value.
    by_value: HashMap<String, u32>,
}

impl Plan {
    /// Plans `filters` (one per endpoint, `None` for an endpoint without one).
    pub fn new<'f>(filters: impl IntoIterator<Item = Option<&'f PayloadFilter>>) -> Plan {
        let filters: Vec<Option<&PayloadFilter>> = filters.into_iter().collect();
        // Each anchored clause's key: how often it is asked, and its anchor.
        let mut seen: HashMap<String, (usize, Anchor)> = HashMap::new();
        // Equality clauses by path: each clause's key and the string it asks for.
        let mut equalities: HashMap<String, Equalities> = HashMap::new();
        for f in filters.iter().flatten() {
            visit(&f.root, Anchor::Top, &mut |n, at| {
                let k = key(n, at);
                if let (Anchor::Part(Part::Body), Kind::Path(segments, inner)) = (at, &n.kind)
                    && let Kind::Eq(Value::String(wanted)) = &inner.kind
                {
                    let path = path_key(segments);
                    let entry = equalities
                        .entry(path)
                        .or_insert_with(|| (segments.clone(), HashMap::new()));
                    entry.1.insert(k.clone(), wanted.clone());
                }
                seen.entry(k).or_insert((0, at)).0 += 1;
            });
        }
        let mut ids: HashMap<String, Memo> = HashMap::new();
        let mut next_id = 0u32;
        let mut id_for = |k: String, at: Anchor, group: Option<u32>| {
            ids.entry(k)
                .or_insert_with(|| {
                    next_id += 1;
                    Memo {
                        id: next_id - 1,
                        anchor: at,
                        group,
                    }
                })
                .id
        };
        // A group is worth it when it answers several different clauses at once.
        let mut groups = Vec::new();
        for (_, (segments, clauses)) in equalities {
            if clauses.len() < 2 {
                continue;
            }
            let group = u32::try_from(groups.len()).ok();
            let mut g = Group {
                segments,
                members: Vec::new(),
                by_value: HashMap::new(),
            };
            for (k, wanted) in clauses {
                let id = id_for(k, Anchor::Part(Part::Body), group);
                g.members.push(id);
                g.by_value.insert(wanted, id);
            }
            groups.push(g);
        }
        // Otherwise, only what more than one clause asks is worth remembering.
        for (k, (count, at)) in seen {
            if count > 1 {
                id_for(k, at, None);
            }
        }
        let roots = filters
            .iter()
            .map(|f| f.map(|f| mark(&f.root, Anchor::Top, &ids)))
            .collect();
        Plan {
            roots,
            shared: next_id as usize,
            groups,
        }
    }

    /// The filters planned, including the endpoints without one.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether no filter was planned.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// How many clauses are shared (each evaluated at most once per event).
    pub fn shared(&self) -> usize {
        self.shared
    }

    /// Whether the filter of endpoint `i` (in the table's order) matches `s`; `None` when it
    /// has none. `s` must come from [`Plan::subject`] of this plan.
    pub fn matches(&self, i: usize, s: &Subject<'_>) -> Option<bool> {
        let root = self.roots.get(i)?.as_ref()?;
        Some(super::eval::holds(root, super::eval::Val::Top, s))
    }

    /// An event's [`Subject`], with room to remember this plan's shared clauses.
    pub fn subject<'a>(
        &'a self,
        body: Option<&'a serde_json::Value>,
        headers: &'a [(String, Vec<u8>)],
        query: &'a str,
    ) -> Subject<'a> {
        let mut s = Subject::new(body, headers, query);
        s.memo = (0..self.shared)
            .map(|_| std::sync::atomic::AtomicU8::new(UNKNOWN))
            .collect();
        s.groups = &self.groups;
        s.resolved = (0..self.groups.len())
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect();
        s
    }
}

/// Answers every clause of `s`'s group `g` from one reading of its path, the first time the
/// group is asked on this event; `false` when it was asked before or cannot answer (the path
/// passes through an array or ends on one, or the body is not JSON): then each clause
/// evaluates itself.
pub(super) fn resolve(g: u32, s: &Subject<'_>) -> bool {
    let (Some(group), Some(done)) = (s.groups.get(g as usize), s.resolved.get(g as usize)) else {
        return false;
    };
    if done.swap(true, Relaxed) {
        return false;
    }
    let Some(body) = s.body else {
        return false;
    };
    // What `Path` with `Eq` would find: the value, or nothing at all (a missing field, or a
    // step into a scalar), unless an array is on the way.
    let mut found = Some(body);
    for segment in group.segments.iter() {
        found = match found {
            Some(Value::Object(map)) => super::eval::field(map, segment),
            Some(Value::Array(_)) => return false,
            _ => None,
        };
    }
    let holding = match found {
        Some(Value::Array(_)) => return false,
        Some(Value::String(text)) => group.by_value.get(text.as_str()).copied(),
        _ => None,
    };
    for &id in &group.members {
        if let Some(cell) = s.memo.get(id as usize) {
            let answer = if Some(id) == holding { TRUE } else { FALSE };
            cell.store(answer, Relaxed);
        }
    }
    true
}

/// A body path as text, for grouping.
fn path_key(segments: &[Box<str>]) -> String {
    segments
        .iter()
        .map(|s| serde_json::Value::from(&**s).to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// A memo entry not yet evaluated; then [`FALSE`] or [`TRUE`].
pub(super) const UNKNOWN: u8 = 0;
pub(super) const FALSE: u8 = 1;
pub(super) const TRUE: u8 = 2;

/// Calls `f` on every anchored clause of `n` (itself included), with its anchor.
fn visit<'n>(n: &'n Node, at: Anchor, f: &mut impl FnMut(&'n Node, Anchor)) {
    f(n, at);
    match &n.kind {
        Kind::All(nodes) | Kind::Any(nodes) => {
            for c in nodes {
                visit(c, at, f);
            }
        }
        Kind::Fields(nodes) if at != Anchor::Top => {
            for c in nodes {
                visit(c, at, f);
            }
        }
        Kind::Not(inner) => visit(inner, at, f),
        Kind::Part(p, inner) => visit(inner, Anchor::Part(*p), f),
        _ => {}
    }
}

/// A copy of `n` with each anchored clause in `ids` wrapped as shared.
fn mark(n: &Node, at: Anchor, ids: &HashMap<String, Memo>) -> Node {
    let kind = match &n.kind {
        Kind::All(nodes) => {
            let mut all: Vec<Node> = nodes.iter().map(|c| mark(c, at, ids)).collect();
            // The clauses of an equality group first: at most one clause of a group holds on
            // an event, so they are the likeliest to fail, and once the group is read each is
            // one memo load. (A conjunction's order changes nothing but how soon it fails.)
            all.sort_by_key(|c| !matches!(&c.kind, Kind::Shared(m, _) if m.group.is_some()));
            Kind::All(all)
        }
        Kind::Any(nodes) => Kind::Any(nodes.iter().map(|c| mark(c, at, ids)).collect()),
        Kind::Fields(nodes) if at != Anchor::Top => {
            Kind::Fields(nodes.iter().map(|c| mark(c, at, ids)).collect())
        }
        Kind::Not(inner) => Kind::Not(Box::new(mark(inner, at, ids))),
        Kind::Part(p, inner) => Kind::Part(*p, Box::new(mark(inner, Anchor::Part(*p), ids))),
        other => other.clone(),
    };
    let node = Node {
        clause: n.clause.clone(),
        kind,
    };
    match ids.get(&key(n, at)) {
        Some(&memo) => Node {
            clause: n.clause.clone(),
            kind: Kind::Shared(memo, Box::new(node)),
        },
        None => node,
    }
}

/// What `n` asks, under `at`, as text: equal for clauses written alike, whatever their place
/// in their filters (their `clause` paths are left out), and unambiguous (every name and
/// value is JSON-quoted).
fn key(n: &Node, at: Anchor) -> String {
    let mut out = match at {
        Anchor::Top => "T:".to_string(),
        Anchor::Part(p) => format!("{}:", p.name()),
    };
    write_key(n, &mut out);
    out
}

fn write_key(n: &Node, out: &mut String) {
    let list = |tag: &str, nodes: &[Node], out: &mut String| {
        out.push_str(tag);
        out.push('(');
        for c in nodes {
            write_key(c, out);
            out.push(',');
        }
        out.push(')');
    };
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    match &n.kind {
        Kind::All(nodes) => list("all", nodes, out),
        Kind::Any(nodes) => list("any", nodes, out),
        Kind::Fields(nodes) => list("fields", nodes, out),
        Kind::Contains(nodes) => list("contains", nodes, out),
        Kind::Not(inner) => {
            out.push_str("not(");
            write_key(inner, out);
            out.push(')');
        }
        Kind::Part(p, inner) => {
            let _ = write!(out, "part {}(", p.name());
            write_key(inner, out);
            out.push(')');
        }
        Kind::Path(segments, inner) => {
            out.push_str("path[");
            for s in segments.iter() {
                out.push_str(&quoted(s));
                out.push(',');
            }
            out.push_str("](");
            write_key(inner, out);
            out.push(')');
        }
        Kind::Named(name, inner) => {
            let _ = write!(out, "named {}(", quoted(name));
            write_key(inner, out);
            out.push(')');
        }
        Kind::Eq(v) => {
            let _ = write!(out, "eq {v}");
        }
        Kind::Neq(v) => {
            let _ = write!(out, "neq {v}");
        }
        Kind::Cmp(cmp, bound) => {
            // The bound's kind matters (an integer compares exactly, a float does not).
            let _ = write!(out, "cmp {} {bound:?}", cmp.symbol());
        }
        Kind::In(values) => {
            let _ = write!(out, "in {}", serde_json::Value::from(values.clone()));
        }
        Kind::Nin(values) => {
            let _ = write!(out, "nin {}", serde_json::Value::from(values.clone()));
        }
        Kind::Exist(b) => {
            let _ = write!(out, "exist {b}");
        }
        Kind::Regex(re) => {
            let _ = write!(out, "regex {}", quoted(re.as_str()));
        }
        Kind::StartsWith(p) => {
            let _ = write!(out, "starts {}", quoted(p));
        }
        Kind::EndsWith(p) => {
            let _ = write!(out, "ends {}", quoted(p));
        }
        // Plans are made from compiled filters, which hold no shared marks; a mark would be
        // keyed by what it wraps.
        Kind::Shared(_, inner) => write_key(inner, out),
    }
}

#[cfg(test)]
mod tests;
