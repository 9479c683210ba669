//! Microsoft Graph change notifications. Graph signs nothing: a subscription carries a
//! `clientState` secret that every notification repeats, so a notification is accepted only
//! when **every** `value[].clientState` equals one of the source's secrets (compared in
//! constant time). Lifecycle notifications are checked and stored the same way.
//!
//! Handshake: Graph validates a notification URL with a POST carrying `?validationToken=…`,
//! answered within 10 s with 200 `text/plain` and the URL-decoded token. It carries no secret
//! (Graph sends it before the subscription exists), so it is answered before any check, as
//! plain text with `nosniff`.

use std::sync::Arc;

#[cfg(feature = "test-support")]
use super::FuzzSource;
use super::handshake::{Reply, query_param};
use super::{
    BuildError, Check, Field, Inbound, KeyBytes, Scheme, SchemeDefaults, SchemeInput, SignInput,
    Signed, Signer, VerifyError, constant_time_eq,
};

#[derive(Clone)]
pub struct ClientStates {
    pub keys: Vec<KeyBytes>,
}

impl ClientStates {
    pub fn verify(&self, body: &[u8]) -> Result<(), VerifyError> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
            VerifyError::MalformedSignature("the body is not a JSON notification".into())
        })?;
        let items = v
            .get("value")
            .and_then(serde_json::Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                VerifyError::MalformedSignature("the body has no value[] notifications".into())
            })?;
        for (i, item) in items.iter().enumerate() {
            let state = item
                .get("clientState")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| VerifyError::MissingSignature(format!("value[{i}].clientState")))?;
            if !self
                .keys
                .iter()
                .any(|k| constant_time_eq(k, state.as_bytes()))
            {
                return Err(VerifyError::BadSignature);
            }
        }
        Ok(())
    }
}

/// Graph's validation request: the decoded `validationToken`, as plain text.
pub fn validation(path_and_query: &str) -> Option<Reply> {
    query_param(path_and_query, "validationToken").map(|t| Reply::text("validation", t))
}

impl Check for ClientStates {
    fn check(&self, req: &Inbound<'_>) -> Result<(), VerifyError> {
        self.verify(req.body)
    }

    fn answer_before_verify(&self, req: &Inbound<'_>) -> Option<Reply> {
        validation(req.path_and_query)
    }
}

/// `verify = "microsoft-graph"` (or `"msgraph"`).
pub struct MicrosoftGraphScheme;

impl Scheme for MicrosoftGraphScheme {
    fn name(&self) -> &'static str {
        "microsoft-graph"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["msgraph"]
    }

    fn build(&self, input: &SchemeInput<'_>) -> Result<Arc<dyn Check>, BuildError> {
        Ok(Arc::new(ClientStates { keys: input.keys() }))
    }

    fn defaults(&self) -> SchemeDefaults {
        SchemeDefaults {
            dedup: &[Field::Json("/value/0/id")],
            event_type: &[
                Field::Json("/value/0/lifecycleEvent"),
                Field::Json("/value/0/changeType"),
            ],
            body_dedup: false,
        }
    }

    fn signer(&self) -> Option<Signer> {
        Some(Signer {
            help: Some("Graph signs nothing: checks that every value[].clientState is the secret"),
            sign: sign_headers,
        })
    }

    #[cfg(feature = "test-support")]
    fn fuzz(&self) -> Option<FuzzSource> {
        Some(FuzzSource {
            target: "verify_microsoft_graph",
            source: r#"secrets = ["secretClientValue"]"#,
        })
    }
}

/// `hookgate sign`: Graph signs nothing, so the body is checked to carry the secret instead.
fn sign_headers(input: &SignInput<'_>) -> Result<Signed, String> {
    let states = ClientStates {
        keys: vec![KeyBytes::new(input.secret.as_bytes().to_vec())],
    };
    states.verify(input.body).map_err(|e| {
        format!(
            "Graph signs nothing: the body must carry the secret in every value[].clientState ({e})"
        )
    })?;
    Ok(Signed::default().with("content-type", "application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states() -> ClientStates {
        ClientStates {
            keys: vec![
                b"old-state".to_vec().into(),
                b"secretClientValue".to_vec().into(),
            ],
        }
    }

    #[test]
    fn every_client_state_must_match() {
        let ok = br#"{"value":[{"subscriptionId":"7f105c7d","clientState":"secretClientValue","changeType":"created","resource":"Users/x/Messages/y"},{"clientState":"old-state","lifecycleEvent":"missed"}]}"#;
        assert_eq!(states().verify(ok), Ok(()));
        let one_bad = br#"{"value":[{"clientState":"secretClientValue"},{"clientState":"guess"}]}"#;
        assert_eq!(states().verify(one_bad), Err(VerifyError::BadSignature));
        let missing = br#"{"value":[{"changeType":"created"}]}"#;
        assert_eq!(
            states().verify(missing),
            Err(VerifyError::MissingSignature("value[0].clientState".into()))
        );
        for malformed in [
            &b"{}"[..],
            br#"{"value":[]}"#,
            b"validation",
            br#"{"value":{}}"#,
        ] {
            assert!(matches!(
                states().verify(malformed),
                Err(VerifyError::MalformedSignature(_))
            ));
        }
    }

    #[test]
    fn validation_token_is_decoded() {
        let r = validation(
            "/in/graph?validationToken=Validation%3a+Testing+client+application+reachability+for+subscription+Request-Id%3a+0ad8d1f1",
        )
        .expect("a handshake");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, Some("text/plain; charset=utf-8"));
        assert_eq!(
            r.body,
            b"Validation: Testing client application reachability for subscription Request-Id: 0ad8d1f1"
        );
        assert_eq!(validation("/in/graph"), None);
    }
}
