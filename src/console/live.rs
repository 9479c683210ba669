//! `GET /console/events/live`: the events page's live tail, as server-sent events.
//!
//! Fed by the store's broadcast of what it committed (`store::notices`), **never by reading
//! the store per message or per client**: the events page's filters (source, type, endpoint,
//! status, time range) are applied in memory to each announcement, and a new event's row is
//! rendered from the announcement alone. Messages:
//! - `row` (`id:` the event id): a new event's table row, as HTML;
//! - `status` (`id:` the delivery id and attempt): a delivery's new state, as JSON, for the
//!   rows the page already streamed in;
//! - `gap`: some announcements were not sent (this stream fell behind, or reconnected), with a
//!   sentence for the page to show;
//! - a comment every [`HEARTBEAT`], so proxies keep the connection and a signed-out or expired
//!   session ends it.
//!
//! **At most [`MAX_STREAMS`] streams are open at once** (a 503 beyond), so browsers cannot
//! pin unbounded tasks; **every stream ends when the gateway begins to stop**, so none holds
//! the admin listener's graceful stop. Any signed-in role may watch (viewers too): rows show
//! nothing the events page does not. It shows what **this process** committed: with several
//! PostgreSQL nodes, events ingested by another node appear on that node's console.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, watch};

use super::events::{FILTERS, FilterForm};
use super::{Shared, Signed, page};
use crate::api::places::{Full, Place, Places};
use crate::api::{grammar, params};
use crate::ids::DeliveryId;
use crate::model::event::DeliveryStatus;
use crate::store::notices::Announcement;
use crate::store::query::Filter;

/// The most live streams open at once, across every session: well under the admin
/// listener's connection cap, so the API stays reachable however many tabs are open.
pub const MAX_STREAMS: usize = 32;
/// How long a stream stays silent before a heartbeat comment.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// How long a browser waits before reconnecting a dropped stream (`retry:`).
const RETRY: Duration = Duration::from_secs(3);

/// The most live streams one session holds at once: a few tabs, never the whole cap, so one
/// browser cannot lock every other session out.
pub const MAX_STREAMS_PER_SESSION: usize = 4;

/// The places of the open streams: in all, and per session.
pub fn places() -> Places {
    Places::new(MAX_STREAMS, MAX_STREAMS_PER_SESSION)
}

pub async fn stream(
    State(st): State<Shared>,
    user: Signed,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let (_, api_query) = FilterForm::parse(q.as_deref());
    let filter = match params::list_query(
        Some(&api_query),
        FILTERS,
        |c| grammar::event_id(c).is_some(),
        st.now_ms(),
    ) {
        Ok(q) => q.filter,
        Err(e) => return page::api_error(e),
    };
    // An announcement carries no payload to search, and a stream that showed events the
    // filter would not list would mislead: the page offers no live tail with this filter.
    if filter.contains.is_some() {
        return page::problem(
            StatusCode::BAD_REQUEST,
            "The live tail does not search payloads: clear \"Payload contains\" to use it.",
        );
    }
    let place = match st.live.take(&user.id) {
        Ok(place) => place,
        Err(Full::Key) => {
            return page::problem(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "You have {MAX_STREAMS_PER_SESSION} live views open already; close one and reload."
                ),
            );
        }
        Err(Full::All) => {
            return page::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{MAX_STREAMS} live views are open already; close one and reload."),
            );
        }
    };
    // Subscribed before the answer's headers go out: whatever commits after the browser
    // sees the stream open is in it.
    let rx = st.admin.store.notices().subscribe();
    let mut queued = VecDeque::from([Event::default().retry(RETRY).comment("live")]);
    if headers.contains_key("last-event-id") {
        queued.push_back(gap(
            "The live connection dropped for a moment: events in the gap are not shown here. Reload to see every event.",
        ));
    }
    let tail = Tail {
        rx,
        filter,
        stop: st.admin.stopping.clone(),
        queued,
        session: user.id,
        console: st,
        beat: tokio::time::Instant::now() + HEARTBEAT,
        _place: place,
    };
    let mut r = Sse::new(futures_util::stream::unfold(tail, Tail::next)).into_response();
    // A buffering proxy would hold the rows back.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// One open stream.
struct Tail {
    rx: broadcast::Receiver<Arc<Announcement>>,
    filter: Filter,
    stop: watch::Receiver<bool>,
    queued: VecDeque<Event>,
    session: String,
    console: Shared,
    /// When the next heartbeat is due, and the session is checked again: fixed when set, so
    /// a busy stream (whose messages may all be filtered out) still checks its session and
    /// keeps idle proxies at bay every [`HEARTBEAT`].
    beat: tokio::time::Instant,
    /// Held as long as the stream: dropped with it, however it ends.
    _place: Place,
}

impl Tail {
    /// The next message, or `None` to end the stream.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Tail)> {
        if let Some(e) = self.queued.pop_front() {
            return Some((Ok(e), self));
        }
        loop {
            let step = tokio::select! {
                // A stopping gateway ends the stream before anything else is sent.
                biased;
                _ = self.stop.wait_for(|s| *s) => Step::Stop,
                got = self.rx.recv() => Step::Heard(got),
                () = tokio::time::sleep_until(self.beat) => Step::Idle,
            };
            let e = match step {
                Step::Stop => return None,
                Step::Heard(Ok(a)) => {
                    let mut sent = messages(&a, &self.filter).into_iter();
                    let Some(first) = sent.next() else {
                        continue;
                    };
                    self.queued.extend(sent);
                    first
                }
                Step::Heard(Err(broadcast::error::RecvError::Lagged(n))) => gap(&format!(
                    "This page fell behind and skipped {n} updates. Reload to see every event."
                )),
                // The store is closed.
                Step::Heard(Err(broadcast::error::RecvError::Closed)) => return None,
                Step::Idle => {
                    // Signed out or expired since: the stream ends with the session.
                    let now = self.console.now_ms();
                    self.console.sessions.get(&self.session, now)?;
                    self.beat = tokio::time::Instant::now() + HEARTBEAT;
                    Event::default().comment("heartbeat")
                }
            };
            return Some((Ok(e), self));
        }
    }
}

/// What woke a stream.
enum Step {
    Stop,
    Heard(Result<Arc<Announcement>, broadcast::error::RecvError>),
    Idle,
}

fn gap(text: &str) -> Event {
    Event::default().event("gap").data(text)
}

/// A new event's row, as the events page lays it out.
#[derive(Template)]
#[template(path = "console/live_row.html")]
struct Row<'a> {
    id: String,
    received: String,
    source: &'a str,
    event_type: &'a str,
    /// (delivery id, endpoint, status) per delivery.
    deliveries: Vec<(String, &'a str, &'static str)>,
}

/// What a stream with `filter` is sent of `a`, if anything.
fn message(a: &Announcement, filter: &Filter) -> Option<Event> {
    match a {
        Announcement::Event {
            event_id,
            source,
            event_type,
            received_ms,
            deliveries,
        } => {
            let matches = filter.source.as_ref().is_none_or(|s| s == source)
                && filter
                    .event_type
                    .as_ref()
                    .is_none_or(|t| Some(t) == event_type.as_ref())
                && filter
                    .endpoint
                    .as_ref()
                    .is_none_or(|e| deliveries.iter().any(|(_, d)| d == e))
                // Every delivery of a new event is pending.
                && filter.status.is_none_or(|s| {
                    s == DeliveryStatus::Pending && !deliveries.is_empty()
                })
                && filter.since_ms.is_none_or(|t| *received_ms >= t)
                && filter.until_ms.is_none_or(|t| *received_ms < t);
            if !matches {
                return None;
            }
            let row = Row {
                id: event_id.to_string(),
                received: page::time(*received_ms),
                source,
                event_type: event_type.as_deref().unwrap_or(""),
                deliveries: deliveries
                    .iter()
                    .map(|(d, e)| (d.to_string(), e.as_str(), DeliveryStatus::Pending.as_str()))
                    .collect(),
            };
            match row.render() {
                Ok(html) => Some(Event::default().event("row").id(row.id).data(html)),
                Err(e) => {
                    tracing::error!(error = %e, "a live row failed to render");
                    None
                }
            }
        }
        Announcement::Result {
            delivery_id,
            endpoint,
            status,
            attempts,
            ..
        } => {
            // Only the rows this stream sent carry the delivery; the page ignores the rest.
            if filter.endpoint.as_ref().is_some_and(|e| e != endpoint) {
                return None;
            }
            Some(status_of(
                *delivery_id,
                endpoint,
                *status,
                &format!("{delivery_id}.{attempts}"),
            ))
        }
        Announcement::Requeued { .. } => None,
    }
}

/// Everything a stream with `filter` is sent of `a`: a requeue tells each of its deliveries'
/// rows that it is pending again.
fn messages(a: &Announcement, filter: &Filter) -> Vec<Event> {
    match a {
        Announcement::Requeued { deliveries } => deliveries
            .iter()
            .filter(|(_, endpoint)| filter.endpoint.as_ref().is_none_or(|e| e == endpoint))
            .map(|(id, endpoint)| {
                status_of(
                    *id,
                    endpoint,
                    DeliveryStatus::Pending,
                    &format!("{id}.requeued"),
                )
            })
            .collect(),
        _ => message(a, filter).into_iter().collect(),
    }
}

/// A delivery's new state, for the badge of its row.
fn status_of(delivery: DeliveryId, endpoint: &str, status: DeliveryStatus, id: &str) -> Event {
    let data = serde_json::json!({
        "delivery": delivery.to_string(),
        "endpoint": endpoint,
        "status": status.as_str(),
    });
    Event::default()
        .event("status")
        .id(id)
        .data(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeliveryId, EventId};

    fn event(source: &str, endpoints: &[&str]) -> Announcement {
        Announcement::Event {
            event_id: EventId(7),
            source: source.into(),
            event_type: Some("order.paid".into()),
            received_ms: 1_000,
            deliveries: endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| (DeliveryId(i as u128 + 10), e.to_string()))
                .collect(),
        }
    }

    fn filter(query: &str) -> Filter {
        params::list_query(Some(query), FILTERS, |_| true, 5_000)
            .expect("a filter")
            .filter
    }

    #[test]
    fn the_events_pages_filters_apply_to_each_new_event() {
        let shown = |q: &str, a: &Announcement| message(a, &filter(q)).is_some();
        let orders = event("orders", &["a", "b"]);
        assert!(shown("", &orders));
        assert!(shown("source=orders&type=order.paid&endpoint=b", &orders));
        assert!(shown("status=pending", &orders));
        assert!(!shown("source=billing", &orders));
        assert!(!shown("type=order.created", &orders));
        assert!(!shown("endpoint=c", &orders));
        // New deliveries are pending: nothing new is dead yet.
        assert!(!shown("status=dead", &orders));
        assert!(!shown("status=pending", &event("orders", &[])));
        assert!(!shown("until=1970-01-01T00:00:00.500Z", &orders));
        assert!(shown("since=1970-01-01T00:00:00.500Z", &orders));
    }

    #[test]
    fn a_row_is_escaped_html_and_a_result_names_its_delivery() {
        let sneaky = event("<script>x</script>", &["a"]);
        let html = format!("{:?}", message(&sneaky, &Filter::default()).expect("sent"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(html.contains(&EventId(7).to_string()), "{html}");
        let result = Announcement::Result {
            delivery_id: DeliveryId(10),
            event_id: EventId(7),
            endpoint: "a".into(),
            status: DeliveryStatus::Dead,
            attempts: 3,
        };
        let sent = format!("{:?}", message(&result, &Filter::default()).expect("sent"));
        assert!(
            sent.contains(&DeliveryId(10).to_string()) && sent.contains("dead"),
            "{sent}"
        );
        assert!(message(&result, &filter("endpoint=b")).is_none());
        // A replay tells each requeued delivery's row it is pending again, per endpoint filter.
        let requeued = Announcement::Requeued {
            deliveries: vec![(DeliveryId(10), "a".into()), (DeliveryId(11), "b".into())],
        };
        let sent = format!("{:?}", messages(&requeued, &filter("endpoint=a")));
        assert!(
            sent.contains(&DeliveryId(10).to_string())
                && !sent.contains(&DeliveryId(11).to_string())
                && sent.contains("pending"),
            "{sent}"
        );
    }
}
