//! `hookgate endpoints test-filter|test-transform ID`: an endpoint's filter or transform tried
//! on a stored event (`--event`) or a payload (`--body FILE`, `--header`, `--type`), through the
//! admin API's `test-filter` and `test-transform` routes; nothing is sent.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Map, Value, json};

use super::operator::{Client, Conn, OperatorError, block_on, opt, print};
use crate::api::trials::{FilterVerdict, TransformTrial};

/// What to try: a stored event or a payload.
#[derive(Debug, Clone, Default, Args)]
pub struct Sample {
    /// A stored event's id.
    #[arg(long = "event", conflicts_with = "body")]
    pub event: Option<String>,
    /// A file holding a payload's body (JSON; for a transform, any text).
    #[arg(long)]
    pub body: Option<PathBuf>,
    /// A payload header, `name: value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// The payload's event type.
    #[arg(long = "type")]
    pub event_type: Option<String>,
}

fn read(path: &Path) -> Result<String, OperatorError> {
    std::fs::read_to_string(path)
        .map_err(|e| OperatorError::Config(format!("cannot read {}: {e}", path.display())))
}

/// The body's fields for `sample`: `event_id`, or `body` (parsed as JSON when it is, else a
/// string when `text_ok`), `headers` and `event_type`.
fn sample_fields(sample: Sample, text_ok: bool) -> Result<Map<String, Value>, OperatorError> {
    let mut m = Map::new();
    if let Some(id) = sample.event {
        m.insert("event_id".into(), Value::String(id));
    }
    if let Some(path) = sample.body {
        let text = read(&path)?;
        let body = match serde_json::from_str::<Value>(&text) {
            Ok(v) => v,
            Err(_) if text_ok => Value::String(text),
            Err(e) => {
                return Err(OperatorError::Config(format!(
                    "{}: not JSON ({e})",
                    path.display()
                )));
            }
        };
        m.insert("body".into(), body);
    }
    if !sample.headers.is_empty() {
        let mut headers = BTreeMap::new();
        for h in &sample.headers {
            let (name, value) = h.split_once(':').ok_or_else(|| {
                OperatorError::Config(format!("--header {h:?}: expected `name: value`"))
            })?;
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        m.insert("headers".into(), json!(headers));
    }
    if let Some(t) = sample.event_type {
        m.insert("event_type".into(), Value::String(t));
    }
    Ok(m)
}

pub fn test_filter(
    conn: &Conn,
    client: &Client,
    id: &str,
    sample: Sample,
    filter: Option<PathBuf>,
    source: Option<String>,
    query: Option<String>,
) -> Result<(), OperatorError> {
    let mut body = sample_fields(sample, false)?;
    if let Some(path) = filter {
        let text = read(&path)?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| OperatorError::Config(format!("{}: not JSON ({e})", path.display())))?;
        body.insert("filter".into(), doc);
    }
    if let Some(s) = source {
        body.insert("source".into(), Value::String(s));
    }
    if let Some(q) = query {
        body.insert("query".into(), Value::String(q));
    }
    let answer = block_on(client.call::<FilterVerdict>(
        reqwest::Method::POST,
        &format!("/endpoints/{id}/test-filter"),
        Some(Value::Object(body).to_string()),
    ))?;
    print(conn, &answer, |out, v| {
        if v.matched {
            writeln!(out, "matched: {}", v.reason)
        } else {
            writeln!(
                out,
                "not matched ({}{}): {}",
                opt(&v.stage),
                v.clause
                    .as_deref()
                    .map(|c| format!(" at {c}"))
                    .unwrap_or_default(),
                v.reason
            )
        }
    })
}

pub fn test_transform(
    conn: &Conn,
    client: &Client,
    id: &str,
    sample: Sample,
    transform: Option<PathBuf>,
) -> Result<(), OperatorError> {
    let mut body = sample_fields(sample, true)?;
    if let Some(path) = transform {
        body.insert("transform".into(), Value::String(read(&path)?));
    }
    let answer = block_on(client.call::<TransformTrial>(
        reqwest::Method::POST,
        &format!("/endpoints/{id}/test-transform"),
        Some(Value::Object(body).to_string()),
    ))?;
    print(conn, &answer, |out, t| match t.result.as_str() {
        "send" => {
            for (name, value) in &t.headers {
                writeln!(out, "{name}: {value}")?;
            }
            if let Some(ty) = &t.event_type {
                writeln!(out, "(event type {ty})")?;
            }
            writeln!(out)?;
            writeln!(out, "{}", t.body.as_deref().unwrap_or_default())
        }
        "drop" => writeln!(
            out,
            "dropped: the program output null; nothing would be sent"
        ),
        _ => writeln!(out, "failed: {}", opt(&t.error)),
    })
}
