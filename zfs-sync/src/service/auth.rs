//! API keys: generation, hashing, authentication, authorization, system registration and
//! key rotation.
//!
//! A key is `zs_` followed by 64 hex digits (256 bits from the operating system's random
//! source). Only its SHA-256 is stored; a presented key is hashed, looked up by hash and the
//! hashes compared in constant time. Keys are returned exactly once, by the call that creates
//! or rotates them.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{ApiKeyRecord, Role, System, validate_host, validate_ssh_user};
use crate::service::systems::{SystemRef, by_hostname, resolve};
use crate::store::Store;

/// Every key starts with this, so leaked keys are easy to recognise (secret scanners).
pub const KEY_PREFIX: &str = "zs_";
/// Random bytes per generated key.
const KEY_BYTES: usize = 32;
/// Characters of a key kept in [`ApiKeyRecord::prefix`] (the `zs_` and 8 hex digits).
const SHOWN_PREFIX_LEN: usize = 11;
/// Shortest key accepted from configuration (`ZFS_SYNC_ADMIN_KEY`): 128 bits of hex.
pub const MIN_CONFIGURED_KEY_LEN: usize = 32;

/// A key as created: the secret, shown once, and the record that is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key", &"<secret>")
            .field("record", &self.record)
            .finish()
    }
}

/// Lower-case hex SHA-256 of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh random key (`zs_` + 64 hex digits).
pub fn generate_key() -> Result<String> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::backend_msg(format!("no random source: {e}")))?;
    Ok(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
}

/// The record stored for `key`.
pub fn key_record(key: &str, role: Role, now: DateTime<Utc>) -> ApiKeyRecord {
    ApiKeyRecord {
        id: Uuid::new_v4(),
        key_hash: hash_key(key),
        prefix: key.chars().take(SHOWN_PREFIX_LEN).collect(),
        role,
        created_at: now,
    }
}

/// Generates a key for `role` (not yet stored).
pub fn issue_key(role: Role, now: DateTime<Utc>) -> Result<IssuedKey> {
    let key = generate_key()?;
    let record = key_record(&key, role, now);
    Ok(IssuedKey { key, record })
}

/// The role of a presented key. `Unauthorized` when it is empty or matches no stored key.
pub async fn authenticate(store: &dyn Store, presented_key: &str) -> Result<Role> {
    let presented_key = presented_key.trim();
    if presented_key.is_empty() {
        return Err(Error::Unauthorized {
            message: "missing API key (header X-API-Key)".into(),
        });
    }
    let hash = hash_key(presented_key);
    let invalid = || Error::Unauthorized {
        message: "invalid API key".into(),
    };
    let record = store.find_key_by_hash(&hash).await?.ok_or_else(invalid)?;
    // The lookup is by hash; the constant-time comparison makes sure a store that matched
    // loosely (prefix, case-insensitive collation) can never authenticate a different key.
    if bool::from(record.key_hash.as_bytes().ct_eq(hash.as_bytes())) {
        Ok(record.role)
    } else {
        Err(invalid())
    }
}

/// `Ok` when `role` may act for `system_id`: an admin, or that system's own key.
pub fn authorize_system(role: Role, system_id: Uuid) -> Result<()> {
    match role {
        Role::Admin => Ok(()),
        Role::System(own) if own == system_id => Ok(()),
        Role::System(_) => Err(Error::Forbidden {
            message: format!("this API key may not act for system {system_id}"),
        }),
    }
}

/// The id of the system `r` names, when `role` may act for it: an admin (a hostname that
/// names nothing is `NotFound`), or that system's own key (any other system, known or not, is
/// `Forbidden`, so a system key learns nothing about other hostnames). The check compares
/// the resolved id.
pub async fn authorize_system_ref(store: &dyn Store, role: Role, r: &SystemRef) -> Result<Uuid> {
    match (role, r) {
        (Role::Admin, _) => resolve(store, r).await,
        (Role::System(_), SystemRef::Id(id)) => authorize_system(role, *id).map(|()| *id),
        (Role::System(own), SystemRef::Hostname(h)) => match by_hostname(store, h).await? {
            Some(s) if s.id == own => Ok(own),
            _ => Err(Error::Forbidden {
                message: format!("this API key may not act for system {h}"),
            }),
        },
    }
}

/// `Ok` for an admin key.
pub fn authorize_admin(role: Role) -> Result<()> {
    match role {
        Role::Admin => Ok(()),
        Role::System(_) => Err(Error::Forbidden {
            message: "this operation needs an admin API key".into(),
        }),
    }
}

/// `Ok` when `role` is an admin or one of `system_ids` (e.g. the members of a group).
pub fn authorize_any_of(role: Role, system_ids: &[Uuid], what: &str) -> Result<()> {
    match role {
        Role::Admin => Ok(()),
        Role::System(own) if system_ids.contains(&own) => Ok(()),
        Role::System(_) => Err(Error::Forbidden {
            message: format!("this API key may not read {what}"),
        }),
    }
}

/// Creates and stores a new admin key; returns it (shown once).
pub async fn create_admin_key(store: &dyn Store, now: DateTime<Utc>) -> Result<String> {
    let issued = issue_key(Role::Admin, now)?;
    store.insert_key(&issued.record).await?;
    Ok(issued.key)
}

/// What [`ensure_admin_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminKeySetup {
    /// The configured key was stored (or already was).
    Configured,
    /// An admin key already existed; nothing was done.
    Existing,
    /// No key was configured and none existed: this one was generated and stored. Print it
    /// once; it is never shown again.
    Generated(String),
}

/// First start: makes sure an admin key exists. A configured key is stored (idempotent); without
/// one, a key is generated when the store has no admin key.
pub async fn ensure_admin_key(
    store: &dyn Store,
    configured: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AdminKeySetup> {
    if let Some(key) = configured {
        let key = key.trim();
        if key.len() < MIN_CONFIGURED_KEY_LEN {
            return Err(Error::invalid(
                "admin_key",
                format!(
                    "must be at least {MIN_CONFIGURED_KEY_LEN} characters (128 bits of hex); generate one with `zfs-sync-server create-admin-key`"
                ),
            ));
        }
        let record = key_record(key, Role::Admin, now);
        return match store.find_key_by_hash(&record.key_hash).await? {
            Some(existing) if existing.role == Role::Admin => Ok(AdminKeySetup::Configured),
            Some(_) => Err(Error::invalid(
                "admin_key",
                "is already in use as a system key",
            )),
            None => {
                store.insert_key(&record).await?;
                Ok(AdminKeySetup::Configured)
            }
        };
    }
    if store.count_admin_keys().await? > 0 {
        return Ok(AdminKeySetup::Existing);
    }
    Ok(AdminKeySetup::Generated(
        create_admin_key(store, now).await?,
    ))
}

/// Checks a system's host names, user and port.
pub fn validate_system(system: &System) -> Result<()> {
    validate_host("hostname", &system.hostname)?;
    if let Some(h) = &system.ssh_hostname {
        validate_host("ssh_hostname", h)?;
    }
    if let Some(u) = &system.ssh_user {
        validate_ssh_user("ssh_user", u)?;
    }
    if system.ssh_port == 0 {
        return Err(Error::invalid("ssh_port", "must be between 1 and 65535"));
    }
    if let Some(p) = &system.platform {
        crate::model::text::check_text("platform", p)?;
    }
    crate::model::text::check_metadata("extra_metadata", &system.extra_metadata)?;
    Ok(())
}

/// Registers a system and issues its key; returns the key (shown once). When the key cannot be
/// stored the system is removed again, so a registration never leaves a system without a key.
pub async fn register_system(
    store: &dyn Store,
    system: &System,
    now: DateTime<Utc>,
) -> Result<String> {
    validate_system(system)?;
    let issued = issue_key(Role::System(system.id), now)?;
    store.create_system(system).await?;
    if let Err(e) = store.insert_key(&issued.record).await {
        // Best effort: the original error is the one to report.
        let _ = store.delete_system(system.id).await;
        return Err(e);
    }
    Ok(issued.key)
}

/// Replaces every key of a system with a new one; the old key stops working at once.
pub async fn rotate_system_key(
    store: &dyn Store,
    system_id: Uuid,
    now: DateTime<Utc>,
) -> Result<String> {
    let issued = issue_key(Role::System(system_id), now)?;
    store.replace_system_keys(system_id, &issued.record).await?;
    Ok(issued.key)
}

/// Failed authentications counted per client (its address): after `limit` failures within
/// a window of `window_seconds`, the client is refused until the window ends, before its key
/// is even looked up, so a key cannot be guessed at the speed of the server. Successful
/// requests are never counted. Each server process counts for itself; 0 turns it off.
#[derive(Debug)]
pub struct AuthThrottle {
    limit: u32,
    window: chrono::Duration,
    /// Per client: when its window began, and its failures in it.
    failures: std::sync::Mutex<std::collections::HashMap<String, (DateTime<Utc>, u32)>>,
}

/// Clients remembered at most; beyond it, clients whose window ended are forgotten first.
const THROTTLE_CLIENTS: usize = 100_000;

impl AuthThrottle {
    pub fn new(limit: u32, window_seconds: u64) -> Self {
        AuthThrottle {
            limit,
            window: chrono::Duration::seconds(
                i64::try_from(window_seconds).unwrap_or(i64::MAX / 2_000),
            ),
            failures: std::sync::Mutex::default(),
        }
    }

    /// `Err(seconds)` to wait while `client` is over the limit, else `Ok`.
    pub fn check(&self, client: &str, now: DateTime<Utc>) -> std::result::Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(client) {
            Some((start, n)) if *n >= self.limit && now < *start + self.window => {
                let left = (*start + self.window - now).num_seconds().max(1);
                Err(u64::try_from(left).unwrap_or(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication of `client`.
    pub fn failed(&self, client: &str, now: DateTime<Utc>) {
        if self.limit == 0 {
            return;
        }
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= THROTTLE_CLIENTS && !map.contains_key(client) {
            let window = self.window;
            map.retain(|_, (start, _)| now < *start + window);
            if map.len() >= THROTTLE_CLIENTS {
                // Still full of clients failing right now: count this one as well, by
                // forgetting an arbitrary other (a flood cannot grow memory).
                if let Some(k) = map.keys().next().cloned() {
                    map.remove(&k);
                }
            }
        }
        let entry = map.entry(client.to_string()).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_authentications_are_throttled_per_client_for_a_window() {
        use chrono::TimeZone;
        let t0 = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let s = |n| chrono::Duration::seconds(n);
        let throttle = AuthThrottle::new(3, 60);
        for i in 0..3 {
            assert_eq!(throttle.check("10.0.0.1", t0 + s(i)), Ok(()));
            throttle.failed("10.0.0.1", t0 + s(i));
        }
        assert_eq!(throttle.check("10.0.0.1", t0 + s(10)), Err(50));
        assert_eq!(throttle.check("10.0.0.2", t0 + s(10)), Ok(()), "per client");
        assert_eq!(
            throttle.check("10.0.0.1", t0 + s(60)),
            Ok(()),
            "the window ended"
        );
        throttle.failed("10.0.0.1", t0 + s(61));
        assert_eq!(
            throttle.check("10.0.0.1", t0 + s(62)),
            Ok(()),
            "a new window"
        );
        let off = AuthThrottle::new(0, 60);
        for _ in 0..10 {
            off.failed("x", t0);
        }
        assert_eq!(off.check("x", t0), Ok(()));
    }

    #[test]
    fn keys_are_long_random_and_hash_stably() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 2 * KEY_BYTES);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        // SHA-256 of "abc", a published test vector.
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn records_never_hold_the_key() {
        let issued = issue_key(Role::Admin, crate::testing::fixtures::epoch()).unwrap();
        assert!(!issued.record.key_hash.contains(&issued.key[3..]));
        assert_eq!(issued.record.prefix.len(), SHOWN_PREFIX_LEN);
        assert!(issued.key.starts_with(&issued.record.prefix));
        assert!(!format!("{issued:?}").contains(&issued.key));
    }

    #[test]
    fn system_keys_act_only_for_their_system() {
        let own = Uuid::new_v4();
        let other = Uuid::new_v4();
        assert!(authorize_system(Role::Admin, other).is_ok());
        assert!(authorize_system(Role::System(own), own).is_ok());
        assert!(matches!(
            authorize_system(Role::System(own), other),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(
            authorize_admin(Role::System(own)),
            Err(Error::Forbidden { .. })
        ));
        assert!(authorize_any_of(Role::System(own), &[other, own], "x").is_ok());
        assert!(authorize_any_of(Role::System(own), &[other], "x").is_err());
    }

    use crate::store::{KeyStore, SystemStore};

    fn system(hostname: &str) -> System {
        System {
            ssh_user: Some("zfs".into()),
            ..crate::testing::fixtures::system(Uuid::new_v4(), hostname)
        }
    }

    #[tokio::test]
    async fn registration_authentication_and_rotation() {
        let store = crate::store::memory::InMemoryStore::new();
        let now = crate::testing::fixtures::epoch();
        let a = system("a.example");
        let key = register_system(&store, &a, now).await.unwrap();
        assert_eq!(
            authenticate(&store, &key).await.unwrap(),
            Role::System(a.id)
        );
        assert!(matches!(
            authenticate(&store, "zs_nope").await,
            Err(Error::Unauthorized { .. })
        ));
        assert!(matches!(
            authenticate(&store, "  ").await,
            Err(Error::Unauthorized { .. })
        ));
        // A duplicate hostname fails and leaves no orphan key behind.
        let dup = system("a.example");
        assert!(matches!(
            register_system(&store, &dup, now).await,
            Err(Error::AlreadyExists { .. })
        ));
        // Invalid systems are refused before anything is written.
        let mut bad = system("b.example");
        bad.ssh_user = Some("-oProxyCommand=x".into());
        assert!(matches!(
            register_system(&store, &bad, now).await,
            Err(Error::InvalidInput { .. })
        ));
        assert!(store.get_system(bad.id).await.unwrap().is_none());

        let rotated = rotate_system_key(&store, a.id, now).await.unwrap();
        assert_ne!(rotated, key);
        assert!(
            authenticate(&store, &key).await.is_err(),
            "the old key stops working at once"
        );
        assert_eq!(
            authenticate(&store, &rotated).await.unwrap(),
            Role::System(a.id)
        );
        assert!(matches!(
            rotate_system_key(&store, Uuid::new_v4(), now).await,
            Err(Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn first_start_admin_key() {
        let store = crate::store::memory::InMemoryStore::new();
        let now = crate::testing::fixtures::epoch();
        let generated = match ensure_admin_key(&store, None, now).await.unwrap() {
            AdminKeySetup::Generated(k) => k,
            other => panic!("expected a generated key, got {other:?}"),
        };
        assert_eq!(authenticate(&store, &generated).await.unwrap(), Role::Admin);
        // Once one exists, nothing is generated again.
        assert_eq!(
            ensure_admin_key(&store, None, now).await.unwrap(),
            AdminKeySetup::Existing
        );
        // A configured key is stored once and works; too short ones are refused.
        let configured = "c".repeat(MIN_CONFIGURED_KEY_LEN);
        assert_eq!(
            ensure_admin_key(&store, Some(&configured), now)
                .await
                .unwrap(),
            AdminKeySetup::Configured
        );
        assert_eq!(
            ensure_admin_key(&store, Some(&configured), now)
                .await
                .unwrap(),
            AdminKeySetup::Configured
        );
        assert_eq!(store.count_admin_keys().await.unwrap(), 2);
        assert_eq!(
            authenticate(&store, &configured).await.unwrap(),
            Role::Admin
        );
        assert!(matches!(
            ensure_admin_key(&store, Some("short"), now).await,
            Err(Error::InvalidInput { .. })
        ));
    }
}
