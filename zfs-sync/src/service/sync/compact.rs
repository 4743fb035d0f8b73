//! The inventory cache's form of a member's inventory: about 40 bytes per snapshot instead of
//! ~260 plus three strings.
//!
//! Pools, dataset paths and short names are interned in one text buffer per member and named
//! by number; each snapshot and bookmark is a row of variable-length integers (GUID as 8
//! bytes, txg and creation as deltas from the row before, sizes as varints, `last_reported`
//! as an index into the member's distinct report times), its id in a parallel array. The few
//! records a row cannot hold exactly (metadata, hold tags, sub-second times, another system's
//! id) are kept whole beside the rows, at their position. [`CompactInventory::expand`] gives
//! back exactly the inventory it was made from, fields and order; it runs per plan and the
//! result is dropped with the plan.

use std::collections::HashMap;
use std::mem::size_of;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Bookmark, Dataset, Member, NewBookmark, ResumeToken, Snapshot, System};
use crate::plan::MemberInventory;

/// Bytes of cache budget one record stands for where a record count is given instead of
/// bytes (the deprecated `inventory_cache_records` setting): the compact form's ceiling.
pub const CACHE_BYTES_PER_RECORD: usize = 64;

const GUID: u8 = 1;
const TXG: u8 = 2;
const USERREFS: u8 = 4;
/// `holds: Some(vec![])` (a host that lists holds, none on this snapshot).
const NO_HOLDS: u8 = 8;

/// One member's inventory in the cache's compact form.
#[derive(Debug, Clone)]
pub struct CompactInventory {
    system: System,
    member: Member,
    /// The interned strings back to back; string `i` ends at `ends[i]`.
    text: Box<str>,
    ends: Box<[u32]>,
    /// (pool, path) as string numbers.
    places: Box<[(u32, u32)]>,
    /// The distinct `last_reported` times.
    times: Box<[DateTime<Utc>]>,
    snapshot_count: u32,
    /// The ids of the snapshots held as rows, in order.
    snapshot_ids: Box<[Uuid]>,
    snapshot_rows: Box<[u8]>,
    /// Snapshots kept whole, by position in the inventory.
    odd_snapshots: Box<[(u32, Snapshot)]>,
    bookmark_count: u32,
    bookmark_rows: Box<[u8]>,
    odd_bookmarks: Box<[(u32, Bookmark)]>,
    /// Few (one per dataset) and rarely many: kept as they are.
    datasets: Box<[Dataset]>,
    resume_tokens: Box<[ResumeToken]>,
}

/// Interning while encoding.
#[derive(Default)]
struct Builder<'a> {
    text: String,
    ends: Vec<u32>,
    strings: HashMap<&'a str, u32>,
    places: Vec<(u32, u32)>,
    place_ids: HashMap<(u32, u32), u32>,
    times: Vec<DateTime<Utc>>,
    time_ids: HashMap<DateTime<Utc>, u32>,
    /// The last place looked up (rows come sorted by dataset: most lookups hit it).
    last_place: Option<(&'a str, &'a str, u32)>,
    /// The last time looked up (a report's rows share one).
    last_time: Option<(DateTime<Utc>, u32)>,
}

impl<'a> Builder<'a> {
    fn string(&mut self, s: &'a str) -> u32 {
        if let Some(&id) = self.strings.get(s) {
            return id;
        }
        self.text.push_str(s);
        let id = to_u32(self.ends.len());
        self.ends.push(to_u32(self.text.len()));
        self.strings.insert(s, id);
        id
    }

    fn place(&mut self, pool: &'a str, path: &'a str) -> u32 {
        if let Some((p, d, id)) = self.last_place
            && p == pool
            && d == path
        {
            return id;
        }
        let key = (self.string(pool), self.string(path));
        let next = to_u32(self.places.len());
        let id = *self.place_ids.entry(key).or_insert(next);
        if id == next {
            self.places.push(key);
        }
        self.last_place = Some((pool, path, id));
        id
    }

    fn time(&mut self, t: DateTime<Utc>) -> u32 {
        if let Some((last, id)) = self.last_time
            && last == t
        {
            return id;
        }
        let next = to_u32(self.times.len());
        let id = *self.time_ids.entry(t).or_insert(next);
        if id == next {
            self.times.push(t);
        }
        self.last_time = Some((t, id));
        id
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("an inventory of fewer than 2^32 records and bytes of names")
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_delta(out: &mut Vec<u8>, v: i64, prev: &mut i64) {
    let d = v.wrapping_sub(*prev);
    *prev = v;
    put_varint(out, ((d << 1) ^ (d >> 63)) as u64);
}

/// Reads the rows back.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes[self.at];
        self.at += 1;
        b
    }

    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn index(&mut self) -> usize {
        self.varint() as usize
    }

    fn delta(&mut self, prev: &mut i64) -> i64 {
        let z = self.varint();
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        *prev = prev.wrapping_add(d);
        *prev
    }

    fn u64_le(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[self.at..self.at + 8]);
        self.at += 8;
        u64::from_le_bytes(b)
    }
}

/// `count` records: those of `odd` at their positions, the others decoded from `rows` by
/// `row` (given the reader, the row's flags and the running txg and creation).
fn decode_rows<T: Clone>(
    count: u32,
    odd: &[(u32, T)],
    rows: &[u8],
    mut row: impl FnMut(&mut Reader<'_>, u8, &mut i64, &mut i64) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(count as usize);
    let mut odd = odd.iter().peekable();
    let mut r = Reader { bytes: rows, at: 0 };
    let (mut txg, mut creation) = (0i64, 0i64);
    for i in 0..count {
        match odd.next_if(|(at, _)| *at == i) {
            Some((_, whole)) => out.push(whole.clone()),
            None => {
                let flags = r.byte();
                out.push(row(&mut r, flags, &mut txg, &mut creation));
            }
        }
    }
    out
}

/// A whole second, as the rows keep times.
fn whole_second(t: &DateTime<Utc>) -> bool {
    t.timestamp_subsec_nanos() == 0
}

fn at_second(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("a time that was encoded from a valid one")
}

impl CompactInventory {
    /// The compact form of `inv`.
    pub fn encode(inv: &MemberInventory) -> CompactInventory {
        let own = inv.system.id;
        let mut b = Builder::default();

        let mut snapshot_ids = Vec::with_capacity(inv.snapshots.len());
        let mut snapshot_rows = Vec::with_capacity(inv.snapshots.len() * 28);
        let mut odd_snapshots = Vec::new();
        let (mut txg, mut creation) = (0i64, 0i64);
        for (i, s) in inv.snapshots.iter().enumerate() {
            let plain = s.system_id == own
                && s.extra_metadata.is_empty()
                && s.holds.as_ref().is_none_or(Vec::is_empty)
                && whole_second(&s.creation);
            if !plain {
                odd_snapshots.push((to_u32(i), s.clone()));
                continue;
            }
            snapshot_ids.push(s.id);
            let out = &mut snapshot_rows;
            let flags = if s.guid.is_some() { GUID } else { 0 }
                | if s.createtxg.is_some() { TXG } else { 0 }
                | if s.userrefs.is_some() { USERREFS } else { 0 }
                | if s.holds.is_some() { NO_HOLDS } else { 0 };
            out.push(flags);
            put_varint(out, u64::from(b.place(&s.pool, &s.dataset)));
            put_varint(out, u64::from(b.string(&s.name)));
            if let Some(g) = s.guid {
                out.extend_from_slice(&g.to_le_bytes());
            }
            if let Some(t) = s.createtxg {
                put_delta(out, t as i64, &mut txg);
            }
            put_delta(out, s.creation.timestamp(), &mut creation);
            put_varint(out, s.used);
            put_varint(out, s.referenced);
            if let Some(u) = s.userrefs {
                put_varint(out, u64::from(u));
            }
            put_varint(out, u64::from(b.time(s.last_reported)));
        }

        let mut bookmark_rows = Vec::with_capacity(inv.bookmarks.len() * 20);
        let mut odd_bookmarks = Vec::new();
        let (mut txg, mut creation) = (0i64, 0i64);
        for (i, bm) in inv.bookmarks.iter().enumerate() {
            let r = &bm.reported;
            if bm.system_id != own || !whole_second(&r.creation) {
                odd_bookmarks.push((to_u32(i), bm.clone()));
                continue;
            }
            let out = &mut bookmark_rows;
            out.push(if r.createtxg.is_some() { TXG } else { 0 });
            put_varint(out, u64::from(b.place(&r.pool, &r.dataset)));
            put_varint(out, u64::from(b.string(&r.name)));
            out.extend_from_slice(&r.guid.to_le_bytes());
            if let Some(t) = r.createtxg {
                put_delta(out, t as i64, &mut txg);
            }
            put_delta(out, r.creation.timestamp(), &mut creation);
            put_varint(out, u64::from(b.time(bm.last_reported)));
        }

        CompactInventory {
            system: inv.system.clone(),
            member: inv.member.clone(),
            text: b.text.into_boxed_str(),
            ends: b.ends.into_boxed_slice(),
            places: b.places.into_boxed_slice(),
            times: b.times.into_boxed_slice(),
            snapshot_count: to_u32(inv.snapshots.len()),
            snapshot_ids: snapshot_ids.into_boxed_slice(),
            snapshot_rows: snapshot_rows.into_boxed_slice(),
            odd_snapshots: odd_snapshots.into_boxed_slice(),
            bookmark_count: to_u32(inv.bookmarks.len()),
            bookmark_rows: bookmark_rows.into_boxed_slice(),
            odd_bookmarks: odd_bookmarks.into_boxed_slice(),
            datasets: inv.datasets.clone().into_boxed_slice(),
            resume_tokens: inv.resume_tokens.clone().into_boxed_slice(),
        }
    }

    /// The system record the inventory was loaded with.
    pub fn system(&self) -> &System {
        &self.system
    }

    /// The membership the inventory was loaded with.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// Snapshots, bookmarks and datasets: what the cache counts as records.
    pub fn records(&self) -> usize {
        self.snapshot_count as usize + self.bookmark_count as usize + self.datasets.len()
    }

    fn string(&self, id: usize) -> &str {
        let start = if id == 0 {
            0
        } else {
            self.ends[id - 1] as usize
        };
        &self.text[start..self.ends[id] as usize]
    }

    fn place(&self, id: usize) -> (&str, &str) {
        let (pool, path) = self.places[id];
        (self.string(pool as usize), self.string(path as usize))
    }

    /// The inventory this was encoded from, exactly.
    pub fn expand(&self) -> MemberInventory {
        let own = self.system.id;
        let mut ids = self.snapshot_ids.iter();
        let snapshots = decode_rows(
            self.snapshot_count,
            &self.odd_snapshots,
            &self.snapshot_rows,
            |r, flags, txg, creation| {
                let (pool, dataset) = self.place(r.index());
                let name = self.string(r.index());
                let guid = (flags & GUID != 0).then(|| r.u64_le());
                let createtxg = (flags & TXG != 0).then(|| r.delta(txg) as u64);
                let created = at_second(r.delta(creation));
                let used = r.varint();
                let referenced = r.varint();
                let userrefs = (flags & USERREFS != 0).then(|| r.varint() as u32);
                Snapshot {
                    id: *ids.next().expect("an id per row"),
                    system_id: own,
                    pool: pool.to_string(),
                    dataset: dataset.to_string(),
                    name: name.to_string(),
                    guid,
                    createtxg,
                    creation: created,
                    used,
                    referenced,
                    extra_metadata: Default::default(),
                    userrefs,
                    holds: (flags & NO_HOLDS != 0).then(Vec::new),
                    last_reported: self.times[r.index()],
                }
            },
        );
        let bookmarks = decode_rows(
            self.bookmark_count,
            &self.odd_bookmarks,
            &self.bookmark_rows,
            |r, flags, txg, creation| {
                let (pool, dataset) = self.place(r.index());
                let name = self.string(r.index());
                let guid = r.u64_le();
                let createtxg = (flags & TXG != 0).then(|| r.delta(txg) as u64);
                let created = at_second(r.delta(creation));
                Bookmark {
                    system_id: own,
                    reported: NewBookmark {
                        pool: pool.to_string(),
                        dataset: dataset.to_string(),
                        name: name.to_string(),
                        guid,
                        createtxg,
                        creation: created,
                    },
                    last_reported: self.times[r.index()],
                }
            },
        );

        MemberInventory {
            system: self.system.clone(),
            member: self.member.clone(),
            snapshots,
            resume_tokens: self.resume_tokens.to_vec(),
            datasets: self.datasets.to_vec(),
            bookmarks,
        }
    }

    /// The heap this takes, in bytes, its own struct included: exact for the rows and
    /// tables, an estimate (by string and vector lengths) for the records kept whole and the
    /// system record's metadata.
    pub fn heap_bytes(&self) -> usize {
        size_of::<Self>()
            + system_bytes(&self.system)
            + self
                .member
                .dataset_root
                .as_ref()
                .map_or(0, String::capacity)
            + self.text.len()
            + self.ends.len() * size_of::<u32>()
            + self.places.len() * size_of::<(u32, u32)>()
            + self.times.len() * size_of::<DateTime<Utc>>()
            + self.snapshot_ids.len() * size_of::<Uuid>()
            + self.snapshot_rows.len()
            + records_heap(&self.odd_snapshots, self.odd_snapshots.len(), |(_, s)| {
                snapshot_heap(s)
            })
            + self.bookmark_rows.len()
            + records_heap(&self.odd_bookmarks, self.odd_bookmarks.len(), |(_, b)| {
                bookmark_heap(b)
            })
            + records_heap(&self.datasets, self.datasets.len(), dataset_heap)
            + records_heap(&self.resume_tokens, self.resume_tokens.len(), token_heap)
    }
}

/// The heap an expanded inventory takes (its records with their strings; the struct itself
/// counted as if on the heap, as in a vector).
pub fn full_bytes(inv: &MemberInventory) -> usize {
    size_of::<MemberInventory>()
        + records_heap(&inv.snapshots, inv.snapshots.capacity(), snapshot_heap)
        + records_heap(&inv.bookmarks, inv.bookmarks.capacity(), bookmark_heap)
        + records_heap(&inv.datasets, inv.datasets.capacity(), dataset_heap)
        + records_heap(&inv.resume_tokens, inv.resume_tokens.capacity(), token_heap)
}

/// `slots` records' room plus what `heap` says each record holds.
fn records_heap<T>(items: &[T], slots: usize, heap: impl Fn(&T) -> usize) -> usize {
    slots * size_of::<T>() + items.iter().map(heap).sum::<usize>()
}

fn bookmark_heap(b: &Bookmark) -> usize {
    b.reported.pool.capacity() + b.reported.dataset.capacity() + b.reported.name.capacity()
}

fn dataset_heap(d: &Dataset) -> usize {
    d.reported.pool.capacity() + d.reported.dataset.capacity()
}

fn token_heap(t: &ResumeToken) -> usize {
    t.pool.capacity() + t.dataset.capacity() + t.token.capacity()
}

/// The heap a snapshot's strings, holds and metadata take (an estimate for the metadata).
pub(super) fn snapshot_heap(s: &Snapshot) -> usize {
    s.pool.capacity()
        + s.dataset.capacity()
        + s.name.capacity()
        + s.holds.as_ref().map_or(0, |h| {
            h.capacity() * size_of::<String>() + h.iter().map(String::capacity).sum::<usize>()
        })
        + metadata_bytes(&s.extra_metadata)
}

/// An estimate of a metadata map's heap: its JSON text plus a node per entry.
fn metadata_bytes(m: &crate::model::Metadata) -> usize {
    if m.is_empty() {
        return 0;
    }
    serde_json::to_string(m).map_or(0, |t| t.len()) + m.len() * 96
}

fn system_bytes(s: &System) -> usize {
    let opt = |o: &Option<String>| o.as_ref().map_or(0, String::capacity);
    s.hostname.capacity()
        + opt(&s.platform)
        + opt(&s.ssh_hostname)
        + opt(&s.ssh_user)
        + metadata_bytes(&s.extra_metadata)
}
