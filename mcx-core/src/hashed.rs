//! A hash map whose entries keep their key's hash.
//!
//! The link's records (per transaction, per accepted 2xx, per sent ACK, per dialog) are keyed
//! by branches and Call-IDs, and churn by one per member in a fan-out. In a std `HashMap` the
//! removals left tombstones that made the table rehash in place every few dozen inserts,
//! hashing every live key again, and each probe compared whole keys (a cache miss into a
//! `String` per candidate). Here a rehash moves entries without hashing, and a probe compares
//! the stored hash before it reads a key. Keys are hashed with std's keyed SipHash: they come
//! off the wire, and its per-map random key keeps colliding keys out of a peer's reach.
//!
//! A caller that reaches one key more than once for a message hashes it once
//! ([`HashedMap::hash`], then the `_hashed` methods). A caller that files an entry's hash
//! elsewhere (a timer entry, an eviction order) finds the entry again by that hash and by
//! something of its value ([`HashedMap::get_mut_by`], [`HashedMap::remove_by`]): no copy of
//! the key to keep, no hashing and no key comparison then.

use std::hash::{BuildHasher, Hash, RandomState};

use hashbrown::{Equivalent, HashTable};

/// A map from `K` to `V` that stores each key's hash with it.
pub(crate) struct HashedMap<K, V> {
    table: HashTable<(u64, K, V)>,
    hasher: RandomState,
}

impl<K, V> Default for HashedMap<K, V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            hasher: RandomState::new(),
        }
    }
}

impl<K: Hash + Eq, V> HashedMap<K, V> {
    /// The hash `key` is filed under (any form that hashes as `K` does).
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The value of `key` (any form that hashes and compares as `K` does).
    pub(crate) fn get<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> Option<&V> {
        self.get_hashed(self.hash(key), key)
    }

    /// [`HashedMap::get`] of a key hashed to `hash` ([`HashedMap::hash`]).
    pub(crate) fn get_hashed<Q: Equivalent<K> + ?Sized>(&self, hash: u64, key: &Q) -> Option<&V> {
        self.table
            .find(hash, |(h, k, _)| *h == hash && key.equivalent(k))
            .map(|(_, _, v)| v)
    }

    /// The value of `key`, to change.
    pub(crate) fn get_mut<Q: Hash + Equivalent<K> + ?Sized>(&mut self, key: &Q) -> Option<&mut V> {
        let hash = self.hash(key);
        self.table
            .find_mut(hash, |(h, k, _)| *h == hash && key.equivalent(k))
            .map(|(_, _, v)| v)
    }

    /// The value filed under `hash` that `is` picks, to change: for a caller that kept the
    /// hash and tells its entry by its value (hash collisions included) without its key.
    pub(crate) fn get_mut_by(&mut self, hash: u64, is: impl Fn(&V) -> bool) -> Option<&mut V> {
        self.table
            .find_mut(hash, |(h, _, v)| *h == hash && is(v))
            .map(|(_, _, v)| v)
    }

    /// True if `key` has a value.
    #[cfg(test)]
    pub(crate) fn contains_key<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`'s value: the value it replaced, if any.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.insert_hashed(self.hash(&key), key, value)
    }

    /// [`HashedMap::insert`] of a key hashed to `hash` ([`HashedMap::hash`]).
    pub(crate) fn insert_hashed(&mut self, hash: u64, key: K, value: V) -> Option<V> {
        match self
            .table
            .entry(hash, |(h, k, _)| *h == hash && *k == key, |(h, _, _)| *h)
        {
            hashbrown::hash_table::Entry::Occupied(mut e) => {
                Some(std::mem::replace(&mut e.get_mut().2, value))
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert((hash, key, value));
                None
            }
        }
    }

    /// Removes `key`: its value, if it had one.
    pub(crate) fn remove<Q: Hash + Equivalent<K> + ?Sized>(&mut self, key: &Q) -> Option<V> {
        let hash = self.hash(key);
        let entry = self
            .table
            .find_entry(hash, |(h, k, _)| *h == hash && key.equivalent(k))
            .ok()?;
        Some(entry.remove().0.2)
    }

    /// Removes the entry filed under `hash` that `is` picks (see [`HashedMap::get_mut_by`]):
    /// its value, if there was one.
    pub(crate) fn remove_by(&mut self, hash: u64, is: impl Fn(&V) -> bool) -> Option<V> {
        let entry = self
            .table
            .find_entry(hash, |(h, _, v)| *h == hash && is(v))
            .ok()?;
        Some(entry.remove().0.2)
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The values, in no order.
    #[cfg(test)]
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.table.iter().map(|(_, _, v)| v)
    }
}

/// A record's key by Call-ID and CSeq number (a 2xx we sent, an ACK we sent).
pub(crate) type CallSeq = (String, u32);

/// [`CallSeq`] borrowed, to look records up without copying the Call-ID. Hashes as
/// [`CallSeq`] does: fields in order, and a `str` hashes as a `String`.
#[derive(Hash)]
pub(crate) struct CallSeqRef<'a>(pub(crate) &'a str, pub(crate) u32);

impl Equivalent<CallSeq> for CallSeqRef<'_> {
    fn equivalent(&self, key: &CallSeq) -> bool {
        self.1 == key.1 && self.0 == key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map_and_borrowed_keys_find_owned_ones() {
        let mut m: HashedMap<CallSeq, usize> = HashedMap::default();
        let key = |i: usize| -> CallSeq {
            (
                format!("call-{i}@mcx.test"),
                u32::try_from(i % 3).unwrap_or(0),
            )
        };
        for i in 0..3000 {
            assert_eq!(m.insert(key(i), i), None);
        }
        assert_eq!(
            m.insert(key(5), 55),
            Some(5),
            "replacing returns the old value"
        );
        assert_eq!(m.len(), 3000);
        for i in 0..3000 {
            let k = key(i);
            let want = if i == 5 { 55 } else { i };
            assert_eq!(m.get(&k), Some(&want));
            assert_eq!(m.get(&CallSeqRef(&k.0, k.1)), Some(&want));
        }
        // Same Call-ID, other CSeq: another key.
        assert_eq!(m.get(&CallSeqRef("call-1@mcx.test", 2)), None);
        for i in (0..3000).step_by(2) {
            let k = key(i);
            assert!(m.remove(&CallSeqRef(&k.0, k.1)).is_some());
        }
        assert_eq!(m.len(), 1500);
        for i in 0..3000 {
            assert_eq!(m.contains_key(&key(i)), i % 2 == 1, "key {i}");
        }
        if let Some(v) = m.get_mut(&key(1)) {
            *v = 7;
        }
        assert_eq!(m.get(&key(1)), Some(&7));
        assert_eq!(m.values().count(), 1500);
        // By a kept hash: the key's own, and the value tells the entry.
        let (k3, k5) = (key(3), key(5));
        let (h3, h5) = (m.hash(&k3), m.hash(&CallSeqRef(&k5.0, k5.1)));
        assert_eq!(
            h3,
            m.hash(&CallSeqRef(&k3.0, k3.1)),
            "borrowed hashes as owned"
        );
        assert_eq!(m.get_hashed(h3, &k3), Some(&3));
        assert_eq!(m.get_mut_by(h3, |v| *v == 4), None, "another value");
        assert_eq!(m.get_mut_by(h5, |v| *v == 3), None, "another hash");
        if let Some(v) = m.get_mut_by(h3, |v| *v == 3) {
            *v = 33;
        }
        assert_eq!(m.remove_by(h3, |v| *v == 3), None);
        assert_eq!(m.remove_by(h3, |v| *v == 33), Some(33));
        assert!(!m.contains_key(&k3));
        assert_eq!(m.insert_hashed(h3, k3.clone(), 3), None);
        assert_eq!(m.get(&k3), Some(&3));
    }
}
