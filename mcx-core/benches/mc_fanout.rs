//! An MC server's own CPU per member for one temporary group – broadcast
//! call, without sockets: the sans-IO part of `mcx bench call`'s "cost per
//! member on each server" (issue 13 point 3; docs/BENCHMARKS.md, "The MC
//! server's own instructions per member").
//!
//! One MC server hosts groups A and B with N scripted members each (the
//! test mesh's stubs: they answer every INVITE 200 with an SDP answer at
//! once and never acknowledge floor packets), behind a `SipLink` as the node
//! driver runs it: each datagram parsed once and handed to the link, the
//! role's output handed to the link as a value. The dispatcher (a full
//! client: the TGMK wrapped for both groups and signed) and the controlling
//! server are real too. Counted is only the time the MC server spends in its
//! own calls and its link's (the mesh's `busy`): the INVITE in, N member
//! INVITEs out, their 200s in, the ACKs and the Floor Taken fan-out out, the
//! answer to the controlling server and its ACK; and, separately, the
//! tear-down (a BYE in, N BYEs out, their 200s in). Not counted: system
//! calls, wake-ups and the allocator's pages, which the end-to-end bench
//! sees (about a third of its figure).
//!
//! Criterion reports time per call; the throughput line (elements = the
//! 2·N members) gives members per second, its inverse the cost per member.
//! Those wall-clock times move with the host as much as the end-to-end
//! figure does (the mesh's own work between the MC server's calls evicts its
//! caches, and a timed call can be preempted): to compare builds, count the
//! MC server's instructions instead (callgrind, see `main`), which are exact.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use mcx_core::{AnswerPolicy, ClientEvent};
use mcx_sip::{Timers, Transport};

/// The `mcx` binary's allocator: its cost per member is part of the figure.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A stub world with both groups on one MC server, SIP through links; each
/// member answers with its own floor SSRC, as devices draw theirs at random.
fn fanout_world(members_per_group: usize) -> World {
    let (mut w, groups) = stub_world(members_per_group, true, None, AnswerPolicy::Confirmed);
    for (i, u) in groups.a.iter().chain(&groups.b).enumerate() {
        w.mesh.stub(u).ssrc_base = 0x1000_0000 + 0x1_0000 * i as u32;
    }
    w.mesh.use_links(Transport::Udp, Timers::RFC3261);
    w
}

/// Forgets what the mesh recorded (logs grow with every call otherwise).
fn forget(m: &mut Mesh) {
    m.log.clear();
    m.timeline.clear();
    m.events.clear();
    m.busy.clear();
    if let Some(net) = m.net.as_mut() {
        net.wire.clear();
        net.sent.clear();
    }
}

/// `role`'s busy time, all kinds together; with `MCX_BENCH_BREAKDOWN`
/// set, each kind printed too.
fn busy_of(m: &Mesh, role: &str) -> Duration {
    let mine = m.busy.iter().filter(|((r, _), _)| r == role);
    if std::env::var_os("MCX_BENCH_BREAKDOWN").is_some() {
        let parts: Vec<String> = mine
            .clone()
            .map(|((_, what), d)| format!("{what} {:.0} µs", d.as_secs_f64() * 1e6))
            .collect();
        eprintln!("{role}: {}", parts.join(", "));
    }
    mine.map(|(_, d)| *d).sum()
}

/// One call set up and torn down: the MC server's busy time for each.
fn one_call(m: &mut Mesh, members: usize, seed: u64) -> (Duration, Duration) {
    forget(m);
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(seed))
        .unwrap();
    // The set-up and what follows it at once: ACKs, the Floor Taken
    // fan-out (its retransmissions to the silent stubs come at 500 ms).
    m.drive_for(Duration::from_millis(300));
    let accepted: usize = m.events[DISPATCHER]
        .iter()
        .find_map(|e| match e {
            AnyEvent::Client(ClientEvent::CallEstablished { groups, .. }) => {
                Some(groups.iter().map(|g| g.accepted as usize).sum())
            }
            _ => None,
        })
        .unwrap_or_default();
    assert_eq!(accepted, 2 * members, "every member joins");
    let set_up = busy_of(m, MC_ONE);
    m.busy.clear();
    // A profiler watching the MC server (see `main`) sees the set-up only
    // when MCX_FANOUT_SETUP_ONLY is set.
    let pause = std::env::var_os("MCX_FANOUT_SETUP_ONLY").is_some();
    WATCH_PAUSED.store(pause, Ordering::Relaxed);
    let t = m.time();
    m.client(DISPATCHER)
        .hang_up(t, TEMP_GROUP, &mut TestRng(seed ^ 1))
        .unwrap();
    m.drive_for(Duration::from_secs(2));
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let tear_down = busy_of(m, MC_ONE);
    WATCH_PAUSED.store(false, Ordering::Relaxed);
    (set_up, tear_down)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("MC server, own CPU per call");
    g.sample_size(10);
    for members_per_group in [20usize, 200] {
        let receivers = 2 * members_per_group;
        g.throughput(Throughput::Elements(receivers as u64));
        let mut w = fanout_world(members_per_group);
        let mut seed = 1;
        // Warm-up call: the link's and the role's tables reach their size.
        one_call(&mut w.mesh, members_per_group, seed);
        for (phase, pick) in [("set-up", 0usize), ("tear-down", 1)] {
            g.bench_function(BenchmarkId::new(phase, receivers), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        seed += 2;
                        let both = one_call(&mut w.mesh, members_per_group, seed);
                        spent += if pick == 0 { both.0 } else { both.1 };
                    }
                    spent
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);

/// Criterion's benches; or, with `MCX_FANOUT_CALLS=K`, K calls at 200
/// members per group after one warm-up call, each call's busy time printed
/// (for a profiler: `MCX_MESH_WATCH=sip:mc@mcx.test valgrind
/// --tool=callgrind --toggle-collect='*watched_role*' …` counts the MC
/// server's instructions alone).
fn main() {
    if let Some(calls) = std::env::var("MCX_FANOUT_CALLS")
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    {
        let members = 200;
        let mut w = fanout_world(members);
        one_call(&mut w.mesh, members, 1);
        for i in 0..calls {
            let (set_up, tear_down) = one_call(&mut w.mesh, members, 3 + 2 * i);
            println!(
                "call {i}: set-up {:.1} µs per member, tear-down {:.1} µs per member",
                set_up.as_secs_f64() * 1e6 / (2 * members) as f64,
                tear_down.as_secs_f64() * 1e6 / (2 * members) as f64
            );
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
