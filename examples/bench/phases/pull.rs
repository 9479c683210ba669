//! Phase `pull` (issue 19): pull endpoints beside push, in the same run.
//!
//! - **Push drain** (the baseline): `--backlog` events behind a paused push endpoint, then
//!   resumed, exactly as the `drain` phase measures it (`delivery::drain_now`).
//! - **Pull drain**: the same number of events (wrk, each once) to a pull endpoint with no
//!   consumer, on a fresh gateway each time; then 1 or 8 consumers of this harness each loop
//!   `messages:receive` (`max` 10 or 100, `wait` 1 s) and ack every receipt it got in one
//!   `messages:ack`, until the backlog is acked: messages per second from the consumers' start
//!   to the last ack. Every message must be acked exactly once: distinct event ids, counted
//!   against what hookgate accepted; a stale receipt, a message given twice (attempt > 1) or
//!   an error answer is a problem.
//! - **Latency**, in steady state: `--pull-rate` events per second (the harness's fixed-rate
//!   generator, as in the `latency` phase) while consumers long-poll (`wait` 5 s, `max` 10; 1
//!   consumer, then 8). The columns give, for each message, the consumer's clock when the
//!   receive's answer was read minus the message's `received_at`: the event's arrival at the
//!   ingress, stamped before its commit (fsync) and given only after it, at ms precision
//!   (truncated, so the figure reads up to 1 ms high), both on this machine's clock. The name
//!   adds p50 and p99 from each body's *scheduled* send time to the receive, the measure of
//!   the push row beside it (the `latency` phase's, at the same rate).
//!
//! Each drain row's name adds where the time went: messages per receive, the mean time of a
//! receive that gave messages and of an ack, as the consumer saw them, and the gateway's store
//! commits over the drain (from `hookgate_commit_seconds` and `hookgate_commit_batch`): how
//! many, of how many commands, how long each; the push baseline's too. (At issue 19's
//! commit, an ack settles its receipts one after the other, each awaiting a commit of its
//! own: one commit per message acked, against ~25 deliveries per commit for push.)
//!
//! The consumers are plain reqwest clients (HTTP/1.1 keep-alive, one client and so one
//! connection per consumer) in this process, on the load side; bodies are parsed with serde
//! into the few fields used (the payload is skipped, or searched for its stamp). How we know
//! they are not what bounds the figure: a drain row's CPU column gives the gateway's CPU and
//! this process's (the consumers are all it runs meanwhile) over the drain, and the
//! harness's reads 1-8 % of its core; nearly all of each consumer's loop is spent waiting
//! for the gateway's answer to an ack (the ms in the name); and 8 consumers drain 4-10 ×
//! faster than 1, where the gateway's core has room.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::commits::Commits;
use crate::phases::delivery::{drain_endpoint, drain_now, fill_paused};
use crate::phases::latency::{self, fixed_rate, pct};
use crate::procs::Gateway;
use crate::wrk::cpu_seconds;
use crate::{Bench, Row, TOKEN, counted};

/// The pull endpoint's id.
const ENDPOINT: &str = "pull";
/// Consumers × batch (`max`) of the drains.
const DRAINS: [(usize, u64); 4] = [(1, 10), (1, 100), (8, 10), (8, 100)];
/// Consumers × batch of the latency runs.
const STEADY: [(usize, u64); 2] = [(1, 10), (8, 10)];

pub async fn phase(b: &Bench) -> Vec<Row> {
    let mut rows = Vec::new();
    {
        let dir = b.data_dir();
        let gw = b
            .gateway(&b.toml(dir.path(), "", "", &drain_endpoint(b)))
            .await;
        let (accepted, problems) = fill_paused(b, &gw).await;
        let before = Commits::read(&gw).await;
        let mut row = drain_now(b, &gw, accepted, problems, "push (baseline): ").await;
        row.name = format!(
            "{} ({})",
            row.name,
            Commits::since(&gw, &before).await.brief()
        );
        rows.push(row);
        gw.stop().await;
    }
    for (consumers, batch) in DRAINS {
        let dir = b.data_dir();
        let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoint())).await;
        let (accepted, problems) = b.fill(&gw, b.args.backlog).await;
        rows.push(drain(&gw, accepted, problems, consumers, batch).await);
        gw.stop().await;
    }
    {
        let dir = b.data_dir();
        let gw = b
            .gateway(&b.toml(dir.path(), "", "", &latency::endpoint(b)))
            .await;
        rows.extend(latency::measure(b, &gw, &[b.args.pull_rate], "push: ").await);
        gw.stop().await;
    }
    let dir = b.data_dir();
    let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoint())).await;
    for (consumers, batch) in STEADY {
        rows.push(steady(b, &gw, consumers, batch).await);
    }
    gw.stop().await;
    rows
}

fn endpoint() -> String {
    format!("[[endpoints]]\nid = \"{ENDPOINT}\"\nkind = \"pull\"\n")
}

/// How long the consumers may take to ack `n` messages before the phase is called failed.
fn patience(n: u64) -> Duration {
    Duration::from_secs(120 + n / 1000)
}

/// `consumers` take and ack the `accepted` messages waiting at `gw`'s pull endpoint.
async fn drain(
    gw: &Gateway,
    accepted: u64,
    mut problems: Vec<String>,
    consumers: usize,
    batch: u64,
) -> Row {
    let commits = Commits::read(gw).await;
    let cpu0 = (
        gw.pid().and_then(cpu_seconds),
        cpu_seconds(std::process::id()),
    );
    let start = Instant::now();
    let shared = Arc::new(Shared::new(start + patience(accepted)));
    shared.target.store(accepted, Ordering::Relaxed);
    let tally = consume(&gw.admin, &shared, consumers, batch, "1s", None).await;
    let end = tally.last_ack.unwrap_or(start);
    let secs = end.duration_since(start).as_secs_f64().max(1e-9);
    // Over the drain: the consumers' last receives, waiting with nothing left after it, use
    // next to nothing.
    let used = |pid: Option<u32>, before: Option<f64>| Some((cpu_seconds(pid?)? - before?) / secs);
    let cpu = (
        used(gw.pid(), cpu0.0),
        used(Some(std::process::id()), cpu0.1),
    );
    problems.extend(tally.check(accepted));
    let mut row = Row::figure(
        format!(
            "pull: drain of a {accepted} backlog, {consumers} consumer{} × max {batch} \
             (acked messages/s; {:.1} per receive; a receive that gives {:.1} ms, an ack \
             {:.1} ms; {})",
            if consumers == 1 { "" } else { "s" },
            tally.received as f64 / tally.receives.max(1) as f64,
            per_call(tally.in_receive, tally.acks),
            per_call(tally.in_ack, tally.acks),
            Commits::since(gw, &commits).await.brief(),
        ),
        tally.ids.len() as f64 / secs,
        true,
        problems,
    );
    row.cpu = cpu;
    row.window = Some((start, end));
    row
}

/// `consumers` long-poll `gw`'s pull endpoint while `--pull-rate` events a second arrive for
/// `--seconds`: latencies from `received_at` (and from the scheduled send) to the receive.
async fn steady(b: &Bench, gw: &Gateway, consumers: usize, batch: u64) -> Row {
    let rate = b.args.pull_rate;
    let n = (rate * b.args.seconds as f64).round() as u64;
    let before = gw.outcomes().await;
    let start = Instant::now();
    let shared = Arc::new(Shared::new(
        start + patience(n) + Duration::from_secs(b.args.seconds),
    ));
    let clock = b.sink.latencies.start;
    let consuming = {
        let (shared, admin) = (Arc::clone(&shared), gw.admin.clone());
        tokio::spawn(
            async move { consume(&admin, &shared, consumers, batch, "5s", Some(clock)).await },
        )
    };
    // Let the consumers' first receives wait before the first event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ok = fixed_rate(&gw.ingress, rate, n, &b.sink.latencies).await;
    let sent = Instant::now();
    shared.target.store(ok, Ordering::Relaxed);
    let mut problems = Vec::new();
    if ok < n {
        problems.push(format!("{} of {n} not answered 2xx", n - ok));
    }
    let tally = match consuming.await {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("the consumers failed: {e}"));
            Tally::default()
        }
    };
    problems.extend(tally.check(ok));
    problems.extend(counted(gw, &before).await.1);
    // Consumers that keep up ack the last message a few ms after the last send.
    let behind = tally.last_ack.map_or(0.0, |at| {
        at.saturating_duration_since(sent).as_secs_f64() * 1000.0
    });
    let (mut commit, mut from_send) = (tally.commit_us, tally.sent_us);
    commit.sort_unstable();
    from_send.sort_unstable();
    let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    Row {
        name: format!(
            "pull: {consumers} consumer{} × max {batch}, long-polling, at {rate:.0} events/s: \
             received_at → received by the consumer ({} messages; sent → received p50 {} ms, \
             p99 {} ms; an ack {:.1} ms; the last acked {behind:.0} ms after the last send)",
            if consumers == 1 { "" } else { "s" },
            commit.len(),
            ms(pct(&from_send, 0.5)),
            ms(pct(&from_send, 0.99)),
            per_call(tally.in_ack, tally.acks),
        ),
        rate,
        ratio: false,
        p50: pct(&commit, 0.5),
        p99: pct(&commit, 0.99),
        p999: pct(&commit, 0.999),
        cpu: (None, None),
        db_cpu: None,
        window: Some((start, Instant::now())),
        spent: None,
        problems,
    }
}

/// What the consumers share: acks so far, how many to stop at, and when to give up.
struct Shared {
    acked: AtomicU64,
    target: AtomicU64,
    deadline: Instant,
}

impl Shared {
    fn new(deadline: Instant) -> Shared {
        Shared {
            acked: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            deadline,
        }
    }

    fn done(&self) -> bool {
        self.acked.load(Ordering::Relaxed) >= self.target.load(Ordering::Relaxed)
            || Instant::now() >= self.deadline
    }
}

/// What consumers saw, summed.
#[derive(Default)]
struct Tally {
    /// Event ids of the messages acked (applied).
    ids: Vec<String>,
    received: u64,
    receives: u64,
    /// Messages given with an attempt above 1: given before.
    again: u64,
    stale: u64,
    errors: u64,
    first_error: Option<String>,
    /// µs from `received_at`, and from the body's scheduled send, to the receive.
    commit_us: Vec<u64>,
    sent_us: Vec<u64>,
    last_ack: Option<Instant>,
    /// Time spent in receives that gave messages, and in acks, and how many acks.
    in_receive: Duration,
    in_ack: Duration,
    acks: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ids.extend(other.ids);
        self.received += other.received;
        self.receives += other.receives;
        self.again += other.again;
        self.stale += other.stale;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.commit_us.extend(other.commit_us);
        self.sent_us.extend(other.sent_us);
        self.last_ack = self.last_ack.max(other.last_ack);
        self.in_receive += other.in_receive;
        self.in_ack += other.in_ack;
        self.acks += other.acks;
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    /// What went wrong, given that `want` messages should each have been acked once.
    fn check(&self, want: u64) -> Vec<String> {
        let mut problems = Vec::new();
        let distinct = self.ids.iter().collect::<HashSet<_>>().len() as u64;
        let acked = self.ids.len() as u64;
        if distinct < want {
            problems.push(format!("{distinct} of {want} messages acked"));
        }
        if acked > distinct {
            problems.push(format!("{} messages acked twice", acked - distinct));
        }
        if distinct > want {
            problems.push(format!("{distinct} messages acked, {want} expected"));
        }
        if self.again > 0 {
            problems.push(format!("{} messages given again (attempt > 1)", self.again));
        }
        if self.stale > 0 {
            problems.push(format!("{} stale receipts", self.stale));
        }
        if let Some(first) = &self.first_error {
            problems.push(format!("{} failed calls, the first: {first}", self.errors));
        }
        problems
    }
}

/// `consumers` consumers of the admin API at `admin`, each receiving up to `batch` messages
/// waiting up to `wait` and acking them all, until `shared` says done. With `clock`, the
/// instant bodies' `"sched_us"` stamps count from.
async fn consume(
    admin: &str,
    shared: &Arc<Shared>,
    consumers: usize,
    batch: u64,
    wait: &str,
    clock: Option<Instant>,
) -> Tally {
    let receive = serde_json::json!({"max": batch, "wait": wait, "visibility": "60s"}).to_string();
    let tasks: Vec<_> = (0..consumers)
        .map(|_| {
            let consumer = Consumer {
                http: reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("client"),
                receive: format!("{admin}/api/v1/endpoints/{ENDPOINT}/messages:receive"),
                ack: format!("{admin}/api/v1/endpoints/{ENDPOINT}/messages:ack"),
                body: receive.clone(),
                clock,
            };
            let shared = Arc::clone(shared);
            tokio::spawn(async move { consumer.run(&shared).await })
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        match t.await {
            Ok(t) => tally.add(t),
            Err(e) => tally.error(format!("a consumer failed: {e}")),
        }
    }
    tally
}

/// One consumer: its own client (one keep-alive connection), its URLs and receive body.
struct Consumer {
    http: reqwest::Client,
    receive: String,
    ack: String,
    body: String,
    clock: Option<Instant>,
}

/// The fields of a receive's answer a consumer reads.
#[derive(Deserialize)]
struct Messages {
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    receipt: String,
    event_id: String,
    attempt: u32,
    received_at: String,
    payload: Option<String>,
}

#[derive(Serialize)]
struct Ack<'a> {
    receipts: Vec<&'a str>,
}

#[derive(Deserialize)]
struct Settled {
    applied: usize,
    stale: Vec<String>,
}

impl Consumer {
    async fn run(&self, shared: &Shared) -> Tally {
        let mut t = Tally::default();
        while !shared.done() {
            let asked = Instant::now();
            let got = match self.post(&self.receive, self.body.clone()).await {
                Ok((200, bytes)) => bytes,
                Ok((status, bytes)) => {
                    t.error(format!(
                        "receive {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    ));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => {
                    t.error(format!("receive: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (now, now_us) = (SystemTime::now(), self.clock.map(|c| c.elapsed()));
            t.receives += 1;
            let messages = match serde_json::from_slice::<Messages>(&got) {
                Ok(m) => m.messages,
                Err(e) => {
                    t.error(format!("receive's answer: {e}"));
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            t.in_receive += asked.elapsed();
            t.received += messages.len() as u64;
            for m in &messages {
                t.again += u64::from(m.attempt > 1);
                if let Ok(at) = humantime::parse_rfc3339(&m.received_at) {
                    let us = now.duration_since(at).unwrap_or_default().as_micros();
                    t.commit_us.push(us as u64);
                }
                if let (Some(now_us), Some(sched)) =
                    (now_us, m.payload.as_deref().and_then(sched_us))
                {
                    t.sent_us
                        .push((now_us.as_micros() as u64).saturating_sub(sched));
                }
            }
            let ack = Ack {
                receipts: messages.iter().map(|m| m.receipt.as_str()).collect(),
            };
            let body = serde_json::to_string(&ack).expect("ack body");
            let acking = Instant::now();
            let stale: HashSet<String> = match self.post(&self.ack, body).await {
                Ok((200 | 409, bytes)) => match serde_json::from_slice::<Settled>(&bytes) {
                    Ok(s) => {
                        shared.acked.fetch_add(s.applied as u64, Ordering::Relaxed);
                        s.stale.into_iter().collect()
                    }
                    Err(e) => {
                        t.error(format!("ack's answer: {e}"));
                        continue;
                    }
                },
                Ok((status, bytes)) => {
                    t.error(format!("ack {status}: {}", String::from_utf8_lossy(&bytes)));
                    continue;
                }
                Err(e) => {
                    t.error(format!("ack: {e}"));
                    continue;
                }
            };
            t.in_ack += acking.elapsed();
            t.acks += 1;
            t.stale += stale.len() as u64;
            t.ids.extend(
                messages
                    .into_iter()
                    .filter(|m| !stale.contains(&m.receipt))
                    .map(|m| m.event_id),
            );
            t.last_ack = Some(Instant::now());
        }
        t
    }

    /// POSTs `body` (JSON) with the admin token: the status and the whole answer.
    async fn post(&self, url: &str, body: String) -> Result<(u16, bytes::Bytes), reqwest::Error> {
        let resp = self
            .http
            .post(url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.bytes().await?))
    }
}

/// Mean ms of `calls` calls that took `total`.
fn per_call(total: Duration, calls: u64) -> f64 {
    total.as_secs_f64() * 1000.0 / calls.max(1) as f64
}

/// The `"sched_us":N` stamp of a fixed-rate body.
fn sched_us(payload: &str) -> Option<u64> {
    let rest = &payload[payload.find("\"sched_us\":")? + 11..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
