//! Phase 8: ingest while a large dead-letter set is replayed. The replay goes in bounded
//! steps (one transaction each), so ingest should see no long stall: its p99 during the
//! replay (wrk from before the replay call until it returns) is compared with its p99 just
//! before (wrk, timed), on the same gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::wrk::Load;
use crate::{Bench, Row, closed_port};

/// Waits until nothing is pending (every dead letter dead); false after `limit`.
pub async fn settle(gw: &crate::procs::Gateway, limit: Duration) -> bool {
    let start = Instant::now();
    while gw.pending().await > 0.0 {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

pub async fn phase(b: &Bench) -> Vec<Row> {
    // A closed port: every attempt fails at once, and one attempt is all there is.
    let port = closed_port();
    let endpoint = format!(
        "[[endpoints]]\nid = \"dlq\"\nurl = \"http://127.0.0.1:{port}/gone\"\nmax_in_flight = 64\nretry = {{ max_attempts = 1 }}\n"
    );
    let dir = b.data_dir();
    let gw = b.gateway(&b.toml(dir.path(), "", "", &endpoint)).await;
    let (filled, mut fill_problems) = b.fill(&gw, b.args.replay_dead).await;
    if !settle(&gw, Duration::from_secs(120 + filled / 1000)).await {
        fill_problems.push("dead letters still pending".into());
    }
    // Replayed deliveries wait: only the replay's writes compete with ingest.
    gw.admin("/endpoints/dlq/pause", "").await;
    let pool = b.timed_pool();
    let baseline = b.drive(&gw, &pool, b.timed()).await;
    drop(pool);
    let pool = b.timed_pool();
    let replaying = Arc::new(AtomicBool::new(true));
    let started = Arc::new(AtomicBool::new(false));
    let replay = {
        let (admin, flag, started) = (gw.admin.clone(), replaying.clone(), started.clone());
        tokio::spawn(async move {
            // Once wrk is sending.
            while !started.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let start = Instant::now();
            let resp = reqwest::Client::new()
                .post(format!("{admin}/api/v1/dead-letters/replay"))
                .bearer_auth(crate::TOKEN)
                .body("{}")
                .send()
                .await
                .expect("replay");
            let took = start.elapsed();
            let body: serde_json::Value =
                serde_json::from_str(&resp.text().await.expect("body")).expect("json");
            flag.store(false, Ordering::Relaxed);
            (body["replayed"].as_u64().unwrap_or(0), took)
        })
    };
    let load = Load::While {
        flag: replaying,
        started,
        limit: Duration::from_secs(600),
    };
    let during = b.drive(&gw, &pool, load).await;
    let (replayed, took) = replay.await.expect("replay task");
    let p99 = |r: &crate::wrk::Run| r.p99 / 1000.0;
    println!(
        "replay: {replayed} of {} dead letters replayed in {:.2} s; ingest p99 {:.2} ms before, {:.2} ms during ({:.2}×)",
        filled,
        took.as_secs_f64(),
        p99(&baseline.run),
        p99(&during.run),
        p99(&during.run) / p99(&baseline.run).max(1e-9)
    );
    gw.stop().await;
    let mut before_problems = fill_problems;
    before_problems.extend(baseline.problems);
    vec![
        Row::timed(
            "ingest before a replay, endpoint paused (events/s)",
            &baseline.run,
            before_problems,
        ),
        Row::timed(
            format!("ingest while {replayed} dead letters are replayed (events/s)"),
            &during.run,
            during.problems,
        ),
    ]
}
