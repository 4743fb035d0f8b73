//! Regression tests for what the fuzz targets (`fuzz/`) found. Each test reproduces one
//! finding in the smallest form.

use uuid::Uuid;
use zfs_sync::model::{Member, Policy, Topology};
use zfs_sync::plan::plan_group;
use zfs_sync::testing::fixtures::{at, group};
use zfs_sync::testing::fleet::inventories;
use zfs_sync::testing::zfs::ZfsModel;

/// Found by `fuzz/fuzz_targets/planner.rs`: the target holds the base snapshot (GUID 11)
/// under another name, `s3`, and the source's own `s3` (GUID 22) is next. The planner plans
/// `zfs send -i tank/vm@s0 tank/vm@s3`, which ZFS refuses on the target ("destination already
/// exists"): the name clash must block the transfer instead (a `same_name_different_guid`
/// conflict), as it does when the clashing snapshot is not the base.
#[test]
fn renamed_base_clashes_with_a_created_name() {
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut model = ZfsModel::new();
    model.add_host(a, true, 100);
    model.add_host(b, true, 100);
    model
        .snapshot(a, "tank/vm", "s0", 11, at("2026-01-01-000000"))
        .unwrap();
    model
        .snapshot(a, "tank/vm", "s3", 22, at("2026-01-01-030000"))
        .unwrap();
    // b received s0 and renamed it to s3 (a rename keeps the GUID).
    model
        .snapshot(b, "tank/vm", "s3", 11, at("2026-01-01-000000"))
        .unwrap();
    let members = vec![
        Member {
            system_id: a,
            dataset_root: None,
        },
        Member {
            system_id: b,
            dataset_root: None,
        },
    ];
    let g = group(Topology::HubAndSpoke { hub: a }, members, Policy::default());
    let now = at("2026-01-02-000000");
    let plan = plan_group(&g, &inventories(&g, &model, now), now);
    for t in plan.transfers() {
        model
            .apply_transfer(t)
            .unwrap_or_else(|e| panic!("ZFS refuses the planned {t:?}: {e:?}"));
    }
}
