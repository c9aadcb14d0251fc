//! Per-packet cost of a call's voice in the client, one thread:
//! - `voice/send`: `VoiceSender::next_packet` on a 20 ms frame (µ-law
//!   encode, RTP header, SRTP AEAD_AES_128_GCM protect with MKI and RCCm3).
//! - `voice/receive`: `VoiceReceiver::handle` on an SRTP packet (SSRC
//!   check, copy, unprotect, RFC 3550 statistics, playout with µ-law
//!   decode), packets 20 ms apart so the playout plays as it goes.
//!
//! The receiver needs a fresh packet index each time (replay window): it
//! runs over pre-made chunks of packets, a new receiver per chunk, and
//! only the `handle` calls are timed.
//!
//!     cargo bench -p mcx-client --bench voice

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcx_client::{VoiceReceiver, VoiceSender};
use mcx_core::Voice;
use mcx_media::rtp::FRAME_SAMPLES;
use mcx_mikey::{KeyId, Tgmk};

const CHUNK: usize = 4096;
const SSRC: u32 = 0x1234_5678;

fn voice(sending: bool) -> Voice {
    let tgmk = Tgmk::from_bytes(&[0x42; 16]).expect("16 octets");
    Voice {
        sending,
        ssrc: Some(SSRC),
        to: None,
        keys: mcx_mikey::tgmk::srtp_keys(&tgmk, KeyId(0x2000_0001), &[7; 16]),
    }
}

fn bench(c: &mut Criterion) {
    let signal = mcx_media::signal::test_signal();
    let frame = &signal[8_000..8_000 + FRAME_SAMPLES];
    let mut g = c.benchmark_group("voice");
    g.throughput(Throughput::Elements(1));

    let mut tx = VoiceSender::with_start(&voice(true), SSRC, 0, 0).expect("sender");
    g.bench_function("send", |b| {
        b.iter(|| black_box(tx.next_packet(black_box(frame)).expect("protect").len()))
    });

    let mut tx = VoiceSender::with_start(&voice(true), SSRC, 0, 0).expect("sender");
    let packets: Vec<Vec<u8>> = (0..CHUNK)
        .map(|_| tx.next_packet(frame).expect("protect").to_vec())
        .collect();
    let t0 = Instant::now();
    let arrivals: Vec<Instant> = (0..CHUNK)
        .map(|i| t0 + Duration::from_millis(20 * i as u64))
        .collect();
    let rx_voice = voice(false);
    g.bench_function("receive", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(CHUNK);
                let mut rx = VoiceReceiver::new(&rx_voice).expect("receiver");
                let start = Instant::now();
                for (p, &at) in packets[..n].iter().zip(&arrivals) {
                    let _ = black_box(rx.handle(at, black_box(p)));
                }
                total += start.elapsed();
                assert_eq!(rx.report().authenticated, n as u64);
                left -= n;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
