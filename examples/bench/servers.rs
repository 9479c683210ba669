//! The harness's own servers: the counting sink hookgate delivers to (in this process, on the
//! load side), and the two responders the ceilings are measured against (`--serve raw` and
//! `--serve fixed`, each in a process of its own on the server side).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where the sink records end-to-end latencies: bodies stamped `"sched_us":N` (µs since
/// `start`) are measured against their arrival.
#[derive(Clone)]
pub struct Latencies {
    pub start: Instant,
    samples: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            start: Instant::now(),
            samples: Arc::default(),
        }
    }

    fn record(&self, body: &[u8]) {
        let Some(pos) = body.windows(11).position(|w| w == b"\"sched_us\":") else {
            return;
        };
        let digits: String = body[pos + 11..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|b| *b as char)
            .collect();
        if let Ok(sched) = digits.parse::<u64>() {
            let now = self.start.elapsed().as_micros() as u64;
            self.samples
                .lock()
                .expect("lock")
                .push(now.saturating_sub(sched));
        }
    }

    pub fn take_sorted(&self) -> Vec<u64> {
        let mut v = std::mem::take(&mut *self.samples.lock().expect("lock"));
        v.sort_unstable();
        v
    }
}

/// The sink every endpoint points at: counts what arrives, records stamped latencies.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub count: Arc<AtomicU64>,
    pub latencies: Latencies,
}

impl Sink {
    pub async fn start() -> Sink {
        let count = Arc::new(AtomicU64::new(0));
        let latencies = Latencies::new();
        let addr = hyper_server(count.clone(), Some(latencies.clone())).await;
        Sink {
            addr,
            count,
            latencies,
        }
    }

    pub fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
    }

    pub fn received(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until `target` deliveries have arrived; false if `limit` passed first.
    pub async fn wait_for(&self, target: u64, limit: Duration) -> bool {
        let start = Instant::now();
        while self.received() < target {
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

/// A bare hyper server that reads the body, counts, and answers 202: the raw ceiling (in a
/// process of its own) and the sink (here).
async fn hyper_server(count: Arc<AtomicU64>, latencies: Option<Latencies>) -> SocketAddr {
    use http_body_util::BodyExt;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (count, latencies) = (count.clone(), latencies.clone());
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (count, latencies) = (count.clone(), latencies.clone());
                    async move {
                        if let Ok(body) = req.into_body().collect().await
                            && let Some(l) = &latencies
                        {
                            l.record(&body.to_bytes());
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(202)
                                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                                .expect("response"),
                        )
                    }
                });
                let _ = http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
    addr
}

/// The cheapest responder that still speaks HTTP/1.1 keep-alive: finds each request's end
/// (headers, then `content-length` bytes, never looked at) and answers a fixed 200. No
/// header map, no body buffer, no routing: what it costs is next to nothing beside wrk.
async fn fixed_responder() -> SocketAddr {
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let (mut filled, mut skip) = (0usize, 0usize);
                let mut out = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf[filled..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    filled += n;
                    let mut at = 0;
                    loop {
                        if skip > 0 {
                            let s = skip.min(filled - at);
                            skip -= s;
                            at += s;
                            if skip > 0 {
                                break;
                            }
                            out.extend_from_slice(ANSWER);
                        }
                        let Some(end) = find(&buf[at..filled], b"\r\n\r\n") else {
                            break;
                        };
                        skip = content_length(&buf[at..at + end]);
                        at += end + 4;
                        if skip == 0 {
                            out.extend_from_slice(ANSWER);
                        }
                    }
                    buf.copy_within(at..filled, 0);
                    filled -= at;
                    if filled == buf.len() {
                        return; // headers larger than the buffer: not ours
                    }
                    if !out.is_empty() {
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                    }
                }
            });
        }
    });
    addr
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    head.split(|b| *b == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|b| *b == b':')?);
            name.trim_ascii()
                .eq_ignore_ascii_case(b"content-length")
                .then(|| std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// `--serve MODE`: one responder in this process, its address on stdout, until killed.
pub fn serve_child(mode: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let addr = match mode {
            "raw" => hyper_server(Arc::new(AtomicU64::new(0)), None).await,
            "fixed" => fixed_responder().await,
            _ => panic!("--serve raw|fixed"),
        };
        println!("addr={addr}");
        std::future::pending::<()>().await;
    });
}
