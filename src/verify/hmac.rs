//! Generic HMAC: any provider that puts an HMAC of the raw body in one header, configured by
//! `hmac = { header, algorithm, encoding, prefix }` (e.g. `sha256=<hex>`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::{HeaderMap, HeaderName};

use super::{VerifyError, mac, mac_matches};
use crate::config::{HmacAlgorithm, HmacEncoding};

/// A compiled generic-HMAC source.
#[derive(Clone)]
pub struct Generic {
    pub header: HeaderName,
    pub algorithm: HmacAlgorithm,
    pub encoding: HmacEncoding,
    pub prefix: String,
    pub keys: Vec<Vec<u8>>,
}

impl Generic {
    /// Verifies that the header carries the MAC of `body` under one of the keys.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        let mut values = headers.get_all(&self.header).iter();
        let value = values
            .next()
            .ok_or_else(|| VerifyError::MissingSignature(self.header.to_string()))?;
        if values.next().is_some() {
            return Err(VerifyError::MalformedSignature(format!(
                "header {} appears more than once",
                self.header
            )));
        }
        let value = value
            .to_str()
            .map_err(|_| {
                VerifyError::MalformedSignature(format!(
                    "header {} is not visible ASCII",
                    self.header
                ))
            })?
            .trim();
        let encoded = value.strip_prefix(self.prefix.as_str()).ok_or_else(|| {
            VerifyError::MalformedSignature(format!(
                "signature does not start with {:?}",
                self.prefix
            ))
        })?;
        let tag = decode(self.encoding, encoded).ok_or_else(|| {
            VerifyError::MalformedSignature("signature is not valid for its encoding".into())
        })?;
        let matched = self
            .keys
            .iter()
            .any(|k| mac_matches(self.algorithm, k, &[body], &tag));
        if matched {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    /// The header value a sender would put on `body` (for `hookgate sign` and tests).
    pub fn sign(&self, key: &[u8], body: &[u8]) -> String {
        let tag = mac(self.algorithm, key, &[body]);
        let encoded = match self.encoding {
            HmacEncoding::Hex => hex::encode(tag),
            HmacEncoding::Base64 => B64.encode(tag),
        };
        format!("{}{}", self.prefix, encoded)
    }
}

fn decode(encoding: HmacEncoding, s: &str) -> Option<Vec<u8>> {
    match encoding {
        // Hex is case-insensitive on the wire.
        HmacEncoding::Hex => hex::decode(s).ok(),
        HmacEncoding::Base64 => B64.decode(s).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(algorithm: HmacAlgorithm, encoding: HmacEncoding, prefix: &str) -> Generic {
        Generic {
            header: HeaderName::from_static("x-sig"),
            algorithm,
            encoding,
            prefix: prefix.into(),
            keys: vec![b"old".to_vec(), b"It's a Secret to Everybody".to_vec()],
        }
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-sig", value.parse().expect("value"));
        h
    }

    #[test]
    fn github_published_vector_through_the_generic_scheme() {
        // GH-1 from GitHub's docs: secret "It's a Secret to Everybody", body "Hello, World!".
        let g = generic(HmacAlgorithm::Sha256, HmacEncoding::Hex, "sha256=");
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(g.sign(b"It's a Secret to Everybody", b"Hello, World!"), sig);
        assert_eq!(g.verify(&with(sig), b"Hello, World!"), Ok(()));
        assert_eq!(
            g.verify(
                &with(&sig.to_uppercase().replace("SHA256=", "sha256=")),
                b"Hello, World!"
            ),
            Ok(())
        );
        assert_eq!(
            g.verify(&with(sig), b"Hello, World?"),
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
                let sig = g.sign(b"old", b"body");
                assert_eq!(g.verify(&with(&sig), b"body"), Ok(()), "{alg:?} {enc:?}");
            }
        }
    }

    #[test]
    fn malformed_and_missing() {
        let g = generic(HmacAlgorithm::Sha256, HmacEncoding::Hex, "sha256=");
        assert!(matches!(
            g.verify(&HeaderMap::new(), b""),
            Err(VerifyError::MissingSignature(_))
        ));
        assert!(matches!(
            g.verify(&with("md5=00"), b""),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            g.verify(&with("sha256=zz"), b""),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert_eq!(
            g.verify(&with("sha256=00"), b""),
            Err(VerifyError::BadSignature)
        );
    }
}
