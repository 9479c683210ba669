//! Okta event hooks: no signature; every request carries the registered secret in one header
//! (`token_header`, default `Authorization`), checked like `verify = "token"`. Handshake: the
//! one-time `GET` with `X-Okta-Verification-Challenge`, answered with
//! `{"verification": "<the value>"}` once the token has passed.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use serde_json::json;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::handshake::{HandshakeError, Reply};
use super::token::Tokens;
use super::{
    BuildError, Check, Field, Inbound, Scheme, SchemeDefaults, SchemeInput, SignInput, Signed,
    Signer, SourceOption, VerifyError, single_header,
};

pub const CHALLENGE_HEADER: &str = "x-okta-verification-challenge";

/// Answers Okta's verification request.
pub fn verification(tokens: &Tokens, headers: &HeaderMap) -> Result<Reply, HandshakeError> {
    tokens.verify(headers)?;
    let challenge = single_header(headers, CHALLENGE_HEADER)?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| HandshakeError::BadRequest(format!("{CHALLENGE_HEADER} is missing")))?;
    Ok(Reply::json(
        "verification",
        &json!({ "verification": challenge }),
    ))
}

/// An Okta source: the token check, and the verification `GET`.
#[derive(Clone)]
pub struct Okta(pub Tokens);

impl Check for Okta {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.0.verify(req.headers)
    }

    fn answer_get(&self, req: &Inbound<'_>) -> Result<Reply, HandshakeError> {
        verification(&self.0, req.headers)
    }

    fn credential_header(&self) -> Option<&HeaderName> {
        Some(&self.0.header)
    }
}

/// `verify = "okta"`, with an optional `token_header`.
pub struct OktaScheme;

impl Scheme for OktaScheme {
    fn name(&self) -> &'static str {
        "okta"
    }

    fn options(&self) -> &'static [SourceOption] {
        &[SourceOption::TokenHeader]
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Okta(Tokens::from_input(input)?)))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Json("/eventId")],
            event_type: &[Field::Json("/data/events/0/eventType")],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: None,
            sign: |i| {
                // The token itself, in `--header` when one is given, else in Authorization.
                let name = if i.header == SignInput::DEFAULT_HEADER {
                    "authorization"
                } else {
                    i.header
                };
                Ok(Signed::default().with(name, i.secret))
            },
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_okta",
            source: r#"secrets = ["okta-shared-secret"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::VerifyError;

    fn tokens() -> Tokens {
        Tokens {
            header: http::header::AUTHORIZATION,
            tokens: vec![b"okta-shared-secret".to_vec().into()],
        }
    }

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn answers_after_the_token() {
        let ok = h(&[
            ("authorization", "okta-shared-secret"),
            (CHALLENGE_HEADER, "X8m1Fk2r3kNfqZ2n"),
        ]);
        let r = verification(&tokens(), &ok).expect("answered");
        assert_eq!(r.body, br#"{"verification":"X8m1Fk2r3kNfqZ2n"}"#);
        let wrong = h(&[
            ("authorization", "guess"),
            (CHALLENGE_HEADER, "X8m1Fk2r3kNfqZ2n"),
        ]);
        assert_eq!(
            verification(&tokens(), &wrong),
            Err(HandshakeError::Unauthorized(VerifyError::BadSignature))
        );
        assert!(matches!(
            verification(&tokens(), &h(&[(CHALLENGE_HEADER, "x")])),
            Err(HandshakeError::Unauthorized(VerifyError::MissingSignature(
                _
            )))
        ));
        assert!(matches!(
            verification(&tokens(), &h(&[("authorization", "okta-shared-secret")])),
            Err(HandshakeError::BadRequest(_))
        ));
    }
}
