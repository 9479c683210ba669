//! A node whose PostgreSQL goes away mid-load, as in a crash (an immediate stop, with attempts
//! in flight whose results cannot be recorded): ingest answers 503 (nothing is acknowledged
//! that is not committed), `/readyz` says so, and when the server is back the node recovers by
//! itself, records the results it held, and delivers every event it acknowledged. The server is
//! a private one the test makes (`initdb` into a temporary folder; run as the `postgres` user
//! when the test runs as root, which initdb refuses), so stopping it disturbs no other test.
//! Without PostgreSQL's binaries the test says it is skipped, by name.

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
        if is_root() {
            run("chown", &["-R", "postgres:postgres", &path(dir.path())]);
        }
        let data = path(&dir.path().join("data"));
        assert!(
            as_postgres(
                &bin.join("initdb"),
                &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
            ),
            "initdb"
        );
        let mut server = PrivateServer { bin, dir, port: 0 };
        // A port found free may be taken before the server binds it: then another.
        for _ in 0..5 {
            server.port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            if server.pg_ctl("start") {
                return Some(server);
            }
        }
        panic!("the private PostgreSQL server did not start on any of five ports");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `pg_ctl start` or, for anything else, an immediate stop (as in a crash: no
    /// checkpoint, the next start recovers from the WAL); whether it succeeded.
    fn pg_ctl(&self, action: &str) -> bool {
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
                &["-D", &data, "-m", "immediate", "-w", "stop"],
            ),
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = path(&self.dir.path().join("data"));
        let _ = try_as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "stop"],
        );
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

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a PostgreSQL binary as `postgres` when root (they refuse root), else as this user;
/// its output.
fn try_as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    command.args(args).output().expect("runs")
}

fn as_postgres(program: &Path, args: &[&str]) -> bool {
    let out = try_as_postgres(program, args);
    if !out.status.success() {
        eprintln!(
            "{} {args:?}: {}",
            path(program),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
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

/// Attempts that ended, by the node's own count (before their results are recorded).
async fn attempts_ended(admin: &str) -> usize {
    metrics_text(admin)
        .await
        .lines()
        .filter(|l| l.starts_with("hookgate_delivery_attempts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

#[tokio::test]
async fn a_node_rides_out_its_database_going_away() {
    let Some(server) = PrivateServer::start("a_node_rides_out_its_database_going_away") else {
        return;
    };
    let receiver = Receiver::start().await;
    // Slow enough that attempts are in flight when the database goes.
    receiver.delay(std::time::Duration::from_millis(1500));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        &format!("token = \"{ADMIN_TOKEN}\""),
        &format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{}\"\n{}\n[[endpoints]]\nid = \"e\"\nurl = \"{}\"\nmax_in_flight = 64\n",
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
    // Attempts in flight when the database goes: their results cannot be recorded until it is
    // back, and the node holds them (a delivery sent again only after its lease, timeout +
    // 30 s, would fail the last check below, which waits less).
    receiver.wait_for(1).await;
    assert!(server.pg_ctl("stop"));
    // Their answers come while it is away (nothing new is claimed meanwhile).
    eventually_async("the attempts in flight ended", async || {
        attempts_ended(&node.admin).await == receiver.count()
    })
    .await;
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
    assert!(server.pg_ctl("start"));
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
    // The results held through the outage are recorded: every event shows delivered.
    eventually_async(
        "every acknowledged event recorded as delivered",
        async || {
            let (_, page) =
                admin_at(&node.admin, reqwest::Method::GET, "/events?limit=100", "").await;
            page["data"].as_array().is_some_and(|events| {
                events.len() == acked.len()
                    && events.iter().all(|e| {
                        e["deliveries"]
                            .as_array()
                            .is_some_and(|d| d.iter().all(|d| d["status"] == "delivered"))
                    })
            })
        },
    )
    .await;
    node.kill_9().await;
}
