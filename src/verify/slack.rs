//! Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:" ts ":" body>` with the timestamp in
//! `X-Slack-Request-Timestamp`, keyed by the signing secret **as a string** (it looks like hex
//! but is not decoded). The timestamp must be within the tolerance both ways, as in Slack's
//! Python SDK.

use super::KeyBytes;
use http::HeaderName;

use super::hmac::{Generic, Part};
use crate::config::{HmacAlgorithm, HmacEncoding};

pub fn verifier(keys: Vec<KeyBytes>, tolerance: u64) -> Generic {
    Generic {
        headers: vec![HeaderName::from_static("x-slack-signature")],
        algorithm: HmacAlgorithm::Sha256,
        encoding: HmacEncoding::Hex,
        prefix: "v0=".into(),
        signed: vec![
            Part::Literal(b"v0:".to_vec()),
            Part::Timestamp,
            Part::Literal(b":".to_vec()),
            Part::Body,
        ],
        timestamp_header: Some(HeaderName::from_static("x-slack-request-timestamp")),
        tolerance,
        keys,
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
}
