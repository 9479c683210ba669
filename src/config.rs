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

use crate::verify::{self, Verifier};

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

/// A secret string. Its `Debug` never shows the value, so it cannot leak through logs, and it
/// is wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself: call only where it is used as key material or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Decoded key material. Like [`Secret`], its `Debug` never shows the bytes and it is wiped
/// when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub Vec<u8>);

impl Key {
    /// The key itself: call only where it keys a MAC or is handed to its owner.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Endpoint {
    /// The keys that sign a delivery at `now_ms`: the current one, then rotated-out ones still
    /// within their overlap.
    pub fn keys_at(&self, now_ms: u64) -> Vec<&Key> {
        self.signing_key
            .iter()
            .chain(
                self.previous_keys
                    .iter()
                    .filter(|(_, until)| now_ms < *until)
                    .map(|(k, _)| k),
            )
            .collect()
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(***)")
    }
}

/// The whole file. Every section is optional; the defaults are SPEC's embedded defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub ingress: IngressConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./hookgate-data")
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            ingress: IngressConfig::default(),
            admin: AdminConfig::default(),
            delivery: DeliveryConfig::default(),
            store: StoreConfig::default(),
            sources: Vec::new(),
            endpoints: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    #[serde(default = "default_ingress_listen")]
    pub listen: String,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// A client must send a request's headers within this (slow-header attacks).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Duration,
    /// ... and its body within this, once the headers are in: 408 otherwise.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: Duration,
    /// Connections open at once; beyond it new ones wait in the kernel's accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests that fail verification, per client address; beyond it, 429 before the body.
    #[serde(default = "default_failed_requests")]
    pub failed_requests: RateLimitConfig,
    /// Proxies whose `X-Forwarded-For` names the client (for `failed_requests`).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Bytes of request bodies held at once, from reading them to their commit; beyond it,
    /// 503 before the body is read. Bounds memory whatever clients send.
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: u64,
}

fn default_max_buffered_bytes() -> u64 {
    128 * 1024 * 1024
}

fn default_failed_requests() -> RateLimitConfig {
    RateLimitConfig {
        per_second: 5,
        burst: Some(50),
    }
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_connections() -> usize {
    4096
}

fn default_ingress_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> u64 {
    1024 * 1024
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            listen: default_ingress_listen(),
            max_body_bytes: default_max_body(),
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            max_connections: default_max_connections(),
            failed_requests: default_failed_requests(),
            trusted_proxies: Vec::new(),
            max_buffered_bytes: default_max_buffered_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token for `/api/v1/*`; `HOOKGATE_ADMIN_TOKEN` overrides it (applied by the CLI).
    pub token: Option<Secret>,
}

fn default_admin_listen() -> String {
    "127.0.0.1:8081".into()
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(default)]
    pub allow_private_networks: bool,
    /// Internal ranges deliveries may reach even without `allow_private_networks`.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Defaults for every endpoint's `retry`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Default `max_in_flight` of an endpoint.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Attempts in flight across all endpoints.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// At shutdown, how long attempts in flight may take to finish.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: Duration,
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}

fn default_max_concurrency() -> u32 {
    512
}

fn default_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_max_in_flight() -> u32 {
    8
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            allowed_networks: Vec::new(),
            timeout: default_timeout(),
            retry: RetryConfig::default(),
            max_in_flight: default_max_in_flight(),
            max_concurrency: default_max_concurrency(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

/// Retry settings; a missing field falls back to `[delivery.retry]`, then to the built-in
/// default (10 attempts, 5s base, 1h cap, 3d age).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    pub max_attempts: Option<u32>,
    pub base: Option<Duration>,
    pub max_delay: Option<Duration>,
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Pending deliveries beyond which ingress answers 503 instead of storing more.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: u64,
    /// How long finished events (every delivery delivered or dead) are kept.
    #[serde(default = "default_retention")]
    pub retention: Duration,
    /// How long dead letters are kept, unless replayed.
    #[serde(default = "default_dead_letter_retention")]
    pub dead_letter_retention: Duration,
    /// How often pruning runs.
    #[serde(default = "default_prune_interval")]
    pub prune_interval: Duration,
    /// Reopening after a crash takes milliseconds whatever the file's size, because every
    /// commit also saves the allocator state and syncs twice. `false` makes commits faster but
    /// a crash costs a full check of the file at the next start (seconds per GB).
    #[serde(default = "default_quick_repair")]
    pub quick_repair: bool,
}

fn default_quick_repair() -> bool {
    true
}

fn default_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_dead_letter_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_prune_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_max_backlog() -> u64 {
    10_000_000
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_backlog: default_max_backlog(),
            retention: default_retention(),
            dead_letter_retention: default_dead_letter_retention(),
            prune_interval: default_prune_interval(),
            quick_repair: default_quick_repair(),
        }
    }
}

/// Where to find a value in a request: a header, or a JSON pointer into the body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum FieldRef {
    Header(String),
    Json(String),
}

impl FieldRef {
    pub fn as_field(&self) -> Field<'_> {
        match self {
            FieldRef::Header(h) => Field::Header(h),
            FieldRef::Json(p) => Field::Json(p),
        }
    }
}

/// A borrowed [`FieldRef`], so that scheme defaults can be `'static` tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    Header(&'a str),
    Json(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeKind {
    StandardWebhooks,
    Stripe,
    Github,
    Shopify,
    Slack,
    Twilio,
    Paddle,
    Linear,
    Zoom,
    Meta,
    #[serde(alias = "twitter")]
    X,
    Dropbox,
    Twitch,
    #[serde(alias = "msgraph")]
    MicrosoftGraph,
    Okta,
    Discord,
    Hmac,
    Basic,
    Token,
    None,
}

impl SchemeKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Stripe => "stripe",
            Self::Github => "github",
            Self::Shopify => "shopify",
            Self::Slack => "slack",
            Self::Twilio => "twilio",
            Self::Paddle => "paddle",
            Self::Linear => "linear",
            Self::Zoom => "zoom",
            Self::Meta => "meta",
            Self::X => "x",
            Self::Dropbox => "dropbox",
            Self::Twitch => "twitch",
            Self::MicrosoftGraph => "microsoft-graph",
            Self::Okta => "okta",
            Self::Discord => "discord",
            Self::Hmac => "hmac",
            Self::Basic => "basic",
            Self::Token => "token",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub id: String,
    pub verify: SchemeKind,
    #[serde(default)]
    pub secrets: Vec<Secret>,
    #[serde(default = "default_tolerance")]
    pub tolerance: Duration,
    pub dedup: Option<FieldRef>,
    #[serde(default = "default_dedup_window")]
    pub dedup_window: Duration,
    /// Also treat the same body within `dedup_window` as a duplicate; the scheme decides by
    /// default (on for GitHub, Shopify, Twilio, Meta and X, which sign no timestamp).
    pub dedup_body: Option<bool>,
    pub event_type: Option<FieldRef>,
    /// The URL the provider signs (Twilio).
    pub public_url: Option<String>,
    pub hmac: Option<HmacConfig>,
    /// The header carrying the shared token (`verify = "token"` or `"okta"`; default
    /// `authorization`).
    pub token_header: Option<String>,
    /// The token Meta's subscription check must present (`verify = "meta"`).
    pub verify_token: Option<Secret>,
    /// Requests accepted per second from this source; beyond it, 429 with `Retry-After`.
    pub rate_limit: Option<RateLimitConfig>,
    /// The answer to an accepted (or duplicate) event, in place of `202 {"event_id"}`.
    pub response: Option<ResponseConfig>,
}

/// A source's synchronous answer to accepted events, e.g. TwiML for Twilio.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    pub status: u16,
    pub content_type: Option<String>,
    #[serde(default)]
    pub body: String,
}

/// The largest configured answer body.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024;

/// A validated [`ResponseConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: bytes::Bytes,
}

fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}
fn default_dedup_window() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacEncoding {
    Hex,
    Base64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    pub header: String,
    #[serde(default = "default_hmac_algorithm")]
    pub algorithm: HmacAlgorithm,
    #[serde(default = "default_hmac_encoding")]
    pub encoding: HmacEncoding,
    #[serde(default)]
    pub prefix: String,
    /// A header with a signed Unix timestamp, checked against `tolerance`.
    pub timestamp_header: Option<String>,
    /// What is signed, e.g. `"{timestamp}.{body}"`; default `"{body}"`, or
    /// `"{timestamp}.{body}"` with a `timestamp_header`.
    pub signed: Option<String>,
}

fn default_hmac_algorithm() -> HmacAlgorithm {
    HmacAlgorithm::Sha256
}
fn default_hmac_encoding() -> HmacEncoding {
    HmacEncoding::Hex
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub sources: Vec<String>,
    pub event_types: Option<Vec<String>>,
    pub secret: Option<Secret>,
    /// Secrets still signing beside `secret` until a time, after a rotation.
    #[serde(default)]
    pub previous_secrets: Vec<PreviousSecret>,
    pub rate_limit: Option<RateLimitConfig>,
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub retry: RetryConfig,
    pub timeout: Option<Duration>,
    /// Added to every request to this endpoint.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Inbound headers passed through; default: the provider's event and delivery headers.
    /// The content type is always passed.
    pub forward_headers: Option<Vec<String>>,
}

/// A rotated-out secret and when it stops signing (RFC 3339).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousSecret {
    pub secret: Secret,
    pub until: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: u32,
    pub burst: Option<u32>,
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
        if let Some(t) = &self.admin.token
            && t.expose().is_empty()
        {
            return Err(ConfigError::new(
                "admin.token",
                "must not be empty (leave it out to disable the admin API)",
            ));
        }
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
        if self.store.max_backlog == 0 {
            return Err(ConfigError::new("store.max_backlog", "must be > 0"));
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
        let defaults = EndpointDefaults {
            max_in_flight: self
                .delivery
                .max_in_flight
                .min(self.delivery.max_concurrency),
            max_concurrency: self.delivery.max_concurrency,
            timeout: self.delivery.timeout,
            retry: RetryPolicy::resolve("delivery.retry", &self.delivery.retry, None)?,
            reach: crate::delivery::client::Reach {
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
        Ok(Validated {
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
            admin_token: self.admin.token,
            max_concurrency: self.delivery.max_concurrency,
            shutdown_grace: self.delivery.shutdown_grace,
            max_backlog: self.store.max_backlog,
            quick_repair: self.store.quick_repair,
            retention: self.store.retention,
            dead_letter_retention: self.store.dead_letter_retention,
            prune_interval: self.store.prune_interval,
            sources,
            endpoints,
            endpoint_defaults: defaults,
        })
    }
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

/// A source ready for ingress: its verifier holds decoded keys.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub scheme: SchemeKind,
    pub verifier: Verifier,
    pub dedup: Option<FieldRef>,
    pub dedup_window: Duration,
    /// Whether the body's hash is a second dedup key.
    pub dedup_body: bool,
    pub event_type: Option<FieldRef>,
    /// Shared by every snapshot of the routes, so swapping them keeps the count.
    pub limiter: Option<std::sync::Arc<SourceLimiter>>,
    /// The configured answer to accepted events, if any.
    pub response: Option<SyncResponse>,
}

/// A source's request rate limit.
pub struct SourceLimiter(governor::DefaultDirectRateLimiter);

impl SourceLimiter {
    /// `Ok` to go on, or how long until a request would be let in.
    pub fn check(&self) -> Result<(), StdDuration> {
        use governor::clock::{Clock, DefaultClock};
        self.0
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

impl fmt::Debug for SourceLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceLimiter")
    }
}

fn validate_source(key: &str, s: &SourceConfig) -> Result<Source, ConfigError> {
    check_id(&format!("{key}.id"), &s.id)?;
    if let Some(d) = &s.dedup {
        check_field_ref(&format!("{key}.dedup"), d)?;
    }
    if let Some(t) = &s.event_type {
        check_field_ref(&format!("{key}.event_type"), t)?;
    }
    if s.dedup_window.0.is_zero() {
        return Err(ConfigError::new(
            format!("{key}.dedup_window"),
            "must be > 0",
        ));
    }
    for (set, field, schemes) in [
        (s.hmac.is_some(), "hmac", &[SchemeKind::Hmac][..]),
        (s.public_url.is_some(), "public_url", &[SchemeKind::Twilio]),
        (
            s.token_header.is_some(),
            "token_header",
            &[SchemeKind::Token, SchemeKind::Okta],
        ),
        (
            s.verify_token.is_some(),
            "verify_token",
            &[SchemeKind::Meta],
        ),
    ] {
        if set && !schemes.contains(&s.verify) {
            let names: Vec<String> = schemes.iter().map(|k| format!("{:?}", k.name())).collect();
            return Err(ConfigError::new(
                format!("{key}.{field}"),
                format!("is only used with verify = {}", names.join(" or ")),
            ));
        }
    }
    let response = match &s.response {
        None => None,
        Some(r) => Some(validate_response(&format!("{key}.response"), r)?),
    };
    if let Some(u) = &s.public_url {
        let ok = reqwest::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some());
        if !ok {
            return Err(ConfigError::new(
                format!("{key}.public_url"),
                format!("{u:?} must be the http(s) URL the provider posts to"),
            ));
        }
    }
    if s.secrets.len() > verify::MAX_SECRETS {
        return Err(ConfigError::new(
            format!("{key}.secrets"),
            format!(
                "at most {} secrets (for rotation) are allowed",
                verify::MAX_SECRETS
            ),
        ));
    }
    let verifier = verify::build(s).map_err(|(field, problem)| {
        ConfigError::new(
            if field.is_empty() {
                key.to_string()
            } else {
                format!("{key}.{field}")
            },
            problem,
        )
    })?;
    let limiter = match s.rate_limit {
        None => None,
        Some(rl) => {
            let per_second = std::num::NonZeroU32::new(rl.per_second).ok_or_else(|| {
                ConfigError::new(format!("{key}.rate_limit.per_second"), "must be > 0")
            })?;
            let burst = match rl.burst {
                None => per_second,
                Some(b) => std::num::NonZeroU32::new(b).ok_or_else(|| {
                    ConfigError::new(format!("{key}.rate_limit.burst"), "must be > 0")
                })?,
            };
            let quota = governor::Quota::per_second(per_second).allow_burst(burst);
            Some(std::sync::Arc::new(SourceLimiter(
                governor::RateLimiter::direct(quota),
            )))
        }
    };
    Ok(Source {
        id: s.id.clone(),
        scheme: s.verify,
        verifier,
        dedup: s.dedup.clone(),
        dedup_window: s.dedup_window,
        dedup_body: s
            .dedup_body
            .unwrap_or_else(|| verify::defaults(s.verify).body_dedup),
        event_type: s.event_type.clone(),
        limiter,
        response,
    })
}

fn validate_response(key: &str, r: &ResponseConfig) -> Result<SyncResponse, ConfigError> {
    if !(200..=299).contains(&r.status) {
        return Err(ConfigError::new(
            format!("{key}.status"),
            format!("{} is not a 2xx status", r.status),
        ));
    }
    if r.body.len() > MAX_RESPONSE_BODY {
        return Err(ConfigError::new(
            format!("{key}.body"),
            format!("is longer than {MAX_RESPONSE_BODY} bytes"),
        ));
    }
    if matches!(r.status, 204 | 205) && !r.body.is_empty() {
        return Err(ConfigError::new(
            format!("{key}.body"),
            format!("must be empty with status {}", r.status),
        ));
    }
    if let Some(ct) = &r.content_type
        && (ct.trim().is_empty() || http::HeaderValue::from_str(ct).is_err())
    {
        return Err(ConfigError::new(
            format!("{key}.content_type"),
            format!("{ct:?} is not a header value"),
        ));
    }
    let content_type = r
        .content_type
        .clone()
        .or_else(|| (!r.body.is_empty()).then(|| "text/plain; charset=utf-8".to_string()));
    Ok(SyncResponse {
        status: r.status,
        content_type,
        body: bytes::Bytes::from(r.body.clone().into_bytes()),
    })
}

/// How one endpoint retries, with every value resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: StdDuration,
    pub max_delay: StdDuration,
    pub max_age: StdDuration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base: StdDuration::from_secs(5),
            max_delay: StdDuration::from_secs(3600),
            max_age: StdDuration::from_secs(3 * 24 * 3600),
        }
    }
}

impl RetryPolicy {
    fn resolve(
        key: &str,
        c: &RetryConfig,
        fallback: Option<&RetryPolicy>,
    ) -> Result<Self, ConfigError> {
        let d = fallback.copied().unwrap_or_default();
        let p = RetryPolicy {
            max_attempts: c.max_attempts.unwrap_or(d.max_attempts),
            base: c.base.map(|x| x.0).unwrap_or(d.base),
            max_delay: c.max_delay.map(|x| x.0).unwrap_or(d.max_delay),
            max_age: c.max_age.map(|x| x.0).unwrap_or(d.max_age),
        };
        if p.max_attempts == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_attempts"),
                "must be >= 1",
            ));
        }
        if p.base.is_zero() {
            return Err(ConfigError::new(format!("{key}.base"), "must be > 0"));
        }
        if p.max_delay < p.base {
            return Err(ConfigError::new(
                format!("{key}.max_delay"),
                "must be >= base",
            ));
        }
        if p.max_age.is_zero() {
            return Err(ConfigError::new(format!("{key}.max_age"), "must be > 0"));
        }
        Ok(p)
    }
}

/// An endpoint ready for delivery.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub url: reqwest::Url,
    /// Empty: every source.
    pub sources: Vec<String>,
    /// `None`: every type.
    pub event_types: Option<Vec<glob::Pattern>>,
    /// Decoded Standard Webhooks signing key; `None` sends no `webhook-signature`.
    pub signing_key: Option<Key>,
    /// Rotated-out keys that still sign until the time given (Unix ms).
    pub previous_keys: Vec<(Key, u64)>,
    pub rate_limit: Option<RateLimitConfig>,
    pub max_in_flight: u32,
    pub retry: RetryPolicy,
    pub timeout: StdDuration,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `None`: the source scheme's defaults.
    pub forward_headers: Option<Vec<http::HeaderName>>,
}

/// Headers an endpoint may neither add nor forward: hop-by-hop ones, and the ones hookgate
/// sets itself.
pub fn is_reserved_header(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ];
    let name = name.to_ascii_lowercase();
    RESERVED.contains(&name.as_str()) || name.starts_with("hookgate-")
}

fn header_name(key: &str, name: &str) -> Result<http::HeaderName, ConfigError> {
    let parsed = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new(key, format!("{name:?} is not a header name")))?;
    if is_reserved_header(name) {
        return Err(ConfigError::new(
            key,
            format!("{name:?} is set by hookgate or the connection and cannot be configured"),
        ));
    }
    Ok(parsed)
}

/// The most attempts in flight across all endpoints that `delivery.max_concurrency` may allow.
pub const MAX_CONCURRENCY: u32 = 65_536;
/// The most requests one endpoint may have open (`max_in_flight`).
pub const MAX_IN_FLIGHT: u32 = 1024;

/// `max_in_flight` is 1 to [`MAX_IN_FLIGHT`], and never above the global cap: an endpoint's
/// window is four times it, and one endpoint must not be able to want the whole cap.
fn check_max_in_flight(key: &str, value: u32, max_concurrency: u32) -> Result<(), ConfigError> {
    let ceiling = MAX_IN_FLIGHT.min(max_concurrency);
    if value == 0 || value > ceiling {
        return Err(ConfigError::new(
            key,
            format!(
                "must be 1 to {ceiling} (the lower of {MAX_IN_FLIGHT} and delivery.max_concurrency)"
            ),
        ));
    }
    Ok(())
}

/// What an endpoint takes from `[delivery]` when it does not say.
#[derive(Debug, Clone)]
pub struct EndpointDefaults {
    pub max_in_flight: u32,
    /// `delivery.max_concurrency`: no endpoint's `max_in_flight` may exceed it.
    pub max_concurrency: u32,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Which internal addresses deliveries may reach: a URL naming any other one literally is
    /// refused at once.
    pub reach: crate::delivery::client::Reach,
}

impl EndpointDefaults {
    /// Validates an endpoint given as JSON against `sources`, with these defaults.
    pub fn endpoint_from_json(
        &self,
        value: &serde_json::Value,
        sources: &BTreeMap<String, Source>,
    ) -> Result<Endpoint, ConfigError> {
        validate_endpoint("", &entry_from_json(value)?, self, sources).map_err(relative)
    }
}

fn validate_endpoint(
    key: &str,
    e: &EndpointConfig,
    defaults: &EndpointDefaults,
    sources: &BTreeMap<String, Source>,
) -> Result<Endpoint, ConfigError> {
    check_id(&format!("{key}.id"), &e.id)?;
    let url = reqwest::Url::parse(&e.url).map_err(|err| {
        ConfigError::new(
            format!("{key}.url"),
            format!("{:?} is not a URL ({err})", e.url),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            format!("{key}.url"),
            format!("{:?} must be an http or https URL with a host", e.url),
        ));
    }
    // A literal internal address could only ever be dead-lettered: say so now. Names are
    // checked when they are resolved, at each delivery.
    if let Err(blocked) = crate::delivery::client::check_literal(&url, &defaults.reach) {
        return Err(ConfigError::new(
            format!("{key}.url"),
            format!(
                "{blocked}; list it in delivery.allowed_networks (or set allow_private_networks) to deliver there"
            ),
        ));
    }
    for (j, s) in e.sources.iter().enumerate() {
        if !sources.contains_key(s) {
            return Err(ConfigError::new(
                format!("{key}.sources[{j}]"),
                format!("no source with id {s:?} is declared"),
            ));
        }
    }
    let event_types = match &e.event_types {
        None => None,
        Some(globs) => {
            let mut out = Vec::with_capacity(globs.len());
            for (j, g) in globs.iter().enumerate() {
                out.push(glob::Pattern::new(g).map_err(|err| {
                    ConfigError::new(
                        format!("{key}.event_types[{j}]"),
                        format!("{g:?} is not a glob ({err})"),
                    )
                })?);
            }
            Some(out)
        }
    };
    let mut previous_keys = Vec::with_capacity(e.previous_secrets.len());
    for (j, p) in e.previous_secrets.iter().enumerate() {
        let pkey = format!("{key}.previous_secrets[{j}]");
        let k = verify::standard_webhooks::decode_secret(p.secret.expose())
            .map_err(|problem| ConfigError::new(format!("{pkey}.secret"), problem))?;
        let until = humantime::parse_rfc3339_weak(&p.until)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_millis()).ok())
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{pkey}.until"),
                    format!("{:?} is not an RFC 3339 time", p.until),
                )
            })?;
        previous_keys.push((Key(k), until));
    }
    if !previous_keys.is_empty() && e.secret.is_none() {
        return Err(ConfigError::new(
            format!("{key}.previous_secrets"),
            "needs a current secret beside it",
        ));
    }
    let signing_key = match &e.secret {
        None => None,
        Some(s) => Some(Key(verify::standard_webhooks::decode_secret(s.expose())
            .map_err(|problem| {
                ConfigError::new(format!("{key}.secret"), problem)
            })?)),
    };
    if let Some(rl) = e.rate_limit {
        if rl.per_second == 0 {
            return Err(ConfigError::new(
                format!("{key}.rate_limit.per_second"),
                "must be > 0",
            ));
        }
        if rl.burst == Some(0) {
            return Err(ConfigError::new(
                format!("{key}.rate_limit.burst"),
                "must be > 0",
            ));
        }
    }
    let max_in_flight = e.max_in_flight.unwrap_or(defaults.max_in_flight);
    check_max_in_flight(
        &format!("{key}.max_in_flight"),
        max_in_flight,
        defaults.max_concurrency,
    )?;
    let timeout = e.timeout.unwrap_or(defaults.timeout).0;
    if timeout.is_zero() {
        return Err(ConfigError::new(format!("{key}.timeout"), "must be > 0"));
    }
    let retry = RetryPolicy::resolve(&format!("{key}.retry"), &e.retry, Some(&defaults.retry))?;
    let mut headers = Vec::with_capacity(e.headers.len());
    for (name, value) in &e.headers {
        let hkey = format!("{key}.headers.{name}");
        let n = header_name(&hkey, name)?;
        let v = http::HeaderValue::from_str(value)
            .map_err(|_| ConfigError::new(&hkey, "is not a valid header value (visible ASCII)"))?;
        headers.push((n, v));
    }
    let forward_headers = match &e.forward_headers {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .enumerate()
                .map(|(j, n)| header_name(&format!("{key}.forward_headers[{j}]"), n))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Endpoint {
        id: e.id.clone(),
        url,
        sources: e.sources.clone(),
        event_types,
        signing_key,
        previous_keys,
        rate_limit: e.rate_limit,
        max_in_flight,
        retry,
        timeout,
        headers,
        forward_headers,
    })
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
    /// Request body bytes held at once (`ingress.max_buffered_bytes`).
    pub max_buffered_bytes: u64,
    /// Verification failures allowed per client address.
    pub failed_requests: RateLimitConfig,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub ingress_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub max_body_bytes: u64,
    pub ingress_limits: ConnectionLimits,
    pub admin_token: Option<Secret>,
    pub max_concurrency: u32,
    pub shutdown_grace: Duration,
    pub max_backlog: u64,
    pub quick_repair: bool,
    pub retention: Duration,
    pub dead_letter_retention: Duration,
    pub prune_interval: Duration,
    pub sources: BTreeMap<String, Source>,
    pub endpoints: Vec<Endpoint>,
    pub endpoint_defaults: EndpointDefaults,
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
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        match Config::from_toml(text).and_then(Config::validate) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_file_is_the_embedded_default() {
        let v = Config::from_toml("")
            .and_then(Config::validate)
            .expect("valid");
        assert_eq!(v.ingress_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(v.admin_listen.to_string(), "127.0.0.1:8081");
        assert_eq!(v.data_dir, PathBuf::from("./hookgate-data"));
        assert_eq!(v.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err("[ingress]\nlisten = \"127.0.0.1:1\"\nmax_body = 3\n");
        assert_eq!(e.key, "ingress.max_body");
        assert!(e.problem.contains("unknown field"), "{e}");
        let e = err(
            "[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nrate_limit = { per_second = 1, brust = 2 }\n",
        );
        assert_eq!(e.key, "endpoints[0].rate_limit.brust");
        assert!(e.problem.contains("unknown field"), "{e}");
        let e = err("colour = 1\n");
        assert_eq!(e.key, "colour");
    }

    #[test]
    fn wrong_types_and_bad_durations_are_named() {
        let e = err("[delivery]\ntimeout = \"5 parsecs\"\n");
        assert_eq!(e.key, "delivery.timeout");
        assert!(e.problem.contains("5 parsecs"), "{e}");
        let e = err("[ingress]\nmax_body_bytes = \"big\"\n");
        assert_eq!(e.key, "ingress.max_body_bytes");
        for key in [
            "header_timeout = \"0s\"",
            "body_timeout = \"0s\"",
            "max_connections = 0",
        ] {
            let e = err(&format!("[ingress]\n{key}\n"));
            let name = key.split(' ').next().unwrap_or_default();
            assert_eq!(e.key, format!("ingress.{name}"));
            assert_eq!(e.problem, "must be > 0");
        }
    }

    #[test]
    fn meaning_errors_name_the_key() {
        let e =
            err("[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nrate_limit = { per_second = 0 }\n");
        assert_eq!(
            e.to_string(),
            "endpoints[0].rate_limit.per_second: must be > 0"
        );
        let e = err("[[endpoints]]\nid = \"a\"\nurl = \"ftp://x\"\n");
        assert_eq!(e.key, "endpoints[0].url");
        let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nsources = [\"nope\"]\n");
        assert_eq!(e.key, "endpoints[0].sources[0]");
        let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nevent_types = [\"[\"]\n");
        assert_eq!(e.key, "endpoints[0].event_types[0]");
        let e = err(
            "[[endpoints]]\nid = \"a\"\nurl = \"http://x\"\nretry = { base = \"10s\", max_delay = \"1s\" }\n",
        );
        assert_eq!(e.key, "endpoints[0].retry.max_delay");
        let e = err("[[sources]]\nid = \"a b\"\nverify = \"none\"\n");
        assert_eq!(e.key, "sources[0].id");
        let e = err(
            "[[sources]]\nid = \"a\"\nverify = \"none\"\n[[sources]]\nid = \"a\"\nverify = \"none\"\n",
        );
        assert_eq!(e.key, "sources[1].id");
        let e = err("[[sources]]\nid = \"a\"\nverify = \"standard-webhooks\"\n");
        assert_eq!(e.key, "sources[0].secrets");
        let e = err("[admin]\nlisten = \"nowhere\"\n");
        assert_eq!(e.key, "admin.listen");
    }

    #[test]
    fn handshake_scheme_keys_and_responses_are_checked() {
        let src = |body: &str| format!("[[sources]]\nid = \"s\"\n{body}\n");
        let ok = |body: &str| {
            Config::from_toml(&src(body))
                .and_then(Config::validate)
                .unwrap_or_else(|e| panic!("{body}: {e}"))
        };
        let e = err(&src(
            "verify = \"github\"\nsecrets = [\"x\"]\nverify_token = \"t\"",
        ));
        assert_eq!(
            e.to_string(),
            "sources[0].verify_token: is only used with verify = \"meta\""
        );
        ok("verify = \"meta\"\nsecrets = [\"x\"]\nverify_token = \"t\"");
        ok("verify = \"okta\"\nsecrets = [\"x\"]\ntoken_header = \"x-okta-auth\"");
        ok("verify = \"twitter\"\nsecrets = [\"x\"]");
        ok("verify = \"msgraph\"\nsecrets = [\"x\"]");
        let e = err(&src("verify = \"twitch\"\nsecrets = [\"short\"]"));
        assert_eq!(e.key, "sources[0].secrets");
        let e = err(&src("verify = \"discord\"\nsecrets = [\"not-hex\"]"));
        assert_eq!(e.key, "sources[0].secrets");
        assert!(e.problem.contains("public key"), "{e}");

        let with = |response: &str| src(&format!("verify = \"none\"\nresponse = {response}"));
        for (response, key) in [
            ("{ status = 302 }", "sources[0].response.status"),
            ("{ status = 500 }", "sources[0].response.status"),
            ("{ status = 204, body = \"x\" }", "sources[0].response.body"),
            (
                "{ status = 200, content_type = \"a\\nb\" }",
                "sources[0].response.content_type",
            ),
            ("{ status = 200, colour = 1 }", "sources[0].response.colour"),
        ] {
            assert_eq!(err(&with(response)).key, key, "{response}");
        }
        let long = format!(
            "{{ status = 200, body = \"{}\" }}",
            "x".repeat(MAX_RESPONSE_BODY + 1)
        );
        assert_eq!(err(&with(&long)).key, "sources[0].response.body");
        let v = ok(
            "verify = \"none\"\nresponse = { status = 200, body = \"<Response/>\", content_type = \"text/xml\" }",
        );
        assert_eq!(
            v.sources["s"].response,
            Some(SyncResponse {
                status: 200,
                content_type: Some("text/xml".into()),
                body: bytes::Bytes::from_static(b"<Response/>"),
            })
        );
        let v = ok("verify = \"none\"\nresponse = { status = 200, body = \"ok\" }");
        let r = v.sources["s"].response.as_ref().expect("response");
        assert_eq!(r.content_type.as_deref(), Some("text/plain; charset=utf-8"));
        let v = ok("verify = \"none\"\nresponse = { status = 204 }");
        let r = v.sources["s"].response.as_ref().expect("response");
        assert_eq!((r.status, r.content_type.as_deref()), (204, None));
    }

    #[test]
    fn scheme_specific_keys_are_checked() {
        let src = |body: &str| format!("[[sources]]\nid = \"s\"\n{body}\n");
        let e = err(&src(
            "verify = \"github\"\nsecrets = [\"x\"]\npublic_url = \"https://a.example/in/s\"",
        ));
        assert_eq!(
            e.to_string(),
            "sources[0].public_url: is only used with verify = \"twilio\""
        );
        let e = err(&src(
            "verify = \"twilio\"\nsecrets = [\"x\"]\npublic_url = \"/in/s\"",
        ));
        assert_eq!(e.key, "sources[0].public_url");
        let e = err(&src(
            "verify = \"stripe\"\nsecrets = [\"x\"]\ntoken_header = \"x-token\"",
        ));
        assert_eq!(e.key, "sources[0].token_header");
        let e = err(&src("verify = \"basic\"\nsecrets = [\"no-colon\"]"));
        assert_eq!(e.key, "sources[0].secrets");
        let e = err(&src(
            "verify = \"standard-webhooks\"\nsecrets = [\"whsk_AAAA\"]",
        ));
        assert!(e.problem.contains("whpk_"), "{e}");
        let e = err(&src(
            "verify = \"hmac\"\nsecrets = [\"x\"]\nhmac = { header = \"x-sig\", signed = \"{timestamp}.{body}\" }",
        ));
        assert_eq!(e.key, "sources[0].hmac.signed");
        let e = err(&src(
            "verify = \"hmac\"\nsecrets = [\"x\"]\nhmac = { header = \"x-sig\", signed = \"nobody\" }",
        ));
        assert_eq!(e.key, "sources[0].hmac.signed");
        let e = err(&src(
            "verify = \"hmac\"\nsecrets = [\"x\"]\nhmac = { header = \"bad header\" }",
        ));
        assert_eq!(e.key, "sources[0].hmac.header");
        let e = err(&src(
            "verify = \"token\"\nsecrets = [\"x\"]\ntoken_header = \"bad header\"",
        ));
        assert_eq!(e.key, "sources[0].token_header");
        let e = err(&src(
            "verify = \"stripe\"\nsecrets = [\"a\", \"b\", \"c\", \"d\", \"e\"]",
        ));
        assert_eq!(e.key, "sources[0].secrets");
    }

    #[test]
    fn endpoint_headers_are_checked() {
        let ep = |body: &str| {
            format!("[[endpoints]]\nid = \"a\"\nurl = \"https://a.example\"\n{body}\n")
        };
        let e = err(&ep("headers = { \"webhook-id\" = \"x\" }"));
        assert_eq!(e.key, "endpoints[0].headers.webhook-id");
        let e = err(&ep("headers = { \"x-ok\" = \"bad\\nvalue\" }"));
        assert_eq!(e.key, "endpoints[0].headers.x-ok");
        let e = err(&ep("forward_headers = [\"x-fine\", \"Hookgate-Attempt\"]"));
        assert_eq!(e.key, "endpoints[0].forward_headers[1]");
        let e = err(&ep("forward_headers = [\"not a header\"]"));
        assert_eq!(e.key, "endpoints[0].forward_headers[0]");
        let v = Config::from_toml(&ep(
            "headers = { \"X-Api-Key\" = \"k\" }\nforward_headers = [\"X-Hub-Signature-256\"]",
        ))
        .and_then(Config::validate)
        .expect("valid");
        assert_eq!(v.endpoints[0].headers[0].0, "x-api-key");
        assert_eq!(
            v.endpoints[0].forward_headers.as_ref().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn rotated_out_secrets_sign_until_their_time() {
        let ep = |extra: &str| {
            format!(
                "[[endpoints]]\nid = \"e\"\nurl = \"https://e.example\"\nsecret = \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"\n{extra}\n"
            )
        };
        let v = Config::from_toml(&ep(
            "previous_secrets = [{ secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", until = \"2026-11-25T00:00:00Z\" }]",
        ))
        .and_then(Config::validate)
        .expect("valid");
        let e = &v.endpoints[0];
        let until = 1_795_564_800_000;
        assert_eq!(e.keys_at(until - 1).len(), 2);
        assert_eq!(e.keys_at(until).len(), 1);
        assert_eq!(e.keys_at(until)[0], e.signing_key.as_ref().expect("key"));
        let e = err(&ep(
            "previous_secrets = [{ secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", until = \"soon\" }]",
        ));
        assert_eq!(e.key, "endpoints[0].previous_secrets[0].until");
        let e = err(&ep(
            "previous_secrets = [{ secret = \"nope!\", until = \"2026-11-25T00:00:00Z\" }]",
        ));
        assert_eq!(e.key, "endpoints[0].previous_secrets[0].secret");
    }

    #[test]
    fn literal_internal_urls_are_refused_unless_allowed() {
        let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://169.254.169.254/latest\"\n");
        assert_eq!(e.key, "endpoints[0].url");
        assert!(
            e.problem
                .starts_with("blocked: private address 169.254.169.254"),
            "{e}"
        );
        let e = err("[[endpoints]]\nid = \"a\"\nurl = \"http://[::ffff:10.0.0.1]/\"\n");
        assert_eq!(e.key, "endpoints[0].url");
        let e = err("[delivery]\nallowed_networks = [\"10.0.0.0/8\", \"not-a-net\"]\n");
        assert_eq!(e.key, "delivery.allowed_networks[1]");
        let ok = Config::from_toml("[delivery]\nallowed_networks = [\"127.0.0.0/8\"]\n[[endpoints]]\nid = \"a\"\nurl = \"http://127.0.0.1:9/\"\n")
            .and_then(Config::validate);
        assert!(ok.is_ok(), "{ok:?}");
        let ok = Config::from_toml("[delivery]\nallow_private_networks = true\n[[endpoints]]\nid = \"a\"\nurl = \"http://127.0.0.1:9/\"\n")
            .and_then(Config::validate);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn source_rate_limits_are_checked() {
        let e =
            err("[[sources]]\nid = \"s\"\nverify = \"none\"\nrate_limit = { per_second = 0 }\n");
        assert_eq!(
            e.to_string(),
            "sources[0].rate_limit.per_second: must be > 0"
        );
        let e = err(
            "[[sources]]\nid = \"s\"\nverify = \"none\"\nrate_limit = { per_second = 5, burst = 0 }\n",
        );
        assert_eq!(e.key, "sources[0].rate_limit.burst");
        let v = Config::from_toml(
            "[[sources]]\nid = \"s\"\nverify = \"none\"\nrate_limit = { per_second = 5 }\n",
        )
        .and_then(Config::validate)
        .expect("valid");
        assert!(v.sources["s"].limiter.is_some());
    }

    #[test]
    fn every_scheme_builds_from_config() {
        for scheme in [
            "standard-webhooks",
            "stripe",
            "github",
            "shopify",
            "slack",
            "twilio",
            "paddle",
            "linear",
            "basic",
            "token",
        ] {
            let secret = if scheme == "basic" {
                "u:p"
            } else if scheme == "standard-webhooks" {
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            } else {
                "s"
            };
            let text = format!(
                "[[sources]]\nid = \"s\"\nverify = \"{scheme}\"\nsecrets = [\"{secret}\"]\n"
            );
            let v = Config::from_toml(&text).and_then(Config::validate);
            assert!(v.is_ok(), "{scheme}: {v:?}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = Config::from_toml(
            "[[sources]]\nid = \"s\"\nverify = \"hmac\"\nsecrets = [\"topsecret\"]\nhmac = { header = \"x-sig\" }\n",
        )
        .expect("parses");
        let shown = format!("{c:?} {:?}", c.clone().validate().expect("valid"));
        assert!(!shown.contains("topsecret"), "{shown}");
        // Decoded keys neither: an endpoint's signing key (SW-2's) as text or as bytes.
        let c = Config::from_toml(
            "[[endpoints]]\nid = \"e\"\nurl = \"https://e.example\"\nsecret = \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"\n",
        )
        .expect("parses");
        let v = c.clone().validate().expect("valid");
        let key = v.endpoints[0]
            .signing_key
            .as_ref()
            .expect("key")
            .expose()
            .to_vec();
        let shown = format!("{c:?} {v:?}");
        assert!(!shown.contains("C2FVsBQIhrscChlQIMV"), "{shown}");
        assert!(
            !shown.contains(format!("{:?}", &key[..4]).trim_matches(['[', ']'])),
            "{shown}"
        );
    }

    #[test]
    fn spec_example_file_is_valid() {
        let text = include_str!("../examples/hookgate.toml");
        let v = Config::from_toml(text)
            .and_then(Config::validate)
            .expect("example is valid");
        assert!(!v.sources.is_empty() && !v.endpoints.is_empty());
    }
}
