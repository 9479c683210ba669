//! Phase 10: memory while `--hangup-clients` clients each send a signed 1 MiB body and hang
//! up without reading the answer, all at once (clients of this harness: wrk cannot hang up).
//! Bodies held from reading to their commit are bounded by `ingress.max_buffered_bytes`, and
//! the writer drops ingests whose client has gone, so the peak stays near that budget instead
//! of growing with the number of clients.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookgate::verify::standard_webhooks;
use tokio::io::AsyncWriteExt;

use crate::{Bench, Row, signing_key};

const BODY: usize = 1024 * 1024;

pub async fn phase(b: &Bench) -> Vec<Row> {
    let dir = b.data_dir();
    let ingress = format!(
        "max_body_bytes = {BODY}\n{}",
        b.args
            .hangup_buffered_bytes
            .map_or(String::new(), |v| format!("max_buffered_bytes = {v}\n"))
    );
    let gw = b.gateway(&b.toml(dir.path(), &ingress, "", "")).await;
    let before = gw.memory_kib().0;
    let addr = gw
        .ingress
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("address")
        .to_string();
    let key = signing_key();
    let body = format!(r#"{{"type":"big","pad":"{}"}}"#, "x".repeat(BODY - 30));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..b.args.hangup_clients {
        let (addr, key, body) = (addr.clone(), key.clone(), body.clone());
        tasks.spawn(async move {
            let id = format!("msg_hangup_{n}");
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs() as i64;
            let sig = standard_webhooks::sign(&key, &id, ts, body.as_bytes());
            let head = format!(
                "POST /in/bench HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {sig}\r\n\
                 content-length: {}\r\n\r\n",
                body.len()
            );
            let Ok(mut tcp) = tokio::net::TcpStream::connect(&addr).await else {
                return false;
            };
            let sent = tcp.write_all(head.as_bytes()).await.is_ok()
                && tcp.write_all(body.as_bytes()).await.is_ok();
            // Hang up without reading the answer.
            drop(tcp);
            sent
        });
    }
    let mut sent = 0u64;
    let mut peak_seen = before;
    while let Some(done) = tasks.join_next().await {
        if done.unwrap_or(false) {
            sent += 1;
        }
        peak_seen = peak_seen.max(gw.memory_kib().0);
    }
    // Let what was read be written or dropped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, peak) = gw.memory_kib();
    println!(
        "hangup: {sent} of {} clients sent 1 MiB and hung up; resident {} MiB before, peak {} MiB, {} MiB after",
        b.args.hangup_clients,
        before / 1024,
        peak.max(peak_seen) / 1024,
        after / 1024
    );
    gw.kill().await;
    let unsent = b.args.hangup_clients - sent;
    vec![Row::figure(
        format!(
            "peak RSS while {} clients send 1 MiB and hang up (MiB)",
            b.args.hangup_clients
        ),
        peak.max(peak_seen) as f64 / 1024.0,
        false,
        if unsent > 0 {
            vec![format!("{unsent} clients could not send")]
        } else {
            vec![]
        },
    )]
}
