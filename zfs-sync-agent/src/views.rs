//! The read-only commands: `plan` (a dry run of the instructions: nothing is leased) and
//! `status` (this host as the witness sees it).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::allow;
use crate::client::Client;
use crate::error::AgentError;
use crate::settings::Settings;

/// What the agent would run now, with the verdict of the argv check for each job.
pub fn plan(settings: &Settings) -> Result<Value, AgentError> {
    let client = Client::new(&settings.api_base, &settings.api_key);
    let instructions = client.instructions(&settings.system_id, true)?;
    let jobs: Vec<Value> = instructions
        .datasets
        .iter()
        .map(|j| {
            let check = allow::check_job(j);
            json!({
                "kind": j.kind,
                "transfer": j.transfer,
                "source": j.source_dataset_path,
                "target": j.target_dataset_path,
                "target_system_id": j.target_system_id,
                "snapshots": j.snapshots,
                "estimated_bytes": j.estimated_bytes,
                "destructive": j.destructive,
                "commands": j.commands,
                "argv": j.argv,
                "allowed": check.is_ok(),
                "refused": check.err(),
            })
        })
        .collect();
    Ok(json!({
        "system_id": settings.system_id,
        "jobs": jobs,
        "diagnostics": instructions.diagnostics.unwrap_or_default(),
    }))
}

/// `plan` for people.
pub fn plan_text(plan: &Value) -> String {
    let mut out = String::new();
    let jobs = plan["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.is_empty() {
        out.push_str("nothing to run\n");
    }
    for j in &jobs {
        let _ = writeln!(
            out,
            "{} {} {} -> {} ({} snapshot(s), ~{} bytes){}",
            if j["allowed"] == true {
                "RUN"
            } else {
                "REFUSE"
            },
            j["kind"].as_str().unwrap_or("transfer"),
            j["source"].as_str().unwrap_or("?"),
            j["target"].as_str().unwrap_or("?"),
            j["snapshots"].as_array().map_or(0, Vec::len),
            j["estimated_bytes"],
            j["refused"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        for c in j["commands"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "    {}", c.as_str().unwrap_or(""));
        }
    }
    for d in plan["diagnostics"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "note: {}", d["message"].as_str().unwrap_or(""));
    }
    out
}

/// The host, its sync states, running jobs and open conflicts.
pub fn status(settings: &Settings) -> Result<Value, AgentError> {
    let client = Client::new(&settings.api_base, &settings.api_key);
    let system = client.system(&settings.system_id)?;
    let id = system["id"]
        .as_str()
        .unwrap_or(&settings.system_id)
        .to_string();
    let get = |path: String| -> Result<Value, AgentError> {
        Ok(client.call("GET", &path, None)?.unwrap_or(Value::Null))
    };
    let states = get(format!("/sync/states?system_id={id}"))?;
    let jobs = get(format!("/sync/jobs?system_id={id}"))?;
    let running: Vec<Value> = jobs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| matches!(j["status"].as_str(), Some("leased" | "pending")))
        .cloned()
        .collect();
    let groups: BTreeSet<String> = states
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["sync_group_id"].as_str().map(str::to_string))
        .collect();
    let mut conflicts = Vec::new();
    for g in groups {
        if let Ok(Value::Array(cs)) = get(format!("/conflicts/{g}")) {
            conflicts.extend(
                cs.into_iter()
                    .filter(|c| c["system_a"] == id.as_str() || c["system_b"] == id.as_str())
                    .filter(|c| c["status"] != "resolved"),
            );
        }
    }
    // The last inventory this agent had accepted: "<sha256> <unix seconds>" in state_dir.
    let last_report = std::fs::read_to_string(settings.state_dir.join("last_report"))
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse::<i64>().ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|t| t.to_rfc3339());
    Ok(json!({
        "system": system,
        "last_report": last_report,
        "states": states,
        "running_jobs": running,
        "conflicts": conflicts,
    }))
}

/// `status` for people.
pub fn status_text(status: &Value) -> String {
    let mut out = String::new();
    let s = &status["system"];
    let _ = writeln!(
        out,
        "{} ({}) {} last seen {}",
        s["hostname"].as_str().unwrap_or("?"),
        s["id"].as_str().unwrap_or("?"),
        s["status"].as_str().unwrap_or("?"),
        s["last_seen"].as_str().unwrap_or("never")
    );
    let _ = writeln!(
        out,
        "last inventory report accepted: {}",
        status["last_report"]
            .as_str()
            .unwrap_or("none by this agent")
    );
    let _ = writeln!(
        out,
        "{:<40} {:<12} {:>10} {:>8}  ERROR",
        "DATASET", "STATE", "LAG(s)", "MISSING"
    );
    for st in status["states"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<40} {:<12} {:>10} {:>8}  {}",
            st["dataset"].as_str().unwrap_or("?"),
            st["status"].as_str().unwrap_or("?"),
            st["lag_seconds"],
            st["missing_count"],
            st["error_message"].as_str().unwrap_or("")
        );
    }
    for j in status["running_jobs"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "job {} {} {} ({} bytes so far)",
            j["id"].as_str().unwrap_or("?"),
            j["status"].as_str().unwrap_or("?"),
            j["dataset"].as_str().unwrap_or("?"),
            j["bytes"]
        );
    }
    for c in status["conflicts"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "conflict {} {} on {}: {}",
            c["id"].as_str().unwrap_or("?"),
            c["conflict_type"].as_str().unwrap_or("?"),
            c["dataset"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or("")
        );
    }
    out
}
