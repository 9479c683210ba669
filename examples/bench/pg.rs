//! The PostgreSQL side of the `pg-*` phases: the server they run on (`--postgres-url`), a fresh
//! database for each phase (created, migrated with `hookgate migrate`, dropped after), and what
//! PostgreSQL spent while a figure was measured (`watch.rs`).
//!
//! The harness does not start PostgreSQL and does not pin it: the server runs wherever the
//! kernel puts it, on both halves of the CPUs (on 2 cores: beside wrk and beside hookgate). So
//! the CPU it takes is taken from one side or the other, and the `pg` part of the CPU column
//! (every process of the server that serves the phase's database, plus its background
//! writers) says how much.

pub mod versus;
pub mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

/// The server the `pg-*` phases make their databases on.
pub struct Server {
    /// The `--postgres-url` text: a database of the same server is the same text with another
    /// database name. Never printed (it may hold a password).
    url: String,
    config: Config,
    /// Its version and the settings that decide commit cost, for the report.
    pub settings: String,
    /// Whether `pg_stat_statements` is loaded (`shared_preload_libraries`): per-statement
    /// times then come with each phase.
    pub statements: bool,
    seq: AtomicU64,
}

/// Connects to `config`'s database; the connection runs on a task of its own.
pub async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

impl Server {
    /// Connects to `url` (within 3 s) and reads its settings; an error says why not, without
    /// the URL.
    pub async fn probe(url: &str) -> Result<Server, String> {
        let mut config: Config = url
            .parse()
            .map_err(|e| format!("--postgres-url is not a PostgreSQL URL: {e}"))?;
        config.connect_timeout(Duration::from_secs(3));
        let target = describe(&config);
        let client = connect(&config)
            .await
            .map_err(|e| format!("no PostgreSQL answers at {target}: {e}"))?;
        let setting = |name: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one("SELECT current_setting($1)", &[&name])
                    .await
                    .and_then(|r| r.try_get::<_, String>(0))
                    .unwrap_or_default()
            }
        };
        let preload = setting("shared_preload_libraries").await;
        let settings = format!(
            "PostgreSQL {} at {target}: fsync = {}, synchronous_commit = {}, wal_sync_method = {}, \
             shared_buffers = {}, max_connections = {}, autovacuum = {}",
            setting("server_version").await,
            setting("fsync").await,
            setting("synchronous_commit").await,
            setting("wal_sync_method").await,
            setting("shared_buffers").await,
            setting("max_connections").await,
            setting("autovacuum").await,
        );
        drop_stale(&client).await;
        Ok(Server {
            url: url.to_string(),
            config,
            settings,
            statements: preload.split(',').any(|l| l.trim() == "pg_stat_statements"),
            seq: AtomicU64::new(0),
        })
    }

    /// The server of `url`, if a pg- phase is in `want`. One asked for by name and no server
    /// there (or a `hookgate` binary without the PostgreSQL backend, as an older commit's under
    /// `compare.sh`): the run stops. Asked for only through `all`: its phases are dropped from
    /// `want` with a line that says why.
    pub async fn for_phases(
        url: &str,
        hookgate: &Path,
        want: &mut Vec<&str>,
        all: bool,
    ) -> Option<Server> {
        if !want.iter().any(|p| p.starts_with("pg-")) {
            return None;
        }
        let migrates = tokio::process::Command::new(hookgate)
            .args(["migrate", "--help"])
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        let server = if migrates {
            Server::probe(url).await
        } else {
            Err(format!(
                "{} has no PostgreSQL backend (no `migrate` command)",
                hookgate.display()
            ))
        };
        match server {
            Ok(server) => {
                eprintln!("{}", server.settings);
                if !server.statements {
                    eprintln!(
                        "pg_stat_statements is not in shared_preload_libraries: \
                         no per-statement times"
                    );
                }
                Some(server)
            }
            Err(e) if all => {
                want.retain(|p| !p.starts_with("pg-"));
                // On stdout too: the report says the table lacks them, and why.
                println!("skipped pg-ingest, pg-ingest-2, pg-drain, pg-latency: {e}");
                eprintln!("skipped pg-ingest, pg-ingest-2, pg-drain, pg-latency: {e}");
                None
            }
            Err(e) => {
                eprintln!("bench: {e}");
                std::process::exit(2)
            }
        }
    }

    /// A connection to the `--postgres-url` database (where databases are created from).
    pub async fn admin(&self) -> Client {
        connect(&self.config).await.expect("the PostgreSQL server")
    }

    /// A fresh, empty database `hookgate_bench_<pid>_<n>`, with WAL I/O timing on for its
    /// sessions (so `pg_stat_wal` says how long commits' flushes took) and
    /// `pg_stat_statements` in it when the server has it loaded.
    pub async fn create(&self) -> Database {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("hookgate_bench_{}_{n}", std::process::id());
        let admin = self.admin().await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        // Superuser only: without it, WAL flush times are missing from the report, no more.
        let timing = admin
            .batch_execute(&format!(
                "ALTER DATABASE {name} SET track_wal_io_timing = on"
            ))
            .await
            .is_ok();
        let mut config = self.config.clone();
        config.dbname(&name);
        let statements = self.statements
            && connect(&config)
                .await
                .expect("the new database")
                .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .await
                .is_ok();
        Database {
            url: with_database(&self.url, &name),
            config,
            admin: self.config.clone(),
            name,
            timing,
            statements,
        }
    }
}

/// One phase's database.
pub struct Database {
    /// For hookgate's config. Never printed.
    url: String,
    pub config: Config,
    admin: Config,
    pub name: String,
    /// Whether WAL flushes are timed (`track_wal_io_timing` set for this database).
    pub timing: bool,
    /// Whether `pg_stat_statements` is there.
    pub statements: bool,
}

impl Database {
    /// The `[store]` keys of a gateway on this database.
    pub fn store_keys(&self, pool_size: u32) -> String {
        format!(
            "backend = \"postgres\"\nurl = \"{}\"\npool_size = {pool_size}\n",
            self.url
        )
    }

    /// `hookgate migrate --config FILE`, `toml` written to `dir`: the schema, as an operator
    /// applies it (`serve` refuses a database without it).
    pub async fn migrate(&self, hookgate: &Path, dir: &Path, toml: &str) {
        let config = dir.join(format!("migrate-{}.toml", self.name));
        std::fs::write(&config, toml).expect("config");
        let out = tokio::process::Command::new(hookgate)
            .arg("migrate")
            .arg("--config")
            .arg(&config)
            .env_remove("HOOKGATE_DATABASE_URL")
            .output()
            .await
            .expect("hookgate migrate");
        assert!(
            out.status.success(),
            "hookgate migrate failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Forgets the per-statement times so far (the migration's, the start's).
    pub async fn reset_statements(&self) {
        if self.statements
            && let Ok(c) = connect(&self.config).await
        {
            let _ = c
                .batch_execute(
                    "SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database \
                     WHERE datname = current_database()",
                )
                .await;
        }
    }

    /// What the database's statements took since the last reset (nothing without
    /// `pg_stat_statements`).
    pub async fn statements(&self, top: i64) -> Statements {
        let mut out = Statements::default();
        if !self.statements {
            return out;
        }
        let Ok(c) = connect(&self.config).await else {
            return out;
        };
        let ours = "dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                    AND query NOT LIKE '%pg_stat_statements%'";
        if let Ok(row) = c
            .query_one(
                &format!(
                    "SELECT coalesce(sum(total_exec_time), 0)::float8, \
                     coalesce(sum(calls), 0)::float8 FROM pg_stat_statements WHERE {ours}"
                ),
                &[],
            )
            .await
        {
            out.total = Some((row.try_get(0).unwrap_or(0.0), row.try_get(1).unwrap_or(0.0)));
        }
        let rows = c
            .query(
                &format!(
                    "SELECT calls, total_exec_time, rows, query FROM pg_stat_statements \
                     WHERE {ours} ORDER BY total_exec_time DESC LIMIT $1"
                ),
                &[&top],
            )
            .await
            .unwrap_or_default();
        out.top = rows
            .iter()
            .filter_map(|r| {
                let calls: i64 = r.try_get(0).ok()?;
                let total: f64 = r.try_get(1).ok()?;
                let rows: i64 = r.try_get(2).ok()?;
                let query: String = r.try_get(3).ok()?;
                let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
                let short: String = query.chars().take(90).collect();
                Some(format!(
                    "{calls} calls, {total:.0} ms ({:.3} ms each, {:.1} rows each): {short}",
                    total / (calls.max(1) as f64),
                    rows as f64 / calls.max(1) as f64,
                ))
            })
            .collect();
        out
    }

    /// Drops it, ending any connection still open to it.
    pub async fn drop(self) {
        if let Ok(admin) = connect(&self.admin).await
            && let Err(e) = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await
        {
            eprintln!("could not drop the bench database {}: {e}", self.name);
        }
    }
}

/// What a database's statements took, from `pg_stat_statements`: their execution only (a
/// COMMIT's WAL flush comes after its statement, and is not in it; nor are the executions of
/// a prepared `COPY`, which it does not see: ingest's events).
#[derive(Default)]
pub struct Statements {
    /// Total ms and calls of every statement.
    pub total: Option<(f64, f64)>,
    /// The ones that took longest, one line each: calls, total and mean ms, rows per call,
    /// the statement's start.
    pub top: Vec<String>,
}

/// `host:port` of the first host `config` names (a socket directory for a local socket).
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// `url` naming database `db` instead: the path of a URL, or a `dbname` key appended to the
/// key = value form (where a later key wins).
fn with_database(url: &str, db: &str) -> String {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return format!("{url} dbname={db}");
    };
    let scheme = &url[..url.len() - rest.len()];
    let (before_query, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    // The authority ends at the first '/' after the last '@' (a password may hold a '/').
    let auth_end = before_query.rfind('@').map_or(0, |at| at + 1);
    let path_at = before_query[auth_end..]
        .find('/')
        .map_or(before_query.len(), |p| auth_end + p);
    format!("{scheme}{}/{db}{query}", &before_query[..path_at])
}

/// Drops the bench databases of earlier runs that died before dropping theirs (their process
/// is gone).
async fn drop_stale(admin: &Client) {
    let Ok(rows) = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'hookgate\\_bench\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<_, String>(0) else {
            continue;
        };
        let pid = name
            .strip_prefix("hookgate_bench_")
            .and_then(|r| r.split('_').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            eprintln!("dropping {name}, left by an earlier run that did not finish");
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn another_database_of_the_same_server() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgresql://u:p/w@h/db?sslmode=disable", "b"),
            "postgresql://u:p/w@h/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "b"), "postgres://h/b");
        assert_eq!(
            with_database("host=h user=u", "b"),
            "host=h user=u dbname=b"
        );
    }
}
