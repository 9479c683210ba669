//! `GET /console/events` (filtered, cursor-paged, newest first) and `GET /console/events/{id}`
//! (headers, payload, each delivery's attempts, and its routing: for every endpoint, whether
//! it took the event, and if not, the stage and the filter clause that turned it away, from
//! the API's own `routing::routing`; the first thing asked of a webhook that "went missing").
//!
//! Filters are parsed by the API's own `params::list_query` and listed by the store's
//! `list_events`, which **looks at a bounded number of rows per page**: a page that stopped
//! early says how far back it searched and links to go on from there.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::page::{self, Chrome};
use super::{Shared, Signed};
use crate::api::access::Role;
use crate::api::routing::RoutingView;
use crate::api::views::DeliveryDetail;
use crate::api::{grammar, params};
use crate::model::event::{DeliveryStatus, Payload};
use crate::store::query::{MAX_CONTAINS_CHARS, SCAN_LIMIT};

/// The filters of the events page are the API's (`event` is the console's own: it opens that
/// event).
pub(super) use crate::api::events::FILTERS;

/// The filter form's values, as they were in the URL.
#[derive(Default)]
pub struct FilterForm {
    pub source: String,
    pub event_type: String,
    pub status: String,
    pub endpoint: String,
    pub since: String,
    pub until: String,
    pub event: String,
    /// "Payload contains": literal, case-sensitive.
    pub contains: String,
}

impl FilterForm {
    /// The form's values from a query string; empty fields (as a form sends them) are absent.
    pub(super) fn parse(query: Option<&str>) -> (FilterForm, String) {
        let mut form = FilterForm::default();
        let mut api = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if v.is_empty() {
                continue;
            }
            match k.as_ref() {
                "source" => form.source = v.to_string(),
                "type" => form.event_type = v.to_string(),
                "status" => form.status = v.to_string(),
                "endpoint" => form.endpoint = v.to_string(),
                "since" => form.since = v.to_string(),
                "until" => form.until = v.to_string(),
                "contains" => form.contains = v.to_string(),
                "event" => {
                    form.event = v.to_string();
                    continue;
                }
                // What an action reports back, not a filter.
                "replayed" | "removed" | "done" => continue,
                _ => {}
            }
            api.append_pair(&k, &v);
        }
        (form, api.finish())
    }

    /// The query string of this filter (cursor aside).
    pub(super) fn query(&self, cursor: &str) -> String {
        page::query(&[
            ("source", &self.source),
            ("type", &self.event_type),
            ("status", &self.status),
            ("endpoint", &self.endpoint),
            ("since", &self.since),
            ("until", &self.until),
            ("contains", &self.contains),
            ("cursor", cursor),
        ])
    }
}

pub struct Row {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub received: String,
    /// (endpoint, status) per delivery.
    pub deliveries: Vec<(String, &'static str)>,
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct List {
    chrome: Chrome,
    form: FilterForm,
    statuses: Vec<&'static str>,
    sources: Vec<String>,
    endpoints: Vec<String>,
    error: Option<String>,
    rows: Vec<Row>,
    /// The link to the next page, if there is one.
    next: Option<String>,
    /// When the page stopped at its scan bound: the time it searched back to.
    searched_to: Option<String>,
    scan_limit: usize,
    contains_max: usize,
}

pub async fn list(State(st): State<Shared>, user: Signed, RawQuery(q): RawQuery) -> Response {
    let (form, api_query) = FilterForm::parse(q.as_deref());
    if !form.event.is_empty() {
        return match grammar::event_id(form.event.trim()) {
            Some(id) => Redirect::to(&format!("/console/events/{id}")).into_response(),
            None => page::problem(
                StatusCode::BAD_REQUEST,
                format!("{:?} is not an event id (evt_…).", form.event),
            ),
        };
    }
    let routes = st.admin.routes.current();
    let mut view = List {
        chrome: Chrome::new("events", "Events", &user),
        form,
        statuses: DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect(),
        sources: routes.sources.keys().cloned().collect(),
        endpoints: routes.endpoint_ids(),
        error: None,
        rows: Vec::new(),
        next: None,
        searched_to: None,
        scan_limit: SCAN_LIMIT,
        contains_max: MAX_CONTAINS_CHARS,
    };
    let listed = async {
        let q = params::list_query(
            Some(&api_query),
            FILTERS,
            |c| grammar::event_id(c).is_some(),
            st.now_ms(),
        )?;
        let page = st
            .admin
            .store
            .list_events(&q.filter, q.limit, q.cursor.as_deref())
            .await?;
        Ok::<_, params::ApiError>((q.limit, page))
    }
    .await;
    match listed {
        Err(e) => {
            let status = e.status;
            view.error = Some(e.message);
            return page::render(status, &view);
        }
        Ok((limit, page)) => {
            let paged = page::paged(
                &page.items,
                limit,
                page.next_cursor,
                |v| Row {
                    id: v.event.id.to_string(),
                    source: v.event.source.clone(),
                    event_type: v.event.event_type.clone().unwrap_or_default(),
                    received: page::time(v.event.received_ms),
                    deliveries: v
                        .deliveries
                        .iter()
                        .map(|d| (d.endpoint_id.clone(), d.status.as_str()))
                        .collect(),
                },
                |cursor| format!("/console/events{}", view.form.query(cursor)),
                |cursor| grammar::event_id(cursor).map(|id| id.timestamp_ms()),
            );
            (view.rows, view.next, view.searched_to) = (paged.rows, paged.next, paged.searched_to);
        }
    }
    page::render(StatusCode::OK, &view)
}

/// A received header as shown: credentials and signatures masked.
pub struct HeaderRow {
    pub name: String,
    pub value: String,
    pub masked: bool,
}

/// Header names whose values are credentials or signatures: never shown.
const MASKED: &[&str] = &[
    "authorization",
    "cookie",
    "signature",
    "token",
    "secret",
    "password",
    "api-key",
    "apikey",
];

fn header_rows(payload: &Payload) -> Vec<HeaderRow> {
    payload
        .headers
        .iter()
        .map(|(name, value)| {
            let masked = MASKED.iter().any(|m| name.contains(m));
            HeaderRow {
                name: name.clone(),
                value: if masked {
                    "•••• (masked)".into()
                } else {
                    String::from_utf8_lossy(value).into_owned()
                },
                masked,
            }
        })
        .collect()
}

/// The most of a body a page shows.
const SHOWN_BODY_BYTES: usize = 256 * 1024;

/// The body as shown: pretty JSON when it is JSON, else its text; and a note on what is not
/// shown as it arrived.
fn body_text(body: &[u8]) -> (String, Option<String>) {
    if body.len() <= SHOWN_BODY_BYTES
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
        && let Ok(text) = std::str::from_utf8(body)
    {
        return (page::indent_json(text), Some("JSON, laid out".into()));
    }
    let shown = &body[..body.len().min(SHOWN_BODY_BYTES)];
    let text = String::from_utf8_lossy(shown).into_owned();
    let mut notes = Vec::new();
    if std::str::from_utf8(shown).is_err() {
        notes.push("not UTF-8: undecodable bytes shown as �".to_string());
    }
    if body.len() > shown.len() {
        notes.push(format!("first {} of {} bytes", shown.len(), body.len()));
    }
    (text, (!notes.is_empty()).then(|| notes.join("; ")))
}

/// One endpoint in an event's routing, as the page shows it.
pub struct RouteRow {
    pub endpoint: String,
    /// It is in force, so it has a page to link to (not deleted since).
    pub in_force: bool,
    pub matched: bool,
    /// Its delivery of the event, or empty.
    pub delivery_id: String,
    /// What turned it away (`filter`, `sources`, …), or empty.
    pub stage: &'static str,
    pub clause: String,
    pub reason: String,
}

/// The rows of an event's routing (the API's `routing`), `in_force` telling the endpoints
/// that still exist.
fn route_rows(routing: Vec<RoutingView>, in_force: impl Fn(&str) -> bool) -> Vec<RouteRow> {
    routing
        .into_iter()
        .map(|r| RouteRow {
            in_force: in_force(&r.endpoint),
            matched: r.matched,
            delivery_id: r.delivery_id.unwrap_or_default(),
            stage: r.stage.as_deref().map_or("", super::trial::stage_name),
            clause: r.clause.unwrap_or_default(),
            reason: r.reason,
            endpoint: r.endpoint,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/event.html")]
struct Detail {
    chrome: Chrome,
    id: String,
    source: String,
    event_type: String,
    received: String,
    dedup_key: String,
    headers: Vec<HeaderRow>,
    body: String,
    body_note: Option<String>,
    body_bytes: usize,
    deliveries: Vec<DeliveryDetail>,
    routing: Vec<RouteRow>,
    can_operate: bool,
    notice: Option<&'static str>,
}

pub async fn show(
    State(st): State<Shared>,
    user: Signed,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(id) = grammar::event_id(&id) else {
        return page::problem(StatusCode::NOT_FOUND, format!("{id:?} is not an event id."));
    };
    let store = &st.admin.store;
    let read = async {
        let Some((event, payload)) = store.event(id).await? else {
            return Ok(None);
        };
        let mut deliveries = Vec::new();
        for (did, _) in &event.deliveries {
            if let Some(d) = store.delivery(*did).await? {
                let mut detail = DeliveryDetail::new(&d, &store.attempts(*did).await?);
                for a in &mut detail.attempt_log {
                    a.at = page::short_time(&a.at);
                }
                if let Some(next) = &mut detail.delivery.next_attempt_at {
                    *next = page::short_time(next);
                }
                deliveries.push(detail);
            }
        }
        Ok::<_, crate::store::StoreError>(Some((event, payload, deliveries)))
    }
    .await;
    let (event, payload, deliveries) = match read {
        Ok(Some(found)) => found,
        Ok(None) => {
            return page::problem(
                StatusCode::NOT_FOUND,
                format!("There is no event {id}: it may have been pruned."),
            );
        }
        Err(e) => return page::api_error(e.into()),
    };
    let routes = st.admin.routes.current();
    let routing = route_rows(
        crate::api::routing::routing(&routes.endpoints, &event, &payload),
        |id| routes.endpoints.iter().any(|e| e.id == id),
    );
    let (body, body_note) = body_text(&payload.body);
    let notice = match q.as_deref() {
        Some("done=retried") => Some("The delivery is queued to be sent again now."),
        Some("done=replayed") => {
            Some("Every delivery of this event is queued to be sent again now.")
        }
        Some("done=busy") => {
            Some("Some deliveries were being sent right now, so they were left alone.")
        }
        _ => None,
    };
    page::render(
        StatusCode::OK,
        &Detail {
            chrome: Chrome::new("events", format!("Event {id}"), &user),
            id: id.to_string(),
            source: event.source,
            event_type: event.event_type.unwrap_or_default(),
            received: page::time(event.received_ms),
            dedup_key: event.dedup_key.unwrap_or_default(),
            headers: header_rows(&payload),
            body,
            body_note,
            body_bytes: payload.body.len(),
            deliveries,
            routing,
            can_operate: user.may(Role::Operator),
            notice,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_and_the_event_id_stay_out_of_the_api_filter() {
        let (form, api) =
            FilterForm::parse(Some("source=orders&type=&status=dead&event=&cursor=evt_x"));
        assert_eq!(api, "source=orders&status=dead&cursor=evt_x");
        assert_eq!(form.source, "orders");
        assert_eq!(form.query("c"), "?source=orders&status=dead&cursor=c");
    }

    #[test]
    fn credentials_are_masked_and_json_is_pretty() {
        let payload = Payload {
            headers: vec![
                ("webhook-signature".into(), b"v1,abc".to_vec()),
                ("authorization".into(), b"Bearer x".to_vec()),
                ("content-type".into(), b"application/json".to_vec()),
            ],
            query: String::new(),
            body: bytes::Bytes::from_static(b"{\"a\":1}"),
        };
        let rows = header_rows(&payload);
        assert!(rows[0].masked && rows[1].masked && !rows[2].masked);
        assert!(
            !rows
                .iter()
                .any(|r| r.value.contains("abc") || r.value.contains("Bearer"))
        );
        assert_eq!(body_text(b"{\"a\":1}").0, "{\n  \"a\": 1\n}");
        assert_eq!(body_text(b"a=1").0, "a=1");
        assert!(body_text(b"\xff").1.is_some());
    }

    /// Each endpoint's line: matched with a link to its delivery, or the stage, the clause and
    /// the reason; an endpoint deleted since is named but not linked.
    #[test]
    fn the_routing_says_where_the_event_went_and_why_not() {
        let view = |endpoint: &str, delivery: Option<&str>, stage: Option<&str>| RoutingView {
            endpoint: endpoint.into(),
            matched: delivery.is_some(),
            delivery_id: delivery.map(str::to_string),
            stage: stage.map(str::to_string),
            clause: (stage == Some("filter")).then(|| "body.action.$in".to_string()),
            reason: if delivery.is_some() {
                "matched when the event arrived".into()
            } else {
                r#"found "closed", expected one of ["opened"]"#.into()
            },
        };
        let rows = route_rows(
            vec![
                view("all", Some("dlv_1"), None),
                view("prs", None, Some("filter")),
                view("stripe", None, Some("source")),
                view("gone", Some("dlv_2"), None),
            ],
            |id| id != "gone",
        );
        assert_eq!(rows[1].stage, "filter");
        assert_eq!(rows[2].stage, "sources");
        assert!(rows[2].clause.is_empty());
        assert!(!rows[3].in_force);
        let page = Detail {
            chrome: Chrome::anonymous("Event"),
            id: "evt_1".into(),
            source: "github".into(),
            event_type: String::new(),
            received: String::new(),
            dedup_key: String::new(),
            headers: Vec::new(),
            body: String::new(),
            body_note: None,
            body_bytes: 0,
            deliveries: Vec::new(),
            routing: rows,
            can_operate: false,
            notice: None,
        }
        .render()
        .expect("renders");
        assert!(page.contains(r##"href="#d-dlv_1""##), "{page}");
        assert!(page.contains("<code>body.action.$in</code>"), "{page}");
        assert!(
            page.contains("found &#34;closed&#34;") || page.contains("found &quot;closed&quot;"),
            "{page}"
        );
        assert!(page.contains(r#"href="/console/endpoints/prs""#), "{page}");
        assert!(
            !page.contains(r#"href="/console/endpoints/gone""#),
            "{page}"
        );
        assert!(page.contains("(deleted)"), "{page}");
    }

    /// A viewer sees no button that changes anything; an operator sees retry and replay.
    #[test]
    fn mutating_buttons_render_only_for_operators() {
        use crate::api::views::Delivery;
        let detail = |can_operate| Detail {
            chrome: Chrome::anonymous("Event"),
            id: "evt_1".into(),
            source: "orders".into(),
            event_type: String::new(),
            received: String::new(),
            dedup_key: String::new(),
            headers: Vec::new(),
            body: String::new(),
            body_note: None,
            body_bytes: 0,
            deliveries: vec![DeliveryDetail {
                delivery: Delivery {
                    delivery_id: "dlv_1".into(),
                    event_id: "evt_1".into(),
                    endpoint_id: "r".into(),
                    status: "dead".into(),
                    attempts: 1,
                    next_attempt_at: None,
                    last_status_code: Some(500),
                    last_error: Some("HTTP 500".into()),
                    order_key: None,
                    blocked: false,
                },
                attempt_log: Vec::new(),
            }],
            routing: Vec::new(),
            can_operate,
            notice: None,
        };
        let viewer = detail(false).render().expect("renders");
        assert!(
            !viewer.contains("/retry") && !viewer.contains("/replay"),
            "{viewer}"
        );
        let operator = detail(true).render().expect("renders");
        assert!(operator.contains("/console/deliveries/dlv_1/retry"));
        assert!(operator.contains("/console/events/evt_1/replay"));
        // A delivery waiting behind its order key's head says so, not "being sent".
        let mut waiting = detail(false);
        let d = &mut waiting.deliveries[0].delivery;
        (d.status, d.blocked, d.order_key) = ("pending".into(), true, Some("cus_<1>".into()));
        let page = waiting.render().expect("renders");
        assert!(page.contains("Waiting for its turn"), "{page}");
        assert!(
            page.contains("<code>cus_&#60;1&#62;</code>")
                || page.contains("<code>cus_&lt;1&gt;</code>"),
            "{page}"
        );
        assert!(!page.contains("Being sent"));
    }
}
