//! Temporary groups formed on demand (group regroup, TS 23.280 10.2.4):
//! the controlling server takes a group the GMS formed, handles its call
//! like a configured one's, refuses calls once it is removed, lets a call
//! in progress finish before removing its group, and drops the group when
//! its call ends or its lifetime is over.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use common::*;
use mcx_core::{CallState, ControllingEvent, Removal, TemporaryGroup, TemporaryGroupError};

const FORMED: &str = "sip:regroup-5f3a@mcx.test";

fn formed() -> TemporaryGroup {
    TemporaryGroup {
        id: FORMED.into(),
        constituents: vec![(GROUP_A.into(), MC_A.into()), (GROUP_B.into(), MC_B.into())],
    }
}

/// A world whose controlling server took [`FORMED`], valid for 10 minutes.
fn with_formed_group() -> World {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let t = w.mesh.time();
    w.mesh
        .ctrl(CTRL)
        .add_temporary_group(formed(), Some(t.unix + 600), t)
        .unwrap();
    w
}

fn call(w: &mut World, seed: u64) {
    let t = w.mesh.time();
    w.mesh
        .client(DISPATCHER)
        .start_call(t, FORMED, &[GROUP_A, GROUP_B], &mut TestRng(seed))
        .unwrap();
    w.mesh.drive();
}

fn hang_up(w: &mut World) {
    let t = w.mesh.time();
    w.mesh
        .client(DISPATCHER)
        .hang_up(t, FORMED, &mut TestRng(99))
        .unwrap();
    w.mesh.drive();
}

fn rejections(w: &World) -> Vec<(u16, String)> {
    w.mesh
        .ctrl_events(CTRL)
        .into_iter()
        .filter_map(|e| match e {
            ControllingEvent::CallRejected { status, reason, .. } => Some((status, reason)),
            _ => None,
        })
        .collect()
}

fn dissolved(w: &World) -> Vec<String> {
    w.mesh
        .ctrl_events(CTRL)
        .into_iter()
        .filter_map(|e| match e {
            ControllingEvent::TemporaryGroupDissolved {
                temporary_group_id,
                reason,
            } => {
                assert_eq!(temporary_group_id, FORMED);
                Some(reason)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_to_an_added_group_reaches_every_constituent_group() {
    let mut w = with_formed_group();
    assert_eq!(w.mesh.ctrl(CTRL).on_demand_groups(), vec![FORMED]);
    call(&mut w, 1);
    let calls = w.mesh.ctrl(CTRL).call_summaries();
    assert_eq!(calls.len(), 1, "{:?}", rejections(&w));
    assert_eq!(calls[0].temporary_group_id, FORMED);
    assert_eq!(calls[0].state, CallState::Established);
    assert_eq!(calls[0].joined, 2, "both constituent groups joined");
    for m in all_members() {
        let s = w.mesh.client(&m).call_summaries();
        assert_eq!(s.len(), 1, "{m} is in the call");
        assert_eq!(s[0].temporary_group_id, FORMED);
    }
    assert!(w.mesh.client(ROGUE).call_summaries().is_empty());

    // The group served its call: when the call ends it is gone, and a
    // second call to it is refused as to an unknown group.
    hang_up(&mut w);
    assert_eq!(dissolved(&w), vec!["its call ended".to_owned()]);
    assert!(w.mesh.ctrl(CTRL).on_demand_groups().is_empty());
    call(&mut w, 2);
    assert!(w.mesh.ctrl(CTRL).call_summaries().is_empty());
    let r = rejections(&w);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, 404, "{r:?}");
    assert!(r[0].1.contains("unknown temporary group"), "{r:?}");
}

#[test]
fn after_removal_a_call_to_the_group_is_refused() {
    let mut w = with_formed_group();
    assert_eq!(
        w.mesh.ctrl(CTRL).remove_temporary_group(FORMED),
        Removal::Removed
    );
    w.mesh.drive();
    assert_eq!(dissolved(&w), vec!["removed".to_owned()]);
    // Twice, or a configured group: nothing to remove.
    assert_eq!(
        w.mesh.ctrl(CTRL).remove_temporary_group(FORMED),
        Removal::Unknown
    );
    assert_eq!(
        w.mesh.ctrl(CTRL).remove_temporary_group(TEMP_GROUP),
        Removal::Unknown
    );
    call(&mut w, 3);
    assert!(w.mesh.ctrl(CTRL).call_summaries().is_empty());
    for m in all_members() {
        assert!(w.mesh.client(&m).call_summaries().is_empty(), "{m}");
    }
    let r = rejections(&w);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, 404, "{r:?}");
}

#[test]
fn removal_during_a_call_waits_for_the_calls_end() {
    let mut w = with_formed_group();
    call(&mut w, 4);
    assert_eq!(w.mesh.ctrl(CTRL).call_summaries().len(), 1);
    assert_eq!(
        w.mesh.ctrl(CTRL).remove_temporary_group(FORMED),
        Removal::AfterCall
    );
    // The call goes on; the group is still held.
    w.mesh.drive();
    assert_eq!(w.mesh.ctrl(CTRL).call_summaries().len(), 1);
    assert_eq!(
        w.mesh.ctrl(CTRL).call_summaries()[0].state,
        CallState::Established
    );
    assert_eq!(w.mesh.ctrl(CTRL).on_demand_groups(), vec![FORMED]);
    assert!(dissolved(&w).is_empty());
    hang_up(&mut w);
    assert_eq!(
        dissolved(&w),
        vec!["removal asked during its call".to_owned()]
    );
    assert!(w.mesh.ctrl(CTRL).on_demand_groups().is_empty());
}

#[test]
fn an_expired_group_takes_no_call() {
    let mut w = world(Servers::Two, &[DISPATCHER]);
    let t = w.mesh.time();
    w.mesh
        .ctrl(CTRL)
        .add_temporary_group(formed(), Some(t.unix + 5), t)
        .unwrap();
    w.mesh.drive_for(std::time::Duration::from_secs(6));
    call(&mut w, 5);
    assert!(w.mesh.ctrl(CTRL).call_summaries().is_empty());
    assert_eq!(rejections(&w)[0].0, 404);
    assert_eq!(dissolved(&w), vec!["lifetime ended".to_owned()]);
}

#[test]
fn unusable_groups_are_refused_naming_why() {
    let mut w = with_formed_group();
    let t = w.mesh.time();
    let ctrl = w.mesh.ctrl(CTRL);
    assert_eq!(
        ctrl.add_temporary_group(formed(), None, t),
        Err(TemporaryGroupError::Exists(FORMED.into()))
    );
    let configured = TemporaryGroup {
        id: TEMP_GROUP.into(),
        ..formed()
    };
    assert_eq!(
        ctrl.add_temporary_group(configured, None, t),
        Err(TemporaryGroupError::Exists(TEMP_GROUP.into()))
    );
    let id = "sip:regroup-other@mcx.test";
    let empty = TemporaryGroup {
        id: id.into(),
        constituents: vec![],
    };
    assert_eq!(
        ctrl.add_temporary_group(empty, None, t),
        Err(TemporaryGroupError::NoConstituents(id.into()))
    );
    let twice = TemporaryGroup {
        id: id.into(),
        constituents: vec![(GROUP_A.into(), MC_A.into()), (GROUP_A.into(), MC_A.into())],
    };
    assert!(matches!(
        ctrl.add_temporary_group(twice, None, t),
        Err(TemporaryGroupError::DuplicateConstituent { .. })
    ));
    let old = TemporaryGroup {
        id: id.into(),
        ..formed()
    };
    assert_eq!(
        ctrl.add_temporary_group(old, Some(t.unix), t),
        Err(TemporaryGroupError::Expired(id.into()))
    );
    assert_eq!(ctrl.on_demand_groups(), vec![FORMED]);
}
