//! The KMS service and client end to end: provisioning, crypto across
//! users, persistence, authentication and error handling.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mcx_ibc::eccsi::{self, SigningKey};
use mcx_ibc::sakke::{self, ReceiverKey, Ssv};
use mcx_ibc::uid::key_period_no;
use mcx_kms::client::{
    init_request, key_prov_request, key_prov_request_at, key_prov_request_with_next,
    parse_init_response, parse_key_prov_response, parse_key_prov_response_all,
};
use mcx_kms::http::HttpRequest;
use mcx_kms::{IssuedRecord, Kms, KmsError, KmsUser, StoreKey, StoreKeyError, XmlError};

fn provision(kms: &mut Kms, user: &str, token: &str) -> mcx_ibc::kms::UserKeys {
    let init = kms.handle(&init_request(KMS_URI, user, token, NOW), NOW);
    let community = parse_init_response(ok(&init), KMS_URI).unwrap();
    let prov = kms.handle(&key_prov_request(KMS_URI, user, token, NOW), NOW);
    parse_key_prov_response(ok(&prov), &community, user, NOW).unwrap()
}

#[test]
fn provisioned_keys_sign_verify_and_encapsulate_across_users() {
    let mut kms = kms();
    let init = kms.handle(&init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    let community = parse_init_response(ok(&init), KMS_URI).unwrap();
    assert_eq!(&community, kms.community_public());

    let alice = provision(&mut kms, ALICE, ALICE_TOKEN);
    let bob = provision(&mut kms, BOB, BOB_TOKEN);
    let period = key_period_no(NOW, PERIOD, 0).unwrap();
    assert_eq!(alice.key_period_no, period);
    assert_eq!(alice.uid, community.uid(ALICE, period).unwrap());
    assert_ne!(alice.uid, bob.uid);

    // Alice signs, anyone with the KPAK and her UID verifies; Bob's UID does not.
    let mut rng = TestRng(1);
    let signer = SigningKey::new(&community.kpak, &alice.uid, alice.ssk, alice.pvt).unwrap();
    let sig = signer.sign(b"group call request", &mut rng);
    eccsi::verify(&community.kpak, &alice.uid, b"group call request", &sig).unwrap();
    assert!(eccsi::verify(&community.kpak, &bob.uid, b"group call request", &sig).is_err());

    // Alice encapsulates to Bob; only Bob's RSK decapsulates.
    let ssv = Ssv::generate(&mut rng);
    let sed = sakke::encapsulate(&community.sakke_public, &bob.uid, &ssv).unwrap();
    let bob_key = ReceiverKey::new(&community.sakke_public, &bob.uid, &bob.rsk).unwrap();
    assert_eq!(bob_key.decapsulate(&sed).unwrap(), ssv);
    let alice_key = ReceiverKey::new(&community.sakke_public, &alice.uid, &alice.rsk).unwrap();
    assert!(alice_key.decapsulate(&sed).is_err());

    // Every issue is in the audit log, and only there by user and period.
    assert_eq!(
        kms.issued().unwrap(),
        vec![
            IssuedRecord {
                user_uri: ALICE.into(),
                key_period_no: period,
                issued_unix: NOW
            },
            IssuedRecord {
                user_uri: BOB.into(),
                key_period_no: period,
                issued_unix: NOW
            },
        ]
    );
}

#[test]
fn next_key_period_on_request() {
    let kms = kms();
    let community = kms.community_public().clone();
    let period = key_period_no(NOW, PERIOD, 0).unwrap();

    let both = kms.handle(
        &key_prov_request_with_next(KMS_URI, ALICE, ALICE_TOKEN, NOW),
        NOW,
    );
    let sets = parse_key_prov_response_all(ok(&both), &community, ALICE).unwrap();
    let periods: Vec<u64> = sets.iter().map(|k| k.key_period_no).collect();
    assert_eq!(periods, [period, period + 1]);
    let current = parse_key_prov_response(ok(&both), &community, ALICE, NOW).unwrap();
    assert_eq!(current.key_period_no, period);
    let later = parse_key_prov_response(ok(&both), &community, ALICE, NOW + PERIOD).unwrap();
    assert_eq!(later.key_period_no, period + 1);

    // D.2.4 form: keys for the period containing a given time.
    let at = kms.handle(
        &key_prov_request_at(KMS_URI, ALICE, ALICE_TOKEN, NOW, NOW + PERIOD),
        NOW,
    );
    let sets = parse_key_prov_response_all(ok(&at), &community, ALICE).unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].key_period_no, period + 1);
    // A response without the current period is refused for "now".
    assert_eq!(
        parse_key_prov_response(ok(&at), &community, ALICE, NOW).unwrap_err(),
        KmsError::NoKeySetForPeriod(period)
    );

    // Neither past nor far-future periods are issued.
    for t in [NOW - PERIOD, NOW + 2 * PERIOD] {
        let r = kms.handle(
            &key_prov_request_at(KMS_URI, ALICE, ALICE_TOKEN, NOW, t),
            NOW,
        );
        assert_eq!(r.status, 403);
    }
    // The user in the D.2.4 path must be the authenticated one; Streamwide's
    // client puts it there unencoded.
    let mut other = key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
    other.path = format!("{}/{BOB}", mcx_kms::KEY_PROV_PATH);
    assert_eq!(kms.handle(&other, NOW).status, 403);
    other.path = format!("{}/{ALICE}", mcx_kms::KEY_PROV_PATH);
    assert_eq!(kms.handle(&other, NOW).status, 200);
    other.path = format!("{}/{ALICE}/nothex", mcx_kms::KEY_PROV_PATH);
    assert_eq!(kms.handle(&other, NOW).status, 400);
    other.path = format!("{}/{ALICE}/D6B4323200000000/x", mcx_kms::KEY_PROV_PATH);
    assert_eq!(kms.handle(&other, NOW).status, 404);
}

#[test]
fn community_survives_reopen() {
    let db = TempDb::new("reopen");
    let (kpak, z, uid) = {
        let mut kms =
            Kms::open(Some(&db.0), Some(&store_key()), config(), &mut TestRng(11)).unwrap();
        let alice = provision(&mut kms, ALICE, ALICE_TOKEN);
        let public = kms.community_public();
        (public.kpak, public.sakke_public.clone(), alice.uid)
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db.0).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "database readable by others: {mode:o}");
    }
    // Another RNG: a regenerated community would differ.
    let kms = Kms::open(Some(&db.0), Some(&store_key()), config(), &mut TestRng(99)).unwrap();
    assert_eq!(kms.community_public().kpak, kpak);
    assert_eq!(kms.community_public().sakke_public, z);
    // Keys issued after the restart validate against the old certificate.
    let community = kms.community_public().clone();
    let prov = kms.handle(&key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    let alice = parse_key_prov_response(ok(&prov), &community, ALICE, NOW).unwrap();
    assert_eq!(alice.uid, uid);
    assert_eq!(kms.issued().unwrap().len(), 2);
    drop(kms);

    // A configuration that would change every UID is refused.
    let mut other = config();
    other.key_period_len = PERIOD * 2;
    assert!(matches!(
        Kms::open(Some(&db.0), Some(&store_key()), other, &mut TestRng(1)),
        Err(KmsError::Config(_))
    ));
    let mut other = config();
    other.kms_uri = "kms.other.org".into();
    assert!(matches!(
        Kms::open(Some(&db.0), Some(&store_key()), other, &mut TestRng(1)),
        Err(KmsError::Config(_))
    ));

    // Users follow the configuration: a removed user loses access, a
    // changed token takes effect.
    let mut fewer = config();
    fewer.users.retain(|u| u.uri == ALICE);
    fewer.users[0].token = "alice-new-token".into();
    let kms = Kms::open(Some(&db.0), Some(&store_key()), fewer, &mut TestRng(2)).unwrap();
    let r = kms.handle(&key_prov_request(KMS_URI, BOB, BOB_TOKEN, NOW), NOW);
    assert_eq!(r.status, 401);
    let r = kms.handle(&key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    assert_eq!(r.status, 401);
    let r = kms.handle(
        &key_prov_request(KMS_URI, ALICE, "alice-new-token", NOW),
        NOW,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn same_seed_replays() {
    let a = Kms::open(None, None, config(), &mut TestRng(5)).unwrap();
    let b = Kms::open(None, None, config(), &mut TestRng(5)).unwrap();
    let req = key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
    assert_eq!(a.handle(&req, NOW), b.handle(&req, NOW));
}

/// One key set per user and key period: asking again in the same period
/// returns the same SSK, PVT and RSK (a new PVT each time would make every
/// earlier signature's PVT one of many valid ones, and clients that
/// re-provision would hold keys that differ from their peers' view); the
/// next period has other keys. The issued keys survive a restart.
#[test]
fn same_keys_within_a_key_period() {
    let db = TempDb::new("stable");
    let kms = Kms::open(Some(&db.0), Some(&store_key()), config(), &mut TestRng(5)).unwrap();
    let community = kms.community_public().clone();
    let req = key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
    let first =
        parse_key_prov_response(ok(&kms.handle(&req, NOW)), &community, ALICE, NOW).unwrap();
    let later = NOW + 60;
    let again = kms.handle(&key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, later), later);
    let again = parse_key_prov_response(ok(&again), &community, ALICE, later).unwrap();
    assert_eq!(first.pvt, again.pvt);
    assert_eq!(first.ssk.to_bytes(), again.ssk.to_bytes());
    assert_eq!(first.rsk.to_bytes(), again.rsk.to_bytes());
    // Bob's keys are his own.
    let bob = kms.handle(&key_prov_request(KMS_URI, BOB, BOB_TOKEN, NOW), NOW);
    let bob = parse_key_prov_response(ok(&bob), &community, BOB, NOW).unwrap();
    assert_ne!(bob.pvt, first.pvt);
    // Next period: other keys.
    let next_t = NOW + PERIOD;
    let next = kms.handle(
        &key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, next_t),
        next_t,
    );
    let next = parse_key_prov_response(ok(&next), &community, ALICE, next_t).unwrap();
    assert_ne!(next.key_period_no, first.key_period_no);
    assert_ne!(next.pvt, first.pvt);
    assert_ne!(next.ssk.to_bytes(), first.ssk.to_bytes());
    kms.close().unwrap();
    // After a restart (another DRBG seed), the same keys again.
    let kms = Kms::open(Some(&db.0), Some(&store_key()), config(), &mut TestRng(6)).unwrap();
    let after =
        parse_key_prov_response(ok(&kms.handle(&req, NOW)), &community, ALICE, NOW).unwrap();
    assert_eq!(after.pvt, first.pvt);
    assert_eq!(after.ssk.to_bytes(), first.ssk.to_bytes());
    // Every request is still in the audit log.
    assert_eq!(kms.issued().unwrap().len(), 5);
}

/// The database file holds no secret in clear: neither the community
/// secrets (KSAK, z) nor any issued SSK or RSK appear in its octets
/// (nor in a WAL/journal, which `close` leaves none of).
#[test]
fn store_file_holds_no_plaintext_secret() {
    let db = TempDb::new("sealed");
    let kms = Kms::open(Some(&db.0), Some(&store_key()), config(), &mut TestRng(21)).unwrap();
    let community = kms.community_public().clone();
    let alice = kms.handle(&key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    let alice = parse_key_prov_response(ok(&alice), &community, ALICE, NOW).unwrap();
    kms.close().unwrap();
    let file = std::fs::read(&db.0).unwrap();
    let contains = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
    let ssk = alice.ssk.to_bytes();
    let rsk = alice.rsk.to_bytes();
    assert!(!contains(&ssk[..]), "SSK in clear");
    assert!(!contains(&rsk[..]), "RSK in clear");
    // The community secrets, as the same RNG generates them (after the
    // nonce of the store's check record).
    let mut rng = TestRng(21);
    rand_core::Rng::fill_bytes(&mut rng, &mut [0u8; 12]);
    let twin = mcx_ibc::kms::Community::generate(KMS_URI, PERIOD, 0, &mut rng).unwrap();
    assert_eq!(twin.public().kpak, community.kpak, "twin differs");
    assert!(!contains(&twin.ksak().to_bytes()[..]), "KSAK in clear");
    assert!(!contains(&twin.sakke_master().to_bytes()[..]), "z in clear");
    // The PVT is public and is stored as it is (the test can see it).
    assert!(contains(&alice.pvt.to_bytes()));
}

/// A store file needs the operator's key: none → a clear error naming
/// the variables; another key → "store key does not open this store";
/// neither touches the file's contents.
#[test]
fn store_key_missing_or_wrong_is_refused() {
    let db = TempDb::new("keyed");
    assert_eq!(
        Kms::open(Some(&db.0), None, config(), &mut TestRng(1)).unwrap_err(),
        KmsError::StoreKey(StoreKeyError::Missing)
    );
    let kms = Kms::open(Some(&db.0), Some(&store_key()), config(), &mut TestRng(1)).unwrap();
    kms.close().unwrap();
    let before = std::fs::read(&db.0).unwrap();
    let wrong = StoreKey::from_bytes([0xa5; 32]);
    let err = Kms::open(Some(&db.0), Some(&wrong), config(), &mut TestRng(2)).unwrap_err();
    assert_eq!(err, KmsError::StoreKey(StoreKeyError::WrongKey));
    assert_eq!(err.to_string(), "store key does not open this store");
    assert_eq!(
        Kms::open(Some(&db.0), None, config(), &mut TestRng(2)).unwrap_err(),
        KmsError::StoreKey(StoreKeyError::Missing)
    );
    assert!(
        KmsError::StoreKey(StoreKeyError::Missing)
            .to_string()
            .contains("MCX_STORE_KEY")
    );
    assert!(
        std::fs::read(&db.0).unwrap() == before,
        "a refused open changed the store"
    );
    // The right key still opens it.
    Kms::open(Some(&db.0), Some(&store_key()), config(), &mut TestRng(3)).unwrap();
}

/// The store file and SQLite's companions are owner-only from the start:
/// right after open, before any request, the file is 0600; a WAL made
/// while it runs is too.
#[cfg(unix)]
#[test]
fn store_file_is_owner_only_from_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let db = TempDb::new("mode");
    let kms = Kms::open(Some(&db.0), Some(&store_key()), config(), &mut TestRng(4)).unwrap();
    let mode = std::fs::metadata(&db.0).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "database mode {mode:o}");
    drop(kms);
    // SQLite gives its -wal and -shm files the database file's mode.
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    conn.execute("CREATE TABLE probe (x)", []).unwrap();
    let wal = db.0.with_extension("sqlite-wal");
    let mode = std::fs::metadata(&wal).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "WAL mode {mode:o}");
    drop(conn);
}

fn assert_no_keys(body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    for element in [
        "KmsKeySet",
        "UserDecryptKey",
        "UserSigningKeySSK",
        "PubAuthKey",
    ] {
        assert!(!text.contains(element), "{text}");
    }
}

#[test]
fn authentication_failures() {
    let kms = kms();
    let good = key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
    let cases = [
        (with_header(good.clone(), "authorization", None), 401),
        (
            with_header(good.clone(), "authorization", Some("Bearer")),
            401,
        ),
        (
            with_header(good.clone(), "authorization", Some("Bearer ")),
            401,
        ),
        (
            with_header(good.clone(), "authorization", Some("Basic YWxpY2U6eA==")),
            401,
        ),
        (
            with_header(good.clone(), "authorization", Some("Bearer wrong-token")),
            401,
        ),
        (
            with_header(
                good.clone(),
                "authorization",
                Some(&format!("Bearer {ALICE_TOKEN}x")),
            ),
            401,
        ),
        // Bob's token, Alice's UserUri.
        (key_prov_request(KMS_URI, ALICE, BOB_TOKEN, NOW), 403),
        // Alice's token, Bob's UserUri.
        (key_prov_request(KMS_URI, BOB, ALICE_TOKEN, NOW), 403),
        (init_request(KMS_URI, BOB, ALICE_TOKEN, NOW), 403),
        (init_request(KMS_URI, ALICE, "nope", NOW), 401),
    ];
    for (request, status) in cases {
        let response = kms.handle(&request, NOW);
        assert_eq!(response.status, status, "{request:?}");
        assert!(response.content_type.starts_with("text/plain"));
        assert!(!response.body.is_empty(), "no reason given");
        assert_no_keys(&response.body);
    }
    assert!(kms.issued().unwrap().is_empty());
    // The scheme is case-insensitive.
    let lower = with_header(
        good,
        "Authorization",
        Some(&format!("bearer {ALICE_TOKEN}")),
    );
    assert_eq!(kms.handle(&lower, NOW).status, 200);
}

#[test]
fn routing_and_request_checks() {
    let kms = kms();
    let good = init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);

    let mut wrong_path = good.clone();
    wrong_path.path = "/keymanagement/identity/v1/certcache".into();
    assert_eq!(kms.handle(&wrong_path, NOW).status, 404);
    wrong_path.path = "/keymanagement/identity/v1/initx".into();
    assert_eq!(kms.handle(&wrong_path, NOW).status, 404);

    let mut get = good.clone();
    get.method = "GET".into();
    assert_eq!(kms.handle(&get, NOW).status, 405);
    // The path is checked before authentication, the method too.
    let mut anon = HttpRequest::new("GET", mcx_kms::INIT_PATH);
    assert_eq!(kms.handle(&anon, NOW).status, 405);
    anon.method = "POST".into();
    assert_eq!(kms.handle(&anon, NOW).status, 401);

    let other_kms = init_request("kms.other.org", ALICE, ALICE_TOKEN, NOW);
    let r = kms.handle(&other_kms, NOW);
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("KmsUri"));

    // A malformed body is a 400 naming the problem.
    let mut missing = good.clone();
    missing.body = String::from_utf8(good.body.clone())
        .unwrap()
        .replace(&format!("<KmsUri>{KMS_URI}</KmsUri>"), "")
        .into_bytes();
    let r = kms.handle(&missing, NOW);
    assert_eq!(r.status, 400);
    let reason = String::from_utf8(r.body).unwrap();
    assert!(reason.contains("KmsUri"), "{reason}");

    let mut wrong_root = good.clone();
    wrong_root.body = String::from_utf8(good.body)
        .unwrap()
        .replace("KmsRequest", "KmsResponse")
        .into_bytes();
    let r = kms.handle(&wrong_root, NOW);
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("KmsRequest"));
}

#[test]
fn malformed_truncated_and_oversized_bodies_are_400() {
    let kms = kms();
    let good = key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
    // Every proper, non-empty prefix of a valid request (an empty body is
    // the token's user's request: `empty_body_is_the_token_users_request`).
    for len in 1..good.body.len() {
        let mut truncated = good.clone();
        truncated.body.truncate(len);
        let text = String::from_utf8_lossy(&truncated.body);
        // Cutting only trailing whitespace leaves a valid document.
        if text.trim_end().ends_with("</KmsRequest>") {
            continue;
        }
        let response = kms.handle(&truncated, NOW);
        assert_eq!(response.status, 400, "prefix of {len} octets");
        assert_no_keys(&response.body);
    }
    let mut big = good.clone();
    big.body = format!(
        "<KmsRequest xmlns=\"{}\">{}</KmsRequest>",
        mcx_kms::xml::NAMESPACE,
        " ".repeat(mcx_kms::xml::MAX_DOCUMENT_LEN)
    )
    .into_bytes();
    let r = kms.handle(&big, NOW);
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("limit"));
    let mut latin1 = good.clone();
    latin1.body = b"<KmsRequest>\xe9</KmsRequest>".to_vec();
    assert_eq!(kms.handle(&latin1, NOW).status, 400);
    let mut bomb = good;
    bomb.body = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><KmsRequest>&lol2;</KmsRequest>"#.to_vec();
    let r = kms.handle(&bomb, NOW);
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("document type"));
    assert!(kms.issued().unwrap().is_empty());
}

/// Flips one hex digit of the text of `element` in a response body.
fn tamper(body: &[u8], element: &str, nth_digit: usize) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let open = format!("<{element}>");
    let start = text.find(&open).unwrap() + open.len() + nth_digit;
    let mut bytes = text.into_bytes();
    bytes[start] = if bytes[start] == b'0' { b'1' } else { b'0' };
    bytes
}

#[test]
fn tampered_key_sets_are_rejected() {
    let kms = kms();
    let community = kms.community_public().clone();
    let response = kms.handle(&key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    let body = ok(&response).to_vec();
    parse_key_prov_response(&body, &community, ALICE, NOW).unwrap();

    // A flipped SSK still decodes as a scalar but no longer validates.
    for digit in [0, 17, 63] {
        let bad = tamper(&body, "UserSigningKeySSK", digit);
        assert_eq!(
            parse_key_prov_response(&bad, &community, ALICE, NOW).unwrap_err(),
            KmsError::KeyValidation("UserSigningKeySSK with UserPubTokenPVT")
        );
    }
    // A flipped RSK is off the curve, or validates no more.
    for digit in [2, 100, 300, 513] {
        let bad = tamper(&body, "UserDecryptKey", digit);
        let err = parse_key_prov_response(&bad, &community, ALICE, NOW).unwrap_err();
        assert!(
            matches!(err, KmsError::KeyValidation(_) | KmsError::Crypto(_)),
            "{err:?}"
        );
    }
    let bad = tamper(&body, "UserPubTokenPVT", 40);
    assert!(parse_key_prov_response(&bad, &community, ALICE, NOW).is_err());
    let bad = tamper(&body, "UserID", 5);
    assert!(matches!(
        parse_key_prov_response(&bad, &community, ALICE, NOW).unwrap_err(),
        KmsError::Mismatch { what, .. } if what.starts_with("KmsKeySet UserID")
    ));
    // Alice's keys are not Bob's.
    assert!(matches!(
        parse_key_prov_response(&body, &community, BOB, NOW).unwrap_err(),
        KmsError::Mismatch {
            what: "KmsResponse UserUri",
            ..
        }
    ));
    // Keys from another KMS do not validate under this community.
    let other = Kms::open(None, None, config(), &mut TestRng(77)).unwrap();
    let foreign = other.handle(&key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    assert!(matches!(
        parse_key_prov_response(ok(&foreign), &community, ALICE, NOW).unwrap_err(),
        KmsError::KeyValidation(_)
    ));
    // An init response is not a key provisioning response, and vice versa.
    let init = kms.handle(&init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    assert_eq!(
        parse_key_prov_response(ok(&init), &community, ALICE, NOW).unwrap_err(),
        KmsError::Xml(XmlError::Missing {
            parent: "KmsMessage",
            element: "KmsKeyProv"
        })
    );
    assert!(parse_init_response(&body, KMS_URI).is_err());
    assert!(matches!(
        parse_init_response(ok(&init), "kms.other.org").unwrap_err(),
        KmsError::Mismatch { .. }
    ));
}

#[test]
fn debug_never_prints_secrets() {
    let kms = kms();
    let config = config();
    let user = KmsUser {
        uri: ALICE.into(),
        token: ALICE_TOKEN.into(),
        security: None,
    };
    let request = key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
    let response = kms.handle(&request, NOW);
    let set = match mcx_kms::xml::KmsResponse::from_xml(ok(&response))
        .unwrap()
        .message
    {
        mcx_kms::xml::KmsMessage::KeyProv(mut sets) => sets.remove(0),
        other => panic!("{other:?}"),
    };
    let ssk_hex = hex::encode_upper(&*set.user_signing_key_ssk);
    let rsk_hex = hex::encode_upper(&*set.user_decrypt_key);
    assert!(String::from_utf8_lossy(&response.body).contains(&ssk_hex));

    let printed = [
        format!("{kms:?}"),
        format!("{config:?}"),
        format!("{user:?}"),
        format!("{request:?}"),
        format!("{response:?}"),
        format!("{set:?}"),
        format!("{kms:#?} {config:#?} {request:#?}"),
    ];
    for text in printed {
        for secret in [
            ALICE_TOKEN,
            BOB_TOKEN,
            &ssk_hex,
            &rsk_hex,
            &ssk_hex.to_lowercase(),
        ] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    assert!(format!("{kms:?}").contains(KMS_URI));
    assert!(format!("{user:?}").contains(ALICE));
}

#[test]
fn service_types_can_move_to_a_driver_task() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Kms>();
    assert_send::<mcx_kms::KmsConfig>();
    assert_send::<HttpRequest>();
    assert_send::<mcx_kms::http::HttpResponse>();
}

#[test]
fn bad_configurations_are_refused() {
    let mut rng = TestRng(3);
    let mut c = config();
    c.kms_uri = " ".into();
    assert!(matches!(
        Kms::open(None, None, c, &mut rng),
        Err(KmsError::Config(_))
    ));
    let mut c = config();
    c.key_period_len = 0;
    assert!(matches!(
        Kms::open(None, None, c, &mut rng),
        Err(KmsError::Config(_))
    ));
    let mut c = config();
    c.users[1].token = ALICE_TOKEN.into();
    assert!(matches!(
        Kms::open(None, None, c, &mut rng),
        Err(KmsError::Config(_))
    ));
    let mut c = config();
    c.users[1].uri = ALICE.into();
    assert!(matches!(
        Kms::open(None, None, c, &mut rng),
        Err(KmsError::Config(_))
    ));
    let mut c = config();
    c.users[0].token.clear();
    assert!(matches!(
        Kms::open(None, None, c, &mut rng),
        Err(KmsError::Config(_))
    ));
}

#[test]
#[ignore = "prints sample documents for docs/kms.md"]
fn print_samples() {
    let kms = Kms::open(None, None, config(), &mut TestRng(8)).unwrap();
    let req = key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
    println!("{}", String::from_utf8_lossy(&req.body));
    let init = kms.handle(&init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    println!("{}", String::from_utf8_lossy(&init.body));
    println!("{}", String::from_utf8_lossy(&kms.handle(&req, NOW).body));
}

/// libmikey-sakke (Streamwide) POSTs with an empty body when it does not
/// use the security extension: the KMS answers for the token's user.
#[test]
fn empty_body_is_the_token_users_request() {
    let kms = kms();
    let init = kms.handle(&init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    let community = parse_init_response(ok(&init), KMS_URI).unwrap();
    let mut empty = key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
    empty.body.clear();
    let response = kms.handle(&empty, NOW);
    let keys = parse_key_prov_response(ok(&response), &community, ALICE, NOW).unwrap();
    assert_eq!(keys.user_uri, ALICE);
    // Still only ever the token's own user: Bob's token gets Bob's keys.
    let mut bob = key_prov_request(KMS_URI, ALICE, BOB_TOKEN, NOW);
    bob.body.clear();
    let response = kms.handle(&bob, NOW);
    assert!(parse_key_prov_response(ok(&response), &community, ALICE, NOW).is_err());
    parse_key_prov_response(ok(&response), &community, BOB, NOW).unwrap();
    // Without a token, nothing.
    let mut anonymous = HttpRequest::new("POST", mcx_kms::KEY_PROV_PATH);
    anonymous.body.clear();
    assert_eq!(kms.handle(&anonymous, NOW).status, 401);
}

/// Requests are answered concurrently (`Kms::handle` takes `&self`, the
/// KMS is shared across threads), and concurrent first requests of one
/// user in one key period still get one key set: every answer carries the
/// same keys, and each issue is in the audit log.
#[test]
fn concurrent_requests_get_one_key_set_per_period() {
    let kms = kms();
    let community = kms.community_public().clone();
    let answers: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let kms = &kms;
                let (user, token) = if i % 2 == 0 {
                    (ALICE, ALICE_TOKEN)
                } else {
                    (BOB, BOB_TOKEN)
                };
                s.spawn(move || {
                    ok(&kms.handle(&key_prov_request(KMS_URI, user, token, NOW), NOW)).to_vec()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let rsks: Vec<(String, Vec<u8>)> = answers
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let user = if i % 2 == 0 { ALICE } else { BOB };
            let keys = parse_key_prov_response(body, &community, user, NOW).unwrap();
            (user.to_owned(), keys.rsk.to_bytes().to_vec())
        })
        .collect();
    for (user, rsk) in &rsks {
        let first = rsks.iter().find(|(u, _)| u == user).unwrap();
        assert_eq!(rsk, &first.1, "{user} got two key sets in one period");
    }
    assert_ne!(rsks[0].1, rsks[1].1);
    assert_eq!(kms.issued().unwrap().len(), 6);
}
