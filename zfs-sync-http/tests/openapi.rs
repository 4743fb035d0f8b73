//! The committed `openapi.json` must match what the server generates.
//! Regenerate with: `ZFS_SYNC_UPDATE_OPENAPI=1 cargo test -p zfs-sync-http --test openapi`.

use serde_json::Value;

#[test]
fn committed_openapi_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated = format!("{}\n", zfs_sync_http::openapi_json());
    if std::env::var_os("ZFS_SYNC_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "zfs-sync-http/openapi.json is out of date with the API; regenerate it with \
         `ZFS_SYNC_UPDATE_OPENAPI=1 cargo test -p zfs-sync-http --test openapi` and commit the result"
    );
}

#[test]
fn secured_operations_declare_401_and_403_and_the_scheme() {
    let doc: Value = serde_json::from_str(&zfs_sync_http::openapi_json()).unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["ApiKeyAuth"]["in"],
        "header"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["ApiKeyAuth"]["name"],
        "X-API-Key"
    );
    let mut secured = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = path.starts_with("/api/v1/health");
            let has_security = op
                .get("security")
                .is_some_and(|s| !s.as_array().unwrap().is_empty());
            assert_eq!(has_security, !public, "{method} {path}");
            if has_security {
                secured += 1;
                for status in ["401", "403", "422"] {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{method} {path} does not declare {status}"
                    );
                }
                assert!(
                    op["responses"]["401"]["headers"]
                        .get("WWW-AUTHENTICATE")
                        .is_some(),
                    "{method} {path}"
                );
            }
        }
    }
    assert!(secured >= 40, "only {secured} secured operations");
    // The legacy paths exist.
    for p in [
        "/api/v1/health",
        "/api/v1/systems",
        "/api/v1/systems/register",
        "/api/v1/systems/{system_id}/heartbeat",
        "/api/v1/snapshots/batch",
        "/api/v1/sync/instructions/{system_id}",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
}
