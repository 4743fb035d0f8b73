//! One upgrade test for both backends: a database written at schema version 1 (by an older
//! build) is migrated to the latest version in place, keeping its data.
#![cfg(any(feature = "sqlite", feature = "postgres"))]

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;
use zfs_sync::Error;
use zfs_sync::model::{
    Capabilities, Member, Metadata, NewSnapshot, Policy, Snapshot, SyncGroup, System, Topology,
};
use zfs_sync_storage::testing::SchemaProbe;

/// The upgrade, whatever the backend: `open(Some(1))` opens the database at version 1,
/// `open(None)` migrates it to the latest version, `latest` is the backend's
/// `LATEST_VERSION`.
async fn upgrade_from_v1_keeps_data<S, F, Fut>(open: F, latest: i64)
where
    S: SchemaProbe,
    F: Fn(Option<i64>) -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let old = open(Some(1)).await;
    assert_eq!(old.version().await.unwrap(), 1);
    assert!(
        !old.has_table("resume_tokens").await.unwrap(),
        "version 1 has no resume_tokens table"
    );
    let t = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    let a = System {
        ssh_user: Some("root".into()),
        ssh_port: 2222,
        capabilities: Some(Capabilities::NONE),
        last_seen: Some(t),
        created_at: t,
        updated_at: t,
        ..zfs_sync::testing::fixtures::system(Uuid::new_v4(), "alpha")
    };
    let b = System {
        platform: Some("FreeBSD".into()),
        capabilities: Some(Capabilities::ALL),
        created_at: t,
        updated_at: t,
        ..zfs_sync::testing::fixtures::system(Uuid::new_v4(), "beta")
    };
    old.create_system(&a).await.unwrap();
    old.create_system(&b).await.unwrap();
    let snaps: Vec<NewSnapshot> = (0..50u64)
        .map(|i| NewSnapshot {
            holds: None,
            userrefs: None,
            pool: "tank".into(),
            dataset: "vm1".into(),
            name: format!("daily-{i}"),
            guid: Some(u64::MAX - i),
            createtxg: Some(100 + i),
            creation: t + chrono::Duration::days(i as i64),
            used: 1 << 40,
            referenced: 3 << 33,
            extra_metadata: Metadata::new(),
        })
        .collect();
    let stored = v1_snapshots(a.id, &snaps, t);
    old.insert_v1_snapshots(&stored).await.unwrap();
    let mut members = vec![
        Member {
            system_id: a.id,
            dataset_root: None,
        },
        Member {
            system_id: b.id,
            dataset_root: Some("backup/alpha".into()),
        },
    ];
    members.sort_by_key(|m| m.system_id);
    let group = SyncGroup {
        id: Uuid::new_v4(),
        name: "vms".into(),
        description: Some("old".into()),
        enabled: true,
        topology: Topology::HubAndSpoke { hub: a.id },
        sync_interval_seconds: 3600,
        policy: Policy::default(),
        members,
        created_at: t,
        updated_at: t,
    };
    old.insert_v1_group(&group).await.unwrap();
    drop(old);

    let new = open(None).await;
    assert_eq!(new.version().await.unwrap(), latest);
    // The datasets table (version 5 on SQLite, 6 on PostgreSQL) exists and works.
    assert!(new.has_table("datasets").await.unwrap());
    assert_eq!(new.get_system(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(new.get_system(b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(new.get_group(group.id).await.unwrap(), Some(group));
    let mut after = new.snapshots_of_systems(&[a.id]).await.unwrap();
    after.sort_by_key(|x| x.createtxg);
    assert_eq!(after, stored);
    // The new table works.
    new.set_resume_token(b.id, "backup", "alpha/vm1", Some("1-abc"), t)
        .await
        .unwrap();
    assert_eq!(
        new.resume_tokens_of_systems(&[b.id]).await.unwrap().len(),
        1
    );
    // Opening again applies nothing twice.
    drop(new);
    let again = open(None).await;
    assert_eq!(
        again.applied_migrations().await.unwrap(),
        (1..=latest).collect::<Vec<_>>()
    );
    again.ping().await.unwrap();
    // Deleting a system deletes its snapshots, and only its (on PostgreSQL since version 3
    // by a trigger instead of a foreign key).
    let other = again.upsert_snapshots(b.id, &snaps, t).await.unwrap();
    again.delete_system(a.id).await.unwrap();
    assert!(
        again
            .snapshots_of_systems(&[a.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        again.snapshots_of_systems(&[b.id]).await.unwrap().len(),
        other.len()
    );
    assert!(matches!(
        again.upsert_snapshots(a.id, &snaps, t).await,
        Err(Error::NotFound { .. })
    ));
}

/// The rows a version-1 database held for `items` reported at `t`.
fn v1_snapshots(system_id: Uuid, items: &[NewSnapshot], t: DateTime<Utc>) -> Vec<Snapshot> {
    items
        .iter()
        .map(|n| Snapshot {
            holds: None,
            userrefs: None,
            id: Uuid::new_v4(),
            system_id,
            pool: n.pool.clone(),
            dataset: n.dataset.clone(),
            name: n.name.clone(),
            guid: n.guid,
            createtxg: n.createtxg,
            creation: n.creation,
            used: n.used,
            referenced: n.referenced,
            extra_metadata: n.extra_metadata.clone(),
            last_reported: t,
        })
        .collect()
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrades_from_v1() {
    use zfs_sync_storage::sqlite::{LATEST_VERSION, SqliteConfig, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("old.db"));
    let open = |version| {
        let config = config.clone();
        async move { SqliteStore::open_at_version(config, version).await.unwrap() }
    };
    upgrade_from_v1_keeps_data(open, LATEST_VERSION).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upgrades_from_v1() {
    use zfs_sync_storage::postgres::{LATEST_VERSION, PostgresStore};
    zfs_sync_storage::testing::in_own_postgres_schema("upgrade_from_v1", |config| async move {
        let open = |version| {
            let config = config.clone();
            async move {
                PostgresStore::open_at_version(config, version)
                    .await
                    .unwrap()
            }
        };
        upgrade_from_v1_keeps_data(open, LATEST_VERSION).await;
    })
    .await;
}

/// The migration that names admin keys drops every stored key prefix, and marks an admin key
/// whose prefix was not that of a generated key (`zs_` + 8 hex digits) `configured` (so the
/// next start with another `admin_key` revokes it); system keys keep working.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_key_prefixes_are_dropped_and_configured_keys_recognised() {
    use zfs_sync::model::{KeySource, Role};
    use zfs_sync::store::{KeyStore, SystemStore};
    use zfs_sync_storage::sqlite::{SqliteConfig, SqliteStore};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let config = SqliteConfig::file(&path);
    let old = SqliteStore::open_at_version(config.clone(), Some(6))
        .await
        .unwrap();
    let s = zfs_sync::testing::fixtures::system(Uuid::new_v4(), "gamma");
    old.create_system(&s).await.unwrap();
    drop(old);
    let (generated, configured, system) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut insert = c
            .prepare(
                "INSERT INTO api_keys (id, key_hash, prefix, role, system_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            )
            .unwrap();
        let sys_id = Some(s.id.as_bytes().to_vec());
        let rows = [
            (generated, "h1", "zs_0123abcd", "admin", None),
            (configured, "h2", "my-own-long", "admin", None),
            (system, "h3", "zs_99887766", "system", sys_id),
        ];
        for (id, hash, prefix, role, sys) in rows {
            insert
                .execute(rusqlite::params![
                    id.as_bytes().to_vec(),
                    hash,
                    prefix,
                    role,
                    sys
                ])
                .unwrap();
        }
    }
    let new = SqliteStore::open(config).await.unwrap();
    let keys = new.list_admin_keys().await.unwrap();
    let mut seen: Vec<(Uuid, KeySource, String)> =
        keys.into_iter().map(|k| (k.id, k.source, k.name)).collect();
    seen.sort_by_key(|(id, _, _)| *id == configured);
    assert_eq!(
        seen,
        [
            (
                generated,
                KeySource::Created,
                "created before key names".to_string()
            ),
            (
                configured,
                KeySource::Configured,
                "admin_key setting".to_string()
            ),
        ]
    );
    let sys = new.find_key_by_hash("h3").await.unwrap().unwrap();
    assert_eq!(sys.role, Role::System(s.id));
    drop(new);
    let c = rusqlite::Connection::open(&path).unwrap();
    let cols: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('api_keys')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!cols.contains(&"prefix".to_string()), "{cols:?}");
}
