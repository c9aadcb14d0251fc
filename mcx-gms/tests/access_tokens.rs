//! The GMS behind the IdMS (TS 33.180 B.6.2): only valid, unexpired access
//! tokens with the GMS scope are accepted, and the member is the token's
//! `mcptt_id`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mcx_gms::client::{group_document_request, group_index_request};
use mcx_idms::jwt::{Claims, TokenSigner, TokenVerifier};

const ISSUER: &str = "https://idms.mcx.test";
const AUDIENCE: &str = "mcx.test";

fn signer() -> TokenSigner {
    TokenSigner::from_secret(&[0x24; 32], "k1").unwrap()
}

fn access_token(user: &str, scope: &str, iat: u64) -> String {
    let scope = format!("openid {scope}");
    signer().sign(&Claims::access(
        ISSUER,
        AUDIENCE,
        "mcx-client",
        user,
        &scope,
        iat,
        600,
    ))
}

#[test]
fn group_documents_go_to_the_tokens_user_only() {
    let mut w = World::new(5);
    let mut gms = w.open(None, default_config(), UNIX0);
    gms.require_access_tokens(
        TokenVerifier::new(&signer().public_key(), ISSUER, AUDIENCE).unwrap(),
    );
    let alice = access_token(ALICE, mcx_idms::SCOPE_GMS, UNIX0);
    let r = gms.handle(&group_document_request(GROUP_A, &alice), UNIX0, &mut w.rng);
    assert_eq!(r.status, 200, "{}", body_text(&r));
    // Alice's token for Bob's index; Eve (no group) with a valid token.
    let r = gms.handle(&group_index_request(BOB, &alice), UNIX0, &mut w.rng);
    assert_eq!(r.status, 403, "{}", body_text(&r));
    let eve = access_token(EVE, mcx_idms::SCOPE_GMS, UNIX0);
    let r = gms.handle(&group_document_request(GROUP_A, &eve), UNIX0, &mut w.rng);
    assert_eq!(r.status, 403, "{}", body_text(&r));
    // Static token, expired token, token without the GMS scope.
    let r = gms.handle(
        &group_document_request(GROUP_A, &token(ALICE)),
        UNIX0,
        &mut w.rng,
    );
    assert_eq!(r.status, 401, "{}", body_text(&r));
    let r = gms.handle(
        &group_document_request(GROUP_A, &alice),
        UNIX0 + 700,
        &mut w.rng,
    );
    assert_eq!(r.status, 401);
    assert!(body_text(&r).contains("expired"), "{}", body_text(&r));
    let kms_only = access_token(ALICE, mcx_idms::SCOPE_KMS, UNIX0);
    let r = gms.handle(
        &group_document_request(GROUP_A, &kms_only),
        UNIX0,
        &mut w.rng,
    );
    assert_eq!(r.status, 401);
}
