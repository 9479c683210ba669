//! STUB (replaced by the transform helper's module).
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransformError {
    #[error("transform: {0}")]
    Compile(String),
    #[error("transform: {0}")]
    Run(String),
    #[error("transform: timed out")]
    Timeout,
}

pub struct Program;
impl Program {
    pub fn check(text: &str) -> Result<(), TransformError> {
        if text.trim().is_empty() {
            return Err(TransformError::Compile("empty program".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Input {
    pub body: bytes::Bytes,
    pub headers: Vec<(String, String)>,
    pub event_type: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Output {
    Drop,
    Send {
        body: bytes::Bytes,
        headers: Vec<(String, String)>,
        event_type: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub command: PathBuf,
    pub args: Vec<String>,
    pub workers: usize,
    pub timeout: Duration,
    pub max_output: usize,
}

#[derive(Debug)]
pub struct Pool {
    _config: PoolConfig,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Self {
        Pool { _config: config }
    }
    pub async fn run(
        &self,
        _key: &str,
        _program: &Arc<str>,
        input: Input,
    ) -> Result<Output, TransformError> {
        Ok(Output::Send {
            body: input.body,
            headers: input.headers,
            event_type: input.event_type,
        })
    }
}
