//! The KMS security extension (TS 33.180 D.1) end to end: a user
//! configured with a TrK and an InK gets InK-signed responses whose secret
//! keys are encrypted under the TrK; its client verifies and decrypts, and
//! refuses anything unsigned, altered or not made with its keys.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use mcx_kms::client::{
    init_request, key_prov_request, parse_init_response_with, parse_key_prov_response_with,
};
use mcx_kms::secext::{HMAC_SHA256, SecExtError, SecurityKeys};
use mcx_kms::{Kms, KmsConfig, KmsError, XmlError};

const TRK: [u8; 32] = [0x71; 32];
const INK: [u8; 32] = [0x1c; 32];

fn alice_keys() -> SecurityKeys {
    SecurityKeys::new(TRK, INK)
}

/// Alice has a TrK/InK at the KMS; Bob has none.
fn protected_config() -> KmsConfig {
    let mut c = config();
    c.users[0].security = Some(alice_keys());
    c
}

fn protected_kms() -> Kms {
    Kms::open(None, None, protected_config(), &mut TestRng(31)).unwrap()
}

fn key_prov_body(kms: &mut Kms) -> Vec<u8> {
    ok(&kms.handle(&key_prov_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW)).to_vec()
}

fn refused(body: &[u8], kms: &Kms, keys: &SecurityKeys) -> KmsError {
    parse_key_prov_response_with(body, kms.community_public(), ALICE, NOW, Some(keys)).unwrap_err()
}

fn secext(e: SecExtError) -> KmsError {
    KmsError::Xml(XmlError::SecExt(e))
}

fn text_between<'a>(body: &'a str, open: &str, close: &str) -> &'a str {
    let start = body.find(open).unwrap() + open.len();
    let end = start + body[start..].find(close).unwrap();
    &body[start..end]
}

/// A protected KmsKeyProv round trip: the response is a SignedKmsResponse,
/// the secret keys are not in it in any form the client could read without
/// the TrK, and the client that holds the keys gets keys that validate
/// (RFC 6507 5.1.2, RFC 6508 6.1.2) and equal those an unprotected view of
/// the same period would give (one key set per period).
#[test]
fn protected_key_prov_round_trip() {
    let mut kms = protected_kms();
    let body = key_prov_body(&mut kms);
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.contains("<SignedKmsResponse"), "{text}");
    assert!(text.contains(r#"xsi:type="EncKeyContentType""#));
    let keys = parse_key_prov_response_with(
        &body,
        kms.community_public(),
        ALICE,
        NOW,
        Some(&alice_keys()),
    )
    .unwrap();
    // Neither secret key is in the document, as hex (either case) or base64.
    for secret in [keys.ssk.to_bytes().to_vec(), keys.rsk.to_bytes().to_vec()] {
        assert!(!text.contains(&hex::encode(&secret)));
        assert!(!text.contains(&hex::encode_upper(&secret)));
        assert!(!text.contains(&BASE64.encode(&secret)));
    }
    // The PVT is public and stays plain.
    assert!(text.contains(&hex::encode_upper(keys.pvt.to_bytes())));
    // Asking again returns the same keys (stable per period), freshly
    // encrypted.
    let again = key_prov_body(&mut kms);
    assert_ne!(again, body, "a second response reuses IVs");
    let again = parse_key_prov_response_with(
        &again,
        kms.community_public(),
        ALICE,
        NOW,
        Some(&alice_keys()),
    )
    .unwrap();
    assert_eq!(again.ssk.to_bytes(), keys.ssk.to_bytes());
    assert_eq!(again.rsk.to_bytes(), keys.rsk.to_bytes());
}

/// D.1: "The signature algorithm used to sign a KMS Request message or a
/// KMS Response message shall be HMAC-SHA256 with a signature length of
/// 256." The SignatureValue is exactly HMAC-SHA256(InK, SignedInfo) as an
/// independent HMAC computes it, 32 octets, and the SignatureMethod names
/// HMAC-SHA256.
#[test]
fn signature_is_hmac_sha256_of_signed_info_under_the_ink() {
    let mut kms = protected_kms();
    let text = String::from_utf8(key_prov_body(&mut kms)).unwrap();
    let start = text.find("<SignedInfo").unwrap();
    let end = text.find("</SignedInfo>").unwrap() + "</SignedInfo>".len();
    let signed_info = &text[start..end];
    assert!(signed_info.contains(HMAC_SHA256));
    let value = BASE64
        .decode(text_between(&text, "<SignatureValue>", "</SignatureValue>"))
        .unwrap();
    assert_eq!(value.len(), 32, "a signature length of 256 bits");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&INK).unwrap();
    mac.update(signed_info.as_bytes());
    assert_eq!(value, mac.finalize().into_bytes().to_vec());
    // The same response verifies for the init resource too.
    let init = kms.handle(&init_request(KMS_URI, ALICE, ALICE_TOKEN, NOW), NOW);
    let community = parse_init_response_with(ok(&init), KMS_URI, Some(&alice_keys())).unwrap();
    assert_eq!(&community, kms.community_public());
}

/// An altered signature, an altered signed KmsResponse and a signature
/// made with another InK are refused.
#[test]
fn altered_or_foreign_signatures_are_refused() {
    let mut kms = protected_kms();
    let body = String::from_utf8(key_prov_body(&mut kms)).unwrap();
    let value = text_between(&body, "<SignatureValue>", "</SignatureValue>");
    let mut raw = BASE64.decode(value).unwrap();
    raw[0] ^= 1;
    let forged = body.replace(value, &BASE64.encode(&raw));
    assert_eq!(
        refused(forged.as_bytes(), &kms, &alice_keys()),
        secext(SecExtError::BadSignature)
    );
    // The response changed after signing (another period number).
    let period = text_between(&body, "<KeyPeriodNo>", "</KeyPeriodNo>");
    let moved = body.replacen(
        &format!("<KeyPeriodNo>{period}</KeyPeriodNo>"),
        &format!(
            "<KeyPeriodNo>{}</KeyPeriodNo>",
            period.parse::<u64>().unwrap() + 1
        ),
        1,
    );
    assert_eq!(
        refused(moved.as_bytes(), &kms, &alice_keys()),
        secext(SecExtError::DigestMismatch)
    );
    // A client whose InK differs.
    let other_ink = SecurityKeys::new(TRK, [0x2d; 32]);
    assert_eq!(
        refused(body.as_bytes(), &kms, &other_ink),
        secext(SecExtError::BadSignature)
    );
}

/// A client whose TrK differs (same InK: the signature verifies) cannot
/// decrypt the keys and says so.
#[test]
fn wrong_trk_is_refused() {
    let mut kms = protected_kms();
    let body = key_prov_body(&mut kms);
    let wrong_trk = SecurityKeys::new([0x72; 32], INK);
    assert_eq!(
        refused(&body, &kms, &wrong_trk),
        secext(SecExtError::Decrypt("UserDecryptKey"))
    );
}

/// A response without the extension (the KMS has no keys for the user,
/// or an attacker strips it) is refused by a client configured with
/// TrK/InK; a signed one is not readable by a client without keys.
#[test]
fn responses_without_the_extension_are_refused_by_a_client_with_keys() {
    let mut kms = protected_kms();
    // Bob has no keys at the KMS: a plain response.
    let plain = ok(&kms.handle(&key_prov_request(KMS_URI, BOB, BOB_TOKEN, NOW), NOW)).to_vec();
    let err = parse_key_prov_response_with(
        &plain,
        kms.community_public(),
        BOB,
        NOW,
        Some(&alice_keys()),
    )
    .unwrap_err();
    assert_eq!(err, secext(SecExtError::NotSigned));
    let init = kms.handle(&init_request(KMS_URI, BOB, BOB_TOKEN, NOW), NOW);
    assert_eq!(
        parse_init_response_with(ok(&init), KMS_URI, Some(&alice_keys())).unwrap_err(),
        secext(SecExtError::NotSigned)
    );
    // Without keys, Alice's protected response is not a KmsResponse.
    let body = key_prov_body(&mut kms);
    let err =
        parse_key_prov_response_with(&body, kms.community_public(), ALICE, NOW, None).unwrap_err();
    assert!(
        matches!(err, KmsError::Xml(XmlError::WrongRoot { .. })),
        "{err:?}"
    );
}

/// A signed document whose secret key is in clear (a signer that skipped
/// the TrK) is refused: with a TrK, secret keys must be encrypted.
#[test]
fn a_clear_key_in_a_signed_response_is_refused() {
    let kms = protected_kms();
    // Bob's plain response, wrapped and signed with Alice's InK by a
    // careless signer: the signature verifies, the keys are in clear.
    let plain = ok(&kms.handle(&key_prov_request(KMS_URI, BOB, BOB_TOKEN, NOW), NOW)).to_vec();
    let plain = String::from_utf8(plain).unwrap();
    let element = &plain[plain.find("<KmsResponse").unwrap()..];
    let element =
        element
            .trim_end()
            .replacen("<KmsResponse ", "<KmsResponse Id=\"kms-response\" ", 1);
    let signed = sign_like_the_kms(&element, &INK);
    let err = parse_key_prov_response_with(
        signed.as_bytes(),
        kms.community_public(),
        BOB,
        NOW,
        Some(&alice_keys()),
    )
    .unwrap_err();
    assert_eq!(err, secext(SecExtError::KeyNotEncrypted("UserDecryptKey")));
}

/// An independent signer of the layout docs/kms.md describes.
fn sign_like_the_kms(response: &str, ink: &[u8]) -> String {
    use sha2::Digest;
    let digest = BASE64.encode(sha2::Sha256::digest(response.as_bytes()));
    let signed_info = format!(
        "<SignedInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\">\
         <CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"></CanonicalizationMethod>\
         <SignatureMethod Algorithm=\"{HMAC_SHA256}\"></SignatureMethod>\
         <Reference URI=\"#kms-response\">\
         <DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"></DigestMethod>\
         <DigestValue>{digest}</DigestValue></Reference></SignedInfo>"
    );
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(ink).unwrap();
    mac.update(signed_info.as_bytes());
    let value = BASE64.encode(mac.finalize().into_bytes());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SignedKmsResponse xmlns=\"urn:3gpp:ns:mcsecKMSInterface:1.0\">\n{response}\n<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">{signed_info}<SignatureValue>{value}</SignatureValue></Signature>\n</SignedKmsResponse>\n"
    )
}

/// A weaker SignatureMethod, signed correctly with the InK, is refused:
/// D.1 fixes HMAC-SHA256.
#[test]
fn another_signature_algorithm_is_refused() {
    let mut kms = protected_kms();
    let body = String::from_utf8(key_prov_body(&mut kms)).unwrap();
    let element = &body[body.find("<KmsResponse").unwrap()
        ..body.find("</KmsResponse>").unwrap() + "</KmsResponse>".len()];
    let signed = sign_like_the_kms(element, &INK)
        .replace(HMAC_SHA256, "http://www.w3.org/2000/09/xmldsig#hmac-sha1");
    // Re-sign the changed SignedInfo so only the algorithm is wrong.
    let start = signed.find("<SignedInfo").unwrap();
    let end = signed.find("</SignedInfo>").unwrap() + "</SignedInfo>".len();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&INK).unwrap();
    mac.update(&signed.as_bytes()[start..end]);
    let old = text_between(&signed, "<SignatureValue>", "</SignatureValue>").to_owned();
    let signed = signed.replace(&old, &BASE64.encode(mac.finalize().into_bytes()));
    assert_eq!(
        refused(signed.as_bytes(), &kms, &alice_keys()),
        secext(SecExtError::Algorithm("SignatureMethod"))
    );
    // The unchanged layout from the independent signer is accepted: the
    // KMS's format is the documented one.
    parse_key_prov_response_with(
        sign_like_the_kms(element, &INK).as_bytes(),
        kms.community_public(),
        ALICE,
        NOW,
        Some(&alice_keys()),
    )
    .unwrap();
}
