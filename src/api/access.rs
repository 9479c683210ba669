//! Who may call `/api/v1`: the bearer tokens, the [`Role`] each grants, and the role each route
//! needs ([`ROUTES`]). **A token's role is checked before the handler runs**, by
//! [`require_token`]; a route missing from the table needs the admin role, so forgetting one
//! closes it rather than opens it.
//!
//! Tokens come from the config (`admin.token`, `HOOKGATE_ADMIN_TOKEN`, `admin.tokens`); with
//! none, the API answers 401 to everyone.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

pub use crate::model::role::{Grant, Role};
use crate::respond;
use crate::verify::constant_time_eq;

use super::AdminState;

/// The role each `/api/v1` route needs: (method, path under `/api/v1`, role). Viewers read
/// everything but secrets; operators also act on deliveries (publishing is a producer's
/// write, so it is an operator's too); admins also change sources and endpoints and see and
/// rotate their secrets.
pub const ROUTES: &[(&str, &str, Role)] = &[
    ("GET", "/openapi.json", Role::Viewer),
    ("GET", "/events", Role::Viewer),
    ("POST", "/events", Role::Operator),
    ("GET", "/events/{id}", Role::Viewer),
    ("GET", "/events/{id}/payload", Role::Viewer),
    ("GET", "/deliveries/{id}", Role::Viewer),
    ("POST", "/deliveries/{id}/retry", Role::Operator),
    ("GET", "/dead-letters", Role::Viewer),
    ("POST", "/dead-letters/replay", Role::Operator),
    ("GET", "/endpoints", Role::Viewer),
    ("POST", "/endpoints", Role::Admin),
    ("GET", "/endpoints/{id}", Role::Viewer),
    ("PATCH", "/endpoints/{id}", Role::Admin),
    ("DELETE", "/endpoints/{id}", Role::Admin),
    ("GET", "/endpoints/{id}/secret", Role::Admin),
    ("POST", "/endpoints/{id}/rotate-secret", Role::Admin),
    ("POST", "/endpoints/{id}/pause", Role::Operator),
    ("POST", "/endpoints/{id}/resume", Role::Operator),
    ("POST", "/endpoints/{id}/recover", Role::Operator),
    ("GET", "/sources", Role::Viewer),
    ("POST", "/sources", Role::Admin),
    ("GET", "/sources/{id}", Role::Viewer),
    ("PATCH", "/sources/{id}", Role::Admin),
    ("DELETE", "/sources/{id}", Role::Admin),
];

/// The role a route needs (`path` under `/api/v1`, or with that prefix): from [`ROUTES`],
/// `HEAD` as `GET`. `None` for a method the path does not take (axum answers 405 then).
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, role)| *role)
}

/// The tokens `/api/v1` accepts, each with its role.
#[derive(Debug, Default)]
pub struct Access {
    grants: Vec<Grant>,
}

impl Access {
    /// The configured tokens only (none: the API is closed).
    pub fn new(grants: Vec<Grant>) -> Access {
        Access { grants }
    }

    /// The role a bearer token grants (each comparison in constant time), or None.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        // Every token is compared, so the time taken does not say which one matched.
        let mut found = None;
        for grant in &self.grants {
            if constant_time_eq(token.as_bytes(), grant.token.expose().as_bytes()) {
                found = found.or(Some(grant.role));
            }
        }
        found
    }

    /// Whether any token is configured or generated (false: the API is closed).
    pub fn is_open(&self) -> bool {
        !self.grants.is_empty()
    }
}

/// "a viewer", "an operator", "an admin".
fn with_article(role: Role) -> String {
    match role {
        Role::Viewer => format!("a {role}"),
        Role::Operator | Role::Admin => format!("an {role}"),
    }
}

/// Checks the bearer token, then the role the route needs (401, then 403, before the handler
/// runs), and leaves the caller's [`Role`] in the request's extensions.
pub(super) async fn require_token(
    State(st): State<Arc<AdminState>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !st.access.is_open() {
        return respond::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API is closed: set admin.token, admin.tokens or HOOKGATE_ADMIN_TOKEN",
        );
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let role = match presented.map(|p| st.access.role_of(p)) {
        Some(Some(role)) => role,
        Some(None) => {
            return respond::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token is wrong",
            );
        }
        None => {
            return respond::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <token>",
            );
        }
    };
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let needed = match required_role(request.method(), &path) {
        Some(role) => role,
        // A path in the table with another method: axum's 405 follows, which tells nothing.
        None if ROUTES
            .iter()
            .any(|(_, p, _)| path.strip_prefix("/api/v1") == Some(*p)) =>
        {
            Role::Viewer
        }
        None => Role::Admin,
    };
    if role < needed {
        return respond::error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} {path} needs the {needed} role; this token is {}",
                request.method(),
                with_article(role)
            ),
        );
    }
    request.extensions_mut().insert(role);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Secret;

    fn grant(token: &str, role: Role) -> Grant {
        Grant {
            token: Secret::new(token),
            role,
        }
    }

    #[test]
    fn a_token_grants_its_role_and_no_other() {
        let access = Access::new(vec![
            grant("a", Role::Admin),
            grant("v", Role::Viewer),
            grant("o", Role::Operator),
        ]);
        assert!(access.is_open());
        assert_eq!(access.role_of("a"), Some(Role::Admin));
        assert_eq!(access.role_of("v"), Some(Role::Viewer));
        assert_eq!(access.role_of("o"), Some(Role::Operator));
        assert_eq!(access.role_of(""), None);
        assert_eq!(access.role_of("vv"), None);
        assert!(!Access::new(Vec::new()).is_open());
        assert_eq!(Access::new(Vec::new()).role_of(""), None);
        assert!(!format!("{access:?}").contains("\"o\""));
    }

    #[test]
    fn routes_are_found_with_or_without_the_prefix() {
        assert_eq!(
            required_role(&Method::GET, "/api/v1/events/{id}"),
            Some(Role::Viewer)
        );
        assert_eq!(
            required_role(&Method::HEAD, "/events/{id}"),
            Some(Role::Viewer)
        );
        assert_eq!(
            required_role(&Method::GET, "/endpoints/{id}/secret"),
            Some(Role::Admin)
        );
        assert_eq!(required_role(&Method::PUT, "/events"), None);
    }
}
