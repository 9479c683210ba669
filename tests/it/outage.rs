//! A node whose PostgreSQL goes away mid-load: ingest answers 503 (nothing is acknowledged that
//! is not committed), `/readyz` says so, and when the server is back the node recovers by
//! itself and delivers every event it acknowledged. The server is a private one the test
//! makes (`initdb` into a temporary folder, run as the `postgres` user, which initdb requires
//! of a root caller), so stopping it disturbs no other test. Without PostgreSQL's binaries the
//! test says it is skipped, by name.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// A PostgreSQL server of this test's own.
struct PrivateServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateServer {
    /// `None` (and a line saying so) where PostgreSQL's server binaries are not installed.
    fn start(test: &str) -> Option<PrivateServer> {
        let Some(bin) = server_binaries() else {
            eprintln!("SKIPPED outage::{test}: PostgreSQL's server binaries are not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        run("chown", &["-R", "postgres:postgres", &path(dir.path())]);
        let data = path(&dir.path().join("data"));
        as_postgres(
            &bin.join("initdb"),
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = PrivateServer { bin, dir, port };
        server.pg_ctl("start");
        Some(server)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, action: &str) {
        let data = path(&self.dir.path().join("data"));
        let log = path(&self.dir.path().join("log"));
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            path(self.dir.path())
        );
        match action {
            "start" => as_postgres(
                &self.bin.join("pg_ctl"),
                &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
            ),
            _ => as_postgres(
                &self.bin.join("pg_ctl"),
                &["-D", &data, "-m", "fast", "-w", "stop"],
            ),
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = path(&self.dir.path().join("data"));
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// The newest installed server's `bin` folder (Debian keeps them per major version).
fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(program: &Path, args: &[&str]) {
    let program = path(program);
    let mut all = vec!["-u", "postgres", "--", program.as_str()];
    all.extend_from_slice(args);
    run("runuser", &all);
}

/// Sends one signed event; `Some(event id)` when it was acknowledged.
async fn send_one(url: &str, id: &str) -> Option<String> {
    let headers = signed(INBOUND_SECRET, id, now_secs(), b"{}");
    let resp = post_raw(&client(), url, &headers, "{}").await.ok()?;
    if resp.status().as_u16() != 202 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_str(&resp.text().await.ok()?).ok()?;
    answer["event_id"].as_str().map(str::to_string)
}

#[tokio::test]
async fn a_node_rides_out_its_database_going_away() {
    let Some(server) = PrivateServer::start("a_node_rides_out_its_database_going_away") else {
        return;
    };
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        &format!("token = \"{ADMIN_TOKEN}\""),
        &format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{}\"\n{}\n[[endpoints]]\nid = \"e\"\nurl = \"{}\"\n",
            server.url(),
            orders_source(),
            receiver.url
        ),
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("migrate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = Binary::start(&config).await;
    let inbound = node.url("orders");
    let mut acked = HashSet::new();
    for i in 0..20 {
        acked.insert(
            send_one(&inbound, &format!("msg_before_{i}"))
                .await
                .expect("acknowledged"),
        );
    }
    // Settled first: an attempt whose result cannot be recorded while the database is away is
    // sent again only once its lease runs out (timeout + 30 s), longer than this test waits.
    eventually_async("the first events settled", async || {
        let (_, page) = admin_at(&node.admin, reqwest::Method::GET, "/events?limit=100", "").await;
        page["data"].as_array().is_some_and(|events| {
            events.len() == 20
                && events.iter().all(|e| {
                    e["deliveries"]
                        .as_array()
                        .is_some_and(|d| d.iter().all(|d| d["status"] == "delivered"))
                })
        })
    })
    .await;
    server.pg_ctl("stop");
    // Nothing is acknowledged while the database is away, and the node says it is not ready.
    for i in 0..10 {
        assert_eq!(send_one(&inbound, &format!("msg_during_{i}")).await, None);
    }
    eventually_async("/readyz reports the outage", async || {
        client()
            .get(format!("{}/readyz", node.admin))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 503)
    })
    .await;
    server.pg_ctl("start");
    // Back by itself: no restart of the node.
    let mut i = 0;
    eventually_async("ingest accepted again", async || {
        i += 1;
        match send_one(&inbound, &format!("msg_back_{i}")).await {
            Some(id) => {
                acked.insert(id);
                true
            }
            None => false,
        }
    })
    .await;
    for i in 0..20 {
        acked.insert(
            send_one(&inbound, &format!("msg_after_{i}"))
                .await
                .expect("acknowledged"),
        );
    }
    eventually("every acknowledged event delivered", || {
        let got: HashSet<String> = receiver
            .got()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        acked.is_subset(&got)
    })
    .await;
    node.kill_9().await;
}
