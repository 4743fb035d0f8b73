//! `enroll`: registers this host with an admin key (or, with `--force`, rotates the key of the
//! host already registered under that name) and writes the configuration file with the new key
//! (mode 0600), keeping the other settings already in it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::client::Client;
use crate::error::AgentError;
use crate::settings::{self, CommonArgs, DEFAULT_CONFIG, EnrollArgs};

/// What enrolment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub system_id: String,
    pub config: PathBuf,
    /// The host was registered already and its key was rotated.
    pub rotated: bool,
}

fn this_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Registers (or re-keys) the host and writes the configuration.
pub fn enroll(common: &CommonArgs, args: &EnrollArgs) -> Result<Enrolled, AgentError> {
    let server = common
        .server
        .clone()
        .ok_or_else(|| AgentError::config("server: missing (--server or ZFS_SYNC_SERVER)"))?;
    let base = settings::api_base(&server)?;
    let admin_key = settings::key_from_file(&args.admin_key_file, "admin_key_file")?;
    let hostname = args
        .hostname
        .clone()
        .or_else(this_hostname)
        .ok_or_else(|| {
            AgentError::config("hostname: cannot read this host's name; pass --hostname")
        })?;
    let mut body = json!({ "hostname": hostname, "platform": std::env::consts::OS });
    for (k, v) in [
        ("ssh_hostname", &args.ssh_hostname),
        ("ssh_user", &args.ssh_user),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    if let Some(p) = args.ssh_port {
        body["ssh_port"] = json!(p);
    }
    match crate::zfs::detect() {
        Ok(caps) => body["capabilities"] = caps.capabilities_json(),
        Err(e) => {
            tracing::warn!(error = %e, "capabilities not detected; the next cycle reports them")
        }
    }
    let admin = Client::new(&base, &admin_key);
    let (system_id, api_key, rotated) = match admin.call("POST", "/systems", Some(&body)) {
        Ok(Some(v)) => (str_field(&v, "id")?, str_field(&v, "api_key")?, false),
        Ok(None) => return Err(AgentError::Connection("POST /systems: empty answer".into())),
        Err(AgentError::Server { status: 409, .. }) if args.force => {
            let existing = admin.system(&hostname)?;
            let id = str_field(&existing, "id")?;
            let v = admin
                .call("POST", &format!("/systems/{id}/api-key/rotate"), None)?
                .unwrap_or(Value::Null);
            (id, str_field(&v, "api_key")?, true)
        }
        Err(AgentError::Server {
            status: 409,
            detail,
            ..
        }) => {
            return Err(AgentError::config(format!(
                "hostname: {hostname:?} is already registered ({detail}); pass --force to rotate its key"
            )));
        }
        Err(e) => return Err(e),
    };
    let config = common
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    write_config(&config, &server, &system_id, &api_key)?;
    Ok(Enrolled {
        system_id,
        config,
        rotated,
    })
}

fn str_field(v: &Value, field: &str) -> Result<String, AgentError> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AgentError::Connection(format!("the server's answer has no {field}")))
}

/// Writes `server`, `system_id` and `api_key` into the TOML file (other keys kept), mode 0600.
pub fn write_config(
    path: &Path,
    server: &str,
    system_id: &str,
    api_key: &str,
) -> Result<(), AgentError> {
    let err = |e: &dyn std::fmt::Display| {
        AgentError::config(format!("config: cannot write {}: {e}", path.display()))
    };
    let mut table: toml::Table = match std::fs::read_to_string(path) {
        Ok(text) => text.parse().map_err(|e| err(&e))?,
        Err(_) => toml::Table::new(),
    };
    table.insert("server".into(), server.into());
    table.insert("system_id".into(), system_id.into());
    table.insert("api_key".into(), api_key.into());
    table.remove("api_key_file");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    }
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(&e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err(&e))?;
    f.write_all(toml::to_string(&table).map_err(|e| err(&e))?.as_bytes())
        .map_err(|e| err(&e))?;
    f.sync_all().map_err(|e| err(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_written_0600_and_keeps_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "stall_seconds = 7\napi_key_file = \"/x\"\n").unwrap();
        write_config(&p, "http://w", "id-1", "key-1").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let f: settings::FileSettings =
            toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(f.stall_seconds, Some(7));
        assert_eq!(f.api_key.as_deref(), Some("key-1"));
        assert_eq!(f.api_key_file, None);
        assert_eq!(f.system_id.as_deref(), Some("id-1"));
    }
}
