//! Endpoints as delivery uses them: an [`EndpointConfig`] validated into an [`Endpoint`],
//! with the `[delivery]` defaults applied, headers checked and retry policy resolved.

use std::collections::BTreeMap;

use super::*;
use crate::model::endpoint::{Destination, RateLimit};
use crate::verify;

/// Resolves a `[retry]` table against the defaults it falls back on.
pub(super) fn resolve_retry(
    key: &str,
    c: &RetryConfig,
    fallback: Option<&RetryPolicy>,
) -> Result<RetryPolicy, ConfigError> {
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

pub(super) fn header_name(key: &str, name: &str) -> Result<http::HeaderName, ConfigError> {
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
pub(super) fn check_max_in_flight(
    key: &str,
    value: u32,
    max_concurrency: u32,
) -> Result<(), ConfigError> {
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
    /// `[delivery]`'s `breaker` and `disable_after`.
    pub health: HealthDefaults,
    /// Which internal addresses deliveries may reach: a URL naming any other one literally is
    /// refused at once.
    pub reach: crate::model::reach::Reach,
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

/// Where the endpoint's deliveries go: its URL, checked, for a push endpoint; none for a pull
/// endpoint, which must not name one.
fn destination(
    key: &str,
    e: &EndpointConfig,
    defaults: &EndpointDefaults,
) -> Result<Destination, ConfigError> {
    let url = match (e.kind, &e.url) {
        (Some(EndpointKind::Pull), None) => return Ok(Destination::Pull),
        (Some(EndpointKind::Pull), Some(_)) => {
            return Err(ConfigError::new(
                format!("{key}.url"),
                "a pull endpoint has no URL: consumers take its deliveries (remove url, or kind)",
            ));
        }
        (_, None) => {
            return Err(ConfigError::new(
                format!("{key}.url"),
                "is required (or set kind = \"pull\" for an endpoint consumers take from)",
            ));
        }
        (_, Some(url)) => url,
    };
    let url = reqwest::Url::parse(url).map_err(|err| {
        ConfigError::new(
            format!("{key}.url"),
            format!("{:?} is not a URL ({err})", url),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            format!("{key}.url"),
            format!("{:?} must be an http or https URL with a host", url),
        ));
    }
    // A literal internal address could only ever be dead-lettered: say so now. Names are
    // checked when they are resolved, at each delivery.
    if let Err(blocked) = crate::model::reach::check_literal(&url, &defaults.reach) {
        return Err(ConfigError::new(
            format!("{key}.url"),
            format!(
                "{blocked}; list it in delivery.allowed_networks (or set allow_private_networks) to deliver there"
            ),
        ));
    }
    Ok(Destination::Http { url })
}

/// An RFC 3339 time as Unix ms; an error names `key`.
fn rfc3339_ms(key: &str, text: &str) -> Result<u64, ConfigError> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .ok_or_else(|| ConfigError::new(key, format!("{text:?} is not an RFC 3339 time")))
}

/// What a pull endpoint may not have: a breaker or auto-disable (no receiver to fail), a
/// `timeout`, `rate_limit` or `max_in_flight` (its consumers pace themselves: `max` per
/// receive, `max_unacked` per stream), or a transform (not run on pulled messages yet).
fn pull_rules(key: &str, e: &EndpointConfig) -> Result<(), ConfigError> {
    let refused = [
        ("breaker", e.breaker.is_some()),
        ("disable_after", e.disable_after.is_some()),
        ("transform", e.transform.is_some()),
        ("timeout", e.timeout.is_some()),
        ("rate_limit", e.rate_limit.is_some()),
        ("max_in_flight", e.max_in_flight.is_some()),
    ];
    match refused.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(ConfigError::new(
            format!("{key}.{name}"),
            "does not apply to a pull endpoint (kind = \"pull\")",
        )),
        None => Ok(()),
    }
}

pub(super) fn validate_endpoint(
    key: &str,
    e: &EndpointConfig,
    defaults: &EndpointDefaults,
    sources: &BTreeMap<String, Source>,
) -> Result<Endpoint, ConfigError> {
    check_id(&format!("{key}.id"), &e.id)?;
    let destination = destination(key, e, defaults)?;
    for (j, s) in e.sources.iter().enumerate() {
        // hookgate's own events come from no declared source: subscribing names it.
        if s != crate::model::HOOKGATE_SOURCE && !sources.contains_key(s) {
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
        let until = rfc3339_ms(&format!("{pkey}.until"), &p.until)?;
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
    let retry = resolve_retry(&format!("{key}.retry"), &e.retry, Some(&defaults.retry))?;
    let mut health =
        super::health::resolve_health(key, e.breaker.as_ref(), e.disable_after, &defaults.health)?;
    if destination.is_pull() {
        pull_rules(key, e)?;
        // A consumer's failures say nothing of a receiver's health: nothing to break.
        health = crate::model::HealthPolicy::OFF;
    }
    let ordering = super::health::resolve_ordering(key, e.ordering.as_ref())?;
    let filter = match &e.filter {
        None => None,
        Some(doc) => Some(std::sync::Arc::new(compile_filter(
            &format!("{key}.filter"),
            doc,
        )?)),
    };
    let transform = match &e.transform {
        None => None,
        Some(program) => {
            crate::transform::Program::check(program)
                .map_err(|err| ConfigError::new(format!("{key}.transform"), err.to_string()))?;
            Some(std::sync::Arc::from(program.as_str()))
        }
    };
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
        destination,
        sources: e.sources.clone(),
        event_types,
        signing_key,
        previous_keys,
        rate_limit: e.rate_limit.map(|rl| RateLimit {
            per_second: rl.per_second,
            burst: rl.burst,
        }),
        max_in_flight,
        retry,
        timeout,
        headers,
        forward_headers,
        health,
        ordering,
        filter,
        transform,
        expires_at_ms: match &e.expires_at {
            None => None,
            Some(at) => Some(rfc3339_ms(&format!("{key}.expires_at"), at)?),
        },
    })
}

/// Compiles an endpoint's `filter`: a JSON document, or a string holding one (so a rule
/// copied from another gateway's console can be pasted as it is). Errors name the path inside
/// the filter: `endpoints[2].filter.body.amount.$gte: expected a number`.
pub fn compile_filter(
    key: &str,
    doc: &serde_json::Value,
) -> Result<crate::filter::payload::PayloadFilter, ConfigError> {
    let parsed;
    let doc = match doc {
        serde_json::Value::String(text) => {
            parsed = serde_json::from_str::<serde_json::Value>(text).map_err(|err| {
                ConfigError::new(key, format!("is a string but not a JSON document ({err})"))
            })?;
            &parsed
        }
        other => other,
    };
    crate::filter::payload::PayloadFilter::compile(doc).map_err(|err| {
        let at = if err.path.is_empty() {
            key.to_string()
        } else {
            format!("{key}.{}", err.path)
        };
        ConfigError::new(at, err.message)
    })
}
