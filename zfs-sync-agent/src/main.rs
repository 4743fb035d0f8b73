//! `zfs-sync-agent`: see the library's documentation and `zfs-sync-agent --help`.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use zfs_sync_agent::cycle::{self, StopFlags};
use zfs_sync_agent::settings::{self, Cli, Command, LogFormat, Settings};
use zfs_sync_agent::{AgentError, enroll, views};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZFS_SYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn settings_of(cli: &Cli) -> Result<Settings, AgentError> {
    let file = settings::read_file(cli.common.config.as_deref())?;
    Settings::resolve(&cli.common, std::env::var("ZFS_SYNC_API_KEY").ok(), file)
}

/// SIGTERM/SIGINT stop taking work; after `grace` the running pipelines are killed.
fn stop_flags(grace: Duration) -> StopFlags {
    let flags = StopFlags::default();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, flags.stop.clone()) {
            tracing::warn!(error = %e, "cannot handle signal {sig}");
        }
    }
    let watch = flags.clone();
    std::thread::spawn(move || {
        while !watch.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::info!(
            grace_seconds = grace.as_secs(),
            "stop requested: taking no more work"
        );
        std::thread::sleep(grace);
        watch.kill.store(true, Ordering::Relaxed);
    });
    flags
}

fn jitter(interval: u64) -> Duration {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map_or(0, |()| u16::from_le_bytes(b));
    // ±10 %.
    let spread = interval as f64 * 0.2 * (f64::from(r) / f64::from(u16::MAX) - 0.5);
    Duration::from_secs_f64((interval as f64 + spread).max(1.0))
}

fn run_loop(settings: &Settings) -> ExitCode {
    let flags = stop_flags(Duration::from_secs(settings.grace_seconds));
    while !flags.stop.load(Ordering::Relaxed) {
        match cycle::once(settings, &flags) {
            Ok(s) => tracing::info!(summary = ?s, "cycle done"),
            Err(e) => tracing::error!(error = %e, "cycle failed"),
        }
        let wake = Instant::now() + jitter(settings.interval_seconds);
        while Instant::now() < wake && !flags.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn print_json_or(
    json: bool,
    v: &serde_json::Value,
    text: impl FnOnce(&serde_json::Value) -> String,
) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        print!("{}", text(v));
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let fail = |e: AgentError| {
        tracing::error!(error = %e, "stopped");
        eprintln!("zfs-sync-agent: {e}");
        ExitCode::from(e.exit_code())
    };
    if let Command::Enroll(args) = &cli.command {
        init_logging(LogFormat::Text);
        return match enroll::enroll(&cli.common, args) {
            Ok(e) => {
                println!(
                    "{} system {}; configuration written to {} (mode 0600)",
                    if e.rotated { "re-keyed" } else { "enrolled" },
                    e.system_id,
                    e.config.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    let settings = match settings_of(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zfs-sync-agent: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    init_logging(settings.log_format);
    match &cli.command {
        Command::Once => {
            let flags = stop_flags(Duration::from_secs(settings.grace_seconds));
            match cycle::once(&settings, &flags) {
                Ok(s) => {
                    tracing::info!(summary = ?s, "cycle done");
                    ExitCode::from(s.exit_code())
                }
                Err(e) => fail(e),
            }
        }
        Command::Run => run_loop(&settings),
        Command::Plan { json } => match views::plan(&settings) {
            Ok(v) => {
                print_json_or(*json, &v, views::plan_text);
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Status { json } => match views::status(&settings) {
            Ok(v) => {
                print_json_or(*json, &v, views::status_text);
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Enroll(_) => unreachable!("handled above"),
    }
}
