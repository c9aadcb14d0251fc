//! Replay protection for received MIKEY messages (RFC 3830 5.4): a time
//! window around the receiver's clock and a cache of the (T, RAND) pairs
//! accepted, each remembered for as long as it could be accepted.

use std::collections::{BTreeSet, HashMap};

use crate::error::Rejection;

/// The replay window and the messages accepted within it.
///
/// A message is fresh if its time stamp is within `window_secs` of now and
/// its (T, RAND, context) was not accepted before. A message may also carry
/// a signed lifetime (a wrapped TGMK's expiry: the end of its call); one
/// accepted past the window is then remembered until that expiry, so
/// that a replay is refused for as long as the message itself would be
/// accepted. Entries are forgotten once they could not pass the time
/// checks anyway. If the cache holds `max_entries` live entries it refuses
/// new messages ([`Rejection::ReplayCacheFull`]) rather than forget one.
///
/// Callers check with [`ReplayCache::check`] (or
/// [`ReplayCache::check_unseen`] and [`ReplayCache::check_lifetime`]) and
/// record with [`ReplayCache::insert`] (or [`ReplayCache::insert_until`])
/// only after every other check passed.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    window_secs: u64,
    max_lifetime_secs: u64,
    max_entries: usize,
    /// (Unix seconds of T, T || RAND || context) → Unix seconds after
    /// which it is forgotten.
    seen: HashMap<(i64, Vec<u8>), i64>,
    /// The same entries ordered by when they are forgotten.
    by_expiry: BTreeSet<(i64, i64, Vec<u8>)>,
}

/// Default replay window: 5 minutes either side (a MIKEY-typical skew).
pub const DEFAULT_WINDOW_SECS: u64 = 300;

/// Default longest signed lifetime accepted past the window: one day (a
/// call lasts at most an hour by default; anything far longer would pin
/// cache entries for no purpose).
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 24 * 3600;

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW_SECS, 100_000)
    }
}

impl ReplayCache {
    /// A cache with a window of `window_secs` either side of now, holding
    /// at most `max_entries` messages, accepting signed lifetimes up to
    /// [`DEFAULT_MAX_LIFETIME_SECS`].
    pub fn new(window_secs: u64, max_entries: usize) -> Self {
        Self {
            window_secs,
            max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
            max_entries,
            seen: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// The same cache accepting signed lifetimes up to `max_lifetime_secs`
    /// (from T to the expiry).
    #[must_use]
    pub fn with_max_lifetime(mut self, max_lifetime_secs: u64) -> Self {
        self.max_lifetime_secs = max_lifetime_secs;
        self
    }

    /// The window's half-width in seconds.
    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// The longest signed lifetime accepted, in seconds.
    pub fn max_lifetime_secs(&self) -> u64 {
        self.max_lifetime_secs
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
        if self.in_window(t_unix, now_unix) {
            Ok(())
        } else {
            Err(self.outside(t_unix, now_unix))
        }
    }

    /// Checks that the message is in the window and was not accepted before.
    ///
    /// # Errors
    /// [`Rejection::TimestampOutsideWindow`], [`Rejection::Replayed`] or
    /// [`Rejection::ReplayCacheFull`].
    pub fn check(&self, t_unix: i64, key: &[u8], now_unix: u64) -> Result<(), Rejection> {
        self.check_time(t_unix, now_unix)?;
        self.check_seen(t_unix, key, now_unix)
    }

    /// The first half of the check of a message that may carry a signed
    /// lifetime (before that lifetime is authenticated): T is not ahead of
    /// the window, not older than the longest lifetime, and the message
    /// was not accepted before. [`ReplayCache::check_lifetime`] follows
    /// once the lifetime is known.
    ///
    /// # Errors
    /// [`Rejection::TimestampOutsideWindow`], [`Rejection::Replayed`] or
    /// [`Rejection::ReplayCacheFull`].
    pub fn check_unseen(&self, t_unix: i64, key: &[u8], now_unix: u64) -> Result<(), Rejection> {
        let now = to_i64(now_unix);
        let ahead = t_unix.saturating_sub(now);
        let behind = now.saturating_sub(t_unix);
        if ahead > to_i64(self.window_secs)
            || behind > to_i64(self.window_secs.max(self.max_lifetime_secs))
        {
            return Err(self.outside(t_unix, now_unix));
        }
        self.check_seen(t_unix, key, now_unix)
    }

    /// The second half: a message in the window is fresh; one older than
    /// the window only while its authenticated `expiry_unix` (0: none) is
    /// ahead and at most the longest lifetime after T.
    ///
    /// # Errors
    /// [`Rejection::TimestampOutsideWindow`] (old and no lifetime),
    /// [`Rejection::LifetimeTooLong`] or [`Rejection::KeyExpired`].
    pub fn check_lifetime(
        &self,
        t_unix: i64,
        expiry_unix: u64,
        now_unix: u64,
    ) -> Result<(), Rejection> {
        if self.in_window(t_unix, now_unix) {
            return Ok(());
        }
        if expiry_unix == 0 || t_unix > to_i64(now_unix) {
            return Err(self.outside(t_unix, now_unix));
        }
        let lifetime = to_i64(expiry_unix).saturating_sub(t_unix);
        if lifetime > to_i64(self.max_lifetime_secs) {
            return Err(Rejection::LifetimeTooLong {
                lifetime_secs: lifetime,
                max_secs: self.max_lifetime_secs,
            });
        }
        if expiry_unix <= now_unix {
            return Err(Rejection::KeyExpired {
                expiry: expiry_unix,
            });
        }
        Ok(())
    }

    /// Records an accepted message (until it leaves the window) and
    /// forgets those that could no longer be accepted.
    pub fn insert(&mut self, t_unix: i64, key: &[u8], now_unix: u64) {
        self.insert_until(t_unix, key, 0, now_unix);
    }

    /// Records an accepted message carrying the signed lifetime
    /// `expiry_unix` (0: none): it is remembered until the later of the
    /// end of its window and its expiry.
    pub fn insert_until(&mut self, t_unix: i64, key: &[u8], expiry_unix: u64, now_unix: u64) {
        self.prune(now_unix);
        let forget_at = t_unix
            .saturating_add(to_i64(self.window_secs))
            .max(to_i64(expiry_unix));
        if let Some(old) = self.seen.insert((t_unix, key.to_vec()), forget_at) {
            self.by_expiry.remove(&(old, t_unix, key.to_vec()));
        }
        self.by_expiry.insert((forget_at, t_unix, key.to_vec()));
    }

    fn check_seen(&self, t_unix: i64, key: &[u8], now_unix: u64) -> Result<(), Rejection> {
        let now = to_i64(now_unix);
        if self
            .seen
            .get(&(t_unix, key.to_vec()))
            .is_some_and(|&forget_at| forget_at >= now)
        {
            return Err(Rejection::Replayed);
        }
        let live = self
            .by_expiry
            .range((now, i64::MIN, Vec::new())..)
            .take(self.max_entries)
            .count();
        if live >= self.max_entries {
            return Err(Rejection::ReplayCacheFull);
        }
        Ok(())
    }

    fn prune(&mut self, now_unix: u64) {
        let keep = self
            .by_expiry
            .split_off(&(to_i64(now_unix), i64::MIN, Vec::new()));
        for (_, t, key) in std::mem::replace(&mut self.by_expiry, keep) {
            self.seen.remove(&(t, key));
        }
    }

    fn in_window(&self, t_unix: i64, now_unix: u64) -> bool {
        t_unix.abs_diff(to_i64(now_unix)) <= self.window_secs
    }

    fn outside(&self, t_unix: i64, now_unix: u64) -> Rejection {
        Rejection::TimestampOutsideWindow {
            t_unix,
            now_unix,
            window_secs: self.window_secs,
        }
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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

    #[test]
    fn a_signed_lifetime_keeps_a_message_acceptable_and_its_replay_refused() {
        let mut c = ReplayCache::new(10, 10).with_max_lifetime(1000);
        // 500 s old, far outside the window, with an expiry 1000 s after T.
        assert!(c.check_unseen(100, b"late", 600).is_ok());
        assert!(c.check_lifetime(100, 1100, 600).is_ok());
        c.insert_until(100, b"late", 1100, 600);
        // Remembered until its expiry, long after its window.
        assert_eq!(c.check_unseen(100, b"late", 1050), Err(Rejection::Replayed));
        // Without a lifetime the same age fails the window.
        assert!(matches!(
            c.check_lifetime(100, 0, 600),
            Err(Rejection::TimestampOutsideWindow { .. })
        ));
        // Expired.
        assert_eq!(
            c.check_lifetime(100, 550, 600),
            Err(Rejection::KeyExpired { expiry: 550 })
        );
        // A lifetime beyond the receiver's bound.
        assert_eq!(
            c.check_lifetime(100, 1200, 600),
            Err(Rejection::LifetimeTooLong {
                lifetime_secs: 1100,
                max_secs: 1000
            })
        );
        // Older than any lifetime, or from the future: refused outright.
        assert!(matches!(
            c.check_unseen(100, b"x", 1200),
            Err(Rejection::TimestampOutsideWindow { .. })
        ));
        assert!(matches!(
            c.check_unseen(700, b"x", 600),
            Err(Rejection::TimestampOutsideWindow { .. })
        ));
        // Forgotten once past its expiry (its T fails every check then).
        c.insert(1200, b"other", 1200);
        assert_eq!(c.len(), 1);
    }
}
