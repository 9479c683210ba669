//! The phases, each a function of the shared `Bench` that returns its rows.

pub mod backlog;
pub mod ceilings;
pub mod console;
pub mod delivery;
pub mod hangup;
pub mod ingest;
pub mod latency;
pub mod postgres;
pub mod prune;
pub mod pull;
pub mod replay;
pub mod rules;
