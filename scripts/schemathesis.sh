#!/usr/bin/env bash
# Negative and conformance testing of the whole REST API with schemathesis.
#
# Builds `zfs-sync-server`, starts it on a fresh SQLite file and a free loopback port with a
# known admin key, and runs schemathesis against its own `/openapi.json` with that key in
# `X-API-Key`. Every operation gets generated valid and invalid requests (examples, coverage
# and fuzzing phases); a run fails on any 5xx, on a status code or content type the document
# does not declare, or on a body that does not match the declared schema.
#
# Two passes: the whole API with the admin key, then with a registered system's own key and
# every `system_id` pointed at that system (scripts/schemathesis_hooks.py), so the host-side
# operations run past authorization too.
#
# Bounded: at most $ZFS_SYNC_SCHEMATHESIS_MAX_EXAMPLES cases per operation in the fuzzing
# phase, and each pass stops at its time budget (150 s + 60 s by default); a hard `timeout`
# kills a pass that overruns its budget by a minute. The server is always stopped.
#
# Environment (all optional):
#   CARGO_TARGET_DIR                      where cargo builds (default: ./target)
#   ZFS_SYNC_SCHEMATHESIS_VENV            virtualenv holding schemathesis
#                                         (default: /tmp/zfs-sync-schemathesis-venv; created
#                                         and filled from PyPI when missing)
#   ZFS_SYNC_SCHEMATHESIS_MAX_EXAMPLES    cases per operation (default 25)
#   ZFS_SYNC_SCHEMATHESIS_MAX_TIME        time budget of the admin-key pass in seconds
#                                         (default 150)
#   ZFS_SYNC_SCHEMATHESIS_SYSTEM_MAX_TIME time budget of the system-key pass (default 60)
#   ZFS_SYNC_SCHEMATHESIS_WORKERS         concurrent schemathesis workers (default 1)
#   ZFS_SYNC_SCHEMATHESIS_SEED            generation seed (default 20261126, so CI runs are
#                                         reproducible; set `random` for a fresh one)
#   ZFS_SYNC_SCHEMATHESIS_DATABASE_URL    the server's database (default: a fresh SQLite file
#                                         in a temporary directory); for PostgreSQL also set
#                                         ZFS_SYNC_DATABASE_SCHEMA to a schema of its own
#   ZFS_SYNC_SCHEMATHESIS_REPORT_DIR      keep the JUnit and NDJSON reports here (default: a
#                                         temporary directory removed at the end)
#
# At the end scripts/hostile_counts.py prints the requests tried and the status codes of each
# pass (the figures of TESTING.md's "Hostile-input run").
#
# Usage: scripts/schemathesis.sh [extra schemathesis run arguments...]
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

venv=${ZFS_SYNC_SCHEMATHESIS_VENV:-/tmp/zfs-sync-schemathesis-venv}
max_examples=${ZFS_SYNC_SCHEMATHESIS_MAX_EXAMPLES:-25}
max_time=${ZFS_SYNC_SCHEMATHESIS_MAX_TIME:-150}
system_max_time=${ZFS_SYNC_SCHEMATHESIS_SYSTEM_MAX_TIME:-60}
# One worker: with two threads, CPython 3.11's ast.parse (hypothesis describes strategies
# with it) can fail with "SystemError: AST constructor recursion depth mismatch".
workers=${ZFS_SYNC_SCHEMATHESIS_WORKERS:-1}
seed=${ZFS_SYNC_SCHEMATHESIS_SEED:-20261126}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

say() { printf 'schemathesis.sh: %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/zfs-sync-schemathesis.XXXXXX")
server_pid=

cleanup() {
    local status=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        # Graceful shutdown first; SIGKILL if it has not stopped within 10 s.
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -s $work/server.log ]]; then
        say "last lines of the server log:"
        tail -n 40 "$work/server.log" >&2 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- schemathesis ---------------------------------------------------------------------------
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "schemathesis $SCHEMATHESIS_VERSION needs Python 3.11 or later; python3 is $(python3 --version 2>&1)"
    exit 1
fi
if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != *"version $SCHEMATHESIS_VERSION"* ]]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- the server -----------------------------------------------------------------------------
say "building zfs-sync-server"
CARGO_TARGET_DIR=$target_dir cargo build --quiet -p zfs-sync-http --bin zfs-sync-server
server_bin=$target_dir/debug/zfs-sync-server

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
admin_key=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
base=http://127.0.0.1:$port

database_url=${ZFS_SYNC_SCHEMATHESIS_DATABASE_URL:-sqlite://$work/zfs_sync.db}
say "starting the server on $base with database $database_url"
# Started in the empty work directory, so no zfs_sync.yaml of the checkout is picked up.
(
    cd "$work"
    unset ZFS_SYNC_CONFIG
    # Thousands of requests with wrong keys from one address: the failed-authentication
    # throttle (tested on its own) would answer them 429, so it is off here. The webhooks
    # the fuzzer creates name random URLs: no delivery worker, so nothing is posted to them.
    export ZFS_SYNC_DATABASE_URL="$database_url" \
        ZFS_SYNC_HOST=127.0.0.1 \
        ZFS_SYNC_PORT="$port" \
        ZFS_SYNC_ADMIN_KEY="$admin_key" \
        ZFS_SYNC_LOG_LEVEL=warn \
        ZFS_SYNC_AUTH_FAILURES_PER_MINUTE=0 \
        ZFS_SYNC_WEBHOOKS_ENABLED=false
    exec "$server_bin" serve
) >"$work/server.log" 2>&1 &
server_pid=$!

ready=
for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        say "the server exited before answering"
        exit 1
    fi
    if curl --silent --fail --max-time 2 "$base/api/v1/health/live" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ -z $ready ]]; then
    say "the server did not answer $base/api/v1/health/live within 30 s"
    exit 1
fi

# The key must actually grant admin rights, or every case would test only the 401 path.
status=$(curl --silent --output /dev/null --write-out '%{http_code}' \
    -H "X-API-Key: $admin_key" "$base/api/v1/systems")
if [[ $status != 200 ]]; then
    say "GET /api/v1/systems with the admin key answered $status, expected 200"
    exit 1
fi

# --- the runs -------------------------------------------------------------------------------
report_dir=${ZFS_SYNC_SCHEMATHESIS_REPORT_DIR:-$work/report}
seed_args=()
if [[ $seed != random ]]; then
    seed_args=(--seed "$seed")
fi

# run_pass LABEL KEY BUDGET [extra schemathesis arguments...]: one bounded schemathesis run
# with KEY in X-API-Key; returns schemathesis' exit status.
run_pass() {
    local label=$1 key=$2 budget=$3
    shift 3
    mkdir -p "$report_dir/$label"
    say "$label pass: schemathesis $SCHEMATHESIS_VERSION, $max_examples examples per operation, at most ${budget}s"
    local status=0
    timeout --kill-after=10 "$((budget + 60))" \
        "$venv/bin/schemathesis" run "$base/openapi.json" \
        --url "$base" \
        --header "X-API-Key: $key" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --max-examples "$max_examples" \
        --max-time "$budget" \
        --workers "$workers" \
        --request-timeout 30 \
        --generation-database none \
        --no-color \
        --report junit,ndjson \
        --report-dir "$report_dir/$label" \
        "${seed_args[@]}" \
        "$@" || status=$?
    if [[ $status -eq 124 || $status -eq 137 ]]; then
        say "$label pass: schemathesis overran its time budget and was killed"
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        say "$label pass: the server died during the run"
        exit 1
    fi
    return "$status"
}

failed=()

# 1. The whole API with the admin key (random ids: mostly the validation and 404 paths of
#    system-scoped operations, everything of the admin operations).
run_pass admin "$admin_key" "$max_time" "$@" || failed+=(admin)

# 2. A registered system's own key, every system_id pointed at that system (hooks file), so
#    what a host does (reports, inventories, heartbeats, instructions) runs past the key
#    check. Key rotation (it would end the pass's own key) and system deletion are left out.
registered=$(curl --silent --fail -X POST -H "X-API-Key: $admin_key" \
    -H 'Content-Type: application/json' \
    -d '{"hostname": "schemathesis-host.example.org", "ssh_user": "zfs-sync"}' \
    "$base/api/v1/systems") || {
    say "could not register the system for the system-key pass"
    exit 1
}
system_id=$(printf '%s' "$registered" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
system_key=$(printf '%s' "$registered" | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')
ZFS_SYNC_SCHEMATHESIS_SYSTEM_ID=$system_id \
    SCHEMATHESIS_HOOKS=schemathesis_hooks \
    PYTHONPATH="$repo/scripts${PYTHONPATH:+:$PYTHONPATH}" \
    run_pass system "$system_key" "$system_max_time" \
    --exclude-name 'POST /api/v1/systems/{system_id}/api-key/rotate' \
    --exclude-name 'DELETE /api/v1/systems/{system_id}' \
    "$@" || failed+=(system)

# The figures TESTING.md records: requests tried and status codes per pass (exits 1 on a 5xx).
python3 "$repo/scripts/hostile_counts.py" "$report_dir" || failed+=(counts)

if [[ ${#failed[@]} -gt 0 ]]; then
    say "FAILED: ${failed[*]} pass(es) found failures (see above)"
    exit 1
fi
say "passed: both passes, no failures"
