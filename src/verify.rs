//! Inbound signature verification. Each scheme lives in its own file as a pure function of
//! (headers, raw body, keys, now); this file holds what they share: the compiled [`Verifier`],
//! the error codes ingress answers with, strict header and timestamp parsing, and the MAC
//! primitives.
//!
//! **Verification sees the raw body bytes, never parsed JSON.** **MACs are compared in constant
//! time** (`Mac::verify_slice`). The work per request is capped: at most [`MAX_SECRETS`] keys
//! times [`MAX_SIGNATURES`] presented signatures.

pub mod basic;
pub mod discord;
pub mod dropbox;
pub mod github;
pub mod handshake;
pub mod hmac;
pub mod linear;
pub mod meta;
pub mod msgraph;
pub mod none;
pub mod okta;
pub mod paddle;
pub mod shopify;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;
pub mod token;
pub mod twilio;
pub mod twitch;
pub mod x;
pub mod zoom;

/// Key material held by a verifier: wiped from memory when the verifier is dropped (a config
/// reload or an API change replaces verifiers).
pub type KeyBytes = zeroize::Zeroizing<Vec<u8>>;

use ::hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Field, HmacAlgorithm, SchemeKind, SourceConfig};

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

/// What a verifier may look at: the request as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub headers: &'a HeaderMap,
    /// The request's path and query, as sent (Twilio signs the URL).
    pub path_and_query: &'a str,
    pub body: &'a [u8],
    /// Unix seconds.
    pub now_secs: i64,
}

/// A source's verification, with its secrets decoded once at config time.
#[derive(Clone)]
pub enum Verifier {
    StandardWebhooks(standard_webhooks::Keys),
    Stripe(stripe::Keys),
    Github(github::Github),
    Linear(linear::Linear),
    Twilio(twilio::Twilio),
    Paddle(paddle::Keys),
    /// Generic HMAC, and the providers that are presets of it with no handshake (Shopify).
    Hmac(hmac::Generic),
    Slack(hmac::Generic),
    Zoom(hmac::Generic),
    Meta(meta::Meta),
    X(x::X),
    Dropbox(hmac::Generic),
    Twitch(twitch::Twitch),
    MicrosoftGraph(msgraph::ClientStates),
    Okta(token::Tokens),
    Discord(discord::Discord),
    Basic(Vec<KeyBytes>),
    Token(token::Tokens),
    None,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secret: show only the scheme.
        f.write_str(match self {
            Self::StandardWebhooks(_) => "Verifier::StandardWebhooks",
            Self::Stripe(_) => "Verifier::Stripe",
            Self::Github(_) => "Verifier::Github",
            Self::Linear(_) => "Verifier::Linear",
            Self::Twilio(_) => "Verifier::Twilio",
            Self::Paddle(_) => "Verifier::Paddle",
            Self::Hmac(_) => "Verifier::Hmac",
            Self::Slack(_) => "Verifier::Slack",
            Self::Zoom(_) => "Verifier::Zoom",
            Self::Meta(_) => "Verifier::Meta",
            Self::X(_) => "Verifier::X",
            Self::Dropbox(_) => "Verifier::Dropbox",
            Self::Twitch(_) => "Verifier::Twitch",
            Self::MicrosoftGraph(_) => "Verifier::MicrosoftGraph",
            Self::Okta(_) => "Verifier::Okta",
            Self::Discord(_) => "Verifier::Discord",
            Self::Basic(_) => "Verifier::Basic",
            Self::Token(_) => "Verifier::Token",
            Self::None => "Verifier::None",
        })
    }
}

impl Verifier {
    /// Checks one request.
    pub fn verify(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        let Inbound {
            headers,
            path_and_query,
            body,
            now_secs,
        } = *req;
        match self {
            Self::StandardWebhooks(keys) => {
                standard_webhooks::verify(keys, headers, body, now_secs)
            }
            Self::Stripe(keys) => stripe::verify(keys, headers, body, now_secs),
            Self::Github(g) => g.verify(headers, body),
            Self::Linear(l) => l.verify(headers, body, now_secs),
            Self::Twilio(t) => t.verify(headers, path_and_query, body),
            Self::Paddle(keys) => paddle::verify(keys, headers, body, now_secs),
            Self::Hmac(g) | Self::Slack(g) | Self::Zoom(g) | Self::Dropbox(g) => {
                g.verify(headers, body, now_secs)
            }
            Self::X(x) => x.verify(headers, body, now_secs),
            Self::Meta(m) => m.signature.verify(headers, body),
            Self::Twitch(t) => t.verify(headers, body, now_secs),
            Self::MicrosoftGraph(c) => c.verify(body),
            Self::Okta(t) => t.verify(headers),
            Self::Discord(d) => d.verify(headers, body, now_secs),
            Self::Basic(creds) => basic::verify(creds, headers),
            Self::Token(t) => t.verify(headers),
            Self::None => none::verify(),
        }
    }
}

/// Compiles a source's verifier; an error names the field (relative to the source) and problem.
pub fn build(s: &SourceConfig) -> Result<Verifier, (&'static str, String)> {
    let tolerance = s.tolerance.0.as_secs();
    let raw_keys = || {
        s.secrets
            .iter()
            .map(|k| KeyBytes::new(k.expose().as_bytes().to_vec()))
            .collect::<Vec<_>>()
    };
    if s.verify != SchemeKind::None {
        need_secrets(s)?;
    }
    let verifier = match s.verify {
        SchemeKind::StandardWebhooks => {
            let mut keys = standard_webhooks::Keys {
                keys: Vec::new(),
                public_keys: Vec::new(),
                tolerance,
            };
            for secret in &s.secrets {
                keys.add(secret.expose()).map_err(|p| ("secrets", p))?;
            }
            Verifier::StandardWebhooks(keys)
        }
        SchemeKind::Stripe => Verifier::Stripe(stripe::Keys {
            keys: raw_keys(),
            tolerance,
        }),
        SchemeKind::Github => Verifier::Github(github::Github::new(raw_keys())),
        SchemeKind::Shopify => Verifier::Hmac(shopify::verifier(raw_keys())),
        SchemeKind::Slack => Verifier::Slack(slack::verifier(raw_keys(), tolerance)),
        SchemeKind::Zoom => Verifier::Zoom(zoom::verifier(raw_keys(), tolerance)),
        SchemeKind::Meta => Verifier::Meta(meta::Meta {
            signature: github::Github::new(raw_keys()),
            verify_token: s
                .verify_token
                .as_ref()
                .map(|t| KeyBytes::new(t.expose().as_bytes().to_vec())),
        }),
        SchemeKind::X => Verifier::X(x::X {
            signature: x::verifier(raw_keys()),
        }),
        SchemeKind::Dropbox => Verifier::Dropbox(dropbox::verifier(raw_keys())),
        SchemeKind::Twitch => {
            for k in &s.secrets {
                twitch::check_secret(k.expose()).map_err(|p| ("secrets", p))?;
            }
            Verifier::Twitch(twitch::Twitch { keys: raw_keys() })
        }
        SchemeKind::MicrosoftGraph => {
            Verifier::MicrosoftGraph(msgraph::ClientStates { keys: raw_keys() })
        }
        SchemeKind::Okta => Verifier::Okta(token_verifier(s, raw_keys())?),
        SchemeKind::Discord => Verifier::Discord(discord::Discord {
            public_keys: s
                .secrets
                .iter()
                .map(|k| discord::decode_public_key(k.expose()))
                .collect::<Result<_, _>>()
                .map_err(|p| ("secrets", p))?,
            tolerance,
        }),
        SchemeKind::Linear => Verifier::Linear(linear::Linear::new(raw_keys(), tolerance)),
        SchemeKind::Paddle => Verifier::Paddle(paddle::Keys {
            keys: raw_keys(),
            tolerance,
        }),
        SchemeKind::Twilio => Verifier::Twilio(twilio::Twilio {
            keys: raw_keys(),
            public_url: s.public_url.clone(),
        }),
        SchemeKind::Hmac => Verifier::Hmac(generic_hmac(s, raw_keys(), tolerance)?),
        SchemeKind::Basic => {
            if s.secrets.iter().any(|c| !c.expose().contains(':')) {
                return Err((
                    "secrets",
                    "each secret of verify = \"basic\" is \"user:password\"".into(),
                ));
            }
            Verifier::Basic(raw_keys())
        }
        SchemeKind::Token => Verifier::Token(token_verifier(s, raw_keys())?),
        SchemeKind::None => {
            if !s.secrets.is_empty() {
                return Err(("secrets", "must be empty with verify = \"none\"".into()));
            }
            Verifier::None
        }
    };
    Ok(verifier)
}

/// A token in `token_header` (default `authorization`), for `token` and `okta`.
fn token_verifier(
    s: &SourceConfig,
    tokens: Vec<KeyBytes>,
) -> Result<token::Tokens, (&'static str, String)> {
    let name = s.token_header.as_deref().unwrap_or("authorization");
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ("token_header", format!("{name:?} is not a header name")))?;
    Ok(token::Tokens { header, tokens })
}

fn generic_hmac(
    s: &SourceConfig,
    keys: Vec<KeyBytes>,
    tolerance: u64,
) -> Result<hmac::Generic, (&'static str, String)> {
    let cfg = s.hmac.as_ref().ok_or((
        "hmac",
        "is required with verify = \"hmac\" (e.g. hmac = { header = \"x-signature\" })".to_string(),
    ))?;
    let header = HeaderName::from_bytes(cfg.header.as_bytes()).map_err(|_| {
        (
            "hmac.header",
            format!("{:?} is not a header name", cfg.header),
        )
    })?;
    let timestamp_header = match &cfg.timestamp_header {
        None => None,
        Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
            (
                "hmac.timestamp_header",
                format!("{h:?} is not a header name"),
            )
        })?),
    };
    let default_template = if timestamp_header.is_some() {
        "{timestamp}.{body}"
    } else {
        "{body}"
    };
    let signed = hmac::parse_template(cfg.signed.as_deref().unwrap_or(default_template))
        .map_err(|p| ("hmac.signed", p))?;
    if signed.contains(&hmac::Part::Timestamp) != timestamp_header.is_some() {
        return Err((
            "hmac.signed",
            "{timestamp} in the template and hmac.timestamp_header go together".into(),
        ));
    }
    Ok(hmac::Generic {
        headers: vec![header],
        algorithm: cfg.algorithm,
        encoding: cfg.encoding,
        prefix: cfg.prefix.clone(),
        signed,
        timestamp_header,
        tolerance,
        keys,
    })
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

/// Where a scheme finds its provider's delivery id (for dedup) and event type by default; the
/// first one present is used.
#[derive(Debug, Clone, Copy)]
pub struct SchemeDefaults {
    pub dedup: &'static [Field<'static>],
    pub event_type: &'static [Field<'static>],
    /// Whether a hash of the body is remembered as a second dedup key: for the schemes that
    /// sign no timestamp, where a captured request could otherwise be sent again forever
    /// under a fresh (unsigned) delivery id. Not for Dropbox, whose bodies repeat by design.
    pub body_dedup: bool,
}

pub fn defaults(kind: SchemeKind) -> SchemeDefaults {
    use Field::{Header, Json};
    let (dedup, event_type): (&'static [Field<'static>], &'static [Field<'static>]) = match kind {
        SchemeKind::StandardWebhooks => {
            (&[Header("webhook-id"), Header("svix-id")], &[Json("/type")])
        }
        SchemeKind::Stripe => (&[Json("/id")], &[Json("/type")]),
        SchemeKind::Github => (&[Header("x-github-delivery")], &[Header("x-github-event")]),
        SchemeKind::Shopify => (
            &[
                Header("x-shopify-webhook-id"),
                Header("shopify-webhook-id"),
                Header("shopify-event-id"),
            ],
            &[Header("x-shopify-topic"), Header("shopify-topic")],
        ),
        SchemeKind::Slack => (&[Json("/event_id")], &[Json("/event/type"), Json("/type")]),
        SchemeKind::Twilio => (&[Header("i-twilio-idempotency-token")], &[]),
        SchemeKind::Paddle => (&[Json("/event_id")], &[Json("/event_type")]),
        SchemeKind::Linear => (&[Header("linear-delivery")], &[Header("linear-event")]),
        SchemeKind::Zoom => (&[], &[Json("/event")]),
        SchemeKind::Meta => (&[], &[Json("/object")]),
        // X's event type is the name of its activity key (`x::event_type`).
        SchemeKind::X | SchemeKind::Dropbox => (&[], &[]),
        SchemeKind::Twitch => (
            &[Header(twitch::MESSAGE_ID)],
            &[Header("twitch-eventsub-subscription-type")],
        ),
        SchemeKind::MicrosoftGraph => (
            &[Json("/value/0/id")],
            &[Json("/value/0/lifecycleEvent"), Json("/value/0/changeType")],
        ),
        SchemeKind::Okta => (&[Json("/eventId")], &[Json("/data/events/0/eventType")]),
        SchemeKind::Discord => (&[Json("/id")], &[Json("/event/type"), Json("/type")]),
        SchemeKind::Hmac | SchemeKind::Basic | SchemeKind::Token | SchemeKind::None => {
            (&[Header("webhook-id")], &[Json("/type")])
        }
    };
    let body_dedup = matches!(
        kind,
        SchemeKind::Github
            | SchemeKind::Shopify
            | SchemeKind::Twilio
            | SchemeKind::Meta
            | SchemeKind::X
    );
    SchemeDefaults {
        dedup,
        event_type,
        body_dedup,
    }
}

/// Splits `k=v<sep>k=v…` (Stripe's and Paddle's signature headers); an item without `=` makes
/// the header malformed.
pub fn key_values(value: &str, sep: char) -> Result<Vec<(&str, &str)>, VerifyError> {
    value
        .split(sep)
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .take(4 * MAX_SIGNATURES)
        .map(|item| {
            item.split_once('=').ok_or_else(|| {
                VerifyError::MalformedSignature(format!("{item:?} is not key=value"))
            })
        })
        .collect()
}

/// A `key=value` signature header with one timestamp and any number of hex HMAC-SHA256
/// signatures of `timestamp <joiner> body`: Stripe's (`t=…,v1=…`) and Paddle's (`ts=…;h1=…`).
#[derive(Debug, Clone, Copy)]
pub struct TimestampedHeader {
    pub name: &'static str,
    pub separator: char,
    pub ts_key: &'static str,
    pub sig_key: &'static str,
    pub joiner: &'static [u8],
}

/// Verifies a [`TimestampedHeader`]: any key matching any signature of the accepted kind passes;
/// other kinds are ignored; `now_secs = None` skips the clock.
pub fn verify_timestamped(
    layout: &TimestampedHeader,
    keys: &[KeyBytes],
    tolerance: u64,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: Option<i64>,
) -> Result<(), VerifyError> {
    let value = required_header(headers, layout.name)?;
    let mut ts_text = None;
    let mut candidates = Vec::new();
    for (k, v) in key_values(value, layout.separator)? {
        if k == layout.ts_key {
            if ts_text.is_some() {
                return Err(VerifyError::MalformedSignature(format!(
                    "{} appears more than once",
                    layout.ts_key
                )));
            }
            ts_text = Some(v);
        } else if k == layout.sig_key && candidates.len() < MAX_SIGNATURES {
            // An undecodable candidate is just not a match.
            if let Ok(tag) = hex::decode(v) {
                candidates.push(tag);
            }
        }
    }
    let ts_text = ts_text.ok_or_else(|| {
        VerifyError::MalformedSignature(format!("no {}= timestamp", layout.ts_key))
    })?;
    let ts = parse_timestamp(ts_text)?;
    if let Some(now) = now_secs {
        check_tolerance(ts, now, tolerance)?;
    }
    let parts: [&[u8]; 3] = [ts_text.as_bytes(), layout.joiner, body];
    let matched = keys.iter().any(|k| {
        candidates
            .iter()
            .any(|tag| mac_matches(HmacAlgorithm::Sha256, k, &parts, tag))
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Equality of two secrets in time independent of their contents and lengths (both are hashed
/// first, so a length mismatch says nothing either).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

/// The value of a header that must appear at most once, as visible ASCII.
/// `Ok(None)` when absent; a repeated or non-ASCII header is malformed.
pub fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
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
pub fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
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
