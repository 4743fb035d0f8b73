//! SQLite and PostgreSQL stores (under construction).
