//! A model of ZFS receive semantics (under construction).
