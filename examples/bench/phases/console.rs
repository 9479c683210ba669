//! Phase 12, `console`: how long each console page takes with a million events stored (issue
//! 16: "every page renders in under 200 ms on the 2-core VM").
//!
//! **The data.** `--console-events` events, sent by wrk (each once, in rounds whose pools are
//! signed just before they go) from the [`KINDS`] at once, so that their events interleave in
//! the store as they would in traffic: three sources, four event types, to four endpoints on
//! the sink, one of them (`legacy`) on a closed port with one attempt, so about 6% of the
//! events have a dead letter. With `--console-data DIR` the store is kept there: a directory
//! that does not exist yet is loaded and marked complete, one that is marked is used as it is
//! (one that is not is refused: a half-loaded store would time other pages).
//!
//! **The timing.** Signed in once as the admin (the session cookie kept), with every delivery
//! settled, each of [`PAGES`] is fetched one request at a time: a few untimed, then
//! `--console-requests` timed, from the request's send to the last byte of its page (this
//! harness on the load side, the gateway alone on the server core). A page that does not
//! answer 200 is not timed: its status is printed instead, and it is a problem of the run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::procs::Gateway;
use crate::wrk::{Generator, Load};
use crate::{Bench, Row, SECRET, TOKEN, closed_port};

/// The traffic: (source, event type, wrk connections), sent at once; each kind's share of the
/// events is its share of the connections.
const KINDS: &[(&str, &str, usize)] = &[
    ("bench", "order.created", 36),
    ("shop", "order.paid", 16),
    ("crm", "customer.updated", 8),
    ("bench", "invoice.failed", 4),
];

/// A text no payload has: the worst case of "payload contains", which reads every payload up
/// to the scan bound and returns an empty page.
const RARE: &str = "no-payload-has-this";

/// The pages timed, in order: (what, path). `{event}` is the newest event of source `shop`
/// (two deliveries, each with an attempt), `{endpoint}` the endpoint whose deliveries die,
/// `{rare}` is [`RARE`]. Pages are added here.
pub const PAGES: &[(&str, &str)] = &[
    ("overview", "/console/overview"),
    ("events", "/console/events"),
    ("events by source", "/console/events?source=crm"),
    ("events by type", "/console/events?type=invoice.failed"),
    ("events, status dead", "/console/events?status=dead"),
    ("events by endpoint", "/console/events?endpoint=legacy"),
    (
        "events, payload contains (no match)",
        "/console/events?contains={rare}",
    ),
    ("event detail", "/console/events/{event}"),
    ("dead letters", "/console/dead-letters"),
    (
        "dead letters by endpoint",
        "/console/dead-letters?endpoint=legacy",
    ),
    (
        "dead letters, payload contains (no match)",
        "/console/dead-letters?contains={rare}",
    ),
    (
        "replay confirmation (counts matches)",
        "/console/dead-letters/replay",
    ),
    ("endpoints", "/console/endpoints"),
    ("endpoint detail", "/console/endpoints/{endpoint}"),
    ("sources", "/console/sources"),
];

/// Events per round of the fill (all kinds together).
const ROUND: u64 = 100_000;

/// Requests of each page before the timed ones (connections, caches, the page's code warm).
const WARM: usize = 3;

/// The file that marks a data directory as completely loaded.
const LOADED: &str = "console-bench-loaded";

fn config(b: &Bench, dir: &Path) -> String {
    let sink = b.sink.addr;
    let dead = closed_port();
    let mut rest = String::new();
    for source in ["shop", "crm"] {
        rest.push_str(&format!(
            "[[sources]]\nid = \"{source}\"\nverify = \"standard-webhooks\"\nsecrets = [\"{SECRET}\"]\n"
        ));
    }
    for (id, url, route) in [
        (
            "orders",
            format!("http://{sink}/orders"),
            "event_types = [\"order.*\"]",
        ),
        (
            "ledger",
            format!("http://{sink}/ledger"),
            "sources = [\"shop\"]",
        ),
        (
            "crm-sync",
            format!("http://{sink}/crm"),
            "sources = [\"crm\"]",
        ),
        (
            "legacy",
            format!("http://127.0.0.1:{dead}/gone"),
            "event_types = [\"invoice.*\"]\nretry = { max_attempts = 1 }",
        ),
    ] {
        rest.push_str(&format!(
            "[[endpoints]]\nid = \"{id}\"\nurl = \"{url}\"\n{route}\nmax_in_flight = 64\n"
        ));
    }
    b.toml(dir, "", "", &rest)
}

/// Events hookgate accepted, every source together.
async fn accepted(gw: &Gateway) -> u64 {
    gw.metrics()
        .await
        .lines()
        .filter(|l| {
            l.starts_with("hookgate_events_received_total{") && l.contains("outcome=\"accepted\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Sends `n` events of the [`KINDS`], each once: what went wrong.
async fn fill(b: &Bench, gw: &Gateway, n: u64) -> Vec<String> {
    let before = accepted(gw).await;
    let weight: usize = KINDS.iter().map(|k| k.2).sum();
    let (mut left, mut sent, mut problems) = (n, 0u64, Vec::new());
    while left > 0 {
        let round = left.min(ROUND);
        let pools: Vec<_> = KINDS
            .iter()
            .map(|(source, event_type, conns)| {
                let len = (round * *conns as u64 / weight as u64).max(1);
                (b.pool_of(len, source, event_type), *conns)
            })
            .collect();
        let this: u64 = pools.iter().map(|(p, _)| p.len).sum();
        let started = Instant::now();
        // At once, each wrk with its share of the connections: the kinds interleave.
        let mut runs = tokio::task::JoinSet::new();
        for (pool, connections) in pools {
            let generator = Generator {
                script: b.generator.script.clone(),
                connections,
                pin: b.generator.pin.clone(),
            };
            let (url, pid) = (gw.ingress.clone(), gw.pid());
            runs.spawn(async move {
                let limit = Duration::from_secs(120 + pool.len / 500);
                generator.run(&url, &pool, Load::Once { limit }, pid).await
            });
        }
        while let Some(run) = runs.join_next().await {
            let run = run.expect("wrk task");
            sent += run.sent;
            problems.extend(run.problems(true));
        }
        left = left.saturating_sub(this);
        eprintln!(
            "console: {} of {n} events sent ({:.0}/s this round)",
            n - left,
            this as f64 / started.elapsed().as_secs_f64()
        );
    }
    let got = accepted(gw).await - before;
    if got != sent {
        problems.push(format!("hookgate accepted {got} of {sent} sent"));
    }
    problems
}

/// One page's figures: its status, and its times in ms (none unless it answered 200).
struct Timed {
    name: &'static str,
    path: String,
    status: u16,
    bytes: usize,
    ms: Vec<f64>,
}

impl Timed {
    /// The nearest-rank percentile `p` (0 to 100) of the times.
    fn pct(&self, p: f64) -> Option<f64> {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v.get(rank.max(1) - 1).copied()
    }
}

/// The time from sending a GET to the last byte of its answer: (status, bytes, ms).
async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> (u16, usize, f64) {
    let start = Instant::now();
    let r = http
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("console request");
    let status = r.status().as_u16();
    let body = r.bytes().await.expect("console page");
    (status, body.len(), start.elapsed().as_secs_f64() * 1000.0)
}

/// Signs in as the admin: the `Cookie` header of the session.
async fn sign_in(http: &reqwest::Client, admin: &str) -> String {
    let r = http
        .post(format!("{admin}/console/sign-in"))
        .header("origin", admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status().as_u16(), 303, "console sign-in refused");
    let set = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    set.split(';').next().unwrap_or_default().to_string()
}

/// The newest event of `source`, through the API.
async fn newest_event(gw: &Gateway, source: &str) -> String {
    let text = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/events?source={source}&limit=1",
            gw.admin
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("events")
        .text()
        .await
        .expect("events body");
    let page: serde_json::Value = serde_json::from_str(&text).expect("json");
    page["data"][0]["event_id"]
        .as_str()
        .unwrap_or("evt_none")
        .to_string()
}

/// The bytes under `dir`.
fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => size_of(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

pub async fn phase(b: &Bench) -> Vec<Row> {
    let n = b.args.console_events;
    let temp;
    let dir: PathBuf = match &b.args.console_data {
        Some(d) => d.clone(),
        None => {
            temp = b.data_dir();
            temp.path().join("data")
        }
    };
    let reuse = dir.join(LOADED).is_file();
    if dir.exists() && !reuse {
        panic!(
            "--console-data {}: exists but was not loaded completely by this phase; remove it",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).expect("console data dir");
    let gw = b.gateway(&config(b, &dir)).await;
    let mut problems = Vec::new();
    let load_started = Instant::now();
    if reuse {
        eprintln!("console: reusing the store in {}", dir.display());
    } else {
        problems.extend(fill(b, &gw, n).await);
    }
    if !crate::phases::replay::settle(&gw, Duration::from_secs(900)).await {
        problems.push("deliveries still pending after 900 s".into());
    }
    if !reuse && problems.is_empty() {
        std::fs::write(dir.join(LOADED), format!("{n}\n")).expect("mark loaded");
    }
    let loaded_in = load_started.elapsed();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = sign_in(&http, &gw.admin).await;
    let event = newest_event(&gw, "shop").await;
    let mut timed = Vec::new();
    for (name, path) in PAGES {
        let path = path
            .replace("{event}", &event)
            .replace("{endpoint}", "legacy")
            .replace("{rare}", RARE);
        let url = format!("{}{path}", gw.admin);
        let (status, bytes, _) = get(&http, &url, &cookie).await;
        let mut page = Timed {
            name,
            path,
            status,
            bytes,
            ms: Vec::new(),
        };
        if status == 200 {
            for _ in 1..WARM {
                get(&http, &url, &cookie).await;
            }
            for _ in 0..b.args.console_requests {
                let (status, _, ms) = get(&http, &url, &cookie).await;
                if status != 200 {
                    page.status = status;
                    page.ms.clear();
                    break;
                }
                page.ms.push(ms);
            }
        }
        timed.push(page);
    }

    let stored = size_of(&dir);
    println!(
        "\nconsole: {n} events{} ({:.1} GiB on disk{}), {} timed requests per page, one at a \
         time, signed in as admin:\n",
        if reuse { ", reused store" } else { "" },
        stored as f64 / (1u64 << 30) as f64,
        if reuse {
            String::new()
        } else {
            format!(", loaded and settled in {:.0} s", loaded_in.as_secs_f64())
        },
        b.args.console_requests
    );
    println!("| page | path | status | p50 ms | p95 ms | max ms | page KiB |");
    println!("|---|---|---|---|---|---|---|");
    let cell = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    let mut rows = Vec::new();
    for t in &timed {
        let (p50, p95, max) = (t.pct(50.0), t.pct(95.0), t.pct(100.0));
        println!(
            "| {} | `{}` | {} | {} | {} | {} | {:.0} |",
            t.name,
            t.path,
            t.status,
            cell(p50),
            cell(p95),
            cell(max),
            t.bytes as f64 / 1024.0
        );
        let mut page_problems = Vec::new();
        if t.status != 200 {
            page_problems.push(format!("answered {} (not timed)", t.status));
        } else if p95.is_some_and(|v| v > 200.0) {
            page_problems.push(format!("p95 {:.0} ms is over 200 ms", p95.unwrap_or(0.0)));
        }
        let mean = t.ms.iter().sum::<f64>() / t.ms.len().max(1) as f64;
        let mut row = Row::figure(
            format!("console page: {} (pages/s, one at a time)", t.name),
            if t.ms.is_empty() { 0.0 } else { 1000.0 / mean },
            false,
            page_problems,
        );
        row.p50 = p50;
        rows.push(row);
    }
    if let Some(first) = rows.first_mut() {
        first.problems.extend(problems);
    }
    gw.stop().await;
    rows
}
