import pytest

import zfs_sync
from zfs_sync import InvalidNameError, SnapshotName, ValidationError, ZfsSyncError


def test_parse_snapshot_name_splits_every_part() -> None:
    n = zfs_sync.parse_snapshot_name("tank/vm/disk0@auto-2026-11-26")
    assert isinstance(n, SnapshotName)
    assert n.pool == "tank"
    assert n.dataset == "vm/disk0"
    assert n.dataset_name == "tank/vm/disk0"
    assert n.snapshot == "auto-2026-11-26"
    assert n.full_name == "tank/vm/disk0@auto-2026-11-26"
    assert str(n) == n.full_name
    assert repr(n) == "SnapshotName(\"tank/vm/disk0@auto-2026-11-26\")"


def test_snapshot_of_a_pool_root_has_an_empty_dataset() -> None:
    n = zfs_sync.parse_snapshot_name("tank@s1")
    assert (n.pool, n.dataset, n.dataset_name, n.snapshot) == ("tank", "", "tank", "s1")


def test_snapshot_name_class_constructs_and_compares() -> None:
    a = SnapshotName("tank/a@s")
    assert a == zfs_sync.parse_snapshot_name("tank/a@s")
    assert a != SnapshotName("tank/a@t")
    assert len({a, SnapshotName("tank/a@s")}) == 1


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("tank/a", "no '@'"),
        ("tank/a@b@c", "more than one"),
        ("tank/a@", "empty component"),
        ("tank/a@x/y", "'/' after"),
        ("tank/a;rm -rf /@s", "contains ';'"),
        ("1tank/a@s", "start with a letter"),
        ("mirror0/a@s", "reserved"),
        ("tank/../a@s", "'..'"),
        ("tank/" + "a" * 260 + "@s", "ZFS allows at most 255"),
    ],
)
def test_bad_snapshot_names_raise_invalid_name_error_naming_the_rule(name: str, rule: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        zfs_sync.parse_snapshot_name(name)
    err = info.value
    assert rule in str(err)
    assert err.field == "name"
    assert err.reason is not None and rule in err.reason
    # The hierarchy: a name error is a validation error, a ValueError and a ZfsSyncError.
    assert isinstance(err, ValidationError)
    assert isinstance(err, ValueError)
    assert isinstance(err, ZfsSyncError)
    assert err.status_code is None


def test_validate_dataset_name() -> None:
    assert zfs_sync.validate_dataset_name("tank/a b:c.d-e_f") == "tank/a b:c.d-e_f"
    assert zfs_sync.validate_dataset_name("tank") == "tank"
    for bad in ["", "tank/", "/tank", "tank//a", "tank/a@s", "tank/%recv", "tank/é", "log"]:
        with pytest.raises(InvalidNameError):
            zfs_sync.validate_dataset_name(bad)


def test_validate_pool_name() -> None:
    assert zfs_sync.validate_pool_name("logs") == "logs"
    for bad in ["log", "raidz1", "spare", "tank/a", "9tank", ""]:
        with pytest.raises(InvalidNameError):
            zfs_sync.validate_pool_name(bad)


def test_validate_short_name() -> None:
    assert zfs_sync.validate_short_name("zfs-auto-snap_daily-2026") == "zfs-auto-snap_daily-2026"
    for bad in ["", "a/b", "a@b", "a#b", ".", "..", "a$b"]:
        with pytest.raises(InvalidNameError):
            zfs_sync.validate_short_name(bad)


def test_names_must_be_strings() -> None:
    with pytest.raises(TypeError):
        zfs_sync.parse_snapshot_name(42)  # type: ignore[arg-type]
