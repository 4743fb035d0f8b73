"""One table of cases run against both surfaces, the native ``Witness`` and the HTTP server
(through ``zfs_sync.client``): each case must end in the same exception class with the same
``field`` on both, because both surfaces call the same service functions of the core.
Follow-up behaviour is checked the same way: after a report, the instructions see it."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from zfs_sync import (
    AlreadyExistsError,
    AuthError,
    ConflictError,
    MissingReferenceError,
    NotFoundError,
    Policy,
    SqliteStore,
    SyncGroup,
    System,
    ValidationError,
    Witness,
    ZfsSyncError,
)
from zfs_sync.client import Client

from conftest import snap
from test_client import Server, server  # noqa: F401  (the fixture that starts zfs-sync-server)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
# A system id that names nothing (it sorts last, so its index is the same in the native
# group's member list, which is kept in id order, as in the request).
GHOST = str(uuid.UUID(int=(1 << 128) - 1))
WEBHOOK_SECRET = "0123456789abcdef-surfaces"

# Most specific first: the class a case is reported as.
CLASSES = [MissingReferenceError, AlreadyExistsError, ValidationError, NotFoundError, ConflictError, AuthError]


def outcome(action: Callable[[], Any]) -> Tuple[str, Optional[str]]:
    """``("ok", None)``, or the exception's class (of ``CLASSES``) and ``field``."""
    try:
        action()
    except ZfsSyncError as err:
        cls = next(c for c in CLASSES if isinstance(err, c))
        return cls.__name__, getattr(err, "field", None)
    return "ok", None


@dataclass
class World:
    """Two registered systems ``a`` and ``b`` (ids as strings), the directional group ``g``
    with hub ``a``, and a surface-specific way to run each case."""

    a: str
    b: str
    g: str
    run: Dict[str, Callable[[], Any]]


def native_world() -> World:
    w = Witness(SqliteStore(":memory:"))
    a, b = System("hub-a"), System("spoke-b")
    for s in (a, b):
        w.register_system(s)
    g = w.create_group(SyncGroup("g", [a, b], directional=True, hub_system_id=a))
    ida, idb, idg = str(a.id), str(b.id), str(g.id)
    run: Dict[str, Callable[[], Any]] = {
        "register: bad hostname": lambda: w.register_system(System("bad host!")),
        "register: taken hostname": lambda: w.register_system(System("hub-a")),
        "create group: a member does not exist": lambda: w.create_group(SyncGroup("g2", [ida, GHOST])),
        "create group: taken name": lambda: w.create_group(SyncGroup("g", [ida])),
        "update group: a member does not exist": lambda: w.update_group(with_members(w.get_group(idg), [ida, idb, GHOST])),
        "add member: system does not exist": lambda: w.add_member(idg, GHOST),
        "add member: group does not exist": lambda: w.add_member(GHOST, ida),
        "remove member: the hub": lambda: w.remove_member(idg, ida),
        "get group: does not exist": lambda: w.get_group(GHOST),
        "heartbeat: system does not exist": lambda: w.heartbeat(GHOST),
        "report: system does not exist": lambda: w.report_snapshots(GHOST, [snap("tank/a@s", 1, 1, 0)]),
        "report: a bad item": lambda: w.report_snapshots(
            ida, [snap("tank/a@ok", 1, 1, 0), {"name": "tank/a@b;c", "timestamp": "2026-11-01T00:00:00Z"}]
        ),
        "resume token: system does not exist": lambda: w.set_resume_token(GHOST, "tank/vm1", "1-abc"),
        "snapshots: limit 0": lambda: w.snapshots(limit=0),
        "instructions: system does not exist": lambda: w.instructions(GHOST),
        "instructions: group does not exist": lambda: w.instructions(ida, GHOST),
        "instructions: not a member of the group": lambda: w.instructions(ida, other_group_native(w)),
        "job result: job does not exist": lambda: w.report_job(GHOST, "succeeded"),
        "resolve: winner does not exist": lambda: w.resolve_conflict(GHOST, "manual", GHOST),
        "resolve: unknown strategy": lambda: w.resolve_conflict(GHOST, "coin_flip"),  # type: ignore[arg-type]
        "resolve: conflict does not exist": lambda: w.resolve_conflict(GHOST, "use_newest"),
        "resolve: keep_both of a missing conflict": lambda: w.resolve_conflict(GHOST, "keep_both"),
        "resolve: the hub loses without override_hub": lambda: w.resolve_conflict(
            native_conflict(w, ida, idb, idg), "manual", idb, dry_run=True
        ),
        "resolve: the hub loses with override_hub (preview)": lambda: w.resolve_conflict(
            native_conflict(w, ida, idb, idg), "manual", idb, override_hub=True, dry_run=True
        ),
        "delete system: does not exist": lambda: w.delete_system(GHOST),
        "heartbeat: by hostname": lambda: w.heartbeat("hub-a"),
        "heartbeat: unknown hostname": lambda: w.heartbeat("nowhere.example"),
        "get system: by hostname": lambda: w.get_system("spoke-b"),
        "instructions: by hostname": lambda: w.instructions("spoke-b"),
        "instructions: unknown hostname": lambda: w.instructions("nowhere.example"),
        "remove member: the hub by hostname": lambda: w.remove_member(idg, "hub-a"),
        "resume token: unknown hostname": lambda: w.set_resume_token("nowhere.example", "tank/vm1", None),
        "create group: a retention count out of range": lambda: w.create_group(
            SyncGroup("g3", [ida], policy=Policy(retention={"source": {"daily": -1}}))
        ),
        "create group: prune without retention": lambda: w.create_group(
            SyncGroup("g3", [ida], policy=Policy(prune=True))
        ),
        "prune preview": lambda: w.prune_preview(idg),
        "prune preview: group does not exist": lambda: w.prune_preview(GHOST),
        "webhook: bad url": lambda: w.create_webhook("ftp://x/", WEBHOOK_SECRET, ["*"]),
        "webhook: short secret": lambda: w.create_webhook("https://x.example/", "short", ["*"]),
        "webhook: unknown event type": lambda: w.create_webhook("https://x.example/", WEBHOOK_SECRET, ["*", "x"]),
        "webhook: unknown event type in a list": lambda: w.create_webhook(
            "https://x.example/", WEBHOOK_SECRET, ["job_failed", "rpo_late"]
        ),
        "webhook deliveries: webhook does not exist": lambda: w.webhook_deliveries(GHOST),
        "delete webhook: does not exist": lambda: w.delete_webhook(GHOST),
    }
    return World(ida, idb, idg, run)


# The diverged histories behind the resolve cases: the hub and the spoke both advanced
# after s0. Created once per world, on first use.
_CONFLICTS: Dict[str, str] = {}


def native_conflict(w: Witness, a: str, b: str, g: str) -> str:
    if g not in _CONFLICTS:
        w.report_snapshots(a, [snap("tank/vm1@s0", 100, 1, 0), snap("tank/vm1@s1", 101, 2, 1)], now=NOW)
        w.report_snapshots(b, [snap("tank/vm1@s0", 100, 1, 0), snap("tank/vm1@s9", 999, 2, 2)], now=NOW)
        w.check_group(g, now=NOW)
        _CONFLICTS[g] = str(w.conflicts(g)[0]["id"])
    return _CONFLICTS[g]


def with_members(g: SyncGroup, system_ids: List[str]) -> SyncGroup:
    d = g.to_dict()
    d.pop("members", None)
    return SyncGroup.from_dict({**d, "system_ids": system_ids})


def other_group_native(w: Witness) -> str:
    c = System("other-c")
    w.register_system(c)
    return str(w.create_group(SyncGroup("other", [c])).id)


def http_world(server: Server) -> World:  # noqa: F811
    admin = server.admin()
    tag = uuid.uuid4().hex[:8]
    a = admin.request("POST", "/systems", {"hostname": f"hub-a-{tag}"})["id"]
    b = admin.request("POST", "/systems", {"hostname": f"spoke-b-{tag}"})["id"]
    g = admin.request(
        "POST",
        "/sync-groups",
        {"name": f"g-{tag}", "system_ids": [a, b], "directional": True, "hub_system_id": a},
    )["id"]

    def other_group() -> str:
        c = admin.request("POST", "/systems", {"hostname": f"other-c-{tag}"})["id"]
        return str(admin.request("POST", "/sync-groups", {"name": f"other-{tag}", "system_ids": [c]})["id"])

    def update_group() -> Any:
        return admin.request("PUT", f"/sync-groups/{g}", {"system_ids": [a, b, GHOST]})

    def http_conflict() -> str:
        if g not in _CONFLICTS:

            def at(name: str, guid: int, hours: int) -> Dict[str, Any]:
                ts = (NOW.replace(hour=0) + timedelta(hours=hours)).isoformat()
                return {"name": f"tank/vm1@{name}", "timestamp": ts, "guid": str(guid)}

            admin.request("POST", "/snapshots/batch", [at("s0", 100, 0), at("s1", 101, 1)], query={"system_id": a})
            admin.request("POST", "/snapshots/batch", [at("s0", 100, 0), at("s9", 999, 2)], query={"system_id": b})
            admin.request("POST", f"/sync/{g}/check")
            _CONFLICTS[g] = str(admin.request("GET", f"/conflicts/{g}")[0]["id"])
        return _CONFLICTS[g]

    item = {"name": "tank/a@s", "timestamp": "2026-11-01T00:00:00Z", "guid": "1"}
    run: Dict[str, Callable[[], Any]] = {
        "register: bad hostname": lambda: admin.request("POST", "/systems", {"hostname": "bad host!"}),
        "register: taken hostname": lambda: admin.request("POST", "/systems", {"hostname": f"hub-a-{tag}"}),
        "create group: a member does not exist": lambda: admin.request(
            "POST", "/sync-groups", {"name": f"g2-{tag}", "system_ids": [a, GHOST]}
        ),
        "create group: taken name": lambda: admin.request(
            "POST", "/sync-groups", {"name": f"g-{tag}", "system_ids": [a]}
        ),
        "update group: a member does not exist": update_group,
        "add member: system does not exist": lambda: admin.request(
            "POST", f"/sync-groups/{g}/systems", {"system_id": GHOST}
        ),
        "add member: group does not exist": lambda: admin.request(
            "POST", f"/sync-groups/{GHOST}/systems", {"system_id": a}
        ),
        "remove member: the hub": lambda: admin.request("DELETE", f"/sync-groups/{g}/systems/{a}"),
        "get group: does not exist": lambda: admin.request("GET", f"/sync-groups/{GHOST}"),
        "heartbeat: system does not exist": lambda: admin.request("POST", f"/systems/{GHOST}/heartbeat"),
        "report: system does not exist": lambda: admin.request(
            "POST", "/snapshots/batch", [item], query={"system_id": GHOST}
        ),
        "report: a bad item": lambda: admin.request(
            "POST",
            "/snapshots/batch",
            [{**item, "name": "tank/a@ok"}, {"name": "tank/a@b;c", "timestamp": "2026-11-01T00:00:00Z"}],
            query={"system_id": a},
        ),
        "resume token: system does not exist": lambda: admin.request(
            "PUT", f"/systems/{GHOST}/resume-tokens", {"pool": "tank", "dataset": "vm1", "token": "1-abc"}
        ),
        "snapshots: limit 0": lambda: admin.request("GET", "/snapshots", query={"limit": 0}),
        "instructions: system does not exist": lambda: admin.request("GET", f"/sync/instructions/{GHOST}"),
        "instructions: group does not exist": lambda: admin.request(
            "GET", f"/sync/instructions/{a}", query={"sync_group_id": GHOST}
        ),
        "instructions: not a member of the group": lambda: admin.request(
            "GET", f"/sync/instructions/{a}", query={"sync_group_id": other_group()}
        ),
        "job result: job does not exist": lambda: admin.request(
            "POST", f"/sync/jobs/{GHOST}/result", {"status": "succeeded"}
        ),
        "resolve: winner does not exist": lambda: admin.request(
            "POST", f"/conflicts/{GHOST}/resolve", {"strategy": "manual", "winner_system_id": GHOST}
        ),
        "resolve: unknown strategy": lambda: admin.request(
            "POST", f"/conflicts/{GHOST}/resolve", {"strategy": "coin_flip"}
        ),
        "resolve: conflict does not exist": lambda: admin.request(
            "POST", f"/conflicts/{GHOST}/resolve", {"strategy": "use_newest"}
        ),
        "resolve: keep_both of a missing conflict": lambda: admin.request(
            "POST", f"/conflicts/{GHOST}/resolve", {"strategy": "keep_both"}
        ),
        "resolve: the hub loses without override_hub": lambda: admin.request(
            "POST",
            f"/conflicts/{http_conflict()}/resolve",
            {"strategy": "manual", "winner_system_id": b, "dry_run": True},
        ),
        "resolve: the hub loses with override_hub (preview)": lambda: admin.request(
            "POST",
            f"/conflicts/{http_conflict()}/resolve",
            {"strategy": "manual", "winner_system_id": b, "dry_run": True, "override_hub": True},
        ),
        "delete system: does not exist": lambda: admin.request("DELETE", f"/systems/{GHOST}"),
        "heartbeat: by hostname": lambda: admin.request("POST", f"/systems/hub-a-{tag}/heartbeat"),
        "heartbeat: unknown hostname": lambda: admin.request("POST", "/systems/nowhere.example/heartbeat"),
        "get system: by hostname": lambda: admin.request("GET", f"/systems/spoke-b-{tag}"),
        "instructions: by hostname": lambda: admin.request("GET", f"/sync/instructions/spoke-b-{tag}"),
        "instructions: unknown hostname": lambda: admin.request("GET", "/sync/instructions/nowhere.example"),
        "remove member: the hub by hostname": lambda: admin.request(
            "DELETE", f"/sync-groups/{g}/systems/hub-a-{tag}"
        ),
        "resume token: unknown hostname": lambda: admin.request(
            "PUT", "/systems/nowhere.example/resume-tokens", {"pool": "tank", "dataset": "vm1", "token": None}
        ),
        "create group: a retention count out of range": lambda: admin.request(
            "POST", "/sync-groups", {"name": f"g3-{tag}", "system_ids": [a], "retention": {"source": {"daily": -1}}}
        ),
        "create group: prune without retention": lambda: admin.request(
            "POST", "/sync-groups", {"name": f"g3-{tag}", "system_ids": [a], "prune": True}
        ),
        "prune preview": lambda: admin.prune_preview(g),
        "prune preview: group does not exist": lambda: admin.prune_preview(GHOST),
        "webhook: bad url": lambda: admin.create_webhook("ftp://x/", WEBHOOK_SECRET, ["*"]),
        "webhook: short secret": lambda: admin.create_webhook("https://x.example/", "short", ["*"]),
        "webhook: unknown event type": lambda: admin.create_webhook(
            "https://x.example/", WEBHOOK_SECRET, ["*", "x"]
        ),
        "webhook: unknown event type in a list": lambda: admin.create_webhook(
            "https://x.example/", WEBHOOK_SECRET, ["job_failed", "rpo_late"]
        ),
        "webhook deliveries: webhook does not exist": lambda: admin.webhook_deliveries(GHOST),
        "delete webhook: does not exist": lambda: admin.delete_webhook(GHOST),
    }
    return World(a, b, g, run)


# case → (exception class, field)
CASES: Dict[str, Tuple[str, Optional[str]]] = {
    "register: bad hostname": ("ValidationError", "hostname"),
    "register: taken hostname": ("AlreadyExistsError", None),
    "create group: a member does not exist": ("MissingReferenceError", "system_ids[1]"),
    "create group: taken name": ("AlreadyExistsError", None),
    "update group: a member does not exist": ("MissingReferenceError", "system_ids[2]"),
    "add member: system does not exist": ("MissingReferenceError", "system_id"),
    "add member: group does not exist": ("NotFoundError", None),
    "remove member: the hub": ("ConflictError", None),
    "get group: does not exist": ("NotFoundError", None),
    "heartbeat: system does not exist": ("NotFoundError", None),
    "report: system does not exist": ("NotFoundError", None),
    "report: a bad item": ("ValidationError", "snapshots[1].name"),
    "resume token: system does not exist": ("NotFoundError", None),
    "snapshots: limit 0": ("ValidationError", "limit"),
    "instructions: system does not exist": ("NotFoundError", None),
    "instructions: group does not exist": ("NotFoundError", None),
    "instructions: not a member of the group": ("ValidationError", "sync_group_id"),
    "job result: job does not exist": ("NotFoundError", None),
    "resolve: winner does not exist": ("MissingReferenceError", "winner_system_id"),
    "resolve: unknown strategy": ("ValidationError", "strategy"),
    "resolve: conflict does not exist": ("NotFoundError", None),
    # Safe resolutions (issue 13): keep_both is a strategy; the hub loses only with
    # override_hub.
    "resolve: keep_both of a missing conflict": ("NotFoundError", None),
    "resolve: the hub loses without override_hub": ("ConflictError", None),
    "resolve: the hub loses with override_hub (preview)": ("ok", None),
    "delete system: does not exist": ("NotFoundError", None),
    # Systems named by hostname where the HTTP path takes `{system_id}` (issue 13).
    "heartbeat: by hostname": ("ok", None),
    "heartbeat: unknown hostname": ("NotFoundError", None),
    "get system: by hostname": ("ok", None),
    "instructions: by hostname": ("ok", None),
    "instructions: unknown hostname": ("NotFoundError", None),
    "remove member: the hub by hostname": ("ConflictError", None),
    "resume token: unknown hostname": ("NotFoundError", None),
    # Retention (issue 15).
    "create group: a retention count out of range": ("ValidationError", "retention.source.daily"),
    "create group: prune without retention": ("ValidationError", "prune"),
    "prune preview": ("ok", None),
    "prune preview: group does not exist": ("NotFoundError", None),
    # Webhooks (issue 16).
    "webhook: bad url": ("ValidationError", "url"),
    "webhook: short secret": ("ValidationError", "secret"),
    "webhook: unknown event type": ("ValidationError", "events"),
    "webhook: unknown event type in a list": ("ValidationError", "events[1]"),
    "webhook deliveries: webhook does not exist": ("NotFoundError", None),
    "delete webhook: does not exist": ("NotFoundError", None),
}


@pytest.fixture(scope="module")
def worlds(server: Server) -> Iterator[Tuple[World, World]]:  # noqa: F811
    yield native_world(), http_world(server)


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_surfaces_fail_alike(case: str, worlds: Tuple[World, World]) -> None:
    native, http = worlds
    got = {"native": outcome(native.run[case]), "http": outcome(http.run[case])}
    assert got == {"native": CASES[case], "http": CASES[case]}


def test_every_case_runs_on_both_surfaces(worlds: Tuple[World, World]) -> None:
    native, http = worlds
    assert set(native.run) == set(http.run) == set(CASES)


def test_a_missing_reference_is_a_validation_error_and_a_not_found_error() -> None:
    assert issubclass(MissingReferenceError, ValidationError)
    assert issubclass(MissingReferenceError, NotFoundError)


def history(pool: str, n: int) -> List[Any]:
    return [snap(f"{pool}/vm1@s{i}", 1000 + i, i + 1, i) for i in range(n)]


def test_after_a_report_the_instructions_see_it_on_both_surfaces(server: Server) -> None:  # noqa: F811
    # Native.
    w = Witness(SqliteStore(":memory:"))
    a, b = System("src-a"), System("dst-b")
    for s in (a, b):
        w.register_system(s)
    w.report_snapshots(a, history("tank", 3), now=NOW)
    w.report_snapshots(b, history("tank", 1), now=NOW)
    w.create_group(SyncGroup("g", [a, b]))
    [ins] = w.instructions(a, now=NOW)["instructions"]
    native_first = ins["transfer"]["snapshots"]
    # The target reports the snapshots: the job is complete and nothing is left to send.
    w.report_snapshots(b, history("tank", 3), now=NOW)
    native_after = w.instructions(a, now=NOW)["instructions"]

    # HTTP.
    tag = uuid.uuid4().hex[:8]
    admin = server.admin()
    hosts = {}
    for name in ("src-a", "dst-b"):
        reg = admin.request("POST", "/systems", {"hostname": f"{name}-{tag}"})
        hosts[name] = Client(server.base_url, reg["api_key"], system_id=reg["id"])
    src, dst = hosts["src-a"], hosts["dst-b"]
    src.report_inventory(history("tank", 3))
    dst.report_inventory(history("tank", 1))
    admin.request("POST", "/sync-groups", {"name": f"g-{tag}", "system_ids": [src.system_id, dst.system_id]})
    [entry] = src.request("GET", f"/sync/instructions/{src.system_id}")["datasets"]
    http_first = entry["snapshots"]
    dst.report_inventory(history("tank", 3))
    http_after = src.request("GET", f"/sync/instructions/{src.system_id}")["datasets"]

    assert native_first == http_first == ["s1", "s2"]
    assert native_after == http_after == []
