//! The processes of a run and the cores they run on: this harness (wrk, the sinks, the
//! fixed-rate and hangup clients) on the load side; the server measured (the fixed responder,
//! the bare hyper server, or the real `hookgate` binary on a TOML file) on the server side.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::TOKEN;

/// Which CPUs each side may use (`taskset -c` lists); `None`: wherever the kernel likes.
#[derive(Clone, Debug)]
pub struct Pin {
    load: Option<String>,
    server: Option<String>,
}

impl Pin {
    /// `auto`: the CPUs this process may use, split in two halves (load first) when there are
    /// two or more and `taskset` exists; `none`; or `LOAD:SERVER`, e.g. `0:1`.
    pub fn parse(spec: &str) -> Result<Pin, String> {
        let none = Pin {
            load: None,
            server: None,
        };
        match spec {
            "none" => Ok(none),
            "auto" => {
                let cpus = allowed_cpus();
                if cpus.len() < 2 || which("taskset").is_none() {
                    eprintln!(
                        "not pinning: {} CPU(s), taskset {:?}",
                        cpus.len(),
                        which("taskset")
                    );
                    return Ok(none);
                }
                let (load, server) = cpus.split_at(cpus.len() / 2);
                let list = |c: &[usize]| c.iter().map(|n| n.to_string()).collect::<Vec<_>>();
                Ok(Pin {
                    load: Some(list(load).join(",")),
                    server: Some(list(server).join(",")),
                })
            }
            _ => {
                let (load, server) = spec
                    .split_once(':')
                    .ok_or_else(|| format!("--pin {spec}: auto, none or LOAD:SERVER"))?;
                which("taskset").ok_or("--pin needs taskset (util-linux)")?;
                Ok(Pin {
                    load: Some(load.to_string()),
                    server: Some(server.to_string()),
                })
            }
        }
    }

    pub fn describe(&self) -> String {
        match (&self.load, &self.server) {
            (Some(l), Some(s)) => {
                format!("load side (wrk, sinks, harness) on CPU {l}, server on CPU {s}")
            }
            _ => "not pinned: generator, sinks and server share every CPU".into(),
        }
    }

    /// Moves every thread of this process to the load side.
    pub fn pin_self(&self) {
        if let Some(load) = &self.load {
            let ok = std::process::Command::new("taskset")
                .args(["-a", "-c", "-p", load, &std::process::id().to_string()])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "taskset -a -c -p {load} failed");
        }
    }

    pub fn load_command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        command(self.load.as_deref(), program.as_ref())
    }

    pub fn server_command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        command(self.server.as_deref(), program.as_ref())
    }
}

fn command(cpus: Option<&str>, program: &OsStr) -> tokio::process::Command {
    match cpus {
        Some(cpus) => {
            let mut c = tokio::process::Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        None => tokio::process::Command::new(program),
    }
}

/// The CPUs in this process's affinity mask (from /proc), or 0..available_parallelism.
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    if cpus.is_empty() {
        cpus = (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    cpus
}

/// A program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// One of this program's own servers (`--serve MODE`) in a process of its own on the server
/// side; it prints `addr=ADDR` once it listens.
pub struct Responder {
    child: tokio::process::Child,
    pub addr: String,
}

impl Responder {
    pub async fn start(pin: &Pin, mode: &str) -> Responder {
        let mut child = pin
            .server_command(std::env::current_exe().expect("exe"))
            .args(["--serve", mode])
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("responder process");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines.next_line().await.ok().flatten().unwrap_or_default();
        let addr = line
            .strip_prefix("addr=")
            .expect("responder address")
            .to_string();
        Responder { child, addr }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The real `hookgate` binary (`hookgate serve --config FILE`) on the server side.
pub struct Gateway {
    child: tokio::process::Child,
    pub ingress: String,
    pub admin: String,
    log: PathBuf,
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Gateway {
    /// Starts the binary on `toml` (without its listen addresses, which this adds on free
    /// ports), writing its config and log into `dir`, and returns at once.
    pub fn spawn(bin: &Path, pin: &Pin, dir: &Path, toml: &str) -> Gateway {
        let (ingress, admin) = (free_port(), free_port());
        let n = std::fs::read_dir(dir).map_or(0, |d| d.count());
        let config = dir.join(format!("hookgate-{n}.toml"));
        let log = dir.join(format!("hookgate-{n}.log"));
        // Listen keys go into the [ingress] and [admin] tables the config already has.
        let text = toml
            .replacen(
                "[ingress]\n",
                &format!("[ingress]\nlisten = \"127.0.0.1:{ingress}\"\n"),
                1,
            )
            .replacen(
                "[admin]\n",
                &format!("[admin]\nlisten = \"127.0.0.1:{admin}\"\n"),
                1,
            );
        std::fs::write(&config, text).expect("config");
        let child = pin
            .server_command(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        Gateway {
            child,
            ingress: format!("http://127.0.0.1:{ingress}/in/bench"),
            admin: format!("http://127.0.0.1:{admin}"),
            log,
        }
    }

    /// Starts it and waits until its admin listener answers.
    pub async fn start(bin: &Path, pin: &Pin, dir: &Path, toml: &str) -> Gateway {
        let mut gw = Gateway::spawn(bin, pin, dir, toml);
        gw.ready().await;
        gw
    }

    pub async fn ready(&mut self) {
        let start = Instant::now();
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", self.admin)).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("hookgate exited ({status}):\n{}", self.log_tail());
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "hookgate did not start within 120 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// `hookgate_events_received_total` of the bench source, by outcome.
    pub async fn outcomes(&self) -> std::collections::BTreeMap<String, f64> {
        let text = self.metrics().await;
        let mut out = std::collections::BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("hookgate_events_received_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let label = |k: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix("=\""))
                    .map(|v| v.trim_end_matches('"').to_string())
            };
            if label("source").as_deref() == Some("bench")
                && let (Some(outcome), Ok(v)) = (label("outcome"), value.trim().parse::<f64>())
            {
                *out.entry(outcome).or_insert(0.0) += v;
            }
        }
        out
    }

    /// A gauge or counter without labels.
    pub async fn value(&self, name: &str) -> f64 {
        value(&self.metrics().await, name)
    }

    pub async fn pending(&self) -> f64 {
        self.value("hookgate_pending_deliveries").await
    }

    /// POSTs to the admin API and insists on success; returns the body.
    pub async fn admin(&self, path: &str, body: &str) -> String {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1{path}", self.admin))
            .bearer_auth(TOKEN)
            .body(body.to_string())
            .send()
            .await
            .expect("admin call");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {text}");
        text
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let pid = self.child.id().unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGTERM, and waits for a clean exit (the store closed).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("hookgate did not stop within 60 s of SIGTERM; killing it");
            let _ = self.child.kill().await;
        }
    }

    /// SIGKILL.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A metric's value from Prometheus text (the first line with that exact name).
pub fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
