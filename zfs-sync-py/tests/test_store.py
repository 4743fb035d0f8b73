import ast
import os
import shutil
import subprocess
import threading
import warnings
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import zfs_sync
from zfs_sync import (
    AlreadyExistsError,
    AuthError,
    ConflictError,
    Member,
    NotFoundError,
    Policy,
    Snapshot,
    SqliteStore,
    StorageError,
    SyncGroup,
    System,
    ValidationError,
    Witness,
)

from conftest import T0, snap

NOW = T0 + timedelta(days=30)


def history(pool: str, count: int, guid_base: int = 100) -> List[Snapshot]:
    return [snap(f"{pool}/vm1@s{i}", guid_base + i, i + 1, i) for i in range(count)]


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness(SqliteStore(tmp_path / "witness.db"))


def test_sqlite_store_round_trip_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "zfs_sync.db"
    store = SqliteStore(path)
    assert store.path == str(path) and str(path) in repr(store)
    store.ping()
    w = Witness(store)
    a = System("hostA", ssh_user="zfs", extra_metadata={"rack": 1}, created_at=T0)
    key = w.register_system(a, now=T0)
    stored = w.report_snapshots(a, history("tank", 3), now=T0)
    group = w.create_group(SyncGroup("g", [Member(a, "tank")], policy=Policy(send_flags=["raw"]), created_at=T0))
    del w, store

    again = Witness(SqliteStore(str(path)))
    assert again.get_system(a.id) == a
    assert again.authenticate(key) == a.id
    assert again.get_group(group.id) == group
    snaps = again.snapshots(system_id=a)
    assert sorted(s.name for s in snaps) == ["s0", "s1", "s2"]
    by_name = {s.name: s for s in stored}
    for s in snaps:
        assert s == by_name[s.name]
        assert s.system_id == a.id and s.id is not None and s.last_reported == T0


def test_memory_store_and_bad_paths(tmp_path: Path) -> None:
    SqliteStore(":memory:").ping()
    with pytest.raises(ValidationError) as info:
        SqliteStore("")
    assert info.value.field == "path"
    with pytest.raises(ValidationError) as info:
        SqliteStore(":memory:", timeout_seconds=0)
    assert info.value.field == "timeout_seconds"
    with pytest.raises(StorageError):
        SqliteStore(tmp_path / "no" / "such" / "dir" / "x.db")
    with pytest.raises(ValidationError) as info:
        Witness("sqlite::memory:")  # type: ignore[arg-type]
    assert info.value.field == "store"


def test_registration_keys_and_errors(witness: Witness) -> None:
    a = System("hostA")
    key = witness.register_system(a)
    assert key.startswith("zs_") and len(key) >= 32
    assert witness.authenticate(key) == a.id
    with pytest.raises(AlreadyExistsError) as info:
        witness.register_system(System("hostA"))
    assert isinstance(info.value, ConflictError)
    with pytest.raises(AuthError):
        witness.authenticate("zs_" + "0" * 64)
    with pytest.raises(AuthError):
        witness.authenticate("")
    new_key = witness.rotate_key(a)
    assert new_key != key
    assert witness.authenticate(new_key) == a.id
    with pytest.raises(AuthError):
        witness.authenticate(key)
    with pytest.raises(NotFoundError):
        witness.rotate_key(uuid.uuid4())


def test_systems_crud_and_heartbeat(witness: Witness) -> None:
    b = System("hostB", extra_metadata={"keep": 1})
    a = System("hostA")
    for s in (b, a):
        witness.register_system(s)
    assert [s.hostname for s in witness.list_systems()] == ["hostA", "hostB"]
    seen = witness.heartbeat(b, {"zfs": "2.3.4"}, now=NOW)
    assert seen.last_seen == NOW
    assert seen.extra_metadata == {"keep": 1, "zfs": "2.3.4"}  # merged, never wiped
    health = witness.fleet_health(now=NOW + timedelta(seconds=10))
    assert isinstance(health, dict)
    assert str(b.id) in str(health) and "never_seen" in str(health) and "online" in str(health)
    witness.delete_system(a.id)
    with pytest.raises(NotFoundError) as info:
        witness.get_system(a.id)
    assert isinstance(info.value, LookupError)
    with pytest.raises(NotFoundError):
        witness.delete_system(a.id)
    # A string that is not a UUID is a hostname (issue 13: hosts are named by hostname too).
    with pytest.raises(NotFoundError):
        witness.get_system("not-a-uuid")
    with pytest.raises(ValidationError) as vinfo:
        witness.get_system(42)  # type: ignore[arg-type]
    assert vinfo.value.field == "system_id"


def test_systems_are_named_by_hostname_too(witness: Witness) -> None:
    a, b = System("name-a.example"), System("name-b.example")
    for s in (a, b):
        witness.register_system(s)
    assert witness.get_system("name-a.example").id == a.id
    assert witness.heartbeat("name-a.example", now=NOW).last_seen == NOW
    witness.replace_inventory("name-a.example", [snap("tank/vm1@s1", 1, 1, 0)], now=NOW)
    witness.set_resume_token("name-a.example", "tank/vm1", None, now=NOW)
    group = witness.create_group(SyncGroup("by-name", [a, b]))
    assert str(witness.instructions("name-a.example", now=NOW)["system_id"]) == str(a.id)
    witness.remove_member(group, "name-b.example")
    assert [str(m.system_id) for m in witness.get_group(group.id).members] == [str(a.id)]
    assert witness.rotate_key("name-b.example", now=NOW).startswith("zs_")
    witness.delete_system("name-b.example")
    for call in (
        lambda: witness.get_system("nowhere.example"),
        lambda: witness.heartbeat("nowhere.example"),
        lambda: witness.instructions("nowhere.example"),
    ):
        with pytest.raises(NotFoundError) as info:
            call()
        assert "nowhere.example" in str(info.value)


def test_reports_upsert_and_never_delete_replace_deletes(witness: Witness) -> None:
    a = System("hostA")
    witness.register_system(a)
    witness.report_snapshots(a, history("tank", 3))
    # A second chunk with other snapshots: nothing of the first is lost.
    other = [snap("tank/vm2@x", 999, 9, 9)]
    witness.report_snapshots(a, other)
    assert len(witness.snapshots(system_id=a.id)) == 4
    # Reporting again updates in place (same id).
    first = {s.full_name: s.id for s in witness.snapshots(system_id=a.id)}
    changed = snap("tank/vm1@s0", 100, 1, 0, used=77)
    [stored] = witness.report_snapshots(a, [changed])
    assert stored.used == 77 and stored.id == first["tank/vm1@s0"]
    # Dicts in the API's shape are accepted too.
    witness.report_snapshots(a, [{"name": "tank/vm3@d", "timestamp": "2026-11-01T00:00:00Z", "guid": "5"}])
    assert witness.snapshots(dataset="vm3")[0].guid == 5
    # The complete inventory of vm1 only: s2 was pruned; vm2 and vm3 are out of scope.
    upserted, deleted = witness.replace_inventory(a, history("tank", 2), datasets=["tank/vm1"])
    assert (upserted, deleted) == (2, 1)
    names = sorted(s.full_name for s in witness.snapshots(system_id=a))
    assert names == ["tank/vm1@s0", "tank/vm1@s1", "tank/vm2@x", "tank/vm3@d"]
    assert [s.name for s in witness.snapshots(system_id=a, limit=1)] == ["x"]  # newest first
    with pytest.raises(ValidationError) as info:
        witness.snapshots(limit=0)
    assert info.value.field == "limit"


def test_a_bad_item_stores_nothing(witness: Witness) -> None:
    a = System("hostA")
    witness.register_system(a)
    with pytest.raises(ValidationError) as info:
        witness.report_snapshots(a, [snap("tank/a@ok", 1, 1, 0), {"name": "tank/a@b;c", "creation": T0}])
    assert info.value.field == "snapshots[1].name"
    assert witness.snapshots(system_id=a) == []
    with pytest.raises(NotFoundError):
        witness.report_snapshots(uuid.uuid4(), [snap("tank/a@ok", 1, 1, 0)])


def test_groups_crud(witness: Witness) -> None:
    a, b, c = System("a"), System("b"), System("c")
    for s in (a, b, c):
        witness.register_system(s)
    g = witness.create_group(SyncGroup("fleet", [a, b], created_at=T0))
    assert witness.list_groups() == [g]
    with pytest.raises(AlreadyExistsError):
        witness.create_group(SyncGroup("fleet", [a]))
    with pytest.raises(NotFoundError):
        witness.create_group(SyncGroup("other", [System("ghost")]))
    witness.add_member(g, Member(c, "backup/c"))
    assert witness.get_group(g.id).members[witness.get_group(g.id).system_ids.index(c.id)].dataset_root == "backup/c"
    witness.remove_member(g, b)
    assert set(witness.get_group(g).system_ids) == {a.id, c.id}
    changed = SyncGroup.from_dict({**witness.get_group(g).to_dict(), "description": "changed"})
    updated = witness.update_group(changed, now=NOW)
    assert updated.description == "changed" and updated.updated_at == NOW
    assert witness.get_group(g) == updated
    witness.delete_group(g)
    with pytest.raises(NotFoundError):
        witness.get_group(g)


def lagging_pair(witness: Witness) -> Tuple[System, System, SyncGroup]:
    """hostA holds vm1@s0..s2, hostB vm1@s0, in one group: one transfer, a to b."""
    a, b = System("hostA", ssh_user="zfs"), System("hostB", ssh_user="zfs")
    for s in (a, b):
        witness.register_system(s)
    witness.report_snapshots(a, history("tank", 3), now=NOW)
    witness.report_snapshots(b, history("backup", 1), now=NOW)
    return a, b, witness.create_group(SyncGroup("g", [a, b]))


def test_plan_instructions_and_job_results(witness: Witness) -> None:
    a, b, g = lagging_pair(witness)

    plan = witness.plan(g, now=NOW)
    [t] = plan.transfers
    assert (t.source_system_id, t.target_system_id, t.base, t.snapshots) == (a.id, b.id, "s0", ["s1", "s2"])

    out = witness.instructions(a, now=NOW)
    [ins] = out["instructions"]
    assert ins["transfer"]["snapshots"] == ["s1", "s2"]
    assert ins["commands"][0]["argv"][0] == ["zfs", "send", "-I", "tank/vm1@s0", "tank/vm1@s2"]
    # The target runs nothing in push mode.
    assert witness.instructions(b, g, now=NOW)["instructions"] == []

    job = witness.report_job(ins["job_id"], "succeeded", bytes=4096, now=NOW)
    assert job["status"] == "succeeded" and job["bytes"] == 4096
    with pytest.raises(ConflictError):
        witness.report_job(ins["job_id"], "failed", "too late", now=NOW)
    with pytest.raises(NotFoundError):
        witness.report_job(uuid.uuid4(), "succeeded")
    with pytest.raises(ValidationError) as info:
        witness.report_job(ins["job_id"], "done")  # type: ignore[arg-type]
    assert info.value.field == "status"

    check = witness.check_group(g, now=NOW)
    assert set(check) >= {"plan", "states", "conflicts"}
    assert witness.expire_leases(now=NOW + timedelta(days=1)) == []


def test_looking_takes_nothing_and_jobs_can_be_steered(witness: Witness) -> None:
    a, b, g = lagging_pair(witness)

    [look] = witness.instructions(a, dry_run=True, now=NOW)["instructions"]
    assert look["job_id"] is None and look["transfer"]["snapshots"] == ["s1", "s2"]
    assert witness.jobs(group_id=g) == []
    [ins] = witness.instructions(a, now=NOW)["instructions"]
    # Asked again before it started: the same job.
    [again] = witness.instructions(a, now=NOW + timedelta(seconds=5))["instructions"]
    assert again["job_id"] == ins["job_id"]
    [job] = witness.jobs(group_id=g, system_id=a, status="leased")
    assert job["id"] == ins["job_id"] and witness.job(ins["job_id"]) == job
    # A transfer is no conflict's step; the dataset filter is the logical name.
    assert witness.jobs(group_id=g, dataset=job["dataset"]) == [job]
    assert witness.jobs(group_id=g, dataset="elsewhere") == []
    assert witness.jobs(conflict_id=uuid.uuid4()) == []
    with pytest.raises(ValidationError) as info:
        witness.jobs(conflict_id="not-a-uuid")
    assert info.value.field == "conflict_id"
    progressed = witness.report_progress(ins["job_id"], 1024, resume_token="1-abc", now=NOW + timedelta(seconds=10))
    assert progressed["bytes"] == 1024 and progressed["resume_token"] == "1-abc"
    assert progressed["lease_expires_at"] > job["lease_expires_at"]
    assert witness.instructions(a, now=NOW + timedelta(seconds=11))["instructions"] == []
    cancelled = witness.cancel_job(ins["job_id"], now=NOW + timedelta(seconds=12))
    assert cancelled["status"] == "cancelled"
    with pytest.raises(ConflictError):
        witness.cancel_job(ins["job_id"])
    with pytest.raises(ConflictError):
        witness.report_progress(ins["job_id"], 1)
    with pytest.raises(ValidationError) as info:
        witness.jobs(status="done")  # type: ignore[arg-type]
    assert info.value.field == "status"
    with pytest.raises(NotFoundError):
        witness.job(uuid.uuid4())
    [fresh] = witness.instructions(a, now=NOW + timedelta(seconds=13))["instructions"]
    assert fresh["job_id"] != ins["job_id"]


def test_unreported_jobs_expire_with_their_lease(tmp_path: Path) -> None:
    witness = Witness(SqliteStore(tmp_path / "lease.db"), job_lease_seconds=60)
    a, b = System("hostA"), System("hostB")
    for s in (a, b):
        witness.register_system(s)
    witness.report_snapshots(a, history("tank", 2), now=NOW)
    witness.report_snapshots(b, history("tank", 1), now=NOW)
    witness.create_group(SyncGroup("g", [a, b]))
    [ins] = witness.instructions(a, now=NOW)["instructions"]
    assert witness.expire_leases(now=NOW + timedelta(seconds=30)) == []
    [expired] = witness.expire_leases(now=NOW + timedelta(seconds=61))
    assert expired["id"] == ins["job_id"] and expired["status"] == "expired"
    with pytest.raises(ValidationError):
        Witness(SqliteStore(":memory:"), job_lease_seconds=0)


def _lagging_pair(w: Witness) -> Tuple[System, System, SyncGroup]:
    """hostA with s0..s2 and hostB with s0 in a group "g": returns (a, b, group)."""
    a, b = System("hostA"), System("hostB")
    for s in (a, b):
        w.register_system(s)
    w.report_snapshots(a, history("tank", 3), now=NOW)
    w.report_snapshots(b, history("tank", 1), now=NOW)
    return a, b, w.create_group(SyncGroup("g", [a, b]))


def test_failed_transfers_back_off_until_retried(tmp_path: Path) -> None:
    w = Witness(SqliteStore(tmp_path / "backoff.db"), retry_base_seconds=60, retry_max_seconds=100)
    a, b, g = _lagging_pair(w)

    def state_of_b() -> Dict[str, Any]:
        [st] = [s for s in w.check_group(g, now=NOW)["states"] if s["system_id"] == str(b.id)]
        return st

    [ins] = w.instructions(a, now=NOW)["instructions"]
    w.report_job(ins["job_id"], "failed", "cannot receive", now=NOW)
    st = state_of_b()
    assert (st["status"], st["attempts"], st["error_message"]) == ("error", 1, "cannot receive")
    assert st["next_attempt_at"] is not None
    # Held back for 60 s, and the diagnostics say why.
    held = w.instructions(a, now=NOW + timedelta(seconds=59))
    assert held["instructions"] == []
    assert any("held back" in d["message"] for d in held["diagnostics"]), held["diagnostics"]
    [again] = w.instructions(a, now=NOW + timedelta(seconds=60))["instructions"]
    w.report_job(again["job_id"], "failed", "still", now=NOW + timedelta(seconds=60))
    assert w.instructions(a, now=NOW + timedelta(seconds=61))["instructions"] == []
    # The admin clears the backoff: attempts are kept, the next call hands it out.
    cleared = w.retry_state(st["id"], now=NOW + timedelta(seconds=61))
    assert (cleared["status"], cleared["attempts"], cleared["next_attempt_at"]) == ("out_of_sync", 2, None)
    assert w.instructions(a, now=NOW + timedelta(seconds=62))["instructions"]
    with pytest.raises(NotFoundError):
        w.retry_state(uuid.uuid4())
    with pytest.raises(ValidationError) as info:
        Witness(SqliteStore(":memory:"), retry_base_seconds=600, retry_max_seconds=60)
    assert info.value.field == "retry_max_seconds"


def test_witness_settings_reach_the_service(tmp_path: Path) -> None:
    path = tmp_path / "settings.db"
    cached = Witness(SqliteStore(path))
    uncached = Witness(SqliteStore(path), inventory_cache_bytes=0, state_touch_seconds=0)
    a, b, g = _lagging_pair(cached)

    def planned(w: Witness) -> tuple:
        check = w.check_group(g, now=NOW)
        return check["plan"], sorted(s["status"] for s in check["states"])

    before = planned(cached)
    assert before == planned(uncached)
    assert before[1] == ["in_sync", "out_of_sync"]
    # b catches up through the other witness: the cached one sees it too (the inventory
    # version moved), and nothing is left to send.
    uncached.report_snapshots(b, history("tank", 3), now=NOW)
    after = planned(cached)
    assert after == planned(uncached)
    assert after[1] == ["in_sync", "in_sync"]
    assert cached.instructions(a, now=NOW)["instructions"] == []
    # The deprecated record count is still accepted, but not together with the bytes.
    Witness(SqliteStore(":memory:"), inventory_cache_records=1000)
    with pytest.raises(ValidationError) as info:
        Witness(SqliteStore(":memory:"), inventory_cache_bytes=1, inventory_cache_records=1)
    assert info.value.field == "inventory_cache_records"
    for bad in (-1, "many"):
        with pytest.raises((TypeError, OverflowError)):
            Witness(SqliteStore(":memory:"), inventory_cache_bytes=bad)  # type: ignore[arg-type]
        with pytest.raises((TypeError, OverflowError)):
            Witness(SqliteStore(":memory:"), inventory_cache_records=bad)  # type: ignore[arg-type]
        with pytest.raises((TypeError, OverflowError)):
            Witness(SqliteStore(":memory:"), state_touch_seconds=bad)  # type: ignore[arg-type]


def test_conflicts_are_recorded_and_resolved(witness: Witness) -> None:
    a, b = System("hostA"), System("hostB")
    for s in (a, b):
        witness.register_system(s)
    witness.report_snapshots(a, history("tank", 3), now=NOW)
    # hostB's s2 has another GUID: the histories diverged after s1.
    theirs = history("tank", 2) + [snap("tank/vm1@s2", 777, 3, 2)]
    witness.report_snapshots(b, theirs, now=NOW)
    g = witness.create_group(SyncGroup("g", [a, b], policy=Policy(allow_destructive=True)))
    witness.check_group(g, now=NOW)
    [conflict] = witness.conflicts(g)
    assert conflict["kind"] == "diverged" and conflict["status"] == "open"
    with pytest.raises(ValidationError):
        witness.resolve_conflict(conflict["id"], "coin_flip")
    # A destructive plan needs a confirmed preview, allow_destructive alone is not enough
    # (changed on purpose by issue 13).
    with pytest.raises(ConflictError, match="dry_run"):
        witness.resolve_conflict(conflict["id"], "manual", a, now=NOW)
    preview = witness.resolve_conflict(conflict["id"], "manual", a, dry_run=True, now=NOW)
    assert preview["applied"] is False and preview["destructive"] is True
    assert preview["losers"][0]["discards_writes_since"] == "tank/vm1@s1"
    assert "every write to tank/vm1" in preview["losers"][0]["discards"]
    assert witness.conflicts(g)[0]["status"] == "open"
    with pytest.raises(ConflictError, match="changed since the preview"):
        witness.resolve_conflict(conflict["id"], "manual", a, confirm="0" * 64, now=NOW)
    resolution = witness.resolve_conflict(conflict["id"], "manual", a, confirm=preview["digest"], now=NOW)
    assert resolution["applied"] is True and resolution["digest"] == preview["digest"]
    assert resolution["winner_system_id"] == str(a.id)
    assert resolution["refused"] is None
    [loser] = resolution["losers"]
    assert loser["system_id"] == str(b.id)
    assert "s2" in str(loser["destroys"])
    # Applied: the conflict resolves through its steps, handed to the hosts in order.
    [resolving] = witness.conflicts(g)
    assert resolving["status"] == "resolving" and resolving["occurrences"] == 1
    [rollback] = witness.instructions(b, now=NOW)["instructions"]
    assert rollback["kind"] == "rollback" and rollback["destructive"] is True
    assert rollback["conflict_id"] == conflict["id"] and rollback["transfer"] is None
    assert witness.instructions(a, now=NOW)["instructions"] == []
    step = witness.job(rollback["job_id"])
    assert (step["step"], step["step_index"], step["kind"]) == ("rollback", 0, None)
    witness.report_job(rollback["job_id"], "succeeded", now=NOW)
    [send] = witness.instructions(a, now=NOW)["instructions"]
    assert send["kind"] == "transfer" and send["conflict_id"] == conflict["id"]


def test_the_hub_is_protected_and_keep_both_renames_aside(witness: Witness) -> None:
    hub, b = System("hub"), System("backup")
    for s in (hub, b):
        witness.register_system(s)
    witness.report_snapshots(hub, history("tank", 2), now=NOW)
    theirs = history("tank", 2)[:1] + [snap("tank/vm1@s9", 778, 3, 5)]
    witness.report_snapshots(b, theirs, now=NOW)
    g = witness.create_group(SyncGroup("g", [hub, b], directional=True, hub_system_id=hub, policy=Policy(allow_destructive=True)))
    witness.check_group(g, now=NOW)
    [conflict] = witness.conflicts(g)
    with pytest.raises(ConflictError, match="override_hub"):
        witness.resolve_conflict(conflict["id"], "manual", b, dry_run=True, now=NOW)
    preview = witness.resolve_conflict(conflict["id"], "manual", b, override_hub=True, dry_run=True, now=NOW)
    assert preview["losers"][0]["system_id"] == str(hub.id)
    kept = witness.resolve_conflict(conflict["id"], "keep_both", now=NOW)
    assert kept["applied"] is True and kept["destructive"] is False
    [loser] = kept["losers"]
    assert loser["system_id"] == str(b.id) and loser["destroys"] == []
    assert loser["rename_to"].startswith("tank/vm1.zfs-sync-")
    assert loser["commands"][0]["command"]["argv"] == [["zfs", "rename", "tank/vm1", loser["rename_to"]]]
    assert witness.conflicts(g, include_closed=True)[0]["status"] == "resolving"


def _stub_typed_dicts() -> Dict[str, Dict[str, ast.expr]]:
    """The TypedDicts of the installed stub: name -> {field: annotation}."""
    stub = Path(zfs_sync.__file__).parent / "_zfs_sync.pyi"
    out: Dict[str, Dict[str, ast.expr]] = {}
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == "TypedDict" for b in node.bases):
            out[node.name] = {
                f.target.id: f.annotation
                for f in node.body
                if isinstance(f, ast.AnnAssign) and isinstance(f.target, ast.Name)
            }
    return out


def _conforms(value: Any, ann: ast.expr, dicts: Dict[str, Dict[str, ast.expr]], path: str) -> None:
    """Fails unless ``value`` has the shape the stub annotation says (keys exactly)."""
    if isinstance(ann, ast.Subscript):
        base, arg = ast.unparse(ann.value), ann.slice
        if base == "Optional":
            if value is not None:
                _conforms(value, arg, dicts, path)
        elif base == "List":
            assert isinstance(value, list), f"{path}: {value!r} is not a list"
            for i, v in enumerate(value):
                _conforms(v, arg, dicts, f"{path}[{i}]")
        elif base == "Literal":
            elts = arg.elts if isinstance(arg, ast.Tuple) else [arg]
            allowed = [ast.literal_eval(e) for e in elts]
            assert value in allowed, f"{path}: {value!r} not in {allowed}"
        elif base == "Dict":
            assert isinstance(value, dict), f"{path}: {value!r} is not a dict"
        return
    assert isinstance(ann, ast.Name), ast.unparse(ann)
    if ann.id in dicts:
        fields = dicts[ann.id]
        assert isinstance(value, dict), f"{path}: {value!r} is not a dict"
        assert set(value) == set(fields), f"{path} ({ann.id}): {sorted(value)} != {sorted(fields)}"
        for k, sub in fields.items():
            _conforms(value[k], sub, dicts, f"{path}.{k}")
    elif ann.id in ("str", "int", "bool"):
        expected = {"str": str, "int": int, "bool": bool}[ann.id]
        assert isinstance(value, expected) and (ann.id == "bool" or not isinstance(value, bool)), (
            f"{path}: {value!r} is not {ann.id}"
        )


def test_returned_dicts_match_the_stub_typed_dicts(tmp_path: Path) -> None:
    dicts = _stub_typed_dicts()
    assert {"_InstructionsDict", "_JobDict", "_GroupCheckDict", "_FleetHealthDict"} <= set(dicts)
    check = lambda value, name: _conforms(value, ast.Name(id=name), dicts, name)  # noqa: E731
    w = Witness(SqliteStore(tmp_path / "shapes.db"), job_lease_seconds=60)
    a, b, c = System("hostA"), System("hostB"), System("hostC")
    for s in (a, b, c):
        w.register_system(s)
    w.heartbeat(a, now=NOW)
    w.report_snapshots(a, history("tank", 3), now=NOW)
    w.report_snapshots(b, history("tank", 1), now=NOW)
    # c diverged after s1: a conflict.
    w.report_snapshots(c, history("tank", 2) + [snap("tank/vm1@s2", 777, 3, 2)], now=NOW)
    # a is the hub: the source, whatever the (random) system ids.
    g = w.create_group(SyncGroup("g", [a, b, c], directional=True, hub_system_id=a))
    ins = w.instructions(a, now=NOW)
    assert ins["instructions"], ins
    check(ins, "_InstructionsDict")
    job = w.report_job(ins["instructions"][0]["job_id"], "failed", "receive failed", now=NOW)
    check(job, "_JobDict")
    group_check = w.check_group(g, now=NOW)
    assert group_check["states"] and group_check["conflicts"], group_check
    check(group_check, "_GroupCheckDict")
    held = [s for s in group_check["states"] if s["status"] == "error"]
    assert held and held[0]["next_attempt_at"], group_check["states"]
    check(w.retry_state(held[0]["id"], now=NOW), "_SyncStateDict")
    conflicts = w.conflicts(g)
    assert conflicts
    for conflict in conflicts:
        check(conflict, "_ConflictRecordDict")
    w.instructions(a, now=NOW)
    expired = w.expire_leases(now=NOW + timedelta(hours=1))
    assert expired
    for e in expired:
        check(e, "_JobDict")
    health = w.fleet_health(now=NOW)
    assert {h["status"] for h in health["systems"]} == {"online", "never_seen"}
    check(health, "_FleetHealthDict")


def test_resume_tokens(witness: Witness) -> None:
    a = System("hostA")
    witness.register_system(a)
    witness.set_resume_token(a, "tank/vm1", "1-abc-def")
    witness.set_resume_token(a, "tank/vm1", None)
    with pytest.raises(zfs_sync.InvalidNameError):
        witness.set_resume_token(a, "tank/vm1;x", "1-abc")


def test_calls_from_many_threads(tmp_path: Path) -> None:
    witness = Witness(SqliteStore(tmp_path / "threads.db"))
    keys: List[str] = []
    errors: List[BaseException] = []

    def work(i: int) -> None:
        try:
            s = System(f"host{i}")
            keys.append(witness.register_system(s))
            witness.report_snapshots(s, history("tank", 5, guid_base=1000 * i))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(keys)) == 8
    assert len(witness.list_systems()) == 8
    assert len(witness.snapshots(limit=1000)) == 40


@pytest.fixture
def postgres_schema() -> Iterator[tuple]:
    """The test database's URL and a fresh schema, dropped afterwards (with psql)."""
    url = os.environ.get("ZFS_SYNC_TEST_POSTGRES_URL")
    if not url:
        # The rule of zfs_sync_storage::testing::postgres_test_url: skip, except in CI.
        if os.environ.get("CI"):
            pytest.fail("ZFS_SYNC_TEST_POSTGRES_URL is not set, and CI is: in CI PostgresStore must be tested, not skipped")
        pytest.skip("ZFS_SYNC_TEST_POSTGRES_URL is not set: PostgresStore not tested")
    schema = "zfs_sync_py_round_trip_" + uuid.uuid4().hex[:8]
    yield url, schema
    psql = shutil.which("psql")
    if psql is None:
        print(f"psql not found: schema {schema} left in {url}")
        return
    subprocess.run([psql, url, "-q", "-c", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'], check=True, capture_output=True)


def test_postgres_store_round_trip(postgres_schema: tuple) -> None:
    from zfs_sync import PostgresStore

    postgres_url, schema = postgres_schema
    store = PostgresStore(postgres_url, schema=schema, max_connections=2)
    store.ping()
    assert "PostgresStore" in repr(store) and postgres_url not in repr(store)
    w = Witness(store)
    a = System("hostA", created_at=T0)
    key = w.register_system(a)
    w.report_snapshots(a, history("tank", 2))
    again = Witness(PostgresStore(postgres_url, schema=schema))
    assert again.get_system(a) == a and again.authenticate(key) == a.id
    assert sorted(s.name for s in again.snapshots(system_id=a)) == ["s0", "s1"]
    with pytest.raises(ValidationError) as info:
        PostgresStore("mysql://x")
    assert info.value.field == "url"
    with pytest.raises(ValidationError):
        PostgresStore(postgres_url, max_connections=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_clear_error(witness: Witness) -> None:
    witness.register_system(System("parent"))
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that has threads: that is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            witness.list_systems()
        except StorageError as err:
            code = 0 if "forked" in str(err) else 4
        except BaseException:
            code = 5
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # The parent is unaffected.
    assert [s.hostname for s in witness.list_systems()] == ["parent"]


def test_the_groups_strategy_applies_itself_only_when_it_destroys_nothing(witness: Witness) -> None:
    hub, b = System("hub"), System("backup")
    for s in (hub, b):
        witness.register_system(s)
    witness.report_snapshots(hub, history("tank", 2), now=NOW)
    witness.report_snapshots(b, history("tank", 2)[:1] + [snap("tank/vm1@s9", 778, 3, 5)], now=NOW)
    policy = Policy(allow_destructive=True, conflict_strategy="use_newest")
    g = witness.create_group(SyncGroup("g", [hub, b], directional=True, hub_system_id=hub, policy=policy))
    witness.check_group(g, now=NOW)
    [waits] = witness.apply_conflict_strategy(g, now=NOW)
    assert waits["applied"] is False and "destructive" in (waits["note"] or "")
    [conflict] = witness.conflicts(g)
    assert conflict["status"] == "open" and conflict["note"] == waits["note"]
    policy = Policy(conflict_strategy="keep_both")
    witness.update_group(SyncGroup("g", [hub, b], directional=True, hub_system_id=hub, policy=policy, id=g.id), now=NOW)
    [done] = witness.apply_conflict_strategy(g, now=NOW)
    assert done == {"conflict_id": conflict["id"], "applied": True, "note": None}
    assert witness.conflicts(g)[0]["status"] == "resolving"


def test_a_tsv_inventory_reports_datasets_and_plans_receives_zfs_accepts(witness: Witness) -> None:
    a, b = System("hostA", ssh_user="zfs"), System("hostB", ssh_user="zfs")
    for s in (a, b):
        witness.register_system(s)
    hub_list = (
        "tank\tfilesystem\t1\t1\t1761955200\t200000\t96000\t-\n"
        "tank/vm1\tfilesystem\t2\t5\t1761955200\t100000\t96000\t-\n"
        "tank/vm1@a\tsnapshot\t11\t6\t1761958800\t1000\t5000\t-\n"
    )
    assert witness.replace_inventory_text(a, hub_list, now=NOW) == (1, 0, 2)
    # hostB holds an empty backup/r/vm1 (created by hand) and its parents.
    spoke_list = (
        "backup\tfilesystem\t3\t1\t1761955200\t300000\t96000\t-\n"
        "backup/r\tfilesystem\t4\t2\t1761955200\t200000\t96000\t-\n"
        "backup/r/vm1\tfilesystem\t5\t3\t1761955200\t98304\t98304\t-\n"
    )
    assert witness.replace_inventory_text(b, spoke_list, now=NOW) == (0, 0, 3)
    assert [d["name"] for d in witness.reported_datasets(b)] == ["backup", "backup/r", "backup/r/vm1"]
    assert witness.reported_datasets(b)[2]["used"] == 98304
    members = [Member(a.id), Member(b.id, "backup/r")]
    g = witness.create_group(SyncGroup("g", members, directional=True, hub_system_id=a.id))
    # Without overwrite_empty_datasets the full send is blocked (ZFS would refuse it).
    assert witness.plan(g, now=NOW).transfers == []
    policy = Policy(overwrite_empty_datasets=True, receive_options={"set": {"readonly": "on"}, "exclude": ["mountpoint"]})
    assert policy.receive_options == {"set": {"readonly": "on"}, "exclude": ["mountpoint"]}
    g = witness.update_group(SyncGroup("g", members, id=g.id, directional=True, hub_system_id=a.id, policy=policy))
    [ins] = witness.instructions(a, now=NOW)["instructions"]
    remote = ins["commands"][0]["argv"][1][-1]
    assert remote == "zfs receive -s -u -F -o readonly=on -x mountpoint backup/r/vm1"
    # A bad line changes nothing.
    with pytest.raises(ValidationError) as info:
        witness.replace_inventory_text(b, "backup\tfilesystem\t3\t1\t1761955200\t300000\t96000\t-\nbackup/x\tsnapshot\n")
    assert info.value.field == "line 2"
    assert len(witness.reported_datasets(b)) == 3


def test_receive_options_are_validated_by_name() -> None:
    with pytest.raises(ValidationError) as info:
        Policy(receive_options={"set": {"ReadOnly": "on"}})
    assert info.value.field == "receive_options.set.ReadOnly"
    with pytest.raises(ValidationError) as info:
        Policy(receive_options={"exclude": ["mount point"]})
    assert info.value.field == "receive_options.exclude"
    with pytest.raises(ValidationError) as info:
        Policy(receive_options={"set": {"readonly": "on\n"}})
    assert info.value.field == "receive_options.set.readonly"
    assert Policy.from_dict(Policy(overwrite_empty_datasets=True).to_dict()).overwrite_empty_datasets


def test_retention_is_validated_as_a_whole_and_stored(witness: Witness) -> None:
    for retention, field in [
        ({"source": {"daily": -1}}, "retention.source.daily"),
        ({"target": {"dayly": 3}}, "retention.target.dayly"),
        ({"target": {}}, "retention.target"),
        ({"source": {"daily": 3}, "max_pending_snapshots": 0}, "retention.max_pending_snapshots"),
    ]:
        with pytest.raises(ValidationError) as info:
            Policy(retention=retention)
        assert info.value.field == field, retention
    a, b = System("hostA", ssh_user="zfs"), System("hostB", ssh_user="zfs")
    for s in (a, b):
        witness.register_system(s)
    with pytest.raises(ValidationError) as info:
        witness.create_group(SyncGroup("g", [a.id, b.id], policy=Policy(prune=True)))
    assert info.value.field == "prune"
    retention = {"source": {"daily": 3, "keep_last": 2}, "target": None, "max_pending_snapshots": 10}
    g = witness.create_group(SyncGroup("g", [a.id, b.id], policy=Policy(retention=retention, prune=True)))
    stored = witness.get_group(g.id).policy
    assert stored.prune
    assert stored.retention == {
        "source": {"keep_last": 2, "hourly": 0, "daily": 3, "weekly": 0, "monthly": 0, "yearly": 0},
        "target": None,
        "max_pending_snapshots": 10,
    }
    assert Policy.from_dict(stored.to_dict()) == stored
    preview = witness.prune_preview(g)
    assert preview["prune"] is True and preview["datasets"] == []


def test_edges_measure_the_recovery_point_against_the_rpo(witness: Witness) -> None:
    a, b, g = lagging_pair(witness)
    # b's newest snapshot (s0) was taken at T0; a's newest (s2) two hours later.
    [edge] = witness.edges(now=T0 + timedelta(hours=3))
    assert (edge["source_hostname"], edge["target_hostname"]) == ("hostA", "hostB")
    assert edge["status"] == "ok" and edge["rpo_seconds"] == 86400
    assert edge["recovery_point_age_seconds"] == 3 * 3600
    assert edge["source_newest_age_seconds"] == 3600
    assert edge["lag_snapshots"] == 2 and edge["blocked_by"] is None
    [late] = witness.edges(status="late", now=T0 + timedelta(hours=13))
    assert late["target_system_id"] == str(b.id)
    assert witness.edges(group_id=g, system_id=a, now=NOW)[0]["status"] == "breached"
    assert witness.edges(status="ok", now=NOW) == []
    with pytest.raises(ValidationError) as info:
        witness.edges(status="green")  # type: ignore[arg-type]
    assert info.value.field == "status"
    assert Policy(rpo_seconds=3600).rpo_seconds == 3600 and Policy().rpo_seconds == 86400
    with pytest.raises(ValidationError) as info:
        Policy(rpo_seconds=10)
    assert info.value.field == "rpo_seconds"


def test_fleet_changes_are_recorded_once_as_events(witness: Witness) -> None:
    a, b, g = lagging_pair(witness)
    # A month on: b's copy is far past a day's RPO, and a took no snapshot since.
    recorded = witness.observe_fleet(now=NOW)
    assert sorted(e["event_type"] for e in recorded) == ["rpo_breached", "source_stale"]
    [breached] = [e for e in recorded if e["event_type"] == "rpo_breached"]
    assert breached["system_id"] == str(b.id)
    assert witness.observe_fleet(now=NOW) == [], "one event per change"
    assert witness.events() == recorded
    assert witness.events(since=recorded[-1]["id"]) == []
    assert witness.events(types=["rpo_breached"], group_id=g) == [breached]
    with pytest.raises(ValidationError) as info:
        witness.events(types=["rpo_late"])  # type: ignore[list-item]
    assert info.value.field == "types"
    with pytest.raises(ValidationError) as info:
        witness.events(limit=0)
    assert info.value.field == "limit"


def test_webhooks_are_managed_like_over_http(witness: Witness) -> None:
    secret = "0123456789abcdef-witness"
    hook = witness.create_webhook("https://hooks.example.org/zfs", secret, ["rpo_breached", "job_failed"])
    assert hook["events"] == ["rpo_breached", "job_failed"]
    assert hook["failed_attempts"] == 0 and hook["next_attempt_at"] is None
    assert "secret" not in hook and secret not in repr(witness.webhooks())
    assert [h["id"] for h in witness.webhooks()] == [hook["id"]]
    assert witness.webhook_deliveries(hook["id"]) == []
    for args, field in [
        (("ftp://x/", secret, ["*"]), "url"),
        (("https://x.example/", "short", ["*"]), "secret"),
        (("https://x.example/", secret, ["*", "job_failed"]), "events"),
        (("https://x.example/", secret, ["job_failed", "rpo_late"]), "events[1]"),
    ]:
        with pytest.raises(ValidationError) as info:
            witness.create_webhook(*args)
        assert info.value.field == field
    with pytest.raises(ValidationError) as info:
        witness.webhook_deliveries(hook["id"], limit=0)
    assert info.value.field == "limit"
    witness.delete_webhook(hook["id"])
    assert witness.webhooks() == []
    with pytest.raises(NotFoundError):
        witness.delete_webhook(hook["id"])
    with pytest.raises(NotFoundError):
        witness.webhook_deliveries(hook["id"])
