//! Public-API tests: key ring, MKI, RCCm3 layout and late joiners, replay
//! window, ROC estimation, typed and counted errors, limits, secrets.

use std::num::NonZeroU16;

use mcx_srtp::{
    Config, Error, Exhausted, InvalidPacket, KeyRingError, MasterKey, Mki, Replay, RocCarriage,
    Session, TAG_LEN,
};

const SSRC: u32 = 0xdead_beef;

fn key(seed: u8) -> MasterKey {
    MasterKey::new([seed; 16], [seed ^ 0x5a; 12])
}

fn session(config: Config, keys: &[(u8, Mki)]) -> Session {
    let mut s = Session::new(config).expect("config");
    for (seed, mki) in keys {
        s.add_key(*mki, key(*seed)).expect("add key");
    }
    s
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x61];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x12, 0x34]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn rtcp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7, 0, 0, 0, 0];
    p[4..8].copy_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0x42; 24]);
    p
}

fn protect(s: &mut Session, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + s.config().rtp_overhead(), 0);
    let n = s.protect_rtp(&mut buf, plain.len()).expect("protect");
    buf.truncate(n);
    buf
}

fn protect_rtcp(s: &mut Session, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + s.config().rtcp_overhead(), 0);
    let n = s.protect_rtcp(&mut buf, plain.len()).expect("protect");
    buf.truncate(n);
    buf
}

// ------------------------------------------------------------ layout

/// RCCm3 + MKI: header || ciphertext || tag(16) || MKI || ROC(4).
#[test]
fn rccm3_with_mki_layout() {
    let mki = Mki::from_u64(0x0102_0304_0506_0708);
    let config = Config::ts33180(8);
    let mut tx = session(config, &[(1, mki)]);
    tx.set_outbound_roc(SSRC, 0x0a0b_0c0d).expect("roc");
    let plain = rtp(77, SSRC, b"payload!");
    let pkt = protect(&mut tx, &plain);
    assert_eq!(pkt.len(), plain.len() + TAG_LEN + 8 + 4);
    assert_eq!(&pkt[..12], &plain[..12], "header in the clear");
    assert_ne!(&pkt[12..20], &plain[12..20], "payload encrypted");
    assert_eq!(&pkt[pkt.len() - 12..pkt.len() - 4], mki.as_bytes());
    assert_eq!(&pkt[pkt.len() - 4..], &[0x0a, 0x0b, 0x0c, 0x0d]);

    let mut rx = session(config, &[(1, mki)]);
    let mut buf = pkt;
    let got = rx.unprotect_rtp(&mut buf).expect("unprotect");
    assert_eq!(&buf[..got.len], &plain[..]);
    assert_eq!(got.index, 0x0a0b_0c0d << 16 | 77);
}

/// SRTCP: header(8) || ciphertext || tag || E|index || MKI.
#[test]
fn srtcp_layout_and_index() {
    let mki = Mki::from_u32(0xfeed_f00d);
    let mut tx = session(Config::new().with_mki_len(4), &[(2, mki)]);
    let mut rx = session(Config::new().with_mki_len(4), &[(2, mki)]);
    for i in 0..3u32 {
        let plain = rtcp(SSRC);
        let pkt = protect_rtcp(&mut tx, &plain);
        assert_eq!(pkt.len(), plain.len() + 16 + 4 + 4);
        assert_eq!(&pkt[..8], &plain[..8]);
        let n = pkt.len();
        assert_eq!(&pkt[n - 8..n - 4], &(0x8000_0000 | i).to_be_bytes());
        assert_eq!(&pkt[n - 4..], mki.as_bytes());
        let mut buf = pkt;
        let got = rx.unprotect_rtcp(&mut buf).expect("unprotect");
        assert_eq!(got.index, u64::from(i));
        assert_eq!(&buf[..got.len], &plain[..]);
    }
}

/// RCCm3 with rate 2: only even sequence numbers carry the ROC.
#[test]
fn rccm3_rate_two() {
    let config = Config::new()
        .with_mki_len(4)
        .with_roc_carriage(RocCarriage::Rccm3 {
            rate: NonZeroU16::new(2).expect("nonzero"),
        });
    let mki = Mki::from_u32(3);
    let mut tx = session(config, &[(3, mki)]);
    let mut rx = session(config, &[(3, mki)]);
    for seq in 10..20u16 {
        let plain = rtp(seq, SSRC, &[seq as u8; 20]);
        let pkt = protect(&mut tx, &plain);
        let roc = if seq % 2 == 0 { 4 } else { 0 };
        assert_eq!(pkt.len(), plain.len() + 16 + 4 + roc);
        let mut buf = pkt;
        let got = rx.unprotect_rtp(&mut buf).expect("unprotect");
        assert_eq!(&buf[..got.len], &plain[..]);
    }
}

// ------------------------------------------------------- RCCm3 late join

/// A receiver that joins a call after the sender's ROC moved on decrypts at
/// once with RCCm3, and cannot without it.
#[test]
fn late_joiner_uses_the_carried_roc() {
    let mki = Mki::from_u32(0x7e57);
    for (config, late_ok) in [
        (Config::ts33180(4), true),
        (Config::new().with_mki_len(4), false),
    ] {
        let mut tx = session(config, &[(4, mki)]);
        tx.set_outbound_roc(SSRC, 3).expect("roc");
        let mut late = session(config, &[(4, mki)]);
        let plain = rtp(500, SSRC, b"late joiner");
        let mut pkt = protect(&mut tx, &plain);
        let before = pkt.clone();
        let r = late.unprotect_rtp(&mut pkt);
        if late_ok {
            let got = r.expect("RCCm3 carries the ROC");
            assert_eq!(got.index, 3 << 16 | 500);
            assert_eq!(&pkt[..got.len], &plain[..]);
            assert_eq!(late.inbound_roc(SSRC), Some(3));
        } else {
            assert_eq!(r, Err(Error::AuthenticationFailed));
            assert_eq!(pkt, before);
            // Told the ROC out of band, it works.
            assert_eq!(late.set_inbound_roc(SSRC, 3), Ok(true));
            assert!(late.unprotect_rtp(&mut pkt).is_ok());
        }
    }
}

/// A forged ROC fails authentication: the ROC is in the AEAD IV.
#[test]
fn tampered_carried_roc_fails() {
    let mki = Mki::from_u32(1);
    let mut tx = session(Config::ts33180(4), &[(5, mki)]);
    let mut rx = session(Config::ts33180(4), &[(5, mki)]);
    let mut pkt = protect(&mut tx, &rtp(1, SSRC, b"x"));
    let n = pkt.len();
    pkt[n - 1] ^= 1;
    assert_eq!(rx.unprotect_rtp(&mut pkt), Err(Error::AuthenticationFailed));
    assert_eq!(rx.stats().auth_failed, 1);
}

// ------------------------------------------------------------- key ring

#[test]
fn key_ring_chooses_keys_by_mki() {
    let (a, b, c) = (Mki::from_u32(1), Mki::from_u32(2), Mki::from_u32(3));
    let config = Config::new().with_mki_len(4);
    let mut tx = session(config, &[(1, a), (2, b), (3, c)]);
    let mut rx = session(config, &[(3, c), (1, a), (2, b)]);
    assert_eq!(tx.active_key(), Some(a));
    let mut seq = 0;
    for mki in [a, b, c, b, a] {
        tx.set_active_key(&mki).expect("active");
        seq += 1;
        let plain = rtp(seq, SSRC, b"key ring");
        let mut pkt = protect(&mut tx, &plain);
        assert_eq!(&pkt[pkt.len() - 4..], mki.as_bytes());
        let got = rx.unprotect_rtp(&mut pkt).expect("unprotect");
        assert_eq!(got.mki, mki);
    }
    assert_eq!(tx.key_usage(&b).map(|u| u.srtp_protected), Some(2));
    assert_eq!(rx.key_usage(&a).map(|u| u.srtp_unprotected), Some(2));
    assert_eq!(rx.key_usage(&c).map(|u| u.srtp_unprotected), Some(1));

    // Retire key b: its packets are then an unknown MKI.
    tx.set_active_key(&b).expect("active");
    let mut pkt = protect(&mut tx, &rtp(100, SSRC, b"old key"));
    assert!(rx.remove_key(&b));
    assert!(!rx.remove_key(&b));
    assert_eq!(rx.unprotect_rtp(&mut pkt), Err(Error::UnknownMki(b)));
    assert_eq!(rx.stats().unknown_mki, 1);
    assert_eq!(rx.keys().count(), 2);

    // Removing the active key leaves none active.
    assert!(tx.remove_key(&b));
    let mut buf = rtp(101, SSRC, b"x");
    let n = buf.len();
    buf.resize(n + 64, 0);
    assert_eq!(tx.protect_rtp(&mut buf, n), Err(Error::NoActiveKey));
    assert_eq!(tx.stats().no_active_key, 1);
    // A named key still works.
    assert!(tx.protect_rtp_with_key(&c, &mut buf, n).is_ok());
    assert_eq!(
        tx.protect_rtp_with_key(&b, &mut buf, n),
        Err(Error::UnknownMki(b))
    );
}

#[test]
fn key_ring_refusals() {
    let mut s = Session::new(Config::new().with_mki_len(4)).expect("config");
    assert_eq!(
        s.add_key(Mki::from_u64(1), key(1)),
        Err(Error::KeyRing(KeyRingError::MkiLength {
            expected: 4,
            got: 8
        }))
    );
    s.add_key(Mki::from_u32(1), key(1)).expect("add");
    assert_eq!(
        s.add_key(Mki::from_u32(1), key(2)),
        Err(Error::KeyRing(KeyRingError::DuplicateMki(Mki::from_u32(1))))
    );
    assert_eq!(
        s.set_active_key(&Mki::from_u32(9)),
        Err(Error::KeyRing(KeyRingError::NoSuchKey(Mki::from_u32(9))))
    );
    let mut one = Session::new(Config::new()).expect("config");
    one.add_key(Mki::NONE, key(1)).expect("add");
    assert_eq!(
        one.add_key(Mki::NONE, key(2)),
        Err(Error::KeyRing(KeyRingError::OneKeyWithoutMki))
    );
    assert!(matches!(
        Session::new(Config::new().with_mki_len(9)),
        Err(Error::KeyRing(KeyRingError::MkiTooLong(9)))
    ));
    assert_eq!(Mki::new(&[0; 9]), Err(KeyRingError::MkiTooLong(9)));
    assert!(MasterKey::from_slices(&[0; 16], &[0; 14]).is_err());
    assert!(MasterKey::from_slices(&[0; 15], &[0; 12]).is_err());
    assert_eq!(
        MasterKey::from_slices(&[7; 16], &[8; 12]).expect("lengths"),
        MasterKey::new([7; 16], [8; 12])
    );
    // Packet-path counters are untouched by key-ring refusals.
    assert_eq!(s.stats().failures(), 0);
}

// --------------------------------------------------------- replay window

#[test]
fn replays_are_refused_and_counted() {
    let mut tx = session(Config::new(), &[(6, Mki::NONE)]);
    let mut rx = session(Config::new(), &[(6, Mki::NONE)]);
    let pkts: Vec<Vec<u8>> = (0..100u16)
        .map(|s| protect(&mut tx, &rtp(s, SSRC, b"replay")))
        .collect();
    // In order, then out of order within the window.
    for p in pkts.iter().skip(40).chain(pkts.iter().skip(36).take(4)) {
        rx.unprotect_rtp(&mut p.clone()).expect("fresh");
    }
    assert_eq!(
        rx.unprotect_rtp(&mut pkts[50].clone()),
        Err(Error::Replay(Replay::Duplicate { index: 50 }))
    );
    assert_eq!(
        rx.unprotect_rtp(&mut pkts[38].clone()),
        Err(Error::Replay(Replay::Duplicate { index: 38 }))
    );
    // 99 - 64 = 35 is out of the window.
    assert_eq!(
        rx.unprotect_rtp(&mut pkts[35].clone()),
        Err(Error::Replay(Replay::TooOld { index: 35 }))
    );
    assert_eq!(rx.stats().replayed, 3);
    assert_eq!(rx.stats().rtp_unprotected, 64);
}

/// The replay window moves only for packets that authenticate, and a
/// failed packet leaves the buffer exactly as it was.
#[test]
fn failed_authentication_changes_nothing() {
    let mut tx = session(Config::new(), &[(7, Mki::NONE)]);
    let mut rx = session(Config::new(), &[(7, Mki::NONE)]);
    let mut first = protect(&mut tx, &rtp(10, SSRC, b"first"));
    rx.unprotect_rtp(&mut first).expect("first");

    let mut eleven = protect(&mut tx, &rtp(11, SSRC, b"eleven"));
    let mut genuine = protect(&mut tx, &rtp(1000, SSRC, b"genuine payload"));
    let mut forged = genuine.clone();
    forged[14] ^= 0x80; // a ciphertext bit
    let before = forged.clone();
    assert_eq!(
        rx.unprotect_rtp(&mut forged),
        Err(Error::AuthenticationFailed)
    );
    assert_eq!(forged, before, "buffer unchanged");
    // A forged far-future index did not move the window: seq 10's
    // neighbourhood is still open and seq 1000 is still fresh.
    rx.unprotect_rtp(&mut eleven).expect("window not moved");
    rx.unprotect_rtp(&mut genuine).expect("genuine still fresh");
    assert_eq!(rx.stats().auth_failed, 1);

    // The same for SRTCP.
    let mut r2 = session(Config::new(), &[(7, Mki::NONE)]);
    let good = protect_rtcp(&mut tx, &rtcp(SSRC));
    let mut bad = good.clone();
    bad[9] ^= 1;
    let before = bad.clone();
    assert_eq!(
        r2.unprotect_rtcp(&mut bad),
        Err(Error::AuthenticationFailed)
    );
    assert_eq!(bad, before);
    r2.unprotect_rtcp(&mut good.clone()).expect("genuine");
    let mut again = good;
    assert_eq!(
        r2.unprotect_rtcp(&mut again),
        Err(Error::Replay(Replay::Duplicate { index: 0 }))
    );
}

/// A new SSRC whose packet fails authentication creates no stream.
#[test]
fn unauthenticated_packets_create_no_streams() {
    let mut tx = session(Config::new(), &[(8, Mki::NONE)]);
    let mut rx = session(Config::new().with_max_streams(2), &[(8, Mki::NONE)]);
    for ssrc in 100..150u32 {
        let mut p = protect(&mut tx, &rtp(1, ssrc, b"x"));
        let n = p.len();
        p[n - 1] ^= 1;
        assert_eq!(rx.unprotect_rtp(&mut p), Err(Error::AuthenticationFailed));
    }
    for ssrc in 1..=2 {
        let mut p = protect(&mut tx, &rtp(1, ssrc, b"x"));
        rx.unprotect_rtp(&mut p).expect("room for two");
    }
    let mut q = protect(&mut tx, &rtp(1, 3, b"x"));
    assert_eq!(
        rx.unprotect_rtp(&mut q),
        Err(Error::TooManyStreams { limit: 2 })
    );
    assert_eq!(rx.stats().too_many_streams, 1);
    assert_eq!(rx.stats().auth_failed, 50);
    assert_eq!(
        rx.most_streams(),
        2,
        "at the limit, forged SSRCs not counted"
    );
    assert_eq!(tx.most_streams(), 53, "the sender's 50 + 3 SSRCs");

    // The sender's own limit.
    let mut small = session(Config::new().with_max_streams(1), &[(8, Mki::NONE)]);
    protect(&mut small, &rtp(1, 1, b"x"));
    assert_eq!(
        protect_err(&mut small, &rtp(1, 2, b"x")),
        Err(Error::TooManyStreams { limit: 1 })
    );
}

fn protect_err(s: &mut Session, plain: &[u8]) -> Result<usize, Error> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 64, 0);
    s.protect_rtp(&mut buf, plain.len())
}

// ---------------------------------------------------------- sender side

/// Protect refuses to reuse an index (a GCM nonce).
#[test]
fn protect_refuses_index_reuse() {
    let mut tx = session(Config::new(), &[(9, Mki::NONE)]);
    let plain = rtp(5, SSRC, b"once");
    protect(&mut tx, &plain);
    assert_eq!(
        protect_err(&mut tx, &plain),
        Err(Error::Replay(Replay::Duplicate { index: 5 }))
    );
    assert_eq!(tx.stats().replayed, 1);
    assert_eq!(tx.stats().rtp_protected, 1);
}

#[test]
fn roc_advances_on_wrap_and_is_exhausted_at_2_pow_32() {
    let mut tx = session(Config::ts33180(0), &[(10, Mki::NONE)]);
    let mut rx = session(Config::ts33180(0), &[(10, Mki::NONE)]);
    for seq in [65534u16, 65535, 0, 1] {
        let mut p = protect(&mut tx, &rtp(seq, SSRC, b"wrap"));
        rx.unprotect_rtp(&mut p).expect("wrap");
    }
    assert_eq!(tx.outbound_roc(SSRC), Some(1));
    assert_eq!(rx.inbound_roc(SSRC), Some(1));

    let mut tx = session(Config::new(), &[(10, Mki::NONE)]);
    assert_eq!(tx.set_outbound_roc(SSRC, u32::MAX), Ok(true));
    protect(&mut tx, &rtp(65535, SSRC, b"last"));
    assert_eq!(tx.set_outbound_roc(SSRC, 0), Ok(false), "stream started");
    assert_eq!(
        protect_err(&mut tx, &rtp(0, SSRC, b"past the end")),
        Err(Error::Exhausted(Exhausted::Roc))
    );
    assert_eq!(tx.stats().exhausted, 1);
}

#[test]
fn buffer_too_small() {
    let mut tx = session(Config::ts33180(4), &[(11, Mki::from_u32(1))]);
    let plain = rtp(1, SSRC, b"abc");
    let mut buf = plain.clone();
    buf.resize(plain.len() + 23, 0);
    assert_eq!(
        tx.protect_rtp(&mut buf, plain.len()),
        Err(Error::BufferTooSmall {
            needed: plain.len() + 24,
            have: plain.len() + 23
        })
    );
    assert_eq!(&buf[..plain.len()], &plain[..]);
    assert_eq!(
        tx.protect_rtp(&mut buf, 1000),
        Err(Error::BufferTooSmall {
            needed: 1000,
            have: plain.len() + 23
        })
    );
    let mut rtcp_buf = rtcp(SSRC);
    let n = rtcp_buf.len();
    assert!(matches!(
        tx.protect_rtcp(&mut rtcp_buf, n),
        Err(Error::BufferTooSmall { .. })
    ));
    assert_eq!(tx.stats().buffer_too_small, 3);
}

// ------------------------------------------------- malformed input errors

#[test]
fn malformed_packets_are_typed_and_counted() {
    let mut rx = session(Config::ts33180(4), &[(12, Mki::from_u32(1))]);
    let mut short = [0x80u8; 11];
    assert!(matches!(
        rx.unprotect_rtp(&mut short),
        Err(Error::InvalidPacket(InvalidPacket::TooShort {
            needed: 12,
            ..
        }))
    ));
    // A full header but no room for tag + MKI + ROC.
    let mut no_trailer = rtp(1, SSRC, &[0; 23]);
    assert!(matches!(
        rx.unprotect_rtp(&mut no_trailer),
        Err(Error::InvalidPacket(InvalidPacket::TooShort {
            needed: 36,
            have: 35,
            ..
        }))
    ));
    let mut v1 = rtp(1, SSRC, &[0; 40]);
    v1[0] = 0x40;
    assert_eq!(
        rx.unprotect_rtp(&mut v1),
        Err(Error::InvalidPacket(InvalidPacket::BadVersion(1)))
    );
    let mut rtcp_v0 = [0u8; 40];
    assert_eq!(
        rx.unprotect_rtcp(&mut rtcp_v0),
        Err(Error::InvalidPacket(InvalidPacket::BadVersion(0)))
    );
    let mut rtcp_short = [0x80u8; 31];
    assert!(matches!(
        rx.unprotect_rtcp(&mut rtcp_short),
        Err(Error::InvalidPacket(InvalidPacket::TooShort {
            needed: 32,
            ..
        }))
    ));
    let mut huge = vec![0x80u8; 70_000];
    assert!(matches!(
        rx.unprotect_rtp(&mut huge),
        Err(Error::InvalidPacket(InvalidPacket::TooLong { .. }))
    ));
    let mut unknown = rtp(1, SSRC, &[0; 40]);
    let n = unknown.len();
    unknown[n - 8..n - 4].copy_from_slice(&[9, 9, 9, 9]);
    assert_eq!(
        rx.unprotect_rtp(&mut unknown),
        Err(Error::UnknownMki(Mki::from_u32(0x0909_0909)))
    );
    let stats = *rx.stats();
    assert_eq!(stats.too_short, 3);
    assert_eq!(stats.bad_version, 2);
    assert_eq!(stats.too_long, 1);
    assert_eq!(stats.unknown_mki, 1);
    assert_eq!(stats.failures(), 7);
    // Display names what was wrong.
    let e = rx.unprotect_rtp(&mut [0x80u8; 5]).expect_err("short");
    assert_eq!(
        e.to_string(),
        "invalid packet: too short: RTP header needs 12 octets, the packet has 5"
    );
}

// --------------------------------------------------------------- secrets

#[test]
fn secrets_never_print() {
    let k = MasterKey::new([0xab; 16], [0xcd; 12]);
    let d = format!("{k:?}");
    assert_eq!(d, "MasterKey { .. }");
    let mut s = Session::new(Config::ts33180(4)).expect("config");
    s.add_key(Mki::from_u32(0xabababab), k).expect("add");
    let d = format!("{s:?}");
    assert!(d.contains("Mki(abababab)"), "{d}");
    assert!(!d.to_lowercase().contains("cdcd"), "{d}");
}
