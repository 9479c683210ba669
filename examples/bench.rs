//! Ingest benchmark: the same load generator against a bare hyper server (the raw ceiling) and
//! against hookgate's durable, verified ingest, in one run, so the ratio means something on a
//! shared machine whose absolute speed drifts.
//!
//!     cargo run --release --example bench -- [--concurrency 32] [--seconds 10] [--body-bytes 1024]
//!
//! Each request carries a fresh Standard Webhooks id and signature, so verification and the
//! dedup lookup are real work. It prints a markdown table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hookgate::config::Config;
use hookgate::verify::standard_webhooks;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
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
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Sends signed webhooks from `concurrency` connections for `seconds`.
async fn generate(url: String, args: &Args, expect: u16) -> Report {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = standard_webhooks::decode_secret(SECRET).expect("secret");
    let pad = "x".repeat(args.body_bytes.saturating_sub(40));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let (url, key, pad, ok, errors) = (
            url.clone(),
            key.clone(),
            pad.clone(),
            ok.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let id = format!("msg_{worker}_{n}");
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
                    Ok(r) if r.status().as_u16() == expect => {
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

/// The raw ceiling: a bare hyper server that reads the body and answers 202.
async fn bare_sink() -> SocketAddr {
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
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .status(202)
                            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                            .expect("response"),
                    )
                });
                let _ = http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
    addr
}

fn row(name: &str, r: &Report, ceiling: f64) {
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
        r.rate(),
        if ceiling > 0.0 {
            r.rate() / ceiling
        } else {
            1.0
        },
        r.pct(0.5),
        r.pct(0.99),
        r.pct(0.999),
        r.errors
    );
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sink = bare_sink().await;
        let raw = generate(format!("http://{sink}/in/bench"), &args, 202).await;

        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::from_toml(&format!(
            "[[sources]]\nid = \"bench\"\nverify = \"standard-webhooks\"\nsecrets = [\"{SECRET}\"]\n"
        ))
        .expect("config");
        config.data_dir = dir.path().to_path_buf();
        let config = config.validate().expect("valid");
        let ingress = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/in/bench", ingress.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(hookgate::run(config, hookgate::Listeners { ingress, admin }, async {
            let _ = stopped.await;
        }));
        let ingest = generate(url, &args, 202).await;
        let _ = stop.send(());
        let _ = server.await;

        println!(
            "\n{} connections, {} s per phase, {} B bodies, {} cores\n",
            args.concurrency,
            args.seconds,
            args.body_bytes,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| phase | req/s | × raw | p50 ms | p99 ms | p99.9 ms | errors |");
        println!("|---|---|---|---|---|---|---|");
        row("raw hyper ceiling", &raw, 0.0);
        row("hookgate durable verified ingest", &ingest, raw.rate());
    });
}
