//! The domain model: what hookgate works with, whatever it was read from. Endpoints, sources,
//! retry policies, secrets and keys, the admin API's roles, the reach policy, and the events and deliveries the store
//! keeps. Nothing here imports `config`, the store's on-disk records or HTTP handlers: config
//! validates into these types, the store keeps them, and the API shows them.

pub mod endpoint;
pub mod event;
pub mod health;
pub mod ops;
pub mod reach;
pub mod role;
pub mod secret;
pub mod source;

pub use endpoint::{Destination, Endpoint, RateLimit, RetryPolicy};
pub use health::{BreakerPolicy, HealthPolicy, Ordering};
pub use role::{Grant, Role};
pub use secret::{Key, Secret};
pub use source::{HOOKGATE_SOURCE, Source, SyncResponse};
