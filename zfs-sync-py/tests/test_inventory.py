from datetime import datetime, timezone

import pytest

import zfs_sync
from zfs_sync import Snapshot, ValidationError

from conftest import zfs_list_lines


def test_parse_zfs_list_six_fields() -> None:
    text = zfs_list_lines(
        [
            ("tank/vm 1@auto:2026", 18446744073709551615, 100, 1795132800, 4096, 8192),
            ("tank@root", 7, 5, 1795132801, "-", "-"),
        ]
    )
    snaps = zfs_sync.parse_zfs_list(text)
    assert len(snaps) == 2
    a, b = snaps
    assert isinstance(a, Snapshot)
    assert (a.pool, a.dataset, a.name) == ("tank", "vm 1", "auto:2026")
    assert a.guid == 2**64 - 1 and a.createtxg == 100
    assert a.creation == datetime(2026, 11, 20, tzinfo=timezone.utc)
    assert (a.used, a.referenced) == (4096, 8192)
    assert (b.dataset, b.full_name, b.used, b.referenced) == ("", "tank@root", 0, 0)


def test_parse_zfs_list_four_fields_has_no_guids() -> None:
    snaps = zfs_sync.parse_zfs_list("tank/a@s1\t1795132800\t1\t2\r\n\n")
    assert len(snaps) == 1
    assert snaps[0].guid is None and snaps[0].createtxg is None


def test_parse_zfs_list_empty_text_is_an_empty_inventory() -> None:
    assert zfs_sync.parse_zfs_list("") == []


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("tank/a@s1\tx\t1\t1795132800\t1\t2\n", "line 1"),
        ("tank/a@s1\t1\t1\t1795132800\t1\t2\ntank/a;b@s\t1\t1\t1795132800\t1\t2\n", "line 2"),
        ("tank/a\t1\t1\t1795132800\t1\t2\n", "line 1"),
        ("tank/a@s1 1 1 1795132800 1 2\n", "line 1"),
    ],
)
def test_parse_zfs_list_names_the_bad_line(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        zfs_sync.parse_zfs_list(text)
    assert info.value.field == field
    assert str(info.value).startswith(field)
