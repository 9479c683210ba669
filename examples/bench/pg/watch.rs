//! What PostgreSQL spent while a figure was measured. A task of the harness samples the server
//! every 20 ms, on a connection of its own to the `--postgres-url` database (so its queries
//! are not counted against the phase's database):
//! - **CPU**, from /proc: every server process of the phase's database (the backends of the
//!   hookgate nodes, autovacuum) plus the server's background processes (WAL writer,
//!   checkpointer, background writer), and the hookgate nodes themselves;
//! - **what the phase's backends were doing**, from `pg_stat_activity`: running (CPU), flushing
//!   WAL for a commit (or waiting for another backend's flush), waiting for the ingest advisory
//!   lock or another lock, or **waiting on hookgate** (idle inside a transaction, or a `COPY`
//!   waiting for its rows: a round trip's share of the time);
//! - **counters**: transactions committed in the database (`pg_stat_database`), WAL records,
//!   bytes, flushes and their time (`pg_stat_wal`, which is cluster-wide).
//!
//! A span's figures are the differences between the samples at its two ends; the state shares
//! are averages over the samples between (so "0.40 WAL flush" means that, on average, 0.4 of a
//! backend was flushing). Backends publish their counters about once a second, so counters are
//! exact only to about a second of activity at each end of a span.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Database, Server};
use crate::wrk::cpu_seconds;

/// How often the server is sampled.
const EVERY: Duration = Duration::from_millis(20);

/// What a client backend of the phase's database was doing when sampled.
const CLASSES: [&str; 6] = [
    "CPU",
    "WAL flush",
    "waiting on hookgate",
    "ingest advisory lock",
    "other lock",
    "other wait",
];

fn class(state: &str, wait_type: &str, wait: &str) -> Option<usize> {
    match (state, wait_type) {
        ("idle", _) | ("", _) => None,
        ("active", "") => Some(0),
        ("active", "IO" | "LWLock") if wait.starts_with("WAL") => Some(1),
        ("active", "Client") => Some(2),
        ("active", "Lock") if wait == "advisory" => Some(3),
        ("active", "Lock") => Some(4),
        ("active", _) => Some(5),
        // Between two statements of one transaction: hookgate has the next one to send.
        (s, _) if s.starts_with("idle in transaction") => Some(2),
        _ => Some(5),
    }
}

/// Cumulative counters of the server.
#[derive(Clone, Copy, Default)]
pub struct Counters {
    /// Transactions committed in the phase's database.
    pub commits: f64,
    pub wal_records: f64,
    pub wal_bytes: f64,
    /// WAL flushes (fsyncs, cluster-wide) and their time, ms: timed only in sessions with
    /// `track_wal_io_timing` on (the phase's database's), so the WAL writer's are counted but
    /// not timed.
    pub wal_syncs: f64,
    pub wal_sync_ms: f64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            commits: self.commits - o.commits,
            wal_records: self.wal_records - o.wal_records,
            wal_bytes: self.wal_bytes - o.wal_bytes,
            wal_syncs: self.wal_syncs - o.wal_syncs,
            wal_sync_ms: self.wal_sync_ms - o.wal_sync_ms,
        }
    }
}

struct Sample {
    at: Instant,
    /// (pid, whether it is a PostgreSQL process, CPU seconds so far).
    cpu: Vec<(u32, bool, f64)>,
    /// Client backends of the phase's database, by class.
    busy: [u32; CLASSES.len()],
    /// Client backends of the phase's database (busy or not).
    backends: u32,
    counters: Option<Counters>,
}

/// Sampling, from `start` until `finish`.
pub struct Watch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Watch {
    /// Starts sampling the server for `db`, and the CPU of the hookgate processes `hookgate`.
    pub async fn start(server: &Server, db: &Database, hookgate: Vec<u32>) -> Watch {
        let client = server.admin().await;
        let name = db.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let activity = client
                .prepare(
                    "SELECT pid, datname IS NOT NULL, coalesce(backend_type, ''), \
                     coalesce(state, ''), coalesce(wait_event_type, ''), coalesce(wait_event, '') \
                     FROM pg_stat_activity \
                     WHERE (datname = $1 OR datname IS NULL) AND pid <> pg_backend_pid()",
                )
                .await
                .expect("prepare");
            let counters = client
                .prepare(
                    "SELECT d.xact_commit::float8, w.wal_records::float8, w.wal_bytes::float8, \
                     w.wal_sync::float8, w.wal_sync_time FROM pg_stat_database d, pg_stat_wal w \
                     WHERE d.datname = $1",
                )
                .await
                .expect("prepare");
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !flag.load(Ordering::Relaxed) {
                tick.tick().await;
                let at = Instant::now();
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&name];
                // Both in one round trip (the client pipelines them).
                let (rows, totals) = tokio::join!(
                    client.query(&activity, &params),
                    client.query_opt(&counters, &params)
                );
                let mut sample = Sample {
                    at,
                    cpu: Vec::new(),
                    busy: [0; CLASSES.len()],
                    backends: 0,
                    counters: totals.ok().flatten().and_then(|r| {
                        Some(Counters {
                            commits: r.try_get(0).ok()?,
                            wal_records: r.try_get(1).ok()?,
                            wal_bytes: r.try_get(2).ok()?,
                            wal_syncs: r.try_get(3).ok()?,
                            wal_sync_ms: r.try_get(4).ok()?,
                        })
                    }),
                };
                for row in rows.unwrap_or_default() {
                    let text = |i| row.try_get::<_, String>(i).unwrap_or_default();
                    let Ok(pid) = row.try_get::<_, i32>(0) else {
                        continue;
                    };
                    if let Some(cpu) = cpu_seconds(pid as u32) {
                        sample.cpu.push((pid as u32, true, cpu));
                    }
                    let ours = row.try_get::<_, bool>(1).unwrap_or(false);
                    if ours && text(2) == "client backend" {
                        sample.backends += 1;
                        if let Some(c) = class(&text(3), &text(4), &text(5)) {
                            sample.busy[c] += 1;
                        }
                    }
                }
                for &pid in &hookgate {
                    if let Some(cpu) = cpu_seconds(pid) {
                        sample.cpu.push((pid, false, cpu));
                    }
                }
                samples.push(sample);
            }
            samples
        });
        Watch { stop, task }
    }

    pub async fn finish(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        Samples(self.task.await.unwrap_or_default())
    }
}

/// What was sampled.
pub struct Samples(Vec<Sample>);

/// What the server (and hookgate) spent over one span.
pub struct Spent {
    pub secs: f64,
    /// CPUs (1.0 = one core busy throughout).
    pub pg_cpu: f64,
    pub hookgate_cpu: f64,
    /// Average client backends in each class of `CLASSES`, and in all.
    busy: [f64; CLASSES.len()],
    backends: f64,
    pub counters: Counters,
    samples: usize,
}

impl Samples {
    /// The span from `from` to `to`: from the last sample before it to the first after it.
    pub fn over(&self, (from, to): (Instant, Instant)) -> Option<Spent> {
        let s = &self.0;
        let first = s.iter().rposition(|x| x.at <= from).unwrap_or(0);
        let last = s
            .iter()
            .position(|x| x.at >= to)
            .unwrap_or(s.len().checked_sub(1)?);
        if last <= first {
            return None;
        }
        let span = &s[first..=last];
        // A process there at the start counts from its CPU then; one that appeared later
        // (a new connection) from zero; one that ended, up to its last sample.
        let mut cpu: HashMap<u32, (bool, f64, f64)> = HashMap::new();
        for (pid, pg, secs) in &span[0].cpu {
            cpu.insert(*pid, (*pg, *secs, *secs));
        }
        for sample in &span[1..] {
            for (pid, pg, secs) in &sample.cpu {
                cpu.entry(*pid).or_insert((*pg, 0.0, 0.0)).2 = *secs;
            }
        }
        let secs = (span[span.len() - 1].at - span[0].at).as_secs_f64();
        let used = |which: bool| {
            cpu.values()
                .filter(|(pg, _, _)| *pg == which)
                .map(|(_, a, b)| (b - a).max(0.0))
                .sum::<f64>()
                / secs
        };
        let inner = &span[1..];
        let mut busy = [0.0; CLASSES.len()];
        for sample in inner {
            for (b, n) in busy.iter_mut().zip(sample.busy) {
                *b += f64::from(n) / inner.len() as f64;
            }
        }
        let backends =
            inner.iter().map(|x| f64::from(x.backends)).sum::<f64>() / inner.len() as f64;
        let counters = match (span[span.len() - 1].counters, span[0].counters) {
            (Some(b), Some(a)) => b - a,
            _ => Counters::default(),
        };
        Some(Spent {
            secs,
            pg_cpu: used(true),
            hookgate_cpu: used(false),
            busy,
            backends,
            counters,
            samples: inner.len(),
        })
    }
}

impl Spent {
    /// In words, per second and per `units` (events or deliveries) measured over the span.
    pub fn describe(&self, units: u64, unit: &str) -> String {
        let c = &self.counters;
        let per = |v: f64| v / (units.max(1) as f64);
        let total: f64 = self.busy.iter().sum();
        let mut shares: Vec<(usize, f64)> = self.busy.iter().copied().enumerate().collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        let shares: Vec<String> = shares
            .iter()
            .map(|(i, v)| format!("{} {v:.2}", CLASSES[*i]))
            .collect();
        format!(
            "over {:.1} s: CPU postgres {:.0}% (unpinned; its processes for this database and its \
             writers), hookgate {:.0}%; {:.0} transactions/s ({:.3} per {unit}), {:.0} WAL \
             flushes/s (cluster-wide, the WAL writer's too), {:.0} B of WAL per {unit}; its {:.0} connections \
             on average {total:.2} busy: {} ({} samples)",
            self.secs,
            self.pg_cpu * 100.0,
            self.hookgate_cpu * 100.0,
            c.commits / self.secs,
            per(c.commits),
            c.wal_syncs / self.secs,
            per(c.wal_bytes),
            self.backends,
            shares.join(", "),
            self.samples
        )
    }
}
