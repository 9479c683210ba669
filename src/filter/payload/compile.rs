//! Checking a filter document and compiling it into [`Node`]s: limits first (so the compiler's
//! own recursion is bounded), then the syntax, each error naming its path from the filter's
//! root.

use serde_json::{Map, Value};

use super::{Cmp, FilterError, Kind, MAX_CLAUSES, MAX_DEPTH, MAX_STRING, Node, Num, Part};

/// The regex crate's compiled-program and lazy-DFA budgets: enough for any reasonable pattern,
/// small enough that an untrusted one cannot take the process's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Every operator, for the message naming an unknown one.
const OPERATORS: &str = "$eq, $neq, $gt, $gte, $lt, $lte, $in, $nin, $exist, $regex, \
                         $startsWith, $endsWith, $and, $or, $not";

type Result<T> = std::result::Result<T, FilterError>;

fn error(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// `parent.key`, or `key` at the root.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Compiles `document`, answering the root condition and whether any clause reads the body.
pub(super) fn compile(document: &Value) -> Result<(Node, bool)> {
    limits(document, "", 1)?;
    let mut c = Compiler {
        clauses: 0,
        needs_body: false,
    };
    let root = c.top(document, "")?;
    Ok((root, c.needs_body))
}

/// Depth and string lengths, over the whole document, operands included.
fn limits(v: &Value, path: &str, depth: usize) -> Result<()> {
    let too_deep = || {
        error(
            path,
            format!("nesting deeper than {MAX_DEPTH} levels (the limit)"),
        )
    };
    match v {
        Value::String(s) if s.len() > MAX_STRING => Err(error(
            path,
            format!("a string longer than {MAX_STRING} bytes (the limit)"),
        )),
        Value::Array(items) => {
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
            for (i, item) in items.iter().enumerate() {
                limits(item, &index(path, i), depth + 1)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            if depth > MAX_DEPTH {
                return Err(too_deep());
            }
            for (k, item) in map {
                if k.len() > MAX_STRING {
                    return Err(error(
                        path,
                        format!("a key longer than {MAX_STRING} bytes (the limit)"),
                    ));
                }
                limits(item, &join(path, k), depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What a part's values are: JSON, or text (headers and query).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Domain {
    Json,
    Text(Part),
}

struct Compiler {
    clauses: usize,
    needs_body: bool,
}

impl Compiler {
    /// A whole filter: the top level, or an element of a top-level `$and`/`$or`/`$not`.
    fn top(&mut self, v: &Value, path: &str) -> Result<Node> {
        const EXPECTED: &str = "expected one of body, headers, query, $and, $or, $not";
        let Value::Object(map) = v else {
            return Err(error(path, format!("expected an object: {EXPECTED}")));
        };
        let mut all = Vec::with_capacity(map.len());
        for (k, v) in map {
            let p = join(path, k);
            let kind = match k.as_str() {
                "body" => {
                    self.needs_body = true;
                    Kind::Part(Part::Body, Box::new(self.part(v, &p, Domain::Json)?))
                }
                "headers" => Kind::Part(
                    Part::Headers,
                    Box::new(self.part(v, &p, Domain::Text(Part::Headers))?),
                ),
                "query" => Kind::Part(
                    Part::Query,
                    Box::new(self.part(v, &p, Domain::Text(Part::Query))?),
                ),
                "$and" => Kind::All(cheapest_first(self.list(v, &p, |c, e, ep| c.top(e, ep))?)),
                "$or" => Kind::Any(self.list(v, &p, |c, e, ep| c.top(e, ep))?),
                "$not" => Kind::Not(Box::new(self.top(v, &p)?)),
                _ => return Err(error(&p, EXPECTED)),
            };
            all.push(node(p, kind));
        }
        Ok(all_of(all, path))
    }

    /// A part's object (or an element of `$and`/`$or`/`$not` inside one): field names with
    /// their conditions, and logical operators over objects of the same kind.
    fn part(&mut self, v: &Value, path: &str, domain: Domain) -> Result<Node> {
        let Value::Object(map) = v else {
            return Err(error(
                path,
                "expected an object of field names and conditions",
            ));
        };
        let mut fields = Vec::with_capacity(map.len());
        let mut logic = Vec::new();
        for (k, v) in map {
            let p = join(path, k);
            if k.starts_with('$') {
                let kind = match k.as_str() {
                    "$and" => Kind::All(cheapest_first(
                        self.list(v, &p, |c, e, ep| c.part(e, ep, domain))?,
                    )),
                    "$or" => Kind::Any(self.list(v, &p, |c, e, ep| c.part(e, ep, domain))?),
                    "$not" => Kind::Not(Box::new(self.part(v, &p, domain)?)),
                    op => return Err(misplaced_operator(&p, op)),
                };
                logic.push(node(p, kind));
            } else {
                fields.push(self.field(k, v, &p, domain)?);
            }
        }
        // The fields hold together (in one element, on an array); the logical operators each
        // ask the whole value.
        let mut all = match domain {
            Domain::Json if !fields.is_empty() => vec![fields_of(fields, path)],
            _ => fields,
        };
        all.extend(logic);
        Ok(all_of(all, path))
    }

    /// One named field and its condition.
    fn field(&mut self, name: &str, v: &Value, path: &str, domain: Domain) -> Result<Node> {
        if name.is_empty() {
            return Err(error(path, "an empty field name"));
        }
        let kind = match domain {
            Domain::Json => {
                let segments: Box<[Box<str>]> = name.split('.').map(Box::from).collect();
                if segments.iter().any(|s| s.is_empty()) {
                    return Err(error(
                        path,
                        "an empty segment in the field's path (a name with dots is a path)",
                    ));
                }
                if segments.len() > MAX_DEPTH {
                    return Err(error(
                        path,
                        format!("a path of more than {MAX_DEPTH} segments (the limit)"),
                    ));
                }
                Kind::Path(segments, Box::new(self.condition(v, path, domain)?))
            }
            Domain::Text(Part::Headers) => {
                let lower = name.to_ascii_lowercase();
                if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                    return Err(error(path, "not a valid header name"));
                }
                Kind::Named(lower.into(), Box::new(self.condition(v, path, domain)?))
            }
            Domain::Text(_) => Kind::Named(name.into(), Box::new(self.condition(v, path, domain)?)),
        };
        Ok(node(path.to_string(), kind))
    }

    /// A field's condition: a value, an array, nested fields, or operators.
    fn condition(&mut self, v: &Value, path: &str, domain: Domain) -> Result<Node> {
        match v {
            Value::Object(map) => self.object_condition(map, path, domain),
            Value::Array(items) => {
                // The array itself is a clause (it asks for an array), so `[]` counts too.
                self.count(path, 1)?;
                let mut elements = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    elements.push(self.condition(item, &index(path, i), domain)?);
                }
                Ok(node(path.to_string(), Kind::Contains(elements)))
            }
            scalar => {
                self.count(path, 1)?;
                Ok(node(path.to_string(), Kind::Eq(scalar.clone())))
            }
        }
    }

    fn object_condition(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        domain: Domain,
    ) -> Result<Node> {
        let operator = map.keys().find(|k| k.starts_with('$'));
        let field = map.keys().find(|k| !k.starts_with('$'));
        match (operator, field) {
            (None, None) => Err(error(
                path,
                "an empty object is not a condition: expected a value, an array, or an object \
                 of fields or of operators ($exist: true for any value)",
            )),
            (Some(op), Some(name)) => Err(error(
                path,
                format!(
                    "mixes the operator {op} with the field name {name:?}: put nested fields \
                     and operators in separate objects (e.g. inside $and)"
                ),
            )),
            (None, Some(_)) => {
                let Domain::Text(part) = domain else {
                    let mut fields = Vec::with_capacity(map.len());
                    for (k, v) in map {
                        fields.push(self.field(k, v, &join(path, k), domain)?);
                    }
                    return Ok(fields_of(fields, path));
                };
                Err(error(
                    path,
                    format!(
                        "{} values are text, so they have no fields: expected a value, an \
                         array, or an object of operators",
                        part.name()
                    ),
                ))
            }
            (Some(_), None) => {
                let mut ops = Vec::with_capacity(map.len());
                for (k, v) in map {
                    ops.push(self.operator(k, v, &join(path, k), domain)?);
                }
                Ok(all_of(ops, path))
            }
        }
    }

    fn operator(&mut self, op: &str, v: &Value, path: &str, domain: Domain) -> Result<Node> {
        let kind = match op {
            "$eq" | "$neq" => {
                self.count(path, weight(v))?;
                if op == "$eq" {
                    Kind::Eq(v.clone())
                } else {
                    Kind::Neq(v.clone())
                }
            }
            "$gt" | "$gte" | "$lt" | "$lte" => {
                let cmp = match op {
                    "$gt" => Cmp::Gt,
                    "$gte" => Cmp::Gte,
                    "$lt" => Cmp::Lt,
                    _ => Cmp::Lte,
                };
                let n = match v {
                    Value::Number(n) => Num::of(n),
                    _ => None,
                };
                let Some(n) = n else {
                    return Err(error(path, "expected a number"));
                };
                self.count(path, 1)?;
                Kind::Cmp(cmp, n)
            }
            "$in" | "$nin" => {
                let values = match v {
                    Value::Array(items) if !items.is_empty() => items.clone(),
                    _ => return Err(error(path, "expected a non-empty array")),
                };
                self.count(path, values.iter().map(weight).sum())?;
                if op == "$in" {
                    Kind::In(values)
                } else {
                    Kind::Nin(values)
                }
            }
            "$exist" => {
                let Value::Bool(b) = v else {
                    return Err(error(path, "expected true or false"));
                };
                self.count(path, 1)?;
                Kind::Exist(*b)
            }
            "$regex" => {
                let Value::String(pattern) = v else {
                    return Err(error(path, "expected a string"));
                };
                self.count(path, 1)?;
                Kind::Regex(regex(pattern).map_err(|m| error(path, m))?)
            }
            "$startsWith" | "$endsWith" => {
                let Value::String(s) = v else {
                    return Err(error(path, "expected a string"));
                };
                self.count(path, 1)?;
                if op == "$startsWith" {
                    Kind::StartsWith(s.as_str().into())
                } else {
                    Kind::EndsWith(s.as_str().into())
                }
            }
            "$and" => Kind::All(cheapest_first(
                self.list(v, path, |c, e, ep| c.condition(e, ep, domain))?,
            )),
            "$or" => Kind::Any(self.list(v, path, |c, e, ep| c.condition(e, ep, domain))?),
            "$not" => {
                if v.is_array() {
                    return Err(error(
                        path,
                        "expected one condition (an object or a value), not an array",
                    ));
                }
                Kind::Not(Box::new(self.condition(v, path, domain)?))
            }
            other => return Err(unknown_operator(path, other)),
        };
        Ok(node(path.to_string(), kind))
    }

    /// The elements of a `$and`/`$or`: a non-empty array, each compiled by `each`.
    fn list(
        &mut self,
        v: &Value,
        path: &str,
        mut each: impl FnMut(&mut Self, &Value, &str) -> Result<Node>,
    ) -> Result<Vec<Node>> {
        let items = match v {
            Value::Array(items) if !items.is_empty() => items,
            _ => return Err(error(path, "expected a non-empty array of conditions")),
        };
        let mut nodes = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            nodes.push(each(self, item, &index(path, i))?);
        }
        Ok(nodes)
    }

    /// Counts `n` more clauses against the limit.
    fn count(&mut self, path: &str, n: usize) -> Result<()> {
        self.clauses = self.clauses.saturating_add(n);
        if self.clauses > MAX_CLAUSES {
            return Err(error(
                path,
                format!("more than {MAX_CLAUSES} clauses (the limit)"),
            ));
        }
        Ok(())
    }
}

fn node(clause: String, kind: Kind) -> Node {
    Node {
        clause: clause.into(),
        kind,
    }
}

/// One node for several that must all hold (the node itself when alone), cheapest first.
fn all_of(mut nodes: Vec<Node>, path: &str) -> Node {
    if nodes.len() == 1
        && let Some(only) = nodes.pop()
    {
        return only;
    }
    nodes.sort_by_key(cost);
    node(path.to_string(), Kind::All(nodes))
}

/// The conditions of a `$and`, to be tried cheapest first like an object's (the order
/// changes nothing but how soon a miss is found).
fn cheapest_first(mut nodes: Vec<Node>) -> Vec<Node> {
    nodes.sort_by_key(cost);
    nodes
}

/// A rough cost of evaluating `n`, to try cheap conditions first: all of a group must hold, so
/// the order changes nothing but how soon a miss is found (and which miss `explain` names).
/// Headers come before the body, shallow paths before deep ones, regular expressions last.
fn cost(n: &Node) -> usize {
    match &n.kind {
        Kind::All(nodes) | Kind::Any(nodes) | Kind::Fields(nodes) | Kind::Contains(nodes) => {
            nodes.iter().map(cost).sum::<usize>() + 1
        }
        Kind::Not(inner) | Kind::Shared(_, inner) => cost(inner),
        Kind::Part(Part::Body, inner) => 4 + cost(inner),
        Kind::Part(_, inner) => cost(inner),
        Kind::Path(segments, inner) => 2 * segments.len() + cost(inner),
        Kind::Named(_, inner) => 2 + cost(inner),
        Kind::In(values) | Kind::Nin(values) => values.iter().map(weight).sum(),
        Kind::Eq(v) | Kind::Neq(v) => weight(v),
        Kind::Regex(_) => 8,
        Kind::Cmp(..) | Kind::Exist(_) | Kind::StartsWith(_) | Kind::EndsWith(_) => 1,
    }
}

/// One node for an object's body fields. A single field needs no grouping: a path already
/// steps into each element of an array, which is what the group would do.
fn fields_of(mut fields: Vec<Node>, path: &str) -> Node {
    if fields.len() == 1
        && let Some(only) = fields.pop()
    {
        return only;
    }
    fields.sort_by_key(cost);
    node(path.to_string(), Kind::Fields(fields))
}

/// How many clauses comparing against `v` counts for: one per scalar in it, so a long `$in`
/// list or a large `$eq` operand costs what comparing against it costs.
fn weight(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.iter().map(weight).sum::<usize>().max(1),
        Value::Object(map) => map.values().map(weight).sum::<usize>().max(1),
        _ => 1,
    }
}

fn misplaced_operator(path: &str, op: &str) -> FilterError {
    if OPERATORS.split(", ").any(|o| o == op) {
        error(
            path,
            format!(
                "{op} applies to a field: at this level expected a field name or $and, $or, $not"
            ),
        )
    } else {
        unknown_operator(path, op)
    }
}

fn unknown_operator(path: &str, op: &str) -> FilterError {
    error(
        path,
        format!("unknown operator {op} (expected one of {OPERATORS})"),
    )
}

/// A `$regex` pattern compiled under the size limits, or why not in one line.
fn regex(pattern: &str) -> std::result::Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            // A syntax error spans several lines (the pattern, a caret, then the error);
            // its last line says what is wrong.
            let text = e.to_string();
            let line = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .map(str::to_string)
                .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "));
            format!("invalid regex: {line}")
        })
}

#[cfg(test)]
mod tests;
