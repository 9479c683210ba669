//! The cost of one transform run, in instructions, for callgrind (issue 18's budget: a jq
//! transform on every delivery must cost under 20 % of drain throughput). Timings on a shared
//! 2-CPU machine vary by ±15 %; callgrind's instruction counts do not.
//!
//! Runs are the bench's `transforms` phase's: a ~1 KiB body with `n`, `type` and `pad`, the
//! `content-type` a delivery forwards, event type `bench.event`, and its program.
//!
//!     cargo build --release --bins --example transform_cost
//!     # The worker side: N request frames, answered by a real worker.
//!     target/release/examples/transform_cost frames 2000 > /tmp/frames-2000
//!     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.worker \
//!         target/release/hookgate transform-worker < /tmp/frames-2000 > /dev/null
//!     # The gateway side: N runs through a `Pool` of one worker (not traced), BATCH at once.
//!     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.pool \
//!         target/release/examples/transform_cost pool 2000 25
//!
//! Run each with two values of N and divide the difference in instructions by the difference
//! in N: start-up (the worker compiling the program, the runtime, the first process spawn)
//! cancels out. Under callgrind the gateway runs far slower than its worker, so it finds
//! every answer of a batch already waiting: it counts the work per run, not the wake-ups a
//! real load adds.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hookgate::transform::{Input, Output, Pool, PoolConfig, frame};

/// The hookgate binary's allocator, so the pool's side is measured as the gateway runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PROGRAM: &str = ".body |= {n: .n, type: .type, size: (.pad | length)}";
const BODY_BYTES: usize = 1024;

fn input(n: usize) -> Input {
    let head = format!(r#"{{"type":"bench.event","n":"{n:010}","pad":""#);
    let pad = "x".repeat(BODY_BYTES.saturating_sub(head.len() + 2));
    Input {
        body: Bytes::from(format!("{head}{pad}\"}}")),
        headers: vec![("content-type".into(), "application/json".into())],
        event_type: Some("bench.event".into()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |i: usize, default: usize| {
        args.get(i)
            .map(|a| a.parse::<usize>().expect("a count"))
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("frames") => frames(count(1, 2000)),
        Some("pool") => pool(count(1, 2000), count(2, 25)),
        _ => {
            eprintln!("usage: transform_cost frames N > FILE | transform_cost pool N [BATCH]");
            std::process::exit(2);
        }
    }
}

/// Writes `n` request frames on stdout.
fn frames(n: usize) {
    let mut out = Vec::new();
    for i in 0..n {
        frame::encode_request(&mut out, PROGRAM, &input(i), PoolConfig::DEFAULT_MAX_OUTPUT);
    }
    std::io::stdout().write_all(&out).expect("stdout");
}

/// Runs `n` transforms through a pool of one worker, `batch` at a time, and checks each answer.
fn pool(n: usize, batch: usize) {
    let worker = std::env::var_os("HOOKGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("own path");
            // target/release/examples/transform_cost -> target/release/hookgate
            exe.parent()
                .and_then(|p| p.parent())
                .expect("target dir")
                .join("hookgate")
        });
    let config = PoolConfig {
        workers: 1,
        // Callgrind slows the gateway, not its worker; the limit is for runaway programs.
        timeout: std::time::Duration::from_secs(10),
        ..PoolConfig::new(worker, vec!["transform-worker".into()])
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let pool = Arc::new(Pool::new(config));
        let program: Arc<str> = Arc::from(PROGRAM);
        let input = input(0);
        let pad = input.body.iter().filter(|&&b| b == b'x').count();
        let expected = Bytes::from(format!(
            r#"{{"n":"{:010}","type":"bench.event","size":{pad}}}"#,
            0
        ));
        let mut done = 0;
        while done < n {
            // One wave is one batch: the slot task wakes after every run of the wave is queued.
            let mut wave = tokio::task::JoinSet::new();
            for _ in 0..batch.max(1).min(n - done) {
                let (pool, program, input) =
                    (Arc::clone(&pool), Arc::clone(&program), input.clone());
                wave.spawn(async move { pool.run("bench", &program, input).await });
            }
            while let Some(answer) = wave.join_next().await {
                match answer.expect("a run") {
                    Ok(Output::Send { body, .. }) if body == expected => done += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
    });
}
