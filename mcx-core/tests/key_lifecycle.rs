//! GMK lifecycle in the client role (issue 11 point 4), through the
//! in-memory mesh with virtual time: several GMKs per group, each used
//! only while in force (TS 33.180 5.7.1 and the activation and expiry
//! times of the E.6 key parameters), a GMK accepted only for the group
//! its key parameters name.
#![allow(clippy::unwrap_used, missing_docs, unreachable_pub)]

mod common;

use std::time::Duration;

use common::*;
use mcx_core::{ClientEvent, Error, GmkError, Time};
use mcx_mikey::{Gmk, KeyId, Rejection};

/// GMK lifetime of these tests.
const LIFE: u64 = 3600;

/// Everyone who holds the groups' GMKs.
fn holders() -> Vec<String> {
    let mut v = all_members();
    v.push(DISPATCHER.into());
    v
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A world whose first GMKs are in force for [UNIX0, UNIX0 + LIFE).
fn expiring_world() -> World {
    world_with_gmks(
        Servers::Two,
        &[DISPATCHER],
        |c| c.call_lifetime = Duration::from_secs(600),
        (UNIX0, UNIX0 + LIFE),
    )
}

/// Moves the mesh's clock to `unix` (virtual time passes, nothing runs).
fn set_clock(w: &mut World, unix: u64) {
    w.mesh.now = Duration::from_secs(unix - UNIX0);
}

fn start(w: &mut World, time: Time) -> Result<(), Error> {
    w.mesh
        .client(DISPATCHER)
        .start_call(time, TEMP_GROUP, &[GROUP_A, GROUP_B], &mut TestRng(11))
}

fn joined(w: &mut World) -> usize {
    all_members()
        .iter()
        .filter(|m| w.mesh.client(m).tgmk_confirmation(TEMP_GROUP).is_some())
        .count()
}

fn gmk_refusals(w: &World, m: &str) -> Vec<GmkError> {
    w.mesh
        .client_events(m)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::GmkRefused { error } => Some(error),
            _ => None,
        })
        .collect()
}

fn refused_488(w: &World, m: &str) -> bool {
    w.mesh.client_events(m).iter().any(|e| {
        matches!(e, ClientEvent::IncomingRejected { status: 488, reason } if reason.contains("GMK"))
    })
}

#[test]
fn a_call_works_while_the_gmk_is_in_force() {
    let mut w = expiring_world();
    set_clock(&mut w, UNIX0 + LIFE - 60);
    let t = w.mesh.time();
    start(&mut w, t).unwrap();
    w.mesh.drive();
    assert!(w.mesh.errors.is_empty(), "{:?}", w.mesh.errors);
    assert_eq!(joined(&mut w), all_members().len());
}

/// One hour after the GMK expired the dispatcher makes no call with it.
#[test]
fn no_call_is_made_with_an_expired_gmk() {
    let mut w = expiring_world();
    set_clock(&mut w, UNIX0 + LIFE + 3600);
    let t = w.mesh.time();
    let err = start(&mut w, t).unwrap_err();
    assert!(
        matches!(&err, Error::Gmk(GmkError::Expired { group_id, expiry, .. })
            if group_id == GROUP_A && *expiry == UNIX0 + LIFE),
        "{err:?}"
    );
    assert!(!w.mesh.client(DISPATCHER).in_call(TEMP_GROUP));
    w.mesh.drive();
    assert!(w.mesh.log.is_empty(), "nothing was sent");
    // The expired GMK was dropped, not merely skipped.
    assert!(w.mesh.client(DISPATCHER).gmks(GROUP_A).is_empty());
}

/// A call wrapped just before the GMK expired that reaches the members
/// after expiry is refused with 488: they no longer use that GMK.
#[test]
fn no_call_is_accepted_with_an_expired_gmk() {
    let mut w = expiring_world();
    set_clock(&mut w, UNIX0 + LIFE - 1);
    let t = w.mesh.time();
    start(&mut w, t).unwrap();
    set_clock(&mut w, UNIX0 + LIFE + 1);
    w.mesh.drive();
    assert_eq!(joined(&mut w), 0);
    for m in all_members() {
        assert!(refused_488(&w, &m), "{m}");
        let refusals = gmk_refusals(&w, &m);
        assert!(
            matches!(refusals.as_slice(), [GmkError::Expired { expiry, .. }] if *expiry == UNIX0 + LIFE),
            "{m}: {refusals:?}"
        );
    }
}

/// A GMK fetched ahead (activation in the future) is not used before its
/// activation, neither to send nor to receive; from then on it is the
/// one sent with (the latest activated in force), and a call across the
/// GMK boundary works.
#[test]
fn the_next_gmk_is_used_from_its_activation_only() {
    let mut w = expiring_world();
    let holders = holders();
    let next_a = w.issue_gmk(GROUP_A, &refs(&holders), UNIX0 + LIFE, UNIX0 + 2 * LIFE);
    let next_b = w.issue_gmk(GROUP_B, &refs(&holders), UNIX0 + LIFE, UNIX0 + 2 * LIFE);
    assert_eq!(w.mesh.client(DISPATCHER).gmks(GROUP_A).len(), 2);

    // Before activation: the dispatcher still sends with the first GMK.
    let before = w.mesh.time();
    let first_a = w.mesh.client(DISPATCHER).gmks(GROUP_A)[0].gmk_id;
    assert_eq!(
        w.mesh
            .client(DISPATCHER)
            .sending_gmk_id(before, GROUP_A)
            .unwrap(),
        first_a
    );

    // A dispatcher whose clock runs ahead wraps under the next GMK; the
    // members, before its activation, refuse it.
    let ahead = Time {
        instant: before.instant,
        unix: UNIX0 + LIFE,
    };
    assert_eq!(
        w.mesh
            .client(DISPATCHER)
            .sending_gmk_id(ahead, GROUP_A)
            .unwrap(),
        next_a
    );
    set_clock(&mut w, UNIX0 + LIFE - 5);
    start(&mut w, ahead).unwrap();
    w.mesh.drive();
    assert_eq!(joined(&mut w), 0);
    for m in members_a() {
        assert!(
            matches!(gmk_refusals(&w, &m).as_slice(),
                [GmkError::NotYetActive { gmk_id, activation, .. }]
                    if *gmk_id == next_a && *activation == UNIX0 + LIFE),
            "{m}"
        );
    }
    for m in members_b() {
        assert!(
            matches!(gmk_refusals(&w, &m).as_slice(),
                [GmkError::NotYetActive { gmk_id, .. }] if *gmk_id == next_b),
            "{m}"
        );
    }
    // Nobody took it: the call failed and ended.
    assert!(!w.mesh.client(DISPATCHER).in_call(TEMP_GROUP));

    // After the first GMK expired: the call goes under the next one and
    // every member takes it; the first GMK is gone everywhere.
    set_clock(&mut w, UNIX0 + LIFE + 30);
    let t = w.mesh.time();
    start(&mut w, t).unwrap();
    w.mesh.drive();
    assert!(w.mesh.errors.is_empty(), "{:?}", w.mesh.errors);
    assert_eq!(joined(&mut w), all_members().len());
    for h in holders {
        let ids: Vec<KeyId> = w
            .mesh
            .client(&h)
            .gmks(GROUP_A)
            .iter()
            .map(|g| g.gmk_id)
            .collect();
        assert_eq!(ids, [next_a], "{h}");
    }
}

/// The driver asks which groups need their next GMK: those whose GMKs
/// all expire within the lead time; once the next GMK is held, not
/// before it nears its own expiry.
#[test]
fn the_next_gmk_is_due_before_the_current_one_expires() {
    let mut w = expiring_world();
    let lead = Duration::from_secs(600);
    let refresh = UNIX0 + LIFE - 600;
    let c = w.mesh.client(DISPATCHER);
    assert_eq!(c.next_gmk_refresh(lead), Some(refresh));
    set_clock(&mut w, refresh - 1);
    let t = w.mesh.time();
    assert!(
        w.mesh
            .client(DISPATCHER)
            .gmk_refresh_due(t, lead)
            .is_empty()
    );
    set_clock(&mut w, refresh);
    let t = w.mesh.time();
    assert_eq!(
        w.mesh.client(DISPATCHER).gmk_refresh_due(t, lead),
        [GROUP_A, GROUP_B]
    );
    w.issue_gmk(GROUP_A, &[DISPATCHER], UNIX0 + LIFE, UNIX0 + 2 * LIFE);
    let c = w.mesh.client(DISPATCHER);
    assert_eq!(c.gmk_refresh_due(t, lead), [GROUP_B]);
    assert_eq!(c.next_gmk_refresh(lead), Some(refresh));
    w.issue_gmk(GROUP_B, &[DISPATCHER], UNIX0 + LIFE, UNIX0 + 2 * LIFE);
    let c = w.mesh.client(DISPATCHER);
    assert!(c.gmk_refresh_due(t, lead).is_empty());
    assert_eq!(c.next_gmk_refresh(lead), Some(UNIX0 + 2 * LIFE - 600));
}

/// TS 33.180 5.7.1: a GMK is for the MC group IDs its key parameters
/// name. Group A's GMK message offered as group B's key is refused and
/// nothing is stored for group B.
#[test]
fn a_gmk_for_group_a_is_not_taken_as_group_b_key() {
    let mut w = expiring_world();
    let gmk = Gmk::generate(&mut w.mesh.rng);
    let gmk_id = KeyId::generate(mcx_mikey::wire::Purpose::Gmk, &mut w.mesh.rng).unwrap();
    let msg = w.gmk_message(GROUP_A, OUTSIDER, &gmk, gmk_id, 0, 0);
    let t = w.mesh.time();
    let err = w
        .mesh
        .client(OUTSIDER)
        .accept_gmk(t, GROUP_B, &msg)
        .unwrap_err();
    assert_eq!(
        err,
        Error::Mikey(mcx_mikey::Error::Rejected(Rejection::GroupNotNamed {
            group_id: GROUP_B.into()
        }))
    );
    assert!(!w.mesh.client(OUTSIDER).has_gmk(GROUP_B));
    // The same message is group A's key.
    w.mesh
        .client(OUTSIDER)
        .accept_gmk(t, GROUP_A, &msg)
        .unwrap();
    assert!(w.mesh.client(OUTSIDER).has_gmk(GROUP_A));
}
