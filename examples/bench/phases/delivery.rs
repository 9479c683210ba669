//! Phases 5 and 6: the drain of a backlog to one endpoint, and fan-out to 100 endpoints. wrk
//! sends each event once; the sink (in this process, on the load side) counts deliveries.

use std::time::{Duration, Instant};

use crate::procs::Gateway;
use crate::wrk::{cpu_seconds, tree_cpu_seconds};
use crate::{Bench, Row};

/// The gateway's CPU use since `start`, when it had used `before` seconds.
/// The server's CPUs over the span since `start`, its workers' included.
fn server_cpu(gw: &Gateway, before: Option<f64>, start: Instant) -> Option<f64> {
    let now = gw.pid().and_then(tree_cpu_seconds)?;
    Some((now - before?) / start.elapsed().as_secs_f64())
}

/// How long the sink may take to receive `n` deliveries before the phase is called failed.
fn patience(n: u64) -> Duration {
    Duration::from_secs(120 + n / 1000)
}

pub async fn drain(b: &Bench) -> Vec<Row> {
    let dir = b.data_dir();
    let gw = b
        .gateway(&b.toml(dir.path(), "", "", &drain_endpoint(b)))
        .await;
    let (accepted, problems) = fill_paused(b, &gw).await;
    let row = drain_now(b, &gw, accepted, problems, "").await;
    gw.stop().await;
    vec![row]
}

/// The endpoint the drain goes to (`max_in_flight` = `--concurrency`).
pub fn drain_endpoint(b: &Bench) -> String {
    b.endpoint("drain", b.args.concurrency)
}

/// Pauses the drain endpoint and sends `--backlog` events (wrk, each once) behind it: how
/// many were accepted, and what went wrong.
pub async fn fill_paused(b: &Bench, gw: &Gateway) -> (u64, Vec<String>) {
    gw.admin("/endpoints/drain/pause", "").await;
    b.fill(gw, b.args.backlog).await
}

/// Resumes the endpoint and counts deliveries per second until the sink has all `accepted`;
/// the row's name starts with `label`, and its window is the drain's.
pub async fn drain_now(
    b: &Bench,
    gw: &Gateway,
    accepted: u64,
    mut problems: Vec<String>,
    label: &str,
) -> Row {
    b.sink.reset();
    let start = Instant::now();
    let cpu0 = gw.pid().and_then(tree_cpu_seconds);
    gw.admin("/endpoints/drain/resume", "").await;
    if !b.sink.wait_for(accepted, patience(accepted)).await {
        problems.push(format!(
            "the sink got {} of {accepted} deliveries",
            b.sink.received()
        ));
    }
    let rate = b.sink.received() as f64 / start.elapsed().as_secs_f64();
    let cpu = server_cpu(gw, cpu0, start);
    let mut row = Row::figure(
        format!("{label}drain of a {accepted} backlog to one endpoint (deliveries/s)"),
        rate,
        true,
        problems,
    );
    row.cpu.0 = cpu;
    row.window = Some((start, Instant::now()));
    row
}

/// Order keys of the `ordered` phase, and its endpoint's `max_in_flight`.
const ORDER_KEYS: u64 = 1_000;
const ORDERED_IN_FLIGHT: usize = 32;

/// The drain of a `--backlog` to an endpoint that orders by a body field with 1,000 keys,
/// beside the same drain unordered, both at `max_in_flight` 32, in the same run.
pub async fn ordered(b: &Bench) -> Vec<Row> {
    let mut rows = Vec::new();
    for ordering in [None, Some("ordering = { key = { json = \"/k\" } }\n")] {
        let dir = b.data_dir();
        let endpoint = format!(
            "{}{}",
            b.endpoint("drain", ORDERED_IN_FLIGHT),
            ordering.unwrap_or("")
        );
        let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoint)).await;
        gw.admin("/endpoints/drain/pause", "").await;
        let (accepted, problems) = b.fill_keyed(&gw, b.args.backlog, Some(ORDER_KEYS)).await;
        let label = match ordering {
            Some(_) => format!("ordered ({ORDER_KEYS} keys, max_in_flight {ORDERED_IN_FLIGHT}): "),
            None => format!("unordered, max_in_flight {ORDERED_IN_FLIGHT}: "),
        };
        rows.push(drain_now(b, &gw, accepted, problems, &label).await);
        gw.stop().await;
    }
    rows
}

pub async fn fanout(b: &Bench) -> Vec<Row> {
    let dir = b.data_dir();
    let endpoints: String = (0..100).map(|i| b.endpoint(&format!("e{i}"), 4)).collect();
    let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoints)).await;
    b.sink.reset();
    // From wrk's start (writing and loading this small pool included: a few ms).
    let start = Instant::now();
    let cpu0 = gw.pid().and_then(cpu_seconds);
    let (accepted, mut problems) = b.fill(&gw, b.args.fanout_events).await;
    let want = accepted * 100;
    if !b.sink.wait_for(want, patience(want)).await {
        problems.push(format!(
            "the sink got {} of {want} deliveries",
            b.sink.received()
        ));
    }
    let rate = b.sink.received() as f64 / start.elapsed().as_secs_f64();
    let cpu = server_cpu(&gw, cpu0, start);
    gw.stop().await;
    let mut row = Row::figure(
        format!("fan-out: {accepted} events × 100 endpoints (deliveries/s)"),
        rate,
        true,
        problems,
    );
    row.cpu.0 = cpu;
    vec![row]
}
