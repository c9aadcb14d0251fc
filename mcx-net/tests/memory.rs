//! A hostile load does not grow the node's memory past a fixed bound:
//! 2000 forged 50 KB INVITEs from a source not allowed to start calls,
//! plus 200 SIP/TCP connections that send half a large message and stall.
//! An honest peer is answered afterwards. (Its own test binary: RSS is
//! per process, so no other test may run beside it.)
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use mcx_net::node::{InviteSource, NodeLimits};
use mcx_sip::{Method, StatusCode};
use tokio::io::AsyncWriteExt;

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const CAP_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_load_stays_within_a_memory_bound() {
    let message_timeout = Duration::from_secs(2);
    let (node, addr) = node(NodeLimits {
        // Every forgery reaches the source check (the rate cap would stop most first).
        max_messages_per_sec_per_peer: 0,
        invite_sources: Some(vec![InviteSource::new("127.0.0.1:1".parse().unwrap())]),
        tcp_message_timeout: message_timeout,
        tcp_idle: Duration::from_secs(30),
        ..NodeLimits::default()
    })
    .await;
    let (forger, forger_addr) = udp_peer("127.0.0.1").await;
    let (honest, _) = udp_peer("127.0.0.2").await;
    let forged: Vec<Vec<u8>> = (0..8)
        .map(|_| request(Method::Invite, "UDP", forger_addr, 50_000))
        .collect();
    let slow_msg = request(
        Method::Invite,
        "TCP",
        "127.0.0.1:9".parse().unwrap(),
        60_000,
    );
    // Warm up, then measure from here.
    assert_eq!(udp_options(&honest, addr).await, Some(StatusCode::OK));
    let base = rss_kib();
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (peak, done) = (peak.clone(), done.clone());
        async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    // 200 connections, each with half of a 60 KB INVITE, then silence.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut c = tcp_peer("127.0.0.1", addr).await;
        c.write_all(&slow_msg[..slow_msg.len() / 2]).await.unwrap();
        slow.push(c);
    }
    for i in 0..2000 {
        forger
            .send_to(&forged[i % forged.len()], addr)
            .await
            .unwrap();
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // The stalled connections are all cut off by the message timeout.
    assert!(
        eventually(message_timeout * 3, || node.guard_stats().tcp_slow_closed
            == 200)
        .await,
        "{:?}",
        node.guard_stats()
    );
    let stats = node.guard_stats();
    assert!(stats.dropped_source > 0, "{stats:?}");
    assert_eq!(udp_final(&forger, Duration::from_millis(300)).await, None);

    // An honest peer is still served, over UDP and over TCP.
    assert_eq!(udp_options(&honest, addr).await, Some(StatusCode::OK));
    let mut c = tcp_peer("127.0.0.2", addr).await;
    assert_eq!(tcp_options(&mut c).await, Some(StatusCode::OK));

    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let grown = peak.load(Ordering::Relaxed).saturating_sub(base);
    eprintln!(
        "RSS {base} KiB before, peak +{grown} KiB; {} forged INVITEs reached the source check",
        stats.dropped_source
    );
    assert!(
        grown < CAP_KIB,
        "RSS grew by {grown} KiB (cap {CAP_KIB} KiB)"
    );
}
