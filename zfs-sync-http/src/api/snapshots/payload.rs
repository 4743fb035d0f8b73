//! Response payloads written straight to bytes, for the answers that can hold 100,000 rows.
//!
//! poem-openapi's `Json<Vec<T>>` builds a JSON tree (`serde_json::Value`, a map per row)
//! and then serializes it; for the answer to a 100,000-snapshot report that tree costs more
//! than storing the snapshots. [`SnapshotList`] writes the same document directly from the
//! records and declares the same schema, so the OpenAPI document does not change (a test
//! checks both against `Json<Vec<SnapshotOut>>`).

use std::io::Write;

use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaResponses, MetaSchemaRef, Registry};
use zfs_sync::model::Snapshot;

use super::dto::SnapshotOut;

/// The stored snapshots, as the JSON array of [`SnapshotOut`].
#[derive(Debug)]
pub struct SnapshotList(pub Vec<Snapshot>);

type Equivalent = Json<Vec<SnapshotOut>>;

impl Payload for SnapshotList {
    const CONTENT_TYPE: &'static str = <Equivalent as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Equivalent as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        <Equivalent as Payload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <Equivalent as Payload>::register(registry);
    }
}

impl ApiResponse for SnapshotList {
    fn meta() -> MetaResponses {
        <Equivalent as ApiResponse>::meta()
    }

    fn register(registry: &mut Registry) {
        <Equivalent as ApiResponse>::register(registry);
    }
}

impl IntoResponse for SnapshotList {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.to_bytes())
    }
}

impl SnapshotList {
    /// The JSON document.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.0.len() * 480);
        let mut scratch = String::new();
        out.push(b'[');
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_snapshot(&mut out, &mut scratch, s);
        }
        out.push(b']');
        out
    }
}

/// One [`SnapshotOut`] object; `scratch` is a buffer reused across calls.
fn write_snapshot(out: &mut Vec<u8>, scratch: &mut String, s: &Snapshot) {
    let mut uuid = uuid::Uuid::encode_buffer();
    let field = |out: &mut Vec<u8>, first: bool, name: &str| {
        if !first {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    };
    let string = |out: &mut Vec<u8>, v: &str| {
        // Writing into a Vec cannot fail, and a &str always serializes.
        let _ = serde_json::to_writer(&mut *out, v);
    };
    let number = |out: &mut Vec<u8>, v: u64| {
        let _ = write!(out, "{v}");
    };
    let time = |out: &mut Vec<u8>, t: &chrono::DateTime<chrono::Utc>| {
        out.push(b'"');
        out.extend_from_slice(
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                .as_bytes(),
        );
        out.push(b'"');
    };
    // Keys in the order the generic payload writes them (sorted: its JSON maps are
    // ordered by key), so the bytes are the same.
    out.push(b'{');
    field(out, true, "createtxg");
    match s.createtxg {
        Some(t) => number(out, t),
        None => out.extend_from_slice(b"null"),
    }
    field(out, false, "dataset");
    string(out, &s.dataset);
    field(out, false, "extra_metadata");
    let _ = serde_json::to_writer(&mut *out, &s.extra_metadata);
    field(out, false, "full_name");
    scratch.clear();
    s.push_full_name(scratch);
    string(out, scratch);
    field(out, false, "guid");
    match s.guid {
        Some(g) => {
            out.push(b'"');
            number(out, g);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    field(out, false, "holds");
    match &s.holds {
        Some(h) => {
            let _ = serde_json::to_writer(&mut *out, h);
        }
        None => out.extend_from_slice(b"null"),
    }
    field(out, false, "id");
    string(out, s.id.hyphenated().encode_lower(&mut uuid));
    field(out, false, "last_reported");
    time(out, &s.last_reported);
    field(out, false, "name");
    string(out, &s.name);
    field(out, false, "pool");
    string(out, &s.pool);
    field(out, false, "referenced");
    number(out, s.referenced);
    field(out, false, "size");
    number(out, s.used);
    field(out, false, "system_id");
    string(out, s.system_id.hyphenated().encode_lower(&mut uuid));
    field(out, false, "timestamp");
    time(out, &s.creation);
    field(out, false, "used");
    number(out, s.used);
    field(out, false, "userrefs");
    match s.userrefs {
        Some(n) => number(out, u64::from(n)),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use poem_openapi::types::ToJSON;
    use serde_json::json;
    use uuid::Uuid;
    use zfs_sync::model::Snapshot;

    use super::SnapshotList;
    use crate::api::snapshots::dto::SnapshotOut;

    fn snapshots() -> Vec<Snapshot> {
        let t = Utc.with_ymd_and_hms(2025, 11, 4, 12, 0, 0).unwrap();
        let mut meta = serde_json::Map::new();
        meta.insert("origin".into(), json!("sanoid \"daily\"\n"));
        meta.insert("n".into(), json!([1, 2.5, null, {"k": true}]));
        vec![
            Snapshot {
                holds: Some(vec!["zfs-sync:ab:cd".into(), "keep \"me\"".into()]),
                userrefs: Some(2),
                id: Uuid::new_v4(),
                system_id: Uuid::new_v4(),
                pool: "tank".into(),
                dataset: "".into(),
                name: "autosnap_2025-11-04_12:00:00_hourly".into(),
                guid: Some(u64::MAX),
                createtxg: Some(0),
                creation: t,
                used: u64::MAX,
                referenced: 1 << 40,
                extra_metadata: meta,
                last_reported: t + chrono::Duration::microseconds(123_456),
            },
            Snapshot {
                holds: None,
                userrefs: Some(0),
                id: Uuid::nil(),
                system_id: Uuid::max(),
                pool: "backup".into(),
                dataset: "replicas/host A/vm:1.é".into(),
                name: "weird-name_ü+1".into(),
                guid: None,
                createtxg: None,
                creation: Utc.timestamp_opt(0, 0).unwrap(),
                used: 0,
                referenced: 0,
                extra_metadata: serde_json::Map::new(),
                last_reported: t + chrono::Duration::nanoseconds(1),
            },
        ]
    }

    /// The document is exactly what `Json<Vec<SnapshotOut>>` serves.
    #[test]
    fn same_document_as_the_generic_payload() {
        for rows in [snapshots(), Vec::new()] {
            let generic: Vec<SnapshotOut> = rows.clone().into_iter().map(Into::into).collect();
            let want = serde_json::to_vec(&generic.to_json()).unwrap();
            let got = SnapshotList(rows).to_bytes();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
    }
}
