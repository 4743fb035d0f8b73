"""Shared fixtures of the zfs-sync Python tests."""

from datetime import datetime, timedelta, timezone
from typing import Callable, List

import pytest

import zfs_sync

T0 = datetime(2026, 11, 1, 0, 0, 0, tzinfo=timezone.utc)


def snap(full: str, guid: int, txg: int, hours: int, used: int = 1024) -> zfs_sync.Snapshot:
    """A snapshot created ``hours`` after T0."""
    return zfs_sync.Snapshot(
        full, creation=T0 + timedelta(hours=hours), guid=guid, createtxg=txg, used=used, referenced=4 * used
    )


@pytest.fixture
def make_snap() -> Callable[..., zfs_sync.Snapshot]:
    return snap


def zfs_list_lines(rows: List[tuple]) -> str:
    """`zfs list -H -p -o name,guid,createtxg,creation,used,referenced` text."""
    return "".join("\t".join(str(c) for c in row) + "\n" for row in rows)
