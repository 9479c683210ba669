//! Twilio: `X-Twilio-Signature: <base64 HMAC-SHA1>` keyed by the account's auth token, over
//! the full URL Twilio requested followed, for form posts, by every parameter as `name‖value`,
//! names sorted by byte order and each name's distinct values sorted. For JSON bodies Twilio
//! adds `bodySHA256=<hex>` to the query instead: the URL alone is signed and the body's hash
//! must match.
//!
//! The URL is the source's `public_url` when set (what sits in front of us is what Twilio saw),
//! else rebuilt from `Host`, `X-Forwarded-Proto` (both schemes are tried when it is absent),
//! the path and the query. As Twilio's SDKs do, a URL matches with and without its port.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;
use sha2::{Digest, Sha256};

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::{
    BuildError, Check, Field, HmacAlgorithm, Inbound, KeyBytes, Scheme, SchemeDefaults,
    SchemeInput, SourceOption, VerifyError, constant_time_eq, mac, mac_matches, required_header,
    single_header,
};

pub const HEADER: &str = "x-twilio-signature";

#[derive(Clone)]
pub struct Twilio {
    pub keys: Vec<KeyBytes>,
    /// Scheme, host and path Twilio was given, e.g. `https://hooks.example.com/in/twilio`.
    pub public_url: Option<String>,
}

impl Twilio {
    pub fn verify(
        &self,
        headers: &HeaderMap,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let sig = B64
            .decode(required_header(headers, HEADER)?)
            .map_err(|_| VerifyError::MalformedSignature("the signature is not base64".into()))?;
        let query = path_and_query.split_once('?').map(|(_, q)| q).unwrap_or("");
        let body_hash = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "bodySHA256")
            .map(|(_, v)| v.into_owned());
        let params = match &body_hash {
            Some(expected) => {
                let actual = hex::encode(Sha256::digest(body));
                if !constant_time_eq(expected.to_ascii_lowercase().as_bytes(), actual.as_bytes()) {
                    return Err(VerifyError::BadSignature);
                }
                String::new()
            }
            None if is_form(headers) => sorted_params(body),
            // Nothing but the URL is signed: a body would pass unauthenticated.
            None if body.is_empty() => String::new(),
            None => {
                return Err(VerifyError::MalformedSignature(
                    "a body that is not a form must be signed through bodySHA256 in the URL".into(),
                ));
            }
        };
        let urls = self.candidate_urls(headers, path_and_query)?;
        let matched = urls.iter().flat_map(|u| port_variants(u)).any(|url| {
            self.keys.iter().any(|k| {
                mac_matches(
                    HmacAlgorithm::Sha1,
                    k,
                    &[url.as_bytes(), params.as_bytes()],
                    &sig,
                )
            })
        });
        if matched {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn candidate_urls(
        &self,
        headers: &HeaderMap,
        path_and_query: &str,
    ) -> Result<Vec<String>, VerifyError> {
        if let Some(public) = &self.public_url {
            let query = path_and_query.split_once('?').map(|(_, q)| q);
            return Ok(vec![match query {
                Some(q) if !public.contains('?') => format!("{public}?{q}"),
                _ => public.clone(),
            }]);
        }
        let host = single_header(headers, "host")?.ok_or_else(|| {
            VerifyError::MalformedSignature("no Host header to rebuild the signed URL from".into())
        })?;
        let schemes: &[&str] = match single_header(headers, "x-forwarded-proto")? {
            Some("https") => &["https"],
            Some("http") => &["http"],
            _ => &["https", "http"],
        };
        Ok(schemes
            .iter()
            .map(|s| format!("{s}://{host}{path_and_query}"))
            .collect())
    }

    /// The signature Twilio would send for a form post of `params` to `url`.
    pub fn sign(key: &[u8], url: &str, params: &[(&str, &str)]) -> String {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        B64.encode(mac(
            HmacAlgorithm::Sha1,
            key,
            &[url.as_bytes(), sorted_params(body.as_bytes()).as_bytes()],
        ))
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// `name‖value` for every decoded parameter: names in byte order, each name's distinct values
/// sorted.
fn sorted_params(body: &[u8]) -> String {
    let mut params: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        params
            .entry(k.into_owned())
            .or_default()
            .insert(v.into_owned());
    }
    let mut out = String::new();
    for (k, values) in params {
        for v in values {
            out.push_str(&k);
            out.push_str(&v);
        }
    }
    out
}

/// The URL as given, and with its port flipped: the default port added when there is none, an
/// explicit port removed.
fn port_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let (authority, tail) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |i| (&rest[..i], &rest[i..]));
    let host_end = authority.rfind(']').unwrap_or(0);
    match authority[host_end..].rfind(':').map(|i| i + host_end) {
        Some(colon) => out.push(format!("{scheme}://{}{tail}", &authority[..colon])),
        None => {
            let port = if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            out.push(format!("{scheme}://{authority}:{port}{tail}"));
        }
    }
    out
}

impl Check for Twilio {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.headers, req.path_and_query, req.body)
    }
}

/// `verify = "twilio"`, with an optional `public_url`. `hookgate sign` does not sign for it: the
/// signature covers the URL Twilio requested, which the CLI does not know.
pub struct TwilioScheme;

impl Scheme for TwilioScheme {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn options(&self) -> &'static [SourceOption] {
        &[SourceOption::PublicUrl]
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Twilio {
            keys: input.keys(),
            public_url: input.public_url.map(str::to_string),
        }))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Header("i-twilio-idempotency-token")],
            event_type: &[],
            body_dedup: true,
        }
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_twilio",
            source: r#"secrets = ["12345"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"12345";
    const PARAMS: [(&str, &str); 5] = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ];

    fn form(params: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
            .into_bytes()
    }

    fn headers(sig: &str, host: &str, proto: Option<&str>, content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, sig.parse().expect("value"));
        h.insert("host", host.parse().expect("value"));
        h.insert("content-type", content_type.parse().expect("value"));
        if let Some(p) = proto {
            h.insert("x-forwarded-proto", p.parse().expect("value"));
        }
        h
    }

    fn twilio(public_url: Option<&str>) -> Twilio {
        Twilio {
            keys: vec![b"old-token".to_vec().into(), TOKEN.to_vec().into()],
            public_url: public_url.map(str::to_string),
        }
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn tw1_to_tw4_published_and_port_agnostic() {
        let body = form(&PARAMS);
        let cases = [
            (
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            ),
            (
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
        ];
        for (url, sig) in cases {
            assert_eq!(Twilio::sign(TOKEN, url, &PARAMS), sig, "{url}");
        }
        // The request came in as https://mycompany.com/myapp.php; the signature was made with
        // and without :443 (TW-1, TW-2): both pass.
        let path = "/myapp.php?foo=1&bar=2";
        for sig in [
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            "kvajT1Ptam85bY51eRf/AJRuM3w=",
        ] {
            let h = headers(sig, "mycompany.com", Some("https"), FORM);
            assert_eq!(twilio(None).verify(&h, path, &body), Ok(()), "{sig}");
            // And through a configured public URL, whatever Host we saw.
            let h = headers(sig, "10.0.0.7:8080", None, FORM);
            assert_eq!(
                twilio(Some("https://mycompany.com/myapp.php")).verify(&h, path, &body),
                Ok(())
            );
        }
        // TW-4: explicit non-default port, scheme unknown to us (no X-Forwarded-Proto).
        let h = headers(
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            "mycompany.com:1234",
            None,
            FORM,
        );
        assert_eq!(twilio(None).verify(&h, path, &body), Ok(()));
    }

    #[test]
    fn tw5_multi_value_parameters() {
        let params = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ];
        assert_eq!(
            sorted_params(&form(&params)),
            "Digits1234Digits5678SidCA123SidAccountAC123"
        );
        let sig = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
        assert_eq!(
            Twilio::sign(
                TOKEN,
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            sig
        );
        let h = headers(sig, "mycompany.com", Some("https"), FORM);
        assert_eq!(
            twilio(None).verify(&h, "/myapp.php?foo=1&bar=2", &form(&params)),
            Ok(())
        );
    }

    #[test]
    fn tw6_json_body_with_body_sha256() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(hex::encode(Sha256::digest(body)), hash);
        let path = format!("/myapp.php?foo=1&bar=2&bodySHA256={hash}");
        let h = headers(
            "a9nBmqA0ju/hNViExpshrM61xv4=",
            "mycompany.com",
            Some("https"),
            "application/json",
        );
        assert_eq!(twilio(None).verify(&h, &path, body), Ok(()));
        // A different body no longer matches its hash.
        assert_eq!(
            twilio(None).verify(&h, &path, br#"{"property": "other"}"#),
            Err(VerifyError::BadSignature)
        );
        // Without bodySHA256 only the URL would be signed: any body would pass with a
        // signature over the bare URL. Refused.
        let bare = "/myapp.php?foo=1&bar=2";
        let t = twilio(None);
        let url_only = B64.encode(mac(
            HmacAlgorithm::Sha1,
            b"12345",
            &[b"https://mycompany.com/myapp.php?foo=1&bar=2"],
        ));
        let h = headers(
            &url_only,
            "mycompany.com",
            Some("https"),
            "application/json",
        );
        assert!(matches!(
            t.verify(&h, bare, br#"{"anything": "at all"}"#),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert_eq!(t.verify(&h, bare, b""), Ok(()));
    }

    #[test]
    fn negative_cases() {
        let body = form(&PARAMS);
        let path = "/myapp.php?foo=1&bar=2";
        let h = headers(
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            "mycompany.com",
            Some("https"),
            FORM,
        );
        let mut tampered = body.clone();
        tampered.extend_from_slice(b"&Extra=1");
        assert_eq!(
            twilio(None).verify(&h, path, &tampered),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            twilio(None).verify(&h, "/other.php?foo=1&bar=2", &body),
            Err(VerifyError::BadSignature)
        );
        let wrong_token = Twilio {
            keys: vec![b"54321".to_vec().into()],
            public_url: None,
        };
        assert_eq!(
            wrong_token.verify(&h, path, &body),
            Err(VerifyError::BadSignature)
        );
        let h = headers("not base64!", "mycompany.com", Some("https"), FORM);
        assert!(matches!(
            twilio(None).verify(&h, path, &body),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            twilio(None).verify(&HeaderMap::new(), path, &body),
            Err(VerifyError::MissingSignature(_))
        ));
    }

    #[test]
    fn port_variants_flip_the_port() {
        assert_eq!(
            port_variants("https://a.com/x"),
            ["https://a.com/x", "https://a.com:443/x"]
        );
        assert_eq!(
            port_variants("http://a.com:8080/x?y"),
            ["http://a.com:8080/x?y", "http://a.com/x?y"]
        );
        assert_eq!(
            port_variants("http://[::1]/"),
            ["http://[::1]/", "http://[::1]:80/"]
        );
        assert_eq!(
            port_variants("http://[::1]:9/"),
            ["http://[::1]:9/", "http://[::1]/"]
        );
    }
}
