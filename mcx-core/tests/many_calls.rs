//! Many calls per role, bounded waits and call records that always end
//! (issue 9 points 1–3), on the in-memory mesh with virtual time.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use mcx_core::{
    ClientEvent, ControllingEvent, FailureCause, GroupResult, McServer, TemporaryGroup,
};
use mcx_floor::ParticipantState;
use mcx_sip::{Timers, Transport};

fn tg(id: &str, groups: &[(&str, &str)]) -> TemporaryGroup {
    TemporaryGroup {
        id: id.to_owned(),
        constituents: groups
            .iter()
            .map(|(g, s)| ((*g).to_owned(), (*s).to_owned()))
            .collect(),
    }
}

fn both() -> [(&'static str, &'static str); 2] {
    [(GROUP_A, MC_A), (GROUP_B, MC_B)]
}

fn start(m: &mut Mesh, temporary_group: &str, groups: &[&str], seed: u64) {
    let t = m.time();
    let mut rng = TestRng(seed);
    m.client(DISPATCHER)
        .start_call(t, temporary_group, groups, &mut rng)
        .unwrap();
}

fn established(m: &Mesh, uri: &str) -> Vec<(String, Vec<GroupResult>)> {
    m.client_events(uri)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::CallEstablished {
                temporary_group_id,
                groups,
            } => Some((temporary_group_id, groups)),
            _ => None,
        })
        .collect()
}

fn ended_reasons(m: &Mesh) -> Vec<String> {
    m.ctrl_events(CTRL)
        .into_iter()
        .filter_map(|e| match e {
            ControllingEvent::CallEnded { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_hundred_concurrent_calls_on_distinct_temporary_groups_through_one_controlling_server() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    let ids: Vec<String> = (0..100).map(|i| format!("sip:tg-{i}@mcx.test")).collect();
    m.set_ctrl(ctrl_config(ids.iter().map(|id| tg(id, &both())).collect()));
    for (i, id) in ids.iter().enumerate() {
        start(m, id, &[GROUP_A, GROUP_B], i as u64);
    }
    m.drive();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let ok = established(m, DISPATCHER);
    assert_eq!(ok.len(), 100);
    for (_, groups) in &ok {
        assert_eq!(
            groups,
            &vec![
                GroupResult::joined(GROUP_A, 3, 0),
                GroupResult::joined(GROUP_B, 3, 0)
            ]
        );
    }
    assert_eq!(m.ctrl(CTRL).call_count(), 100);
    assert_eq!(m.mc(MC_A).call_count(), 100);
    // Every member is in all 100 calls, each with that call's TGMK.
    for id in &ids {
        let reference = m.client(DISPATCHER).tgmk_confirmation(id).unwrap();
        for u in all_members() {
            assert_eq!(
                m.client(&u).tgmk_confirmation(id).as_ref(),
                Some(&reference)
            );
            assert_eq!(
                m.client(&u).floor_state(id),
                Some(ParticipantState::HasNoPermission)
            );
        }
        assert_eq!(
            m.client(DISPATCHER).floor_state(id),
            Some(ParticipantState::HasPermission),
            "{id}"
        );
    }
    assert_ne!(
        m.client(DISPATCHER).tgmk_confirmation(&ids[0]),
        m.client(DISPATCHER).tgmk_confirmation(&ids[1])
    );

    // A request for a temporary group whose call is in progress: 486 with
    // the reason; the other calls are untouched.
    let again = m
        .log
        .iter()
        .find(|t| {
            t.to == CTRL
                && t.octets()
                    .starts_with(format!("INVITE {}", ids[7]).as_bytes())
        })
        .unwrap()
        .clone();
    m.inject(again);
    m.drive();
    assert!(m.log.iter().any(|t| t.to == DISPATCHER
        && t.octets().starts_with(
            b"SIP/2.0 486 Busy Here - a call of this temporary group is in progress"
        )));
    assert_eq!(m.ctrl(CTRL).call_count(), 100);

    // Each release ends its own call only; then nothing is left anywhere.
    for id in &ids[..50] {
        let t = m.time();
        m.client(DISPATCHER).release_floor(t, id).unwrap();
    }
    m.drive();
    assert_eq!(m.ctrl(CTRL).call_count(), 50);
    assert_eq!(m.client(&members_a()[0]).calls().len(), 50);
    for id in &ids[50..] {
        let t = m.time();
        m.client(DISPATCHER).release_floor(t, id).unwrap();
    }
    m.drive();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.ctrl(CTRL).call_count(), 0);
    assert_eq!(m.mc(MC_A).call_count(), 0);
    assert_eq!(m.mc(MC_B).call_count(), 0);
    for u in all_members().iter().map(String::as_str).chain([DISPATCHER]) {
        assert!(m.client(u).calls().is_empty(), "{u}");
    }
}

#[test]
fn four_calls_at_once_and_members_in_the_calls_of_each_of_their_groups() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    let (t1, t2, t3, t4) = (
        "sip:tg-1@mcx.test",
        "sip:tg-2@mcx.test",
        "sip:tg-3@mcx.test",
        "sip:tg-4@mcx.test",
    );
    m.set_ctrl(ctrl_config(vec![
        tg(t1, &both()),
        tg(t2, &[(GROUP_A, MC_A)]),
        tg(t3, &[(GROUP_B, MC_B)]),
        tg(t4, &both()),
    ]));
    start(m, t1, &[GROUP_A, GROUP_B], 1);
    start(m, t2, &[GROUP_A], 2);
    start(m, t3, &[GROUP_B], 3);
    start(m, t4, &[GROUP_A, GROUP_B], 4);
    m.drive();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(established(m, DISPATCHER).len(), 4);
    let a1 = members_a()[0].clone();
    let b1 = members_b()[0].clone();
    assert_eq!(m.client(&a1).calls(), vec![t1, t2, t4]);
    assert_eq!(m.client(&b1).calls(), vec![t1, t3, t4]);
    for id in [t1, t2, t3, t4] {
        let reference = m.client(DISPATCHER).tgmk_confirmation(id).unwrap();
        for u in [&a1, &b1] {
            if let Some(c) = m.client(u).tgmk_confirmation(id) {
                assert_eq!(c, reference, "{u} in {id}");
            }
        }
    }
    // Ending one call leaves the others running at every member.
    let t = m.time();
    m.client(DISPATCHER).release_floor(t, t2).unwrap();
    m.drive();
    assert_eq!(m.client(&a1).calls(), vec![t1, t4]);
    assert_eq!(m.client(DISPATCHER).calls(), vec![t1, t3, t4]);
    assert_eq!(m.ctrl(CTRL).call_count(), 3);
}

#[test]
fn a_group_of_a_thousand_members_reports_in_the_body() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    let members: Vec<String> = (0..1000)
        .map(|i| format!("sip:member-{i:04}@mcx.test"))
        .collect();
    for u in &members {
        m.nodes
            .insert(u.clone(), Node::Stub(Stub::new(u, StubMode::Accept)));
    }
    let mut big = McServer::new(MC_A);
    let mut list = members;
    list.push(DISPATCHER.into());
    big.add_group(GROUP_A, list);
    m.nodes.insert(MC_A.into(), Node::Mc(big));
    let id = "sip:tg-big@mcx.test";
    m.set_ctrl(ctrl_config(vec![tg(id, &[(GROUP_A, MC_A)])]));
    // Over TCP: the report is some 64 KB.
    m.use_links(Transport::Tcp, Timers::RFC3261);
    start(m, id, &[GROUP_A], 9);
    m.drive();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(
        established(m, DISPATCHER),
        vec![(id.to_owned(), vec![GroupResult::joined(GROUP_A, 1000, 0)])]
    );
    assert_eq!(
        m.ctrl(CTRL).arbitrator(id).unwrap().participants(),
        1002,
        "every member admitted to floor control, and the leg (its MC server \
         as non-controlling function)"
    );
    // No header per member: the report fits the 128-header limit easily.
    let report = m
        .log
        .iter()
        .find(|t| t.to == CTRL && t.octets().starts_with(b"SIP/2.0 200"))
        .unwrap();
    let head = String::from_utf8_lossy(&report.octets()).into_owned();
    let head = head.split("\r\n\r\n").next().unwrap();
    assert!(head.lines().count() < 20, "{head}");
}

#[test]
fn a_ringing_group_is_cancelled_at_the_deadline_and_its_late_2xx_is_acked_and_ended() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    m.nodes
        .insert(MC_B.into(), Node::Stub(Stub::new(MC_B, StubMode::Ringing)));
    start(m, TEMP_GROUP, &[GROUP_A, GROUP_B], 5);
    m.drive_for(Duration::from_secs(4));
    assert!(established(m, DISPATCHER).is_empty(), "waits for B");
    m.drive_for(Duration::from_secs(2));
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    // (No SipLink in this mesh: the 487's ACK is the transaction layer's.)
    assert_eq!(m.stub(MC_B).received, vec!["INVITE", "CANCEL"]);
    let ok = established(m, DISPATCHER);
    assert_eq!(ok.len(), 1);
    let b = &ok[0].1[1];
    assert_eq!(b.group_id, GROUP_B);
    let f = b.failure.as_ref().unwrap();
    assert_eq!(f.cause, FailureCause::Timeout);
    assert!(f.detail.contains("cancelled"), "{}", f.detail);
    assert_eq!(ok[0].1[0], GroupResult::joined(GROUP_A, 3, 0));
    // B answers 200 after all: the controlling server ACKs it and ends it.
    m.stub(MC_B).answer(0, CTRL);
    m.drive();
    assert_eq!(
        m.stub(MC_B).received,
        vec!["INVITE", "CANCEL", "ACK", "BYE"]
    );
    // The call goes on with A; the floor release ends it and the very
    // next call works.
    let t = m.time();
    m.client(DISPATCHER).release_floor(t, TEMP_GROUP).unwrap();
    m.drive();
    assert_eq!(m.ctrl(CTRL).call_count(), 0);
    m.nodes.insert(
        MC_B.into(),
        Node::Mc({
            let mut s = McServer::new(MC_B);
            s.add_group(GROUP_B, w.groups[1].1.clone());
            s
        }),
    );
    start(m, TEMP_GROUP, &[GROUP_A, GROUP_B], 6);
    m.drive();
    let ok = established(m, DISPATCHER);
    assert_eq!(
        ok[1].1,
        vec![
            GroupResult::joined(GROUP_A, 3, 0),
            GroupResult::joined(GROUP_B, 3, 0)
        ]
    );
}

#[test]
fn a_dead_controlling_server_fails_the_call_at_the_initiators_wait_and_the_next_call_works() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    m.nodes
        .insert(CTRL.into(), Node::Stub(Stub::new(CTRL, StubMode::Silent)));
    start(m, TEMP_GROUP, &[GROUP_A, GROUP_B], 7);
    m.drive_for(Duration::from_secs(9));
    assert!(m.client(DISPATCHER).in_call(TEMP_GROUP));
    m.drive_for(Duration::from_secs(2));
    let failed: Vec<_> = m
        .client_events(DISPATCHER)
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::CallFailed { status: 408, .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(!m.client(DISPATCHER).in_call(TEMP_GROUP));
    // The controlling server comes back: the next call succeeds.
    m.set_ctrl(ctrl_config(vec![tg(TEMP_GROUP, &both())]));
    start(m, TEMP_GROUP, &[GROUP_A, GROUP_B], 8);
    m.drive();
    assert_eq!(established(m, DISPATCHER).len(), 1);
}

#[test]
fn an_unacked_2xx_ends_the_call_with_bye_everywhere() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    m.use_links(Transport::Udp, Timers::RFC3261);
    let d = m.net().addr[DISPATCHER];
    let c = m.net().addr[CTRL];
    m.drop_all(move |w| w.from == d && w.to == c && w.starts_with("ACK "));
    start(m, TEMP_GROUP, &[GROUP_A, GROUP_B], 10);
    m.drive_for(Duration::from_secs(40));
    assert!(
        ended_reasons(m).contains(&"the initiator never ACKed the 2xx".to_owned()),
        "{:?}",
        ended_reasons(m)
    );
    assert_eq!(m.ctrl(CTRL).call_count(), 0);
    assert_eq!(m.mc(MC_A).call_count(), 0);
    for u in all_members() {
        assert!(!m.client(&u).in_call(TEMP_GROUP), "{u}");
    }
}

#[test]
fn the_maximum_call_duration_ends_the_call() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    let mut cfg = ctrl_config(vec![tg(TEMP_GROUP, &both())]);
    cfg.max_call_duration = Duration::from_secs(20);
    m.set_ctrl(cfg);
    start(m, TEMP_GROUP, &[GROUP_A, GROUP_B], 11);
    m.drive_for(Duration::from_secs(19));
    assert_eq!(m.ctrl(CTRL).call_count(), 1);
    m.drive_for(Duration::from_secs(5));
    assert_eq!(ended_reasons(m), vec!["maximum call duration reached"]);
    assert_eq!(m.ctrl(CTRL).call_count(), 0);
    for u in all_members().iter().map(String::as_str).chain([DISPATCHER]) {
        assert!(!m.client(u).in_call(TEMP_GROUP), "{u}");
    }
}

#[test]
fn shutdown_ends_every_call_and_a_lost_group_is_reported_in_call() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    let t2 = "sip:tg-2@mcx.test";
    m.set_ctrl(ctrl_config(vec![tg(TEMP_GROUP, &both()), tg(t2, &both())]));
    start(m, TEMP_GROUP, &[GROUP_A, GROUP_B], 12);
    start(m, t2, &[GROUP_A, GROUP_B], 13);
    m.drive();
    assert_eq!(established(m, DISPATCHER).len(), 2);

    // MC server A stops: both calls lose group A, in-call, and go on.
    let t = m.time();
    let mut rng = TestRng(14);
    m.mc(MC_A).shutdown(t, &mut rng).unwrap();
    m.drive();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let lost: Vec<_> = m
        .client_events(DISPATCHER)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::GroupLost {
                temporary_group_id,
                result,
            } => Some((
                temporary_group_id,
                result.group_id,
                result.failure.unwrap().cause,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        lost,
        vec![
            (
                TEMP_GROUP.to_owned(),
                GROUP_A.to_owned(),
                FailureCause::Lost
            ),
            (t2.to_owned(), GROUP_A.to_owned(), FailureCause::Lost)
        ]
    );
    assert!(!m.client(&members_a()[0]).in_call(TEMP_GROUP));
    assert!(m.client(&members_b()[0]).in_call(TEMP_GROUP));
    assert_eq!(m.ctrl(CTRL).call_count(), 2);

    // The controlling server stops: every call ends everywhere.
    let t = m.time();
    m.ctrl(CTRL).shutdown(t, &mut rng).unwrap();
    m.drive();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.ctrl(CTRL).call_count(), 0);
    assert_eq!(m.mc(MC_B).call_count(), 0);
    for u in all_members().iter().map(String::as_str).chain([DISPATCHER]) {
        assert!(m.client(u).calls().is_empty(), "{u}");
    }
}

#[test]
fn an_mc_server_takes_call_requests_only_from_its_controlling_server() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let m = &mut w.mesh;
    m.mc(MC_A).trust_controlling_server(CTRL);
    start(m, TEMP_GROUP, &[GROUP_A, GROUP_B], 15);
    m.drive();
    assert_eq!(established(m, DISPATCHER).len(), 1, "the trusted one works");
    // The same request from anyone else: 403, no fan-out, no record.
    let mut forged = m
        .log
        .iter()
        .find(|t| t.to == MC_A && t.octets().starts_with(b"INVITE "))
        .unwrap()
        .clone();
    forged.from = ROGUE.into();
    let before = m.log.len();
    m.inject(forged);
    m.drive();
    let after: Vec<_> = m.log[before..].iter().collect();
    assert!(after.iter().any(|t| {
        t.to == ROGUE
            && t.octets()
                .starts_with(b"SIP/2.0 403 Forbidden - not a controlling server of this MC server")
    }));
    assert!(
        !after
            .iter()
            .any(|t| t.from == MC_A && t.octets().starts_with(b"INVITE "))
    );
    assert_eq!(m.mc(MC_A).call_count(), 1, "only the real call");
}
