//! Phase 11: hookgate's resident memory as `--rss-backlog` events (wrk, each once, in four
//! steps) wait behind a paused endpoint, its peak; then the endpoint is resumed, the process
//! killed with SIGKILL at once and started again on the same file: the time from the new
//! process's start to its first delivery.

use std::time::{Duration, Instant};

use crate::{Bench, Row};

pub async fn phase(b: &Bench) -> Vec<Row> {
    let dir = b.data_dir();
    let store = format!("max_backlog = {}\n", b.args.rss_backlog * 2);
    let endpoint = b.endpoint("held", b.args.concurrency);
    let toml = b.toml(dir.path(), "", &store, &endpoint);
    let gw = b.gateway(&toml).await;
    gw.admin("/endpoints/held/pause", "").await;
    let steps = 4;
    let mut samples = vec![(0, gw.memory_kib().0)];
    let mut sent = 0;
    let mut problems = Vec::new();
    for step in 1..=steps {
        let target = b.args.rss_backlog * step / steps;
        let (accepted, p) = b.fill(&gw, target - sent).await;
        sent += accepted;
        problems.extend(p);
        samples.push((sent, gw.memory_kib().0));
        eprintln!("backlog {sent}: {} KiB resident", gw.memory_kib().0);
    }
    let peak_kib = gw.memory_kib().1;
    let growth: Vec<String> = samples
        .iter()
        .map(|(n, kib)| format!("{}k: {:.0}", n / 1000, *kib as f64 / 1024.0))
        .collect();
    println!("resident MiB as the backlog grew: {}", growth.join(", "));
    // Restart with everything pending: resume, then SIGKILL at once, so the new process finds
    // the backlog due and must start delivering it.
    b.sink.reset();
    gw.admin("/endpoints/held/resume", "").await;
    gw.kill().await;
    // Let deliveries the dead process had in flight land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered_before_kill = b.sink.received();
    let started = Instant::now();
    let gw = b.spawn_gateway(&toml);
    let mut restart_problems = Vec::new();
    if !b
        .sink
        .wait_for(delivered_before_kill + 1, Duration::from_secs(300))
        .await
    {
        restart_problems.push("no delivery within 300 s of the restart".into());
    }
    let first_delivery = started.elapsed();
    gw.kill().await;
    vec![
        Row::figure(
            format!("peak RSS with a {sent} backlog (MiB)"),
            peak_kib as f64 / 1024.0,
            false,
            problems,
        ),
        Row::figure(
            format!(
                "restart with {} pending: start to first delivery (ms)",
                sent.saturating_sub(delivered_before_kill)
            ),
            first_delivery.as_secs_f64() * 1000.0,
            false,
            restart_problems,
        ),
    ]
}
