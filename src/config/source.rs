//! Sources as ingress uses them: a [`SourceConfig`] validated into a [`Source`] with its
//! verifier built (keys decoded once), its rate limiter, and its configured answer.

use super::*;
use crate::model::source::{Source, SourceLimiter, SyncResponse};
use crate::verify::{self, HmacOptions, SchemeInput, SourceOption};

pub(super) fn validate_source(key: &str, s: &SourceConfig) -> Result<Source, ConfigError> {
    check_id(&format!("{key}.id"), &s.id)?;
    if s.id == crate::model::HOOKGATE_SOURCE {
        return Err(ConfigError::new(
            format!("{key}.id"),
            format!("{:?} is reserved for hookgate's own events", s.id),
        ));
    }
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
    for (set, option) in [
        (s.hmac.is_some(), SourceOption::Hmac),
        (s.public_url.is_some(), SourceOption::PublicUrl),
        (s.token_header.is_some(), SourceOption::TokenHeader),
        (s.verify_token.is_some(), SourceOption::VerifyToken),
    ] {
        if set && !s.verify.uses(option) {
            let names: Vec<String> = SchemeKind::ALL
                .iter()
                .filter(|k| k.uses(option))
                .map(|k| format!("{:?}", k.name()))
                .collect();
            return Err(ConfigError::new(
                format!("{key}.{}", option.key()),
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
    let verifier = verify::build(s.verify, &scheme_input(s)).map_err(|e| {
        ConfigError::new(
            if e.field.is_empty() {
                key.to_string()
            } else {
                format!("{key}.{}", e.field)
            },
            e.problem,
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
            Some(std::sync::Arc::new(SourceLimiter::new(quota)))
        }
    };
    Ok(Source {
        id: s.id.clone(),
        scheme: s.verify,
        verifier,
        dedup: s.dedup.clone(),
        dedup_window: s.dedup_window.0,
        dedup_body: s
            .dedup_body
            .unwrap_or_else(|| verify::defaults(s.verify).body_dedup),
        event_type: s.event_type.clone(),
        limiter,
        response,
    })
}

/// What the source's scheme is built from: its keys as plain values.
fn scheme_input(s: &SourceConfig) -> SchemeInput<'_> {
    SchemeInput {
        secrets: s.secrets.iter().map(Secret::expose).collect(),
        tolerance: s.tolerance.0.as_secs(),
        hmac: s.hmac.as_ref().map(|h| HmacOptions {
            header: &h.header,
            algorithm: h.algorithm,
            encoding: h.encoding,
            prefix: &h.prefix,
            timestamp_header: h.timestamp_header.as_deref(),
            signed: h.signed.as_deref(),
        }),
        public_url: s.public_url.as_deref(),
        token_header: s.token_header.as_deref(),
        verify_token: s.verify_token.as_ref().map(Secret::expose),
    }
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
