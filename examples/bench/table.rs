//! The report: the run's settings and ceilings, one markdown row per figure, then the
//! PostgreSQL figures beside redb's and Svix's (`pg::versus`).

use std::collections::BTreeMap;

use crate::{Bench, Row, pg, wrk};

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
