//! mcx-ibc against Debian's libwolfssl (wolfCrypt ECCSI and SAKKE,
//! generic build: `libwolfssl-dev`), the same operation on the same keys
//! in one run, so the ratios hold whatever the machine. Run:
//! `cargo bench -p mcx-ibc --bench peer_wolfssl` (docs/BENCHMARKS.md).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcx_ibc::eccsi::{self, Ksak, SigningKey};
use mcx_ibc::sakke::{self, MasterSecret, ReceiverKey, Recipient, Ssv};
use mcx_ibc_wolfssl::{Eccsi, Sakke};

const ID: &[u8] = b"2011-02\0tel:+447700900123\0";

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn eccsi(c: &mut Criterion) {
    let mut rng = rng();
    let ksak = Ksak::generate(&mut rng);
    let kpak = ksak.public_key();
    let (ssk, pvt) = eccsi::issue(&ksak, ID, &mut rng).unwrap();
    let mut wolf = Eccsi::signer(
        &kpak.to_bytes(),
        ID,
        ssk.to_bytes().as_ref(),
        &pvt.to_bytes(),
    )
    .unwrap();
    let mut wolf_verifier = Eccsi::verifier(&kpak.to_bytes()).unwrap();
    let ours = SigningKey::new(&kpak, ID, ssk, pvt).unwrap();
    let msg = [0x5a_u8; 600];
    let sig = ours.sign(&msg, &mut rng).to_bytes();

    let mut g = c.benchmark_group("eccsi");
    g.bench_function("sign/mcx", |b| {
        b.iter(|| ours.sign(black_box(&msg), &mut rng))
    });
    g.bench_function("sign/wolfssl", |b| {
        b.iter(|| wolf.sign(black_box(&msg)).unwrap())
    });
    // A receiver's verification: HS from the signature's PVT, then the check.
    g.bench_function("verify/mcx", |b| {
        b.iter(|| eccsi::verify_bytes(&kpak, ID, black_box(&msg), &sig).unwrap())
    });
    g.bench_function("verify/wolfssl", |b| {
        b.iter(|| assert!(wolf_verifier.verify(ID, black_box(&msg), &sig).unwrap()))
    });
    g.finish();
}

fn sakke(c: &mut Criterion) {
    sakke::internal::warm_up();
    let mut rng = rng();
    let master = MasterSecret::generate(&mut rng);
    let kms = master.public_key();
    let z = kms.to_bytes();
    let rsk = sakke::extract_rsk(&master, ID).unwrap();
    let ours = ReceiverKey::new(&kms, ID, &rsk).unwrap();
    let mut wolf = Sakke::receiver(&z, ID, rsk.to_bytes().as_ref(), false).unwrap();
    let mut wolf_table = Sakke::receiver(&z, ID, rsk.to_bytes().as_ref(), true).unwrap();
    let mut wolf_sender = Sakke::sender(&z, ID).unwrap();
    let recipient = Recipient::new(&kms, ID).unwrap();
    let ssv = Ssv::generate(&mut rng);
    let sed = sakke::encapsulate(&kms, ID, &ssv).unwrap();
    let value = *ssv.as_bytes();

    let mut g = c.benchmark_group("sakke");
    g.sample_size(20);
    g.bench_function("encapsulate/mcx", |b| {
        b.iter(|| recipient.encapsulate(black_box(&ssv)).unwrap())
    });
    g.bench_function("encapsulate/wolfssl", |b| {
        b.iter(|| wolf_sender.encapsulate(black_box(&value)).unwrap())
    });
    g.bench_function("decapsulate/mcx", |b| {
        b.iter(|| ours.decapsulate(black_box(&sed)).unwrap())
    });
    g.bench_function("decapsulate/wolfssl", |b| {
        b.iter(|| wolf.decapsulate(black_box(&sed)).unwrap())
    });
    // Ours keeps no per-receiver table any more (its R check needs none);
    // wolfCrypt's row here is with its RSK table.
    g.bench_function("decapsulate_receiver_table/mcx", |b| {
        b.iter(|| ours.decapsulate(black_box(&sed)).unwrap())
    });
    g.bench_function("decapsulate_receiver_table/wolfssl", |b| {
        b.iter(|| wolf_table.decapsulate(black_box(&sed)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, eccsi, sakke);
criterion_main!(benches);
