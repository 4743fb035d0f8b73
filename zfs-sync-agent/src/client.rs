//! The witness's HTTP API as the agent uses it: blocking, rustls, the host's key in
//! `X-API-Key`. Error statuses become [`AgentError::Server`] with the server's `detail`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::AgentError;

/// Largest answer read (instructions of a big host).
const MAX_BODY: u64 = 256 << 20;

/// A client for one server and one key.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    key: String,
}

/// One entry of `GET /sync/instructions/{system_id}`: the fields the agent reads. Unknown
/// fields are ignored; `kind` is the transfer kind (`full`, `incremental`, `resume`), for
/// a resolution step `rename`, `rollback`, `destroy` or `create`, or for a maintenance job
/// `prune`, `hold`, `release` or `bookmark`. Any other kind is refused, never run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Instruction {
    pub job_id: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub transfer: Option<String>,
    #[serde(default)]
    pub destructive: bool,
    #[serde(default)]
    pub conflict_id: Option<String>,
    #[serde(default)]
    pub source_system_id: Option<String>,
    #[serde(default)]
    pub target_system_id: Option<String>,
    #[serde(default)]
    pub source_ssh_hostname: Option<String>,
    #[serde(default)]
    pub target_ssh_hostname: Option<String>,
    #[serde(default)]
    pub source_dataset_path: Option<String>,
    #[serde(default)]
    pub target_dataset_path: Option<String>,
    #[serde(default)]
    pub snapshots: Vec<String>,
    #[serde(default)]
    pub estimated_bytes: u64,
    /// Each command as a pipeline of argv vectors.
    #[serde(default)]
    pub argv: Vec<Vec<Vec<String>>>,
    #[serde(default)]
    pub commands: Vec<String>,
}

impl Instruction {
    /// Whether this is a transfer (`send | receive`), as opposed to a resolution step or a
    /// maintenance job (or a kind this agent does not know).
    pub fn is_transfer(&self) -> bool {
        matches!(
            self.kind.as_deref(),
            None | Some("full" | "incremental" | "resume" | "transfer")
        )
    }

    /// Whether this is a maintenance job the host runs on its own dataset.
    pub fn is_maintenance(&self) -> bool {
        matches!(
            self.kind.as_deref(),
            Some("prune" | "hold" | "release" | "bookmark")
        )
    }

    /// `pull` when the target runs the pipeline; anything else is push.
    pub fn is_pull(&self) -> bool {
        self.transfer.as_deref() == Some("pull")
    }
}

/// `GET /sync/instructions/{system_id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Instructions {
    #[serde(default)]
    pub datasets: Vec<Instruction>,
    #[serde(default)]
    pub diagnostics: Option<Vec<Value>>,
}

/// The end of a job, as `POST /sync/jobs/{job_id}/result` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    pub succeeded: bool,
    pub error: Option<String>,
    pub resume_token: Option<String>,
    pub bytes: u64,
}

impl Client {
    pub fn new(base: &str, key: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_global(Some(Duration::from_secs(120)))
            .user_agent(concat!("zfs-sync-agent/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: config.into(),
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
        }
    }

    /// One request; `Ok(None)` for an empty answer (204).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, AgentError> {
        let url = format!("{}{path}", self.base);
        let request = || format!("{method} {path}");
        let connection =
            |e: ureq::Error| AgentError::Connection(format!("{} {url}: {e}", request()));
        let mut response = match (method, body) {
            ("GET", _) => self
                .agent
                .get(&url)
                .header("X-API-Key", &self.key)
                .call()
                .map_err(connection)?,
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("X-API-Key", &self.key)
                .call()
                .map_err(connection)?,
            (m, b) => {
                let builder = match m {
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                };
                builder
                    .header("X-API-Key", &self.key)
                    .send_json(b.cloned().unwrap_or(Value::Null))
                    .map_err(connection)?
            }
        };
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(connection)?;
        if !(200..300).contains(&status) {
            let detail = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(AgentError::Server {
                status,
                request: request(),
                detail,
            });
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).map_err(|e| {
            AgentError::Connection(format!("{}: the answer is not JSON: {e}", request()))
        })
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, AgentError> {
        Ok(self.call(method, path, body)?.unwrap_or(Value::Null))
    }

    /// `GET /systems/{id}`.
    pub fn system(&self, system: &str) -> Result<Value, AgentError> {
        self.json("GET", &format!("/systems/{}", segment(system)), None)
    }

    /// `PUT /systems/{id}` with the fields to change.
    pub fn update_system(&self, system: &str, changes: &Value) -> Result<Value, AgentError> {
        self.json(
            "PUT",
            &format!("/systems/{}", segment(system)),
            Some(changes),
        )
    }

    /// `POST /systems/{id}/heartbeat` with metadata to merge.
    pub fn heartbeat(&self, system: &str, metadata: &Value) -> Result<Value, AgentError> {
        self.json(
            "POST",
            &format!("/systems/{}/heartbeat", segment(system)),
            Some(metadata),
        )
    }

    /// `PUT /systems/{id}/snapshots`: the complete inventory.
    pub fn replace_inventory(&self, system: &str, report: &Value) -> Result<Value, AgentError> {
        self.json(
            "PUT",
            &format!("/systems/{}/snapshots", segment(system)),
            Some(report),
        )
    }

    /// `GET /sync/instructions/{id}`; `dry_run` leases nothing. Asks for the maintenance
    /// jobs too (`maintenance=true`): this agent runs them.
    pub fn instructions(&self, system: &str, dry_run: bool) -> Result<Instructions, AgentError> {
        let path = format!(
            "/sync/instructions/{}?include_diagnostics=true&maintenance=true{}",
            segment(system),
            if dry_run { "&dry_run=true" } else { "" }
        );
        let v = self.json("GET", &path, None)?;
        serde_json::from_value(v)
            .map_err(|e| AgentError::Connection(format!("GET {path}: unexpected answer: {e}")))
    }

    /// `POST /sync/jobs/{job_id}/progress` (renews the lease).
    pub fn progress(
        &self,
        job_id: &str,
        bytes: u64,
        resume_token: Option<&str>,
    ) -> Result<(), AgentError> {
        let mut body = json!({ "bytes": bytes });
        if let Some(t) = resume_token {
            body["resume_token"] = json!(t);
        }
        self.call(
            "POST",
            &format!("/sync/jobs/{}/progress", segment(job_id)),
            Some(&body),
        )
        .map(|_| ())
    }

    /// `POST /sync/jobs/{job_id}/result`.
    pub fn result(&self, job_id: &str, result: &JobResult) -> Result<(), AgentError> {
        let mut body = json!({
            "status": if result.succeeded { "succeeded" } else { "failed" },
            "bytes": result.bytes,
        });
        if let Some(e) = &result.error {
            body["error"] = json!(e);
        }
        if let Some(t) = &result.resume_token {
            body["resume_token"] = json!(t);
        }
        self.call(
            "POST",
            &format!("/sync/jobs/{}/result", segment(job_id)),
            Some(&body),
        )
        .map(|_| ())
    }
}

/// A path segment: ids and hostnames hold no character that needs escaping except these.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("host-1.example"), "host-1.example");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn missing_kind_is_a_transfer() {
        let i: Instruction = serde_json::from_value(json!({"job_id": null})).unwrap();
        assert!(i.is_transfer());
        assert!(!i.destructive);
        let r: Instruction =
            serde_json::from_value(json!({"job_id": "x", "kind": "rollback", "destructive": true}))
                .unwrap();
        assert!(!r.is_transfer());
    }
}
