"""A small HTTP client for host scripts, in pure Python (standard library only).

It speaks the zfs-sync HTTP API (``/api/v1``) with a system's API key: report the host's
snapshots, send heartbeats, fetch the transfers to run and report their results. Errors are
the same exception classes the native bindings raise (:mod:`zfs_sync.errors`)::

    from zfs_sync.client import Client

    client = Client("http://witness:8000", api_key, system_id=my_id)
    client.heartbeat()
    client.report_inventory(zfs_sync.parse_zfs_list(text))
    for entry in client.instructions()["datasets"]:
        ...  # run entry["argv"], then client.report_job(entry["job_id"], "succeeded")
"""

import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from uuid import UUID

from zfs_sync.errors import (
    AlreadyExistsError,
    AuthError,
    ConflictError,
    MissingReferenceError,
    NotFoundError,
    StorageError,
    TransportError,
    ValidationError,
    ZfsSyncError,
)

__all__ = ["Client", "BATCH_SIZE"]

#: Snapshots per ``POST /snapshots/batch`` request (the server's documented chunk size).
BATCH_SIZE = 1000

JsonDict = Dict[str, Any]
SnapshotLike = Union[Mapping[str, Any], Any]


def _snapshot_item(snapshot: SnapshotLike, index: int) -> JsonDict:
    """A snapshot report item (the API's field names) from a ``Snapshot`` or a dict."""
    if isinstance(snapshot, Mapping):
        item = dict(snapshot)
    elif hasattr(snapshot, "to_dict"):
        item = snapshot.to_dict()
    else:
        raise ValidationError(
            f"snapshots[{index}]: must be a Snapshot or a dict",
            field=f"snapshots[{index}]",
            reason="must be a Snapshot or a dict",
        )
    # The stored-only fields of a Snapshot are not part of a report.
    for key in ("id", "last_reported"):
        item.pop(key, None)
    if item.get("system_id") is None:
        item.pop("system_id", None)
    if "creation" in item:
        creation = item.pop("creation")
        item.setdefault("timestamp", creation)
    timestamp = item.get("timestamp")
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise ValidationError(
                f"snapshots[{index}].timestamp: must be timezone-aware",
                field=f"snapshots[{index}].timestamp",
                reason="must be timezone-aware",
            )
        item["timestamp"] = timestamp.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    guid = item.get("guid")
    if isinstance(guid, int) and not isinstance(guid, bool):
        # As a string: JSON readers that use doubles cannot hold every 64-bit GUID.
        item["guid"] = str(guid)
    return item


def _filters(**values: Any) -> Dict[str, Any]:
    """The query of a listing: each filter that is set, as a string."""
    return {k: str(v) for k, v in values.items() if v is not None}


class Client:
    """A zfs-sync server, seen by one system (or by an admin).

    ``base_url`` is the server (``http://host:8000``) or its API root
    (``http://host:8000/api/v1``). ``system_id`` is needed by the per-system calls
    (``heartbeat``, ``instructions``, ``replace_inventory``): the system's id, or its
    hostname (the server resolves it; it is URL-quoted in the paths).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        system_id: Optional[Union[str, UUID]] = None,
        timeout: float = 30.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValidationError(
                f"base_url: must be an http:// or https:// URL, got {base_url!r}",
                field="base_url",
                reason="must be an http:// or https:// URL",
            )
        root = base_url.rstrip("/")
        if not root.endswith("/api/v1"):
            root += "/api/v1"
        self.base_url = root
        self._api_key = api_key
        self.system_id: Optional[str] = _system_ref(system_id) if system_id is not None else None
        self.timeout = timeout

    def __repr__(self) -> str:
        # Never the key.
        return f"Client({self.base_url!r}, system_id={self.system_id!r})"

    # -- transport ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Optional[Mapping[str, Any]] = None,
        *,
        text: Optional[Tuple[str, str]] = None,
    ) -> Any:
        """Any API call: ``path`` below ``/api/v1`` (``"/sync-groups"``), ``body`` sent as JSON
        (or ``text``: ``(body, content type)`` sent as is), ``query`` as URL parameters (``None``
        values left out). Returns the decoded JSON answer (``None`` for an empty one); errors
        raise the exceptions of :mod:`zfs_sync.errors`."""
        url = self.base_url + path
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        data = None
        headers = {"Accept": "application/json", "X-API-Key": self._api_key}
        if text is not None:
            data = text[0].encode("utf-8")
            headers["Content-Type"] = text[1]
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as err:
            with err:
                raise _error_from_response(err.code, err.read()) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise TransportError(f"{method} {url}: {reason}") from err
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError as err:
            raise TransportError(f"{method} {url}: the answer is not JSON: {err}") from err

    def _system(self) -> str:
        """The system's id or hostname, quoted for a URL path."""
        if self.system_id is None:
            raise ValidationError(
                "system_id: this call acts for one system; pass Client(..., system_id=...)",
                field="system_id",
                reason="is required for this call",
            )
        return urllib.parse.quote(self.system_id, safe="")

    # -- calls -------------------------------------------------------------------------------

    def health(self) -> JsonDict:
        """``GET /health``: the server's status, service name and version."""
        result: JsonDict = self.request("GET", "/health")
        return result

    def report_inventory(
        self, snapshots: Iterable[SnapshotLike], *, batch_size: int = BATCH_SIZE
    ) -> List[JsonDict]:
        """Reports snapshots (``Snapshot`` objects or report dicts) in chunks of ``batch_size``
        to ``POST /snapshots/batch``. The server upserts and never deletes, so chunks cannot
        erase each other. Returns the stored items, in order.

        Every item is checked before the first request, so a bad snapshot sends nothing.
        """
        if batch_size < 1:
            raise ValidationError(
                "batch_size: must be at least 1", field="batch_size", reason="must be at least 1"
            )
        items = [_snapshot_item(s, i) for i, s in enumerate(snapshots)]
        stored: List[JsonDict] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            try:
                result = self.request("POST", "/snapshots/batch", chunk)
            except ValidationError as err:
                # The server names the index within the chunk; name it within the whole report.
                raise _shift_index(err, start) from None
            if isinstance(result, list):
                stored.extend(result)
            elif isinstance(result, dict) and isinstance(result.get("snapshots"), list):
                stored.extend(result["snapshots"])
        return stored

    def replace_inventory(
        self, snapshots: Iterable[SnapshotLike], *, datasets: Optional[Sequence[str]] = None
    ) -> Any:
        """``PUT /systems/{id}/snapshots``: the system's complete inventory (optionally only
        for ``datasets``); snapshots absent from it are removed from the witness."""
        items = [_snapshot_item(s, i) for i, s in enumerate(snapshots)]
        query = {"dataset": ",".join(datasets)} if datasets else None
        return self.request("PUT", f"/systems/{self._system()}/snapshots", items, query)

    def replace_inventory_text(self, text: str, *, datasets: Optional[Sequence[str]] = None) -> Any:
        """``PUT /systems/{id}/snapshots`` with ``Content-Type: text/tab-separated-values``:
        the raw output of ``zfs list -H -p -t filesystem,volume,snapshot -o
        name,type,guid,createtxg,creation,used,referenced,receive_resume_token`` as the
        system's complete inventory (optionally only for ``datasets``). A bad line raises
        ``ValidationError`` naming it (``field`` is ``"line N"``)."""
        query = {"dataset": ",".join(datasets)} if datasets else None
        return self.request(
            "PUT",
            f"/systems/{self._system()}/snapshots",
            query=query,
            text=(text, "text/tab-separated-values"),
        )

    def heartbeat(self, metadata: Optional[Mapping[str, Any]] = None) -> JsonDict:
        """``POST /systems/{id}/heartbeat``; ``metadata`` is merged into the system's."""
        result: JsonDict = self.request(
            "POST", f"/systems/{self._system()}/heartbeat", dict(metadata or {})
        )
        return result

    def instructions(
        self,
        sync_group_id: Optional[Union[str, UUID]] = None,
        *,
        include_diagnostics: bool = False,
        dry_run: bool = False,
    ) -> JsonDict:
        """``GET /sync/instructions/{id}``: the transfers this system should run now, each a
        job leased to it (asking again returns the jobs it holds that have not started, with
        the same ids). With ``dry_run`` (or an admin key) nothing is taken: ``job_id`` is
        ``None``."""
        query: Dict[str, Any] = {}
        if sync_group_id is not None:
            query["sync_group_id"] = str(sync_group_id)
        if include_diagnostics:
            query["include_diagnostics"] = "true"
        if dry_run:
            query["dry_run"] = "true"
        result: JsonDict = self.request(
            "GET", f"/sync/instructions/{self._system()}", query=query
        )
        return result

    def report_job(
        self,
        job_id: Union[str, UUID],
        status: str,
        error: Optional[str] = None,
        bytes: Optional[int] = None,
        *,
        resume_token: Optional[str] = None,
    ) -> JsonDict:
        """``POST /sync/jobs/{job_id}/result``: ``status`` is ``"succeeded"`` or ``"failed"``."""
        if status not in ("succeeded", "failed"):
            raise ValidationError(
                f"status: is {status!r}; expected succeeded or failed",
                field="status",
                reason="expected succeeded or failed",
            )
        if bytes is not None:
            _check_bytes(bytes)
        body: JsonDict = {"status": status}
        if error is not None:
            body["error"] = error
        if bytes is not None:
            body["bytes"] = bytes
        if resume_token is not None:
            body["resume_token"] = resume_token
        job = str(UUID(str(job_id)))
        result: JsonDict = self.request("POST", f"/sync/jobs/{job}/result", body)
        return result

    def retry_state(self, state_id: Union[str, UUID]) -> JsonDict:
        """``POST /sync/states/{state_id}/retry`` (admin key): clears a failed transfer's
        backoff so the next instructions of its runner include it; returns the sync state
        (``attempts`` kept, ``next_attempt_at`` null)."""
        state = str(UUID(str(state_id)))
        result: JsonDict = self.request("POST", f"/sync/states/{state}/retry")
        return result

    def prune_preview(self, group_id: Union[str, UUID]) -> JsonDict:
        """``GET /sync/groups/{group_id}/prune-preview`` (admin or member key): per dataset and
        host, every snapshot with ``action`` (``keep`` | ``destroy``) and ``reason``; per edge
        the base that protects it, the pending count and flags. Writes nothing."""
        group = str(UUID(str(group_id)))
        result: JsonDict = self.request("GET", f"/sync/groups/{group}/prune-preview")
        return result

    def resolve_conflict(
        self,
        conflict_id: Union[str, UUID],
        strategy: str,
        winner_system_id: Optional[Union[str, UUID]] = None,
        *,
        override_hub: bool = False,
        dry_run: bool = False,
        confirm: Optional[str] = None,
    ) -> JsonDict:
        """``POST /conflicts/{conflict_id}/resolve`` (admin key): the plan, with its
        ``digest``. ``dry_run=True`` previews it; a destructive plan is applied only with
        ``confirm`` equal to the digest of the plan now (else ``ConflictError``, as when the
        hub would lose without ``override_hub`` or the only copy of a history would go)."""
        body: JsonDict = {"strategy": strategy}
        if winner_system_id is not None:
            body["winner_system_id"] = str(winner_system_id)
        if override_hub:
            body["override_hub"] = True
        if dry_run:
            body["dry_run"] = True
        if confirm is not None:
            body["confirm"] = confirm
        result: JsonDict = self.request("POST", f"/conflicts/{UUID(str(conflict_id))}/resolve", body)
        return result

    def jobs(
        self,
        *,
        group_id: Optional[Union[str, UUID]] = None,
        system_id: Optional[Union[str, UUID]] = None,
        status: Optional[str] = None,
        conflict_id: Optional[Union[str, UUID]] = None,
        dataset: Optional[str] = None,
    ) -> List[JsonDict]:
        """``GET /sync/jobs``: jobs, oldest first (a system key sees the jobs it runs);
        ``conflict_id`` keeps a resolution's steps, ``dataset`` one logical dataset's jobs."""
        query = _filters(group_id=group_id, system_id=system_id, status=status)
        if conflict_id is not None:
            query["conflict_id"] = str(UUID(str(conflict_id)))
        if dataset is not None:
            query["dataset"] = dataset
        result: List[JsonDict] = self.request("GET", "/sync/jobs", query=query)
        return result

    def edges(
        self,
        *,
        group_id: Optional[Union[str, UUID]] = None,
        system_id: Optional[Union[str, UUID]] = None,
        status: Optional[str] = None,
    ) -> List[JsonDict]:
        """``GET /sync/edges``: one row per (group, dataset, source, target), worst first,
        with its lag, recovery point age, RPO, ``status`` and ``blocked_by`` (a system key
        sees the edges of its groups)."""
        query = _filters(group_id=group_id, system_id=system_id, status=status)
        result: List[JsonDict] = self.request("GET", "/sync/edges", query=query)
        return result

    def events(
        self,
        *,
        since: Optional[int] = None,
        types: Optional[List[str]] = None,
        group_id: Optional[Union[str, UUID]] = None,
        limit: Optional[int] = None,
    ) -> List[JsonDict]:
        """``GET /events`` (admin): the event log after event id ``since``, oldest first;
        page on with ``since`` = the last ``id`` received."""
        query = _filters(
            since=since,
            type=",".join(types) if types else None,
            group_id=group_id,
            limit=limit,
        )
        result: List[JsonDict] = self.request("GET", "/events", query=query)
        return result

    def create_webhook(self, url: str, secret: str, events: Sequence[str]) -> JsonDict:
        """``POST /webhooks`` (admin): matching events stored from now on are POSTed to
        ``url`` (``["*"]``: every event), signed with ``secret`` (16 to 512 characters, never
        shown again): ``X-Zfs-Sync-Signature: sha256=<hex HMAC-SHA256 of
        "<X-Zfs-Sync-Timestamp>.<body>">``. ``ValidationError`` names ``url``, ``secret``,
        ``events`` or ``events[i]``."""
        body = {"url": url, "secret": secret, "events": list(events)}
        result: JsonDict = self.request("POST", "/webhooks", body)
        return result

    def webhooks(self) -> List[JsonDict]:
        """``GET /webhooks`` (admin): every webhook, oldest first, never its secret."""
        result: List[JsonDict] = self.request("GET", "/webhooks")
        return result

    def webhook(self, webhook_id: Union[str, UUID]) -> JsonDict:
        """``GET /webhooks/{webhook_id}`` (admin). ``NotFoundError`` for an unknown id."""
        result: JsonDict = self.request("GET", f"/webhooks/{UUID(str(webhook_id))}")
        return result

    def delete_webhook(self, webhook_id: Union[str, UUID]) -> None:
        """``DELETE /webhooks/{webhook_id}`` (admin), with its delivery log."""
        self.request("DELETE", f"/webhooks/{UUID(str(webhook_id))}")

    def webhook_deliveries(
        self,
        webhook_id: Union[str, UUID],
        *,
        before: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> List[JsonDict]:
        """``GET /webhooks/{webhook_id}/deliveries`` (admin): one entry per attempt, newest
        first (``event_id``, ``attempt``, ``status_code``, ``error``, ``outcome``,
        ``next_retry_at``); page back with ``before`` = the smallest ``id`` seen."""
        query = _filters(before=before, limit=limit)
        result: List[JsonDict] = self.request(
            "GET", f"/webhooks/{UUID(str(webhook_id))}/deliveries", query=query
        )
        return result

    def job(self, job_id: Union[str, UUID]) -> JsonDict:
        """``GET /sync/jobs/{job_id}``."""
        result: JsonDict = self.request("GET", f"/sync/jobs/{UUID(str(job_id))}")
        return result

    def report_progress(
        self,
        job_id: Union[str, UUID],
        bytes: int,
        *,
        resume_token: Optional[str] = None,
    ) -> JsonDict:
        """``POST /sync/jobs/{job_id}/progress``: bytes sent so far (and the target's resume
        token); extends the job's lease. ``ConflictError`` when the job is not leased."""
        _check_bytes(bytes)
        body: JsonDict = {"bytes": bytes}
        if resume_token is not None:
            body["resume_token"] = resume_token
        result: JsonDict = self.request("POST", f"/sync/jobs/{UUID(str(job_id))}/progress", body)
        return result

    def cancel_job(self, job_id: Union[str, UUID]) -> JsonDict:
        """``POST /sync/jobs/{job_id}/cancel``: the transfer is planned again at the next
        fetch. ``ConflictError`` when the job already finished."""
        result: JsonDict = self.request("POST", f"/sync/jobs/{UUID(str(job_id))}/cancel")
        return result

    def admin_keys(self) -> List[JsonDict]:
        """``GET /admin/keys`` (admin key): every admin key, oldest first, as ``id``, ``name``,
        ``source`` (``configured`` or ``created``) and ``created_at``; never a key."""
        result: List[JsonDict] = self.request("GET", "/admin/keys")
        return result

    def create_admin_key(self, name: str) -> JsonDict:
        """``POST /admin/keys`` (admin key): a new admin key named ``name``; the answer's
        ``api_key`` is shown only this once."""
        result: JsonDict = self.request("POST", "/admin/keys", {"name": name})
        return result

    def revoke_admin_key(self, key_id: Union[str, UUID]) -> None:
        """``DELETE /admin/keys/{key_id}`` (admin key): the key fails at once.
        ``ConflictError`` for the last admin key, ``NotFoundError`` for an unknown id."""
        self.request("DELETE", f"/admin/keys/{UUID(str(key_id))}")

    @classmethod
    def register(
        cls,
        base_url: str,
        admin_key: str,
        hostname: str,
        *,
        timeout: float = 30.0,
        **fields: Any,
    ) -> "Client":
        """Registers a system with an admin key (``POST /systems``) and returns a client
        acting as that system, with its new key (``client.api_key``, shown only this once)."""
        admin = cls(base_url, admin_key, timeout=timeout)
        created = admin.request("POST", "/systems", {"hostname": hostname, **fields})
        if not isinstance(created, dict) or "api_key" not in created or "id" not in created:
            raise TransportError("POST /systems: the answer has no id and api_key")
        return cls(base_url, created["api_key"], system_id=created["id"], timeout=timeout)

    @property
    def api_key(self) -> str:
        """The key this client sends."""
        return self._api_key


def _system_ref(system_id: Union[str, UUID]) -> str:
    """A system id in its canonical form, or a hostname as given (trimmed)."""
    if isinstance(system_id, UUID):
        return str(system_id)
    text = str(system_id).strip()
    if not text:
        raise ValidationError(
            "system_id: must be a system id (UUID) or hostname",
            field="system_id",
            reason="must be a system id (UUID) or hostname",
        )
    try:
        return str(UUID(text))
    except ValueError:
        return text


def _check_bytes(bytes: Any) -> None:
    """A byte count must be a non-negative integer (``ValidationError`` naming ``bytes``)."""
    if isinstance(bytes, bool) or not isinstance(bytes, int) or bytes < 0:
        raise ValidationError(
            "bytes: must be a non-negative integer",
            field="bytes",
            reason="must be a non-negative integer",
        )


def _error_from_response(status: int, payload: bytes) -> ZfsSyncError:
    """The exception for an HTTP error answer (``{"detail", "status_code", "field"?}``)."""
    detail: str = ""
    field: Optional[str] = None
    code: Optional[str] = None
    try:
        body = json.loads(payload) if payload else {}
    except ValueError:
        body = {}
    if isinstance(body, dict):
        raw = body.get("detail")
        detail = raw if isinstance(raw, str) else (json.dumps(raw) if raw is not None else "")
        field = body.get("field") if isinstance(body.get("field"), str) else None
        code = body.get("code") if isinstance(body.get("code"), str) else None
    if not detail:
        detail = payload.decode("utf-8", "replace").strip() or f"HTTP {status}"
    if status == 422 and code == "missing_reference":
        return MissingReferenceError(detail, field=field, reason=detail, status_code=status)
    if status in (400, 413, 422):
        return ValidationError(detail, field=field, reason=detail, status_code=status)
    if status in (401, 403):
        return AuthError(detail, status_code=status)
    if status == 404:
        return NotFoundError(detail, status_code=status)
    if status == 409:
        if code == "already_exists":
            return AlreadyExistsError(detail, status_code=status)
        return ConflictError(detail, status_code=status)
    if status == 503:
        return StorageError(detail, status_code=status)
    return ZfsSyncError(detail, status_code=status)


_INDEX = re.compile(r"^(\w*)\[(\d+)\]")


def _shift_index(err: ValidationError, offset: int) -> ValidationError:
    """``snapshots[3].name`` in the chunk starting at ``offset`` becomes
    ``snapshots[offset+3].name`` in the whole report (in the field and in the message)."""
    if not offset:
        return err

    def shift(text: Optional[str]) -> Optional[str]:
        if not text:
            return text
        return _INDEX.sub(lambda m: f"{m.group(1)}[{int(m.group(2)) + offset}]", text, count=1)

    message = shift(err.message) or err.message
    return ValidationError(message, field=shift(err.field), reason=err.reason, status_code=err.status_code)
