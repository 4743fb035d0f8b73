//! The REST witness server (under construction).
