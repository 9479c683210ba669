//! Phases 1 and 2: the generator's own ceiling (wrk against the fixed responder, which
//! answers without reading anything) and the raw ceiling (wrk against a bare hyper server that
//! reads the body), each responder in a process of its own on the server side. The same pool
//! serves both (neither dedups, so it may wrap).

use crate::procs::Responder;
use crate::{Bench, Row};

/// (generator ceiling, raw ceiling, their rows).
pub async fn phase(b: &Bench) -> (f64, f64, Vec<Row>) {
    let rate = b.args.pool_rate.unwrap_or(100_000.0);
    let pool = b.pool((1.5 * rate * b.args.seconds as f64).ceil() as u64);
    let mut rows = Vec::new();
    let mut rates = Vec::new();
    for (mode, name) in [
        (
            "fixed",
            "generator ceiling: wrk → fixed 200, nothing read (requests/s)",
        ),
        (
            "raw",
            "raw hyper ceiling: wrk → hyper, body read, 202 (requests/s)",
        ),
    ] {
        let server = Responder::start(&b.pin, mode).await;
        let url = format!("http://{}/in/bench", server.addr);
        let run = b.generator.run(&url, &pool, b.timed(), server.pid()).await;
        server.stop().await;
        eprintln!("{name}: {:.0}", run.rate());
        rates.push(run.rate());
        rows.push(Row::timed(name, &run, run.problems(false)));
    }
    (rates[0], rates[1], rows)
}
