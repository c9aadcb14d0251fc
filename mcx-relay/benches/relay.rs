//! Relay cost per datagram at fan-out 1, 100 and 1,000 (the table
//! lookup; sending the copies is the driver's and is measured there).
#![allow(missing_docs, clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcx_relay::{Relay, Route};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("relay_forward");
    let mut packet = vec![0x80, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 0];
    packet.extend_from_slice(&[0x55; 160 + 16]);
    for fan_out in [1usize, 100, 1000] {
        let mut r = Relay::default();
        // A relay busy with 1,000 calls.
        for ssrc in 0..1000u32 {
            let source =
                SocketAddr::from((Ipv4Addr::new(10, 0, (ssrc >> 8) as u8, ssrc as u8), 5000));
            let targets = (0..fan_out)
                .map(|i| SocketAddr::from((Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8), 4000)))
                .collect();
            r.set(Route {
                source,
                ssrc: Some(ssrc),
                targets,
            })
            .unwrap();
        }
        let from = SocketAddr::from((Ipv4Addr::new(10, 0, 1, 244), 5000));
        packet[8..12].copy_from_slice(&500u32.to_be_bytes());
        g.throughput(Throughput::Elements(fan_out as u64));
        g.bench_with_input(BenchmarkId::from_parameter(fan_out), &fan_out, |b, _| {
            b.iter(|| {
                r.forward(from, std::hint::black_box(&packet))
                    .unwrap()
                    .len()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
