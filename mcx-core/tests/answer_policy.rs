//! An MC server's answer policy (issue 12 point 3): after its members
//! (`P-Answer-State: Confirmed`, the default) or at once (`Unconfirmed`,
//! RFC 4964 6, the participating function answering for its members
//! before they confirm, TS 24.379). With Unconfirmed the controlling
//! server has its 200 before any member answered, a member answering
//! after the call is up still gets in (Floor Taken, counted for the
//! initiator), and a group none of whose members joins is ended by the
//! deadline. Also: Resource-Priority passes through both servers.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use mcx_core::{AnswerPolicy, ClientEvent, McServerLimits, Transmit};
use mcx_floor::ParticipantEvent;

fn text(t: &Transmit) -> String {
    String::from_utf8_lossy(&t.octets()).into_owned()
}

fn is_200(t: &Transmit) -> bool {
    t.octets().starts_with(b"SIP/2.0 200")
}

/// Position in the log of the first 200 OK to INVITE from `from` to `to`.
fn first_invite_200(m: &Mesh, from: &str, to: &str) -> Option<usize> {
    m.log
        .iter()
        .position(|t| t.from == from && t.to == to && is_200(t) && text(t).contains(" INVITE\r\n"))
}

fn world_answering(policy: AnswerPolicy) -> World {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    for s in [MC_A, MC_B] {
        w.mesh.mc(s).set_limits(McServerLimits {
            answer: policy,
            ..McServerLimits::default()
        });
    }
    w
}

fn start(m: &mut Mesh) {
    let t = m.time();
    m.client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(20))
        .unwrap();
}

fn established_groups(m: &Mesh) -> Vec<mcx_core::GroupResult> {
    m.client_events(DISPATCHER)
        .into_iter()
        .find_map(|e| match e {
            ClientEvent::CallEstablished { groups, .. } => Some(groups),
            _ => None,
        })
        .expect("the call was established")
}

fn floor_taken(m: &Mesh, uri: &str) -> bool {
    m.client_events(uri).iter().any(|e| {
        matches!(
            e,
            ClientEvent::Floor {
                event: ParticipantEvent::FloorTaken { .. },
                ..
            }
        )
    })
}

#[test]
fn confirmed_answers_after_every_member_with_p_answer_state_confirmed() {
    let mut w = world_answering(AnswerPolicy::Confirmed);
    let m = &mut w.mesh;
    start(m);
    m.drive_for(Duration::from_secs(2));
    let a = established_groups(m)
        .into_iter()
        .find(|g| g.group_id == GROUP_A)
        .unwrap();
    let invited: Vec<String> = members_a()
        .into_iter()
        .filter(|u| u != DISPATCHER)
        .collect();
    assert_eq!(a.accepted as usize, invited.len(), "{a:?}");
    let report = first_invite_200(m, MC_A, CTRL).unwrap();
    for u in &invited {
        let answer = first_invite_200(m, u, MC_A).unwrap();
        assert!(answer < report, "{u} answered after the MC server's report");
    }
    let report = text(&m.log[report]);
    assert!(report.contains("P-Answer-State: Confirmed\r\n"), "{report}");
    assert!(!report.contains("pending"), "{report}");
}

#[test]
fn unconfirmed_answers_before_any_member_and_a_later_member_still_gets_in() {
    let mut w = world_answering(AnswerPolicy::Unconfirmed);
    let m = &mut w.mesh;
    let late = members_a().into_iter().find(|u| u != DISPATCHER).unwrap();
    start(m);
    // Hold `late`'s 200 OK on the wire until the call is up.
    let mut held = None;
    for _ in 0..200 {
        m.drive_for(Duration::from_millis(1));
        held = m.take_in_flight(|t| t.from == late && t.to == MC_A && is_200(t));
        if held.is_some() {
            break;
        }
    }
    let held = held.expect("the member answered");
    m.drive_for(Duration::from_secs(2));

    // The controlling server had each MC server's 200 before any member
    // of that server's group answered.
    for (mc, members) in [(MC_A, members_a()), (MC_B, members_b())] {
        let report = first_invite_200(m, mc, CTRL).unwrap();
        for u in members.iter().filter(|u| *u != DISPATCHER) {
            if let Some(answer) = first_invite_200(m, u, mc) {
                assert!(report < answer, "{u} answered {mc} before its report");
            }
        }
        let body = text(&m.log[report]);
        assert!(body.contains("P-Answer-State: Unconfirmed\r\n"), "{body}");
        assert!(body.contains("outcome=\"pending\""), "{body}");
    }
    // The call is up with the others; `late` is not in it yet.
    let before = established_groups(m)
        .into_iter()
        .find(|g| g.group_id == GROUP_A)
        .unwrap();
    assert!(before.failure.is_none(), "{before:?}");
    assert!(!floor_taken(m, &late));
    for u in members_b().iter().filter(|u| *u != DISPATCHER) {
        assert!(floor_taken(m, u), "{u} got Floor Taken");
    }

    // Now its answer arrives: it joins, and the initiator is told.
    m.inject(held);
    m.drive_for(Duration::from_secs(1));
    assert!(floor_taken(m, &late), "the member that answered late is in");
    let invited = members_a().iter().filter(|u| *u != DISPATCHER).count() as u32;
    let updates: Vec<mcx_core::GroupResult> = m
        .client_events(DISPATCHER)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::GroupUpdated { result, .. } if result.group_id == GROUP_A => Some(result),
            _ => None,
        })
        .collect();
    let last = updates.last().expect("the initiator was told in-call");
    assert_eq!((last.accepted, last.rejected), (invited, 0), "{updates:?}");
    assert!(last.accepted > before.accepted);
    // The MC server told the controlling server in-call, after its ACK.
    let info = m
        .log
        .iter()
        .position(|t| {
            t.from == MC_A
                && t.to == CTRL
                && text(t).starts_with("INFO ")
                && text(t).contains(&format!("<member uri=\"{late}\""))
        })
        .unwrap();
    let ack = m
        .log
        .iter()
        .position(|t| t.from == CTRL && t.to == MC_A && text(t).starts_with("ACK "))
        .unwrap();
    assert!(ack < info);
}

#[test]
fn unconfirmed_group_whose_members_never_answer_is_ended_at_the_deadline() {
    let mut w = world_answering(AnswerPolicy::Unconfirmed);
    let m = &mut w.mesh;
    start(m);
    // Group B's members answer nothing at all.
    let b: Vec<String> = members_b()
        .into_iter()
        .filter(|u| u != DISPATCHER)
        .collect();
    for _ in 0..200 {
        m.drive_for(Duration::from_millis(1));
        while m
            .take_in_flight(|t| b.contains(&t.from) && t.to == MC_B)
            .is_some()
        {}
    }
    m.drive_for(Duration::from_millis(500));
    assert!(established_groups(m).iter().all(|g| g.failure.is_none()));
    // The member deadline (4 s): B's leg ends, the initiator hears so.
    for _ in 0..100 {
        m.drive_for(Duration::from_millis(50));
        while m
            .take_in_flight(|t| b.contains(&t.from) && t.to == MC_B)
            .is_some()
        {}
    }
    let lost = m
        .client_events(DISPATCHER)
        .into_iter()
        .find_map(|e| match e {
            ClientEvent::GroupLost { result, .. } => Some(result),
            _ => None,
        });
    let lost = lost.expect("group B reported lost");
    assert_eq!(lost.group_id, GROUP_B);
    let info = m
        .log
        .iter()
        .find(|t| t.from == MC_B && t.to == CTRL && text(t).starts_with("INFO "))
        .map(text)
        .expect("the outcomes went first");
    assert!(info.contains("outcome=\"unreachable\""), "{info}");
    assert!(
        m.log
            .iter()
            .any(|t| t.from == MC_B && t.to == CTRL && text(t).starts_with("BYE "))
    );
    // Group A's call goes on.
    assert!(m.client(DISPATCHER).in_call(TEMP_GROUP));
}

#[test]
fn resource_priority_passes_through_both_servers() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    start(m);
    let mut invite = m
        .take_in_flight(|t| t.from == DISPATCHER && t.octets().starts_with(b"INVITE "))
        .unwrap();
    // After the request line (the body is binary MIKEY: bytes, not text).
    let eol = invite
        .octets()
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap()
        + 2;
    // RFC 4412 namespace of TS 24.379 (mcpttp), as an emergency call
    // from another implementation would carry it.
    let mut octets = invite.octets().into_owned();
    octets.splice(eol..eol, b"Resource-Priority: mcpttp.4\r\n".iter().copied());
    invite.set_octets(octets);
    m.inject(invite);
    m.drive_for(Duration::from_secs(2));
    assert_eq!(established_groups(m).len(), 2);
    let invites: Vec<String> = m
        .log
        .iter()
        .filter(|t| t.from != DISPATCHER && t.octets().starts_with(b"INVITE "))
        .map(text)
        .collect();
    // Two legs and every member (the dispatcher, the caller, is not called).
    assert_eq!(invites.len(), 2 + all_members().len());
    for i in &invites {
        let head = i.split("\r\n\r\n").next().unwrap();
        assert!(
            head.contains("\r\nResource-Priority: mcpttp.4\r\n"),
            "{head}"
        );
    }
}
