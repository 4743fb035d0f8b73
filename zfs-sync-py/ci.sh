#!/usr/bin/env bash
# CI of the Python bindings: builds the wheel into a fresh virtualenv, installs it, runs the
# pytest suite (warnings are errors), mypy.stubtest on the native module's stubs and mypy on
# the package and the example. Exits non-zero on any failure.
#
# Environment:
#   CARGO_TARGET_DIR        cargo's target dir (default: the workspace's target/), shared with
#                           the rest of CI so nothing is built twice
#   ZFS_SYNC_PY_VENV        the virtualenv to (re)create (default /tmp/zfs-sync-venv)
#   ZFS_SYNC_PY_PROFILE     cargo profile of the wheel (default dev: a release build of the
#                           whole stack is several minutes slower on 2 cores)
#   ZFS_SYNC_TEST_POSTGRES_URL  when set, PostgresStore is tested against it too (required
#                           when CI is set: its PostgreSQL tests then fail instead of skipping)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="${ZFS_SYNC_PY_VENV:-/tmp/zfs-sync-venv}"
profile="${ZFS_SYNC_PY_PROFILE:-dev}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
python="${PYTHON:-python3}"

echo "== zfs-sync-py: fresh virtualenv $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.9.4,<2" "pytest>=7" "mypy>=1.10"

echo "== zfs-sync-py: building zfs-sync-server (the client tests run against it)"
cargo build --quiet -p zfs-sync-http --bin zfs-sync-server
export ZFS_SYNC_SERVER_BIN="$CARGO_TARGET_DIR/debug/zfs-sync-server"

echo "== zfs-sync-py: building the wheel (profile $profile)"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/maturin" build --quiet --profile "$profile" \
    --manifest-path "$here/Cargo.toml" --interpreter "$venv/bin/python" --out "$wheels"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheels"/*.whl

# Run from outside the source tree so that the installed wheel is what gets imported.
cd "$wheels"

echo "== zfs-sync-py: pytest"
"$venv/bin/python" -m pytest -W error -p no:cacheprovider -c "$here/pyproject.toml" \
    --rootdir "$here" "$here/tests"

echo "== zfs-sync-py: stubtest"
"$venv/bin/python" -m mypy.stubtest --mypy-config-file "$here/pyproject.toml" zfs_sync

echo "== zfs-sync-py: mypy (package and example)"
"$venv/bin/python" -m mypy --config-file "$here/pyproject.toml" \
    "$here/python/zfs_sync" "$root/examples/plan_from_zfs_list.py"

echo "== zfs-sync-py: the host client distribution (pure Python, installable alone)"
client_venv="$(mktemp -d)"
"$python" -m venv "$client_venv/venv"
"$client_venv/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here/client"
# From an empty directory, in a virtualenv that has only the client: the package imports, the
# client and the errors are there, the native module is not.
(cd "$client_venv" && "$client_venv/venv/bin/python" -c '
import importlib.util, zfs_sync, zfs_sync.client, zfs_sync.errors
assert importlib.util.find_spec("zfs_sync._zfs_sync") is None
print("zfs-sync-client: zfs_sync.client imports without the native module")')
rm -rf "$client_venv"

echo "== zfs-sync-py: ok"
