//! `/admin/keys` (issue 18, point 2): admin keys listed (never a key or hash), created with a
//! name and shown once, revoked at once, never the last; only for admin keys.

mod support;

use expect_test::expect;
use serde_json::json;
use support::harness;

#[tokio::test]
async fn admin_keys_are_listed_created_and_revoked() {
    let h = harness().await;
    let keys = "/api/v1/admin/keys";
    let (_, sys) = h.register("host-a").await;
    let listed = h.admin("GET", keys, None).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let first_id = listed.body[0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed.body[0]["name"], "harness");
    assert_eq!(listed.body[0]["source"], "created");
    // The last admin key cannot be revoked.
    h.check(
        "DELETE",
        &format!("{keys}/{first_id}"),
        Some(&h.admin),
        None,
        expect![
            "409 conflict this is the last admin key; create another one before revoking it (nobody could administer the server without one)"
        ],
    )
    .await;
    let created = h
        .admin("POST", keys, Some(json!({"name": "ops laptop"})))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["name"], "ops laptop");
    assert_eq!(created.body["source"], "created");
    assert!(
        created.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    let new_key = created.body["api_key"].as_str().unwrap().to_string();
    let new_id = created.body["id"].as_str().unwrap().to_string();
    // The new key works; the list never shows a key or a hash.
    let listed = h.call("GET", keys, Some(&new_key), None).await;
    assert_eq!(listed.status, 200);
    let text = listed.body.to_string();
    assert!(
        !text.contains(&new_key[3..]) && !text.contains(&h.admin[3..]),
        "{text}"
    );
    assert!(!text.contains(&zfs_sync::service::auth::hash_key(&new_key)));
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    for k in listed.body.as_array().unwrap() {
        let mut fields: Vec<&String> = k.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["created_at", "id", "name", "source"]);
    }
    // Revoking: the old key fails at once; a second revoke finds nothing.
    let revoke_first = format!("{keys}/{first_id}");
    for expected in [204, 404] {
        let r = h.call("DELETE", &revoke_first, Some(&new_key), None).await;
        assert_eq!(r.status, expected, "{r:?}");
        assert_eq!(h.admin("GET", keys, None).await.status, 401);
    }
    // Names are checked.
    for (body, expected) in [
        (
            json!({"name": ""}),
            expect!["422 invalid_input [name] name: must not be empty"],
        ),
        (
            json!({"name": "a\nb"}),
            expect![
                "422 invalid_input [name] name: must not contain control characters (newline, tab, …)"
            ],
        ),
        (
            json!({}),
            expect!["422 invalid_input [name] name: is required"],
        ),
    ] {
        h.check("POST", keys, Some(&new_key), Some(body), expected)
            .await;
    }
    // A system key may do none of it.
    for (method, path, body) in [
        ("GET", keys.to_string(), None),
        ("POST", keys.to_string(), Some(json!({"name": "x"}))),
        ("DELETE", format!("{keys}/{new_id}"), None),
    ] {
        let r = h.call(method, &path, Some(&sys), body).await;
        assert_eq!(r.status, 403, "{method} {path}: {r:?}");
    }
    let r = h
        .call("DELETE", &format!("{keys}/{new_id}"), None, None)
        .await;
    assert_eq!(r.status, 401, "{r:?}");
}
