"""zfs-sync: the witness for ZFS replication, from Python.

The planning core and the stores are native (``zfs_sync._zfs_sync``, re-exported here);
:mod:`zfs_sync.client` is a pure-Python HTTP client for host scripts; every error is a
:class:`ZfsSyncError` (see :mod:`zfs_sync.errors`).
"""

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
    validate_dataset_name,
    validate_pool_name,
    validate_short_name,
)
from zfs_sync.errors import (
    AlreadyExistsError,
    AuthError,
    ConflictError,
    InvalidNameError,
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
    "validate_dataset_name",
    "validate_pool_name",
    "validate_short_name",
]
