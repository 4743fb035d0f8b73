//! Schema migrations, listed the same way by both backends.
//!
//! A backend's migrations are the `.sql` files of its `migrations/` folder, named
//! `NNNN_what_it_does.sql` (the version, then the name with `_` for spaces) and listed oldest
//! first with [`migrations!`]; the list is checked at compile time (versions 1, 2, 3… in
//! order) and its length is the backend's `LATEST_VERSION`. At open each migration the
//! database lacks runs in one transaction together with its row in `schema_migrations`.
//! Never edit a released migration: add a file.

use zfs_sync::Error;

/// One schema version: an `.sql` file of a backend's `migrations/` folder.
#[derive(Debug)]
pub(crate) struct Migration {
    /// The file name, `NNNN_name.sql`.
    pub file: &'static str,
    /// The file's SQL, run as one batch.
    pub sql: &'static str,
}

impl Migration {
    /// The version: the file name's four leading digits.
    pub(crate) const fn version(&self) -> i64 {
        let b = self.file.as_bytes();
        assert!(
            b.len() > 9 && b[4] == b'_',
            "a migration file is named NNNN_name.sql"
        );
        let mut v = 0;
        let mut i = 0;
        while i < 4 {
            assert!(
                b[i].is_ascii_digit(),
                "a migration file starts with 4 digits"
            );
            v = v * 10 + (b[i] - b'0') as i64;
            i += 1;
        }
        v
    }

    /// The name recorded in `schema_migrations`: the file name without version and `.sql`,
    /// `_` read as a space.
    pub(crate) fn name(&self) -> String {
        let stem = self.file.strip_suffix(".sql").unwrap_or(self.file);
        stem.get(5..).unwrap_or_default().replace('_', " ")
    }

    /// The error for this migration's SQL failing.
    pub(crate) fn failed(&self, e: impl std::fmt::Display) -> Error {
        Error::backend_msg(format!(
            "migration {} ({}) failed: {e}",
            self.version(),
            self.name()
        ))
    }
}

/// The latest version of a backend's list, which must number its files 1, 2, 3… in order
/// (checked when the constant is evaluated, at compile time).
pub(crate) const fn latest_version(list: &[Migration]) -> i64 {
    let mut i = 0;
    while i < list.len() {
        assert!(
            list[i].version() == i as i64 + 1,
            "migrations are numbered 1, 2, 3… in list order"
        );
        i += 1;
    }
    list.len() as i64
}

/// `version`, or the refusal of a database whose schema (at `version`) is newer than this
/// build (at `latest`).
pub(crate) fn check_not_newer(version: i64, latest: i64) -> zfs_sync::Result<i64> {
    if version > latest {
        return Err(Error::backend_msg(format!(
            "the database schema is at version {version}, newer than this build supports ({latest})"
        )));
    }
    Ok(version)
}

/// The list of a backend's migrations, each file `include_str!`ed from the `migrations/`
/// folder beside the module that lists them.
macro_rules! migrations {
    ($($file:literal),* $(,)?) => {
        &[$($crate::migration::Migration {
            file: $file,
            sql: include_str!(concat!("migrations/", $file)),
        }),*]
    };
}
pub(crate) use migrations;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_names_come_from_the_file_name() {
        let m = Migration {
            file: "0003_inventory_versions_and_the_leased-jobs_index.sql",
            sql: "",
        };
        assert_eq!(m.version(), 3);
        assert_eq!(m.name(), "inventory versions and the leased-jobs index");
        let list = [
            Migration {
                file: "0001_a.sql",
                sql: "",
            },
            Migration {
                file: "0002_b.sql",
                sql: "",
            },
        ];
        assert_eq!(latest_version(&list), 2);
        assert_eq!(check_not_newer(2, 2).unwrap(), 2);
        let err = check_not_newer(3, 2).unwrap_err().to_string();
        assert!(err.contains("newer than this build"), "{err}");
    }
}
