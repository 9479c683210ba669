//! Which endpoints an event goes to: a pure function of the endpoint's subscription (sources,
//! event-type globs) and the event's source and type.

pub mod payload;
use crate::model::{Endpoint, HOOKGATE_SOURCE};

/// Whether `endpoint` subscribes to an event of `source` and `event_type`.
///
/// No source list means every source but hookgate's own ([`HOOKGATE_SOURCE`]): its
/// operational events go only to endpoints that name it, so a catch-all endpoint is not sent
/// reports it never asked for (and cannot loop on reports about itself). No `event_types` means
/// every type. With globs, an event without a type matches nothing, since there is nothing to
/// match them against.
pub fn matches(endpoint: &Endpoint, source: &str, event_type: Option<&str>) -> bool {
    let named = endpoint.sources.iter().any(|s| s == source);
    let source_ok = named || (endpoint.sources.is_empty() && source != HOOKGATE_SOURCE);
    let type_ok = match (&endpoint.event_types, event_type) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(globs), Some(t)) => globs.iter().any(|g| g.matches(t)),
    };
    source_ok && type_ok
}

/// The ids of every endpoint that subscribes to the event, in config order.
pub fn route(endpoints: &[Endpoint], source: &str, event_type: Option<&str>) -> Vec<String> {
    endpoints
        .iter()
        .filter(|e| matches(e, source, event_type))
        .map(|e| e.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
            route(&e, "stripe", Some("invoice.paid")),
            ["all", "invoices"]
        );
        assert_eq!(route(&e, "stripe", Some("customer.created")), ["all"]);
        assert_eq!(route(&e, "github", Some("invoice.paid")), ["all"]);
        assert_eq!(route(&e, "github", Some("push")), ["all", "pushes"]);
        assert_eq!(
            route(&e, "github", Some("pull_request.opened")),
            ["all", "pushes"]
        );
        assert_eq!(route(&e, "github", None), ["all"]);
    }

    #[test]
    fn hookgate_events_go_only_to_endpoints_that_name_it() {
        let mut e = endpoints();
        assert!(route(&e, HOOKGATE_SOURCE, Some("endpoint.failing")).is_empty());
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
            route(&e, HOOKGATE_SOURCE, Some("endpoint.failing")),
            ["ops", "ops-failing"]
        );
        assert_eq!(route(&e, HOOKGATE_SOURCE, Some("delivery.dead")), ["ops"]);
        // The catch-all still gets everything else, and the subscribers only what they name.
        assert_eq!(
            route(&e, "stripe", Some("endpoint.failing")),
            ["all", "ops-failing"]
        );
        assert_eq!(route(&e, "github", Some("endpoint.failing")), ["all"]);
    }
}

/// The sources and endpoints in force: what ingress verifies against and routes to. Replaced
/// whole when the admin API changes one, so a request sees one consistent snapshot.
#[derive(Debug, Default)]
pub struct Routes {
    pub sources: std::collections::BTreeMap<String, crate::model::Source>,
    pub endpoints: Vec<Endpoint>,
}

impl Routes {
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
