//! Standard Webhooks (and Svix, the same scheme under `svix-*` header names): HMAC-SHA256 over
//! `id.timestamp.body`, sent as a space-separated list of `v1,<base64>` entries.
//!
//! The secret is `whsec_` + base64 of the key bytes, and it is the **decoded** bytes that key
//! the MAC (unlike Stripe, whose `whsec_` string is used as-is). A `whpk_` secret is an Ed25519
//! public key, checked against `v1a,<base64 signature>` entries (asymmetric signing, as Svix's
//! server does it). The same code signs outbound deliveries ([`sign`]), so what we send is what
//! we would accept.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::{
    BuildError, Check, Field, HmacAlgorithm, Inbound, KeyBytes, MAX_SIGNATURES, Scheme,
    SchemeDefaults, SchemeInput, SignInput, Signed, Signer, VerifyError, check_tolerance, mac,
    mac_matches, parse_timestamp, single_header,
};

/// Decoded keys of one source, and its timestamp tolerance in seconds.
#[derive(Clone)]
pub struct Keys {
    /// HMAC keys (`whsec_`), for `v1`.
    pub keys: Vec<KeyBytes>,
    /// Ed25519 public keys (`whpk_`), for `v1a`.
    pub public_keys: Vec<KeyBytes>,
    pub tolerance: u64,
}

impl Keys {
    /// Adds a configured secret: `whpk_` is a public key, anything else a `whsec_` key.
    pub fn add(&mut self, secret: &str) -> Result<(), String> {
        if let Some(b64) = secret.strip_prefix("whpk_") {
            let pk =
                B64.decode(b64).ok().filter(|k| k.len() == 32).ok_or(
                    "a whpk_ key is whpk_ followed by base64 of a 32-byte Ed25519 public key",
                )?;
            self.public_keys.push(pk.into());
        } else if secret.starts_with("whsk_") {
            return Err("a receiving source takes the sender's whpk_ public key, never its whsk_ signing key".into());
        } else {
            self.keys.push(decode_secret(secret)?.into());
        }
        Ok(())
    }
}

/// A new random signing secret, `whsec_` and the base64 of 32 bytes: what a rotation, the
/// console's "sign" box and `hookgate listen` give an endpoint that names none.
pub fn generate_secret() -> String {
    format!("whsec_{}", B64.encode(rand::random::<[u8; 32]>()))
}

/// Decodes a `whsec_…` secret (the prefix is optional, as in the reference libraries).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = B64
        .decode(b64)
        .map_err(|_| "must be whsec_ followed by standard base64 of the key bytes".to_string())?;
    if key.is_empty() {
        return Err("the decoded key is empty".into());
    }
    if key.len() > 64 {
        return Err("the decoded key is longer than 64 bytes".into());
    }
    Ok(key)
}

/// The `v1,<base64>` signature of one message under one key.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let tag = mac(
        HmacAlgorithm::Sha256,
        key,
        &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", B64.encode(tag))
}

/// Reads `webhook-*` headers, or `svix-*` when those are absent; both sets present is refused.
fn header_set(headers: &HeaderMap) -> Result<(&str, &str, &str), VerifyError> {
    let webhook = (
        single_header(headers, "webhook-id")?,
        single_header(headers, "webhook-timestamp")?,
        single_header(headers, "webhook-signature")?,
    );
    let svix = (
        single_header(headers, "svix-id")?,
        single_header(headers, "svix-timestamp")?,
        single_header(headers, "svix-signature")?,
    );
    let (set, names) = if webhook.0.is_some() || webhook.1.is_some() || webhook.2.is_some() {
        (
            webhook,
            ["webhook-id", "webhook-timestamp", "webhook-signature"],
        )
    } else if svix.0.is_some() || svix.1.is_some() || svix.2.is_some() {
        (svix, ["svix-id", "svix-timestamp", "svix-signature"])
    } else {
        return Err(VerifyError::MissingSignature("webhook-signature".into()));
    };
    let id = set
        .0
        .ok_or_else(|| VerifyError::MissingSignature(names[0].into()))?;
    let ts = set
        .1
        .ok_or_else(|| VerifyError::MissingSignature(names[1].into()))?;
    let sig = set
        .2
        .ok_or_else(|| VerifyError::MissingSignature(names[2].into()))?;
    if id.is_empty() || sig.is_empty() {
        return Err(VerifyError::MalformedSignature(
            "empty id or signature header".into(),
        ));
    }
    Ok((id, ts, sig))
}

/// Verifies one request against every key; any (key, `v1` signature) pair that matches passes.
pub fn verify(
    keys: &Keys,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<(), VerifyError> {
    let (id, ts_text, sig_header) = header_set(headers)?;
    let ts = parse_timestamp(ts_text)?;
    check_tolerance(ts, now_secs, keys.tolerance)?;
    let mut v1 = Vec::new();
    let mut v1a = Vec::new();
    for token in sig_header
        .split(' ')
        .filter(|t| !t.is_empty())
        .take(MAX_SIGNATURES)
    {
        // Unknown versions (v2, …) and tokens without a comma are skipped, as the reference
        // libraries do; an undecodable signature is just not a match.
        match token.split_once(',') {
            Some(("v1", b64)) => v1.extend(B64.decode(b64).ok()),
            Some(("v1a", b64)) => v1a.extend(B64.decode(b64).ok()),
            _ => {}
        }
    }
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", body];
    let hmac_ok = keys.keys.iter().any(|key| {
        v1.iter()
            .any(|tag| mac_matches(HmacAlgorithm::Sha256, key, &parts, tag))
    });
    let ed25519_ok = || {
        let signed = parts.concat();
        keys.public_keys.iter().any(|pk| {
            let pk = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, pk);
            v1a.iter().any(|sig| pk.verify(&signed, sig).is_ok())
        })
    };
    if hmac_ok || (!v1a.is_empty() && ed25519_ok()) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

impl Check for Keys {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        verify(self, req.headers, req.body, req.now_secs)
    }
}

/// `verify = "standard-webhooks"`: each secret is a `whsec_` key or a `whpk_` public key.
pub struct StandardWebhooksScheme;

impl Scheme for StandardWebhooksScheme {
    fn name(&self) -> &'static str {
        "standard-webhooks"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        let mut keys = Keys {
            keys: Vec::new(),
            public_keys: Vec::new(),
            tolerance: input.tolerance,
        };
        for secret in &input.secrets {
            keys.add(secret)
                .map_err(|p| BuildError::new("secrets", p))?;
        }
        Ok(Arc::new(keys))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Header("webhook-id"), Field::Header("svix-id")],
            event_type: &[Field::Json("/type")],
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
            target: "verify_standard_webhooks",
            source: r#"secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="]"#,
        })
    }
}

/// `hookgate sign`: the three `webhook-*` headers, with a fresh `msg_` id unless one is given.
fn sign_headers(input: &SignInput<'_>) -> Result<Signed, String> {
    let key = decode_secret(input.secret)?;
    let id = input
        .id
        .map_or_else(|| format!("msg_{}", ulid::Ulid::generate()), str::to_string);
    let signature = sign(&key, &id, input.timestamp, input.body);
    Ok(Signed::default()
        .with("webhook-id", id)
        .with("webhook-timestamp", input.timestamp.to_string())
        .with("webhook-signature", signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vector SW-1 (published by every Standard Webhooks library and Svix's docs).
    const SW1_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW1_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW1_TS: i64 = 1_614_265_330;
    const SW1_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW1_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    // Vector SW-2 (standard-webhooks Rust library `test_sign`).
    const SW2_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn keys(secrets: &[&str]) -> Keys {
        let mut k = Keys {
            keys: Vec::new(),
            public_keys: Vec::new(),
            tolerance: 300,
        };
        for s in secrets {
            k.add(s).expect("valid secret");
        }
        k
    }

    // SW-4 (Svix server's asymmetric signing test; Ed25519 is deterministic).
    const SW4_PUBLIC: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
    const SW4_SIG: &str = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";

    #[test]
    fn verifies_sw4_ed25519() {
        let h = headers("webhook", SW1_ID, "1614265330", SW4_SIG);
        assert_eq!(verify(&keys(&[SW4_PUBLIC]), &h, SW1_BODY, SW1_TS), Ok(()));
        // An HMAC key alone cannot check v1a; a v1 signature needs an HMAC key.
        assert_eq!(
            verify(&keys(&[SW1_SECRET]), &h, SW1_BODY, SW1_TS),
            Err(VerifyError::BadSignature)
        );
        let h = headers("webhook", SW1_ID, "1614265330", SW1_SIG);
        assert_eq!(
            verify(&keys(&[SW4_PUBLIC]), &h, SW1_BODY, SW1_TS),
            Err(VerifyError::BadSignature)
        );
        // Both kinds in one header, and a source holding both kinds of key.
        let h = headers(
            "webhook",
            SW1_ID,
            "1614265330",
            &format!("{SW1_SIG} {SW4_SIG}"),
        );
        assert_eq!(verify(&keys(&[SW4_PUBLIC]), &h, SW1_BODY, SW1_TS), Ok(()));
        assert_eq!(
            verify(&keys(&[SW1_SECRET, SW4_PUBLIC]), &h, SW1_BODY, SW1_TS),
            Ok(())
        );
        // Tampered body, and a changed signature.
        let h = headers("webhook", SW1_ID, "1614265330", SW4_SIG);
        assert_eq!(
            verify(&keys(&[SW4_PUBLIC]), &h, br#"{"test": 2432232315}"#, SW1_TS),
            Err(VerifyError::BadSignature)
        );
        let changed = SW4_SIG.replace("hnO3", "hnO4");
        let h = headers("webhook", SW1_ID, "1614265330", &changed);
        assert_eq!(
            verify(&keys(&[SW4_PUBLIC]), &h, SW1_BODY, SW1_TS),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn key_kinds_are_checked() {
        let mut k = keys(&[]);
        assert!(k.add("whpk_AAAA").is_err(), "a public key is 32 bytes");
        assert!(
            k.add("whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbc=")
                .is_err(),
            "never a signing key"
        );
    }

    fn headers(prefix: &str, id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [("id", id), ("timestamp", ts), ("signature", sig)] {
            let name =
                http::HeaderName::from_bytes(format!("{prefix}-{name}").as_bytes()).expect("name");
            h.insert(name, value.parse().expect("value"));
        }
        h
    }

    #[test]
    fn signs_published_vectors() {
        let k = decode_secret(SW1_SECRET).expect("valid");
        assert_eq!(k.len(), 24);
        assert_eq!(sign(&k, SW1_ID, SW1_TS, SW1_BODY), SW1_SIG);
        let k2 = decode_secret(SW2_SECRET).expect("valid");
        assert_eq!(
            sign(
                &k2,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn verifies_sw1_under_both_header_names() {
        for prefix in ["webhook", "svix"] {
            let h = headers(prefix, SW1_ID, "1614265330", SW1_SIG);
            assert_eq!(verify(&keys(&[SW1_SECRET]), &h, SW1_BODY, SW1_TS), Ok(()));
        }
    }

    #[test]
    fn rotation_either_key_accepts_the_two_signature_header() {
        // SW-3: new key and old key both sign.
        let sig = "v1,78nXHjpFP0tVJQW5D0SBwmVyyW87BV/rL6MgfM/Bw44= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let h = headers("webhook", SW1_ID, "1614265330", sig);
        assert_eq!(verify(&keys(&[SW1_SECRET]), &h, SW1_BODY, SW1_TS), Ok(()));
        assert_eq!(verify(&keys(&[SW2_SECRET]), &h, SW1_BODY, SW1_TS), Ok(()));
        // A source holding both secrets accepts a request signed by only one of them.
        let h = headers("webhook", SW1_ID, "1614265330", SW1_SIG);
        assert_eq!(
            verify(&keys(&[SW2_SECRET, SW1_SECRET]), &h, SW1_BODY, SW1_TS),
            Ok(())
        );
    }

    #[test]
    fn refuses_the_library_negative_cases() {
        let k = keys(&[SW1_SECRET]);
        let check = |sig: &str, body: &[u8], now: i64| {
            verify(
                &k,
                &headers("webhook", SW1_ID, "1614265330", sig),
                body,
                now,
            )
        };
        assert_eq!(
            check(
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
                SW1_BODY,
                SW1_TS
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("v1,", SW1_BODY, SW1_TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("v1,g0hM9SsE+OTPJTGt", SW1_BODY, SW1_TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(SW1_SIG, br#"{"test": 2432232315}"#, SW1_TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(SW1_SIG, SW1_BODY, SW1_TS + 301),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert_eq!(
            check(SW1_SIG, SW1_BODY, SW1_TS - 301),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert_eq!(check(SW1_SIG, SW1_BODY, SW1_TS + 300), Ok(()));
        // Multi-signature header with unknown versions and a bad v1 still passes on the good one.
        let multi =
            format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5 {SW1_SIG} nocomma");
        assert_eq!(check(&multi, SW1_BODY, SW1_TS), Ok(()));
    }

    #[test]
    fn missing_and_malformed_headers() {
        let k = keys(&[SW1_SECRET]);
        assert_eq!(
            verify(&k, &HeaderMap::new(), SW1_BODY, SW1_TS),
            Err(VerifyError::MissingSignature("webhook-signature".into()))
        );
        let mut h = headers("webhook", SW1_ID, "1614265330", SW1_SIG);
        h.remove("webhook-timestamp");
        assert_eq!(
            verify(&k, &h, SW1_BODY, SW1_TS),
            Err(VerifyError::MissingSignature("webhook-timestamp".into()))
        );
        let h = headers("webhook", SW1_ID, "01614265330", SW1_SIG);
        assert!(matches!(
            verify(&k, &h, SW1_BODY, SW1_TS),
            Err(VerifyError::MalformedSignature(_))
        ));
    }

    #[test]
    fn secrets_are_checked() {
        assert!(decode_secret("whsec_!!!").is_err());
        assert!(decode_secret("whsec_").is_err());
        assert_eq!(
            decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").map(|k| k.len()),
            Ok(24)
        );
    }
}
