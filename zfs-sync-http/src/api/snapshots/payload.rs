//! Response payloads written straight to bytes, for the answers that can hold 100,000 rows.
//!
//! poem-openapi's `Json<Vec<T>>` builds a JSON tree (`serde_json::Value`, a map per row)
//! and then serializes it; for the answer to a 100,000-snapshot report that tree costs more
//! than storing the snapshots. [`SnapshotList`] writes the same document directly from the
//! records and declares the same schema, so the OpenAPI document does not change (a test
//! checks both against `Json<Vec<SnapshotOut>>`).

use std::io::Write;

use chrono::{DateTime, Utc};
use poem::{Body, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaResponses, MetaSchemaRef, Registry};
use uuid::Uuid;
use zfs_sync::model::{Metadata, Snapshot, StoredBatch, push_snapshot_full_name};

use super::dto::SnapshotOut;

/// The stored snapshots, as the JSON array of [`SnapshotOut`]: records, or a stored report
/// in its compact form ([`StoredBatch`], the answer to a report).
#[derive(Debug)]
pub struct SnapshotList(Rows);

#[derive(Debug)]
enum Rows {
    Records(Vec<Snapshot>),
    Reported(StoredBatch),
}

impl From<Vec<Snapshot>> for SnapshotList {
    fn from(rows: Vec<Snapshot>) -> SnapshotList {
        SnapshotList(Rows::Records(rows))
    }
}

impl From<StoredBatch> for SnapshotList {
    fn from(batch: StoredBatch) -> SnapshotList {
        SnapshotList(Rows::Reported(batch))
    }
}

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

/// Rows per piece of a streamed answer.
const CHUNK_ROWS: usize = 1024;

impl IntoResponse for SnapshotList {
    /// Up to `CHUNK_ROWS` (1,024) rows in one piece; more are streamed a piece at a time, so the
    /// answer to a 100,000-item report is never held as one document.
    fn into_response(self) -> Response {
        let n = self.len();
        let builder = Response::builder().content_type(Self::CONTENT_TYPE);
        if n <= CHUNK_ROWS {
            return builder.body(self.to_bytes());
        }
        let pieces = futures::stream::unfold(
            (self, 0, String::new()),
            |(list, start, mut scratch)| async move {
                let n = list.len();
                if start > n {
                    return None;
                }
                let end = (start + CHUNK_ROWS).min(n);
                let mut out = Vec::with_capacity(2 + (end - start) * 480);
                list.write_rows(&mut out, &mut scratch, start, end);
                // Past the end: the next call ends the stream.
                let next = if end == n { n + 1 } else { end };
                Some((Ok::<_, std::io::Error>(out), (list, next, scratch)))
            },
        );
        builder.body(Body::from_bytes_stream(pieces))
    }
}

impl SnapshotList {
    /// How many rows.
    pub fn len(&self) -> usize {
        match &self.0 {
            Rows::Records(rows) => rows.len(),
            Rows::Reported(batch) => batch.items.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The JSON document.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.len() * 480);
        self.write_rows(&mut out, &mut String::new(), 0, self.len());
        out
    }

    /// The document's part for rows `start..end`: with the opening `[` when `start` is 0 and
    /// the closing `]` when `end` is the last row.
    fn write_rows(&self, out: &mut Vec<u8>, scratch: &mut String, start: usize, end: usize) {
        if start == 0 {
            out.push(b'[');
        }
        for i in start..end {
            if i > 0 {
                out.push(b',');
            }
            let row = match &self.0 {
                Rows::Records(rows) => Row::of(&rows[i]),
                Rows::Reported(b) => Row::reported(b, i),
            };
            write_snapshot(out, scratch, &row);
        }
        if end == self.len() {
            out.push(b']');
        }
    }
}

/// The fields of one stored snapshot, borrowed from a record or a [`StoredBatch`].
struct Row<'a> {
    id: Uuid,
    system_id: Uuid,
    last_reported: &'a DateTime<Utc>,
    pool: &'a str,
    dataset: &'a str,
    name: &'a str,
    guid: Option<u64>,
    createtxg: Option<u64>,
    creation: &'a DateTime<Utc>,
    used: u64,
    referenced: u64,
    extra_metadata: &'a Metadata,
    userrefs: Option<u32>,
    holds: Option<&'a [String]>,
}

impl<'a> Row<'a> {
    fn of(s: &'a Snapshot) -> Row<'a> {
        Row {
            id: s.id,
            system_id: s.system_id,
            last_reported: &s.last_reported,
            pool: &s.pool,
            dataset: &s.dataset,
            name: &s.name,
            guid: s.guid,
            createtxg: s.createtxg,
            creation: &s.creation,
            used: s.used,
            referenced: s.referenced,
            extra_metadata: &s.extra_metadata,
            userrefs: s.userrefs,
            holds: s.holds.as_deref(),
        }
    }

    fn reported(b: &'a StoredBatch, i: usize) -> Row<'a> {
        let s = &b.items[i];
        Row {
            id: b.ids[i],
            system_id: b.system_id,
            last_reported: &b.last_reported,
            pool: &s.pool,
            dataset: &s.dataset,
            name: &s.name,
            guid: s.guid,
            createtxg: s.createtxg,
            creation: &s.creation,
            used: s.used,
            referenced: s.referenced,
            extra_metadata: &s.extra_metadata,
            userrefs: s.userrefs,
            holds: s.holds.as_deref(),
        }
    }
}

/// One [`SnapshotOut`] object; `scratch` is a buffer reused across calls.
fn write_snapshot(out: &mut Vec<u8>, scratch: &mut String, s: &Row<'_>) {
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
    let time = |out: &mut Vec<u8>, t: &DateTime<Utc>| {
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
    string(out, s.dataset);
    field(out, false, "extra_metadata");
    let _ = serde_json::to_writer(&mut *out, s.extra_metadata);
    field(out, false, "full_name");
    scratch.clear();
    push_snapshot_full_name(scratch, s.pool, s.dataset, s.name);
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
    match s.holds {
        Some(h) => {
            let _ = serde_json::to_writer(&mut *out, h);
        }
        None => out.extend_from_slice(b"null"),
    }
    field(out, false, "id");
    string(out, s.id.hyphenated().encode_lower(&mut uuid));
    field(out, false, "last_reported");
    time(out, s.last_reported);
    field(out, false, "name");
    string(out, s.name);
    field(out, false, "pool");
    string(out, s.pool);
    field(out, false, "referenced");
    number(out, s.referenced);
    field(out, false, "size");
    number(out, s.used);
    field(out, false, "system_id");
    string(out, s.system_id.hyphenated().encode_lower(&mut uuid));
    field(out, false, "timestamp");
    time(out, s.creation);
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
    use poem::IntoResponse;
    use poem_openapi::types::ToJSON;
    use serde_json::json;
    use uuid::Uuid;
    use zfs_sync::model::{Snapshot, StoredBatch};

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
            let got = SnapshotList::from(rows).to_bytes();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
    }

    /// A stored report (compact) answers the same document as its records, and a long
    /// answer streamed in pieces is the same document as the one written at once.
    #[tokio::test]
    async fn reported_and_streamed_answers_are_the_same_document() {
        let two = snapshots();
        let system_id = two[0].system_id;
        let last_reported = two[0].last_reported;
        let mut rows = Vec::new();
        for i in 0..2 * super::CHUNK_ROWS + 7 {
            let mut s = two[i % 2].clone();
            s.name = format!("n{i}");
            s.id = Uuid::from_u128(i as u128);
            s.system_id = system_id;
            s.last_reported = last_reported;
            rows.push(s);
        }
        for n in [0, 1, super::CHUNK_ROWS, super::CHUNK_ROWS + 1, rows.len()] {
            let records = rows[..n].to_vec();
            let want = SnapshotList::from(records.clone()).to_bytes();
            let batch = StoredBatch::from_snapshots(system_id, last_reported, records);
            assert_eq!(batch.items.len(), n);
            assert_eq!(SnapshotList::from(batch.clone()).to_bytes(), want);
            let streamed = SnapshotList::from(batch)
                .into_response()
                .into_body()
                .into_vec()
                .await
                .unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(want.clone()).unwrap()
            );
            let parsed: Vec<serde_json::Value> = serde_json::from_slice(&want).unwrap();
            assert_eq!(parsed.len(), n);
        }
    }
}
