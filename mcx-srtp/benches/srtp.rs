//! mcx-srtp against libsrtp2 (Debian libsrtp2-dev, through the test-only FFI
//! shim), side by side in one run: same packets, same thread, AEAD_AES_128_GCM,
//! protect and unprotect, 61-octet (AMR-WB) and 160-octet (G.711, 20 ms)
//! payloads, without and with a 4-octet MKI. `mcx/mki4+rccm3` adds RCCm3
//! (the TS 33.180 profile, which libsrtp cannot do).
//!
//! Each sample times chunks of 256 packets (buffers of 336 octets: libsrtp
//! wants 144 spare octets after a packet). Preparing a chunk (copying the
//! plaintext template, or protecting fresh packets for the receiver, which
//! must see a new index each time) is not timed, and is the same for both
//! libraries. Throughput is reported in packets (elements) per second.
//!
//!     cargo bench -p mcx-srtp --bench srtp

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcx_srtp::{Config, MasterKey, Mki, Session};
use mcx_srtp_libsrtp::{Direction, LibSrtp, MAX_TRAILER_LEN};

const CHUNK: usize = 256;
const BUF: usize = 336;
const SSRC: u32 = 0x1234_5678;
const KEY: [u8; 16] = [0x42; 16];
const SALT: [u8; 12] = [0x24; 12];

#[derive(Clone, Copy)]
enum Variant {
    NoMki,
    Mki4,
    /// MKI 4 + RCCm3 (ours only).
    Ts33180,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::NoMki => "no-mki",
            Self::Mki4 => "mki4",
            Self::Ts33180 => "mki4+rccm3",
        }
    }

    fn mki(self) -> Mki {
        match self {
            Self::NoMki => Mki::NONE,
            _ => Mki::from_u32(0x0000_0001),
        }
    }

    fn config(self) -> Config {
        match self {
            Self::NoMki => Config::new(),
            Self::Mki4 => Config::new().with_mki_len(4),
            Self::Ts33180 => Config::ts33180(4),
        }
    }

    fn ours(self) -> Session {
        let mut s = Session::new(self.config()).expect("config");
        s.add_key(self.mki(), MasterKey::new(KEY, SALT))
            .expect("key");
        s
    }

    fn theirs(self, direction: Direction) -> LibSrtp {
        let key = [&KEY[..], &SALT[..]].concat();
        LibSrtp::new(direction, &[(&key[..], self.mki().as_bytes())])
    }
}

fn template(payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x60, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend((0..payload).map(|i| i as u8));
    p
}

/// Plaintext packets with the next `n` sequence numbers.
fn fill_plain(bufs: &mut [[u8; BUF]], template: &[u8], seq: &mut u16, n: usize) {
    for buf in &mut bufs[..n] {
        buf[..template.len()].copy_from_slice(template);
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        *seq = seq.wrapping_add(1);
    }
}

/// Protected packets (by `gen`) with the next `n` sequence numbers.
fn fill_protected(
    gen_: &mut Session,
    bufs: &mut [[u8; BUF]],
    lens: &mut [usize],
    template: &[u8],
    seq: &mut u16,
    n: usize,
) {
    fill_plain(bufs, template, seq, n);
    for (buf, len) in bufs[..n].iter_mut().zip(lens.iter_mut()) {
        *len = gen_.protect_rtp(buf, template.len()).expect("generate");
    }
}

/// Splits `iters` operations into chunks of at most [`CHUNK`].
fn chunks(iters: u64) -> impl Iterator<Item = usize> {
    let full = iters / CHUNK as u64;
    let rest = (iters % CHUNK as u64) as usize;
    (0..full).map(|_| CHUNK).chain((rest > 0).then_some(rest))
}

fn bench(c: &mut Criterion) {
    for payload in [61usize, 160] {
        let tpl = template(payload);
        let len = tpl.len();

        let mut g = c.benchmark_group(format!("protect/{payload}B"));
        g.throughput(Throughput::Elements(1));
        for v in [Variant::NoMki, Variant::Mki4, Variant::Ts33180] {
            g.bench_function(BenchmarkId::new("mcx", v.name()), |b| {
                let mut s = v.ours();
                let mut bufs = vec![[0u8; BUF]; CHUNK];
                let mut seq = 0u16;
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for n in chunks(iters) {
                        fill_plain(&mut bufs, &tpl, &mut seq, n);
                        let start = Instant::now();
                        for buf in &mut bufs[..n] {
                            black_box(s.protect_rtp(black_box(buf), len).expect("protect"));
                        }
                        total += start.elapsed();
                    }
                    total
                });
            });
            if matches!(v, Variant::Ts33180) {
                continue;
            }
            g.bench_function(BenchmarkId::new("libsrtp", v.name()), |b| {
                let mut s = v.theirs(Direction::Outbound);
                let mut bufs = vec![[0u8; BUF]; CHUNK];
                let mut seq = 0u16;
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for n in chunks(iters) {
                        fill_plain(&mut bufs, &tpl, &mut seq, n);
                        let start = Instant::now();
                        for buf in &mut bufs[..n] {
                            black_box(s.protect_rtp(black_box(buf), len, 0).expect("protect"));
                        }
                        total += start.elapsed();
                    }
                    total
                });
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("unprotect/{payload}B"));
        g.throughput(Throughput::Elements(1));
        for v in [Variant::NoMki, Variant::Mki4, Variant::Ts33180] {
            g.bench_function(BenchmarkId::new("mcx", v.name()), |b| {
                let mut generator = v.ours();
                let mut s = v.ours();
                let mut bufs = vec![[0u8; BUF]; CHUNK];
                let mut lens = vec![0usize; CHUNK];
                let mut seq = 0u16;
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for n in chunks(iters) {
                        fill_protected(&mut generator, &mut bufs, &mut lens, &tpl, &mut seq, n);
                        let start = Instant::now();
                        for (buf, l) in bufs[..n].iter_mut().zip(&lens) {
                            black_box(
                                s.unprotect_rtp(black_box(&mut buf[..*l]))
                                    .expect("unprotect"),
                            );
                        }
                        total += start.elapsed();
                    }
                    total
                });
            });
            if matches!(v, Variant::Ts33180) {
                continue;
            }
            g.bench_function(BenchmarkId::new("libsrtp", v.name()), |b| {
                let mut generator = v.ours();
                let mut s = v.theirs(Direction::Inbound);
                let mut bufs = vec![[0u8; BUF]; CHUNK];
                let mut lens = vec![0usize; CHUNK];
                let mut seq = 0u16;
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for n in chunks(iters) {
                        fill_protected(&mut generator, &mut bufs, &mut lens, &tpl, &mut seq, n);
                        let start = Instant::now();
                        for (buf, l) in bufs[..n].iter_mut().zip(&lens) {
                            black_box(
                                s.unprotect_rtp(black_box(&mut buf[..*l]))
                                    .expect("unprotect"),
                            );
                        }
                        total += start.elapsed();
                    }
                    total
                });
            });
        }
        g.finish();
    }
}

/// SRTCP protect of one floor-control message (TS 24.380: a 40-octet
/// RTCP APP "MCPT" Floor Taken, MKI 4 as under a CSK or SPK): what a
/// server does per member for each floor message it fans out.
fn bench_floor(c: &mut Criterion) {
    let mut floor = vec![0x92, 204, 0, 9];
    floor.extend_from_slice(&SSRC.to_be_bytes());
    floor.extend_from_slice(b"MCPT");
    floor.extend_from_slice(&[0x66; 28]);
    let len = floor.len();
    let mut g = c.benchmark_group("protect_rtcp/floor40B");
    g.throughput(Throughput::Elements(1));
    let mut run = |name: &str, protect: &mut dyn FnMut(&mut [u8]) -> usize| {
        g.bench_function(BenchmarkId::new(name, "mki4"), |b| {
            let mut bufs = vec![[0u8; BUF]; CHUNK];
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for n in chunks(iters) {
                    for buf in &mut bufs[..n] {
                        buf[..len].copy_from_slice(&floor);
                    }
                    let start = Instant::now();
                    for buf in &mut bufs[..n] {
                        black_box(protect(black_box(buf)));
                    }
                    total += start.elapsed();
                }
                total
            });
        });
    };
    let mut ours = Variant::Mki4.ours();
    run("mcx", &mut |buf| {
        ours.protect_rtcp(buf, len).expect("protect")
    });
    let mut theirs = Variant::Mki4.theirs(Direction::Outbound);
    run("libsrtp", &mut |buf| {
        theirs.protect_rtcp(buf, len, 0).expect("protect")
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench, bench_floor
}
criterion_main!(benches);

// The libsrtp buffers need room for its worst-case trailer.
const _: () = assert!(BUF >= 12 + 160 + MAX_TRAILER_LEN);
