//! The KMS behind the IdMS (TS 33.180 B.6.2): only valid, unexpired access
//! tokens with the KMS scope are accepted, and the user is the token's
//! `mcptt_id`, never the request's.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mcx_idms::jwt::{Claims, TokenSigner, TokenVerifier};
use mcx_kms::Kms;
use mcx_kms::client::{key_prov_request, parse_init_response, parse_key_prov_response};

const ISSUER: &str = "https://idms.example.org";
const AUDIENCE: &str = "example.org";

fn signer() -> TokenSigner {
    TokenSigner::from_secret(&[0x42; 32], "k1").unwrap()
}

fn token(user: &str, scope: &str, iat: u64, lifetime: u64) -> String {
    let scope = format!("openid {scope}");
    signer().sign(&Claims::access(
        ISSUER,
        AUDIENCE,
        "mcx-client",
        user,
        &scope,
        iat,
        lifetime,
    ))
}

fn kms() -> Kms {
    let mut kms = Kms::open(None, None, config(), &mut TestRng(3)).unwrap();
    kms.require_access_tokens(
        TokenVerifier::new(&signer().public_key(), ISSUER, AUDIENCE).unwrap(),
    );
    kms
}

#[test]
fn a_valid_token_gets_its_users_keys() {
    let kms = kms();
    let t = token(ALICE, mcx_idms::SCOPE_KMS, NOW - 60, 600);
    let init = kms.handle(&mcx_kms::client::init_request(KMS_URI, ALICE, &t, NOW), NOW);
    assert_eq!(init.status, 200);
    let community = parse_init_response(&init.body, KMS_URI).unwrap();
    let prov = kms.handle(&key_prov_request(KMS_URI, ALICE, &t, NOW), NOW);
    assert_eq!(prov.status, 200, "{}", String::from_utf8_lossy(&prov.body));
    parse_key_prov_response(&prov.body, &community, ALICE, NOW).unwrap();
}

#[test]
fn static_expired_foreign_and_misused_tokens_are_refused() {
    let kms = kms();
    let reason = |r: &mcx_kms::http::HttpResponse| String::from_utf8_lossy(&r.body).into_owned();
    // The configured static token no longer works.
    let r = kms.handle(&key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    assert_eq!(r.status, 401, "{}", reason(&r));
    // Expired (issued 11 minutes ago for 10).
    let t = token(ALICE, mcx_idms::SCOPE_KMS, NOW - 660, 600);
    let r = kms.handle(&key_prov_request(KMS_URI, ALICE, &t, NOW), NOW);
    assert_eq!(r.status, 401);
    assert!(reason(&r).contains("expired"), "{}", reason(&r));
    // Without the KMS scope.
    let t = token(ALICE, mcx_idms::SCOPE_GMS, NOW, 600);
    let r = kms.handle(&key_prov_request(KMS_URI, ALICE, &t, NOW), NOW);
    assert_eq!(r.status, 401);
    // Alice's token asking for Bob's keys.
    let t = token(ALICE, mcx_idms::SCOPE_KMS, NOW, 600);
    let r = kms.handle(&key_prov_request(KMS_URI, BOB, &t, NOW), NOW);
    assert_eq!(r.status, 403, "{}", reason(&r));
    // Signed by another key.
    let other = TokenSigner::from_secret(&[0x43; 32], "k1").unwrap();
    let forged = other.sign(&Claims::access(
        ISSUER,
        AUDIENCE,
        "x",
        BOB,
        mcx_idms::SCOPE_KMS,
        NOW,
        600,
    ));
    let r = kms.handle(&key_prov_request(KMS_URI, BOB, &forged, NOW), NOW);
    assert_eq!(r.status, 401);
    // A user the KMS does not know.
    let t = token("sip:mallory@example.org", mcx_idms::SCOPE_KMS, NOW, 600);
    let r = kms.handle(
        &key_prov_request(KMS_URI, "sip:mallory@example.org", &t, NOW),
        NOW,
    );
    assert_eq!(r.status, 403);
}
