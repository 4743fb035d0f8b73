//! Python bindings (under construction).
