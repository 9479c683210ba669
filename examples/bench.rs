//! The benchmark harness: the same load generator against a bare hyper server (the raw
//! ceiling) and against hookgate, in one run, so the ratios mean something on a shared machine
//! whose absolute speed drifts.
//!
//!     cargo run --release --example bench -- [--concurrency 32] [--seconds 10] [--body-bytes 1024]
//!                                            [--backlog 100000] [--fanout-events 1000]
//!
//! Phases, in order:
//! 1. raw ceiling: signed requests against a bare hyper server that reads the body and answers;
//! 2. durable verified ingest: the same requests against hookgate with no subscriber (each a
//!    fresh Standard Webhooks id and signature, so verification and dedup are real work);
//! 3. drain: a backlog built behind a paused endpoint, then resumed; deliveries per second until
//!    a counting sink has them all (`max_in_flight` = the generator's concurrency);
//! 4. fan-out: each event to 100 endpoints, deliveries per second from the first request to
//!    the last delivery;
//! 5. end-to-end latency at 50 events/s and at 10% of the ingest rate of phase 2: a fixed-rate
//!    generator stamps each body with its *scheduled* send time (so a stall is not hidden by
//!    sending later: no coordinated omission), and the sink measures from that stamp to the
//!    delivery's arrival: verification, commit (fsync), scheduling and the delivery itself.
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
}

/// When a generator run ends.
#[derive(Clone, Copy)]
enum Until {
    Elapsed(Duration),
    Sent(u64),
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
        let (url, key, pad) = (url.to_string(), key.clone(), pad.clone());
        let (ok, errors, issued) = (ok.clone(), errors.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                let more = match until {
                    Until::Elapsed(d) => start.elapsed() < d,
                    Until::Sent(total) => n < total,
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

async fn start_hookgate(endpoints: &str) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::from_toml(&format!(
        "[admin]\ntoken = \"{TOKEN}\"\n[delivery]\nallow_private_networks = true\n\
         [[sources]]\nid = \"bench\"\nverify = \"standard-webhooks\"\nsecrets = [\"{SECRET}\"]\n{endpoints}"
    ))
    .expect("config");
    config.data_dir = dir.path().to_path_buf();
    let config = config.validate().expect("valid");
    let ingress = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
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
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1{path}", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin call");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
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

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut rows = Vec::new();
        let count = Arc::new(AtomicU64::new(0));
        let latencies = Latencies {
            start: Instant::now(),
            samples: Arc::default(),
        };
        let sink = bare_sink(count.clone(), latencies.clone()).await;

        // 1. The raw ceiling.
        let raw = generate(&format!("http://{sink}/in/bench"), &args, Until::Elapsed(Duration::from_secs(args.seconds))).await;
        let ceiling = raw.rate();
        rows.push(("raw hyper ceiling (requests/s)".to_string(), raw.rate(), ms(raw.pct(0.5)), ms(raw.pct(0.99)), ms(raw.pct(0.999)), raw.errors, true));

        // 2. Durable verified ingest, no subscriber.
        let gw = start_hookgate("").await;
        let ingest = generate(&gw.ingress, &args, Until::Elapsed(Duration::from_secs(args.seconds))).await;
        gw.stop().await;
        rows.push(("durable verified ingest (events/s)".into(), ingest.rate(), ms(ingest.pct(0.5)), ms(ingest.pct(0.99)), ms(ingest.pct(0.999)), ingest.errors, true));

        // 3. Drain of a backlog to one endpoint.
        let gw = start_hookgate(&format!(
            "[[endpoints]]\nid = \"drain\"\nurl = \"http://{sink}/drain\"\nmax_in_flight = {}\n",
            args.concurrency
        ))
        .await;
        gw.admin("/endpoints/drain/pause").await;
        let fill = generate(&gw.ingress, &args, Until::Sent(args.backlog)).await;
        count.store(0, Ordering::Relaxed);
        let start = Instant::now();
        gw.admin("/endpoints/drain/resume").await;
        wait_for(&count, fill.ok).await;
        let drain_rate = fill.ok as f64 / start.elapsed().as_secs_f64();
        gw.stop().await;
        rows.push((format!("drain of a {} backlog to one endpoint (deliveries/s)", fill.ok), drain_rate, "–".into(), "–".into(), "–".into(), fill.errors, true));

        // 4. Fan-out to 100 endpoints.
        let endpoints: String = (0..100)
            .map(|i| format!("[[endpoints]]\nid = \"e{i}\"\nurl = \"http://{sink}/e{i}\"\nmax_in_flight = 4\n"))
            .collect();
        let gw = start_hookgate(&endpoints).await;
        count.store(0, Ordering::Relaxed);
        let start = Instant::now();
        let sent = generate(&gw.ingress, &args, Until::Sent(args.fanout_events)).await;
        wait_for(&count, sent.ok * 100).await;
        let fanout_rate = (sent.ok * 100) as f64 / start.elapsed().as_secs_f64();
        gw.stop().await;
        rows.push((format!("fan-out: {} events × 100 endpoints (deliveries/s)", sent.ok), fanout_rate, "–".into(), "–".into(), "–".into(), sent.errors, true));

        // 5. End-to-end latency at a fixed rate: 50/s, and 10% of the ingest rate measured above.
        let gw = start_hookgate(&format!("[[endpoints]]\nid = \"e2e\"\nurl = \"http://{sink}/e2e\"\nmax_in_flight = 32\n")).await;
        for rate in [50.0, (ingest.rate() * 0.1).max(50.0)] {
            let n = (rate * args.seconds as f64).round() as u64;
            latencies.take_sorted();
            count.store(0, Ordering::Relaxed);
            let ok = fixed_rate(&gw.ingress, rate, n, &latencies).await;
            wait_for(&count, ok).await;
            let sorted = latencies.take_sorted();
            rows.push((
                format!("end-to-end at {rate:.0} events/s, received → delivered ({} events)", sorted.len()),
                rate,
                ms(pct(&sorted, 0.5)),
                ms(pct(&sorted, 0.99)),
                ms(pct(&sorted, 0.999)),
                n - ok,
                false,
            ));
        }
        gw.stop().await;

        println!(
            "\n{} connections, {} s timed phases, {} B bodies, {} cores\n",
            args.concurrency,
            args.seconds,
            args.body_bytes,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| phase | per second | × raw | p50 ms | p99 ms | p99.9 ms | errors |");
        println!("|---|---|---|---|---|---|---|");
        for (name, rate, p50, p99, p999, errors, ratio) in rows {
            let ratio = if ratio { format!("{:.2}", rate / ceiling) } else { "–".into() };
            println!("| {name} | {rate:.0} | {ratio} | {p50} | {p99} | {p999} | {errors} |");
        }
    });
}
