//! `zfs-sync-server`: the REST witness server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use clap::{Parser, Subcommand};
use poem::Server;
use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;
use tracing_subscriber::EnvFilter;
use zfs_sync::service::auth;
use zfs_sync_http::config::{LogFormat, Settings};
use zfs_sync_http::listener::{GuardedAcceptor, Limits, tls_config};
use zfs_sync_http::{AppState, app, delivery, scheduler, store};

/// The zfs-sync witness server.
#[derive(Debug, Parser)]
#[command(name = "zfs-sync-server", version, about)]
struct Cli {
    /// Config file (YAML or TOML); default: the first of zfs_sync.yaml/.toml in the working
    /// directory, config/ or /config.
    #[arg(long, short = 'c', global = true, env = "ZFS_SYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the setting `host`, `ZFS_SYNC_HOST`).
    #[arg(long, global = true)]
    host: Option<String>,
    /// Port to listen on (overrides the setting `port`, `ZFS_SYNC_PORT`).
    #[arg(long, global = true)]
    port: Option<u16>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Create a new admin key, print it once, and exit (alias of `admin-key create`).
    CreateAdminKey {
        /// A name for people (who holds it, what for).
        #[arg(long, default_value = "created with create-admin-key")]
        name: String,
    },
    /// List, create or revoke admin keys.
    #[command(subcommand)]
    AdminKey(AdminKeyCommand),
    /// Print the OpenAPI document and exit.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum AdminKeyCommand {
    /// List admin keys: id, source, creation time and name (never a key).
    List,
    /// Create an admin key, print it once.
    Create {
        /// A name for people (who holds it, what for).
        #[arg(long)]
        name: String,
    },
    /// Revoke the admin key with this id (the last one cannot be revoked).
    Revoke {
        /// The key's id, as `admin-key list` shows it.
        id: uuid::Uuid,
    },
}

/// Runs an `admin-key` command against the store (the same use cases as `/admin/keys`).
async fn admin_key_command(settings: &Settings, command: AdminKeyCommand) -> Result<(), String> {
    let store = open_store(settings).await?;
    let store = store.as_ref();
    match command {
        AdminKeyCommand::List => {
            let keys = auth::list_admin_keys(store)
                .await
                .map_err(|e| e.to_string())?;
            let lines: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        k.id,
                        k.source.as_str(),
                        k.created_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        k.name
                    )
                })
                .collect();
            print_out(&lines.join("\n"))
        }
        AdminKeyCommand::Create { name } => {
            let issued = auth::create_admin_key(store, &name, Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            print_out(&issued.key)
        }
        AdminKeyCommand::Revoke { id } => {
            auth::revoke_admin_key(store, id, Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            print_out(&format!("revoked admin key {id}"))
        }
    }
}

/// Writes `text` and a newline to stdout. A closed pipe (`zfs-sync-server openapi | head`)
/// ends the output quietly instead of panicking; other write errors are returned.
fn print_out(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

/// Creates (or restricts) the files that hold secrets so that only their owner reads them:
/// a SQLite database file 0600 (SQLite gives its `-wal` and `-shm` files the same mode) and
/// the log directory 0700 (log files roll inside it).
#[cfg(unix)]
fn restrict_files(settings: &Settings) -> Result<bool, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let mut created = false;
    let url = settings.database_url();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .filter(|p| !p.starts_with(':'))
    {
        let path = std::path::Path::new(path.split('?').next().unwrap_or(path));
        created = !path.exists();
        if created && !settings.create_database {
            return Err(format!(
                "the database file {} does not exist, and create_database (ZFS_SYNC_CREATE_DATABASE) is false: refusing to start on a new, empty database",
                path.display()
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                format!(
                    "cannot create the database directory {}: {e}",
                    parent.display()
                )
            })?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)))
            .map_err(|e| format!("cannot restrict the database file {}: {e}", path.display()))?;
    }
    if let Some(dir) = &settings.log_dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
    }
    Ok(created)
}

#[cfg(not(unix))]
fn restrict_files(_: &Settings) -> Result<bool, String> {
    Ok(false)
}

fn init_logging(settings: &Settings) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, fmt};
    let filter =
        || EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = settings.log_format == LogFormat::Json;
    let stdout = if json {
        fmt::layer()
            .json()
            .with_current_span(true)
            .with_filter(filter())
            .boxed()
    } else {
        fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_filter(filter())
            .boxed()
    };
    let (file, guard) = match &settings.log_dir {
        Some(dir) => {
            let appender = tracing_appender::rolling::daily(dir, "zfs-sync.log");
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = if json {
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(writer)
                    .with_filter(filter())
                    .boxed()
            } else {
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_filter(filter())
                    .boxed()
            };
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(stdout)
        .with(file)
        .init();
    guard
}

async fn open_store(
    settings: &Settings,
) -> Result<std::sync::Arc<dyn zfs_sync::store::Store>, String> {
    // The database file and its directory exist already: see `restrict_files`.
    let url = settings.database_url();
    let opened = store::open_reporting(settings).await.map_err(|e| {
        format!(
            "cannot open the database {}: {e}",
            zfs_sync_http::config::redact_url(&url)
        )
    })?;
    if opened.created {
        tracing::warn!(
            database = %zfs_sync_http::config::redact_url(&url),
            schema = ?settings.database_schema,
            "created the zfs-sync tables in a NEW, EMPTY PostgreSQL database (no keys, no systems): if an existing one was expected here, stop the server and check database_url and database_schema; set create_database: false to refuse this"
        );
    }
    Ok(opened.store)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing open requests");
}

async fn serve(
    settings: Settings,
    config_file: Option<PathBuf>,
    tls: Option<Arc<ServerConfig>>,
) -> Result<(), String> {
    let store = open_store(&settings).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = ?config_file,
        database = %zfs_sync_http::config::redact_url(&settings.database_url()),
        "zfs-sync server starting"
    );
    let setup = auth::ensure_admin_key(store.as_ref(), settings.admin_key.as_deref(), Utc::now())
        .await
        .map_err(|e| format!("admin key setup failed: {e}"))?;
    if let Some(key) = setup.generated {
        // The key goes to the terminal (stderr) only, never through the log (a log file
        // would keep it).
        tracing::warn!(
            "no admin key was configured and the database had none: generated one and printed it on stderr, only now; store it safely"
        );
        eprintln!("zfs-sync-server: generated admin key (shown only now): {key}");
    }
    if setup.configured {
        tracing::info!("admin key from configuration is active");
    }
    if setup.revoked > 0 {
        tracing::warn!(
            revoked = setup.revoked,
            "the admin key configured before (admin_key) was revoked: it no longer works"
        );
    }
    let addr = format!("{}:{}", settings.host, settings.port);
    let max_connections = settings.connection_cap();
    let acceptor = GuardedAcceptor::bind(
        &addr,
        max_connections,
        Limits::from_settings(&settings),
        tls.clone(),
    )
    .await
    .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let state = AppState::new(store, settings.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let sched = tokio::spawn(scheduler::run(state.clone(), stop_rx.clone()));
    let webhooks = settings
        .webhooks_enabled
        .then(|| tokio::spawn(delivery::run(state.clone(), stop_rx)));
    tracing::info!(%addr, tls = tls.is_some(), max_connections, "listening");
    let result = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            app(state),
            shutdown_signal(),
            Some(std::time::Duration::from_secs(30)),
        )
        .await
        .map_err(|e| format!("cannot serve on {addr}: {e}"));
    let _ = stop_tx.send(true);
    let _ = sched.await;
    if let Some(w) = webhooks {
        let _ = w.await;
    }
    tracing::info!("stopped");
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        return match print_out(&zfs_sync_http::openapi_json()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zfs-sync-server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (mut settings, config_file) = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zfs-sync-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(host) = cli.host {
        settings.host = host;
    }
    if let Some(port) = cli.port {
        settings.port = port;
    }
    let checked = settings
        .validate()
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let tls = match (&settings.tls_cert, &settings.tls_key) {
                (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
                _ => None,
            };
            Ok((tls, restrict_files(&settings)?))
        });
    let (tls, created) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("zfs-sync-server: {e}");
            return ExitCode::from(2);
        }
    };
    let _guard = init_logging(&settings);
    if created {
        tracing::warn!(
            database = %zfs_sync_http::config::redact_url(&settings.database_url()),
            "created a NEW, EMPTY database (no keys, no systems): if an existing one was expected here, stop the server and check database_url; set create_database: false to refuse this"
        );
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zfs-sync-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings, config_file, tls).await,
            Command::Migrate => {
                open_store(&settings).await?;
                print_out("database schema is up to date")
            }
            Command::CreateAdminKey { name } => {
                admin_key_command(&settings, AdminKeyCommand::Create { name }).await
            }
            Command::AdminKey(c) => admin_key_command(&settings, c).await,
            Command::Openapi => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("zfs-sync-server: {e}");
            ExitCode::FAILURE
        }
    }
}
