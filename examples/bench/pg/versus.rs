//! The PostgreSQL figures beside redb's from the same run, beside Svix's as measured on this
//! VM class (1.100.0 with PostgreSQL and Redis: ingest 1,820/s, drain about 2,000/s, p99
//! 6.8–7.8 ms), and against the targets of issue 15 for PostgreSQL sharing the 2-core box
//! (fsync on, synchronous_commit = on): ingest ≥ 10,000/s, drain ≥ 6,000/s, p99 < 10 ms at
//! 50 events/s. Then where PostgreSQL's time went in each of its phases.

use std::collections::BTreeMap;

use crate::Row;

const INGEST_TARGET: f64 = 10_000.0;
const DRAIN_TARGET: f64 = 6_000.0;
const P99_TARGET_MS: f64 = 10.0;

/// The comparison table, from the first row of each phase (`ingest`, `drain`, `latency` and
/// their `pg-` counterparts, by phase name); nothing when no PostgreSQL phase ran.
pub fn print(first_rows: &BTreeMap<&str, Row>, backlog: u64) {
    let pg: Vec<&Row> = ["pg-ingest", "pg-ingest-2", "pg-drain", "pg-latency"]
        .iter()
        .filter_map(|p| first_rows.get(p))
        .collect();
    if pg.is_empty() {
        return;
    }
    let get = |phase: &str| first_rows.get(phase);
    let rate = |phase: &str| get(phase).map_or("–".to_string(), |r| format!("{:.0}", r.rate));
    let p = |phase: &str, pick: fn(&Row) -> Option<f64>| {
        get(phase)
            .and_then(pick)
            .map_or("–".to_string(), |v| format!("{v:.2}"))
    };
    let met = |v: Option<f64>, ok: &dyn Fn(f64) -> bool| match v {
        Some(v) if ok(v) => "yes",
        Some(_) => "**no**",
        None => "–",
    };
    let ingest_met = {
        let one = met(get("pg-ingest").map(|r| r.rate), &|v| v >= INGEST_TARGET);
        match get("pg-ingest-2") {
            Some(r) => format!(
                "1 node {one}, 2 nodes {}",
                met(Some(r.rate), &|v| v >= INGEST_TARGET)
            ),
            None => one.to_string(),
        }
    };
    println!(
        "\nPostgreSQL beside redb (this run) and Svix 1.100.0 (PostgreSQL + Redis, measured on \
         this VM class), against the targets for PostgreSQL sharing the box:\n"
    );
    println!("| figure | redb | PostgreSQL, 1 node | PostgreSQL, 2 nodes | Svix | target | met |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| durable verified ingest (events/s) | {} | {} | {} | 1,820 | ≥ 10,000 | {ingest_met} |",
        rate("ingest"),
        rate("pg-ingest"),
        rate("pg-ingest-2"),
    );
    println!(
        "| drain of a {backlog} backlog (deliveries/s) | {} | {} | – | about 2,000 | ≥ 6,000 | {} |",
        rate("drain"),
        rate("pg-drain"),
        met(get("pg-drain").map(|r| r.rate), &|v| v >= DRAIN_TARGET)
    );
    println!(
        "| end-to-end p50 at 50 events/s (ms) | {} | {} | – | – | – | – |",
        p("latency", |r| r.p50),
        p("pg-latency", |r| r.p50),
    );
    println!(
        "| end-to-end p99 at 50 events/s (ms) | {} | {} | – | 6.8–7.8 | < 10 | {} |",
        p("latency", |r| r.p99),
        p("pg-latency", |r| r.p99),
        met(get("pg-latency").and_then(|r| r.p99), &|v| v
            < P99_TARGET_MS)
    );
    let spent: Vec<&Row> = pg.into_iter().filter(|r| r.spent.is_some()).collect();
    if !spent.is_empty() {
        println!("\nWhere the time went on PostgreSQL:\n");
        for r in spent {
            println!("- {}: {}", r.name, r.spent.as_deref().unwrap_or(""));
        }
    }
}
