//! The gateway's pool of worker processes, which run transforms with a hard time limit.
//!
//! `workers` slot tasks each own at most one worker process, started on the first run it
//! gets and again after one is killed or dies. A slot takes a batch of runs of one key
//! ([`Schedule`]), writes their requests to its worker and reads the answers in order, while
//! still writing (so neither pipe can fill up against the other). Each run's clock starts
//! when its request is fully written *and* the run before it is answered: a run not
//! answered within `timeout` of that gets its worker killed (SIGKILL, then reaped) and
//! answers [`TransformError::Timeout`]; the runs behind it in the batch, never started, go
//! back to the front of their queue for a fresh worker. A worker that dies mid-run answers
//! [`TransformError::WorkerDied`] for that run, the same way. A worker is trusted with
//! nothing: an answer frame larger than `max_output` plus the framing slack, or one that
//! does not decode, gets it killed too.
//!
//! A fresh worker first writes a hello frame; the pool waits for it (up to
//! [`STARTUP_TIMEOUT`]) before sending work, so a slow process start never counts against a
//! run's `timeout`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use super::frame::{self, FRAME_SLACK};
use super::schedule::{BatchLimit, Schedule};
use super::{Input, Output, TransformError};

/// The first frame a worker writes, to say it is up and speaks this protocol.
pub const HELLO: &[u8] = b"hookgate-transform-worker/1";
/// How long a fresh worker may take to say hello.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Runs one worker takes at once (pipelined; answered in order).
const PIPELINE_RUNS: usize = 128;
/// Bytes of requests one batch takes beyond its first run.
const PIPELINE_BYTES: usize = 256 * 1024;

/// How the pool starts and bounds its workers.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The worker's executable: the gateway's own (`std::env::current_exe()`).
    pub command: PathBuf,
    /// Its arguments: `["transform-worker"]`.
    pub args: Vec<String>,
    /// Worker processes at most (at least 1).
    pub workers: usize,
    /// How long one run may take once its worker has it.
    pub timeout: Duration,
    /// The largest output (body, header names and values, event type) in bytes.
    pub max_output: usize,
}

impl PoolConfig {
    pub const DEFAULT_WORKERS: usize = 2;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
    pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

    /// The defaults (2 workers, 50 ms, 1 MiB) for a worker started as `command args…`.
    pub fn new(command: PathBuf, args: Vec<String>) -> Self {
        Self {
            command,
            args,
            workers: Self::DEFAULT_WORKERS,
            timeout: Self::DEFAULT_TIMEOUT,
            max_output: Self::DEFAULT_MAX_OUTPUT,
        }
    }
}

/// Runs transforms in worker processes. Dropping the pool stops its workers.
pub struct Pool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: PoolConfig,
    state: Mutex<State>,
    /// Idle slots wait here for work.
    wake: Notify,
}

struct State {
    schedule: Schedule<Job>,
    /// Slots waiting for work.
    idle: usize,
    /// Slot tasks are spawned on the first run (a pool may be built outside a runtime).
    started: bool,
    closed: bool,
    /// Each slot's worker process id, while it has one.
    pids: Vec<Option<u32>>,
}

struct Job {
    program: Arc<str>,
    input: Input,
    reply: oneshot::Sender<Result<Output, TransformError>>,
}

impl Job {
    /// Roughly the bytes of its request frame.
    fn size(&self) -> usize {
        self.program.len()
            + self.input.body.len()
            + self
                .input
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 8)
                .sum::<usize>()
            + 32
    }
}

impl Pool {
    /// A pool; no process starts until the first run.
    pub fn new(config: PoolConfig) -> Self {
        let workers = config.workers.max(1);
        let config = PoolConfig { workers, ..config };
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    schedule: Schedule::new((workers / 2).max(1)),
                    idle: 0,
                    started: false,
                    closed: false,
                    pids: vec![None; workers],
                }),
                config,
                wake: Notify::new(),
            }),
        }
    }

    /// The pool's configuration (`workers` at least 1).
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Runs `program` on `input` for `key` (an endpoint id) in a worker. Must be called
    /// within a tokio runtime. Dropping the future withdraws a run that has not started.
    pub async fn run(
        &self,
        key: &str,
        program: &Arc<str>,
        input: Input,
    ) -> Result<Output, TransformError> {
        self.submit(key, program, input).answer().await
    }

    /// Queues `program` on `input` for `key` now, without waiting: [`Submitted::answer`] waits
    /// for it. A lane submits the runs of the deliveries it has claimed before their sending
    /// slots free up, so a run's round trip through a worker overlaps with earlier requests
    /// instead of holding a slot. Must be called within a tokio runtime. Dropping the
    /// [`Submitted`] withdraws a run that has not started.
    pub fn submit(&self, key: &str, program: &Arc<str>, input: Input) -> Submitted {
        let (reply, answer) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Submitted(Err(TransformError::Closed));
            }
            if !state.started {
                state.started = true;
                for index in 0..self.shared.config.workers {
                    tokio::spawn(slot(Arc::clone(&self.shared), index));
                }
            }
            state.schedule.push(
                key,
                Job {
                    program: Arc::clone(program),
                    input,
                    reply,
                },
            );
            if state.idle > 0 {
                self.shared.wake.notify_waiters();
            }
        }
        Submitted(Ok(answer))
    }

    /// The process ids of the workers running now, for tests that watch them die.
    #[cfg(any(test, feature = "test-support"))]
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.lock().pids.iter().flatten().copied().collect()
    }
}

/// A run queued by [`Pool::submit`]; dropping it withdraws the run if it has not started.
#[derive(Debug)]
pub struct Submitted(Result<oneshot::Receiver<Result<Output, TransformError>>, TransformError>);

impl Submitted {
    /// The run's answer, once its worker gives it.
    pub async fn answer(self) -> Result<Output, TransformError> {
        match self.0 {
            Ok(answer) => answer.await.unwrap_or(Err(TransformError::Closed)),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.schedule.drain()
        };
        // Their callers get `Closed`; the slots end and their workers are killed on drop.
        drop(waiting);
        self.shared.wake.notify_waiters();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics under this lock; if something did, the schedule is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch for slot `index`, waiting for one; `None` once the pool is closed.
    async fn next_batch(&self) -> Option<(Arc<str>, Vec<Job>)> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before looking, so a push between the look and the wait wakes us.
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                let limit = BatchLimit {
                    runs: PIPELINE_RUNS,
                    bytes: PIPELINE_BYTES,
                };
                if let Some(batch) = state.schedule.next_batch(limit, Job::size) {
                    return Some(batch);
                }
                state.idle += 1;
            }
            notified.await;
            self.lock().idle -= 1;
        }
    }

    /// A batch is over: its unstarted runs go back, and idle slots look again (this key may
    /// be under its cap now).
    fn batch_done(&self, key: &Arc<str>, leftovers: Vec<Job>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.schedule.done(key, leftovers);
        if state.idle > 0 && state.schedule.has_eligible() {
            self.wake.notify_waiters();
        }
    }

    fn set_pid(&self, index: usize, pid: Option<u32>) {
        if let Some(slot) = self.lock().pids.get_mut(index) {
            *slot = pid;
        }
    }
}

/// One slot: takes batches and runs them on its worker, replacing the worker when it fails.
async fn slot(shared: Arc<Shared>, index: usize) {
    let mut worker: Option<Worker> = None;
    let mut frames = Vec::new();
    while let Some((key, jobs)) = shared.next_batch().await {
        // Runs whose caller went away are not run.
        let jobs: VecDeque<Job> = jobs.into_iter().filter(|j| !j.reply.is_closed()).collect();
        let leftovers = if jobs.is_empty() {
            Vec::new()
        } else {
            run_batch(&shared, index, &mut worker, &mut frames, jobs).await
        };
        shared.batch_done(&key, leftovers);
    }
    if let Some(worker) = worker.take() {
        worker.stop().await;
    }
    shared.set_pid(index, None);
}

/// Runs `jobs` on the slot's worker (starting one if needed), answering each; returns the
/// runs not started because an earlier one failed.
async fn run_batch(
    shared: &Shared,
    index: usize,
    worker: &mut Option<Worker>,
    frames: &mut Vec<u8>,
    mut jobs: VecDeque<Job>,
) -> Vec<Job> {
    let config = &shared.config;
    // A worker that died while idle (killed from outside) is replaced before it gets work.
    if let Some(w) = worker.as_mut()
        && !matches!(w.child.try_wait(), Ok(None))
    {
        if let Some(dead) = worker.take() {
            dead.stop().await;
        }
        shared.set_pid(index, None);
    }
    if worker.is_none() {
        match Worker::start(config).await {
            Ok(w) => {
                shared.set_pid(index, Some(w.pid));
                *worker = Some(w);
            }
            Err(error) => {
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
                return Vec::new();
            }
        }
    }
    let Some(w) = worker.as_mut() else {
        return jobs.into();
    };

    frames.clear();
    let mut ends = Vec::with_capacity(jobs.len());
    for job in &jobs {
        frame::encode_request(frames, &job.program, &job.input, config.max_output);
        ends.push(frames.len());
    }
    let limit = config.max_output.saturating_add(FRAME_SLACK);
    let failure = w
        .exchange(frames, &ends, &mut jobs, config.timeout, limit)
        .await;
    let Some(failure) = failure else {
        return Vec::new();
    };
    // The worker is killed (or dead): reap it, and start a fresh one for the next batch.
    let status = match worker.take() {
        Some(w) => w.stop().await,
        None => String::new(),
    };
    shared.set_pid(index, None);
    match failure {
        Failure::Run(error) => {
            if let Some(job) = jobs.pop_front() {
                let error = match error {
                    TransformError::WorkerDied(_) => TransformError::WorkerDied(status),
                    other => other,
                };
                let _ = job.reply.send(Err(error));
            }
        }
        // The worker died before it had the whole request: nothing of it ran.
        Failure::Unsent => {}
    }
    jobs.into()
}

/// How a batch broke off.
enum Failure {
    /// The run at the front of the queue failed (timeout, death, a bad frame).
    Run(TransformError),
    /// The worker was gone before the front run's request was fully written.
    Unsent,
}

/// A running worker process and its pipes.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
    /// Runs it has answered: a worker that never answered anything and dies is not trusted
    /// with a retry.
    answered: u64,
}

impl Worker {
    /// Starts a worker and waits for its hello.
    async fn start(config: &PoolConfig) -> Result<Self, TransformError> {
        let spawn_error = |e: &dyn std::fmt::Display| {
            TransformError::Spawn(format!("{}: {e}", config.command.display()))
        };
        let mut child = Command::new(&config.command)
            .args(&config.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_error(&e))?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(spawn_error(&"no pipes to the worker"));
        };
        let mut worker = Self {
            child,
            stdin,
            stdout: BufReader::with_capacity(64 * 1024, stdout),
            pid,
            answered: 0,
        };
        let hello =
            tokio::time::timeout(STARTUP_TIMEOUT, read_frame(&mut worker.stdout, HELLO.len()))
                .await;
        match hello {
            Ok(Ok(Ok(payload))) if payload == HELLO => Ok(worker),
            Ok(Ok(_)) => {
                worker.stop().await;
                Err(spawn_error(&"it did not answer as a transform worker"))
            }
            Ok(Err(e)) => {
                let status = worker.stop().await;
                Err(spawn_error(&format!("it exited at start ({e}; {status})")))
            }
            Err(_) => {
                worker.stop().await;
                Err(spawn_error(&format!(
                    "it did not start within {STARTUP_TIMEOUT:?}"
                )))
            }
        }
    }

    /// Kills the process (if still running) and reaps it; says how it ended.
    async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        match self.child.wait().await {
            Ok(status) => describe_exit(status),
            Err(e) => format!("its status could not be read: {e}"),
        }
    }

    /// Writes `frames` (runs ending at `ends`) while reading one answer per run, in order,
    /// and sends each to its job. Returns why it stopped early, with the failed run (if any)
    /// still at the front of `jobs`.
    async fn exchange(
        &mut self,
        frames: &[u8],
        ends: &[usize],
        jobs: &mut VecDeque<Job>,
        timeout: Duration,
        limit: usize,
    ) -> Option<Failure> {
        let Self {
            child,
            stdin,
            stdout,
            answered,
            ..
        } = self;
        // How many bytes are written, for the reader to start each run's clock.
        let (written_tx, mut written) = watch::channel(0usize);
        // The whole batch in as few writes as the pipe takes (usually one), rather than one per
        // run: the worker then reads every request at once and answers them in one write, so
        // a batch costs both processes a few system calls and wake-ups instead of a few per
        // run. The count is published after each write, so each run's clock still starts once
        // its own request is written.
        let writer = async move {
            let mut at = 0;
            while at < frames.len() {
                match stdin.write(&frames[at..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => at += n,
                }
                written_tx.send_replace(at);
            }
            let _ = stdin.flush().await;
        };
        let reader = async move {
            for &end in ends {
                if written.wait_for(|&n| n >= end).await.is_err() {
                    return Some(if *answered == 0 {
                        Failure::Run(TransformError::WorkerDied(String::new()))
                    } else {
                        Failure::Unsent
                    });
                }
                let protocol = |e: frame::FrameError| TransformError::Protocol(e.to_string());
                // An answer already read in with the ones before it is decoded where it lies:
                // it came within its time, and waiting for it would only cost a clock, a timer
                // and a copy.
                let answer = match buffered_answer(stdout, limit) {
                    Some(decoded) => decoded.map_err(protocol),
                    None => {
                        // Written, and the run before it answered: its clock starts now.
                        let deadline = Instant::now() + timeout;
                        match tokio::time::timeout_at(deadline, read_frame(stdout, limit)).await {
                            Err(_) => Err(TransformError::Timeout(timeout)),
                            Ok(Err(e)) => Err(TransformError::WorkerDied(e.to_string())),
                            Ok(Ok(Err(_too_long))) => Err(TransformError::OutputTooLarge {
                                max: limit.saturating_sub(FRAME_SLACK),
                            }),
                            Ok(Ok(Ok(payload))) => {
                                frame::decode_response(&payload).map_err(protocol)
                            }
                        }
                    }
                };
                match answer {
                    Ok(result) => {
                        *answered += 1;
                        if let Some(job) = jobs.pop_front() {
                            let _ = job.reply.send(result);
                        }
                    }
                    Err(error) => {
                        // Stop the worker now, so a write still pending fails.
                        let _ = child.start_kill();
                        return Some(Failure::Run(error));
                    }
                }
            }
            None
        };
        let ((), failure) = tokio::join!(writer, reader);
        failure
    }
}

/// The next answer when its frame is already whole in `stdout`'s buffer (and within `limit`),
/// decoded in place and consumed without waiting; `None` when it must be read.
#[allow(clippy::type_complexity)]
fn buffered_answer(
    stdout: &mut BufReader<ChildStdout>,
    limit: usize,
) -> Option<Result<Result<Output, TransformError>, frame::FrameError>> {
    let buffer = stdout.buffer();
    let len = u32::from_le_bytes(buffer.get(..4)?.try_into().ok()?) as usize;
    if len > limit {
        return None;
    }
    let answer = frame::decode_response(buffer.get(4..4 + len)?);
    Pin::new(stdout).consume(4 + len);
    Some(answer)
}

/// Reads one frame: `Ok(Ok(payload))`, `Ok(Err(len))` when its length is over `limit` (the
/// payload is not read), or the read's error (the worker's end of the pipe closed).
async fn read_frame(
    stdout: &mut BufReader<ChildStdout>,
    limit: usize,
) -> std::io::Result<Result<Vec<u8>, usize>> {
    let mut len = [0u8; 4];
    stdout.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Ok(Err(len));
    }
    let mut payload = vec![0u8; len];
    stdout.read_exact(&mut payload).await?;
    Ok(Ok(payload))
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("it exited with status {code}"),
        (None, Some(6)) => "it aborted (SIGABRT), as on a stack overflow".into(),
        (None, Some(9)) => "it was killed (SIGKILL)".into(),
        (None, Some(11)) => "it crashed (SIGSEGV)".into(),
        (None, Some(signal)) => format!("it was killed by signal {signal}"),
        (None, None) => "it ended".into(),
    }
}
