//! Hostile and random input: the parsers and the receiver never panic, and
//! what they accept is consistent with what the sender built.

use std::time::{Duration, Instant};

use mcx_media::rtp::{FRAME_SAMPLES, HEADER_LEN, Packet, Packetizer};
use mcx_media::{Playout, ReceiverStats, wav};
use proptest::prelude::*;

const PY_WAV: &[u8] = include_bytes!("data/py_wave_8000_mono_u8.wav");

proptest! {
    #[test]
    fn wav_read_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut f = b"RIFF\0\0\0\0WAVE".to_vec();
        f.extend_from_slice(&bytes);
        let _ = wav::read(&f);
        let _ = wav::read(&bytes);
    }

    #[test]
    fn wav_read_never_panics_on_a_mutated_file(
        edits in proptest::collection::vec((0..PY_WAV.len(), any::<u8>()), 1..8),
        cut in 0..=PY_WAV.len(),
    ) {
        let mut f = PY_WAV.to_vec();
        for (at, v) in edits {
            f[at] = v;
        }
        if let Ok(a) = wav::read(&f[..cut]) {
            // Whatever it accepted can be resampled and written.
            let _ = wav::read(&wav::write(&a.to_mono_8k()));
        }
    }

    #[test]
    fn rtp_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(p) = Packet::parse(&bytes) {
            prop_assert!(p.payload.len() + HEADER_LEN <= bytes.len());
            prop_assert_eq!(p.csrcs().len(), usize::from(bytes[0] & 0x0F));
        }
    }

    #[test]
    fn packetize_then_parse(
        ssrc in any::<u32>(), seq in any::<u16>(), ts in any::<u32>(),
        pcm in proptest::collection::vec(any::<i16>(), 0..400),
    ) {
        let mut tx = Packetizer::new(ssrc, seq, ts);
        let mut buf = vec![0u8; HEADER_LEN + pcm.len()];
        let n = tx.packetize(&pcm, &mut buf).expect("buffer fits");
        let p = Packet::parse(&buf[..n]).expect("parses");
        prop_assert_eq!((p.ssrc, p.sequence, p.timestamp, p.payload_type), (ssrc, seq, ts, 0));
        prop_assert!(p.marker);
        prop_assert_eq!(p.payload.len(), pcm.len());
        prop_assert_eq!(tx.next_timestamp(), ts.wrapping_add(pcm.len() as u32));
    }

    /// Any arrival order, duplicates and timestamps: the receiver neither
    /// panics nor produces more output than the packets' timeline spans.
    #[test]
    fn receiver_survives_any_stream(
        packets in proptest::collection::vec((any::<u16>(), 0u32..4000, 0u64..5_000, any::<bool>()), 1..60),
        base_ts in any::<u32>(),
    ) {
        let t0 = Instant::now();
        let mut stats = ReceiverStats::new(8000);
        let mut playout = Playout::new(Duration::from_millis(60));
        let mut now = 0u64;
        for (seq, frame, gap_ms, wild) in packets {
            now += gap_ms;
            let at = t0 + Duration::from_millis(now);
            // Mostly plausible timestamps, sometimes anything at all.
            let ts = if wild { u32::from(seq).wrapping_mul(0x9E37_79B9) } else { base_ts.wrapping_add(frame * 160) };
            stats.record(at, seq, ts);
            playout.push(at, ts, &[0x7Fu8; FRAME_SAMPLES]);
            let _ = playout.next_due();
        }
        playout.finish();
        let s = stats.snapshot();
        prop_assert!(s.received >= s.duplicates);
        prop_assert!(s.jitter_ms.is_finite() && s.max_jitter_ms >= s.jitter_ms);
        let out = playout.take_samples();
        let st = playout.stats();
        prop_assert_eq!(out.len() as u64, st.samples);
        prop_assert!(st.concealed_samples <= st.resyncs.saturating_add(st.played) * 10 * 8000);
    }
}

#[test]
fn with_rng_draws_sequence_and_timestamp() {
    struct Fixed(u64);
    impl rand_core::TryRng for Fixed {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.0 as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(self.0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            dst.fill(0);
            Ok(())
        }
    }
    let tx = Packetizer::with_rng(9, &mut Fixed(0x1122_3344_5566_7788));
    assert_eq!(
        (tx.ssrc(), tx.next_sequence(), tx.next_timestamp()),
        (9, 0x7788, 0x1122_3344)
    );
}
