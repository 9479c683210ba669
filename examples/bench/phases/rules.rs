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
    let mut rows = Vec::new();
    for filtered in [false, true] {
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
        rows.push(Row::timed(name, &c.run, c.problems));
    }
    rows
}

pub async fn transforms(b: &Bench) -> Vec<Row> {
    let mut rows = Vec::new();
    for transform in [
        None,
        Some(".body |= {n: .n, type: .type, size: (.pad | length)}"),
    ] {
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
        rows.push(drain_now(b, &gw, accepted, problems, label).await);
        gw.stop().await;
    }
    rows
}
