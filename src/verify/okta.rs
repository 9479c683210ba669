//! Okta event hooks: no signature; every request carries the registered secret in one header
//! (`token_header`, default `Authorization`), checked like `verify = "token"`. Handshake: the
//! one-time `GET` with `X-Okta-Verification-Challenge`, answered with
//! `{"verification": "<the value>"}` once the token has passed.

use http::HeaderMap;
use serde_json::json;

use super::handshake::{HandshakeError, Reply};
use super::single_header;
use super::token::Tokens;

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
