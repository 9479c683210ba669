//! The benchmark harness: wrk drives the same signed requests at a fixed responder (the
//! generator's own ceiling), at a bare hyper server (the raw ceiling) and at the real
//! `hookgate` binary, in one run, so the ratios mean something on a shared machine whose
//! absolute speed drifts.
//!
//!     cargo build --release --bin hookgate --example bench
//!     target/release/examples/bench [--concurrency 64] [--seconds 10] [--body-bytes 1024]
//!         [--backlog 100000] [--fanout-events 1000] [--rss-backlog 1000000]
//!         [--replay-dead 100000] [--prune-dead 1000000] [--hangup-clients 2000]
//!         [--quick-repair true] [--pin auto] [--pool-rate N] [--pull-rate 1000] [--phases all]
//!         [--postgres-url postgres://postgres@127.0.0.1:5432/postgres] [--pg-pool-size 16]
//!         [--console-events 1000000] [--console-requests 50] [--console-data DIR]
//!
//! (`examples/bench/compare.sh BEFORE AFTER [args]` runs this harness against two commits,
//! back to back.) It needs `wrk` on PATH (Debian: `apt-get install -y wrk`) and the `hookgate`
//! binary next to `examples/` (`--hookgate PATH` otherwise): build both, as above, or the
//! binary measured may be stale.
//!
//! **The generator.** Every phase that offers HTTP load at saturation is driven by wrk with
//! one thread and `--concurrency` connections (`wrk -t1 -c64 -d<seconds>s --latency -s
//! wrk.lua`). HMAC in wrk's Lua would bound the generator, so the harness signs a pool of
//! requests just before each phase (1 KiB JSON bodies, each with a unique `webhook-id` and its
//! Standard Webhooks signature, timestamps of that moment), and the script builds each
//! request once in `init` and hands them out in turn: verification and dedup are real work in
//! hookgate, and wrk's per-request cost is a table lookup. A timed pool holds 1.5 × rate ×
//! seconds requests, the rate being the raw ceiling just measured (or `--pool-rate`), so it
//! never wraps; after each phase the harness checks hookgate's own count
//! (`hookgate_events_received_total`): any `duplicate` or refusal, any non-2xx answer or
//! socket error wrk saw, a wrapped pool or a fill that did not finish is printed in the
//! `errors` column, and the harness exits non-zero. wrk's latencies are from each request's
//! send to its answer, closed-loop (a stalled connection sends nothing meanwhile; wrk 4
//! corrects its histogram for that by the mean interval).
//!
//! **The two ceilings.** (1) The generator's: wrk against the cheapest responder that still
//! speaks HTTP/1.1 (it finds each request's end and answers a fixed 200 without looking at
//! headers or body): what wrk can offer at all. (2) The raw ceiling: wrk against a bare hyper
//! server that reads the body and answers 202, the most any hyper-based server does on the
//! same cores. Each hookgate phase is printed as a ratio to (2); (2) is printed as a ratio to
//! (1). When (2) is well below (1), or the raw server's CPU column reads near 100% of its
//! core, the raw ceiling is the server's and not the generator's, and a ratio to it does not
//! flatter; a phase far below (1) is not bound by the generator either.
//!
//! **Cores.** Generator and server share a 2-core machine. Unpinned, the kernel splits the
//! cores differently for every server (a server with more runnable threads takes CPU from wrk),
//! so a ceiling measured against one server says little about another. By default
//! (`--pin auto`) the harness splits the CPUs it may use in two halves with `taskset`: the
//! load side (this process: wrk, the sinks, the fixed-rate and hangup clients) on the first,
//! the server measured (the responders and hookgate, each a process of its own) on the
//! second. On 2 cores that is one core each: every server gets the same single core, wrk
//! always has its own, and the figures are per server core. `--pin none` leaves placement to
//! the kernel (the setting of issue 14's figures); `--pin 0:1` names the lists.
//!
//! **The CPU column** gives, over each wrk run, the CPU used by the server process and by wrk,
//! in percent of one CPU (read from /proc). It says what bound a figure: a server near 100% of
//! its one core was the limit; wrk near 100% was (then the figure is a lower bound); neither
//! means waiting (hookgate's ingest waits on fsync). With one core each, wrk and the bare hyper
//! server come out about even, so the raw ceiling is at most a few percent below what that
//! server could do on its core (the column shows by how much); every hookgate phase runs far
//! below the generator's ceiling, its server near 100%: hookgate-bound, as it should be.
//!
//! Phases, in order (`--phases` picks some; the two ceilings always run):
//! 1. generator ceiling, 2. raw ceiling, as above;
//! 3. `ingest`: durable verified ingest, hookgate with no endpoint (wrk, timed);
//! 4. `subscriber`: the same with one endpoint on the sink, delivering while it ingests;
//! 5. `drain`: `--backlog` events sent by wrk (each once) behind a paused endpoint, then
//!    resumed; deliveries per second until the sink has them all (`max_in_flight` =
//!    `--concurrency`);
//!    `ordered`: the same `--backlog`, its bodies carrying one of 1,000 order keys, drained at
//!    `max_in_flight` 32 unordered and then with `ordering` by that key, side by side;
//!    `filters` and `transforms`: ingest with 100 filtered endpoints, and the drain with a jq
//!    transform, each beside the same run without (`phases/rules.rs`);
//!    `pull`: the drain of `--backlog` to a push endpoint, then the same backlog taken and
//!    acked by 1 and 8 consumers of a pull endpoint in batches of 10 and 100; then, at
//!    `--pull-rate` events/s, push's end-to-end latency beside pull's, from each event's
//!    `received_at` to a long-polling consumer's receive (`phases/pull.rs`);
//! 6. `fanout`: `--fanout-events` events (wrk, each once) to 100 endpoints, deliveries per
//!    second from wrk's start to the last delivery;
//! 7. `latency`: end to end at 50 events/s and at 10% of the ingest rate of phase 3, driven by
//!    this harness's own fixed-rate generator (plain wrk has no open-loop fixed rate; these
//!    rates are far below saturation, so the generator is not what is measured): each body is
//!    stamped with its *scheduled* send time (no coordinated omission), and the sink measures
//!    from that stamp to the delivery's arrival;
//! 8. `replay`: `--replay-dead` dead letters (wrk, each once, to an endpoint on a closed port,
//!    one attempt each), then ingest with the endpoint paused (wrk, timed) and while all of
//!    them are replayed (wrk until the replay call returns);
//! 9. `prune`: `--prune-dead` dead letters waiting for their retention (filled by wrk), then
//!    ingest (wrk, timed) with pruning every second and off, on the same store;
//! 10. `hangup`: `--hangup-clients` clients of this harness at once each send a signed 1 MiB
//!     body and hang up without reading the answer (wrk cannot hang up); hookgate's peak RSS;
//! 11. `backlog`: `--rss-backlog` events (wrk, each once, in four steps) behind a paused
//!     endpoint; hookgate's resident memory as it grows; then the endpoint is resumed, the
//!     process killed with SIGKILL at once and started again on the same file: the time from
//!     the new process's start to its first delivery.
//! 12. `console` (only when named): `--console-events` events (wrk, each once) from three
//!     sources to four endpoints, one of them dead, into `--console-data` (kept, and reused
//!     as it is when it exists); then every console page signed in, `--console-requests`
//!     times each, one at a time: p50, p95 and max per page, and its status when not 200
//!     (see `phases/console.rs`).
//!
//! It prints a markdown table.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use clap::Parser;

mod commits;
mod pg;
mod phases;
mod procs;
mod servers;
mod table;
mod wrk;

use procs::{Gateway, Pin};
pub use table::Row;
use wrk::{Load, Pool, Run};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: &str = "bench-token";
/// The most events one pool of a fill holds.
const FILL_CHUNK: u64 = 200_000;

#[derive(Debug, Parser)]
struct Args {
    /// wrk's connections (`-c`), and the endpoints' `max_in_flight` of the subscriber and
    /// drain phases.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    #[arg(long, default_value_t = 100_000)]
    backlog: u64,
    #[arg(long, default_value_t = 1_000)]
    fanout_events: u64,
    /// Events in the backlog of the memory and restart phase.
    #[arg(long, default_value_t = 1_000_000)]
    rss_backlog: u64,
    /// Which phases after the ceilings: all, or a list of ingest, subscriber, drain, ordered,
    /// filters, transforms, pull, fanout,
    /// latency, replay, prune, hangup, backlog, pg-ingest, pg-ingest-2, pg-drain, pg-latency,
    /// console (all includes the pg- phases when the PostgreSQL server answers, and not
    /// console).
    #[arg(long, default_value = "all")]
    phases: String,
    /// The PostgreSQL server of the pg- phases: a database it names, from which each phase
    /// creates (and drops) one of its own.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// `store.pool_size` of the gateways of the pg- phases.
    #[arg(long, default_value_t = 16)]
    pg_pool_size: u32,
    /// Dead letters replayed in the replay phase.
    #[arg(long, default_value_t = 100_000)]
    replay_dead: u64,
    /// Clients of the hangup phase, each sending 1 MiB and hanging up.
    #[arg(long, default_value_t = 2_000)]
    hangup_clients: u64,
    /// `ingress.max_buffered_bytes` of the hangup phase's gateway (its default if absent).
    #[arg(long)]
    hangup_buffered_bytes: Option<u64>,
    /// Dead letters waiting in the prune phase.
    #[arg(long, default_value_t = 1_000_000)]
    prune_dead: u64,
    /// `store.quick_repair` of the gateways measured.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    quick_repair: bool,
    /// CPU placement: auto (load side and server side on halves of the CPUs), none, or
    /// LOAD:SERVER taskset lists such as 0:1.
    #[arg(long, default_value = "auto")]
    pin: String,
    /// Requests per second the pools of timed phases are sized for (× 1.5 × --seconds); by
    /// default the raw ceiling measured (100,000 for the ceilings themselves).
    #[arg(long)]
    pool_rate: Option<f64>,
    /// Events per second of the `pull` phase's latency runs.
    #[arg(long, default_value_t = 1_000.0)]
    pull_rate: f64,
    /// Rounds of the `filters` and `transforms` phases: each round runs the pair (without,
    /// then with the rules), and the table shows each configuration's median round, so a
    /// ratio is not one run's noise.
    #[arg(long, default_value_t = 3)]
    rule_rounds: usize,
    /// The hookgate binary measured; by default `hookgate` beside this program's `examples/`.
    #[arg(long)]
    hookgate: Option<PathBuf>,
    /// Events stored for the console phase.
    #[arg(long, default_value_t = 1_000_000)]
    console_events: u64,
    /// Timed requests per page of the console phase (after a few untimed ones).
    #[arg(long, default_value_t = 50)]
    console_requests: usize,
    /// The console phase's data directory, kept: loaded when it does not exist yet, reused as
    /// it is when it does (loading takes minutes).
    #[arg(long)]
    console_data: Option<PathBuf>,
    /// Internal: run only one of the harness's responders (raw, fixed) and print its address.
    #[arg(long, hide = true)]
    serve: Option<String>,
}

/// The signing key of the bench source.
pub fn signing_key() -> Vec<u8> {
    let b64 = SECRET.strip_prefix("whsec_").expect("whsec_");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("secret")
}

/// What every phase shares.
pub struct Bench {
    args: Args,
    pin: Pin,
    generator: wrk::Generator,
    hookgate: PathBuf,
    sink: servers::Sink,
    /// The raw ceiling, once measured (requests/s).
    raw: f64,
    /// CPUs this harness could use before pinning.
    cpus: usize,
    /// Where pools go: /dev/shm if there is one (their writes then never reach the disk the
    /// gateway fsyncs to).
    pools: tempfile::TempDir,
    /// Configs and logs of the gateways.
    scratch: tempfile::TempDir,
    seq: AtomicU64,
    nonce: String,
}

/// A wrk run against a gateway, with what hookgate itself counted.
pub struct Checked {
    run: Run,
    accepted: u64,
    problems: Vec<String>,
}

impl Bench {
    /// A pool of `len` fresh requests, their ids unique across this run.
    fn pool(&self, len: u64) -> Pool {
        self.pool_of(len, "bench", "bench.event")
    }

    /// [`Bench::pool`] whose bodies carry an order key `"k"`, one of `keys`.
    fn keyed_pool(&self, len: u64, keys: u64) -> Pool {
        self.pool_with(len, "bench", "bench.event", Some(keys))
    }

    /// [`Bench::pool`] for another source (with the bench source's secret) and event type.
    fn pool_of(&self, len: u64, source: &str, event_type: &str) -> Pool {
        self.pool_with(len, source, event_type, None)
    }

    /// [`Bench::pool_of`], with order keys in the bodies when `keys` is given.
    fn pool_with(&self, len: u64, source: &str, event_type: &str, keys: Option<u64>) -> Pool {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        wrk::pool_of(
            self.pools.path(),
            &format!("{}{n:03}", self.nonce),
            len,
            self.args.body_bytes,
            source,
            event_type,
            keys,
        )
    }

    /// A pool for a timed phase: 1.5 × the fastest plausible rate × its seconds.
    fn timed_pool(&self) -> Pool {
        let rate = self.args.pool_rate.unwrap_or(self.raw).max(1000.0);
        self.pool((1.5 * rate * self.args.seconds as f64).ceil() as u64)
    }

    fn timed(&self) -> Load {
        Load::For(Duration::from_secs(self.args.seconds))
    }

    /// `n` fresh events to `gw`, each sent once by wrk, in pools of at most `FILL_CHUNK` so
    /// that each pool's timestamps are fresh when it is sent (the source's tolerance is 5
    /// minutes): how many hookgate accepted, and what went wrong.
    async fn fill(&self, gw: &Gateway, n: u64) -> (u64, Vec<String>) {
        self.fill_keyed(gw, n, None).await
    }

    /// [`Bench::fill`], with bodies that carry one of `keys` order keys when given.
    async fn fill_keyed(&self, gw: &Gateway, n: u64, keys: Option<u64>) -> (u64, Vec<String>) {
        let (mut accepted, mut problems, mut left) = (0, Vec::new(), n);
        while left > 0 {
            let len = left.min(FILL_CHUNK);
            let pool = match keys {
                Some(k) => self.keyed_pool(len, k),
                None => self.pool(len),
            };
            left -= pool.len;
            let limit = Duration::from_secs(60 + pool.len / 500);
            let c = self.drive(gw, &pool, Load::Once { limit }).await;
            accepted += c.accepted;
            problems.extend(c.problems);
        }
        (accepted, problems)
    }

    /// A directory for one gateway's data (on the disk, like a real store).
    fn data_dir(&self) -> tempfile::TempDir {
        tempfile::tempdir().expect("data dir")
    }

    async fn gateway(&self, toml: &str) -> Gateway {
        Gateway::start(&self.hookgate, &self.pin, self.scratch.path(), toml).await
    }

    fn spawn_gateway(&self, toml: &str) -> Gateway {
        Gateway::spawn(&self.hookgate, &self.pin, self.scratch.path(), toml)
    }

    /// A gateway's config on `data_dir`: the bench source, extra `[ingress]` and `[store]`
    /// keys, then `endpoints` (and any other tables). Listen addresses are added at start.
    fn toml(
        &self,
        data_dir: &std::path::Path,
        ingress: &str,
        store: &str,
        endpoints: &str,
    ) -> String {
        format!(
            "data_dir = \"{}\"\n[ingress]\n{ingress}[admin]\ntoken = \"{TOKEN}\"\n\
             [store]\nquick_repair = {}\n{store}[delivery]\nallow_private_networks = true\n\
             [[sources]]\nid = \"bench\"\nverify = \"standard-webhooks\"\nsecrets = [\"{SECRET}\"]\n{endpoints}",
            data_dir.display(),
            self.args.quick_repair
        )
    }

    /// wrk against `gw` with `pool`, then hookgate's own count of what it took: every POST
    /// must have been accepted once, none a duplicate, none refused.
    async fn drive(&self, gw: &Gateway, pool: &Pool, load: Load) -> Checked {
        self.drive_via(&self.generator, gw, pool, load).await
    }

    /// `drive` with another generator (the two-node phase runs two wrk at once, each with
    /// half the connections).
    async fn drive_via(
        &self,
        generator: &wrk::Generator,
        gw: &Gateway,
        pool: &Pool,
        load: Load,
    ) -> Checked {
        let before = gw.outcomes().await;
        let run = generator.run(&gw.ingress, pool, load, gw.pid()).await;
        let (accepted, counted) = counted(gw, &before).await;
        let mut problems = run.problems(true);
        problems.extend(counted);
        if accepted < run.ok() {
            problems.push(format!(
                "hookgate accepted {accepted}, wrk saw {} answered 2xx",
                run.ok()
            ));
        }
        if accepted > run.sent {
            problems.push(format!("hookgate accepted {accepted} of {} sent", run.sent));
        }
        Checked {
            run,
            accepted,
            problems,
        }
    }

    /// One `[[endpoints]]` entry on the sink.
    fn endpoint(&self, id: &str, max_in_flight: usize) -> String {
        format!(
            "[[endpoints]]\nid = \"{id}\"\nurl = \"http://{}/{id}\"\nmax_in_flight = {max_in_flight}\n",
            self.sink.addr
        )
    }
}

/// What hookgate counted for the bench source since `before`: how many it accepted, and any
/// duplicate or refusal as a problem.
pub async fn counted(gw: &Gateway, before: &BTreeMap<String, f64>) -> (u64, Vec<String>) {
    let after = gw.outcomes().await;
    let mut problems = Vec::new();
    let mut accepted = 0;
    for (outcome, v) in &after {
        let d = (v - before.get(outcome).copied().unwrap_or(0.0)).round() as u64;
        match outcome.as_str() {
            "accepted" => accepted = d,
            _ if d > 0 => problems.push(format!("{d} {outcome} (hookgate's count)")),
            _ => {}
        }
    }
    (accepted, problems)
}

/// A loopback port nothing listens on: deliveries there fail at once.
pub fn closed_port() -> u16 {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    closed.local_addr().expect("addr").port()
}

fn main() {
    let args = Args::parse();
    if let Some(mode) = &args.serve {
        return servers::serve_child(mode);
    }
    let fail = |msg: String| -> ! {
        eprintln!("bench: {msg}");
        std::process::exit(2)
    };
    if let Err(e) = wrk::find() {
        fail(e);
    }
    let hookgate = args.hookgate.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("exe");
        exe.parent()
            .and_then(|examples| examples.parent())
            .map(|dir| dir.join("hookgate"))
            .unwrap_or_default()
    });
    if !hookgate.is_file() {
        fail(format!(
            "no hookgate binary at {}: build it with `cargo build --release --bin hookgate \
             --example bench`, or pass --hookgate PATH",
            hookgate.display()
        ));
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pin = Pin::parse(&args.pin).unwrap_or_else(|e| fail(e));
    pin.pin_self();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let clean = runtime.block_on(async move {
        let shm = std::path::Path::new("/dev/shm");
        let pools = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("pool dir");
        let scratch = tempfile::tempdir().expect("scratch dir");
        let script = scratch.path().join("wrk.lua");
        std::fs::write(&script, wrk::SCRIPT).expect("script");
        let mut bench = Bench {
            generator: wrk::Generator {
                script,
                connections: args.concurrency,
                pin: pin.clone(),
            },
            pin,
            hookgate,
            sink: servers::Sink::start().await,
            raw: 0.0,
            cpus,
            pools,
            scratch,
            seq: AtomicU64::new(0),
            nonce: format!(
                "{:x}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_secs()
            ),
            args,
        };
        run(&mut bench).await
    });
    if !clean {
        std::process::exit(1);
    }
}

/// Every phase asked for, then the table; false if any phase had a problem.
async fn run(bench: &mut Bench) -> bool {
    let asked: Vec<&str> = bench.args.phases.split(',').collect();
    let all = asked.contains(&"all");
    let mut want: Vec<&str> = [
        "ingest",
        "subscriber",
        "drain",
        "ordered",
        "filters",
        "transforms",
        "pull",
        "fanout",
        "latency",
        "replay",
        "prune",
        "hangup",
        "backlog",
        "pg-ingest",
        "pg-ingest-2",
        "pg-drain",
        "pg-latency",
        "console",
    ]
    .into_iter()
    // The console phase stores a million events: only when named.
    .filter(|p| (all && *p != "console") || asked.contains(p))
    .collect();
    let server =
        pg::Server::for_phases(&bench.args.postgres_url, &bench.hookgate, &mut want, all).await;
    eprintln!("{}", bench.pin.describe());
    let (generator, raw, mut rows) = phases::ceilings::phase(bench).await;
    bench.raw = raw;
    let bench = &*bench;
    let (mut ingest_rate, mut pg_ingest_rate) = (0.0, 0.0);
    let mut first_rows = BTreeMap::new();
    for phase in want {
        eprintln!("phase {phase}");
        let pg = || server.as_ref().expect("probed");
        let new = match phase {
            "ingest" => {
                let rows = phases::ingest::ingest(bench).await;
                ingest_rate = rows[0].rate;
                rows
            }
            "subscriber" => phases::ingest::subscriber(bench).await,
            "drain" => phases::delivery::drain(bench).await,
            "ordered" => phases::delivery::ordered(bench).await,
            "filters" => phases::rules::filters(bench).await,
            "transforms" => phases::rules::transforms(bench).await,
            "pull" => phases::pull::phase(bench).await,
            "fanout" => phases::delivery::fanout(bench).await,
            "latency" => phases::latency::phase(bench, ingest_rate).await,
            "replay" => phases::replay::phase(bench).await,
            "prune" => phases::prune::phase(bench).await,
            "hangup" => phases::hangup::phase(bench).await,
            "backlog" => phases::backlog::phase(bench).await,
            "pg-ingest" => {
                let rows = phases::postgres::ingest(bench, pg()).await;
                pg_ingest_rate = rows[0].rate;
                rows
            }
            "pg-ingest-2" => phases::postgres::ingest_two(bench, pg()).await,
            "pg-drain" => phases::postgres::drain(bench, pg()).await,
            "pg-latency" => phases::postgres::latency(bench, pg(), pg_ingest_rate).await,
            "console" => phases::console::phase(bench).await,
            _ => unreachable!(),
        };
        for row in &new {
            if !row.problems.is_empty() {
                eprintln!("PROBLEM in {}: {}", row.name, row.problems.join("; "));
            }
        }
        if let Some(first) = new.first() {
            first_rows.insert(phase, first.clone());
        }
        rows.extend(new);
    }
    table::print(bench, (generator, raw), &rows, &first_rows, server.as_ref())
}
