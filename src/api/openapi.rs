//! The OpenAPI document of the admin API, derived from the handlers' `#[utoipa::path]`
//! annotations and the types they serialize. Served at `GET /api/v1/openapi.json`; committed as
//! `openapi.json`, and a test fails when the two drift apart.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{AdminState, ApiResult, dead_letters, deliveries, endpoints, events, publish, sources};
use crate::respond;

#[derive(OpenApi)]
#[openapi(
    info(title = "hookgate admin API", description = "Events, deliveries, dead letters, sources and endpoints of a running hookgate. Every route needs `Authorization: Bearer <admin token>`."),
    paths(
        events::list, events::show, events::payload, publish::publish,
        deliveries::show, deliveries::retry,
        dead_letters::list, dead_letters::replay,
        endpoints::list, endpoints::show, endpoints::create, endpoints::update, endpoints::delete,
        endpoints::secret, endpoints::rotate_secret, endpoints::pause, endpoints::resume, endpoints::recover,
        sources::list, sources::show, sources::create, sources::update, sources::delete,
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// Declares the `bearer` scheme the paths refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document, pretty-printed as it is committed.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// `GET /api/v1/openapi.json`.
pub async fn serve(State(_): State<Arc<AdminState>>) -> ApiResult {
    let doc: serde_json::Value = serde_json::from_str(&document()).unwrap_or_default();
    Ok(respond::json(StatusCode::OK, doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

    #[test]
    fn the_committed_document_matches_the_code() {
        let doc = document();
        if std::env::var_os("HOOKGATE_BLESS").is_some() {
            std::fs::write(COMMITTED, &doc).expect("write openapi.json");
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == doc,
            "openapi.json is out of date with the code: run `HOOKGATE_BLESS=1 cargo test the_committed_document` and commit it"
        );
    }

    #[test]
    fn every_admin_route_is_documented() {
        let doc: serde_json::Value = serde_json::from_str(&document()).expect("json");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, method) in [
            ("/api/v1/events", "get"),
            ("/api/v1/events", "post"),
            ("/api/v1/events/{id}", "get"),
            ("/api/v1/events/{id}/payload", "get"),
            ("/api/v1/deliveries/{id}", "get"),
            ("/api/v1/deliveries/{id}/retry", "post"),
            ("/api/v1/dead-letters", "get"),
            ("/api/v1/dead-letters/replay", "post"),
            ("/api/v1/endpoints", "get"),
            ("/api/v1/endpoints", "post"),
            ("/api/v1/endpoints/{id}", "get"),
            ("/api/v1/endpoints/{id}", "patch"),
            ("/api/v1/endpoints/{id}", "delete"),
            ("/api/v1/endpoints/{id}/secret", "get"),
            ("/api/v1/endpoints/{id}/rotate-secret", "post"),
            ("/api/v1/endpoints/{id}/pause", "post"),
            ("/api/v1/endpoints/{id}/resume", "post"),
            ("/api/v1/endpoints/{id}/recover", "post"),
            ("/api/v1/sources", "get"),
            ("/api/v1/sources", "post"),
            ("/api/v1/sources/{id}", "get"),
            ("/api/v1/sources/{id}", "patch"),
            ("/api/v1/sources/{id}", "delete"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} is not documented"
            );
        }
        let mut ids: Vec<&str> = paths
            .values()
            .flat_map(|p| p.as_object().into_iter().flat_map(|m| m.values()))
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "operationIds must be unique");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(doc["components"]["schemas"]["Event"]["properties"]["deliveries"].is_object());
    }
}
