//! Property tests: arbitrary bytes never panic unprotect (and never
//! authenticate); protect → unprotect round-trips random RTP/RTCP packets
//! (CSRCs, header extensions, MKI lengths, RCCm3); any single bit flip of a
//! protected packet is refused and leaves the buffer unchanged.

use proptest::prelude::*;

use mcx_srtp::{Config, Error, MasterKey, Mki, RocCarriage, Session};

fn config(mki_len: usize, rcc: bool, encrypt_rtcp: bool) -> Config {
    let c = Config::new()
        .with_mki_len(mki_len)
        .with_rtcp_encryption(encrypt_rtcp);
    if rcc {
        c.with_roc_carriage(RocCarriage::RCCM3_EVERY_PACKET)
    } else {
        c
    }
}

fn mki(mki_len: usize, n: u8) -> Mki {
    Mki::new(&[n.wrapping_add(1); 8][..mki_len]).expect("mki")
}

/// A session holding two keys (one without MKI).
fn session(config: Config) -> Session {
    let mut s = Session::new(config).expect("config");
    let len = config.mki_len();
    s.add_key(mki(len, 0), MasterKey::new([0x11; 16], [0x22; 12]))
        .expect("key");
    if len > 0 {
        s.add_key(mki(len, 1), MasterKey::new([0x33; 16], [0x44; 12]))
            .expect("key");
    }
    s
}

#[derive(Debug, Clone)]
struct Rtp {
    marker_pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    csrcs: Vec<u32>,
    ext: Option<(u16, Vec<u32>)>,
    payload: Vec<u8>,
}

impl Rtp {
    fn bytes(&self) -> Vec<u8> {
        let x = if self.ext.is_some() { 0x10 } else { 0 };
        let mut p = vec![0x80 | x | self.csrcs.len() as u8, self.marker_pt];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in &self.csrcs {
            p.extend_from_slice(&c.to_be_bytes());
        }
        if let Some((profile, words)) = &self.ext {
            p.extend_from_slice(&profile.to_be_bytes());
            p.extend_from_slice(&(words.len() as u16).to_be_bytes());
            for w in words {
                p.extend_from_slice(&w.to_be_bytes());
            }
        }
        p.extend_from_slice(&self.payload);
        p
    }
}

fn arb_rtp() -> impl Strategy<Value = Rtp> {
    (
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u32>(), 0..=15),
        prop::option::of((any::<u16>(), prop::collection::vec(any::<u32>(), 0..8))),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(marker_pt, seq, ts, ssrc, csrcs, ext, payload)| Rtp {
            marker_pt,
            seq,
            ts,
            ssrc,
            csrcs,
            ext,
            payload,
        })
}

fn arb_config() -> impl Strategy<Value = Config> {
    (
        prop::sample::select(vec![0usize, 4, 8]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(m, rcc, e)| config(m, rcc, e))
}

fn arb_rtcp() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..32,
        any::<u8>(),
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(count, pt, ssrc, body)| {
            let mut p = vec![0x80 | count, pt, 0, 0];
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(&body);
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes: no panic, never accepted, always counted.
    #[test]
    fn arbitrary_bytes_never_authenticate(
        config in arb_config(),
        mut bytes in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut s = session(config);
        let orig = bytes.clone();
        prop_assert!(s.unprotect_rtp(&mut bytes).is_err());
        prop_assert_eq!(&bytes, &orig);
        prop_assert!(s.unprotect_rtcp(&mut bytes).is_err());
        prop_assert_eq!(&bytes, &orig);
        prop_assert_eq!(s.stats().failures(), 2);
    }

    /// Arbitrary bytes that look like RTP (version 2) and carry a known MKI:
    /// they get to the AEAD and fail there.
    #[test]
    fn plausible_packets_fail_authentication(
        config in arb_config(),
        rtp in arb_rtp(),
        tail in prop::collection::vec(any::<u8>(), 28..60),
    ) {
        let mut s = session(config);
        let mut bytes = rtp.bytes();
        bytes.extend_from_slice(&tail);
        // Place a known MKI (and no particular ROC) at the end.
        let m = mki(config.mki_len(), 0);
        let roc = if config.roc_carriage().carries_roc(rtp.seq) { 4 } else { 0 };
        let n = bytes.len();
        bytes[n - roc - m.len()..n - roc].copy_from_slice(m.as_bytes());
        prop_assert_eq!(s.unprotect_rtp(&mut bytes), Err(Error::AuthenticationFailed));
    }

    /// Protect then unprotect gives back the packet, for any header shape.
    #[test]
    fn rtp_round_trip(config in arb_config(), rtp in arb_rtp(), key in 0u8..2, roc in any::<u32>()) {
        let mut tx = session(config);
        let mut rx = session(config);
        let roc = roc >> 1; // leave room for a wrap
        tx.set_outbound_roc(rtp.ssrc, roc).expect("roc");
        rx.set_inbound_roc(rtp.ssrc, roc).expect("roc");
        let plain = rtp.bytes();
        let mut buf = plain.clone();
        buf.resize(plain.len() + config.rtp_overhead(), 0);
        let m = mki(config.mki_len(), key);
        let n = tx.protect_rtp_with_key(&m, &mut buf, plain.len()).expect("protect");
        buf.truncate(n);
        let header_len = 12 + 4 * rtp.csrcs.len() + rtp.ext.as_ref().map_or(0, |(_, w)| 4 + 4 * w.len());
        prop_assert_eq!(&buf[..header_len], &plain[..header_len]);
        let got = rx.unprotect_rtp(&mut buf).expect("unprotect");
        prop_assert_eq!(&buf[..got.len], &plain[..]);
        prop_assert_eq!(got.mki, m);
        prop_assert_eq!(got.index, u64::from(roc) << 16 | u64::from(rtp.seq));
    }

    /// Every single-bit flip of a protected SRTP packet is refused, with the
    /// buffer unchanged, and the genuine packet still passes afterwards.
    #[test]
    fn any_bit_flip_fails(config in arb_config(), rtp in arb_rtp(), bit in any::<prop::sample::Index>()) {
        let mut tx = session(config);
        let mut rx = session(config);
        let plain = rtp.bytes();
        let mut pkt = plain.clone();
        pkt.resize(plain.len() + config.rtp_overhead(), 0);
        let n = tx.protect_rtp(&mut pkt, plain.len()).expect("protect");
        pkt.truncate(n);
        let bit = bit.index(pkt.len() * 8);
        let mut bad = pkt.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let before = bad.clone();
        prop_assert!(rx.unprotect_rtp(&mut bad).is_err());
        prop_assert_eq!(&bad, &before);
        prop_assert!(rx.unprotect_rtp(&mut pkt).is_ok());
    }

    /// SRTCP: round trip and any bit flip fails, E = 1 and E = 0.
    #[test]
    fn rtcp_round_trip_and_bit_flips(config in arb_config(), plain in arb_rtcp(), bit in any::<prop::sample::Index>()) {
        let mut tx = session(config);
        let mut rx = session(config);
        let mut pkt = plain.clone();
        pkt.resize(plain.len() + config.rtcp_overhead(), 0);
        let n = tx.protect_rtcp(&mut pkt, plain.len()).expect("protect");
        pkt.truncate(n);
        let bit = bit.index(pkt.len() * 8);
        let mut bad = pkt.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let before = bad.clone();
        prop_assert!(rx.unprotect_rtcp(&mut bad).is_err());
        prop_assert_eq!(&bad, &before);
        let got = rx.unprotect_rtcp(&mut pkt).expect("unprotect");
        prop_assert_eq!(&pkt[..got.len], &plain[..]);
        prop_assert_eq!(got.encrypted, config.rtcp_encryption());
    }
}
