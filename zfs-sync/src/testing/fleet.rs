//! A seeded fleet generator (under construction).
