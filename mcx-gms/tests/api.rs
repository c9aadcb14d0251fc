//! The GMS through its public API: members fetch their index and group
//! documents and accept the GKTPs as the client does; everyone else is
//! refused; GMKs persist and rotate.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mcx_gms::client::{
    check_response, group_document_request, group_index_request, parse_group_document,
    parse_group_index,
};
use mcx_gms::doc::{self, Document};
use mcx_gms::{DocError, Gms, GmsError, GmsUser};
use mcx_kms::http::HttpRequest;
use mcx_mikey::Message;
use mcx_mikey::wire::DataType;

fn fetch_gktp(gms: &mut Gms, w: &mut World, member: &str, group: &str, now: u64) -> Vec<u8> {
    let mut gktps = fetch_gktps(gms, w, member, group, now);
    assert_eq!(gktps.len(), 1);
    gktps.remove(0)
}

#[test]
fn members_fetch_index_and_documents_and_accept_their_gktps() {
    let mut w = World::new(1);
    let mut gms = w.open(None, default_config(), UNIX0);
    let now = UNIX0 + 10;

    // Index.
    let r = gms.handle(&group_index_request(ALICE, &token(ALICE)), now, &mut w.rng);
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(r.content_type, doc::INDEX_CONTENT_TYPE);
    assert_eq!(
        parse_group_index(&r.body).unwrap(),
        vec![GROUP_A.to_owned()]
    );
    let r = gms.handle(
        &group_index_request(DISPATCHER, &token(DISPATCHER)),
        now,
        &mut w.rng,
    );
    assert_eq!(
        parse_group_index(&r.body).unwrap(),
        vec![GROUP_A.to_owned(), GROUP_B.to_owned()]
    );
    let r = gms.handle(&group_index_request(EVE, &token(EVE)), now, &mut w.rng);
    assert_eq!(parse_group_index(&r.body).unwrap(), Vec::<String>::new());

    // Document of group A for Alice: members, display name, her GKTP.
    let r = gms.handle(
        &group_document_request(GROUP_A, &token(ALICE)),
        now,
        &mut w.rng,
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
    let d = parse_group_document(&r.body).unwrap();
    assert_eq!(d.display_name, "Group A & friends");
    assert_eq!(d.members, vec![ALICE, BOB, DISPATCHER]);
    let full = Document::parse(&r.body).unwrap();
    assert_eq!(full.gktps.len(), 1);
    assert_eq!(full.gktps[0].id, ALICE);
    assert_eq!(full.gktps[0].activation_time, Some(UNIX0));

    let a_alice = w.accept(ALICE, &d.gktps[0], now);
    let gmk_id_a = gms.gmk_id(GROUP_A).unwrap();
    assert_eq!(a_alice.gmk_id, gmk_id_a);
    assert_eq!(gmk_id_a.0 >> 28, 0, "GMK-ID purpose tag 0");
    let kp = a_alice.key_params.as_ref().unwrap();
    assert_eq!(kp.activation_time, UNIX0);
    assert_eq!(kp.expiry_time, 0);
    assert!(a_alice.policy.is_some());

    // Every member of A gets the same GMK and GMK-ID.
    for m in [BOB, DISPATCHER] {
        let g = fetch_gktp(&mut gms, &mut w, m, GROUP_A, now);
        let got = w.accept(m, &g, now);
        assert_eq!(got.gmk_id, gmk_id_a);
        assert_eq!(got.gmk, a_alice.gmk);
    }
    // Group B has another GMK.
    let g = fetch_gktp(&mut gms, &mut w, DISPATCHER, GROUP_B, now);
    let b = w.accept(DISPATCHER, &g, now);
    assert_eq!(b.gmk_id, gms.gmk_id(GROUP_B).unwrap());
    assert_ne!(b.gmk_id, gmk_id_a);
    assert_ne!(b.gmk, a_alice.gmk);

    // A GKTP is encrypted to its member: Bob cannot accept Alice's.
    assert!(w.try_accept(BOB, &d.gktps[0], now).is_err());
    // Each request builds a fresh message (the client's replay cache
    // would refuse a repeated one), all logged.
    let again = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, now);
    assert_ne!(again, d.gktps[0]);
    assert_eq!(gms.gktps_issued(ALICE, gmk_id_a).unwrap(), 2);
}

#[test]
fn gktp_hex_in_the_document_is_a_mikey_sakke_i_message() {
    let mut w = World::new(2);
    let gms = w.open(None, default_config(), UNIX0);
    let r = gms.handle(
        &group_document_request(GROUP_A, &token(BOB)),
        UNIX0,
        &mut w.rng,
    );
    let text = body_text(&r);
    // The hexBinary as written (upper case, canonical).
    let start = text.find("<mgktp:GKTP ").unwrap();
    let open_end = start + text[start..].find('>').unwrap() + 1;
    let close = open_end + text[open_end..].find("</mgktp:GKTP>").unwrap();
    let hex_text = &text[open_end..close];
    assert!(
        hex_text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
    );
    let bytes = hex::decode(hex_text).unwrap();
    let msg = Message::decode(&bytes).unwrap();
    assert_eq!(msg.hdr.data_type, DataType::Sakke);
    assert!(msg.sakke().is_some() && msg.sign().is_some() && msg.rand().is_some());
    assert!(text.contains(&format!("xmlns:mgktp=\"{}\"", doc::GKTP_NS)));
    assert!(text.contains("<mgktp:GKTPs>") && text.contains("<mgktp:GMK-GKTPs>"));
    assert!(text.contains(&format!("id=\"{BOB}\"")));
}

#[test]
fn non_members_get_403_and_no_gktp() {
    let mut w = World::new(3);
    let gms = w.open(None, default_config(), UNIX0);
    for (user, group) in [(EVE, GROUP_A), (CAROL, GROUP_A), (ALICE, GROUP_B)] {
        let r = gms.handle(
            &group_document_request(group, &token(user)),
            UNIX0,
            &mut w.rng,
        );
        assert_eq!(r.status, 403, "{user} {group}");
        assert!(!body_text(&r).contains("GKTP"));
        assert!(!r.body.windows(4).any(|x| x == b"011A" || x == b"011a"));
    }
    assert_eq!(
        gms.gktps_issued(EVE, gms.gmk_id(GROUP_A).unwrap()).unwrap(),
        0
    );
}

#[test]
fn authentication_and_authorisation() {
    let mut w = World::new(4);
    let gms = w.open(None, default_config(), UNIX0);
    let index = group_index_request(ALICE, &token(ALICE)).path;
    let document = group_document_request(GROUP_A, &token(ALICE)).path;
    for path in [&index, &document] {
        // Missing, wrong, other scheme, empty.
        assert_eq!(gms.handle(&get(path, None), UNIX0, &mut w.rng).status, 401);
        assert_eq!(
            gms.handle(&get(path, Some("nope")), UNIX0, &mut w.rng)
                .status,
            401
        );
        let short = &token(ALICE)[..token(ALICE).len() - 1];
        assert_eq!(
            gms.handle(&get(path, Some(short)), UNIX0, &mut w.rng)
                .status,
            401
        );
        let mut basic = get(path, None);
        basic
            .headers
            .push(("Authorization".into(), format!("Basic {}", token(ALICE))));
        assert_eq!(gms.handle(&basic, UNIX0, &mut w.rng).status, 401);
        let mut empty = get(path, None);
        empty
            .headers
            .push(("Authorization".into(), "Bearer ".into()));
        assert_eq!(gms.handle(&empty, UNIX0, &mut w.rng).status, 401);
    }
    // Bob's token on Alice's index: user mismatch.
    let r = gms.handle(&get(&index, Some(&token(BOB))), UNIX0, &mut w.rng);
    assert_eq!(r.status, 403);
    assert!(body_text(&r).contains("another user"));
    // A 401 wins over a 404 for unknown groups (no probing without a token).
    let unknown = group_document_request("sip:nope@mcx.test", "x").path;
    assert_eq!(
        gms.handle(&get(&unknown, None), UNIX0, &mut w.rng).status,
        401
    );
}

#[test]
fn bad_input_gets_400_404_405_with_reasons() {
    let mut w = World::new(5);
    let gms = w.open(None, default_config(), UNIX0);
    let t = Some(token(ALICE));
    let t = t.as_deref();
    let cases: Vec<(HttpRequest, u16, &str)> = vec![
        (get("/", t), 404, "no such resource"),
        (
            get("/org.openmobilealliance.groups/users/x", t),
            404,
            "no such resource",
        ),
        (
            get(
                "/org.openmobilealliance.groups/global/sip%3Anope%40mcx.test",
                t,
            ),
            404,
            "no such group",
        ),
        (
            get("/org.openmobilealliance.groups/global/sip%3Ag%zz", t),
            400,
            "percent-escape",
        ),
        (
            get("/org.openmobilealliance.groups/global/nocolon", t),
            400,
            "no scheme",
        ),
        (
            get("/org.openmobilealliance.groups/global/sip%3Aa%00b", t),
            400,
            "control",
        ),
        (
            get("/org.openmobilealliance.groups/global/sip%3Aa%FFb", t),
            400,
            "UTF-8",
        ),
        (
            get(
                "/org.openmobilealliance.groups/users/sip%3Aalice%40mcx.test/index?x=1",
                t,
            ),
            400,
            "query",
        ),
        (get(&format!("/{}", "a".repeat(5000)), t), 400, "too long"),
        (
            HttpRequest {
                method: "POST".into(),
                ..group_index_request(ALICE, &token(ALICE))
            },
            405,
            "GET",
        ),
        (
            HttpRequest {
                method: "PUT".into(),
                ..group_document_request(GROUP_A, &token(ALICE))
            },
            405,
            "GET",
        ),
    ];
    for (req, status, reason) in cases {
        let r = gms.handle(&req, UNIX0, &mut w.rng);
        assert_eq!(
            r.status,
            status,
            "{} {}: {}",
            req.method,
            req.path,
            body_text(&r)
        );
        assert!(r.content_type.starts_with("text/plain"));
        assert!(
            body_text(&r).contains(reason),
            "{}: {}",
            req.path,
            body_text(&r)
        );
    }
}

#[test]
fn gms_is_send() {
    fn send<T: Send>() {}
    send::<Gms>();
}

#[test]
fn gmks_persist_across_reopen() {
    let db = TempDb::new("persist");
    let mut w = World::new(6);
    let (id_a, id_b, gmk) = {
        let mut gms = w.open(Some(&db.0), default_config(), UNIX0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&db.0).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "database readable by others: {mode:o}");
        }
        let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, UNIX0);
        let got = w.accept(ALICE, &g, UNIX0);
        (
            gms.gmk_id(GROUP_A).unwrap(),
            gms.gmk_id(GROUP_B).unwrap(),
            got.gmk,
        )
    };
    let later = UNIX0 + 3_600;
    let mut w2 = World {
        rng: TestRng(0xdead),
        ..World::new(6)
    };
    let mut gms = w2.open(Some(&db.0), default_config(), later);
    assert_eq!(gms.gmk_id(GROUP_A), Some(id_a));
    assert_eq!(gms.gmk_id(GROUP_B), Some(id_b));
    for m in [ALICE, BOB] {
        let g = fetch_gktp(&mut gms, &mut w2, m, GROUP_A, later);
        let got = w2.accept(m, &g, later);
        assert_eq!(got.gmk_id, id_a);
        assert_eq!(got.gmk, gmk);
    }
    // The issue log persisted too.
    assert_eq!(gms.gktps_issued(ALICE, id_a).unwrap(), 2);
}

/// The GMS store holds its GMKs sealed under the operator's key: the
/// GMK a member unwraps appears nowhere in the file's octets; the file is
/// 0600 right after open.
#[test]
fn gmks_are_sealed_at_rest() {
    let db = TempDb::new("sealed");
    let mut w = World::new(16);
    let mut gms = w.open(Some(&db.0), default_config(), UNIX0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db.0).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "database mode {mode:o}");
    }
    let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, UNIX0);
    let gmk = w.accept(ALICE, &g, UNIX0).gmk;
    gms.close().unwrap();
    let file = std::fs::read(&db.0).unwrap();
    let gmk = gmk.as_bytes();
    assert!(
        !file.windows(gmk.len()).any(|w| w == &gmk[..]),
        "GMK in clear in the store"
    );
}

/// A GMS store file needs the operator's key: none → the clear "no store
/// key" error; another key → "store key does not open this store", and
/// the file is left as it was.
#[test]
fn gms_store_key_missing_or_wrong_is_refused() {
    let db = TempDb::new("keyed");
    let mut w = World::new(17);
    let err = w
        .try_open(Some(&db.0), None, default_config(), UNIX0)
        .unwrap_err();
    assert_eq!(err, GmsError::StoreKey(mcx_kms::StoreKeyError::Missing));
    w.open(Some(&db.0), default_config(), UNIX0)
        .close()
        .unwrap();
    let before = std::fs::read(&db.0).unwrap();
    let wrong = mcx_kms::StoreKey::from_bytes([0x11; 32]);
    let err = w
        .try_open(Some(&db.0), Some(&wrong), default_config(), UNIX0)
        .unwrap_err();
    assert_eq!(err.to_string(), "store key does not open this store");
    assert!(
        std::fs::read(&db.0).unwrap() == before,
        "a refused open changed the store"
    );
    w.open(Some(&db.0), default_config(), UNIX0);
}

#[test]
fn removing_a_member_replaces_the_gmk() {
    let db = TempDb::new("remove");
    let mut w = World::new(7);
    let (old_id, old_gmk, id_b) = {
        let mut gms = w.open(Some(&db.0), default_config(), UNIX0);
        let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, UNIX0);
        (
            gms.gmk_id(GROUP_A).unwrap(),
            w.accept(ALICE, &g, UNIX0).gmk,
            gms.gmk_id(GROUP_B).unwrap(),
        )
    };
    let now = UNIX0 + 60;
    let mut gms = w.open(Some(&db.0), config(&[ALICE, DISPATCHER], 0), now);
    let new_id = gms.gmk_id(GROUP_A).unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(
        gms.gmk_id(GROUP_B),
        Some(id_b),
        "other groups keep their GMK"
    );
    let r = gms.handle(
        &group_document_request(GROUP_A, &token(BOB)),
        now,
        &mut w.rng,
    );
    assert_eq!(r.status, 403);
    let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, now);
    let got = w.accept(ALICE, &g, now);
    assert_eq!(got.gmk_id, new_id);
    assert_ne!(got.gmk, old_gmk);
    // Adding a member back does not rotate.
    drop(gms);
    let gms = w.open(Some(&db.0), default_config(), now + 1);
    assert_eq!(gms.gmk_id(GROUP_A), Some(new_id));
}

#[test]
fn an_expired_gmk_is_replaced_on_demand() {
    let mut w = World::new(8);
    let mut gms = w.open(None, config(&[ALICE, BOB, DISPATCHER], 3_600), UNIX0);
    let first = gms.gmk_id(GROUP_A).unwrap();
    // Asked in the first half of its life only: no next GMK was made.
    let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, UNIX0 + 1_799);
    let got = w.accept(ALICE, &g, UNIX0 + 1_799);
    assert_eq!(got.gmk_id, first);
    assert_eq!(got.key_params.as_ref().unwrap().expiry_time, UNIX0 + 3_600);

    let now = UNIX0 + 3_600;
    let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, now);
    let got = w.accept(ALICE, &g, now);
    assert_ne!(got.gmk_id, first);
    assert_eq!(gms.gmk_id(GROUP_A), Some(got.gmk_id));
    let kp = got.key_params.unwrap();
    assert_eq!((kp.activation_time, kp.expiry_time), (now, now + 3_600));
    // Bob gets the same new GMK.
    let g = fetch_gktp(&mut gms, &mut w, BOB, GROUP_A, now + 5);
    assert_eq!(w.accept(BOB, &g, now + 5).gmk, got.gmk);
}

#[test]
fn signing_keys_follow_key_periods() {
    let mut w = World::new(9);
    let mut gms = w.open(None, default_config(), UNIX0);
    let next_start = (w.period + 1) * PERIOD_LEN - 2_208_988_800; // NTP epoch to Unix
    assert_eq!(period_of(&w.kms, next_start), w.period + 1);
    let r = gms.handle(
        &group_document_request(GROUP_A, &token(ALICE)),
        next_start,
        &mut w.rng,
    );
    assert_eq!(r.status, 503, "{}", body_text(&r));
    assert!(body_text(&r).contains("key period"));

    let next = w.community.issue(GMS, w.period + 1, &mut w.rng).unwrap();
    gms.add_gms_keys(next).unwrap();
    let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, next_start);
    // Encrypted to Alice's UID of the new period.
    let got = w.accept(ALICE, &g, next_start);
    assert_eq!(Some(got.gmk_id), gms.gmk_id(GROUP_A));
    // Keys of another identity are refused.
    let other = w.community.issue(ALICE, w.period, &mut w.rng).unwrap();
    assert!(matches!(gms.add_gms_keys(other), Err(GmsError::Config(_))));
}

#[test]
fn invalid_configuration_is_refused() {
    let mut w = World::new(10);
    let period = w.period;
    let try_open = |w: &mut World, cfg, who: &str| {
        let keys = w.community.issue(who, period, &mut w.rng).unwrap();
        Gms::open(None, None, cfg, w.kms.clone(), keys, UNIX0, &mut w.rng)
    };
    // Keys of another identity.
    assert!(matches!(
        try_open(&mut w, default_config(), ALICE),
        Err(GmsError::Config(_))
    ));
    // Keys from another KMS.
    let other = mcx_ibc::kms::Community::generate(KMS_URI, PERIOD_LEN, 0, &mut w.rng).unwrap();
    let keys = other.issue(GMS, period, &mut w.rng).unwrap();
    let r = Gms::open(
        None,
        None,
        default_config(),
        w.kms.clone(),
        keys,
        UNIX0,
        &mut w.rng,
    );
    assert!(matches!(r, Err(GmsError::Keys(_))), "{r:?}");

    let mut bad = Vec::new();
    let mut c = default_config();
    c.groups.push(c.groups[0].clone());
    bad.push(c);
    let mut c = default_config();
    c.groups[0].members.push("not a uri".into());
    bad.push(c);
    let mut c = default_config();
    c.groups[0].members.push(ALICE.into());
    bad.push(c);
    let mut c = default_config();
    c.users[0].token = String::new();
    bad.push(c);
    let mut c = default_config();
    c.users[0].token = "has space".into();
    bad.push(c);
    let mut c = default_config();
    c.users[1].token = c.users[0].token.clone();
    bad.push(c);
    let mut c = default_config();
    c.gms_uri = "gms".into();
    bad.push(c);
    for cfg in bad {
        let shown = format!("{cfg:?}");
        assert!(
            matches!(try_open(&mut w, cfg, GMS), Err(GmsError::Config(_))),
            "{shown}"
        );
    }
}

#[test]
fn debug_prints_no_gmk_and_no_token() {
    let mut w = World::new(11);
    let mut gms = w.open(None, default_config(), UNIX0);
    let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, UNIX0);
    let gmk = w.accept(ALICE, &g, UNIX0).gmk;
    let shown = format!("{gms:?} {gms:#?} {:?}", default_config());
    for secret in [
        hex::encode(gmk.as_bytes()),
        hex::encode_upper(gmk.as_bytes()),
        format!("{:?}", gmk.as_bytes()),
        token(ALICE),
        token(EVE),
    ] {
        assert!(!shown.contains(&secret), "{secret} in {shown}");
    }
    assert!(shown.contains(GROUP_A) && shown.contains(ALICE));
    let u = GmsUser {
        uri: ALICE.into(),
        token: "s3cr3t".into(),
    };
    assert!(!format!("{u:?}").contains("s3cr3t"));
}

#[test]
fn a_hand_written_ts_24_481_document_parses() {
    let bytes = include_bytes!("data/group-document-ts24481.xml");
    let d = parse_group_document(bytes).unwrap();
    assert_eq!(d.group_id, "sip:fire-team-1@streamwide.com");
    assert_eq!(d.display_name, "Fire team 1 & support");
    assert_eq!(
        d.members,
        [
            "sip:alice@streamwide.com",
            "sip:bob@streamwide.com",
            "tel:+4915112345678"
        ]
    );
    // GMK-GKTPs only: not the regrouped nor the MKFC ones.
    assert_eq!(d.gktps.len(), 2);
    let full = Document::parse(bytes).unwrap();
    assert_eq!(full.gktps[0].id, "sip:alice@streamwide.com");
    assert_eq!(full.gktps[0].activation_time, Some(1_514_764_800));
    assert_eq!(full.gktps[1].activation_time, None);
    assert_eq!(
        full.gktps[1].i_message,
        [0x01, 0x1a, 0x05, 0x01, 0x0a, 0xb0, 0xc0, 0xde]
    );
    // The first is the Streamwide GMK I_MESSAGE: CSB ID = GUK-ID 06a12aea.
    let msg = Message::decode(&d.gktps[0]).unwrap();
    assert_eq!(msg.hdr.csb_id, 0x06a1_2aea);
    assert!(msg.sign().is_some() && msg.sakke().is_some());
    // Our encoder's output of the same content parses back the same.
    assert_eq!(Document::parse(&full.to_xml()).unwrap(), full);
}

#[test]
fn strict_parse_names_what_is_wrong() {
    let good =
        String::from_utf8(include_bytes!("data/group-document-ts24481.xml").to_vec()).unwrap();
    let cases: Vec<(String, DocError)> = vec![
        (
            good.replace(
                "<group xmlns=\"urn:oma:xml:poc:list-service\"",
                "<group xmlns=\"urn:x\"",
            ),
            DocError::UnexpectedRoot {
                expected: "{urn:oma:xml:poc:list-service}group",
                namespace: "urn:x".into(),
                got: "group".into(),
            },
        ),
        (
            good.replace(
                "<list-service uri=\"sip:fire-team-1@streamwide.com\">",
                "<list-service>",
            ),
            DocError::MissingAttribute {
                element: "list-service",
                attribute: "uri",
            },
        ),
        (
            good.replace(
                "<entry uri=\"tel:+4915112345678\"/>",
                "<entry uri=\"sip:bob@streamwide.com\"/>",
            ),
            DocError::DuplicateUri {
                element: "entry",
                uri: "sip:bob@streamwide.com".into(),
            },
        ),
        (
            good.replace(">011A05010AB0C0DE<", ">011A05010AB0C0D<"),
            DocError::InvalidHex {
                index: 1,
                reason: "odd number of digits",
            },
        ),
        (
            good.replace(">011A05010AB0C0DE<", ">011A05010AB0C0DG<"),
            DocError::InvalidHex {
                index: 1,
                reason: "not a hex digit",
            },
        ),
        (
            good.replace(">011A05010AB0C0DE<", "> <"),
            DocError::InvalidHex {
                index: 1,
                reason: "empty",
            },
        ),
        (
            good.replace("<mgktp:GKTP id=\"sip:bob@streamwide.com\">", "<mgktp:GKTP>"),
            DocError::MissingAttribute {
                element: "GKTP",
                attribute: "id",
            },
        ),
        (
            good.replace("2018-01-01T00:00:00Z", "2018-02-30T00:00:00Z"),
            DocError::InvalidDateTime {
                value: "2018-02-30T00:00:00Z".into(),
                reason: "day out of range",
            },
        ),
        (
            good.replace("<list>", "<list/><list>"),
            DocError::DuplicateElement("list"),
        ),
        (
            good.replace("</mgktp:GKTPs>", "</mgktp:GKTPs><mgktp:GKTPs/>"),
            DocError::DuplicateElement("GKTPs"),
        ),
        (
            good.replace("&amp; support", "&nbsp; support"),
            DocError::UnknownEntity("nbsp".into()),
        ),
        (
            good.replace("<mgktp:GKTPs>", "<x:GKTPs>")
                .replace("</mgktp:GKTPs>", "</x:GKTPs>"),
            DocError::UnknownPrefix("x".into()),
        ),
        (
            good.replacen("<group ", "<!DOCTYPE group [<!ENTITY a \"b\">]><group ", 1),
            DocError::DoctypeNotAllowed,
        ),
        (format!("{good}<group/>"), DocError::NotOneRoot),
        (
            good.replace(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
            ),
            DocError::NotUtf8,
        ),
        (String::new(), DocError::NotOneRoot),
    ];
    for (text, want) in cases {
        assert_eq!(
            Document::parse(text.as_bytes()),
            Err(want.clone()),
            "{want}"
        );
        assert_eq!(
            parse_group_document(text.as_bytes()),
            Err(GmsError::Doc(want))
        );
    }
    // Limits.
    let big = vec![b' '; doc::MAX_DOCUMENT_LEN + 1];
    assert!(matches!(
        Document::parse(&big),
        Err(DocError::TooLarge { .. })
    ));
    let deep = format!(
        "<group xmlns=\"{}\">{}{}</group>",
        doc::LIST_SERVICE_NS,
        "<a>".repeat(100),
        "</a>".repeat(100)
    );
    assert!(matches!(
        Document::parse(deep.as_bytes()),
        Err(DocError::TooDeep(_))
    ));
    assert_eq!(Document::parse(&[0xff, 0xfe]), Err(DocError::NotUtf8));
    assert!(matches!(
        Document::parse(b"<group"),
        Err(DocError::Xml { .. })
    ));
    // The index.
    assert!(matches!(
        parse_group_index(good.as_bytes()),
        Err(GmsError::Doc(DocError::UnexpectedRoot { .. }))
    ));
    let idx = format!(
        "<resource-lists xmlns=\"{}\"><list><entry uri=\"sip:g@x\"/><entry/></list></resource-lists>",
        doc::RESOURCE_LISTS_NS
    );
    assert_eq!(
        parse_group_index(idx.as_bytes()),
        Err(GmsError::Doc(DocError::MissingAttribute {
            element: "entry",
            attribute: "uri"
        }))
    );
}

#[test]
fn check_response_maps_errors() {
    let ok = mcx_kms::http::HttpResponse::xml(200, b"<x/>".to_vec());
    assert_eq!(check_response(&ok).unwrap(), b"<x/>");
    let no = mcx_kms::http::HttpResponse::error(403, "not a member of this group");
    assert_eq!(
        check_response(&no),
        Err(GmsError::Status {
            status: 403,
            reason: "not a member of this group".into()
        })
    );
}

#[test]
fn works_with_the_os_rng() {
    let mut w = World::new(12);
    let mut os = rand_core::UnwrapErr(getrandom::SysRng);
    let keys = w.community.issue(GMS, w.period, &mut os).unwrap();
    let gms = Gms::open(
        None,
        None,
        default_config(),
        w.kms.clone(),
        keys,
        UNIX0,
        &mut os,
    )
    .unwrap();
    let r = gms.handle(
        &group_document_request(GROUP_B, &token(CAROL)),
        UNIX0,
        &mut os,
    );
    let d = parse_group_document(&r.body).unwrap();
    assert_eq!(
        w.accept(CAROL, &d.gktps[0], UNIX0).gmk_id,
        gms.gmk_id(GROUP_B).unwrap()
    );
}

/// Once the current GMK is in the second half of its life, the group
/// document also carries the next GMK, active from the current one's
/// expiry: members polling hold it before the current one expires, and
/// at the boundary it is the GMK in force.
#[test]
fn the_next_gmk_comes_with_the_second_half_of_the_current_ones_life() {
    let mut w = World::new(9);
    let mut gms = w.open(None, config(&[ALICE, BOB, DISPATCHER], 3_600), UNIX0);
    let first = gms.gmk_id(GROUP_A).unwrap();
    assert_eq!(
        fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, UNIX0 + 1_799).len(),
        1
    );
    let half = UNIX0 + 1_800;
    let g = fetch_gktps(&mut gms, &mut w, ALICE, GROUP_A, half);
    let [cur, next] = g.as_slice() else {
        panic!("expected two GKTPs, got {}", g.len())
    };
    assert_eq!(w.accept(ALICE, cur, half).gmk_id, first);
    let next = w.accept(ALICE, next, half);
    assert_ne!(next.gmk_id, first);
    assert_eq!(
        (next.activation(), next.expiry()),
        (UNIX0 + 3_600, UNIX0 + 7_200)
    );
    // Bob gets the same next GMK; it is made once.
    let g = fetch_gktps(&mut gms, &mut w, BOB, GROUP_A, half + 60);
    assert_eq!(w.accept(BOB, &g[1], half + 60).gmk, next.gmk);
    // The document names its activation time (TS 24.481 GKTP).
    let r = gms.handle(
        &group_document_request(GROUP_A, &token(BOB)),
        half,
        &mut w.rng,
    );
    let d = Document::parse(&r.body).unwrap();
    assert_eq!(d.gktps[1].activation_time, Some(UNIX0 + 3_600));
    // At the boundary it is the GMK in force, alone in the document.
    let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, UNIX0 + 3_600);
    assert_eq!(w.accept(ALICE, &g, UNIX0 + 3_600).gmk_id, next.gmk_id);
    assert_eq!(gms.gmk_id(GROUP_A), Some(next.gmk_id));
}

/// Removing a member rolls the group's GMK at once (new GMK-ID, active
/// now, a next GMK issued ahead retired too): the removed member gets
/// no GKTP of it, so a call wrapped under the new GMK cannot be
/// unwrapped with what it holds; the remaining members unwrap it.
#[test]
fn a_removed_member_cannot_unwrap_a_call_after_the_roll() {
    use mcx_mikey::replay::ReplayCache;
    use mcx_mikey::tgmk::{ConstituentGroup, TgmkReceiver, TgmkWrap};
    use mcx_mikey::{Error, Rejection};

    let mut w = World::new(10);
    let mut gms = w.open(None, config(&[ALICE, BOB, DISPATCHER], 3_600), UNIX0);
    // Everyone holds the current GMK and the next one (second half).
    let t0 = UNIX0 + 2_000;
    let mut held = std::collections::BTreeMap::new();
    for m in [ALICE, BOB, DISPATCHER] {
        let gktps = fetch_gktps(&mut gms, &mut w, m, GROUP_A, t0);
        assert_eq!(gktps.len(), 2);
        let got: Vec<_> = gktps.iter().map(|g| w.accept(m, g, t0)).collect();
        held.insert(m, got);
    }
    let old_ids: Vec<_> = held[BOB].iter().map(|g| g.gmk_id).collect();

    let now = t0 + 10;
    let rolled = gms.remove_member(GROUP_A, BOB, now, &mut w.rng).unwrap();
    assert!(!old_ids.contains(&rolled));
    assert_eq!(gms.gmk_id(GROUP_A), Some(rolled));
    assert_eq!(
        gms.remove_member(GROUP_A, BOB, now, &mut w.rng),
        Err(GmsError::NotAMember {
            group_id: GROUP_A.into(),
            member: BOB.into()
        })
    );
    assert_eq!(
        gms.remove_member("sip:nope@mcx.test", ALICE, now, &mut w.rng),
        Err(GmsError::UnknownGroup("sip:nope@mcx.test".into()))
    );
    // Bob: no document, no index entry.
    let r = gms.handle(
        &group_document_request(GROUP_A, &token(BOB)),
        now,
        &mut w.rng,
    );
    assert_eq!(r.status, 403);
    let r = gms.handle(&group_index_request(BOB, &token(BOB)), now, &mut w.rng);
    assert!(
        !parse_group_index(&r.body)
            .unwrap()
            .contains(&GROUP_A.to_owned())
    );

    // The remaining members get the rolled GMK only (the next one issued
    // before the removal is retired), active now.
    let mut new = std::collections::BTreeMap::new();
    for m in [ALICE, DISPATCHER] {
        let g = fetch_gktp(&mut gms, &mut w, m, GROUP_A, now);
        let got = w.accept(m, &g, now);
        assert_eq!(got.gmk_id, rolled);
        assert_eq!((got.activation(), got.expiry()), (now, now + 3_600));
        new.insert(m, got);
    }
    // Nor does the retired next GMK come back at its activation time.
    let at = UNIX0 + 3_600;
    let g = fetch_gktp(&mut gms, &mut w, ALICE, GROUP_A, at);
    assert_eq!(w.accept(ALICE, &g, at).gmk_id, rolled);

    // The dispatcher's call, wrapped under the group's new GMK.
    let keys = w.community.issue(DISPATCHER, w.period, &mut w.rng).unwrap();
    let signer =
        mcx_ibc::eccsi::SigningKey::new(&w.kms.kpak, &keys.uid, keys.ssk, keys.pvt).unwrap();
    let (tgmk, tgmk_id) = mcx_mikey::tgmk::generate(&mut w.rng);
    let d = &new[DISPATCHER];
    let wraps = TgmkWrap {
        initiator_uri: DISPATCHER,
        kms: &w.kms,
        temporary_group_id: "sip:tg@mcx.test",
        tgmk: &tgmk,
        tgmk_id,
        activation: now,
        expiry: now + 600,
        t_unix: now,
        policy: mcx_mikey::message::Sp::default_group_profile(),
    }
    .wrap(
        &[ConstituentGroup {
            group_id: GROUP_A,
            gmk: &d.gmk,
            gmk_id: d.gmk_id,
        }],
        &signer,
        &mut w.rng,
    )
    .unwrap();
    let unwrap = |gmks: &[mcx_mikey::gmk::ReceivedGmk]| {
        let groups: Vec<_> = gmks
            .iter()
            .map(|g| ConstituentGroup {
                group_id: GROUP_A,
                gmk: &g.gmk,
                gmk_id: g.gmk_id,
            })
            .collect();
        TgmkReceiver {
            kms: &w.kms,
            groups: &groups,
            expected_initiator: Some(DISPATCHER),
        }
        .unwrap(&wraps[0].message, now + 1, &mut ReplayCache::default())
    };
    // Bob, with every GMK he was ever given: the GMK-ID is unknown.
    assert_eq!(
        unwrap(&held[BOB]).unwrap_err(),
        Error::Rejected(Rejection::UnknownGmkId(rolled.0))
    );
    let alice = unwrap(std::slice::from_ref(&new[ALICE])).unwrap();
    assert_eq!(alice.tgmk, tgmk);
}

/// Requests are answered concurrently (`Gms::handle` takes `&self`; the
/// GKTPs' crypto runs under a shared lock), and concurrent requests that
/// each find the group's next GMK missing (its current one in the second
/// half of its life) still make one: every answer carries the same
/// current and next GMK, and every GKTP decrypts for its member.
#[test]
fn concurrent_requests_share_one_current_and_one_next_gmk() {
    let mut w = World::new(91);
    let lifetime = 1000;
    let gms = w.open(None, config(&[ALICE, BOB, DISPATCHER], lifetime), UNIX0);
    let now = UNIX0 + 600;
    let members = [ALICE, BOB, DISPATCHER, ALICE, BOB, DISPATCHER];
    let docs: Vec<(&str, Vec<Vec<u8>>)> = std::thread::scope(|s| {
        let handles: Vec<_> = members
            .iter()
            .enumerate()
            .map(|(i, member)| {
                let gms = &gms;
                s.spawn(move || {
                    let mut rng = TestRng(1000 + i as u64);
                    let r = gms.handle(
                        &group_document_request(GROUP_A, &token(member)),
                        now,
                        &mut rng,
                    );
                    assert_eq!(r.status, 200, "{}", body_text(&r));
                    let d = parse_group_document(check_response(&r).unwrap()).unwrap();
                    (*member, d.gktps)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = Vec::new();
    for (member, gktps) in &docs {
        assert_eq!(gktps.len(), 2, "current and next GMK for {member}");
        let got: Vec<_> = gktps
            .iter()
            .map(|g| w.accept(member, g, now).gmk_id)
            .collect();
        ids.push(got);
    }
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_ne!(ids[0][0], ids[0][1]);
}
