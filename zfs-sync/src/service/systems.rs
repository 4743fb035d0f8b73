//! Systems: building a system from what a surface received, registration with its key,
//! changes, and deletion.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Capabilities, Metadata, Role, System, validate_host};
use crate::service::auth;
use crate::store::Store;

/// The SSH port a system gets when none is given.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// A system's descriptive fields as a surface received them; `None` leaves a field as it is
/// (or at its default for a new system). The hostname is trimmed; a blank platform, SSH host
/// or SSH user clears it.
#[derive(Debug, Clone, Default)]
pub struct SystemChanges {
    pub hostname: Option<String>,
    pub platform: Option<String>,
    pub ssh_hostname: Option<String>,
    pub ssh_user: Option<String>,
    pub ssh_port: Option<u16>,
    pub capabilities: Option<Capabilities>,
    pub extra_metadata: Option<Metadata>,
}

impl SystemChanges {
    /// Applies the changes to `system` (not validated: see [`auth::validate_system`]).
    pub fn apply(self, system: &mut System) {
        if let Some(h) = self.hostname {
            system.hostname = h.trim().to_string();
        }
        if let Some(p) = self.platform {
            system.platform = Some(p).filter(|p| !p.is_empty());
        }
        if let Some(h) = self.ssh_hostname {
            system.ssh_hostname = Some(h).filter(|h| !h.is_empty());
        }
        if let Some(u) = self.ssh_user {
            system.ssh_user = Some(u).filter(|u| !u.is_empty());
        }
        if let Some(p) = self.ssh_port {
            system.ssh_port = p;
        }
        if let Some(c) = self.capabilities {
            system.capabilities = Some(c);
        }
        if let Some(m) = self.extra_metadata {
            system.extra_metadata = m;
        }
    }

    /// A new system with these fields (defaults for the rest), created `now`. Not validated.
    pub fn into_system(self, id: Uuid, now: DateTime<Utc>) -> System {
        let mut system = System {
            id,
            hostname: String::new(),
            platform: None,
            ssh_hostname: None,
            ssh_user: None,
            ssh_port: DEFAULT_SSH_PORT,
            capabilities: None,
            extra_metadata: Metadata::default(),
            last_seen: None,
            created_at: now,
            updated_at: now,
        };
        self.apply(&mut system);
        system
    }
}

/// Registers a new system with these fields and issues its key: the system and the key
/// (shown once). `InvalidInput` for bad fields, `AlreadyExists` for a taken hostname.
pub async fn register(
    store: &dyn Store,
    fields: SystemChanges,
    now: DateTime<Utc>,
) -> Result<(System, String)> {
    let system = fields.into_system(Uuid::new_v4(), now);
    let key = auth::register_system(store, &system, now).await?;
    Ok((system, key))
}

/// A system as a caller names it: by its id or by its hostname (path parameters
/// `{system_id}`, the Python `Witness`'s `system_id` arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemRef {
    Id(Uuid),
    Hostname(String),
}

impl SystemRef {
    /// A UUID is the id (a hostname that looks like a UUID is reached by its id); anything
    /// else is a hostname. `InvalidInput` naming `field` when it is blank.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid(
                field,
                "must be a system id (UUID) or hostname",
            ));
        }
        Ok(match Uuid::parse_str(text) {
            Ok(id) => SystemRef::Id(id),
            Err(_) => SystemRef::Hostname(text.to_string()),
        })
    }
}

impl From<Uuid> for SystemRef {
    fn from(id: Uuid) -> Self {
        SystemRef::Id(id)
    }
}

impl std::fmt::Display for SystemRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SystemRef::Id(id) => write!(f, "{id}"),
            SystemRef::Hostname(h) => write!(f, "{h}"),
        }
    }
}

/// The id of the system `r` names. An id is returned as it is, without a lookup (the
/// operation that uses it says when it names nothing); a hostname is looked up: `NotFound`
/// naming it when no system has it.
pub async fn resolve(store: &dyn Store, r: &SystemRef) -> Result<Uuid> {
    match r {
        SystemRef::Id(id) => Ok(*id),
        SystemRef::Hostname(h) => by_hostname(store, h)
            .await?
            .map(|s| s.id)
            .ok_or_else(|| Error::not_found("system", format!("with hostname {h}"))),
    }
}

/// The system with this hostname. A string that is no valid hostname names no system
/// (registration validates hostnames), so it never reaches the store (a NUL byte, say).
pub async fn by_hostname(store: &dyn Store, hostname: &str) -> Result<Option<System>> {
    if validate_host("hostname", hostname).is_err() {
        return Ok(None);
    }
    store.get_system_by_hostname(hostname).await
}

/// The system, or `NotFound`.
pub async fn get(store: &dyn Store, system_id: Uuid) -> Result<System> {
    store
        .get_system(system_id)
        .await?
        .ok_or_else(|| Error::not_found("system", system_id))
}

/// Changes a system's fields (validated as a whole) and returns it as stored. `by` is who
/// asks: a system's own key may change its descriptive fields but not how other hosts reach
/// it (`ssh_hostname`, `ssh_user`, `ssh_port`: the pipelines of its peers are built from
/// them, so a compromised host could redirect them); those are the admin's to change, and a
/// system key that sends them unchanged is fine. `Forbidden` naming the field otherwise.
pub async fn update(
    store: &dyn Store,
    by: Role,
    system_id: Uuid,
    changes: SystemChanges,
    now: DateTime<Utc>,
) -> Result<System> {
    let mut system = get(store, system_id).await?;
    let before = system.clone();
    changes.apply(&mut system);
    if by != Role::Admin {
        let changed = [
            ("ssh_hostname", before.ssh_hostname != system.ssh_hostname),
            ("ssh_user", before.ssh_user != system.ssh_user),
            ("ssh_port", before.ssh_port != system.ssh_port),
        ];
        if let Some((field, _)) = changed.iter().find(|(_, changed)| *changed) {
            return Err(Error::Forbidden {
                message: format!(
                    "{field}: only an admin key may change how other hosts reach a system"
                ),
            });
        }
    }
    system.updated_at = now;
    auth::validate_system(&system)?;
    store.update_system(&system).await?;
    Ok(system)
}

/// Deletes a system with its snapshots, keys, memberships and states. Returns the names of
/// the groups whose hub it was (they keep existing; their directional mode needs a new hub).
pub async fn delete(store: &dyn Store, system_id: Uuid) -> Result<Vec<String>> {
    let hub_of = store
        .groups_of_system(system_id)
        .await?
        .into_iter()
        .filter(|g| g.hub() == Some(system_id))
        .map(|g| g.name)
        .collect();
    store.delete_system(system_id).await?;
    Ok(hub_of)
}
