//! `GET /console/endpoints/{id}`: one endpoint's settings (the API's own `EndpointView`, so
//! the URL's credentials and the headers' values are masked and the secret is absent), its
//! state, pending deliveries and lag (`store.gauges`), links to its events and dead letters,
//! and the actions the session's role allows: pause, resume, recover since a time and send a
//! test event for operators; reveal and rotate the secret, edit and delete for admins.
//!
//! **Endpoints declared in the config file are read-only here as through the API**: the page
//! says so and why, and offers no edit, rotate or delete. The actions themselves are in
//! `endpoint_actions` and `endpoint_form`.
//!
//! The page shows the endpoint's payload filter (laid out) and transform when it has them, and
//! tries them on a sample (`trial`) with the role each needs through the API: "Test filter"
//! for everyone signed in, "Test transform" for operators (`POST …/try`, answered with this
//! page and the result).

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::page::{self, Chrome};
use super::trial::{self, Kind, Shown};
use super::{Action, Shared, Signed};
use crate::api::access::Role;
use crate::api::views::EndpointView;
use crate::catalog::Origin;
use crate::store::EntryKind;

/// Why a file's endpoint offers no edit, rotate or delete, in every place that refuses one.
pub const FILE_REASON: &str = "This endpoint is defined in the config file, so neither the \
     console nor the API can edit it, rotate its secret or delete it: change it in the file \
     given to `hookgate serve --config` and restart hookgate.";

/// The endpoint in force with this id, as the API shows it, and where it was made.
pub fn find(st: &Shared, id: &str) -> Option<(EndpointView, Origin)> {
    let routes = st.admin.routes.current();
    let e = routes.endpoints.iter().find(|e| e.id == id)?;
    let origin = st
        .admin
        .catalog
        .origin(EntryKind::Endpoint, id)
        .unwrap_or(Origin::File);
    Some((crate::api::endpoints::view(&st.admin, e), origin))
}

/// The 404 page for an id that names no endpoint in force.
pub fn not_found(id: &str) -> Response {
    page::problem(
        StatusCode::NOT_FOUND,
        format!("There is no endpoint {id:?}."),
    )
}

/// The page's link to itself, carrying a notice (`?recovered=3`, …).
pub fn link(id: &str, notice: &[(&str, &str)]) -> String {
    let q = page::query(notice);
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/console/endpoints/{id}{q}")
}

/// What the page says an action did, from its query string.
#[derive(Debug, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    /// A link after the text, with its label.
    pub link: Option<(String, String)>,
}

pub fn notice(query: Option<&str>) -> Option<Notice> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let count = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    let text = |t: String| {
        Some(Notice {
            text: t,
            link: None,
        })
    };
    if let Some(n) = count("recovered") {
        let busy = count("in_flight").unwrap_or(0);
        let mut t = match n {
            1 => "1 delivery is queued to be sent again.".to_string(),
            n => format!("{n} deliveries are queued to be sent again."),
        };
        if busy > 0 {
            t.push_str(&format!(
                " {busy} being sent right now {} left alone.",
                if busy == 1 { "was" } else { "were" }
            ));
        }
        return text(t);
    }
    if let Some(event) = get("test").and_then(crate::api::grammar::event_id) {
        return Some(Notice {
            text: "A test event (type hookgate.test) was sent to this endpoint only.".into(),
            link: Some((
                format!("/console/events/{event}"),
                format!("See event {event}"),
            )),
        });
    }
    if let Some(held) = count("enabled") {
        let discarded = count("discarded").unwrap_or(0);
        return text(match (held, discarded) {
            (0, _) => "The endpoint is enabled (it held nothing).".into(),
            (h, 0) => {
                format!("The endpoint is enabled: the {h} deliveries it held go out now, in order.")
            }
            (h, d) => format!(
                "The endpoint is enabled: {d} of the {h} deliveries it held were dead-lettered."
            ),
        });
    }
    match get("done") {
        Some("paused") => text("The endpoint is paused: nothing is sent until it resumes.".into()),
        Some("resumed") => text("The endpoint is resumed.".into()),
        Some("created") => text("The endpoint is created and in force.".into()),
        Some("saved") => text("The changes are saved and in force.".into()),
        _ => None,
    }
}

/// Milliseconds as a short duration (`250 ms`, `5 s`, `10 min`, `3 h`, `2 d`), exact where
/// the value is a whole number of the unit.
pub fn duration_text(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ];
    for (size, unit) in UNITS {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{} {unit}", ms / size);
        }
    }
    for (size, unit) in UNITS {
        if ms >= 2 * size {
            return format!("{:.1} {unit}", ms as f64 / size as f64);
        }
    }
    format!("{ms} ms")
}

#[derive(Template)]
#[template(path = "console/endpoint.html")]
struct View {
    chrome: Chrome,
    e: EndpointView,
    from_file: bool,
    file_reason: &'static str,
    pending: i64,
    lag: String,
    gauges_error: Option<String>,
    retry: String,
    timeout: String,
    rate: String,
    events_link: String,
    dead_link: String,
    can_operate: bool,
    can_admin: bool,
    notice: Option<Notice>,
    /// Its filter laid out, or empty.
    filter_text: String,
    /// The sample last tried, as typed.
    sample: String,
    /// What the last trial found, or why it could not run.
    trial: Option<Shown>,
    trial_error: Option<String>,
}

pub async fn show(
    State(st): State<Shared>,
    user: Signed,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some((e, origin)) = find(&st, &id) else {
        return not_found(&id);
    };
    let view = view(&st, &user, e, origin, notice(q.as_deref())).await;
    page::render(StatusCode::OK, &view)
}

/// "Test filter" or "Test transform" on the endpoint's page: its rules in force on the sample,
/// through the API's own handler, with the role its route needs. The page again, with the
/// result below the buttons and the sample kept.
pub async fn try_rules(
    State(st): State<Shared>,
    Path(id): Path<String>,
    action: Action,
) -> Response {
    let Some(kind) = Kind::from_field(action.field("try")) else {
        return page::problem(
            StatusCode::BAD_REQUEST,
            "try: press Test filter or Test transform.",
        );
    };
    if let Some(r) = action.refused_unless(kind.role()) {
        return r;
    }
    let Some((e, origin)) = find(&st, &id) else {
        return not_found(&id);
    };
    let mut v = view(&st, &action.user, e, origin, None).await;
    v.sample = action.field("sample").unwrap_or("").replace("\r\n", "\n");
    let status = match trial::saved_request(kind, &v.sample) {
        Err(e) => {
            v.trial_error = Some(e.to_string());
            StatusCode::BAD_REQUEST
        }
        Ok((body, on)) => match trial::run(&st.admin, Some(&id), kind, &body, on).await {
            Ok(shown) => {
                v.trial = Some(shown);
                StatusCode::OK
            }
            Err(e) => {
                v.trial_error = Some(e.message);
                e.status
            }
        },
    };
    page::render(status, &v)
}

/// The page of `e` for `user`, with nothing tried yet.
async fn view(
    st: &Shared,
    user: &Signed,
    e: EndpointView,
    origin: Origin,
    notice: Option<Notice>,
) -> View {
    let mut shown = [e];
    // Its breaker, as the API shows it; without it the page still shows the rest.
    let _ = crate::api::endpoint_health::fill(&st.admin, &mut shown).await;
    let [e] = shown;
    let (pending, lag, gauges_error) = match st
        .admin
        .store
        .gauges(std::slice::from_ref(&e.id), st.now_ms())
        .await
    {
        Ok(g) => {
            let (n, lag) = g
                .per_endpoint
                .iter()
                .find(|(x, _, _)| *x == e.id)
                .map_or((0, 0.0), |(_, n, lag)| (*n, *lag));
            let lag = if n > 0 {
                duration_text((lag * 1000.0) as u64)
            } else {
                String::new()
            };
            (n, lag, None)
        }
        Err(err) => (
            0,
            String::new(),
            Some(format!("Pending counts are unavailable: {err}")),
        ),
    };
    let r = &e.retry;
    let retry = format!(
        "up to {} attempts, waiting from {} to {} between them, for at most {}",
        r.max_attempts,
        duration_text(r.base_ms),
        duration_text(r.max_delay_ms),
        duration_text(r.max_age_ms)
    );
    let rate = match &e.rate_limit {
        Some(l) => format!("{} per second (bursts of {})", l.per_second, l.burst),
        None => String::new(),
    };
    let filter = page::query(&[("endpoint", &e.id)]);
    View {
        chrome: Chrome::new("endpoints", format!("Endpoint {}", e.id), user),
        from_file: origin == Origin::File,
        file_reason: FILE_REASON,
        pending,
        lag,
        gauges_error,
        retry,
        timeout: duration_text(e.timeout_ms),
        rate,
        events_link: format!("/console/events{filter}"),
        dead_link: format!("/console/dead-letters{filter}"),
        can_operate: user.may(Role::Operator),
        can_admin: user.may(Role::Admin),
        notice,
        filter_text: super::endpoint_form::filter_text(e.filter.as_ref()),
        sample: String::new(),
        trial: None,
        trial_error: None,
        e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(250), "250 ms");
        assert_eq!(duration_text(5_000), "5 s");
        assert_eq!(duration_text(600_000), "10 min");
        assert_eq!(duration_text(3 * 86_400_000), "3 d");
        assert_eq!(duration_text(1_500), "1500 ms");
        assert_eq!(duration_text(150_500), "2.5 min");
    }

    #[test]
    fn notices_say_what_was_done() {
        let n = notice(Some("recovered=3&in_flight=1")).expect("a notice");
        assert_eq!(
            n.text,
            "3 deliveries are queued to be sent again. 1 being sent right now was left alone."
        );
        assert_eq!(
            notice(Some("recovered=1")).expect("a notice").text,
            "1 delivery is queued to be sent again."
        );
        let id = "evt_01JD0000000000000000000000";
        match notice(Some(&format!("test={id}"))) {
            Some(Notice {
                link: Some((href, _)),
                ..
            }) => assert_eq!(href, format!("/console/events/{id}")),
            other => panic!("{other:?}"),
        }
        // Nothing made up is echoed back.
        assert_eq!(notice(Some("test=<script>")), None);
        assert_eq!(notice(Some("done=whatever")), None);
        assert_eq!(notice(None), None);
        assert!(notice(Some("done=paused")).is_some());
    }

    #[test]
    fn links_escape_the_id() {
        assert_eq!(link("a.b", &[]), "/console/endpoints/a.b");
        assert_eq!(
            link("a", &[("recovered", "2"), ("in_flight", "")]),
            "/console/endpoints/a?recovered=2"
        );
    }
}
