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
    protected_world_with(|_| {})
}

/// [`protected_world`] with `tune` applied to every client's configuration.
fn protected_world_with(tune: impl Fn(&mut mcx_core::ClientConfig)) -> World {
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        c.home_server = Some(home_of(&c.uri).to_owned());
        tune(c);
    });
    let m = &mut w.mesh;
    // The SPK (TS 24.380 13.1), configured at the controlling server and
    // both MC servers.
    let spk = mcx_mikey::Spk::from_bytes(&[0x5a; 16]).unwrap();
    // Purpose tag 3 (SPK) in the top 4 bits (TS 33.180 5.2.2).
    let spk_id = KeyId(0x3123_4567);
    assert_eq!(spk_id.purpose(), Purpose::Spk);
    let keys = mcx_mikey::csk::SpkFloorKeys::new(spk, spk_id, vec![7u8; 16]).unwrap();
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
        encoded: None,
    });
    // (2) the same from a non-member;
    m.inject(Transmit {
        from: ROGUE.into(),
        to: a1.clone(),
        channel: Channel::Floor,
        contents: forged_idle,
        sip: None,
        encoded: None,
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
        encoded: None,
    });
    m.inject(Transmit {
        from: a1.clone(),
        to: MC_A.into(),
        channel: Channel::Floor,
        contents: release,
        sip: None,
        encoded: None,
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
    reg.set_octets(octets);
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

/// The SPK the protected world configures (see [`protected_world`]).
fn world_spk() -> (mcx_mikey::Spk, KeyId, Vec<u8>) {
    (
        mcx_mikey::Spk::from_bytes(&[0x5a; 16]).unwrap(),
        KeyId(0x3123_4567),
        vec![7u8; 16],
    )
}

/// Starts a call from the dispatcher and hands the INVITEs of `forced`
/// members to them with the same RNG state, so that they all draw the
/// same floor SSRC (the same in every call); the others get theirs as
/// usual.
fn call_with_forced_ssrcs(m: &mut Mesh, forced: &[String], seed: u64) {
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(seed))
        .unwrap();
    let mut pending: Vec<String> = forced.to_vec();
    for _ in 0..500 {
        if pending.is_empty() {
            break;
        }
        m.drive_for(Duration::from_millis(1));
        pending.retain(|u| {
            let Some(invite) = m.take_in_flight(|t| {
                t.to == *u && t.channel == Channel::Sip && t.octets().starts_with(b"INVITE ")
            }) else {
                return true;
            };
            let t = m.time();
            m.client(u)
                .handle(
                    t,
                    &invite.from,
                    Channel::Sip,
                    &invite.octets(),
                    &mut TestRng(0xf00d),
                )
                .unwrap();
            false
        });
    }
    assert!(pending.is_empty(), "INVITEs not seen: {pending:?}");
    m.drive();
}

/// Every protected floor packet between the servers, attributed to the
/// key that authenticates it: returns (key, SSRC, SRTCP index) per
/// packet. Candidates: the plain SPK keys and the keys of every leg (the
/// Call-IDs of the controlling server's INVITEs) in both directions.
fn inter_server_floor_uses(m: &Mesh) -> Vec<(usize, u32, u32)> {
    let (spk, spk_id, rand) = world_spk();
    let mut keys = vec![mcx_mikey::csk::spk_srtcp_keys(&spk, spk_id, &rand).unwrap()];
    let servers = [CTRL, MC_A, MC_B];
    for t in &m.log {
        if t.from != CTRL || (t.to != MC_A && t.to != MC_B) || !t.octets().starts_with(b"INVITE ") {
            continue;
        }
        if let Ok(mcx_sip::Message::Request(r)) = mcx_sip::Message::parse(&t.octets()) {
            let cid = r.call_id().unwrap();
            for d in [
                mcx_mikey::csk::FloorDirection::Down,
                mcx_mikey::csk::FloorDirection::Up,
            ] {
                let k = mcx_mikey::csk::spk_leg_srtcp_keys(&spk, spk_id, &rand, cid, d).unwrap();
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
    }
    let mut uses = Vec::new();
    for t in m.log.iter().filter(|t| {
        t.channel == Channel::Floor
            && servers.contains(&t.from.as_str())
            && servers.contains(&t.to.as_str())
    }) {
        let p = &t.contents;
        let ssrc = u32::from_be_bytes(p[4..8].try_into().unwrap());
        // E flag and index, then the 4-octet MKI (RFC 7714 17).
        let e_index = u32::from_be_bytes(p[p.len() - 8..p.len() - 4].try_into().unwrap());
        let key = keys.iter().position(|k| {
            let mut s = mcx_srtp::Session::new(mcx_srtp::Config::ts33180(4)).unwrap();
            s.add_key(
                mcx_srtp::Mki::new(k.mki()).unwrap(),
                mcx_srtp::MasterKey::new(*k.master_key(), *k.master_salt()),
            )
            .unwrap();
            s.unprotect_rtcp(&mut p.clone()).is_ok()
        });
        let key = key.unwrap_or_else(|| panic!("{} → {}: no key authenticates it", t.from, t.to));
        uses.push((key, ssrc, e_index & 0x7fff_ffff));
    }
    uses
}

#[test]
fn no_key_nonce_pair_is_used_twice_between_servers_across_directions_servers_and_calls() {
    let mut w = protected_world();
    let m = &mut w.mesh;
    // a1 and a2 (one leg) and b1 (the other MC server) draw the same
    // floor SSRC, in every call.
    let forced = [
        members_a()[0].clone(),
        members_a()[1].clone(),
        members_b()[0].clone(),
    ];
    for call in 0..3u64 {
        call_with_forced_ssrcs(m, &forced, 40 + call);
        assert_eq!(m.ctrl(CTRL).call_count(), 1, "call {call}");
        // Floor traffic both ways for the forced members: each asks
        // (denied, receive only) and acknowledges.
        for u in &forced {
            let t = m.time();
            m.client(u).request_floor_anyway(t, TEMP_GROUP).unwrap();
            m.drive();
            let denied = floor_events(m, u)
                .iter()
                .filter(|e| matches!(e, ParticipantEvent::FloorDenied { .. }))
                .count();
            assert_eq!(denied as u64, call + 1, "{u} in call {call}");
        }
        let t = m.time();
        m.client(DISPATCHER).release_floor(t, TEMP_GROUP).unwrap();
        m.drive_for(Duration::from_secs(2));
        assert_eq!(m.ctrl(CTRL).call_count(), 0, "call {call} ended");
    }
    let uses = inter_server_floor_uses(m);
    assert!(uses.len() > 40, "{}", uses.len());
    let mut seen = std::collections::HashSet::new();
    for u in &uses {
        assert!(
            seen.insert(*u),
            "(key {}, SSRC {:#x}, index {}) used twice",
            u.0,
            u.1,
            u.2
        );
    }
    // The forced SSRC did meet itself: at index 0 under the keys of both
    // directions of both MC servers' legs, in each of the three calls.
    let mut keys_per_nonce = std::collections::HashMap::<_, Vec<usize>>::new();
    for &(k, ssrc, index) in &uses {
        keys_per_nonce.entry((ssrc, index)).or_default().push(k);
    }
    let most = keys_per_nonce.values().map(Vec::len).max().unwrap();
    assert!(most >= 12, "{most}");
    assert!(
        uses.iter().all(|u| u.0 != 0),
        "a packet under the plain SPK keys"
    );
    // The leg-wide packets (TS 24.380 6.5: Floor Taken and Floor Idle down
    // once per leg, the MC server's Floor Acks up) are among them, under
    // each call's floor SSRC — the one the MC servers' packets to their
    // members carry — in both directions of every leg.
    let call_ssrcs: std::collections::HashSet<u32> = m
        .log
        .iter()
        .filter(|t| t.channel == Channel::Floor && (t.from == MC_A || t.from == MC_B))
        .filter(|t| all_members().contains(&t.to))
        .map(|t| u32::from_be_bytes(t.octets()[4..8].try_into().unwrap()))
        .collect();
    assert_eq!(
        call_ssrcs.len(),
        3,
        "one floor SSRC per call: {call_ssrcs:x?}"
    );
    let leg_wide: Vec<_> = uses.iter().filter(|u| call_ssrcs.contains(&u.1)).collect();
    let legs: std::collections::HashSet<usize> = leg_wide.iter().map(|u| u.0).collect();
    // Taken and Idle down, their two acks up, on 2 legs × 3 calls.
    assert!(leg_wide.len() >= 24, "{leg_wide:?}");
    assert_eq!(
        legs.len(),
        12,
        "both directions of all six legs: {leg_wide:?}"
    );
    // Nothing was dropped on the way.
    assert_eq!(m.ctrl(CTRL).floor_drops().total(), 0);
    assert_eq!(m.mc(MC_A).floor_drops().total(), 0);
    assert_eq!(m.mc(MC_B).floor_drops().total(), 0);
    for u in all_members() {
        assert_eq!(m.client(&u).floor_drops().total(), 0, "{u}");
    }
}

#[test]
fn three_hundred_calls_in_a_row_keep_floor_working_and_leave_no_inter_server_state() {
    let mut w = protected_world();
    let m = &mut w.mesh;
    let a1 = members_a()[0].clone();
    let b1 = members_b()[0].clone();
    let state = |m: &mut Mesh| {
        [
            m.ctrl(CTRL).inter_server_floor_state(),
            m.mc(MC_A).inter_server_floor_state(),
            m.mc(MC_B).inter_server_floor_state(),
        ]
    };
    for call in 0..300u64 {
        let t = m.time();
        m.client(DISPATCHER)
            .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(call))
            .unwrap();
        m.drive();
        // Floor goes both ways through both MC servers in every call.
        for u in [&a1, &b1] {
            let t = m.time();
            m.client(u).request_floor_anyway(t, TEMP_GROUP).unwrap();
        }
        m.drive();
        for u in [&a1, &b1] {
            let denied = floor_events(m, u)
                .iter()
                .filter(|e| matches!(e, ParticipantEvent::FloorDenied { .. }))
                .count();
            assert_eq!(denied as u64, call + 1, "{u} in call {call}");
        }
        let during = state(m);
        assert!(during.iter().all(|&n| n > 0), "call {call}: {during:?}");
        let t = m.time();
        m.client(DISPATCHER).release_floor(t, TEMP_GROUP).unwrap();
        m.drive_for(Duration::from_secs(1));
        assert_eq!(m.ctrl(CTRL).call_count(), 0, "call {call} ended");
        assert_eq!(state(m), [0, 0, 0], "after call {call}");
    }
    assert_eq!(m.ctrl(CTRL).floor_drops().total(), 0);
    assert_eq!(m.mc(MC_A).floor_drops().total(), 0);
    assert_eq!(m.mc(MC_B).floor_drops().total(), 0);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn inter_server_replays_and_packets_of_an_earlier_call_are_dropped_and_counted() {
    let mut w = protected_world();
    let m = &mut w.mesh;
    let a1 = members_a()[0].clone();
    let last = |m: &Mesh, from: &str, to: &str| {
        m.log
            .iter()
            .rev()
            .find(|t| t.channel == Channel::Floor && t.from == from && t.to == to)
            .unwrap()
            .clone()
    };
    let ask = |m: &mut Mesh| {
        let t = m.time();
        m.client(&a1).request_floor_anyway(t, TEMP_GROUP).unwrap();
        m.drive();
    };
    // a1 has the same floor SSRC in both calls.
    call_with_forced_ssrcs(m, std::slice::from_ref(&a1), 1);
    ask(m);
    let (up, down) = (last(m, MC_A, CTRL), last(m, CTRL, MC_A));
    // Replayed within the call: dropped as replays.
    m.inject(up.clone());
    m.inject(down.clone());
    m.drive();
    assert_eq!(m.ctrl(CTRL).floor_drops().replayed, 1);
    assert_eq!(m.mc(MC_A).floor_drops().replayed, 1);
    let t = m.time();
    m.client(DISPATCHER).release_floor(t, TEMP_GROUP).unwrap();
    m.drive_for(Duration::from_secs(11));
    assert_eq!(m.ctrl(CTRL).call_count(), 0);
    // The next call: the same SSRC, but this leg's keys are new, so the
    // earlier call's packets do not authenticate (an index the new
    // stream has passed is refused as a replay before authentication,
    // RFC 3711 3.3 step 2: either way, dropped and counted).
    call_with_forced_ssrcs(m, std::slice::from_ref(&a1), 2);
    ask(m);
    m.inject(up);
    m.inject(down);
    m.drive();
    assert_eq!(m.ctrl(CTRL).floor_drops().total(), 2);
    assert_eq!(m.mc(MC_A).floor_drops().total(), 2);
    // A packet of MC server B's leg presented as MC server A's.
    let mut b_up = last(m, MC_B, CTRL);
    b_up.from = MC_A.into();
    m.inject(b_up);
    m.drive();
    assert_eq!(m.ctrl(CTRL).floor_drops().total(), 3);
    assert_eq!(m.ctrl(CTRL).stray_floor_packets(), 0);
    assert_eq!(m.ctrl(CTRL).call_count(), 1, "the call goes on");
    // Floor still works after all this.
    ask(m);
    let denied = floor_events(m, &a1)
        .iter()
        .filter(|e| matches!(e, ParticipantEvent::FloorDenied { .. }))
        .count();
    assert_eq!(denied, 3);
}

/// One call in which `member` asks for the floor (denied: the dispatcher
/// holds it), then ended by the dispatcher: `member`'s Floor Denied count
/// after it.
fn call_with_a_denied_request(m: &mut Mesh, member: &str, seed: u64) -> usize {
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(seed))
        .unwrap();
    m.drive();
    let t = m.time();
    m.client(member)
        .request_floor_anyway(t, TEMP_GROUP)
        .unwrap();
    m.drive();
    let t = m.time();
    m.client(DISPATCHER).release_floor(t, TEMP_GROUP).unwrap();
    m.drive_for(Duration::from_secs(1));
    assert_eq!(m.ctrl(CTRL).call_count(), 0, "call {seed} ended");
    floor_events(m, member)
        .iter()
        .filter(|e| matches!(e, ParticipantEvent::FloorDenied { .. }))
        .count()
}

/// A client's floor channel with its home server tracks one more SSRC each
/// way per call. A refresh keeps its CSK until the channel holds
/// `floor_rekey_streams`; then the refresh uploads a fresh one, the channel
/// starts empty, and floor control goes on under the new key with nothing
/// dropped at either end.
#[test]
fn a_worn_floor_channel_is_rekeyed_at_the_next_refresh() {
    let mut w = protected_world_with(|c| c.floor_rekey_streams = 3);
    let m = &mut w.mesh;
    let a1 = members_a()[0].clone();
    let refresh = |m: &mut Mesh, n: u64| {
        let registered = |m: &Mesh| {
            m.client_events(&a1)
                .iter()
                .filter(|e| matches!(e, ClientEvent::Registered { .. }))
                .count()
        };
        let before = registered(m);
        let t = m.time();
        m.client(&a1).register(t, &mut TestRng(500 + n)).unwrap();
        m.drive_for(Duration::from_secs(1));
        assert_eq!(registered(m), before + 1, "refresh {n} answered");
    };
    call_with_a_denied_request(m, &a1, 100);
    let one_call = m.client(&a1).floor_streams();
    assert!(one_call >= 1, "the call's SSRCs are tracked");
    refresh(m, 0);
    assert_eq!(
        m.client(&a1).floor_streams(),
        one_call,
        "a refresh of a channel that is not worn keeps its CSK"
    );
    call_with_a_denied_request(m, &a1, 101);
    call_with_a_denied_request(m, &a1, 102);
    assert!(m.client(&a1).floor_streams() >= 3, "worn after three calls");
    refresh(m, 1);
    assert_eq!(
        m.client(&a1).floor_streams(),
        0,
        "a fresh CSK: a fresh channel"
    );
    assert_eq!(
        call_with_a_denied_request(m, &a1, 103),
        4,
        "floor control in every call, the last under the new key"
    );
    assert_eq!(m.client(&a1).floor_streams(), one_call);
    assert_eq!(m.client(&a1).floor_drops().total(), 0);
    assert_eq!(m.mc(MC_A).floor_drops().total(), 0);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

/// A client that never rekeys (another vendor's, say): once its floor
/// channel at the home server holds the server's `floor_rekey_streams`, a
/// refresh without a CSK is refused; the client registers anew with a
/// fresh CSK after its back-off, and floor control goes on under it.
#[test]
fn a_refresh_of_a_worn_floor_channel_without_a_fresh_csk_is_refused() {
    let mut w = protected_world_with(|c| c.floor_rekey_streams = usize::MAX);
    let m = &mut w.mesh;
    m.mc(MC_A).set_limits(mcx_core::McServerLimits {
        floor_rekey_streams: 3,
        ..mcx_core::McServerLimits::default()
    });
    let a1 = members_a()[0].clone();
    let mut denied = 0;
    for n in 0..4u64 {
        if n == 3 {
            let t = m.time();
            m.client(&a1).register(t, &mut TestRng(700)).unwrap();
            m.drive_for(Duration::from_secs(1));
            let refused = m.client_events(&a1).into_iter().any(|e| {
                matches!(e, ClientEvent::RegistrationFailed { status: 403, reason, .. }
                    if reason.contains("floor key worn out"))
            });
            assert!(refused, "{:?}", m.client_events(&a1));
            // Its retry (after the back-off) is a new binding: a fresh CSK.
            m.drive_for(Duration::from_secs(5));
            assert!(m.client(&a1).floor_protected());
            assert_eq!(m.client(&a1).floor_streams(), 0, "a fresh channel");
        }
        denied += 1;
        let got = call_with_a_denied_request(m, &a1, 200 + n);
        assert_eq!(got, denied, "floor control in call {n}");
    }
    assert_eq!(m.client(&a1).floor_drops().total(), 0);
    assert_eq!(m.mc(MC_A).floor_drops().total(), 0);
}
