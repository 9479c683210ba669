//! Phases 12 to 15, on PostgreSQL (`[store] backend = "postgres"`): `pg-ingest` (durable
//! verified ingest, one node), `pg-ingest-2` (two nodes on one database), `pg-drain` (a
//! `--backlog` backlog behind a paused endpoint, resumed) and `pg-latency` (end to end at 50
//! events/s and at 10% of `pg-ingest`'s rate): the shapes of phases 3, 5 and 7, each on a
//! fresh database of the `--postgres-url` server, migrated with `hookgate migrate` and dropped
//! after. Each row's CPU column adds PostgreSQL's CPU to hookgate's and wrk's, and under the
//! comparison table each says where the time went (`pg::watch`; hookgate's own commit count).
//!
//! Two nodes: two `hookgate` processes on the one database, both on the server side of the
//! CPUs (on 2 cores they share one), each behind a wrk of its own with half the connections.
//! Both wrk start together, run the same seconds, and their rates are summed (their latency
//! percentiles are the worse of the two). A wrk script cannot spread one connection over two
//! hosts, and a TCP balancer in between would be one more process on the load side; two wrk
//! processes are what one wrk is, split.

use std::time::Duration;

use super::{delivery, latency};
use crate::commits::Commits;
use crate::pg::watch::{Samples, Watch};
use crate::pg::{Database, Server, Statements};
use crate::procs::Gateway;
use crate::{Bench, Checked, Row, wrk};

/// What a PostgreSQL gateway's commits came to, for the phases' notes.
impl Commits {
    fn describe(&self) -> String {
        let to_commit = if self.ingests > 0.0 {
            format!(
                ", {:.2} ms from arrival to commit per request",
                self.ingest_secs * 1000.0 / self.ingests
            )
        } else {
            String::new()
        };
        format!(
            "{:.0} commits of {:.1} commands each, {:.2} ms per commit from its first \
             statement to COMMIT's answer{to_commit}",
            self.n,
            self.commands_each(),
            self.ms_each(),
        )
    }
}

/// A commit's time split: what the statements executed, what WAL flushes took (both as
/// totals over the span, divided by the commits), and the rest: round trips between hookgate
/// and PostgreSQL, waiting for a CPU, hookgate's own work in the transaction.
fn split(commits: &Commits, statements: &Statements, flush_ms: Option<f64>) -> Option<String> {
    if commits.n < 1.0 {
        return None;
    }
    let each = commits.ms_each();
    let mut parts = Vec::new();
    let mut rest = each;
    if let Some((ms, calls)) = statements.total {
        let per = ms / commits.n;
        rest -= per;
        parts.push(format!(
            "statements executing {per:.2} ms ({:.1} statements, each a round trip unless \
             pipelined; COPY not counted)",
            calls / commits.n
        ));
    }
    if let Some(flush) = flush_ms {
        let per = flush / commits.n;
        rest -= per;
        parts.push(format!("WAL flush {per:.2} ms"));
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "per commit {each:.2} ms = {} + {:.2} ms elsewhere (round trips, waiting for a CPU, \
         hookgate's own work)",
        parts.join(" + "),
        rest.max(0.0)
    ))
}

/// `n` gateways on `db` (migrated first), each with `endpoints`, and their data directories.
async fn nodes(
    b: &Bench,
    db: &Database,
    endpoints: &str,
    n: usize,
) -> (Vec<Gateway>, Vec<tempfile::TempDir>) {
    let store = db.store_keys(b.args.pg_pool_size);
    let (mut gws, mut dirs) = (Vec::new(), Vec::new());
    for i in 0..n {
        let dir = b.data_dir();
        let toml = b.toml(dir.path(), "", &store, endpoints);
        if i == 0 {
            db.migrate(&b.hookgate, b.scratch.path(), &toml).await;
        }
        gws.push(b.gateway(&toml).await);
        dirs.push(dir);
    }
    (gws, dirs)
}

fn pids(gws: &[Gateway]) -> Vec<u32> {
    gws.iter().filter_map(Gateway::pid).collect()
}

/// Puts what was spent over `row`'s window (per `units` of `unit`) into its CPU column and its
/// note: hookgate's commits (`commits`, described by `hookgate`), their time split, the
/// server's side, and the statements that took longest.
fn attach(
    row: &mut Row,
    samples: &Samples,
    db: &Database,
    (units, unit): (u64, &str),
    (commits, hookgate): (Commits, &str),
    statements: &Statements,
) {
    let spent = row.window.and_then(|w| samples.over(w));
    let mut note = format!("hookgate: {hookgate}");
    let flush = spent
        .as_ref()
        .filter(|_| db.timing)
        .map(|s| s.counters.wal_sync_ms);
    if let Some(split) = split(&commits, statements, flush) {
        note.push_str(&format!("; {split}"));
    }
    if let Some(s) = &spent {
        row.db_cpu = Some(s.pg_cpu);
        row.cpu.0 = row.cpu.0.or(Some(s.hookgate_cpu));
        note.push_str(&format!("; postgres {}", s.describe(units, unit)));
    }
    if !statements.top.is_empty() {
        note.push_str("; statements by total time: ");
        note.push_str(&statements.top.join(" | "));
    }
    eprintln!("  {}: {note}", row.name);
    row.spent = Some(note);
}

async fn stop(gws: Vec<Gateway>, db: Database) {
    for gw in gws {
        gw.stop().await;
    }
    db.drop().await;
}

pub async fn ingest(b: &Bench, server: &Server) -> Vec<Row> {
    let db = server.create().await;
    let (gws, _dirs) = nodes(b, &db, "", 1).await;
    let watch = Watch::start(server, &db, pids(&gws)).await;
    let pool = b.timed_pool();
    let before = Commits::read(&gws[0]).await;
    db.reset_statements().await;
    let c = b.drive(&gws[0], &pool, b.timed()).await;
    let statements = db.statements(8).await;
    let samples = watch.finish().await;
    let commits = Commits::since(&gws[0], &before).await;
    let mut row = Row::timed(
        "PostgreSQL: durable verified ingest, one node (events/s)",
        &c.run,
        c.problems,
    );
    attach(
        &mut row,
        &samples,
        &db,
        (c.accepted, "event"),
        (commits, &commits.describe()),
        &statements,
    );
    stop(gws, db).await;
    vec![row]
}

pub async fn ingest_two(b: &Bench, server: &Server) -> Vec<Row> {
    let db = server.create().await;
    let (gws, _dirs) = nodes(b, &db, "", 2).await;
    let watch = Watch::start(server, &db, pids(&gws)).await;
    let half = wrk::Generator {
        script: b.generator.script.clone(),
        connections: (b.args.concurrency / 2).max(1),
        pin: b.generator.pin.clone(),
    };
    let pools = (b.timed_pool(), b.timed_pool());
    let before = (Commits::read(&gws[0]).await, Commits::read(&gws[1]).await);
    db.reset_statements().await;
    let (one, two) = tokio::join!(
        b.drive_via(&half, &gws[0], &pools.0, b.timed()),
        b.drive_via(&half, &gws[1], &pools.1, b.timed()),
    );
    let statements = db.statements(8).await;
    let samples = watch.finish().await;
    let nodes = (
        Commits::since(&gws[0], &before.0).await,
        Commits::since(&gws[1], &before.1).await,
    );
    let described = format!(
        "node 1 {}; node 2 {}",
        nodes.0.describe(),
        nodes.1.describe()
    );
    let mut row = sum_of_two(b, &one, &two);
    attach(
        &mut row,
        &samples,
        &db,
        (one.accepted + two.accepted, "event"),
        (nodes.0.plus(nodes.1), &described),
        &statements,
    );
    stop(gws, db).await;
    vec![row]
}

/// One row for two wrk runs at once: rates summed over a window covering both, the worse
/// latencies, CPU summed; a problem if they did not start within 5% of the run of each other.
fn sum_of_two(b: &Bench, one: &Checked, two: &Checked) -> Row {
    let mut problems = Vec::new();
    for (node, c) in [(1, one), (2, two)] {
        problems.extend(c.problems.iter().map(|p| format!("node {node}: {p}")));
    }
    let (w1, w2) = (one.run.window, two.run.window);
    if let (Some(w1), Some(w2)) = (w1, w2) {
        let skew = if w1.0 > w2.0 {
            w1.0 - w2.0
        } else {
            w2.0 - w1.0
        };
        eprintln!(
            "  the two wrk started {:.0} ms apart",
            skew.as_secs_f64() * 1000.0
        );
        if skew > Duration::from_secs(b.args.seconds) / 20 {
            problems.push(format!(
                "the two wrk started {:.2} s apart",
                skew.as_secs_f64()
            ));
        }
    }
    let worse = |f: fn(&wrk::Run) -> f64| Some(f(&one.run).max(f(&two.run)) / 1000.0);
    let sum = |a: Option<f64>, b: Option<f64>| Some(a? + b?);
    let mut row = Row::figure(
        "PostgreSQL: durable verified ingest, two nodes on one database (events/s)",
        one.run.rate() + two.run.rate(),
        true,
        problems,
    );
    row.p50 = worse(|r| r.p50);
    row.p99 = worse(|r| r.p99);
    row.p999 = worse(|r| r.p999);
    row.cpu.1 = sum(one.run.wrk_cpu, two.run.wrk_cpu);
    row.window = match (w1, w2) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        _ => None,
    };
    row
}

pub async fn drain(b: &Bench, server: &Server) -> Vec<Row> {
    let db = server.create().await;
    let (gws, _dirs) = nodes(b, &db, &delivery::drain_endpoint(b), 1).await;
    let gw = &gws[0];
    let (accepted, problems) = delivery::fill_paused(b, gw).await;
    let watch = Watch::start(server, &db, pids(&gws)).await;
    let before = Commits::read(gw).await;
    db.reset_statements().await;
    let mut row = delivery::drain_now(b, gw, accepted, problems, "PostgreSQL: ").await;
    let statements = db.statements(8).await;
    let samples = watch.finish().await;
    let commits = Commits::since(gw, &before).await;
    attach(
        &mut row,
        &samples,
        &db,
        (b.sink.received(), "delivery"),
        (
            commits,
            &format!("{} (claims and result batches)", commits.describe()),
        ),
        &statements,
    );
    stop(gws, db).await;
    vec![row]
}

pub async fn latency(b: &Bench, server: &Server, ingest_rate: f64) -> Vec<Row> {
    let db = server.create().await;
    let (gws, _dirs) = nodes(b, &db, &latency::endpoint(b), 1).await;
    let gw = &gws[0];
    let watch = Watch::start(server, &db, pids(&gws)).await;
    let mut rows = Vec::new();
    let mut each = Vec::new();
    for rate in latency::rates(ingest_rate) {
        let before = Commits::read(gw).await;
        db.reset_statements().await;
        rows.extend(latency::measure(b, gw, &[rate], "PostgreSQL: ").await);
        each.push((Commits::since(gw, &before).await, db.statements(8).await));
    }
    let samples = watch.finish().await;
    for (row, (commits, statements)) in rows.iter_mut().zip(each) {
        let events = (row.rate * b.args.seconds as f64).round() as u64;
        attach(
            row,
            &samples,
            &db,
            (events, "event"),
            (commits, &commits.describe()),
            &statements,
        );
    }
    stop(gws, db).await;
    rows
}
