//! Phase 7: end-to-end latency at a fixed rate, 50 events/s and 10% of the ingest rate,
//! driven by this harness's own open-loop generator (plain wrk has no fixed rate; at these
//! rates, far below saturation, the generator is not what is measured). Each body is stamped
//! with its *scheduled* send time, so a stall is not hidden by sending later (no coordinated
//! omission), and the sink measures from that stamp to the delivery's arrival: verification,
//! commit (fsync), scheduling and the delivery.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hookgate::verify::standard_webhooks;

use crate::procs::Gateway;
use crate::servers::Latencies;
use crate::{Bench, Row, counted, signing_key};

/// The `p` quantile of `sorted` µs, in ms.
pub fn pct(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

pub async fn phase(b: &Bench, ingest_rate: f64) -> Vec<Row> {
    let dir = b.data_dir();
    let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoint(b))).await;
    let rows = measure(b, &gw, &rates(ingest_rate), "").await;
    gw.stop().await;
    rows
}

/// The endpoint the events go to.
pub fn endpoint(b: &Bench) -> String {
    b.endpoint("e2e", 32)
}

/// 50 events/s and 10% of `ingest_rate` (at least 50).
pub fn rates(ingest_rate: f64) -> [f64; 2] {
    [50.0, (ingest_rate * 0.1).max(50.0)]
}

/// One row per rate, each run for `--seconds` against `gw` (whose config has `endpoint`),
/// named from `label`, with its window.
pub async fn measure(b: &Bench, gw: &Gateway, rates: &[f64], label: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for &rate in rates {
        let n = (rate * b.args.seconds as f64).round() as u64;
        b.sink.latencies.take_sorted();
        b.sink.reset();
        let before = gw.outcomes().await;
        let start = Instant::now();
        let ok = fixed_rate(&gw.ingress, rate, n, &b.sink.latencies).await;
        let mut problems = Vec::new();
        if ok < n {
            problems.push(format!("{} of {n} not answered 2xx", n - ok));
        }
        if !b.sink.wait_for(ok, Duration::from_secs(120)).await {
            problems.push(format!("the sink got {} of {ok}", b.sink.received()));
        }
        let window = Some((start, Instant::now()));
        problems.extend(counted(gw, &before).await.1);
        let sorted = b.sink.latencies.take_sorted();
        rows.push(Row {
            name: format!(
                "{label}end-to-end at {rate:.0} events/s, received → delivered ({} events)",
                sorted.len()
            ),
            rate,
            ratio: false,
            p50: pct(&sorted, 0.5),
            p99: pct(&sorted, 0.99),
            p999: pct(&sorted, 0.999),
            cpu: (None, None),
            db_cpu: None,
            window,
            spent: None,
            problems,
        });
    }
    rows
}

/// Sends `count` signed events at `rate` per second, each stamped with its scheduled time.
pub async fn fixed_rate(url: &str, rate: f64, count: u64, latencies: &Latencies) -> u64 {
    let key = signing_key();
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
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs() as i64;
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
