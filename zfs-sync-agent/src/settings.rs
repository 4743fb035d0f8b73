//! Settings: command-line flags, then the environment (`ZFS_SYNC_<NAME>`), then the TOML file
//! (`--config`, `ZFS_SYNC_CONFIG`, or `/etc/zfs-sync/agent.toml` when it exists), then
//! defaults. Every value is validated with a message naming the setting.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use zfs_sync::names::DatasetName;

use crate::error::AgentError;

/// The default configuration file, read when it exists and no other is named.
pub const DEFAULT_CONFIG: &str = "/etc/zfs-sync/agent.toml";

/// `zfs-sync-agent`: runs on a ZFS host, reports its snapshots to the zfs-sync witness and runs
/// the transfers the witness plans.
#[derive(Debug, Parser)]
#[command(name = "zfs-sync-agent", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register this host with the witness (or rotate its key with --force) and write the
    /// configuration with the new key (mode 0600).
    Enroll(EnrollArgs),
    /// One cycle, then exit: 0 when every job succeeded (or nothing to do), 1 when any
    /// failed, 2 for configuration or connection errors.
    Once,
    /// Cycle every interval_seconds (with jitter) until SIGTERM/SIGINT.
    Run,
    /// What the agent would run now (a dry run: leases nothing).
    Plan {
        #[arg(long)]
        json: bool,
    },
    /// This host as the witness sees it.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// A file holding an admin key of the witness.
    #[arg(long, env = "ZFS_SYNC_ADMIN_KEY_FILE")]
    pub admin_key_file: PathBuf,
    /// The name to register (default: this host's name).
    #[arg(long)]
    pub hostname: Option<String>,
    #[arg(long)]
    pub ssh_hostname: Option<String>,
    #[arg(long)]
    pub ssh_user: Option<String>,
    #[arg(long)]
    pub ssh_port: Option<u16>,
    /// When the host is already registered: rotate its key instead of failing.
    #[arg(long)]
    pub force: bool,
}

/// The settings shared by every command (flags and their environment variables).
#[derive(Debug, Args, Default)]
pub struct CommonArgs {
    /// The TOML configuration file.
    #[arg(long, global = true, env = "ZFS_SYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// The witness's base URL (`https://witness.example:8000`).
    #[arg(long, global = true, env = "ZFS_SYNC_SERVER")]
    pub server: Option<String>,
    /// This host's system id, or its registered hostname.
    #[arg(long, global = true, env = "ZFS_SYNC_SYSTEM_ID")]
    pub system_id: Option<String>,
    /// A file holding this host's API key (or set ZFS_SYNC_API_KEY).
    #[arg(long, global = true, env = "ZFS_SYNC_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Datasets to report, comma-separated (with everything below them); default: all.
    #[arg(long, global = true, env = "ZFS_SYNC_DATASETS", value_delimiter = ',')]
    pub datasets: Option<Vec<String>>,
    #[arg(long, global = true, env = "ZFS_SYNC_INTERVAL_SECONDS")]
    pub interval_seconds: Option<u64>,
    #[arg(long, global = true, env = "ZFS_SYNC_STALL_SECONDS")]
    pub stall_seconds: Option<u64>,
    #[arg(long, global = true, env = "ZFS_SYNC_JOB_TIMEOUT_SECONDS")]
    pub job_timeout_seconds: Option<u64>,
    #[arg(long, global = true, env = "ZFS_SYNC_MAX_PARALLEL")]
    pub max_parallel: Option<usize>,
    /// Bytes per second through the relay (0: unlimited).
    #[arg(long, global = true, env = "ZFS_SYNC_BANDWIDTH_LIMIT")]
    pub bandwidth_limit: Option<u64>,
    #[arg(long, global = true, env = "ZFS_SYNC_LOCK_FILE")]
    pub lock_file: Option<PathBuf>,
    #[arg(long, global = true, env = "ZFS_SYNC_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// `text` or `json`.
    #[arg(long, global = true, env = "ZFS_SYNC_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Seconds between progress reports of a running transfer.
    #[arg(long, global = true, env = "ZFS_SYNC_PROGRESS_SECONDS")]
    pub progress_seconds: Option<u64>,
    /// Seconds a running transfer may finish after SIGTERM before it is killed.
    #[arg(long, global = true, env = "ZFS_SYNC_GRACE_SECONDS")]
    pub grace_seconds: Option<u64>,
}

/// The TOML file: the same names as the flags, with `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub server: Option<String>,
    pub system_id: Option<String>,
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub datasets: Option<Vec<String>>,
    pub interval_seconds: Option<u64>,
    pub stall_seconds: Option<u64>,
    pub job_timeout_seconds: Option<u64>,
    pub max_parallel: Option<usize>,
    pub bandwidth_limit: Option<u64>,
    pub lock_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub log_format: Option<String>,
    pub progress_seconds: Option<u64>,
    pub grace_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated settings of a cycle.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// The API base, ending in `/api/v1`.
    pub api_base: String,
    pub system_id: String,
    pub api_key: String,
    /// Empty: every dataset.
    pub datasets: Vec<DatasetName>,
    pub interval_seconds: u64,
    pub stall_seconds: u64,
    /// 0: no timeout.
    pub job_timeout_seconds: u64,
    pub max_parallel: usize,
    /// 0: unlimited.
    pub bandwidth_limit: u64,
    pub lock_file: PathBuf,
    pub state_dir: PathBuf,
    pub log_format: LogFormat,
    pub progress_seconds: u64,
    pub grace_seconds: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_base", &self.api_base)
            .field("system_id", &self.system_id)
            .field("api_key", &"<hidden>")
            .field("datasets", &self.datasets)
            .field("interval_seconds", &self.interval_seconds)
            .field("stall_seconds", &self.stall_seconds)
            .field("job_timeout_seconds", &self.job_timeout_seconds)
            .field("max_parallel", &self.max_parallel)
            .field("bandwidth_limit", &self.bandwidth_limit)
            .field("lock_file", &self.lock_file)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// Reads the TOML file: the one named (it must exist), else the default when it exists.
pub fn read_file(named: Option<&Path>) -> Result<FileSettings, AgentError> {
    let path = match named {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(FileSettings::default()),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| AgentError::config(format!("config: cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| AgentError::config(format!("config {}: {e}", path.display())))
}

/// The API base URL of a server URL: `/api/v1` appended unless already there.
pub fn api_base(server: &str) -> Result<String, AgentError> {
    let s = server.trim().trim_end_matches('/');
    if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() <= "https://".len() {
        return Err(AgentError::config(format!(
            "server (--server, ZFS_SYNC_SERVER): {server:?} must be an http:// or https:// URL"
        )));
    }
    Ok(if s.ends_with("/api/v1") {
        s.to_string()
    } else {
        format!("{s}/api/v1")
    })
}

/// Reads an API key file (trimmed; must not be empty).
pub fn key_from_file(path: &Path, setting: &str) -> Result<String, AgentError> {
    let key = std::fs::read_to_string(path).map_err(|e| {
        AgentError::config(format!("{setting}: cannot read {}: {e}", path.display()))
    })?;
    let key = key.trim().to_string();
    if key.is_empty() {
        return Err(AgentError::config(format!(
            "{setting}: {} is empty",
            path.display()
        )));
    }
    Ok(key)
}

fn at_least(name: &str, value: u64, min: u64) -> Result<u64, AgentError> {
    if value < min {
        return Err(AgentError::config(format!(
            "{name}: must be at least {min}, got {value}"
        )));
    }
    Ok(value)
}

impl Settings {
    /// Merges flags/environment (`args`), the environment key `api_key_env`
    /// (`ZFS_SYNC_API_KEY`) and the file, then validates.
    pub fn resolve(
        args: &CommonArgs,
        api_key_env: Option<String>,
        file: FileSettings,
    ) -> Result<Settings, AgentError> {
        let server = args.server.clone().or(file.server).ok_or_else(|| {
            AgentError::config(
                "server: missing (--server, ZFS_SYNC_SERVER or server in the config file)",
            )
        })?;
        let system_id = args.system_id.clone().or(file.system_id).ok_or_else(|| {
            AgentError::config(
                "system_id: missing (--system-id, ZFS_SYNC_SYSTEM_ID or system_id in the config file)",
            )
        })?;
        let system_id = system_id.trim().to_string();
        if system_id.is_empty() || system_id.contains('/') {
            return Err(AgentError::config(format!(
                "system_id: {system_id:?} must be a system id or a hostname"
            )));
        }
        let api_key = match (
            &args.api_key_file,
            api_key_env.filter(|k| !k.trim().is_empty()),
        ) {
            (Some(path), _) => key_from_file(path, "api_key_file")?,
            (None, Some(k)) => k.trim().to_string(),
            (None, None) => match (file.api_key, file.api_key_file) {
                (Some(k), _) if !k.trim().is_empty() => k.trim().to_string(),
                (_, Some(path)) => key_from_file(&path, "api_key_file")?,
                _ => {
                    return Err(AgentError::config(
                        "api_key: missing (--api-key-file, ZFS_SYNC_API_KEY, or api_key / api_key_file in the config file)",
                    ));
                }
            },
        };
        let datasets = args
            .datasets
            .clone()
            .or(file.datasets)
            .unwrap_or_default()
            .iter()
            .filter(|d| !d.trim().is_empty())
            .enumerate()
            .map(|(i, d)| {
                DatasetName::parse(d.trim())
                    .map_err(|e| AgentError::config(format!("datasets[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let log_format = match args
            .log_format
            .clone()
            .or(file.log_format)
            .as_deref()
            .unwrap_or("text")
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(AgentError::config(format!(
                    "log_format: {other:?} must be \"text\" or \"json\""
                )));
            }
        };
        let max_parallel = args.max_parallel.or(file.max_parallel).unwrap_or(1);
        if max_parallel == 0 || max_parallel > 64 {
            return Err(AgentError::config(format!(
                "max_parallel: must be between 1 and 64, got {max_parallel}"
            )));
        }
        Ok(Settings {
            api_base: api_base(&server)?,
            system_id,
            api_key,
            datasets,
            interval_seconds: at_least(
                "interval_seconds",
                args.interval_seconds
                    .or(file.interval_seconds)
                    .unwrap_or(300),
                1,
            )?,
            stall_seconds: at_least(
                "stall_seconds",
                args.stall_seconds.or(file.stall_seconds).unwrap_or(300),
                1,
            )?,
            job_timeout_seconds: args
                .job_timeout_seconds
                .or(file.job_timeout_seconds)
                .unwrap_or(0),
            max_parallel,
            bandwidth_limit: args.bandwidth_limit.or(file.bandwidth_limit).unwrap_or(0),
            lock_file: args
                .lock_file
                .clone()
                .or(file.lock_file)
                .unwrap_or_else(|| PathBuf::from("/run/zfs-sync-agent.lock")),
            state_dir: args
                .state_dir
                .clone()
                .or(file.state_dir)
                .unwrap_or_else(|| PathBuf::from("/var/lib/zfs-sync-agent")),
            log_format,
            progress_seconds: at_least(
                "progress_seconds",
                args.progress_seconds.or(file.progress_seconds).unwrap_or(5),
                1,
            )?,
            grace_seconds: args.grace_seconds.or(file.grace_seconds).unwrap_or(60),
        })
    }

    /// Whether `dataset` (a full name) is one this agent reports.
    pub fn reports(&self, dataset: &str) -> bool {
        self.datasets.is_empty()
            || self.datasets.iter().any(|d| {
                let d = d.as_str();
                dataset == d
                    || dataset
                        .strip_prefix(d)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> CommonArgs {
        CommonArgs {
            server: Some("http://w:8000".into()),
            system_id: Some("hub".into()),
            ..Default::default()
        }
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: FileSettings =
            toml::from_str("server = \"http://other\"\napi_key = \"k\"\nstall_seconds = 9\n")
                .unwrap();
        let s = Settings::resolve(&args(), None, file).unwrap();
        assert_eq!(s.api_base, "http://w:8000/api/v1");
        assert_eq!(s.api_key, "k");
        assert_eq!(s.stall_seconds, 9);
        assert_eq!(s.interval_seconds, 300);
        assert_eq!(s.max_parallel, 1);
    }

    #[test]
    fn the_environment_key_wins_over_the_file_key() {
        let file: FileSettings = toml::from_str("api_key = \"file\"").unwrap();
        let s = Settings::resolve(&args(), Some("env".into()), file).unwrap();
        assert_eq!(s.api_key, "env");
    }

    #[test]
    fn errors_name_the_setting() {
        let err = |a: CommonArgs, f: &str| {
            Settings::resolve(&a, Some("k".into()), toml::from_str(f).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(err(CommonArgs::default(), "").contains("server: missing"));
        let mut a = args();
        a.max_parallel = Some(0);
        assert!(err(a, "").contains("max_parallel"));
        let mut a = args();
        a.log_format = Some("xml".into());
        assert!(err(a, "").contains("log_format"));
        let mut a = args();
        a.datasets = Some(vec!["tank/ok".into(), "tank/$bad".into()]);
        assert!(err(a, "").contains("datasets[1]"));
        assert!(err(args(), "stall_seconds = 0").contains("stall_seconds"));
        let a = CommonArgs {
            server: Some("ftp://x".into()),
            ..args()
        };
        assert!(err(a, "").contains("server"));
        let e = toml::from_str::<FileSettings>("stal_seconds = 3").unwrap_err();
        assert!(e.to_string().contains("stal_seconds"), "{e}");
        let missing = Settings::resolve(&args(), None, FileSettings::default()).unwrap_err();
        assert!(missing.to_string().contains("api_key"), "{missing}");
    }

    #[test]
    fn dataset_scope_is_by_component() {
        let mut a = args();
        a.datasets = Some(vec!["tank/vm".into()]);
        let s = Settings::resolve(&a, Some("k".into()), FileSettings::default()).unwrap();
        assert!(s.reports("tank/vm"));
        assert!(s.reports("tank/vm/disk0"));
        assert!(!s.reports("tank/vm2"));
        assert!(!s.reports("tank"));
    }

    #[test]
    fn the_sample_config_is_valid() {
        let f: FileSettings =
            toml::from_str(include_str!("../../config/agent.example.toml")).unwrap();
        let s = Settings::resolve(&CommonArgs::default(), None, f).unwrap();
        assert_eq!(s.api_base, "https://witness.example:8000/api/v1");
        assert_eq!(s.system_id, "backup1.example");
    }
}
