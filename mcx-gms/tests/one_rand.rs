//! One RAND per GMK (TS 33.180 7.4.2): media keys under a GMK derive from
//! the GMK, the sender's GUK-ID (CSB ID) and the RAND of the GKTP, so the
//! GMS gives every member, on every fetch, the same RAND for one GMK; a
//! member derives another member's sending keys from the MKI of its
//! packets. Checked by decoding the GKTPs and through the client role
//! (`mcx_core::Client::accept_gmk`), as a member's device does.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::*;
use mcx_core::{Client, ClientConfig, MkiError, Time};
use mcx_mikey::{KeyId, Message, kdf};

/// The RAND payload of a GKTP, read by decoding the I_MESSAGE.
fn rand_of(gktp: &[u8]) -> Vec<u8> {
    Message::decode(gktp).unwrap().rand().unwrap().0.clone()
}

/// The GMK-ID a GKTP names in its crypto session's SPI (GMK-ID || GUK-ID).
fn gmk_id_of(gktp: &[u8]) -> KeyId {
    let msg = Message::decode(gktp).unwrap();
    let mcx_mikey::message::CsIdMap::GenericId(cs) = &msg.hdr.map else {
        panic!("no GENERIC-ID map")
    };
    kdf::split_gmk_mki(&cs[0].spi).unwrap().0
}

fn time(unix: u64) -> Time {
    Time {
        instant: Instant::now(),
        unix,
    }
}

/// A member's client role with its KMS keys for the period of `now`.
fn client(w: &mut World, member: &str, now: u64) -> Client {
    let keys = w
        .community
        .issue(member, period_of(&w.kms, now), &mut w.rng)
        .unwrap();
    let config = ClientConfig::new(member, "sip:ctrl@mcx.test", GMS, vec![]);
    Client::new(config, w.kms.clone(), keys).unwrap()
}

#[test]
fn every_gktp_of_a_gmk_carries_its_one_rand_and_a_rolled_gmk_another() {
    let db = TempDb::new("one-rand");
    let mut w = World::new(41);
    let now = UNIX0 + 5;
    let (rand_a, gmk_a) = {
        let mut gms = w.open(Some(&db.0), default_config(), UNIX0);
        let alice = fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, now).remove(0);
        let rand = rand_of(&alice);
        assert_eq!(rand.len(), 16);
        // Every member, and the same member again in the same second.
        for m in [BOB, DISPATCHER, ALICE, ALICE] {
            let g = fetch_gktps(&mut gms, &mut w, m, GROUP_A, now).remove(0);
            assert_ne!(g, alice, "a fresh message per request");
            assert_eq!(gmk_id_of(&g), gmk_id_of(&alice));
            assert_eq!(rand_of(&g), rand, "{m}: another RAND for the same GMK");
        }
        // Another group's GMK has its own RAND.
        let b = fetch_gktps(&mut gms, &mut w, DISPATCHER, GROUP_B, now).remove(0);
        assert_ne!(rand_of(&b), rand);
        (rand, gmk_id_of(&alice))
    };

    // The RAND is stored with the GMK: the same after a restart.
    let later = now + 600;
    let mut gms = w.open(Some(&db.0), default_config(), later);
    let g = fetch_gktps(&mut gms, &mut w, BOB, GROUP_A, later).remove(0);
    assert_eq!((gmk_id_of(&g), rand_of(&g)), (gmk_a, rand_a.clone()));

    // A rolled GMK (member removed) has another RAND, again one for all.
    let rolled = gms.remove_member(GROUP_A, BOB, later, &mut w.rng).unwrap();
    let alice = fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, later).remove(0);
    let dispatcher = fetch_gktps(&mut gms, &mut w, DISPATCHER, GROUP_A, later).remove(0);
    assert_eq!(gmk_id_of(&alice), rolled);
    assert_eq!(gmk_id_of(&dispatcher), rolled);
    assert_ne!(rand_of(&alice), rand_a, "a rolled GMK reused the RAND");
    assert_eq!(rand_of(&alice), rand_of(&dispatcher));
}

#[test]
fn the_next_gmk_has_its_own_rand_shared_by_all_members() {
    let mut w = World::new(42);
    let mut gms = w.open(None, config(&[ALICE, BOB, DISPATCHER], 3_600), UNIX0);
    // Second half of the current GMK's life: current and next GMK.
    let now = UNIX0 + 1_800;
    let alice = fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, now);
    let bob = fetch_gktps(&mut gms, &mut w, BOB, GROUP_A, now);
    assert_eq!((alice.len(), bob.len()), (2, 2));
    for (a, b) in alice.iter().zip(&bob) {
        assert_eq!(gmk_id_of(a), gmk_id_of(b));
        assert_eq!(rand_of(a), rand_of(b));
    }
    assert_ne!(gmk_id_of(&alice[0]), gmk_id_of(&alice[1]));
    assert_ne!(rand_of(&alice[0]), rand_of(&alice[1]));
}

/// Member B derives member A's sending keys from A's MKI alone, through
/// the real path: GMS → group document → GKTP → `Client::accept_gmk`.
#[test]
fn member_b_derives_member_as_sending_keys_from_as_mki() {
    let mut w = World::new(43);
    let mut gms = w.open(None, default_config(), UNIX0);
    let now = UNIX0 + 30;
    let mut alice = client(&mut w, ALICE, now);
    let mut bob = client(&mut w, BOB, now);
    for (c, m) in [(&mut alice, ALICE), (&mut bob, BOB)] {
        let g = fetch_gktps(&mut gms, &mut w, m, GROUP_A, now).remove(0);
        c.accept_gmk(time(now), GROUP_A, &g).unwrap();
    }
    let gmk_id = gms.gmk_id(GROUP_A).unwrap();

    let a = alice.group_sending_keys(time(now), GROUP_A).unwrap();
    let b = bob.group_sending_keys(time(now), GROUP_A).unwrap();
    // MKI = GMK-ID || the sender's GUK-ID (F.1.3: GMK-ID XOR 28 bits).
    let (a_gmk_id, a_guk_id) = kdf::split_gmk_mki(a.mki()).unwrap();
    let (_, b_guk_id) = kdf::split_gmk_mki(b.mki()).unwrap();
    assert_eq!(a_gmk_id, gmk_id);
    assert_ne!(a_guk_id, b_guk_id);
    assert_eq!(a_guk_id.0 >> 28, 0);
    // Keys are per sender.
    assert_ne!(a.master_key(), b.master_key());
    assert_ne!(a.master_salt(), b.master_salt());

    // Bob, from Alice's MKI: exactly Alice's keys.
    let from_mki = bob.group_receive_keys(time(now + 1), a.mki()).unwrap();
    assert_eq!(from_mki.group_id, GROUP_A);
    assert_eq!((from_mki.gmk_id, from_mki.guk_id), (gmk_id, a_guk_id));
    assert_eq!(from_mki.keys.master_key(), a.master_key());
    assert_eq!(from_mki.keys.master_salt(), a.master_salt());
    assert_eq!(from_mki.keys.mki(), a.mki());
    // And Alice from Bob's.
    let back = alice.group_receive_keys(time(now + 1), b.mki()).unwrap();
    assert_eq!(back.keys, b);
    // Knowing who talks, Bob gets the same from Alice's URI.
    assert_eq!(bob.group_sender_keys(time(now), GROUP_A, ALICE).unwrap(), a);

    // A re-fetched GKTP of the same GMK (same RAND) changes nothing.
    let again = fetch_gktps(&mut gms, &mut w, BOB, GROUP_A, now).remove(0);
    bob.accept_gmk(time(now), GROUP_A, &again).unwrap();
    assert_eq!(bob.group_receive_keys(time(now), a.mki()).unwrap().keys, a);

    // An MKI of no GMK held, or not GMK-ID || GUK-ID: typed errors.
    let unknown = kdf::gmk_mki(KeyId(gmk_id.0 ^ 1), a_guk_id);
    assert_eq!(
        bob.group_receive_keys(time(now), &unknown).unwrap_err(),
        MkiError::UnknownGmk {
            gmk_id: KeyId(gmk_id.0 ^ 1),
            guk_id: a_guk_id
        }
    );
    assert_eq!(
        bob.group_receive_keys(time(now), &a.mki()[..4])
            .unwrap_err(),
        MkiError::Length { len: 4 }
    );
    // Eve, in no group, holds no GMK: Alice's MKI names nothing she has.
    let eve = client(&mut w, EVE, now);
    assert!(matches!(
        eve.group_receive_keys(time(now), a.mki()),
        Err(MkiError::UnknownGmk { .. })
    ));
}

/// The client's replay cache takes two GKTPs of one GMK fetched in the
/// same second (same T, same RAND, fresh IV), and still refuses a GKTP
/// it has accepted.
#[test]
fn two_fetches_in_one_second_are_both_accepted_and_a_replay_is_not() {
    let mut w = World::new(44);
    let mut gms = w.open(None, default_config(), UNIX0);
    let now = UNIX0 + 7;
    let mut alice = client(&mut w, ALICE, now);
    let first = fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, now).remove(0);
    let second = fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, now).remove(0);
    assert_eq!(rand_of(&first), rand_of(&second));
    alice.accept_gmk(time(now), GROUP_A, &first).unwrap();
    alice.accept_gmk(time(now), GROUP_A, &second).unwrap();
    let err = alice
        .accept_gmk(time(now + 1), GROUP_A, &first)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        mcx_core::Error::Mikey(mcx_mikey::Rejection::Replayed.into()).to_string()
    );
}

/// A version-2 store (GMKs without a RAND) is upgraded on open: each GMK
/// keeps its GMK-ID and key and gets one RAND, shared by all its GKTPs
/// from then on.
#[test]
fn a_version_2_store_is_upgraded_with_one_rand_per_gmk() {
    let db = TempDb::new("upgrade-v2");
    let mut w = World::new(45);
    let (gmk_id, gmk) = {
        let mut gms = w.open(Some(&db.0), default_config(), UNIX0);
        let g = fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, UNIX0).remove(0);
        let gmk = w.accept(ALICE, &g, UNIX0).gmk;
        gms.close().unwrap();
        (gmk_id_of(&g), gmk)
    };
    // Make it what version 2 wrote: no `rand` column.
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute_batch(
            "ALTER TABLE gmks DROP COLUMN rand;
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let now = UNIX0 + 60;
    let mut gms = w.open(Some(&db.0), default_config(), now);
    let alice = fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, now).remove(0);
    let bob = fetch_gktps(&mut gms, &mut w, BOB, GROUP_A, now).remove(0);
    assert_eq!((gmk_id_of(&alice), gmk_id_of(&bob)), (gmk_id, gmk_id));
    assert_eq!(w.accept(BOB, &bob, now).gmk, gmk, "the GMK survived");
    assert_eq!(rand_of(&alice), rand_of(&bob));
    gms.close().unwrap();
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "3");
    let rands: Vec<Vec<u8>> = conn
        .prepare("SELECT rand FROM gmks")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rands.len(), 2, "groups A and B");
    assert!(rands.iter().all(|r| r.len() == 16));
    assert_ne!(rands[0], rands[1]);
    assert!(rands.contains(&rand_of(&alice)));
}
