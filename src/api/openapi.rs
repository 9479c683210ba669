//! The OpenAPI document of the admin API, derived from the handlers' `#[utoipa::path]`
//! annotations and the types they serialize. Served at `GET /api/v1/openapi.json`; committed as
//! `openapi.json`, and a test fails when the two drift apart.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};

use super::access::{self, Role};
use super::grammar::{
    DeadLetterCursor, DeliveryIdText, EntryId, EventIdText, HeaderValue, Overlap, PublishSource,
    SigningSecret, StatusName, Time,
};
use super::{
    AdminState, ApiResult, dead_letters, deliveries, endpoint_health, endpoints, events, messages,
    publish, sources, trials,
};
use crate::respond;

#[derive(OpenApi)]
#[openapi(
    info(title = "hookgate admin API", description = "Events, deliveries, dead letters, sources and endpoints of a running hookgate. Every route needs `Authorization: Bearer <token>`. A token grants a role: `viewer` (reads everything but secrets), `operator` (also retries, replays, recovers, pauses, resumes, enables and publishes) or `admin` (everything). Each operation states the least role it needs in `x-hookgate-role` and its description, and answers 403 `forbidden` to a token below it."),
    paths(
        events::list, events::show, events::payload, publish::publish,
        deliveries::show, deliveries::retry,
        dead_letters::list, dead_letters::replay,
        endpoints::list, endpoints::show, endpoints::create, endpoints::update, endpoints::delete,
        endpoints::secret, endpoints::rotate_secret, endpoints::pause, endpoints::resume, endpoints::recover,
        endpoint_health::enable, trials::test_filter, trials::test_transform,
        messages::receive, messages::stream, messages::ack, messages::nack, messages::extend,
        sources::list, sources::show, sources::create, sources::update, sources::delete,
    ),
    components(schemas(
        Time, Overlap, EventIdText, DeliveryIdText, DeadLetterCursor, EntryId, PublishSource, SigningSecret,
        HeaderValue, StatusName,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The extension on each operation naming the least role it needs.
pub const ROLE_EXTENSION: &str = "x-hookgate-role";

/// Operations whose body may be left out (then it is `{}`): their handlers parse it with
/// `params::json_body_or_default`.
const OPTIONAL_BODIES: &[&str] = &[
    "enable_endpoint",
    "receive_messages",
    "recover_endpoint",
    "replay_dead_letters",
    "rotate_endpoint_secret",
];

/// Links from an answer to the operations that take an id it carries, so that a reader (or the
/// API fuzzer's stateful phase) can follow them: (operation, status, id expression, targets).
const LINKS: &[(&str, &str, &str, &[&str])] = &[
    (
        "publish_event",
        "202",
        "$response.body#/event_id",
        &["get_event", "get_event_payload"],
    ),
    (
        "get_event",
        "200",
        "$response.body#/deliveries/0/delivery_id",
        &["get_delivery", "retry_delivery"],
    ),
    (
        "create_endpoint",
        "201",
        "$response.body#/id",
        &[
            "get_endpoint",
            "update_endpoint",
            "delete_endpoint",
            "get_endpoint_secret",
            "rotate_endpoint_secret",
            "pause_endpoint",
            "resume_endpoint",
            "recover_endpoint",
            "enable_endpoint",
            "test_filter",
            "test_transform",
        ],
    ),
    (
        "create_source",
        "201",
        "$response.body#/id",
        &["get_source", "update_source", "delete_source"],
    ),
];

/// Declares the `bearer` scheme the paths refer to, and what every route shares: the 401 of
/// the token check and the role it needs with its 403 (both checked before any handler), the `Retry-After` of a 503, and the meaning
/// of each error status where a route does not say more.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let error_body = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::PATCH, &mut item.patch),
                (Method::DELETE, &mut item.delete),
            ];
            for (method, op) in operations
                .into_iter()
                .filter_map(|(m, op)| Some((m, op.as_mut()?)))
            {
                // The role is the one the middleware checks, from the same table; a route
                // missing from it needs the admin role there, and says so here.
                let role = access::required_role(&method, path).unwrap_or(Role::Admin);
                op.extensions
                    .get_or_insert_with(Default::default)
                    .insert(ROLE_EXTENSION.into(), serde_json::json!(role));
                let needs = format!(
                    "Needs the `{role}` role{}.",
                    match role {
                        Role::Viewer => " (any token)",
                        Role::Operator => " or `admin`",
                        Role::Admin => "",
                    }
                );
                op.description = Some(match op.description.take() {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{needs}"),
                    _ => needs,
                });
                if role > Role::Viewer {
                    op.responses.responses.insert(
                        "403".into(),
                        ResponseBuilder::new()
                            .description(format!(
                                "The token's role is below `{role}`, the one this route needs"
                            ))
                            .content("application/json", error_body())
                            .build()
                            .into(),
                    );
                }
                if OPTIONAL_BODIES.contains(&op.operation_id.as_deref().unwrap_or_default())
                    && let Some(body) = &mut op.request_body
                {
                    body.required = Some(utoipa::openapi::Required::False);
                }
                let takes_body = op.request_body.is_some();
                let responses = &mut op.responses.responses;
                if takes_body {
                    responses.insert(
                        "413".into(),
                        ResponseBuilder::new()
                            .description(format!(
                                "The body is longer than {} bytes",
                                super::MAX_BODY_BYTES
                            ))
                            .content("application/json", error_body())
                            .build()
                            .into(),
                    );
                }
                responses.insert(
                    "401".into(),
                    ResponseBuilder::new()
                        .description("No `Authorization: Bearer` token, or one that grants no role")
                        .content("application/json", error_body())
                        .build()
                        .into(),
                );
                for (status, response) in responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if response.description.is_empty() {
                        response.description = match status.as_str() {
                            "400" => "A parameter or the body is invalid: the message starts with the field",
                            "404" => "No such resource",
                            "409" => "In conflict with the resource's state",
                            "503" => "The store could not answer; try again after Retry-After",
                            _ => "",
                        }
                        .into();
                    }
                    if status == "503" {
                        response.headers.insert(
                            "Retry-After".into(),
                            HeaderBuilder::new()
                                .schema(
                                    utoipa::openapi::ObjectBuilder::new()
                                        .schema_type(utoipa::openapi::schema::Type::Integer)
                                        .minimum(Some(1)),
                                )
                                .description(Some("Seconds to wait before trying again"))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}

/// The document, pretty-printed as it is committed.
pub fn document() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    add_links(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Adds [`LINKS`] to the document's responses. (As JSON: utoipa 5 spells a link's
/// `operationId` in snake case.)
fn add_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
    {
        let this = op["operationId"].as_str().unwrap_or_default().to_string();
        for (from, status, id, targets) in LINKS {
            let Some(response) = op
                .get_mut("responses")
                .and_then(|r| r.get_mut(*status))
                .filter(|_| *from == this)
            else {
                continue;
            };
            for target in *targets {
                response["links"][*target] = serde_json::json!({
                    "operationId": target,
                    "parameters": { "id": id },
                });
            }
        }
    }
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

    /// The document states the very role the middleware checks, for every route in the
    /// table, and a 403 exactly where a role below it exists.
    #[test]
    fn every_operation_states_its_role_and_its_403() {
        let doc: serde_json::Value = serde_json::from_str(&document()).expect("json");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("item") {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                let role = access::required_role(&method, path)
                    .unwrap_or_else(|| panic!("{method} {path} is missing from access::ROUTES"));
                assert_eq!(
                    op[ROLE_EXTENSION],
                    serde_json::json!(role),
                    "{method} {path}"
                );
                assert!(
                    op["description"]
                        .as_str()
                        .is_some_and(|d| d.contains(&format!("`{role}` role"))),
                    "{method} {path}"
                );
                assert_eq!(
                    op["responses"]["403"].is_object(),
                    role > Role::Viewer,
                    "{method} {path}"
                );
                documented += 1;
            }
        }
        // Every route of the table but the document itself is documented.
        assert_eq!(documented, access::ROUTES.len() - 1);
    }

    #[test]
    fn optional_bodies_may_be_left_out() {
        assert!(dead_letters::parse_replay(b"", 0).is_ok());
        assert!(endpoints::parse_recover(b"", 0).is_ok());
        assert!(endpoints::parse_rotate(b"").is_ok());
        let doc: serde_json::Value = serde_json::from_str(&document()).expect("json");
        let mut optional = Vec::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for op in item.as_object().expect("item").values() {
                if op["requestBody"].is_object() && op["requestBody"]["required"] != true {
                    optional.push(op["operationId"].as_str().unwrap_or_default());
                }
            }
        }
        optional.sort_unstable();
        assert_eq!(optional, OPTIONAL_BODIES);
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
        // Every link names an operation that exists, from a response that exists.
        let mut linked = 0;
        for item in paths.values() {
            for op in item.as_object().expect("item").values() {
                for response in op["responses"].as_object().expect("responses").values() {
                    for link in response["links"]
                        .as_object()
                        .into_iter()
                        .flat_map(|l| l.values())
                    {
                        let target = link["operationId"].as_str().expect("operationId");
                        assert!(ids.contains(&target), "link to {target}");
                        linked += 1;
                    }
                }
            }
        }
        let wanted: usize = LINKS.iter().map(|(_, _, _, t)| t.len()).sum();
        assert_eq!(linked, wanted);
        // Every operation answers 401 with the error body.
        for item in paths.values() {
            for op in item.as_object().expect("item").values() {
                assert_eq!(
                    op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{}",
                    op["operationId"]
                );
            }
        }
    }
}
