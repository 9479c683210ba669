//! Transforms: an endpoint's jq program (run by jaq) reshapes a delivery when it is sent.
//!
//! The program maps `{ "body": …, "headers": {…}, "event_type": … }` to a new such object, or
//! to `null` to drop the delivery. The pure part lives in [`program`] (the parser guard,
//! compilation with positioned errors), [`output`] (building the input value, validating
//! and encoding what the program gave back) and [`json`] (a strict one-pass reader of bodies).
//!
//! **Programs never run in the gateway process.** jaq has no fuel counter, and a recursive
//! program can overflow the stack, which aborts a process. So the gateway only *checks*
//! programs ([`Program::check`]: parse and compile on a thread of its own with a large stack,
//! behind a size and nesting guard), and runs them in worker processes: the same binary
//! started as `hookgate transform-worker` ([`worker`]), fed length-prefixed binary frames
//! ([`frame`]) over its stdin and stdout by a [`Pool`] ([`pool`]). A run not answered in time
//! kills its worker; a worker that dies is replaced; one endpoint's runaway program cannot
//! hold up another endpoint's runs ([`schedule`]).

use std::time::Duration;

use bytes::Bytes;

pub mod frame;
pub mod json;
pub mod output;
pub mod pool;
pub mod program;
pub mod schedule;
pub mod worker;

pub use output::Output;
pub use pool::{Pool, PoolConfig, Submitted};
pub use program::Program;

#[doc(hidden)]
#[cfg(any(test, feature = "test-support"))]
pub use output::fuzz_transform_output;

/// What a program is given: the delivery as it would be sent without the transform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Input {
    /// The stored body, as stored: the worker parses it when it is JSON.
    pub body: Bytes,
    /// The headers the delivery would carry (names in any case; the program sees them
    /// lower-cased, duplicates joined with `", "`).
    pub headers: Vec<(String, String)>,
    pub event_type: Option<String>,
}

/// Why a transform gave no delivery to send. Every message starts with `transform:` and names
/// the place at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The program text is over [`program::MAX_PROGRAM_BYTES`].
    #[error("transform: the program is {len} bytes, over the limit of {max}")]
    ProgramTooLong { len: usize, max: usize },
    /// Brackets (or string interpolations) nest deeper than [`program::MAX_NESTING`].
    #[error(
        "transform: {line}:{column}: brackets nest deeper than {max}; split the program into definitions"
    )]
    NestedTooDeep {
        line: usize,
        column: usize,
        max: usize,
    },
    /// The program's structure is deeper than [`program::MAX_DEPTH`] (operators of one chain,
    /// prefix keywords and brackets, counted by [`program::depth_estimate`]).
    #[error(
        "transform: the program nests about {depth} levels deep, over the limit of {max} \
         (each operator of a chain, keyword and bracket is a level); group long chains in \
         parentheses or definitions"
    )]
    TooDeep { depth: usize, max: usize },
    /// jaq could not parse or compile the program; the message gives `line:column` of each
    /// error.
    #[error("transform: {0}")]
    Compile(String),
    /// The program stopped with an error (jaq's message).
    #[error("transform: runtime error: {0}")]
    Runtime(String),
    /// The program's output is not what a transform must give.
    #[error("transform: invalid output: {0}")]
    InvalidOutput(String),
    /// The output is larger than the pool's `max_output`.
    #[error("transform: the output is over the limit of {max} bytes")]
    OutputTooLarge { max: usize },
    /// No answer within the pool's `timeout`: the worker was killed.
    #[error("transform: timed out after {0:?}; the program was stopped")]
    Timeout(Duration),
    /// The worker running the program died (a stack overflow, say): it was replaced.
    #[error("transform: the worker process died while running the program ({0})")]
    WorkerDied(String),
    /// No worker process could be started.
    #[error("transform: cannot start a worker process: {0}")]
    Spawn(String),
    /// A worker answered something that is not a frame of the protocol: it was killed.
    #[error("transform: the worker answered a malformed frame ({0}); it was replaced")]
    Protocol(String),
    /// The pool was dropped before the run was answered.
    #[error("transform: the worker pool is shut down")]
    Closed,
}

impl TransformError {
    /// True when the fault is hookgate's machinery (no worker could start, a broken frame, a
    /// pool shutting down) rather than the program or its input: running the same program
    /// on the same input later may well succeed.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, Self::Spawn(_) | Self::Protocol(_) | Self::Closed)
    }
}
