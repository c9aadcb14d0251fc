//! Slot numbers of live transactions by key, each entry keeping its key's hash.
//!
//! A fan-out inserts and removes a transaction per member. In a `HashMap<TxKey, usize>` the
//! table kept whole keys (two `String`s each) and, as removals left tombstones, rehashed in
//! place every few dozen inserts, hashing every live key again (SipHash over branch and
//! sent-by: profiled at ~1.5 % of an MC server at 10,000 members, the lookups' key compares,
//! each a cache miss into a `String`, another ~3 %). Here an entry is the hash and the slot
//! (16 octets): a rehash moves entries without hashing, a probe compares hashes first, and
//! only a hash match reads the key, from the transaction's own record.
//!
//! The hasher is std's keyed SipHash, as for any map keyed by what peers send (branches and
//! sent-by come off the wire): its per-layer random key keeps colliding keys out of reach.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::transaction::TxKey;

/// Slot numbers by transaction key; the keys themselves stay in the records.
#[derive(Default)]
pub(crate) struct SlotIndex {
    table: HashTable<(u64, usize)>,
    hasher: std::hash::RandomState,
}

impl SlotIndex {
    /// The hash `key` is filed under.
    pub(crate) fn hash(&self, key: &TxKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot of the transaction whose key is `key` (hashed to `hash`); `key_of` reads a
    /// slot's key, consulted only for entries with an equal hash.
    pub(crate) fn get<'a>(
        &self,
        hash: u64,
        key: &TxKey,
        key_of: impl Fn(usize) -> Option<&'a TxKey>,
    ) -> Option<usize> {
        self.table
            .find(hash, |&(h, slot)| h == hash && key_of(slot) == Some(key))
            .map(|&(_, slot)| slot)
    }

    /// Files `slot` under `hash` (its key not filed yet).
    pub(crate) fn insert(&mut self, hash: u64, slot: usize) {
        self.table.insert_unique(hash, (hash, slot), |&(h, _)| h);
    }

    /// Removes the entry of `slot`, filed under `hash`.
    pub(crate) fn remove(&mut self, hash: u64, slot: usize) {
        if let Ok(entry) = self
            .table
            .find_entry(hash, |&(h, s)| h == hash && s == slot)
        {
            entry.remove();
        }
    }

    /// The slots filed.
    pub(crate) fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.table.iter().map(|&(_, slot)| slot)
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;
    use crate::transaction::Role;

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
        let mut index = SlotIndex::default();
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
        let mut slots: Vec<usize> = index.slots().collect();
        slots.sort_unstable();
        assert_eq!(slots, (1..keys.len()).step_by(2).collect::<Vec<_>>());
        // Removing a slot under the wrong hash removes nothing.
        index.remove(index.hash(&keys[2]), 1);
        assert_eq!(index.len(), keys.len() / 2);
    }
}
