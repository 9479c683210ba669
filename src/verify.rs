//! Inbound signature verification. Each scheme lives in its own file as a pure function of
//! (headers, raw body, keys, now); this file holds what they share: the compiled [`Verifier`],
//! the error codes ingress answers with, strict header and timestamp parsing, and the MAC
//! primitives.
//!
//! **Verification sees the raw body bytes, never parsed JSON.** **MACs are compared in constant
//! time** (`Mac::verify_slice`). The work per request is capped: at most [`MAX_SECRETS`] keys
//! times [`MAX_SIGNATURES`] presented signatures.

pub mod hmac;
pub mod none;
pub mod standard_webhooks;

use ::hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;

use crate::config::{FieldRef, HmacAlgorithm, SchemeKind, SourceConfig};

/// Most secrets a source may hold at once (rotation).
pub const MAX_SECRETS: usize = 4;
/// Most signatures read from one request; any beyond are ignored.
pub const MAX_SIGNATURES: usize = 8;

/// Why a request was refused. Each maps to a 401 with [`VerifyError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingSignature(String),
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    #[error("no signature matches")]
    BadSignature,
    #[error("timestamp outside the tolerance of {0} seconds")]
    StaleTimestamp(u64),
}

impl VerifyError {
    /// The stable machine-readable code in the JSON error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature(_) => "missing_signature",
            Self::MalformedSignature(_) => "malformed_signature",
            Self::BadSignature => "bad_signature",
            Self::StaleTimestamp(_) => "stale_timestamp",
        }
    }
}

/// A source's verification, with its secrets decoded once at config time.
#[derive(Clone)]
pub enum Verifier {
    StandardWebhooks(standard_webhooks::Keys),
    Hmac(hmac::Generic),
    None,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secret: show only the scheme.
        f.write_str(match self {
            Self::StandardWebhooks(_) => "Verifier::StandardWebhooks",
            Self::Hmac(_) => "Verifier::Hmac",
            Self::None => "Verifier::None",
        })
    }
}

impl Verifier {
    /// Checks one request. `now_secs` is Unix seconds.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), VerifyError> {
        match self {
            Self::StandardWebhooks(keys) => {
                standard_webhooks::verify(keys, headers, body, now_secs)
            }
            Self::Hmac(g) => g.verify(headers, body),
            Self::None => none::verify(),
        }
    }
}

/// Compiles a source's verifier; an error names the field (relative to the source) and problem.
pub fn build(s: &SourceConfig) -> Result<Verifier, (&'static str, String)> {
    let tolerance = s.tolerance.0.as_secs();
    match s.verify {
        SchemeKind::StandardWebhooks => {
            need_secrets(s)?;
            let mut keys = Vec::with_capacity(s.secrets.len());
            for secret in &s.secrets {
                keys.push(
                    standard_webhooks::decode_secret(secret.expose())
                        .map_err(|p| ("secrets", p))?,
                );
            }
            Ok(Verifier::StandardWebhooks(standard_webhooks::Keys {
                keys,
                tolerance,
            }))
        }
        SchemeKind::Hmac => {
            need_secrets(s)?;
            let cfg = s.hmac.as_ref().ok_or((
                "hmac",
                "is required with verify = \"hmac\" (e.g. hmac = { header = \"x-signature\" })"
                    .to_string(),
            ))?;
            let header = http::HeaderName::from_bytes(cfg.header.as_bytes()).map_err(|_| {
                (
                    "hmac.header",
                    format!("{:?} is not a header name", cfg.header),
                )
            })?;
            Ok(Verifier::Hmac(hmac::Generic {
                header,
                algorithm: cfg.algorithm,
                encoding: cfg.encoding,
                prefix: cfg.prefix.clone(),
                keys: s
                    .secrets
                    .iter()
                    .map(|k| k.expose().as_bytes().to_vec())
                    .collect(),
            }))
        }
        SchemeKind::None => {
            if !s.secrets.is_empty() {
                return Err(("secrets", "must be empty with verify = \"none\"".into()));
            }
            Ok(Verifier::None)
        }
        other => Err((
            "verify",
            format!(
                "scheme {:?} is not supported yet (supported: standard-webhooks, hmac, none)",
                other.name()
            ),
        )),
    }
}

fn need_secrets(s: &SourceConfig) -> Result<(), (&'static str, String)> {
    if s.secrets.is_empty() || s.secrets.iter().any(|k| k.expose().is_empty()) {
        return Err((
            "secrets",
            format!(
                "verify = {:?} needs at least one non-empty secret",
                s.verify.name()
            ),
        ));
    }
    Ok(())
}

/// Where a scheme finds its provider's delivery id (for dedup) and event type by default.
#[derive(Debug, Clone, Copy)]
pub struct SchemeDefaults {
    /// Headers tried in order for the dedup key.
    pub dedup_headers: &'static [&'static str],
    /// JSON pointer of the event type in the body.
    pub event_type_json: &'static str,
}

pub fn defaults(kind: SchemeKind) -> SchemeDefaults {
    match kind {
        SchemeKind::StandardWebhooks => SchemeDefaults {
            dedup_headers: &["webhook-id", "svix-id"],
            event_type_json: "/type",
        },
        _ => SchemeDefaults {
            dedup_headers: &["webhook-id"],
            event_type_json: "/type",
        },
    }
}

/// The field reference a source uses for its dedup key, falling back to the scheme default.
pub fn dedup_refs(kind: SchemeKind, configured: Option<&FieldRef>) -> Vec<FieldRef> {
    match configured {
        Some(f) => vec![f.clone()],
        None => defaults(kind)
            .dedup_headers
            .iter()
            .map(|h| FieldRef::Header((*h).to_string()))
            .collect(),
    }
}

/// The value of a header that must appear at most once, as visible ASCII.
/// `Ok(None)` when absent; a repeated or non-ASCII header is malformed.
pub fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::MalformedSignature(format!(
            "header {name} appears more than once"
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| VerifyError::MalformedSignature(format!("header {name} is not visible ASCII")))
}

/// Like [`single_header`], but absence is [`VerifyError::MissingSignature`] and empty is malformed.
pub fn required_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    match single_header(headers, name)? {
        None => Err(VerifyError::MissingSignature(name.to_string())),
        Some("") => Err(VerifyError::MalformedSignature(format!(
            "header {name} is empty"
        ))),
        Some(v) => Ok(v),
    }
}

/// Parses a Unix timestamp strictly: ASCII digits only, no sign, no leading zero, so that the
/// string we MAC is exactly the one the sender formatted.
pub fn parse_timestamp(s: &str) -> Result<i64, VerifyError> {
    let bad = || {
        VerifyError::MalformedSignature(format!("timestamp {s:?} is not a Unix time in seconds"))
    };
    if s.is_empty()
        || s.len() > 12
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// Refuses a timestamp more than `tolerance` seconds away from now, in either direction.
pub fn check_tolerance(ts: i64, now: i64, tolerance: u64) -> Result<(), VerifyError> {
    if now.abs_diff(ts) > tolerance {
        return Err(VerifyError::StaleTimestamp(tolerance));
    }
    Ok(())
}

fn hmac_of<D>(key: &[u8], parts: &[&[u8]]) -> Option<Hmac<D>>
where
    D: ::hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    // HMAC takes keys of any length, so this is always `Some`.
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).ok()?;
    for p in parts {
        mac.update(p);
    }
    Some(mac)
}

/// The MAC of the concatenated `parts` under `key`.
pub fn mac(alg: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let out = match alg {
        HmacAlgorithm::Sha1 => {
            hmac_of::<sha1::Sha1>(key, parts).map(|m| m.finalize().into_bytes().to_vec())
        }
        HmacAlgorithm::Sha256 => {
            hmac_of::<sha2::Sha256>(key, parts).map(|m| m.finalize().into_bytes().to_vec())
        }
        HmacAlgorithm::Sha512 => {
            hmac_of::<sha2::Sha512>(key, parts).map(|m| m.finalize().into_bytes().to_vec())
        }
    };
    out.unwrap_or_default()
}

/// Whether `tag` is the MAC of `parts` under `key`, compared in constant time.
pub fn mac_matches(alg: HmacAlgorithm, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    match alg {
        HmacAlgorithm::Sha1 => {
            hmac_of::<sha1::Sha1>(key, parts).is_some_and(|m| m.verify_slice(tag).is_ok())
        }
        HmacAlgorithm::Sha256 => {
            hmac_of::<sha2::Sha256>(key, parts).is_some_and(|m| m.verify_slice(tag).is_ok())
        }
        HmacAlgorithm::Sha512 => {
            hmac_of::<sha2::Sha512>(key, parts).is_some_and(|m| m.verify_slice(tag).is_ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_strictly() {
        assert_eq!(parse_timestamp("1614265330"), Ok(1_614_265_330));
        assert_eq!(parse_timestamp("0"), Ok(0));
        for bad in ["", "-1", "+1", "0123", "1.5", " 1", "1e9", "9999999999999"] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn tolerance_is_inclusive_both_ways() {
        assert!(check_tolerance(1000, 1300, 300).is_ok());
        assert!(check_tolerance(1000, 700, 300).is_ok());
        assert!(check_tolerance(1000, 1301, 300).is_err());
        assert!(check_tolerance(1000, 699, 300).is_err());
    }

    #[test]
    fn repeated_headers_are_malformed() {
        let mut h = HeaderMap::new();
        h.append("webhook-id", "a".parse().expect("value"));
        h.append("webhook-id", "b".parse().expect("value"));
        assert!(matches!(
            single_header(&h, "webhook-id"),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert_eq!(
            required_header(&h, "nope"),
            Err(VerifyError::MissingSignature("nope".into()))
        );
    }

    #[test]
    fn mac_matches_only_the_right_tag() {
        let tag = mac(HmacAlgorithm::Sha256, b"k", &[b"a", b"b"]);
        assert!(mac_matches(HmacAlgorithm::Sha256, b"k", &[b"ab"], &tag));
        assert!(!mac_matches(
            HmacAlgorithm::Sha256,
            b"k",
            &[b"ab"],
            &tag[..31]
        ));
        assert!(!mac_matches(HmacAlgorithm::Sha256, b"j", &[b"ab"], &tag));
    }
}
