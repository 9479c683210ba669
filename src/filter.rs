//! Which endpoints an event goes to: a pure function of each endpoint's subscription (sources,
//! event-type globs), its payload filter ([`payload`]: the body, headers and query), and the
//! event. Routing runs at ingest; [`explain`] answers, for one endpoint, why an event did not
//! go to it: the first thing a user asks when a webhook "went missing".

pub mod payload;

use crate::model::{Endpoint, HOOKGATE_SOURCE};
use payload::{Plan, Rejection, Subject};

/// An event as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub source: &'a str,
    pub event_type: Option<&'a str>,
    /// Lower-case names, as ingress keeps them.
    pub headers: &'a [(String, Vec<u8>)],
    pub body: &'a [u8],
    /// The raw query string of the request (`a=1&b=2`), `""` when it had none.
    pub query: &'a str,
}

/// Why an endpoint did not get an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// It lists sources, and not this one (or this is hookgate's own and it does not name it).
    Source,
    /// It lists event-type globs and none matches (or the event has no type).
    EventType,
    /// Its payload filter refused the event, at this clause.
    Filter(Rejection),
}

impl Miss {
    /// The stage that refused it, as the API names it: `source`, `event_type` or `filter`.
    pub fn stage(&self) -> &'static str {
        match self {
            Miss::Source => "source",
            Miss::EventType => "event_type",
            Miss::Filter(_) => "filter",
        }
    }
}

/// Whether `endpoint` subscribes to an event of `source` and `event_type` (its payload filter
/// aside).
///
/// No source list means every source but hookgate's own ([`HOOKGATE_SOURCE`]): its
/// operational events go only to endpoints that name it, so a catch-all endpoint is not sent
/// reports it never asked for (and cannot loop on reports about itself). No `event_types` means
/// every type. With globs, an event without a type matches nothing, since there is nothing to
/// match them against.
pub fn subscribes(endpoint: &Endpoint, source: &str, event_type: Option<&str>) -> Result<(), Miss> {
    let named = endpoint.sources.iter().any(|s| s == source);
    if !(named || (endpoint.sources.is_empty() && source != HOOKGATE_SOURCE)) {
        return Err(Miss::Source);
    }
    let type_ok = match (&endpoint.event_types, event_type) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(globs), Some(t)) => globs.iter().any(|g| g.matches(t)),
    };
    if type_ok {
        Ok(())
    } else {
        Err(Miss::EventType)
    }
}

/// The body as the filters read it: parsed once per event, and only if a filter of a
/// subscribed endpoint reads it.
fn parse_body(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// The ids of every endpoint the event goes to, in config order: those that subscribe to
/// its source and type and whose filter, if any, matches it.
pub fn route(endpoints: &[Endpoint], req: &Request<'_>) -> Vec<String> {
    route_planned(endpoints, None, req, None)
}

/// [`route`], with the filters' shared clauses evaluated once (`plan`, when it was made of
/// `endpoints`' filters), and for a body already parsed (`Some(None)`: it is not JSON) as
/// ingress has it when it read the event type or dedup key from the body: **the body is
/// parsed at most once per event**.
fn route_planned(
    endpoints: &[Endpoint],
    plan: Option<&Plan>,
    req: &Request<'_>,
    parsed: Option<Option<&serde_json::Value>>,
) -> Vec<String> {
    // A plan answers by position: one made of other endpoints is not used.
    let plan = plan.filter(|p| p.len() == endpoints.len());
    let subscribed: Vec<(usize, &Endpoint)> = endpoints
        .iter()
        .enumerate()
        .filter(|(_, e)| subscribes(e, req.source, req.event_type).is_ok())
        .collect();
    let needs_body = subscribed
        .iter()
        .any(|(_, e)| e.filter.as_ref().is_some_and(|f| f.needs_body()));
    let owned;
    let body = match parsed {
        Some(value) => value,
        None if needs_body => {
            owned = parse_body(req.body);
            owned.as_ref()
        }
        None => None,
    };
    // Made once, for the first filter asked.
    let lazy = std::cell::OnceCell::new();
    let subject = || {
        lazy.get_or_init(|| match plan {
            Some(p) => p.subject(body, req.headers, req.query),
            None => Subject::new(body, req.headers, req.query),
        })
    };
    subscribed
        .into_iter()
        .filter(|(i, e)| match (&e.filter, plan) {
            (None, _) => true,
            (Some(_), Some(p)) => p.matches(*i, subject()).unwrap_or(true),
            (Some(f), None) => f.matches(subject()),
        })
        .map(|(_, e)| e.id.clone())
        .collect()
}

/// Whether the event goes to `endpoint`, and if not, why: the first stage that refused it,
/// and for a filter, the clause.
pub fn explain(endpoint: &Endpoint, req: &Request<'_>) -> Result<(), Miss> {
    subscribes(endpoint, req.source, req.event_type)?;
    passes(endpoint, req)
}

/// Whether the event passes `endpoint`'s payload filter (its subscription aside), and if
/// not, at which clause. No filter passes everything.
pub fn passes(endpoint: &Endpoint, req: &Request<'_>) -> Result<(), Miss> {
    match &endpoint.filter {
        None => Ok(()),
        Some(f) => check(f, req).map_err(Miss::Filter),
    }
}

/// Whether the event passes the filter `f`, on no endpoint (one being written, say), and if
/// not, at which clause; the body is parsed only if `f` reads it.
pub fn check(f: &payload::PayloadFilter, req: &Request<'_>) -> Result<(), Rejection> {
    let body = if f.needs_body() {
        parse_body(req.body)
    } else {
        None
    };
    f.explain(&Subject::new(body.as_ref(), req.headers, req.query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn routed(endpoints: &[Endpoint], source: &str, event_type: Option<&str>) -> Vec<String> {
        route(
            endpoints,
            &Request {
                source,
                event_type,
                headers: &[],
                body: b"{}",
                query: "",
            },
        )
    }

    fn endpoints() -> Vec<Endpoint> {
        let text = r#"
            [[sources]]
            id = "stripe"
            verify = "none"
            [[sources]]
            id = "github"
            verify = "none"
            [[endpoints]]
            id = "all"
            url = "http://a.example"
            [[endpoints]]
            id = "invoices"
            url = "http://b.example"
            sources = ["stripe"]
            event_types = ["invoice.*"]
            [[endpoints]]
            id = "pushes"
            url = "http://c.example"
            event_types = ["push", "pull_request.*"]
        "#;
        Config::from_toml(text)
            .and_then(Config::validate)
            .expect("valid")
            .endpoints
    }

    #[test]
    fn routes_by_source_and_glob() {
        let e = endpoints();
        assert_eq!(
            routed(&e, "stripe", Some("invoice.paid")),
            ["all", "invoices"]
        );
        assert_eq!(routed(&e, "stripe", Some("customer.created")), ["all"]);
        assert_eq!(routed(&e, "github", Some("invoice.paid")), ["all"]);
        assert_eq!(routed(&e, "github", Some("push")), ["all", "pushes"]);
        assert_eq!(
            routed(&e, "github", Some("pull_request.opened")),
            ["all", "pushes"]
        );
        assert_eq!(routed(&e, "github", None), ["all"]);
    }

    #[test]
    fn hookgate_events_go_only_to_endpoints_that_name_it() {
        let mut e = endpoints();
        assert!(routed(&e, HOOKGATE_SOURCE, Some("endpoint.failing")).is_empty());
        let text = r#"
            [[endpoints]]
            id = "ops"
            url = "http://ops.example"
            sources = ["hookgate"]
            [[endpoints]]
            id = "ops-failing"
            url = "http://ops.example"
            sources = ["stripe", "hookgate"]
            event_types = ["endpoint.failing"]
            [[sources]]
            id = "stripe"
            verify = "none"
        "#;
        e.extend(
            Config::from_toml(text)
                .and_then(Config::validate)
                .expect("valid")
                .endpoints,
        );
        assert_eq!(
            routed(&e, HOOKGATE_SOURCE, Some("endpoint.failing")),
            ["ops", "ops-failing"]
        );
        assert_eq!(routed(&e, HOOKGATE_SOURCE, Some("delivery.dead")), ["ops"]);
        // The catch-all still gets everything else, and the subscribers only what they name.
        assert_eq!(
            routed(&e, "stripe", Some("endpoint.failing")),
            ["all", "ops-failing"]
        );
        assert_eq!(routed(&e, "github", Some("endpoint.failing")), ["all"]);
    }
}

/// The sources and endpoints in force: what ingress verifies against and routes to. Replaced
/// whole when the admin API changes one, so a request sees one consistent snapshot.
#[derive(Debug, Default)]
pub struct Routes {
    pub sources: std::collections::BTreeMap<String, crate::model::Source>,
    pub endpoints: Vec<Endpoint>,
    /// The endpoints' filters planned together ([`Plan`]), made with the snapshot.
    plan: Plan,
}

impl Routes {
    pub fn new(
        sources: std::collections::BTreeMap<String, crate::model::Source>,
        endpoints: Vec<Endpoint>,
    ) -> Self {
        let plan = Plan::new(endpoints.iter().map(|e| e.filter.as_deref()));
        Routes {
            sources,
            endpoints,
            plan,
        }
    }

    /// The ids of the endpoints the event goes to, as [`route`] answers, with the clauses
    /// their filters share evaluated once for all of them; `parsed` is the body if it was
    /// parsed already (`Some(None)`: it is not JSON), so **it is parsed at most once per
    /// event**.
    pub fn route(
        &self,
        req: &Request<'_>,
        parsed: Option<Option<&serde_json::Value>>,
    ) -> Vec<String> {
        route_planned(&self.endpoints, Some(&self.plan), req, parsed)
    }

    /// The ids of the endpoints in force.
    pub fn endpoint_ids<C: FromIterator<String>>(&self) -> C {
        self.endpoints.iter().map(|e| e.id.clone()).collect()
    }
}

/// The current [`Routes`], swappable at run time.
#[derive(Debug, Default)]
pub struct RouteTable(std::sync::RwLock<std::sync::Arc<Routes>>);

impl RouteTable {
    pub fn new(routes: Routes) -> Self {
        RouteTable(std::sync::RwLock::new(std::sync::Arc::new(routes)))
    }

    /// The snapshot in force now.
    pub fn current(&self) -> std::sync::Arc<Routes> {
        // A writer only ever swaps in a whole new Arc, so a poisoned lock still holds one.
        std::sync::Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts a new snapshot in force.
    pub fn replace(&self, routes: Routes) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(routes);
    }
}
