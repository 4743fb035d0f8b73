//! Results kept between calls by an id, within a byte budget: the least recently used entry
//! goes first. What the service keeps per group ([`super::basis`]) and per (group, host)
//! ([`super::plan_cache`]) is kept here; each entry carries what it was made from, and the
//! caller decides whether it still holds.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

/// Entries by id, at most `budget` counted bytes; shared by a service's clones (behind an
/// `Arc`).
pub(super) struct Kept<I, V> {
    budget: usize,
    inner: Mutex<Inner<I, V>>,
}

struct Inner<I, V> {
    entries: HashMap<I, Entry<V>>,
    bytes: usize,
    tick: u64,
    hits: u64,
}

struct Entry<V> {
    value: V,
    bytes: usize,
    used: u64,
}

/// What a [`Kept`] holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeptUsage {
    pub(super) entries: usize,
    pub(super) bytes: usize,
    pub(super) budget: usize,
    /// Calls answered from a kept entry, since the service started.
    pub(super) hits: u64,
}

impl<I: Eq + Hash + Copy, V> Kept<I, V> {
    pub(super) fn new(budget: usize) -> Self {
        Kept {
            budget,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                bytes: 0,
                tick: 0,
                hits: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<I, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `holds` makes of the entry kept for `id` (`None`: it does not hold); an answer
    /// counts as a hit and makes the entry the most recently used.
    pub(super) fn get<R>(&self, id: I, holds: impl FnOnce(&V) -> Option<R>) -> Option<R> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let e = inner.entries.get_mut(&id)?;
        let answer = holds(&e.value)?;
        e.used = tick;
        inner.hits += 1;
        Some(answer)
    }

    /// Keeps `value` for `id` (replacing what was kept), counted as `bytes` (the entry's own
    /// size is added), evicting the least recently used entries to stay within the budget;
    /// a value larger than the budget is not kept.
    pub(super) fn insert(&self, id: I, value: V, bytes: usize) {
        let bytes = bytes + std::mem::size_of::<(I, Entry<V>)>();
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(&id) {
            inner.bytes -= old.bytes;
        }
        if bytes > self.budget {
            return;
        }
        while inner.bytes + bytes > self.budget {
            let Some(e) = remove_least_recent(&mut inner.entries, |e| e.used) else {
                break;
            };
            inner.bytes -= e.bytes;
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.bytes += bytes;
        inner.entries.insert(id, Entry { value, bytes, used });
    }

    /// Drops what is kept for `id`.
    pub(super) fn remove(&self, id: I) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.remove(&id) {
            inner.bytes -= e.bytes;
        }
    }

    pub(super) fn usage(&self) -> KeptUsage {
        let inner = self.lock();
        KeptUsage {
            entries: inner.entries.len(),
            bytes: inner.bytes,
            budget: self.budget,
            hits: inner.hits,
        }
    }
}

/// Removes and returns the entry whose `used` tick is the lowest.
pub(super) fn remove_least_recent<I: Eq + Hash + Copy, E>(
    entries: &mut HashMap<I, E>,
    used: impl Fn(&E) -> u64,
) -> Option<E> {
    let oldest = entries
        .iter()
        .min_by_key(|(_, e)| used(e))
        .map(|(id, _)| *id)?;
    entries.remove(&oldest)
}

#[cfg(test)]
mod tests {
    use super::Kept;

    #[test]
    fn least_recently_used_goes_first_within_the_budget() {
        let entry = std::mem::size_of::<(u32, super::Entry<&str>)>();
        let kept: Kept<u32, &str> = Kept::new(3 * (entry + 10));
        kept.insert(1, "a", 10);
        kept.insert(2, "b", 10);
        kept.insert(3, "c", 10);
        assert_eq!(kept.get(1, |v| Some(*v)), Some("a"));
        // 2 is the least recently used now.
        kept.insert(4, "d", 10);
        assert_eq!(kept.get(2, |v| Some(*v)), None);
        assert_eq!(kept.get(3, |v| Some(*v)), Some("c"));
        let usage = kept.usage();
        assert_eq!(
            (usage.entries, usage.bytes, usage.hits),
            (3, 3 * (entry + 10), 2)
        );
        // Refused by the caller: no hit.
        assert_eq!(kept.get(3, |_| None::<()>), None);
        assert_eq!(kept.usage().hits, 2);
        // Larger than the budget: not kept, and the old value for the id is gone.
        kept.insert(3, "big", 4 * (entry + 10));
        assert_eq!(kept.get(3, |v| Some(*v)), None);
        kept.remove(1);
        assert_eq!(kept.usage().entries, 1);
        assert_eq!(kept.usage().bytes, entry + 10);
        kept.remove(4);
        assert_eq!(kept.usage().bytes, 0);
    }
}
