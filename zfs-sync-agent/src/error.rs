//! The agent's errors and the exit codes they map to.

use std::fmt;

/// What stops a command. `once` exits 2 for [`AgentError::Config`] and
/// [`AgentError::Connection`]; a job that failed is not an error of the agent (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// A setting is missing or invalid; the message names it.
    Config(String),
    /// The server could not be reached, or answered something unexpected.
    Connection(String),
    /// The server answered an error status.
    Server {
        status: u16,
        /// The request, e.g. `PUT /systems/{id}/snapshots`.
        request: String,
        detail: String,
    },
    /// The host's `zfs` could not be run or printed something unreadable.
    Zfs(String),
}

impl AgentError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Config(_) | AgentError::Connection(_) | AgentError::Server { .. } => 2,
            AgentError::Zfs(_) => 1,
        }
    }

    pub fn config(msg: impl Into<String>) -> Self {
        AgentError::Config(msg.into())
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Config(m) => write!(f, "configuration: {m}"),
            AgentError::Connection(m) => write!(f, "connection: {m}"),
            AgentError::Server {
                status,
                request,
                detail,
            } => write!(f, "server answered {status} to {request}: {detail}"),
            AgentError::Zfs(m) => write!(f, "zfs: {m}"),
        }
    }
}

impl std::error::Error for AgentError {}
