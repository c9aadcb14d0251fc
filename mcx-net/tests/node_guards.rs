//! The node's guards over real loopback sockets: slow and idle SIP/TCP
//! connections are closed, the connection cap holds, a flooding source is
//! rate-capped without starving others, and only configured sources start
//! calls.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use mcx_net::node::{InviteSource, NodeLimits};
use mcx_sip::{Method, StatusCode};
use tokio::io::AsyncWriteExt;

fn short() -> NodeLimits {
    NodeLimits {
        tcp_idle: Duration::from_secs(5),
        tcp_message_timeout: Duration::from_secs(5),
        ..NodeLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_message_then_silence_is_cut_off() {
    let timeout = Duration::from_millis(600);
    let (node, addr) = node(NodeLimits {
        tcp_message_timeout: timeout,
        ..short()
    })
    .await;
    let mut c = tcp_peer("127.0.0.1", addr).await;
    let local = c.local_addr().unwrap();
    let msg = request(Method::Options, "TCP", local, 0);
    c.write_all(&msg[..msg.len() / 2]).await.unwrap();
    let after = closed_after(&mut c, Duration::from_secs(4)).await;
    let after = after.expect("a stalled message must not hold the connection");
    assert!(after >= timeout - Duration::from_millis(100), "{after:?}");
    assert!(after < timeout + Duration::from_secs(1), "{after:?}");
    let stats = node.guard_stats();
    assert_eq!(stats.tcp_slow_closed, 1, "{stats:?}");
    assert_eq!(stats.tcp_idle_closed, 0, "{stats:?}");

    // Trickling does not reset the clock: one octet every 100 ms still ends at the timeout.
    let mut c = tcp_peer("127.0.0.1", addr).await;
    let start = Instant::now();
    let msg = request(Method::Options, "TCP", c.local_addr().unwrap(), 0);
    for b in &msg[..msg.len() - 1] {
        if c.write_all(std::slice::from_ref(b)).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let total = start.elapsed() + closed_after(&mut c, Duration::from_secs(3)).await.unwrap();
    assert!(total < timeout + Duration::from_secs(1), "{total:?}");
    assert!(
        eventually(Duration::from_secs(1), || node
            .guard_stats()
            .tcp_slow_closed
            == 2)
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let idle = Duration::from_millis(600);
    let (node, addr) = node(NodeLimits {
        tcp_idle: idle,
        ..short()
    })
    .await;
    // After an answered request.
    let mut c = tcp_peer("127.0.0.1", addr).await;
    assert_eq!(tcp_options(&mut c).await, Some(StatusCode::OK));
    let after = closed_after(&mut c, Duration::from_secs(4)).await.unwrap();
    assert!(after < idle + Duration::from_secs(1), "{after:?}");
    // Without ever sending anything; keep-alive CRLFs alone do not count as messages.
    let mut c = tcp_peer("127.0.0.1", addr).await;
    c.write_all(b"\r\n\r\n").await.unwrap();
    let after = closed_after(&mut c, Duration::from_secs(4)).await.unwrap();
    assert!(after >= idle - Duration::from_millis(100), "{after:?}");
    assert!(after < idle + Duration::from_secs(1), "{after:?}");
    assert!(
        eventually(Duration::from_secs(1), || node
            .guard_stats()
            .tcp_idle_closed
            == 2)
        .await
    );
    assert_eq!(node.guard_stats().tcp_slow_closed, 0);
    assert!(eventually(Duration::from_secs(1), || node.guard_stats().tcp_open == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_while_open_ones_work() {
    let (node, addr) = node(NodeLimits {
        max_tcp_connections: 3,
        ..short()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(tcp_peer("127.0.0.1", addr).await);
    }
    assert!(eventually(Duration::from_secs(2), || node.guard_stats().tcp_open == 3).await);
    // The kernel completes the handshake; the node closes it at once.
    let mut extra = tcp_peer("127.0.0.1", addr).await;
    let after = closed_after(&mut extra, Duration::from_secs(2)).await;
    assert!(after.is_some(), "connection 4 must be closed");
    assert_eq!(node.guard_stats().tcp_refused, 1);
    for c in &mut open {
        assert_eq!(tcp_options(c).await, Some(StatusCode::OK));
    }
    // A slot frees when a connection ends.
    drop(open.pop());
    assert!(eventually(Duration::from_secs(2), || node.guard_stats().tcp_open == 2).await);
    let mut again = tcp_peer("127.0.0.1", addr).await;
    assert_eq!(tcp_options(&mut again).await, Some(StatusCode::OK));
    assert_eq!(node.guard_stats().tcp_refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_flood_is_capped_and_others_still_served() {
    let (node, addr) = node(NodeLimits {
        max_messages_per_sec_per_peer: 50,
        peer_burst: 20,
        ..short()
    })
    .await;
    let (flood, flood_addr) = udp_peer("127.0.0.1").await;
    let flood = std::sync::Arc::new(flood);
    let start = Instant::now();
    const N: u64 = 1500;
    let flooding = tokio::spawn({
        let flood = flood.clone();
        async move {
            for i in 0..N {
                flood
                    .send_to(&request(Method::Options, "UDP", flood_addr, 0), addr)
                    .await
                    .unwrap();
                if i % 10 == 0 {
                    // Paced so that the kernel's receive buffer does not drop them before
                    // the node sees them.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });
    // Another source is answered while the flood goes on.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (honest, _) = udp_peer("127.0.0.2").await;
    assert_eq!(udp_options(&honest, addr).await, Some(StatusCode::OK));
    assert!(
        !flooding.is_finished(),
        "the flood ended too soon to prove anything"
    );
    flooding.await.unwrap();
    let sent_in = start.elapsed();
    let admitted_max = 20 + 50 * (sent_in.as_secs() + 1);
    // Most of the flood was counted as dropped (not all need reach the node: the kernel may drop
    // some when the machine is busy).
    assert!(
        eventually(Duration::from_secs(2), || node.guard_stats().dropped_rate
            >= N / 2)
        .await,
        "{:?} after {sent_in:?}",
        node.guard_stats()
    );
    // The flooder got answers only for what passed.
    let mut answered = 0;
    while udp_final(&flood, Duration::from_millis(200))
        .await
        .is_some()
    {
        answered += 1;
    }
    assert!(answered >= 20 && answered <= admitted_max, "{answered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_invite_sources_start_calls() {
    let (allowed, allowed_addr) = udp_peer("127.0.0.1").await;
    let (node, addr) = node(NodeLimits {
        invite_sources: Some(vec![InviteSource::new(allowed_addr)]),
        ..short()
    })
    .await;
    // Same IP, other port: dropped over UDP.
    let (other, other_addr) = udp_peer("127.0.0.1").await;
    other
        .send_to(&request(Method::Invite, "UDP", other_addr, 0), addr)
        .await
        .unwrap();
    assert_eq!(udp_final(&other, Duration::from_millis(800)).await, None);
    assert_eq!(node.guard_stats().dropped_source, 1);
    // Other requests from it are served.
    assert_eq!(udp_options(&other, addr).await, Some(StatusCode::OK));
    // The allowed source reaches the role, which refuses a group it does not own.
    allowed
        .send_to(&request(Method::Invite, "UDP", allowed_addr, 0), addr)
        .await
        .unwrap();
    assert_eq!(
        udp_final(&allowed, Duration::from_secs(3)).await,
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(node.guard_stats().dropped_source, 1);

    // Over TCP the connection's IP counts, not its (ephemeral) port.
    let (node, addr) = common::node(NodeLimits {
        invite_sources: Some(vec![InviteSource::new("127.0.0.2:5060".parse().unwrap())]),
        ..short()
    })
    .await;
    let mut stranger = tcp_peer("127.0.0.1", addr).await;
    let local = stranger.local_addr().unwrap();
    stranger
        .write_all(&request(Method::Invite, "TCP", local, 0))
        .await
        .unwrap();
    assert_eq!(
        tcp_final(&mut stranger, Duration::from_millis(800)).await,
        None
    );
    assert_eq!(node.guard_stats().dropped_source, 1);
    let mut controlling = tcp_peer("127.0.0.2", addr).await;
    let local = controlling.local_addr().unwrap();
    controlling
        .write_all(&request(Method::Invite, "TCP", local, 0))
        .await
        .unwrap();
    assert_eq!(
        tcp_final(&mut controlling, Duration::from_secs(3)).await,
        Some(StatusCode::NOT_FOUND)
    );
    assert_eq!(node.guard_stats().dropped_source, 1);
}
