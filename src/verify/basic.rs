//! `basic`: HTTP Basic authentication, for senders that can only put credentials in the URL or
//! an `Authorization` header. Each secret is `user:password`; any one matching passes.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::{HeaderMap, HeaderName};

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::{
    BuildError, Check, Inbound, KeyBytes, Scheme, SchemeDefaults, SchemeInput, VerifyError,
    constant_time_eq, required_header,
};

pub fn verify(credentials: &[KeyBytes], headers: &HeaderMap) -> Result<(), VerifyError> {
    let value = required_header(headers, "authorization")?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(|| {
        VerifyError::MalformedSignature("Authorization is not `Basic <base64>`".into())
    })?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(VerifyError::MalformedSignature(
            "Authorization is not `Basic <base64>`".into(),
        ));
    }
    let presented = B64
        .decode(encoded.trim())
        .map_err(|_| VerifyError::MalformedSignature("the credentials are not base64".into()))?;
    if credentials.iter().any(|c| constant_time_eq(c, &presented)) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// A `basic` source: the `user:password` pairs it accepts.
#[derive(Clone)]
pub struct Basic {
    pub credentials: Vec<KeyBytes>,
}

impl Check for Basic {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        verify(&self.credentials, req.headers)
    }

    fn credential_header(&self) -> Option<&HeaderName> {
        Some(&http::header::AUTHORIZATION)
    }
}

/// `verify = "basic"`: each secret is `user:password`.
pub struct BasicScheme;

impl Scheme for BasicScheme {
    fn name(&self) -> &'static str {
        "basic"
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        if input.secrets.iter().any(|c| !c.contains(':')) {
            return Err(BuildError::new(
                "secrets",
                "each secret of verify = \"basic\" is \"user:password\"",
            ));
        }
        Ok(Arc::new(Basic {
            credentials: input.keys(),
        }))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults::GENERIC
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_basic",
            source: r#"secrets = ["hook:s3cret"]"#,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", value.parse().expect("value"));
        h
    }

    #[test]
    fn user_and_password() {
        let creds = vec![b"old:pw".to_vec().into(), b"hook:s3cret".to_vec().into()];
        // base64("hook:s3cret")
        assert_eq!(verify(&creds, &h("Basic aG9vazpzM2NyZXQ=")), Ok(()));
        assert_eq!(verify(&creds, &h("basic aG9vazpzM2NyZXQ=")), Ok(()));
        assert_eq!(
            verify(&creds, &h("Basic aG9vazp3cm9uZw==")),
            Err(VerifyError::BadSignature)
        );
        assert!(matches!(
            verify(&creds, &h("Bearer x")),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            verify(&creds, &h("Basic !!")),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert!(matches!(
            verify(&creds, &HeaderMap::new()),
            Err(VerifyError::MissingSignature(_))
        ));
    }
}
