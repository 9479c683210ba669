//! The benchmark harness: the same load generator against a bare hyper server (the raw
//! ceiling) and against hookgate, in one run, so the ratios mean something on a shared machine
//! whose absolute speed drifts.
//!
//!     cargo run --release --example bench -- [--concurrency 32] [--seconds 10] [--body-bytes 1024]
//!                                            [--backlog 100000] [--fanout-events 1000]
//!                                            [--rss-backlog 1000000] [--quick-repair true]
//!                                            [--phases all]
//!
//! Phases, in order (`--phases` picks some; the raw ceiling always runs):
//! 1. raw ceiling: signed requests against a bare hyper server that reads the body and answers;
//! 2. `ingest`: durable verified ingest, the same requests against hookgate with no subscriber
//!    (each a fresh Standard Webhooks id and signature, so verification and dedup are real work);
//! 3. `subscriber`: the same with one subscriber, delivering while it ingests;
//! 4. `drain`: a backlog built behind a paused endpoint, then resumed; deliveries per second
//!    until a counting sink has them all (`max_in_flight` = the generator's concurrency);
//! 5. `fanout`: each event to 100 endpoints, deliveries per second from the first request to
//!    the last delivery;
//! 6. `latency`: end to end at 50 events/s and at 10% of the ingest rate of phase 2: a
//!    fixed-rate generator stamps each body with its *scheduled* send time (so a stall is not
//!    hidden by sending later: no coordinated omission), and the sink measures from that stamp
//!    to the delivery's arrival: verification, commit (fsync), scheduling and the delivery;
//! 7. `backlog`, memory: a gateway in a process of its own (this program re-run with
//!    `--gateway`) takes `--rss-backlog` events behind a paused endpoint; its resident memory
//!    is read from /proc as the backlog grows, and its peak at the end;
//! 8. `backlog`, restart: that endpoint is resumed, the process is killed with SIGKILL at once
//!    and started again on the same file; the time from the new process's start to its first
//!    delivery;
//! 9. `replay`: `--replay-dead` dead letters (an endpoint on a closed port, one attempt each),
//!    then ingest p99 with nothing else going on (the baseline) and while all of them are
//!    replayed through the admin API (the endpoint paused, so only the replay's own writes
//!    compete with ingest);
//! 10. `hangup`: a gateway in a process of its own; `--hangup-clients` clients at once each
//!     send a signed 1 MiB body and hang up without reading the answer; its peak resident
//!     memory;
//! 11. `prune`: `--prune-dead` dead letters waiting for their retention, then ingest with
//!     pruning every second and with it off, on the same store.
//!
//! It prints a markdown table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hookgate::config::Config;
use hookgate::verify::standard_webhooks;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: &str = "bench-token";

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    #[arg(long, default_value_t = 100_000)]
    backlog: u64,
    #[arg(long, default_value_t = 1_000)]
    fanout_events: u64,
    /// Events in the backlog of the memory and restart phases, built in a gateway process of
    /// its own;
    #[arg(long, default_value_t = 1_000_000)]
    rss_backlog: u64,
    /// Which phases after the raw ceiling: all, or a list of ingest, subscriber, drain,
    /// fanout, latency, backlog, replay, hangup, prune.
    #[arg(long, default_value = "all")]
    phases: String,
    /// Dead letters replayed in the replay phase.
    #[arg(long, default_value_t = 100_000)]
    replay_dead: u64,
    /// Clients of the hangup phase, each sending 1 MiB and hanging up.
    #[arg(long, default_value_t = 2_000)]
    hangup_clients: u64,
    /// `ingress.max_buffered_bytes` of the hangup phase's gateway (its default if absent).
    #[arg(long)]
    hangup_buffered_bytes: Option<u64>,
    /// Dead letters waiting in the prune phase.
    #[arg(long, default_value_t = 1_000_000)]
    prune_dead: u64,
    /// `store.quick_repair` of the gateways measured.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    quick_repair: bool,
    /// Internal: run only a gateway on this config file, in this process (the memory phase's
    /// child), and print its addresses.
    #[arg(long, hide = true)]
    gateway: Option<std::path::PathBuf>,
}

mod hangup;
mod prune;
mod replay;

/// When a generator run ends.
#[derive(Clone)]
enum Until {
    Elapsed(Duration),
    Sent(u64),
    /// While the flag is up.
    While(Arc<std::sync::atomic::AtomicBool>),
}

struct Report {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Report {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Option<f64> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        Some(self.latencies_us[i] as f64 / 1000.0)
    }
}

/// Sends signed webhooks from `concurrency` connections.
async fn generate(url: &str, args: &Args, until: Until) -> Report {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = standard_webhooks::decode_secret(SECRET).expect("secret");
    let pad = "x".repeat(args.body_bytes.saturating_sub(40));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let issued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let (url, key, pad, until) = (url.to_string(), key.clone(), pad.clone(), until.clone());
        let (ok, errors, issued) = (ok.clone(), errors.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                let more = match &until {
                    Until::Elapsed(d) => start.elapsed() < *d,
                    Until::Sent(total) => n < *total,
                    Until::While(flag) => flag.load(Ordering::Relaxed),
                };
                if !more {
                    break;
                }
                let id = format!("msg_{}_{n}", start.elapsed().as_nanos());
                let body = format!(r#"{{"type":"bench.event","n":{n},"pad":"{pad}"}}"#);
                let ts = (hookgate::clock::system_now_ms() / 1000) as i64;
                let sig = standard_webhooks::sign(&key, &id, ts, body.as_bytes());
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sig)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed().as_micros() as u64);
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Report {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies_us,
    }
}

/// Where the sink records end-to-end latencies: bodies stamped `"sched_us":N` (µs since
/// `start`) are measured against their arrival.
#[derive(Clone)]
struct Latencies {
    start: Instant,
    samples: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Latencies {
    fn record(&self, body: &[u8]) {
        let Some(pos) = body.windows(11).position(|w| w == b"\"sched_us\":") else {
            return;
        };
        let digits: String = body[pos + 11..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|b| *b as char)
            .collect();
        if let Ok(sched) = digits.parse::<u64>() {
            let now = self.start.elapsed().as_micros() as u64;
            self.samples
                .lock()
                .expect("lock")
                .push(now.saturating_sub(sched));
        }
    }

    fn take_sorted(&self) -> Vec<u64> {
        let mut v = std::mem::take(&mut *self.samples.lock().expect("lock"));
        v.sort_unstable();
        v
    }
}

fn pct(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

/// Sends `count` signed events at `rate` per second, each stamped with its scheduled time.
async fn fixed_rate(url: &str, rate: f64, count: u64, latencies: &Latencies) -> u64 {
    let key = standard_webhooks::decode_secret(SECRET).expect("secret");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut tasks = Vec::new();
    let t0 = tokio::time::Instant::now();
    for n in 0..count {
        let at = t0 + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(at).await;
        let sched_us = (latencies.start.elapsed().as_micros() as u64)
            .saturating_sub(at.elapsed().as_micros() as u64);
        let (http, key, url) = (http.clone(), key.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let id = format!("msg_rate_{sched_us}_{n}");
            let body = format!(r#"{{"type":"bench.latency","sched_us":{sched_us}}}"#);
            let ts = (hookgate::clock::system_now_ms() / 1000) as i64;
            let sig = standard_webhooks::sign(&key, &id, ts, body.as_bytes());
            let resp = http
                .post(&url)
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            matches!(resp, Ok(r) if r.status().is_success())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap_or(false) {
            ok += 1;
        }
    }
    ok
}

/// A bare hyper server that reads the body, counts, and answers 202.
async fn bare_sink(count: Arc<AtomicU64>, latencies: Latencies) -> SocketAddr {
    use http_body_util::BodyExt;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let count = count.clone();
            let latencies = latencies.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let count = count.clone();
                    let latencies = latencies.clone();
                    async move {
                        if let Ok(body) = req.into_body().collect().await {
                            latencies.record(&body.to_bytes());
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(202)
                                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                                .expect("response"),
                        )
                    }
                });
                let _ = http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
    addr
}

/// hookgate in this process on `endpoints` (TOML), until the returned sender is used.
struct Running {
    ingress: String,
    admin: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), hookgate::RunError>>,
    _dir: tempfile::TempDir,
}

async fn start_hookgate(args: &Args, endpoints: &str) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::from_toml(&gateway_toml(args, "", endpoints)).expect("config");
    config.data_dir = dir.path().to_path_buf();
    let config = config.validate().expect("valid");
    let (ingress, admin) = bind_pair().await;
    let ingress_url = format!("http://{}/in/bench", ingress.local_addr().expect("addr"));
    let admin_url = format!("http://{}", admin.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(hookgate::run(
        config,
        hookgate::Listeners { ingress, admin },
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        ingress: ingress_url,
        admin: admin_url,
        stop,
        task,
        _dir: dir,
    }
}

impl Running {
    async fn admin(&self, path: &str) {
        admin_post(&self.admin, path).await;
    }

    /// Where ingest time goes: how many commits, how big, how long (from `/metrics`).
    async fn print_commits(&self) {
        let text = reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let commits = value("hookgate_commit_seconds_count ");
        let ingest = value("hookgate_ingest_seconds_sum ")
            / value("hookgate_ingest_seconds_count ").max(1.0);
        println!(
            "ingest: {commits:.0} commits, {:.1} commands each, {:.2} ms per commit (fsync included); {:.2} ms from arrival to commit per request",
            value("hookgate_commit_batch_sum ") / commits.max(1.0),
            value("hookgate_commit_seconds_sum ") * 1000.0 / commits.max(1.0),
            ingest * 1000.0
        );
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn wait_for(count: &AtomicU64, target: u64) {
    while count.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A gateway's config: the bench source, `[store]` keys `store`, and `endpoints`.
fn gateway_toml(args: &Args, store: &str, endpoints: &str) -> String {
    format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[store]\nquick_repair = {}\n{store}[delivery]\nallow_private_networks = true\n\
         [[sources]]\nid = \"bench\"\nverify = \"standard-webhooks\"\nsecrets = [\"{SECRET}\"]\n{endpoints}",
        args.quick_repair
    )
}

/// The pending-delivery count from a gateway's `/metrics`.
async fn pending(admin: &str) -> f64 {
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("hookgate_pending_deliveries "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::MAX)
}

/// A loopback port nothing listens on: deliveries there fail at once.
fn closed_port() -> u16 {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    closed.local_addr().expect("addr").port()
}

/// Two listeners on free loopback ports: ingress, admin.
async fn bind_pair() -> (tokio::net::TcpListener, tokio::net::TcpListener) {
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    (bind().await.expect("bind"), bind().await.expect("bind"))
}

/// POSTs to the admin API at `admin` and insists on success.
async fn admin_post(admin: &str, path: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{admin}/api/v1{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin call");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

/// A table row: name, rate, p50, p99, p99.9, errors, and whether a ratio to the ceiling applies.
type Row = (String, f64, String, String, String, u64, bool);

/// The row of a generator run, timed by its own latencies.
fn timed_row(name: &str, r: &Report) -> Row {
    (
        name.to_string(),
        r.rate(),
        ms(r.pct(0.5)),
        ms(r.pct(0.99)),
        ms(r.pct(0.999)),
        r.errors,
        true,
    )
}

/// The row of a rate with no latencies of its own.
fn rate_row(name: String, rate: f64, errors: u64, ratio: bool) -> Row {
    (
        name,
        rate,
        "–".into(),
        "–".into(),
        "–".into(),
        errors,
        ratio,
    )
}

/// One `[[endpoints]]` entry on the sink.
fn endpoint(id: &str, sink: SocketAddr, max_in_flight: usize) -> String {
    format!(
        "[[endpoints]]\nid = \"{id}\"\nurl = \"http://{sink}/{id}\"\nmax_in_flight = {max_in_flight}\n"
    )
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

fn main() {
    let args = Args::parse();
    if let Some(config) = &args.gateway {
        return gateway_child(config);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut rows: Vec<Row> = Vec::new();
        let want = |phase: &str| args.phases.split(',').any(|p| p == "all" || p == phase);
        let mut ingest_rate = 0.0;
        let count = Arc::new(AtomicU64::new(0));
        let latencies = Latencies {
            start: Instant::now(),
            samples: Arc::default(),
        };
        let sink = bare_sink(count.clone(), latencies.clone()).await;

        // 1. The raw ceiling.
        let raw = generate(
            &format!("http://{sink}/in/bench"),
            &args,
            Until::Elapsed(Duration::from_secs(args.seconds)),
        )
        .await;
        let ceiling = raw.rate();
        rows.push(timed_row("raw hyper ceiling (requests/s)", &raw));

        if want("ingest") {
            // 2. Durable verified ingest, no subscriber.
            let gw = start_hookgate(&args, "").await;
            let ingest = generate(
                &gw.ingress,
                &args,
                Until::Elapsed(Duration::from_secs(args.seconds)),
            )
            .await;
            ingest_rate = ingest.rate();
            gw.print_commits().await;
            gw.stop().await;
            rows.push(timed_row("durable verified ingest (events/s)", &ingest));
        }

        if want("subscriber") {
            // 3. The same with one subscriber, delivering while it ingests.
            let gw = start_hookgate(&args, &endpoint("one", sink, args.concurrency)).await;
            count.store(0, Ordering::Relaxed);
            let one = generate(
                &gw.ingress,
                &args,
                Until::Elapsed(Duration::from_secs(args.seconds)),
            )
            .await;
            gw.stop().await;
            rows.push(timed_row("ingest with one subscriber (events/s)", &one));
        }

        if want("drain") {
            // 4. Drain of a backlog to one endpoint.
            let gw = start_hookgate(&args, &endpoint("drain", sink, args.concurrency)).await;
            gw.admin("/endpoints/drain/pause").await;
            let fill = generate(&gw.ingress, &args, Until::Sent(args.backlog)).await;
            count.store(0, Ordering::Relaxed);
            let start = Instant::now();
            gw.admin("/endpoints/drain/resume").await;
            wait_for(&count, fill.ok).await;
            let drain_rate = fill.ok as f64 / start.elapsed().as_secs_f64();
            gw.stop().await;
            rows.push(rate_row(
                format!(
                    "drain of a {} backlog to one endpoint (deliveries/s)",
                    fill.ok
                ),
                drain_rate,
                fill.errors,
                true,
            ));
        }

        if want("fanout") {
            // 5. Fan-out to 100 endpoints.
            let endpoints: String = (0..100)
                .map(|i| endpoint(&format!("e{i}"), sink, 4))
                .collect();
            let gw = start_hookgate(&args, &endpoints).await;
            count.store(0, Ordering::Relaxed);
            let start = Instant::now();
            let sent = generate(&gw.ingress, &args, Until::Sent(args.fanout_events)).await;
            wait_for(&count, sent.ok * 100).await;
            let fanout_rate = (sent.ok * 100) as f64 / start.elapsed().as_secs_f64();
            gw.stop().await;
            rows.push(rate_row(
                format!("fan-out: {} events × 100 endpoints (deliveries/s)", sent.ok),
                fanout_rate,
                sent.errors,
                true,
            ));
        }

        if want("latency") {
            // 6. End-to-end latency at a fixed rate: 50/s, and 10% of the ingest rate measured above.
            let gw = start_hookgate(&args, &endpoint("e2e", sink, 32)).await;
            for rate in [50.0, (ingest_rate * 0.1).max(50.0)] {
                let n = (rate * args.seconds as f64).round() as u64;
                latencies.take_sorted();
                count.store(0, Ordering::Relaxed);
                let ok = fixed_rate(&gw.ingress, rate, n, &latencies).await;
                wait_for(&count, ok).await;
                let sorted = latencies.take_sorted();
                rows.push((
                    format!(
                        "end-to-end at {rate:.0} events/s, received → delivered ({} events)",
                        sorted.len()
                    ),
                    rate,
                    ms(pct(&sorted, 0.5)),
                    ms(pct(&sorted, 0.99)),
                    ms(pct(&sorted, 0.999)),
                    n - ok,
                    false,
                ));
            }
            gw.stop().await;
        }

        if want("replay") {
            // 9. Ingest while a large dead-letter set is replayed.
            rows.extend(replay::phase(&args).await);
        }

        if want("prune") {
            // 11. Ingest while many dead letters wait for their retention, pruning on and off.
            rows.extend(prune::phase(&args).await);
        }

        if want("hangup") {
            // 10. Memory while many clients send large bodies and hang up.
            rows.extend(hangup::phase(&args).await);
        }

        if want("backlog") {
            // 7 and 8. Memory under a large backlog, and restart with it pending.
            {
                let m = backlog_process(&args, sink, &count).await;
                let growth: Vec<String> = m
                    .samples
                    .iter()
                    .map(|(n, kib)| format!("{}k: {:.0}", n / 1000, *kib as f64 / 1024.0))
                    .collect();
                println!("resident MiB as the backlog grew: {}", growth.join(", "));
                rows.push(rate_row(
                    format!("peak RSS with a {} backlog (MiB)", m.backlog),
                    m.peak_kib as f64 / 1024.0,
                    m.errors,
                    false,
                ));
                rows.push(rate_row(
                    format!(
                        "restart with {} pending: start to first delivery (ms)",
                        m.pending_at_restart
                    ),
                    m.first_delivery.as_secs_f64() * 1000.0,
                    0,
                    false,
                ));
            }
        }

        println!(
            "\n{} connections, {} s timed phases, {} B bodies, quick_repair = {}, {} cores\n",
            args.concurrency,
            args.seconds,
            args.body_bytes,
            args.quick_repair,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| phase | per second | × raw | p50 ms | p99 ms | p99.9 ms | errors |");
        println!("|---|---|---|---|---|---|---|");
        for (name, rate, p50, p99, p999, errors, ratio) in rows {
            let ratio = if ratio {
                format!("{:.2}", rate / ceiling)
            } else {
                "–".into()
            };
            println!("| {name} | {rate:.0} | {ratio} | {p50} | {p99} | {p999} | {errors} |");
        }
    });
}

/// The memory phase's child: a gateway on `config` (listeners on port 0), printing
/// `ingress=ADDR admin=ADDR` once it listens; it runs until killed.
fn gateway_child(config: &std::path::Path) {
    let text = std::fs::read_to_string(config).expect("config");
    let config = Config::from_toml(&text)
        .expect("config")
        .validate()
        .expect("valid");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (ingress, admin) = bind_pair().await;
        println!(
            "ingress={} admin={}",
            ingress.local_addr().expect("addr"),
            admin.local_addr().expect("addr")
        );
        hookgate::run(
            config,
            hookgate::Listeners { ingress, admin },
            std::future::pending::<()>(),
        )
        .await
        .expect("gateway");
    });
}

struct BacklogMeasure {
    backlog: u64,
    errors: u64,
    /// (events in the backlog, resident KiB) as it grew.
    samples: Vec<(u64, u64)>,
    peak_kib: u64,
    pending_at_restart: u64,
    first_delivery: Duration,
}

/// A gateway process of its own, with its stdout's first line parsed for its addresses.
struct Child {
    process: std::process::Child,
    ingress: String,
    admin: String,
}

impl Child {
    fn start(config: &std::path::Path) -> Child {
        use std::io::BufRead;
        let mut process = std::process::Command::new(std::env::current_exe().expect("exe"))
            .arg("--gateway")
            .arg(config)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gateway process");
        let stdout = process.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("addresses");
        let addr = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .expect("address")
                .to_string()
        };
        Child {
            ingress: format!("http://{}/in/bench", addr("ingress=")),
            admin: format!("http://{}", addr("admin=")),
            process,
        }
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn admin(&self, path: &str) {
        admin_post(&self.admin, path).await;
    }

    fn kill(mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn backlog_process(args: &Args, sink: SocketAddr, count: &AtomicU64) -> BacklogMeasure {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n{}",
            dir.path().join("data").display(),
            gateway_toml(
                args,
                &format!("max_backlog = {}\n", args.rss_backlog * 2),
                &endpoint("held", sink, args.concurrency)
            )
        ),
    )
    .expect("config");
    let child = Child::start(&config);
    child.admin("/endpoints/held/pause").await;
    let steps = 4;
    let mut samples = vec![(0, child.memory_kib().0)];
    let (mut sent, mut errors) = (0, 0);
    for step in 1..=steps {
        let target = args.rss_backlog * step / steps;
        let r = generate(&child.ingress, args, Until::Sent(target - sent)).await;
        sent += r.ok;
        errors += r.errors;
        samples.push((sent, child.memory_kib().0));
        eprintln!("backlog {sent}: {} KiB resident", child.memory_kib().0);
    }
    let peak_kib = child.memory_kib().1;
    // Restart with everything pending: resume, then SIGKILL at once, so the new process finds
    // the backlog due and must start delivering it.
    count.store(0, Ordering::Relaxed);
    child.admin("/endpoints/held/resume").await;
    child.kill();
    // Let deliveries the dead process had in flight land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered_before_kill = count.load(Ordering::Relaxed);
    let started = Instant::now();
    let child = Child::start(&config);
    wait_for(count, delivered_before_kill + 1).await;
    let first_delivery = started.elapsed();
    child.kill();
    BacklogMeasure {
        backlog: sent,
        errors,
        samples,
        peak_kib,
        pending_at_restart: sent.saturating_sub(delivered_before_kill),
        first_delivery,
    }
}
