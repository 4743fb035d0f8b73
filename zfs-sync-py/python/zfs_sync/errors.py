"""The exceptions of zfs-sync.

One hierarchy for the native bindings and for the HTTP client: code that handles a
``NotFoundError`` works the same whether it talked to a local store or to a server.
"""

from typing import Optional

__all__ = [
    "ZfsSyncError",
    "ValidationError",
    "InvalidNameError",
    "NotFoundError",
    "MissingReferenceError",
    "ConflictError",
    "AlreadyExistsError",
    "AuthError",
    "StorageError",
    "TransportError",
]


class ZfsSyncError(Exception):
    """Base class of every zfs-sync error.

    ``status_code`` is the HTTP status when the error came from a server, else ``None``.
    """

    def __init__(self, message: str, *, status_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class ValidationError(ZfsSyncError, ValueError):
    """Input broke a rule. ``field`` names the input (``snapshots[3].name``), ``reason`` the rule."""

    def __init__(
        self,
        message: str,
        *,
        field: Optional[str] = None,
        reason: Optional[str] = None,
        status_code: Optional[int] = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.field = field
        self.reason = reason


class InvalidNameError(ValidationError):
    """A ZFS pool, dataset, snapshot or bookmark name broke the OpenZFS naming rules."""


class NotFoundError(ZfsSyncError, LookupError):
    """The system, group, snapshot, conflict or job does not exist."""


class MissingReferenceError(ValidationError, NotFoundError):
    """The input names a system that does not exist (a group member, a new member, a conflict's
    winner): a ``ValidationError`` whose ``field`` names the reference (HTTP 422), and a
    ``NotFoundError``."""


class ConflictError(ZfsSyncError):
    """The request is valid but the current state forbids it (a finished job, a refused plan)."""


class AlreadyExistsError(ConflictError):
    """A unique key (hostname, group name) is taken."""


class AuthError(ZfsSyncError):
    """Missing or unknown API key (401), or a key that may not act on the resource (403)."""


class StorageError(ZfsSyncError):
    """The storage backend failed (database unreachable, disk full, ...)."""


class TransportError(ZfsSyncError):
    """The HTTP client could not reach the server or could not read its answer."""
