//! Inbound signature verification. Each scheme lives in its own file as a pure function of
//! (headers, raw body, keys, now); this file holds what they share: the compiled [`Verifier`],
//! the error codes ingress answers with, and each scheme's defaults. Beside it: `parse.rs`
//! (strict header, timestamp and `key=value` parsing), `crypto.rs` (the MAC primitives),
//! `vocabulary.rs` (HMAC algorithms and encodings, field selectors).
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

mod crypto;
mod parse;
mod vocabulary;

pub use crypto::{constant_time_eq, mac, mac_matches};
pub use parse::{
    TimestampedHeader, check_tolerance, key_values, parse_timestamp, required_header,
    single_header, verify_timestamped,
};
pub use vocabulary::{Field, FieldRef, HmacAlgorithm, HmacEncoding};

/// Key material held by a verifier: wiped from memory when the verifier is dropped (a config
/// reload or an API change replaces verifiers).
pub type KeyBytes = zeroize::Zeroizing<Vec<u8>>;

use http::{HeaderMap, HeaderName};

use crate::config::{SchemeKind, SourceConfig};

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
