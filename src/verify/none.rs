//! `verify = "none"`: the source is trusted as it is (an internal network, or a provider that
//! does not sign). Kept as a scheme of its own so that choosing it is explicit in the config.

use std::sync::Arc;

use super::{BuildError, Check, Inbound, Scheme, SchemeDefaults, SchemeInput, VerifyError};

/// Accepts every request.
pub fn verify() -> Result<(), VerifyError> {
    Ok(())
}

/// A `none` source's check: accepts every request.
#[derive(Clone)]
pub struct Unverified;

impl Check for Unverified {
    fn check(&self, _req: &Inbound<'_>) -> Result<(), VerifyError> {
        verify()
    }
}

/// `verify = "none"`: no secrets, and none may be given (a secret there is a mistake).
pub struct NoneScheme;

impl Scheme for NoneScheme {
    fn name(&self) -> &'static str {
        "none"
    }

    fn needs_secrets(&self) -> bool {
        false
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        if !input.secrets.is_empty() {
            return Err(BuildError::new(
                "secrets",
                "must be empty with verify = \"none\"",
            ));
        }
        Ok(Arc::new(Unverified))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults::GENERIC
    }
}
