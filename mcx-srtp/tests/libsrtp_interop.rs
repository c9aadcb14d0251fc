//! Interoperability with libsrtp2 (Debian's libsrtp2-dev 2.5, through the
//! test-only FFI shim `mcx-srtp-libsrtp`): packets mcx-srtp protects, libsrtp
//! unprotects, and the reverse, for SRTP and SRTCP, with and without MKI,
//! across a ROC wrap. libsrtp has no RCCm3, so ROC carriage is off here.
//!
//! AES-GCM is deterministic, so beyond round trips the tests check that both
//! implementations produce the very same SRTP bytes.

use mcx_srtp::{Config, MasterKey, Mki, Session};
use mcx_srtp_libsrtp::{Direction, LibSrtp, MAX_TRAILER_LEN};

const SSRC: u32 = 0x5501_a0b2;

fn master(seed: u8) -> ([u8; 16], [u8; 12]) {
    let mut key = [0u8; 16];
    let mut salt = [0u8; 12];
    for (i, b) in key.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    for (i, b) in salt.iter_mut().enumerate() {
        *b = seed.wrapping_mul(7) ^ (0xa0 + i as u8);
    }
    (key, salt)
}

fn key_salt(seed: u8) -> Vec<u8> {
    let (k, s) = master(seed);
    [&k[..], &s[..]].concat()
}

/// An RTP packet: `csrcs` CSRCs, a one-word-per-`ext_words` header
/// extension if `ext_words > 0`, and `payload` octets.
fn rtp(seq: u16, ssrc: u32, csrcs: u8, ext_words: u16, payload: usize) -> Vec<u8> {
    let x = if ext_words > 0 { 0x10 } else { 0 };
    let mut p = vec![0x80 | x | csrcs, 0x60];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for c in 0..u32::from(csrcs) {
        p.extend_from_slice(&(0x1000 + c).to_be_bytes());
    }
    if ext_words > 0 {
        p.extend_from_slice(&[0xbe, 0xde]);
        p.extend_from_slice(&ext_words.to_be_bytes());
        for w in 0..ext_words {
            p.extend_from_slice(&[0x10, w as u8, 0, 0]);
        }
    }
    p.extend((0..payload).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// An RTCP sender report of `len_words + 1` words (plus an APP-like tail).
fn rtcp(ssrc: u32, n: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    for w in 0..5u32 {
        p.extend_from_slice(&(n * 1000 + w).to_be_bytes());
    }
    p.extend_from_slice(&[0x80, 204, 0, 2]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(b"MCPT");
    p
}

fn ours(mki_len: usize, keys: &[(u8, Mki)]) -> Session {
    let mut s = Session::new(Config::new().with_mki_len(mki_len)).expect("config");
    for (seed, mki) in keys {
        let (k, salt) = master(*seed);
        s.add_key(*mki, MasterKey::new(k, salt)).expect("add key");
    }
    s
}

fn theirs(direction: Direction, keys: &[(u8, Mki)]) -> LibSrtp {
    let material: Vec<(Vec<u8>, Mki)> = keys.iter().map(|(s, m)| (key_salt(*s), *m)).collect();
    let refs: Vec<(&[u8], &[u8])> = material
        .iter()
        .map(|(k, m)| (k.as_slice(), m.as_bytes()))
        .collect();
    LibSrtp::new(direction, &refs)
}

/// The packet shapes each test sends, cycling: (CSRCs, extension words, payload).
const SHAPES: [(u8, u16, usize); 6] = [
    (0, 0, 61),
    (0, 0, 160),
    (2, 0, 33),
    (0, 3, 160),
    (15, 2, 1),
    (1, 1, 0),
];

/// Sequence numbers from `start` for `count` packets (wrapping).
fn seqs(start: u16, count: usize) -> impl Iterator<Item = (usize, u16)> {
    (0..count).map(move |i| (i, start.wrapping_add(i as u16)))
}

/// ours → libsrtp and libsrtp → ours for SRTP, checking identical bytes.
fn srtp_both_ways(mki_len: usize, keys: &[(u8, Mki)], start_seq: u16, count: usize) {
    let mut our_tx = ours(mki_len, keys);
    let mut our_rx = ours(mki_len, keys);
    let mut lib_tx = theirs(Direction::Outbound, keys);
    let mut lib_rx = theirs(Direction::Inbound, keys);

    for (i, seq) in seqs(start_seq, count) {
        let (csrcs, ext, payload) = SHAPES[i % SHAPES.len()];
        let plain = rtp(seq, SSRC, csrcs, ext, payload);
        let key_index = i % keys.len();
        let mki = keys[key_index].1;

        // ours → libsrtp
        let mut a = plain.clone();
        a.resize(plain.len() + MAX_TRAILER_LEN, 0);
        let n = if mki_len == 0 {
            our_tx.protect_rtp(&mut a, plain.len())
        } else {
            our_tx.protect_rtp_with_key(&mki, &mut a, plain.len())
        }
        .expect("mcx protect");
        a.truncate(n);

        // libsrtp → ours, same packet and key
        let mut b = plain.clone();
        b.resize(plain.len() + MAX_TRAILER_LEN, 0);
        let m = lib_tx
            .protect_rtp(&mut b, plain.len(), key_index as u32)
            .expect("libsrtp protect");
        b.truncate(m);
        assert_eq!(a, b, "SRTP bytes differ at seq {seq} (packet {i})");

        let mut from_us = a.clone();
        let len = lib_rx
            .unprotect_rtp(&mut from_us)
            .expect("libsrtp unprotect");
        assert_eq!(&from_us[..len], &plain[..], "libsrtp decrypted seq {seq}");

        let mut from_them = b;
        let got = our_rx.unprotect_rtp(&mut from_them).expect("mcx unprotect");
        assert_eq!(&from_them[..got.len], &plain[..], "mcx decrypted seq {seq}");
        assert_eq!(got.mki, mki);
    }
    let end_roc = (u32::from(start_seq) + count as u32 - 1) >> 16;
    assert_eq!(our_rx.inbound_roc(SSRC), Some(end_roc));
    assert_eq!(our_tx.outbound_roc(SSRC), Some(end_roc));
    assert_eq!(lib_rx.roc(SSRC), Ok(end_roc));
    assert_eq!(lib_tx.roc(SSRC), Ok(end_roc));
    assert_eq!(our_rx.stats().failures(), 0);
}

/// ours → libsrtp and libsrtp → ours for SRTCP.
fn srtcp_both_ways(mki_len: usize, keys: &[(u8, Mki)], count: u32) {
    let mut our_tx = ours(mki_len, keys);
    let mut our_rx = ours(mki_len, keys);
    let mut lib_tx = theirs(Direction::Outbound, keys);
    let mut lib_rx = theirs(Direction::Inbound, keys);

    for n in 0..count {
        let plain = rtcp(SSRC, n);
        let key_index = n as usize % keys.len();
        let mki = keys[key_index].1;

        let mut a = plain.clone();
        a.resize(plain.len() + MAX_TRAILER_LEN + 4, 0);
        let len = if mki_len == 0 {
            our_tx.protect_rtcp(&mut a, plain.len())
        } else {
            our_tx.protect_rtcp_with_key(&mki, &mut a, plain.len())
        }
        .expect("mcx protect");
        a.truncate(len);
        let back = lib_rx
            .unprotect_rtcp(&mut a)
            .expect("libsrtp unprotect rtcp");
        assert_eq!(&a[..back], &plain[..]);

        let mut b = plain.clone();
        b.resize(plain.len() + MAX_TRAILER_LEN + 4, 0);
        let len = lib_tx
            .protect_rtcp(&mut b, plain.len(), key_index as u32)
            .expect("libsrtp protect rtcp");
        b.truncate(len);
        let got = our_rx.unprotect_rtcp(&mut b).expect("mcx unprotect rtcp");
        assert_eq!(&b[..got.len], &plain[..]);
        assert!(got.encrypted);
        assert_eq!(got.mki, mki);
    }
    assert_eq!(our_rx.stats().rtcp_unprotected, u64::from(count));
}

#[test]
fn srtp_without_mki() {
    srtp_both_ways(0, &[(1, Mki::NONE)], 1000, 300);
}

#[test]
fn srtp_with_4_octet_mki_two_keys() {
    let keys = [
        (2, Mki::from_u32(0x0102_0304)),
        (3, Mki::from_u32(0xcafe_f00d)),
    ];
    srtp_both_ways(4, &keys, 40_000, 300);
}

#[test]
fn srtp_with_8_octet_mki_three_keys() {
    let keys = [
        (4, Mki::from_u64(0x1111_2222_3333_4444)),
        (5, Mki::from_u64(0x1111_2222_3333_4445)),
        (6, Mki::from_u64(0xffee_ddcc_bbaa_9988)),
    ];
    srtp_both_ways(8, &keys, 7, 300);
}

#[test]
fn srtp_across_roc_wrap_without_mki() {
    srtp_both_ways(0, &[(7, Mki::NONE)], 65_500, 200);
}

#[test]
fn srtp_across_roc_wrap_with_mki() {
    let keys = [(8, Mki::from_u32(1)), (9, Mki::from_u32(2))];
    srtp_both_ways(4, &keys, 65_530, 100);
}

#[test]
fn srtp_across_two_roc_wraps() {
    // 2 x 65536 packets would be slow in debug builds; step by 2^15 - 1
    // instead, the largest step ROC estimation must follow.
    let keys = [(10, Mki::from_u32(9))];
    let mut our_tx = ours(4, &keys);
    let mut our_rx = ours(4, &keys);
    let mut lib_tx = theirs(Direction::Outbound, &keys);
    let mut lib_rx = theirs(Direction::Inbound, &keys);
    let mut seq: u16 = 60_000;
    for i in 0..10u32 {
        let plain = rtp(seq, SSRC, 0, 0, 61);
        let mut a = plain.clone();
        a.resize(plain.len() + MAX_TRAILER_LEN, 0);
        let n = our_tx
            .protect_rtp(&mut a, plain.len())
            .expect("mcx protect");
        a.truncate(n);
        let mut b = plain.clone();
        b.resize(plain.len() + MAX_TRAILER_LEN, 0);
        let m = lib_tx
            .protect_rtp(&mut b, plain.len(), 0)
            .expect("libsrtp protect");
        b.truncate(m);
        assert_eq!(a, b, "packet {i}");
        let len = lib_rx.unprotect_rtp(&mut a).expect("libsrtp unprotect");
        assert_eq!(&a[..len], &plain[..]);
        let got = our_rx.unprotect_rtp(&mut b).expect("mcx unprotect");
        assert_eq!(&b[..got.len], &plain[..]);
        seq = seq.wrapping_add(0x7fff);
    }
    // 60000 + 9 * 32767 = 354903 → ROC 5.
    assert_eq!(our_rx.inbound_roc(SSRC), Some(5));
    assert_eq!(lib_rx.roc(SSRC), Ok(5));
}

#[test]
fn srtcp_without_mki() {
    srtcp_both_ways(0, &[(11, Mki::NONE)], 50);
}

#[test]
fn srtcp_with_4_octet_mki() {
    srtcp_both_ways(4, &[(12, Mki::from_u32(77)), (13, Mki::from_u32(78))], 50);
}

#[test]
fn srtcp_with_8_octet_mki() {
    srtcp_both_ways(
        8,
        &[(14, Mki::from_u64(1 << 40)), (15, Mki::from_u64(3))],
        50,
    );
}

#[test]
fn libsrtp_and_mcx_refuse_the_same_tampering() {
    let keys = [(16, Mki::from_u32(5))];
    let mut our_tx = ours(4, &keys);
    let mut our_rx = ours(4, &keys);
    let mut lib_rx = theirs(Direction::Inbound, &keys);
    let plain = rtp(100, SSRC, 1, 1, 61);
    let mut pkt = plain.clone();
    pkt.resize(plain.len() + 24, 0);
    let n = our_tx.protect_rtp(&mut pkt, plain.len()).expect("protect");
    pkt.truncate(n);
    for bit in [0, 7 * 8 + 3, 20 * 8, (n - 5) * 8 + 1, (n - 1) * 8 + 7] {
        let mut bad = pkt.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            lib_rx.unprotect_rtp(&mut bad.clone()).is_err(),
            "libsrtp bit {bit}"
        );
        assert!(our_rx.unprotect_rtp(&mut bad).is_err(), "mcx bit {bit}");
    }
    // The genuine packet still passes both after all that.
    assert!(lib_rx.unprotect_rtp(&mut pkt.clone()).is_ok());
    assert!(our_rx.unprotect_rtp(&mut pkt).is_ok());
}
