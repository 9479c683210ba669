//! What a signature scheme is to the rest of the gateway: a [`Scheme`] (its names, how it is
//! built from a source's settings, its defaults, how `hookgate sign` signs for it, its fuzz
//! source) and the [`Check`] it builds for one source (the signature check, holding that
//! source's decoded keys, and the scheme's handshakes). Each scheme's own file implements both;
//! the registry in `verify.rs` lists them. The inputs here are plain values (`&str` secrets,
//! seconds), so that verify needs nothing from config: config fills them in.

use std::fmt;
use std::sync::Arc;

use http::HeaderName;

use super::handshake::{HandshakeError, Reply};
use super::{Field, HmacAlgorithm, HmacEncoding, Inbound, KeyBytes, VerifyError};

/// A scheme's registration. Implemented by a unit struct in the scheme's own file and listed
/// once in the registry (`verify.rs`); config, ingress, the CLI and the fuzzers reach every
/// scheme through it, never by name.
pub trait Scheme: Sync {
    /// The name `verify = "..."` and `hookgate sign --scheme` take.
    fn name(&self) -> &'static str;

    /// Other names accepted for it (X was Twitter).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// The optional source keys it reads; config refuses them with any scheme that does not
    /// list them.
    fn options(&self) -> &'static [SourceOption] {
        &[]
    }

    /// Whether a source of this scheme must hold at least one non-empty secret (checked before
    /// [`Scheme::build`] is called).
    fn needs_secrets(&self) -> bool {
        true
    }

    /// One source's check, its keys decoded once. An error names the source key at fault
    /// (relative to the source: `secrets`, `hmac.header`, ...).
    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError>;

    /// Where its provider puts the delivery id and event type.
    fn defaults(&self) -> SchemeDefaults;

    /// How `hookgate sign` signs for it; `None` leaves it out of `--scheme`.
    fn signer(&self) -> Option<Signer> {
        None
    }

    /// The source its fuzz target verifies with; `None` for a scheme with nothing to fuzz.
    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        None
    }
}

/// One source's verification, as its scheme built it: the signature check and the scheme's
/// handshakes (see `handshake.rs` for when each is asked). Everything but [`Check::check`]
/// defaults to "none".
pub trait Check: Send + Sync {
    /// Checks one request's signature (or token, or credentials).
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError>;

    /// An unsigned handshake, answered before the signature is checked.
    fn answer_before_verify(&self, _req: &Inbound<'_>) -> Option<Reply> {
        None
    }

    /// A signed handshake, answered once the request has passed [`Check::check`].
    fn answer_after_verify(&self, _req: &Inbound<'_>) -> Option<Result<Reply, HandshakeError>> {
        None
    }

    /// The answer to `GET /in/{source}`; 405 for schemes without a GET handshake.
    fn answer_get(&self, _req: &Inbound<'_>) -> Result<Reply, HandshakeError> {
        Err(HandshakeError::NotAllowed)
    }

    /// The header that carries the source's secret itself, which must not be stored.
    fn credential_header(&self) -> Option<&HeaderName> {
        None
    }

    /// An event type the scheme sets itself, ahead of the configured or default field.
    fn event_type(&self, _req: &Inbound<'_>) -> Option<String> {
        None
    }
}

/// A source's settings as a scheme sees them: plain values, which config fills from its file.
pub struct SchemeInput<'a> {
    pub secrets: Vec<&'a str>,
    /// Seconds a signed timestamp may be away from now.
    pub tolerance: u64,
    pub hmac: Option<HmacOptions<'a>>,
    /// The URL the provider signs (Twilio).
    pub public_url: Option<&'a str>,
    /// The header carrying a shared token (`token`, `okta`).
    pub token_header: Option<&'a str>,
    /// The token Meta's subscription check presents.
    pub verify_token: Option<&'a str>,
}

impl SchemeInput<'_> {
    /// The secrets' bytes as keys, as most schemes use them (the string itself, not decoded).
    pub fn keys(&self) -> Vec<KeyBytes> {
        self.secrets
            .iter()
            .map(|s| KeyBytes::new(s.as_bytes().to_vec()))
            .collect()
    }
}

impl fmt::Debug for SchemeInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets are shown by count only.
        f.debug_struct("SchemeInput")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .field("hmac", &self.hmac)
            .field("public_url", &self.public_url)
            .field("token_header", &self.token_header)
            .field("verify_token", &self.verify_token.map(|_| "***"))
            .finish()
    }
}

/// The generic HMAC scheme's settings (`hmac = { ... }`), defaults already applied.
#[derive(Debug, Clone, Copy)]
pub struct HmacOptions<'a> {
    pub header: &'a str,
    pub algorithm: HmacAlgorithm,
    pub encoding: HmacEncoding,
    pub prefix: &'a str,
    pub timestamp_header: Option<&'a str>,
    pub signed: Option<&'a str>,
}

/// The optional source keys only some schemes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOption {
    Hmac,
    PublicUrl,
    TokenHeader,
    VerifyToken,
}

impl SourceOption {
    /// Its key in a source.
    pub fn key(self) -> &'static str {
        match self {
            Self::Hmac => "hmac",
            Self::PublicUrl => "public_url",
            Self::TokenHeader => "token_header",
            Self::VerifyToken => "verify_token",
        }
    }
}

/// Why a source's verifier could not be built: the source key at fault (relative to the
/// source; empty for the source itself) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct BuildError {
    pub field: &'static str,
    pub problem: String,
}

impl BuildError {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
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

impl SchemeDefaults {
    /// `webhook-id` and `/type`, the Standard Webhooks places: for the schemes whose provider
    /// is not known (`hmac`, `basic`, `token`, `none`).
    pub const GENERIC: SchemeDefaults = SchemeDefaults {
        dedup: &[Field::Header("webhook-id")],
        event_type: &[Field::Json("/type")],
        body_dedup: false,
    };
}

/// How `hookgate sign` signs a body for a scheme.
#[derive(Clone, Copy)]
pub struct Signer {
    /// Shown beside the scheme's name in `hookgate sign --help`.
    pub help: Option<&'static str>,
    /// The headers a sender would set, or why the secret or flags cannot sign (an error about
    /// `--secret` or the flag named).
    pub sign: fn(&SignInput<'_>) -> Result<Signed, String>,
}

/// What `hookgate sign` was given. Each scheme reads the flags it needs.
pub struct SignInput<'a> {
    pub secret: &'a str,
    pub body: &'a [u8],
    /// Unix seconds: `--timestamp`, or now.
    pub timestamp: i64,
    /// `--id`, for the schemes that sign a message id; a fresh one when absent.
    pub id: Option<&'a str>,
    /// `--message-type` (Twitch).
    pub message_type: &'a str,
    /// `--header` (`hmac`; `okta`, where the default `x-signature` means `authorization`).
    pub header: &'a str,
    pub algorithm: HmacAlgorithm,
    pub encoding: HmacEncoding,
    pub prefix: &'a str,
}

impl SignInput<'_> {
    /// `--header`'s default.
    pub const DEFAULT_HEADER: &'static str = "x-signature";
}

/// The headers `hookgate sign` prints, in order, and a note for stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    pub headers: Vec<(String, String)>,
    /// Printed to stderr (Discord's public key, which the source needs).
    pub note: Option<String>,
}

impl Signed {
    /// One more header.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A scheme's fuzz target: its name in `fuzz/fuzz_targets/`, and the source it verifies with
/// (the keys of a `[[sources]]` entry besides `id` and `verify`).
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, Copy)]
pub struct FuzzSource {
    pub target: &'static str,
    pub source: &'static str,
}
