//! `GET /api/v1/endpoints/{id}/messages:stream`: a pull endpoint's messages as server-sent
//! events, as they fall due.
//!
//! **A stream never holds more than `max_unacked` messages unacked**: it takes more only as
//! its consumer acks or nacks (heard from the store's announcements of results, and, for
//! what other nodes settle, from a look at the held deliveries every [`RECHECK`]) or as their
//! leases run out. That is its backpressure: a slow consumer is sent nothing it has not room
//! for, and every message it holds is leased, as from `messages:receive`.
//!
//! Each message's SSE `id:` is `<stream>:<n>`. **A reconnect with `Last-Event-ID` resumes
//! the stream**: the messages sent after that id and still leased to it, which the consumer
//! may never have got, are sent again (same receipts, the payload read again from the store:
//! **a stream keeps no payload in memory**, only each message's headers and receipt), then
//! new ones follow. A stream this
//! process no longer knows (it restarted; another node answers) starts afresh; what the old
//! one held comes back when its leases run out, as any unacked message does. Nothing is lost
//! either way.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::response::sse::{Event, Sse};
use tokio::sync::{broadcast, watch};

use super::{MessageView, pull_endpoint, pull_of, view};
use crate::api::params::{ApiError, bad_request};
use crate::api::places::{Place, Places};
use crate::api::{AdminState, ApiResult};
use crate::delivery::pull::{self, Receive};
use crate::ids::DeliveryId;
use crate::model::Endpoint;
use crate::model::event::DeliveryStatus;
use crate::store::notices::Announcement;

/// Streams open at once, across every endpoint (a 503 beyond).
pub const MAX_STREAMS: usize = 64;
/// Streams open at once for one endpoint: a consumer token scoped to one endpoint cannot take
/// every place from the others'.
pub const MAX_STREAMS_PER_ENDPOINT: usize = 16;
/// Streams remembered for a reconnect, open or not.
const MAX_REMEMBERED: usize = 256;
/// How long a stream stays silent before a heartbeat comment.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often a full stream looks at its held deliveries (for what other nodes settled).
const RECHECK: Duration = Duration::from_secs(1);
/// The most unacked messages a stream may ask for.
const MAX_UNACKED: usize = 1000;

/// The streams of this process: their places, and what each holds, for a reconnect.
pub struct Streams {
    places: Places,
    held: Mutex<HashMap<String, Arc<Mutex<Held>>>>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            places: Places::new(MAX_STREAMS, MAX_STREAMS_PER_ENDPOINT),
            held: Mutex::default(),
        }
    }
}

/// What one stream holds: each message sent and not yet settled, by its number.
#[derive(Default)]
struct Held {
    endpoint: String,
    next: u64,
    sent: BTreeMap<u64, (MessageView, u64)>,
}

impl Held {
    /// Forgets what was settled (`done`) or ran out by `now_ms`; how many are still held.
    fn prune(&mut self, now_ms: u64, done: impl Fn(&MessageView) -> bool) -> usize {
        self.sent
            .retain(|_, (m, until)| *until > now_ms && !done(m));
        self.sent.len()
    }
}

impl Streams {
    /// The stream `last` names (`<stream>:<n>`), if it is `endpoint`'s and remembered, with
    /// what it sent after `n`; else a new one.
    fn resume(
        &self,
        endpoint: &str,
        last: Option<&str>,
        now_ms: u64,
    ) -> (String, Arc<Mutex<Held>>, Vec<u64>) {
        let mut all = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((name, n)) = last.and_then(|l| l.rsplit_once(':'))
            && let Ok(n) = n.parse::<u64>()
            && let Some(held) = all.get(name)
        {
            let mut h = held.lock().unwrap_or_else(|p| p.into_inner());
            if h.endpoint == endpoint {
                // What ran out is no longer this stream's to send again.
                h.prune(now_ms, |_| false);
                let again = match n.checked_add(1) {
                    Some(after) => h.sent.range(after..).map(|(k, _)| *k).collect(),
                    None => Vec::new(),
                };
                drop(h);
                return (name.to_string(), Arc::clone(held), again);
            }
        }
        if all.len() >= MAX_REMEMBERED {
            // Forget the streams holding nothing first; at worst, any (what they hold comes
            // back when its leases run out).
            let idle: Vec<String> = all
                .iter()
                .filter(|(_, h)| Arc::strong_count(h) == 1)
                .map(|(k, _)| k.clone())
                .collect();
            for k in idle {
                all.remove(&k);
            }
            if all.len() >= MAX_REMEMBERED
                && let Some(k) = all.keys().next().cloned()
            {
                all.remove(&k);
            }
        }
        let name = format!("s{:016x}", rand::random::<u64>());
        let held = Arc::new(Mutex::new(Held {
            endpoint: endpoint.to_string(),
            ..Held::default()
        }));
        all.insert(name.clone(), Arc::clone(&held));
        (name, held, Vec::new())
    }
}

/// What a stream asks for, from its query.
pub struct Ask {
    max_unacked: usize,
    visibility: Duration,
}

/// A stream's query: `max_unacked` and `visibility`, each optional.
pub fn ask(query: Option<&str>) -> Result<Ask, ApiError> {
    let mut out = Ask {
        max_unacked: 10,
        visibility: pull::DEFAULT_VISIBILITY,
    };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "max_unacked" => {
                out.max_unacked = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_UNACKED).contains(n))
                    .ok_or_else(|| bad_request("max_unacked", "must be from 1 to 1000"))?;
            }
            "visibility" => {
                let d: crate::config::Duration = v
                    .parse()
                    .map_err(|e: String| bad_request("visibility", e))?;
                out.visibility = super::visibility(Some(d), "visibility")?;
            }
            other => {
                return Err(bad_request(
                    other,
                    "is not a parameter of this route (max_unacked, visibility)",
                ));
            }
        }
    }
    Ok(out)
}

/// Streams due messages, at most `max_unacked` unacked at once.
#[utoipa::path(get, path = "/api/v1/endpoints/{id}/messages:stream", operation_id = "stream_messages", tag = "messages",
    params(("id" = crate::api::grammar::EntryId, Path),
        ("max_unacked" = Option<u32>, Query, description = "Messages held unacked at most (1 to 1000; default 10)"),
        ("visibility" = Option<String>, Query, description = "Each message's lease (default 30s, at most 12h)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume a stream: the id of the last message received")),
    responses((status = 200, description = "`text/event-stream`: `message` events (`id:` `<stream>:<n>`, data a message as `messages:receive` gives it), and heartbeat comments", content_type = "text/event-stream"),
        (status = 400, body = crate::api::views::ErrorBody), (status = 404, body = crate::api::views::ErrorBody),
        (status = 409, body = crate::api::views::ErrorBody), (status = 503, body = crate::api::views::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stream(
    State(st): State<Arc<AdminState>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let endpoint = pull_endpoint(&st, &id)?;
    let ask = ask(query.as_deref())?;
    let place = st.streams.places.take(&endpoint.id).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{MAX_STREAMS} message streams are open on this node already, or \
                 {MAX_STREAMS_PER_ENDPOINT} of this endpoint's"
            ),
        )
    })?;
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (name, held, again) = st.streams.resume(&endpoint.id, last, st.clock.now_ms());
    let mut queued = VecDeque::from([Event::default().comment("messages")]);
    let resend: Vec<(u64, MessageView)> = {
        let h = held.lock().unwrap_or_else(|p| p.into_inner());
        again
            .into_iter()
            .filter_map(|n| h.sent.get(&n).map(|(m, _)| (n, m.clone())))
            .collect()
    };
    for (n, mut m) in resend {
        // Payloads are not kept in memory for a reconnect: read again, the same bytes the
        // headers were signed over (a pull endpoint has no transform).
        let Ok(event_id) = m.event_id.parse() else {
            continue;
        };
        if let Some((_, payload)) = st.store.event(event_id).await? {
            (m.payload, m.payload_base64) = super::payload_fields(&payload.body);
            queued.push_back(event(&name, n, &m));
        }
    }
    let s = Stream {
        rx: st.store.notices().subscribe(),
        stop: st.stopping.clone(),
        st,
        endpoint,
        ask,
        name,
        held,
        queued,
        _place: place,
    };
    let mut r = Sse::new(futures_util::stream::unfold(s, Stream::next)).into_response();
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

fn event(name: &str, n: u64, m: &MessageView) -> Event {
    let data = serde_json::to_string(m).unwrap_or_default();
    Event::default()
        .event("message")
        .id(format!("{name}:{n}"))
        .data(data)
}

struct Stream {
    st: Arc<AdminState>,
    endpoint: Endpoint,
    ask: Ask,
    name: String,
    held: Arc<Mutex<Held>>,
    rx: broadcast::Receiver<Arc<Announcement>>,
    stop: watch::Receiver<bool>,
    queued: VecDeque<Event>,
    _place: Place,
}

impl Stream {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next event, or `None` to end the stream.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Stream)> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Some((Ok(e), self));
            }
            if *self.stop.borrow() {
                return None;
            }
            self.heard();
            let now = self.st.clock.now_ms();
            let holding = self.held().prune(now, |_| false);
            if holding < self.ask.max_unacked {
                let e = self.take(self.ask.max_unacked - holding).await?;
                return Some((Ok(e), self));
            }
            // Full: wait for an ack (or a nack, or a lease to run out).
            let step = tokio::select! {
                biased;
                _ = self.stop.wait_for(|s| *s) => return None,
                got = self.rx.recv() => Some(got),
                () = tokio::time::sleep(RECHECK) => None,
            };
            match step {
                Some(Ok(a)) => self.settled(&a),
                Some(Err(broadcast::error::RecvError::Closed)) => return None,
                Some(Err(broadcast::error::RecvError::Lagged(_))) | None => {
                    self.recheck().await;
                }
            }
        }
    }

    /// Takes up to `room` messages, waiting up to a heartbeat for one: their events, queued
    /// after the first, which is returned (a heartbeat comment when none came).
    async fn take(&mut self, room: usize) -> Option<Event> {
        let paused = {
            let d = Arc::clone(&self.st.dispatcher);
            let id = self.endpoint.id.clone();
            move || d.is_paused(&id).unwrap_or(false)
        };
        let req = Receive {
            max: room,
            wait: HEARTBEAT,
            visibility: self.ask.visibility,
        };
        let got = pull_of(&self.st)
            .receive(&self.endpoint, req, paused, self.stop.clone())
            .await;
        let messages = match got {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(endpoint = %self.endpoint.id, error = %e, "a message stream cannot take messages");
                return Some(Event::default().comment("the store is unavailable"));
            }
        };
        if messages.is_empty() {
            return Some(Event::default().comment("heartbeat"));
        }
        let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for m in messages {
            let until = m.visible_at_ms;
            let v = view(m);
            h.next += 1;
            let n = h.next;
            self.queued.push_back(event(&self.name, n, &v));
            // Kept for a reconnect without its payload, which is read again then.
            h.sent.insert(
                n,
                (
                    MessageView {
                        payload: None,
                        payload_base64: None,
                        ..v
                    },
                    until,
                ),
            );
        }
        drop(h);
        self.queued.pop_front()
    }

    /// Drains the announcements heard so far.
    fn heard(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(a) => self.settled(&a),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    }

    /// Forgets a held message whose result `a` announces.
    fn settled(&mut self, a: &Announcement) {
        if let Announcement::Result {
            delivery_id,
            status,
            ..
        } = a
            && *status != DeliveryStatus::Delivering
        {
            let id = delivery_id.to_string();
            let now = self.st.clock.now_ms();
            self.held().prune(now, |m| m.delivery_id == id);
        }
    }

    /// Looks at each held delivery in the store: forgets those settled (by any node).
    async fn recheck(&mut self) {
        let ids: Vec<String> = self
            .held()
            .sent
            .values()
            .map(|(m, _)| m.delivery_id.clone())
            .collect();
        let mut done = Vec::new();
        for id in ids {
            let Ok(parsed) = id.parse::<DeliveryId>() else {
                continue;
            };
            if let Ok(Some(d)) = self.st.store.delivery(parsed).await
                && d.status != DeliveryStatus::Delivering
            {
                done.push(id);
            }
        }
        let now = self.st.clock.now_ms();
        self.held().prune(now, |m| done.contains(&m.delivery_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_endpoint_holds_at_most_its_share_of_the_places() {
        let streams = Streams::default();
        let a: Vec<Place> = (0..MAX_STREAMS_PER_ENDPOINT)
            .map(|_| streams.places.take("a").expect("a place"))
            .collect();
        assert!(streams.places.take("a").is_err(), "a is at its share");
        let b = streams
            .places
            .take("b")
            .expect("another endpoint still gets one");
        drop(a);
        assert!(streams.places.take("a").is_ok(), "given back when dropped");
        drop(b);
        assert_eq!(streams.places.held("b"), 0);
    }

    #[test]
    fn a_stream_resumes_after_the_last_id_seen_and_not_what_ran_out() {
        let streams = Streams::default();
        let (name, held, again) = streams.resume("e", None, 0);
        assert!(again.is_empty());
        let view = |id: &str| MessageView {
            receipt: id.into(),
            delivery_id: id.into(),
            event_id: id.into(),
            event_type: None,
            source: "s".into(),
            attempt: 1,
            received_at: String::new(),
            visible_until: String::new(),
            headers: Default::default(),
            payload: None,
            payload_base64: None,
        };
        {
            let mut h = held.lock().expect("lock");
            h.sent.insert(1, (view("d1"), 100));
            h.sent.insert(2, (view("d2"), 100));
            h.sent.insert(3, (view("d3"), 50));
        }
        let (same, _, again) = streams.resume("e", Some(&format!("{name}:1")), 60);
        assert_eq!(same, name);
        assert_eq!(again, [2], "3's lease ran out at 50");
        let (other, _, again) = streams.resume("f", Some(&format!("{name}:1")), 60);
        assert_ne!(other, name, "another endpoint's stream is not resumed");
        assert!(again.is_empty());
        let (_, _, again) = streams.resume("e", Some(&format!("{name}:{}", u64::MAX)), 60);
        assert!(again.is_empty());
    }
}
