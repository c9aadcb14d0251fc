//! Registration with the home server and late entry (issue 10 point 4)
//! on the mesh: a member away when the call starts is reported
//! `not-registered`; when it registers, its MC server invites it into the
//! call with the group's wrapped TGMK, it holds the call's TGMK, gets
//! Floor Taken and the voice route; registrations are checked.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use mcx_core::{ClientEvent, RelayCommand};
use mcx_floor::{ParticipantEvent, ParticipantState};

fn home_of(uri: &str) -> &'static str {
    if members_b().iter().any(|m| m == uri) {
        MC_B
    } else {
        MC_A
    }
}

fn registered_world() -> World {
    registered_world_with(|_| {})
}

/// Everyone registered with its home server (`also` adds to each
/// client's configuration).
fn registered_world_with(also: impl Fn(&mut mcx_core::ClientConfig)) -> World {
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        c.home_server = Some(home_of(&c.uri).to_owned());
        also(c);
    });
    w.mesh.register_everyone(70);
    for u in all_members() {
        assert!(
            w.mesh
                .client_events(&u)
                .iter()
                .any(|e| matches!(e, ClientEvent::Registered { .. })),
            "{u} registered"
        );
    }
    w
}

/// The `away` members go off duty, then the dispatcher calls A and B.
fn start_call_without(m: &mut Mesh, away: &[&str]) {
    for (i, u) in away.iter().enumerate() {
        m.client(u).deregister(&mut TestRng(8 + i as u64)).unwrap();
    }
    m.drive_for(Duration::from_secs(1));
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(20))
        .unwrap();
}

#[test]
fn a_member_that_registers_mid_call_is_invited_in_and_gets_floor_taken() {
    let mut w = registered_world();
    let m = &mut w.mesh;
    let late = members_b()[2].clone();
    // It goes off duty before the call.
    start_call_without(m, &[&late]);
    m.drive_for(Duration::from_secs(2));
    let groups = m
        .client_events(DISPATCHER)
        .into_iter()
        .find_map(|e| match e {
            ClientEvent::CallEstablished { groups, .. } => Some(groups),
            _ => None,
        })
        .unwrap();
    let b = groups
        .iter()
        .find(|g| g.group_id == GROUP_B)
        .unwrap()
        .clone();
    assert_eq!((b.accepted, b.rejected), (2, 1), "{b:?}");
    assert!(!m.client(&late).in_call(TEMP_GROUP));
    // The MC server's report names it not-registered (never invited).
    let report = m
        .log
        .iter()
        .find(|t| t.from == MC_B && t.to == CTRL && t.octets().starts_with(b"SIP/2.0 200"))
        .unwrap();
    assert!(
        String::from_utf8_lossy(&report.octets()).contains(&format!(
            "<member uri=\"{late}\" outcome=\"not-registered\"/>"
        )),
        "{}",
        String::from_utf8_lossy(&report.octets())
    );
    assert_eq!(
        m.log
            .iter()
            .filter(|t| t.to == late && t.octets().starts_with(b"INVITE "))
            .count(),
        0
    );

    // It registers again mid-call: invited in at once.
    let t0 = m.now;
    let t = m.time();
    m.client(&late).register(t, &mut TestRng(10)).unwrap();
    let mut took = None;
    for _ in 0..100 {
        m.drive_for(Duration::from_millis(5));
        let taken = m.client_events(&late).iter().any(|e| {
            matches!(
                e,
                ClientEvent::Floor {
                    event: ParticipantEvent::FloorTaken {
                        permission_to_request: false,
                        ..
                    },
                    ..
                }
            )
        });
        if taken {
            took = Some(m.now - t0);
            break;
        }
    }
    let took = took.expect("the late joiner got Floor Taken");
    assert_eq!(
        m.client(&late).floor_state(TEMP_GROUP),
        Some(ParticipantState::HasNoPermission)
    );
    println!("late entry: REGISTER → in the call with Floor Taken in {took:?} (5 ms per hop)");
    // REGISTER, INVITE, 200, INFO, Floor Taken: five one-way hops of
    // 5 ms here, well inside TS 22.179's 350 ms.
    assert!(took <= Duration::from_millis(60), "{took:?}");
    let key = m.client(DISPATCHER).tgmk_confirmation(TEMP_GROUP).unwrap();
    assert_eq!(m.client(&late).tgmk_confirmation(TEMP_GROUP).unwrap(), key);
    let voice = m.client(&late).voice(TEMP_GROUP).unwrap();
    assert_eq!(
        voice.ssrc,
        m.client(DISPATCHER).voice(TEMP_GROUP).unwrap().ssrc
    );
    // MC server B's relay now covers three members.
    let RelayCommand::Set(route) = m.relays[MC_B].last().unwrap().clone() else {
        panic!("{:?}", m.relays[MC_B]);
    };
    assert_eq!(route.targets.len(), 3);

    // A refresh of a live registration invites nobody again.
    let invites = |m: &Mesh| {
        m.log
            .iter()
            .filter(|t| t.to == late && t.octets().starts_with(b"INVITE "))
            .count()
    };
    let before = invites(m);
    let t = m.time();
    m.client(&late).register(t, &mut TestRng(11)).unwrap();
    m.drive_for(Duration::from_secs(1));
    assert_eq!(invites(m), before);

    // The call ends everywhere, the late joiner included.
    let t = m.time();
    m.client(DISPATCHER)
        .hang_up(t, TEMP_GROUP, &mut TestRng(12))
        .unwrap();
    m.drive_for(Duration::from_secs(2));
    assert!(!m.client(&late).in_call(TEMP_GROUP));
    assert_eq!(m.mc(MC_B).call_count(), 0);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn registrations_are_only_for_members_and_for_themselves() {
    let mut w = world_with(Servers::Two, &[DISPATCHER], |c| {
        // Everyone claims MC server A as home; only A's members may register.
        c.home_server = Some(MC_A.to_owned());
    });
    let m = &mut w.mesh;
    for u in [
        members_a()[0].clone(),
        members_b()[0].clone(),
        OUTSIDER.to_owned(),
    ] {
        let t = m.time();
        m.client(&u).register(t, &mut TestRng(1)).unwrap();
    }
    m.drive_for(Duration::from_secs(1));
    let outcome = |m: &Mesh, u: &str| {
        m.client_events(u).into_iter().find_map(|e| match e {
            ClientEvent::Registered { .. } => Some(200),
            ClientEvent::RegistrationFailed { status, .. } => Some(status),
            _ => None,
        })
    };
    assert_eq!(outcome(m, &members_a()[0]), Some(200));
    assert_eq!(
        outcome(m, &members_b()[0]),
        Some(403),
        "not a member of A's groups"
    );
    assert_eq!(outcome(m, OUTSIDER), Some(403));
    // A refused registration is retried with backoff, bounded.
    let failed = m
        .client_events(OUTSIDER)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::RegistrationFailed { retry_in, .. } => Some(retry_in),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(failed[0], Duration::from_secs(1));
    m.drive_for(Duration::from_secs(200));
    let retries: Vec<Duration> = m
        .client_events(OUTSIDER)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::RegistrationFailed { retry_in, .. } => Some(retry_in),
            _ => None,
        })
        .collect();
    assert!(retries.windows(2).all(|w| w[1] >= w[0]), "{retries:?}");
    assert_eq!(*retries.last().unwrap(), Duration::from_secs(60), "capped");
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn floor_taken_that_overtakes_the_registers_200_is_taken_under_the_new_csk() {
    // The late INVITE and Floor Taken may reach the joiner before the 200
    // to its REGISTER (different transports in a real deployment): they
    // come under the CSK it just uploaded, which it must use at once.
    let mut w = registered_world();
    let m = &mut w.mesh;
    let late = members_b()[2].clone();
    start_call_without(m, &[&late]);
    m.drive_for(Duration::from_secs(2));
    let t = m.time();
    m.client(&late).register(t, &mut TestRng(13)).unwrap();
    // Hold the registrar's 200 back until the joiner is in the call.
    let mut held = None;
    for _ in 0..40 {
        m.drive_for(Duration::from_millis(1));
        if held.is_none() {
            held = m.take_in_flight(|t| {
                t.from == MC_B
                    && t.to == late
                    && t.octets().starts_with(b"SIP/2.0 200")
                    && String::from_utf8_lossy(&t.octets()).contains("REGISTER")
            });
        }
    }
    let held = held.expect("the 200 to the REGISTER");
    m.drive_for(Duration::from_millis(100));
    assert!(
        m.client_events(&late).iter().any(|e| matches!(
            e,
            ClientEvent::Floor {
                event: ParticipantEvent::FloorTaken { .. },
                ..
            }
        )),
        "Floor Taken taken before the 200: {:?}",
        m.client_events(&late)
    );
    assert_eq!(m.client(&late).floor_drops().total(), 0);
    m.inject(held);
    m.drive_for(Duration::from_millis(100));
    assert!(m.client(&late).floor_protected());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

/// A registered world whose members take calls only from their MC server.
fn guarded_world() -> World {
    registered_world_with(|c| {
        if c.uri != DISPATCHER {
            c.call_sources = vec![home_of(&c.uri).to_owned()];
        }
    })
}

fn status_to(m: &Mesh, from: &str, to: &str, after: usize) -> Vec<String> {
    m.log[after..]
        .iter()
        .filter(|t| t.from == from && t.to == to && t.octets().starts_with(b"SIP/2.0 "))
        .map(|t| {
            let s = String::from_utf8_lossy(&t.octets()).into_owned();
            s.lines().next().unwrap_or_default().to_owned()
        })
        .collect()
}

fn is_invite_to(t: &mcx_core::Transmit, from: &str, to: &str) -> bool {
    t.from == from && t.to == to && t.octets().starts_with(b"INVITE ")
}

#[test]
fn late_entry_ten_minutes_into_the_call_past_the_replay_window() {
    // The wrapped copy's T is ten minutes old when the member comes on
    // duty, twice the 5-minute replay window: its signed expiry (the
    // call's life) keeps it acceptable, and the member joins.
    let mut w = guarded_world();
    let m = &mut w.mesh;
    let late = members_b()[2].clone();
    start_call_without(m, &[&late]);
    m.drive_for(Duration::from_secs(600));
    assert!(m.client(DISPATCHER).in_call(TEMP_GROUP), "the call lasts");
    assert!(!m.client(&late).in_call(TEMP_GROUP));
    let t = m.time();
    m.client(&late).register(t, &mut TestRng(10)).unwrap();
    m.drive_for(Duration::from_millis(200));
    assert!(
        m.client(&late).in_call(TEMP_GROUP),
        "{:?}",
        m.client_events(&late)
    );
    let key = m.client(DISPATCHER).tgmk_confirmation(TEMP_GROUP).unwrap();
    assert_eq!(m.client(&late).tgmk_confirmation(TEMP_GROUP).unwrap(), key);
    assert_eq!(
        m.client(&late).floor_state(TEMP_GROUP),
        Some(ParticipantState::HasNoPermission),
        "Floor Taken"
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[test]
fn a_call_request_replayed_into_another_call_is_refused_at_every_hop() {
    let mut w = guarded_world();
    let m = &mut w.mesh;
    let late = members_b()[2].clone();
    let away = members_b()[1].clone();
    start_call_without(m, &[&late, &away]);
    m.drive_for(Duration::from_secs(2));
    let t = m.time();
    m.client(&late).register(t, &mut TestRng(11)).unwrap();
    m.drive_for(Duration::from_secs(1));
    assert!(m.client(&late).in_call(TEMP_GROUP));
    let find = |m: &Mesh, from: &str, to: &str| {
        m.log
            .iter()
            .find(|t| is_invite_to(t, from, to))
            .cloned()
            .unwrap()
    };
    let request = find(m, DISPATCHER, CTRL);
    let leg = find(m, CTRL, MC_B);
    let late_invite = find(m, MC_B, &late);
    let t = m.time();
    m.client(DISPATCHER)
        .hang_up(t, TEMP_GROUP, &mut TestRng(12))
        .unwrap();
    m.drive_for(Duration::from_secs(2));
    assert_eq!(m.mc(MC_B).call_count(), 0);

    // The initiator's request again: refused by the controlling server,
    // no MC server hears of it.
    let mark = m.log.len();
    m.inject(request);
    m.drive_for(Duration::from_secs(1));
    let answers = status_to(m, CTRL, DISPATCHER, mark);
    assert!(
        answers
            .iter()
            .any(|a| a.starts_with("SIP/2.0 488") && a.contains("wrapped TGMK stale, replayed")),
        "{answers:?}"
    );
    assert!(
        !m.log[mark..]
            .iter()
            .any(|t| t.from == CTRL && t.octets().starts_with(b"INVITE "))
    );

    // The controlling server's leg again, to group B's MC server: refused,
    // no member hears of it (not even the one still away).
    let mark = m.log.len();
    m.inject(leg);
    m.drive_for(Duration::from_secs(1));
    let answers = status_to(m, MC_B, CTRL, mark);
    assert!(
        answers.iter().any(|a| a.starts_with("SIP/2.0 488")),
        "{answers:?}"
    );
    assert!(
        !m.log[mark..]
            .iter()
            .any(|t| t.from == MC_B && t.octets().starts_with(b"INVITE "))
    );

    // The late INVITE again: the joiner remembers the copy until the
    // call's expiry, and refuses it.
    let mark = m.log.len();
    m.inject(late_invite.clone());
    m.drive_for(Duration::from_secs(1));
    assert!(!m.client(&late).in_call(TEMP_GROUP));
    let answers = status_to(m, &late, MC_B, mark);
    assert!(
        answers.iter().any(|a| a.starts_with("SIP/2.0 488")),
        "{answers:?}"
    );

    // The same copy sent by anyone but its MC server to the member that
    // never saw it: refused before the copy is looked at.
    let mark = m.log.len();
    m.inject(mcx_core::Transmit {
        from: OUTSIDER.into(),
        to: away.clone(),
        ..late_invite
    });
    m.drive_for(Duration::from_secs(1));
    assert!(!m.client(&away).in_call(TEMP_GROUP));
    let answers = status_to(m, &away, OUTSIDER, mark);
    assert!(
        answers.iter().any(|a| a.starts_with("SIP/2.0 403")),
        "{answers:?}"
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}
