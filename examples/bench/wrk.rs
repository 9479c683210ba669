//! The load generator: wrk (Debian's package), driven through `wrk.lua` with a pool of
//! requests this module signs beforehand, and its output parsed into a `Run`.
//!
//! Every pooled request is a 1 KiB (by default) JSON body with a unique `webhook-id` and its
//! Standard Webhooks signature, stamped with the time the pool was written (each pool is
//! written just before its phase, so the timestamps are well within the source's tolerance).
//! The pool is a small text file (id, timestamp, signature, number per line; the body is one
//! template); wrk's script builds each request once in `init` and only hands them out after.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookgate::verify::standard_webhooks;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::procs::Pin;
use crate::signing_key;

/// The script, written next to the pools at start.
pub const SCRIPT: &str = include_str!("wrk.lua");

/// Where wrk is, or a message that says how to get it.
pub fn find() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("wrk"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "wrk not found on PATH: the harness drives its load with wrk \
             (Debian: apt-get install -y wrk)"
                .to_string()
        })
}

/// A pool of signed requests in a file, removed when dropped.
pub struct Pool {
    pub path: PathBuf,
    pub len: u64,
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `len` signed requests for `/in/{source}` (each source of the harness has the same
/// secret) into `dir`, their ids unique under `tag`, the body's `type` being `event_type`.
/// With `keys`, the body also has `"k"`, request number mod `keys`: an order key.
pub fn pool_of(
    dir: &Path,
    tag: &str,
    len: u64,
    body_bytes: usize,
    source: &str,
    event_type: &str,
    keys: Option<u64>,
) -> Pool {
    let len = len.max(1);
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    // The one place wrk.lua puts a request's own text: with keys, that text carries the key
    // and the number (no spaces, as the pool's lines need).
    let head = match keys {
        None => format!(r#"{{"type":"{event_type}","n":"NNNNNNNNNN","pad":""#),
        Some(_) => format!(r#"{{"type":"{event_type}","k":"NNNNNNNNNN","pad":""#),
    };
    let text = |n: u64| match keys {
        None => format!("{n:010}"),
        Some(k) => format!(r#"{:04}","n":"{n:010}"#, n % k.max(1)),
    };
    let pad = "x".repeat(body_bytes.saturating_sub(head.len() + 2));
    let template = format!("{head}{pad}\"}}");
    let (pre, suf) = template.split_once("NNNNNNNNNN").expect("template");
    let key = signing_key();
    // Signing is most of the work: two threads, each a contiguous half.
    let lines = |from: u64, to: u64| {
        let mut out = Vec::with_capacity(((to - from) * 90) as usize);
        for n in from..to {
            let id = format!("msg_{tag}_{n:010}");
            let num = text(n);
            let body = format!("{pre}{num}{suf}");
            let sig = standard_webhooks::sign(&key, &id, ts, body.as_bytes());
            writeln!(out, "{id} {ts} {sig} {num}").expect("write");
        }
        out
    };
    let half = len / 2;
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| lines(0, half));
        let b = s.spawn(|| lines(half, len));
        (a.join().expect("signer"), b.join().expect("signer"))
    });
    let path = dir.join(format!("pool-{tag}.txt"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("pool file"));
    writeln!(f, "/in/{source}\n{template}").expect("write");
    f.write_all(&a).expect("write");
    f.write_all(&b).expect("write");
    f.flush().expect("write");
    Pool { path, len }
}

/// How long wrk runs.
#[derive(Clone)]
pub enum Load {
    /// For this long, going round the pool.
    For(Duration),
    /// Each request of the pool once (bounded by `limit`).
    Once { limit: Duration },
    /// Until the flag falls (bounded by `limit`); `started` rises once wrk is sending.
    While {
        flag: Arc<AtomicBool>,
        started: Arc<AtomicBool>,
        limit: Duration,
    },
}

/// What one wrk run did, from its `done()` line and its own report.
#[derive(Debug, Default, Clone)]
pub struct Run {
    pub duration: Duration,
    /// Answers received.
    pub requests: u64,
    /// Answers of 400 and above, as wrk counts them.
    pub status_errors: u64,
    /// connect + read + write + timeout.
    pub socket_errors: u64,
    pub socket_detail: String,
    /// Latency percentiles in µs: 50, 90, 99, 99.9, max.
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Pool requests handed out (POSTs).
    pub sent: u64,
    /// `once` mode: 2xx and other answers to the POSTs.
    pub ok_once: u64,
    pub other_once: u64,
    /// Times the pool was gone round (`cycle` mode): each wrap repeats every id.
    pub wraps: u64,
    /// wrk's own text report, for the log.
    pub text: String,
    /// The run ended at its limit rather than by itself (a `once` run that never finished).
    pub hit_limit: bool,
    /// CPU used while sending, in CPUs (1.0 = one core busy throughout): the server measured
    /// and wrk itself. A server near 1.0 on its one core is what bounds the rate; one well
    /// below it is waiting on something else (the generator, or fsync).
    pub server_cpu: Option<f64>,
    pub wrk_cpu: Option<f64>,
    /// From the moment wrk started sending (its script loaded) to the end of its own
    /// duration: what other measurements (the database's statistics) are read over.
    pub window: Option<(std::time::Instant, std::time::Instant)>,
}

impl Run {
    /// Successful answers: 2xx (wrk counts 3xx as success too; hookgate answers none).
    pub fn ok(&self) -> u64 {
        if self.ok_once + self.other_once > 0 {
            self.ok_once
        } else {
            self.requests - self.status_errors
        }
    }
    pub fn rate(&self) -> f64 {
        self.ok() as f64 / self.duration.as_secs_f64().max(1e-9)
    }
    pub fn ms(&self, us: f64) -> Option<f64> {
        (self.requests > 0).then_some(us / 1000.0)
    }
    /// What went wrong, in words, or nothing. `wraps_matter`: whether a repeated id is an error.
    pub fn problems(&self, wraps_matter: bool) -> Vec<String> {
        let mut p = Vec::new();
        let status = if self.ok_once + self.other_once > 0 {
            self.other_once
        } else {
            self.status_errors
        };
        if status > 0 {
            p.push(format!("{status} non-2xx"));
        }
        if self.socket_errors > 0 {
            p.push(format!("socket errors ({})", self.socket_detail));
        }
        if wraps_matter && self.wraps > 0 {
            p.push(format!("pool wrapped {}× (ids repeated)", self.wraps));
        }
        if self.hit_limit {
            p.push("stopped at its time limit".into());
        }
        p
    }
}

/// Everything a run needs besides its target and pool.
pub struct Generator {
    pub script: PathBuf,
    pub connections: usize,
    pub pin: Pin,
}

impl Generator {
    /// Runs wrk against `url` with `pool` until `load` says stop, and parses what it printed.
    /// `server`: the process measured, whose CPU use is read over the run.
    pub async fn run(&self, url: &str, pool: &Pool, load: Load, server: Option<u32>) -> Run {
        let (duration, mode, limit) = match &load {
            Load::For(d) => (*d, "cycle", None),
            Load::Once { limit } => (*limit, "once", Some(*limit)),
            Load::While { limit, .. } => (*limit, "cycle", Some(*limit)),
        };
        let mut cmd = self.pin.load_command("wrk");
        cmd.arg("-t1")
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", duration.as_secs().max(1)))
            .arg("--latency")
            .arg("-s")
            .arg(&self.script)
            .arg(url)
            .arg("--")
            .arg(&pool.path)
            .arg(mode)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("wrk");
        let pid = child.id().expect("wrk pid");
        let mut stderr = child.stderr.take().expect("stderr");
        let err_task = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut text = String::new();
        let mut hit_limit = false;
        // Until the script has loaded its pool: wrk starts sending right after.
        while let Ok(Some(line)) = lines.next_line().await {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("harness-ready") {
                break;
            }
        }
        let started = tokio::time::Instant::now();
        let server_before = server.and_then(cpu_seconds);
        let wrk_before = cpu_seconds(pid);
        // wrk's own use is read just before it ends (it is gone after).
        let mut wrk_cpu = None;
        let mut read_wrk = |at: tokio::time::Instant| {
            let now = cpu_seconds(pid);
            if let (Some(a), Some(b)) = (wrk_before, now) {
                wrk_cpu = Some((b - a) / at.duration_since(started).as_secs_f64().max(1e-3));
            }
        };
        match &load {
            Load::For(d) => {
                tokio::time::sleep(d.saturating_sub(Duration::from_millis(100))).await;
                read_wrk(tokio::time::Instant::now());
            }
            Load::Once { .. } => {
                // Ends when every POST has its answer; wrk then waits out -d unless told.
                let sent_all = async {
                    while let Ok(Some(line)) = lines.next_line().await {
                        text.push_str(&line);
                        text.push('\n');
                        if line.starts_with("harness-sent-all") {
                            return true;
                        }
                    }
                    false
                };
                let limit = limit.expect("limit");
                match tokio::time::timeout(limit, sent_all).await {
                    Ok(true) => {}
                    Ok(false) => {}
                    Err(_) => hit_limit = true,
                }
                read_wrk(tokio::time::Instant::now());
                interrupt(pid, &mut child).await;
            }
            Load::While {
                flag, started: up, ..
            } => {
                up.store(true, Ordering::Relaxed);
                while flag.load(Ordering::Relaxed) {
                    if started.elapsed() > limit.expect("limit") {
                        hit_limit = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                read_wrk(tokio::time::Instant::now());
                interrupt(pid, &mut child).await;
            }
        }
        while let Ok(Some(line)) = lines.next_line().await {
            text.push_str(&line);
            text.push('\n');
        }
        let status = child.wait().await.expect("wrk exit");
        let server_cpu = match (server_before, server.and_then(cpu_seconds)) {
            (Some(a), Some(b)) => Some((b - a) / started.elapsed().as_secs_f64().max(1e-3)),
            _ => None,
        };
        let err = err_task.await.unwrap_or_default();
        let mut run = parse(&text).unwrap_or_else(|| {
            panic!("wrk printed no summary (exit {status}):\n{text}\n{err}");
        });
        run.text = text;
        run.hit_limit = hit_limit;
        run.server_cpu = server_cpu;
        run.wrk_cpu = wrk_cpu;
        let from = started.into_std();
        run.window = Some((from, from + run.duration));
        eprintln!(
            "  wrk: {} answers in {:.2} s ({:.0}/s ok), latency ms p50 {:.2} p90 {:.2} p99 {:.2} \
             p99.9 {:.2} max {:.2}; CPU server {} wrk {}; {} POSTs from a pool of {}{}",
            run.requests,
            run.duration.as_secs_f64(),
            run.rate(),
            run.p50 / 1000.0,
            run.p90 / 1000.0,
            run.p99 / 1000.0,
            run.p999 / 1000.0,
            run.max / 1000.0,
            cpu(run.server_cpu),
            cpu(run.wrk_cpu),
            run.sent,
            pool.len,
            match run.problems(false).join("; ") {
                p if p.is_empty() => String::new(),
                p => format!("; {p}"),
            }
        );
        run
    }
}

/// CPUs as a percentage of one.
pub fn cpu(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.0}%", v * 100.0))
}

/// A process's CPU time so far (user + system, every thread), from /proc.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses): state is the 1st field, utime the 12th, stime
    // the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// CPU seconds of `pid` and of its live descendants (the gateway's transform workers): a
/// worker's time is not its parent's until the worker is reaped.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let own = cpu_seconds(pid)?;
    let mut children = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                children.extend(
                    list.split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    Some(
        own + children
            .into_iter()
            .filter_map(tree_cpu_seconds)
            .sum::<f64>(),
    )
}

/// SIGINT until wrk exits: it prints its summary then. Its handler is installed only once its
/// threads run, so the first signals may be ignored.
async fn interrupt(pid: u32, child: &mut tokio::process::Child) {
    for _ in 0..600 {
        let _ = std::process::Command::new("kill")
            .arg("-INT")
            .arg(pid.to_string())
            .status();
        if tokio::time::timeout(Duration::from_millis(100), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
}

/// The script's `harness-summary` line, keyed.
fn parse(text: &str) -> Option<Run> {
    let line = text.lines().find(|l| l.starts_with("harness-summary "))?;
    let field = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let n = |k: &str| field(k) as u64;
    let socket = ["connect", "read", "write", "timeout"];
    Some(Run {
        duration: Duration::from_micros(n("duration_us")),
        requests: n("requests"),
        status_errors: n("status"),
        socket_errors: socket.iter().map(|k| n(k)).sum(),
        socket_detail: socket
            .iter()
            .map(|k| format!("{k} {}", n(k)))
            .collect::<Vec<_>>()
            .join(", "),
        p50: field("p50"),
        p90: field("p90"),
        p99: field("p99"),
        p999: field("p999"),
        max: field("max"),
        sent: n("sent"),
        ok_once: n("ok"),
        other_once: n("other"),
        wraps: n("wraps"),
        ..Run::default()
    })
}
