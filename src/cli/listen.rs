//! `hookgate listen`: a running gateway's events, forwarded to an app on this machine.
//!
//! It consumes a pull endpoint through the admin API: an existing one (`--endpoint`), or a
//! temporary one it makes for `--source`/`--events` and removes when it exits. **A temporary
//! endpoint expires on its own** (`expires_at`, moved later every [`RENEW`] while `listen`
//! runs), so one whose `listen` was killed is gone within [`TTL`]. Each message is POSTed to
//! `--forward-to` as the gateway would POST it (same body, same signed headers: the local app
//! verifies with the endpoint's secret, as in production); **a 2xx acks it, anything else
//! nacks it**, so a bug in the app under development dead-letters nothing silently: it is
//! retried by the endpoint's policy, and shows in the dead letters when it gives up. One line
//! per event: time, type, id, the local status and latency.

use std::time::{Duration, Instant};

use base64::Engine;
use clap::Args;
use serde_json::{Value, json};

use super::operator::{Client, Conn, OperatorError, block_on};
use crate::api::messages::{MessageView, Messages};

/// How long a temporary endpoint outlives its `listen` at most.
pub const TTL: Duration = Duration::from_secs(60);
/// How often a running `listen` moves its endpoint's expiry later.
const RENEW: Duration = Duration::from_secs(15);
/// How long one receive waits for a message.
const WAIT: &str = "10s";
/// How long the local app may take to answer one event.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct Listen {
    #[command(flatten)]
    pub conn: Conn,
    /// The local URL each event is POSTed to.
    #[arg(long)]
    pub forward_to: String,
    /// Consume this existing pull endpoint rather than a temporary one.
    #[arg(long, conflicts_with_all = ["source", "events", "secret"])]
    pub endpoint: Option<String>,
    /// The temporary endpoint's sources (repeat, or comma-separate); none: every source.
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<String>,
    /// Its event types, as globs (`invoice.*`; repeat, or comma-separate); none: every type.
    #[arg(long, value_delimiter = ',')]
    pub events: Vec<String>,
    /// Its signing secret (`whsec_…`): your app's, so it verifies as in production. Without
    /// it, one is made for this session and printed.
    #[arg(long, env = "HOOKGATE_LISTEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Print each payload.
    #[arg(long)]
    pub print: bool,
    /// How long the local app may take with one event before it comes back.
    #[arg(long, default_value = "30s")]
    pub visibility: String,
}

pub fn listen(args: Listen) -> Result<(), OperatorError> {
    let client = Client::new(args.conn.clone())?;
    block_on(run(client, args))
}

async fn run(client: Client, args: Listen) -> Result<(), OperatorError> {
    // A local app that hangs must not hold `listen` past its endpoint's expiry.
    let forward = reqwest::Client::builder()
        .no_proxy()
        .timeout(FORWARD_TIMEOUT)
        .build()
        .map_err(|e| OperatorError::Unexpected(e.to_string()))?;
    let (id, temporary) = match &args.endpoint {
        Some(id) => (id.clone(), false),
        None => (make_endpoint(&client, &args).await?, true),
    };
    println!(
        "hookgate listen: forwarding {id}'s events to {}{} (Ctrl-C to stop)",
        args.forward_to,
        if temporary {
            "; a temporary endpoint, removed on exit"
        } else {
            ""
        }
    );
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    tokio::pin!(stop);
    let mut renew_at = Instant::now() + RENEW;
    let outcome = loop {
        if temporary && Instant::now() >= renew_at {
            renew_at = Instant::now() + RENEW;
            let body = json!({ "expires_at": expires_at() }).to_string();
            if let Err(e) = client
                .call::<Value>(
                    reqwest::Method::PATCH,
                    &format!("/endpoints/{id}"),
                    Some(body),
                )
                .await
            {
                eprintln!("hookgate listen: cannot renew {id}: {e}");
            }
        }
        // One at a time: each is forwarded as soon as it is leased, so no lease runs out
        // while an earlier event is at the local app.
        let body = json!({ "max": 1, "wait": WAIT, "visibility": args.visibility }).to_string();
        let path = format!("/endpoints/{id}/messages:receive");
        let got = tokio::select! {
            () = &mut stop => break Ok(()),
            got = client.call::<Messages>(reqwest::Method::POST, &path, Some(body)) => got,
        };
        let messages = match got {
            Ok(answer) => answer.typed.messages,
            Err(
                e @ (OperatorError::Unauthorized(_)
                | OperatorError::Api {
                    status: 400..=409, ..
                }),
            ) => {
                break Err(e);
            }
            Err(e) => {
                eprintln!("hookgate listen: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for m in messages {
            settle(&client, &id, &forward, &args, m).await;
        }
    };
    if temporary {
        match client
            .call::<Value>(reqwest::Method::DELETE, &format!("/endpoints/{id}"), None)
            .await
        {
            Ok(_) => println!("hookgate listen: removed {id}"),
            Err(e) => eprintln!(
                "hookgate listen: cannot remove {id} ({e}); it expires within {}s",
                TTL.as_secs()
            ),
        }
    }
    outcome
}

/// `expires_at` for a temporary endpoint renewed now.
fn expires_at() -> String {
    crate::api::params::rfc3339(
        crate::clock::system_now_ms().saturating_add(TTL.as_millis() as u64),
    )
}

/// Makes the temporary pull endpoint; its id.
async fn make_endpoint(client: &Client, args: &Listen) -> Result<String, OperatorError> {
    let id = format!("listen-{:08x}", rand::random::<u32>());
    let secret = match &args.secret {
        Some(s) => s.clone(),
        None => {
            let s = crate::verify::standard_webhooks::generate_secret();
            println!("hookgate listen: signing with a secret made for this session: {s}");
            s
        }
    };
    let mut body = json!({
        "id": id,
        "kind": "pull",
        "secret": secret,
        "expires_at": expires_at(),
    });
    if !args.source.is_empty() {
        body["sources"] = json!(args.source);
    }
    if !args.events.is_empty() {
        body["event_types"] = json!(args.events);
    }
    client
        .call::<Value>(reqwest::Method::POST, "/endpoints", Some(body.to_string()))
        .await?;
    Ok(id)
}

/// Forwards one message, prints its line, and acks it on a 2xx, else nacks it.
async fn settle(client: &Client, id: &str, http: &reqwest::Client, args: &Listen, m: MessageView) {
    let body = match (&m.payload, &m.payload_base64) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    let mut req = http.post(&args.forward_to).body(body);
    for (name, value) in &m.headers {
        req = req.header(name, value);
    }
    let started = Instant::now();
    let (status, verdict) = match req.send().await {
        Ok(resp) if resp.status().is_success() => (resp.status().as_u16().to_string(), None),
        Ok(resp) => {
            let code = resp.status().as_u16();
            (
                code.to_string(),
                Some(format!("the local app answered {code}")),
            )
        }
        Err(e) => (
            "---".to_string(),
            Some(format!("the local app is unreachable: {e}")),
        ),
    };
    let ms = started.elapsed().as_millis();
    println!(
        "{}  {:<32}  {}  attempt {}  -> {status}  {ms} ms",
        crate::api::params::rfc3339(crate::clock::system_now_ms()),
        m.event_type.as_deref().unwrap_or("-"),
        m.event_id,
        m.attempt,
    );
    if args.print
        && let Some(text) = &m.payload
    {
        println!("{text}");
    }
    let (verb, body) = match verdict {
        None => ("ack", json!({ "receipts": [m.receipt] })),
        Some(reason) => ("nack", json!({ "receipts": [m.receipt], "reason": reason })),
    };
    let path = format!("/endpoints/{id}/messages:{verb}");
    if let Err(e) = client
        .call::<Value>(reqwest::Method::POST, &path, Some(body.to_string()))
        .await
    {
        eprintln!("hookgate listen: cannot {verb} {}: {e}", m.event_id);
    }
}
