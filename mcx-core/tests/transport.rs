//! The nine-step call with every role behind a `SipLink` (RFC 3261
//! transactions over simulated UDP or TCP sockets), with datagram loss,
//! high latency and an unreachable peer.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use mcx_core::{Channel, ControllingEvent, FailureCause, GroupFailure, GroupResult};
use mcx_sip::{Timers, Transport};

fn linked(servers: Servers, transport: Transport) -> World {
    linked_with(servers, transport, Timers::RFC3261)
}

fn linked_with(servers: Servers, transport: Transport, timers: Timers) -> World {
    let mut w = world(servers, &[DISPATCHER]);
    w.mesh.use_links(transport, timers);
    w
}

/// A slow network for SIP: one-way latency 200 ms (a round trip stays
/// under the 500 ms floor-control retransmission timer) and T1 = 50 ms,
/// so over UDP Timers A, E and the 2xx timer all fire before answers.
fn slow(transport: Transport) -> World {
    let timers = Timers {
        t1: Duration::from_millis(50),
        t2: Duration::from_millis(400),
        t4: Duration::from_millis(500),
        trying_delay: Duration::from_millis(200),
    };
    let mut w = linked_with(Servers::Two, transport, timers);
    w.mesh.set_latency(Duration::from_millis(200));
    w
}

/// Starts the call and drives the mesh for `horizon` of virtual time.
fn start(m: &mut Mesh, horizon: Duration) {
    let t = m.time();
    let mut rng = TestRng(42);
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut rng)
        .unwrap();
    m.drive_for(horizon);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

fn all_accept() -> Vec<GroupResult> {
    vec![
        GroupResult::joined(GROUP_A, 3, 0),
        GroupResult::joined(GROUP_B, 3, 0),
    ]
}

/// SIP on the wire, 100 Trying excepted (the INVITE server transaction
/// sends it by itself after 200 ms).
fn wire_sip(m: &Mesh) -> usize {
    m.net()
        .wire
        .iter()
        .filter(|w| w.channel == Channel::Sip && !w.starts_with("SIP/2.0 100 "))
        .count()
}

/// Messages handed to role `to` (after its link) from `from` starting
/// with `prefix` (a response to INVITE if `prefix` starts with `SIP/2.0`).
fn delivered(m: &Mesh, from: &str, to: &str, prefix: &str) -> usize {
    m.log
        .iter()
        .filter(|t| {
            t.channel == Channel::Sip
                && t.from == from
                && t.to == to
                && t.octets().starts_with(prefix.as_bytes())
                && (!prefix.starts_with("SIP/2.0")
                    || String::from_utf8_lossy(&t.octets()).contains(" INVITE\r\n"))
        })
        .count()
}

fn addr(m: &Mesh, uri: &str) -> std::net::SocketAddr {
    m.net().addr[uri]
}

fn no_malformed(m: &Mesh) {
    for (uri, l) in &m.net().links {
        assert_eq!(l.stats().malformed, 0, "{uri}");
    }
}

#[test]
fn udp_without_loss_sends_each_message_once() {
    for servers in [Servers::Two, Servers::One] {
        let mut w = linked(servers, Transport::Udp);
        let m = &mut w.mesh;
        start(m, Duration::from_secs(10));
        verify_full_call(m, &all_accept(), &all_members());
        // No retransmission: each message the roles produced went out once.
        assert_eq!(wire_sip(m), m.net().sent.len());
        // Top Via names the sender's socket and the transport.
        let inv = m
            .net()
            .wire
            .iter()
            .find(|w| w.starts_with("INVITE ") && w.from == addr(m, DISPATCHER))
            .unwrap()
            .text();
        assert!(
            inv.contains(&format!(
                "\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK",
                addr(m, DISPATCHER)
            )),
            "{inv}"
        );
        no_malformed(m);
    }
}

#[test]
fn lost_invite_to_controlling_server_is_retransmitted_by_timer_a() {
    let mut w = linked(Servers::Two, Transport::Udp);
    let m = &mut w.mesh;
    let ctrl = addr(m, CTRL);
    m.drop_nth(1, move |w| w.to == ctrl && w.starts_with("INVITE "));
    start(m, Duration::from_secs(10));
    verify_full_call(m, &all_accept(), &all_members());
    let invites: Vec<_> = m
        .net()
        .wire
        .iter()
        .filter(|w| w.to == ctrl && w.starts_with("INVITE "))
        .collect();
    assert_eq!(invites.len(), 2);
    assert!(invites[0].dropped && !invites[1].dropped);
    assert_eq!(invites[0].bytes, invites[1].bytes, "a retransmission");
    assert_eq!(delivered(m, DISPATCHER, CTRL, "INVITE "), 1);
}

#[test]
fn lost_200_of_a_member_is_retransmitted_and_acked_once() {
    let mut w = linked(Servers::Two, Transport::Udp);
    let m = &mut w.mesh;
    let a1 = members_a()[0].clone();
    let a1_addr = addr(m, &a1);
    m.drop_nth(1, move |w| {
        w.from == a1_addr && w.starts_with("SIP/2.0 200 ") && w.text().contains(" INVITE\r\n")
    });
    start(m, Duration::from_secs(10));
    verify_full_call(m, &all_accept(), &all_members());
    let net = m.net();
    // The 2xx went out twice (link retransmission at T1), the MC server
    // retransmitted its INVITE meanwhile (Timer A), a1 absorbed it.
    let oks: Vec<_> = net
        .wire
        .iter()
        .filter(|w| {
            w.from == a1_addr && w.starts_with("SIP/2.0 200 ") && w.text().contains(" INVITE\r\n")
        })
        .collect();
    assert_eq!(oks.len(), 2);
    assert!(oks[0].dropped && !oks[1].dropped);
    assert_eq!(net.links[&a1].stats().retransmitted_2xx, 1);
    assert_eq!(net.count(MC_A, &format!("INVITE {GROUP_A}")), 3 + 1);
    // Each role saw each message once: one INVITE at a1, one 200 and one
    // ACK matched.
    assert_eq!(delivered(m, MC_A, &a1, "INVITE "), 1);
    assert_eq!(delivered(m, &a1, MC_A, "SIP/2.0 200 "), 1);
    assert_eq!(delivered(m, MC_A, &a1, "ACK "), 1);
    assert_eq!(net.count(MC_A, "ACK "), 3, "one ACK per member");
}

#[test]
fn lost_ack_makes_the_2xx_come_again_and_it_is_re_acked() {
    let mut w = linked(Servers::Two, Transport::Udp);
    let m = &mut w.mesh;
    let (ctrl, disp) = (addr(m, CTRL), addr(m, DISPATCHER));
    m.drop_nth(1, move |w| {
        w.from == disp && w.to == ctrl && w.starts_with("ACK ")
    });
    start(m, Duration::from_secs(10));
    // verify_full_call checks CallEstablished exactly once at the initiator.
    verify_full_call(m, &all_accept(), &all_members());
    let net = m.net();
    let acks: Vec<_> = net
        .wire
        .iter()
        .filter(|w| w.from == disp && w.starts_with("ACK "))
        .collect();
    assert_eq!(acks.len(), 2);
    assert!(acks[0].dropped && !acks[1].dropped);
    assert_eq!(net.links[DISPATCHER].stats().reacked, 1);
    assert_eq!(net.links[CTRL].stats().retransmitted_2xx, 1);
    let oks = net
        .wire
        .iter()
        .filter(|w| w.from == ctrl && w.to == disp && w.starts_with("SIP/2.0 200 "))
        .filter(|w| w.text().contains(" INVITE\r\n"))
        .count();
    assert_eq!(oks, 2, "retransmission stopped at the ACK");
    assert_eq!(delivered(m, CTRL, DISPATCHER, "SIP/2.0 200 "), 1);
    assert_eq!(delivered(m, DISPATCHER, CTRL, "ACK "), 1);
}

#[test]
fn tcp_never_retransmits_even_when_slow() {
    let mut w = slow(Transport::Tcp);
    let m = &mut w.mesh;
    start(m, Duration::from_secs(60));
    verify_full_call(m, &all_accept(), &all_members());
    assert_eq!(wire_sip(m), m.net().sent.len(), "no retransmission");
    for (uri, l) in &m.net().links {
        assert_eq!(l.stats().retransmitted_2xx, 0, "{uri}");
    }
    let inv = m
        .net()
        .wire
        .iter()
        .find(|w| w.starts_with("INVITE ") && w.from == addr(m, CTRL))
        .unwrap()
        .text();
    assert!(inv.contains(&format!("\r\nVia: SIP/2.0/TCP {};", addr(m, CTRL))));
    no_malformed(m);
}

#[test]
fn udp_when_slow_retransmits_but_roles_see_everything_once() {
    // The control for the TCP test: the same network over UDP.
    let mut w = slow(Transport::Udp);
    let m = &mut w.mesh;
    start(m, Duration::from_secs(60));
    verify_full_call(m, &all_accept(), &all_members());
    assert!(wire_sip(m) > m.net().sent.len());
    assert!(m.net().count(DISPATCHER, "INVITE ") > 1, "Timer A");
    assert!(m.net().count(CTRL, "BYE ") > 3, "Timer E");
    assert!(m.net().links[CTRL].stats().retransmitted_2xx > 0);
    assert_eq!(delivered(m, DISPATCHER, CTRL, "INVITE "), 1);
    for u in all_members() {
        assert_eq!(
            m.log
                .iter()
                .filter(|t| t.to == u && t.octets().starts_with(b"INVITE "))
                .count(),
            1,
            "{u}"
        );
    }
}

#[test]
fn unreachable_member_is_abandoned_at_the_member_deadline_and_the_call_goes_on() {
    let mut w = linked(Servers::Two, Transport::Udp);
    let m = &mut w.mesh;
    let b3 = members_b()[2].clone();
    let b3_addr = addr(m, &b3);
    m.drop_all(move |w| w.to == b3_addr);
    start(m, Duration::from_secs(60));
    // MC server B reports at its member deadline (4 s), not at Timer B
    // (64·T1 = 32 s): b3 sent nothing, so it is abandoned, not cancelled.
    let report = m
        .timeline
        .iter()
        .find(|s| s.step == 7 && s.role == MC_B)
        .unwrap();
    assert!(
        report.at >= Duration::from_secs(4) && report.at < Duration::from_secs(5),
        "{:?}",
        report.at
    );
    assert_eq!(
        m.net().count(MC_B, "CANCEL "),
        0,
        "no CANCEL without a provisional"
    );
    // The abandoned INVITE transaction still ends by itself (Timer B).
    assert_eq!(m.net().links[MC_B].stats().timeouts, 1);
    assert_eq!(m.net().count(MC_B, &format!("INVITE {GROUP_B}")), 3 + 6);
    // The controlling server's own answer names b3 as unreachable.
    let ok = m
        .log
        .iter()
        .find(|t| t.to == DISPATCHER && t.octets().starts_with(b"SIP/2.0 200"))
        .unwrap();
    let text = String::from_utf8_lossy(&ok.octets()).into_owned();
    assert!(
        text.contains(&format!(
            "<member uri=\"{b3}\" outcome=\"unreachable\" code=\"408\"/>"
        )),
        "{text}"
    );
    let expected = vec![
        GroupResult::joined(GROUP_A, 3, 0),
        GroupResult::joined(GROUP_B, 2, 1),
    ];
    let receivers: Vec<String> = all_members().into_iter().filter(|u| *u != b3).collect();
    verify_full_call(m, &expected, &receivers);
}

#[test]
fn unreachable_mc_server_is_reported_at_the_group_deadline() {
    let mut w = linked(Servers::Two, Transport::Udp);
    let m = &mut w.mesh;
    let mc_b = addr(m, MC_B);
    m.drop_all(move |w| w.to == mc_b);
    start(m, Duration::from_secs(60));
    let b_result = GroupResult::failed(
        GROUP_B,
        GroupFailure {
            cause: FailureCause::Unreachable,
            status: None,
            member: None,
            detail: format!("no answer at all from {MC_B} within 5000 ms"),
        },
    );
    assert!(m.ctrl_events(CTRL).iter().any(
        |e| matches!(e, ControllingEvent::GroupReported { result, .. } if *result == b_result)
    ));
    // The initiator heard at the group deadline (5 s), well before Timer B.
    let answered = m
        .timeline
        .iter()
        .find(|s| s.step == 9 && s.role == CTRL)
        .unwrap();
    assert!(
        answered.at >= Duration::from_secs(5) && answered.at < Duration::from_secs(6),
        "{:?}",
        answered.at
    );
    assert_eq!(
        m.net().links[CTRL].stats().timeouts,
        1,
        "Timer B still ends the leg"
    );
    let expected = vec![GroupResult::joined(GROUP_A, 3, 0), b_result];
    verify_full_call(m, &expected, &members_a());
}

#[test]
fn garbage_on_the_wire_is_counted_and_dropped() {
    let mut w = linked(Servers::Two, Transport::Udp);
    let m = &mut w.mesh;
    start(m, Duration::from_secs(10));
    let samples: Vec<_> = m
        .net()
        .wire
        .iter()
        .filter(|w| w.channel == Channel::Sip)
        .take(12)
        .cloned()
        .collect();
    let targets: Vec<_> = m.net().addr.values().copied().collect();
    let mut state = 0x1234_5678_u64;
    for s in &samples {
        for cut in [0, 1, 10, s.bytes.len() / 2, s.bytes.len()] {
            for &to in &targets {
                let mut bytes = s.bytes[..cut].to_vec();
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                if !bytes.is_empty() {
                    let i = usize::try_from(state >> 33).unwrap() % bytes.len();
                    bytes[i] ^= 1 << (state % 8);
                }
                m.inject_wire(Wire {
                    to,
                    bytes,
                    dropped: false,
                    ..s.clone()
                });
            }
        }
    }
    m.drive_for(Duration::from_secs(60));
    let malformed: u64 = m.net().links.values().map(|l| l.stats().malformed).sum();
    assert!(malformed > 0);
    assert!(m.client(OUTSIDER).tgmk_confirmation(TEMP_GROUP).is_none());
    // The call survived: the initiator still holds the floor.
    assert_eq!(
        m.client(DISPATCHER).floor_state(TEMP_GROUP),
        Some(mcx_floor::ParticipantState::HasPermission)
    );
}
