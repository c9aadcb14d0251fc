//! CSK upload (TS 33.180 5.4): the client builds and signs its I_MESSAGE
//! (SAKKE encapsulation to the MDSI, ECCSI signature); the server accepts
//! it (signature verification, SAKKE decapsulation, key parameters). The
//! server runs `accept` once per registering client, so it bounds how
//! fast a server can take registrations.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::Community;
use mcx_ibc::sakke::ReceiverKey;
use mcx_mikey::csk::{self, CskMessage, CskReceiver, csk_key_parameters};
use mcx_mikey::message::Sp;
use mcx_mikey::replay::ReplayCache;

const NOW: u64 = 1_760_000_000;
const CLIENT: &str = "sip:alice@example.org";
const MDSI: &str = "sip:mcptt-server.example.org";

fn bench(c: &mut Criterion) {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let kms = Community::generate("kms.example.org", 2_592_000, 0, &mut rng).unwrap();
    let public = kms.public();
    let period = mcx_ibc::uid::key_period_no(NOW, 2_592_000, 0).unwrap();
    let k = kms.issue(CLIENT, period, &mut rng).unwrap();
    let client = SigningKey::new(&public.kpak, &k.uid, k.ssk, k.pvt).unwrap();
    let s = kms.issue(MDSI, period, &mut rng).unwrap();
    let server_key = ReceiverKey::new(&public.sakke_public, &s.uid, &s.rsk).unwrap();
    let (key, key_id) = csk::generate(&mut rng);
    let upload = CskMessage {
        client_uri: CLIENT,
        server_uri: MDSI,
        kms: public,
        csk: &key,
        csk_id: key_id,
        key_params: Some(csk_key_parameters(0, 0)),
        policy: Some(Sp::default_group_profile()),
        identity_hiding: false,
        t_unix: NOW,
        key_params_date_time: None,
    };
    let server = CskReceiver {
        server_uri: MDSI,
        server_key: &server_key,
        key_period_no: period,
        kms: public,
    };

    let mut g = c.benchmark_group("csk");
    g.bench_function("sign", |b| {
        b.iter(|| black_box(upload.sign(&client, &mut rng).unwrap()))
    });
    let message = upload.sign(&client, &mut rng).unwrap();
    g.bench_function("accept", |b| {
        b.iter(|| {
            // A fresh cache each time: the same message is otherwise a replay.
            let mut replay = ReplayCache::default();
            black_box(
                server
                    .accept(black_box(&message), NOW, &mut replay)
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
