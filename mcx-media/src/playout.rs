//! A fixed-delay playout buffer for PCMU that turns received packets back
//! into the sender's 8 kHz sample stream: reordered packets are put back in
//! place, lost frames become silence, and sample positions follow the RTP
//! timestamps, so a recording has the sender's timing.
//!
//! Sans-IO: arrival and current times are inputs. A packet is due for
//! playout at `anchor + delay + (timestamp − anchor timestamp) / 8000 s`,
//! where the anchor is the first packet's arrival. When a packet's time
//! comes, everything before it is committed to the output (silence where
//! nothing arrived), so a packet arriving after a later one was played out
//! is late and dropped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::pcmu;

/// PCMU samples per second (RFC 3551: 8000 Hz clock, one octet a sample).
const RATE: u64 = 8000;

/// What [`Playout::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Buffered until its playout time.
    Buffered,
    /// Its place in the output was already played out: dropped.
    Late,
    /// A packet with the same timestamp is already buffered: dropped.
    Duplicate,
    /// Empty payload: nothing to play.
    Empty,
}

/// Counters of a [`Playout`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutStats {
    /// Packets played out.
    pub played: u64,
    /// Packets dropped because they came after their place was played.
    pub late: u64,
    /// Packets dropped as duplicates of a buffered one.
    pub duplicates: u64,
    /// Silence samples inserted where no packet arrived.
    pub concealed_samples: u64,
    /// Timestamp jumps larger than the maximum gap, where the timeline
    /// was restarted instead of filled with silence.
    pub resyncs: u64,
    /// Samples produced so far.
    pub samples: u64,
}

/// Playout buffer for one PCMU source.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mcx_media::Playout;
///
/// let t0 = Instant::now();
/// let mut p = Playout::new(Duration::from_millis(60));
/// // Frames 0 and 2 arrive; frame 1 is lost.
/// p.push(t0, 1000, &[0x80; 160]);
/// p.push(t0 + Duration::from_millis(40), 1320, &[0x80; 160]);
/// p.finish();
/// let pcm = p.take_samples();
/// assert_eq!(pcm.len(), 480);
/// assert!(pcm[160..320].iter().all(|&s| s == 0));
/// assert_eq!(p.stats().concealed_samples, 160);
/// ```
#[derive(Debug, Clone)]
pub struct Playout {
    delay: Duration,
    max_gap: u64,
    max_buffered: usize,
    /// (arrival, extended timestamp) of the first packet.
    anchor: Option<(Instant, i64)>,
    /// Extended timestamp of the next sample to output.
    next: i64,
    /// Whether anything has been output yet (until then, an earlier packet
    /// may still move `next` back).
    started: bool,
    /// Latest extended timestamp seen, for extending the next.
    reference: i64,
    /// RTP timestamp of output sample 0.
    start: Option<u32>,
    buffer: BTreeMap<i64, Vec<u8>>,
    out: Vec<i16>,
    stats: PlayoutStats,
}

impl Playout {
    /// A playout buffer that holds each packet for `delay` after the
    /// first packet's arrival would have it played (the jitter allowance).
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            max_gap: 10 * RATE,
            max_buffered: 500,
            anchor: None,
            next: 0,
            started: false,
            reference: 0,
            start: None,
            buffer: BTreeMap::new(),
            out: Vec::new(),
            stats: PlayoutStats::default(),
        }
    }

    /// Longest timestamp gap filled with silence (default 10 s); a larger
    /// jump restarts the timeline at the new packet instead, so a bad
    /// timestamp cannot make the buffer allocate minutes of silence.
    pub fn set_max_gap(&mut self, gap: Duration) -> &mut Self {
        self.max_gap = (gap.as_nanos() * u128::from(RATE) / 1_000_000_000) as u64;
        self
    }

    /// Most packets held at once (default 500, 10 s of 20 ms frames);
    /// beyond it the earliest is played out early.
    pub fn set_max_buffered(&mut self, packets: usize) -> &mut Self {
        self.max_buffered = packets.max(1);
        self
    }

    /// Extends a 32-bit timestamp to the one nearest the latest seen.
    fn extend(&mut self, ts: u32) -> i64 {
        let ext = self.reference + i64::from(ts.wrapping_sub(self.reference as u32) as i32);
        self.reference = self.reference.max(ext);
        ext
    }

    /// The sample position whose playout time has come at `now`.
    fn due_position(&self, now: Instant) -> Option<i64> {
        let (at, ts) = self.anchor?;
        let since = now.checked_duration_since(at)?.checked_sub(self.delay)?;
        Some(ts + (since.as_nanos() * u128::from(RATE) / 1_000_000_000) as i64)
    }

    /// When the earliest buffered packet is due: a driver's next timer.
    pub fn next_due(&self) -> Option<Instant> {
        let (at, ts) = self.anchor?;
        let (&first, _) = self.buffer.first_key_value()?;
        let diff = first.abs_diff(ts);
        let offset = Duration::from_secs(diff / RATE)
            + Duration::from_nanos(diff % RATE * (1_000_000_000 / RATE));
        let base = at.checked_add(self.delay)?;
        if first >= ts {
            base.checked_add(offset)
        } else {
            base.checked_sub(offset)
        }
    }

    /// Offers a received packet's RTP timestamp and PCMU payload, arrived
    /// at `arrival`. Plays out whatever is due at `arrival` first.
    pub fn push(&mut self, arrival: Instant, timestamp: u32, payload: &[u8]) -> Placement {
        if payload.is_empty() {
            return Placement::Empty;
        }
        if self.anchor.is_none() {
            self.reference = i64::from(timestamp);
            self.anchor = Some((arrival, self.reference));
            self.next = self.reference;
        }
        let ts = self.extend(timestamp);
        self.advance(arrival);
        if ts < self.next {
            let back = (self.next - ts) as u64;
            if self.started || back > self.max_gap {
                self.stats.late += 1;
                return Placement::Late;
            }
            // Nothing played yet: an earlier packet that overtook nothing
            // audible still gets its place.
            self.next = ts;
        }
        if self.buffer.contains_key(&ts) {
            self.stats.duplicates += 1;
            return Placement::Duplicate;
        }
        self.buffer.insert(ts, payload.to_vec());
        while self.buffer.len() > self.max_buffered {
            self.play_first();
        }
        Placement::Buffered
    }

    /// Plays out every buffered packet whose time has come at `now`.
    pub fn advance(&mut self, now: Instant) {
        let Some(due) = self.due_position(now) else {
            return;
        };
        while self
            .buffer
            .first_key_value()
            .is_some_and(|(&ts, _)| ts <= due)
        {
            self.play_first();
        }
    }

    /// Plays out everything still buffered (end of the stream).
    pub fn finish(&mut self) {
        while !self.buffer.is_empty() {
            self.play_first();
        }
    }

    fn play_first(&mut self) {
        let Some((ts, payload)) = self.buffer.pop_first() else {
            return;
        };
        if ts < self.next {
            // Overlaps what was played (an odd-sized packet): too late.
            self.stats.late += 1;
            return;
        }
        if !self.started {
            self.start = Some(self.next as u32);
        }
        let gap = (ts - self.next) as u64;
        if gap > self.max_gap {
            self.stats.resyncs += 1;
        } else {
            self.out.resize(self.out.len() + gap as usize, 0);
            self.stats.concealed_samples += gap;
            self.stats.samples += gap;
        }
        pcmu::decode_append(&payload, &mut self.out);
        self.stats.samples += payload.len() as u64;
        self.stats.played += 1;
        self.next = ts + payload.len() as i64;
        self.started = true;
    }

    /// The RTP timestamp of the first output sample, once anything has
    /// been played: lines a recording up with the sender's timeline (a
    /// late joiner's recording starts mid-stream).
    pub fn first_timestamp(&self) -> Option<u32> {
        self.start
    }

    /// Takes the samples produced so far (8 kHz mono).
    pub fn take_samples(&mut self) -> Vec<i16> {
        core::mem::take(&mut self.out)
    }

    /// The counters.
    pub fn stats(&self) -> PlayoutStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reorders_within_the_delay_and_drops_late() {
        let t0 = Instant::now();
        let mut p = Playout::new(ms(50));
        let f = |code: u8| [code; 160];
        assert_eq!(p.push(t0, 0, &f(0x80)), Placement::Buffered);
        // Frame 2 before frame 1, both within the delay.
        assert_eq!(p.push(t0 + ms(40), 320, &f(0x82)), Placement::Buffered);
        assert_eq!(p.push(t0 + ms(45), 160, &f(0x81)), Placement::Buffered);
        // At 95 ms frames 0..=2 are due (due = anchor + 50 ms + ts/8).
        p.advance(t0 + ms(95));
        assert_eq!(p.take_samples().len(), 480);
        // Frame 4 arrives and plays; frame 3 then comes too late.
        assert_eq!(p.push(t0 + ms(130), 640, &f(0x84)), Placement::Buffered);
        p.advance(t0 + ms(130));
        assert_eq!(p.push(t0 + ms(131), 480, &f(0x83)), Placement::Late);
        assert_eq!(p.push(t0 + ms(132), 640, &f(0x84)), Placement::Late);
        p.finish();
        let out = p.take_samples();
        assert_eq!(out.len(), 320);
        assert!(out[..160].iter().all(|&s| s == 0));
        let st = p.stats();
        assert_eq!((st.played, st.late, st.concealed_samples), (4, 2, 160));
    }

    #[test]
    fn earlier_first_packet_is_kept_and_wrap_is_continuous() {
        let t0 = Instant::now();
        let mut p = Playout::new(ms(60));
        let start = u32::MAX - 159;
        assert_eq!(
            p.push(t0, start.wrapping_add(160), &[1; 160]),
            Placement::Buffered
        );
        assert_eq!(p.push(t0 + ms(1), start, &[2; 160]), Placement::Buffered);
        assert_eq!(
            p.push(t0 + ms(2), start.wrapping_add(160), &[1; 160]),
            Placement::Duplicate
        );
        assert_eq!(p.next_due(), Some(t0 + ms(40)));
        p.finish();
        let out = p.take_samples();
        assert_eq!(out.len(), 320);
        assert_eq!(
            (out[0], out[160]),
            (pcmu::decode_sample(2), pcmu::decode_sample(1))
        );
    }

    #[test]
    fn huge_gap_resyncs_instead_of_allocating() {
        let t0 = Instant::now();
        let mut p = Playout::new(ms(20));
        p.push(t0, 0, &[0xFF; 160]);
        p.push(t0 + ms(20), 0x4000_0000, &[0xFF; 160]);
        p.finish();
        assert_eq!(p.take_samples().len(), 320);
        assert_eq!(p.stats().resyncs, 1);
    }
}
