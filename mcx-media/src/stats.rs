//! RTP receiver statistics for one source (RFC 3550 section 6.4.1 and
//! Appendix A.1, A.3, A.8): packets received, expected and lost from the
//! extended highest sequence number, duplicates, reordering and
//! interarrival jitter.
//!
//! Sans-IO: the caller passes each packet's arrival time; no clock is read.

use std::time::{Duration, Instant};

/// A.1 `MAX_DROPOUT`: a forward jump of fewer sequence numbers is loss.
const MAX_DROPOUT: u16 = 3000;
/// A.1 `MAX_MISORDER`: a backward step of fewer is a late or duplicate packet.
const MAX_MISORDER: u16 = 100;
/// Sequence numbers remembered for duplicate detection.
const WINDOW: u64 = 1024;

/// What [`ReceiverStats::record`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arrival {
    /// The first packet, or one with a higher sequence number than any
    /// before (gaps before it count as lost until they arrive).
    InOrder,
    /// A packet older than the highest seen, not seen before.
    Reordered,
    /// A sequence number already received (within the last 1024).
    Duplicate,
    /// A sequence number far from the expected one (A.1: more than
    /// 3000 ahead or 100 behind): not counted, unless it is the second in a
    /// row that follows on, in which case the sender is taken to have
    /// restarted and the statistics restart with it.
    Jump,
    /// The packet that confirmed a jump; the statistics restarted at it.
    Restarted,
}

/// The counters of [`ReceiverStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Packets counted as received, duplicates included (A.3).
    pub received: u64,
    /// Packets expected: extended highest sequence number − first + 1 (A.3).
    pub expected: u64,
    /// Cumulative packets lost: expected − received (A.3; negative when
    /// duplicates outnumber losses, as RFC 3550 allows).
    pub lost: i64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Packets ignored as sequence jumps (A.1 `bad_seq`).
    pub jumps: u64,
    /// Extended highest sequence number received (cycles · 2^16 + highest).
    pub extended_highest: u64,
    /// Interarrival jitter in timestamp units, as an RTCP report carries it
    /// (A.8, truncated).
    pub jitter: u32,
    /// Interarrival jitter in milliseconds (unrounded).
    pub jitter_ms: f64,
    /// Highest jitter seen after any packet, in milliseconds.
    pub max_jitter_ms: f64,
    /// Mean of the jitter after each packet but the first, in milliseconds.
    pub mean_jitter_ms: f64,
}

/// Fraction lost over the interval since the last call (A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalLoss {
    /// Packets expected in the interval.
    pub expected: u64,
    /// Packets received in the interval.
    pub received: u64,
    /// Lost fraction as RTCP's 8-bit fixed point (lost · 256 / expected),
    /// 0 when nothing was lost or more arrived than expected.
    pub fraction_lost: u8,
}

/// Receiver statistics for one RTP source.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mcx_media::ReceiverStats;
///
/// let t0 = Instant::now();
/// let mut rx = ReceiverStats::new(8000);
/// for (i, seq) in [10u16, 11, 13, 14].into_iter().enumerate() {
///     let ts = 160 * u32::from(seq - 10);
///     rx.record(t0 + Duration::from_millis(20 * i as u64), seq, ts);
/// }
/// let s = rx.snapshot();
/// assert_eq!((s.received, s.expected, s.lost), (4, 5, 1));
/// ```
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    started: bool,
    epoch: Option<Instant>,
    max_seq: u16,
    /// A.1 `cycles`: wraps times 2^16.
    cycles: u64,
    base_seq: u64,
    /// A.1 `bad_seq`: the sequence number that would confirm a jump.
    bad_seq: Option<u16>,
    received: u64,
    duplicates: u64,
    reordered: u64,
    jumps: u64,
    /// Bit (ext % WINDOW) set: that extended sequence number arrived.
    seen: [u64; (WINDOW / 64) as usize],
    last_transit: Option<u32>,
    /// A.8 `jitter`, in timestamp units.
    jitter: f64,
    max_jitter: f64,
    jitter_sum: f64,
    jitter_count: u64,
    expected_prior: u64,
    received_prior: u64,
}

impl ReceiverStats {
    /// Statistics for a source whose RTP clock runs at `clock_rate` Hz
    /// (8000 for PCMU).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            started: false,
            epoch: None,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: None,
            received: 0,
            duplicates: 0,
            reordered: 0,
            jumps: 0,
            seen: [0; (WINDOW / 64) as usize],
            last_transit: None,
            jitter: 0.0,
            max_jitter: 0.0,
            jitter_sum: 0.0,
            jitter_count: 0,
            expected_prior: 0,
            received_prior: 0,
        }
    }

    /// A.1 `init_seq`: (re)starts the sequence state at `seq`.
    fn init_seq(&mut self, seq: u16) {
        self.started = true;
        self.base_seq = u64::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
        self.received = 0;
        self.duplicates = 0;
        self.reordered = 0;
        self.seen = [0; (WINDOW / 64) as usize];
        self.expected_prior = 0;
        self.received_prior = 0;
        self.mark(u64::from(seq));
    }

    fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    fn mark(&mut self, ext: u64) -> bool {
        let (word, bit) = ((ext % WINDOW / 64) as usize, ext % 64);
        let was = self.seen[word] & (1 << bit) != 0;
        self.seen[word] |= 1 << bit;
        was
    }

    /// Clears the window slots of extended numbers in (old, new].
    fn advance_window(&mut self, old: u64, new: u64) {
        if new - old >= WINDOW {
            self.seen = [0; (WINDOW / 64) as usize];
            return;
        }
        for ext in old + 1..=new {
            let (word, bit) = ((ext % WINDOW / 64) as usize, ext % 64);
            self.seen[word] &= !(1 << bit);
        }
    }

    /// Records a packet that arrived at `arrival` with sequence number `seq`
    /// and RTP timestamp `timestamp` (A.1 `update_seq`, then A.8).
    ///
    /// The A.1 probation (`MIN_SEQUENTIAL`) is not applied: packets are fed
    /// in after SRTP authentication, which already tells a real source from
    /// noise, so the first packet counts.
    pub fn record(&mut self, arrival: Instant, seq: u16, timestamp: u32) -> Arrival {
        let kind = if !self.started {
            self.init_seq(seq);
            Arrival::InOrder
        } else {
            let udelta = seq.wrapping_sub(self.max_seq);
            if udelta == 0 {
                Arrival::Duplicate
            } else if udelta < MAX_DROPOUT {
                // In order, with a permissible gap.
                let old = self.extended_max();
                if seq < self.max_seq {
                    self.cycles += 1 << 16;
                }
                self.max_seq = seq;
                let new = self.extended_max();
                self.advance_window(old, new);
                self.mark(new);
                Arrival::InOrder
            } else if udelta <= u16::MAX - MAX_MISORDER + 1 {
                // A very large jump: restart if it is the second in a row.
                if self.bad_seq == Some(seq) {
                    self.init_seq(seq);
                    self.last_transit = None;
                    Arrival::Restarted
                } else {
                    self.bad_seq = Some(seq.wrapping_add(1));
                    self.jumps += 1;
                    return Arrival::Jump;
                }
            } else {
                // Behind the highest: duplicate or reordered.
                let back = u64::from(self.max_seq.wrapping_sub(seq));
                let ext = self.extended_max().checked_sub(back);
                match ext {
                    Some(ext) if back < WINDOW && self.mark(ext) => Arrival::Duplicate,
                    _ => Arrival::Reordered,
                }
            }
        };
        match kind {
            Arrival::Duplicate => self.duplicates += 1,
            Arrival::Reordered => self.reordered += 1,
            _ => {}
        }
        self.received += 1;
        self.update_jitter(arrival, timestamp);
        kind
    }

    /// A.8: J += (|D(i−1, i)| − J) / 16, with D from the transit times
    /// (arrival in timestamp units minus RTP timestamp) of this packet and
    /// the one that arrived before it. Arrival times are truncated to whole
    /// timestamp units, as A.8's integer `arrival` is.
    fn update_jitter(&mut self, arrival: Instant, timestamp: u32) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let since = arrival.saturating_duration_since(epoch);
        let units = since.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        // Transit times only matter as differences, so modulo 2^32 they
        // survive timestamp wrap.
        let transit = (units as u32).wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = f64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
            self.max_jitter = self.max_jitter.max(self.jitter);
            self.jitter_sum += self.jitter;
            self.jitter_count += 1;
        }
        self.last_transit = Some(transit);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let ext = self.extended_max();
        let expected = if self.started {
            ext + 1 - self.base_seq
        } else {
            0
        };
        let to_ms = 1000.0 / f64::from(self.clock_rate);
        Snapshot {
            received: self.received,
            expected,
            lost: expected as i64 - self.received as i64,
            duplicates: self.duplicates,
            reordered: self.reordered,
            jumps: self.jumps,
            extended_highest: ext,
            jitter: self.jitter as u32,
            jitter_ms: self.jitter * to_ms,
            max_jitter_ms: self.max_jitter * to_ms,
            mean_jitter_ms: if self.jitter_count == 0 {
                0.0
            } else {
                self.jitter_sum / self.jitter_count as f64 * to_ms
            },
        }
    }

    /// The loss since the previous call (A.3 `expected_prior`,
    /// `received_prior`), for an RTCP reception report block.
    pub fn take_interval(&mut self) -> IntervalLoss {
        let s = self.snapshot();
        let expected = s.expected - self.expected_prior;
        let received = s.received - self.received_prior;
        self.expected_prior = s.expected;
        self.received_prior = s.received;
        let lost = expected.saturating_sub(received);
        let fraction_lost = if expected == 0 || lost == 0 {
            0
        } else {
            ((lost << 8) / expected).min(255) as u8
        };
        IntervalLoss {
            expected,
            received,
            fraction_lost,
        }
    }

    /// Jitter converted to a duration.
    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.jitter / f64::from(self.clock_rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(rx: &mut ReceiverStats, t0: Instant, seqs: &[u16]) -> Vec<Arrival> {
        seqs.iter()
            .enumerate()
            .map(|(i, &s)| rx.record(t0 + Duration::from_millis(20 * i as u64), s, 0))
            .collect()
    }

    #[test]
    fn wrap_loss_duplicates_reordering() {
        let t0 = Instant::now();
        let mut rx = ReceiverStats::new(8000);
        let got = feed(&mut rx, t0, &[65534, 65535, 1, 0, 0, 3, 65535]);
        use Arrival::*;
        assert_eq!(
            got,
            [
                InOrder, InOrder, InOrder, Reordered, Duplicate, InOrder, Duplicate
            ]
        );
        let s = rx.snapshot();
        // 65534..=65539 (3 after wrap) expected: 6; received 7 with 2 duplicates.
        assert_eq!((s.expected, s.received, s.lost), (6, 7, -1));
        assert_eq!((s.duplicates, s.reordered), (2, 1));
        assert_eq!(s.extended_highest, 65536 + 3);
    }

    #[test]
    fn jump_needs_two_in_a_row() {
        let t0 = Instant::now();
        let mut rx = ReceiverStats::new(8000);
        use Arrival::*;
        let got = feed(
            &mut rx,
            t0,
            &[100, 101, 20_000, 102, 30_000, 30_001, 30_002],
        );
        assert_eq!(
            got,
            [InOrder, InOrder, Jump, InOrder, Jump, Restarted, InOrder]
        );
        let s = rx.snapshot();
        assert_eq!((s.expected, s.received, s.lost, s.jumps), (2, 2, 0, 2));
    }

    #[test]
    fn interval_fraction() {
        let t0 = Instant::now();
        let mut rx = ReceiverStats::new(8000);
        feed(&mut rx, t0, &[0, 1, 2, 3]);
        assert_eq!(rx.take_interval().fraction_lost, 0);
        feed(&mut rx, t0, &[5, 7]);
        // 4 expected (4..=7), 2 received: half lost = 128/256.
        assert_eq!(
            rx.take_interval(),
            IntervalLoss {
                expected: 4,
                received: 2,
                fraction_lost: 128
            }
        );
    }

    #[test]
    fn jitter_of_a_steady_stream_is_zero_and_a_step_decays() {
        let t0 = Instant::now();
        let mut rx = ReceiverStats::new(8000);
        for i in 0..10u32 {
            rx.record(
                t0 + Duration::from_millis(20 * u64::from(i)),
                i as u16,
                160 * i,
            );
        }
        assert_eq!(rx.snapshot().jitter, 0);
        // One packet 8 ms late: D = 64 units, J = 64/16 = 4.
        rx.record(t0 + Duration::from_millis(208), 10, 1600);
        let s = rx.snapshot();
        assert_eq!(s.jitter, 4);
        assert!((s.jitter_ms - 0.5).abs() < 1e-12);
    }
}
