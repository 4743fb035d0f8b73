#!/usr/bin/env bash
# Runs the whole test suite: Rust (every crate, every store including PostgreSQL), the Python
# wheel's tests and stub check, schemathesis against the running server, and a short fuzzing
# pass. Used by README and .ci/run.
#
#   bash scripts/test-all.sh            # everything
#   FUZZ_SECONDS=0 bash scripts/test-all.sh   # skip fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL: use the configured server, or the local one (started when it is down).
if [ -z "${ZFS_SYNC_TEST_POSTGRES_URL:-}" ]; then
  if command -v pg_isready >/dev/null 2>&1; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
      if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
      fi
    fi
    if pg_isready -q -h 127.0.0.1 -p 5432; then
      export ZFS_SYNC_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
    fi
  fi
fi
if [ -n "${ZFS_SYNC_TEST_POSTGRES_URL:-}" ]; then
  echo "PostgreSQL tests use ${ZFS_SYNC_TEST_POSTGRES_URL}"
else
  echo "PostgreSQL is not available: its tests will say they skipped"
fi

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast
fi
cargo test --workspace --all-features --doc

echo "== Python bindings"
bash zfs-sync-py/ci.sh

echo "== REST API negative testing (schemathesis)"
bash scripts/schemathesis.sh

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
if [ "$FUZZ_SECONDS" != "0" ]; then
  echo "== Fuzzing (${FUZZ_SECONDS}s per target)"
  bash fuzz/run.sh "$FUZZ_SECONDS"
fi
