//! Behaviours of [`KeyStore`](crate::store::KeyStore).

use uuid::Uuid;

use super::builders::*;
use crate::error::Error;
use crate::model::{ApiKeyRecord, KeySource, Role};
use crate::store::Store;

pub async fn key_insert_and_find(store: &dyn Store) {
    let s = new_system(store).await;
    let k = key(Role::System(s.id));
    store.insert_key(&k).await.unwrap();
    assert_eq!(
        store.find_key_by_hash(&k.key_hash).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(
        store.find_key_by_hash(&unique("nohash")).await.unwrap(),
        None
    );
    assert_exists(
        store
            .insert_key(&ApiKeyRecord {
                id: Uuid::new_v4(),
                ..k.clone()
            })
            .await,
    );
    assert_not_found(store.insert_key(&key(Role::System(Uuid::new_v4()))).await);
}

pub async fn key_rotation(store: &dyn Store) {
    let s = new_system(store).await;
    let other = new_system(store).await;
    let old1 = key(Role::System(s.id));
    let old2 = key(Role::System(s.id));
    let theirs = key(Role::System(other.id));
    for k in [&old1, &old2, &theirs] {
        store.insert_key(k).await.unwrap();
    }
    let new = key(Role::System(s.id));
    store.replace_system_keys(s.id, &new).await.unwrap();
    assert_eq!(store.find_key_by_hash(&old1.key_hash).await.unwrap(), None);
    assert_eq!(store.find_key_by_hash(&old2.key_hash).await.unwrap(), None);
    assert_eq!(
        store.find_key_by_hash(&new.key_hash).await.unwrap(),
        Some(new.clone())
    );
    assert_eq!(
        store.find_key_by_hash(&theirs.key_hash).await.unwrap(),
        Some(theirs)
    );
    let ghost = Uuid::new_v4();
    assert_not_found(
        store
            .replace_system_keys(ghost, &key(Role::System(ghost)))
            .await,
    );
}

pub async fn admin_key_count(store: &dyn Store) {
    // Only this behaviour creates admin keys, so the count moves by exactly what it adds.
    let before = store.count_admin_keys().await.unwrap();
    let s = new_system(store).await;
    store.insert_key(&key(Role::System(s.id))).await.unwrap();
    store.insert_key(&key(Role::Admin)).await.unwrap();
    store.insert_key(&key(Role::Admin)).await.unwrap();
    assert_eq!(store.count_admin_keys().await.unwrap(), before + 2);
    let admin = key(Role::Admin);
    store.insert_key(&admin).await.unwrap();
    assert_eq!(
        store
            .find_key_by_hash(&admin.key_hash)
            .await
            .unwrap()
            .map(|k| k.role),
        Some(Role::Admin)
    );
}

fn configured(k: ApiKeyRecord) -> ApiKeyRecord {
    ApiKeyRecord {
        source: KeySource::Configured,
        name: "admin_key setting".into(),
        ..k
    }
}

/// Admin keys are listed (oldest first, with name and source), revoked one at a time but
/// never the last, and the configured key is replaced by the next one. Revokes every admin
/// key it did not create: it runs alone on its store (or in turn, as `run_all` does).
pub async fn admin_keys_listed_revoked_and_configured(store: &dyn Store) {
    let mut mine = key(Role::Admin);
    mine.created_at = t0() + chrono::Duration::seconds(1);
    store.insert_key(&mine).await.unwrap();
    for k in store.list_admin_keys().await.unwrap() {
        if k.id != mine.id {
            store.revoke_admin_key(k.id).await.unwrap();
        }
    }
    assert_eq!(store.list_admin_keys().await.unwrap(), vec![mine.clone()]);
    // The last admin key stays.
    assert!(matches!(
        store.revoke_admin_key(mine.id).await,
        Err(Error::Conflict { .. })
    ));
    // System keys and unknown ids are no admin keys.
    let s = new_system(store).await;
    let sys = key(Role::System(s.id));
    store.insert_key(&sys).await.unwrap();
    assert_not_found(store.revoke_admin_key(sys.id).await);
    assert_not_found(store.revoke_admin_key(Uuid::new_v4()).await);
    assert!(
        store
            .find_key_by_hash(&sys.key_hash)
            .await
            .unwrap()
            .is_some()
    );

    // A configured key is stored; another one replaces it.
    let a = configured(key(Role::Admin));
    assert_eq!(store.set_configured_admin_key(&a).await.unwrap(), 0);
    assert_eq!(
        store.set_configured_admin_key(&a).await.unwrap(),
        0,
        "idempotent"
    );
    let mut b = configured(key(Role::Admin));
    b.created_at = t0() + chrono::Duration::seconds(2);
    assert_eq!(store.set_configured_admin_key(&b).await.unwrap(), 1);
    assert_eq!(store.find_key_by_hash(&a.key_hash).await.unwrap(), None);
    assert_eq!(
        store.list_admin_keys().await.unwrap(),
        vec![mine.clone(), b.clone()],
        "oldest first"
    );
    // A created key that becomes the configured one keeps its id, name and time.
    let c = ApiKeyRecord {
        id: Uuid::new_v4(),
        ..configured(mine.clone())
    };
    assert_eq!(store.set_configured_admin_key(&c).await.unwrap(), 1);
    assert_eq!(store.find_key_by_hash(&b.key_hash).await.unwrap(), None);
    assert_eq!(
        store.list_admin_keys().await.unwrap(),
        vec![ApiKeyRecord {
            source: KeySource::Configured,
            ..mine.clone()
        }]
    );
    // A system key's hash cannot become the admin key.
    let clash = ApiKeyRecord {
        id: Uuid::new_v4(),
        ..configured(sys.clone())
    };
    let clash = ApiKeyRecord {
        role: Role::Admin,
        ..clash
    };
    assert_exists(store.set_configured_admin_key(&clash).await);
    assert_eq!(
        store.find_key_by_hash(&sys.key_hash).await.unwrap(),
        Some(sys)
    );
    // Revoked keys are gone at once.
    let d = key(Role::Admin);
    store.insert_key(&d).await.unwrap();
    store.revoke_admin_key(mine.id).await.unwrap();
    assert_eq!(store.find_key_by_hash(&mine.key_hash).await.unwrap(), None);
    assert_eq!(store.list_admin_keys().await.unwrap(), vec![d]);
}
