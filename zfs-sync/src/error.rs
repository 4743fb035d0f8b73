//! The one error type of the core, classified so that every surface (HTTP, Python) can map it
//! to a status or exception without string matching.

use std::fmt;

/// Result alias used across the core and by store implementations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the core and of every [`crate::store::Store`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input broke a rule. `field` names the input (e.g. `snapshots[3].name`), `reason` the rule.
    #[error("{field}: {reason}")]
    InvalidInput { field: String, reason: String },
    /// Input refers to an entity that does not exist (a group member, a conflict's winner):
    /// invalid input, distinguished from other rules so that surfaces can say so by class.
    #[error("{field}: {entity} {id} does not exist")]
    MissingReference {
        field: String,
        entity: &'static str,
        id: String,
    },
    /// The entity does not exist.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// A unique key is taken (hostname, group name, ...).
    #[error("{entity} {key} already exists")]
    AlreadyExists { entity: &'static str, key: String },
    /// The request is valid but the current state forbids it (a job already completed, a
    /// destructive plan that the group does not allow, ...).
    #[error("{message}")]
    Conflict { message: String },
    /// No credentials, or credentials that match no key.
    #[error("{message}")]
    Unauthorized { message: String },
    /// Valid credentials that may not act on this resource.
    #[error("{message}")]
    Forbidden { message: String },
    /// The storage backend failed (connection lost, disk full, ...).
    #[error("storage backend error: {message}")]
    Backend {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl Error {
    /// An [`Error::InvalidInput`] for `field` breaking `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// An [`Error::MissingReference`]: `field` names an `entity` `id` that does not exist.
    pub fn missing_reference(
        field: impl Into<String>,
        entity: &'static str,
        id: impl fmt::Display,
    ) -> Self {
        Error::MissingReference {
            field: field.into(),
            entity,
            id: id.to_string(),
        }
    }

    /// An [`Error::NotFound`] for the entity kind and its id.
    pub fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        Error::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// An [`Error::AlreadyExists`] for the entity kind and the taken key.
    pub fn already_exists(entity: &'static str, key: impl fmt::Display) -> Self {
        Error::AlreadyExists {
            entity,
            key: key.to_string(),
        }
    }

    /// An [`Error::Conflict`] with a sentence.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
        }
    }

    /// An [`Error::Backend`] wrapping a driver error.
    pub fn backend<E>(source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Backend {
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// An [`Error::Backend`] with only a message.
    pub fn backend_msg(message: impl Into<String>) -> Self {
        Error::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// Prefix the field of an [`Error::InvalidInput`] or [`Error::MissingReference`] (e.g.
    /// with `snapshots[3]`); other variants are returned unchanged.
    #[must_use]
    pub fn in_field(self, prefix: &str) -> Self {
        let join = |field: String| {
            if field.is_empty() {
                prefix.to_string()
            } else if field.starts_with('[') {
                format!("{prefix}{field}")
            } else {
                format!("{prefix}.{field}")
            }
        };
        match self {
            Error::MissingReference { field, entity, id } => Error::MissingReference {
                field: join(field),
                entity,
                id,
            },
            Error::InvalidInput { field, reason } if field.is_empty() => Error::InvalidInput {
                field: prefix.to_string(),
                reason,
            },
            Error::InvalidInput { field, reason } => {
                let sep = if field.starts_with('[') { "" } else { "." };
                Error::InvalidInput {
                    field: format!("{prefix}{sep}{field}"),
                    reason,
                }
            }
            other => other,
        }
    }
}
