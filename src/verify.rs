//! Inbound signature verification. Each scheme lives in its own file: a pure check of
//! (headers, raw body, keys, now), the handshakes its provider sends, and its registration (a
//! [`Scheme`]: names, builder, defaults, how `hookgate sign` signs for it, its fuzz source).
//! The registry below lists them; config, ingress, the CLI and the fuzzers reach every scheme
//! through it. This file holds what they all share: the compiled [`Verifier`], [`Inbound`],
//! [`VerifyError`] with the codes ingress answers with, and [`build`]. Beside it: `scheme.rs`
//! (the traits and their inputs), `registry.rs` (what [`SchemeKind`] answers from the list),
//! `vocabulary.rs` (HMAC algorithms and encodings, field selectors), `parse.rs` (strict header,
//! timestamp and `key=value` parsing), `crypto.rs` (the MAC primitives), `handshake.rs`.
//!
//! **Verification sees the raw body bytes, never parsed JSON.** **MACs and secrets are compared
//! in constant time** (`Mac::verify_slice`, [`constant_time_eq`]). The work per request is
//! capped: at most [`MAX_SECRETS`] keys times [`MAX_SIGNATURES`] presented signatures.
//! **Verify depends on nothing of config**: config fills a [`SchemeInput`] with plain values and
//! calls [`build`].
//!
//! # Adding a scheme
//!
//! 1. Write `src/verify/<name>.rs`: the check (a struct holding the decoded keys, implementing
//!    [`Check`]: `check`, and any handshake or event type of the provider), and a unit struct
//!    implementing [`Scheme`]: `name` (and `aliases`), `build` (validating the secrets, with
//!    errors naming the source key), `defaults`, `options` for any optional source key it
//!    reads, `signer` if `hookgate sign` can sign for it, `fuzz` for its fuzz source. Test it
//!    against the provider's published vectors.
//! 2. Declare the module and add one line to the `schemes!` list below.
//! 3. For fuzzing, add `fuzz/fuzz_targets/verify_<name>.rs` (a copy of another), its `[[bin]]`
//!    in `fuzz/Cargo.toml` and seed inputs in `fuzz/corpus/verify_<name>/`.
//!
//! Config's `verify = "..."`, the CLI's `sign --scheme`, the fuzzing entry points and the
//! per-scheme defaults, and the admin API's schema (`api/entries.rs`), all follow from the
//! registration; regenerate the committed `openapi.json` (`HOOKGATE_BLESS=1 cargo test --lib
//! the_committed_document`), which a test compares with the live document.

pub mod basic;
mod crypto;
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
mod parse;
mod registry;
mod scheme;
pub mod shopify;
pub mod slack;
pub mod standard_webhooks;
pub mod stripe;
pub mod token;
pub mod twilio;
pub mod twitch;
mod vocabulary;
pub mod x;
pub mod zoom;

use std::sync::Arc;

use http::HeaderMap;

pub use crypto::{constant_time_eq, mac, mac_matches};
pub use parse::{
    TimestampedHeader, check_tolerance, key_values, parse_timestamp, required_header,
    single_header, verify_timestamped,
};
#[cfg(feature = "test-support")]
pub use scheme::FuzzSource;
pub use scheme::{
    BuildError, Check, HmacOptions, Scheme, SchemeDefaults, SchemeInput, SignInput, Signed, Signer,
    SourceOption,
};
pub use vocabulary::{Field, FieldRef, HmacAlgorithm, HmacEncoding};

// The registry: every scheme, once. The order is the order of `SchemeKind::ALL`, of the names
// an unknown `verify` lists, and of `hookgate sign --scheme`'s values.
registry::schemes! {
    StandardWebhooks => standard_webhooks::StandardWebhooksScheme,
    Stripe => stripe::StripeScheme,
    Github => github::GithubScheme,
    Shopify => shopify::ShopifyScheme,
    Slack => slack::SlackScheme,
    Twilio => twilio::TwilioScheme,
    Paddle => paddle::PaddleScheme,
    Linear => linear::LinearScheme,
    Zoom => zoom::ZoomScheme,
    Meta => meta::MetaScheme,
    X => x::XScheme,
    Dropbox => dropbox::DropboxScheme,
    Twitch => twitch::TwitchScheme,
    MicrosoftGraph => msgraph::MicrosoftGraphScheme,
    Okta => okta::OktaScheme,
    Discord => discord::DiscordScheme,
    Hmac => hmac::HmacScheme,
    Basic => basic::BasicScheme,
    Token => token::TokenScheme,
    None => none::NoneScheme,
}

/// Key material held by a verifier: wiped from memory when the verifier is dropped (a config
/// reload or an API change replaces verifiers).
pub type KeyBytes = zeroize::Zeroizing<Vec<u8>>;

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

/// A source's verification, with its secrets decoded once at config time. Cloning shares the
/// keys, which are wiped when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    kind: SchemeKind,
    check: Arc<dyn Check>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secret: show only the scheme.
        write!(f, "Verifier::{:?}", self.kind)
    }
}

impl Verifier {
    /// The scheme it checks.
    pub fn kind(&self) -> SchemeKind {
        self.kind
    }

    /// Checks one request.
    pub fn verify(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.check.check(req)
    }
}

/// Compiles a source's verifier; an error names the field (relative to the source) and problem.
pub fn build(kind: SchemeKind, input: &SchemeInput<'_>) -> Result<Verifier, BuildError> {
    let scheme = kind.scheme();
    if scheme.needs_secrets() && (input.secrets.is_empty() || input.secrets.contains(&"")) {
        return Err(BuildError::new(
            "secrets",
            format!(
                "verify = {:?} needs at least one non-empty secret",
                kind.name()
            ),
        ));
    }
    Ok(Verifier {
        kind,
        check: scheme.build(input)?,
    })
}

/// Where a scheme finds its provider's delivery id and event type by default.
pub fn defaults(kind: SchemeKind) -> SchemeDefaults {
    kind.defaults()
}
