//! mcx-media hot paths, per 20 ms PCMU frame (160 samples) or per packet:
//! µ-law encode and decode, packetize (encode + 12-octet header), parse,
//! receiver statistics per packet, playout per packet; and, once per file,
//! turning 1 s of 48 kHz stereo into 8 kHz mono.
//!
//!     cargo bench -p mcx-media --bench media

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcx_media::rtp::{FRAME_SAMPLES, HEADER_LEN, Packet, Packetizer};
use mcx_media::wav::{Audio, SampleFormat};
use mcx_media::{Playout, ReceiverStats, pcmu, signal};

fn frame() -> [i16; FRAME_SAMPLES] {
    let s = signal::test_signal();
    let mut f = [0i16; FRAME_SAMPLES];
    f.copy_from_slice(&s[4000..4000 + FRAME_SAMPLES]);
    f
}

fn codec(c: &mut Criterion) {
    let pcm = frame();
    let mut codes = [0u8; FRAME_SAMPLES];
    pcmu::encode(&pcm, &mut codes);
    let mut g = c.benchmark_group("pcmu");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode 20 ms", |b| {
        let mut out = [0u8; FRAME_SAMPLES];
        b.iter(|| pcmu::encode(black_box(&pcm), black_box(&mut out)));
    });
    g.bench_function("decode 20 ms", |b| {
        let mut out = [0i16; FRAME_SAMPLES];
        b.iter(|| pcmu::decode(black_box(&codes), black_box(&mut out)));
    });
    g.finish();
}

fn rtp(c: &mut Criterion) {
    let pcm = frame();
    let mut g = c.benchmark_group("rtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("packetize 20 ms PCMU", |b| {
        let mut tx = Packetizer::new(0x1234_5678, 1, 1);
        let mut buf = [0u8; HEADER_LEN + FRAME_SAMPLES];
        b.iter(|| tx.packetize(black_box(&pcm), black_box(&mut buf)));
    });
    let mut buf = [0u8; HEADER_LEN + FRAME_SAMPLES];
    let n = Packetizer::new(1, 1, 1)
        .packetize(&pcm, &mut buf)
        .unwrap_or_default();
    g.bench_function("parse", |b| {
        b.iter(|| Packet::parse(black_box(&buf[..n])).map(|p| p.payload.len()));
    });
    g.finish();
}

fn receiver(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("receiver");
    g.throughput(Throughput::Elements(1));
    g.bench_function("stats per packet", |b| {
        let mut rx = ReceiverStats::new(8000);
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            // 20 ms apart, with a little arrival jitter.
            let at = t0 + Duration::from_micros(20_000 * u64::from(i) + u64::from(i % 7) * 125);
            rx.record(black_box(at), i as u16, 160 * i)
        });
    });
    g.bench_function("playout push+decode per packet", |b| {
        let payload = [0x55u8; FRAME_SAMPLES];
        let mut p = Playout::new(Duration::from_millis(60));
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            let at = t0 + Duration::from_micros(20_000 * u64::from(i));
            p.push(black_box(at), 160 * i, black_box(&payload));
            // Drain as a driver would, so the output does not grow unbounded.
            if i % 64 == 0 {
                black_box(p.take_samples());
            }
        });
    });
    g.finish();
}

fn resample(c: &mut Criterion) {
    let audio = Audio {
        sample_rate: 48_000,
        channels: 2,
        format: SampleFormat::I16,
        samples: (0..96_000).map(|i| ((i * 37) % 20_000) as i16).collect(),
    };
    let mut g = c.benchmark_group("wav");
    g.sample_size(10);
    g.bench_function("to_mono_8k 1 s 48 kHz stereo", |b| {
        b.iter(|| black_box(&audio).to_mono_8k());
    });
    g.finish();
}

criterion_group!(benches, codec, rtp, receiver, resample);
criterion_main!(benches);
