//! Server configuration: defaults < config file (`zfs_sync.yaml`/`.toml` in the working
//! directory, `config/` or `/config`, or `--config PATH`) < environment `ZFS_SYNC_*`.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml, Yaml};
use serde::{Deserialize, Deserializer, Serialize};

/// Default body limit: 64 MiB, room for 100,000 snapshot reports of ~500 bytes each.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Every setting; each can come from the file (lower-case key) or `ZFS_SYNC_<KEY>`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `sqlite:///path/zfs_sync.db`, `postgres://…` or `memory:`; default: a SQLite file in
    /// the platform data directory.
    pub database_url: Option<String>,
    /// PostgreSQL schema for every table (created when missing); default `public`. Lets
    /// several witnesses (or test runs) share one database.
    pub database_schema: Option<String>,
    pub host: String,
    pub port: u16,
    /// A tracing filter: `info`, `debug`, `zfs_sync_http=debug,info`, …
    pub log_level: String,
    pub log_format: LogFormat,
    /// Also write logs to daily-rotated files in this directory.
    pub log_dir: Option<PathBuf>,
    /// The admin key (at least 32 characters); stored hashed at start.
    pub admin_key: Option<String>,
    pub heartbeat_timeout_seconds: u64,
    /// Allowed CORS origins; empty: CORS off. A list, or one comma-separated string.
    #[serde(deserialize_with = "string_or_list")]
    pub cors_origins: Vec<String>,
    pub body_limit_bytes: usize,
    /// Failed authentications a client address may make per minute before it is answered
    /// 429 (with `Retry-After`) for the rest of that minute; 0: no limit. Behind a reverse
    /// proxy every client shares the proxy's address: raise it there.
    pub auth_failures_per_minute: u32,
    /// Whether a missing SQLite database file, or the tables of a PostgreSQL database (or
    /// schema) that has none, may be created at start (logged loudly when they are). `false`
    /// in production: a wrong path, database or schema, or a deleted file, then stops the
    /// server instead of starting it on an empty database with no keys.
    pub create_database: bool,
    /// A kept-alive connection that starts no new request for this long after an answer is
    /// closed; so is one whose answer stalls (the client reads nothing) this long.
    pub idle_timeout_seconds: u64,
    /// The whole request head (request line and headers, or the TLS handshake and the head)
    /// must arrive within this many seconds of the connection or of its first byte: a client
    /// that dribbles headers (slowloris) is closed.
    pub header_timeout_seconds: u64,
    /// A request body must arrive within this many seconds of its head (at 64 MiB and the
    /// default 300 s: at least ~220 KB/s).
    pub body_timeout_seconds: u64,
    /// Most connections open at once; further ones wait in the kernel's queue until one
    /// closes. Default: three quarters of the open-file limit (`RLIMIT_NOFILE`), leaving the
    /// rest for the database, logs and TLS files.
    pub max_connections: Option<usize>,
    /// Most request bodies over 1 MiB (or of undeclared length) read at once; further ones
    /// wait. Bounds the memory that large uploads take together.
    pub large_bodies_at_once: usize,
    /// Most instructions calls (`GET /sync/instructions/{id}`) planned at once by this
    /// process; further ones wait for a slot, holding nothing. Each call loads and plans its
    /// groups (a group of 5 hosts × 20,000 snapshots is ~100,000 records in memory while it
    /// is planned): unbounded, a burst of agents on a busy server held one such copy per
    /// waiting call and the process' memory grew with the queue. Default: the number of
    /// cores (planning is CPU-bound; more at once only interleave).
    pub instructions_at_once: Option<usize>,
    /// SQLite page cache of all connections together (half for the writer, half shared by
    /// the readers); PostgreSQL ignores it.
    pub sqlite_cache_bytes: usize,
    /// Serve HTTPS with this PEM certificate chain (needs `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// How long a handed-out job stays leased without a result.
    pub job_lease_seconds: u64,
    /// Most bytes of heap the inventories cached between plans take (0: no cache).
    pub inventory_cache_bytes: usize,
    /// Deprecated: the cache's size as a record count, taken as
    /// `inventory_cache_records × CACHE_BYTES_PER_RECORD` (64) bytes. Refused together with
    /// an `inventory_cache_bytes` other than the default.
    pub inventory_cache_records: Option<usize>,
    /// How old a sync state's stored `last_check` may grow before a host's instructions
    /// fetch rewrites an otherwise unchanged state (0: every fetch).
    pub state_touch_seconds: u64,
    /// After a transfer fails it is held back `retry_base_seconds · 2^(attempts−1)` seconds
    /// (0: no backoff), at most `retry_max_seconds`.
    pub retry_base_seconds: u64,
    /// The longest a failed transfer is held back.
    pub retry_max_seconds: u64,
    /// Whether `/metrics` is served without a key (otherwise it needs an admin key). Public
    /// metrics carry no dataset names: their edge series are per group and host pair.
    pub metrics_public: bool,
    /// Most series of the per-edge families (`zfs_sync_edge_*`) on `/metrics`; beyond it they
    /// are aggregated per (source host, target host), then cut to the worst host pairs (see
    /// [`crate::metrics`]). 0: none, only the counts per status.
    pub metrics_max_edge_series: usize,
    /// How often the background scheduler wakes (groups are checked at their own interval).
    pub scheduler_tick_seconds: u64,
    /// Whether this server delivers events to webhooks (several servers on one database may
    /// all do so: each attempt is leased, so an event is not posted twice at once).
    pub webhooks_enabled: bool,
    /// How often the webhook worker looks for new events (a breach the scheduler records is
    /// posted within `scheduler_tick_seconds` + this).
    pub webhook_poll_seconds: u64,
    /// Attempts at one event before a webhook gives it up (logged `failed`) and moves on.
    pub webhook_max_attempts: u32,
    /// How long one POST to a webhook may take (connect, send, answer).
    pub webhook_timeout_seconds: u64,
    /// After a failed POST the event is retried `webhook_retry_base_seconds · 2^(attempts−1)`
    /// seconds later, ...
    pub webhook_retry_base_seconds: u64,
    /// ... at most this long.
    pub webhook_retry_max_seconds: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("database_schema", &self.database_schema)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("log_dir", &self.log_dir)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<set>"))
            .field("heartbeat_timeout_seconds", &self.heartbeat_timeout_seconds)
            .field("cors_origins", &self.cors_origins)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .field("idle_timeout_seconds", &self.idle_timeout_seconds)
            .field("header_timeout_seconds", &self.header_timeout_seconds)
            .field("body_timeout_seconds", &self.body_timeout_seconds)
            .field("max_connections", &self.max_connections)
            .field("large_bodies_at_once", &self.large_bodies_at_once)
            .field("instructions_at_once", &self.instructions_at_once)
            .field("sqlite_cache_bytes", &self.sqlite_cache_bytes)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("create_database", &self.create_database)
            .field("job_lease_seconds", &self.job_lease_seconds)
            .field("inventory_cache_bytes", &self.inventory_cache_bytes)
            .field("inventory_cache_records", &self.inventory_cache_records)
            .field("state_touch_seconds", &self.state_touch_seconds)
            .field("retry_base_seconds", &self.retry_base_seconds)
            .field("retry_max_seconds", &self.retry_max_seconds)
            .field("metrics_public", &self.metrics_public)
            .field("metrics_max_edge_series", &self.metrics_max_edge_series)
            .field("scheduler_tick_seconds", &self.scheduler_tick_seconds)
            .field("webhooks_enabled", &self.webhooks_enabled)
            .field("webhook_poll_seconds", &self.webhook_poll_seconds)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("webhook_timeout_seconds", &self.webhook_timeout_seconds)
            .field(
                "webhook_retry_base_seconds",
                &self.webhook_retry_base_seconds,
            )
            .field("webhook_retry_max_seconds", &self.webhook_retry_max_seconds)
            .finish()
    }
}

/// A database URL with its password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
        && let Some((user, _)) = creds.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

impl Default for Settings {
    fn default() -> Self {
        let sync = zfs_sync::service::sync::SyncSettings::default();
        let webhooks = zfs_sync::service::webhooks::DeliverySettings::default();
        Settings {
            database_url: None,
            database_schema: None,
            host: "0.0.0.0".into(),
            port: 8000,
            log_level: "info".into(),
            log_format: LogFormat::Human,
            log_dir: None,
            admin_key: None,
            heartbeat_timeout_seconds: zfs_sync::service::health::DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
            cors_origins: Vec::new(),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            auth_failures_per_minute: 30,
            idle_timeout_seconds: 60,
            header_timeout_seconds: 10,
            body_timeout_seconds: 300,
            max_connections: None,
            large_bodies_at_once: 4,
            instructions_at_once: None,
            sqlite_cache_bytes: zfs_sync_storage::DEFAULT_SQLITE_CACHE_BYTES,
            tls_cert: None,
            tls_key: None,
            create_database: true,
            job_lease_seconds: sync.job_lease_seconds,
            inventory_cache_bytes: sync.inventory_cache_bytes,
            inventory_cache_records: None,
            state_touch_seconds: sync.state_touch_seconds,
            retry_base_seconds: sync.retry_base_seconds,
            retry_max_seconds: sync.retry_max_seconds,
            metrics_public: true,
            metrics_max_edge_series: crate::metrics::DEFAULT_MAX_EDGE_SERIES,
            scheduler_tick_seconds: 30,
            webhooks_enabled: true,
            webhook_poll_seconds: 5,
            webhook_max_attempts: webhooks.max_attempts,
            webhook_timeout_seconds: 10,
            webhook_retry_base_seconds: webhooks.retry_base_seconds,
            webhook_retry_max_seconds: webhooks.retry_max_seconds,
        }
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// The levels a log filter may name.
const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// A log filter is a level, or comma-separated directives each ending in `=<level>`
/// (`info,zfs_sync_http=debug`). A bare word that is no level (`warning`) would be read by
/// the tracing filter as a module name and silently turn every other line off, the one-time
/// admin key included: refused, naming the levels.
fn check_log_level(filter: &str) -> Result<(), String> {
    let rule = |what: &str| {
        format!(
            "{what}: must be a level ({}) or directives such as info,zfs_sync_http=debug",
            LOG_LEVELS.join(", ")
        )
    };
    if filter.trim().is_empty() {
        return Err(rule("is empty"));
    }
    for directive in filter.split(',').map(str::trim) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(rule(&format!("\"{directive}\" names no level")));
        }
    }
    if tracing_subscriber::EnvFilter::try_new(filter).is_err() {
        return Err(rule(&format!("\"{filter}\" is not a valid filter")));
    }
    Ok(())
}

/// The keys read from the environment (`ZFS_SYNC_` + upper case). Others with that prefix
/// (e.g. `ZFS_SYNC_TEST_POSTGRES_URL`) are not settings and are ignored.
pub const ENV_KEYS: &[&str] = &[
    "database_url",
    "database_schema",
    "host",
    "port",
    "log_level",
    "log_format",
    "log_dir",
    "admin_key",
    "heartbeat_timeout_seconds",
    "cors_origins",
    "body_limit_bytes",
    "auth_failures_per_minute",
    "idle_timeout_seconds",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "max_connections",
    "large_bodies_at_once",
    "instructions_at_once",
    "sqlite_cache_bytes",
    "tls_cert",
    "tls_key",
    "create_database",
    "job_lease_seconds",
    "inventory_cache_bytes",
    "inventory_cache_records",
    "state_touch_seconds",
    "retry_base_seconds",
    "retry_max_seconds",
    "metrics_public",
    "metrics_max_edge_series",
    "scheduler_tick_seconds",
    "webhooks_enabled",
    "webhook_poll_seconds",
    "webhook_max_attempts",
    "webhook_timeout_seconds",
    "webhook_retry_base_seconds",
    "webhook_retry_max_seconds",
];

/// Where a config file is looked for when none is named, in order.
pub const CONFIG_CANDIDATES: &[&str] = &[
    "zfs_sync.yaml",
    "zfs_sync.yml",
    "zfs_sync.toml",
    "config/zfs_sync.yaml",
    "config/zfs_sync.yml",
    "config/zfs_sync.toml",
    "/config/zfs_sync.yaml",
    "/config/zfs_sync.toml",
];

/// A configuration error: a sentence naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Loads the layers. `file`: `--config PATH` (must exist); `None`: the first of
    /// [`CONFIG_CANDIDATES`] that exists, if any. Returns the settings and the file used.
    pub fn load(file: Option<&Path>) -> Result<(Settings, Option<PathBuf>), ConfigError> {
        Self::load_from(file, Env::prefixed("ZFS_SYNC_").only(ENV_KEYS))
    }

    /// [`Settings::load`] with an explicit environment provider (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: Env,
    ) -> Result<(Settings, Option<PathBuf>), ConfigError> {
        let path = match file {
            Some(p) if !p.is_file() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist (--config)",
                    p.display()
                )));
            }
            Some(p) => Some(p.to_path_buf()),
            None => CONFIG_CANDIDATES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
        };
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(p) = &path {
            fig = match p.extension().and_then(|e| e.to_str()) {
                Some("toml") => fig.merge(Toml::file_exact(p)),
                Some("yaml" | "yml") => fig.merge(Yaml::file_exact(p)),
                _ => {
                    return Err(ConfigError(format!(
                        "config file {}: the name must end in .yaml, .yml or .toml",
                        p.display()
                    )));
                }
            };
        }
        let settings: Settings = fig
            .merge(env)
            .extract()
            .map_err(|e| ConfigError(describe_figment(e)))?;
        settings.validate()?;
        Ok((settings, path))
    }

    /// The settings of the sync service.
    pub fn sync_settings(&self) -> zfs_sync::service::sync::SyncSettings {
        zfs_sync::service::sync::SyncSettings {
            job_lease_seconds: self.job_lease_seconds,
            inventory_cache_bytes: self.inventory_cache_bytes(),
            state_touch_seconds: self.state_touch_seconds,
            retry_base_seconds: self.retry_base_seconds,
            retry_max_seconds: self.retry_max_seconds,
        }
    }

    /// The inventory cache's budget: `inventory_cache_bytes`, or the deprecated
    /// `inventory_cache_records` at [`CACHE_BYTES_PER_RECORD`] bytes each.
    ///
    /// [`CACHE_BYTES_PER_RECORD`]: zfs_sync::service::sync::CACHE_BYTES_PER_RECORD
    pub fn inventory_cache_bytes(&self) -> usize {
        match self.inventory_cache_records {
            Some(records) => {
                records.saturating_mul(zfs_sync::service::sync::CACHE_BYTES_PER_RECORD)
            }
            None => self.inventory_cache_bytes,
        }
    }

    /// The settings of webhook delivery. An attempt's lease outlasts its POST's timeout.
    pub fn delivery_settings(&self) -> zfs_sync::service::webhooks::DeliverySettings {
        zfs_sync::service::webhooks::DeliverySettings {
            max_attempts: self.webhook_max_attempts,
            retry_base_seconds: self.webhook_retry_base_seconds,
            retry_max_seconds: self.webhook_retry_max_seconds,
            lease_seconds: self.webhook_timeout_seconds.saturating_add(30),
            ..Default::default()
        }
    }

    /// Checks the values' ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, rule: &str| {
            Err(ConfigError(format!(
                "{key} (ZFS_SYNC_{}) {rule}",
                key.to_uppercase()
            )))
        };
        if self.host.trim().is_empty() {
            return bad("host", "must not be empty");
        }
        if self.heartbeat_timeout_seconds == 0 {
            return bad("heartbeat_timeout_seconds", "must be at least 1");
        }
        if self.inventory_cache_records.is_some()
            && self.inventory_cache_bytes != zfs_sync::service::sync::DEFAULT_INVENTORY_CACHE_BYTES
        {
            return bad(
                "inventory_cache_records",
                "is deprecated and must not be set with inventory_cache_bytes (set only inventory_cache_bytes)",
            );
        }
        // The sync service's own settings are checked by the service.
        if let Err(zfs_sync::Error::InvalidInput { field, reason }) =
            self.sync_settings().validate()
        {
            return bad(&field, &reason);
        }
        if self.scheduler_tick_seconds == 0 {
            return bad("scheduler_tick_seconds", "must be at least 1");
        }
        if let Err(zfs_sync::Error::InvalidInput { field, reason }) =
            self.delivery_settings().validate()
        {
            return bad(&field, &reason);
        }
        if !(1..=60).contains(&self.webhook_poll_seconds) {
            return bad(
                "webhook_poll_seconds",
                "must be from 1 to 60 (events are delivered within a minute)",
            );
        }
        if !(1..=300).contains(&self.webhook_timeout_seconds) {
            return bad("webhook_timeout_seconds", "must be from 1 to 300");
        }
        for (key, seconds) in [
            ("idle_timeout_seconds", self.idle_timeout_seconds),
            ("header_timeout_seconds", self.header_timeout_seconds),
            ("body_timeout_seconds", self.body_timeout_seconds),
        ] {
            if seconds == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.max_connections == Some(0) {
            return bad("max_connections", "must be at least 1");
        }
        if self.large_bodies_at_once == 0 {
            return bad("large_bodies_at_once", "must be at least 1");
        }
        if self.instructions_at_once == Some(0) {
            return bad("instructions_at_once", "must be at least 1");
        }
        if self.sqlite_cache_bytes < zfs_sync_storage::MIN_SQLITE_CACHE_BYTES {
            return bad(
                "sqlite_cache_bytes",
                &format!(
                    "must be at least {} (1 MiB)",
                    zfs_sync_storage::MIN_SQLITE_CACHE_BYTES
                ),
            );
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return bad("tls_key", "must be set when tls_cert is"),
            (None, Some(_)) => return bad("tls_cert", "must be set when tls_key is"),
            _ => {}
        }
        if self.body_limit_bytes < 1024 {
            return bad("body_limit_bytes", "must be at least 1024");
        }
        if let Some(k) = &self.admin_key
            && let Err(zfs_sync::Error::InvalidInput { reason, .. }) =
                zfs_sync::service::auth::check_configured_key(k)
        {
            return bad("admin_key", &reason);
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url == "memory:")
        {
            return bad(
                "database_url",
                "must start with sqlite:, postgres://, postgresql:// or be memory:",
            );
        }
        for (i, o) in self.cors_origins.iter().enumerate() {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return bad(
                    &format!("cors_origins[{i}]"),
                    "must be an origin such as https://admin.example.org",
                );
            }
        }
        if let Err(rule) = check_log_level(&self.log_level) {
            return bad("log_level", &rule);
        }
        Ok(())
    }

    /// The connection cap: `max_connections`, or three quarters of the open-file limit.
    pub fn connection_cap(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| open_file_limit().map_or(768, |n| (n / 4 * 3).max(16)))
    }

    /// The instructions calls planned at once: `instructions_at_once`, or the number of
    /// cores.
    pub fn instructions_slots(&self) -> usize {
        self.instructions_at_once.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        })
    }

    /// The database URL to open: the configured one, or a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", default_database_path().display()),
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process.
#[cfg(unix)]
fn open_file_limit() -> Option<usize> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    (soft != RLIM_INFINITY).then(|| usize::try_from(soft).unwrap_or(usize::MAX))
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<usize> {
    None
}

fn describe_figment(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let env = if key.is_empty() {
                String::new()
            } else {
                format!(" (ZFS_SYNC_{})", key.to_uppercase())
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" from {}", m.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("setting {key}{env}{source}: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `$XDG_DATA_HOME/zfs-sync/zfs_sync.db`, else `~/.local/share/zfs-sync/zfs_sync.db`, else
/// `./zfs_sync.db`.
pub fn default_database_path() -> PathBuf {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let dir = std::env::var_os("XDG_DATA_HOME").and_then(abs).or_else(|| {
        std::env::var_os("HOME")
            .and_then(abs)
            .map(|h| h.join(".local/share"))
    });
    match dir {
        Some(d) => d.join("zfs-sync").join("zfs_sync.db"),
        None => PathBuf::from("zfs_sync.db"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment provider that reads nothing (a prefix no variable has).
    fn no_env() -> Env {
        Env::prefixed("ZFS_SYNC_CONFIG_TEST_NOTHING_").only(ENV_KEYS)
    }

    #[test]
    fn defaults_are_valid() {
        let (s, _) = Settings::load_from(None, no_env()).unwrap();
        assert_eq!(s.port, 8000);
        assert_eq!(s.heartbeat_timeout_seconds, 300);
        assert!(s.cors_origins.is_empty());
        assert!(s.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn a_log_level_that_names_no_level_is_refused() {
        for good in [
            "info",
            "WARN",
            "off",
            "info,zfs_sync_http=debug",
            "poem=warn, trace",
        ] {
            assert_eq!(check_log_level(good), Ok(()), "{good}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zfs_sync.yaml");
        for bad in [
            "warning",
            "",
            "info,zfs_sync_http",
            "zfs_sync=verbose",
            "info,[",
        ] {
            std::fs::write(&file, format!("log_level: \"{bad}\"\n")).unwrap();
            let e = Settings::load_from(Some(&file), no_env())
                .unwrap_err()
                .to_string();
            assert!(e.contains("log_level (ZFS_SYNC_LOG_LEVEL)"), "{bad}: {e}");
            assert!(e.contains("error, warn, info"), "{bad}: {e}");
        }
    }

    #[test]
    fn file_then_env_layering_and_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zfs_sync.yaml");
        std::fs::write(&file, "port: 9000\ncors_origins: \"https://a.example, https://b.example\"\nlog_format: json\n").unwrap();
        let (s, used) = Settings::load_from(Some(&file), no_env()).unwrap();
        assert_eq!(used.as_deref(), Some(file.as_path()));
        assert_eq!(s.port, 9000);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(
            s.cors_origins,
            vec!["https://a.example", "https://b.example"]
        );

        std::fs::write(&file, "port: -1\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");

        std::fs::write(&file, "heartbeat_timeout_seconds: 0\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("heartbeat_timeout_seconds"), "{e}");

        std::fs::write(&file, "retry_base_seconds: 600\nretry_max_seconds: 60\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("retry_max_seconds (ZFS_SYNC_RETRY_MAX_SECONDS)"),
            "{e}"
        );
        std::fs::write(&file, "retry_base_seconds: 30\nretry_max_seconds: 600\n").unwrap();
        let (s, _) = Settings::load_from(Some(&file), no_env()).unwrap();
        let sync = s.sync_settings();
        assert_eq!((sync.retry_base_seconds, sync.retry_max_seconds), (30, 600));

        std::fs::write(&file, "webhook_max_attempts: 0\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("webhook_max_attempts (ZFS_SYNC_WEBHOOK_MAX_ATTEMPTS)"),
            "{e}"
        );
        std::fs::write(&file, "webhook_poll_seconds: 120\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook_poll_seconds"), "{e}");
        std::fs::write(
            &file,
            "webhook_retry_base_seconds: 60\nwebhook_retry_max_seconds: 30\n",
        )
        .unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook_retry_max_seconds"), "{e}");

        std::fs::write(&file, "sqlite_cache_bytes: 65536\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sqlite_cache_bytes (ZFS_SYNC_SQLITE_CACHE_BYTES) must be at least 1048576"),
            "{e}"
        );
        std::fs::write(&file, "sqlite_cache_bytes: 33554432\n").unwrap();
        let (s, _) = Settings::load_from(Some(&file), no_env()).unwrap();
        assert_eq!(s.sqlite_cache_bytes, 32 * 1024 * 1024);

        std::fs::write(&file, "instructions_at_once: 0\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("instructions_at_once (ZFS_SYNC_INSTRUCTIONS_AT_ONCE) must be at least 1"),
            "{e}"
        );
        std::fs::write(&file, "instructions_at_once: 3\n").unwrap();
        let (s, _) = Settings::load_from(Some(&file), no_env()).unwrap();
        assert_eq!(s.instructions_slots(), 3);
        assert!(Settings::default().instructions_slots() >= 1);

        std::fs::write(&file, "no_such_setting: 1\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no_such_setting"), "{e}");

        let toml = dir.path().join("zfs_sync.toml");
        std::fs::write(&toml, "database_url = \"mysql://x\"\n").unwrap();
        let e = Settings::load_from(Some(&toml), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("database_url"), "{e}");

        let missing = dir.path().join("nope.yaml");
        assert!(Settings::load_from(Some(&missing), no_env()).is_err());
    }

    #[test]
    fn the_inventory_cache_takes_bytes_or_the_deprecated_record_count() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zfs_sync.yaml");
        let (s, _) = Settings::load_from(None, no_env()).unwrap();
        assert_eq!(s.sync_settings().inventory_cache_bytes, 64 << 20);

        std::fs::write(&file, "inventory_cache_bytes: 1048576\n").unwrap();
        let (s, _) = Settings::load_from(Some(&file), no_env()).unwrap();
        assert_eq!(s.sync_settings().inventory_cache_bytes, 1 << 20);

        // The old setting still works: a record is 64 bytes of budget.
        std::fs::write(&file, "inventory_cache_records: 1000\n").unwrap();
        let (s, _) = Settings::load_from(Some(&file), no_env()).unwrap();
        assert_eq!(s.sync_settings().inventory_cache_bytes, 64_000);
        std::fs::write(&file, "inventory_cache_records: 0\n").unwrap();
        let (s, _) = Settings::load_from(Some(&file), no_env()).unwrap();
        assert_eq!(s.sync_settings().inventory_cache_bytes, 0);

        std::fs::write(
            &file,
            "inventory_cache_records: 1000\ninventory_cache_bytes: 1048576\n",
        )
        .unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inventory_cache_records (ZFS_SYNC_INVENTORY_CACHE_RECORDS)")
                && e.contains("deprecated"),
            "{e}"
        );
        std::fs::write(&file, "inventory_cache_bytes: -1\n").unwrap();
        let e = Settings::load_from(Some(&file), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("inventory_cache_bytes"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zfs_sync.toml");
        std::fs::write(&file, "port = 9000\nmetrics_public = true\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("ZFS_SYNC_PORT", "9100");
            jail.set_env("ZFS_SYNC_METRICS_PUBLIC", "false");
            jail.set_env("ZFS_SYNC_METRICS_MAX_EDGE_SERIES", "500");
            jail.set_env("ZFS_SYNC_TEST_POSTGRES_URL", "postgres://ignored");
            let (s, _) = Settings::load(Some(&file)).map_err(|e| e.to_string())?;
            assert_eq!(s.port, 9100);
            assert!(!s.metrics_public);
            assert_eq!(s.metrics_max_edge_series, 500);
            jail.set_env("ZFS_SYNC_PORT", "eighty");
            let e = Settings::load(Some(&file)).unwrap_err().to_string();
            assert!(e.contains("ZFS_SYNC_PORT"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_example_config_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/zfs_sync.example.yaml");
        let (s, _) = Settings::load_from(Some(&example), no_env()).unwrap();
        assert_eq!(s.body_limit_bytes, DEFAULT_BODY_LIMIT_BYTES);
        assert_eq!(s.heartbeat_timeout_seconds, 300);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@db/x"),
            "postgres://u:***@db/x"
        );
        let s = Settings {
            admin_key: Some("9f86d081884c7d659a2feaa0c55ad015".into()),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("9f86d081884c7d659a2feaa0c55ad015"));
    }
}
