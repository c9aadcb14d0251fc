//! SIP over TLS between real nodes on loopback, with certificates of a
//! demo CA: nodes talk; a node whose certificate is of another CA or
//! names another role is not talked to; calls are taken only from a peer
//! whose client certificate names an invite source; a TLS node ignores
//! plain SIP.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{MCS, eventually, request, tcp_options, tcp_peer, udp_options, udp_peer};
use mcx_core::{Channel, McServer, RelayCommand, Time, TimelineEntry, Transmit};
use mcx_net::node::{BoundNode, InviteSource, NodeHandle, NodeLimits};
use mcx_net::{Directory, NodeTls, OsRng, Peer, Role, Transport};
use mcx_sip::{Message, Method, Timers};
use mcx_tls::{Ca, ClientAuth, Subject};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const CONTROLLING: &str = "sip:controlling@test.example";
const MEMBER: &str = "sip:a1@test.example";

/// A role that sends what it is told to and reports what it receives
/// (final status codes, request methods).
#[derive(Default)]
struct Prober {
    out: VecDeque<Transmit>,
    events: VecDeque<String>,
}

impl Role for Prober {
    type Event = String;
    fn uri(&self) -> &str {
        "sip:prober@mcx.test"
    }
    fn handle(
        &mut self,
        _: Time,
        _: &str,
        _: Channel,
        _: &[u8],
        _: &mut OsRng,
    ) -> Result<(), mcx_core::Error> {
        Ok(())
    }
    fn handle_sip(
        &mut self,
        _: Time,
        _: &str,
        msg: Message,
        _: &mut OsRng,
    ) -> Result<(), mcx_core::Error> {
        match msg {
            Message::Response(r) if r.status().is_provisional() => {}
            Message::Response(r) => self.events.push_back(r.status().0.to_string()),
            Message::Request(r) => self.events.push_back(r.method().to_string()),
        }
        Ok(())
    }
    fn handle_timeout(&mut self, _: Time, _: &mut OsRng) -> Result<(), mcx_core::Error> {
        Ok(())
    }
    fn shutdown(&mut self, _: Time, _: &mut OsRng) -> Result<(), mcx_core::Error> {
        Ok(())
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_event(&mut self) -> Option<String> {
        self.events.pop_front()
    }
    fn poll_timeline(&mut self) -> Option<TimelineEntry> {
        None
    }
    fn poll_relay(&mut self) -> Option<RelayCommand> {
        None
    }
}

/// TLS for a node named `identity`, certified by `ca`, trusting `trust`.
fn node_tls(ca: &Ca, trust: &Ca, identity: &str, present: bool) -> NodeTls {
    let id = ca.issue(&Subject::new(identity, [LOOPBACK])).unwrap();
    let trust = trust.trust().unwrap();
    NodeTls {
        server: mcx_tls::server_config(&id, &trust, ClientAuth::Optional, None).unwrap(),
        client: mcx_tls::client_config(&trust, present.then_some(&id), None).unwrap(),
    }
}

/// An MC server (answers OPTIONS 200, an INVITE for a group it does not
/// own 404) speaking TLS only.
async fn mcs(tls: NodeTls, limits: NodeLimits) -> (NodeHandle<McServer>, SocketAddr) {
    common::node_over(Transport::Tls, Some(tls), limits).await
}

/// A prober node whose directory has the MC server at `mcs` over TLS.
async fn prober(tls: NodeTls, mcs: SocketAddr) -> (NodeHandle<Prober>, SocketAddr) {
    prober_to(tls, mcs, Transport::Tls).await
}

/// A TLS prober node whose directory has the MC server at `mcs` over `transport`.
async fn prober_to(
    tls: NodeTls,
    mcs: SocketAddr,
    transport: Transport,
) -> (NodeHandle<Prober>, SocketAddr) {
    let bound = BoundNode::bind("127.0.0.1:0".parse().unwrap(), Transport::Tls, None)
        .await
        .unwrap()
        .with_tls(tls);
    let addr = bound.peer().unwrap().sip;
    let mut directory = Directory::new();
    directory.insert(
        MCS,
        Peer {
            sip: mcs,
            transport,
            floor: None,
        },
    );
    let h = bound
        .run(
            Prober::default(),
            Arc::new(directory),
            Timers::RFC3261,
            None,
        )
        .unwrap();
    (h, addr)
}

/// Has the prober send `method` to the MC server; the first event within `within`.
async fn ask(
    p: &mut NodeHandle<Prober>,
    local: SocketAddr,
    method: Method,
    within: Duration,
) -> Option<String> {
    let contents = request(method, "TLS", local, 0);
    p.command(move |r, _, _| {
        r.out.push_back(Transmit::of_octets(
            "sip:peer@test.example".into(),
            MCS.into(),
            Channel::Sip,
            contents,
        ));
    })
    .unwrap();
    tokio::time::timeout(within, p.events.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_talk_sip_over_tls_and_know_each_other() {
    let ca = Ca::generate("test CA").unwrap();
    let (server, addr) = mcs(
        node_tls(&ca, &ca, MCS, true),
        NodeLimits {
            invite_sources: Some(vec![InviteSource::with_identity(addr_any(), CONTROLLING)]),
            ..NodeLimits::default()
        },
    )
    .await;
    let (mut p, local) = prober(node_tls(&ca, &ca, CONTROLLING, true), addr).await;
    let secs = Duration::from_secs(3);
    assert_eq!(
        ask(&mut p, local, Method::Options, secs).await.as_deref(),
        Some("200")
    );
    // The call request passes the source check (mutual TLS names the
    // controlling server) and reaches the role, which does not own the group.
    assert_eq!(
        ask(&mut p, local, Method::Invite, secs).await.as_deref(),
        Some("404")
    );
    assert_eq!(server.guard_stats().dropped_source, 0);
    let names = p.tls_peer(addr).unwrap();
    assert!(names.names(MCS), "{names:?}");
    assert_eq!(p.guard_stats().tls_failed, 0);
}

/// Any address: with an identity, a TLS source is known by its certificate.
fn addr_any() -> SocketAddr {
    "192.0.2.1:5061".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_another_ca_or_naming_another_role_is_not_talked_to() {
    let ca = Ca::generate("test CA").unwrap();
    let impostor = Ca::generate("impostor CA").unwrap();
    for (issuer, name) in [(&impostor, MCS), (&ca, "sip:other@test.example")] {
        let (server, addr) = mcs(node_tls(issuer, issuer, name, true), NodeLimits::default()).await;
        let (mut p, local) = prober(node_tls(&ca, &ca, CONTROLLING, true), addr).await;
        let answer = ask(&mut p, local, Method::Options, Duration::from_secs(3)).await;
        // The transaction fails at once (transport error), nothing reaches the server's role.
        assert_eq!(answer.as_deref(), Some("503"), "{name}");
        assert_eq!(p.guard_stats().tls_failed, 1, "{name}");
        assert!(p.tls_peer(addr).is_none());
        drop(server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_come_only_from_the_certificate_of_an_invite_source() {
    let ca = Ca::generate("test CA").unwrap();
    let limits = NodeLimits {
        invite_sources: Some(vec![InviteSource::with_identity(addr_any(), CONTROLLING)]),
        ..NodeLimits::default()
    };
    let (server, addr) = mcs(node_tls(&ca, &ca, MCS, true), limits).await;
    // A member's certificate (same CA, same host), and no certificate at all.
    for (name, present) in [(MEMBER, true), (CONTROLLING, false)] {
        let (mut p, local) = prober(node_tls(&ca, &ca, name, present), addr).await;
        let before = server.guard_stats().dropped_source;
        assert_eq!(
            ask(&mut p, local, Method::Invite, Duration::from_millis(800)).await,
            None
        );
        assert_eq!(
            server.guard_stats().dropped_source,
            before + 1,
            "{name} {present}"
        );
        // Other requests are served.
        assert_eq!(
            ask(&mut p, local, Method::Options, Duration::from_secs(3))
                .await
                .as_deref(),
            Some("200")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_node_ignores_plain_sip() {
    let ca = Ca::generate("test CA").unwrap();
    let (server, addr) = mcs(node_tls(&ca, &ca, MCS, true), NodeLimits::default()).await;
    let (udp, _) = udp_peer("127.0.0.1").await;
    assert_eq!(udp_options(&udp, addr).await, None);
    assert!(server.guard_stats().dropped_plain >= 1);
    let mut tcp = tcp_peer("127.0.0.1", addr).await;
    assert_eq!(tcp_options(&mut tcp).await, None);
    assert!(
        eventually(Duration::from_secs(3), || server.guard_stats().tls_failed
            == 1)
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_node_talks_udp_to_a_peer_the_directory_says_speaks_udp() {
    let ca = Ca::generate("test CA").unwrap();
    // A lab topology: the MC server on UDP, the prober on TLS.
    let (server, addr) = common::node(NodeLimits::default()).await;
    let (mut p, local) =
        prober_to(node_tls(&ca, &ca, CONTROLLING, true), addr, Transport::Udp).await;
    let answer = ask(&mut p, local, Method::Options, Duration::from_secs(3)).await;
    assert_eq!(answer.as_deref(), Some("200"));
    assert_eq!(p.guard_stats().dropped_plain, 0);
    drop(server);
}
