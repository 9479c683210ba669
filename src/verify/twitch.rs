//! Twitch EventSub: `Twitch-Eventsub-Message-Signature: sha256=<hex HMAC-SHA256 of message id
//! ‖ timestamp ‖ raw body>`, with the header strings as sent, under the subscription's secret
//! (10 to 100 ASCII characters). The timestamp (`Twitch-Eventsub-Message-Timestamp`, RFC 3339
//! with nanoseconds) must be within ten minutes, as Twitch asks; resends keep their message id,
//! which is the default dedup key.
//!
//! Handshake: a signed `webhook_callback_verification` message is answered 200 `text/plain`
//! with its `challenge`. A `revocation` is an event like a notification, of type `revocation`,
//! because subscribers must learn that Twitch stopped sending.

use std::sync::Arc;

use http::HeaderMap;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::handshake::{HandshakeError, Reply, json_str};
use super::{
    BuildError, Check, Field, HmacAlgorithm, Inbound, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, SignInput, Signed, Signer, VerifyError, mac, mac_matches, required_header,
};

/// Twitch's freshness rule: messages older than ten minutes are refused.
pub const FRESHNESS_SECS: u64 = 600;

pub const MESSAGE_ID: &str = "twitch-eventsub-message-id";
pub const MESSAGE_TIMESTAMP: &str = "twitch-eventsub-message-timestamp";
pub const MESSAGE_SIGNATURE: &str = "twitch-eventsub-message-signature";
pub const MESSAGE_TYPE: &str = "twitch-eventsub-message-type";

#[derive(Clone)]
pub struct Twitch {
    pub keys: Vec<KeyBytes>,
}

/// Twitch's rule for subscription secrets, checked when the source is made.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if (10..=100).contains(&secret.len()) && secret.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("each secret of verify = \"twitch\" is 10 to 100 ASCII characters".into())
    }
}

/// The RFC 3339 timestamp as Unix seconds.
fn parse_rfc3339(ts: &str) -> Result<i64, VerifyError> {
    let t = humantime::parse_rfc3339(ts).map_err(|_| {
        VerifyError::MalformedSignature(format!("{MESSAGE_TIMESTAMP} {ts:?} is not RFC 3339"))
    })?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| {
            VerifyError::MalformedSignature(format!("{MESSAGE_TIMESTAMP} is before 1970"))
        })?
        .as_secs();
    i64::try_from(secs).map_err(|_| {
        VerifyError::MalformedSignature(format!("{MESSAGE_TIMESTAMP} is too far ahead"))
    })
}

impl Twitch {
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), VerifyError> {
        let id = required_header(headers, MESSAGE_ID)?;
        let ts = required_header(headers, MESSAGE_TIMESTAMP)?;
        let sig = required_header(headers, MESSAGE_SIGNATURE)?;
        let tag = sig
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| {
                VerifyError::MalformedSignature(format!("{MESSAGE_SIGNATURE} is not sha256=<hex>"))
            })?;
        super::check_tolerance(parse_rfc3339(ts)?, now_secs, FRESHNESS_SECS)?;
        let parts: [&[u8]; 3] = [id.as_bytes(), ts.as_bytes(), body];
        if self
            .keys
            .iter()
            .any(|k| mac_matches(HmacAlgorithm::Sha256, k, &parts, &tag))
        {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

/// The `Twitch-Eventsub-Message-Signature` Twitch would send.
pub fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let tag = mac(
        HmacAlgorithm::Sha256,
        key,
        &[id.as_bytes(), timestamp.as_bytes(), body],
    );
    format!("sha256={}", hex::encode(tag))
}

fn message_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(MESSAGE_TYPE)?.to_str().ok()
}

/// The answer to `webhook_callback_verification`: the challenge, as plain text.
pub fn callback_verification(
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Result<Reply, HandshakeError>> {
    if message_type(headers)? != "webhook_callback_verification" {
        return None;
    }
    Some(
        json_str(body, "/challenge")
            .map(|c| Reply::text("callback_verification", c))
            .ok_or_else(|| {
                HandshakeError::BadRequest(
                    "webhook_callback_verification without a challenge string".into(),
                )
            }),
    )
}

/// A revocation is an event of type `revocation`.
pub fn event_type(headers: &HeaderMap) -> Option<String> {
    (message_type(headers)? == "revocation").then(|| "revocation".to_string())
}

impl Check for Twitch {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.headers, req.body, req.now_secs)
    }

    fn answer_after_verify(&self, req: &Inbound<'_>) -> Option<Result<Reply, HandshakeError>> {
        callback_verification(req.headers, req.body)
    }

    fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        event_type(req.headers)
    }
}

/// `verify = "twitch"`: each secret follows Twitch's rule ([`check_secret`]).
pub struct TwitchScheme;

impl Scheme for TwitchScheme {
    fn name(&self) -> &'static str {
        "twitch"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        for secret in &input.secrets {
            check_secret(secret).map_err(|p| BuildError::new("secrets", p))?;
        }
        Ok(Arc::new(Twitch { keys: input.keys() }))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Header(MESSAGE_ID)],
            event_type: &[Field::Header("twitch-eventsub-subscription-type")],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: sign_headers,
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_twitch",
            source: r#"secrets = ["s3cre7s3cre7"]"#,
        })
    }
}

/// `hookgate sign`: the four `Twitch-Eventsub-Message-*` headers, with a fresh message id unless
/// one is given, the timestamp in RFC 3339 and the `--message-type`.
fn sign_headers(input: &SignInput<'_>) -> Result<Signed, String> {
    let id = input.id.map_or_else(
        || ulid::Ulid::generate().to_string().to_lowercase(),
        str::to_string,
    );
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(input.timestamp.max(0).unsigned_abs());
    let stamp = humantime::format_rfc3339_nanos(at).to_string();
    let sig = sign(input.secret.as_bytes(), &id, &stamp, input.body);
    Ok(Signed::default()
        .with(MESSAGE_ID, id)
        .with(MESSAGE_TIMESTAMP, stamp)
        .with(MESSAGE_TYPE, input.message_type)
        .with(MESSAGE_SIGNATURE, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cre7s3cre7";
    const ID: &str = "e76c6bd4-55c9-4987-8304-da1588d8988b";
    const TS: &str = "2019-11-16T10:11:12.634234626Z";
    const BODY: &[u8] = br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo"}"#;
    const SIG: &str = "sha256=b45b1d55bc09382e1b8a3cf939e5747b61348d98baecbd4297356650ce36f69c";
    const NOW: i64 = 1_573_899_072; // 2019-11-16T10:11:12Z

    fn headers(kind: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(MESSAGE_ID, ID.parse().expect("value"));
        h.insert(MESSAGE_TIMESTAMP, TS.parse().expect("value"));
        h.insert(MESSAGE_SIGNATURE, sig.parse().expect("value"));
        h.insert(MESSAGE_TYPE, kind.parse().expect("value"));
        h
    }

    #[test]
    fn vector_and_verification_answer() {
        let t = Twitch {
            keys: vec![b"another secret".to_vec().into(), SECRET.to_vec().into()],
        };
        assert_eq!(sign(SECRET, ID, TS, BODY), SIG);
        let h = headers("webhook_callback_verification", SIG);
        assert_eq!(t.verify(&h, BODY, NOW), Ok(()));
        assert_eq!(
            callback_verification(&h, BODY),
            Some(Ok(Reply::text(
                "callback_verification",
                "pogchamp-kappa-360noscope-vohiyo"
            )))
        );
        assert!(matches!(
            callback_verification(&h, br#"{"subscription":{}}"#),
            Some(Err(HandshakeError::BadRequest(_)))
        ));
        assert_eq!(
            callback_verification(&headers("notification", SIG), BODY),
            None
        );
    }

    #[test]
    fn negative_cases() {
        let t = Twitch {
            keys: vec![SECRET.to_vec().into()],
        };
        let h = headers("notification", SIG);
        assert_eq!(t.verify(&h, b"{}", NOW), Err(VerifyError::BadSignature));
        // Ten minutes is the limit.
        assert_eq!(t.verify(&h, BODY, NOW + 600), Ok(()));
        assert_eq!(
            t.verify(&h, BODY, NOW + 601),
            Err(VerifyError::StaleTimestamp(600))
        );
        let mut bad_ts = h.clone();
        bad_ts.insert(MESSAGE_TIMESTAMP, "1573899072".parse().expect("value"));
        assert!(matches!(
            t.verify(&bad_ts, BODY, NOW),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            t.verify(&headers("notification", &SIG[7..]), BODY, NOW),
            Err(VerifyError::MalformedSignature(_))
        ));
        let mut no_id = h;
        no_id.remove(MESSAGE_ID);
        assert!(matches!(
            t.verify(&no_id, BODY, NOW),
            Err(VerifyError::MissingSignature(_))
        ));
    }

    #[test]
    fn revocations_are_typed_and_secrets_checked() {
        assert_eq!(
            event_type(&headers("revocation", SIG)).as_deref(),
            Some("revocation")
        );
        assert_eq!(event_type(&headers("notification", SIG)), None);
        assert!(check_secret("s3cre7s3cre7").is_ok());
        assert!(check_secret("short").is_err());
        assert!(check_secret(&"x".repeat(101)).is_err());
        assert!(check_secret("has a space").is_err());
    }
}
