//! Phase 9: ingest while a large dead-letter set is replayed. The replay goes in bounded
//! steps (one transaction each), so ingest should see no long stall: its p99 during the
//! replay is compared with its p99 just before, on the same gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Args, Row, TOKEN, Until, closed_port, generate, pending, start_hookgate, timed_row};

pub async fn phase(args: &Args) -> Vec<Row> {
    // A closed port: every attempt fails at once, and one attempt is all there is.
    let port = closed_port();
    let endpoint = format!(
        "[[endpoints]]\nid = \"dlq\"\nurl = \"http://127.0.0.1:{port}/gone\"\nmax_in_flight = 64\nretry = {{ max_attempts = 1 }}\n"
    );
    let gw = start_hookgate(args, &endpoint).await;
    let fill = generate(&gw.ingress, args, Until::Sent(args.replay_dead)).await;
    while pending(&gw.admin).await > 0.0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Replayed deliveries wait: only the replay's writes compete with ingest.
    gw.admin("/endpoints/dlq/pause").await;
    let baseline = generate(
        &gw.ingress,
        args,
        Until::Elapsed(Duration::from_secs(args.seconds)),
    )
    .await;
    let replaying = Arc::new(AtomicBool::new(true));
    let replay = {
        let (admin, flag) = (gw.admin.clone(), Arc::clone(&replaying));
        tokio::spawn(async move {
            let start = Instant::now();
            let resp = reqwest::Client::new()
                .post(format!("{admin}/api/v1/dead-letters/replay"))
                .bearer_auth(TOKEN)
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
    let during = generate(&gw.ingress, args, Until::While(replaying)).await;
    let (replayed, took) = replay.await.expect("replay task");
    println!(
        "replay: {replayed} of {} dead letters replayed in {:.2} s; ingest p99 {:.2} ms before, {:.2} ms during ({:.2}×)",
        fill.ok,
        took.as_secs_f64(),
        baseline.pct(0.99).unwrap_or(0.0),
        during.pct(0.99).unwrap_or(0.0),
        during.pct(0.99).unwrap_or(0.0) / baseline.pct(0.99).unwrap_or(f64::MAX)
    );
    gw.stop().await;
    vec![
        timed_row(
            "ingest before a replay, endpoint paused (events/s)",
            &baseline,
        ),
        timed_row(
            &format!("ingest while {replayed} dead letters are replayed (events/s)"),
            &during,
        ),
    ]
}
