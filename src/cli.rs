//! The `hookgate` command line: `serve`, `check-config`, `sign` (prints the headers a provider
//! would send, for trying the gateway with curl), and the operator commands in `operator`
//! (`events`, `deliveries`, `dlq`, `endpoints`), which talk to a running gateway's admin API
//! (`conn` finds it and the token to send). Parsing is clap's; this module
//! turns each command into calls on the library and errors into messages and exit codes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod conn;
mod events;
mod listen;
mod operator;
mod trials;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError, Validated};
use crate::model::Secret;
use crate::verify::{HmacAlgorithm, HmacEncoding, SchemeKind, SignInput};

#[derive(Debug, Parser)]
#[command(
    name = "hookgate",
    version,
    about = "A webhook gateway: verify, store durably, deliver, replay."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (embedded defaults when no --config is given).
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// How log lines are written.
        #[arg(long, value_enum, default_value = "human")]
        log_format: crate::telemetry::LogFormat,
    },
    /// Give the space of pruned data back to the file system (offline: stop the gateway first).
    Compact {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Apply the PostgreSQL schema this build needs (`store.backend = "postgres"`). Safe to run
    /// again, and from several nodes at once.
    Migrate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file; exits non-zero with the key at fault.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Events: list, show.
    Events {
        #[command(flatten)]
        conn: operator::Conn,
        #[command(subcommand)]
        cmd: operator::Events,
    },
    /// Deliveries: show one with every attempt.
    Deliveries {
        #[command(flatten)]
        conn: operator::Conn,
        #[command(subcommand)]
        cmd: operator::Deliveries,
    },
    /// Dead letters: list, replay.
    Dlq {
        #[command(flatten)]
        conn: operator::Conn,
        #[command(subcommand)]
        cmd: operator::Dlq,
    },
    /// Endpoints: list, pause, resume, enable.
    Endpoints {
        #[command(flatten)]
        conn: operator::Conn,
        #[command(subcommand)]
        cmd: operator::Endpoints,
    },
    /// Forward a running gateway's events to a local URL, through a pull endpoint (a
    /// temporary one unless --endpoint): acked on a 2xx, nacked otherwise.
    Listen(listen::Listen),
    /// Print the headers a sender would put on the body read from stdin.
    Sign {
        #[arg(long, value_parser = sign_schemes())]
        scheme: SchemeKind,
        #[arg(long, env = "HOOKGATE_SIGN_SECRET", hide_env_values = true)]
        secret: String,
        /// Message id (standard-webhooks, twitch); a fresh one by default.
        #[arg(long)]
        id: Option<String>,
        /// Twitch-Eventsub-Message-Type (twitch): notification, revocation or
        /// webhook_callback_verification.
        #[arg(long, default_value = "notification")]
        message_type: String,
        /// Unix seconds, for schemes that sign a timestamp; now by default.
        #[arg(long)]
        timestamp: Option<i64>,
        /// Header name (hmac; okta: the token header, default authorization).
        #[arg(long, default_value = SignInput::DEFAULT_HEADER)]
        header: String,
        #[arg(long, value_enum, default_value = "sha256")]
        algorithm: Algorithm,
        #[arg(long, value_enum, default_value = "hex")]
        encoding: Encoding,
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// A transform worker (started by the gateway itself): runs jq programs on frames read
    /// from stdin until it closes.
    #[command(hide = true)]
    TransformWorker,
}

/// `--scheme`'s values: every registered scheme that `hookgate sign` can sign for, with its
/// aliases, in registration order.
fn sign_schemes() -> impl TypedValueParser<Value = SchemeKind> {
    let values = SchemeKind::ALL.iter().filter_map(|k| {
        let signer = k.scheme().signer()?;
        let value = PossibleValue::new(k.name()).aliases(k.scheme().aliases().iter().copied());
        Some(match signer.help {
            Some(help) => value.help(help),
            None => value,
        })
    });
    // Only registered names get past the possible values, so the lookup cannot fail; an error
    // is still an error rather than a panic.
    PossibleValuesParser::new(values).try_map(|name| {
        SchemeKind::from_name(&name).ok_or_else(|| format!("{name:?} is not a scheme"))
    })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Encoding {
    Hex,
    Base64,
}

/// What can go wrong in a command, each with its own message.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        key: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Run(#[from] crate::RunError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("store.url: {0}")]
    Migrate(crate::store::StoreError),
    #[error("--secret: {0}")]
    Secret(String),
    #[error("{0}")]
    Operator(#[from] operator::OperatorError),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::TransformWorker => return crate::transform::worker::main(),
        Command::Serve { config, log_format } => serve(config.as_deref(), log_format),
        Command::CheckConfig { config } => check_config(&config),
        Command::Migrate { config } => migrate(&config),
        Command::Compact { data_dir } => compact(&data_dir),
        Command::Events { conn, cmd } => events::events(conn, cmd).map_err(CliError::from),
        Command::Deliveries { conn, cmd } => {
            operator::deliveries(conn, cmd).map_err(CliError::from)
        }
        Command::Dlq { conn, cmd } => operator::dlq(conn, cmd).map_err(CliError::from),
        Command::Endpoints { conn, cmd } => operator::endpoints(conn, cmd).map_err(CliError::from),
        Command::Listen(args) => listen::listen(args).map_err(CliError::from),
        Command::Sign {
            scheme,
            secret,
            id,
            message_type,
            timestamp,
            header,
            algorithm,
            encoding,
            prefix,
        } => sign(
            scheme,
            &secret,
            id,
            message_type,
            timestamp,
            header,
            algorithm,
            encoding,
            prefix,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Loads a config file (or the embedded default), applies `HOOKGATE_ADMIN_TOKEN` and
/// `HOOKGATE_DATABASE_URL` (each overrides the file), validates.
fn load(path: Option<&Path>) -> Result<Validated, CliError> {
    let mut config = match path {
        None => Config::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| CliError::ReadConfig {
                path: p.to_path_buf(),
                source,
            })?;
            Config::from_toml(&text)?
        }
    };
    if let Ok(token) = std::env::var("HOOKGATE_ADMIN_TOKEN") {
        config.admin.token = Some(Secret::new(token));
    }
    if let Ok(url) = std::env::var("HOOKGATE_DATABASE_URL") {
        config.store.url = Some(Secret::new(url));
    }
    Ok(config.validate()?)
}

fn compact(data_dir: &Path) -> Result<(), CliError> {
    let (before, after) = crate::store::compact(data_dir)
        .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
    println!(
        "{}: {before} bytes before, {after} after",
        data_dir.join(crate::store::DB_FILE).display()
    );
    Ok(())
}

fn check_config(path: &Path) -> Result<(), CliError> {
    let v = load(Some(path))?;
    println!(
        "{}: ok ({} sources, {} endpoints)",
        path.display(),
        v.sources.len(),
        v.endpoints.len()
    );
    Ok(())
}

fn migrate(path: &Path) -> Result<(), CliError> {
    let config = load(Some(path))?;
    let crate::config::StoreBackend::Postgres { url, .. } = &config.store else {
        println!(
            "{}: store.backend is \"redb\": the embedded store needs no migration",
            path.display()
        );
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let version = runtime
        .block_on(crate::store::postgres::migrate(url.expose()))
        .map_err(CliError::Migrate)?;
    println!(
        "{}: the database schema is at version {version}",
        path.display()
    );
    Ok(())
}

fn bind(
    key: &'static str,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, CliError> {
    let err = |source| CliError::Bind { key, addr, source };
    let l = std::net::TcpListener::bind(addr).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    tokio::net::TcpListener::from_std(l).map_err(err)
}

fn serve(path: Option<&Path>, log_format: crate::telemetry::LogFormat) -> Result<(), CliError> {
    // Validated in full before anything is bound or opened.
    let config = load(path)?;
    crate::telemetry::init(log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listeners = crate::Listeners {
            ingress: bind("ingress.listen", config.ingress_listen)?,
            admin: bind("admin.listen", config.admin_listen)?,
        };
        crate::run(config, listeners, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM. A second signal during shutdown exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutting down (a second signal exits at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[allow(clippy::too_many_arguments)]
fn sign(
    scheme: SchemeKind,
    secret: &str,
    id: Option<String>,
    message_type: String,
    timestamp: Option<i64>,
    header: String,
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: String,
) -> Result<(), CliError> {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body)?;
    let mut out = std::io::stdout().lock();
    let ts = timestamp
        .unwrap_or_else(|| i64::try_from(crate::clock::system_now_ms() / 1000).unwrap_or(0));
    let signer = scheme
        .scheme()
        .signer()
        .ok_or_else(|| CliError::Secret(format!("cannot sign for {}", scheme.name())))?;
    let input = SignInput {
        secret,
        body: &body,
        timestamp: ts,
        id: id.as_deref(),
        message_type: &message_type,
        header: &header,
        algorithm: match algorithm {
            Algorithm::Sha1 => HmacAlgorithm::Sha1,
            Algorithm::Sha256 => HmacAlgorithm::Sha256,
            Algorithm::Sha512 => HmacAlgorithm::Sha512,
        },
        encoding: match encoding {
            Encoding::Hex => HmacEncoding::Hex,
            Encoding::Base64 => HmacEncoding::Base64,
        },
        prefix: &prefix,
    };
    let signed = (signer.sign)(&input).map_err(CliError::Secret)?;
    if let Some(note) = &signed.note {
        eprintln!("{note}");
    }
    for (name, value) in &signed.headers {
        writeln!(out, "{name}: {value}")?;
    }
    Ok(())
}
