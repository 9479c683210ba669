//! The config file's shape: every section and key as serde reads them from TOML (or, for
//! API-made entries, JSON), with `deny_unknown_fields` and the defaults SPEC names. Meaning is
//! checked elsewhere (`Config::validate`, `source.rs`, `endpoint.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::health::{BreakerConfig, DisableAfter, OrderingConfig};
use super::{Duration, Secret};
use crate::model::Role;
// The scheme vocabulary is verify's; the file's shape uses it. Re-exported so that code which
// still names it through config keeps compiling while it moves to `crate::verify`.
use crate::verify::{FieldRef, HmacAlgorithm, HmacEncoding, SchemeKind};

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
    /// The http(s) base URL providers reach ingress at (behind a proxy, say): the console
    /// shows `<public_url>/in/<source>` to paste into a provider. Without it, the listener's
    /// own address.
    #[serde(default)]
    pub public_url: Option<String>,
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
            public_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// Bearer token for `/api/v1/*` with the admin role; `HOOKGATE_ADMIN_TOKEN` overrides it
    /// (applied by the CLI).
    pub token: Option<Secret>,
    /// More tokens, each with its role. With none here and no `token`, `serve` generates an
    /// admin token into `data_dir/admin-token`.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One entry of `admin.tokens`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: Secret,
    /// `viewer`, `operator` or `admin`.
    pub role: Role,
    /// Scopes the token to these endpoints' routes (a pull consumer's token): it may call
    /// `/api/v1/endpoints/{id}…` for these ids only, as its role allows, and nothing else.
    pub endpoints: Option<Vec<String>>,
}

fn default_admin_listen() -> String {
    "127.0.0.1:8081".into()
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token: None,
            tokens: Vec::new(),
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
    /// Default `breaker` of every endpoint (issue 17).
    #[serde(default)]
    pub breaker: Option<BreakerConfig>,
    /// Default `disable_after` of every endpoint (issue 17).
    #[serde(default)]
    pub disable_after: Option<DisableAfter>,
    /// The worker processes endpoints' transforms run in (issue 18).
    #[serde(default)]
    pub transform: TransformConfig,
}

/// `[delivery.transform]`: the worker processes that run endpoints' jq transforms, and the
/// bounds of one run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Worker processes at most (started when first needed).
    #[serde(default = "default_transform_workers")]
    pub workers: usize,
    /// How long one run may take before its worker is killed and the attempt fails.
    #[serde(default = "default_transform_timeout")]
    pub timeout: Duration,
    /// The most bytes a run may output (body and headers).
    #[serde(default = "default_transform_max_output")]
    pub max_output_bytes: u64,
}

impl Default for TransformConfig {
    fn default() -> Self {
        Self {
            workers: default_transform_workers(),
            timeout: default_transform_timeout(),
            max_output_bytes: default_transform_max_output(),
        }
    }
}

fn default_transform_workers() -> usize {
    2
}

fn default_transform_timeout() -> Duration {
    Duration(std::time::Duration::from_millis(50))
}

fn default_transform_max_output() -> u64 {
    1024 * 1024
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
            breaker: None,
            disable_after: None,
            transform: TransformConfig::default(),
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
    /// Where events and deliveries are kept: `redb` (the embedded default, one node) or
    /// `postgres` (several nodes on one database).
    #[serde(default)]
    pub backend: BackendKind,
    /// The PostgreSQL URL, `postgres://user[:password]@host[:port]/database`; the env var
    /// `HOOKGATE_DATABASE_URL` overrides it. A secret: it may hold a password.
    pub url: Option<Secret>,
    /// Connections each node keeps to PostgreSQL, whatever its delivery concurrency.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Pending deliveries beyond which ingress answers 503 instead of storing more.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: u64,
    /// Pending deliveries at which hookgate publishes `backlog.high` (at most every 15
    /// minutes); default 80 % of `max_backlog`, 0 for never.
    pub backlog_high: Option<u64>,
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

/// The store backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Redb,
    Postgres,
}

fn default_pool_size() -> u32 {
    16
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
            backend: BackendKind::default(),
            url: None,
            pool_size: default_pool_size(),
            max_backlog: default_max_backlog(),
            backlog_high: None,
            retention: default_retention(),
            dead_letter_retention: default_dead_letter_retention(),
            prune_interval: default_prune_interval(),
            quick_repair: default_quick_repair(),
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

fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}
fn default_dedup_window() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
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
    /// `push` (the default: POSTed to `url`) or `pull` (no URL: consumers take them).
    pub kind: Option<EndpointKind>,
    /// Where a push endpoint's deliveries are POSTed; a pull endpoint has none.
    pub url: Option<String>,
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
    /// Its circuit breaker: a table (missing fields from `[delivery]`) or `"off"`.
    pub breaker: Option<BreakerConfig>,
    /// How long an endpoint may fail before it is disabled, or `"off"`.
    pub disable_after: Option<DisableAfter>,
    /// Its delivery order: `"endpoint"` or `{ key = … }`; none by default.
    pub ordering: Option<OrderingConfig>,
    /// Its payload filter: a JSON document (a TOML table, or a string holding the JSON).
    pub filter: Option<serde_json::Value>,
    /// Its transform: a jq program run on each delivery as it is sent.
    pub transform: Option<String>,
    /// When the endpoint removes itself (RFC 3339): `hookgate listen`'s temporary endpoints,
    /// which it moves later while it runs. Only an endpoint made through the API carries one:
    /// in the config file it is an error.
    pub expires_at: Option<String>,
}

/// How an endpoint's deliveries leave: POSTed, or taken by consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Push,
    Pull,
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
