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
use mcx_ibc::uid::{key_period_no, key_period_start};
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
        30 * 86_400,
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

/// KMS key periods of 10 minutes (offset 0).
const PERIOD: u64 = 600;

fn short_period_world() -> World {
    world_with_gmks(Servers::Two, &[DISPATCHER], |_| {}, (0, 0), PERIOD)
}

/// The start of the key period after the one of `unix`.
fn next_period_start(unix: u64) -> (u64, u64) {
    let p = key_period_no(unix, PERIOD, 0).unwrap() + 1;
    (p, key_period_start(p, PERIOD, 0).unwrap())
}

/// Every holder gets its keys for `period` from the KMS, as its driver
/// does before the period starts.
fn give_period_keys(w: &mut World, period: u64) {
    for h in holders() {
        let keys = w.community.issue(&h, period, &mut w.mesh.rng).unwrap();
        assert_eq!(w.mesh.client(&h).add_user_keys(keys).unwrap(), period);
    }
}

/// The driver is told to fetch the next period's keys `lead` before the
/// period starts; without them no call can be signed in the new period.
#[test]
fn next_period_keys_are_due_before_the_period_starts() {
    let mut w = short_period_world();
    let (next, begins) = next_period_start(UNIX0);
    let lead = Duration::from_secs(120);
    assert_eq!(
        w.mesh.client(DISPATCHER).next_key_refresh(lead),
        Some((begins - 120, begins))
    );
    set_clock(&mut w, begins + 1);
    let t = w.mesh.time();
    assert_eq!(start(&mut w, t), Err(Error::NoKeysForPeriod(next)));
    assert!(w.mesh.log.is_empty(), "nothing was sent");

    let keys = w
        .community
        .issue(DISPATCHER, next, &mut w.mesh.rng)
        .unwrap();
    let c = w.mesh.client(DISPATCHER);
    c.add_user_keys(keys).unwrap();
    assert_eq!(c.key_periods(), [next - 1, next]);
    assert_eq!(
        c.next_key_refresh(lead),
        Some((begins + PERIOD - 120, begins + PERIOD))
    );
    // Keys of another user are refused.
    let keys = w
        .community
        .issue(OUTSIDER, next + 1, &mut w.mesh.rng)
        .unwrap();
    assert!(matches!(
        w.mesh.client(DISPATCHER).add_user_keys(keys),
        Err(Error::ForeignKeys(_))
    ));
}

/// A call across a key-period boundary: started (signed) one second
/// before the boundary, taken by the members after it; then a new call
/// in the new period, signed with the new period's keys, and a GMK
/// message of the new period (encrypted to the members' new UIDs).
#[test]
fn a_call_across_a_key_period_boundary_works() {
    let mut w = short_period_world();
    let (next, boundary) = next_period_start(UNIX0);
    set_clock(&mut w, boundary - 150);
    give_period_keys(&mut w, next);

    set_clock(&mut w, boundary - 1);
    let t = w.mesh.time();
    start(&mut w, t).unwrap();
    set_clock(&mut w, boundary + 1);
    w.mesh.drive();
    assert!(w.mesh.errors.is_empty(), "{:?}", w.mesh.errors);
    assert_eq!(joined(&mut w), all_members().len());
    let t = w.mesh.time();
    w.mesh
        .client(DISPATCHER)
        .hang_up(t, TEMP_GROUP, &mut TestRng(5))
        .unwrap();
    w.mesh.drive();
    assert_eq!(joined(&mut w), 0);

    // In the new period.
    let t = w.mesh.time();
    assert_eq!(key_period_no(t.unix, PERIOD, 0).unwrap(), next);
    start(&mut w, t).unwrap();
    w.mesh.drive();
    assert!(w.mesh.errors.is_empty(), "{:?}", w.mesh.errors);
    assert_eq!(joined(&mut w), all_members().len());

    // The GMS's messages of the new period: to the new UIDs.
    let a = w.issue_gmk(GROUP_A, &refs(&holders()), 0, 0);
    assert_eq!(w.mesh.client(DISPATCHER).gmks(GROUP_A).len(), 2);
    assert!(
        w.mesh
            .client(DISPATCHER)
            .gmks(GROUP_A)
            .iter()
            .any(|g| g.gmk_id == a)
    );
}

/// A GMK message time-stamped just before the boundary and received
/// after it is decrypted with the ending period's keys, still held.
#[test]
fn a_gmk_message_across_the_boundary_is_accepted() {
    let mut w = short_period_world();
    let (next, boundary) = next_period_start(UNIX0);
    set_clock(&mut w, boundary - 2);
    give_period_keys(&mut w, next);
    let gmk = Gmk::generate(&mut w.mesh.rng);
    let gmk_id = KeyId::generate(mcx_mikey::wire::Purpose::Gmk, &mut w.mesh.rng).unwrap();
    let msg = w.gmk_message(GROUP_A, DISPATCHER, &gmk, gmk_id, 0, 0);
    set_clock(&mut w, boundary + 1);
    let t = w.mesh.time();
    assert_eq!(
        w.mesh
            .client(DISPATCHER)
            .accept_gmk(t, GROUP_A, &msg)
            .unwrap(),
        gmk_id
    );
}
