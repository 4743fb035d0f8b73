import shlex
from datetime import timedelta
from typing import List

import pytest

import zfs_sync
from zfs_sync import Inventory, Member, Policy, Snapshot, SyncGroup, System, ValidationError

from conftest import T0, snap

NOW = T0 + timedelta(days=30)


def vm1(pool: str, count: int, guid_base: int = 1000) -> List[Snapshot]:
    return [snap(f"{pool}/vm1@s{i}", guid_base + i, 10 * i + (0 if pool == "tank" else 5000), i) for i in range(count)]


def pair(**group_kwargs):  # type: ignore[no-untyped-def]
    a = System("hostA", ssh_user="zfs")
    b = System("hostB", ssh_user="zfs", ssh_port=2222)
    group = SyncGroup("g", [a, b], **group_kwargs)
    return a, b, group


def test_incremental_transfer_with_commands() -> None:
    a, b, group = pair(policy=Policy(send_flags=["compressed"]))
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 4)), Inventory(b, vm1("backup", 2))], now=NOW)
    assert plan.group_id == group.id and plan.now == NOW
    assert plan.conflicts == [] and plan.gaps == []
    [t] = plan.transfers
    assert (t.kind, t.mode, t.dataset) == ("incremental", "push", "vm1")
    assert (t.source_system_id, t.target_system_id, t.runner_system_id) == (a.id, b.id, a.id)
    assert (t.source_dataset, t.target_dataset) == ("tank/vm1", "backup/vm1")
    assert t.base == "s1"
    assert t.snapshots == ["s2", "s3"]
    assert t.estimated_bytes == 2 * 1024
    assert t.command_error is None
    [command] = t.commands
    [argv] = t.argv
    send, ssh = argv
    assert send == ["zfs", "send", "-c", "-I", "tank/vm1@s1", "tank/vm1@s3"]
    assert ssh[0] == "ssh" and "2222" in ssh and "zfs@hostB" in ssh
    assert shlex.split(ssh[-1]) == ["zfs", "receive", "-s", "-u", "backup/vm1"]
    # The shell string is exactly the argv, quoted once per shell level.
    left, right = command.split(" | ")
    assert shlex.split(left) == send and shlex.split(right) == ssh
    d = t.to_dict()
    assert d["base"] == "s1" and d["commands"] == [command] and d["argv"] == [argv]
    assert "incremental" in repr(t)


def test_full_send_when_the_target_lacks_the_dataset() -> None:
    a, b = System("hostA"), System("hostB")
    group = SyncGroup("g", [a, Member(b, "backup")])
    plan = zfs_sync.plan(group, [(a, vm1("tank", 2)), (b, [])], now=NOW)
    [t] = plan.transfers
    assert t.kind == "full" and t.base is None
    assert t.snapshots == ["s0", "s1"]
    assert t.target_dataset == "backup/vm1"
    assert t.argv[0][0] == ["zfs", "send", "tank/vm1@s0"]


def test_nothing_to_do_when_in_sync() -> None:
    a, b, group = pair()
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 3)), Inventory(b, vm1("backup", 3))], now=NOW)
    assert plan.transfers == []
    [row] = plan.outcomes()
    assert row["outcome"] == "in_sync" and row["dataset"] == "vm1" and row["lag_seconds"] == 0


def test_same_name_with_another_guid_is_a_conflict() -> None:
    a, b, group = pair()
    theirs = vm1("backup", 2) + [snap("backup/vm1@s2", 999_999, 6000, 2)]
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 3)), Inventory(b, theirs)], now=NOW)
    assert plan.transfers == []
    assert plan.conflicts, plan.to_dict()
    c = plan.conflicts[0]
    assert c.kind == "diverged" and c.dataset == "vm1"
    assert {c.system_a, c.system_b} == {a.id, b.id}
    assert isinstance(c.details, dict)
    assert c.to_dict()["kind"] == "diverged"
    assert "diverged" in repr(c)
    assert any(r["outcome"] == "blocked" for r in plan.outcomes())


def test_older_snapshots_the_target_lacks_are_a_gap() -> None:
    a, b = System("hostA"), System("hostB")
    group = SyncGroup("g", [a, b], directional=True, hub_system_id=a)
    # hostB has s0 and s2 but not s1: s1 is older than the newest common snapshot (s2).
    theirs = [s for s in vm1("backup", 3) if s.name != "s1"]
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 3)), Inventory(b, theirs)], now=NOW)
    assert plan.transfers == []
    [gap] = plan.gaps
    assert gap.dataset == "vm1" and gap.target_system_id == b.id and gap.snapshots == ["s1"]
    assert gap.to_dict()["snapshots"] == ["s1"]
    assert "s1" in repr(gap)


def test_hub_replicates_only_from_the_hub() -> None:
    a = System("hub")
    b = System("spoke")
    group = SyncGroup("g", [a, b], directional=True, hub_system_id=a)
    # The spoke has more than the hub: nothing flows back to the hub.
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 2)), Inventory(b, vm1("tank", 3))], now=NOW)
    assert all(t.source_system_id == a.id for t in plan.transfers)
    assert all(t.target_system_id != a.id for t in plan.transfers)


def test_pull_mode_runs_on_the_target() -> None:
    a, b, group = pair(policy=Policy(transfer="pull"))
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 3)), Inventory(b, vm1("tank", 1))], now=NOW)
    [t] = plan.transfers
    assert t.mode == "pull" and t.runner_system_id == b.id
    assert t.argv[0][0][0] == "ssh" and t.argv[0][-1][:2] == ["zfs", "receive"]


def test_raw_send_a_host_cannot_do_is_reported_not_downgraded() -> None:
    a = System("hostA", capabilities={"raw_send": False})
    b = System("hostB")
    group = SyncGroup("g", [a, b], policy=Policy(send_flags=["raw"]))
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 2)), Inventory(b, vm1("tank", 1))], now=NOW)
    [t] = plan.transfers
    assert t.commands == [] and t.argv == []
    assert t.command_error is not None and "raw" in t.command_error


def test_dataset_roots_map_logical_datasets() -> None:
    a = System("hostA")
    b = System("hostB")
    group = SyncGroup("g", [Member(a), Member(b, "backup/replicas/hostA")])
    theirs = [snap("backup/replicas/hostA/vm1@s0", 1000, 7, 0)]
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 2)), Inventory(b, theirs)], now=NOW)
    [t] = plan.transfers
    assert t.target_dataset == "backup/replicas/hostA/vm1" and t.base == "s0"


def test_names_with_spaces_are_quoted_and_round_trip() -> None:
    a, b, group = pair()
    ours = [snap("tank/my vm@s 0", 1, 1, 0), snap("tank/my vm@s 1", 2, 2, 1)]
    plan = zfs_sync.plan(group, [Inventory(a, ours), Inventory(b, ours[:1])], now=NOW)
    [t] = plan.transfers
    send = t.argv[0][0]
    assert send[-2:] == ["tank/my vm@s 0", "tank/my vm@s 1"] or send[-1] == "tank/my vm@s 1"
    left = t.commands[0].split(" | ")[0]
    assert shlex.split(left) == send
    remote = shlex.split(shlex.split(t.commands[0].split(" | ")[1])[-1])
    assert remote[-1] == "tank/my vm"


def test_min_age_and_filter_use_now() -> None:
    a, b = System("hostA"), System("hostB")
    policy = Policy(snapshot_filter="s[0-2]", min_snapshot_age_seconds=3600)
    group = SyncGroup("g", [a, Member(b, "backup")], policy=policy)
    ours = vm1("tank", 5)
    # As of T0 + 2h30, s2 is only 30 minutes old: only s0 and s1 are wanted.
    plan = zfs_sync.plan(group, [Inventory(a, ours), Inventory(b, [])], now=T0 + timedelta(hours=2, minutes=30))
    [t] = plan.transfers
    assert t.snapshots == ["s0", "s1"]
    later = zfs_sync.plan(group, [Inventory(a, ours), Inventory(b, [])], now=NOW)
    assert later.transfers[0].snapshots == ["s0", "s1", "s2"]


def test_plans_are_deterministic_whatever_the_input_order() -> None:
    a, b, group = pair()
    one = zfs_sync.plan(group, [Inventory(a, vm1("tank", 4)), Inventory(b, vm1("tank", 1))], now=NOW)
    two = zfs_sync.plan(group, [Inventory(b, list(reversed(vm1("tank", 1)))), Inventory(a, list(reversed(vm1("tank", 4))))], now=NOW)
    assert one.to_dict() == two.to_dict()
    assert one.to_dict()["transfers"][0]["snapshots"] == ["s1", "s2", "s3"]
    assert "transfers=1" in repr(one)


def test_inventory_class() -> None:
    a = System("hostA")
    inv = Inventory(a, [s.to_dict() for s in vm1("tank", 2)], {"tank/vm1": "1-abc-def"})
    assert inv.system == a
    assert [s.name for s in inv.snapshots] == ["s0", "s1"]
    assert inv.resume_tokens == {"tank/vm1": "1-abc-def"}
    assert "hostA" in repr(inv)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda a, c: Inventory(a, [1]), "snapshots[0]"),
        (lambda a, c: Inventory(a, [{"name": "tank/a@s;x", "creation": T0}]), "snapshots[0].name"),
        (lambda a, c: Inventory(a, [], {"tank/a;b": "1-x"}), 'resume_tokens["tank/a;b"]'),
        (lambda a, c: Inventory(a, [], {"tank/a": "1-x; rm -rf /"}), 'resume_tokens["tank/a"]'),
        (lambda a, c: zfs_sync.plan(SyncGroup("g", [a]), [Inventory(c, [])]), "inventories[0]"),
        (lambda a, c: zfs_sync.plan(SyncGroup("g", [a]), [Inventory(a, []), Inventory(a, [])]), "inventories[1]"),
        (lambda a, c: zfs_sync.plan(SyncGroup("g", [a]), ["x"]), "inventories[0]"),
        (lambda a, c: zfs_sync.plan(SyncGroup("g", [a]), 5), "inventories"),
        (lambda a, c: zfs_sync.plan(SyncGroup("g", [a]), [], now="soon"), "now"),
    ],
)
def test_bad_plan_input_names_the_field(build, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as info:
        build(System("a"), System("c"))
    assert info.value.field == field


def diverged(a: System, b: System) -> list:
    """hostB's s2 has another GUID than hostA's: the histories forked after s1."""
    theirs = vm1("tank", 2) + [snap("tank/vm1@s2", 777_777, 25, 2)]
    return [Inventory(a, vm1("tank", 3)), Inventory(b, theirs)]


def test_resolve_manual_rolls_the_loser_back_listing_what_it_destroys() -> None:
    a, b = System("hostA"), System("hostB", ssh_user="zfs")
    group = SyncGroup("g", [a, b], policy=Policy(allow_destructive=True))
    r = zfs_sync.resolve(group, diverged(a, b), "vm1", "manual", a, now=NOW)
    assert (r["dataset"], r["strategy"], r["winner_system_id"]) == ("vm1", "manual", str(a.id))
    assert r["destructive"] is True and r["refused"] is None
    [loser] = r["losers"]
    assert loser["system_id"] == str(b.id)
    assert loser["rollback_to"] == "tank/vm1@s1" and loser["destroys"] == ["tank/vm1@s2"]
    rollback, send = loser["commands"]
    assert rollback["system_id"] == str(b.id)
    assert rollback["command"]["argv"] == [["zfs", "rollback", "-r", "tank/vm1@s1"]]
    assert send["system_id"] == str(a.id)
    assert send["command"]["argv"][0] == ["zfs", "send", "-i", "tank/vm1@s1", "tank/vm1@s2"]
    assert "-F" not in send["command"]["shell"]


def test_resolve_refuses_destruction_the_group_does_not_allow() -> None:
    a, b = System("hostA"), System("hostB")
    r = zfs_sync.resolve(SyncGroup("g", [a, b]), diverged(a, b), "vm1", "manual", str(b.id), now=NOW)
    assert r["winner_system_id"] == str(b.id)
    assert r["refused"] is not None and "allow_destructive" in r["refused"]


def test_resolve_other_strategies_and_errors() -> None:
    a, b = System("hostA"), System("hostB")
    group = SyncGroup("g", [a, b], policy=Policy(allow_destructive=True))
    ignored = zfs_sync.resolve(group, diverged(a, b), "vm1", "ignore", now=NOW)
    assert ignored["winner_system_id"] is None and ignored["losers"] == []
    newest = zfs_sync.resolve(group, diverged(a, b), "vm1", "use_newest", now=NOW)
    assert newest["winner_system_id"] in (str(a.id), str(b.id))
    assert len(newest["losers"]) == 1
    with pytest.raises(ValidationError) as info:
        zfs_sync.resolve(group, diverged(a, b), "vm1", "coin_flip")  # type: ignore[arg-type]
    assert info.value.field == "strategy"
    with pytest.raises(ValidationError) as info:
        zfs_sync.resolve(group, diverged(a, b), "vm1", "use_newest", a)
    assert info.value.field == "winner_system_id"
    with pytest.raises(zfs_sync.NotFoundError):
        zfs_sync.resolve(group, diverged(a, b), "no-such-dataset", "use_newest")
    with pytest.raises(ValidationError) as info:
        zfs_sync.resolve(group, diverged(a, b), "vm1", "manual", System("stranger"))
    assert info.value.field == "winner_system_id"
    with pytest.raises(zfs_sync.ConflictError):
        zfs_sync.resolve(group, diverged(a, b), "vm1", "manual")


def test_diagnostics_explain_what_was_not_planned() -> None:
    a, b = System("hostA"), System("hostB")
    group = SyncGroup("g", [a, b])
    # hostB holds nothing and has no dataset_root: there is no pool to receive into.
    plan = zfs_sync.plan(group, [Inventory(a, vm1("tank", 2)), Inventory(b, [])], now=NOW)
    assert plan.transfers == []
    [note] = plan.diagnostics
    assert note["system_id"] == str(b.id) and note["dataset"] == "vm1"
    assert "dataset_root" in note["message"]
