//! Discord (interactions and Webhook Events): an Ed25519 signature, hex in
//! `X-Signature-Ed25519`, over `X-Signature-Timestamp ‖ raw body`, under the application's
//! public key (the source's secret, 64 hex characters). The timestamp (Unix seconds) must be
//! within `tolerance`. **A bad signature is a 401**: Discord sends invalid signatures on
//! purpose and removes URLs that accept them.
//!
//! Handshakes, after the signature: an interaction PING (`{"type": 1}` without an `event`)
//! is answered `{"type": 1}`; a Webhook Events PING (`"type": 0`) gets 204. A Webhook Event
//! (`"type": 1` with an `event`) and any other interaction are stored and delivered; such a
//! source sets `response` to the answer Discord wants (204, or a deferred `{"type": 5}`).

use std::sync::Arc;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::handshake::{HandshakeError, Reply};
use super::{
    BuildError, Check, Field, Inbound, Scheme, SchemeDefaults, SchemeInput, Signed, Signer,
    VerifyError, check_tolerance, parse_timestamp, required_header,
};

pub const SIGNATURE: &str = "x-signature-ed25519";
pub const TIMESTAMP: &str = "x-signature-timestamp";

#[derive(Clone)]
pub struct Discord {
    pub public_keys: Vec<[u8; 32]>,
    pub tolerance: u64,
}

/// An application public key from its hex form.
pub fn decode_public_key(hex_key: &str) -> Result<[u8; 32], String> {
    hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            "each secret of verify = \"discord\" is the application's public key: 64 hex characters"
                .to_string()
        })
}

impl Discord {
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), VerifyError> {
        let sig = required_header(headers, SIGNATURE)?;
        let ts = required_header(headers, TIMESTAMP)?;
        let sig = hex::decode(sig)
            .ok()
            .filter(|s| s.len() == 64)
            .ok_or_else(|| {
                VerifyError::MalformedSignature(format!("{SIGNATURE} is not 64 hex bytes"))
            })?;
        check_tolerance(parse_timestamp(ts)?, now_secs, self.tolerance)?;
        let mut signed = Vec::with_capacity(ts.len() + body.len());
        signed.extend_from_slice(ts.as_bytes());
        signed.extend_from_slice(body);
        let ok = self.public_keys.iter().any(|k| {
            UnparsedPublicKey::new(&ED25519, k)
                .verify(&signed, &sig)
                .is_ok()
        });
        if ok {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

/// Signs as Discord would, with a 32-byte private key seed in hex; returns the signature's hex
/// and the public key's hex (what the source is configured with).
pub fn sign(seed_hex: &str, timestamp: i64, body: &[u8]) -> Result<(String, String), String> {
    let seed = hex::decode(seed_hex.trim())
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or("the Discord signing key is a 32-byte Ed25519 seed in hex (64 characters)")?;
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|e| e.to_string())?;
    let mut signed = timestamp.to_string().into_bytes();
    signed.extend_from_slice(body);
    Ok((
        hex::encode(pair.sign(&signed).as_ref()),
        hex::encode(pair.public_key().as_ref()),
    ))
}

/// The PINGs, answered by the gateway.
pub fn ping(body: &[u8]) -> Option<Reply> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match v.get("type")?.as_u64()? {
        0 => Some(Reply::empty("webhook_ping", 204)),
        1 if v.get("event").is_none() => Some(Reply::json(
            "interaction_ping",
            &serde_json::json!({ "type": 1 }),
        )),
        _ => None,
    }
}

impl Check for Discord {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.headers, req.body, req.now_secs)
    }

    fn answer_after_verify(&self, req: &Inbound<'_>) -> Option<Result<Reply, HandshakeError>> {
        ping(req.body).map(Ok)
    }
}

/// `verify = "discord"`: each secret is an application public key.
pub struct DiscordScheme;

impl Scheme for DiscordScheme {
    fn name(&self) -> &'static str {
        "discord"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        let public_keys = input
            .secrets
            .iter()
            .map(|k| decode_public_key(k))
            .collect::<Result<_, _>>()
            .map_err(|p| BuildError::new("secrets", p))?;
        Ok(Arc::new(Discord {
            public_keys,
            tolerance: input.tolerance,
        }))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Json("/id")],
            event_type: &[Field::Json("/event/type"), Field::Json("/type")],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: Some(
                "--secret is the private key: a 32-byte Ed25519 seed in hex (its public key goes to stderr, for the source's secrets)",
            ),
            sign: |i| {
                let (sig, public) = sign(i.secret, i.timestamp, i.body)?;
                Ok(Signed {
                    note: Some(format!("public key (the source's secret): {public}")),
                    ..Signed::default()
                }
                .with(SIGNATURE, sig)
                .with(TIMESTAMP, i.timestamp.to_string()))
            },
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_discord",
            source: r#"secrets = ["d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    // RFC 8032, test 1.
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const SIG: &str = "1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f";
    const TS: i64 = 1_700_000_000;

    fn discord() -> Discord {
        Discord {
            public_keys: vec![decode_public_key(PUBLIC).expect("key")],
            tolerance: 300,
        }
    }

    fn headers(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE, sig.parse().expect("value"));
        h.insert(TIMESTAMP, "1700000000".parse().expect("value"));
        h
    }

    #[test]
    fn vector_signs_and_verifies() {
        assert_eq!(
            sign(SEED, TS, br#"{"type":1}"#),
            Ok((SIG.to_string(), PUBLIC.to_string()))
        );
        assert_eq!(
            discord().verify(&headers(SIG), br#"{"type":1}"#, TS),
            Ok(())
        );
    }

    #[test]
    fn bad_signatures_are_refused() {
        let d = discord();
        assert_eq!(
            d.verify(&headers(SIG), br#"{"type":2}"#, TS),
            Err(VerifyError::BadSignature)
        );
        let mut flipped = SIG.to_string();
        flipped.replace_range(0..2, "17");
        assert_eq!(
            d.verify(&headers(&flipped), br#"{"type":1}"#, TS),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            d.verify(&headers(&SIG[2..]), br#"{"type":1}"#, TS),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert_eq!(
            d.verify(&headers(SIG), br#"{"type":1}"#, TS + 301),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert!(decode_public_key("abcd").is_err());
        assert!(sign("abcd", TS, b"").is_err());
    }

    #[test]
    fn pings() {
        assert_eq!(
            ping(br#"{"type":1,"id":"1","application_id":"2","token":"t","version":1}"#),
            Some(Reply::json(
                "interaction_ping",
                &serde_json::json!({"type": 1})
            ))
        );
        assert_eq!(
            ping(br#"{"version":1,"application_id":"2","type":0}"#),
            Some(Reply::empty("webhook_ping", 204))
        );
        // A Webhook Event and an application command are events.
        assert_eq!(
            ping(br#"{"version":1,"application_id":"2","type":1,"event":{"type":"APPLICATION_AUTHORIZED"}}"#),
            None
        );
        assert_eq!(ping(br#"{"type":2,"data":{}}"#), None);
    }
}
