//! The pipeline runner: stages spawned directly (no shell) in one new process group, the first
//! stage's output relayed to the second through the agent (counting bytes, enforcing the
//! bandwidth limit), every stage's exit status checked, each stage's stderr tail kept. No byte
//! for `stall` (or, after the stream ended, no stage exiting for `stall`), the job timeout, or
//! a kill request kills the whole process group.

use std::io::{Read, Write};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use std::os::unix::process::{CommandExt, ExitStatusExt};

/// Bytes of each stage's stderr kept for the report.
pub const STDERR_TAIL: usize = 2048;
const RELAY_BUFFER: usize = 128 * 1024;
const POLL: Duration = Duration::from_millis(50);

/// The limits of one pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub stall: Duration,
    /// `None`: no timeout.
    pub timeout: Option<Duration>,
    /// Bytes per second through the relay; 0: unlimited.
    pub bandwidth: u64,
    pub progress_every: Duration,
}

/// Why a pipeline failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No byte (or no stage finishing) for the stall time.
    Stalled,
    TimedOut,
    /// The agent was told to stop.
    Killed,
    /// A stage could not be started.
    Spawn(String),
    /// One or more stages exited unsuccessfully.
    Exit(String),
}

/// The end of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub bytes: u64,
    pub failure: Option<Failure>,
    /// Each stage's stderr tail.
    pub stderr: Vec<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// The failure in one line, with the stderr tails (`None` when it succeeded).
    pub fn reason(&self, limits: &Limits) -> Option<String> {
        let f = self.failure.as_ref()?;
        let tails: Vec<String> = self
            .stderr
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.trim().is_empty())
            .map(|(i, t)| format!("stage {i} stderr: {}", t.trim()))
            .collect();
        let head = match f {
            Failure::Stalled => format!(
                "stalled: no progress for {} s, pipeline killed",
                limits.stall.as_secs()
            ),
            Failure::TimedOut => format!(
                "timeout: still running after {} s, pipeline killed",
                limits.timeout.map_or(0, |t| t.as_secs())
            ),
            Failure::Killed => "interrupted: the agent is stopping, pipeline killed".into(),
            Failure::Spawn(m) | Failure::Exit(m) => m.clone(),
        };
        Some(if tails.is_empty() {
            head
        } else {
            format!("{head}; {}", tails.join("; "))
        })
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes of a stream.
fn tail_reader(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        if tail.len() > STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
        String::from_utf8_lossy(&tail).into_owned()
    })
}

/// Shared by the relay and the supervisor.
struct Meter {
    start: Instant,
    bytes: AtomicU64,
    /// Milliseconds since `start` of the last byte.
    last_ms: AtomicU64,
}

impl Meter {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

fn relay(
    mut from: ChildStdout,
    mut to: std::process::ChildStdin,
    meter: Arc<Meter>,
    bandwidth: u64,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; RELAY_BUFFER];
        let started = Instant::now();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            let total = meter.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            meter.touch();
            if bandwidth > 0 {
                let due = Duration::from_secs_f64(total as f64 / bandwidth as f64);
                let elapsed = started.elapsed();
                if due > elapsed {
                    thread::sleep(due - elapsed);
                }
            }
        }
        // Dropping `to` closes the next stage's stdin (end of stream); dropping `from` makes
        // a still-writing first stage fail with EPIPE.
    })
}

/// Kills a process group (SIGKILL); 0 is refused.
pub fn kill_group(pgid: u32) {
    // 0 would be the agent's own group: no stage was started.
    if pgid == 0 {
        return;
    }
    if let Ok(pid) = i32::try_from(pgid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => status.to_string(),
    }
}

fn spawn_stage(argv: &[String], pgid: u32) -> std::io::Result<Command> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("an empty stage"))?;
    let mut cmd = Command::new(program);
    cmd.args(args).process_group(pgid as i32);
    Ok(cmd)
}

/// Runs one pipeline (1 or 2 stages; more are chained directly without counting).
/// `on_start` gets the pipeline's process group id once the first stage runs; `on_progress`
/// the bytes relayed so far every `limits.progress_every`; `kill` set by another thread kills
/// the pipeline.
pub fn run(
    stages: &[Vec<String>],
    limits: &Limits,
    on_start: &mut dyn FnMut(u32),
    on_progress: &mut dyn FnMut(u64),
    kill: &AtomicBool,
) -> Outcome {
    let meter = Arc::new(Meter {
        start: Instant::now(),
        bytes: AtomicU64::new(0),
        last_ms: AtomicU64::new(0),
    });
    let mut children: Vec<Child> = Vec::new();
    let mut tails: Vec<JoinHandle<String>> = Vec::new();
    let mut relay_thread = None;
    let mut pgid = 0u32;
    let mut spawn_error = None::<String>;
    for (i, argv) in stages.iter().enumerate() {
        let last = i + 1 == stages.len();
        let spawned = spawn_stage(argv, pgid).and_then(|mut cmd| {
            cmd.stdout(if last { Stdio::null() } else { Stdio::piped() })
                .stderr(Stdio::piped());
            match i {
                0 => cmd.stdin(Stdio::null()),
                1 => cmd.stdin(Stdio::piped()),
                _ => match children[i - 1].stdout.take() {
                    Some(out) => cmd.stdin(Stdio::from(out)),
                    None => cmd.stdin(Stdio::null()),
                },
            };
            cmd.spawn()
        });
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                spawn_error = Some(format!(
                    "stage {i} ({}) could not be started: {e}",
                    argv.first().map_or("", String::as_str)
                ));
                break;
            }
        };
        if i == 0 {
            pgid = child.id();
            on_start(pgid);
        }
        if let Some(err) = child.stderr.take() {
            tails.push(tail_reader(err));
        }
        if i == 1
            && let (Some(stdin), Some(first_out)) = (child.stdin.take(), children[0].stdout.take())
        {
            relay_thread = Some(relay(first_out, stdin, meter.clone(), limits.bandwidth));
        }
        children.push(child);
    }
    let mut failure = spawn_error.take().map(Failure::Spawn);
    if failure.is_some() {
        kill_group(pgid);
    }
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut next_progress = Instant::now() + limits.progress_every;
    let counting = stages.len() > 1;
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if statuses[i].is_none()
                && let Ok(Some(s)) = c.try_wait()
            {
                statuses[i] = Some(s);
                meter.touch();
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        if failure.is_none() {
            if kill.load(Ordering::Relaxed) {
                failure = Some(Failure::Killed);
            } else if limits.timeout.is_some_and(|t| meter.start.elapsed() > t) {
                failure = Some(Failure::TimedOut);
            } else if counting && meter.idle() > limits.stall {
                failure = Some(Failure::Stalled);
            }
            if failure.is_some() {
                kill_group(pgid);
            }
        }
        if Instant::now() >= next_progress {
            on_progress(meter.bytes.load(Ordering::Relaxed));
            next_progress = Instant::now() + limits.progress_every;
        }
        thread::sleep(POLL);
    }
    if let Some(r) = relay_thread {
        let _ = r.join();
    }
    let stderr: Vec<String> = tails
        .into_iter()
        .map(|t| t.join().unwrap_or_default())
        .collect();
    if failure.is_none() {
        let bad: Vec<String> = statuses
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let s = s.as_ref()?;
                (!s.success()).then(|| {
                    format!(
                        "stage {i} ({}) {}",
                        stages[i].first().map_or("", String::as_str),
                        describe(*s)
                    )
                })
            })
            .collect();
        if !bad.is_empty() {
            failure = Some(Failure::Exit(bad.join("; ")));
        }
    }
    Outcome {
        bytes: meter.bytes.load(Ordering::Relaxed),
        failure,
        stderr,
    }
}

#[cfg(test)]
mod tests {
    //! Fake stages are `sh -c` scripts (the runner itself runs whatever argv it is given; the
    //! argv check is `allow`'s job).
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    fn limits() -> Limits {
        Limits {
            stall: Duration::from_secs(30),
            timeout: None,
            bandwidth: 0,
            progress_every: Duration::from_secs(3600),
        }
    }

    fn go(stages: &[Vec<String>], l: &Limits) -> Outcome {
        run(stages, l, &mut |_| {}, &mut |_| {}, &AtomicBool::new(false))
    }

    #[test]
    fn bytes_are_counted_through_the_relay() {
        let o = go(
            &[sh("head -c 3000000 /dev/zero"), sh("wc -c > /dev/null")],
            &limits(),
        );
        assert!(o.succeeded(), "{o:?}");
        assert_eq!(o.bytes, 3_000_000);
    }

    #[test]
    fn a_failing_first_stage_is_not_hidden_by_a_succeeding_second() {
        let o = go(
            &[sh("echo boom >&2; exit 3"), sh("cat > /dev/null")],
            &limits(),
        );
        let reason = o.reason(&limits()).unwrap();
        assert!(
            reason.contains("stage 0 (sh) exited with status 3"),
            "{reason}"
        );
        assert!(reason.contains("boom"), "{reason}");
        assert!(!reason.contains("stage 1 (sh)"), "{reason}");
    }

    #[test]
    fn a_failing_second_stage_fails_the_pipeline() {
        let o = go(
            &[
                sh("head -c 1000000 /dev/zero"),
                sh("head -c 10 > /dev/null; exit 5"),
            ],
            &limits(),
        );
        let reason = o.reason(&limits()).unwrap();
        assert!(
            reason.contains("stage 1 (sh) exited with status 5"),
            "{reason}"
        );
    }

    #[test]
    fn a_killed_stage_is_reported_with_its_signal() {
        let o = go(&[sh("cat /dev/zero"), sh("kill -9 $$")], &limits());
        let reason = o.reason(&limits()).unwrap();
        assert!(
            reason.contains("stage 1 (sh) was killed by signal 9"),
            "{reason}"
        );
    }

    #[test]
    fn huge_stderr_keeps_only_its_tail() {
        let o = go(
            &[sh(
                "head -c 5000000 /dev/zero | tr '\\0' x >&2; echo THE-END >&2; exit 1",
            )],
            &limits(),
        );
        assert!(!o.succeeded());
        assert!(o.stderr[0].len() <= STDERR_TAIL, "{}", o.stderr[0].len());
        assert!(o.stderr[0].trim_end().ends_with("THE-END"));
    }

    #[test]
    fn a_stalled_pipeline_is_killed_whole() {
        let l = Limits {
            stall: Duration::from_secs(1),
            ..limits()
        };
        // Without the kill, this pipeline would end successfully after 3598 s.
        let o = go(
            &[sh("printf x; exec sleep 3598"), sh("cat > /dev/null")],
            &l,
        );
        assert_eq!(o.failure, Some(Failure::Stalled), "{o:?}");
        assert_eq!(o.bytes, 1);
        assert!(o.reason(&l).unwrap().starts_with("stalled"));
    }

    #[test]
    fn a_single_command_is_bounded_by_the_timeout() {
        let l = Limits {
            timeout: Some(Duration::from_secs(1)),
            ..limits()
        };
        let o = go(&[sh("exec sleep 3597")], &l);
        assert_eq!(o.failure, Some(Failure::TimedOut), "{o:?}");
    }

    #[test]
    fn the_kill_flag_kills_and_says_so() {
        let o = run(
            &[sh("exec sleep 3596")],
            &limits(),
            &mut |_| {},
            &mut |_| {},
            &AtomicBool::new(true),
        );
        assert_eq!(o.failure, Some(Failure::Killed));
    }

    #[test]
    fn a_program_that_does_not_exist_fails_to_spawn() {
        let o = go(
            &[vec!["/nonexistent/zfs".into()], sh("cat > /dev/null")],
            &limits(),
        );
        assert!(matches!(o.failure, Some(Failure::Spawn(_))), "{o:?}");
        let o = go(
            &[sh("head -c 100 /dev/zero"), vec!["/nonexistent/ssh".into()]],
            &limits(),
        );
        assert!(matches!(o.failure, Some(Failure::Spawn(_))), "{o:?}");
    }

    #[test]
    fn bandwidth_is_limited_and_progress_reported() {
        let l = Limits {
            bandwidth: 400_000,
            progress_every: Duration::from_millis(300),
            ..limits()
        };
        let start = Instant::now();
        let mut seen = Vec::new();
        let o = run(
            &[sh("head -c 800000 /dev/zero"), sh("cat > /dev/null")],
            &l,
            &mut |_| {},
            &mut |b| seen.push(b),
            &AtomicBool::new(false),
        );
        assert!(o.succeeded(), "{o:?}");
        // 800 kB at 400 kB/s cannot take less than (800k - one buffer) / 400k s.
        let floor = (800_000.0 - RELAY_BUFFER as f64) / 400_000.0;
        assert!(
            start.elapsed().as_secs_f64() >= floor,
            "{:?}",
            start.elapsed()
        );
        assert!(seen.iter().any(|b| *b > 0 && *b < 800_000), "{seen:?}");
    }
}
