//! Statistical constant-time tests, dudect style (Reparaz, Balasch and
//! Verbauwhede, "Dude, is my code constant time?", DATE 2017): each
//! operation runs on inputs of two classes — one fixed secret, and
//! random secrets — in random order; Welch's t-test on the two timing
//! distributions (whole, and cropped at several percentiles to drop
//! preemption outliers) says whether the time depends on the secret.
//!
//! Covered: ECCSI signing (the SSK and the ephemeral j), SAKKE
//! decapsulation (the RSK; a key's first decapsulation, which walks R,
//! and the later ones, which evaluate the RSK's stored lines) and RSK
//! extraction at the KMS (the master secret z). Every class-0 input is a separate copy of the fixed
//! secret, so that both classes touch fresh memory and a cache effect is
//! not taken for a leak.
//!
//! Two settings:
//! - default (CI): a short run that fails only on a gross leak, |t| > 20.
//!   Without a leak |t| stays near N(0, 1); the control below (work
//!   proportional to the secret's Hamming weight, as a naive
//!   double-and-add has) reaches hundreds with the same number of
//!   measurements, so the harness is shown able to fail in every run.
//! - `MCX_DUDECT=long`: 20 times the measurements and the usual dudect
//!   threshold 4.5, printing every t (`cargo test -p mcx-ibc --release
//!   --test constant_time -- --nocapture`). Run it on a quiet machine.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use mcx_ibc::eccsi::{self, Ksak, SigningKey};
use mcx_ibc::sakke::{self, MasterSecret, ReceiverKey, Ssv};
use rand_core::Rng;

type Gen = rand_core::UnwrapErr<getrandom::SysRng>;

fn rng() -> Gen {
    rand_core::UnwrapErr(getrandom::SysRng)
}

struct Setting {
    /// Measurements per test (both classes together).
    measurements: usize,
    threshold: f64,
    verbose: bool,
}

fn setting(short: usize) -> Setting {
    if std::env::var("MCX_DUDECT").as_deref() == Ok("long") {
        Setting {
            measurements: short * 20,
            threshold: 4.5,
            verbose: true,
        }
    } else {
        Setting {
            measurements: short,
            threshold: 20.0,
            verbose: false,
        }
    }
}

/// Welch's t statistic of two samples.
fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let stats = |x: &[f64]| {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (n, mean, var)
    };
    let (na, ma, va) = stats(a);
    let (nb, mb, vb) = stats(b);
    let se = (va / na + vb / nb).sqrt();
    if se == 0.0 { 0.0 } else { (ma - mb) / se }
}

/// The largest |t| over the whole sample and crops at these percentiles
/// of the pooled times (dudect's outlier handling).
fn max_abs_t(times: &[(bool, f64)]) -> f64 {
    let mut sorted: Vec<f64> = times.iter().map(|&(_, t)| t).collect();
    sorted.sort_by(f64::total_cmp);
    let mut worst: f64 = 0.0;
    for pct in [1.0, 0.99, 0.95, 0.9, 0.8, 0.5] {
        let idx = ((sorted.len() as f64 * pct) as usize).clamp(1, sorted.len()) - 1;
        let limit = sorted[idx];
        let class = |c: bool| -> Vec<f64> {
            times
                .iter()
                .filter(|&&(k, t)| k == c && t <= limit)
                .map(|&(_, t)| t)
                .collect()
        };
        let (a, b) = (class(false), class(true));
        if a.len() > 10 && b.len() > 10 {
            worst = worst.max(welch_t(&a, &b).abs());
        }
    }
    worst
}

/// Times `op` on `n` inputs: `input(class, i)` builds input `i` of a
/// class before timing starts (class `false`: the fixed secret).
fn measure<I>(
    n: usize,
    mut input: impl FnMut(bool, usize) -> I,
    mut op: impl FnMut(&I),
) -> Vec<(bool, f64)> {
    let mut rng = rng();
    let classes: Vec<bool> = (0..n).map(|_| rng.next_u32() & 1 == 1).collect();
    let inputs: Vec<I> = classes
        .iter()
        .enumerate()
        .map(|(i, &c)| input(c, i))
        .collect();
    // Warm-up on inputs of its own (first calls pay for page faults and
    // lazy tables), so that every timed input is untouched: a key's first
    // decapsulation must not have happened before it is timed.
    for k in 0..4 {
        op(&input(k % 2 == 1, n + k));
    }
    classes
        .iter()
        .zip(&inputs)
        .map(|(&c, x)| {
            let start = Instant::now();
            op(x);
            (c, start.elapsed().as_nanos() as f64)
        })
        .collect()
}

fn judge(what: &str, s: &Setting, times: &[(bool, f64)]) -> f64 {
    let t = max_abs_t(times);
    if s.verbose {
        eprintln!("{what}: max |t| = {t:.2} over {} measurements", times.len());
    }
    t
}

/// Work proportional to the secret's Hamming weight, as a naive
/// double-and-add: the leak the harness must catch.
fn leaky_scalar_work(secret: &[u64; 4]) -> u64 {
    let mut acc = 1u64;
    for limb in secret {
        for bit in 0..64 {
            acc = acc.wrapping_mul(3).rotate_left(7);
            if limb >> bit & 1 == 1 {
                for _ in 0..40 {
                    acc = black_box(acc.wrapping_mul(0x9e37_79b9).rotate_left(13));
                }
            }
        }
    }
    acc
}

#[test]
fn the_harness_catches_a_hamming_weight_leak() {
    let s = setting(2_000);
    let mut rng = rng();
    let times = measure(
        s.measurements,
        |random, _| {
            if random {
                [
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64(),
                ]
            } else {
                [1, 0, 0, 0]
            }
        },
        |x| {
            black_box(leaky_scalar_work(black_box(x)));
        },
    );
    let t = judge("control (leaky)", &s, &times);
    assert!(
        t > s.threshold,
        "the harness missed a gross leak: |t| = {t:.2} <= {}",
        s.threshold
    );
}

#[test]
fn eccsi_signing_time_does_not_depend_on_ssk_or_j() {
    let s = setting(4_000);
    let mut rng = rng();
    let ksak = Ksak::generate(&mut rng);
    let kpak = ksak.public_key();
    let key_of = |id: &[u8], rng: &mut Gen| {
        let (ssk, pvt) = eccsi::issue(&ksak, id, rng).unwrap();
        SigningKey::new(&kpak, id, ssk, pvt).unwrap()
    };
    let (fixed_ssk, fixed_pvt) = eccsi::issue(&ksak, b"fixed", &mut rng).unwrap();
    let (fixed_ssk, fixed_pvt) = (fixed_ssk.to_bytes(), fixed_pvt.to_bytes());
    // Separate copies of the fixed key, and as many random keys
    // (validation is slow); j is fixed (1) or fresh every time.
    let fixed: Vec<SigningKey> = (0..32)
        .map(|_| {
            let ssk = eccsi::Ssk::from_bytes(fixed_ssk.as_ref()).unwrap();
            let pvt = eccsi::Pvt::from_bytes(&fixed_pvt).unwrap();
            SigningKey::new(&kpak, b"fixed", ssk, pvt).unwrap()
        })
        .collect();
    let random: Vec<SigningKey> = (0..32u8).map(|i| key_of(&[b'r', i], &mut rng)).collect();
    let mut j_one = [0u8; 32];
    j_one[31] = 1;
    let times = measure(
        s.measurements,
        |random_class, i| {
            let mut msg = [0u8; 32];
            rng.fill_bytes(&mut msg);
            let mut j = j_one;
            if random_class {
                rng.fill_bytes(&mut j);
                j[0] &= 0x7f; // below q
            }
            (random_class, i, j, msg)
        },
        |&(random_class, i, j, msg)| {
            let key = if random_class {
                &random[i % random.len()]
            } else {
                &fixed[i % fixed.len()]
            };
            black_box(eccsi::hazmat::sign_with_j(key, &msg, &j).unwrap());
        },
    );
    let t = judge("ECCSI sign", &s, &times);
    assert!(t < s.threshold, "ECCSI signing leaks: |t| = {t:.2}");
}

#[test]
fn sakke_decapsulation_time_does_not_depend_on_the_rsk() {
    let s = setting(1_500);
    let mut rng = rng();
    let master = MasterSecret::generate(&mut rng);
    let kms = master.public_key();
    let receiver = |id: &[u8]| {
        let rsk = sakke::extract_rsk(&master, id).unwrap();
        ReceiverKey::new(&kms, id, &rsk).unwrap()
    };
    let sed_for =
        |id: &[u8], rng: &mut Gen| sakke::encapsulate(&kms, id, &Ssv::generate(rng)).unwrap();
    // Separate copies of the fixed key, and as many random keys.
    let fixed: Vec<(ReceiverKey, [u8; sakke::SED_LEN])> = (0..16)
        .map(|_| (receiver(b"fixed"), sed_for(b"fixed", &mut rng)))
        .collect();
    let random: Vec<(ReceiverKey, [u8; sakke::SED_LEN])> = (0..16u8)
        .map(|i| {
            let id = [b'r', i];
            (receiver(&id), sed_for(&id, &mut rng))
        })
        .collect();
    let times = measure(
        s.measurements,
        |random_class, i| (random_class, i),
        |&(random_class, i)| {
            let (key, sed) = if random_class {
                &random[i % random.len()]
            } else {
                &fixed[i % fixed.len()]
            };
            black_box(key.decapsulate(sed).unwrap());
        },
    );
    let t = judge("SAKKE decapsulation", &s, &times);
    assert!(t < s.threshold, "SAKKE decapsulation leaks: |t| = {t:.2}");
}

/// A key's first decapsulation takes another path (it walks R's Miller
/// loop, public, and evaluates each line at the RSK, and checks R's order
/// from the walk) than the later ones (the RSK's stored lines, evaluated
/// at R): every input here is a fresh `ReceiverKey`, of the fixed RSK or
/// of a random one, with a fresh SSV (so R varies in both classes alike).
#[test]
fn sakke_first_decapsulation_time_does_not_depend_on_the_rsk() {
    let s = setting(400);
    let mut rng = rng();
    let master = MasterSecret::generate(&mut rng);
    let kms = master.public_key();
    let fixed_rsk = sakke::extract_rsk(&master, b"fixed").unwrap();
    let times = measure(
        s.measurements,
        |random_class, i| {
            let id = if random_class {
                format!("random {i}").into_bytes()
            } else {
                b"fixed".to_vec()
            };
            let rsk = if random_class {
                sakke::extract_rsk(&master, &id).unwrap()
            } else {
                sakke::Rsk::from_bytes(fixed_rsk.to_bytes().as_ref()).unwrap()
            };
            let key = ReceiverKey::new(&kms, &id, &rsk).unwrap();
            let sed = sakke::encapsulate(&kms, &id, &Ssv::generate(&mut rng)).unwrap();
            (key, sed)
        },
        |(key, sed)| {
            black_box(key.decapsulate(sed).unwrap());
        },
    );
    let t = judge("SAKKE first decapsulation", &s, &times);
    assert!(
        t < s.threshold,
        "SAKKE first decapsulation leaks: |t| = {t:.2}"
    );
}

#[test]
fn rsk_extraction_time_does_not_depend_on_the_master_secret() {
    let s = setting(1_500);
    let mut rng = rng();
    let mut two = [0u8; 128];
    two[127] = 2;
    let times = measure(
        s.measurements,
        |random, _| {
            let master = if random {
                MasterSecret::generate(&mut rng)
            } else {
                MasterSecret::from_bytes(&two).unwrap()
            };
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            (master, id)
        },
        |(master, id)| {
            black_box(sakke::extract_rsk(master, id).unwrap());
        },
    );
    let t = judge("RSK extraction", &s, &times);
    assert!(t < s.threshold, "RSK extraction leaks: |t| = {t:.2}");
}
