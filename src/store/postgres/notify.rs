//! Announcements between nodes. After a commit that made work due, the store announces the
//! endpoints locally at once (`Shared::announce`) and queues them here; this task sends them
//! as `NOTIFY hookgate_due, '<endpoint>'`, **at most one per endpoint per [`DEBOUNCE`]** (one
//! statement for all that queued meanwhile), and `LISTEN`s on the same connection, its own,
//! outside the pool, announcing locally what other nodes committed. Its own notifications come
//! back to it and are ignored (same backend pid).
//!
//! The connection is made again after a failure, with a growing, jittered delay. **Losing it
//! only adds latency**: notifications are hints, and lanes also look at their schedule at
//! their next due time (at most `idle_poll_ms` away).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::store::notices::Notices;

/// The channel every node listens on.
pub(super) const CHANNEL: &str = "hookgate_due";
/// The least time between two notifications of one endpoint.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// The longest wait before connecting again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Notifies and listens until `stop`, reconnecting as needed.
pub(super) async fn run(
    config: tokio_postgres::Config,
    notices: Arc<Notices>,
    mut due: mpsc::Receiver<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let stopping = *stop.borrow();
        if stopping {
            return;
        }
        match session(&config, &notices, &mut due, &mut stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "the notification connection failed; reconnecting");
            }
        }
        // Hints queued while disconnected are stale by the time we are back: drop them.
        while due.try_recv().is_ok() {}
        let jitter = Duration::from_millis(rand::random_range(0..250));
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            () = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: `Ok` when stopped, `Err` when the connection failed.
async fn session(
    config: &tokio_postgres::Config,
    notices: &Notices,
    due: &mut mpsc::Receiver<String>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| super::error::Fail::from(e).message())?;
    // The connection is driven here; notifications come out through this channel.
    let (heard_tx, mut heard) = mpsc::channel::<(i32, String)>(1024);
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    // A full queue drops the hint; lanes poll.
                    let _ = heard_tx.try_send((n.process_id(), n.payload().to_string()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    let _abort = AbortOnDrop(driver);
    let fail = |e: tokio_postgres::Error| super::error::Fail::from(e).message();
    let me: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(fail)?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(fail)?;
    let notify = client
        .prepare("SELECT pg_notify($1, e) FROM unnest($2::text[]) AS e")
        .await
        .map_err(fail)?;

    let mut queued: BTreeSet<String> = BTreeSet::new();
    let mut last_sent = Instant::now() - DEBOUNCE;
    loop {
        let ready_at = last_sent + DEBOUNCE;
        tokio::select! {
            () = stopped(stop) => return Ok(()),
            heard = heard.recv() => match heard {
                Some((pid, endpoint)) => {
                    if pid != me {
                        notices.announce(&endpoint);
                    }
                }
                None => return Err("the connection closed".to_string()),
            },
            endpoint = due.recv() => match endpoint {
                Some(e) => { queued.insert(e); }
                // The store is gone.
                None => return Ok(()),
            },
            () = tokio::time::sleep_until(ready_at), if !queued.is_empty() => {
                while let Ok(e) = due.try_recv() {
                    queued.insert(e);
                }
                let endpoints: Vec<String> = std::mem::take(&mut queued).into_iter().collect();
                client
                    .execute(&notify, &[&CHANNEL, &endpoints])
                    .await
                    .map_err(fail)?;
                last_sent = Instant::now();
            }
        }
    }
}

/// Returns once `stop` turns true (or its sender is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held by a caller's `select!`.
    let _ = stop.wait_for(|s| *s).await;
}

/// Stops the connection's driver when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
