//! Failures of the PostgreSQL backend and how they reach callers: every driver or pool error
//! becomes [`StoreError::Storage`] with the server's own message, **never with the
//! password**; a transaction that lost a deadlock or a serialization race is run again
//! ([`retrying`]).

use std::future::Future;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// Why a database operation failed.
#[derive(Debug)]
pub(super) enum Fail {
    Pg(tokio_postgres::Error),
    Pool(String),
    Store(StoreError),
    /// Rows of these days had no partition to go to: made, the write is tried again.
    NoPartition(Vec<super::partitions::Day>),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<deadpool_postgres::PoolError> for Fail {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(e) => Fail::Pg(e),
            PoolError::Closed => Fail::Store(StoreError::Closed),
            PoolError::Timeout(kind) => Fail::Pool(format!(
                "no database connection within the pool's timeout ({kind:?})"
            )),
            other => Fail::Pool(other.to_string()),
        }
    }
}

impl Fail {
    /// A conflict with a concurrent transaction: running the transaction again succeeds.
    fn transient(&self) -> bool {
        matches!(self, Fail::Pg(e) if e.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }))
    }

    /// A lock not got within the transaction's `lock_timeout`, or a deadlock this transaction
    /// lost: what maintenance that must lock whole tables gives up on until its next pass.
    pub(super) fn lock_lost(&self) -> bool {
        matches!(self, Fail::Pg(e) if e.code().is_some_and(|c| {
            *c == SqlState::LOCK_NOT_AVAILABLE || *c == SqlState::T_R_DEADLOCK_DETECTED
        }))
    }

    /// The message a caller sees: the server's message and code, or the driver's error and
    /// its cause. Neither carries the connection string.
    pub(super) fn message(&self) -> String {
        match self {
            Fail::Pg(e) => describe(e),
            Fail::Pool(m) => m.clone(),
            Fail::Store(e) => e.to_string(),
            Fail::NoPartition(days) => {
                let days: Vec<String> = days.iter().map(ToString::to_string).collect();
                format!("no history partitions for {}", days.join(", "))
            }
        }
    }

    pub(super) fn into_store(self) -> StoreError {
        match self {
            Fail::Store(e) => e,
            other => StoreError::Storage(other.message()),
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            m.push_str(": ");
            m.push_str(detail);
        }
        return m;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has lost a race to a concurrent
/// transaction five times. Each attempt takes (and gives back) its own connection, so nothing
/// is held while waiting to try again.
pub(super) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    let mut tries = 0u32;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if e.transient() && tries < 4 => {
                tries += 1;
                let jitter = rand::random_range(0..10u64);
                tokio::time::sleep(Duration::from_millis(5 * u64::from(tries) + jitter)).await;
            }
            Err(e) => return Err(e.into_store()),
        }
    }
}

/// Parses a connection string, saying what is wrong without repeating it.
pub(super) fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        // The URL itself is never repeated: a password can hide where no masking expects it.
        StoreError::Storage(format!("the database URL is not valid: {}", describe(&e)))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("hookgate");
    }
    // A transaction left open by a bug must not pin the oldest snapshot (and so vacuum).
    // Every statement is planned for its parameters and the tables as they are now: a pooled
    // connection prepares each statement once, and a generic plan chosen while a table was
    // small (a new database; the hot table between bursts) would scan the whole table once
    // it is big, until an ANALYZE, which may never come (autovacuum off). No JIT: every
    // statement here is short, and a cost estimate over the partitions of a day-partitioned
    // table passes the JIT thresholds, which compiled one statement for 0.7 s on every run.
    let guard = "-c idle_in_transaction_session_timeout=30000 \
                 -c plan_cache_mode=force_custom_plan -c jit=off";
    let options = match config.get_options() {
        Some(o) if !o.is_empty() => format!("{o} {guard}"),
        _ => guard.to_string(),
    };
    config.options(&options);
    Ok(config)
}

/// `host:port/database` (the first host, or the socket directory), for messages.
pub(super) fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_plans_each_statement_afresh_and_ends_idle_transactions() {
        for url in [
            "postgres://hook@db/hookgate",
            "postgres://hook@db/hookgate?options=-c%20statement_timeout%3D5000",
        ] {
            let config = parse_url(url).expect("parses");
            let options = config.get_options().expect("options");
            assert!(
                options.contains("plan_cache_mode=force_custom_plan"),
                "{options}"
            );
            assert!(options.contains("jit=off"), "{options}");
            assert!(
                options.contains("idle_in_transaction_session_timeout=30000"),
                "{options}"
            );
        }
        let theirs = parse_url("postgres://hook@db/hookgate?options=-c%20statement_timeout%3D5000")
            .expect("parses");
        assert!(
            theirs
                .get_options()
                .expect("options")
                .contains("statement_timeout=5000")
        );
    }

    #[test]
    fn a_target_names_host_port_and_database() {
        let c = parse_url("postgres://u:secret@db.internal:6543/hooks").expect("parses");
        assert_eq!(describe_target(&c), "db.internal:6543/hooks");
        let bad = parse_url("postgres://u:secret@db:notaport/x").expect_err("refused");
        assert!(!bad.to_string().contains("secret"), "{bad}");
    }
}
