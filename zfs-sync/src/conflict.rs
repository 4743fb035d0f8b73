//! Conflict resolution planning.
