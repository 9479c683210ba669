//! The schema, embedded and versioned. `hookgate_schema` holds the version the database is at;
//! [`migrate`] applies the missing versions in one transaction under an advisory lock, so it is
//! idempotent and two nodes may run it at once (the second waits, then finds nothing to do).
//! [`check`] is what `open` asks: **a node never runs on a schema other than its own**; an
//! older or missing one is refused with the command that fixes it.

use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::error::{Fail, describe_target, parse_url};
use crate::store::StoreError;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 4;

/// Each version's SQL, in order; a released version is never edited.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("schema/v1.sql")),
    // The history tables by day, their data carried over.
    (2, include_str!("schema/v2.sql")),
    // Ordered delivery: order keys and places, blocked rows out of the due index.
    (3, include_str!("schema/v3.sql")),
    // Each event's query string.
    (4, include_str!("schema/v4.sql")),
];

/// The key of the advisory lock migrations take (`hookgate` in ASCII, 0x686f6f6b67617465).
const MIGRATE_LOCK: i64 = 0x686f_6f6b_6761_7465;

/// Brings the database at `url` to this build's schema; returns the version it is at now. A
/// database at a newer version than this build knows is left alone, and refused.
pub async fn migrate(url: &str) -> Result<u32, StoreError> {
    let config = parse_url(url)?;
    let target = describe_target(&config);
    let (mut client, connection) = config.connect(NoTls).await.map_err(|e| {
        StoreError::Storage(format!(
            "cannot reach the database {target}: {}",
            Fail::from(e).message()
        ))
    })?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "the migration's connection ended");
        }
    });
    let result = async {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS hookgate_schema (version integer NOT NULL)")
            .await?;
        let current = read_version(&tx).await?;
        if current > SCHEMA_VERSION {
            return Err(Fail::Store(newer(&target, current)));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).await?;
            tracing::info!(version, database = %target, "schema migrated");
        }
        if current < SCHEMA_VERSION {
            tx.execute("DELETE FROM hookgate_schema", &[]).await?;
            tx.execute(
                "INSERT INTO hookgate_schema (version) VALUES ($1)",
                &[&(SCHEMA_VERSION as i32)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok::<u32, Fail>(SCHEMA_VERSION)
    }
    .await;
    drop(client);
    let _ = driver.await;
    result.map_err(|e| match e {
        Fail::Store(e) => e,
        other => StoreError::Storage(format!("migrating {target}: {}", other.message())),
    })
}

async fn read_version(client: &impl tokio_postgres::GenericClient) -> Result<u32, Fail> {
    let row = client
        .query_opt("SELECT max(version) FROM hookgate_schema", &[])
        .await?;
    let version: Option<i32> = match row {
        Some(r) => r.try_get(0)?,
        None => None,
    };
    Ok(version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0))
}

fn newer(target: &str, version: u32) -> StoreError {
    StoreError::Storage(format!(
        "the database schema of {target} is version {version}, newer than this build knows \
         ({SCHEMA_VERSION}): run a newer hookgate"
    ))
}

/// Refuses a database whose schema is missing, older or newer than this build's.
pub(super) async fn check(
    client: &deadpool_postgres::Object,
    target: &str,
) -> Result<(), StoreError> {
    let version = match read_version(&***client).await {
        Ok(v) => v,
        Err(Fail::Pg(e)) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => 0,
        Err(e) => {
            return Err(StoreError::Storage(format!(
                "cannot read the schema version of {target}: {}",
                e.message()
            )));
        }
    };
    match version.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(newer(target, version)),
        std::cmp::Ordering::Less => Err(StoreError::Storage(format!(
            "the database schema of {target} is version {version}, this build needs \
             {SCHEMA_VERSION}: run `hookgate migrate --config <file>`"
        ))),
    }
}
