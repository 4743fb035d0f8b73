//! Hashing and string comparison for the comparison's indexes: a fast keyed hasher for short
//! names and GUIDs, the lazily built GUID index of a history, and an inline string equality.
//! Speed machinery: skippable for a reader.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

/// GUID → index in a history.
pub(super) type GuidMap = HashMap<u64, u32, FoldHashState>;

/// A history's GUIDs, indexed when a comparison first needs them (`OnceLock`, not `OnceCell`,
/// so that histories stay `Sync`).
#[derive(Debug, Clone, Default)]
pub(super) struct GuidIndex {
    /// GUID → index, `None` when a GUID occurs twice (then only `sorted` is used).
    pub(super) unique: OnceLock<Option<GuidMap>>,
    /// `(guid, index)` sorted: the general matching, for histories with repeated GUIDs.
    pub(super) sorted: OnceLock<Vec<(u64, u32)>>,
}

/// A hasher for short names and GUIDs: 8 bytes per multiply, with random keys per map
/// (SipHash, the standard one, costs several times more per key, and the planner hashes
/// names and GUIDs of every record).
#[derive(Debug, Clone, Copy)]
pub(super) struct FoldHashState {
    k0: u64,
    k1: u64,
}

impl FoldHashState {
    pub(super) fn random() -> Self {
        let state = RandomState::new();
        FoldHashState {
            k0: state.hash_one(0u64),
            k1: state.hash_one(1u64) | 1,
        }
    }
}

impl BuildHasher for FoldHashState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            h: self.k0,
            k: self.k1,
        }
    }
}

pub(super) struct FoldHasher {
    h: u64,
    k: u64,
}

/// `a == b` for short strings, inline, 8 bytes per step (the generic comparison calls
/// `memcmp`, which costs more than the comparison itself for names of a few dozen bytes;
/// the index compares every record's dataset and name with a neighbour's).
#[inline]
pub(super) fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        // Two overlapping 4-byte words, or bytes.
        if n < 4 {
            return a == b;
        }
        let half = |s: &[u8], at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&s[at..at + 4]);
            u32::from_ne_bytes(w)
        };
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    // Whole words, then the last 8 bytes (overlapping the last word).
    let mut at = 0;
    while at + 8 <= n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// The high and low halves of the 128-bit product, folded.
pub(super) fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.h = fold_mul(self.h ^ u64::from_le_bytes(w), self.k);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.h = fold_mul(self.h ^ u64::from_le_bytes(w), self.k ^ rest.len() as u64);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.h = fold_mul(self.h ^ i, self.k);
    }

    fn write_u8(&mut self, i: u8) {
        self.h = fold_mul(self.h ^ u64::from(i), self.k.rotate_left(17));
    }

    fn finish(&self) -> u64 {
        fold_mul(self.h, self.k.rotate_left(32))
    }
}
