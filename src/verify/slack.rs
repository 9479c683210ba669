//! Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:" ts ":" body>` with the timestamp in
//! `X-Slack-Request-Timestamp`, keyed by the signing secret **as a string** (it looks like hex
//! but is not decoded). The timestamp must be within the tolerance both ways, as in Slack's
//! Python SDK.
//!
//! Handshakes: an Events API Request URL is checked with a signed `url_verification` event,
//! answered (after the signature) with its `challenge`; a slash-command URL is probed with an
//! `ssl_check=1` form post, answered with an empty 200 before the signature is checked, as
//! Slack's Bolt frameworks do (the answer echoes nothing).

use std::sync::Arc;

use http::HeaderMap;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::handshake::{HandshakeError, Reply, json_str};
use super::hmac::Generic;
use super::{
    BuildError, Check, Field, Inbound, KeyBytes, Scheme, SchemeDefaults, SchemeInput, Signed,
    Signer, VerifyError,
};

pub fn verifier(keys: Vec<KeyBytes>, tolerance: u64) -> Generic {
    Generic::v0(
        "x-slack-signature",
        "x-slack-request-timestamp",
        keys,
        tolerance,
    )
}

/// Slack's `url_verification`: `{"type": "url_verification", "challenge": "..."}` answered
/// with `{"challenge": "..."}`, one of the three forms Slack accepts. One without a challenge
/// string is refused, not stored as an event.
pub fn url_verification(body: &[u8]) -> Option<Result<Reply, HandshakeError>> {
    if json_str(body, "/type")? != "url_verification" {
        return None;
    }
    Some(
        json_str(body, "/challenge")
            .map(|c| Reply::json("url_verification", &serde_json::json!({ "challenge": c })))
            .ok_or_else(|| {
                HandshakeError::BadRequest("url_verification without a challenge string".into())
            }),
    )
}

/// Slack's `ssl_check=1` form post to a slash-command URL: an empty 200.
pub fn ssl_check(headers: &HeaderMap, body: &[u8]) -> Option<Reply> {
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let checked =
        is_form && url::form_urlencoded::parse(body).any(|(k, v)| k == "ssl_check" && v == "1");
    checked.then(|| Reply::empty("ssl_check", 200))
}

/// A Slack source: the `v0` signature, and Slack's two handshakes.
#[derive(Clone)]
pub struct Slack(pub Generic);

impl Check for Slack {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.0.verify(req.headers, req.body, req.now_secs)
    }

    fn answer_before_verify(&self, req: &Inbound<'_>) -> Option<Reply> {
        ssl_check(req.headers, req.body)
    }

    fn answer_after_verify(&self, req: &Inbound<'_>) -> Option<Result<Reply, HandshakeError>> {
        url_verification(req.body)
    }
}

/// `verify = "slack"`.
pub struct SlackScheme;

impl Scheme for SlackScheme {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Slack(verifier(input.keys(), input.tolerance))))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Json("/event_id")],
            event_type: &[Field::Json("/event/type"), Field::Json("/type")],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: |i| {
                let sig = verifier(vec![], 0).sign(i.secret.as_bytes(), i.timestamp, i.body);
                Ok(Signed::default()
                    .with("x-slack-request-timestamp", i.timestamp.to_string())
                    .with("x-slack-signature", sig))
            },
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_slack",
            source: r#"secrets = ["8f742231b10e8888abcd99yyyzzz85a5"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyError;
    use http::HeaderMap;

    // SL-1, published in Slack's docs and python-slack-sdk's tests.
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const TS: i64 = 1_531_420_618;

    fn h() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-slack-signature", SIG.parse().expect("value"));
        h.insert(
            "x-slack-request-timestamp",
            "1531420618".parse().expect("value"),
        );
        h
    }

    #[test]
    fn sl1_published() {
        let v = verifier(vec![SECRET.to_vec().into()], 300);
        assert_eq!(BODY.len(), 362);
        assert_eq!(v.sign(SECRET, TS, BODY), SIG);
        assert_eq!(v.verify(&h(), BODY, TS), Ok(()));
    }

    #[test]
    fn sl1_negative_cases() {
        let v = verifier(vec![SECRET.to_vec().into()], 300);
        let mut tampered = BODY.to_vec();
        tampered.extend_from_slice(b"------");
        assert_eq!(
            v.verify(&h(), &tampered, TS),
            Err(VerifyError::BadSignature)
        );
        // A real clock: the published timestamp is long stale.
        assert_eq!(
            v.verify(&h(), BODY, 1_800_000_000),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert_eq!(
            v.verify(&h(), BODY, TS - 301),
            Err(VerifyError::StaleTimestamp(300))
        );
        let mut no_ts = h();
        no_ts.remove("x-slack-request-timestamp");
        assert!(matches!(
            v.verify(&no_ts, BODY, TS),
            Err(VerifyError::MissingSignature(_))
        ));
        // The secret is a string, not hex to decode.
        let decoded = verifier(
            vec![hex::decode("8f742231b10e8888").expect("hex").into()],
            300,
        );
        assert_eq!(
            decoded.verify(&h(), BODY, TS),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn url_verification_echoes_the_challenge_as_json() {
        let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let r = url_verification(body)
            .expect("a handshake")
            .expect("answered");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, Some("application/json"));
        assert_eq!(
            r.body,
            br#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#
        );
        assert_eq!(url_verification(br#"{"type":"event_callback"}"#), None);
        assert_eq!(url_verification(b"type=url_verification"), None);
        for bad in [
            &br#"{"type":"url_verification"}"#[..],
            br#"{"type":"url_verification","challenge":12345}"#,
        ] {
            assert!(matches!(
                url_verification(bad),
                Some(Err(HandshakeError::BadRequest(_)))
            ));
        }
    }

    #[test]
    fn ssl_check_only_for_the_form_post() {
        let mut form = HeaderMap::new();
        form.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().expect("value"),
        );
        let r = ssl_check(&form, b"ssl_check=1&token=abc").expect("a handshake");
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert_eq!(ssl_check(&form, b"ssl_check=0&token=abc"), None);
        assert_eq!(ssl_check(&form, BODY), None);
        assert_eq!(ssl_check(&HeaderMap::new(), b"ssl_check=1"), None);
    }
}
