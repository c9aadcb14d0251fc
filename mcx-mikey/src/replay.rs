//! Replay protection for received MIKEY messages (RFC 3830 5.4): a time
//! window around the receiver's clock and a cache of the (T, RAND) pairs
//! accepted within it.

use std::collections::BTreeSet;

use crate::error::Rejection;

/// The replay window and the messages accepted within it.
///
/// A message is fresh if its time stamp is within `window_secs` of now and
/// its (T, RAND, context) was not accepted before. Entries older than the
/// window are forgotten (such a message fails the window check anyway). If
/// the cache holds `max_entries` unexpired entries it refuses new messages
/// ([`Rejection::ReplayCacheFull`]) rather than forget one.
///
/// Callers check with [`ReplayCache::check`] and record with
/// [`ReplayCache::insert`] only after every other check passed.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    window_secs: u64,
    max_entries: usize,
    /// (Unix seconds of T, T || RAND || context).
    seen: BTreeSet<(i64, Vec<u8>)>,
}

/// Default replay window: 5 minutes either side (a MIKEY-typical skew).
pub const DEFAULT_WINDOW_SECS: u64 = 300;

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW_SECS, 100_000)
    }
}

impl ReplayCache {
    /// A cache with a window of `window_secs` either side of now, holding
    /// at most `max_entries` messages.
    pub fn new(window_secs: u64, max_entries: usize) -> Self {
        Self {
            window_secs,
            max_entries,
            seen: BTreeSet::new(),
        }
    }

    /// The window's half-width in seconds.
    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// Number of messages remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Checks that `t_unix` is within the window around `now_unix`.
    ///
    /// # Errors
    /// [`Rejection::TimestampOutsideWindow`].
    pub fn check_time(&self, t_unix: i64, now_unix: u64) -> Result<(), Rejection> {
        let now = i64::try_from(now_unix).unwrap_or(i64::MAX);
        let w = i64::try_from(self.window_secs).unwrap_or(i64::MAX);
        if t_unix.abs_diff(now) > w.unsigned_abs() {
            return Err(Rejection::TimestampOutsideWindow {
                t_unix,
                now_unix,
                window_secs: self.window_secs,
            });
        }
        Ok(())
    }

    /// Checks that the message is in the window and was not accepted before.
    ///
    /// # Errors
    /// [`Rejection::TimestampOutsideWindow`], [`Rejection::Replayed`] or
    /// [`Rejection::ReplayCacheFull`].
    pub fn check(&self, t_unix: i64, key: &[u8], now_unix: u64) -> Result<(), Rejection> {
        self.check_time(t_unix, now_unix)?;
        if self.seen.contains(&(t_unix, key.to_vec())) {
            return Err(Rejection::Replayed);
        }
        let horizon = Self::horizon(now_unix, self.window_secs);
        let live = self.seen.range((horizon, Vec::new())..).count();
        if live >= self.max_entries {
            return Err(Rejection::ReplayCacheFull);
        }
        Ok(())
    }

    /// Records an accepted message and forgets those older than the window.
    pub fn insert(&mut self, t_unix: i64, key: &[u8], now_unix: u64) {
        let horizon = Self::horizon(now_unix, self.window_secs);
        self.seen = self.seen.split_off(&(horizon, Vec::new()));
        self.seen.insert((t_unix, key.to_vec()));
    }

    fn horizon(now_unix: u64, window: u64) -> i64 {
        i64::try_from(now_unix.saturating_sub(window)).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn window_replay_and_expiry() {
        let mut c = ReplayCache::new(10, 2);
        assert!(c.check(100, b"a", 105).is_ok());
        c.insert(100, b"a", 105);
        assert_eq!(c.check(100, b"a", 105), Err(Rejection::Replayed));
        assert!(c.check(100, b"b", 105).is_ok());
        assert!(matches!(
            c.check(80, b"c", 105),
            Err(Rejection::TimestampOutsideWindow { .. })
        ));
        assert!(matches!(
            c.check(120, b"c", 105),
            Err(Rejection::TimestampOutsideWindow { .. })
        ));
        c.insert(101, b"b", 105);
        assert_eq!(c.check(102, b"c", 105), Err(Rejection::ReplayCacheFull));
        // Later the old entries expire and are dropped.
        c.insert(130, b"d", 135);
        assert_eq!(c.len(), 1);
    }
}
