//! `token`: a shared token in a header (`token_header`, default `authorization`, where a
//! `Bearer ` prefix is taken off). Any configured secret matching passes.

use super::KeyBytes;
use http::{HeaderMap, HeaderName};

use super::{VerifyError, constant_time_eq, single_header};

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
