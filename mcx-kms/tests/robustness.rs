//! Random and mutated input to the service and the client parsers: errors,
//! never panics; the service answers garbage with 400 and issues nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::LazyLock;

use common::*;
use mcx_ibc::kms::CommunityPublic;
use mcx_kms::Kms;
use mcx_kms::client::{
    init_request, key_prov_request, key_prov_request_with_next, parse_init_response,
    parse_key_prov_response, parse_key_prov_response_all,
};
use mcx_kms::http::HttpRequest;
use proptest::prelude::*;

/// A valid init and key provisioning response (two key sets) to mutate.
struct Fixture {
    community: CommunityPublic,
    init: Vec<u8>,
    key_prov: Vec<u8>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let kms = Kms::open(None, None, config(), &mut TestRng(42)).unwrap();
    let init = kms
        .handle(&init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW)
        .body;
    let key_prov = kms
        .handle(
            &key_prov_request_with_next(KMS_URI, ALICE, ALICE_TOKEN, NOW),
            NOW,
        )
        .body;
    Fixture {
        community: kms.community_public().clone(),
        init,
        key_prov,
    }
});

/// One edit of a document: flip bits of a byte, delete a range, insert
/// bytes, or cut the document.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Edit::Flip(i, x)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                Just(b"<".to_vec()),
                Just(b"</UserUri>".to_vec()),
                Just(b"<KmsUri>x</KmsUri>".to_vec()),
                Just(b"&amp;".to_vec()),
                Just(b"<![CDATA[0]]>".to_vec()),
            ]
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(doc: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut doc = doc.to_vec();
    for e in edits {
        let len = doc.len().max(1);
        match e {
            Edit::Flip(i, x) => {
                if let Some(b) = doc.get_mut(i % len) {
                    *b ^= x;
                }
            }
            Edit::Delete(i, n) => {
                let start = (i % len).min(doc.len());
                let end = (start + n).min(doc.len());
                doc.drain(start..end);
            }
            Edit::Insert(i, bytes) => {
                let at = (i % len).min(doc.len());
                doc.splice(at..at, bytes.iter().copied());
            }
            Edit::Truncate(i) => doc.truncate(i % len),
        }
    }
    doc
}

fn kms_request_with(body: Vec<u8>, keyprov: bool) -> HttpRequest {
    let mut request = if keyprov {
        key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW)
    } else {
        init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW)
    };
    request.body = body;
    request
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bodies_are_400(body in proptest::collection::vec(any::<u8>(), 1..2048), keyprov: bool) {
        // An empty or all-whitespace body is a valid request of the token's
        // user (api.rs `empty_body_is_the_token_users_request`).
        prop_assume!(!body.iter().all(u8::is_ascii_whitespace));
        let kms = Kms::open(None, None, config(), &mut TestRng(1)).unwrap();
        let response = kms.handle(&kms_request_with(body, keyprov), NOW);
        prop_assert_eq!(response.status, 400);
        prop_assert!(kms.issued().unwrap().is_empty());
    }

    #[test]
    fn mutated_requests_never_panic(edits in proptest::collection::vec(edit(), 1..4), keyprov: bool) {
        let kms = Kms::open(None, None, config(), &mut TestRng(1)).unwrap();
        let body = apply(&init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW).body, &edits);
        let response = kms.handle(&kms_request_with(body, keyprov), NOW);
        prop_assert!(matches!(response.status, 200 | 400 | 403), "{}", response.status);
        if response.status != 200 {
            prop_assert!(kms.issued().unwrap().is_empty());
        }
    }

    #[test]
    fn random_paths_and_methods_never_panic(path in "\\PC{0,80}", method in "[A-Z]{0,7}") {
        let kms = Kms::open(None, None, config(), &mut TestRng(1)).unwrap();
        let mut request = init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW);
        request.path = format!("/keymanagement/identity/v1/keyprov{path}");
        request.method = method;
        let response = kms.handle(&request, NOW);
        prop_assert!(matches!(response.status, 200 | 400 | 403 | 404 | 405), "{}", response.status);
    }

    #[test]
    fn random_bytes_to_client_parsers(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = &*FIXTURE;
        prop_assert!(parse_init_response(&body, KMS_URI).is_err());
        prop_assert!(parse_key_prov_response(&body, &f.community, ALICE, NOW).is_err());
    }
}

proptest! {
    // Each case that survives parsing validates keys (a pairing), so fewer.
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn mutated_responses_never_panic(edits in proptest::collection::vec(edit(), 1..4)) {
        let f = &*FIXTURE;
        let init = apply(&f.init, &edits);
        if let Ok(community) = parse_init_response(&init, KMS_URI) {
            // Whatever survives must still be a usable community.
            prop_assert_eq!(community.kms_uri, KMS_URI);
        }
        let prov = apply(&f.key_prov, &edits);
        if let Ok(sets) = parse_key_prov_response_all(&prov, &f.community, ALICE) {
            for keys in &sets {
                prop_assert_eq!(keys.uid, f.community.uid(ALICE, keys.key_period_no).unwrap());
            }
        }
    }
}
