//! The servers' voice relay over loopback sockets: each datagram of the
//! announced source and SSRC reaches every target byte for byte (also a
//! burst larger than one batch, with the counters current once the socket
//! is drained), anything else is dropped and counted, and dropping the
//! relay stops it.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use mcx_core::RelayCommand;
use mcx_net::RelayTask;
use mcx_relay::Route;
use tokio::net::UdpSocket;
use tokio::time::timeout;

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 160]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xA5; 188]);
    p
}

/// A loopback socket with room for a whole burst (1 MiB; the default
/// receive buffer holds ~200 such datagrams).
async fn bind() -> UdpSocket {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    socket2::SockRef::from(&s)
        .set_recv_buffer_size(1 << 20)
        .unwrap();
    s
}

async fn recv(s: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 2048];
    let n = timeout(Duration::from_millis(500), s.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(buf[..n].to_vec())
}

#[tokio::test]
async fn relays_the_route_and_stops_when_dropped() {
    let (relay, addr) = RelayTask::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let source = bind().await;
    let stranger = bind().await;
    let a = bind().await;
    let b = bind().await;
    assert!(relay.command(RelayCommand::Set(Route {
        source: source.local_addr().unwrap(),
        ssrc: Some(7),
        targets: vec![a.local_addr().unwrap(), b.local_addr().unwrap()],
    })));

    // A burst of more datagrams than one batch: all arrive, in order.
    const BURST: u16 = 100;
    for seq in 0..BURST {
        source.send_to(&rtp(7, seq), addr).await.unwrap();
    }
    for sink in [&a, &b] {
        for seq in 0..BURST {
            assert_eq!(recv(sink).await.unwrap(), rtp(7, seq));
        }
    }
    // Another SSRC from the source, the right SSRC from another socket,
    // and garbage: dropped.
    source.send_to(&rtp(8, 0), addr).await.unwrap();
    stranger.send_to(&rtp(7, 0), addr).await.unwrap();
    source.send_to(b"hello", addr).await.unwrap();
    assert_eq!(recv(&a).await, None);

    let stats = relay.stats();
    assert_eq!(stats.forwarded, u64::from(BURST));
    assert_eq!(stats.copies, 2 * u64::from(BURST));
    assert_eq!((stats.no_route, stats.not_rtp), (2, 1));

    drop(relay);
    tokio::time::sleep(Duration::from_millis(100)).await;
    source.send_to(&rtp(7, BURST), addr).await.unwrap();
    assert_eq!(recv(&a).await, None, "a dropped relay must not forward");
}
