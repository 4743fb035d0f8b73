"""The pure-Python client against a real zfs-sync-server process on a free port."""

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

import zfs_sync
from zfs_sync import (
    AuthError,
    ConflictError,
    NotFoundError,
    TransportError,
    ValidationError,
    ZfsSyncError,
)
from zfs_sync.client import BATCH_SIZE, Client

from conftest import snap

REPO = Path(__file__).resolve().parents[2]


def server_binary() -> Optional[Path]:
    """$ZFS_SYNC_SERVER_BIN, else the debug build in $CARGO_TARGET_DIR or the workspace."""
    explicit = os.environ.get("ZFS_SYNC_SERVER_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        candidate = target / profile / "zfs-sync-server"
        if candidate.is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url
        self.admin_key = admin_key

    def admin(self) -> Client:
        return Client(self.base_url, self.admin_key)

    def snapshot_names(self, system_id: Optional[str]) -> List[str]:
        """What the witness holds for a system, read back through the API."""
        found = self.admin().request("GET", "/snapshots", query={"system_id": system_id, "limit": 10_000})
        return sorted(item["full_name"] if "full_name" in item else item["name"] for item in found)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = server_binary()
    if binary is None or not binary.is_file():
        pytest.skip(
            "zfs-sync-server is not built (cargo build -p zfs-sync-http, or set ZFS_SYNC_SERVER_BIN): "
            "the HTTP client tests did not run"
        )
    workdir = tmp_path_factory.mktemp("server")
    # ZFS_SYNC_PY_SERVER_DATABASE_URL runs these tests against another backend (postgres://...).
    database_url = os.environ.get("ZFS_SYNC_PY_SERVER_DATABASE_URL") or f"sqlite://{workdir / 'witness.db'}"
    admin_key = secrets.token_hex(32)
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ZFS_SYNC_") or k == "ZFS_SYNC_TEST_POSTGRES_URL"
    }
    env.update(
        ZFS_SYNC_DATABASE_URL=database_url,
        ZFS_SYNC_HOST="127.0.0.1",
        ZFS_SYNC_PORT=str(port),
        ZFS_SYNC_ADMIN_KEY=admin_key,
        ZFS_SYNC_LOG_LEVEL="warn",
    )
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen([str(binary), "serve"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.flush()
                raise RuntimeError(f"zfs-sync-server exited with {proc.returncode}:\n{(workdir / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(base_url + "/api/v1/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"zfs-sync-server did not answer on {base_url} within 60 s")
            time.sleep(0.1)
        yield Server(base_url, admin_key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def register(server: Server, hostname: str, **fields: object) -> Client:
    return Client.register(server.base_url, server.admin_key, hostname, **fields)


def test_health(server: Server) -> None:
    health = server.admin().health()
    assert health["status"] == "healthy"


def test_register_and_heartbeat(server: Server) -> None:
    host = register(server, "client-heartbeat", ssh_user="zfs")
    assert host.system_id is not None and host.api_key.startswith("zs_")
    assert host.api_key not in repr(host)
    beat = host.heartbeat({"agent": "test"})
    assert beat["system_id"] == host.system_id and beat["status"] == "online"
    seen = server.admin().request("GET", f"/systems/{host.system_id}")
    assert seen["last_seen"] is not None and seen["extra_metadata"]["agent"] == "test"


def test_a_client_may_name_its_system_by_hostname(server: Server) -> None:
    host = register(server, "client-by-name.example")
    by_name = Client(server.base_url, host.api_key, system_id="client-by-name.example")
    assert by_name.system_id == "client-by-name.example"
    beat = by_name.heartbeat()
    assert beat["system_id"] == host.system_id
    assert by_name.instructions()["system_id"] == host.system_id
    by_name.replace_inventory([snap("tank/vm1@s1", 1, 1, 0)])
    assert len(server.snapshot_names(host.system_id)) == 1
    # Another system's hostname with this key: refused. Hostnames are URL-quoted.
    other = register(server, "client-other.example")
    with pytest.raises(AuthError):
        Client(server.base_url, host.api_key, system_id="client-other.example").heartbeat()
    with pytest.raises(AuthError):
        Client(server.base_url, host.api_key, system_id="no such/host?").heartbeat()
    with pytest.raises(NotFoundError):
        Client(server.base_url, server.admin_key, system_id="no such/host?").heartbeat()
    # Ids stay canonical.
    assert Client(server.base_url, "k", system_id=uuid.UUID(other.system_id)).system_id == other.system_id
    with pytest.raises(ValidationError):
        Client(server.base_url, "k", system_id="  ")


def test_report_inventory_in_chunks(server: Server) -> None:
    host = register(server, "client-inventory")
    snaps = [snap(f"tank/ds{i // 100}@s{i % 100}", 10_000 + i, i + 1, i) for i in range(2 * BATCH_SIZE + 500)]
    stored = host.report_inventory(snaps)
    assert len(stored) == len(snaps)
    # Chunks upsert and never delete: every snapshot of every chunk is there.
    assert server.snapshot_names(host.system_id) == sorted(s.full_name for s in snaps)
    assert {int(item["guid"]) for item in stored} == {s.guid for s in snaps}
    # Smaller chunks and dicts work too; reporting again updates in place.
    again = host.report_inventory([s.to_dict() for s in snaps[:10]], batch_size=3)
    assert [item["name"] for item in again] == [s.name for s in snaps[:10]]


def test_a_bad_item_is_named_by_its_index_in_the_whole_report(server: Server) -> None:
    host = register(server, "client-bad-item")
    items: List[Dict[str, object]] = [
        {"name": f"tank/a@s{i}", "timestamp": "2026-11-01T00:00:00Z", "guid": i + 1} for i in range(7)
    ]
    items[5]["name"] = "tank/a@bad;name"
    with pytest.raises(ValidationError) as info:
        host.report_inventory(items, batch_size=3)
    err = info.value
    assert err.status_code == 422
    assert err.field is not None and err.field.startswith("snapshots[5]"), err.field
    assert "snapshots[5]" in str(err)
    # The chunk with the bad item stored nothing; the chunk before it is stored.
    assert server.snapshot_names(host.system_id) == ["tank/a@s0", "tank/a@s1", "tank/a@s2"]


def test_auth_errors(server: Server) -> None:
    a = register(server, "client-auth-a")
    b = register(server, "client-auth-b")
    with pytest.raises(AuthError) as info:
        Client(server.base_url, "zs_" + "0" * 64, system_id=a.system_id).heartbeat()
    assert info.value.status_code == 401
    # b's key may not act for a.
    with pytest.raises(AuthError) as info:
        Client(server.base_url, b.api_key, system_id=a.system_id).heartbeat()
    assert info.value.status_code == 403
    with pytest.raises(AuthError):
        Client.register(server.base_url, a.api_key, "client-auth-c")


def test_prune_preview(server: Server) -> None:
    a = register(server, "client-prune-a", ssh_user="zfs")
    b = register(server, "client-prune-b", ssh_user="zfs")
    a.report_inventory([snap(f"tank/vm1@s{i}", 700 + i, i + 1, i) for i in range(4)])
    b.report_inventory([snap(f"tank/vm1@s{i}", 700 + i, i + 1, i) for i in range(2)])
    group = server.admin().request(
        "POST",
        "/sync-groups",
        {
            "name": "client-prune",
            "directional": True,
            "hub_system_id": a.system_id,
            "system_ids": [a.system_id, b.system_id],
            "retention": {"source": {"keep_last": 1}},
        },
    )
    preview = b.prune_preview(group["id"])
    assert preview["prune"] is False
    [dataset] = preview["datasets"]
    hub = next(h for h in dataset["hosts"] if h["system_id"] == a.system_id)
    assert [(s["snapshot"], s["action"]) for s in hub["snapshots"]] == [
        ("s3", "keep"), ("s2", "keep"), ("s1", "keep"), ("s0", "destroy")
    ]
    assert hub["snapshots"][2]["reason"].startswith("must keep: incremental base of edge")
    [edge] = dataset["edges"]
    assert (edge["base"], edge["pending"]) == ("s1", 2)
    with pytest.raises(NotFoundError):
        server.admin().prune_preview(uuid.uuid4())


def test_admin_keys_are_created_listed_and_revoked(server: Server) -> None:
    admin = server.admin()
    created = admin.create_admin_key("python test")
    assert created["name"] == "python test" and created["source"] == "created"
    other = Client(server.base_url, created["api_key"])
    listed = other.admin_keys()
    assert any(k["source"] == "configured" for k in listed)
    assert all(set(k) == {"id", "name", "source", "created_at"} for k in listed)
    other.revoke_admin_key(created["id"])
    with pytest.raises(AuthError):
        other.admin_keys()
    with pytest.raises(NotFoundError):
        admin.revoke_admin_key(created["id"])
    with pytest.raises(ValidationError):
        admin.create_admin_key("")


def test_duplicate_hostname_is_a_conflict(server: Server) -> None:
    register(server, "client-dup")
    with pytest.raises(ConflictError) as info:
        register(server, "client-dup")
    assert info.value.status_code == 409
    assert isinstance(info.value, zfs_sync.AlreadyExistsError)


def test_instructions_and_job_results(server: Server) -> None:
    a = register(server, "client-sync-a", ssh_user="zfs")
    b = register(server, "client-sync-b", ssh_user="zfs")
    a.report_inventory([snap(f"tank/vm1@s{i}", 500 + i, i + 1, i) for i in range(3)])
    b.report_inventory([snap("tank/vm1@s0", 500, 1, 0)])
    group = server.admin().request(
        "POST", "/sync-groups", {"name": "client-sync", "system_ids": [a.system_id, b.system_id]}
    )
    [look] = a.instructions(group["id"], dry_run=True)["datasets"]
    assert look["job_id"] is None
    assert server.admin().jobs(group_id=group["id"]) == []
    out = a.instructions(group["id"])
    assert out["system_id"] == a.system_id
    [entry] = out["datasets"]
    assert entry["starting_snapshot"] == "s0" and entry["ending_snapshot"] == "s2"
    assert entry["kind"] == "incremental" and entry["snapshots"] == ["s1", "s2"]
    assert entry["argv"][0][0] == ["zfs", "send", "-I", "tank/vm1@s0", "tank/vm1@s2"]
    assert len(entry["commands"]) == 1 and "zfs receive" in entry["commands"][0]
    assert b.instructions(group["id"])["datasets"] == []

    [job] = a.jobs()
    assert job["id"] == entry["job_id"] and a.job(entry["job_id"])["status"] == "leased"
    assert a.jobs(dataset=job["dataset"]) == [job] and a.jobs(dataset="elsewhere") == []
    assert a.jobs(conflict_id=uuid.uuid4()) == []
    assert a.report_progress(entry["job_id"], 100, resume_token="1-ab")["bytes"] == 100
    with pytest.raises(ValidationError):
        a.report_progress(entry["job_id"], -1)
    result = a.report_job(entry["job_id"], "failed", "cannot receive")
    assert isinstance(result, dict)
    # The failure backs off: not handed out again until an admin retries.
    assert a.instructions(group["id"])["datasets"] == []
    [state] = server.admin().request(
        "GET", "/sync/states", query={"sync_group_id": group["id"], "status": "error"}
    )
    assert state["attempts"] == 1 and state["next_attempt_at"]
    with pytest.raises(AuthError):
        a.retry_state(state["id"])
    cleared = server.admin().retry_state(state["id"])
    assert (cleared["status"], cleared["attempts"], cleared["next_attempt_at"]) == ("out_of_sync", 1, None)
    with pytest.raises(NotFoundError):
        server.admin().retry_state(uuid.uuid4())
    [entry] = a.instructions(group["id"])["datasets"]
    result = a.report_job(entry["job_id"], "succeeded", bytes=12345)
    assert isinstance(result, dict)
    # A repeated success is answered with the job.
    assert a.report_job(entry["job_id"], "succeeded")["status"] == "succeeded"
    with pytest.raises(ConflictError):
        a.cancel_job(entry["job_id"])
    with pytest.raises(ConflictError):
        a.report_job(entry["job_id"], "failed", "twice")
    with pytest.raises(NotFoundError):
        a.report_job(uuid.uuid4(), "succeeded")


def test_resolve_conflict_previews_then_confirms(server: Server) -> None:
    a = register(server, "client-resolve-a")
    b = register(server, "client-resolve-b")
    a.report_inventory([snap("tank/vm1@s0", 600, 1, 0), snap("tank/vm1@s1", 601, 2, 1)])
    b.report_inventory([snap("tank/vm1@s0", 600, 1, 0), snap("tank/vm1@s9", 699, 2, 2)])
    admin = server.admin()
    group = admin.request(
        "POST",
        "/sync-groups",
        {
            "name": "client-resolve",
            "system_ids": [a.system_id, b.system_id],
            "directional": True,
            "hub_system_id": a.system_id,
            "allow_destructive": True,
        },
    )
    admin.request("POST", f"/sync/{group['id']}/check")
    [conflict] = admin.request("GET", f"/conflicts/{group['id']}")
    with pytest.raises(ConflictError, match="override_hub"):
        admin.resolve_conflict(conflict["id"], "manual", b.system_id, dry_run=True)
    with pytest.raises(ConflictError, match="dry_run"):
        admin.resolve_conflict(conflict["id"], "manual", a.system_id)
    preview = admin.resolve_conflict(conflict["id"], "manual", a.system_id, dry_run=True)
    assert preview["applied"] is False and preview["destructive"] is True
    assert preview["losers"][0]["discards_writes_since"] == "tank/vm1@s0"
    with pytest.raises(ConflictError, match="preview again"):
        admin.resolve_conflict(conflict["id"], "manual", a.system_id, confirm="f" * 64)
    done = admin.resolve_conflict(conflict["id"], "manual", a.system_id, confirm=preview["digest"])
    assert done["applied"] is True


def test_client_side_validation_sends_nothing(server: Server) -> None:
    host = register(server, "client-local-checks")
    with pytest.raises(ValidationError) as info:
        host.report_job(uuid.uuid4(), "done")
    assert info.value.field == "status" and info.value.status_code is None
    with pytest.raises(ValidationError):
        host.report_job(uuid.uuid4(), "failed", bytes=-1)
    with pytest.raises(ValidationError) as info:
        host.report_inventory([], batch_size=0)
    assert info.value.field == "batch_size"
    with pytest.raises(ValidationError) as info:
        host.report_inventory([42])
    assert info.value.field == "snapshots[0]"
    with pytest.raises(ValidationError) as info:
        server.admin().heartbeat()
    assert info.value.field == "system_id"
    assert host.report_inventory([]) == []


def test_bad_base_urls_and_unreachable_servers() -> None:
    with pytest.raises(ValidationError) as info:
        Client("ftp://example", "k")
    assert info.value.field == "base_url"
    assert Client("http://127.0.0.1:1/api/v1/", "k").base_url == "http://127.0.0.1:1/api/v1"
    port = free_port()  # nothing listens there
    with pytest.raises(TransportError) as terr:
        Client(f"http://127.0.0.1:{port}", "k", timeout=5).health()
    assert isinstance(terr.value, ZfsSyncError)


def test_replace_inventory_prunes(server: Server) -> None:
    host = register(server, "client-replace")
    host.report_inventory([snap(f"tank/vm1@s{i}", 900 + i, i + 1, i) for i in range(3)])
    host.replace_inventory([snap("tank/vm1@s2", 902, 3, 2)], datasets=["tank/vm1"])
    assert server.snapshot_names(host.system_id) == ["tank/vm1@s2"]


#: The files of the host client distribution (``zfs-sync-py/client/pyproject.toml``).
CLIENT_FILES = ("__init__.py", "client.py", "errors.py", "py.typed")


def test_the_client_works_from_its_python_files_alone(server: Server, tmp_path: Path) -> None:
    """A host with only the client's Python files (no native module, no Rust) registers,
    heartbeats, reports and gets typed errors; a native name says what is missing."""
    package = tmp_path / "zfs_sync"
    package.mkdir()
    source = Path(zfs_sync.__file__).parent
    for name in CLIENT_FILES:
        (package / name).write_bytes((source / name).read_bytes())
    assert not list(package.glob("_zfs_sync*"))
    script = f"""
import sys
from zfs_sync.client import Client
from zfs_sync.errors import AuthError
import zfs_sync
assert "zfs_sync._zfs_sync" not in sys.modules
host = Client.register({server.base_url!r}, {server.admin_key!r}, "client-alone.example")
host.heartbeat()
host.report_inventory([{{"name": "tank/a@s1", "guid": 7, "createtxg": 1,
                          "creation": "2026-01-01T00:00:00Z", "used": 1}}])
try:
    Client({server.base_url!r}, "wrong-key", system_id=host.system_id).heartbeat()
    raise SystemExit("a wrong key was accepted")
except AuthError:
    pass
try:
    from zfs_sync import Witness
    raise SystemExit("Witness imported without the native module")
except ImportError as e:
    assert "native module" in str(e), e
print(host.system_id)
"""
    # -S: no site-packages, so the installed wheel (and its native module) is invisible.
    done = subprocess.run(
        [sys.executable, "-S", "-c", script],
        env={"PYTHONPATH": str(tmp_path), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    system_id = done.stdout.strip()
    assert server.snapshot_names(system_id) == ["tank/a@s1"]


def test_replace_inventory_text_sends_the_raw_zfs_list(server: Server) -> None:
    host = register(server, "client-tsv")
    listing = (
        "tank\tfilesystem\t1\t1\t1761955200\t200000\t96000\t-\n"
        "tank/vm1\tfilesystem\t2\t5\t1761955200\t100000\t96000\t-\n"
        "tank/vm1@a\tsnapshot\t11\t6\t1761958800\t1000\t5000\t-\n"
    )
    out = host.replace_inventory_text(listing)
    assert (out["upserted"], out["datasets"]) == (1, 2)
    assert server.snapshot_names(host.system_id) == ["tank/vm1@a"]
    with pytest.raises(ValidationError) as info:
        host.replace_inventory_text("tank/vm1@a\tsnapshot\t11\t6\tyesterday\t1000\t5000\t-\n")
    assert info.value.field == "line 1"
    assert "creation" in str(info.value)
    # Nothing of the bad report was stored.
    assert server.snapshot_names(host.system_id) == ["tank/vm1@a"]


def test_edges_say_which_backup_is_behind(server: Server) -> None:
    a = register(server, "client-edge-a", ssh_user="zfs")
    b = register(server, "client-edge-b", ssh_user="zfs")
    a.report_inventory([snap(f"tank/vm1@s{i}", 700 + i, i + 1, i) for i in range(3)])
    b.report_inventory([snap("tank/vm1@s0", 700, 1, 0)])
    group = server.admin().request(
        "POST", "/sync-groups", {"name": "client-edges", "system_ids": [a.system_id, b.system_id]}
    )
    [edge] = server.admin().edges(group_id=group["id"])
    assert edge["target_system_id"] == b.system_id and edge["source_hostname"] == "client-edge-a"
    assert edge["lag_snapshots"] == 2 and edge["rpo_seconds"] == 86400
    # The snapshots are from T0, weeks before the clock: far beyond a day's RPO.
    assert edge["status"] == "breached"
    [seen_by_b] = b.edges(status="breached")
    assert (seen_by_b["group_id"], seen_by_b["target_system_id"]) == (group["id"], b.system_id)
    assert server.admin().edges(group_id=group["id"], status="ok") == []
    with pytest.raises(ValidationError):
        server.admin().edges(status="green")


def test_events_are_read_by_the_admin(server: Server) -> None:
    admin = server.admin()
    newest = admin.events(limit=1000)
    since = newest[-1]["id"] if newest else 0
    assert admin.events(since=since) == []
    with pytest.raises(ValidationError):
        admin.events(types=["rpo_late"])
    host = register(server, "client-events", ssh_user="zfs")
    with pytest.raises(AuthError):
        host.events()


class _Receiver:
    """A local webhook receiver: records each POST (headers, raw body) and answers 204."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []  # type: List[tuple]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_webhooks_are_managed_and_deliver_signed_events(server: Server) -> None:
    import hashlib
    import hmac
    import json

    admin = server.admin()
    secret = secrets.token_hex(16)
    receiver = _Receiver()
    try:
        hook = admin.create_webhook(receiver.url, secret, ["admin_key_created"])
        assert hook["events"] == ["admin_key_created"] and secret not in json.dumps(hook)
        assert hook["id"] in [h["id"] for h in admin.webhooks()]
        assert admin.webhook(hook["id"])["url"] == receiver.url
        assert secret not in json.dumps(admin.webhooks())

        # An event of the subscribed type, caused here; the server's worker posts it.
        made = admin.create_admin_key("made for the webhook test")
        deadline = time.monotonic() + 60
        while not any(d["outcome"] == "delivered" for d in admin.webhook_deliveries(hook["id"])):
            assert time.monotonic() < deadline, "the event was not delivered within 60 s"
            time.sleep(0.2)
        [delivery] = admin.webhook_deliveries(hook["id"], limit=1)
        assert delivery["attempt"] == 1 and delivery["status_code"] == 204

        headers, body = receiver.received[0]
        event = json.loads(body)
        assert event["type"] == "admin_key_created" and event["detail"]["key_id"] == made["id"]
        assert headers["x-zfs-sync-event-id"] == str(event["id"]) == str(delivery["event_id"])
        assert admin.events(since=event["id"] - 1, limit=1) == [event]
        timestamp = headers["x-zfs-sync-timestamp"]
        # The signature, recomputed with Python's own HMAC.
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-zfs-sync-signature"], "sha256=" + expected)
        admin.revoke_admin_key(made["id"])

        with pytest.raises(ValidationError) as bad:
            admin.create_webhook(receiver.url, "short", ["*"])
        assert bad.value.field == "secret"
        with pytest.raises(ValidationError) as bad:
            admin.create_webhook("ftp://x/", secret, ["*"])
        assert bad.value.field == "url"
        with pytest.raises(ValidationError) as bad:
            admin.create_webhook(receiver.url, secret, ["rpo_late"])
        assert bad.value.field == "events[0]"
        host = register(server, "client-webhooks", ssh_user="zfs")
        with pytest.raises(AuthError):
            host.webhooks()

        admin.delete_webhook(hook["id"])
        with pytest.raises(NotFoundError):
            admin.webhook(hook["id"])
        with pytest.raises(NotFoundError):
            admin.webhook_deliveries(hook["id"])
    finally:
        receiver.close()
