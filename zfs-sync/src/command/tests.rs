use super::verify::{check_command, check_no_unquoted_metachar};
use super::*;
use crate::model::{Capabilities, TransferKind, validate_host};
use crate::plan::{Endpoint, SnapshotRef};
use crate::testing::fixtures;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use uuid::Uuid;

fn system(
    id: u128,
    host: &str,
    user: Option<&str>,
    port: u16,
    caps: Option<Capabilities>,
) -> System {
    System {
        ssh_user: user.map(str::to_string),
        ssh_port: port,
        capabilities: caps,
        ..fixtures::system(Uuid::from_u128(id), host)
    }
}

fn sn(s: &str) -> ShortName {
    ShortName::parse(s).unwrap()
}

fn transfer(mode: TransferMode, src_ds: &str, tgt_ds: &str, steps: Vec<SendStep>) -> Transfer {
    Transfer {
        group_id: Uuid::from_u128(9),
        dataset: "vm1".into(),
        kind: TransferKind::Incremental,
        mode,
        source: Endpoint {
            system_id: Uuid::from_u128(1),
            dataset: DatasetName::parse(src_ds).unwrap(),
        },
        target: Endpoint {
            system_id: Uuid::from_u128(2),
            dataset: DatasetName::parse(tgt_ds).unwrap(),
        },
        base: Some(SnapshotRef {
            name: sn("a"),
            guid: Some(1),
            createtxg: Some(1),
            creation: DateTime::<Utc>::from_timestamp(1, 0).unwrap(),
        }),
        steps,
        create_parent: None,
        overwrite_empty: false,
        receive_options: Default::default(),
        snapshots: vec![],
        estimated_bytes: 0,
    }
}

fn assert_field(e: &Error, want: &str) {
    assert!(
        matches!(e, Error::InvalidInput { field, .. } if field == want),
        "expected {want}: {e:?}"
    );
}

fn v(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

/// Renders, checks the round trip at every level, and returns (shell, remote argv).
fn render(
    t: &Transfer,
    src: &System,
    tgt: &System,
    flags: SendFlags,
) -> Vec<(Command, Vec<String>)> {
    transfer_commands(t, src, tgt, flags)
        .unwrap()
        .into_iter()
        .map(|c| {
            let remotes = check_command(&c).unwrap();
            let remote = remotes.into_iter().flatten().next().expect("one ssh stage");
            (c, remote)
        })
        .collect()
}

#[test]
fn push_incremental_range_with_all_flags() {
    let src = system(1, "hqs10p1", None, 22, None);
    let tgt = system(2, "hqs7p1.example.com", Some("zsync"), 2222, None);
    let t = transfer(
        TransferMode::Push,
        "hqs10p1/L1S4DAT1",
        "hqs7p1/L1S4DAT1",
        vec![SendStep::Range {
            from: sn("2025-11-25-000000"),
            to: sn("2025-11-26-000000"),
        }],
    );
    let flags = SendFlags {
        compressed: true,
        raw: false,
        large_blocks: true,
        embedded: true,
    };
    let out = render(&t, &src, &tgt, flags);
    assert_eq!(out.len(), 1);
    let (cmd, remote) = &out[0];
    assert_eq!(
        cmd.argv[0],
        v(&[
            "zfs",
            "send",
            "-c",
            "-L",
            "-e",
            "-I",
            "hqs10p1/L1S4DAT1@2025-11-25-000000",
            "hqs10p1/L1S4DAT1@2025-11-26-000000"
        ])
    );
    assert_eq!(
        remote,
        &v(&["zfs", "receive", "-s", "-u", "hqs7p1/L1S4DAT1"])
    );
    assert_eq!(
        cmd.shell,
        "zfs send -c -L -e -I hqs10p1/L1S4DAT1@2025-11-25-000000 hqs10p1/L1S4DAT1@2025-11-26-000000 \
         | ssh -p 2222 -o BatchMode=yes zsync@hqs7p1.example.com 'zfs receive -s -u hqs7p1/L1S4DAT1'"
    );
}

#[test]
fn pull_full_and_incremental_steps() {
    let src = system(1, "src", Some("root"), 22, None);
    let tgt = system(2, "tgt", None, 22, None);
    let t = transfer(
        TransferMode::Pull,
        "tank/vm1",
        "backup/replicas/hostA/vm1",
        vec![
            SendStep::Full { snapshot: sn("a") },
            SendStep::Incremental {
                from: sn("a"),
                to: sn("c"),
            },
        ],
    );
    let out = render(&t, &src, &tgt, SendFlags::default());
    assert_eq!(
        out[0].0.argv[0],
        v(&[
            "ssh",
            "-o",
            "BatchMode=yes",
            "root@src",
            "zfs send tank/vm1@a"
        ])
    );
    assert_eq!(out[0].1, v(&["zfs", "send", "tank/vm1@a"]));
    assert_eq!(
        out[0].0.argv[1],
        v(&["zfs", "receive", "-s", "-u", "backup/replicas/hostA/vm1"])
    );
    assert_eq!(
        out[1].1,
        v(&["zfs", "send", "-i", "tank/vm1@a", "tank/vm1@c"])
    );
    assert_eq!(
        out[1].0.shell,
        "ssh -o BatchMode=yes root@src 'zfs send -i tank/vm1@a tank/vm1@c' | zfs receive -s -u backup/replicas/hostA/vm1"
    );
}

#[test]
fn hostile_but_legal_names_are_quoted_per_level() {
    let src = system(1, "2001:db8::1", Some("a.b_c-d"), 65535, None);
    let tgt = system(2, "10.0.0.1", Some("u"), 1, None);
    let t = transfer(
        TransferMode::Pull,
        "tank/my data:set/x y",
        "backup/a  b/c",
        vec![SendStep::Range {
            from: sn("snap 1:00"),
            to: sn("snap 2:00"),
        }],
    );
    let out = render(&t, &src, &tgt, SendFlags::default());
    let (cmd, remote) = &out[0];
    assert_eq!(
        remote,
        &v(&[
            "zfs",
            "send",
            "-I",
            "tank/my data:set/x y@snap 1:00",
            "tank/my data:set/x y@snap 2:00"
        ])
    );
    assert_eq!(
        cmd.argv[0][..5],
        v(&["ssh", "-p", "65535", "-o", "BatchMode=yes"])
    );
    assert_eq!(cmd.argv[0][5], "a.b_c-d@2001:db8::1");
    assert_eq!(
        cmd.argv[1],
        v(&["zfs", "receive", "-s", "-u", "backup/a  b/c"])
    );
    assert_eq!(
        cmd.shell,
        "ssh -p 65535 -o BatchMode=yes a.b_c-d@2001:db8::1 \
         'zfs send -I '\\''tank/my data:set/x y@snap 1:00'\\'' '\\''tank/my data:set/x y@snap 2:00'\\''' \
         | zfs receive -s -u 'backup/a  b/c'"
    );
}

#[test]
fn resume_sends_only_the_token() {
    let src = system(1, "src", None, 22, None);
    let tgt = system(2, "tgt", None, 22, None);
    let token = "1-9baebea70-b8-789c636064000310a500c4ec50360710e72765a5";
    let t = transfer(
        TransferMode::Push,
        "tank/a",
        "tank/a",
        vec![SendStep::Resume {
            token: token.into(),
        }],
    );
    let all = SendFlags {
        compressed: true,
        raw: false,
        large_blocks: true,
        embedded: true,
    };
    let out = render(&t, &src, &tgt, all);
    assert_eq!(out[0].0.argv[0], v(&["zfs", "send", "-t", token]));
    assert_eq!(out[0].1, v(&["zfs", "receive", "-s", "-u", "tank/a"]));

    for bad in ["1-abc;reboot", "1-ABC", "", "1-abc def", "$(id)"] {
        let t = transfer(
            TransferMode::Push,
            "tank/a",
            "tank/a",
            vec![SendStep::Resume { token: bad.into() }],
        );
        let e = transfer_commands(&t, &src, &tgt, all).unwrap_err();
        assert_field(&e, "steps[0].resume_token");
    }
    let old = system(
        1,
        "src",
        None,
        22,
        Some(Capabilities {
            resumable_receive: false,
            ..Capabilities::ALL
        }),
    );
    let t = transfer(
        TransferMode::Push,
        "tank/a",
        "tank/a",
        vec![SendStep::Resume {
            token: token.into(),
        }],
    );
    assert!(matches!(
        transfer_commands(&t, &old, &tgt, all),
        Err(Error::Conflict { .. })
    ));
}

#[test]
fn flags_are_limited_to_what_both_hosts_support() {
    let all = SendFlags {
        compressed: true,
        raw: false,
        large_blocks: true,
        embedded: true,
    };
    let no_c = Capabilities {
        compressed_send: false,
        ..Capabilities::ALL
    };
    let no_le = Capabilities {
        large_blocks: false,
        embedded_data: false,
        ..Capabilities::ALL
    };
    assert_eq!(
        send_flag_args(all, Capabilities::ALL, Capabilities::ALL).unwrap(),
        vec!["-c", "-L", "-e"]
    );
    assert_eq!(
        send_flag_args(all, no_c, Capabilities::ALL).unwrap(),
        vec!["-L", "-e"]
    );
    assert_eq!(
        send_flag_args(all, Capabilities::ALL, no_le).unwrap(),
        vec!["-c"]
    );
    assert_eq!(
        send_flag_args(all, Capabilities::NONE, Capabilities::ALL).unwrap(),
        Vec::<&str>::new()
    );
    assert_eq!(
        send_flag_args(SendFlags::default(), Capabilities::ALL, Capabilities::ALL).unwrap(),
        Vec::<&str>::new()
    );
    let raw = SendFlags { raw: true, ..all };
    assert_eq!(
        send_flag_args(raw, Capabilities::ALL, Capabilities::ALL).unwrap(),
        vec!["-w"]
    );
    let no_raw = Capabilities {
        raw_send: false,
        ..Capabilities::ALL
    };
    let e = send_flag_args(raw, Capabilities::ALL, no_raw).unwrap_err();
    assert!(
        matches!(e, Error::Conflict { ref message } if message.contains("the target")),
        "{e:?}"
    );

    // A target without resumable receive gets no -s, but still -u.
    let src = system(1, "src", None, 22, None);
    let tgt = system(2, "tgt", None, 22, Some(Capabilities::NONE));
    let t = transfer(
        TransferMode::Push,
        "tank/a",
        "tank/a",
        vec![SendStep::Full { snapshot: sn("s") }],
    );
    let out = render(&t, &src, &tgt, raw.with_raw(false));
    assert_eq!(out[0].1, v(&["zfs", "receive", "-u", "tank/a"]));
    assert_eq!(out[0].0.argv[0], v(&["zfs", "send", "tank/a@s"]));
}

trait WithRaw {
    fn with_raw(self, raw: bool) -> Self;
}
impl WithRaw for SendFlags {
    fn with_raw(self, raw: bool) -> Self {
        SendFlags { raw, ..self }
    }
}

#[test]
fn bad_stored_systems_are_refused() {
    let src = system(1, "src", None, 22, None);
    let step = vec![SendStep::Full { snapshot: sn("s") }];
    let push = transfer(TransferMode::Push, "tank/a", "tank/a", step.clone());
    let cases: Vec<(System, &str)> = vec![
        (
            system(2, "-oProxyCommand=id", None, 22, None),
            "target.hostname",
        ),
        (system(2, "host;id", None, 22, None), "target.hostname"),
        (system(2, "host name", None, 22, None), "target.hostname"),
        (system(2, "", None, 22, None), "target.hostname"),
        (system(2, "fe80::1%eth0", None, 22, None), "target.hostname"),
        (
            system(2, "tgt", Some("-oProxyCommand=id"), 22, None),
            "target.ssh_user",
        ),
        (system(2, "tgt", Some("us er"), 22, None), "target.ssh_user"),
        (system(2, "tgt", Some("u%"), 22, None), "target.ssh_user"),
        (system(2, "tgt", None, 0, None), "target.ssh_port"),
        (
            System {
                ssh_hostname: Some("$(reboot)".into()),
                ..system(2, "ok", None, 22, None)
            },
            "target.ssh_hostname",
        ),
    ];
    for (tgt, field) in cases {
        let e = transfer_commands(&push, &src, &tgt, SendFlags::default()).unwrap_err();
        assert_field(&e, field);
    }
    // In pull mode the source is the remote end.
    let pull = transfer(TransferMode::Pull, "tank/a", "tank/a", step);
    let bad_src = system(1, "a..b", None, 22, None);
    let e = transfer_commands(
        &pull,
        &bad_src,
        &system(2, "t", None, 22, None),
        SendFlags::default(),
    )
    .unwrap_err();
    assert_field(&e, "source.hostname");
    // Systems that are not the transfer's.
    let e = transfer_commands(
        &pull,
        &system(3, "s", None, 22, None),
        &src,
        SendFlags::default(),
    )
    .unwrap_err();
    assert_field(&e, "source");
}

#[test]
fn too_long_combined_names_are_refused() {
    let ds = format!("tank/{}", "a".repeat(200));
    let t = transfer(
        TransferMode::Push,
        &ds,
        "tank/b",
        vec![SendStep::Full {
            snapshot: sn(&"s".repeat(60)),
        }],
    );
    let e = transfer_commands(
        &t,
        &system(1, "s", None, 22, None),
        &system(2, "t", None, 22, None),
        SendFlags::default(),
    )
    .unwrap_err();
    assert_field(&e, "steps[0].snapshot");
}

#[test]
fn no_receive_force_ever() {
    let src = system(1, "s", None, 22, None);
    let tgt = system(2, "t", None, 22, None);
    for mode in [TransferMode::Push, TransferMode::Pull] {
        let t = transfer(
            mode,
            "tank/a",
            "tank/a",
            vec![
                SendStep::Full { snapshot: sn("a") },
                SendStep::Incremental {
                    from: sn("a"),
                    to: sn("b"),
                },
                SendStep::Range {
                    from: sn("b"),
                    to: sn("d"),
                },
                SendStep::Resume {
                    token: "1-a-b-cd".into(),
                },
            ],
        );
        for (cmd, remote) in render(&t, &src, &tgt, SendFlags::default()) {
            let receive: Vec<&Vec<String>> = cmd
                .argv
                .iter()
                .chain(std::iter::once(&remote))
                .filter(|a| a.get(1).map(String::as_str) == Some("receive"))
                .collect();
            assert_eq!(receive.len(), 1, "{cmd:?}");
            assert!(!receive[0].iter().any(|a| a == "-F"), "{cmd:?}");
        }
    }
}

#[test]
fn rollback_and_destroy() {
    let ds = DatasetName::parse("tank/my vm").unwrap();
    let rb = rollback_command(&ds, &sn("base:1")).unwrap();
    assert_eq!(
        rb.argv,
        vec![v(&["zfs", "rollback", "-r", "tank/my vm@base:1"])]
    );
    assert_eq!(rb.shell, "zfs rollback -r 'tank/my vm@base:1'");
    check_command(&rb).unwrap();
    let d = destroy_commands(&ds, &[sn("a"), sn("b c")]).unwrap();
    assert_eq!(
        d.iter().map(|c| c.shell.as_str()).collect::<Vec<_>>(),
        vec!["zfs destroy 'tank/my vm@a'", "zfs destroy 'tank/my vm@b c'"]
    );
    assert!(destroy_commands(&ds, &[]).unwrap().is_empty());
    let dd = destroy_dataset_command(&ds).unwrap();
    assert_eq!(dd.argv, vec![v(&["zfs", "destroy", "tank/my vm"])]);
    assert_eq!(dd.shell, "zfs destroy 'tank/my vm'");
    check_command(&dd).unwrap();
    let long = DatasetName::parse(&format!("tank/{}", "a".repeat(240))).unwrap();
    assert!(rollback_command(&long, &sn(&"s".repeat(20))).is_err());
}

#[test]
fn prune_batches_snapshots_into_one_quoted_destroy_each() {
    let ds = DatasetName::parse("tank/my vm").unwrap();
    let p = prune_commands(&ds, &[sn("a"), sn("b c"), sn("d:1")]).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].argv,
        vec![v(&["zfs", "destroy", "tank/my vm@a,b c,d:1"])]
    );
    assert_eq!(p[0].shell, "zfs destroy 'tank/my vm@a,b c,d:1'");
    check_command(&p[0]).unwrap();
    assert!(prune_commands(&ds, &[]).unwrap().is_empty());
    let many: Vec<ShortName> = (0..PRUNE_BATCH + 1).map(|i| sn(&format!("s{i}"))).collect();
    let p = prune_commands(&ds, &many).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(
        p[1].argv,
        vec![v(&[
            "zfs",
            "destroy",
            &format!("tank/my vm@s{PRUNE_BATCH}")
        ])]
    );
}

#[test]
fn quoting_rules() {
    assert_eq!(quote("tank/a@b"), "tank/a@b");
    assert_eq!(quote(""), "''");
    assert_eq!(quote("a b"), "'a b'");
    assert_eq!(quote("it's"), r"'it'\''s'");
    assert_eq!(quote("~x"), "'~x'");
    assert_eq!(
        quote("$x;`y`|z&<>*?[](){}!#\n\t\"\\"),
        "'$x;`y`|z&<>*?[](){}!#\n\t\"\\'"
    );
    assert_eq!(shell_words::split(&quote("it's")).unwrap(), vec!["it's"]);
    assert!(check_no_unquoted_metachar("a 'b c' | d", true).is_ok());
    assert!(check_no_unquoted_metachar("a | d", false).is_err());
    assert!(check_no_unquoted_metachar("a;b", true).is_err());
    assert!(check_no_unquoted_metachar("'a", true).is_err());
    assert!(check_no_unquoted_metachar("a\\ b", true).is_err());
}

fn arb_component() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_:. -]{1,10}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn arb_dataset() -> impl Strategy<Value = DatasetName> {
    (
        "[a-c][A-Za-z0-9_:. -]{0,8}",
        proptest::collection::vec(arb_component(), 0..4),
    )
        .prop_filter_map("valid", |(pool, path)| {
            DatasetName::from_parts(&pool, &path.join("/")).ok()
        })
}

fn arb_host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?){0,3}\\.?",
        any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
    ]
    .prop_filter("valid host", |h| validate_host("h", h).is_ok())
}

fn arb_step() -> impl Strategy<Value = SendStep> {
    let s = || arb_component().prop_map(|c| ShortName::parse(&c).unwrap());
    prop_oneof![
        s().prop_map(|snapshot| SendStep::Full { snapshot }),
        (s(), s()).prop_map(|(from, to)| SendStep::Incremental { from, to }),
        (s(), s()).prop_map(|(from, to)| SendStep::Range { from, to }),
        (s(), s()).prop_map(|(bookmark, to)| SendStep::FromBookmark { bookmark, to }),
        "[0-9a-f-]{1,80}".prop_map(|token| SendStep::Resume { token }),
    ]
}

proptest! {
    #[test]
    fn every_rendering_splits_back_exactly(
        src_ds in arb_dataset(), tgt_ds in arb_dataset(),
        src_host in arb_host(), tgt_host in arb_host(),
        src_user in proptest::option::of("[A-Za-z0-9._][A-Za-z0-9._-]{0,31}"),
        tgt_user in proptest::option::of("[A-Za-z0-9._][A-Za-z0-9._-]{0,31}"),
        src_port in 1u16.., tgt_port in 1u16..,
        pull in any::<bool>(),
        flags in any::<[bool; 4]>(),
        steps in proptest::collection::vec(arb_step(), 1..4),
    ) {
        let src = system(1, &src_host, src_user.as_deref(), src_port, None);
        let tgt = system(2, &tgt_host, tgt_user.as_deref(), tgt_port, None);
        let mut t = transfer(if pull { TransferMode::Pull } else { TransferMode::Push }, "tank/a", "tank/b", steps.clone());
        t.source.dataset = src_ds.clone();
        t.target.dataset = tgt_ds.clone();
        let flags = SendFlags { compressed: flags[0], raw: flags[1], large_blocks: flags[2], embedded: flags[3] };
        let cmds = match transfer_commands(&t, &src, &tgt, flags) {
            Ok(c) => c,
            // Only a combined name over 255 bytes may fail here.
            Err(Error::InvalidInput { field, .. }) => {
                prop_assert!(field.starts_with("steps["), "{}", field);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
        };
        prop_assert_eq!(cmds.len(), steps.len());
        for (cmd, step) in cmds.iter().zip(&steps) {
            let remotes = check_command(cmd).map_err(TestCaseError::fail)?;
            prop_assert!(!cmd.shell.contains('%'));
            let remote = remotes.into_iter().flatten().next().unwrap();
            let (send, receive) = if pull { (&remote, &cmd.argv[1]) } else { (&cmd.argv[0], &remote) };
            prop_assert_eq!(receive.last().unwrap(), tgt_ds.as_str());
            prop_assert!(!receive.iter().any(|a| a == "-F"));
            match step {
                SendStep::Resume { token } => prop_assert_eq!(&send[2..], &["-t".to_string(), token.clone()][..]),
                SendStep::Full { snapshot } => {
                    prop_assert_eq!(send.last().unwrap(), &format!("{src_ds}@{snapshot}"));
                }
                SendStep::Incremental { from, to } | SendStep::Range { from, to } => {
                    let n = send.len();
                    prop_assert_eq!(&send[n - 2], &format!("{src_ds}@{from}"));
                    prop_assert_eq!(&send[n - 1], &format!("{src_ds}@{to}"));
                }
                SendStep::FromBookmark { bookmark, to } => {
                    let n = send.len();
                    prop_assert_eq!(&send[n - 3], "-i");
                    prop_assert_eq!(&send[n - 2], &format!("{src_ds}#{bookmark}"));
                    prop_assert_eq!(&send[n - 1], &format!("{src_ds}@{to}"));
                }
            }
            let ssh = if pull { &cmd.argv[0] } else { &cmd.argv[1] };
            let (host, user, port) = if pull { (&src_host, &src_user, src_port) } else { (&tgt_host, &tgt_user, tgt_port) };
            let dest = match user { Some(u) => format!("{u}@{host}"), None => host.clone() };
            prop_assert_eq!(&ssh[ssh.len() - 2], &dest);
            prop_assert_eq!(ssh.contains(&"-p".to_string()), port != 22);
        }
    }

    #[test]
    fn quoting_round_trips_any_string(s in "(?s).{0,40}") {
        let rendered = render_argv(&[s.clone(), "x".into()]);
        prop_assert_eq!(shell_words::split(&rendered).unwrap(), vec![s, "x".to_string()]);
        check_no_unquoted_metachar(&rendered, false).map_err(TestCaseError::fail)?;
    }
}

fn options(set: &[(&str, &str)], exclude: &[&str]) -> crate::model::ReceiveOptions {
    crate::model::ReceiveOptions {
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
    }
}

/// Push: the missing parent is created on the target through the same ssh as the pipeline,
/// before it; only the first (full) receive has `-F`; every receive has the group's options,
/// a value with a space quoted once per shell level.
#[test]
fn push_full_send_creates_the_parent_and_renders_receive_options() {
    let src = system(1, "src", None, 22, None);
    let tgt = system(2, "tgt", Some("zsync"), 2222, None);
    let mut t = transfer(
        TransferMode::Push,
        "tank/vm 1",
        "backup/replicas/a b/vm 1",
        vec![
            SendStep::Full { snapshot: sn("a") },
            SendStep::Incremental {
                from: sn("a"),
                to: sn("b"),
            },
        ],
    );
    t.kind = TransferKind::Full;
    t.create_parent = Some(DatasetName::parse("backup/replicas/a b").unwrap());
    t.overwrite_empty = true;
    t.receive_options = options(
        &[("readonly", "on"), ("com.example:note", "a b,c+d")],
        &["mountpoint"],
    );
    let out = render(&t, &src, &tgt, SendFlags::default());
    assert_eq!(out.len(), 3);
    let (create, remote) = &out[0];
    assert_eq!(create.argv.len(), 1, "{create:?}");
    assert_eq!(
        create.argv[0][..6],
        v(&["ssh", "-p", "2222", "-o", "BatchMode=yes", "zsync@tgt"])
    );
    assert_eq!(remote, &v(&["zfs", "create", "-p", "backup/replicas/a b"]));
    assert_eq!(
        create.shell,
        r#"ssh -p 2222 -o BatchMode=yes zsync@tgt 'zfs create -p '\''backup/replicas/a b'\'''"#
    );
    let receive = |k: usize| out[k].1.clone();
    let tail = [
        "-o",
        "com.example:note=a b,c+d",
        "-o",
        "readonly=on",
        "-x",
        "mountpoint",
        "backup/replicas/a b/vm 1",
    ];
    let mut first = v(&["zfs", "receive", "-s", "-u", "-F"]);
    first.extend(v(&tail));
    assert_eq!(receive(1), first);
    let mut second = v(&["zfs", "receive", "-s", "-u"]);
    second.extend(v(&tail));
    assert_eq!(receive(2), second, "-F only on the full stream");
}

/// Pull: the parent is created locally (on the target, which runs the pipeline).
#[test]
fn pull_full_send_creates_the_parent_locally() {
    let src = system(1, "src", None, 22, None);
    let tgt = system(2, "tgt", None, 22, None);
    let mut t = transfer(
        TransferMode::Pull,
        "tank/vm1",
        "backup/r/vm1",
        vec![SendStep::Full { snapshot: sn("a") }],
    );
    t.kind = TransferKind::Full;
    t.create_parent = Some(DatasetName::parse("backup/r").unwrap());
    let cmds = transfer_commands(&t, &src, &tgt, SendFlags::default()).unwrap();
    assert_eq!(cmds.len(), 2);
    assert_eq!(cmds[0].argv, vec![v(&["zfs", "create", "-p", "backup/r"])]);
    assert_eq!(cmds[0].shell, "zfs create -p backup/r");
    assert_eq!(
        cmds[1].argv[1],
        v(&["zfs", "receive", "-s", "-u", "backup/r/vm1"]),
        "no -F, no options"
    );
}

/// Receive options that a stored transfer carries are checked again before rendering.
#[test]
fn invalid_receive_options_are_refused() {
    let src = system(1, "src", None, 22, None);
    let tgt = system(2, "tgt", None, 22, None);
    let mut t = transfer(
        TransferMode::Push,
        "tank/vm1",
        "tank/vm1",
        vec![SendStep::Full { snapshot: sn("a") }],
    );
    t.receive_options = options(&[("readonly", "on;reboot")], &[]);
    let e = transfer_commands(&t, &src, &tgt, SendFlags::default()).unwrap_err();
    assert_field(&e, "transfer.receive_options.set.readonly");
    t.receive_options = options(&[], &["Mount Point"]);
    let e = transfer_commands(&t, &src, &tgt, SendFlags::default()).unwrap_err();
    assert_field(&e, "transfer.receive_options.exclude");
}

#[test]
fn maintenance_commands_render_one_command_per_hold_and_batched_prunes() {
    use crate::model::JobStep;
    use crate::retention::MaintenanceJob;
    let job = |step, items: &[(Option<&str>, &str)]| MaintenanceJob {
        step,
        dataset: "vm".into(),
        host_dataset: "tank/vm".into(),
        destructive: step == JobStep::Prune,
        items: items
            .iter()
            .map(|(t, s)| (t.map(Into::into), (*s).into()))
            .collect(),
    };
    let shells = |j: &MaintenanceJob| -> Vec<String> {
        super::maintenance_commands(j)
            .unwrap()
            .into_iter()
            .map(|c| c.shell)
            .collect()
    };
    let tag = "zfs-sync:aaaaaaaa:22222222";
    assert_eq!(
        shells(&job(JobStep::Hold, &[(Some(tag), "d3"), (Some(tag), "d2")])),
        [
            "zfs hold zfs-sync:aaaaaaaa:22222222 tank/vm@d3",
            "zfs hold zfs-sync:aaaaaaaa:22222222 tank/vm@d2"
        ]
    );
    assert_eq!(
        shells(&job(JobStep::Release, &[(Some(tag), "d1")])),
        ["zfs release zfs-sync:aaaaaaaa:22222222 tank/vm@d1"]
    );
    assert_eq!(
        shells(&job(JobStep::Bookmark, &[(None, "d3")])),
        ["zfs bookmark tank/vm@d3 'tank/vm#d3'"]
    );
    assert_eq!(
        shells(&job(JobStep::Prune, &[(None, "d1"), (None, "d0")])),
        ["zfs destroy tank/vm@d1,d0"]
    );
    // Bad tags and names never reach a command.
    for bad in ["-r", "a b", "x;rm", ""] {
        assert!(super::maintenance_commands(&job(JobStep::Hold, &[(Some(bad), "d1")])).is_err());
    }
    assert!(super::maintenance_commands(&job(JobStep::Hold, &[(None, "d1")])).is_err());
    assert!(super::maintenance_commands(&job(JobStep::Prune, &[(None, "d1,d2")])).is_err());
    assert!(super::maintenance_commands(&job(JobStep::Rollback, &[(None, "d1")])).is_err());
}

/// A bookmark origin is rendered `-i ds#bm` once per shell level; a name with shell or ZFS
/// delimiters is no short name at all, and a combined name over 255 bytes is refused with
/// the step's field, never rendered.
#[test]
fn bookmark_origin_is_validated_and_quoted() {
    let src = system(1, "src", None, 22, None);
    let tgt = system(2, "tgt", None, 22, None);
    let step = |bookmark: &str| SendStep::FromBookmark {
        bookmark: sn(bookmark),
        to: ShortName::parse("s 2").unwrap(),
    };
    let t = transfer(TransferMode::Push, "tank/a", "tank/b", vec![step("b 1")]);
    let cmds = transfer_commands(&t, &src, &tgt, SendFlags::default()).unwrap();
    assert_eq!(
        cmds[0].shell,
        "zfs send -i 'tank/a#b 1' 'tank/a@s 2' | ssh -o BatchMode=yes tgt 'zfs receive -s -u tank/b'"
    );
    check_command(&cmds[0]).unwrap();
    for bad in ["b;rm -rf /", "b#c", "b@c", "b'x", "b/c"] {
        assert!(ShortName::parse(bad).is_err(), "{bad}");
    }
    let long = "x".repeat(250);
    let t = transfer(TransferMode::Push, "tank/a", "tank/b", vec![step(&long)]);
    let e = transfer_commands(&t, &src, &tgt, SendFlags::default()).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "steps[0].bookmark"),
        "{e:?}"
    );
}
