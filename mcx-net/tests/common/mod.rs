//! Helpers for the node tests: an MC server node on loopback, and SIP
//! peers over real UDP and TCP sockets.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mcx_core::McServer;
use mcx_net::node::{BoundNode, NodeHandle, NodeLimits};
use mcx_net::{Directory, NodeTls, Transport};
use mcx_sip::{Limits, Message, Method, Request, StatusCode, StreamDecoder, Timers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

pub const MCS: &str = "sip:mcs@test.example";

/// An MC server (it answers OPTIONS with 200 and an INVITE for a group it
/// does not own with 404) behind a node with `limits`, on 127.0.0.1.
pub async fn node(limits: NodeLimits) -> (NodeHandle<McServer>, SocketAddr) {
    node_over(Transport::Udp, None, limits).await
}

/// [`node`] with `transport` and TLS configuration `tls`.
pub async fn node_over(
    transport: Transport,
    tls: Option<NodeTls>,
    limits: NodeLimits,
) -> (NodeHandle<McServer>, SocketAddr) {
    let mut bound = BoundNode::bind("127.0.0.1:0".parse().unwrap(), transport, None)
        .await
        .unwrap();
    if let Some(tls) = tls {
        bound = bound.with_tls(tls);
    }
    let addr = bound.peer().unwrap().sip;
    let h = bound
        .run_with(
            McServer::new(MCS),
            Arc::new(Directory::new()),
            Timers::RFC3261,
            None,
            limits,
        )
        .unwrap();
    (h, addr)
}

static SEQ: AtomicU32 = AtomicU32::new(1);

/// A request to the MC server from `local`, unique per call.
pub fn request(method: Method, transport: &str, local: SocketAddr, body_len: usize) -> Vec<u8> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut b = Request::builder(method, MCS)
        .via(
            transport,
            &local.to_string(),
            &mcx_sip::new_branch([n.to_be_bytes(), [7; 4]].concat().try_into().unwrap()),
        )
        .max_forwards(70)
        .from(None, "sip:peer@test.example", &format!("t{n}"))
        .to(None, MCS, None)
        .call_id(&format!("c{n}@test.example"))
        .cseq(1)
        .contact(&format!("<sip:peer@{local}>"));
    if body_len > 0 {
        b = b.body("application/octet-stream", vec![b'z'; body_len]);
    }
    b.build().unwrap().to_bytes()
}

pub fn status(msg: &Message) -> Option<StatusCode> {
    match msg {
        Message::Response(r) => Some(r.status()),
        Message::Request(_) => None,
    }
}

/// A UDP peer bound on `ip`.
pub async fn udp_peer(ip: &str) -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind(format!("{ip}:0")).await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// The first final response received on `s` within `within`.
pub async fn udp_final(s: &UdpSocket, within: Duration) -> Option<StatusCode> {
    let end = Instant::now() + within;
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok(Ok(n)) = tokio::time::timeout_at(end.into(), s.recv(&mut buf)).await else {
            return None;
        };
        if let Some(st) = Message::parse(&buf[..n]).ok().as_ref().and_then(status)
            && st.is_final()
        {
            return Some(st);
        }
    }
}

/// Sends an OPTIONS from `s` to `to` and waits for the final response.
pub async fn udp_options(s: &UdpSocket, to: SocketAddr) -> Option<StatusCode> {
    let local = s.local_addr().unwrap();
    s.send_to(&request(Method::Options, "UDP", local, 0), to)
        .await
        .unwrap();
    udp_final(s, Duration::from_secs(3)).await
}

/// A TCP connection to `to` from `ip`.
pub async fn tcp_peer(ip: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// The first final response on `c` within `within`.
pub async fn tcp_final(c: &mut TcpStream, within: Duration) -> Option<StatusCode> {
    let end = Instant::now() + within;
    let mut d = StreamDecoder::new(Limits::TCP);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tokio::time::timeout_at(end.into(), c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        d.push(&buf[..n]);
        while let Ok(Some(m)) = d.next_message() {
            if let Some(st) = status(&m).filter(|s| s.is_final()) {
                return Some(st);
            }
        }
    }
}

/// Sends an OPTIONS on `c` and waits for the final response.
pub async fn tcp_options(c: &mut TcpStream) -> Option<StatusCode> {
    let local = c.local_addr().unwrap();
    c.write_all(&request(Method::Options, "TCP", local, 0))
        .await
        .unwrap();
    tcp_final(c, Duration::from_secs(3)).await
}

/// How long until the node closes `c` (reads until EOF or an error,
/// discarding data), or `None` if it is still open after `within`.
pub async fn closed_after(c: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), c.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Polls `f` until it holds or `within` passes.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}
