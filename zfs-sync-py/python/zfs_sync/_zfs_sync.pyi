"""Type stubs of the native part of zfs-sync (hand-written; checked by mypy.stubtest)."""

import os
import sys
from datetime import datetime
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Tuple, TypedDict, Union, final
from uuid import UUID

if sys.version_info >= (3, 11):
    from typing import Self
else:
    from typing_extensions import Self

__version__: str
__all__ = [
    "__version__",
    "parse_snapshot_name",
    "validate_dataset_name",
    "validate_pool_name",
    "validate_short_name",
    "SnapshotName",
    "System",
    "Snapshot",
    "Member",
    "Policy",
    "SyncGroup",
    "Inventory",
    "Transfer",
    "Conflict",
    "Gap",
    "Plan",
    "plan",
    "parse_zfs_list",
    "resolve",
    "SqliteStore",
    "PostgresStore",
    "Witness",
]

#: A UUID as a ``uuid.UUID`` or its string form.
_UuidLike = Union[UUID, str]
#: A time: an aware ``datetime`` (any offset; converted to UTC), an RFC 3339 string, or
#: Unix seconds.
_TimeLike = Union[datetime, str, int]
#: JSON-like values (what ``json.dumps`` accepts).
_Json = Any
_TransferMode = Literal["push", "pull"]
_SendFlag = Literal["compressed", "raw", "large_blocks", "embedded"]
_ConflictStrategy = Literal["use_newest", "use_largest", "use_majority", "manual", "ignore", "keep_both"]
_JobStep = Literal["transfer", "rename", "rollback", "destroy", "create"]

# -- the dicts Witness returns (JSON-ready: UUIDs and times as strings) ------------------------

class _SystemDict(TypedDict):
    id: str
    hostname: str
    platform: Optional[str]
    ssh_hostname: Optional[str]
    ssh_user: Optional[str]
    ssh_port: int
    capabilities: Optional[Dict[str, _Json]]
    extra_metadata: Dict[str, _Json]
    last_seen: Optional[str]
    created_at: str
    updated_at: str

class _CommandDict(TypedDict):
    #: The pipeline as one ``sh -c`` string.
    shell: str
    #: The same pipeline as argv vectors, one per stage.
    argv: List[List[str]]

class _DiagnosticDict(TypedDict):
    system_id: Optional[str]
    dataset: Optional[str]
    message: str

class _InstructionDict(TypedDict):
    #: ``None`` with ``dry_run``: nothing was leased.
    job_id: Optional[str]
    group_id: str
    #: ``transfer`` (ordinary transfers and a resolution's transfer), or a step of a
    #: conflict resolution run on one host.
    kind: _JobStep
    #: The conflict whose resolution this is a step of; ``None`` for ordinary transfers.
    conflict_id: Optional[str]
    #: The step destroys snapshots or discards writes (a resolution's rollback or destroy).
    destructive: bool
    #: The planned transfer (dataset, kind, mode, source, target, base, snapshots, steps, …);
    #: ``None`` for a step that is not a transfer.
    transfer: Optional[Dict[str, _Json]]
    #: The logical dataset.
    dataset: str
    #: The full name of the dataset the job changes on the target.
    target_dataset: str
    source: _SystemDict
    target: _SystemDict
    commands: List[_CommandDict]

class _InstructionsDict(TypedDict):
    system_id: str
    timestamp: str
    instructions: List[_InstructionDict]
    diagnostics: List[_DiagnosticDict]

_EdgeStatus = Literal["breached", "blocked", "never_synced", "late", "ok"]

class _EdgeDict(TypedDict):
    group_id: str
    group_name: str
    dataset: str
    source_system_id: Optional[str]
    source_hostname: Optional[str]
    target_system_id: str
    target_hostname: str
    lag_seconds: int
    lag_snapshots: int
    lag_bytes: int
    source_newest_age_seconds: Optional[int]
    source_stale: bool
    #: Age of the target's newest snapshot against the clock; ``None`` when it holds none.
    recovery_point_age_seconds: Optional[int]
    last_success: Optional[str]
    rpo_seconds: int
    status: _EdgeStatus
    blocked_by: Optional[Literal["conflict", "backoff", "missing_dataset_root"]]
    blocked_reason: Optional[str]
    conflict_id: Optional[str]
    next_attempt_at: Optional[str]
    job_id: Optional[str]
    job_bytes: Optional[int]

_EventType = Literal[
    "job_failed",
    "job_stalled",
    "conflict_opened",
    "conflict_resolved",
    "rpo_breached",
    "rpo_recovered",
    "system_offline",
    "system_online",
    "source_stale",
    "source_fresh",
    "policy_changed",
    "destructive_resolution_applied",
    "admin_key_created",
    "admin_key_revoked",
    "system_key_rotated",
]

class _EventDict(TypedDict):
    id: int
    event_type: _EventType
    time: str
    group_id: Optional[str]
    system_id: Optional[str]
    dataset: Optional[str]
    subject: Optional[str]
    detail: Dict[str, _Json]

class _WebhookDict(TypedDict):
    id: str
    url: str
    events: List[str]
    created_at: str
    last_event_id: int
    failed_attempts: int
    next_attempt_at: Optional[str]

class _DeliveryDict(TypedDict):
    id: int
    webhook_id: str
    event_id: int
    attempt: int
    time: str
    status_code: Optional[int]
    error: Optional[str]
    outcome: Literal["delivered", "retrying", "failed"]
    next_retry_at: Optional[str]

class _JobDict(TypedDict):
    id: str
    group_id: str
    dataset: str
    source_system_id: str
    target_system_id: str
    runner_system_id: str
    #: The transfer's kind; ``None`` for a resolution step that is not a transfer.
    kind: Optional[Literal["incremental", "full", "resume"]]
    step: _JobStep
    #: The conflict whose resolution this job is a step of; ``None`` for ordinary transfers.
    conflict_id: Optional[str]
    #: The step's position in its resolution (0 first).
    step_index: Optional[int]
    #: What was handed out: ``{"transfer": {...}, "commands": [...]}`` (a step also
    #: ``dataset`` and ``destructive``).
    spec: Dict[str, _Json]
    status: Literal["pending", "leased", "succeeded", "failed", "expired", "cancelled"]
    lease_expires_at: Optional[str]
    attempts: int
    error: Optional[str]
    bytes: Optional[int]
    resume_token: Optional[str]
    created_at: str
    updated_at: str

class _SyncStateDict(TypedDict):
    id: str
    group_id: str
    dataset: str
    system_id: str
    status: Literal["in_sync", "out_of_sync", "syncing", "conflict", "error"]
    last_check: Optional[str]
    last_sync: Optional[str]
    lag_seconds: int
    missing_count: int
    error_message: Optional[str]
    attempts: int
    next_attempt_at: Optional[str]
    job_id: Optional[str]
    updated_at: str

class _ConflictRecordDict(TypedDict):
    id: str
    group_id: str
    dataset: str
    system_a: str
    system_b: str
    kind: str
    reason: str
    details: Dict[str, _Json]
    #: ``resolving``: the resolution's steps are jobs the hosts run; ``resolved`` once they
    #: succeeded and the inventories agree.
    status: Literal["open", "resolving", "resolved", "gone"]
    detected_at: str
    updated_at: str
    resolved_at: Optional[str]
    resolution: Optional[Dict[str, _Json]]
    #: 1, plus one each time the clash recurred after the conflict was resolved or gone.
    occurrences: int
    #: Why an open conflict waits for a confirmed call (the group's strategy).
    note: Optional[str]

class _AutoResolutionDict(TypedDict):
    conflict_id: str
    applied: bool
    note: Optional[str]

class _GroupCheckDict(TypedDict):
    #: The plan as JSON (``Witness.plan`` gives it as a ``Plan``).
    plan: Dict[str, _Json]
    states: List[_SyncStateDict]
    conflicts: List[_ConflictRecordDict]

class _SystemHealthDict(TypedDict):
    system_id: str
    hostname: str
    status: Literal["online", "offline", "never_seen"]
    last_seen: Optional[str]
    seconds_since_last_seen: Optional[int]
    heartbeat_timeout_seconds: int

class _FleetHealthDict(TypedDict):
    timestamp: str
    total: int
    online: int
    offline: int
    never_seen: int
    systems: List[_SystemHealthDict]

# -- names ------------------------------------------------------------------------------------

@final
class SnapshotName:
    """A valid full snapshot name, ``pool/path@snapshot``."""

    def __new__(cls, name: str) -> Self: ...
    @property
    def pool(self) -> str: ...
    @property
    def dataset(self) -> str:
        """The path below the pool, ``""`` for the pool's root dataset."""
    @property
    def dataset_name(self) -> str:
        """``pool`` or ``pool/path``."""
    @property
    def snapshot(self) -> str:
        """The short name after ``@``."""
    @property
    def full_name(self) -> str: ...
    def __hash__(self) -> int: ...

def parse_snapshot_name(name: str) -> SnapshotName:
    """Parses ``pool/path@snapshot``; raises ``InvalidNameError`` naming the rule broken."""

def validate_dataset_name(name: str) -> str:
    """Returns a valid dataset name (``pool`` or ``pool/a/b``) or raises ``InvalidNameError``."""

def validate_pool_name(name: str) -> str:
    """Returns a valid pool name or raises ``InvalidNameError``."""

def validate_short_name(name: str) -> str:
    """Returns a valid short snapshot/bookmark name (after ``@``/``#``) or raises."""

# -- values -----------------------------------------------------------------------------------

@final
class System:
    """A registered ZFS host."""

    def __new__(
        cls,
        hostname: str,
        *,
        id: Optional[_UuidLike] = None,
        platform: Optional[str] = None,
        ssh_hostname: Optional[str] = None,
        ssh_user: Optional[str] = None,
        ssh_port: Optional[int] = None,
        capabilities: Optional[Mapping[str, bool]] = None,
        extra_metadata: Optional[Mapping[str, _Json]] = None,
        last_seen: Optional[_TimeLike] = None,
        created_at: Optional[_TimeLike] = None,
        updated_at: Optional[_TimeLike] = None,
    ) -> Self: ...
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...
    def to_dict(self) -> Dict[str, _Json]: ...
    @property
    def id(self) -> UUID: ...
    @property
    def hostname(self) -> str: ...
    @property
    def platform(self) -> Optional[str]: ...
    @property
    def ssh_hostname(self) -> Optional[str]: ...
    @property
    def ssh_user(self) -> Optional[str]: ...
    @property
    def ssh_port(self) -> int: ...
    @property
    def capabilities(self) -> Optional[Dict[str, bool]]: ...
    @property
    def extra_metadata(self) -> Dict[str, _Json]: ...
    @property
    def last_seen(self) -> Optional[datetime]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...

@final
class Snapshot:
    """A snapshot as a host reports it, or as a store holds it (with ``id``, ``system_id``
    and ``last_reported``)."""

    def __new__(
        cls,
        name: str,
        *,
        creation: _TimeLike,
        pool: Optional[str] = None,
        dataset: Optional[str] = None,
        guid: Optional[Union[int, str]] = None,
        createtxg: Optional[int] = None,
        used: Optional[int] = None,
        referenced: Optional[int] = None,
        extra_metadata: Optional[Mapping[str, _Json]] = None,
        userrefs: Optional[int] = None,
        holds: Optional[List[str]] = None,
        id: Optional[_UuidLike] = None,
        system_id: Optional[_UuidLike] = None,
        last_reported: Optional[_TimeLike] = None,
    ) -> Self: ...
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...
    def to_dict(self) -> Dict[str, _Json]: ...
    @property
    def name(self) -> str: ...
    @property
    def pool(self) -> str: ...
    @property
    def dataset(self) -> str: ...
    @property
    def dataset_name(self) -> str: ...
    @property
    def full_name(self) -> str: ...
    @property
    def guid(self) -> Optional[int]: ...
    @property
    def createtxg(self) -> Optional[int]: ...
    @property
    def creation(self) -> datetime: ...
    @property
    def used(self) -> int: ...
    @property
    def referenced(self) -> int: ...
    @property
    def extra_metadata(self) -> Dict[str, _Json]: ...
    @property
    def userrefs(self) -> Optional[int]:
        """How many holds the snapshot has; ``None``: not reported."""
    @property
    def holds(self) -> Optional[List[str]]:
        """Its hold tags; ``None``: the host cannot list them (zfs-fuse) or did not."""
    @property
    def id(self) -> Optional[UUID]: ...
    @property
    def system_id(self) -> Optional[UUID]: ...
    @property
    def last_reported(self) -> Optional[datetime]: ...

@final
class Member:
    """A member of a sync group and the dataset under which it keeps the group's datasets."""

    def __new__(
        cls, system_id: Union[_UuidLike, System], dataset_root: Optional[str] = None
    ) -> Self: ...
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...
    def to_dict(self) -> Dict[str, _Json]: ...
    @property
    def system_id(self) -> UUID: ...
    @property
    def dataset_root(self) -> Optional[str]: ...

@final
class Policy:
    """A group's replication policy."""

    def __new__(
        cls,
        *,
        snapshot_filter: Optional[str] = None,
        min_snapshot_age_seconds: Optional[int] = None,
        lag_threshold_seconds: Optional[int] = None,
        transfer: Optional[_TransferMode] = None,
        send_flags: Optional[Iterable[_SendFlag]] = None,
        conflict_strategy: Optional[_ConflictStrategy] = None,
        allow_destructive: Optional[bool] = None,
        mirror_deletions: Optional[bool] = None,
        overwrite_empty_datasets: Optional[bool] = None,
        receive_options: Optional[Mapping[str, Any]] = None,
        retention: Optional[Mapping[str, Any]] = None,
        prune: Optional[bool] = None,
        rpo_seconds: Optional[int] = None,
    ) -> Self: ...
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...
    def to_dict(self) -> Dict[str, _Json]: ...
    @property
    def snapshot_filter(self) -> Optional[str]: ...
    @property
    def min_snapshot_age_seconds(self) -> int: ...
    @property
    def lag_threshold_seconds(self) -> int: ...
    @property
    def transfer(self) -> _TransferMode: ...
    @property
    def send_flags(self) -> List[_SendFlag]: ...
    @property
    def conflict_strategy(self) -> _ConflictStrategy: ...
    @property
    def allow_destructive(self) -> bool: ...
    @property
    def mirror_deletions(self) -> bool: ...
    @property
    def overwrite_empty_datasets(self) -> bool: ...
    @property
    def receive_options(self) -> Dict[str, _Json]: ...
    @property
    def retention(self) -> Dict[str, _Json]: ...
    @property
    def prune(self) -> bool: ...
    @property
    def rpo_seconds(self) -> int: ...

_MemberLike = Union[Member, System, _UuidLike, Mapping[str, Any]]

@final
class SyncGroup:
    """A group of systems whose datasets should hold the same snapshots."""

    def __new__(
        cls,
        name: str,
        members: Optional[Iterable[_MemberLike]] = None,
        *,
        id: Optional[_UuidLike] = None,
        description: Optional[str] = None,
        enabled: Optional[bool] = None,
        directional: Optional[bool] = None,
        hub_system_id: Optional[Union[_UuidLike, System]] = None,
        sync_interval_seconds: Optional[int] = None,
        policy: Optional[Union[Policy, Mapping[str, Any]]] = None,
        created_at: Optional[_TimeLike] = None,
        updated_at: Optional[_TimeLike] = None,
    ) -> Self: ...
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self: ...
    def to_dict(self) -> Dict[str, _Json]: ...
    @property
    def id(self) -> UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> Optional[str]: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def directional(self) -> bool: ...
    @property
    def hub_system_id(self) -> Optional[UUID]: ...
    @property
    def sync_interval_seconds(self) -> int: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def members(self) -> List[Member]: ...
    @property
    def system_ids(self) -> List[UUID]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...

# -- inventories and plans -------------------------------------------------------------------

def parse_zfs_list(text: str) -> List[Snapshot]:
    """Parses ``zfs list -H -p -t snapshot -o name,guid,createtxg,creation,used,referenced``
    output (or the 4-field ``-o name,creation,used,referenced`` form). All or nothing: a bad
    line raises ``ValidationError`` with ``field == "line N"``."""

@final
class Inventory:
    """One member's inventory: its system, its snapshots and the resume tokens of its
    interrupted receives (full dataset name → token)."""

    def __new__(
        cls,
        system: System,
        snapshots: Iterable[Union[Snapshot, Mapping[str, Any]]],
        resume_tokens: Optional[Dict[str, str]] = None,
    ) -> Self: ...
    @property
    def system(self) -> System: ...
    @property
    def snapshots(self) -> List[Snapshot]: ...
    @property
    def resume_tokens(self) -> Dict[str, str]: ...

@final
class Transfer:
    """A transfer of one logical dataset from a source to a target, with its commands."""

    @property
    def dataset(self) -> str: ...
    @property
    def kind(self) -> Literal["incremental", "full", "resume"]: ...
    @property
    def mode(self) -> _TransferMode: ...
    @property
    def source_system_id(self) -> UUID: ...
    @property
    def source_dataset(self) -> str: ...
    @property
    def target_system_id(self) -> UUID: ...
    @property
    def target_dataset(self) -> str: ...
    @property
    def runner_system_id(self) -> UUID:
        """The system that runs ``commands`` (the source for push, the target for pull)."""
    @property
    def base(self) -> Optional[str]: ...
    @property
    def snapshots(self) -> List[str]: ...
    @property
    def estimated_bytes(self) -> int: ...
    @property
    def commands(self) -> List[str]:
        """The shell commands, in order: ``zfs create -p`` of a missing parent (see
        ``create_parent``), then one pipeline per send step."""
    @property
    def argv(self) -> List[List[List[str]]]:
        """``argv[i]`` is the list of stages (argv vectors) of ``commands[i]``."""
    @property
    def command_error(self) -> Optional[str]: ...
    @property
    def create_parent(self) -> Optional[str]:
        """The parent created first (``zfs create -p``) because it is not known to exist."""
    @property
    def overwrite_empty(self) -> bool:
        """The full stream overwrites an existing empty target dataset (``receive -F``)."""
    def to_dict(self) -> Dict[str, _Json]: ...

@final
class Conflict:
    """A conflict between two members' histories of a dataset."""

    @property
    def dataset(self) -> str: ...
    @property
    def system_a(self) -> UUID: ...
    @property
    def system_b(self) -> UUID: ...
    @property
    def kind(self) -> Literal["diverged", "orphaned", "missing"]: ...
    @property
    def reason(self) -> str: ...
    @property
    def details(self) -> _Json: ...
    def to_dict(self) -> Dict[str, _Json]: ...

@final
class Gap:
    """Snapshots a target lacks that are older than its newest common snapshot."""

    @property
    def dataset(self) -> str: ...
    @property
    def target_system_id(self) -> UUID: ...
    @property
    def snapshots(self) -> List[str]: ...
    def to_dict(self) -> Dict[str, _Json]: ...

@final
class Plan:
    """The plan of a group."""

    @property
    def group_id(self) -> UUID: ...
    @property
    def now(self) -> datetime: ...
    @property
    def transfers(self) -> List[Transfer]: ...
    @property
    def conflicts(self) -> List[Conflict]: ...
    @property
    def gaps(self) -> List[Gap]: ...
    @property
    def diagnostics(self) -> List[Dict[str, _Json]]: ...
    def outcomes(self) -> List[Dict[str, _Json]]: ...
    def to_dict(self) -> Dict[str, _Json]: ...

_InventoryLike = Union[Inventory, Tuple[System, Iterable[Union[Snapshot, Mapping[str, Any]]]]]

def plan(
    group: SyncGroup, inventories: Iterable[_InventoryLike], now: Optional[_TimeLike] = None
) -> Plan:
    """Plans a group from its members' inventories; ``now`` defaults to the current time."""

def resolve(
    group: SyncGroup,
    inventories: Iterable[_InventoryLike],
    dataset: str,
    strategy: _ConflictStrategy,
    winner: Optional[Union[System, _UuidLike]] = None,
    now: Optional[_TimeLike] = None,
    *,
    override_hub: bool = False,
) -> Dict[str, _Json]:
    """Plans the resolution of one logical dataset's conflicts: ``{"dataset", "strategy",
    "winner_system_id", "destructive", "refused", "losers"}``; each loser lists its
    ``rollback_to``, exactly the snapshots it ``destroys``, the writes it discards
    (``discards_writes_since``, ``discards``), its ``rename_to`` (``keep_both``) and its
    ``commands``. ``ConflictError`` when the hub would lose without ``override_hub`` or the
    only copy of a history would be destroyed."""

# -- stores and the witness ------------------------------------------------------------------

@final
class SqliteStore:
    """A SQLite database file (created and migrated when needed), or ``":memory:"``."""

    def __new__(cls, path: Union[str, "os.PathLike[str]"], *, timeout_seconds: float = 30.0) -> Self: ...
    @property
    def path(self) -> str: ...
    def ping(self) -> None: ...

@final
class PostgresStore:
    """A PostgreSQL database (``postgres://user@host/db``); the schema is migrated when needed."""

    def __new__(
        cls,
        url: str,
        *,
        schema: Optional[str] = None,
        max_connections: int = 8,
        timeout_seconds: float = 30.0,
    ) -> Self: ...
    def ping(self) -> None: ...

#: A system: a ``System`` or its id; ``rotate_key``, ``get_system``, ``delete_system``,
#: ``heartbeat``, ``replace_inventory``, ``set_resume_token``, ``remove_member`` and
#: ``instructions`` (the operations whose HTTP path names ``{system_id}``) also take its
#: hostname (a string that is not a UUID).
_SystemRef = Union[System, _UuidLike]
_GroupRef = Union[SyncGroup, _UuidLike]
_SnapshotLike = Union[Snapshot, Mapping[str, Any]]

@final
class Witness:
    """The witness's services over a store. Every method blocks (the GIL released) until
    the store has answered."""

    def __new__(
        cls,
        store: Union[SqliteStore, PostgresStore],
        *,
        job_lease_seconds: int = 3600,
        inventory_cache_bytes: Optional[int] = None,
        inventory_cache_records: Optional[int] = None,
        state_touch_seconds: Optional[int] = None,
        retry_base_seconds: Optional[int] = None,
        retry_max_seconds: Optional[int] = None,
    ) -> Self: ...
    def register_system(self, system: System, *, now: Optional[_TimeLike] = None) -> str:
        """Registers ``system``; returns its API key (shown this once)."""
    def rotate_key(self, system_id: _SystemRef, *, now: Optional[_TimeLike] = None) -> str: ...
    def authenticate(self, api_key: str) -> Optional[UUID]:
        """The system a key belongs to, ``None`` for an admin key; ``AuthError`` otherwise."""
    def get_system(self, system_id: _SystemRef) -> System: ...
    def list_systems(self) -> List[System]: ...
    def delete_system(self, system_id: _SystemRef) -> None: ...
    def heartbeat(
        self,
        system_id: _SystemRef,
        metadata: Optional[Mapping[str, _Json]] = None,
        *,
        now: Optional[_TimeLike] = None,
    ) -> System: ...
    def report_snapshots(
        self,
        system_id: _SystemRef,
        snapshots: Iterable[_SnapshotLike],
        *,
        resume_tokens: Optional[Mapping[str, Optional[str]]] = None,
        now: Optional[_TimeLike] = None,
    ) -> List[Snapshot]:
        """``resume_tokens``: full dataset name → token (``None`` clears)."""
    def replace_inventory(
        self,
        system_id: _SystemRef,
        snapshots: Iterable[_SnapshotLike],
        *,
        datasets: Optional[List[str]] = None,
        resume_tokens: Optional[Mapping[str, Optional[str]]] = None,
        now: Optional[_TimeLike] = None,
    ) -> Tuple[int, int]:
        """Returns ``(upserted, deleted)``. Stored resume tokens within the scope that are
        not in ``resume_tokens`` are cleared."""
    def replace_inventory_text(
        self,
        system_id: _SystemRef,
        text: str,
        *,
        datasets: Optional[List[str]] = None,
        now: Optional[_TimeLike] = None,
    ) -> Tuple[int, int, int]:
        """The raw text of ``zfs list -H -p -t filesystem,volume,snapshot -o
        name,type,guid,createtxg,creation,used,referenced,receive_resume_token`` as the complete
        inventory (snapshots, datasets, resume tokens). Returns ``(upserted, deleted,
        datasets)``; a bad line raises ``ValidationError`` (``field`` ``"line N"``)."""
    def reported_datasets(self, system_id: _SystemRef) -> List[Dict[str, _Json]]:
        """The filesystems and volumes a system reported, sorted by name."""
    def snapshots(
        self,
        *,
        system_id: Optional[_SystemRef] = None,
        pool: Optional[str] = None,
        dataset: Optional[str] = None,
        name: Optional[str] = None,
        skip: int = 0,
        limit: int = 100,
    ) -> List[Snapshot]: ...
    def set_resume_token(
        self, system_id: _SystemRef, dataset: str, token: Optional[str], *, now: Optional[_TimeLike] = None
    ) -> None: ...
    def create_group(self, group: SyncGroup) -> SyncGroup: ...
    def update_group(self, group: SyncGroup, *, now: Optional[_TimeLike] = None) -> SyncGroup: ...
    def get_group(self, group_id: _GroupRef) -> SyncGroup: ...
    def list_groups(self) -> List[SyncGroup]: ...
    def delete_group(self, group_id: _GroupRef) -> None: ...
    def add_member(self, group_id: _GroupRef, member: Union[Member, _SystemRef]) -> None: ...
    def remove_member(self, group_id: _GroupRef, system_id: _SystemRef) -> None: ...
    def plan(self, group_id: _GroupRef, *, now: Optional[_TimeLike] = None) -> Plan: ...
    def check_group(self, group_id: _GroupRef, *, now: Optional[_TimeLike] = None) -> _GroupCheckDict: ...
    def prune_preview(self, group_id: _GroupRef, *, now: Optional[_TimeLike] = None) -> Dict[str, _Json]: ...
    def instructions(
        self,
        system_id: _SystemRef,
        group_id: Optional[_GroupRef] = None,
        *,
        dry_run: bool = False,
        now: Optional[_TimeLike] = None,
    ) -> _InstructionsDict: ...
    def jobs(
        self,
        *,
        group_id: Optional[_GroupRef] = None,
        system_id: Optional[_SystemRef] = None,
        status: Optional[Literal["pending", "leased", "succeeded", "failed", "expired", "cancelled"]] = None,
        conflict_id: Optional[_UuidLike] = None,
        dataset: Optional[str] = None,
    ) -> List[_JobDict]: ...
    def job(self, job_id: _UuidLike) -> _JobDict: ...
    def report_progress(
        self,
        job_id: _UuidLike,
        bytes: int,
        *,
        resume_token: Optional[str] = None,
        now: Optional[_TimeLike] = None,
    ) -> _JobDict: ...
    def cancel_job(self, job_id: _UuidLike, *, now: Optional[_TimeLike] = None) -> _JobDict: ...
    def report_job(
        self,
        job_id: _UuidLike,
        status: Literal["succeeded", "failed"],
        error: Optional[str] = None,
        bytes: Optional[int] = None,
        *,
        resume_token: Optional[str] = None,
        now: Optional[_TimeLike] = None,
    ) -> _JobDict: ...
    def retry_state(self, state_id: _UuidLike, *, now: Optional[_TimeLike] = None) -> _SyncStateDict: ...
    def expire_leases(self, *, now: Optional[_TimeLike] = None) -> List[_JobDict]: ...
    def edges(
        self,
        *,
        group_id: Optional[_GroupRef] = None,
        system_id: Optional[_SystemRef] = None,
        status: Optional[_EdgeStatus] = None,
        now: Optional[_TimeLike] = None,
    ) -> List[_EdgeDict]: ...
    def events(
        self,
        *,
        since: Optional[int] = None,
        types: Optional[List[_EventType]] = None,
        group_id: Optional[_GroupRef] = None,
        limit: int = 100,
    ) -> List[_EventDict]: ...
    def observe_fleet(
        self, *, now: Optional[_TimeLike] = None, heartbeat_timeout_seconds: int = 300
    ) -> List[_EventDict]: ...
    def create_webhook(
        self, url: str, secret: str, events: List[str], *, now: Optional[_TimeLike] = None
    ) -> _WebhookDict: ...
    def webhooks(self) -> List[_WebhookDict]: ...
    def delete_webhook(self, webhook_id: _UuidLike) -> None: ...
    def webhook_deliveries(
        self, webhook_id: _UuidLike, *, before: Optional[int] = None, limit: int = 100
    ) -> List[_DeliveryDict]: ...
    def conflicts(self, group_id: _GroupRef, *, include_closed: bool = False) -> List[_ConflictRecordDict]: ...
    def resolve_conflict(
        self,
        conflict_id: _UuidLike,
        strategy: _ConflictStrategy,
        winner_system_id: Optional[_SystemRef] = None,
        *,
        override_hub: bool = False,
        dry_run: bool = False,
        confirm: Optional[str] = None,
        now: Optional[_TimeLike] = None,
    ) -> Dict[str, _Json]:
        """The plan (``losers`` with ``destroys``, ``discards_writes_since``, ``discards``,
        ``rename_to``, ``commands``; ``destructive``, ``digest``, ``refused``, ``applied``).
        ``dry_run`` previews; a destructive plan is applied only with ``confirm`` equal to
        its digest; ``override_hub`` lets the hub lose. ``ConflictError`` otherwise. An
        applied plan's steps become jobs, handed out in order by ``instructions``; the
        conflict is ``resolving`` until they succeeded and the inventories agree."""
    def apply_conflict_strategy(
        self, group_id: _GroupRef, *, now: Optional[_TimeLike] = None
    ) -> List[_AutoResolutionDict]:
        """Applies the group's ``conflict_strategy`` to its open conflicts whose plan destroys
        nothing (as the server's scheduler does); the others get a ``note``."""
    def fleet_health(self, *, timeout_seconds: int = 300, now: Optional[_TimeLike] = None) -> _FleetHealthDict: ...
