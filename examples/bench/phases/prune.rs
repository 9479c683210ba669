//! Phase 9: ingest p99 while `--prune-dead` dead letters wait for their retention, with
//! pruning every second and with pruning off, on the same store (the gateway restarted on it
//! with each setting). Pruning reads only finished events past their retention, so the
//! waiting dead letters cost it nothing.

use std::time::Duration;

use super::replay::settle;
use crate::{Bench, Row, closed_port};

pub async fn phase(b: &Bench) -> Vec<Row> {
    let dir = b.data_dir();
    // A closed port: every attempt fails at once, and one attempt is all there is.
    let port = closed_port();
    let dlq = format!(
        "[[endpoints]]\nid = \"dlq\"\nurl = \"http://127.0.0.1:{port}/gone\"\nmax_in_flight = 64\nsources = [\"none\"]\nretry = {{ max_attempts = 1 }}\n[[sources]]\nid = \"none\"\nverify = \"none\"\n"
    );
    let store =
        |interval: &str| format!("prune_interval = \"{interval}\"\nmax_backlog = 100000000\n");
    // Fill through a gateway whose endpoint takes the bench source's events and kills them.
    let fill_endpoint = dlq.replace("sources = [\"none\"]", "sources = [\"bench\"]");
    let gw = b
        .gateway(&b.toml(dir.path(), "", &store("1h"), &fill_endpoint))
        .await;
    let (filled, mut fill_problems) = b.fill(&gw, b.args.prune_dead).await;
    if !settle(&gw, Duration::from_secs(120 + filled / 1000)).await {
        fill_problems.push("dead letters still pending".into());
    }
    gw.stop().await;
    let mut rows = Vec::new();
    // The same store, the endpoint kept (on another source) so its dead letters stay: ingest
    // now makes no deliveries, and only pruning differs.
    for (interval, name) in [("1s", "every second"), ("1h", "off")] {
        let gw = b
            .gateway(&b.toml(dir.path(), "", &store(interval), &dlq))
            .await;
        let pool = b.timed_pool();
        let r = b.drive(&gw, &pool, b.timed()).await;
        println!(
            "prune {name}: ingest p99 {:.2} ms with {} dead letters waiting",
            r.run.p99 / 1000.0,
            filled
        );
        let mut problems = std::mem::take(&mut fill_problems);
        problems.extend(r.problems);
        rows.push(Row::timed(
            format!(
                "ingest, {} dead letters waiting, pruning {name} (events/s)",
                filled
            ),
            &r.run,
            problems,
        ));
        gw.stop().await;
    }
    rows
}
