//! The service layer: the seed's business logic over the [`crate::store::Store`] traits.
//! Every service takes "now" from its caller, so the core stays deterministic and testable.

pub mod auth;
pub mod health;
pub mod history;
pub mod sync;
