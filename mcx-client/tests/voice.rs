//! Voice of a broadcast call end to end: VoiceSender → VoiceReceiver in
//! memory and over loopback UDP, against libsrtp2, with a non-member, a
//! mid-stream joiner, loss and reordering, and garbage.
//!
//! External truth: libsrtp2 (Debian libsrtp2-dev 2.5, through mcx-srtp's
//! test-only FFI shim) decrypts what we send and encrypts what we decrypt;
//! the expected audio is `pcmu::decode(pcmu::encode(sent))`, whose tables
//! mcx-media's tests pin to CPython's `audioop`.

use std::time::{Duration, Instant};

use mcx_client::{
    ReceiveLimits, VoiceDrop, VoiceError, VoiceReceiver, VoiceReport, VoiceSender, receive_voice,
    send_voice, send_voice_logged,
};
use mcx_core::Voice;
use mcx_media::pcmu;
use mcx_media::rtp::{FRAME_SAMPLES, Packet, Packetizer};
use mcx_media::signal::test_signal;
use mcx_mikey::{KeyId, Tgmk};
use mcx_srtp_libsrtp::{Direction, LibSrtp, MAX_TRAILER_LEN};
use proptest::prelude::*;

const SSRC: u32 = 0x5a5a_0001;
const TGMK_ID: KeyId = KeyId(0x2abc_def0);
const RAND: [u8; 16] = [0x77; 16];
const FRAME: Duration = Duration::from_millis(20);

/// The call's voice as `mcx_core::Client::voice` gives it: keys derived
/// from the TGMK `tgmk` (every octet `tgmk`) named by `id`.
fn voice_with(tgmk: u8, id: KeyId, sending: bool) -> Voice {
    let tgmk = Tgmk::from_bytes(&[tgmk; 16]).expect("16 octets");
    Voice {
        sending,
        ssrc: Some(SSRC),
        to: None,
        keys: mcx_mikey::tgmk::srtp_keys(&tgmk, id, &RAND),
    }
}

fn voice(sending: bool) -> Voice {
    voice_with(0x11, TGMK_ID, sending)
}

/// What a member must hear for `sent`: the µ-law decoding of what the
/// initiator encoded, the last frame padded with silence.
fn heard(sent: &[i16]) -> Vec<i16> {
    let padded = sent.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES;
    let mut codes = vec![0u8; sent.len()];
    pcmu::encode(sent, &mut codes);
    codes.resize(padded, pcmu::SILENCE);
    let mut out = vec![0i16; padded];
    pcmu::decode(&codes, &mut out);
    out
}

/// All packets of `samples`, in order.
fn packets(tx: &mut VoiceSender, samples: &[i16]) -> Vec<Vec<u8>> {
    samples
        .chunks(FRAME_SAMPLES)
        .map(|f| tx.next_packet(f).expect("protect").to_vec())
        .collect()
}

fn at(t0: Instant, packet: usize) -> Instant {
    t0 + FRAME * packet as u32
}

#[test]
fn round_trip_gives_the_decoding_of_what_was_encoded() {
    // Not a whole number of frames: the last packet is padded.
    let sent = &test_signal()[..24_000 - 50];
    let mut tx = VoiceSender::with_start(&voice(true), SSRC, 1000, 90_000).expect("sender");
    let stream = packets(&mut tx, sent);
    assert_eq!(stream.len(), 150);
    assert_eq!(stream.len(), VoiceSender::packet_count(sent.len()));

    let first = Packet::parse(&stream[0]).expect("RTP header in clear");
    assert!(first.marker && first.sequence == 1000 && first.timestamp == 90_000);
    assert_eq!(first.payload_type, 0);
    assert!(
        stream[1..].iter().all(|p| p[1] & 0x80 == 0),
        "marker only on the first"
    );
    // Header 12 + 160 µ-law + tag 16 + MKI 4 (the TGMK-ID) + ROC 4.
    assert!(stream.iter().all(|p| p.len() == 196));
    let s = tx.stats();
    assert_eq!(
        (s.packets, s.octets, s.payload_octets),
        (150, 150 * 196, 24_000)
    );

    let mut rx = VoiceReceiver::new(&voice(false)).expect("receiver");
    let t0 = Instant::now();
    for (i, p) in stream.iter().enumerate() {
        rx.handle(at(t0, i), p).expect("authentic voice");
    }
    let (samples, r) = rx.finish();
    assert_eq!(samples, heard(sent));
    assert_eq!((r.received, r.authenticated, r.auth_failed), (150, 150, 0));
    assert_eq!((r.lost, r.late, r.first_timestamp), (0, 0, Some(90_000)));
    assert_eq!(r.jitter_ms, 0.0);
}

#[test]
fn secrets_stay_out_of_debug() {
    let v = voice(true);
    let key_hex: String = v.keys.master_key()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tx = VoiceSender::new(&v, &mut mcx_net::os_rng()).expect("sender");
    let rx = VoiceReceiver::new(&v).expect("receiver");
    for shown in [format!("{tx:?}"), format!("{rx:?}")] {
        assert!(!shown.to_lowercase().contains(&key_hex), "{shown}");
    }
}

#[test]
fn only_the_initiator_sends() {
    assert!(matches!(
        VoiceSender::new(&voice(false), &mut mcx_net::os_rng()),
        Err(VoiceError::NotSender)
    ));
    let mut tx = VoiceSender::new(&voice(true), &mut mcx_net::os_rng()).expect("sender");
    assert!(matches!(
        tx.next_packet(&[0; FRAME_SAMPLES + 1]),
        Err(VoiceError::FrameTooLong {
            samples: 161,
            max: 160
        })
    ));
    assert_eq!(tx.stats().packets, 0);
}

#[test]
fn random_start_comes_from_the_rng() {
    let a = VoiceSender::new(&voice(true), &mut mcx_net::os_rng()).expect("sender");
    let b = VoiceSender::new(&voice(true), &mut mcx_net::os_rng()).expect("sender");
    assert_eq!(a.ssrc(), SSRC, "the announced SSRC");
    assert_ne!(
        (a.next_sequence(), a.next_timestamp()),
        (b.next_sequence(), b.next_timestamp())
    );
}

/// libsrtp with the same master key, salt and MKI.
fn libsrtp(direction: Direction, v: &Voice) -> LibSrtp {
    let key: Vec<u8> = [&v.keys.master_key()[..], &v.keys.master_salt()[..]].concat();
    LibSrtp::new(direction, &[(&key, v.keys.mki())])
}

/// libsrtp 2.5 has no RCCm3 (RFC 4771): our packets are its AEAD_AES_128_GCM
/// packets with MKI (header ‖ ciphertext ‖ tag ‖ MKI) followed by the 4-octet
/// ROC. The test checks that ROC, strips it, and has libsrtp decrypt the
/// rest; the stream wraps its sequence number, and libsrtp's own ROC
/// estimate must agree with the ROC we carried.
#[test]
fn libsrtp_decrypts_what_the_sender_sends() {
    let v = voice(true);
    let sent = test_signal();
    let start = 65_536 - 60;
    let mut tx = VoiceSender::with_start(&v, SSRC, start as u16, 7).expect("sender");
    let mut lib = libsrtp(Direction::Inbound, &v);
    for (i, frame) in sent.chunks(FRAME_SAMPLES).enumerate() {
        let packet = tx.next_packet(frame).expect("protect");
        let roc = ((start + i) >> 16) as u32;
        let (srtp, carried) = packet.split_at(packet.len() - 4);
        assert_eq!(carried, roc.to_be_bytes(), "RCCm3 ROC of packet {i}");
        assert_eq!(
            &srtp[srtp.len() - 4..],
            TGMK_ID.0.to_be_bytes(),
            "MKI = TGMK-ID"
        );

        let mut buf = srtp.to_vec();
        let n = lib
            .unprotect_rtp(&mut buf)
            .expect("libsrtp authenticates it");
        let rtp = Packet::parse(&buf[..n]).expect("RTP");
        let mut codes = [0u8; FRAME_SAMPLES];
        pcmu::encode(frame, &mut codes);
        assert_eq!(rtp.payload, codes, "payload of packet {i}");
        assert_eq!(rtp.sequence, (start + i) as u16);
        assert_eq!(rtp.timestamp, 7 + 160 * i as u32);
        assert_eq!((rtp.ssrc, rtp.payload_type, rtp.marker), (SSRC, 0, i == 0));
    }
    assert_eq!(lib.roc(SSRC), Ok(1), "wrapped once");
}

/// The other way: libsrtp encrypts (with the ROC appended, as RCCm3 puts
/// it), our receiver decrypts and plays the same audio.
#[test]
fn receiver_decrypts_what_libsrtp_sends() {
    let v = voice(false);
    let sent = &test_signal()[..8_000];
    let mut lib = libsrtp(Direction::Outbound, &v);
    let mut packetizer = Packetizer::new(SSRC, 65_500, 0);
    let mut rx = VoiceReceiver::new(&v).expect("receiver");
    let t0 = Instant::now();
    for (i, frame) in sent.chunks(FRAME_SAMPLES).enumerate() {
        let mut buf = vec![0u8; 200 + MAX_TRAILER_LEN];
        let n = packetizer.packetize(frame, &mut buf).expect("fits");
        let n = lib.protect_rtp(&mut buf, n, 0).expect("libsrtp protect");
        buf.truncate(n);
        let roc: u32 = ((65_500 + i) >> 16) as u32;
        buf.extend_from_slice(&roc.to_be_bytes());
        rx.handle(at(t0, i), &buf).expect("authentic");
    }
    let (samples, r) = rx.finish();
    assert_eq!(samples, heard(sent));
    assert_eq!((r.authenticated, r.auth_failed, r.lost), (50, 0, 0));
}

#[test]
fn a_non_member_decrypts_nothing() {
    let sent = test_signal();
    let mut tx = VoiceSender::with_start(&voice(true), SSRC, 1, 1).expect("sender");
    let stream = packets(&mut tx, &sent);
    // Another TGMK under the same TGMK-ID (the tag fails) and another
    // TGMK with its own ID (no key for the MKI): both fail authentication.
    for outsider in [
        voice_with(0x12, TGMK_ID, false),
        voice_with(0x12, KeyId(0x2000_0001), false),
    ] {
        let mut rx = VoiceReceiver::new(&outsider).expect("receiver");
        let t0 = Instant::now();
        for (i, p) in stream.iter().enumerate() {
            assert_eq!(rx.handle(at(t0, i), p), Err(VoiceDrop::Unauthenticated));
        }
        let (samples, r) = rx.finish();
        assert!(samples.is_empty());
        assert_eq!((r.received, r.authenticated, r.auth_failed), (150, 0, 150));
        assert_eq!(r.stream.received, 0);
    }
}

#[test]
fn a_late_joiner_decrypts_mid_stream_after_a_wrap() {
    // 400 packets starting 120 before the sequence number wraps: packet 300
    // has ROC 1. The joiner's first packet is 300.
    let signal = test_signal();
    let sent: Vec<i16> = signal
        .iter()
        .chain(&signal)
        .chain(&signal)
        .copied()
        .collect();
    let sent = &sent[..400 * FRAME_SAMPLES];
    let start = 65_536 - 120;
    let mut tx = VoiceSender::with_start(&voice(true), SSRC, start as u16, 5_000).expect("sender");
    let stream = packets(&mut tx, sent);
    assert_eq!(&stream[300][stream[300].len() - 4..], 1u32.to_be_bytes());

    let mut rx = VoiceReceiver::new(&voice(false)).expect("receiver");
    let t0 = Instant::now();
    for (i, p) in stream.iter().enumerate().skip(300) {
        rx.handle(at(t0, i), p)
            .expect("the carried ROC decrypts it");
    }
    let (samples, r) = rx.finish();
    assert_eq!(samples, heard(&sent[300 * FRAME_SAMPLES..]));
    assert_eq!(r.first_timestamp, Some(5_000 + 300 * 160));
    assert_eq!((r.authenticated, r.auth_failed, r.lost), (100, 0, 0));
}

#[test]
fn loss_reordering_and_replays_are_counted() {
    let sent = test_signal();
    let mut tx = VoiceSender::with_start(&voice(true), SSRC, 40_000, 0).expect("sender");
    let stream = packets(&mut tx, &sent);
    let t0 = Instant::now();
    // (packet, arrival slot): 10, 11, 50 lost; 20 and 21 swapped (within
    // the 60 ms playout delay); 80 arrives 300 ms late; 30 twice.
    let mut schedule: Vec<(usize, usize)> = (0..150)
        .filter(|i| ![10, 11, 50].contains(i))
        .map(|i| (i, if i == 80 { 95 } else { i }))
        .collect();
    schedule.push((30, 31));
    for s in &mut schedule {
        if s.0 == 20 || s.0 == 21 {
            s.1 = 41 - s.1;
        }
    }
    schedule.sort_by_key(|&(i, slot)| (slot, i));

    let mut rx = VoiceReceiver::new(&voice(false)).expect("receiver");
    for &(i, slot) in &schedule {
        let _ = rx.handle(at(t0, slot) + Duration::from_millis(1), &stream[i]);
    }
    let (samples, r) = rx.finish();
    assert_eq!((r.received, r.authenticated, r.replayed), (148, 147, 1));
    assert_eq!((r.lost, r.late, r.stream.reordered), (3, 1, 2));

    let mut expected = heard(&sent);
    for lost in [10, 11, 50, 80] {
        expected[lost * FRAME_SAMPLES..(lost + 1) * FRAME_SAMPLES].fill(0);
    }
    assert_eq!(samples.len(), expected.len());
    assert_eq!(
        samples, expected,
        "silence exactly where packets were lost or late"
    );
}

/// A sender's and a receiver's UDP socket on loopback, and the
/// receiver's address.
async fn loopback_pair() -> (
    tokio::net::UdpSocket,
    tokio::net::UdpSocket,
    std::net::SocketAddr,
) {
    let bind = || tokio::net::UdpSocket::bind("127.0.0.1:0");
    let tx = bind().await.expect("bind");
    let rx = bind().await.expect("bind");
    let to = rx.local_addr().expect("addr");
    (tx, rx, to)
}

#[tokio::test]
async fn over_loopback_udp_paced() {
    let (tx_socket, rx_socket, to) = loopback_pair().await;
    let sent = &test_signal()[..16_000]; // 2 s
    let mut tx = VoiceSender::new(&voice(true), &mut mcx_net::os_rng()).expect("sender");
    let mut rx = VoiceReceiver::new(&voice(false)).expect("receiver");
    let limits = ReceiveLimits::new(Duration::from_millis(500), Duration::from_secs(10));

    let started = Instant::now();
    let (sent_report, report) = tokio::join!(
        send_voice(&tx_socket, to, &mut tx, sent, FRAME),
        receive_voice(&rx_socket, &mut rx, limits)
    );
    let sent_report = sent_report.expect("sent");
    let report: VoiceReport = report.expect("received");
    // Paced: 100 packets take 99 intervals.
    assert!(started.elapsed() >= FRAME * 99, "{:?}", started.elapsed());
    assert_eq!(
        (
            sent_report.sent,
            sent_report.dropped,
            sent_report.stats.packets
        ),
        (100, 0, 100)
    );
    assert_eq!(
        (
            report.received,
            report.authenticated,
            report.lost,
            report.late
        ),
        (100, 100, 0, 0)
    );
    // Loopback: a few ms normally; a loaded 2-core machine running other
    // tests beside this one has been seen at 16 ms. A pacing bug shows
    // as tens of ms.
    assert!(report.max_jitter_ms < 30.0, "{report}");
    let (samples, _) = rx.finish();
    assert_eq!(samples, heard(sent));
}

#[test]
fn arrivals_are_logged_only_when_asked_only_if_authentic_and_up_to_the_cap() {
    let sent = &test_signal()[..FRAME_SAMPLES * 6];
    let mut tx = VoiceSender::with_start(&voice(true), SSRC, 65_534, 0).expect("sender");
    let stream = packets(&mut tx, sent);
    let t0 = Instant::now();

    // Off by default: nothing is kept.
    let mut quiet = VoiceReceiver::new(&voice(false)).expect("receiver");
    quiet.handle(at(t0, 0), &stream[0]).expect("authentic");
    assert!(quiet.take_arrivals().is_empty());

    let mut rx = VoiceReceiver::new(&voice(false)).expect("receiver");
    rx.record_arrivals(4);
    // A forged packet (last tag octet flipped) and a replay are not logged.
    let mut forged = stream[1].clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        rx.handle(at(t0, 1), &forged),
        Err(VoiceDrop::Unauthenticated)
    );
    for (i, p) in stream.iter().enumerate() {
        rx.handle(at(t0, i), p).expect("authentic");
    }
    assert!(rx.handle(at(t0, 9), &stream[2]).is_err(), "replay");
    // Sequence numbers across the wrap, arrival times as given, cut at 4.
    assert_eq!(
        rx.take_arrivals(),
        vec![
            (65_534, at(t0, 0)),
            (65_535, at(t0, 1)),
            (0, at(t0, 2)),
            (1, at(t0, 3))
        ]
    );
    // Taken: the log starts again, up to the same bound.
    rx.record_arrivals(1);
    let more = packets(&mut tx, sent);
    for (i, p) in more.iter().enumerate() {
        rx.handle(at(t0, 10 + i), p).expect("authentic");
    }
    assert_eq!(rx.take_arrivals(), vec![(4, at(t0, 10))]);
}

#[tokio::test]
async fn logged_send_times_pair_with_logged_arrivals() {
    let (tx_socket, rx_socket, to) = loopback_pair().await;
    let sent = &test_signal()[..FRAME_SAMPLES * 10];
    let mut tx = VoiceSender::with_start(&voice(true), SSRC, 100, 0).expect("sender");
    let mut rx = VoiceReceiver::new(&voice(false)).expect("receiver");
    rx.record_arrivals(10);
    let limits = ReceiveLimits::new(Duration::from_millis(300), Duration::from_secs(10));
    let mut sent_at = Vec::new();
    let (sent_report, report) = tokio::join!(
        send_voice_logged(&tx_socket, to, &mut tx, sent, FRAME, &mut sent_at),
        receive_voice(&rx_socket, &mut rx, limits)
    );
    assert_eq!(sent_report.expect("sent").sent, 10);
    assert_eq!(report.expect("received").authenticated, 10);
    let arrivals = rx.take_arrivals();
    let seqs = |log: &[(u16, Instant)]| log.iter().map(|e| e.0).collect::<Vec<_>>();
    assert_eq!(seqs(&sent_at), (100..110).collect::<Vec<u16>>());
    assert_eq!(seqs(&arrivals), seqs(&sent_at));
    for ((_, s), (_, a)) in sent_at.iter().zip(&arrivals) {
        // Each packet arrives after it was taken for sending, and on
        // loopback well within one packet interval.
        assert!(a > s, "arrival before sending");
        assert!(*a - *s < FRAME, "{:?}", *a - *s);
    }
    // Paced, not a burst: nine intervals, less the timer's wake-up
    // jitter on the first and last (the log holds wake-up times).
    let span = sent_at[9].1 - sent_at[0].1;
    assert!(span >= FRAME * 8, "{span:?}");
}

proptest! {
    /// Anything from the network is counted and dropped, never a panic.
    #[test]
    fn garbage_is_dropped_and_counted(datagrams in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..40)) {
        let mut rx = VoiceReceiver::new(&voice(false)).expect("receiver");
        let t0 = Instant::now();
        for (i, d) in datagrams.iter().enumerate() {
            prop_assert!(rx.handle(at(t0, i), d).is_err());
        }
        let (samples, r) = rx.finish();
        prop_assert!(samples.is_empty());
        prop_assert_eq!(r.received, datagrams.len() as u64);
        prop_assert_eq!(r.authenticated, 0);
        prop_assert_eq!(r.auth_failed + r.malformed + r.other_source + r.replayed + r.refused, r.received);
    }

    /// A genuine packet with any octet changed is never accepted.
    #[test]
    fn tampered_packets_never_authenticate(at_octet in 0usize..196, flip in 1u8..=255, seq in any::<u16>()) {
        let mut tx = VoiceSender::with_start(&voice(true), SSRC, seq, 0).expect("sender");
        let mut p = tx.next_packet(&test_signal()[..FRAME_SAMPLES]).expect("protect").to_vec();
        p[at_octet] ^= flip;
        let mut rx = VoiceReceiver::new(&voice(false)).expect("receiver");
        prop_assert!(rx.handle(Instant::now(), &p).is_err());
        let (samples, r) = rx.finish();
        prop_assert!(samples.is_empty());
        prop_assert_eq!(r.authenticated, 0);
    }
}
