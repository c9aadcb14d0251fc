//! ECCSI (RFC 6507) benchmarks: sign, verify (plain and with a cached
//! [`VerifyingKey`]), KMS issuing, and SSK/PVT validation.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcx_ibc::eccsi::{self, Ksak, Signature, SigningKey, Ssk, VerifyingKey};

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn bench_eccsi(c: &mut Criterion) {
    let mut rng = rng();
    let ksak = Ksak::generate(&mut rng);
    let kpak = ksak.public_key();
    // A MIKEY-SAKKE UID is 32 octets; an I_MESSAGE is about 570 signed octets.
    let id = [0x5au8; 32];
    let msg = [0xa5u8; 570];
    let (ssk, pvt) = eccsi::issue(&ksak, &id, &mut rng).unwrap();
    let ssk_bytes = ssk.to_bytes();
    let key = SigningKey::new(&kpak, &id, ssk, pvt).unwrap();
    let sig: Signature = key.sign(&msg, &mut rng);
    let sig_bytes = sig.to_bytes();
    let vk = VerifyingKey::new(&kpak, &id, &pvt).unwrap();

    let mut group = c.benchmark_group("eccsi");
    group.bench_function("sign", |b| {
        b.iter(|| key.sign(black_box(&msg), &mut rng));
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            eccsi::verify(
                black_box(&kpak),
                black_box(&id),
                black_box(&msg),
                black_box(&sig),
            )
        });
    });
    group.bench_function("verify_bytes", |b| {
        b.iter(|| {
            eccsi::verify_bytes(
                black_box(&kpak),
                black_box(&id),
                black_box(&msg),
                black_box(&sig_bytes),
            )
        });
    });
    group.bench_function("verify_cached", |b| {
        b.iter(|| vk.verify(black_box(&msg), black_box(&sig)));
    });
    group.bench_function("verifying_key_new", |b| {
        b.iter(|| VerifyingKey::new(black_box(&kpak), black_box(&id), black_box(&pvt)));
    });
    group.bench_function("issue", |b| {
        b.iter(|| eccsi::issue(black_box(&ksak), black_box(&id), &mut rng));
    });
    group.bench_function("validate", |b| {
        b.iter(|| {
            let ssk = Ssk::from_bytes(black_box(ssk_bytes.as_ref())).unwrap();
            SigningKey::new(black_box(&kpak), black_box(&id), ssk, black_box(pvt))
        });
    });
    group.finish();
}

criterion_group!(benches, bench_eccsi);
criterion_main!(benches);
