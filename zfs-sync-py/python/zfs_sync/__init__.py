"""zfs-sync: the witness for ZFS replication, from Python.

The planning core and the stores are native (``zfs_sync._zfs_sync``, re-exported here);
:mod:`zfs_sync.client` is a pure-Python HTTP client for host scripts; every error is a
:class:`ZfsSyncError` (see :mod:`zfs_sync.errors`).
"""

from typing import TYPE_CHECKING, Optional


class NativeModuleMissing(ImportError):
    """A native name was used where only the Python files are installed."""


def _native_missing() -> Optional[str]:
    """Why the native module cannot be imported, or ``None`` when it can."""
    try:
        import zfs_sync._zfs_sync  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "zfs_sync._zfs_sync":
            raise
        return str(e)
    return None


# Only the Python files may be installed (the host client distribution, or a copy of
# ``client.py`` and ``errors.py``): then the client and the errors work, and each native name
# says what is missing when it is used.
_NATIVE_MISSING = _native_missing()
if _NATIVE_MISSING is None:
    from zfs_sync._zfs_sync import (
        Conflict,
        Gap,
        Inventory,
        Member,
        Plan,
        Policy,
        PostgresStore,
        Snapshot,
        SnapshotName,
        SqliteStore,
        SyncGroup,
        System,
        Transfer,
        Witness,
        __version__,
        parse_snapshot_name,
        parse_zfs_list,
        plan,
        resolve,
        validate_dataset_name,
        validate_pool_name,
        validate_short_name,
    )
elif not TYPE_CHECKING:  # type checkers see the native names through the stubs

    def __getattr__(name: str) -> object:
        if name.startswith("__") and name != "__version__":
            raise AttributeError(name)
        raise NativeModuleMissing(
            f"zfs_sync.{name} needs the native module zfs_sync._zfs_sync, which is not "
            f"installed ({_NATIVE_MISSING}); install the zfs-sync wheel, or use only "
            "zfs_sync.client and zfs_sync.errors"
        )


from zfs_sync.errors import (
    AlreadyExistsError,
    AuthError,
    ConflictError,
    InvalidNameError,
    MissingReferenceError,
    NotFoundError,
    StorageError,
    TransportError,
    ValidationError,
    ZfsSyncError,
)

__all__ = [
    "AlreadyExistsError",
    "AuthError",
    "Conflict",
    "ConflictError",
    "Gap",
    "Inventory",
    "InvalidNameError",
    "Member",
    "MissingReferenceError",
    "NotFoundError",
    "Plan",
    "Policy",
    "PostgresStore",
    "Snapshot",
    "SnapshotName",
    "SqliteStore",
    "StorageError",
    "SyncGroup",
    "System",
    "Transfer",
    "TransportError",
    "ValidationError",
    "Witness",
    "ZfsSyncError",
    "__version__",
    "parse_snapshot_name",
    "parse_zfs_list",
    "plan",
    "resolve",
    "validate_dataset_name",
    "validate_pool_name",
    "validate_short_name",
]
