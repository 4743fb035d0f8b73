//! For arbitrary validated names, hosts, users, ports and tokens, every rendered pipeline
//! splits back into exactly its argv at every shell level, holds no unquoted metacharacter and
//! no `%`, and never asks for `zfs receive -F`. Inputs that fail validation must be refused
//! with an error, never rendered.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;
use zfs_sync::command::verify::check_command;
use zfs_sync::command::{
    destroy_commands, destroy_dataset_command, rollback_command, transfer_commands,
};
use zfs_sync::model::{Capabilities, SendFlags, System, TransferKind, TransferMode};
use zfs_sync::names::{DatasetName, ShortName};
use zfs_sync::plan::{Endpoint, SendStep, Transfer};

/// Mostly legal name bytes (so that validation often passes), some hostile ones.
const NAME_BYTES: &[u8] = b"aAzZ09-_.: /:  ab.c-d%;'\"$`\\|&<>()*?~!#\n\t=,+{}";
const HOST_BYTES: &[u8] = b"abz019-._:%[];' $";
const TOKEN_BYTES: &[u8] = b"0123456789abcdef-0a-F ;'";

fn text(u: &mut Unstructured<'_>, alphabet: &[u8], max: usize) -> Result<String> {
    let len = u.int_in_range(0..=max)?;
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        s.push(char::from(*u.choose(alphabet)?));
    }
    Ok(s)
}

#[derive(Debug)]
struct Input {
    src_ds: String,
    tgt_ds: String,
    src_host: String,
    tgt_host: String,
    src_user: Option<String>,
    tgt_user: Option<String>,
    src_port: u16,
    tgt_port: u16,
    pull: bool,
    flags: [bool; 4],
    src_caps: Option<[bool; 5]>,
    tgt_caps: Option<[bool; 5]>,
    steps: Vec<(u8, String, String)>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let dataset = |u: &mut Unstructured<'a>| -> Result<String> {
            // Start with a letter most of the time, so the pool rule often holds.
            Ok(format!(
                "{}{}",
                if u.arbitrary()? { "t" } else { "" },
                text(u, NAME_BYTES, 40)?
            ))
        };
        let src_ds = dataset(u)?;
        let tgt_ds = dataset(u)?;
        let host = |u: &mut Unstructured<'a>| -> Result<String> {
            Ok(match u.int_in_range(0..=3)? {
                0 => std::net::Ipv4Addr::from(u.arbitrary::<u32>()?).to_string(),
                1 => std::net::Ipv6Addr::from(u.arbitrary::<u128>()?).to_string(),
                _ => text(u, HOST_BYTES, 70)?,
            })
        };
        let src_host = host(u)?;
        let tgt_host = host(u)?;
        let user = |u: &mut Unstructured<'a>| -> Result<Option<String>> {
            Ok(if u.arbitrary()? {
                Some(text(u, HOST_BYTES, 34)?)
            } else {
                None
            })
        };
        let src_user = user(u)?;
        let tgt_user = user(u)?;
        let mut steps = Vec::new();
        for _ in 0..u.int_in_range(1..=3)? {
            let kind = u.int_in_range(0..=3)?;
            let (a, b) = if kind == 3 {
                (text(u, TOKEN_BYTES, 60)?, String::new())
            } else {
                (text(u, NAME_BYTES, 20)?, text(u, NAME_BYTES, 20)?)
            };
            steps.push((kind, a, b));
        }
        Ok(Input {
            src_ds,
            tgt_ds,
            src_host,
            tgt_host,
            src_user,
            tgt_user,
            src_port: u.arbitrary()?,
            tgt_port: u.arbitrary()?,
            pull: u.arbitrary()?,
            flags: u.arbitrary()?,
            src_caps: u.arbitrary()?,
            tgt_caps: u.arbitrary()?,
            steps,
        })
    }
}

fn caps(c: Option<[bool; 5]>) -> Option<Capabilities> {
    c.map(|c| Capabilities {
        resumable_receive: c[0],
        compressed_send: c[1],
        raw_send: c[2],
        large_blocks: c[3],
        embedded_data: c[4],
        // Neither changes the transfer commands this target checks.
        ..Capabilities::ALL
    })
}

fn system(
    id: u128,
    host: &str,
    user: Option<&str>,
    port: u16,
    caps: Option<Capabilities>,
) -> System {
    let t = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
    System {
        id: Uuid::from_u128(id),
        hostname: host.to_string(),
        platform: None,
        ssh_hostname: None,
        ssh_user: user.map(str::to_string),
        ssh_port: port,
        capabilities: caps,
        extra_metadata: Default::default(),
        last_seen: None,
        created_at: t,
        updated_at: t,
    }
}

fn check(cmd: &zfs_sync::command::Command) -> Vec<Option<Vec<String>>> {
    assert!(!cmd.shell.contains('%'), "{:?}", cmd.shell);
    let remotes = check_command(cmd).unwrap_or_else(|e| panic!("{e}"));
    for stage in cmd.argv.iter().chain(remotes.iter().flatten()) {
        if stage.get(1).map(String::as_str) == Some("receive") {
            assert!(!stage.iter().any(|a| a == "-F"), "{stage:?}");
        }
    }
    remotes
}

fuzz_target!(|input: Input| {
    let (Ok(src_ds), Ok(tgt_ds)) = (
        DatasetName::parse(&input.src_ds),
        DatasetName::parse(&input.tgt_ds),
    ) else {
        return;
    };
    let mut steps = Vec::new();
    for (kind, a, b) in &input.steps {
        let step = match kind {
            3 => SendStep::Resume { token: a.clone() },
            _ => {
                let (Ok(a), Ok(b)) = (ShortName::parse(a), ShortName::parse(b)) else {
                    return;
                };
                match kind {
                    0 => SendStep::Full { snapshot: a },
                    1 => SendStep::Incremental { from: a, to: b },
                    4 => SendStep::FromBookmark { bookmark: a, to: b },
                    _ => SendStep::Range { from: a, to: b },
                }
            }
        };
        steps.push(step);
    }
    let src = system(
        1,
        &input.src_host,
        input.src_user.as_deref(),
        input.src_port,
        caps(input.src_caps),
    );
    let tgt = system(
        2,
        &input.tgt_host,
        input.tgt_user.as_deref(),
        input.tgt_port,
        caps(input.tgt_caps),
    );
    let t = Transfer {
        group_id: Uuid::from_u128(3),
        dataset: String::new(),
        kind: TransferKind::Incremental,
        mode: if input.pull {
            TransferMode::Pull
        } else {
            TransferMode::Push
        },
        source: Endpoint {
            system_id: src.id,
            dataset: src_ds.clone(),
        },
        target: Endpoint {
            system_id: tgt.id,
            dataset: tgt_ds.clone(),
        },
        base: None,
        steps: steps.clone(),
        snapshots: vec![],
        estimated_bytes: 0,
        create_parent: None,
        overwrite_empty: false,
        receive_options: Default::default(),
    };
    let f = input.flags;
    let flags = SendFlags {
        compressed: f[0],
        raw: f[1],
        large_blocks: f[2],
        embedded: f[3],
    };
    let remote = if input.pull { &src } else { &tgt };
    let remote_ok = zfs_sync::model::validate_host("h", remote.ssh_host()).is_ok()
        && remote
            .ssh_user
            .as_deref()
            .is_none_or(|u| zfs_sync::model::validate_ssh_user("u", u).is_ok())
        && remote.ssh_port != 0;
    // Refusing is always allowed; rendering something unsafe is not.
    if let Ok(cmds) = transfer_commands(&t, &src, &tgt, flags) {
        assert!(remote_ok, "rendered for an invalid remote end {remote:?}");
        assert_eq!(cmds.len(), steps.len());
        for (cmd, step) in cmds.iter().zip(&steps) {
            let remote_argv = check(cmd)
                .into_iter()
                .flatten()
                .next()
                .expect("one ssh stage");
            let (send, receive) = if input.pull {
                (&remote_argv, &cmd.argv[1])
            } else {
                (&cmd.argv[0], &remote_argv)
            };
            assert_eq!(&send[..2], ["zfs", "send"]);
            assert_eq!(&receive[..2], ["zfs", "receive"]);
            assert_eq!(receive.last().unwrap(), tgt_ds.as_str());
            if let SendStep::Resume { token } = step {
                assert_eq!(&send[2..], ["-t", token.as_str()]);
            }
        }
    }

    // Local commands on the same names.
    let dd = destroy_dataset_command(&tgt_ds).expect("a valid dataset name always renders");
    check(&dd);
    assert_eq!(
        dd.argv,
        vec![vec![
            "zfs".to_string(),
            "destroy".into(),
            tgt_ds.to_string()
        ]]
    );
    if let Some(SendStep::Range { from, to } | SendStep::Incremental { from, to }) = steps.first() {
        if let Ok(rb) = rollback_command(&tgt_ds, from) {
            check(&rb);
            assert_eq!(
                rb.argv,
                vec![vec![
                    "zfs".to_string(),
                    "rollback".into(),
                    "-r".into(),
                    format!("{tgt_ds}@{from}")
                ]]
            );
        }
        if let Ok(d) = destroy_commands(&tgt_ds, &[from.clone(), to.clone()]) {
            assert_eq!(d.len(), 2);
            d.iter().for_each(|c| {
                check(c);
            });
        }
    }
});
