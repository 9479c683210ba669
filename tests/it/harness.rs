//! The test harness: a gateway on port 0 ([`Gateway`]), a receiver that records what it gets
//! and answers with scripted statuses ([`Receiver`]), a client that signs like a Standard
//! Webhooks sender ([`signed`]), and [`eventually`] instead of sleeps.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use hookgate::config::Config;
use hookgate::ids::EventId;
use hookgate::model::event::{Delivery, DeliveryStatus};
use hookgate::store::{Store, StoreOptions};
use hookgate::{Listeners, RunOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The Standard Webhooks secret tests sign inbound requests with (vector SW-1's).
pub const INBOUND_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The secret endpoints sign deliveries with (vector SW-2's).
pub const OUTBOUND_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Polls `check` until it holds; fails the test with `what` if it never does. This bounds a
/// wait, it does not time anything: the limit is far above any expected duration.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`eventually`] for a check that awaits (a store read, say).
pub async fn eventually_async(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks that `check` holds now and keeps holding for `window`: the way to say "nothing more
/// happens", which no eventually-assert can.
pub async fn consistently(what: &str, window: Duration, mut check: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        assert!(check(), "stopped holding: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`consistently`] for a check that awaits.
pub async fn consistently_async(
    what: &str,
    window: Duration,
    mut check: impl AsyncFnMut() -> bool,
) {
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        assert!(check().await, "stopped holding: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes a config for the real binary into `dir`: data in `dir/data`, both listeners on port
/// 0, the `[admin]` keys in `admin`, then `rest`. Returns its path.
pub fn binary_config(dir: &Path, admin: &str, rest: &str) -> PathBuf {
    let path = dir.join("hookgate.toml");
    let text = format!(
        "data_dir = \"{}\"\n[ingress]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{admin}\n{rest}",
        dir.join("data").display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running gateway, in this process.
pub struct Gateway {
    pub ingress: String,
    pub admin: String,
    pub data_dir: PathBuf,
    /// The gateway's own store, for reading what it wrote while it runs.
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), hookgate::RunError>>>,
}

/// The options every in-process gateway of these tests starts with: transforms run in the
/// real binary's worker (this test executable is not hookgate's).
pub fn run_options() -> RunOptions {
    RunOptions {
        transform_worker: Some((
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_hookgate")),
            vec!["transform-worker".to_string()],
        )),
        ..RunOptions::default()
    }
}

impl Gateway {
    /// Starts a gateway on `config` (TOML without `data_dir`) in a fresh temporary directory.
    pub async fn start(config: &str) -> (Gateway, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let gw = Gateway::start_in(dir.path(), config).await;
        (gw, dir)
    }

    /// Starts a gateway with its data in `data_dir`.
    pub async fn start_in(data_dir: &Path, config: &str) -> Gateway {
        Gateway::start_faulty(data_dir, config, None).await
    }

    /// Starts a gateway whose store's writes fail while `fault` is on.
    pub async fn start_faulty(
        data_dir: &Path,
        config: &str,
        fault: Option<hookgate::store::redb::fault::FaultSwitch>,
    ) -> Gateway {
        let opts = RunOptions {
            shutdown_grace: Duration::from_millis(500),
            store_fault: fault,
            ..run_options()
        };
        Gateway::start_with(data_dir, config, opts).await
    }

    /// Starts a gateway with `opts`.
    pub async fn start_with(data_dir: &Path, config: &str, opts: RunOptions) -> Gateway {
        let mut cfg = Config::from_toml(config).expect("test config parses");
        cfg.data_dir = data_dir.to_path_buf();
        let validated = cfg.validate().expect("test config is valid");
        let ingress = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let ingress_url = format!("http://{}", ingress.local_addr().expect("addr"));
        let admin_url = format!("http://{}", admin.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let store = hookgate::open_store(&validated, &opts)
            .await
            .expect("store opens");
        let task = tokio::spawn(hookgate::serve(
            validated,
            Listeners { ingress, admin },
            async {
                let _ = stopped.await;
            },
            opts,
            store.clone(),
        ));
        Gateway {
            ingress: ingress_url,
            admin: admin_url,
            data_dir: data_dir.to_path_buf(),
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Statuses of every delivery of an event, as stored now.
    pub async fn statuses(&self, event: EventId) -> Vec<DeliveryStatus> {
        self.deliveries(event)
            .await
            .into_iter()
            .map(|d| d.status)
            .collect()
    }

    /// Waits until every delivery of `event` is final, and returns their records.
    pub async fn settled(&self, event: EventId) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let records = self.deliveries(event).await;
            if !records.is_empty() && records.iter().all(|d| d.status.is_final()) {
                return records;
            }
            // On failure, say where each delivery stands.
            assert!(
                tokio::time::Instant::now() < deadline,
                "never happened: deliveries of {event} settled: {records:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every delivery of an event, as stored now.
    pub async fn deliveries(&self, event: EventId) -> Vec<Delivery> {
        let Some((ev, _)) = self.store.event(event).await.expect("read") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (id, _) in &ev.deliveries {
            if let Some(d) = self.store.delivery(*id).await.expect("read") {
                out.push(d);
            }
        }
        out
    }

    /// Stops the gateway and waits until its store is closed.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("gateway task").expect("gateway ran cleanly");
        }
    }

    pub fn url(&self, source: &str) -> String {
        format!("{}/in/{source}", self.ingress)
    }
}

/// Opens a stopped gateway's store to look at what is on disk.
pub fn open_store(data_dir: &Path) -> Store {
    Store::open(
        data_dir,
        StoreOptions {
            max_backlog: u64::MAX,
            queue_capacity: 16,
            clock: Arc::new(hookgate::clock::SystemClock),
            metrics: None,
            fault: None,
            quick_repair: true,
        },
    )
    .expect("store opens")
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered with (or would have been, had it not hung).
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Checks `r`'s Standard Webhooks signature with the official `standardwebhooks` library
/// and [`OUTBOUND_SECRET`], the endpoints' secret in these tests: an independent check that
/// hookgate signs what it sends.
pub fn verify_outbound(r: &Received) {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.headers[name].clone());
    }
    standardwebhooks::Webhook::new(OUTBOUND_SECRET)
        .expect("secret")
        .verify(&r.body, &headers)
        .expect("signed with the endpoint's secret, over the body as sent");
}

/// One scripted answer: a status and extra headers.
type Scripted = (u16, Vec<(String, String)>);

#[derive(Default)]
struct ReceiverState {
    got: Mutex<Vec<Received>>,
    /// When each request arrived.
    arrivals: Mutex<Vec<std::time::Instant>>,
    /// Requests being answered now, and the most there ever were at once.
    open: std::sync::atomic::AtomicUsize,
    most_open: std::sync::atomic::AtomicUsize,
    script: Mutex<VecDeque<Scripted>>,
    default_status: Mutex<u16>,
    hang: AtomicBool,
    delay_ms: std::sync::atomic::AtomicU64,
    /// Requests whose body holds one of these are answered 500, whatever else holds.
    fail_when: Mutex<Vec<Vec<u8>>>,
    /// Out of 100, how many requests fail at random (500), by a fixed sequence.
    fail_percent: std::sync::atomic::AtomicU64,
}

/// A subscriber on an ephemeral port that records every request.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState {
            default_status: Mutex::new(200),
            ..Default::default()
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, state }
    }

    /// The next responses, in order, as (status, headers); after them, the default status.
    pub fn script(&self, responses: &[(u16, &[(&str, &str)])]) {
        let mut s = self.state.script.lock().expect("lock");
        for (status, headers) in responses {
            s.push_back((
                *status,
                headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ));
        }
    }

    pub fn set_default_status(&self, status: u16) {
        *self.state.default_status.lock().expect("lock") = status;
    }

    /// Answer 500 to every request whose body contains `needle`.
    pub fn fail_when(&self, needle: &str) {
        self.state
            .fail_when
            .lock()
            .expect("lock")
            .push(needle.as_bytes().to_vec());
    }

    /// Answer 500 to about `percent` of the requests, picked by a fixed pseudo-random
    /// sequence (the same run after run), the rest as usual.
    pub fn fail_percent(&self, percent: u64) {
        self.state.fail_percent.store(percent, Ordering::SeqCst);
    }

    /// Stop failing requests by their body or at random.
    pub fn stop_failing(&self) {
        self.state.fail_when.lock().expect("lock").clear();
        self.state.fail_percent.store(0, Ordering::SeqCst);
    }

    /// From now on, accept requests and never answer them.
    pub fn hang(&self) {
        self.state.hang.store(true, Ordering::SeqCst);
    }

    /// Answer every request only after `delay`.
    pub fn delay(&self, delay: Duration) {
        self.state.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Answer new requests again (those already hanging stay so).
    pub fn unhang(&self) {
        self.state.hang.store(false, Ordering::SeqCst);
    }

    pub fn got(&self) -> Vec<Received> {
        self.state.got.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.state.got.lock().expect("lock").len()
    }

    /// The most requests it was answering at once.
    pub fn most_concurrent(&self) -> usize {
        self.state.most_open.load(Ordering::SeqCst)
    }

    /// The most requests that arrived within any `window`.
    pub fn most_within(&self, window: Duration) -> usize {
        self.most_within_from(0, window)
    }

    /// [`Receiver::most_within`], counting only from the `from`-th request on.
    pub fn most_within_from(&self, from: usize, window: Duration) -> usize {
        let arrivals = self.state.arrivals.lock().expect("lock").clone();
        let arrivals = arrivals.get(from..).unwrap_or_default().to_vec();
        (0..arrivals.len())
            .map(|i| {
                arrivals[i..]
                    .iter()
                    .take_while(|t| t.duration_since(arrivals[i]) < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Waits until at least `n` requests arrived and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} requests at {}", self.url), || {
            self.count() >= n
        })
        .await;
        self.got()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    // Counted open until the answer is made, or the request is dropped (a hang cut off).
    struct Open<'a>(&'a ReceiverState);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            self.0.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let now_open = state.open.fetch_add(1, Ordering::SeqCst) + 1;
    state.most_open.fetch_max(now_open, Ordering::SeqCst);
    let _open = Open(&state);
    state
        .arrivals
        .lock()
        .expect("lock")
        .push(std::time::Instant::now());
    let (status, answer_headers) = {
        let mut got = state.got.lock().expect("lock");
        let n = got.len() as u64;
        let poisoned = state
            .fail_when
            .lock()
            .expect("lock")
            .iter()
            .any(|needle| body.windows(needle.len()).any(|w| w == needle.as_slice()));
        // A fixed sequence (splitmix64 of the arrival number), so a run can be repeated.
        let roll = {
            let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % 100
        };
        let unlucky = roll < state.fail_percent.load(Ordering::SeqCst);
        let next = state.script.lock().expect("lock").pop_front();
        let (status, answer_headers) =
            next.unwrap_or_else(|| (*state.default_status.lock().expect("lock"), Vec::new()));
        let status = if poisoned || unlucky { 500 } else { status };
        got.push(Received {
            headers,
            body,
            status,
        });
        (status, answer_headers)
    };
    if state.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut response = axum::response::Response::new(axum::body::Body::from("receiver says hi"));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    for (k, v) in answer_headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    response
}

/// A plain HTTP client for tests, one per thread: building one loads the system's root
/// certificates (tens of milliseconds), and a client must not outlive the runtime its pooled
/// connections run on, which a process-wide one would across tests.
pub fn client() -> reqwest::Client {
    thread_local! {
        static CLIENT: reqwest::Client = {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder().no_proxy().build().expect("client")
        };
    }
    CLIENT.with(Clone::clone)
}

pub fn now_secs() -> i64 {
    i64::try_from(hookgate::clock::system_now_ms() / 1000).expect("time")
}

/// Standard Webhooks headers for `body`, signed with `secret` at `ts`.
pub fn signed(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    let key = hookgate::verify::standard_webhooks::decode_secret(secret).expect("secret");
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            hookgate::verify::standard_webhooks::sign(&key, id, ts, body),
        ),
        ("content-type".into(), "application/json".into()),
    ]
}

/// Config that lets deliveries reach loopback receivers, with the `orders` source that
/// [`send`] signs for.
pub fn orders_source() -> String {
    orders_source_with("")
}

/// [`orders_source`] with more `[delivery]` keys.
pub fn orders_source_with(delivery: &str) -> String {
    format!(
        r#"
        [delivery]
        allow_private_networks = true
        {delivery}
        [[sources]]
        id = "orders"
        verify = "standard-webhooks"
        secrets = ["{INBOUND_SECRET}"]
        "#
    )
}

/// The admin token of the tests' configs (`[admin] token`).
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Calls the admin API with [`ADMIN_TOKEN`]; returns the status and the JSON answer.
pub async fn admin_call(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    admin_at(&gw.admin, method, path, body).await
}

/// [`admin_call`] against the admin listener at `admin` (a real binary's, say).
pub async fn admin_at(
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    admin_as(admin, ADMIN_TOKEN, method, path, body).await
}

/// [`admin_at`] with `token`.
pub async fn admin_as(
    admin: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let resp = client()
        .request(method, format!("{admin}/api/v1{path}"))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.expect("body")).unwrap_or_default(),
    )
}

/// The message of an error answer (`{"error": {"message": ...}}`), or "" if there is none.
pub fn error_message(answer: &serde_json::Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or("")
}

/// The event id in a 202 or duplicate answer.
pub fn event_id(answer: &serde_json::Value) -> EventId {
    answer["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no event_id in {answer}"))
        .parse()
        .expect("a well-formed event id")
}

/// POSTs `body` with `headers` on `http`.
pub async fn post_raw(
    http: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: impl Into<Bytes>,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut req = http.post(url).body(body.into());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await
}

/// POSTs `body` with `headers`; returns the status and the JSON answer.
pub async fn post(
    url: &str,
    headers: &[(String, String)],
    body: impl Into<Bytes>,
) -> (u16, serde_json::Value) {
    let resp = post_raw(&client(), url, headers, body)
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Sends a freshly signed webhook with `id` to `url`.
pub async fn send(url: &str, id: &str, body: &str) -> (u16, serde_json::Value) {
    post(
        url,
        &signed(INBOUND_SECRET, id, now_secs(), body.as_bytes()),
        body.to_string(),
    )
    .await
}

/// The real `hookgate` binary, started on a config file; knows its addresses from its log.
/// Killed when dropped.
pub struct Binary {
    pub child: tokio::process::Child,
    pub ingress: String,
    pub admin: String,
    /// Every log line so far (stderr).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    pub async fn start(config: &Path) -> Binary {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let (mut ingress, mut admin) = (None, None);
        let log = Arc::new(Mutex::new(Vec::new()));
        while ingress.is_none() || admin.is_none() {
            let line = lines
                .next_line()
                .await
                .expect("read log")
                .expect("the binary logs where it listens");
            log.lock().expect("log").push(line.clone());
            if let Some(rest) = line.split("ingress listening addr=").nth(1) {
                ingress = Some(rest.trim().to_string());
            }
            if let Some(rest) = line.split("admin listening addr=").nth(1) {
                admin = Some(rest.trim().to_string());
            }
        }
        // Keep draining the log so the binary never blocks on a full pipe.
        let kept = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().expect("log").push(line);
            }
        });
        Binary {
            child,
            ingress: format!("http://{}", ingress.unwrap_or_default()),
            admin: format!("http://{}", admin.unwrap_or_default()),
            log,
        }
    }

    /// The inbound URL of `source`.
    pub fn url(&self, source: &str) -> String {
        format!("{}/in/{source}", self.ingress)
    }

    pub async fn kill_9(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }
}

/// The text of a gateway's `/metrics` at `admin`.
pub async fn metrics_text(admin: &str) -> String {
    client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body")
}
