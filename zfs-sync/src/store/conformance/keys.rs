//! Behaviours of [`KeyStore`](crate::store::KeyStore).

use uuid::Uuid;

use super::builders::*;
use crate::model::{ApiKeyRecord, Role};
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
