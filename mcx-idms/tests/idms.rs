//! The IdMS against published vectors (RFC 7515 A.3 ES256, RFC 7636
//! Appendix B PKCE) and the refusals TS 33.180 B.6 and RFC 6749 require.
#![allow(clippy::unwrap_used, missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mcx_idms::flow::AuthFlow;
use mcx_idms::jwt::{Claims, TokenSigner, TokenVerifier};
use mcx_idms::server::{Idms, IdmsConfig, RegisteredClient};
use mcx_idms::{FlowError, SCOPE_GMS, SCOPE_KMS, SCOPE_PTT, TokenError, pkce};

/// RFC 7515 Appendix A.3: the P-256 key and the ES256 JWS of
/// {"iss":"joe","exp":1300819380,"http://example.com/is_root":true}.
const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const A3_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
const A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

const NOW: u64 = 1_760_000_000;
const ISSUER: &str = "https://idms.mcx.test";
const AUDIENCE: &str = "mcx.test";
const CLIENT: &str = "mcx-client";
const REDIRECT: &str = "http://localhost/cb";

fn a3_public() -> Vec<u8> {
    let mut p = vec![4u8];
    p.extend(B64.decode(A3_X).unwrap());
    p.extend(B64.decode(A3_Y).unwrap());
    p
}

struct Rng(u64);
impl rand_core::TryRng for Rng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Ok(self.0 >> 11)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for Rng {}

#[test]
fn rfc7515_a3_es256_example_verifies_and_every_altered_part_fails() {
    let v = TokenVerifier::new(&a3_public(), "joe", "x").unwrap();
    let payload = v.verify_signature(A3_JWS).unwrap();
    assert!(payload.starts_with(b"{\"iss\":\"joe\""));
    // Our signer with the RFC's private key has the RFC's public key.
    let d = B64.decode(A3_D).unwrap();
    assert_eq!(
        TokenSigner::from_secret(&d, "a3").unwrap().public_key(),
        a3_public()
    );
    let mut bad = A3_JWS.as_bytes().to_vec();
    for at in [5, 40, A3_JWS.len() - 3] {
        let mut b = bad.clone();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        let s = String::from_utf8(b).unwrap();
        assert!(v.verify_signature(&s).is_err(), "altered at {at}");
    }
    bad.truncate(A3_JWS.rfind('.').unwrap());
    assert!(
        v.verify_signature(&String::from_utf8(bad).unwrap())
            .is_err()
    );
}

#[test]
fn rfc7636_appendix_b_s256_challenge() {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    assert_eq!(
        pkce::s256_challenge(verifier),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert!(pkce::verifies(
        verifier,
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    ));
    assert!(!pkce::verifies("short", &pkce::s256_challenge("short")));
}

fn idms() -> Idms {
    let mut config = IdmsConfig::new(
        ISSUER,
        AUDIENCE,
        vec![RegisteredClient {
            client_id: CLIENT.into(),
            redirect_uri: REDIRECT.into(),
        }],
    );
    config.pbkdf2_rounds = 10;
    let signer = TokenSigner::from_secret(&[7u8; 32], "k1").unwrap();
    Idms::new(
        config,
        signer,
        [
            ("sip:alice@mcx.test", "alice-pw"),
            ("sip:bob@mcx.test", "bob-pw"),
        ],
        &mut Rng(1),
    )
}

/// Runs the flow for `user`/`password`, returning the token or the error.
fn login(idms: &mut Idms, user: &str, password: &str, now: u64) -> Result<String, FlowError> {
    let (flow, path) = AuthFlow::start(CLIENT, REDIRECT, &mcx_idms::requested_scope(), &mut Rng(2));
    let basic = AuthFlow::basic_credentials(user, password);
    let r = idms.handle("GET", &path, Some(&basic), b"", now, &mut Rng(3));
    let Some(location) = r.location else {
        return Err(FlowError::Malformed(format!("{} {}", r.status, r.body)));
    };
    let code = flow.code_from_redirect(&location)?;
    let form = flow.token_request(&code);
    let r = idms.handle("POST", "/token", None, form.as_bytes(), now, &mut Rng(4));
    let t = AuthFlow::parse_token_response(r.status, r.body.as_bytes(), now)?;
    assert_eq!(t.expires_at, now + IdmsConfig::DEFAULT_TOKEN_LIFETIME_SECS);
    Ok(t.token.to_string())
}

#[test]
fn the_code_flow_with_pkce_yields_a_token_naming_the_user() {
    let mut idms = idms();
    let v = idms.verifier();
    let token = login(&mut idms, "sip:alice@mcx.test", "alice-pw", NOW).unwrap();
    for scope in [SCOPE_PTT, SCOPE_KMS, SCOPE_GMS] {
        let c = v.verify(&token, scope, NOW + 10).unwrap();
        assert_eq!(c.mcptt_id, "sip:alice@mcx.test");
        assert_eq!((c.iss.as_str(), c.aud.as_str()), (ISSUER, AUDIENCE));
    }
    // Short-lived: refused once expired (beyond the 30 s leeway).
    assert_eq!(
        v.verify(&token, SCOPE_PTT, NOW + 600 + 30),
        Err(TokenError::Expired {
            exp: NOW + 600,
            now: NOW + 630
        })
    );
}

#[test]
fn the_idms_refuses_bad_credentials_clients_and_grants() {
    let mut idms = idms();
    assert!(login(&mut idms, "sip:alice@mcx.test", "bob-pw", NOW).is_err());
    assert!(login(&mut idms, "sip:mallory@mcx.test", "x", NOW).is_err());
    // Without credentials: 401 with a Basic challenge.
    let (_, path) = AuthFlow::start(CLIENT, REDIRECT, "openid", &mut Rng(5));
    let r = idms.handle("GET", &path, None, b"", NOW, &mut Rng(6));
    assert_eq!((r.status, r.challenge_basic), (401, true));
    // An unregistered redirect URI: 400 and no redirect.
    let (_, path) = AuthFlow::start(CLIENT, "http://evil/cb", "openid", &mut Rng(5));
    let basic = AuthFlow::basic_credentials("sip:alice@mcx.test", "alice-pw");
    let r = idms.handle("GET", &path, Some(&basic), b"", NOW, &mut Rng(6));
    assert_eq!((r.status, r.location), (400, None));
    // Without PKCE.
    let path = format!(
        "/authorize?response_type=code&client_id={CLIENT}&redirect_uri={REDIRECT}&scope=openid"
    );
    let r = idms.handle("GET", &path, Some(&basic), b"", NOW, &mut Rng(6));
    assert!(r.body.contains("code_challenge"), "{}", r.body);

    // A code with the wrong verifier, then used again, then expired.
    let (flow, path) = AuthFlow::start(CLIENT, REDIRECT, "openid", &mut Rng(7));
    let r = idms.handle("GET", &path, Some(&basic), b"", NOW, &mut Rng(8));
    let code = flow.code_from_redirect(&r.location.unwrap()).unwrap();
    let (other, _) = AuthFlow::start(CLIENT, REDIRECT, "openid", &mut Rng(9));
    let r = idms.handle(
        "POST",
        "/token",
        None,
        other.token_request(&code).as_bytes(),
        NOW,
        &mut Rng(1),
    );
    assert!(
        r.body.contains("invalid_grant") && r.body.contains("code_verifier"),
        "{}",
        r.body
    );
    let r = idms.handle(
        "POST",
        "/token",
        None,
        flow.token_request(&code).as_bytes(),
        NOW,
        &mut Rng(1),
    );
    assert!(r.body.contains("unknown or used code"), "{}", r.body);
    let (flow, path) = AuthFlow::start(CLIENT, REDIRECT, "openid", &mut Rng(10));
    let r = idms.handle("GET", &path, Some(&basic), b"", NOW, &mut Rng(11));
    let code = flow.code_from_redirect(&r.location.unwrap()).unwrap();
    let r = idms.handle(
        "POST",
        "/token",
        None,
        flow.token_request(&code).as_bytes(),
        NOW + 61,
        &mut Rng(1),
    );
    assert!(r.body.contains("code expired"), "{}", r.body);
}

#[test]
fn resource_servers_refuse_forged_foreign_and_downgraded_tokens() {
    let mut idms = idms();
    let v = idms.verifier();
    let token = login(&mut idms, "sip:bob@mcx.test", "bob-pw", NOW).unwrap();
    // Another IdMS's key.
    let rogue = TokenSigner::from_secret(&[9u8; 32], "k1").unwrap();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: "sip:alice@mcx.test".into(),
        aud: AUDIENCE.into(),
        exp: NOW + 600,
        iat: NOW,
        client_id: CLIENT.into(),
        scope: "openid 3gpp:mc:ptt_service".into(),
        mcptt_id: "sip:alice@mcx.test".into(),
    };
    assert_eq!(
        v.verify(&rogue.sign(&claims), SCOPE_PTT, NOW),
        Err(TokenError::BadSignature)
    );
    // The payload swapped for another user's claims.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = B64.encode(serde_json::to_vec(&claims).unwrap());
    parts[1] = &forged;
    assert_eq!(
        v.verify(&parts.join("."), SCOPE_PTT, NOW),
        Err(TokenError::BadSignature)
    );
    // alg "none" and HS256 are never accepted.
    for alg in ["none", "HS256"] {
        let header = B64.encode(format!("{{\"alg\":\"{alg}\"}}"));
        let t = format!("{header}.{}.", token.split('.').nth(1).unwrap());
        assert_eq!(
            v.verify(&t, SCOPE_PTT, NOW),
            Err(TokenError::UnsupportedAlgorithm(alg.into()))
        );
    }
    // Another issuer or audience.
    let other = TokenVerifier::new(&idms.verifier_key(), "https://other", AUDIENCE).unwrap();
    assert!(matches!(
        other.verify(&token, SCOPE_PTT, NOW),
        Err(TokenError::WrongIssuer(_))
    ));
    let other = TokenVerifier::new(&idms.verifier_key(), ISSUER, "other").unwrap();
    assert!(matches!(
        other.verify(&token, SCOPE_PTT, NOW),
        Err(TokenError::WrongAudience(_))
    ));
    assert_eq!(
        v.verify(&token, "3gpp:mc:video_service", NOW),
        Err(TokenError::MissingScope("3gpp:mc:video_service".into()))
    );
}
