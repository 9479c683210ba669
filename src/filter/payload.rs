//! STUB (replaced by the filter helper's module): payload filters.
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub clause: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct PayloadFilter {
    doc: Value,
}

pub struct Subject<'a> {
    pub body: Option<&'a Value>,
    pub headers: &'a [(String, Vec<u8>)],
    pub query: &'a str,
}

impl<'a> Subject<'a> {
    pub fn new(body: Option<&'a Value>, headers: &'a [(String, Vec<u8>)], query: &'a str) -> Self {
        Subject {
            body,
            headers,
            query,
        }
    }
}

impl PayloadFilter {
    pub fn compile(doc: &Value) -> Result<PayloadFilter, FilterError> {
        Ok(PayloadFilter { doc: doc.clone() })
    }
    pub fn needs_body(&self) -> bool {
        true
    }
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        self.explain(s).is_ok()
    }
    pub fn explain(&self, s: &Subject<'_>) -> Result<(), Rejection> {
        let _ = (s.body, s.headers, s.query);
        Ok(())
    }
    pub fn document(&self) -> &Value {
        &self.doc
    }
}
