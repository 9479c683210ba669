//! Generic HMAC: a provider that puts an HMAC of the raw body (optionally with a signed
//! timestamp) in a header. Configured by `hmac = { header, algorithm, encoding, prefix,
//! timestamp_header, signed }`; GitHub, Shopify, Slack and Linear are presets of it.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::{HeaderMap, HeaderName};

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::{
    BuildError, Check, HmacAlgorithm, HmacEncoding, Inbound, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, SignInput, Signed, Signer, SourceOption, VerifyError, check_tolerance, mac,
    mac_matches, parse_timestamp, single_header,
};

/// One piece of the signed string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(Vec<u8>),
    Timestamp,
    Body,
}

/// Parses a template such as `{timestamp}.{body}`: `{body}` exactly once, `{timestamp}` at
/// most once, anything else literal.
pub fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    let mut literal = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{body}") {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
            parts.push(Part::Body);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("{timestamp}") {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
            parts.push(Part::Timestamp);
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            let mut buf = [0u8; 4];
            literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            rest = &rest[c.len_utf8()..];
        }
    }
    parts.push(Part::Literal(literal));
    parts.retain(|p| !matches!(p, Part::Literal(l) if l.is_empty()));
    let count = |want: &Part| parts.iter().filter(|p| *p == want).count();
    if count(&Part::Body) != 1 {
        return Err(format!("{template:?} must contain {{body}} exactly once"));
    }
    if count(&Part::Timestamp) > 1 {
        return Err(format!(
            "{template:?} may contain {{timestamp}} at most once"
        ));
    }
    Ok(parts)
}

/// A compiled HMAC scheme.
#[derive(Clone)]
pub struct Generic {
    /// Signature headers, tried in order: the first present one is used.
    pub headers: Vec<HeaderName>,
    pub algorithm: HmacAlgorithm,
    pub encoding: HmacEncoding,
    pub prefix: String,
    /// What is signed; `[Body]` for most providers.
    pub signed: Vec<Part>,
    /// Where the signed timestamp is, when the template has one.
    pub timestamp_header: Option<HeaderName>,
    pub tolerance: u64,
    pub keys: Vec<KeyBytes>,
}

impl Generic {
    /// A scheme that signs the body alone.
    pub fn body_only(
        header: &'static str,
        algorithm: HmacAlgorithm,
        encoding: HmacEncoding,
        prefix: &str,
        keys: Vec<KeyBytes>,
    ) -> Self {
        Generic {
            headers: vec![HeaderName::from_static(header)],
            algorithm,
            encoding,
            prefix: prefix.into(),
            signed: vec![Part::Body],
            timestamp_header: None,
            tolerance: 0,
            keys,
        }
    }

    /// Slack's layout, which Zoom copied: `v0=<hex HMAC-SHA256 of "v0:" ts ":" body>` in
    /// `signature`, the Unix timestamp in `timestamp`, within `tolerance`.
    pub fn v0(
        signature: &'static str,
        timestamp: &'static str,
        keys: Vec<KeyBytes>,
        tolerance: u64,
    ) -> Self {
        Generic {
            headers: vec![HeaderName::from_static(signature)],
            algorithm: HmacAlgorithm::Sha256,
            encoding: HmacEncoding::Hex,
            prefix: "v0=".into(),
            signed: vec![
                Part::Literal(b"v0:".to_vec()),
                Part::Timestamp,
                Part::Literal(b":".to_vec()),
                Part::Body,
            ],
            timestamp_header: Some(HeaderName::from_static(timestamp)),
            tolerance,
            keys,
        }
    }

    fn signed_parts<'a>(&'a self, ts: &'a [u8], body: &'a [u8]) -> Vec<&'a [u8]> {
        self.signed
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.as_slice(),
                Part::Timestamp => ts,
                Part::Body => body,
            })
            .collect()
    }

    /// Verifies that the signature header carries the MAC under one of the keys.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), VerifyError> {
        self.matching_key(headers, body, now_secs).map(|_| ())
    }

    /// Like [`Generic::verify`], and says which key matched (Zoom answers its handshake with
    /// the key that signed it).
    pub fn matching_key(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<&KeyBytes, VerifyError> {
        let mut found = None;
        for name in &self.headers {
            if let Some(v) = single_header(headers, name.as_str())? {
                found = Some(v);
                break;
            }
        }
        let value = found.ok_or_else(|| {
            VerifyError::MissingSignature(
                self.headers
                    .first()
                    .map(HeaderName::to_string)
                    .unwrap_or_default(),
            )
        })?;
        let ts = match &self.timestamp_header {
            None => "",
            Some(h) => {
                let ts = single_header(headers, h.as_str())?
                    .ok_or_else(|| VerifyError::MissingSignature(h.to_string()))?;
                check_tolerance(parse_timestamp(ts)?, now_secs, self.tolerance)?;
                ts
            }
        };
        let encoded = value
            .trim()
            .strip_prefix(self.prefix.as_str())
            .ok_or_else(|| {
                VerifyError::MalformedSignature(format!(
                    "signature does not start with {:?}",
                    self.prefix
                ))
            })?;
        let tag = decode(self.encoding, encoded).ok_or_else(|| {
            VerifyError::MalformedSignature("signature is not valid for its encoding".into())
        })?;
        let parts = self.signed_parts(ts.as_bytes(), body);
        self.keys
            .iter()
            .find(|k| mac_matches(self.algorithm, k, &parts, &tag))
            .ok_or(VerifyError::BadSignature)
    }

    /// The header value a sender would put on `body` (for `hookgate sign` and tests).
    pub fn sign(&self, key: &[u8], timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let tag = mac(self.algorithm, key, &self.signed_parts(ts.as_bytes(), body));
        format!("{}{}", self.prefix, encode(self.encoding, &tag))
    }
}

pub fn encode(encoding: HmacEncoding, tag: &[u8]) -> String {
    match encoding {
        HmacEncoding::Hex => hex::encode(tag),
        HmacEncoding::Base64 => B64.encode(tag),
    }
}

pub fn decode(encoding: HmacEncoding, s: &str) -> Option<Vec<u8>> {
    match encoding {
        // Hex is case-insensitive on the wire.
        HmacEncoding::Hex => hex::decode(s).ok(),
        HmacEncoding::Base64 => B64.decode(s).ok(),
    }
}

impl Check for Generic {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.headers, req.body, req.now_secs)
    }
}

/// `verify = "hmac"`, configured by its `hmac` table.
pub struct HmacScheme;

impl Scheme for HmacScheme {
    fn name(&self) -> &'static str {
        "hmac"
    }

    fn options(&self) -> &'static [SourceOption] {
        &[SourceOption::Hmac]
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(configured(input)?))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults::GENERIC
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
            target: "verify_hmac",
            source: "secrets = [\"secret\"]\nhmac = { header = \"x-signature\", prefix = \"sha256=\", timestamp_header = \"x-timestamp\", signed = \"{timestamp}.{body}\" }",
        })
    }
}

/// The check a source's `hmac` table describes; an error names the key at fault.
fn configured(input: &SchemeInput<'_>) -> Result<Generic, BuildError> {
    let cfg = input.hmac.ok_or_else(|| {
        BuildError::new(
            "hmac",
            "is required with verify = \"hmac\" (e.g. hmac = { header = \"x-signature\" })",
        )
    })?;
    let header = HeaderName::from_bytes(cfg.header.as_bytes()).map_err(|_| {
        BuildError::new(
            "hmac.header",
            format!("{:?} is not a header name", cfg.header),
        )
    })?;
    let timestamp_header = match cfg.timestamp_header {
        None => None,
        Some(h) => Some(HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
            BuildError::new(
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
    let signed = parse_template(cfg.signed.unwrap_or(default_template))
        .map_err(|p| BuildError::new("hmac.signed", p))?;
    if signed.contains(&Part::Timestamp) != timestamp_header.is_some() {
        return Err(BuildError::new(
            "hmac.signed",
            "{timestamp} in the template and hmac.timestamp_header go together",
        ));
    }
    Ok(Generic {
        headers: vec![header],
        algorithm: cfg.algorithm,
        encoding: cfg.encoding,
        prefix: cfg.prefix.to_string(),
        signed,
        timestamp_header,
        tolerance: input.tolerance,
        keys: input.keys(),
    })
}

/// `hookgate sign`: the MAC of the body in `--header`, under `--algorithm`, `--encoding` and
/// `--prefix`.
fn sign_headers(input: &SignInput<'_>) -> Result<Signed, String> {
    let header = HeaderName::from_bytes(input.header.as_bytes())
        .map_err(|_| format!("--header {:?} is not a header name", input.header))?;
    let g = Generic {
        headers: vec![header.clone()],
        signed: vec![Part::Body],
        timestamp_header: None,
        tolerance: 0,
        algorithm: input.algorithm,
        encoding: input.encoding,
        prefix: input.prefix.to_string(),
        keys: Vec::new(),
    };
    let sig = g.sign(input.secret.as_bytes(), 0, input.body);
    Ok(Signed::default().with(header.as_str(), sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(algorithm: HmacAlgorithm, encoding: HmacEncoding, prefix: &str) -> Generic {
        Generic::body_only(
            "x-sig",
            algorithm,
            encoding,
            prefix,
            vec![
                b"old".to_vec().into(),
                b"It's a Secret to Everybody".to_vec().into(),
            ],
        )
    }

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn github_published_vector_through_the_generic_scheme() {
        // GH-1 from GitHub's docs: secret "It's a Secret to Everybody", body "Hello, World!".
        let g = generic(HmacAlgorithm::Sha256, HmacEncoding::Hex, "sha256=");
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            g.sign(b"It's a Secret to Everybody", 0, b"Hello, World!"),
            sig
        );
        assert_eq!(
            g.verify(&with(&[("x-sig", sig)]), b"Hello, World!", 0),
            Ok(())
        );
        let upper = format!(
            "sha256={}",
            sig.trim_start_matches("sha256=").to_uppercase()
        );
        assert_eq!(
            g.verify(&with(&[("x-sig", &upper)]), b"Hello, World!", 0),
            Ok(())
        );
        assert_eq!(
            g.verify(&with(&[("x-sig", sig)]), b"Hello, World?", 0),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn every_algorithm_and_encoding_round_trips() {
        for alg in [
            HmacAlgorithm::Sha1,
            HmacAlgorithm::Sha256,
            HmacAlgorithm::Sha512,
        ] {
            for enc in [HmacEncoding::Hex, HmacEncoding::Base64] {
                let g = generic(alg, enc, "");
                let sig = g.sign(b"old", 0, b"body");
                assert_eq!(
                    g.verify(&with(&[("x-sig", &sig)]), b"body", 0),
                    Ok(()),
                    "{alg:?} {enc:?}"
                );
            }
        }
    }

    #[test]
    fn malformed_missing_and_repeated() {
        let g = generic(HmacAlgorithm::Sha256, HmacEncoding::Hex, "sha256=");
        assert!(matches!(
            g.verify(&HeaderMap::new(), b"", 0),
            Err(VerifyError::MissingSignature(_))
        ));
        assert!(matches!(
            g.verify(&with(&[("x-sig", "md5=00")]), b"", 0),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            g.verify(&with(&[("x-sig", "sha256=zz")]), b"", 0),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            g.verify(
                &with(&[("x-sig", "sha256=00"), ("x-sig", "sha256=00")]),
                b"",
                0
            ),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert_eq!(
            g.verify(&with(&[("x-sig", "sha256=00")]), b"", 0),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn templates_with_a_signed_timestamp() {
        let mut g = generic(HmacAlgorithm::Sha256, HmacEncoding::Hex, "");
        g.signed = parse_template("{timestamp}.{body}").expect("template");
        g.timestamp_header = Some(HeaderName::from_static("x-ts"));
        g.tolerance = 300;
        let sig = g.sign(b"old", 1000, b"body");
        assert_eq!(
            sig,
            encode(
                HmacEncoding::Hex,
                &mac(HmacAlgorithm::Sha256, b"old", &[b"1000.body"])
            )
        );
        assert_eq!(
            g.verify(&with(&[("x-sig", &sig), ("x-ts", "1000")]), b"body", 1200),
            Ok(())
        );
        assert_eq!(
            g.verify(&with(&[("x-sig", &sig), ("x-ts", "1000")]), b"body", 1301),
            Err(VerifyError::StaleTimestamp(300))
        );
        assert!(matches!(
            g.verify(&with(&[("x-sig", &sig)]), b"body", 1000),
            Err(VerifyError::MissingSignature(_))
        ));
        assert_eq!(
            g.verify(&with(&[("x-sig", &sig), ("x-ts", "1001")]), b"body", 1000),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn template_rules() {
        assert_eq!(parse_template("{body}"), Ok(vec![Part::Body]));
        assert_eq!(
            parse_template("v0:{timestamp}:{body}"),
            Ok(vec![
                Part::Literal(b"v0:".to_vec()),
                Part::Timestamp,
                Part::Literal(b":".to_vec()),
                Part::Body
            ])
        );
        assert!(parse_template("{timestamp}").is_err());
        assert!(parse_template("{body}{body}").is_err());
        assert!(parse_template("{timestamp}{timestamp}{body}").is_err());
    }
}
