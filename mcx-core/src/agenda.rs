//! [`Agenda`]: deadlines in order, shared by the [`crate::SipLink`] and the
//! roles' call timers.

use std::collections::BTreeMap;
use std::time::Instant;

/// An entry of an [`Agenda`]: the deadline and a tie-breaker unique in
/// the agenda. Records keep their slots to remove them.
pub(crate) type Slot = (Instant, u64);

/// Deadlines in order, kept exact: whoever replaces or drops a record
/// removes its slot, so the first entry is the earliest live deadline
/// (no stale entries, no early wake-ups) and due entries pop in O(log n).
/// Only `(Instant, u64)` is compared, never the keys.
pub(crate) struct Agenda<K> {
    pub(crate) entries: BTreeMap<Slot, K>,
    seq: u64,
}

impl<K> Agenda<K> {
    pub(crate) fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            seq: 0,
        }
    }
    pub(crate) fn insert(&mut self, at: Instant, key: K) -> Slot {
        let slot = (at, self.seq);
        self.seq += 1;
        self.entries.insert(slot, key);
        slot
    }
    pub(crate) fn remove(&mut self, slot: Slot) {
        self.entries.remove(&slot);
    }
    pub(crate) fn first(&self) -> Option<Instant> {
        self.entries.first_key_value().map(|(&(at, _), _)| at)
    }
    /// The key of the earliest entry due at `now`, removed.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        self.pop_due_slot(now).map(|(_, k)| k)
    }
    /// [`Agenda::pop_due`] with the entry's slot: a record that keeps its
    /// slot is told by it.
    pub(crate) fn pop_due_slot(&mut self, now: Instant) -> Option<(Slot, K)> {
        let e = self.entries.first_entry()?;
        (e.key().0 <= now).then(|| e.remove_entry())
    }
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The roles' call timers: an agenda of (call, kind) whose calls keep
/// their own (kind, slot) lists, at most one timer of each kind per call.
impl<N: Copy, T: Copy + PartialEq> Agenda<(N, T)> {
    /// Arms `kind` for call `no` at `at`, replacing its earlier one.
    pub(crate) fn set(&mut self, timers: &mut Vec<(T, Slot)>, no: N, kind: T, at: Instant) {
        self.clear(timers, kind);
        let slot = self.insert(at, (no, kind));
        timers.push((kind, slot));
    }

    /// Disarms `kind` of a call.
    pub(crate) fn clear(&mut self, timers: &mut Vec<(T, Slot)>, kind: T) {
        if let Some(i) = timers.iter().position(|(t, _)| *t == kind) {
            let (_, slot) = timers.swap_remove(i);
            self.remove(slot);
        }
    }

    /// Disarms every timer of a call that goes.
    pub(crate) fn clear_all(&mut self, timers: &[(T, Slot)]) {
        for (_, slot) in timers {
            self.remove(*slot);
        }
    }
}
