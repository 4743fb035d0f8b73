//! Short names interned per [`super::FleetIndex`] build: equal ids are equal names, so the
//! comparison matches names by id. Speed machinery: skippable for a reader.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use super::NO_NAME_ID;
use super::hash::{FoldHashState, same_str};
use crate::names::ShortName;

/// Numbers [`FleetIndex`] builds, so that name ids of two builds are never taken as equal.
pub(super) static BUILDS: AtomicU64 = AtomicU64::new(1);

/// The distinct short names of one [`FleetIndex`] build: each is validated once
/// ([`ShortName::check`]), however many records carry it.
///
/// Finding a name's id costs a hash of the name, except where the name is the one that
/// followed the previous record's name the last time that name was seen: hosts take their
/// snapshots of all datasets at the same moments (sanoid, zfs-auto-snapshot) and replicas
/// hold the source's, so histories mostly repeat one sequence of names, and checking the
/// predicted name is one string comparison.
pub(super) struct NameTable<'a> {
    /// This build's number.
    pub(super) build: u64,
    ids: HashMap<&'a str, u32, FoldHashState>,
    /// By name id: the name.
    names: Vec<&'a str>,
    /// By name id: the name is valid.
    pub(super) valid: Vec<bool>,
    /// By name id: the id of the name that followed it last ([`NO_NAME_ID`]: none yet).
    next: Vec<u32>,
    /// The id of the first name of the last history.
    first: u32,
    /// By name id: the last history (numbered by [`NameTable::next_history`]) holding it.
    seen_in: Vec<u32>,
    histories: u32,
}

impl<'a> NameTable<'a> {
    pub(super) fn new() -> Self {
        NameTable {
            build: BUILDS.fetch_add(1, AtomicOrdering::Relaxed),
            ids: HashMap::with_hasher(FoldHashState::random()),
            names: Vec::new(),
            valid: Vec::new(),
            next: Vec::new(),
            first: NO_NAME_ID,
            seen_in: Vec::new(),
            histories: 0,
        }
    }

    /// The id of `name`, which follows the name `prev` in a history ([`NO_NAME_ID`]: it is
    /// the first); a name not seen before gets the next free id.
    #[inline]
    pub(super) fn intern(&mut self, name: &'a str, prev: u32) -> u32 {
        let predicted = match self.next.get(prev as usize) {
            Some(&next) => next,
            None => self.first,
        };
        if let Some(&p) = self.names.get(predicted as usize)
            && same_str(p, name)
        {
            return predicted;
        }
        self.intern_by_hash(name, prev)
    }

    /// [`NameTable::intern`] when the prediction failed: by the hash map, and the prediction
    /// for `prev` learns the answer.
    #[inline(never)]
    fn intern_by_hash(&mut self, name: &'a str, prev: u32) -> u32 {
        let fresh = self.names.len() as u32;
        let id = match self.ids.entry(name) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                e.insert(fresh);
                fresh
            }
        };
        if id == fresh {
            self.names.push(name);
            self.valid.push(ShortName::check(name).is_ok());
            self.next.push(NO_NAME_ID);
            self.seen_in.push(0);
        }
        match self.next.get_mut(prev as usize) {
            Some(next) => *next = id,
            None => self.first = id,
        }
        id
    }

    /// Numbers a new history, for [`NameTable::first_in_history`].
    pub(super) fn next_history(&mut self) -> u32 {
        self.histories += 1;
        self.histories
    }

    /// Marks name `id` as held by `history`: false when it already was (a repeated name).
    pub(super) fn first_in_history(&mut self, id: u32, history: u32) -> bool {
        let seen = &mut self.seen_in[id as usize];
        let first = *seen != history;
        *seen = history;
        first
    }
}
