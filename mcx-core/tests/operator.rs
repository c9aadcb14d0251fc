//! What an operator sees and does (`mcx calls`, `mcx calls end ID`):
//! every role lists its call records by Call-ID, and ending one by that
//! ID ends it as the role's shutdown would, for that call only.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use common::*;
use mcx_core::{CallState, ClientEvent, ControllingEvent};

fn established() -> World {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let t = w.mesh.time();
    w.mesh
        .client(DISPATCHER)
        .start_call(t, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(10))
        .unwrap();
    w.mesh.drive();
    w
}

#[test]
fn every_role_lists_its_calls_by_call_id() {
    let mut w = established();
    let at_ctrl = w.mesh.ctrl(CTRL).call_summaries();
    assert_eq!(at_ctrl.len(), 1);
    let call = &at_ctrl[0];
    assert_eq!(call.temporary_group_id, TEMP_GROUP);
    assert_eq!(call.initiator, DISPATCHER);
    assert_eq!(call.state, CallState::Established);
    assert_eq!(call.joined, 2, "both groups joined");
    // The initiator's record has the same Call-ID as the controlling
    // server's (one INVITE); the MC servers' have the legs' own.
    let at_initiator = w.mesh.client(DISPATCHER).call_summaries();
    assert_eq!(at_initiator[0].call_id, call.call_id);
    assert_eq!(at_initiator[0].state, CallState::Established);
    for (mc, group, members) in [(MC_A, GROUP_A, members_a()), (MC_B, GROUP_B, members_b())] {
        let s = w.mesh.mc(mc).call_summaries();
        assert_eq!(s.len(), 1, "{mc}");
        assert_eq!(s[0].group_id.as_deref(), Some(group));
        assert_eq!(s[0].temporary_group_id, TEMP_GROUP);
        assert_eq!(s[0].initiator, DISPATCHER);
        assert_eq!(s[0].joined, members.len(), "{mc}");
        assert_ne!(s[0].call_id, call.call_id);
        let m = w.mesh.client(&members[0]).call_summaries();
        assert_eq!(m[0].group_id.as_deref(), Some(group));
        assert_eq!(m[0].initiator, DISPATCHER);
    }
}

#[test]
fn ending_a_call_at_the_controlling_server_ends_it_everywhere() {
    let mut w = established();
    let id = w.mesh.ctrl(CTRL).call_summaries()[0].call_id.clone();
    let leg_id = w.mesh.mc(MC_A).call_summaries()[0].call_id.clone();
    let (t, mut rng) = (w.mesh.time(), TestRng(11));
    // Unknown IDs, and a leg's Call-ID (not what the list shows), end nothing.
    assert!(
        !w.mesh
            .ctrl(CTRL)
            .end_call_by_id(t, "no-such-call", &mut rng)
            .unwrap()
    );
    assert!(
        !w.mesh
            .ctrl(CTRL)
            .end_call_by_id(t, &leg_id, &mut rng)
            .unwrap()
    );
    assert_eq!(w.mesh.ctrl(CTRL).call_summaries().len(), 1);

    assert!(w.mesh.ctrl(CTRL).end_call_by_id(t, &id, &mut rng).unwrap());
    w.mesh.drive();
    assert!(w.mesh.ctrl(CTRL).call_summaries().is_empty());
    for mc in [MC_A, MC_B] {
        assert!(w.mesh.mc(mc).call_summaries().is_empty(), "{mc}");
    }
    for u in all_members().iter().chain([&DISPATCHER.to_owned()]) {
        assert!(w.mesh.client(u).call_summaries().is_empty(), "{u}");
        assert!(
            w.mesh
                .client_events(u)
                .iter()
                .any(|e| matches!(e, ClientEvent::CallEnded { .. })),
            "{u} was told"
        );
    }
    assert!(w.mesh.ctrl_events(CTRL).iter().any(
        |e| matches!(e, ControllingEvent::CallEnded { reason, .. } if reason.contains("operator"))
    ));
}

#[test]
fn ending_a_group_at_its_mc_server_leaves_the_other_group_in_the_call() {
    let mut w = established();
    let id = w.mesh.mc(MC_A).call_summaries()[0].call_id.clone();
    let (t, mut rng) = (w.mesh.time(), TestRng(12));
    assert!(w.mesh.mc(MC_A).end_call_by_id(t, &id, &mut rng).unwrap());
    w.mesh.drive();
    assert!(w.mesh.mc(MC_A).call_summaries().is_empty());
    for m in members_a() {
        assert!(w.mesh.client(&m).call_summaries().is_empty(), "{m}");
    }
    let at_ctrl = w.mesh.ctrl(CTRL).call_summaries();
    assert_eq!(at_ctrl.len(), 1, "group B is still in the call");
    assert_eq!(w.mesh.mc(MC_B).call_summaries().len(), 1);
    for m in members_b() {
        assert_eq!(w.mesh.client(&m).call_summaries().len(), 1, "{m}");
    }
    assert!(
        w.mesh
            .ctrl_events(CTRL)
            .iter()
            .any(|e| matches!(e, ControllingEvent::GroupLost { .. }))
    );
}

#[test]
fn a_member_ends_its_own_part_only() {
    let mut w = established();
    let member = &members_b()[1];
    let id = w.mesh.client(member).call_summaries()[0].call_id.clone();
    let (t, mut rng) = (w.mesh.time(), TestRng(13));
    assert!(
        w.mesh
            .client(member)
            .end_call_by_id(t, &id, &mut rng)
            .unwrap()
    );
    w.mesh.drive();
    assert!(w.mesh.client(member).call_summaries().is_empty());
    assert_eq!(
        w.mesh.mc(MC_B).call_summaries()[0].joined,
        members_b().len() - 1
    );
    assert_eq!(w.mesh.ctrl(CTRL).call_summaries().len(), 1);
}
