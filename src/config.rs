//! Typed configuration: the TOML file of SPEC, parsed with unknown keys refused and then
//! validated as a whole, before any port is bound. Every error names the key at fault, as a
//! path such as `endpoints[2].rate_limit.per_second`.
//!
//! Parsing ([`Config::from_toml`]) only checks shapes; [`Config::validate`] checks meaning
//! (ids unique and URL-safe, secrets decodable, globs valid, limits positive) and produces a
//! [`Validated`] config whose secrets are already decoded into keys, so nothing downstream can
//! meet an invalid value.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use serde::Deserialize;

mod endpoint;
mod health;
mod schema;
mod source;

pub use endpoint::*;
pub use health::{
    BREAKER_MAX_MS, BREAKER_MIN_MS, BreakerConfig, BreakerTable, DisableAfter, HealthDefaults,
    OrderingConfig,
};
pub use schema::*;
use source::*;

use crate::model::endpoint::{Endpoint, RetryPolicy, is_reserved_header};
use crate::model::role::{Grant, Role};
use crate::model::secret::{Key, Secret};
use crate::model::source::Source;
use crate::verify::{FieldRef, SchemeKind};

/// A config problem: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// A duration written as `250ms`, `5s`, `1h`, `3d`.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Self(StdDuration::from_secs(s))
    }
    pub fn as_millis_u64(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// The longest duration any key takes: ten years. Bounding them all here keeps every sum
/// with a time (`now + timeout`, a lease, an overlap) far from overflow.
pub const MAX_DURATION: StdDuration = StdDuration::from_secs(10 * 365 * 24 * 3600);

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid duration {s:?} ({e}); write it like 250ms, 5s, 1h or 3d")
        })?;
        if d > MAX_DURATION {
            return Err(format!(
                "{s:?} is longer than the longest duration allowed, 3650d"
            ));
        }
        Ok(Duration(d))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Parses TOML text; unknown keys and wrong types are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_error("", &e))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            toml_error(&key, e.inner())
        })
    }

    /// Checks meaning as well as shape, and compiles what the pipeline uses.
    pub fn validate(self) -> Result<Validated, ConfigError> {
        let ingress_listen = parse_listen("ingress.listen", &self.ingress.listen)?;
        let admin_listen = parse_listen("admin.listen", &self.admin.listen)?;
        if self.ingress.max_body_bytes == 0 {
            return Err(ConfigError::new("ingress.max_body_bytes", "must be > 0"));
        }
        if self.ingress.header_timeout.0.is_zero() {
            return Err(ConfigError::new("ingress.header_timeout", "must be > 0"));
        }
        if self.ingress.body_timeout.0.is_zero() {
            return Err(ConfigError::new("ingress.body_timeout", "must be > 0"));
        }
        if self.ingress.max_connections == 0 {
            return Err(ConfigError::new("ingress.max_connections", "must be > 0"));
        }
        let admin_tokens = admin_grants(&self.admin)?;
        if self.delivery.timeout.0.is_zero() {
            return Err(ConfigError::new("delivery.timeout", "must be > 0"));
        }
        if self.delivery.max_concurrency == 0 || self.delivery.max_concurrency > MAX_CONCURRENCY {
            return Err(ConfigError::new(
                "delivery.max_concurrency",
                format!("must be 1 to {MAX_CONCURRENCY}"),
            ));
        }
        // The default is not held to max_concurrency (a small cap with the default 8 is
        // fine); it is cut down to it below.
        check_max_in_flight(
            "delivery.max_in_flight",
            self.delivery.max_in_flight,
            MAX_IN_FLIGHT,
        )?;
        let store = store_backend(&self.store)?;
        if self.store.max_backlog == 0 {
            return Err(ConfigError::new("store.max_backlog", "must be > 0"));
        }
        if self
            .store
            .backlog_high
            .is_some_and(|l| l > self.store.max_backlog)
        {
            return Err(ConfigError::new(
                "store.backlog_high",
                "must be at most store.max_backlog (0 for never)",
            ));
        }
        for (key, d) in [
            ("store.retention", self.store.retention),
            (
                "store.dead_letter_retention",
                self.store.dead_letter_retention,
            ),
            ("store.prune_interval", self.store.prune_interval),
        ] {
            if d.0.is_zero() {
                return Err(ConfigError::new(key, "must be > 0"));
            }
        }
        let mut allowed = Vec::with_capacity(self.delivery.allowed_networks.len());
        for (i, net) in self.delivery.allowed_networks.iter().enumerate() {
            allowed.push(net.parse::<ipnet::IpNet>().map_err(|_| {
                ConfigError::new(
                    format!("delivery.allowed_networks[{i}]"),
                    format!("{net:?} is not a network like 10.1.0.0/16"),
                )
            })?);
        }
        let transform = transform_settings(&self.delivery.transform)?;
        let defaults = EndpointDefaults {
            max_in_flight: self
                .delivery
                .max_in_flight
                .min(self.delivery.max_concurrency),
            max_concurrency: self.delivery.max_concurrency,
            timeout: self.delivery.timeout,
            retry: endpoint::resolve_retry("delivery.retry", &self.delivery.retry, None)?,
            health: HealthDefaults {
                breaker: health::resolve_health(
                    "delivery",
                    self.delivery.breaker.as_ref(),
                    self.delivery.disable_after,
                    &HealthDefaults::default(),
                )?
                .breaker,
                disable_after: self.delivery.disable_after,
            },
            reach: crate::model::reach::Reach {
                allow_private: self.delivery.allow_private_networks,
                allowed,
            },
        };

        let mut sources = BTreeMap::new();
        for (i, s) in self.sources.iter().enumerate() {
            let key = format!("sources[{i}]");
            let source = validate_source(&key, s)?;
            if sources.insert(source.id.clone(), source).is_some() {
                return Err(ConfigError::new(
                    format!("{key}.id"),
                    format!("duplicate source id {:?}", s.id),
                ));
            }
        }

        let mut endpoints = Vec::with_capacity(self.endpoints.len());
        let mut seen = HashSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let key = format!("endpoints[{i}]");
            // Only an endpoint made through the API removes itself (`catalog/expire.rs`): one
            // in the file would come back at every start, so the key would do nothing here.
            if e.expires_at.is_some() {
                return Err(ConfigError::new(
                    format!("{key}.expires_at"),
                    "only an endpoint made through the API can expire; a file's endpoint lasts                      until it is removed from the file",
                ));
            }
            let endpoint = validate_endpoint(&key, e, &defaults, &sources)?;
            if !seen.insert(endpoint.id.clone()) {
                return Err(ConfigError::new(
                    format!("{key}.id"),
                    format!("duplicate endpoint id {:?}", e.id),
                ));
            }
            endpoints.push(endpoint);
        }

        if self.ingress.max_buffered_bytes < self.ingress.max_body_bytes
            || self.ingress.max_buffered_bytes > u64::from(u32::MAX)
        {
            return Err(ConfigError::new(
                "ingress.max_buffered_bytes",
                format!(
                    "must be at least ingress.max_body_bytes ({}) and at most {}",
                    self.ingress.max_body_bytes,
                    u32::MAX
                ),
            ));
        }
        let failed = self.ingress.failed_requests;
        if failed.per_second == 0 {
            return Err(ConfigError::new(
                "ingress.failed_requests.per_second",
                "must be > 0",
            ));
        }
        if failed.burst == Some(0) {
            return Err(ConfigError::new(
                "ingress.failed_requests.burst",
                "must be > 0",
            ));
        }
        let mut trusted_proxies = Vec::with_capacity(self.ingress.trusted_proxies.len());
        for (i, net) in self.ingress.trusted_proxies.iter().enumerate() {
            trusted_proxies.push(net.parse::<ipnet::IpNet>().map_err(|_| {
                ConfigError::new(
                    format!("ingress.trusted_proxies[{i}]"),
                    format!("{net:?} is not a network like 10.0.0.0/8"),
                )
            })?);
        }
        let ingress_public_url = match &self.ingress.public_url {
            None => None,
            Some(u) => Some(public_base_url("ingress.public_url", u)?),
        };
        Ok(Validated {
            ingress_public_url,
            data_dir: self.data_dir,
            max_buffered_bytes: self.ingress.max_buffered_bytes,
            failed_requests: failed,
            trusted_proxies,
            ingress_listen,
            admin_listen,
            max_body_bytes: self.ingress.max_body_bytes,
            ingress_limits: ConnectionLimits {
                header_timeout: self.ingress.header_timeout.0,
                body_timeout: self.ingress.body_timeout.0,
                max_connections: self.ingress.max_connections,
            },
            admin_tokens,
            max_concurrency: self.delivery.max_concurrency,
            shutdown_grace: self.delivery.shutdown_grace,
            store,
            max_backlog: self.store.max_backlog,
            backlog_high: match self.store.backlog_high {
                Some(0) => None,
                Some(level) => Some(level),
                None => Some(self.store.max_backlog / 5 * 4),
            },
            quick_repair: self.store.quick_repair,
            retention: self.store.retention,
            dead_letter_retention: self.store.dead_letter_retention,
            prune_interval: self.store.prune_interval,
            sources,
            endpoints,
            endpoint_defaults: defaults,
            transform,
        })
    }
}

/// The store backend a config chose, with what it needs.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// The embedded redb file in `data_dir`.
    Redb,
    /// One PostgreSQL database, shared by every node.
    Postgres { url: Secret, pool_size: u32 },
}

/// Most connections one node may keep to PostgreSQL.
pub const MAX_POOL_SIZE: u32 = 1024;

fn store_backend(s: &StoreConfig) -> Result<StoreBackend, ConfigError> {
    match s.backend {
        BackendKind::Redb => {
            if s.url.is_some() {
                return Err(ConfigError::new(
                    "store.url",
                    "is only used with store.backend = \"postgres\"",
                ));
            }
            Ok(StoreBackend::Redb)
        }
        BackendKind::Postgres => {
            let url = s.url.clone().ok_or_else(|| {
                ConfigError::new(
                    "store.url",
                    "is required with store.backend = \"postgres\" (or set HOOKGATE_DATABASE_URL)",
                )
            })?;
            check_database_url(url.expose())?;
            if s.pool_size == 0 || s.pool_size > MAX_POOL_SIZE {
                return Err(ConfigError::new(
                    "store.pool_size",
                    format!("must be 1 to {MAX_POOL_SIZE}"),
                ));
            }
            Ok(StoreBackend::Postgres {
                url,
                pool_size: s.pool_size,
            })
        }
    }
}

/// A PostgreSQL URL tokio-postgres can connect with. The error never repeats the URL, which
/// may hold a password.
fn check_database_url(url: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(ConfigError::new(
            "store.url",
            "must be a postgres:// or postgresql:// URL",
        ));
    }
    let parsed: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        ConfigError::new("store.url", format!("is not a PostgreSQL URL ({e})"))
    })?;
    if parsed.get_hosts().is_empty() {
        return Err(ConfigError::new("store.url", "names no host"));
    }
    if parsed.get_dbname().is_none() {
        return Err(ConfigError::new("store.url", "names no database"));
    }
    Ok(())
}

/// Formats a toml/serde error without its multi-line source excerpt.
fn toml_error(key: &str, e: &dyn fmt::Display) -> ConfigError {
    let text = e.to_string();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or("invalid TOML").trim();
    // toml puts the real message after the excerpt for parse errors.
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(first);
    let problem = if first.starts_with("TOML parse error") {
        format!(
            "{} ({})",
            last.trim(),
            first.trim_start_matches("TOML parse error ").trim()
        )
    } else {
        first.to_string()
    };
    ConfigError::new(if key.is_empty() { "<file>" } else { key }, problem)
}

fn parse_listen(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("{value:?} is not an address like 127.0.0.1:8080"),
        )
    })
}

/// A base URL people reach a listener at: http(s), with a host, and neither query nor
/// fragment (a path is kept, for a proxy that mounts hookgate below one); without its
/// trailing slash, so `/in/<source>` can follow.
fn public_base_url(key: &str, value: &str) -> Result<String, ConfigError> {
    let ok = reqwest::Url::parse(value).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.query().is_none()
            && u.fragment().is_none()
            && u.username().is_empty()
            && u.password().is_none()
    });
    if ok {
        Ok(value.trim_end_matches('/').to_string())
    } else {
        Err(ConfigError::new(
            key,
            format!("{value:?} must be an http(s) URL like https://hooks.example.com"),
        ))
    }
}

/// Ids appear in URLs (`/in/{id}`) and in store keys, so they are kept to a safe alphabet.
fn check_id(key: &str, id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{id:?} must be 1 to 64 characters of A-Z a-z 0-9 - _ ."),
        ))
    }
}

fn check_field_ref(key: &str, f: &FieldRef) -> Result<(), ConfigError> {
    match f {
        FieldRef::Header(h) => http::HeaderName::from_bytes(h.as_bytes())
            .map(|_| ())
            .map_err(|_| {
                ConfigError::new(
                    format!("{key}.header"),
                    format!("{h:?} is not a header name"),
                )
            }),
        FieldRef::Json(p) if !(p.is_empty() || p.starts_with('/')) => Err(ConfigError::new(
            format!("{key}.json"),
            format!("{p:?} is not a JSON pointer (like \"/id\" or \"/data/object/id\")"),
        )),
        FieldRef::Json(_) => Ok(()),
    }
}

/// What a listener allows a client: how long it may take to send a request, and how many
/// connections may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: StdDuration,
    pub body_timeout: StdDuration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The admin listener's: fixed, for a few operators and scrapers.
    pub const ADMIN: Self = Self {
        header_timeout: StdDuration::from_secs(10),
        body_timeout: StdDuration::from_secs(30),
        max_connections: 256,
    };
}

/// A config that passed validation: what `run` takes.
#[derive(Debug, Clone)]
pub struct Validated {
    pub data_dir: PathBuf,
    /// Which backend keeps events and deliveries.
    pub store: StoreBackend,
    /// Request body bytes held at once (`ingress.max_buffered_bytes`).
    pub max_buffered_bytes: u64,
    /// Verification failures allowed per client address.
    pub failed_requests: RateLimitConfig,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub ingress_listen: SocketAddr,
    /// `ingress.public_url`, without a trailing slash.
    pub ingress_public_url: Option<String>,
    pub admin_listen: SocketAddr,
    pub max_body_bytes: u64,
    pub ingress_limits: ConnectionLimits,
    /// The admin API's tokens, `admin.token` (an admin) first; empty when none is configured
    /// (then `serve` generates one).
    pub admin_tokens: Vec<Grant>,
    pub max_concurrency: u32,
    pub shutdown_grace: Duration,
    pub max_backlog: u64,
    /// When `backlog.high` is published; `None`: never.
    pub backlog_high: Option<u64>,
    pub quick_repair: bool,
    pub retention: Duration,
    pub dead_letter_retention: Duration,
    pub prune_interval: Duration,
    pub sources: BTreeMap<String, Source>,
    pub endpoints: Vec<Endpoint>,
    pub endpoint_defaults: EndpointDefaults,
    /// `[delivery.transform]`, checked.
    pub transform: TransformSettings,
}

/// The bounds transforms run under (`[delivery.transform]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformSettings {
    pub workers: usize,
    pub timeout: StdDuration,
    pub max_output_bytes: usize,
}

/// The most transform worker processes a gateway may run.
pub const MAX_TRANSFORM_WORKERS: usize = 64;

fn transform_settings(c: &schema::TransformConfig) -> Result<TransformSettings, ConfigError> {
    let key = "delivery.transform";
    if c.workers == 0 || c.workers > MAX_TRANSFORM_WORKERS {
        return Err(ConfigError::new(
            format!("{key}.workers"),
            format!("must be 1 to {MAX_TRANSFORM_WORKERS}"),
        ));
    }
    if c.timeout.0.is_zero() || c.timeout.0 > StdDuration::from_secs(10) {
        return Err(ConfigError::new(
            format!("{key}.timeout"),
            "must be more than 0 and at most 10s",
        ));
    }
    let max_output_bytes = usize::try_from(c.max_output_bytes)
        .ok()
        .filter(|n| (1024..=64 * 1024 * 1024).contains(n))
        .ok_or_else(|| {
            ConfigError::new(
                format!("{key}.max_output_bytes"),
                "must be 1024 to 67108864 (64 MiB)",
            )
        })?;
    Ok(TransformSettings {
        workers: c.workers,
        timeout: c.timeout.0,
        max_output_bytes,
    })
}

/// `admin.token` (an admin) and `admin.tokens`, checked: none empty, none twice (a token
/// listed twice would grant whichever role came first, which the file would not say).
fn admin_grants(admin: &AdminConfig) -> Result<Vec<Grant>, ConfigError> {
    let mut grants: Vec<(String, Grant)> = Vec::new();
    if let Some(token) = &admin.token {
        grants.push((
            "admin.token".into(),
            Grant {
                token: token.clone(),
                role: Role::Admin,
                endpoints: None,
            },
        ));
    }
    for (i, t) in admin.tokens.iter().enumerate() {
        if let Some(scope) = &t.endpoints {
            let key = format!("admin.tokens[{i}].endpoints");
            if scope.is_empty() {
                return Err(ConfigError::new(
                    key,
                    "must name at least one endpoint (leave it out for every endpoint)",
                ));
            }
            for (j, id) in scope.iter().enumerate() {
                check_id(&format!("{key}[{j}]"), id)?;
            }
        }
        grants.push((
            format!("admin.tokens[{i}].token"),
            Grant {
                token: t.token.clone(),
                role: t.role,
                endpoints: t.endpoints.clone(),
            },
        ));
    }
    for (n, (key, grant)) in grants.iter().enumerate() {
        if grant.token.expose().is_empty() {
            let hint = if n == 0 && admin.token.is_some() {
                " (leave it out for a generated one)"
            } else {
                ""
            };
            return Err(ConfigError::new(
                key.clone(),
                format!("must not be empty{hint}"),
            ));
        }
        if let Some((first, _)) = grants[..n]
            .iter()
            .find(|(_, other)| other.token == grant.token)
        {
            return Err(ConfigError::new(
                key.clone(),
                format!("is the same token as {first}: each token grants one role"),
            ));
        }
    }
    Ok(grants.into_iter().map(|(_, g)| g).collect())
}

/// Parses one config entry given as JSON (the admin API's bodies use the file's keys); errors
/// name the field.
fn entry_from_json<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::new(
            if path == "." {
                "body".to_string()
            } else {
                path
            },
            e.inner().to_string(),
        )
    })
}

/// Keys of per-entry validation are relative to the entry: `url`, not `endpoints[0].url`.
fn relative(e: ConfigError) -> ConfigError {
    ConfigError::new(e.key.trim_start_matches('.'), e.problem)
}

impl Validated {
    /// Validates a source given as JSON, as the file's `[[sources]]` would be.
    pub fn source_from_json(value: &serde_json::Value) -> Result<Source, ConfigError> {
        validate_source("", &entry_from_json(value)?).map_err(relative)
    }

    /// Validates an endpoint given as JSON against `sources`, with this config's defaults.
    pub fn endpoint_from_json(
        &self,
        value: &serde_json::Value,
        sources: &BTreeMap<String, Source>,
    ) -> Result<Endpoint, ConfigError> {
        self.endpoint_defaults.endpoint_from_json(value, sources)
    }
}

#[cfg(test)]
mod tests;
