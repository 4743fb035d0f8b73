//! Plan ZFS replication between hosts from their `zfs list` output, with the core alone: no
//! server, no database.
//!
//! Each host's inventory is a file holding the output of
//!
//!     zfs list -H -p -t snapshot -o name,guid,createtxg,creation,used,referenced
//!
//! named after the host (`hostA.txt` is host `hostA`). The hosts form one sync group in which
//! any host may be the source of a dataset; datasets are matched pool-agnostically
//! (`tank/vm1` on one host and `backup/vm1` on another are one logical dataset). The program
//! prints each transfer with the commands that would run it, the conflicts and the gaps no
//! send can fill. It runs nothing.
//!
//!     cargo run -p zfs-sync-examples --example plan_from_zfs_list
//!     cargo run -p zfs-sync-examples --example plan_from_zfs_list -- hostA.txt hostB.txt
//!
//! Without arguments it reads `examples/data/hostA.txt` and `hostB.txt`.
//! `plan_from_zfs_list.py` does the same from Python, with more options.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use zfs_sync::command::transfer_commands;
use zfs_sync::inventory::parse_snapshot_list;
use zfs_sync::model::{
    Member, NewSnapshot, Policy, Snapshot, SyncGroup, System, Topology, TransferMode,
};
use zfs_sync::plan::{MemberInventory, plan_group};

fn main() -> ExitCode {
    let mut paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
        paths = vec![data.join("hostA.txt"), data.join("hostB.txt")];
    }
    match run(&paths) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(paths: &[PathBuf]) -> Result<(), Box<dyn Error>> {
    let now = Utc::now();
    // ANCHOR: readme
    // One member per `zfs list` file, its snapshots as the witness would store them.
    let mut inventories = Vec::new();
    for path in paths {
        let system = host(path, now);
        let reported = parse_snapshot_list(&std::fs::read_to_string(path)?)?;
        let snapshots = reported.iter().map(|s| stored(s, system.id, now)).collect();
        let member = Member {
            system_id: system.id,
            dataset_root: None,
        };
        inventories.push(MemberInventory {
            system,
            member,
            snapshots,
            resume_tokens: vec![],
            datasets: vec![],
            bookmarks: vec![],
        });
    }
    let group = sync_group(&inventories, now);

    let plan = plan_group(&group, &inventories, now);
    let systems: HashMap<Uuid, &System> = inventories
        .iter()
        .map(|i| (i.system.id, &i.system))
        .collect();
    for t in plan.transfers() {
        let (source, target) = (systems[&t.source.system_id], systems[&t.target.system_id]);
        let (from, to) = (&source.hostname, &target.hostname);
        println!(
            "{} {from}:{} -> {to}:{}",
            t.kind.as_str(),
            t.source.dataset,
            t.target.dataset
        );
        let runner = if t.mode == TransferMode::Push {
            from
        } else {
            to
        };
        for command in transfer_commands(t, source, target, group.policy.send_flags)? {
            println!("  run on {runner}: {}", command.shell);
        }
    }
    // ANCHOR_END: readme
    for d in &plan.datasets {
        for c in &d.conflicts {
            println!(
                "conflict ({}, {}) on {}: {} vs {}",
                c.kind.as_str(),
                c.reason,
                c.dataset,
                systems[&c.system_a].hostname,
                systems[&c.system_b].hostname
            );
        }
        for g in &d.gaps {
            let names: Vec<&str> = g.snapshots.iter().map(|s| s.as_str()).collect();
            println!(
                "gap on {}:{}: {} cannot be sent any more",
                systems[&g.target].hostname,
                d.dataset,
                names.join(", ")
            );
        }
    }
    for d in &plan.diagnostics {
        println!("note: {}", d.message);
    }
    Ok(())
}

/// The host a `zfs list` file describes: named after the file, reached over SSH by that name.
fn host(path: &Path, now: DateTime<Utc>) -> System {
    let hostname = path.file_stem().unwrap_or_default().to_string_lossy();
    System::new(Uuid::new_v4(), hostname.into_owned(), now)
}

/// A reported snapshot as the witness would store it for `system_id`.
fn stored(s: &NewSnapshot, system_id: Uuid, now: DateTime<Utc>) -> Snapshot {
    Snapshot::from_new(Uuid::new_v4(), system_id, s.clone(), now)
}

/// One group of every host, any of which may be a dataset's source, with the default policy
/// (push, every snapshot, no destructive plans).
fn sync_group(inventories: &[MemberInventory], now: DateTime<Utc>) -> SyncGroup {
    let mut members: Vec<Member> = inventories.iter().map(|i| i.member.clone()).collect();
    members.sort_by_key(|m| m.system_id);
    SyncGroup {
        id: Uuid::new_v4(),
        name: "example".into(),
        description: None,
        enabled: true,
        topology: Topology::Bidirectional,
        sync_interval_seconds: 3600,
        policy: Policy::default(),
        members,
        created_at: now,
        updated_at: now,
    }
}
