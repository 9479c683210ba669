//! The report: the run's settings and ceilings, one markdown row per figure (a [`Row`]), then
//! the PostgreSQL figures beside redb's and Svix's (`pg::versus`).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::wrk::Run;
use crate::{Bench, pg, wrk};

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

/// Prints it all; false if any row had a problem. `first_rows`: each phase's first row, by
/// phase name.
pub fn print(
    bench: &Bench,
    (generator, raw): (f64, f64),
    rows: &[Row],
    first_rows: &BTreeMap<&str, Row>,
    server: Option<&pg::Server>,
) -> bool {
    let a = &bench.args;
    println!(
        "\n{} connections (wrk -t1), {} s timed phases, {} B signed bodies, quick_repair = {}, \
         {} CPUs; {}",
        a.concurrency,
        a.seconds,
        a.body_bytes,
        a.quick_repair,
        bench.cpus,
        bench.pin.describe()
    );
    println!(
        "generator ceiling {generator:.0} requests/s; raw hyper ceiling {raw:.0} requests/s \
         = {:.2} × the generator's\n",
        raw / generator.max(1.0)
    );
    if let Some(server) = server {
        println!("{}", server.settings);
    }
    println!(
        "| phase | per second | × raw | p50 ms | p99 ms | p99.9 ms | CPU server / wrk [/ pg] | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut clean = true;
    for row in rows {
        let ratio = if row.ratio {
            format!("{:.2}", row.rate / raw.max(1.0))
        } else {
            "–".into()
        };
        let errors = if row.problems.is_empty() {
            "0".to_string()
        } else {
            clean = false;
            row.problems.join("; ")
        };
        let cpu = match (row.cpu, row.db_cpu) {
            ((None, None), None) => "–".to_string(),
            ((s, w), None) => format!("{} / {}", wrk::cpu(s), wrk::cpu(w)),
            ((s, w), pg) => format!("{} / {} / pg {}", wrk::cpu(s), wrk::cpu(w), wrk::cpu(pg)),
        };
        println!(
            "| {} | {:.0} | {ratio} | {} | {} | {} | {cpu} | {errors} |",
            row.name,
            row.rate,
            ms(row.p50),
            ms(row.p99),
            ms(row.p999)
        );
    }
    pg::versus::print(first_rows, bench.args.backlog);
    if !clean {
        println!("\nSOME PHASES HAD PROBLEMS (errors column): their figures are not clean.");
    }
    clean
}

/// A phase's line in the table.
#[derive(Clone)]
pub struct Row {
    pub name: String,
    pub rate: f64,
    /// Whether a ratio to the raw ceiling means something.
    pub ratio: bool,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    /// CPUs used by the server and by wrk while wrk sent (in the `pull` phase's drains, by
    /// the server and by this harness, whose consumers take wrk's place).
    pub cpu: (Option<f64>, Option<f64>),
    /// CPUs used by PostgreSQL over the same span (its phases only).
    pub db_cpu: Option<f64>,
    /// When the figure was measured: what the PostgreSQL phases read the database's own
    /// statistics over.
    pub window: Option<(Instant, Instant)>,
    /// Where the time went (the PostgreSQL phases), printed under the comparison table.
    pub spent: Option<String>,
    /// What went wrong; empty when nothing did.
    pub problems: Vec<String>,
}

impl Row {
    /// A wrk run's rate and latencies.
    pub fn timed(name: impl Into<String>, run: &Run, problems: Vec<String>) -> Row {
        Row {
            name: name.into(),
            rate: run.rate(),
            ratio: true,
            p50: run.ms(run.p50),
            p99: run.ms(run.p99),
            p999: run.ms(run.p999),
            cpu: (run.server_cpu, run.wrk_cpu),
            db_cpu: None,
            window: run.window,
            spent: None,
            problems,
        }
    }

    /// A figure with no latencies of its own.
    pub fn figure(name: impl Into<String>, rate: f64, ratio: bool, problems: Vec<String>) -> Row {
        Row {
            name: name.into(),
            rate,
            ratio,
            p50: None,
            p99: None,
            p999: None,
            cpu: (None, None),
            db_cpu: None,
            window: None,
            spent: None,
            problems,
        }
    }
}
