//! Operator commands: `events`, `deliveries`, `dlq`, `endpoints`. Each is one call to a running
//! gateway's admin API, printed as a table (or the API's JSON with `--json`).

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::Value;
use tabwriter::TabWriter;

/// Where the admin API is and how to talk to it; on every operator command.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// The admin API's base URL.
    #[arg(
        long,
        global = true,
        env = "HOOKGATE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,
    /// The admin token.
    #[arg(
        long,
        global = true,
        env = "HOOKGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Filters shared by lists and replay.
#[derive(Debug, Clone, Default, Args)]
pub struct Filters {
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// RFC 3339 time or a duration before now (`2h`).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Events {
    /// List events, newest first.
    List {
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        endpoint: Option<String>,
        /// pending, delivering, retrying, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One event with each delivery's status.
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum Deliveries {
    /// One delivery with every attempt.
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// List dead letters, most recent first.
    List {
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Send dead letters again (all that match; `--id` to pick).
    Replay {
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long = "id")]
        ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Endpoints {
    List,
    Pause { id: String },
    Resume { id: String },
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the admin API refused the token: {0} (set --token or HOOKGATE_ADMIN_TOKEN)")]
    Unauthorized(String),
    #[error("{status}: {message} ({code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the admin API answered something that is not JSON: {0}")]
    NotJson(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct Client {
    conn: Conn,
    http: reqwest::Client,
}

impl Client {
    fn new(conn: Conn) -> Result<Client, OperatorError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().no_proxy().build().map_err(|e| {
            OperatorError::Unreachable {
                url: conn.url.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(Client { conn, http })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, OperatorError> {
        let url = format!("{}/api/v1{path}", self.conn.url.trim_end_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.conn.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| OperatorError::Unreachable {
            url: self.conn.url.clone(),
            reason: innermost(&e),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| OperatorError::Unreachable {
            url: self.conn.url.clone(),
            reason: innermost(&e),
        })?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|_| OperatorError::NotJson(text.chars().take(200).collect()))?;
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let message = json["error"]["message"].as_str().unwrap_or("").to_string();
        if status == 401 {
            return Err(OperatorError::Unauthorized(message));
        }
        Err(OperatorError::Api {
            status,
            code: json["error"]["code"].as_str().unwrap_or("").to_string(),
            message,
        })
    }
}

fn innermost(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

fn filter_pairs(f: &Filters) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("source", f.source.clone()),
        ("type", f.event_type.clone()),
        ("since", f.since.clone()),
        ("until", f.until.clone()),
    ]
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows under a header, aligned.
fn table(
    out: &mut impl Write,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> std::io::Result<()> {
    let mut tw = TabWriter::new(Vec::new()).padding(2);
    writeln!(tw, "{}", header.join("\t"))?;
    for row in rows {
        // A tab or newline inside a cell would break the columns.
        let cells: Vec<String> = row.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
        writeln!(tw, "{}", cells.join("\t"))?;
    }
    tw.flush()?;
    out.write_all(
        &tw.into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?,
    )
}

fn more(out: &mut impl Write, body: &Value) -> std::io::Result<()> {
    if let Some(c) = body["next_cursor"].as_str() {
        writeln!(out, "(more: --cursor {c})")?;
    }
    Ok(())
}

fn block_on<T>(f: impl Future<Output = Result<T, OperatorError>>) -> Result<T, OperatorError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn print(
    conn: &Conn,
    body: &Value,
    render: impl FnOnce(&mut std::io::StdoutLock<'_>) -> std::io::Result<()>,
) -> Result<(), OperatorError> {
    let mut out = std::io::stdout().lock();
    if conn.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(body).unwrap_or_default()
        )?;
    } else {
        render(&mut out)?;
    }
    Ok(())
}

/// The array under `key` of an API answer, or none.
fn items(body: &Value, key: &str) -> Vec<Value> {
    body[key].as_array().cloned().unwrap_or_default()
}

fn deliveries_cell(event: &Value) -> String {
    let ds = items(event, "deliveries");
    if ds.is_empty() {
        return "-".into();
    }
    ds.iter()
        .map(|d| format!("{}:{}", s(&d["endpoint_id"]), s(&d["status"])))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn events(conn: Conn, cmd: Events) -> Result<(), OperatorError> {
    let client = Client::new(conn.clone())?;
    match cmd {
        Events::List {
            filters,
            endpoint,
            status,
            limit,
            cursor,
        } => {
            let mut pairs = filter_pairs(&filters);
            pairs.extend([
                ("endpoint", endpoint),
                ("status", status),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ]);
            let body = block_on(client.call(
                reqwest::Method::GET,
                &format!("/events{}", query(&pairs)),
                None,
            ))?;
            print(&conn, &body, |out| {
                let rows = items(&body, "data").into_iter().map(|e| {
                    vec![
                        s(&e["event_id"]),
                        s(&e["source"]),
                        s(&e["type"]),
                        s(&e["received_at"]),
                        deliveries_cell(&e),
                    ]
                });
                table(
                    out,
                    &["EVENT", "SOURCE", "TYPE", "RECEIVED", "DELIVERIES"],
                    rows,
                )?;
                more(out, &body)
            })
        }
        Events::Show { id } => {
            let body = block_on(client.call(reqwest::Method::GET, &format!("/events/{id}"), None))?;
            print(&conn, &body, |out| {
                writeln!(
                    out,
                    "event     {}\nsource    {}\ntype      {}\nreceived  {}\n",
                    s(&body["event_id"]),
                    s(&body["source"]),
                    s(&body["type"]),
                    s(&body["received_at"])
                )?;
                let rows = items(&body, "deliveries").into_iter().map(|d| {
                    vec![
                        s(&d["delivery_id"]),
                        s(&d["endpoint_id"]),
                        s(&d["status"]),
                        s(&d["attempts"]),
                        s(&d["next_attempt_at"]),
                        s(&d["last_status_code"]),
                        s(&d["last_error"]),
                    ]
                });
                table(
                    out,
                    &[
                        "DELIVERY",
                        "ENDPOINT",
                        "STATUS",
                        "ATTEMPTS",
                        "NEXT ATTEMPT",
                        "LAST CODE",
                        "LAST ERROR",
                    ],
                    rows,
                )
            })
        }
    }
}

pub fn deliveries(conn: Conn, cmd: Deliveries) -> Result<(), OperatorError> {
    let client = Client::new(conn.clone())?;
    let Deliveries::Show { id } = cmd;
    let body = block_on(client.call(reqwest::Method::GET, &format!("/deliveries/{id}"), None))?;
    print(&conn, &body, |out| {
        writeln!(
            out,
            "delivery  {}\nevent     {}\nendpoint  {}\nstatus    {}\nattempts  {}\nnext      {}\n",
            s(&body["delivery_id"]),
            s(&body["event_id"]),
            s(&body["endpoint_id"]),
            s(&body["status"]),
            s(&body["attempts"]),
            s(&body["next_attempt_at"])
        )?;
        let rows = items(&body, "attempt_log").into_iter().map(|a| {
            vec![
                s(&a["attempt"]),
                s(&a["at"]),
                s(&a["status_code"]),
                format!("{} ms", s(&a["latency_ms"])),
                s(&a["error"]),
            ]
        });
        table(out, &["#", "AT", "CODE", "LATENCY", "ERROR"], rows)
    })
}

pub fn dlq(conn: Conn, cmd: Dlq) -> Result<(), OperatorError> {
    let client = Client::new(conn.clone())?;
    match cmd {
        Dlq::List {
            filters,
            endpoint,
            limit,
            cursor,
        } => {
            let mut pairs = filter_pairs(&filters);
            pairs.extend([
                ("endpoint", endpoint),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ]);
            let body = block_on(client.call(
                reqwest::Method::GET,
                &format!("/dead-letters{}", query(&pairs)),
                None,
            ))?;
            print(&conn, &body, |out| {
                let rows = items(&body, "data").into_iter().map(|d| {
                    vec![
                        s(&d["delivery_id"]),
                        s(&d["event_id"]),
                        s(&d["endpoint_id"]),
                        s(&d["source"]),
                        s(&d["type"]),
                        s(&d["attempts"]),
                        s(&d["dead_at"]),
                        s(&d["last_error"]),
                    ]
                });
                table(
                    out,
                    &[
                        "DELIVERY",
                        "EVENT",
                        "ENDPOINT",
                        "SOURCE",
                        "TYPE",
                        "ATTEMPTS",
                        "DEAD AT",
                        "LAST ERROR",
                    ],
                    rows,
                )?;
                more(out, &body)
            })
        }
        Dlq::Replay {
            filters,
            endpoint,
            ids,
        } => {
            let mut body = serde_json::Map::new();
            for (k, v) in filter_pairs(&filters)
                .into_iter()
                .chain([("endpoint", endpoint)])
            {
                if let Some(v) = v {
                    body.insert(k.into(), Value::String(v));
                }
            }
            if !ids.is_empty() {
                body.insert("ids".into(), Value::from(ids));
            }
            let answer = block_on(client.call(
                reqwest::Method::POST,
                "/dead-letters/replay",
                Some(Value::Object(body)),
            ))?;
            print(&conn, &answer, |out| {
                writeln!(out, "replayed {}", s(&answer["replayed"]))
            })
        }
    }
}

pub fn endpoints(conn: Conn, cmd: Endpoints) -> Result<(), OperatorError> {
    let client = Client::new(conn.clone())?;
    match cmd {
        Endpoints::List => {
            let body = block_on(client.call(reqwest::Method::GET, "/endpoints", None))?;
            print(&conn, &body, |out| {
                let rows = items(&body, "data").into_iter().map(|e| {
                    let state = if e["paused"].as_bool() == Some(true) {
                        "paused"
                    } else {
                        "active"
                    };
                    vec![
                        s(&e["id"]),
                        s(&e["url"]),
                        state.to_string(),
                        s(&e["max_in_flight"]),
                        if e["signs"].as_bool() == Some(true) {
                            "yes".into()
                        } else {
                            "no".into()
                        },
                    ]
                });
                table(
                    out,
                    &["ENDPOINT", "URL", "STATE", "MAX IN FLIGHT", "SIGNS"],
                    rows,
                )
            })
        }
        Endpoints::Pause { id } => set_paused(&conn, &client, &id, true),
        Endpoints::Resume { id } => set_paused(&conn, &client, &id, false),
    }
}

fn set_paused(conn: &Conn, client: &Client, id: &str, pause: bool) -> Result<(), OperatorError> {
    let action = if pause { "pause" } else { "resume" };
    let body = block_on(client.call(
        reqwest::Method::POST,
        &format!("/endpoints/{id}/{action}"),
        None,
    ))?;
    print(conn, &body, |out| {
        writeln!(
            out,
            "endpoint {id} {}",
            if pause { "paused" } else { "resumed" }
        )
    })
}
