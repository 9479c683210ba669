//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, keyed by the hook's
//! secret string. The legacy `X-Hub-Signature: sha1=<hex>` is read only when the SHA-256 header
//! is absent (older GitHub Enterprise servers). No timestamp: dedup by `X-GitHub-Delivery`.

use std::sync::Arc;

use http::HeaderMap;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::hmac::Generic;
use super::{
    BuildError, Check, Field, HmacAlgorithm, HmacEncoding, Inbound, KeyBytes, Scheme,
    SchemeDefaults, SchemeInput, SignInput, Signed, Signer, VerifyError,
};

#[derive(Clone)]
pub struct Github {
    sha256: Generic,
    sha1: Generic,
}

impl Github {
    pub fn new(keys: Vec<KeyBytes>) -> Self {
        Github {
            sha256: Generic::body_only(
                "x-hub-signature-256",
                HmacAlgorithm::Sha256,
                HmacEncoding::Hex,
                "sha256=",
                keys.clone(),
            ),
            sha1: Generic::body_only(
                "x-hub-signature",
                HmacAlgorithm::Sha1,
                HmacEncoding::Hex,
                "sha1=",
                keys,
            ),
        }
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        if headers.contains_key("x-hub-signature-256") || !headers.contains_key("x-hub-signature") {
            self.sha256.verify(headers, body, 0)
        } else {
            self.sha1.verify(headers, body, 0)
        }
    }

    /// The `X-Hub-Signature-256` value GitHub would send.
    pub fn sign(&self, key: &[u8], body: &[u8]) -> String {
        self.sha256.sign(key, 0, body)
    }
}

impl Check for Github {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.headers, req.body)
    }
}

/// `verify = "github"`.
pub struct GithubScheme;

impl Scheme for GithubScheme {
    fn name(&self) -> &'static str {
        "github"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Github::new(input.keys())))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Header("x-github-delivery")],
            event_type: &[Field::Header("x-github-event")],
            body_dedup: true,
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
            target: "verify_github",
            source: r#"secrets = ["It's a Secret to Everybody"]"#,
        })
    }
}

/// `hookgate sign`: `X-Hub-Signature-256`, for GitHub and for Meta, which signs the same way.
pub fn sign_headers(input: &SignInput<'_>) -> Result<Signed, String> {
    let sig = Github::new(vec![]).sign(input.secret.as_bytes(), input.body);
    Ok(Signed::default().with("x-hub-signature-256", sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn published_vectors() {
        // GH-1 (GitHub docs), GH-2, GH-3, GH-4 (@octokit/webhooks-methods tests).
        let cases: [(&str, &[u8], &str); 4] = [
            ("It's a Secret to Everybody", b"Hello, World!", "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
            ("mysecret", br#"{"foo":"bar"}"#, "4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3"),
            (
                "development",
                "{\"foo\":\"Foo\\n\\u001B[34mbar: \u{2665}\u{2665}\u{2665}\u{2665}\u{2665}\u{2665}\u{2665}\u{2665}\\nthis-is-lost\\u001B[0m\\u001B[2K\"}".as_bytes(),
                "afecc3caa27548bb90d51a50384cb2868b9a3327b4ad6a01c9bd4ed0f8b0b12c",
            ),
            ("development", br#"{"foo":"\\u001b"}"#, "6f8326efbacfbd04e870cea25b5652e635be8c9807f2fd5348ef60753c9e96ed"),
        ];
        for (secret, body, hex) in cases {
            let g = Github::new(vec![
                b"rotated-out".to_vec().into(),
                secret.as_bytes().to_vec().into(),
            ]);
            let sig = format!("sha256={hex}");
            assert_eq!(g.sign(secret.as_bytes(), body), sig);
            assert_eq!(
                g.verify(&h(&[("x-hub-signature-256", &sig)]), body),
                Ok(()),
                "{secret}"
            );
            let mut tampered = body.to_vec();
            tampered.push(b' ');
            assert_eq!(
                g.verify(&h(&[("x-hub-signature-256", &sig)]), &tampered),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[test]
    fn legacy_sha1_only_without_the_sha256_header() {
        let g = Github::new(vec![b"It's a Secret to Everybody".to_vec().into()]);
        let sha1 = "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59";
        assert_eq!(
            g.verify(&h(&[("x-hub-signature", sha1)]), b"Hello, World!"),
            Ok(())
        );
        // With both, the SHA-256 one decides.
        let both = h(&[
            ("x-hub-signature", sha1),
            ("x-hub-signature-256", "sha256=00"),
        ]);
        assert_eq!(
            g.verify(&both, b"Hello, World!"),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            g.verify(&HeaderMap::new(), b""),
            Err(VerifyError::MissingSignature(_))
        ));
    }
}
