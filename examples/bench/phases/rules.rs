//! Phases `filters` and `transforms` (issue 18), each beside the same run without them:
//! - `filters`: timed ingest with 100 endpoints, each carrying a 5-clause payload filter of
//!   which four clauses every event passes (a `$regex` among them) and the last decides: the
//!   first endpoint's takes every event, the others' none; against 100 endpoints routed by
//!   event type, the first taking every event. Both runs store the same one delivery per event
//!   to the same endpoint, and every endpoint is paused, so the difference is the filters'
//!   cost at ingest alone (spreading the deliveries over 100 endpoints costs the store more,
//!   which is not the filters' doing).
//! - `transforms`: the drain of `--backlog` to one endpoint, with a jq transform on every
//!   delivery (reshaping the body) and without.
//!
//! Each runs `--rule-rounds` rounds of the pair, alternating, and reports each configuration's
//! median round with every round's figure in its name: one run of either varies by 10 % and
//! more on a 2-CPU machine, more than the cost measured.

use crate::commits::Commits;
use crate::phases::delivery::{drain_now, fill_paused};
use crate::{Bench, Row};

/// Endpoints of the `filters` phase, and the order keys its events carry (one per endpoint).
const ENDPOINTS: u64 = 100;

/// Endpoint `i`'s filter: four clauses every event passes, then the one that decides:
/// endpoint 0 takes every event (its bodies all have a key `k`), the others none.
fn filter(i: u64) -> String {
    let last = if i == 0 {
        r#"{"k": {"$exist": true}}"#.to_string()
    } else {
        format!(r#"{{"k": "none-{i}"}}"#)
    };
    format!(
        r#"{{"body": {{"$and": [{{"type": "bench.event"}}, {{"pad": {{"$exist": true}}}}, {{"n": {{"$startsWith": "0"}}}}, {{"type": {{"$regex": "^bench[.]"}}}}, {last}]}}}}"#
    )
}

pub async fn filters(b: &Bench) -> Vec<Row> {
    let mut rounds = Rounds::new(b);
    for round in 0..rounds.len() {
        let filtered = round % 2 == 1;
        let endpoints: String = (0..ENDPOINTS)
            .map(|i| {
                let base = b.endpoint(&format!("e{i}"), 4);
                match (filtered, i) {
                    (true, _) => format!("{base}filter = '{}'\n", filter(i)),
                    (false, 0) => base,
                    (false, _) => format!("{base}event_types = [\"other.{i}\"]\n"),
                }
            })
            .collect();
        let dir = b.data_dir();
        let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoints)).await;
        for i in 0..ENDPOINTS {
            gw.admin(&format!("/endpoints/e{i}/pause"), "").await;
        }
        let rate = b.args.pool_rate.unwrap_or(b.raw).max(1000.0);
        let pool = b.keyed_pool(
            (1.5 * rate * b.args.seconds as f64).ceil() as u64,
            ENDPOINTS,
        );
        b.sink.reset();
        let c = b.drive(&gw, &pool, b.timed()).await;
        gw.stop().await;
        let name = if filtered {
            "ingest, 100 endpoints with 5-clause filters (events/s)"
        } else {
            "ingest, 100 endpoints routed by type, no filter (events/s)"
        };
        rounds.push(round, Row::timed(name, &c.run, c.problems));
    }
    rounds.medians()
}

pub async fn transforms(b: &Bench) -> Vec<Row> {
    let mut rounds = Rounds::new(b);
    for round in 0..rounds.len() {
        let transform =
            (round % 2 == 1).then_some(".body |= {n: .n, type: .type, size: (.pad | length)}");
        let dir = b.data_dir();
        let endpoint = format!(
            "{}{}",
            crate::phases::delivery::drain_endpoint(b),
            transform
                .map(|t| format!("transform = '{t}'\n"))
                .unwrap_or_default()
        );
        let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoint)).await;
        let (accepted, problems) = fill_paused(b, &gw).await;
        let label = if transform.is_some() {
            "with a jq transform: "
        } else {
            "no transform: "
        };
        let before = Commits::read(&gw).await;
        rounds.push(round, drain_now(b, &gw, accepted, problems, label).await);
        // The store's commits are a large share of a drain's cost, and fewer deliveries a
        // second commit in smaller groups: shown, so a ratio can be read against them.
        println!("    {}", Commits::since(&gw, &before).await.brief());
        gw.stop().await;
    }
    rounds.medians()
}

/// The rows of a pair of configurations over several rounds: round `i` runs configuration
/// `i % 2`.
struct Rounds {
    runs: [Vec<Row>; 2],
    len: usize,
}

impl Rounds {
    fn new(b: &Bench) -> Self {
        Rounds {
            runs: [Vec::new(), Vec::new()],
            len: 2 * b.args.rule_rounds.max(1),
        }
    }

    /// Runs in all: two per round.
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, run: usize, row: Row) {
        println!("  round {}: {} {:.0}", run / 2 + 1, row.name, row.rate);
        self.runs[run % 2].push(row);
    }

    /// Each configuration's median round (by rate), named with every round's rate; a round's
    /// problems are kept whichever round is shown.
    fn medians(self) -> Vec<Row> {
        self.runs
            .into_iter()
            .filter_map(|mut rows| {
                let problems: Vec<String> = rows
                    .iter()
                    .flat_map(|r| r.problems.iter().cloned())
                    .collect();
                let rates: Vec<String> = rows.iter().map(|r| format!("{:.0}", r.rate)).collect();
                rows.sort_by(|a, b| a.rate.total_cmp(&b.rate));
                let middle = rows.len().checked_sub(1)? / 2;
                let mut row = rows.swap_remove(middle);
                row.name = format!(
                    "{}, median of {} rounds ({})",
                    row.name,
                    rates.len(),
                    rates.join(", ")
                );
                row.problems = problems;
                Some(row)
            })
            .collect()
    }
}
