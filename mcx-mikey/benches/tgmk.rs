//! Wrapping the TGMK for 50 constituent groups (with the initiator's
//! ECCSI signatures) and unwrapping one copy (with signature verification),
//! plus decoding a vendor GMK message.
//! Targets (issue 3 point 7): wrap 50 < 5 ms, unwrap + verify < 0.3 ms.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::Community;
use mcx_mikey::message::Sp;
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::tgmk::{self, ConstituentGroup, TgmkReceiver, TgmkWrap};
use mcx_mikey::wire::Purpose;
use mcx_mikey::{Gmk, KeyId, Message};

const NOW: u64 = 1_760_000_000;

fn bench(c: &mut Criterion) {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let kms = Community::generate("kms.example.org", 2_592_000, 0, &mut rng).unwrap();
    let period = mcx_ibc::uid::key_period_no(NOW, 2_592_000, 0).unwrap();
    let k = kms
        .issue("sip:dispatcher@example.org", period, &mut rng)
        .unwrap();
    let signer = SigningKey::new(&kms.public().kpak, &k.uid, k.ssk, k.pvt).unwrap();
    let ids: Vec<String> = (0..50)
        .map(|i| format!("sip:group-{i}@example.org"))
        .collect();
    let gmks: Vec<(Gmk, KeyId)> = (0..50)
        .map(|_| {
            (
                Gmk::generate(&mut rng),
                KeyId::generate(Purpose::Gmk, &mut rng).unwrap(),
            )
        })
        .collect();
    let groups: Vec<ConstituentGroup<'_>> = ids
        .iter()
        .zip(&gmks)
        .map(|(id, (gmk, gmk_id))| ConstituentGroup {
            group_id: id,
            gmk,
            gmk_id: *gmk_id,
        })
        .collect();
    let (t, tid) = tgmk::generate(&mut rng);
    let wrap = TgmkWrap {
        initiator_uri: "sip:dispatcher@example.org",
        kms: kms.public(),
        temporary_group_id: "sip:temporary@example.org",
        tgmk: &t,
        tgmk_id: tid,
        activation: NOW,
        expiry: NOW + 3600,
        t_unix: NOW,
        policy: Sp::default_group_profile(),
    };

    let mut g = c.benchmark_group("tgmk");
    g.bench_function("wrap_50_groups", |b| {
        b.iter(|| black_box(wrap.wrap(black_box(&groups), &signer, &mut rng).unwrap()))
    });
    let copies = wrap.wrap(&groups, &signer, &mut rng).unwrap();
    let mine = [groups[17]];
    let rx = TgmkReceiver {
        kms: kms.public(),
        groups: &mine,
        expected_initiator: None,
    };
    let copy = &copies[17].message;
    g.bench_function("unwrap_verify_one", |b| {
        b.iter(|| {
            // A fresh cache each time: the same copy is otherwise a replay.
            let mut replay = ReplayCache::default();
            black_box(rx.unwrap(black_box(copy), NOW, &mut replay).unwrap())
        })
    });
    g.bench_function("decode_one", |b| {
        b.iter(|| black_box(Message::decode(black_box(copy)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
