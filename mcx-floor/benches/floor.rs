//! Encoding and decoding floor control messages (a Floor Taken as sent to
//! every receiver of a broadcast call, and a compound buffer).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcx_floor::{Field, FloorIndicator, Message, MessageType, decode_compound};

fn taken() -> Message {
    Message::new(MessageType::FloorTaken, 0xF100_0001)
        .with_ack_required(true)
        .with(Field::GrantedPartyIdentity(
            "sip:dispatcher@example.org".into(),
        ))
        .with(Field::PermissionToRequest(false))
        .with(Field::SequenceNumber(7))
        .with(Field::FloorIndicator(
            FloorIndicator::BROADCAST_GROUP_CALL | FloorIndicator::TEMPORARY_GROUP_CALL,
        ))
}

fn bench(c: &mut Criterion) {
    let msg = taken();
    let bytes = msg.to_bytes().unwrap();
    let mut compound = bytes.clone();
    compound.extend_from_slice(&bytes);
    let mut g = c.benchmark_group("floor");
    g.bench_function("encode Floor Taken", |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            out.clear();
            black_box(&msg).encode(&mut out).unwrap();
            black_box(&out);
        })
    });
    g.bench_function("decode Floor Taken", |b| {
        b.iter(|| Message::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("decode compound (2 messages)", |b| {
        b.iter(|| decode_compound(black_box(&compound)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
