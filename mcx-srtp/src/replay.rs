//! The replay list (RFC 3711 section 3.3.2) as a 64-packet sliding window,
//! and SRTP packet index estimation (RFC 3711 section 3.3.1, Appendix A).

use crate::error::{Error, Exhausted, Replay};

/// Replay window size in packets (RFC 3711 section 3.3.2: at least 64).
pub const REPLAY_WINDOW: u64 = 64;

/// Highest index seen plus a bitmap of the 64 indices at and below it.
///
/// For SRTP the highest index is also the stream's ROC and s_l.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    /// Highest index accepted.
    top: u64,
    /// Bit `n` set: index `top - n` was accepted.
    bits: u64,
}

impl ReplayWindow {
    /// A window whose first accepted index is `index`.
    #[inline]
    pub(crate) fn starting_at(index: u64) -> Self {
        Self {
            top: index,
            bits: 1,
        }
    }

    /// The highest index accepted.
    #[inline]
    pub(crate) fn top(&self) -> u64 {
        self.top
    }

    /// Whether `index` may be accepted. Does not change the window.
    #[inline]
    pub(crate) fn check(&self, index: u64) -> Result<(), Replay> {
        if index > self.top {
            return Ok(());
        }
        let delta = self.top - index;
        if delta >= REPLAY_WINDOW {
            Err(Replay::TooOld { index })
        } else if self.bits >> delta & 1 == 1 {
            Err(Replay::Duplicate { index })
        } else {
            Ok(())
        }
    }

    /// Records `index` as accepted. Call only after [`Self::check`] passed
    /// and the packet authenticated.
    #[inline]
    pub(crate) fn accept(&mut self, index: u64) {
        if index > self.top {
            let shift = index - self.top;
            self.bits = if shift >= REPLAY_WINDOW {
                1
            } else {
                self.bits << shift | 1
            };
            self.top = index;
        } else {
            self.bits |= 1 << (self.top - index);
        }
    }
}

/// The largest SRTP packet index: 2^48 - 1.
pub(crate) const MAX_SRTP_INDEX: u64 = (1 << 48) - 1;

/// Estimates the 48-bit packet index i = 2^16 * v + SEQ of a packet with
/// sequence number `seq`, given the highest index `top` seen on the stream
/// (so ROC = top >> 16, s_l = top & 0xffff), per RFC 3711 Appendix A.
///
/// # Errors
/// [`Replay::TooOld`] when the guess would need a negative ROC, and
/// [`Exhausted::Roc`] when it would need a ROC of 2^32.
#[inline]
pub(crate) fn estimate_index(top: u64, seq: u16) -> Result<u64, Error> {
    let roc = top >> 16;
    let s_l = top as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            match roc.checked_sub(1) {
                Some(v) => v,
                None => {
                    return Err(Replay::TooOld {
                        index: u64::from(seq),
                    }
                    .into());
                }
            }
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    let index = v << 16 | u64::from(seq);
    if index > MAX_SRTP_INDEX {
        return Err(Exhausted::Roc.into());
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_new_and_refuses_duplicates_and_old() {
        let mut w = ReplayWindow::starting_at(100);
        assert_eq!(w.check(100), Err(Replay::Duplicate { index: 100 }));
        assert_eq!(w.check(101), Ok(()));
        assert_eq!(w.check(99), Ok(()));
        w.accept(99);
        assert_eq!(w.check(99), Err(Replay::Duplicate { index: 99 }));
        w.accept(200);
        assert_eq!(w.top(), 200);
        assert_eq!(w.check(200 - 63), Ok(()));
        assert_eq!(w.check(200 - 64), Err(Replay::TooOld { index: 136 }));
        assert_eq!(w.check(100), Err(Replay::TooOld { index: 100 }));
        w.accept(137);
        assert_eq!(w.check(137), Err(Replay::Duplicate { index: 137 }));
        // Shift within the window keeps the bits.
        w.accept(210);
        assert_eq!(w.check(200), Err(Replay::Duplicate { index: 200 }));
        assert_eq!(w.check(201), Ok(()));
    }

    #[test]
    fn estimate_follows_rfc3711_appendix_a() {
        // ROC 0, s_l = 10: SEQ 65530 would need ROC -1.
        assert!(matches!(
            estimate_index(10, 65530),
            Err(Error::Replay(Replay::TooOld { .. }))
        ));
        // ROC 1, s_l = 10: SEQ 65530 belongs to ROC 0.
        assert_eq!(estimate_index(0x1_000a, 65530), Ok(65530));
        // ROC 0, s_l = 65530: SEQ 3 is after the wrap.
        assert_eq!(estimate_index(65530, 3), Ok(0x1_0003));
        // Near: same ROC.
        assert_eq!(estimate_index(0x5_8000, 0x7000), Ok(0x5_7000));
        assert_eq!(estimate_index(0x5_1000, 0x9000), Ok(0x5_9000));
        // ROC at its maximum: the next wrap is refused.
        let top = MAX_SRTP_INDEX - 5;
        assert_eq!(estimate_index(top, 0xffff), Ok(MAX_SRTP_INDEX));
        assert_eq!(
            estimate_index(top, 2),
            Err(Error::Exhausted(Exhausted::Roc))
        );
    }
}
