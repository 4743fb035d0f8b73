//! Rules every free-text input obeys, whatever store keeps it: no NUL character (PostgreSQL
//! cannot store U+0000 in `text` or `jsonb`; SQLite would keep it and every store must answer
//! alike), and metadata objects of bounded size.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::Metadata;

/// The most bytes a system's metadata may take, serialized as JSON (after a heartbeat's merge).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

const NUL_RULE: &str = "must not contain the NUL character (U+0000)";

/// Refuses a NUL character in `value`, naming `field`.
pub fn check_text(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(field, NUL_RULE));
    }
    Ok(())
}

/// Refuses a NUL character in any string of a JSON value, keys included, naming the path
/// (`metadata.disks[2].model`).
pub fn check_json_text(field: &str, value: &Value) -> Result<()> {
    match value {
        Value::String(s) => check_text(field, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_json_text(&format!("{field}[{i}]"), v)),
        Value::Object(map) => check_object_text(field, map),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn check_object_text(field: &str, map: &Metadata) -> Result<()> {
    map.iter().try_for_each(|(k, v)| {
        let path = format!("{field}.{k}");
        if k.contains('\0') {
            return Err(Error::invalid(format!("{field} key {k:?}"), NUL_RULE));
        }
        check_json_text(&path, v)
    })
}

/// Checks a metadata object: no NUL anywhere, at most [`MAX_METADATA_BYTES`] as JSON.
pub fn check_metadata(field: &str, metadata: &Metadata) -> Result<()> {
    check_object_text(field, metadata)?;
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
    if size > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            field,
            format!("is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are accepted"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nul_is_refused_naming_the_path() {
        assert!(check_text("platform", "linux").is_ok());
        assert_eq!(field_of(check_text("platform", "li\0nux")), "platform");
        let v = json!({"disks": [{"model": "ok"}, {"model": "b\u{0}d"}]});
        assert_eq!(
            field_of(check_json_text("metadata", &v)),
            "metadata.disks[1].model"
        );
        let Value::Object(m) = json!({"a\u{0}": 1}) else {
            unreachable!()
        };
        assert!(field_of(check_metadata("metadata", &m)).starts_with("metadata key"));
    }

    #[test]
    fn metadata_size_is_bounded() {
        let Value::Object(small) = json!({"zfs": "2.2.6"}) else {
            unreachable!()
        };
        assert!(check_metadata("metadata", &small).is_ok());
        let Value::Object(big) = json!({"blob": "x".repeat(MAX_METADATA_BYTES)}) else {
            unreachable!()
        };
        assert_eq!(field_of(check_metadata("metadata", &big)), "metadata");
    }
}
