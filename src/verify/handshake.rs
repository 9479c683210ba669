//! Endpoint-verification handshakes: the requests a provider sends before (and, for Zoom and
//! X, now and then while) it delivers, to prove the URL is ours. The gateway answers them
//! itself; **a handshake is never stored and never delivered**. Each scheme's own file says
//! how its handshake looks and answers it through its [`Check`](super::Check); this file holds the answer
//! type and what ingress asks a [`Verifier`] at each moment.
//!
//! There are three moments:
//! - before verification, for the handshakes a provider does not sign (Slack's `ssl_check`,
//!   whose answer is empty, and Microsoft Graph's `validationToken`, which carries no secret);
//! - after verification, for the signed ones: **a handshake with a bad signature gets the same
//!   401 as any request, and nothing is echoed**;
//! - `GET`, which only the schemes with a GET handshake answer (405 for the rest).

use super::{Inbound, Verifier, VerifyError};

/// The gateway's own answer to a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What the metrics count it under (`handshake_<kind>`), and the debug log says.
    pub kind: &'static str,
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Reply {
    /// 200 with an echoed value as plain text (served with `nosniff`, so no browser reads it
    /// as HTML).
    pub fn text(kind: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            kind,
            status: 200,
            content_type: Some("text/plain; charset=utf-8"),
            body: body.into(),
        }
    }

    /// 200 with a JSON body.
    pub fn json(kind: &'static str, value: &serde_json::Value) -> Self {
        Reply {
            kind,
            status: 200,
            content_type: Some("application/json"),
            body: value.to_string().into_bytes(),
        }
    }

    /// A status with no body.
    pub fn empty(kind: &'static str, status: u16) -> Self {
        Reply {
            kind,
            status,
            content_type: None,
            body: Vec::new(),
        }
    }
}

/// Why a GET handshake was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The request's credentials failed: the same 401 as a bad webhook.
    #[error(transparent)]
    Unauthorized(#[from] VerifyError),
    /// Meta's verify token or mode is wrong: 403, as Meta's docs ask.
    #[error("{0}")]
    Forbidden(String),
    /// A handshake request without the value to answer with: 400.
    #[error("{0}")]
    BadRequest(String),
    /// The scheme has no GET handshake: 405, as for any GET.
    #[error("webhooks are sent with POST")]
    NotAllowed,
}

/// The first value of a query parameter, percent-decoded (`+` is a space, as in forms).
pub fn query_param(path_and_query: &str, name: &str) -> Option<String> {
    let query = path_and_query.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The string at a JSON pointer of a body, if the body is JSON and the value a string.
pub fn json_str(body: &[u8], pointer: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.pointer(pointer)?.as_str().map(str::to_string)
}

impl Verifier {
    /// An unsigned handshake, answered before the signature is checked.
    pub fn answer_before_verify(&self, req: &Inbound<'_>) -> Option<Reply> {
        self.check.answer_before_verify(req)
    }

    /// A signed handshake, answered once the request has passed [`Verifier::verify`]. A
    /// request that says it is a handshake but lacks what to answer with is refused (`Err`),
    /// never stored as an event.
    pub fn answer_after_verify(&self, req: &Inbound<'_>) -> Option<Result<Reply, HandshakeError>> {
        self.check.answer_after_verify(req)
    }

    /// The answer to `GET /in/{source}`: a handshake, or why not.
    pub fn answer_get(&self, req: &Inbound<'_>) -> Result<Reply, HandshakeError> {
        self.check.answer_get(req)
    }

    /// The header that carries the source's secret itself (`basic`, `token`, `okta`): it is
    /// not stored with the payload, so it never reaches the store, a delivery or the API.
    pub fn credential_header(&self) -> Option<&http::HeaderName> {
        self.check.credential_header()
    }

    /// An event type the scheme sets itself, ahead of the configured or default field
    /// (Twitch's revocations are events of type `revocation`; X names the kind by a key).
    pub fn event_type(&self, req: &Inbound<'_>) -> Option<String> {
        self.check.event_type(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let q = "/in/s?a=1&validationToken=Validation%3A+Testing%20x&a=2";
        assert_eq!(
            query_param(q, "validationToken").as_deref(),
            Some("Validation: Testing x")
        );
        assert_eq!(query_param(q, "a").as_deref(), Some("1"));
        assert_eq!(query_param(q, "b"), None);
        assert_eq!(query_param("/in/s", "a"), None);
    }

    #[test]
    fn json_strings_only() {
        assert_eq!(
            json_str(br#"{"a":{"b":"c"}}"#, "/a/b").as_deref(),
            Some("c")
        );
        assert_eq!(json_str(br#"{"a":1}"#, "/a"), None);
        assert_eq!(json_str(b"not json", "/a"), None);
    }
}
