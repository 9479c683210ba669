//! Operator commands: `events`, `deliveries`, `dlq`, `endpoints`. Each is one call to a running
//! gateway's admin API, printed as a table (or the API's JSON with `--json`).
//!
//! Answers are decoded into the API's own response types (`api::views`), the very types its
//! handlers serialize, so the CLI cannot drift from the API: a field renamed there fails here
//! to compile or to decode, never prints a blank cell.

use std::fmt::Display;
use std::io::Write;

use clap::{Args, Subcommand};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tabwriter::TabWriter;

use super::conn::{self, Target};
use crate::api::dead_letters::ReplayBody;
use crate::api::views::{
    DeadLetterView, DeliveryDetail, EnabledView, EndpointView, ErrorBody, Page, PauseState,
    Replayed,
};

/// Where the admin API is and how to talk to it; on every operator command.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// The admin API's base URL [default: the config's admin.listen, else
    /// http://127.0.0.1:8081].
    #[arg(long, global = true, env = "HOOKGATE_URL")]
    pub url: Option<String>,
    /// The admin token [default: the config's, else the one `serve` generated into its
    /// data_dir].
    #[arg(
        long,
        global = true,
        env = "HOOKGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// The gateway's config file: its admin.listen, token and data_dir (where a generated
    /// token is) are used when --url and --token are not given.
    #[arg(long, short, global = true)]
    pub config: Option<std::path::PathBuf>,
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
    /// Only events whose payload contains this text (case-sensitive, literal).
    #[arg(long)]
    pub contains: Option<String>,
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
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Closes an endpoint's breaker (open or disabled): what it held goes out in order.
    Enable {
        id: String,
        /// Dead-letter what it held instead ("discarded on enable").
        #[arg(long)]
        discard_held: bool,
    },
    /// Whether an event (or a payload) passes the endpoint's filter, and if not, which
    /// clause turned it away.
    TestFilter {
        id: String,
        #[command(flatten)]
        sample: super::trials::Sample,
        /// A file holding a filter (JSON) to try instead of the endpoint's.
        #[arg(long)]
        filter: Option<std::path::PathBuf>,
        /// With --body: the payload's source and type, to check the subscription too.
        #[arg(long)]
        source: Option<String>,
        /// With --body: the payload's query string (`a=1&b=2`).
        #[arg(long)]
        query: Option<String>,
    },
    /// What the endpoint's transform makes of an event (or a payload): the request it would
    /// send, a drop, or the error.
    TestTransform {
        id: String,
        #[command(flatten)]
        sample: super::trials::Sample,
        /// A file holding a jq program to try instead of the endpoint's.
        #[arg(long)]
        transform: Option<std::path::PathBuf>,
    },
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "the admin API refused the token: {0} (set --token or HOOKGATE_ADMIN_TOKEN, or give --config to use the config's token or the one `serve` generated into its data_dir)"
    )]
    Unauthorized(String),
    #[error("{0}")]
    Config(String),
    #[error("{status}: {message} ({code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the admin API answered something that is not JSON: {0}")]
    NotJson(String),
    #[error("the admin API answered a shape this build does not know: {0}")]
    Unexpected(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub(super) struct Client {
    target: Target,
    http: reqwest::Client,
}

impl Client {
    pub(super) fn new(conn: Conn) -> Result<Client, OperatorError> {
        let target = conn::resolve(&conn)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().no_proxy().build().map_err(|e| {
            OperatorError::Unreachable {
                url: target.url.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(Client { target, http })
    }

    /// Calls the API: its answer as it came (what `--json` prints) and decoded as `T`.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Answer<T>, OperatorError> {
        let url = format!("{}/api/v1{path}", self.target.url.trim_end_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.target.token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| OperatorError::Unreachable {
            url: self.target.url.clone(),
            reason: innermost(&e),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| OperatorError::Unreachable {
            url: self.target.url.clone(),
            reason: innermost(&e),
        })?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|_| OperatorError::NotJson(text.chars().take(200).collect()))?;
        if (200..300).contains(&status) {
            let typed = T::deserialize(&json)
                .map_err(|e| OperatorError::Unexpected(format!("{path}: {e}")))?;
            return Ok(Answer { json, typed });
        }
        // An error in another shape (a proxy's, say) still has its status to show.
        let (code, message) = match ErrorBody::deserialize(&json) {
            Ok(ErrorBody { error }) => (error.code, error.message),
            Err(_) => (String::new(), String::new()),
        };
        if status == 401 {
            return Err(OperatorError::Unauthorized(message));
        }
        Err(OperatorError::Api {
            status,
            code,
            message,
        })
    }
}

/// An answer of the API: the JSON as it came, and the same decoded.
pub(super) struct Answer<T> {
    json: Value,
    pub(super) typed: T,
}

fn innermost(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

pub(super) fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

pub(super) fn filter_pairs(f: &Filters) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("source", f.source.clone()),
        ("type", f.event_type.clone()),
        ("since", f.since.clone()),
        ("until", f.until.clone()),
        ("contains", f.contains.clone()),
    ]
}

/// A cell for a value the API may leave null: `-` then.
pub(super) fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

/// Prints rows under a header, aligned.
pub(super) fn table(
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

pub(super) fn more<T: utoipa::ToSchema>(
    out: &mut impl Write,
    page: &Page<T>,
) -> std::io::Result<()> {
    if let Some(c) = &page.next_cursor {
        writeln!(out, "(more: --cursor {c})")?;
    }
    Ok(())
}

pub(super) fn block_on<T>(
    f: impl Future<Output = Result<T, OperatorError>>,
) -> Result<T, OperatorError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Prints an answer: its JSON as the API sent it with `--json`, else what `render` makes of
/// the decoded body.
pub(super) fn print<T>(
    conn: &Conn,
    answer: &Answer<T>,
    render: impl FnOnce(&mut std::io::StdoutLock<'_>, &T) -> std::io::Result<()>,
) -> Result<(), OperatorError> {
    let mut out = std::io::stdout().lock();
    if conn.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&answer.json).unwrap_or_default()
        )?;
    } else {
        render(&mut out, &answer.typed)?;
    }
    Ok(())
}

pub fn deliveries(conn: Conn, cmd: Deliveries) -> Result<(), OperatorError> {
    let client = Client::new(conn.clone())?;
    let Deliveries::Show { id } = cmd;
    let answer = block_on(client.call::<DeliveryDetail>(
        reqwest::Method::GET,
        &format!("/deliveries/{id}"),
        None,
    ))?;
    print(&conn, &answer, |out, detail| {
        let d = &detail.delivery;
        writeln!(
            out,
            "delivery  {}\nevent     {}\nendpoint  {}\nstatus    {}\nattempts  {}\nnext      {}\n",
            d.delivery_id,
            d.event_id,
            d.endpoint_id,
            d.status,
            d.attempts,
            opt(&d.next_attempt_at)
        )?;
        let rows = detail.attempt_log.iter().map(|a| {
            vec![
                a.attempt.to_string(),
                a.at.clone(),
                opt(&a.status_code),
                format!("{} ms", a.latency_ms),
                opt(&a.error),
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
            let answer = block_on(client.call::<Page<DeadLetterView>>(
                reqwest::Method::GET,
                &format!("/dead-letters{}", query(&pairs)),
                None,
            ))?;
            print(&conn, &answer, |out, page| {
                let rows = page.data.iter().map(|d| {
                    vec![
                        d.delivery_id.clone(),
                        d.event_id.clone(),
                        d.endpoint_id.clone(),
                        d.source.clone(),
                        opt(&d.event_type),
                        d.attempts.to_string(),
                        d.dead_at.clone(),
                        opt(&d.last_error),
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
                more(out, page)
            })
        }
        Dlq::Replay {
            filters,
            endpoint,
            ids,
        } => {
            let body = ReplayBody {
                endpoint,
                source: filters.source,
                event_type: filters.event_type,
                since: filters.since,
                until: filters.until,
                contains: filters.contains,
                ids: (!ids.is_empty()).then_some(ids),
            };
            let body = serde_json::to_string(&body)
                .map_err(|e| OperatorError::Unexpected(e.to_string()))?;
            let answer = block_on(client.call::<Replayed>(
                reqwest::Method::POST,
                "/dead-letters/replay",
                Some(body),
            ))?;
            print(&conn, &answer, |out, r| {
                writeln!(out, "replayed {}", r.replayed)
            })
        }
    }
}

pub fn endpoints(conn: Conn, cmd: Endpoints) -> Result<(), OperatorError> {
    let client = Client::new(conn.clone())?;
    match cmd {
        Endpoints::List => {
            let answer = block_on(client.call::<Page<EndpointView>>(
                reqwest::Method::GET,
                "/endpoints",
                None,
            ))?;
            print(&conn, &answer, |out, page| {
                let rows = page.data.iter().map(|e| {
                    vec![
                        e.id.clone(),
                        e.url.clone().unwrap_or_else(|| "(pull)".into()),
                        if e.paused { "paused" } else { "active" }.to_string(),
                        e.health.state.clone(),
                        match &e.health.held_since {
                            Some(since) => format!("{} since {since}", e.health.held),
                            None => "-".to_string(),
                        },
                        e.max_in_flight.to_string(),
                        if e.signs { "yes" } else { "no" }.to_string(),
                    ]
                });
                table(
                    out,
                    &[
                        "ENDPOINT",
                        "URL",
                        "STATE",
                        "BREAKER",
                        "HELD",
                        "MAX IN FLIGHT",
                        "SIGNS",
                    ],
                    rows,
                )
            })
        }
        Endpoints::TestFilter {
            id,
            sample,
            filter,
            source,
            query,
        } => super::trials::test_filter(&conn, &client, &id, sample, filter, source, query),
        Endpoints::TestTransform {
            id,
            sample,
            transform,
        } => super::trials::test_transform(&conn, &client, &id, sample, transform),
        Endpoints::Pause { id } => set_paused(&conn, &client, &id, true),
        Endpoints::Resume { id } => set_paused(&conn, &client, &id, false),
        Endpoints::Enable { id, discard_held } => {
            let body = serde_json::json!({ "discard_held": discard_held });
            let answer = block_on(client.call::<EnabledView>(
                reqwest::Method::POST,
                &format!("/endpoints/{id}/enable"),
                Some(body.to_string()),
            ))?;
            print(&conn, &answer, |out, e| {
                writeln!(
                    out,
                    "endpoint {} enabled: {} held, {} discarded",
                    e.id, e.held, e.discarded
                )
            })
        }
    }
}

fn set_paused(conn: &Conn, client: &Client, id: &str, pause: bool) -> Result<(), OperatorError> {
    let action = if pause { "pause" } else { "resume" };
    let answer = block_on(client.call::<PauseState>(
        reqwest::Method::POST,
        &format!("/endpoints/{id}/{action}"),
        None,
    ))?;
    print(conn, &answer, |out, state| {
        writeln!(
            out,
            "endpoint {} {}",
            state.id,
            if state.paused { "paused" } else { "resumed" }
        )
    })
}
