//! The KMS on PostgreSQL: two instances on one database serve one
//! community (same community keys, same issued key sets, one audit log),
//! even when they start and issue at the same moment; the secrets stay
//! sealed at rest as in SQLite. The server is started by the test
//! (tests/postgres); without PostgreSQL binaries the tests say SKIPPED.
#![allow(clippy::unwrap_used)]

mod common;
mod postgres;

use std::sync::Arc;

use common::*;
use mcx_kms::xml::{KmsKeySet, KmsMessage, KmsResponse};
use mcx_kms::{DatabaseUrl, Kms, KmsError, StoreKey, StoreKeyError, StoreLocation};

fn open(url: &DatabaseUrl, key: &StoreKey) -> Result<Kms, KmsError> {
    Kms::open_at(
        StoreLocation::Postgres(url),
        Some(key),
        config(),
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    )
}

/// Two instances opened at the same moment on an empty database.
fn two_racing(url: &DatabaseUrl) -> (Kms, Kms) {
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let start = |url: DatabaseUrl, barrier: Arc<std::sync::Barrier>| {
        std::thread::spawn(move || {
            barrier.wait();
            open(&url, &store_key()).unwrap()
        })
    };
    let a = start(url.clone(), barrier.clone());
    let b = start(url.clone(), barrier);
    (a.join().unwrap(), b.join().unwrap())
}

/// The key set(s) of a KmsKeyProv answer.
fn key_sets(kms: &Kms, user: &str, token: &str, now: u64) -> Vec<KmsKeySet> {
    let r = kms.handle(
        &mcx_kms::client::key_prov_request(KMS_URI, user, token, now),
        now,
    );
    match KmsResponse::from_xml(ok(&r)).unwrap().message {
        KmsMessage::KeyProv(sets) => sets,
        KmsMessage::Init(_) => panic!("KmsInit in answer to keyprov"),
    }
}

fn secrets(set: &KmsKeySet) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        set.user_decrypt_key.to_vec(),
        set.user_signing_key_ssk.to_vec(),
        set.user_pub_token_pvt.to_vec(),
    )
}

#[test]
fn two_instances_on_one_database_serve_one_community() {
    let Some(pg) = postgres::TempPostgres::start("kms") else {
        return;
    };
    let url = DatabaseUrl::parse(&pg.url()).unwrap();
    let (a, b) = two_racing(&url);
    assert_eq!(a.community_public(), b.community_public());

    // Issued by A, fetched from B: the same key set.
    let from_a = key_sets(&a, ALICE, ALICE_TOKEN, NOW);
    let from_b = key_sets(&b, ALICE, ALICE_TOKEN, NOW + 5);
    assert_eq!(from_a.len(), 1);
    assert_eq!(secrets(&from_a[0]), secrets(&from_b[0]));

    // Both issuing Bob's first key set at once: one set stands.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let handles: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|kms| std::thread::spawn(move || secrets(&key_sets(&kms, BOB, BOB_TOKEN, NOW)[0])))
        .collect();
    let sets: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        sets.windows(2).all(|w| w[0] == w[1]),
        "instances issued different keys"
    );

    // One audit log: 2 for Alice, 4 for Bob, seen alike from both.
    let log = a.issued().unwrap();
    assert_eq!(log, b.issued().unwrap());
    assert_eq!(log.iter().filter(|r| r.user_uri == ALICE).count(), 2);
    assert_eq!(log.iter().filter(|r| r.user_uri == BOB).count(), 4);

    // A third instance after both stopped: the same community and keys.
    drop((a, b));
    let c = open(&url, &store_key()).unwrap();
    assert_eq!(
        secrets(&key_sets(&c, ALICE, ALICE_TOKEN, NOW)[0]),
        secrets(&from_a[0])
    );

    // Sealed at rest: no column holds an issued secret or the community
    // secrets in clear; another store key is refused before use.
    let mut db = url.connect("mcx_kms").unwrap();
    let row = db
        .query_one(
            "SELECT ssk, rsk, pvt FROM user_keys WHERE user_uri = $1",
            &[&ALICE],
        )
        .unwrap();
    let (ssk, rsk, pvt): (Vec<u8>, Vec<u8>, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
    let (rsk_clear, ssk_clear, pvt_clear) = secrets(&from_a[0]);
    assert_eq!(pvt, pvt_clear, "the PVT is public and kept in clear");
    assert!(!contains(&rsk, &rsk_clear) && !contains(&ssk, &ssk_clear));
    assert_eq!(
        ssk.len(),
        12 + ssk_clear.len() + 16,
        "nonce || AES-256-GCM || tag"
    );
    let ksak: Vec<u8> = db
        .query_one("SELECT ksak FROM community", &[])
        .unwrap()
        .get(0);
    assert_eq!(ksak.len(), 12 + 32 + 16);
    assert!(matches!(
        open(&url, &StoreKey::from_bytes([0x11; 32])),
        Err(KmsError::StoreKey(StoreKeyError::WrongKey))
    ));
    let version: Vec<u8> = db
        .query_one("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, b"2");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A KMS on PostgreSQL may be dropped or closed on a thread that drives
/// async tasks (a driver's shutdown): the `postgres` client, which blocks
/// on a runtime of its own there, is taken to a thread of its own.
#[test]
fn dropping_or_closing_inside_an_async_task_does_not_panic() {
    let Some(pg) = postgres::TempPostgres::start("kms-drop") else {
        return;
    };
    let url = DatabaseUrl::parse(&pg.url()).unwrap();
    let (a, b) = (
        open(&url, &store_key()).unwrap(),
        open(&url, &store_key()).unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        drop(a);
        b.close().unwrap();
    });
}

/// After PostgreSQL restarts (every connection closed), an instance
/// connects anew: the first request meets the dead connection, is run
/// again on a new one and answered, with the keys issued before.
#[test]
fn an_instance_reconnects_after_postgresql_restarts() {
    let Some(pg) = postgres::TempPostgres::start("kms-restart") else {
        return;
    };
    let url = DatabaseUrl::parse(&pg.url()).unwrap();
    let kms = open(&url, &store_key()).unwrap();
    let before = secrets(&key_sets(&kms, ALICE, ALICE_TOKEN, NOW)[0]);
    pg.restart();
    assert_eq!(secrets(&key_sets(&kms, ALICE, ALICE_TOKEN, NOW)[0]), before);
    assert_eq!(kms.issued().unwrap().len(), 2);
}
