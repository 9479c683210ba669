//! The `hookgate` command line: `serve`, `check-config`, `sign` (prints the headers a provider
//! would send, for trying the gateway with curl), and the operator commands in `operator`
//! (`events`, `deliveries`, `dlq`, `endpoints`), which talk to a running gateway's admin API. Parsing is clap's; this module
//! turns each command into calls on the library and errors into messages and exit codes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod operator;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError, HmacAlgorithm, HmacEncoding, Secret, Validated};
use crate::verify::{
    discord, dropbox, github, hmac::Generic, linear, msgraph, paddle, shopify, slack,
    standard_webhooks, stripe, twitch, x, zoom,
};

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
    /// Endpoints: list, pause, resume.
    Endpoints {
        #[command(flatten)]
        conn: operator::Conn,
        #[command(subcommand)]
        cmd: operator::Endpoints,
    },
    /// Print the headers a sender would put on the body read from stdin.
    Sign {
        #[arg(long, value_enum)]
        scheme: SignScheme,
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
        #[arg(long, default_value = "x-signature")]
        header: String,
        #[arg(long, value_enum, default_value = "sha256")]
        algorithm: Algorithm,
        #[arg(long, value_enum, default_value = "hex")]
        encoding: Encoding,
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SignScheme {
    StandardWebhooks,
    Stripe,
    Github,
    Shopify,
    Slack,
    Paddle,
    Linear,
    Zoom,
    Meta,
    #[value(alias = "twitter")]
    X,
    Dropbox,
    Twitch,
    /// Graph signs nothing: checks that every value[].clientState is the secret.
    #[value(alias = "msgraph")]
    MicrosoftGraph,
    Okta,
    /// --secret is the private key: a 32-byte Ed25519 seed in hex (its public key goes to
    /// stderr, for the source's secrets).
    Discord,
    Hmac,
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
    #[error("--secret: {0}")]
    Secret(String),
    #[error("{0}")]
    Operator(#[from] operator::OperatorError),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, log_format } => serve(config.as_deref(), log_format),
        Command::CheckConfig { config } => check_config(&config),
        Command::Compact { data_dir } => compact(&data_dir),
        Command::Events { conn, cmd } => operator::events(conn, cmd).map_err(CliError::from),
        Command::Deliveries { conn, cmd } => {
            operator::deliveries(conn, cmd).map_err(CliError::from)
        }
        Command::Dlq { conn, cmd } => operator::dlq(conn, cmd).map_err(CliError::from),
        Command::Endpoints { conn, cmd } => operator::endpoints(conn, cmd).map_err(CliError::from),
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

/// Loads a config file (or the embedded default), applies `HOOKGATE_ADMIN_TOKEN`, validates.
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
    scheme: SignScheme,
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
    let key = secret.as_bytes().to_vec();
    match scheme {
        SignScheme::StandardWebhooks => {
            let key = standard_webhooks::decode_secret(secret).map_err(CliError::Secret)?;
            let id = id.unwrap_or_else(|| format!("msg_{}", ulid::Ulid::generate()));
            writeln!(out, "webhook-id: {id}")?;
            writeln!(out, "webhook-timestamp: {ts}")?;
            writeln!(
                out,
                "webhook-signature: {}",
                standard_webhooks::sign(&key, &id, ts, &body)
            )?;
        }
        SignScheme::Stripe => {
            writeln!(out, "stripe-signature: {}", stripe::sign(secret, ts, &body))?
        }
        // Meta signs as GitHub does.
        SignScheme::Github | SignScheme::Meta => writeln!(
            out,
            "x-hub-signature-256: {}",
            github::Github::new(vec![]).sign(&key, &body)
        )?,
        SignScheme::Shopify => writeln!(
            out,
            "x-shopify-hmac-sha256: {}",
            shopify::verifier(vec![]).sign(&key, 0, &body)
        )?,
        SignScheme::Slack => {
            writeln!(out, "x-slack-request-timestamp: {ts}")?;
            writeln!(
                out,
                "x-slack-signature: {}",
                slack::verifier(vec![], 0).sign(&key, ts, &body)
            )?;
        }
        SignScheme::Paddle => {
            writeln!(out, "paddle-signature: {}", paddle::sign(secret, ts, &body))?
        }
        SignScheme::Linear => writeln!(
            out,
            "linear-signature: {}",
            linear::Linear::new(vec![], 0).sign(&key, &body)
        )?,
        SignScheme::Zoom => {
            writeln!(out, "x-zm-request-timestamp: {ts}")?;
            let sig = zoom::verifier(vec![], 0).sign(&key, ts, &body);
            writeln!(out, "x-zm-signature: {sig}")?;
        }
        SignScheme::X => writeln!(
            out,
            "x-twitter-webhooks-signature: {}",
            x::verifier(vec![]).sign(&key, 0, &body)
        )?,
        SignScheme::Dropbox => writeln!(
            out,
            "x-dropbox-signature: {}",
            dropbox::verifier(vec![]).sign(&key, 0, &body)
        )?,
        SignScheme::Twitch => {
            let id = id.unwrap_or_else(|| ulid::Ulid::generate().to_string().to_lowercase());
            let at =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts.max(0).unsigned_abs());
            let stamp = humantime::format_rfc3339_nanos(at).to_string();
            writeln!(out, "{}: {id}", twitch::MESSAGE_ID)?;
            writeln!(out, "{}: {stamp}", twitch::MESSAGE_TIMESTAMP)?;
            writeln!(out, "{}: {message_type}", twitch::MESSAGE_TYPE)?;
            let sig = twitch::sign(&key, &id, &stamp, &body);
            writeln!(out, "{}: {sig}", twitch::MESSAGE_SIGNATURE)?;
        }
        SignScheme::MicrosoftGraph => {
            let states = msgraph::ClientStates {
                keys: vec![key.clone().into()],
            };
            states.verify(&body).map_err(|e| {
                CliError::Secret(format!(
                    "Graph signs nothing: the body must carry the secret in every value[].clientState ({e})"
                ))
            })?;
            writeln!(out, "content-type: application/json")?;
        }
        SignScheme::Okta => {
            let name = if header == "x-signature" {
                "authorization"
            } else {
                header.as_str()
            };
            writeln!(out, "{name}: {secret}")?;
        }
        SignScheme::Discord => {
            let (sig, public) = discord::sign(secret, ts, &body).map_err(CliError::Secret)?;
            eprintln!("public key (the source's secret): {public}");
            writeln!(out, "{}: {sig}", discord::SIGNATURE)?;
            writeln!(out, "{}: {ts}", discord::TIMESTAMP)?;
        }
        SignScheme::Hmac => {
            let header = http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                CliError::Secret(format!("--header {header:?} is not a header name"))
            })?;
            let g = Generic {
                headers: vec![header.clone()],
                signed: vec![crate::verify::hmac::Part::Body],
                timestamp_header: None,
                tolerance: 0,
                algorithm: match algorithm {
                    Algorithm::Sha1 => HmacAlgorithm::Sha1,
                    Algorithm::Sha256 => HmacAlgorithm::Sha256,
                    Algorithm::Sha512 => HmacAlgorithm::Sha512,
                },
                encoding: match encoding {
                    Encoding::Hex => HmacEncoding::Hex,
                    Encoding::Base64 => HmacEncoding::Base64,
                },
                prefix,
                keys: Vec::new(),
            };
            writeln!(out, "{header}: {}", g.sign(secret.as_bytes(), 0, &body))?;
        }
    }
    Ok(())
}
