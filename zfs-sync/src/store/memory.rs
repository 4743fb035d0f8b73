//! The reference store: everything in memory behind one lock.

/// An in-memory [`super::Store`] (under construction).
#[derive(Debug, Default)]
pub struct InMemoryStore {}
