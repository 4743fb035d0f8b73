//! The SQLite schema as versioned migrations, applied in order at open.
//!
//! Ids are 16-byte BLOBs, times INTEGER microseconds since the epoch (UTC), u64 values the
//! bits of an INTEGER (see [`crate::codec`]), JSON as TEXT. Each migration runs in its own
//! `BEGIN IMMEDIATE` transaction together with its row in `schema_migrations`, so a crash
//! leaves the database at the previous version and two processes opening one file at once
//! apply each migration once.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use zfs_sync::{Error, Result};

use super::error::map_err;

/// One schema version.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first. Never edit a released one: add a new version.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "base schema",
        sql: V1,
    },
    Migration {
        version: 2,
        name: "resume tokens and planner indexes",
        sql: V2,
    },
];

/// The version this build creates and expects.
pub const LATEST_VERSION: i64 = 2;

const V1: &str = r#"
CREATE TABLE systems (
    id              BLOB PRIMARY KEY NOT NULL,
    hostname        TEXT NOT NULL UNIQUE,
    platform        TEXT,
    ssh_hostname    TEXT,
    ssh_user        TEXT,
    ssh_port        INTEGER NOT NULL,
    capabilities    TEXT,
    extra_metadata  TEXT NOT NULL,
    last_seen       INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'system')),
    system_id   BLOB REFERENCES systems(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    CHECK ((role = 'admin') = (system_id IS NULL))
);
CREATE INDEX api_keys_system ON api_keys(system_id);

-- Clustered by the natural key, so a system's inventory is one range scan.
CREATE TABLE snapshots (
    system_id       BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool            TEXT NOT NULL,
    dataset         TEXT NOT NULL,
    name            TEXT NOT NULL,
    id              BLOB NOT NULL UNIQUE,
    guid            INTEGER,
    createtxg       INTEGER,
    creation        INTEGER NOT NULL,
    used            INTEGER NOT NULL,
    referenced      INTEGER NOT NULL,
    extra_metadata  TEXT NOT NULL,
    last_reported   INTEGER NOT NULL,
    PRIMARY KEY (system_id, pool, dataset, name)
) WITHOUT ROWID;

-- hub_system_id has no foreign key: a group whose hub is deleted keeps existing.
CREATE TABLE sync_groups (
    id                        BLOB PRIMARY KEY NOT NULL,
    name                      TEXT NOT NULL UNIQUE,
    description               TEXT,
    enabled                   INTEGER NOT NULL,
    topology                  TEXT NOT NULL CHECK (topology IN ('bidirectional', 'hub_and_spoke')),
    hub_system_id             BLOB,
    sync_interval_seconds     INTEGER NOT NULL,
    snapshot_filter           TEXT,
    min_snapshot_age_seconds  INTEGER NOT NULL,
    lag_threshold_seconds     INTEGER NOT NULL,
    transfer                  TEXT NOT NULL CHECK (transfer IN ('push', 'pull')),
    send_compressed           INTEGER NOT NULL,
    send_raw                  INTEGER NOT NULL,
    send_large_blocks         INTEGER NOT NULL,
    send_embedded             INTEGER NOT NULL,
    conflict_strategy         TEXT NOT NULL,
    allow_destructive         INTEGER NOT NULL,
    mirror_deletions          INTEGER NOT NULL,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id      BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    system_id     BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    dataset_root  TEXT,
    PRIMARY KEY (group_id, system_id)
);
CREATE INDEX group_members_system ON group_members(system_id);

CREATE TABLE jobs (
    id                BLOB PRIMARY KEY NOT NULL,
    group_id          BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset           TEXT NOT NULL,
    source_system_id  BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    target_system_id  BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    runner_system_id  BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    spec              TEXT NOT NULL,
    status            TEXT NOT NULL,
    lease_expires_at  INTEGER,
    attempts          INTEGER NOT NULL,
    error             TEXT,
    bytes             INTEGER,
    resume_token      TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
-- At most one active job per (group, dataset, target).
CREATE UNIQUE INDEX jobs_active ON jobs(group_id, dataset, target_system_id)
    WHERE status IN ('pending', 'leased');
CREATE INDEX jobs_runner ON jobs(runner_system_id, status);

CREATE TABLE sync_states (
    id             BLOB PRIMARY KEY NOT NULL,
    group_id       BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset        TEXT NOT NULL,
    system_id      BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    status         TEXT NOT NULL,
    last_check     INTEGER,
    last_sync      INTEGER,
    lag_seconds    INTEGER NOT NULL,
    missing_count  INTEGER NOT NULL,
    error_message  TEXT,
    job_id         BLOB REFERENCES jobs(id) ON DELETE SET NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (group_id, dataset, system_id)
);
CREATE INDEX sync_states_system ON sync_states(system_id);

CREATE TABLE conflicts (
    id           BLOB PRIMARY KEY NOT NULL,
    group_id     BLOB NOT NULL REFERENCES sync_groups(id) ON DELETE CASCADE,
    dataset      TEXT NOT NULL,
    system_a     BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    system_b     BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    details      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'resolved', 'gone')),
    detected_at  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    resolved_at  INTEGER,
    resolution   TEXT
);
CREATE INDEX conflicts_group ON conflicts(group_id, status);
"#;

const V2: &str = r#"
CREATE TABLE resume_tokens (
    system_id    BLOB NOT NULL REFERENCES systems(id) ON DELETE CASCADE,
    pool         TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    token        TEXT NOT NULL,
    reported_at  INTEGER NOT NULL,
    PRIMARY KEY (system_id, pool, dataset)
) WITHOUT ROWID;

-- One open conflict per (group, dataset, pair, kind).
CREATE UNIQUE INDEX conflicts_open ON conflicts(group_id, dataset, system_a, system_b, kind)
    WHERE status = 'open';
CREATE INDEX conflicts_system_a ON conflicts(system_a);
CREATE INDEX conflicts_system_b ON conflicts(system_b);
CREATE INDEX jobs_group ON jobs(group_id, created_at);
CREATE INDEX jobs_source ON jobs(source_system_id);
CREATE INDEX jobs_target ON jobs(target_system_id);
CREATE INDEX sync_states_job ON sync_states(job_id);
"#;

/// The version the database is at (0: empty).
pub(crate) fn current_version(conn: &Connection) -> Result<i64> {
    let has_table: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    if has_table.is_none() {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
    .map_err(map_err)
}

/// Applies every migration up to `target` (the latest when `None`); returns the version
/// reached. Refuses a database newer than this build.
pub(crate) fn migrate(conn: &mut Connection, target: Option<i64>) -> Result<i64> {
    let target = target.unwrap_or(LATEST_VERSION);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER PRIMARY KEY NOT NULL,
             name        TEXT NOT NULL,
             applied_at  INTEGER NOT NULL
         )",
    )
    .map_err(map_err)?;
    for m in MIGRATIONS.iter().filter(|m| m.version <= target) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        // Read the version inside the write lock: another process may have just migrated.
        let current = current_version(&tx)?;
        if current > LATEST_VERSION {
            return Err(Error::backend_msg(format!(
                "the database schema is at version {current}, newer than this build supports ({LATEST_VERSION})"
            )));
        }
        if m.version <= current {
            continue;
        }
        tx.execute_batch(m.sql).map_err(|e| {
            Error::backend_msg(format!("migration {} ({}) failed: {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, chrono::Utc::now().timestamp_micros()],
        )
        .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
    }
    let reached = current_version(conn)?;
    if reached > LATEST_VERSION {
        return Err(Error::backend_msg(format!(
            "the database schema is at version {reached}, newer than this build supports ({LATEST_VERSION})"
        )));
    }
    Ok(reached)
}
