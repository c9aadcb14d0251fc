//! Protected floor control (issue 10 point 3) on the mesh: every client
//! registers with its home server uploading a CSK (MIKEY-SAKKE, TS 33.180
//! E.4) — members with their MC server, the dispatcher with the
//! controlling server — and floor control travels as SRTCP under that CSK
//! to the home server and under the SPK between servers (TS 24.380 13).
//! Forged, unprotected, replayed and wrongly sourced floor packets are
//! dropped and counted, and change nothing.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use mcx_core::{Channel, ClientEvent, Transmit};
use mcx_floor::{Field, Message, MessageType, ParticipantEvent, ParticipantState, RejectCause};
use mcx_mikey::KeyId;
use mcx_mikey::wire::Purpose;

const MC_A: &str = "sip:mc-a@mcx.test";
const MC_B: &str = "sip:mc-b@mcx.test";

fn home_of(uri: &str) -> &'static str {
    if uri == DISPATCHER {
        CTRL
    } else if members_b().iter().any(|m| m == uri) {
        MC_B
    } else {
        MC_A
    }
}

/// Everyone registered with a CSK; the servers share an SPK.
fn protected_world() -> World {
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        c.home_server = Some(home_of(&c.uri).to_owned());
    });
    let m = &mut w.mesh;
    // The SPK (TS 24.380 13.1), configured at the controlling server and
    // both MC servers.
    let spk = mcx_mikey::Spk::from_bytes(&[0x5a; 16]).unwrap();
    // Purpose tag 3 (SPK) in the top 4 bits (TS 33.180 5.2.2).
    let spk_id = KeyId(0x3123_4567);
    assert_eq!(spk_id.purpose(), Purpose::Spk);
    let keys = mcx_mikey::csk::spk_srtcp_keys(&spk, spk_id, &[7u8; 16]).unwrap();
    m.ctrl(CTRL).set_spk(keys.clone());
    m.mc(MC_A).set_spk(keys.clone());
    m.mc(MC_B).set_spk(keys);
    m.register_everyone(300);
    for u in all_members().iter().map(String::as_str).chain([DISPATCHER]) {
        assert!(
            m.client(u).floor_protected(),
            "{u}: {:?}",
            m.client_events(u)
        );
    }
    w
}

fn floor_events(m: &Mesh, u: &str) -> Vec<ParticipantEvent> {
    m.client_events(u)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Floor { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

#[test]
fn floor_control_runs_under_the_csks_and_the_spk_and_nothing_else_gets_in() {
    let mut w = protected_world();
    let m = &mut w.mesh;
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(1))
        .unwrap();
    m.drive();
    assert_eq!(
        m.client(DISPATCHER).floor_state(TEMP_GROUP),
        Some(ParticipantState::HasPermission)
    );
    for u in all_members() {
        assert!(
            floor_events(m, &u).iter().any(|e| matches!(
                e,
                ParticipantEvent::FloorTaken {
                    permission_to_request: false,
                    ..
                }
            )),
            "{u}"
        );
    }
    // Every floor packet on the wire is SRTCP: the MCPT name and the
    // message are encrypted (only the RTCP header and SSRC are clear).
    let floor: Vec<&Transmit> = m
        .log
        .iter()
        .filter(|t| t.channel == Channel::Floor)
        .collect();
    assert!(floor.len() >= 14, "{}", floor.len());
    for t in &floor {
        assert_ne!(
            t.octets().get(8..12),
            Some(&b"MCPT"[..]),
            "{} → {}",
            t.from,
            t.to
        );
    }
    // Each member's floor control went only through its MC server, the
    // dispatcher's straight to the controlling server.
    for t in &floor {
        let pair = (t.from.as_str(), t.to.as_str());
        let ok = [
            (DISPATCHER, CTRL),
            (CTRL, DISPATCHER),
            (CTRL, MC_A),
            (MC_A, CTRL),
            (CTRL, MC_B),
            (MC_B, CTRL),
        ]
        .contains(&pair)
            || (members_a()
                .iter()
                .any(|a| a == t.to.as_str() || a == t.from.as_str())
                && (t.from == MC_A || t.to == MC_A))
            || (members_b()
                .iter()
                .any(|b| b == t.to.as_str() || b == t.from.as_str())
                && (t.from == MC_B || t.to == MC_B));
        assert!(ok, "floor packet {} → {}", t.from, t.to);
    }

    // A receiver that asks anyway is denied "receive only", under its CSK.
    let a1 = members_a()[0].clone();
    let t = m.time();
    m.client(&a1).request_floor_anyway(t, TEMP_GROUP).unwrap();
    m.drive();
    assert!(floor_events(m, &a1).iter().any(
        |e| matches!(e, ParticipantEvent::FloorDenied { cause, .. } if *cause == RejectCause::RECEIVE_ONLY)
    ));
    assert_eq!(m.client(&a1).floor_drops().total(), 0);

    // Attacks on a1. The call's floor SSRC, as a forger would learn it.
    let call_ssrc = u32::from_be_bytes(
        m.log
            .iter()
            .rev()
            .find(|t| t.channel == Channel::Floor && t.to == a1)
            .unwrap()
            .octets()[4..8]
            .try_into()
            .unwrap(),
    );
    let forged_idle = Message::new(MessageType::FloorIdle, call_ssrc)
        .with(Field::PermissionToRequest(true))
        .to_bytes()
        .unwrap();
    let events_before = floor_events(m, &a1).len();
    // (1) a plain Floor Idle "from" its MC server (a spoofed source);
    m.inject(Transmit {
        from: MC_A.into(),
        to: a1.clone(),
        channel: Channel::Floor,
        contents: forged_idle.clone(),
        sip: None,
    });
    // (2) the same from a non-member;
    m.inject(Transmit {
        from: ROGUE.into(),
        to: a1.clone(),
        channel: Channel::Floor,
        contents: forged_idle,
        sip: None,
    });
    // (3) a genuine protected packet replayed;
    let genuine = m
        .log
        .iter()
        .rev()
        .find(|t| t.channel == Channel::Floor && t.to == a1 && t.from == MC_A)
        .unwrap()
        .clone();
    m.inject(genuine);
    m.drive();
    // (4) a fresh packet for a1, tampered with on its way.
    let t = m.time();
    m.client(&a1).request_floor_anyway(t, TEMP_GROUP).unwrap();
    let mut deny = None;
    for _ in 0..50 {
        m.drive_for(Duration::from_millis(1));
        deny = m.take_in_flight(|t| t.channel == Channel::Floor && t.to == a1 && t.from == MC_A);
        if deny.is_some() {
            break;
        }
    }
    let mut tampered = deny.expect("a Floor Deny on its way to a1");
    tampered.contents[10] ^= 1;
    m.inject(tampered);
    m.drive();
    let drops = m.client(&a1).floor_drops();
    assert_eq!(drops.unauthenticated, 3, "{drops:?}");
    assert_eq!(drops.replayed, 1, "{drops:?}");
    assert_eq!(
        floor_events(m, &a1).len(),
        events_before,
        "nothing reached floor control"
    );
    assert_eq!(
        m.client(&a1).floor_state(TEMP_GROUP),
        Some(ParticipantState::HasNoPermission)
    );

    // At the servers: a plain Floor Release "from" MC server A to the
    // controlling server (it would end the call), and a plain packet
    // "from" a member to its MC server, both dropped.
    let release = Message::new(MessageType::FloorRelease, call_ssrc)
        .to_bytes()
        .unwrap();
    m.inject(Transmit {
        from: MC_A.into(),
        to: CTRL.into(),
        channel: Channel::Floor,
        contents: release.clone(),
        sip: None,
    });
    m.inject(Transmit {
        from: a1.clone(),
        to: MC_A.into(),
        channel: Channel::Floor,
        contents: release,
        sip: None,
    });
    m.drive();
    assert_eq!(m.ctrl(CTRL).floor_drops().unauthenticated, 1);
    assert_eq!(m.mc(MC_A).floor_drops().unauthenticated, 1);
    assert_eq!(m.ctrl(CTRL).call_count(), 1, "the call goes on");

    // The dispatcher's release (under its CSK) ends the call everywhere.
    let t = m.time();
    m.client(DISPATCHER).release_floor(t, TEMP_GROUP).unwrap();
    m.drive();
    assert_eq!(m.ctrl(CTRL).call_count(), 0);
    for u in all_members() {
        assert!(!m.client(&u).in_call(TEMP_GROUP), "{u}");
    }
}

#[test]
fn a_forged_or_foreign_csk_is_refused_at_registration() {
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        // b1 claims MC server A as its home: not one of A's members.
        c.home_server = Some(if c.uri == members_b()[0] {
            MC_A.to_owned()
        } else {
            home_of(&c.uri).to_owned()
        });
    });
    let m = &mut w.mesh;
    let b1 = members_b()[0].clone();
    let t = m.time();
    m.client(&b1).register(t, &mut TestRng(5)).unwrap();
    // A REGISTER of a1 whose CSK message is cut short.
    let a1 = members_a()[0].clone();
    let t = m.time();
    m.client(&a1).register(t, &mut TestRng(6)).unwrap();
    let mut reg = m
        .take_in_flight(|t| t.from == a1 && t.octets().starts_with(b"REGISTER "))
        .unwrap();
    let mut octets = reg.octets().into_owned();
    let n = octets.len();
    octets[n - 10] ^= 0x40; // inside the SIGN payload
    reg.contents = octets;
    reg.sip = None;
    m.inject(reg);
    m.drive_for(Duration::from_millis(500));
    let failed = |m: &Mesh, u: &str| {
        m.client_events(u).into_iter().find_map(|e| match e {
            ClientEvent::RegistrationFailed { status, reason, .. } => Some((status, reason)),
            _ => None,
        })
    };
    let (status, reason) = failed(m, &b1).unwrap();
    assert_eq!(status, 403, "{reason}");
    let (status, reason) = failed(m, &a1).unwrap();
    assert_eq!(status, 403);
    assert!(reason.contains("CSK rejected"), "{reason}");
    assert!(!m.client(&a1).floor_protected());
}

#[test]
fn a_restarted_home_server_gets_a_fresh_csk_at_the_next_refresh() {
    let mut w = protected_world();
    let m = &mut w.mesh;
    let a1 = members_a()[0].clone();
    // MC server A restarts: its identity and SPK come back from its
    // configuration, the members' CSKs do not.
    let mut fresh = mcx_core::McServer::new(MC_A);
    fresh.add_group(GROUP_A, w.groups[0].1.clone());
    let period = mcx_ibc::uid::key_period_no(UNIX0, 30 * 86_400, 0).unwrap();
    let keys = w.community.issue(MC_A, period, &mut m.rng).unwrap();
    fresh
        .set_identity(w.community.public().clone(), keys)
        .unwrap();
    m.nodes.insert(MC_A.into(), Node::Mc(fresh));
    // a1 refreshes (no CSK in a refresh): refused, so it registers anew
    // with a fresh CSK after its backoff.
    let t = m.time();
    m.client(&a1).register(t, &mut TestRng(77)).unwrap();
    m.drive_for(Duration::from_secs(3));
    let events = m.client_events(&a1);
    assert!(
        events.iter().any(|e| matches!(
            e,
            ClientEvent::RegistrationFailed { status: 403, reason, .. } if reason.contains("no CSK held")
        )),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(ClientEvent::Registered { .. })),
        "{events:?}"
    );
    assert!(m.client(&a1).floor_protected());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}
