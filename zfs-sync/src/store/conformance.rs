//! The store conformance suite (under construction).
