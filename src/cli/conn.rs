//! Where an operator command finds the admin API and the token it sends. The token is the first
//! of: `--token`, `HOOKGATE_ADMIN_TOKEN`, the config's (`--config`: `admin.token`, else the
//! highest role in `admin.tokens`), then the token `serve` generated into the data directory
//! (the config's `data_dir`, or the embedded default's without `--config`), so that on the
//! gateway's own machine a fresh install needs no token typed. The URL is `--url`,
//! `HOOKGATE_URL`, the config's `admin.listen`, then `http://127.0.0.1:8081`.

use std::net::SocketAddr;
use std::path::Path;

use crate::api::access::{self, Grant};
use crate::config::Config;
use crate::model::Secret;

use super::operator::{Conn, OperatorError};

/// The embedded default's admin listener.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8081";

/// Where to call and with what.
pub struct Target {
    pub url: String,
    pub token: Option<Secret>,
}

/// Resolves `conn` as the module doc says.
pub fn resolve(conn: &Conn) -> Result<Target, OperatorError> {
    let config = match &conn.config {
        Some(path) => {
            Some(super::load(Some(path)).map_err(|e| OperatorError::Config(e.to_string()))?)
        }
        None => None,
    };
    let url = match (&conn.url, &config) {
        (Some(url), _) => url.clone(),
        (None, Some(c)) => listen_url(c.admin_listen),
        (None, None) => DEFAULT_URL.to_string(),
    };
    if let Some(token) = &conn.token {
        return Ok(Target {
            url,
            token: Some(Secret::new(token.clone())),
        });
    }
    // The config's own tokens win over the file, as they do in `serve`.
    if let Some(grant) = config.as_ref().and_then(|c| best(&c.admin_tokens)) {
        return Ok(Target {
            url,
            token: Some(grant.token.clone()),
        });
    }
    let data_dir = match &config {
        Some(c) => c.data_dir.clone(),
        None => Config::default().data_dir,
    };
    Ok(Target {
        url,
        token: generated(&data_dir)?,
    })
}

/// The token `serve` generated into `data_dir`, if there is one; a file others may read is
/// refused here too, as `serve` refuses it.
fn generated(data_dir: &Path) -> Result<Option<Secret>, OperatorError> {
    let path = access::token_path(data_dir);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => access::read_token_file(&path)
            .map(Some)
            .map_err(|e| OperatorError::Config(e.to_string())),
    }
}

/// `http://` and the admin listener's address, with a wildcard address made loopback (the
/// command runs on the gateway's machine).
fn listen_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// The first grant of the highest role: an operator command may need any role.
fn best(grants: &[Grant]) -> Option<&Grant> {
    let mut best: Option<&Grant> = None;
    for grant in grants {
        if best.is_none_or(|b| grant.role > b.role) {
            best = Some(grant);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::access::Role;

    #[test]
    fn the_url_and_token_are_chosen_as_documented() {
        assert_eq!(
            listen_url("0.0.0.0:9000".parse().expect("addr")),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            listen_url("[::]:9000".parse().expect("addr")),
            "http://[::1]:9000"
        );
        assert_eq!(
            listen_url("10.0.0.5:8081".parse().expect("addr")),
            "http://10.0.0.5:8081"
        );
        let grant = |t: &str, role| Grant {
            token: Secret::new(t),
            role,
            endpoints: None,
        };
        let grants = [
            grant("v", Role::Viewer),
            grant("a1", Role::Admin),
            grant("o", Role::Operator),
            grant("a2", Role::Admin),
        ];
        assert_eq!(best(&grants).map(|g| g.token.expose()), Some("a1"));
        assert!(best(&[]).is_none());
    }
}
