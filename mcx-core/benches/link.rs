//! Cost of one INVITE / 200 / ACK exchange through two [`SipLink`]s while N
//! other transactions linger (RFC 6026 Accepted, 64·T1 = 32 s), as on an
//! MC server fanning calls out to many members. The cost should not grow
//! with N.
//!
//! The virtual clock advances by 32 s / N per exchange and both links run
//! their timers, so in the steady state about N exchanges are live (their
//! server transactions in Accepted until Timer L, client ones until Timer M,
//! the 2xx and ACK records until 64·T1).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcx_core::SipLink;
use mcx_sip::{Message, Remote, Response, StatusCode, Timers, Transport};

struct Pair {
    a: SipLink,
    b: SipLink,
    now: Instant,
    step: Duration,
    n: u64,
}

fn invite(i: u64) -> Vec<u8> {
    format!(
        "INVITE sip:member{i}@mcx.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{i:016x}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:server@mcx.test>;tag=srv{i}\r\n\
         To: <sip:member{i}@mcx.test>\r\n\
         Call-ID: call{i}@mcx.test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:server@mcx.test>\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn ack(i: u64) -> Vec<u8> {
    format!(
        "ACK sip:member{i}@mcx.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack{i:016x}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:server@mcx.test>;tag=srv{i}\r\n\
         To: <sip:member{i}@mcx.test>;tag=m{i}\r\n\
         Call-ID: call{i}@mcx.test\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn pipe(from: &mut SipLink, to: &mut SipLink, now: Instant) {
    let src = from.local();
    while let Some(t) = from.poll_transmit() {
        to.receive(now, src, &t.bytes);
        // The driver asks for the next deadline after every input.
        black_box(to.poll_timeout());
    }
}

impl Pair {
    fn new(n: u64) -> Self {
        let ra = Remote {
            addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
            transport: Transport::Udp,
        };
        let rb = Remote {
            addr: SocketAddr::from(([127, 0, 0, 1], 5070)),
            transport: Transport::Udp,
        };
        let mut p = Self {
            a: SipLink::new(Timers::RFC3261, ra),
            b: SipLink::new(Timers::RFC3261, rb),
            now: Instant::now(),
            step: Timers::RFC3261.t1 * 64 / u32::try_from(n).unwrap(),
            n: 0,
        };
        for _ in 0..n + n / 4 {
            p.exchange();
        }
        p
    }

    /// One INVITE → 200 → ACK, then the clock moves on and timers run.
    fn exchange(&mut self) {
        let i = self.n;
        self.n += 1;
        self.now += self.step;
        let now = self.now;
        let rb = self.b.local();
        self.a.send(now, rb, &invite(i)).unwrap();
        pipe(&mut self.a, &mut self.b, now);
        let d = self.b.poll_deliver().unwrap();
        let Message::Request(req) = d.message else {
            panic!()
        };
        let mut ok = Response::for_request(&req, StatusCode::OK, Some(&format!("m{i}"))).unwrap();
        ok.headers_mut()
            .push("Contact", &format!("<sip:member{i}@mcx.test>"))
            .unwrap();
        let ra = self.a.local();
        self.b.send(now, ra, &ok.to_bytes()).unwrap();
        pipe(&mut self.b, &mut self.a, now);
        black_box(self.a.poll_deliver().unwrap());
        self.a.send(now, rb, &ack(i)).unwrap();
        pipe(&mut self.a, &mut self.b, now);
        black_box(self.b.poll_deliver().unwrap());
        for l in [&mut self.a, &mut self.b] {
            while let Some(at) = l.poll_timeout().filter(|at| *at <= now) {
                l.handle_timeout(at);
                while l.poll_transmit().is_some() {}
                while l.poll_deliver().is_some() {}
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("SipLink INVITE/200/ACK");
    g.sample_size(20);
    for n in [10u64, 1_000, 10_000] {
        let mut p = Pair::new(n);
        g.bench_with_input(BenchmarkId::new("lingering", n), &n, |b, _| {
            b.iter(|| p.exchange())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
