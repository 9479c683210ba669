//! Phases 3 and 4: durable verified ingest with no endpoint, and with one endpoint on the
//! sink delivering while it ingests; wrk, timed, with a pool that never wraps.

use crate::procs::Gateway;
use crate::{Bench, Row};

pub async fn ingest(b: &Bench) -> Vec<Row> {
    let dir = b.data_dir();
    let gw = b.gateway(&b.toml(dir.path(), "", "", "")).await;
    let pool = b.timed_pool();
    let c = b.drive(&gw, &pool, b.timed()).await;
    print_commits(&gw).await;
    gw.stop().await;
    vec![Row::timed(
        "durable verified ingest (events/s)",
        &c.run,
        c.problems,
    )]
}

pub async fn subscriber(b: &Bench) -> Vec<Row> {
    let dir = b.data_dir();
    let endpoint = b.endpoint("one", b.args.concurrency);
    let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoint)).await;
    let pool = b.timed_pool();
    b.sink.reset();
    let c = b.drive(&gw, &pool, b.timed()).await;
    eprintln!(
        "subscriber: {} accepted, {} delivered by the end of the phase",
        c.accepted,
        b.sink.received()
    );
    gw.stop().await;
    vec![Row::timed(
        "ingest with one subscriber (events/s)",
        &c.run,
        c.problems,
    )]
}

/// Where ingest time goes: how many commits, how big, how long (from `/metrics`).
async fn print_commits(gw: &Gateway) {
    let text = gw.metrics().await;
    let value = |name: &str| crate::procs::value(&text, name);
    let commits = value("hookgate_commit_seconds_count");
    let ingest =
        value("hookgate_ingest_seconds_sum") / value("hookgate_ingest_seconds_count").max(1.0);
    println!(
        "ingest: {commits:.0} commits, {:.1} commands each, {:.2} ms per commit (fsync included); {:.2} ms from arrival to commit per request",
        value("hookgate_commit_batch_sum") / commits.max(1.0),
        value("hookgate_commit_seconds_sum") * 1000.0 / commits.max(1.0),
        ingest * 1000.0
    );
}
