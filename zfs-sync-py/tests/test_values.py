import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

import zfs_sync
from zfs_sync import InvalidNameError, Member, Policy, Snapshot, SyncGroup, System, ValidationError

from conftest import T0


# -- System -------------------------------------------------------------------------------------


def test_system_defaults_and_attributes() -> None:
    s = System("hostA", ssh_user="zfs", ssh_hostname="10.0.0.5", platform="linux")
    assert s.hostname == "hostA"
    assert isinstance(s.id, uuid.UUID)
    assert s.ssh_port == 22
    assert s.ssh_user == "zfs"
    assert s.ssh_hostname == "10.0.0.5"
    assert s.platform == "linux"
    assert s.capabilities is None
    assert s.extra_metadata == {}
    assert s.last_seen is None
    assert s.created_at.tzinfo is not None
    assert s.updated_at == s.created_at
    assert "hostA" in repr(s)


def test_system_round_trips_through_dict_and_json() -> None:
    sid = uuid.uuid4()
    s = System(
        "backup.example.org",
        id=sid,
        ssh_port=2222,
        capabilities={"raw_send": False},
        extra_metadata={"rack": 4, "tags": ["a", "b"], "nested": {"x": None, "y": 1.5}},
        last_seen="2026-11-26T01:02:03+01:00",
        created_at=T0,
    )
    d = s.to_dict()
    assert d["id"] == str(sid)
    assert d["last_seen"] == "2026-11-26T00:02:03Z"  # offset converted, not dropped
    assert d["capabilities"]["raw_send"] is False and d["capabilities"]["compressed_send"] is True
    assert json.loads(json.dumps(d)) == d
    again = System.from_dict(json.loads(json.dumps(d)))
    assert again == s
    assert again.last_seen == datetime(2026, 11, 26, 0, 2, 3, tzinfo=timezone.utc)
    assert again.extra_metadata["nested"] == {"x": None, "y": 1.5}


def test_system_from_dict_accepts_the_api_metadata_alias_and_rejects_unknown_keys() -> None:
    s = System.from_dict({"hostname": "h1", "metadata": {"k": "v"}})
    assert s.extra_metadata == {"k": "v"}
    with pytest.raises(ValidationError) as info:
        System.from_dict({"hostname": "h1", "ssh_prot": 22})
    assert info.value.field == "ssh_prot"
    with pytest.raises(ValidationError) as info:
        System.from_dict({"hostname": "h1", "metadata": {}, "extra_metadata": {}})
    assert info.value.field == "metadata"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hostname": "bad host"}, "hostname"),
        ({"hostname": "-lead"}, "hostname"),
        ({"hostname": "h", "ssh_port": 0}, "ssh_port"),
        ({"hostname": "h", "ssh_port": 70000}, "ssh_port"),
        ({"hostname": "h", "ssh_port": True}, "ssh_port"),
        ({"hostname": "h", "ssh_user": "-oProxyCommand=x"}, "ssh_user"),
        ({"hostname": "h", "ssh_hostname": "a;b"}, "ssh_hostname"),
        ({"hostname": "h", "id": "not-a-uuid"}, "id"),
        ({"hostname": "h", "last_seen": datetime(2026, 1, 1)}, "last_seen"),
        ({"hostname": "h", "last_seen": "yesterday"}, "last_seen"),
        ({"hostname": "h", "capabilities": {"teleport": True}}, "capabilities.teleport"),
        ({"hostname": "h", "capabilities": {"raw_send": "yes"}}, "capabilities.raw_send"),
        ({"hostname": "h", "extra_metadata": {"x": object()}}, "extra_metadata.x"),
        ({"hostname": "h", "extra_metadata": {"x": float("nan")}}, "extra_metadata.x"),
        ({"hostname": "h", "extra_metadata": [1]}, "extra_metadata"),
        ({"hostname": 5}, "hostname"),
    ],
)
def test_system_rejects_bad_fields_by_name(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        System(**kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


def test_system_is_immutable() -> None:
    s = System("h")
    with pytest.raises(AttributeError):
        s.hostname = "other"  # type: ignore[misc]


# -- Snapshot -----------------------------------------------------------------------------------


def test_snapshot_from_full_name_and_from_parts_are_equal() -> None:
    a = Snapshot("tank/vm1@s1", creation=T0, guid=42, createtxg=7, used=10, referenced=20)
    b = Snapshot("s1", pool="tank", dataset="vm1", creation=T0, guid=42, createtxg=7, used=10, referenced=20)
    assert a == b
    assert (a.pool, a.dataset, a.name, a.dataset_name, a.full_name) == ("tank", "vm1", "s1", "tank/vm1", "tank/vm1@s1")
    assert (a.guid, a.createtxg, a.used, a.referenced, a.creation) == (42, 7, 10, 20, T0)
    assert a.id is None and a.system_id is None and a.last_reported is None
    assert "tank/vm1@s1" in repr(a)


def test_snapshot_times_accept_datetimes_strings_and_unix_seconds() -> None:
    ts = int(T0.timestamp())
    for creation in [T0, T0.astimezone(timezone(timedelta(hours=-5))), "2026-11-01T00:00:00Z", ts]:
        assert Snapshot("tank@s", creation=creation).creation == T0


def test_snapshot_round_trip_keeps_64_bit_guids() -> None:
    big = 2**64 - 1
    s = Snapshot("tank/a@s", creation=T0, guid=big, extra_metadata={"written": 0})
    d = s.to_dict()
    assert d["guid"] == big
    assert d["creation"] == "2026-11-01T00:00:00Z"
    assert Snapshot.from_dict(d) == s
    # The API's names (timestamp, size) and a GUID as a string are accepted too.
    api = {"name": "s", "pool": "tank", "dataset": "a", "timestamp": "2026-11-01T00:00:00Z", "guid": str(big), "size": 0, "extra_metadata": {"written": 0}}
    assert Snapshot.from_dict(api) == s


def test_snapshot_holds_round_trip_and_bad_tags_name_the_field() -> None:
    s = Snapshot("tank/a@s", creation=T0, userrefs=2, holds=["zfs-sync:ab:cd", "keep me"])
    assert (s.userrefs, s.holds) == (2, ["zfs-sync:ab:cd", "keep me"])
    d = s.to_dict()
    assert (d["userrefs"], d["holds"]) == (2, ["zfs-sync:ab:cd", "keep me"])
    assert Snapshot.from_dict(d) == s
    plain = Snapshot("tank/a@s", creation=T0)
    assert (plain.userrefs, plain.holds) == (None, None)
    with pytest.raises(ValidationError) as e:
        Snapshot("tank/a@s", creation=T0, holds=["ok", "x" * 256])
    assert e.value.field == "holds[1]"
    caps = System("h", capabilities={"holds": False}).capabilities
    assert caps is not None and caps["holds"] is False and caps["bookmarks"] is True


def test_snapshot_root_dataset() -> None:
    s = Snapshot("tank@s", creation=T0)
    assert s.dataset == "" and s.dataset_name == "tank" and s.full_name == "tank@s"


@pytest.mark.parametrize(
    ("kwargs", "field", "exc"),
    [
        ({"name": "s"}, "pool", ValidationError),
        ({"name": "tank/a@s", "dataset": "a"}, "dataset", ValidationError),
        ({"name": "tank/a@b@c"}, "name", InvalidNameError),
        ({"name": "s;x", "pool": "tank"}, "name", ValidationError),
        ({"name": "s", "pool": "1tank"}, "pool", ValidationError),
        ({"name": "s", "pool": "tank", "dataset": "/a"}, "dataset", ValidationError),
        ({"name": "s", "pool": "tank", "guid": -1}, "guid", ValidationError),
        ({"name": "s", "pool": "tank", "guid": 2**64}, "guid", ValidationError),
        ({"name": "s", "pool": "tank", "used": "big"}, "used", ValidationError),
        ({"name": "s", "pool": "tank", "createtxg": 1.5}, "createtxg", ValidationError),
    ],
)
def test_snapshot_rejects_bad_fields_by_name(kwargs: dict, field: str, exc: type) -> None:
    kwargs.setdefault("creation", T0)
    with pytest.raises(exc) as info:
        Snapshot(**kwargs)
    assert info.value.field == field


def test_snapshot_accepts_zfs_temporary_receive_datasets() -> None:
    # `%recv` is what ZFS itself names a partial receive: reported, stored, never planned.
    s = Snapshot("s", pool="tank", dataset="fs/%recv", creation=T0)
    assert s.dataset_name == "tank/fs/%recv"


def test_snapshot_requires_creation() -> None:
    with pytest.raises(TypeError):
        Snapshot("tank@s")  # type: ignore[call-arg]


# -- Member, Policy, SyncGroup ------------------------------------------------------------------


def test_member_from_system_uuid_string_and_dict() -> None:
    s = System("h")
    assert Member(s).system_id == s.id
    assert Member(str(s.id), "backup/replicas/h").dataset_root == "backup/replicas/h"
    m = Member.from_dict({"system_id": str(s.id), "dataset_root": "backup/h"})
    assert m == Member(s.id, "backup/h")
    assert Member.from_dict(m.to_dict()) == m
    assert str(s.id) in repr(m)
    with pytest.raises(ValidationError) as info:
        Member(s, "backup//h")
    assert info.value.field == "member.dataset_root"


def test_policy_defaults_and_round_trip() -> None:
    p = Policy()
    assert p.to_dict() == {
        "snapshot_filter": None,
        "min_snapshot_age_seconds": 0,
        "lag_threshold_seconds": 0,
        "transfer": "push",
        "send_flags": [],
        "conflict_strategy": "manual",
        "allow_destructive": False,
        "mirror_deletions": False,
        "overwrite_empty_datasets": False,
        "receive_options": {"set": {}, "exclude": []},
        "retention": {"source": None, "target": None, "max_pending_snapshots": None},
        "prune": False,
        "rpo_seconds": 86400,
    }
    q = Policy(snapshot_filter="auto-*", transfer="pull", send_flags=["raw", "compressed"], conflict_strategy="use_newest", allow_destructive=True, min_snapshot_age_seconds=60, lag_threshold_seconds=3600, mirror_deletions=True, rpo_seconds=7200)
    assert q.send_flags == ["compressed", "raw"]
    assert (q.transfer, q.conflict_strategy, q.snapshot_filter) == ("pull", "use_newest", "auto-*")
    assert (q.allow_destructive, q.mirror_deletions, q.min_snapshot_age_seconds, q.lag_threshold_seconds) == (True, True, 60, 3600)
    assert Policy.from_dict(q.to_dict()) == q
    assert Policy.from_dict(q.to_dict()).rpo_seconds == 7200
    assert "pull" in repr(q)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"transfer": "sideways"}, "transfer"),
        ({"send_flags": ["dedup"]}, "send_flags[0]"),
        ({"send_flags": "raw"}, "send_flags"),
        ({"conflict_strategy": "coin_flip"}, "conflict_strategy"),
        ({"snapshot_filter": "regex:("}, "snapshot_filter"),
        ({"snapshot_filter": "[abc"}, "snapshot_filter"),
        ({"allow_destructive": "yes"}, "allow_destructive"),
        ({"lag_threshold_seconds": -1}, "lag_threshold_seconds"),
    ],
)
def test_policy_rejects_bad_fields_by_name(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Policy(**kwargs)
    assert info.value.field == field


def test_sync_group_members_in_every_form_and_sorted() -> None:
    a, b, c = System("a"), System("b"), System("c")
    g = SyncGroup("fleet", [a, Member(b, "backup/b"), {"system_id": str(c.id)}], description="vm disks")
    assert g.system_ids == sorted([a.id, b.id, c.id])
    assert [m.system_id for m in g.members] == g.system_ids
    assert g.members[g.system_ids.index(b.id)].dataset_root == "backup/b"
    assert (g.name, g.description, g.enabled, g.directional, g.hub_system_id, g.sync_interval_seconds) == ("fleet", "vm disks", True, False, None, 3600)
    assert g.policy == Policy()
    assert "fleet" in repr(g)


def test_sync_group_round_trips_in_the_api_shape() -> None:
    hub, spoke = System("hub"), System("spoke")
    g = SyncGroup("g", [hub, spoke], directional=True, hub_system_id=hub, policy=Policy(send_flags=["raw"], transfer="pull"), sync_interval_seconds=600, enabled=False)
    d = g.to_dict()
    # Flat policy fields, as the HTTP API has them.
    assert d["send_flags"] == ["raw"] and d["transfer"] == "pull" and "policy" not in d
    assert d["hub_system_id"] == str(hub.id) and d["directional"] is True
    assert SyncGroup.from_dict(json.loads(json.dumps(d))) == g
    # A nested policy and system_ids are accepted too.
    nested = {"name": "g2", "system_ids": [str(hub.id)], "policy": {"conflict_strategy": "use_majority"}}
    g2 = SyncGroup.from_dict(nested)
    assert g2.system_ids == [hub.id] and g2.policy.conflict_strategy == "use_majority"
    assert g2.created_at == g2.updated_at


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda a, b: SyncGroup("", [a]), "name"),
        (lambda a, b: SyncGroup("g", [a, a]), "system_ids[1]"),
        (lambda a, b: SyncGroup("g", [a], directional=True), "hub_system_id"),
        (lambda a, b: SyncGroup("g", [a], directional=True, hub_system_id=b), "hub_system_id"),
        (lambda a, b: SyncGroup("g", [a], hub_system_id=a), "hub_system_id"),
        (lambda a, b: SyncGroup("g", [a], sync_interval_seconds=0), "sync_interval_seconds"),
        (lambda a, b: SyncGroup("g", ["nope"]), "members[0]"),
        (lambda a, b: SyncGroup("g", [{"dataset_root": "x"}]), "members[0].system_id"),
        (lambda a, b: SyncGroup("g", [a], policy={"transfer": "x"}), "transfer"),
        (lambda a, b: SyncGroup.from_dict({"name": "g", "transfer": "push", "policy": {}}), "policy"),
        (lambda a, b: SyncGroup.from_dict({"name": "g", "members": [], "system_ids": []}), "system_ids"),
        (lambda a, b: SyncGroup.from_dict({"name": "g", "colour": "red"}), "colour"),
    ],
)
def test_sync_group_rejects_bad_input_by_field(build, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as info:
        build(System("a"), System("b"))
    assert info.value.field == field


def test_value_classes_compare_by_value() -> None:
    sid = uuid.uuid4()
    assert System("h", id=sid, created_at=T0) == System("h", id=sid, created_at=T0)
    assert System("h", id=sid, created_at=T0) != System("h2", id=sid, created_at=T0)
    assert Policy(transfer="pull") != Policy()


def test_from_dict_needs_a_mapping() -> None:
    with pytest.raises(ValidationError):
        System.from_dict(["hostname"])  # type: ignore[arg-type]
    assert zfs_sync.__version__
