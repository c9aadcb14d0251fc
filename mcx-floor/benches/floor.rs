//! Encoding and decoding floor control messages (a Floor Taken as sent to
//! every receiver of a broadcast call, and a compound buffer), and an MC
//! server's fan-out of one leg-wide Floor Taken to 200 members as the
//! leg's non-controlling function (TS 24.380 6.5), per member.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcx_floor::{
    ArbitratorConfig, Field, FloorIndicator, Message, MessageType, NonControlling, ParticipantId,
    decode_compound,
};

/// Members of one leg (one group of the 50 × 200 bench).
const MEMBERS: u64 = 200;

fn taken() -> Message {
    taken_numbered(7)
}

fn taken_numbered(seq: u16) -> Message {
    Message::new(MessageType::FloorTaken, 0xF100_0001)
        .with_ack_required(true)
        .with(Field::GrantedPartyIdentity(
            "sip:dispatcher@example.org".into(),
        ))
        .with(Field::PermissionToRequest(false))
        .with(Field::SequenceNumber(seq))
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

    // One leg-wide Floor Taken in, a Floor Taken to each member out (the
    // packets, not their SRTCP protection), on a function whose members
    // joined once; each iteration is a new message (a fresh sequence
    // number upstream), so none is taken for a retransmission.
    let mut g = c.benchmark_group("non_controlling");
    g.throughput(Throughput::Elements(MEMBERS));
    let now = Instant::now();
    let mut f = NonControlling::new(ArbitratorConfig::new(0xF100_0001));
    for i in 0..MEMBERS as usize {
        f.add_member(now, ParticipantId(i));
    }
    let mut seq = 0u16;
    g.bench_function("fan out Floor Taken to 200 members", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let upstream = taken_numbered(seq);
            let ack = f.handle_upstream(now, black_box(&upstream)).unwrap();
            let mut sent = 0;
            while let Some(t) = f.poll_transmit() {
                black_box(t.contents);
                sent += 1;
            }
            assert_eq!(sent, MEMBERS, "every member is sent the Floor Taken");
            black_box(ack)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
