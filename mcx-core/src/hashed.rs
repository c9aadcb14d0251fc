//! A hash map whose entries keep their key's hash.
//!
//! The link's records (per transaction, per accepted 2xx, per sent ACK, per dialog) are keyed
//! by branches and Call-IDs, and churn by one per member in a fan-out. In a std `HashMap` the
//! removals left tombstones that made the table rehash in place every few dozen inserts,
//! hashing every live key again, and each probe compared whole keys (a cache miss into a
//! `String` per candidate). Here a rehash moves entries without hashing, and a probe compares
//! the stored hash before it reads a key. Keys are hashed with std's keyed SipHash: they come
//! off the wire, and its per-map random key keeps colliding keys out of a peer's reach.

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
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The value of `key` (any form that hashes and compares as `K` does).
    pub(crate) fn get<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> Option<&V> {
        let hash = self.hash(key);
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

    /// True if `key` has a value.
    pub(crate) fn contains_key<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key`'s value: the value it replaced, if any.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
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
    }
}
