//! API keys: generation, hashing, authentication, authorization, system registration and
//! key rotation.
//!
//! A key is `zs_` followed by 64 hex digits (256 bits from the operating system's random
//! source). Only its SHA-256 is stored (no part of the key itself); a presented key is hashed,
//! looked up by hash and the hashes compared in constant time, on every request (no cache, so
//! a revoked key fails at once on every process sharing the store). Keys are returned exactly
//! once, by the call that creates or rotates them.
//!
//! The one key a person chooses, the configured admin key (`admin_key`), is held to
//! [`check_configured_key`] (length and obvious low entropy) rather than hashed with a slow
//! KDF: every request looks its key up by hash, and a salted KDF would need a second,
//! non-secret lookup id and cost tens of milliseconds per admin request; a key of at least 32
//! characters that is not a pattern is out of reach of offline guessing against SHA-256.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{
    ApiKeyRecord, EventType, KeySource, NewEvent, Role, System, validate_host, validate_ssh_user,
};
use crate::service::systems::{SystemRef, by_hostname, resolve};
use crate::store::Store;

/// Every key starts with this, so leaked keys are easy to recognise (secret scanners).
pub const KEY_PREFIX: &str = "zs_";
/// Random bytes per generated key.
const KEY_BYTES: usize = 32;
/// Shortest key accepted from configuration (`ZFS_SYNC_ADMIN_KEY`): 128 bits of hex.
pub const MIN_CONFIGURED_KEY_LEN: usize = 32;
/// Fewest different characters in a configured key.
const MIN_CONFIGURED_KEY_DISTINCT: usize = 8;
/// Longest admin key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;
/// The name of the configured admin key.
pub const CONFIGURED_KEY_NAME: &str = "admin_key setting";

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
pub fn key_record(
    key: &str,
    role: Role,
    source: KeySource,
    name: &str,
    now: DateTime<Utc>,
) -> ApiKeyRecord {
    ApiKeyRecord {
        id: Uuid::new_v4(),
        key_hash: hash_key(key),
        name: name.to_string(),
        role,
        source,
        created_at: now,
    }
}

/// Generates a key for `role` (not yet stored).
pub fn issue_key(role: Role, name: &str, now: DateTime<Utc>) -> Result<IssuedKey> {
    let key = generate_key()?;
    let record = key_record(&key, role, KeySource::Created, name, now);
    Ok(IssuedKey { key, record })
}

/// `InvalidInput` naming `admin_key` unless a person-chosen key is long enough and not
/// obviously guessable: at least [`MIN_CONFIGURED_KEY_LEN`] characters, at least 8 different
/// ones, not a short pattern repeated, not mostly a run such as `abcd…`, `1234…` or `aaaa…`.
/// (A random key, e.g. `openssl rand -hex 32`, passes with overwhelming probability.)
pub fn check_configured_key(key: &str) -> Result<()> {
    let bad = |rule: &str| {
        Err(Error::invalid(
            "admin_key",
            format!(
                "{rule}; generate one with `openssl rand -hex 32` or `zfs-sync-server admin-key create`"
            ),
        ))
    };
    let chars: Vec<char> = key.trim().chars().collect();
    let n = chars.len();
    if n < MIN_CONFIGURED_KEY_LEN {
        return bad(&format!(
            "must be at least {MIN_CONFIGURED_KEY_LEN} characters (128 bits of hex)"
        ));
    }
    let distinct: std::collections::HashSet<char> = chars.iter().copied().collect();
    if distinct.len() < MIN_CONFIGURED_KEY_DISTINCT {
        return bad(&format!(
            "must hold at least {MIN_CONFIGURED_KEY_DISTINCT} different characters (it looks guessable)"
        ));
    }
    if (1..=n / 2).any(|p| (p..n).all(|i| chars[i] == chars[i - p])) {
        return bad("must not be a short pattern repeated (it looks guessable)");
    }
    let steps = chars
        .windows(2)
        .filter(|w| (w[1] as i64 - w[0] as i64).abs() <= 1)
        .count();
    if steps * 2 > n - 1 {
        return bad("must not be mostly a run such as abcd…, 1234… or aaaa… (it looks guessable)");
    }
    Ok(())
}

/// Checks the name of an admin key: 1-100 characters once trimmed, no control character.
pub fn validate_key_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(Error::invalid(
            "name",
            format!("must be at most {MAX_KEY_NAME_CHARS} characters"),
        ));
    }
    crate::model::text::check_text("name", name)?;
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "must not contain control characters (newline, tab, …)",
        ));
    }
    Ok(name.to_string())
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

/// Creates and stores a new admin key named `name`; returns it (the key shown once).
pub async fn create_admin_key(
    store: &dyn Store,
    name: &str,
    now: DateTime<Utc>,
) -> Result<IssuedKey> {
    let name = validate_key_name(name)?;
    let issued = issue_key(Role::Admin, &name, now)?;
    store.insert_key(&issued.record).await?;
    record_key_event(
        store,
        EventType::AdminKeyCreated,
        None,
        now,
        serde_json::json!({"key_id": issued.record.id, "name": name, "source": "created"}),
    )
    .await;
    Ok(issued)
}

/// Stores one key event (the audit trail of `GET /events`), after the key change it records.
/// A key change that succeeded is never reported as failed because its event could not be
/// stored: the caller would lose a key shown only once (after a rotation, the system's only
/// key), so the event is best effort.
async fn record_key_event(
    store: &dyn Store,
    event_type: EventType,
    system_id: Option<Uuid>,
    now: DateTime<Utc>,
    detail: serde_json::Value,
) {
    let event = NewEvent {
        event_type,
        time: now,
        group_id: None,
        system_id,
        dataset: None,
        subject: None,
        dedup_key: None,
        detail,
    };
    let _ = store.append_events(&[event]).await;
}

/// Every admin key (never a key or its hash leaves through [`AdminKeyInfo`]), oldest first.
pub async fn list_admin_keys(store: &dyn Store) -> Result<Vec<AdminKeyInfo>> {
    Ok(store
        .list_admin_keys()
        .await?
        .into_iter()
        .map(AdminKeyInfo::from)
        .collect())
}

/// Revokes the admin key `id`: it fails at once. `NotFound` for an id that is no admin key,
/// `Conflict` for the last admin key (nobody could administer the server). A revoked
/// configured key comes back when a server starts with it configured.
pub async fn revoke_admin_key(store: &dyn Store, id: Uuid, now: DateTime<Utc>) -> Result<()> {
    store.revoke_admin_key(id).await?;
    record_key_event(
        store,
        EventType::AdminKeyRevoked,
        None,
        now,
        serde_json::json!({"key_id": id, "why": "revoked by an admin"}),
    )
    .await;
    Ok(())
}

/// What may be shown of an admin key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKeyInfo {
    pub id: Uuid,
    pub name: String,
    pub source: KeySource,
    pub created_at: DateTime<Utc>,
}

impl From<ApiKeyRecord> for AdminKeyInfo {
    fn from(k: ApiKeyRecord) -> Self {
        AdminKeyInfo {
            id: k.id,
            name: k.name,
            source: k.source,
            created_at: k.created_at,
        }
    }
}

/// What [`ensure_admin_key`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminKeySetup {
    /// A key was configured, and is now the one `configured` key.
    pub configured: bool,
    /// Configured keys revoked: the one configured before (another value, or no value now).
    pub revoked: u64,
    /// No admin key was left: this one was generated and stored. Print it once; it is never
    /// shown again.
    pub generated: Option<String>,
}

/// At start: makes the configured key (checked by [`check_configured_key`]) the one
/// `configured` admin key, revoking the one configured before; without a configured key,
/// revokes a previously configured one and generates a key when no admin key is left.
///
/// Each change is an event: `admin_key_revoked` for a configured key that is no longer the
/// configured one, `admin_key_created` for a newly configured (or generated) key.
pub async fn ensure_admin_key(
    store: &dyn Store,
    configured: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AdminKeySetup> {
    let before = store.list_admin_keys().await?;
    let setup = set_up_admin_key(store, configured, now).await?;
    let after = store.list_admin_keys().await?;
    for k in before.iter().filter(|k| after.iter().all(|a| a.id != k.id)) {
        let detail = serde_json::json!({"key_id": k.id, "name": k.name,
            "why": "no longer the configured admin key, at start"});
        record_key_event(store, EventType::AdminKeyRevoked, None, now, detail).await;
    }
    for k in after
        .iter()
        .filter(|k| k.source == KeySource::Configured && before.iter().all(|b| b.id != k.id))
    {
        let detail = serde_json::json!({"key_id": k.id, "name": k.name, "source": "configured"});
        record_key_event(store, EventType::AdminKeyCreated, None, now, detail).await;
    }
    Ok(setup)
}

/// [`ensure_admin_key`]'s changes to the stored keys.
async fn set_up_admin_key(
    store: &dyn Store,
    configured: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AdminKeySetup> {
    if let Some(key) = configured {
        let key = key.trim();
        check_configured_key(key)?;
        let record = key_record(
            key,
            Role::Admin,
            KeySource::Configured,
            CONFIGURED_KEY_NAME,
            now,
        );
        let revoked = match store.set_configured_admin_key(&record).await {
            Err(Error::AlreadyExists { .. }) => {
                return Err(Error::invalid(
                    "admin_key",
                    "is already in use as a system key",
                ));
            }
            other => other?,
        };
        return Ok(AdminKeySetup {
            configured: true,
            revoked,
            generated: None,
        });
    }
    let keys = store.list_admin_keys().await?;
    let before: Vec<Uuid> = keys
        .iter()
        .filter(|k| k.source == KeySource::Configured)
        .map(|k| k.id)
        .collect();
    let generated = if keys.len() == before.len() {
        Some(
            create_admin_key(store, "generated at start", now)
                .await?
                .key,
        )
    } else {
        None
    };
    for id in &before {
        store.revoke_admin_key(*id).await?;
    }
    Ok(AdminKeySetup {
        configured: false,
        revoked: before.len() as u64,
        generated,
    })
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
    let issued = issue_key(Role::System(system.id), "", now)?;
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
    let issued = issue_key(Role::System(system_id), "", now)?;
    store.replace_system_keys(system_id, &issued.record).await?;
    record_key_event(
        store,
        EventType::SystemKeyRotated,
        Some(system_id),
        now,
        serde_json::json!({"key_id": issued.record.id}),
    )
    .await;
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
        let issued = issue_key(Role::Admin, "ops", crate::testing::fixtures::epoch()).unwrap();
        let stored = format!("{:?}", issued.record);
        // No part of the random part of the key (8 hex digits are enough to tell).
        for i in 3..issued.key.len() - 8 {
            assert!(!stored.contains(&issued.key[i..i + 8]), "{stored}");
        }
        assert_eq!(issued.record.name, "ops");
        assert!(!format!("{issued:?}").contains(&issued.key));
    }

    #[test]
    fn configured_keys_must_be_long_and_not_obviously_guessable() {
        let field_of = |k: &str| match check_configured_key(k) {
            Err(Error::InvalidInput { field, reason }) => format!("{field}: {reason}"),
            other => format!("{other:?}"),
        };
        for bad in [
            "short",
            &"c".repeat(40),
            &"0123456789abcdef".repeat(2),
            &"abc123".repeat(6),
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "aabbccddaabbccddaabbccddaabbccdd",
        ] {
            let e = field_of(bad);
            assert!(e.starts_with("admin_key: "), "{bad}: {e}");
        }
        for good in [
            "crash-safety-admin-key-7d1c0a5e9b3f42d6",
            "9f86d081884c7d659a2feaa0c55ad015",
            "correct horse battery staple 4 tomorrow",
        ] {
            assert!(check_configured_key(good).is_ok(), "{good}");
        }
        // Random keys pass (`openssl rand -hex 16`, the shortest accepted length).
        for _ in 0..1000 {
            let k = generate_key().unwrap();
            assert!(check_configured_key(&k[3..35]).is_ok(), "{k}");
        }
    }

    #[test]
    fn key_names_are_checked() {
        assert_eq!(validate_key_name("  ops laptop ").unwrap(), "ops laptop");
        for bad in ["", "   ", "a\nb", "a\u{0}b", &"n".repeat(101)] {
            assert!(
                matches!(validate_key_name(bad), Err(Error::InvalidInput { ref field, .. }) if field == "name"),
                "{bad:?}"
            );
        }
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
        let generated = ensure_admin_key(&store, None, now)
            .await
            .unwrap()
            .generated
            .expect("a generated key");
        assert_eq!(authenticate(&store, &generated).await.unwrap(), Role::Admin);
        // Once one exists, nothing is generated again.
        assert_eq!(
            ensure_admin_key(&store, None, now).await.unwrap(),
            AdminKeySetup::default()
        );
        // A configured key is stored once and works; too short ones are refused.
        let a = "9f86d081884c7d659a2feaa0c55ad015";
        let configured = AdminKeySetup {
            configured: true,
            ..AdminKeySetup::default()
        };
        assert_eq!(
            ensure_admin_key(&store, Some(a), now).await.unwrap(),
            configured
        );
        assert_eq!(
            ensure_admin_key(&store, Some(a), now).await.unwrap(),
            configured
        );
        assert_eq!(store.count_admin_keys().await.unwrap(), 2);
        assert_eq!(authenticate(&store, a).await.unwrap(), Role::Admin);
        assert!(matches!(
            ensure_admin_key(&store, Some("short"), now).await,
            Err(Error::InvalidInput { .. })
        ));
        // Another configured key replaces it: the old one fails at once.
        let b = "60303ae22b998861bce3b28f33eec1be";
        assert_eq!(
            ensure_admin_key(&store, Some(b), now).await.unwrap(),
            AdminKeySetup {
                configured: true,
                revoked: 1,
                generated: None
            }
        );
        assert!(authenticate(&store, a).await.is_err());
        assert_eq!(authenticate(&store, b).await.unwrap(), Role::Admin);
        let listed = list_admin_keys(&store).await.unwrap();
        let mut sources: Vec<_> = listed.iter().map(|k| (k.source, k.name.as_str())).collect();
        sources.sort_by_key(|(s, _)| s.as_str());
        assert_eq!(
            sources,
            [
                (KeySource::Configured, CONFIGURED_KEY_NAME),
                (KeySource::Created, "generated at start")
            ]
        );
        // A generated key that is then configured becomes the configured one (and is
        // revoked with the next change); no setting at all revokes the configured key.
        assert_eq!(
            ensure_admin_key(&store, Some(&generated), now)
                .await
                .unwrap()
                .revoked,
            1
        );
        assert!(authenticate(&store, b).await.is_err());
        let cleared = ensure_admin_key(&store, None, now).await.unwrap();
        assert_eq!(cleared.revoked, 1);
        let fresh = cleared.generated.expect("no admin key was left");
        assert!(authenticate(&store, &generated).await.is_err());
        assert_eq!(authenticate(&store, &fresh).await.unwrap(), Role::Admin);
        // A system key cannot become the admin key.
        let sys = system("s.example");
        let sys_key = register_system(&store, &sys, now).await.unwrap();
        let e = ensure_admin_key(&store, Some(&sys_key), now).await;
        assert!(
            matches!(e, Err(Error::InvalidInput { ref field, .. }) if field == "admin_key"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn admin_keys_are_created_listed_and_revoked_but_never_the_last() {
        let store = crate::store::memory::InMemoryStore::new();
        let now = crate::testing::fixtures::epoch();
        let first = create_admin_key(&store, "first", now).await.unwrap();
        let e = revoke_admin_key(&store, first.record.id, now).await;
        assert!(matches!(e, Err(Error::Conflict { .. })), "{e:?}");
        let second = create_admin_key(&store, "second", now).await.unwrap();
        revoke_admin_key(&store, first.record.id, now)
            .await
            .unwrap();
        assert!(authenticate(&store, &first.key).await.is_err());
        assert_eq!(
            authenticate(&store, &second.key).await.unwrap(),
            Role::Admin
        );
        assert!(matches!(
            revoke_admin_key(&store, first.record.id, now).await,
            Err(Error::NotFound { .. })
        ));
        let names: Vec<_> = list_admin_keys(&store)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["second"]);
        assert!(matches!(
            create_admin_key(&store, "", now).await,
            Err(Error::InvalidInput { .. })
        ));
        // A system key's id is no admin key.
        let sys = system("t.example");
        register_system(&store, &sys, now).await.unwrap();
        let sys_key = issue_key(Role::System(sys.id), "", now).unwrap();
        store.insert_key(&sys_key.record).await.unwrap();
        assert!(matches!(
            revoke_admin_key(&store, sys_key.record.id, now).await,
            Err(Error::NotFound { .. })
        ));
    }

    /// The stored events of key types, as (type, key id, system id).
    async fn key_events(store: &dyn Store) -> Vec<(EventType, String, Option<Uuid>)> {
        let query = crate::model::EventQuery {
            types: vec![
                EventType::AdminKeyCreated,
                EventType::AdminKeyRevoked,
                EventType::SystemKeyRotated,
            ],
            ..crate::model::EventQuery::default()
        };
        store
            .list_events(&query)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                assert!(!e.detail.to_string().contains("zs_"), "a key in {e:?}");
                let key = e.detail["key_id"].as_str().unwrap_or_default().to_string();
                (e.event_type, key, e.system_id)
            })
            .collect()
    }

    /// Every key change is one event, refused changes none; a start that changes nothing
    /// records nothing.
    #[tokio::test]
    async fn key_changes_are_events() {
        let store = crate::store::memory::InMemoryStore::new();
        let now = crate::testing::fixtures::epoch();
        let first = create_admin_key(&store, "first", now).await.unwrap();
        let id = |k: &IssuedKey| k.record.id.to_string();
        assert!(
            revoke_admin_key(&store, first.record.id, now)
                .await
                .is_err()
        );
        let second = create_admin_key(&store, "second", now).await.unwrap();
        revoke_admin_key(&store, first.record.id, now)
            .await
            .unwrap();
        use EventType::*;
        assert_eq!(
            key_events(&store).await,
            [
                (AdminKeyCreated, id(&first), None),
                (AdminKeyCreated, id(&second), None),
                (AdminKeyRevoked, id(&first), None),
            ]
        );
        let sys = system("r.example");
        register_system(&store, &sys, now).await.unwrap();
        rotate_system_key(&store, sys.id, now).await.unwrap();
        let a = "9f86d081884c7d659a2feaa0c55ad015";
        ensure_admin_key(&store, Some(a), now).await.unwrap();
        ensure_admin_key(&store, Some(a), now).await.unwrap();
        let b = "60303ae22b998861bce3b28f33eec1be";
        ensure_admin_key(&store, Some(b), now).await.unwrap();
        let events = key_events(&store).await;
        let kinds: Vec<(EventType, Option<Uuid>)> =
            events[3..].iter().map(|(t, _, s)| (*t, *s)).collect();
        assert_eq!(
            kinds,
            [
                (SystemKeyRotated, Some(sys.id)),
                (AdminKeyCreated, None),
                (AdminKeyRevoked, None),
                (AdminKeyCreated, None),
            ],
            "{events:?}"
        );
        // The configured key A is the one created first and revoked at B's start.
        assert_eq!(events[4].1, events[5].1);
        assert_ne!(events[5].1, events[6].1);
    }
}
