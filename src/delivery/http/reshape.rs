//! An endpoint's transform applied to what a delivery would send ([`Prepared`]): the jq
//! program runs in a worker process (`crate::transform::Pool`), bounded in time and output,
//! and its answer becomes the request, or drops the delivery. It runs as each attempt is
//! made, never at ingest, so the stored event stays the original and a replay after the
//! program is fixed sends what the new program makes.

use http::{HeaderName, HeaderValue};

use super::request::Prepared;
use crate::model::endpoint::is_reserved_header;
use crate::transform::{Input, Output, Pool, Submitted, TransformError};

/// What a transform made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reshaped {
    Send(Prepared),
    /// The program answered `null`: the delivery is not sent.
    Drop,
}

/// Why a transform's run failed, as the attempt records it (`transform: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

impl From<TransformError> for Failed {
    fn from(e: TransformError) -> Self {
        Failed(e.to_string())
    }
}

/// Runs `program` (the endpoint's, keyed by its id in the pool) over `p`.
pub async fn reshape(
    pool: &Pool,
    endpoint_id: &str,
    program: &std::sync::Arc<str>,
    p: Prepared,
) -> Result<Reshaped, Failed> {
    start(pool, endpoint_id, program, p).finish().await
}

/// A transform's run, queued in the pool and not yet answered.
#[derive(Debug)]
pub struct Reshaping {
    submitted: Submitted,
}

/// Queues `program`'s run over `p` without waiting for it ([`Pool::submit`]).
pub fn start(
    pool: &Pool,
    endpoint_id: &str,
    program: &std::sync::Arc<str>,
    p: Prepared,
) -> Reshaping {
    let input = Input {
        body: p.body,
        headers: p
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        event_type: p.event_type,
    };
    Reshaping {
        submitted: pool.submit(endpoint_id, program, input),
    }
}

impl Reshaping {
    /// What the run made of the delivery.
    pub async fn finish(self) -> Result<Reshaped, Failed> {
        reshaped(self.submitted.answer().await?)
    }
}

fn reshaped(output: Output) -> Result<Reshaped, Failed> {
    match output {
        Output::Drop => Ok(Reshaped::Drop),
        Output::Send {
            body,
            headers,
            event_type,
        } => Ok(Reshaped::Send(Prepared {
            headers: headers_of(headers)?,
            body,
            event_type,
        })),
    }
}

/// The output's headers as a request carries them; the worker checked them already, but the
/// gateway does not trust a child process's answer.
fn headers_of(headers: Vec<(String, String)>) -> Result<Vec<(HeaderName, HeaderValue)>, Failed> {
    headers
        .into_iter()
        .map(|(name, value)| {
            if is_reserved_header(&name) {
                return Err(Failed(format!(
                    "transform: header {name:?} is set by hookgate and cannot be output"
                )));
            }
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Failed(format!("transform: {name:?} is not a header name")))?;
            // The String's buffer becomes the value's (from_str would copy it); the same bytes
            // are accepted.
            let v = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).map_err(|_| {
                Failed(format!(
                    "transform: header {name:?} has a value that is not valid"
                ))
            })?;
            Ok((n, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_headers_are_checked_again() {
        assert!(headers_of(vec![("x-a".into(), "1".into())]).is_ok());
        let reserved = headers_of(vec![("webhook-signature".into(), "v1,x".into())]);
        assert!(reserved.is_err_and(|e| e.0.contains("set by hookgate")));
        assert!(headers_of(vec![("bad name".into(), "1".into())]).is_err());
        assert!(headers_of(vec![("x-a".into(), "line\nbreak".into())]).is_err());
    }
}
