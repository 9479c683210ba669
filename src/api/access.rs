//! Who may call `/api/v1`: the bearer tokens, the [`Role`] each grants, and the role each route
//! needs ([`ROUTES`]). **A token's role is checked before the handler runs**, by
//! [`require_token`]; a route missing from the table needs the admin role, so forgetting one
//! closes it rather than opens it.
//!
//! Tokens come from the config (`admin.token`, `HOOKGATE_ADMIN_TOKEN`, `admin.tokens`). With
//! none configured, [`Access::load`] generates an admin token into `<data_dir>/admin-token`
//! (created with mode 0600) or reuses the one there, so a fresh install is usable by whoever
//! can read that file, and by nobody else. A configured token means the file is neither read
//! nor written.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;

use crate::model::Secret;
pub use crate::model::role::{Grant, Role};
use crate::respond;
use crate::verify::constant_time_eq;

use super::AdminState;

/// The generated token's file name, in the data directory.
pub const TOKEN_FILE: &str = "admin-token";

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
    ("POST", "/endpoints/{id}/enable", Role::Operator),
    ("POST", "/endpoints/{id}/recover", Role::Operator),
    ("POST", "/endpoints/{id}/test-filter", Role::Viewer),
    ("POST", "/endpoints/{id}/test-transform", Role::Operator),
    ("POST", "/endpoints/{id}/messages:receive", Role::Operator),
    ("GET", "/endpoints/{id}/messages:stream", Role::Operator),
    ("POST", "/endpoints/{id}/messages:ack", Role::Operator),
    ("POST", "/endpoints/{id}/messages:nack", Role::Operator),
    ("POST", "/endpoints/{id}/messages:extend", Role::Operator),
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

/// Why the tokens could not be set up; `serve` stops with it.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: the admin token file may be read by others (mode {mode:04o}); `chmod 600` it, or delete it for a new token"
    )]
    LooseMode { path: PathBuf, mode: u32 },
    #[error("{path}: the admin token file is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: the admin token file is empty; delete it for a new token")]
    Empty { path: PathBuf },
}

/// The tokens `/api/v1` accepts, each with its role.
#[derive(Debug, Default)]
pub struct Access {
    grants: Vec<Grant>,
    /// Where the generated token is kept, when it was generated rather than configured.
    token_file: Option<PathBuf>,
}

impl Access {
    /// The configured tokens only (none: the API is closed).
    pub fn new(grants: Vec<Grant>) -> Access {
        Access {
            grants,
            token_file: None,
        }
    }

    /// The configured tokens, or with none, the generated admin token in
    /// `<data_dir>/admin-token` (made now if it is not there). Logs the file's path, never
    /// the token.
    pub fn load(grants: Vec<Grant>, data_dir: &Path) -> Result<Access, AccessError> {
        if !grants.is_empty() {
            return Ok(Access::new(grants));
        }
        let path = token_path(data_dir);
        let (token, made) = generated_token(&path)?;
        if made {
            tracing::info!(file = %path.display(), "admin API: no token configured, so an admin token was generated into this file (mode 0600); operator commands run on this machine with the same --config read it from there");
        } else {
            tracing::info!(file = %path.display(), "admin API: no token configured; using the admin token in this file");
        }
        Ok(Access {
            grants: vec![Grant {
                token,
                role: Role::Admin,
                endpoints: None,
            }],
            token_file: Some(path),
        })
    }

    /// The role a bearer token grants everywhere (each comparison in constant time), or
    /// None. A token scoped to endpoints grants none here: the console, which asks this,
    /// shows every endpoint.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.grant_of(token)
            .filter(|g| g.endpoints.is_none())
            .map(|g| g.role)
    }

    /// The grant of a bearer token (each comparison in constant time), or None.
    pub fn grant_of(&self, token: &str) -> Option<&Grant> {
        // Every token is compared, so the time taken does not say which one matched.
        let mut found = None;
        for grant in &self.grants {
            if constant_time_eq(token.as_bytes(), grant.token.expose().as_bytes()) {
                found = found.or(Some(grant));
            }
        }
        found
    }

    /// Whether any token is configured or generated (false: the API is closed).
    pub fn is_open(&self) -> bool {
        !self.grants.is_empty()
    }

    /// The file holding the generated admin token (absolute), when no token was configured:
    /// what a local user is told to read to sign in.
    pub fn token_file(&self) -> Option<&Path> {
        self.token_file.as_deref()
    }
}

/// `<data_dir>/admin-token`, absolute where it can be made so (it is shown to users).
pub fn token_path(data_dir: &Path) -> PathBuf {
    let path = data_dir.join(TOKEN_FILE);
    std::path::absolute(&path).unwrap_or(path)
}

/// Reads a token file, refusing one others may read: a token that leaked is no token.
pub fn read_token_file(path: &Path) -> Result<Secret, AccessError> {
    let io = |source| AccessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(AccessError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AccessError::LooseMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(AccessError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret::new(token))
}

/// The token in `path`, or a new one written there: (token, whether it was made now).
fn generated_token(path: &Path) -> Result<(Secret, bool), AccessError> {
    let io = |source| AccessError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let token = Secret::new(format!(
        "hg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    ));
    // Created with its mode, never loosened and then tightened; `create_new` so that a file
    // someone else made (or a second node's, sharing the directory) is read, not replaced.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(mut file) => {
            file.write_all(format!("{}\n", token.expose()).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            Ok((token, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((read_token_file(path)?, false))
        }
        Err(e) => Err(io(e)),
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
            "the admin API is closed: no admin.token, admin.tokens or generated token",
        );
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let grant = match presented.map(|p| st.access.grant_of(p)) {
        Some(Some(grant)) => grant,
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
    let role = grant.role;
    if let Some(scope) = &grant.endpoints {
        let id = scoped_endpoint(&path, request.uri().path());
        if !id.is_some_and(|id| scope.iter().any(|e| e == id)) {
            return respond::error(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this token is scoped to the endpoints {scope:?}: {} {path} is not a route of one of them",
                    request.method()
                ),
            );
        }
    }
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

/// The endpoint id a request's path names, when its route is one of an endpoint's own
/// (`/endpoints/{id}…`): what a scoped token may call.
fn scoped_endpoint<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    let route = route.strip_prefix("/api/v1").unwrap_or(route);
    if !route.starts_with("/endpoints/{id}") {
        return None;
    }
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let rest = path.strip_prefix("/endpoints/")?;
    rest.split('/').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_route_names_its_endpoint_and_no_other_route_does() {
        let id = |route, path| scoped_endpoint(route, path);
        assert_eq!(
            id(
                "/api/v1/endpoints/{id}/messages:ack",
                "/api/v1/endpoints/work/messages:ack"
            ),
            Some("work")
        );
        assert_eq!(id("/endpoints/{id}", "/endpoints/work"), Some("work"));
        assert_eq!(id("/api/v1/endpoints", "/api/v1/endpoints"), None);
        assert_eq!(id("/api/v1/events/{id}", "/api/v1/events/evt_1"), None);
        assert_eq!(id("/api/v1/sources/{id}", "/api/v1/endpoints/work"), None);
    }

    fn grant(token: &str, role: Role) -> Grant {
        Grant {
            token: Secret::new(token),
            role,
            endpoints: None,
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

    #[test]
    fn the_token_file_is_made_private_reused_and_refused_when_loose() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = Access::load(Vec::new(), &data).expect("generated");
        let file = first.token_file().expect("a file").to_path_buf();
        assert_eq!(file, data.join(TOKEN_FILE));
        let meta = std::fs::metadata(&file).expect("made");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let token = std::fs::read_to_string(&file).expect("read");
        let token = token.trim();
        assert!(token.starts_with("hg_") && token.len() >= 3 + 43, "{token}");
        assert_eq!(first.role_of(token), Some(Role::Admin));
        // Reused, not replaced.
        let again = Access::load(Vec::new(), &data).expect("reused");
        assert_eq!(again.role_of(token), Some(Role::Admin));
        // Configured tokens win: the file is not consulted.
        let configured = Access::load(vec![grant("c", Role::Viewer)], &data).expect("ok");
        assert_eq!(configured.token_file(), None);
        assert_eq!(configured.role_of(token), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = Access::load(Vec::new(), &data).expect_err("loose");
        assert!(
            matches!(err, AccessError::LooseMode { mode: 0o640, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(!err.to_string().contains(token));
    }
}
