//! The transform pool with the real binary's `transform-worker`: runaway programs are
//! stopped by killing their worker, crashed workers are replaced, outputs are bounded, and
//! one endpoint's runaway program never holds up another endpoint's runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookgate::transform::{Input, Output, Pool, PoolConfig, TransformError};

use crate::harness::eventually;

fn config(workers: usize, timeout: Duration) -> PoolConfig {
    PoolConfig {
        command: PathBuf::from(env!("CARGO_BIN_EXE_hookgate")),
        args: vec!["transform-worker".into()],
        workers,
        timeout,
        max_output: PoolConfig::DEFAULT_MAX_OUTPUT,
    }
}

fn input(body: &str) -> Input {
    Input {
        body: Bytes::copy_from_slice(body.as_bytes()),
        headers: vec![("content-type".into(), "application/json".into())],
        event_type: Some("order.paid".into()),
    }
}

fn program(text: &str) -> Arc<str> {
    Arc::from(text)
}

/// A healthy run, checked: `.body |= {id}` keeps the id.
async fn healthy(pool: &Pool, key: &str, id: usize) {
    let result = pool
        .run(
            key,
            &program(".body |= {id}"),
            input(&format!(r#"{{"id":{id},"x":1}}"#)),
        )
        .await;
    match result {
        Ok(Output::Send { body, .. }) => assert_eq!(body, format!(r#"{{"id":{id}}}"#)),
        other => panic!("healthy run {id} on {key}: {other:?}"),
    }
}

/// The timeout of pools whose healthy runs must not fail: generous, so a loaded machine never
/// makes one miss it, and still short enough to wait out a looping run.
const GENEROUS: Duration = Duration::from_secs(1);

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn a_looping_program_is_stopped_by_killing_its_worker() {
    // One worker, so the process that ran the loop is the one whose pid we hold.
    let pool = Pool::new(config(1, GENEROUS));
    for (round, looping) in ["def f: f; f", "repeat(1) | empty"].into_iter().enumerate() {
        healthy(&pool, "ep_loop", round).await;
        let pids = pool.worker_pids();
        assert_eq!(pids.len(), 1, "{pids:?}");
        let result = pool.run("ep_loop", &program(looping), input("{}")).await;
        assert_eq!(result, Err(TransformError::Timeout(GENEROUS)), "{looping}");
        eventually("the looping worker's process is gone", || !alive(pids[0])).await;
        // The next run gets a fresh worker.
        healthy(&pool, "ep_loop", round + 10).await;
        let fresh = pool.worker_pids();
        assert_eq!(fresh.len(), 1);
        assert_ne!(fresh[0], pids[0]);
    }
}

/// A lane submits the transforms of the deliveries it claimed before their sending slots are
/// free, and awaits each only when its turn comes: a submitted run must go ahead unawaited.
#[tokio::test]
async fn a_submitted_run_goes_ahead_before_it_is_awaited() {
    let pool = Pool::new(config(1, GENEROUS));
    let early = pool.submit("ep", &program(".body |= {id}"), input(r#"{"id":1,"x":1}"#));
    // One key's runs are answered in order: once a later run is answered, the early one
    // (never polled) has been answered too, and its answer is ready at the first poll.
    healthy(&pool, "ep", 2).await;
    let answer = tokio::time::timeout(Duration::ZERO, early.answer())
        .await
        .expect("answered before it was awaited");
    match answer {
        Ok(Output::Send { body, .. }) => assert_eq!(body, r#"{"id":1}"#),
        other => panic!("{other:?}"),
    }
    // A run given up before a worker takes it is not run: the key's next run is answered,
    // and the worker is the same (nothing ran that could have killed it).
    let pids = {
        healthy(&pool, "ep", 3).await;
        pool.worker_pids()
    };
    drop(pool.submit("ep", &program("def f: f; f"), input("{}")));
    healthy(&pool, "ep", 4).await;
    assert_eq!(pool.worker_pids(), pids);
}

/// Runs pipelined behind a stuck run on the same worker never started: when the stuck one
/// is killed they are run again on a fresh worker, not failed with it.
#[tokio::test]
async fn runs_behind_a_stuck_run_are_run_again_not_failed() {
    let pool = Pool::new(config(1, GENEROUS));
    let looping = program("def f: f; f");
    // All queued at once, so the one worker takes them as one batch, the loop first.
    let (stuck, a, b, c) = tokio::join!(
        pool.run("ep", &looping, input("{}")),
        healthy(&pool, "ep", 1),
        healthy(&pool, "ep", 2),
        healthy(&pool, "ep", 3),
    );
    assert_eq!(stuck, Err(TransformError::Timeout(GENEROUS)));
    let ((), (), ()) = (a, b, c);
}

#[tokio::test]
async fn a_stack_overflow_kills_only_its_worker_and_the_pool_recovers() {
    // Time enough for the overflow itself, however slow the build.
    let pool = Pool::new(config(1, Duration::from_secs(20)));
    healthy(&pool, "ep_deep", 1).await;
    let pids = pool.worker_pids();
    let result = pool
        .run("ep_deep", &program("def f: 1 + f; f"), input("{}"))
        .await;
    let Err(TransformError::WorkerDied(how)) = &result else {
        panic!("not a dead worker: {result:?}");
    };
    assert!(how.contains("SIGABRT") || how.contains("SIGSEGV"), "{how}");
    eventually("the crashed worker is reaped", || !alive(pids[0])).await;
    healthy(&pool, "ep_deep", 2).await;
}

#[tokio::test]
async fn an_output_over_max_output_is_refused() {
    let pool = Pool::new(PoolConfig {
        max_output: 1000,
        ..config(1, Duration::from_secs(2))
    });
    let result = pool
        .run("ep_big", &program(r#".body = ("x" * 2000)"#), input("{}"))
        .await;
    assert_eq!(result, Err(TransformError::OutputTooLarge { max: 1000 }));
    // Just under the limit goes through (the body and the input's headers count).
    let result = pool
        .run("ep_big", &program(r#".body = ("x" * 900)"#), input("{}"))
        .await;
    assert!(matches!(result, Ok(Output::Send { .. })), "{result:?}");
}

/// A worker that says hello, then answers with a frame far over the limit: the pool
/// refuses it without reading it, and kills the worker.
#[tokio::test]
async fn a_worker_sending_an_oversized_frame_is_killed() {
    let script = concat!(
        r"printf '\033\000\000\000hookgate-transform-worker/1\377\377\377\177'; ",
        "exec /bin/cat > /dev/null"
    );
    let pool = Pool::new(PoolConfig {
        command: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        workers: 1,
        timeout: Duration::from_secs(2),
        max_output: 1000,
    });
    let result = pool.run("ep_evil", &program("."), input("{}")).await;
    assert_eq!(result, Err(TransformError::OutputTooLarge { max: 1000 }));
    eventually("the worker is gone", || pool.worker_pids().is_empty()).await;
}

#[tokio::test]
async fn a_command_that_is_not_a_worker_is_a_spawn_error() {
    let pool = Pool::new(PoolConfig {
        command: env!("CARGO_BIN_EXE_hookgate").into(),
        args: vec!["--version".into()],
        ..config(1, Duration::from_secs(2))
    });
    let result = pool.run("ep", &program("."), input("{}")).await;
    assert!(
        matches!(&result, Err(TransformError::Spawn(m)) if m.contains("exited at start") || m.contains("did not answer")),
        "{result:?}"
    );
    let pool = Pool::new(PoolConfig {
        command: "/nonexistent/hookgate".into(),
        ..config(1, Duration::from_secs(2))
    });
    let result = pool.run("ep", &program("."), input("{}")).await;
    assert!(
        matches!(result, Err(TransformError::Spawn(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn errors_of_the_program_come_back_and_the_worker_stays() {
    let pool = Pool::new(config(1, Duration::from_secs(2)));
    healthy(&pool, "ep", 1).await;
    let pids = pool.worker_pids();
    let result = pool
        .run("ep", &program(r#"error("nope")"#), input("{}"))
        .await;
    assert_eq!(result, Err(TransformError::Runtime("nope".into())));
    let result = pool.run("ep", &program(".body |"), input("{}")).await;
    assert!(
        matches!(result, Err(TransformError::Compile(_))),
        "{result:?}"
    );
    let result = pool.run("ep", &program("null"), input("{}")).await;
    assert_eq!(result, Ok(Output::Drop));
    let result = pool.run("ep", &program("{body: env}"), input("{}")).await;
    assert!(
        matches!(&result, Ok(Output::Send { body, .. }) if body == "{}"),
        "{result:?}"
    );
    // None of that cost the worker.
    assert_eq!(pool.worker_pids(), pids);
}

/// While one endpoint's looping runs hold a worker each until they are killed, another
/// endpoint's runs keep going on the other worker. The looping runs here are given a long
/// timeout, so they hold their worker for the whole test: with head-of-line blocking the
/// healthy runs would wait behind them and never finish in time.
#[tokio::test]
async fn a_looping_endpoint_does_not_hold_up_the_others() {
    let pool = Arc::new(Pool::new(config(2, Duration::from_secs(120))));
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let spawn_loop = || {
        let (pool, stop, failed) = (pool.clone(), stop.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = pool
                    .run("ep_loop", &program("def f: f; f"), input("{}"))
                    .await;
                assert!(result.is_err());
                failed.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // One looping run takes a worker; the ones queued after it would take the other worker
    // too, without the per-key cap (a worker takes all runs of a key waiting at once, so
    // they must come after the first batch is taken).
    let mut loops = vec![spawn_loop()];
    eventually("a looping run holds a worker", || {
        !pool.worker_pids().is_empty()
    })
    .await;
    for _ in 0..3 {
        loops.push(spawn_loop());
    }
    tokio::task::yield_now().await;
    let good = async {
        for i in 0..50 {
            healthy(&pool, "ep_good", i).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), good)
        .await
        .expect("the healthy endpoint's runs went through beside the looping ones");
    // One worker held by the loop, one for the rest: never more processes than workers.
    assert!(pool.worker_pids().len() <= 2);
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.abort();
    }
}

/// The same with a timeout that stops the looping runs: the looping endpoint keeps failing
/// (each run killed in turn) while the other endpoint's runs all succeed.
#[tokio::test]
async fn a_failing_endpoint_and_a_healthy_one_side_by_side() {
    let pool = Arc::new(Pool::new(config(2, GENEROUS)));
    let timeouts = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let looping = {
        let (pool, timeouts, stop) = (pool.clone(), timeouts.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = pool
                    .run("ep_loop", &program("repeat(1) | empty"), input("{}"))
                    .await;
                if result == Err(TransformError::Timeout(GENEROUS)) {
                    timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut i = 0;
    // Healthy runs until the looping endpoint has been stopped a few times meanwhile.
    while timeouts.load(Ordering::Relaxed) < 2 {
        healthy(&pool, "ep_good", i).await;
        i += 1;
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    looping.await.expect("the looping task");
    assert!(i > 0);
}

/// Per-run cost through the pool for `.body |= {id: .id}` on a 1 KB JSON body. Run by hand:
/// `cargo test --release --test it transform_pool::per_run_cost -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn per_run_cost() {
    let pool = Arc::new(Pool::new(config(2, Duration::from_secs(1))));
    let mut body = String::from(r#"{"id":"evt_01J9Z3","type":"order.paid","data":{"items":["#);
    while body.len() < 1000 {
        body.push_str(r#"{"sku":"A-1","qty":1,"price":1999},"#);
    }
    body.push_str(r#"{"sku":"B","qty":2,"price":5}]}}"#);
    let body = Bytes::from(body);
    let prog = program(".body |= {id: .id}");
    for (label, in_flight, runs, keys) in [
        ("one at a time", 1usize, 5_000usize, 1usize),
        ("64 in flight, one endpoint", 64, 50_000, 1),
        ("64 in flight, two endpoints", 64, 50_000, 2),
    ] {
        // Warm up (spawn, compile).
        for k in 0..keys {
            pool.run(
                &format!("ep{k}"),
                &prog,
                Input {
                    body: body.clone(),
                    ..Input::default()
                },
            )
            .await
            .expect("warm-up");
        }
        let gateway_before = cpu_seconds(std::process::id());
        let workers_before = workers_cpu(&pool);
        let start = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (pool, prog, body, next) = (pool.clone(), prog.clone(), body.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= runs {
                        break;
                    }
                    let key = format!("ep{}", n % keys);
                    let input = Input {
                        body: body.clone(),
                        headers: vec![("content-type".into(), "application/json".into())],
                        event_type: Some("order.paid".into()),
                    };
                    let out = pool.run(&key, &prog, input).await.expect("a run");
                    assert!(matches!(out, Output::Send { .. }));
                }
            }));
        }
        for t in tasks {
            t.await.expect("a task");
        }
        let elapsed = start.elapsed();
        let gateway = cpu_seconds(std::process::id()) - gateway_before;
        let workers = workers_cpu(&pool) - workers_before;
        let per_run = |seconds: f64| seconds * 1e6 / runs as f64;
        println!(
            "{label}: {runs} runs in {elapsed:?}: {:.0} runs/s, {:.1} µs wall, {:.1} µs CPU per \
             run ({:.1} gateway + {:.1} workers)",
            runs as f64 / elapsed.as_secs_f64(),
            per_run(elapsed.as_secs_f64()),
            per_run(gateway + workers),
            per_run(gateway),
            per_run(workers),
        );
    }
}

fn workers_cpu(pool: &Pool) -> f64 {
    pool.worker_pids().into_iter().map(cpu_seconds).sum()
}

/// User plus system CPU seconds of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the command.
    (ticks(11) + ticks(12)) / 100.0
}
