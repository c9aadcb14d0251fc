//! ECCSI (RFC 6507) API tests against external vectors.
//!
//! Vector sources (copied into `tests/data/`):
//! - `rfc6507-6508-6509.json`, key `eccsi_rfc6507_appendix_a`: RFC 6507
//!   Appendix A, <https://www.rfc-editor.org/rfc/rfc6507#appendix-A>.
//! - `streamwide-mikey-sakke.json`: Streamwide `StreamwideTestVectors.md`
//!   (v5) of the sw_mikey_sakke library: a KMS KPAK, SSK/PVT issued to three
//!   users, and three I_MESSAGEs signed by those users. Vendor interop data,
//!   not 3GPP-official.
#![allow(clippy::unwrap_used)]

use mcx_ibc::Error;
use mcx_ibc::eccsi::{
    self, Kpak, Ksak, POINT_LEN, Pvt, SIGNATURE_LEN, Signature, SigningKey, Ssk, VerifyingKey,
    hazmat,
};
use mcx_ibc::uid::mikey_sakke_uid;
use proptest::prelude::*;
use serde_json::Value;

const RFC_VECTORS: &str = include_str!("data/rfc6507-6508-6509.json");
const STREAMWIDE: &str = include_str!("data/streamwide-mikey-sakke.json");

/// The P-256 group order q, big-endian.
const Q: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// RFC 6507 Appendix A.
struct Rfc {
    v: Value,
}

impl Rfc {
    fn load() -> Self {
        let all: Value = serde_json::from_str(RFC_VECTORS).unwrap();
        Self {
            v: all["eccsi_rfc6507_appendix_a"].clone(),
        }
    }

    fn get(&self, key: &str) -> Vec<u8> {
        hex(&self.v[key])
    }

    fn kpak(&self) -> Kpak {
        Kpak::from_bytes(&self.get("KPAK")).unwrap()
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::new(
            &self.kpak(),
            &self.get("ID"),
            Ssk::from_bytes(&self.get("SSK")).unwrap(),
            Pvt::from_bytes(&self.get("PVT")).unwrap(),
        )
        .unwrap()
    }

    fn sig(&self) -> Vec<u8> {
        self.get("SIG")
    }
}

// ---------------------------------------------------------------------------
// RFC 6507 Appendix A
// ---------------------------------------------------------------------------

#[test]
fn rfc6507_kpak_from_ksak() {
    let rfc = Rfc::load();
    let ksak = Ksak::from_bytes(&rfc.get("KSAK")).unwrap();
    assert_eq!(ksak.public_key().to_bytes().to_vec(), rfc.get("KPAK"));
    assert_eq!(ksak.to_bytes().to_vec(), rfc.get("KSAK"));
}

#[test]
fn rfc6507_issue_from_v() {
    let rfc = Rfc::load();
    let ksak = Ksak::from_bytes(&rfc.get("KSAK")).unwrap();
    let (ssk, pvt) = hazmat::issue_with_v(&ksak, &rfc.get("ID"), &rfc.get("v")).unwrap();
    assert_eq!(pvt.to_bytes().to_vec(), rfc.get("PVT"));
    assert_eq!(ssk.to_bytes().to_vec(), rfc.get("SSK"));
    let key = SigningKey::new(&rfc.kpak(), &rfc.get("ID"), ssk, pvt).unwrap();
    assert_eq!(key.hs().to_vec(), rfc.get("HS"));
}

#[test]
fn rfc6507_sign_from_j() {
    let rfc = Rfc::load();
    let key = rfc.signing_key();
    let sig = hazmat::sign_with_j(&key, &rfc.get("M"), &rfc.get("j")).unwrap();
    let bytes = sig.to_bytes();
    assert_eq!(bytes[..32].to_vec(), rfc.get("r"));
    assert_eq!(bytes[32..64].to_vec(), rfc.get("s"));
    assert_eq!(bytes.to_vec(), rfc.sig());
}

#[test]
fn rfc6507_signature_verifies() {
    let rfc = Rfc::load();
    let sig = Signature::from_bytes(&rfc.sig()).unwrap();
    assert_eq!(sig.to_bytes().to_vec(), rfc.sig());
    assert_eq!(sig.pvt().to_bytes().to_vec(), rfc.get("PVT"));
    eccsi::verify(&rfc.kpak(), &rfc.get("ID"), &rfc.get("M"), &sig).unwrap();
    eccsi::verify_bytes(&rfc.kpak(), &rfc.get("ID"), &rfc.get("M"), &rfc.sig()).unwrap();
    let pvt = Pvt::from_bytes(&rfc.get("PVT")).unwrap();
    let vk = VerifyingKey::new(&rfc.kpak(), &rfc.get("ID"), &pvt).unwrap();
    vk.verify(&rfc.get("M"), &sig).unwrap();
    rfc.signing_key()
        .verifying_key()
        .verify(&rfc.get("M"), &sig)
        .unwrap();
}

#[test]
fn rfc6507_random_signatures_verify() {
    let rfc = Rfc::load();
    let key = rfc.signing_key();
    let a = key.sign(&rfc.get("M"), &mut rng());
    let b = key.sign(&rfc.get("M"), &mut rng());
    assert_ne!(a, b, "j must be fresh for each signature");
    for sig in [a, b] {
        eccsi::verify(&rfc.kpak(), &rfc.get("ID"), &rfc.get("M"), &sig).unwrap();
    }
}

#[test]
fn fresh_kms_round_trip() {
    let ksak = Ksak::generate(&mut rng());
    let kpak = ksak.public_key();
    let id = b"sip:alice@example.org";
    let (ssk, pvt) = eccsi::issue(&ksak, id, &mut rng()).unwrap();
    let ssk = Ssk::from_bytes(ssk.to_bytes().as_ref()).unwrap();
    let pvt = Pvt::from_bytes(&pvt.to_bytes()).unwrap();
    let key = SigningKey::new(&kpak, id, ssk, pvt).unwrap();
    let sig = key.sign(b"hello", &mut rng());
    eccsi::verify(&kpak, id, b"hello", &sig).unwrap();
    assert_eq!(
        Ksak::from_bytes(ksak.to_bytes().as_ref()).unwrap(),
        ksak,
        "KSAK encoding round trip"
    );
}

// ---------------------------------------------------------------------------
// Streamwide interop vectors
// ---------------------------------------------------------------------------

struct Streamwide {
    v: Value,
}

struct User {
    uid: Vec<u8>,
    ssk: Vec<u8>,
    pvt: Vec<u8>,
}

impl Streamwide {
    fn load() -> Self {
        Self {
            v: serde_json::from_str(STREAMWIDE).unwrap(),
        }
    }

    fn kpak(&self) -> Kpak {
        Kpak::from_bytes(&hex(&self.v["kms"]["PubAuthKey"])).unwrap()
    }

    fn kms_num(&self, key: &str) -> u64 {
        self.v["kms"][key].as_str().unwrap().parse().unwrap()
    }

    /// A user, with the UID computed from the KMS parameters (and checked
    /// against the published UserID).
    fn user(&self, name: &str) -> User {
        let u = &self.v["users"][name];
        let uid = mikey_sakke_uid(
            u["UserUri"].as_str().unwrap(),
            self.v["kms"]["KmsUri"].as_str().unwrap(),
            self.kms_num("UserKeyPeriod"),
            self.kms_num("UserKeyOffset"),
            u["KeyPeriodNo"].as_str().unwrap().parse().unwrap(),
        )
        .unwrap();
        assert_eq!(uid.to_vec(), hex(&u["UserID"]), "UID of {name}");
        User {
            uid: uid.to_vec(),
            ssk: hex(&u["UserSigningKeySSK"]),
            pvt: hex(&u["UserPubTokenPVT"]),
        }
    }

    fn signing_key(&self, user: &User) -> Result<SigningKey, Error> {
        SigningKey::new(
            &self.kpak(),
            &user.uid,
            Ssk::from_bytes(&user.ssk).unwrap(),
            Pvt::from_bytes(&user.pvt).unwrap(),
        )
    }
}

#[test]
fn streamwide_users_keys_validate() {
    let sw = Streamwide::load();
    for name in ["GMS", "Alice", "Bob"] {
        let user = sw.user(name);
        sw.signing_key(&user)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn streamwide_alice_signature_verifies() {
    let sw = Streamwide::load();
    let alice = sw.user("Alice");
    let key = sw.signing_key(&alice).unwrap();
    let msg = b"MIKEY I_MESSAGE bytes up to the SIGN payload";
    let sig = key.sign(msg, &mut rng());
    eccsi::verify(&sw.kpak(), &alice.uid, msg, &sig).unwrap();
    // Not as Bob.
    let bob = sw.user("Bob");
    assert_eq!(
        eccsi::verify(&sw.kpak(), &bob.uid, msg, &sig),
        Err(Error::SignatureInvalid)
    );
}

#[test]
fn streamwide_pvt_of_another_user_fails_validation() {
    let sw = Streamwide::load();
    let alice = sw.user("Alice");
    let bob = sw.user("Bob");
    let mixed = User {
        uid: alice.uid.clone(),
        ssk: alice.ssk.clone(),
        pvt: bob.pvt.clone(),
    };
    assert_eq!(
        sw.signing_key(&mixed).err(),
        Some(Error::KeyValidationFailed("ECCSI SSK/PVT"))
    );
    // Alice's SSK/PVT under Bob's UID (another identity).
    let wrong_id = User {
        uid: bob.uid,
        ssk: alice.ssk,
        pvt: alice.pvt,
    };
    assert_eq!(
        sw.signing_key(&wrong_id).err(),
        Some(Error::KeyValidationFailed("ECCSI SSK/PVT"))
    );
}

#[test]
fn streamwide_pvt_under_other_kms_fails_validation() {
    let sw = Streamwide::load();
    let alice = sw.user("Alice");
    let other_kpak = Rfc::load().kpak();
    let err = SigningKey::new(
        &other_kpak,
        &alice.uid,
        Ssk::from_bytes(&alice.ssk).unwrap(),
        Pvt::from_bytes(&alice.pvt).unwrap(),
    )
    .err();
    assert_eq!(err, Some(Error::KeyValidationFailed("ECCSI SSK/PVT")));
}

/// Minimal standard base64 decoder (with padding) for the I_MESSAGEs.
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    out
}

/// The I_MESSAGEs were signed by real Streamwide clients: the signature is
/// the last 129 octets and covers everything before it (up to and including
/// the 2-octet SIGN payload header); the signer ID is the initiator's UID.
#[test]
fn streamwide_i_message_signatures_verify() {
    let sw = Streamwide::load();
    let users = [
        ("gms@streamwide.com", "GMS"),
        ("sip:alice@streamwide.com", "Alice"),
        ("sip:bob@streamwide.com", "Bob"),
    ];
    let messages = sw.v["messages"].as_object().unwrap();
    assert_eq!(messages.len(), 3);
    for (label, m) in messages {
        let initiator = m["Initiator URI"].as_str().unwrap();
        let name = users.iter().find(|(uri, _)| *uri == initiator).unwrap().1;
        let signer = sw.user(name);
        let imsg = base64(m["I-MESSAGE"].as_str().unwrap());
        let (signed, sig) = imsg.split_at(imsg.len() - SIGNATURE_LEN);
        assert_eq!(
            signed[signed.len() - 2..],
            [0x20, 0x81],
            "SIGN header: ECCSI, 129 octets"
        );
        let sig = Signature::from_bytes(sig).unwrap();
        assert_eq!(sig.pvt().to_bytes().to_vec(), signer.pvt, "{label}");
        eccsi::verify(&sw.kpak(), &signer.uid, signed, &sig)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let vk = sw.signing_key(&signer).unwrap().verifying_key();
        vk.verify(signed, &sig).unwrap();

        // One altered octet anywhere in the signed part breaks it.
        for i in [0, signed.len() / 2, signed.len() - 1] {
            let mut altered = signed.to_vec();
            altered[i] ^= 0x01;
            assert_eq!(
                eccsi::verify(&sw.kpak(), &signer.uid, &altered, &sig),
                Err(Error::SignatureInvalid),
                "{label}, octet {i}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------

fn with_r(sig: &[u8], r: &[u8; 32]) -> Vec<u8> {
    let mut out = sig.to_vec();
    out[..32].copy_from_slice(r);
    out
}

fn with_s(sig: &[u8], s: &[u8; 32]) -> Vec<u8> {
    let mut out = sig.to_vec();
    out[32..64].copy_from_slice(s);
    out
}

fn with_pvt(sig: &[u8], pvt: &[u8]) -> Vec<u8> {
    let mut out = sig.to_vec();
    out[64..].copy_from_slice(pvt);
    out
}

#[test]
fn reject_r_zero() {
    let sig = with_r(&Rfc::load().sig(), &[0; 32]);
    assert_eq!(
        Signature::from_bytes(&sig),
        Err(Error::ScalarOutOfRange("ECCSI signature r"))
    );
}

#[test]
fn reject_s_zero() {
    let sig = with_s(&Rfc::load().sig(), &[0; 32]);
    assert_eq!(
        Signature::from_bytes(&sig),
        Err(Error::ScalarOutOfRange("ECCSI signature s"))
    );
}

#[test]
fn reject_r_equal_q() {
    let sig = with_r(&Rfc::load().sig(), &Q);
    assert_eq!(
        Signature::from_bytes(&sig),
        Err(Error::ScalarOutOfRange("ECCSI signature r"))
    );
    let sig = with_r(&Rfc::load().sig(), &[0xff; 32]);
    assert_eq!(
        Signature::from_bytes(&sig),
        Err(Error::ScalarOutOfRange("ECCSI signature r"))
    );
}

#[test]
fn reject_s_equal_q() {
    let sig = with_s(&Rfc::load().sig(), &Q);
    assert_eq!(
        Signature::from_bytes(&sig),
        Err(Error::ScalarOutOfRange("ECCSI signature s"))
    );
}

/// r = s = 0 with a valid PVT would make J the point at infinity, whose x
/// "equals" r = 0: a universal forgery if accepted. It must fail for every
/// message and identity.
#[test]
fn reject_r_and_s_zero_universal_forgery() {
    let rfc = Rfc::load();
    let forged = with_s(&with_r(&rfc.sig(), &[0; 32]), &[0; 32]);
    assert_eq!(
        Signature::from_bytes(&forged),
        Err(Error::ScalarOutOfRange("ECCSI signature r"))
    );
    for msg in [&b""[..], b"message\0", b"transfer all funds"] {
        for id in [rfc.get("ID"), b"someone else".to_vec()] {
            assert_eq!(
                eccsi::verify_bytes(&rfc.kpak(), &id, msg, &forged),
                Err(Error::ScalarOutOfRange("ECCSI signature r"))
            );
        }
    }
}

#[test]
fn reject_wrong_length() {
    let sig = Rfc::load().sig();
    for len in [0, 1, 64, 128, 130, 258] {
        let mut bytes = sig.clone();
        bytes.resize(len, 0);
        assert_eq!(
            Signature::from_bytes(&bytes),
            Err(Error::InvalidLength {
                what: "ECCSI signature",
                expected: 129,
                actual: len,
            })
        );
    }
}

#[test]
fn reject_pvt_not_on_curve() {
    let rfc = Rfc::load();
    let mut pvt = rfc.get("PVT");
    pvt[64] ^= 0x01; // y + 1 or y - 1: not on the curve
    assert_eq!(
        Pvt::from_bytes(&pvt),
        Err(Error::PointNotOnCurve("ECCSI PVT"))
    );
    assert_eq!(
        Signature::from_bytes(&with_pvt(&rfc.sig(), &pvt)),
        Err(Error::PointNotOnCurve("ECCSI PVT"))
    );
}

#[test]
fn reject_pvt_coordinate_not_below_p() {
    let mut pvt = [0xffu8; POINT_LEN];
    pvt[0] = 0x04;
    assert_eq!(
        Pvt::from_bytes(&pvt),
        Err(Error::PointNotOnCurve("ECCSI PVT"))
    );
}

#[test]
fn reject_pvt_identity() {
    let rfc = Rfc::load();
    let identity = [0u8; POINT_LEN];
    assert_eq!(
        Pvt::from_bytes(&identity),
        Err(Error::PointAtInfinity("ECCSI PVT"))
    );
    assert_eq!(
        Signature::from_bytes(&with_pvt(&rfc.sig(), &identity)),
        Err(Error::PointAtInfinity("ECCSI PVT"))
    );
    // The bare SEC1 identity octet is not a 65-octet point.
    assert_eq!(
        Pvt::from_bytes(&[0x00]),
        Err(Error::InvalidLength {
            what: "ECCSI PVT",
            expected: 65,
            actual: 1
        })
    );
    // (0, 0) is not on P-256, whatever some encoders mean by it.
    let mut zero = [0u8; POINT_LEN];
    zero[0] = 0x04;
    assert_eq!(
        Pvt::from_bytes(&zero),
        Err(Error::PointNotOnCurve("ECCSI PVT"))
    );
}

#[test]
fn reject_pvt_compressed_tag() {
    let rfc = Rfc::load();
    for tag in [0x00, 0x02, 0x03, 0x05, 0x06, 0x07, 0xff] {
        let mut pvt = rfc.get("PVT");
        pvt[0] = tag;
        assert_eq!(
            Pvt::from_bytes(&pvt),
            Err(Error::InvalidPointEncoding("ECCSI PVT")),
            "tag {tag:#04x}"
        );
    }
}

#[test]
fn reject_bad_kpak() {
    let rfc = Rfc::load();
    let kpak = rfc.get("KPAK");
    let mut off_curve = kpak.clone();
    off_curve[1] ^= 0x80;
    assert_eq!(
        Kpak::from_bytes(&off_curve),
        Err(Error::PointNotOnCurve("ECCSI KPAK"))
    );
    assert_eq!(
        Kpak::from_bytes(&[0u8; POINT_LEN]),
        Err(Error::PointAtInfinity("ECCSI KPAK"))
    );
    assert_eq!(
        Kpak::from_bytes(&kpak[..33]),
        Err(Error::InvalidLength {
            what: "ECCSI KPAK",
            expected: 65,
            actual: 33
        })
    );
    let mut compressed_tag = kpak;
    compressed_tag[0] = 0x02;
    assert_eq!(
        Kpak::from_bytes(&compressed_tag),
        Err(Error::InvalidPointEncoding("ECCSI KPAK"))
    );
}

#[test]
fn reject_wrong_kpak() {
    let rfc = Rfc::load();
    let other = Ksak::generate(&mut rng()).public_key();
    assert_eq!(
        eccsi::verify_bytes(&other, &rfc.get("ID"), &rfc.get("M"), &rfc.sig()),
        Err(Error::SignatureInvalid)
    );
}

#[test]
fn reject_wrong_message() {
    let rfc = Rfc::load();
    for msg in [&b"message"[..], b"message\0\0", b"Message\0", b""] {
        assert_eq!(
            eccsi::verify_bytes(&rfc.kpak(), &rfc.get("ID"), msg, &rfc.sig()),
            Err(Error::SignatureInvalid)
        );
    }
}

#[test]
fn reject_wrong_id() {
    let rfc = Rfc::load();
    for id in [
        &b"2011-02\0tel:+447700900123"[..],
        b"2011-03\0tel:+447700900123\0",
        b"",
    ] {
        assert_eq!(
            eccsi::verify_bytes(&rfc.kpak(), id, &rfc.get("M"), &rfc.sig()),
            Err(Error::SignatureInvalid)
        );
    }
}

/// Every one of the 1032 single-bit flips of the RFC signature is rejected,
/// by decoding or by verification.
#[test]
fn reject_every_single_bit_flip() {
    let rfc = Rfc::load();
    let (kpak, id, msg, sig) = (rfc.kpak(), rfc.get("ID"), rfc.get("M"), rfc.sig());
    for bit in 0..SIGNATURE_LEN * 8 {
        let mut bytes = sig.clone();
        bytes[bit / 8] ^= 0x80 >> (bit % 8);
        assert!(
            eccsi::verify_bytes(&kpak, &id, &msg, &bytes).is_err(),
            "bit {bit} flipped still verifies"
        );
    }
}

#[test]
fn verifying_key_rejects_other_pvt() {
    let rfc = Rfc::load();
    let key = rfc.signing_key();
    let vk = key.verifying_key();
    // A valid signature by another user of the same KMS, for another ID.
    let ksak = Ksak::from_bytes(&rfc.get("KSAK")).unwrap();
    let (ssk, pvt) = eccsi::issue(&ksak, b"other", &mut rng()).unwrap();
    let other = SigningKey::new(&rfc.kpak(), b"other", ssk, pvt).unwrap();
    let sig = other.sign(b"m", &mut rng());
    eccsi::verify(&rfc.kpak(), b"other", b"m", &sig).unwrap();
    assert_eq!(vk.verify(b"m", &sig), Err(Error::SignatureInvalid));
}

#[test]
fn reject_scalar_keys_out_of_range() {
    for (bytes, err) in [
        (vec![0u8; 32], Error::ScalarOutOfRange("ECCSI KSAK")),
        (Q.to_vec(), Error::ScalarOutOfRange("ECCSI KSAK")),
        (
            vec![1u8; 31],
            Error::InvalidLength {
                what: "ECCSI KSAK",
                expected: 32,
                actual: 31,
            },
        ),
    ] {
        assert_eq!(Ksak::from_bytes(&bytes).err(), Some(err));
    }
    assert_eq!(
        Ssk::from_bytes(&Q).err(),
        Some(Error::ScalarOutOfRange("ECCSI SSK"))
    );
    assert_eq!(
        Ssk::from_bytes(&[0u8; 32]).err(),
        Some(Error::ScalarOutOfRange("ECCSI SSK"))
    );
    assert_eq!(
        hazmat::issue_with_v(&Ksak::generate(&mut rng()), b"id", &Q).err(),
        Some(Error::ScalarOutOfRange("ECCSI v"))
    );
}

#[test]
fn q_minus_one_is_a_valid_scalar() {
    let mut q_minus_1 = Q;
    q_minus_1[31] -= 1;
    Ksak::from_bytes(&q_minus_1).unwrap();
    let sig = with_s(&with_r(&Rfc::load().sig(), &q_minus_1), &q_minus_1);
    let sig = Signature::from_bytes(&sig).unwrap();
    let rfc = Rfc::load();
    assert_eq!(
        eccsi::verify(&rfc.kpak(), &rfc.get("ID"), &rfc.get("M"), &sig),
        Err(Error::SignatureInvalid)
    );
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

#[test]
fn debug_does_not_print_secrets() {
    let rfc = Rfc::load();
    let ksak = Ksak::from_bytes(&rfc.get("KSAK")).unwrap();
    let ssk = Ssk::from_bytes(&rfc.get("SSK")).unwrap();
    let key = rfc.signing_key();
    let outputs = [
        format!("{ksak:?} {ksak:#?}"),
        format!("{ssk:?} {ssk:#?}"),
        format!("{key:?} {key:#?}"),
    ];
    for secret in [
        rfc.v["KSAK"].as_str().unwrap(),
        rfc.v["SSK"].as_str().unwrap(),
        "12345",
        "23f374ae",
        "23F374AE",
    ] {
        for out in &outputs {
            assert!(!out.contains(secret), "{out} leaks {secret}");
        }
    }
    assert_eq!(format!("{ksak:?}"), "Ksak { .. }");
    assert_eq!(format!("{ssk:?}"), "Ssk { .. }");
    assert_eq!(format!("{key:?}"), "SigningKey { .. }");
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_sign_verify_round_trip(msg in proptest::collection::vec(any::<u8>(), 0..512)) {
        let rfc = Rfc::load();
        let key = rfc.signing_key();
        let sig = key.sign(&msg, &mut rng());
        let decoded = Signature::from_bytes(&sig.to_bytes()).unwrap();
        prop_assert_eq!(&decoded, &sig);
        prop_assert_eq!(eccsi::verify(&rfc.kpak(), &rfc.get("ID"), &msg, &sig), Ok(()));
        prop_assert_eq!(key.verifying_key().verify(&msg, &sig), Ok(()));
    }

    #[test]
    fn prop_signature_bit_flip_fails(
        msg in proptest::collection::vec(any::<u8>(), 0..64),
        bit in 0..SIGNATURE_LEN * 8,
    ) {
        let rfc = Rfc::load();
        let key = rfc.signing_key();
        let mut sig = key.sign(&msg, &mut rng()).to_bytes();
        sig[bit / 8] ^= 0x80 >> (bit % 8);
        prop_assert!(eccsi::verify_bytes(&rfc.kpak(), &rfc.get("ID"), &msg, &sig).is_err());
        if let Ok(sig) = Signature::from_bytes(&sig) {
            prop_assert_eq!(key.verifying_key().verify(&msg, &sig), Err(Error::SignatureInvalid));
        }
    }

    #[test]
    fn prop_message_bit_flip_fails(
        msg in proptest::collection::vec(any::<u8>(), 1..64),
        bit in any::<proptest::sample::Index>(),
    ) {
        let rfc = Rfc::load();
        let key = rfc.signing_key();
        let sig = key.sign(&msg, &mut rng());
        let mut altered = msg.clone();
        let bit = bit.index(msg.len() * 8);
        altered[bit / 8] ^= 0x80 >> (bit % 8);
        prop_assert_eq!(
            eccsi::verify(&rfc.kpak(), &rfc.get("ID"), &altered, &sig),
            Err(Error::SignatureInvalid)
        );
    }

    #[test]
    fn prop_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Signature::from_bytes(&bytes);
        let _ = Kpak::from_bytes(&bytes);
        let _ = Pvt::from_bytes(&bytes);
        let _ = Ksak::from_bytes(&bytes);
        let _ = Ssk::from_bytes(&bytes);
    }

    /// Fixed-length random inputs reach the range and curve checks.
    #[test]
    fn prop_fixed_length_decoders_never_panic(
        sig in proptest::collection::vec(any::<u8>(), SIGNATURE_LEN),
        tag in prop_oneof![Just(0x04u8), any::<u8>()],
    ) {
        let mut sig = sig;
        sig[64] = tag;
        let rfc = Rfc::load();
        if let Ok(decoded) = Signature::from_bytes(&sig) {
            prop_assert_eq!(decoded.to_bytes().to_vec(), sig.clone());
            prop_assert!(eccsi::verify(&rfc.kpak(), &rfc.get("ID"), b"m", &decoded).is_err());
        }
        let _ = Kpak::from_bytes(&sig[64..]);
        let _ = Pvt::from_bytes(&sig[64..]);
    }
}
