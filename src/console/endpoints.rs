//! `GET /console/endpoints`: every endpoint in force with its state (active or paused), its
//! pending deliveries and how long the oldest has waited, and pause and resume buttons for
//! operators. The rows are the API's own `EndpointView`s.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::page::{self, Chrome};
use super::{Shared, Signed};
use crate::api::access::Role;
use crate::api::views::EndpointView;

pub struct Row {
    pub view: EndpointView,
    pub pending: i64,
    /// How long the delivery due first has waited, as text, when any is pending.
    pub lag: String,
}

#[derive(Template)]
#[template(path = "console/endpoints.html")]
struct List {
    chrome: Chrome,
    rows: Vec<Row>,
    can_operate: bool,
    gauges_error: Option<String>,
}

/// Seconds as a short duration (`42 s`, `3 min`, `2 h`).
fn lag_text(secs: f64) -> String {
    match secs {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.0} h", s / 3600.0),
    }
}

pub async fn list(State(st): State<Shared>, user: Signed) -> Response {
    let routes = st.admin.routes.current();
    let ids: Vec<String> = routes.endpoints.iter().map(|e| e.id.clone()).collect();
    let (gauges, gauges_error) = match st.admin.store.gauges(&ids, st.now_ms()).await {
        Ok(g) => (g.per_endpoint, None),
        Err(e) => (
            Vec::new(),
            Some(format!("Pending counts are unavailable: {e}")),
        ),
    };
    let rows = routes
        .endpoints
        .iter()
        .map(|e| {
            let (pending, lag) = gauges
                .iter()
                .find(|(id, _, _)| *id == e.id)
                .map_or((0, 0.0), |(_, n, lag)| (*n, *lag));
            Row {
                view: crate::api::endpoints::view(&st.admin, e),
                pending,
                lag: if pending > 0 {
                    lag_text(lag)
                } else {
                    String::new()
                },
            }
        })
        .collect();
    page::render(
        StatusCode::OK,
        &List {
            chrome: Chrome::new("endpoints", "Endpoints", &user),
            rows,
            can_operate: user.may(Role::Operator),
            gauges_error,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn lags_read_as_people_say_them() {
        assert_eq!(super::lag_text(5.2), "5 s");
        assert_eq!(super::lag_text(600.0), "10 min");
        assert_eq!(super::lag_text(36_000.0), "10 h");
    }
}
