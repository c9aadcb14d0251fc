//! Positions of records by a key each record holds, each entry keeping its key's hash.
//!
//! The transaction layer files its transactions' slots by key; the controlling server files a
//! call's participants, and the MC server a fan-out's legs, by URI. A fan-out inserts and
//! removes one per member. In a `HashMap<TxKey, usize>` the table kept whole keys (two
//! `String`s each) and, as removals left tombstones, rehashed in place every few dozen
//! inserts, hashing every live key again (SipHash over branch and sent-by: profiled at ~1.5 %
//! of an MC server at 10,000 members, the lookups' key compares, each a cache miss into a
//! `String`, another ~3 %). Here an entry is the hash and the position (16 octets): a rehash
//! moves entries without hashing, a probe compares hashes first, and only a hash match reads
//! the key, from the record itself, so no key is copied.
//!
//! The hasher is std's keyed SipHash, as for any map keyed by what peers send (branches,
//! sent-by, URIs come off the wire): its per-index random key keeps colliding keys out of
//! reach.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// Positions of records by a key each record holds; the keys stay in the records. The caller
/// files a position under the key's [`PositionIndex::hash`] and reads keys back for lookups.
#[derive(Default)]
pub struct PositionIndex {
    table: HashTable<(u64, usize)>,
    hasher: std::hash::RandomState,
}

impl std::fmt::Debug for PositionIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PositionIndex")
            .field("len", &self.table.len())
            .finish()
    }
}

impl PositionIndex {
    /// The hash `key` is filed under (a `str` hashes as a `String`).
    pub fn hash<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The position of the record whose key is `key` (hashed to `hash`); `key_at` reads a
    /// position's key, consulted only for entries with an equal hash.
    pub fn get<'a, K: PartialEq + ?Sized + 'a>(
        &self,
        hash: u64,
        key: &K,
        key_at: impl Fn(usize) -> Option<&'a K>,
    ) -> Option<usize> {
        self.table
            .find(hash, |&(h, at)| h == hash && key_at(at) == Some(key))
            .map(|&(_, at)| at)
    }

    /// [`PositionIndex::get`], hashing `key` itself.
    pub fn find<'a, K: Hash + PartialEq + ?Sized + 'a>(
        &self,
        key: &K,
        key_at: impl Fn(usize) -> Option<&'a K>,
    ) -> Option<usize> {
        self.get(self.hash(key), key, key_at)
    }

    /// Files position `at` under `hash` (its key not filed yet).
    pub fn insert(&mut self, hash: u64, at: usize) {
        self.table.insert_unique(hash, (hash, at), |&(h, _)| h);
    }

    /// Removes the entry of position `at`, filed under `hash`.
    pub fn remove(&mut self, hash: u64, at: usize) {
        if let Ok(entry) = self.table.find_entry(hash, |&(h, a)| h == hash && a == at) {
            entry.remove();
        }
    }

    /// Makes room for `n` more positions at once (one allocation, not a doubling chain).
    pub fn reserve(&mut self, n: usize) {
        self.table.reserve(n, |&(h, _)| h);
    }

    /// Forgets every position.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// The positions filed, in no order.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.table.iter().map(|&(_, at)| at)
    }

    /// Number of positions filed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if none is filed.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;
    use crate::transaction::{Role, TxKey};

    fn key(branch: &str) -> TxKey {
        TxKey {
            role: Role::Client,
            branch: branch.to_owned(),
            sent_by: String::new(),
            method: Method::Invite,
        }
    }

    #[test]
    fn entries_are_found_by_key_and_removed_by_slot() {
        let keys: Vec<TxKey> = (0..2000).map(|i| key(&format!("z9hG4bK{i}"))).collect();
        let mut index = PositionIndex::default();
        let key_of = |slot: usize| keys.get(slot);
        for (slot, k) in keys.iter().enumerate() {
            assert_eq!(index.get(index.hash(k), k, key_of), None);
            index.insert(index.hash(k), slot);
        }
        assert_eq!(index.len(), keys.len());
        for (slot, k) in keys.iter().enumerate() {
            assert_eq!(index.get(index.hash(k), k, key_of), Some(slot));
        }
        // A key filed under another key's hash is not found: equal hashes alone do not match.
        let stranger = key("z9hG4bKstranger");
        assert_eq!(index.get(index.hash(&keys[7]), &stranger, key_of), None);
        // Removing by slot leaves every other entry in place, across many removals (tombstones,
        // in-place rehashes).
        for slot in (0..keys.len()).step_by(2) {
            index.remove(index.hash(&keys[slot]), slot);
        }
        for (slot, k) in keys.iter().enumerate() {
            let want = (slot % 2 == 1).then_some(slot);
            assert_eq!(index.get(index.hash(k), k, key_of), want, "slot {slot}");
        }
        assert_eq!(index.len(), keys.len() / 2);
        let mut slots: Vec<usize> = index.positions().collect();
        slots.sort_unstable();
        assert_eq!(slots, (1..keys.len()).step_by(2).collect::<Vec<_>>());
        // Removing a slot under the wrong hash removes nothing.
        index.remove(index.hash(&keys[2]), 1);
        assert_eq!(index.len(), keys.len() / 2);
    }

    #[test]
    fn positions_are_found_by_the_records_keys() {
        let names: Vec<String> = (0..5000)
            .map(|i| format!("sip:member-{i}@mcx.test"))
            .collect();
        let mut index = PositionIndex::default();
        let key_at = |at: usize| names.get(at).map(String::as_str);
        for (at, n) in names.iter().enumerate() {
            assert_eq!(index.find(n.as_str(), key_at), None);
            index.insert(index.hash(n.as_str()), at);
        }
        for (at, n) in names.iter().enumerate() {
            assert_eq!(index.find(n.as_str(), key_at), Some(at));
        }
        assert_eq!(index.find("sip:stranger@mcx.test", key_at), None);
        // A position whose record holds another key is not a match.
        let shifted = |at: usize| names.get(at + 1).map(String::as_str);
        assert_eq!(index.find(names[10].as_str(), shifted), None);
        index.clear();
        assert_eq!(index.find(names[10].as_str(), key_at), None);
    }
}
