//! Records by slot number in fixed-size chunks.
//!
//! A fan-out keeps tens of thousands of transaction records alive (RFC 6026
//! keeps an INVITE client transaction 64·T1 after its 2xx). In one `Vec`,
//! every doubling copied all of them into fresh pages (profiled: ~4 % of an
//! MC server's time at 10,000 members, copy and page faults together).
//! Chunks are allocated once at their full size and never move: growing adds
//! a chunk, and a freed slot is reused before any new one.

/// Records per chunk: large enough that the chunk list stays short, small
/// enough that a lightly loaded layer does not reserve much.
const CHUNK: usize = 256;

/// Slot-numbered storage; a slot's number stays valid until it is taken.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    chunks: Vec<Vec<Option<T>>>,
    /// Emptied slots, reused last-freed first.
    free: Vec<usize>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// The record in `slot`, if there is one.
    pub(crate) fn get(&self, slot: usize) -> Option<&T> {
        self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)?.as_ref()
    }

    /// The record in `slot`, if there is one.
    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(slot / CHUNK)?
            .get_mut(slot % CHUNK)?
            .as_mut()
    }

    /// Stores `value` in a free slot, or a new one: its number.
    pub(crate) fn insert(&mut self, value: T) -> usize {
        if let Some(slot) = self.free.pop() {
            if let Some(place) = self
                .chunks
                .get_mut(slot / CHUNK)
                .and_then(|c| c.get_mut(slot % CHUNK))
            {
                *place = Some(value);
                return slot;
            }
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let n = self.chunks.len() - 1;
        let last = &mut self.chunks[n];
        last.push(Some(value));
        n * CHUNK + last.len() - 1
    }

    /// Slots ever filled (live or free): what the storage has grown to.
    #[cfg(test)]
    pub(crate) fn filled(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// Slots free for reuse.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Empties `slot` and frees it: its record, if there was one.
    pub(crate) fn take(&mut self, slot: usize) -> Option<T> {
        let value = self
            .chunks
            .get_mut(slot / CHUNK)?
            .get_mut(slot % CHUNK)?
            .take()?;
        self.free.push(slot);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_stable_across_chunks_and_freed_slots_are_reused() {
        let mut s = Slots::default();
        let n = 3 * CHUNK + 7;
        let slots: Vec<usize> = (0..n).map(|i| s.insert(i)).collect();
        assert_eq!(slots, (0..n).collect::<Vec<_>>());
        for (i, &slot) in slots.iter().enumerate() {
            assert_eq!(s.get(slot), Some(&i));
        }
        assert_eq!(s.take(CHUNK + 1), Some(CHUNK + 1));
        assert_eq!(s.take(CHUNK + 1), None, "taken twice");
        assert_eq!(s.get(CHUNK + 1), None);
        assert_eq!(s.insert(99), CHUNK + 1, "the freed slot first");
        assert_eq!(s.insert(100), n, "then a new one");
        assert_eq!(s.chunks.len(), 4);
        assert!(s.chunks.iter().all(|c| c.capacity() == CHUNK));
        if let Some(v) = s.get_mut(0) {
            *v = 42;
        }
        assert_eq!(s.get(0), Some(&42));
        assert_eq!(s.get(10 * CHUNK), None);
        assert_eq!(s.take(10 * CHUNK), None);
    }
}
