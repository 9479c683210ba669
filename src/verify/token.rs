//! `token`: a shared token in a header (`token_header`, default `authorization`, where a
//! `Bearer ` prefix is taken off). Any configured secret matching passes.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::{
    BuildError, Check, Inbound, KeyBytes, Scheme, SchemeDefaults, SchemeInput, SourceOption,
    VerifyError, constant_time_eq, single_header,
};

#[derive(Clone)]
pub struct Tokens {
    pub header: HeaderName,
    pub tokens: Vec<KeyBytes>,
}

impl Tokens {
    pub fn verify(&self, headers: &HeaderMap) -> Result<(), VerifyError> {
        let value = single_header(headers, self.header.as_str())?
            .ok_or_else(|| VerifyError::MissingSignature(self.header.to_string()))?
            .trim();
        let presented = if self.header == http::header::AUTHORIZATION {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(value)
        } else {
            value
        };
        if self
            .tokens
            .iter()
            .any(|t| constant_time_eq(t, presented.as_bytes()))
        {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }
}

impl Tokens {
    /// The source's tokens in its `token_header` (default `authorization`), for `token` and
    /// `okta`.
    pub fn from_input(input: &SchemeInput<'_>) -> Result<Tokens, BuildError> {
        let name = input.token_header.unwrap_or("authorization");
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            BuildError::new("token_header", format!("{name:?} is not a header name"))
        })?;
        Ok(Tokens {
            header,
            tokens: input.keys(),
        })
    }
}

impl Check for Tokens {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.headers)
    }

    fn credential_header(&self) -> Option<&HeaderName> {
        Some(&self.header)
    }
}

/// `verify = "token"`, with an optional `token_header`.
pub struct TokenScheme;

impl Scheme for TokenScheme {
    fn name(&self) -> &'static str {
        "token"
    }

    fn options(&self) -> &'static [SourceOption] {
        &[SourceOption::TokenHeader]
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(Tokens::from_input(input)?))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults::GENERIC
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_token",
            source: r#"secrets = ["tok"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().expect("value"));
        h
    }

    #[test]
    fn header_tokens() {
        let t = Tokens {
            header: HeaderName::from_static("x-hook-token"),
            tokens: vec![b"a".to_vec().into(), b"tok".to_vec().into()],
        };
        assert_eq!(t.verify(&h("x-hook-token", "tok")), Ok(()));
        assert_eq!(
            t.verify(&h("x-hook-token", "tok2")),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            t.verify(&HeaderMap::new()),
            Err(VerifyError::MissingSignature(_))
        ));
        let bearer = Tokens {
            header: http::header::AUTHORIZATION,
            tokens: vec![b"tok".to_vec().into()],
        };
        assert_eq!(bearer.verify(&h("authorization", "Bearer tok")), Ok(()));
        assert_eq!(bearer.verify(&h("authorization", "tok")), Ok(()));
        assert_eq!(
            bearer.verify(&h("authorization", "Bearer nope")),
            Err(VerifyError::BadSignature)
        );
    }
}
