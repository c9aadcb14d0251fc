//! The GMS on PostgreSQL: two instances on one database serve the same
//! GMKs — one GMK per group and one RAND per GMK — even when both start
//! at once, make the next GMK at once or replace an expired one at once,
//! and a GMK one instance rolls after a member's removal is the one the
//! other serves (to the remaining members only). GKTPs are accepted as a
//! member's client does. The server is started by the test
//! (mcx-kms/tests/postgres); without PostgreSQL binaries: SKIPPED.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../mcx-kms/tests/postgres/mod.rs"]
mod postgres;

use std::sync::{Arc, Barrier};

use common::*;
use mcx_gms::Gms;
use mcx_kms::{DatabaseUrl, StoreLocation};
use mcx_mikey::KeyId;

const LIFETIME: u64 = 1000;

/// Opens an instance as a GMS process does (its own keys, its own RNG).
fn open(w: &mut World, url: &DatabaseUrl, now: u64, seed: u64) -> Gms {
    let keys = w.community.issue(GMS, w.period, &mut w.rng).unwrap();
    Gms::open_at(
        StoreLocation::Postgres(url),
        Some(&store_key()),
        config(&[ALICE, BOB, DISPATCHER], LIFETIME),
        w.kms.clone(),
        keys,
        now,
        &mut TestRng(seed),
    )
    .unwrap()
}

/// (GMK-ID, GMK, RAND) of every GKTP `member` gets for `group`.
fn gmks(
    w: &mut World,
    gms: &Gms,
    member: &str,
    group: &str,
    now: u64,
    seed: u64,
) -> Vec<(KeyId, Vec<u8>, Vec<u8>)> {
    use mcx_gms::client::{check_response, group_document_request, parse_group_document};
    let r = gms.handle(
        &group_document_request(group, &token(member)),
        now,
        &mut TestRng(seed),
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let doc = parse_group_document(check_response(&r).unwrap()).unwrap();
    doc.gktps
        .iter()
        .map(|g| {
            let got = w.accept(member, g, now);
            (got.gmk_id, got.gmk.as_bytes().to_vec(), got.rand)
        })
        .collect()
}

/// The GKTPs of `group` for `member` from both instances at the same
/// moment (each in its own thread), as (from A, from B).
fn both_at_once(
    a: &Arc<Gms>,
    b: &Arc<Gms>,
    member: &str,
    group: &str,
    now: u64,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let barrier = Arc::new(Barrier::new(2));
    let run = |gms: Arc<Gms>, seed: u64| {
        let barrier = barrier.clone();
        let (member, group) = (member.to_owned(), group.to_owned());
        std::thread::spawn(move || {
            use mcx_gms::client::{check_response, group_document_request, parse_group_document};
            barrier.wait();
            let r = gms.handle(
                &group_document_request(&group, &token(&member)),
                now,
                &mut TestRng(seed),
            );
            assert_eq!(r.status, 200, "{}", body_text(&r));
            let doc = parse_group_document(check_response(&r).unwrap()).unwrap();
            doc.gktps
        })
    };
    let ha = run(a.clone(), 11);
    let hb = run(b.clone(), 22);
    let (ga, gb) = (ha.join().unwrap(), hb.join().unwrap());
    (ga, gb)
}

fn accept_all(
    w: &mut World,
    member: &str,
    gktps: &[Vec<u8>],
    now: u64,
) -> Vec<(KeyId, Vec<u8>, Vec<u8>)> {
    gktps
        .iter()
        .map(|g| {
            let got = w.accept(member, g, now);
            (got.gmk_id, got.gmk.as_bytes().to_vec(), got.rand)
        })
        .collect()
}

#[test]
fn two_instances_serve_one_gmk_per_group_through_starts_and_rolls() {
    let Some(pg) = postgres::TempPostgres::start("gms") else {
        return;
    };
    let url = DatabaseUrl::parse(&pg.url()).unwrap();
    let mut w = World::new(7);
    let t0 = UNIX0;

    // Both start at once on the empty database.
    let barrier = Arc::new(Barrier::new(2));
    let starts: Vec<_> = [1u64, 2]
        .into_iter()
        .map(|seed| {
            let (url, barrier) = (url.clone(), barrier.clone());
            let keys = w.community.issue(GMS, w.period, &mut w.rng).unwrap();
            let kms = w.kms.clone();
            std::thread::spawn(move || {
                barrier.wait();
                Gms::open_at(
                    StoreLocation::Postgres(&url),
                    Some(&store_key()),
                    config(&[ALICE, BOB, DISPATCHER], LIFETIME),
                    kms,
                    keys,
                    t0,
                    &mut TestRng(seed),
                )
                .unwrap()
            })
        })
        .collect();
    let mut started = starts.into_iter().map(|h| Arc::new(h.join().unwrap()));
    let (a, b) = (started.next().unwrap(), started.next().unwrap());
    for group in [GROUP_A, GROUP_B] {
        assert_eq!(a.gmk_id(group), b.gmk_id(group), "{group}");
    }
    let first = gmks(&mut w, &a, ALICE, GROUP_A, t0 + 1, 3);
    assert_eq!(first.len(), 1);
    assert_eq!(
        first,
        gmks(&mut w, &b, BOB, GROUP_A, t0 + 2, 4),
        "GMK or RAND differ"
    );

    // Both make the next GMK at once (second half of the current one's
    // life): one next GMK, with one RAND.
    let half = t0 + LIFETIME / 2 + 10;
    let (ga, gb) = both_at_once(&a, &b, ALICE, GROUP_A, half);
    let (from_a, from_b) = (
        accept_all(&mut w, ALICE, &ga, half),
        accept_all(&mut w, ALICE, &gb, half),
    );
    assert_eq!(from_a.len(), 2);
    assert_eq!(from_a, from_b, "two next GMKs");
    assert_eq!(from_a[0], first[0]);
    let next = from_a[1].clone();

    // Past the expiry, both replace the expired GMK at once: the next one
    // is the one in force at both.
    let later = t0 + LIFETIME + 10;
    let (ga, gb) = both_at_once(&a, &b, BOB, GROUP_A, later);
    let (from_a, from_b) = (
        accept_all(&mut w, BOB, &ga, later),
        accept_all(&mut w, BOB, &gb, later),
    );
    assert_eq!(from_a[0], next);
    assert_eq!(from_a, from_b);

    // Removing Bob on A rolls the GMK; B serves the new one and no longer
    // gives Bob the group's keys.
    let mut a = Arc::try_unwrap(a).unwrap();
    let rolled = a
        .remove_member(GROUP_A, BOB, later + 5, &mut TestRng(5))
        .unwrap();
    assert_ne!(rolled, next.0);
    let at_b = gmks(&mut w, &b, ALICE, GROUP_A, later + 6, 6);
    assert_eq!(at_b[0].0, rolled);
    assert_eq!(at_b, gmks(&mut w, &a, ALICE, GROUP_A, later + 7, 7));
    use mcx_gms::client::group_document_request;
    let r = b.handle(
        &group_document_request(GROUP_A, &token(BOB)),
        later + 8,
        &mut TestRng(8),
    );
    assert_eq!(r.status, 403, "{}", body_text(&r));

    // Exactly the GMKs above are stored: no duplicate from any race.
    let mut db = url.connect("mcx_gms").unwrap();
    let n: i64 = db
        .query_one("SELECT count(*) FROM gmks WHERE group_id = $1", &[&GROUP_A])
        .unwrap()
        .get(0);
    assert_eq!(n, 3, "first, next, rolled");
    drop(b);

    // A new instance later: the same GMK.
    let c = open(&mut w, &url, later + 9, 9);
    assert_eq!(c.gmk_id(GROUP_A), Some(rolled));

    // PostgreSQL restarts: the next request meets the dead connection, is
    // run again on a new one and answered.
    pg.restart();
    assert_eq!(gmks(&mut w, &c, ALICE, GROUP_A, later + 10, 10), at_b);
}
