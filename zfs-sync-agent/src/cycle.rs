//! One cycle: lock, capabilities, heartbeat, inventory report (skipped when unchanged),
//! instructions (this leases), jobs (checked, then run, at most `max_parallel` at once and one
//! per target dataset), results, and a new report after any success.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::allow;
use crate::client::{Client, Instruction, JobResult};
use crate::error::AgentError;
use crate::runner::{self, Limits};
use crate::settings::Settings;
use crate::zfs::{self, HostCaps};

/// A report unchanged for this long is sent again anyway (the server may have lost it).
const REPORT_MAX_AGE_SECONDS: u64 = 3600;

/// Asks a cycle to stop: `stop` stops taking new jobs, `kill` kills the running ones.
#[derive(Debug, Clone, Default)]
pub struct StopFlags {
    pub stop: Arc<AtomicBool>,
    pub kill: Arc<AtomicBool>,
}

/// What a cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleSummary {
    /// Another agent held the lock: nothing was done.
    pub locked_out: bool,
    pub reported: bool,
    pub succeeded: usize,
    pub failed: usize,
    /// Jobs refused by the argv check (also counted in `failed`).
    pub refused: usize,
    /// Leased jobs handed back (cancelled) because the agent was stopping.
    pub cancelled: usize,
}

impl CycleSummary {
    /// `once`'s exit code: 0 all good or nothing to do, 1 any job failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failed > 0)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Takes the lock file, or `None` when another agent holds it.
pub fn lock(path: &Path) -> Result<Option<File>, AgentError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            AgentError::config(format!("lock_file: cannot create {}: {e}", dir.display()))
        })?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| AgentError::config(format!("lock_file: {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(AgentError::config(format!(
            "lock_file: cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// The agent's memory between cycles, in `state_dir`.
struct State<'a> {
    dir: &'a Path,
}

impl State<'_> {
    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }
    fn write(&self, name: &str, value: &str) {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let ok = std::fs::create_dir_all(self.dir).is_ok()
            && std::fs::write(&tmp, value).is_ok()
            && std::fs::rename(&tmp, self.dir.join(name)).is_ok();
        if !ok {
            tracing::warn!(dir = %self.dir.display(), name, "cannot write the agent state");
        }
    }
}

/// Everything a cycle needs.
#[derive(Debug)]
pub struct Agent<'a> {
    pub settings: &'a Settings,
    pub client: Client,
    pub caps: HostCaps,
    /// This host's system id as the server knows it (from the heartbeat).
    pub me: String,
}

impl<'a> Agent<'a> {
    /// Detects the capabilities, heartbeats (which resolves a hostname to the id) and updates
    /// the system's capabilities on the witness when they changed.
    pub fn connect(settings: &'a Settings) -> Result<Agent<'a>, AgentError> {
        let caps = zfs::detect()?;
        let client = Client::new(&settings.api_base, &settings.api_key);
        let hb = client.heartbeat(
            &settings.system_id,
            &json!({"agent": {
                "version": env!("CARGO_PKG_VERSION"),
                "zfs": caps,
            }}),
        )?;
        let me = hb
            .get("system_id")
            .and_then(Value::as_str)
            .unwrap_or(&settings.system_id)
            .to_string();
        let agent = Agent {
            settings,
            client,
            caps,
            me,
        };
        agent.push_capabilities()?;
        Ok(agent)
    }

    fn state(&self) -> State<'_> {
        State {
            dir: &self.settings.state_dir,
        }
    }

    fn push_capabilities(&self) -> Result<(), AgentError> {
        let wanted = self.caps.capabilities_json();
        let key = format!("{}\n{}\n{wanted}", self.settings.api_base, self.me);
        if self.state().read("capabilities").as_deref() == Some(key.as_str()) {
            return Ok(());
        }
        let current = self.client.system(&self.me)?;
        if current.get("capabilities") != Some(&wanted) {
            self.client
                .update_system(&self.me, &json!({ "capabilities": wanted }))?;
            tracing::info!(capabilities = %wanted, "capabilities reported");
        }
        self.state().write("capabilities", &key);
        Ok(())
    }

    /// Reports the inventory unless it is the one last accepted. Returns whether it sent.
    /// "The same" is judged on the raw `zfs` output (with the server, system and dataset
    /// scope), so an unchanged host neither parses nor serializes its inventory.
    pub fn report(&self) -> Result<bool, AgentError> {
        let text = zfs::inventory_text(&self.caps)?;
        let holds = crate::holds::read(&self.caps)?;
        let digest = hex::encode(Sha256::digest(
            format!(
                "{}\n{}\n{:?}\n{:?}\n{holds:?}\n{text}",
                self.settings.api_base, self.me, self.settings.datasets, self.caps
            )
            .as_bytes(),
        ));
        let last = self.state().read("last_report").unwrap_or_default();
        if let Some((hash, at)) = last.trim().split_once(' ')
            && hash == digest
            && at
                .parse::<u64>()
                .is_ok_and(|at| now_secs().saturating_sub(at) < REPORT_MAX_AGE_SECONDS)
        {
            tracing::debug!("inventory unchanged; report skipped");
            return Ok(false);
        }
        let mut inv = zfs::parse_inventory(&self.caps, &text);
        drop(text);
        crate::holds::apply(&mut inv, &holds);
        for s in &inv.skipped {
            tracing::warn!(line = %s, "inventory line skipped");
        }
        let body = zfs::report_body(&self.caps, &inv, &|d| self.settings.reports(d));
        let answer = self.client.replace_inventory(&self.me, &body)?;
        tracing::info!(
            snapshots = inv.snapshots.len(),
            datasets = inv.datasets.len(),
            answer = %answer,
            "inventory reported"
        );
        self.state()
            .write("last_report", &format!("{digest} {}", now_secs()));
        Ok(true)
    }

    fn limits(&self) -> Limits {
        let s = self.settings;
        Limits {
            stall: Duration::from_secs(s.stall_seconds),
            timeout: (s.job_timeout_seconds > 0)
                .then(|| Duration::from_secs(s.job_timeout_seconds)),
            bandwidth: s.bandwidth_limit,
            progress_every: Duration::from_secs(s.progress_seconds),
        }
    }

    fn running_dir(&self) -> std::path::PathBuf {
        self.settings.state_dir.join("running")
    }

    /// Jobs a previous agent process started and never finished (it was killed, or the host
    /// went down): what is left of their pipeline is killed (its process group, when the
    /// marker is from this boot), and the job handed back (cancelled) so the witness plans it
    /// again now rather than after its lease. A partial receive is in the next report.
    pub fn recover(&self) {
        let Ok(entries) = std::fs::read_dir(self.running_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let marker = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some((boot, pgid)) = marker.trim().split_once(' ')
                && Some(boot) == boot_id().as_deref()
                && let Ok(pgid) = pgid.parse::<u32>()
                && pgid > 1
            {
                tracing::warn!(
                    job_id = name,
                    pgid,
                    "killing what is left of an interrupted pipeline"
                );
                runner::kill_group(pgid);
            }
            if uuid::Uuid::parse_str(&name).is_ok() {
                match self
                    .client
                    .call("POST", &format!("/sync/jobs/{name}/cancel"), None)
                {
                    Ok(_) => tracing::warn!(
                        job_id = name,
                        "job interrupted by a previous agent handed back"
                    ),
                    Err(AgentError::Server {
                        status: 404 | 409, ..
                    }) => {}
                    Err(e) => {
                        tracing::warn!(job_id = name, error = %e, "could not hand back an interrupted job");
                        continue;
                    }
                }
            }
            let _ = std::fs::remove_file(entry.path());
        }
    }

    /// Runs one job's commands in order and returns its result (not yet reported). While it
    /// runs, a marker in `state_dir/running` lets the next agent hand it back after a crash.
    pub fn run_job(&self, job: &Instruction, kill: &AtomicBool) -> JobResult {
        let job_id = job.job_id.clone().unwrap_or_default();
        let marker = self.running_dir().join(&job_id);
        let marked = uuid::Uuid::parse_str(&job_id).is_ok()
            && std::fs::create_dir_all(self.running_dir()).is_ok()
            && std::fs::write(&marker, b"").is_ok();
        let result = self.run_job_commands(job, &job_id, kill);
        if marked {
            let _ = std::fs::remove_file(&marker);
        }
        result
    }

    fn run_job_commands(&self, job: &Instruction, job_id: &str, kill: &AtomicBool) -> JobResult {
        if let Err(reason) = allow::check_job(job) {
            return JobResult {
                succeeded: false,
                error: Some(reason),
                resume_token: None,
                bytes: 0,
            };
        }
        let limits = self.limits();
        let mut total = 0;
        for (i, planned) in job.argv.iter().enumerate() {
            let adapted: Result<Vec<Vec<String>>, String> = planned
                .iter()
                .map(|stage| match stage.first().map(String::as_str) {
                    Some("zfs") => zfs::adapt(stage, &self.caps),
                    _ => Ok(stage.clone()),
                })
                .collect();
            let stages = match adapted {
                Ok(s) => s,
                Err(reason) => {
                    return JobResult {
                        succeeded: false,
                        error: Some(format!("command {i}: {reason}")),
                        resume_token: None,
                        bytes: total,
                    };
                }
            };
            let stages = &stages;
            tracing::info!(job_id, command = i, argv = ?stages, "running");
            let mut progress = |bytes: u64| {
                if let Err(e) = self.client.progress(job_id, total + bytes, None) {
                    tracing::warn!(job_id, error = %e, "progress not recorded");
                }
            };
            let mut started = |pgid: u32| {
                if let Some(boot) = boot_id() {
                    let _ =
                        std::fs::write(self.running_dir().join(job_id), format!("{boot} {pgid}"));
                }
            };
            let outcome = runner::run(stages, &limits, &mut started, &mut progress, kill);
            total += outcome.bytes;
            if let Some(reason) = outcome.reason(&limits) {
                if matches!(outcome.failure, Some(runner::Failure::Exit(_)))
                    && allow::already_done(job.kind.as_deref(), &reason)
                {
                    tracing::info!(job_id, command = i, reason, "already done");
                    continue;
                }
                let resume_token = if job.is_pull() {
                    job.target_dataset_path
                        .as_deref()
                        .and_then(|d| zfs::resume_token(&self.caps, d))
                } else {
                    None
                };
                return JobResult {
                    succeeded: false,
                    error: Some(format!("command {i}: {reason}")),
                    resume_token,
                    bytes: total,
                };
            }
        }
        JobResult {
            succeeded: true,
            error: None,
            resume_token: None,
            bytes: total,
        }
    }

    /// Runs the leased jobs: at most `max_parallel` at once, one per target dataset. Stops
    /// taking jobs when `flags.stop` is set and hands the rest back (cancel).
    pub fn run_jobs(&self, jobs: Vec<Instruction>, flags: &StopFlags, summary: &mut CycleSummary) {
        let mut pending: Vec<Instruction> = jobs;
        let mut busy: BTreeSet<String> = BTreeSet::new();
        let (tx, rx) = mpsc::channel::<(String, Instruction, JobResult)>();
        thread::scope(|scope| {
            let mut running = 0usize;
            loop {
                while running < self.settings.max_parallel && !flags.stop.load(Ordering::Relaxed) {
                    let Some(pos) = pending.iter().position(|j| !busy.contains(&target_key(j)))
                    else {
                        break;
                    };
                    let job = pending.remove(pos);
                    let key = target_key(&job);
                    busy.insert(key.clone());
                    running += 1;
                    let tx = tx.clone();
                    let kill = flags.kill.clone();
                    scope.spawn(move || {
                        let result = self.run_job(&job, &kill);
                        let _ = tx.send((key, job, result));
                    });
                }
                if running == 0 {
                    break;
                }
                let Ok((key, job, result)) = rx.recv() else {
                    break;
                };
                running -= 1;
                busy.remove(&key);
                self.finish(&job, &result, summary);
            }
        });
        for job in pending {
            if let Some(id) = &job.job_id {
                match self
                    .client
                    .call("POST", &format!("/sync/jobs/{id}/cancel"), None)
                {
                    Ok(_) => summary.cancelled += 1,
                    Err(e) => {
                        tracing::warn!(job_id = id, error = %e, "could not hand the job back")
                    }
                }
            }
        }
    }

    fn finish(&self, job: &Instruction, result: &JobResult, summary: &mut CycleSummary) {
        let job_id = job.job_id.as_deref().unwrap_or("");
        if result.succeeded {
            summary.succeeded += 1;
            tracing::info!(job_id, bytes = result.bytes, "job succeeded");
        } else {
            summary.failed += 1;
            let error = result.error.as_deref().unwrap_or("");
            if error.starts_with("refused") {
                summary.refused += 1;
            }
            tracing::warn!(job_id, error, "job failed");
        }
        if let Err(e) = self.client.result(job_id, result) {
            tracing::warn!(job_id, error = %e, "result not recorded");
        }
    }
}

/// This boot's id: a process group recorded before a reboot names nothing of ours.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains(' '))
}

/// Jobs that receive into the same dataset never run at once.
fn target_key(job: &Instruction) -> String {
    format!(
        "{}:{}",
        job.target_system_id.as_deref().unwrap_or(""),
        job.target_dataset_path
            .as_deref()
            .or(job.job_id.as_deref())
            .unwrap_or("")
    )
}

/// One whole cycle.
pub fn once(settings: &Settings, flags: &StopFlags) -> Result<CycleSummary, AgentError> {
    let Some(_lock) = lock(&settings.lock_file)? else {
        tracing::warn!(lock_file = %settings.lock_file.display(), "another agent holds the lock; this cycle does nothing");
        return Ok(CycleSummary {
            locked_out: true,
            ..Default::default()
        });
    };
    tracing::debug!("cycle starts");
    let agent = Agent::connect(settings)?;
    agent.recover();
    let mut summary = CycleSummary {
        reported: agent.report()?,
        ..Default::default()
    };
    if flags.stop.load(Ordering::Relaxed) {
        return Ok(summary);
    }
    tracing::debug!("fetching instructions");
    let instructions = agent.client.instructions(&agent.me, false)?;
    tracing::debug!(
        entries = instructions.datasets.len(),
        "instructions fetched"
    );
    for d in instructions.diagnostics.iter().flatten() {
        tracing::debug!(diagnostic = %d, "witness diagnostic");
    }
    let jobs: Vec<Instruction> = instructions
        .datasets
        .into_iter()
        .filter(|j| j.job_id.is_some())
        .collect();
    if !jobs.is_empty() {
        tracing::info!(jobs = jobs.len(), "jobs leased");
    }
    agent.run_jobs(jobs, flags, &mut summary);
    if summary.succeeded > 0 {
        summary.reported |= agent.report()?;
    }
    Ok(summary)
}
