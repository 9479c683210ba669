//! Phase 11: ingest p99 while `--prune-dead` dead letters wait for their retention, with
//! pruning every second and with pruning off, on the same store. Pruning reads only finished
//! events past their retention, so the waiting dead letters cost it nothing.

use std::time::Duration;

use hookgate::config::Config;

use super::{Args, Row, Until, bind_pair, closed_port, gateway_toml, generate, pending, timed_row};

/// A gateway on `dir` that prunes every `interval`.
async fn start(
    args: &Args,
    dir: &std::path::Path,
    interval: &str,
    endpoints: &str,
) -> (
    String,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let store = format!("prune_interval = \"{interval}\"\nmax_backlog = 100000000\n");
    let mut config = Config::from_toml(&gateway_toml(args, &store, endpoints)).expect("config");
    config.data_dir = dir.to_path_buf();
    let config = config.validate().expect("valid");
    let (ingress, admin) = bind_pair().await;
    let urls = (
        format!("http://{}/in/bench", ingress.local_addr().expect("addr")),
        format!("http://{}", admin.local_addr().expect("addr")),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = hookgate::run(config, hookgate::Listeners { ingress, admin }, async {
            let _ = stopped.await;
        })
        .await;
    });
    (urls.0, urls.1, stop, task)
}

pub async fn phase(args: &Args) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("tempdir");
    // A closed port: every attempt fails at once, and one attempt is all there is.
    let port = closed_port();
    let dlq = format!(
        "[[endpoints]]\nid = \"dlq\"\nurl = \"http://127.0.0.1:{port}/gone\"\nmax_in_flight = 64\nsources = [\"none\"]\nretry = {{ max_attempts = 1 }}\n[[sources]]\nid = \"none\"\nverify = \"none\"\n"
    );
    // Fill through a gateway whose endpoint takes the bench source's events and kills them.
    let fill_endpoint = dlq.replace("sources = [\"none\"]", "sources = [\"bench\"]");
    let (ingress, admin, stop, task) = start(args, dir.path(), "1h", &fill_endpoint).await;
    let filled = generate(&ingress, args, Until::Sent(args.prune_dead)).await;
    while pending(&admin).await > 0.0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(());
    let _ = task.await;
    let mut rows = Vec::new();
    // The same store, the endpoint kept (on another source) so its dead letters stay: ingest
    // now makes no deliveries, and only pruning differs.
    for (interval, name) in [("1s", "every second"), ("1h", "off")] {
        let (ingress, _admin, stop, task) = start(args, dir.path(), interval, &dlq).await;
        let r = generate(
            &ingress,
            args,
            Until::Elapsed(Duration::from_secs(args.seconds)),
        )
        .await;
        println!(
            "prune {name}: ingest p99 {:.2} ms with {} dead letters waiting",
            r.pct(0.99).unwrap_or(0.0),
            filled.ok
        );
        rows.push(timed_row(
            &format!(
                "ingest, {} dead letters waiting, pruning {name} (events/s)",
                filled.ok
            ),
            &r,
        ));
        let _ = stop.send(());
        let _ = task.await;
    }
    rows
}
