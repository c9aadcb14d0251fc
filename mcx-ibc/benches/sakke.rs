//! SAKKE (RFC 6508, RFC 6509 parameter set 1) timings on the RFC 6508
//! Appendix A data. Run: `cargo bench -p mcx-ibc --bench sakke`.
//! `decapsulate` is a key's steady state (its RSK's lines built at its
//! second decapsulation); `decapsulate_first` a fresh key's first.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcx_ibc::sakke::{self, KmsPublicKey, MasterSecret, ReceiverKey, Recipient, Rsk, Ssv};

const Z: &str = "aff429d35f84b110d094803b3595a6e2998bc99f";
const ID: &[u8] = b"2011-02\0tel:+447700900123\0";
const SSV: &str = "123456789abcdef0123456789abcdef0";

fn bench(c: &mut Criterion) {
    sakke::internal::warm_up();
    let z = MasterSecret::from_bytes(&hex::decode(Z).unwrap()).unwrap();
    let kms = z.public_key();
    let kms = KmsPublicKey::from_bytes(&kms.to_bytes()).unwrap();
    let rsk = sakke::extract_rsk(&z, ID).unwrap();
    let rsk = Rsk::from_bytes(rsk.to_bytes().as_ref()).unwrap();
    let ssv = Ssv::from_bytes(&hex::decode(SSV).unwrap()).unwrap();
    let receiver = ReceiverKey::new(&kms, ID, &rsk).unwrap();
    let sed = sakke::encapsulate(&kms, ID, &ssv).unwrap();
    let recipient = Recipient::new(&kms, ID).unwrap();
    let recipient_table = Recipient::new(&kms, ID).unwrap().with_table().unwrap();

    let mut g = c.benchmark_group("sakke");
    g.sample_size(30);
    g.bench_function("decapsulate", |b| {
        b.iter(|| receiver.decapsulate(black_box(&sed)).unwrap())
    });
    // A fresh key's first decapsulation walks the RSK's loop directly (the
    // key is made outside the timing); later ones use the stored lines.
    g.bench_function("decapsulate_first", |b| {
        b.iter_batched(
            || ReceiverKey::new(&kms, ID, &rsk).unwrap(),
            |k| k.decapsulate(black_box(&sed)).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("encapsulate", |b| {
        b.iter(|| sakke::encapsulate(&kms, black_box(ID), &ssv).unwrap())
    });
    g.bench_function("encapsulate_prepared_recipient", |b| {
        b.iter(|| recipient.encapsulate(black_box(&ssv)).unwrap())
    });
    g.bench_function("encapsulate_cached_table", |b| {
        b.iter(|| recipient_table.encapsulate(black_box(&ssv)).unwrap())
    });
    g.bench_function("extract_rsk", |b| {
        b.iter(|| sakke::extract_rsk(&z, black_box(ID)).unwrap())
    });
    g.bench_function("receiver_key_load_and_validate", |b| {
        b.iter(|| ReceiverKey::new(&kms, black_box(ID), &rsk).unwrap())
    });
    g.bench_function("receiver_key_lines_build", |b| {
        b.iter(|| {
            ReceiverKey::new(&kms, black_box(ID), &rsk)
                .unwrap()
                .with_lines()
        })
    });
    g.bench_function("recipient_table_build", |b| {
        b.iter(|| {
            Recipient::new(&kms, black_box(ID))
                .unwrap()
                .with_table()
                .unwrap()
        })
    });
    g.finish();

    let mut f = c.benchmark_group("fp1024");
    f.bench_function("mul_x1000", |b| {
        b.iter(|| sakke::bench_internal::mul_chain(black_box(1000)))
    });
    f.bench_function("fp2_mul_lazy_x1000", |b| {
        b.iter(|| sakke::bench_internal::fp2_mul_chain(black_box(1000), true))
    });
    f.bench_function("fp2_mul_eager_x1000", |b| {
        b.iter(|| sakke::bench_internal::fp2_mul_chain(black_box(1000), false))
    });
    f.bench_function("invert", |b| {
        b.iter(|| sakke::bench_internal::inv_chain(black_box(1)))
    });
    f.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
