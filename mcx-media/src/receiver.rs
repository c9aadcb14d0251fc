//! One received PCMU stream, end to end: parse, source check, statistics
//! and playout, with the per-member figures `mcx demo` prints.

use std::time::{Duration, Instant};

use crate::playout::{Placement, Playout};
use crate::rtp::{PCMU_CLOCK_RATE, PT_PCMU, Packet, RtpError};
use crate::stats::{Arrival, ReceiverStats};

/// Why [`Receiver::handle`] refused a packet. Refused packets touch
/// neither the statistics nor the playout; each kind is counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// Not a well-formed RTP packet.
    #[error("malformed RTP: {0}")]
    Malformed(#[from] RtpError),
    /// Not PCMU (payload type 0).
    #[error("payload type {0}, expected 0 (PCMU)")]
    PayloadType(u8),
    /// From another SSRC than the stream's first packet.
    #[error("SSRC {got:#010x}, the stream is {expected:#010x}")]
    OtherSource {
        /// The SSRC this receiver follows.
        expected: u32,
        /// The packet's SSRC.
        got: u32,
    },
}

/// The figures of one received stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Packets accepted (duplicates included, as RFC 3550 A.3 counts).
    pub received: u64,
    /// Packets expected from the sequence numbers (A.3).
    pub expected: u64,
    /// Cumulative lost: expected − received (A.3; may be negative).
    pub lost: i64,
    /// Packets that came after their place in the playout was played.
    pub late: u64,
    /// Duplicate packets.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// Interarrival jitter now, in milliseconds (A.8).
    pub jitter_ms: f64,
    /// Highest jitter seen, in milliseconds.
    pub max_jitter_ms: f64,
    /// Packets refused ([`ReceiveError`]), all kinds.
    pub refused: u64,
    /// Samples of silence put in for frames that never arrived.
    pub concealed_samples: u64,
}

/// Receives one PCMU RTP stream (the first packet's SSRC): statistics
/// (RFC 3550 A.1/A.3/A.8) and a [`Playout`] that rebuilds the sender's
/// 8 kHz samples.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mcx_media::Receiver;
/// use mcx_media::rtp::{Packetizer, FRAME_SAMPLES};
///
/// let t0 = Instant::now();
/// let mut tx = Packetizer::new(0xABCD, 7, 0);
/// let mut rx = Receiver::new(Duration::from_millis(60));
/// let mut buf = [0u8; 200];
/// for i in 0..5u64 {
///     let n = tx.packetize(&[1000; FRAME_SAMPLES], &mut buf)?;
///     if i != 2 {
///         rx.handle(t0 + Duration::from_millis(20 * i), &buf[..n]).expect("PCMU from one source");
///     }
/// }
/// rx.finish();
/// let r = rx.report();
/// assert_eq!((r.received, r.lost, r.late), (4, 1, 0));
/// assert_eq!(rx.take_samples().len(), 5 * FRAME_SAMPLES);
/// # Ok::<(), mcx_media::rtp::RtpError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Receiver {
    ssrc: Option<u32>,
    stats: ReceiverStats,
    playout: Playout,
    refused: u64,
}

impl Receiver {
    /// A receiver whose playout holds packets `playout_delay` (the jitter
    /// allowance; 60 ms suits a LAN, 100–200 ms a radio access network).
    pub fn new(playout_delay: Duration) -> Self {
        Self {
            ssrc: None,
            stats: ReceiverStats::new(PCMU_CLOCK_RATE),
            playout: Playout::new(playout_delay),
            refused: 0,
        }
    }

    /// Handles an RTP packet (already SRTP-unprotected) that arrived at
    /// `arrival`.
    pub fn handle(&mut self, arrival: Instant, rtp: &[u8]) -> Result<Arrival, ReceiveError> {
        let r = self.accept(arrival, rtp);
        if r.is_err() {
            self.refused += 1;
        }
        r
    }

    fn accept(&mut self, arrival: Instant, rtp: &[u8]) -> Result<Arrival, ReceiveError> {
        let p = Packet::parse(rtp)?;
        if p.payload_type != PT_PCMU {
            return Err(ReceiveError::PayloadType(p.payload_type));
        }
        let expected = *self.ssrc.get_or_insert(p.ssrc);
        if p.ssrc != expected {
            return Err(ReceiveError::OtherSource {
                expected,
                got: p.ssrc,
            });
        }
        let arrival_kind = self.stats.record(arrival, p.sequence, p.timestamp);
        if arrival_kind != Arrival::Jump {
            let _: Placement = self.playout.push(arrival, p.timestamp, p.payload);
        }
        Ok(arrival_kind)
    }

    /// Plays out what is due at `now` (call at [`Receiver::next_due`]).
    pub fn advance(&mut self, now: Instant) {
        self.playout.advance(now);
    }

    /// When the next buffered packet is due for playout.
    pub fn next_due(&self) -> Option<Instant> {
        self.playout.next_due()
    }

    /// Plays out everything buffered (the call ended).
    pub fn finish(&mut self) {
        self.playout.finish();
    }

    /// Takes the 8 kHz samples played out so far.
    pub fn take_samples(&mut self) -> Vec<i16> {
        self.playout.take_samples()
    }

    /// The RTP timestamp of the first played-out sample (see
    /// [`Playout::first_timestamp`]).
    pub fn first_timestamp(&self) -> Option<u32> {
        self.playout.first_timestamp()
    }

    /// The SSRC followed, once a packet has been accepted.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// The statistics.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// The figures now.
    pub fn report(&self) -> Report {
        let s = self.stats.snapshot();
        let p = self.playout.stats();
        Report {
            received: s.received,
            expected: s.expected,
            lost: s.lost,
            late: p.late,
            duplicates: s.duplicates,
            reordered: s.reordered,
            jitter_ms: s.jitter_ms,
            max_jitter_ms: s.max_jitter_ms,
            refused: self.refused,
            concealed_samples: p.concealed_samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{FRAME_SAMPLES, Packetizer};

    #[test]
    fn refuses_other_sources_and_payload_types() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Duration::from_millis(40));
        let mut buf = [0u8; 200];
        let n = Packetizer::new(1, 0, 0)
            .packetize(&[0; FRAME_SAMPLES], &mut buf)
            .expect("fits");
        assert_eq!(rx.handle(t0, &buf[..n]), Ok(Arrival::InOrder));
        let n = Packetizer::new(2, 1, 160)
            .packetize(&[0; FRAME_SAMPLES], &mut buf)
            .expect("fits");
        assert_eq!(
            rx.handle(t0, &buf[..n]),
            Err(ReceiveError::OtherSource {
                expected: 1,
                got: 2
            })
        );
        let mut tx = Packetizer::new(1, 1, 160);
        tx.set_payload_type(8);
        let n = tx.packetize(&[0; FRAME_SAMPLES], &mut buf).expect("fits");
        assert_eq!(rx.handle(t0, &buf[..n]), Err(ReceiveError::PayloadType(8)));
        assert_eq!(
            rx.handle(t0, &buf[..5]),
            Err(ReceiveError::Malformed(RtpError::TooShort { len: 5 }))
        );
        let r = rx.report();
        assert_eq!((r.received, r.refused), (1, 3));
        assert_eq!(rx.ssrc(), Some(1));
    }
}
