//! Issue 10 point 1 on the mesh: every party's SDP names the address and
//! ports its driver bound, the servers write their own relay address
//! into what they forward, and the relay routes the servers emit follow
//! the call (set when it is up, narrowed when a group leaves, removed at
//! the end) — all without any server holding a key.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::*;
use mcx_core::{
    ClientEvent, ControllingServerConfig, Direction, MediaEndpoint, RelayCommand, Route,
    TemporaryGroup, parse_sdp,
};

fn endpoint(host: u8) -> MediaEndpoint {
    MediaEndpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 9, 0, host)),
        rtp_port: 40_000 + u16::from(host) * 2,
        floor_port: 50_000 + u16::from(host) * 2,
    }
}

/// A world where every party has its own media endpoint.
fn world_with_media() -> World {
    let next = Cell::new(10u8);
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        c.media = endpoint(next.get());
        next.set(next.get() + 1);
    });
    let mut cfg = ControllingServerConfig::new(
        CTRL,
        vec![DISPATCHER.into()],
        vec![TemporaryGroup {
            id: TEMP_GROUP.into(),
            constituents: vec![(GROUP_A.into(), MC_A.into()), (GROUP_B.into(), MC_B.into())],
        }],
    );
    cfg.media = endpoint(1);
    w.mesh.set_ctrl(cfg);
    w.mesh.mc(MC_A).set_media(endpoint(2));
    w.mesh.mc(MC_B).set_media(endpoint(3));
    w
}

/// The SDP of the first message from `from` to `to` starting with `prefix`.
fn sdp_of(m: &Mesh, from: &str, to: &str, prefix: &str) -> mcx_core::Sdp {
    let t = m
        .log
        .iter()
        .find(|t| t.from == from && t.to == to && t.octets().starts_with(prefix.as_bytes()))
        .unwrap_or_else(|| panic!("no {prefix} from {from} to {to}"));
    let text = String::from_utf8_lossy(&t.octets()).into_owned();
    let start = text.find("v=0").unwrap();
    let end = text[start..]
        .find("\r\n--")
        .map_or(text.len(), |e| start + e + 2);
    parse_sdp(&text.as_bytes()[start..end]).unwrap()
}

#[test]
fn every_hop_announces_its_own_sockets_and_the_relays_follow_the_call() {
    let mut w = world_with_media();
    let m = &mut w.mesh;
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(1))
        .unwrap();
    m.drive();
    let voice = m.client(DISPATCHER).voice(TEMP_GROUP).unwrap();
    assert!(voice.sending);
    let ssrc = voice.ssrc.unwrap();

    // The initiator's offer: its own sockets, its voice SSRC, the
    // implicit floor request; the answer: the controlling server's relay
    // and floor sockets, the floor granted.
    let offer = sdp_of(m, DISPATCHER, CTRL, "INVITE ");
    let dispatcher_rtp = offer.audio.unwrap();
    assert_eq!(offer.direction, Some(Direction::SendOnly));
    assert_eq!(offer.media_ssrc, Some(ssrc));
    assert_eq!(offer.payload_types, vec![0]);
    assert_eq!(offer.floor_fmtp.as_deref(), Some("mc_implicit_request"));
    assert_eq!(offer.floor.unwrap().ip(), dispatcher_rtp.ip());
    let answer = sdp_of(m, CTRL, DISPATCHER, "SIP/2.0 200");
    assert_eq!(answer.audio, Some(endpoint(1).rtp()));
    assert_eq!(answer.floor, Some(endpoint(1).floor()));
    assert_eq!(answer.floor_fmtp.as_deref(), Some("mc_granted"));
    assert_eq!(voice.to, Some(endpoint(1).rtp()), "send to the relay");

    // Toward MC server A: the controlling server's relay, the initiator's
    // SSRC, its own floor socket; no queueing offered.
    let to_a = sdp_of(m, CTRL, MC_A, "INVITE ");
    assert_eq!(to_a.audio, Some(endpoint(1).rtp()));
    assert_eq!(to_a.media_ssrc, Some(ssrc));
    assert_eq!(to_a.floor, Some(endpoint(1).floor()));
    assert_eq!(to_a.floor_fmtp.as_deref(), Some(""));
    let a_answer = sdp_of(m, MC_A, CTRL, "SIP/2.0 200");
    assert_eq!(a_answer.audio, Some(endpoint(2).rtp()));
    assert_eq!(
        a_answer.floor,
        Some(endpoint(2).floor()),
        "its members' floor control comes through it"
    );

    // Toward a member of A: MC server A's relay and floor socket (it is
    // the members' participating function) with the controlling server's
    // per-call floor SSRC.
    let a1 = members_a()[0].clone();
    let to_a1 = sdp_of(m, MC_A, &a1, "INVITE ");
    assert_eq!(to_a1.audio, Some(endpoint(2).rtp()));
    assert_eq!(to_a1.media_ssrc, Some(ssrc));
    assert_eq!(to_a1.floor, Some(endpoint(2).floor()));
    assert_eq!(to_a1.floor_ssrc, to_a.floor_ssrc);
    let a1_answer = sdp_of(m, &a1, MC_A, "SIP/2.0 200");
    assert_eq!(a1_answer.direction, Some(Direction::RecvOnly));
    let a1_voice = m.client(&a1).voice(TEMP_GROUP).unwrap();
    assert!(!a1_voice.sending);
    assert_eq!(
        a1_voice.ssrc,
        Some(ssrc),
        "the receiver expects the sender's SSRC"
    );
    assert_eq!(
        (a1_voice.keys.master_key(), a1_voice.keys.mki()),
        (voice.keys.master_key(), voice.keys.mki()),
        "same SRTP master key and MKI from the TGMK"
    );

    // The relays: controlling server → both MC servers; each MC server →
    // its members' announced voice sockets.
    let ctrl_routes = m.relays[CTRL].clone();
    assert_eq!(
        ctrl_routes,
        vec![RelayCommand::Set(Route {
            source: dispatcher_rtp,
            ssrc: Some(ssrc),
            targets: vec![endpoint(2).rtp(), endpoint(3).rtp()],
        })]
    );
    let a_routes = m.relays[MC_A].clone();
    let RelayCommand::Set(a_route) = &a_routes[0] else {
        panic!("{a_routes:?}");
    };
    assert_eq!(a_route.source, endpoint(1).rtp());
    assert_eq!(a_route.ssrc, Some(ssrc));
    let mut expected: Vec<SocketAddr> = members_a()
        .iter()
        .map(|u| sdp_of(m, u, MC_A, "SIP/2.0 200").audio.unwrap())
        .collect();
    expected.sort();
    let mut got = a_route.targets.clone();
    got.sort();
    assert_eq!(got, expected);

    // MC server A leaves: the controlling server's route narrows to B.
    let t = m.time();
    m.mc(MC_A).shutdown(t, &mut TestRng(2)).unwrap();
    m.drive();
    assert_eq!(
        m.relays[CTRL].last(),
        Some(&RelayCommand::Set(Route {
            source: dispatcher_rtp,
            ssrc: Some(ssrc),
            targets: vec![endpoint(3).rtp()],
        }))
    );
    assert_eq!(
        m.relays[MC_A].last(),
        Some(&RelayCommand::Remove {
            source: endpoint(1).rtp(),
            ssrc: Some(ssrc)
        })
    );
    // The call ends: every route goes.
    let t = m.time();
    m.client(DISPATCHER)
        .hang_up(t, TEMP_GROUP, &mut TestRng(3))
        .unwrap();
    m.drive();
    assert!(matches!(
        m.relays[CTRL].last(),
        Some(RelayCommand::Remove { .. })
    ));
    assert!(matches!(
        m.relays[MC_B].last(),
        Some(RelayCommand::Remove { .. })
    ));
    assert!(
        m.client_events(&members_b()[0])
            .iter()
            .any(|e| matches!(e, ClientEvent::CallEnded { .. }))
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}
