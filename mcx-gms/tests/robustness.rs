//! Property tests: the parsers and the service never panic, whatever the
//! input, and the service never hands out a GKTP without a valid token
//! of a member.
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;

use common::*;
use mcx_gms::client::{group_document_request, parse_group_document, parse_group_index};
use mcx_gms::doc::Document;
use mcx_kms::http::HttpRequest;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const SAMPLE: &[u8] = include_bytes!("data/group-document-ts24481.xml");

/// Edits of a valid document: flip, insert, delete, duplicate a slice.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (0usize..SAMPLE.len(), any::<u8>(), 0u8..4, 0usize..64),
        1..8,
    )
    .prop_map(|edits| {
        let mut d = SAMPLE.to_vec();
        for (pos, byte, kind, len) in edits {
            let pos = pos.min(d.len().saturating_sub(1));
            match kind {
                0 => d[pos] = byte,
                1 => d.insert(pos, byte),
                2 => {
                    let end = (pos + len).min(d.len());
                    d.drain(pos..end);
                }
                _ => {
                    let end = (pos + len).min(d.len());
                    let chunk = d[pos..end].to_vec();
                    d.splice(pos..pos, chunk);
                }
            }
        }
        d
    })
}

/// XML-ish fragments glued together: reaches deeper parser states than
/// random bytes.
fn xmlish() -> impl Strategy<Value = Vec<u8>> {
    let atoms = prop::sample::select(vec![
        "<group xmlns=\"urn:oma:xml:poc:list-service\">",
        "<list-service uri=\"sip:g@x\">",
        "<list>",
        "<entry uri=\"sip:a@x\"/>",
        "<entry uri=\"\"/>",
        "</list>",
        "<mgktp:GKTPs xmlns:mgktp=\"urn:3gpp:ns:mcpttGKTP:1.0\">",
        "<mgktp:GMK-GKTPs>",
        "<mgktp:GKTP id=\"x\" activationtime=\"2024-01-01T00:00:00Z\">",
        "0A1B",
        "</mgktp:GKTP>",
        "</mgktp:GMK-GKTPs>",
        "</mgktp:GKTPs>",
        "</list-service>",
        "</group>",
        "&amp;",
        "&#x0;",
        "&#1114112;",
        "<![CDATA[x]]>",
        "<!-- c -->",
        "<?pi x?>",
        "<!DOCTYPE g>",
        "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">",
        "</resource-lists>",
        "<a:b>",
        "\u{feff}",
        "é",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat().into_bytes())
}

proptest! {
    #![proptest_config(Config::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_group_document(&bytes);
        let _ = parse_group_index(&bytes);
    }

    #[test]
    fn mutated_documents_never_panic(doc in mutated()) {
        let _ = parse_group_document(&doc);
        let _ = parse_group_index(&doc);
        // Whatever parses re-encodes to something that parses the same.
        if let Ok(d) = Document::parse(&doc) {
            prop_assert_eq!(Document::parse(&d.to_xml()).unwrap(), d);
        }
    }

    #[test]
    fn xmlish_documents_never_panic(doc in xmlish()) {
        let _ = parse_group_document(&doc);
        let _ = parse_group_index(&doc);
    }
}

fn request() -> impl Strategy<Value = HttpRequest> {
    let method = prop::sample::select(vec!["GET", "POST", "get", "", "DELETE"]);
    let prefix = prop::sample::select(vec![
        "/org.openmobilealliance.groups/global/",
        "/org.openmobilealliance.groups/users/",
        "/org.openmobilealliance.groups/",
        "/",
        "",
    ]);
    let segment = prop::sample::select(vec![
        "sip%3Agroup-a%40mcx.test",
        "sip%3Aalice%40mcx.test",
        "sip%3Aalice%40mcx.test/index",
        "%",
        "%zz",
        "%C3%28",
        "/index",
        "a?b",
        "sip:group-a@mcx.test",
    ]);
    let noise = prop_oneof![Just(String::new()), "[ -~]{0,20}"];
    let auth = prop::option::of(prop::sample::select(vec![
        format!("Bearer {}", token(ALICE)),
        format!("Bearer {}", token(EVE)),
        format!("bearer  {} ", token(CAROL)),
        "Bearer".to_owned(),
        "Basic abc".to_owned(),
        String::new(),
    ]));
    (
        method,
        prefix,
        segment,
        noise,
        auth,
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(m, p, s, n, auth, body)| {
            let mut r = HttpRequest::new(m, &format!("{p}{s}{n}"));
            if let Some(a) = auth {
                r.headers.push(("Authorization".into(), a));
            }
            r.body = body;
            r
        })
}

#[test]
fn handle_never_panics_and_never_leaks_a_gktp() {
    let w = RefCell::new(World::new(77));
    let gms = RefCell::new(w.borrow_mut().open(None, default_config(), UNIX0));
    let mut runner = TestRunner::new(Config::with_cases(512));
    runner
        .run(&(request(), UNIX0..UNIX0 + 1_000_000), |(req, now)| {
            let r = gms.borrow_mut().handle(&req, now, &mut w.borrow_mut().rng);
            prop_assert!(
                matches!(r.status, 200 | 400 | 401 | 403 | 404 | 405 | 503),
                "{} {}",
                r.status,
                req.path
            );
            let has_gktp = r.body.windows(10).any(|x| x == b"mgktp:GKTP");
            if has_gktp {
                // Only Alice's (a member of group A) or Carol's (member of B).
                prop_assert_eq!(r.status, 200);
                let auth = req.header("authorization").unwrap_or_default();
                prop_assert!(auth.contains(&token(ALICE)) || auth.contains(&token(CAROL)));
            }
            if r.status != 200 {
                prop_assert!(r.content_type.starts_with("text/plain"));
                prop_assert!(!r.body.is_empty());
            }
            Ok(())
        })
        .unwrap();
    // And a valid request still works afterwards.
    let r = gms.borrow_mut().handle(
        &group_document_request(GROUP_A, &token(ALICE)),
        UNIX0 + 5,
        &mut w.borrow_mut().rng,
    );
    assert_eq!(r.status, 200);
}
