//! Unit tests of the model's send/receive semantics.

use super::*;
use crate::names::ShortName;
use crate::plan::SendStep;

fn t(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + n * 3600, 0).expect("valid")
}

fn sn(s: &str) -> ShortName {
    ShortName::parse(s).expect("valid")
}

fn names(m: &ZfsModel, h: Uuid, ds: &str) -> Vec<String> {
    m.snapshots(h, ds).iter().map(|s| s.name.clone()).collect()
}

#[test]
fn receive_semantics() {
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut m = ZfsModel::new();
    m.add_host(a, true, 10);
    m.add_host(b, true, 500);
    m.add_pool(b, "backup");
    for (i, n) in ["s1", "s2", "s3", "s4"].iter().enumerate() {
        m.snapshot(a, "tank/x", n, 100 + i as u64, t(i as i64))
            .expect("new snapshot");
    }
    let (src, dst) = ((a, "tank/x"), (b, "backup/x"));
    // An incremental needs its base on the target.
    let e = m.send_receive(
        src,
        dst,
        &SendStep::Incremental {
            from: sn("s1"),
            to: sn("s2"),
        },
    );
    assert_eq!(
        e,
        Err(ZfsError::NoBase {
            dataset: "backup/x".into()
        })
    );
    m.send_receive(src, dst, &SendStep::Full { snapshot: sn("s1") })
        .expect("full into new dataset");
    // A full stream into an existing dataset is refused (without -F, ZFS says so first).
    let e = m.send_receive(src, dst, &SendStep::Full { snapshot: sn("s2") });
    assert_eq!(e, Err(ZfsError::DestinationExists("backup/x".into())));
    let made = m
        .send_receive(
            src,
            dst,
            &SendStep::Range {
                from: sn("s1"),
                to: sn("s3"),
            },
        )
        .expect("range");
    assert_eq!(made, ["s2", "s3"]);
    // The base is found by GUID, whatever its name on the target.
    m.hosts
        .get_mut(&b)
        .expect("host")
        .datasets
        .get_mut("backup/x")
        .expect("ds")[2]
        .name = "renamed".into();
    m.send_receive(
        src,
        dst,
        &SendStep::Incremental {
            from: sn("s3"),
            to: sn("s4"),
        },
    )
    .expect("by guid");
    // A modified target (a snapshot after the base) is refused.
    m.snapshot(a, "tank/x", "s5", 200, t(5)).expect("new");
    let e = m.send_receive(
        src,
        dst,
        &SendStep::Incremental {
            from: sn("s3"),
            to: sn("s5"),
        },
    );
    assert_eq!(
        e,
        Err(ZfsError::Modified {
            dataset: "backup/x".into(),
            newer: "s4".into()
        })
    );
    // The same name with another GUID is refused.
    m.snapshot(b, "backup/x", "s5", 999, t(5)).expect("local");
    let e = m.send_receive(
        src,
        dst,
        &SendStep::Incremental {
            from: sn("s4"),
            to: sn("s5"),
        },
    );
    assert!(matches!(e, Err(ZfsError::Modified { .. })), "{e:?}");
    assert_eq!(m.rollback(b, "backup/x", "s4").expect("rollback"), ["s5"]);
    m.send_receive(
        src,
        dst,
        &SendStep::Incremental {
            from: sn("s4"),
            to: sn("s5"),
        },
    )
    .expect("after rollback");
    assert_eq!(
        names(&m, b, "backup/x"),
        ["s1", "s2", "renamed", "s4", "s5"]
    );
    m.destroy(b, "backup/x", "s2").expect("destroy");
    assert_eq!(names(&m, b, "backup/x"), ["s1", "renamed", "s4", "s5"]);
    // txgs are the target's own, increasing.
    let txgs: Vec<u64> = m
        .snapshots(b, "backup/x")
        .iter()
        .map(|s| s.createtxg)
        .collect();
    assert!(
        txgs.windows(2).all(|w| w[0] < w[1]) && txgs[0] >= 500,
        "{txgs:?}"
    );
}

#[test]
fn name_clash_is_refused() {
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut m = ZfsModel::new();
    m.snapshot(a, "p/x", "s1", 1, t(0)).expect("new");
    m.snapshot(a, "p/x", "s2", 2, t(1)).expect("new");
    // The target holds an older `s2` of its own, then the common base `s1`.
    m.snapshot(b, "q/x", "s2", 9, t(0)).expect("new");
    m.snapshot(b, "q/x", "s1", 1, t(0)).expect("new");
    let e = m.send_receive(
        (a, "p/x"),
        (b, "q/x"),
        &SendStep::Incremental {
            from: sn("s1"),
            to: sn("s2"),
        },
    );
    assert_eq!(
        e,
        Err(ZfsError::Exists {
            dataset: "q/x".into(),
            name: "s2".into()
        })
    );
    assert_eq!(
        names(&m, b, "q/x"),
        ["s2", "s1"],
        "a refused receive changes nothing"
    );
}

#[test]
fn partial_receive_blocks_all_but_its_resume() {
    use crate::resume::encode::{Encoding, encode_token};
    use crate::resume::{ResumeFlags, ResumeTokenInfo};
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut m = ZfsModel::new();
    m.add_pool(b, "q");
    m.snapshot(a, "p/x", "s1", 1, t(0)).expect("new");
    m.snapshot(a, "p/x", "s2", 2, t(1)).expect("new");
    m.send_receive(
        (a, "p/x"),
        (b, "q/x"),
        &SendStep::Full { snapshot: sn("s1") },
    )
    .expect("full");
    let info = ResumeTokenInfo {
        version: 1,
        fromguid: Some(1),
        toguid: Some(2),
        toname: Some("p/x@s2".into()),
        object: 5,
        offset: 0,
        bytes: 10,
        flags: ResumeFlags::default(),
    };
    let token = encode_token(&info, Encoding::NativeLittle);
    m.interrupt(b, "q/x", &token);
    let e = m.send_receive(
        (a, "p/x"),
        (b, "q/x"),
        &SendStep::Incremental {
            from: sn("s1"),
            to: sn("s2"),
        },
    );
    assert_eq!(
        e,
        Err(ZfsError::Partial {
            dataset: "q/x".into()
        })
    );
    let e = m.send_receive(
        (a, "p/x"),
        (b, "q/x"),
        &SendStep::Resume {
            token: "1-0-0-00".into(),
        },
    );
    assert_eq!(e, Err(ZfsError::BadToken("q/x".into())));
    let made = m
        .send_receive((a, "p/x"), (b, "q/x"), &SendStep::Resume { token })
        .expect("resume");
    assert_eq!(made, ["s2"]);
    assert!(m.hosts[&b].partial.is_empty());
}
