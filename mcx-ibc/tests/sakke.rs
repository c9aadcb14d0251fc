//! SAKKE against RFC 6508 Appendix A (example data, parameter set 1 of
//! RFC 6509), the vendor keys published by Streamwide (TS 33.180 MIKEY-SAKKE
//! interop data) and rejection of malformed or altered input.
//!
//! Vectors: tests/data/rfc6507-6508-6509.json and
//! tests/data/streamwide-mikey-sakke.json, copied from the project's shared
//! vectors (RFC 6508 Appendix A; Streamwide StreamwideTestVectors).
#![allow(clippy::unwrap_used)]

use mcx_ibc::Error;
use mcx_ibc::sakke::{
    self, KmsPublicKey, MasterSecret, ReceiverKey, Recipient, Rsk, SED_LEN, Ssv, extract_rsk,
};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;

fn rfc() -> Value {
    serde_json::from_str(include_str!("data/rfc6507-6508-6509.json")).unwrap()
}
fn vendor() -> Value {
    serde_json::from_str(include_str!("data/streamwide-mikey-sakke.json")).unwrap()
}
fn hx(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

struct Rfc {
    z: Vec<u8>,
    kms: Vec<u8>,
    id: Vec<u8>,
    rsk: Vec<u8>,
    ssv: Vec<u8>,
    r: Vec<u8>,
    g_r: Vec<u8>,
    sed: Vec<u8>,
    g: Vec<u8>,
}

fn rfc6508() -> Rfc {
    let v = rfc();
    let a = &v["sakke_rfc6508_appendix_a"];
    Rfc {
        z: hx(&a["z"]),
        kms: hx(&a["Z_S"]),
        id: hx(&a["ID_b"]),
        rsk: hx(&a["RSK"]),
        ssv: hx(&a["SSV"]),
        r: hx(&a["r"]),
        g_r: hx(&a["g_pow_r"]),
        sed: hx(&a["SED"]),
        g: hx(&v["sakke_rfc6509_parameter_set_1"]["g"]),
    }
}

#[test]
fn rfc6508_kms_public_key_from_master_secret() {
    let v = rfc6508();
    let z = MasterSecret::from_bytes(&v.z).unwrap();
    assert_eq!(z.public_key().to_bytes().to_vec(), v.kms);
}

#[test]
fn rfc6508_rsk_extraction() {
    let v = rfc6508();
    let z = MasterSecret::from_bytes(&v.z).unwrap();
    let rsk = extract_rsk(&z, &v.id).unwrap();
    assert_eq!(rsk.to_bytes().to_vec(), v.rsk);
}

#[test]
fn rfc6509_g_is_the_pairing_of_p_with_itself() {
    let v = rfc6508();
    assert_eq!(sakke::internal::pairing_of_base().to_vec(), v.g);
}

#[test]
fn rfc6508_intermediate_r_and_g_pow_r() {
    let v = rfc6508();
    let ssv = Ssv::from_bytes(&v.ssv).unwrap();
    let r = sakke::internal::r_for(&ssv, &v.id);
    assert_eq!(r.to_vec(), v.r);
    assert_eq!(sakke::internal::g_pow(&r).to_vec(), v.g_r);
}

#[test]
fn rfc6508_encapsulation_reproduces_sed() {
    let v = rfc6508();
    let kms = KmsPublicKey::from_bytes(&v.kms).unwrap();
    let ssv = Ssv::from_bytes(&v.ssv).unwrap();
    assert_eq!(
        sakke::encapsulate(&kms, &v.id, &ssv).unwrap().to_vec(),
        v.sed
    );
    let cached = Recipient::new(&kms, &v.id).unwrap().with_table().unwrap();
    assert_eq!(cached.encapsulate(&ssv).unwrap().to_vec(), v.sed);
}

#[test]
fn rfc6508_decapsulation_recovers_ssv() {
    let v = rfc6508();
    let kms = KmsPublicKey::from_bytes(&v.kms).unwrap();
    let rsk = Rsk::from_bytes(&v.rsk).unwrap();
    let key = ReceiverKey::new(&kms, &v.id, &rsk).unwrap();
    let ssv = key.decapsulate(&v.sed).unwrap();
    assert_eq!(ssv.as_bytes().to_vec(), v.ssv);
    // With the RSK's lines precomputed, the same answer.
    let key = key.with_lines();
    assert_eq!(key.decapsulate(&v.sed).unwrap().as_bytes().to_vec(), v.ssv);
    let mut bad = v.sed;
    bad[SED_LEN - 1] ^= 0x80;
    assert_eq!(
        key.decapsulate(&bad).unwrap_err(),
        Error::DecapsulationFailed
    );
    // And on a fresh key's first decapsulation (R walked, w = g^r checked).
    let fresh = ReceiverKey::new(&kms, &v.id, &rsk).unwrap();
    assert_eq!(
        fresh.decapsulate(&bad).unwrap_err(),
        Error::DecapsulationFailed
    );
}

/// Streamwide's KMS public key and its users' RSKs (identity = 32-octet
/// MIKEY-SAKKE UID) validate: RFC 6508 6.1.2 holds for another vendor's keys.
#[test]
fn vendor_rsks_validate_against_vendor_kms() {
    let v = vendor();
    let kms = KmsPublicKey::from_bytes(&hx(&v["kms"]["PubEncKey"])).unwrap();
    for user in ["GMS", "Alice", "Bob"] {
        let u = &v["users"][user];
        let uid = hx(&u["UserID"]);
        let rsk = Rsk::from_bytes(&hx(&u["UserDecryptKey"])).unwrap();
        ReceiverKey::new(&kms, &uid, &rsk).unwrap_or_else(|e| panic!("{user}: {e}"));
    }
    // Alice's RSK is not Bob's.
    let alice = Rsk::from_bytes(&hx(&v["users"]["Alice"]["UserDecryptKey"])).unwrap();
    let bob_uid = hx(&v["users"]["Bob"]["UserID"]);
    assert_eq!(
        ReceiverKey::new(&kms, &bob_uid, &alice).unwrap_err(),
        Error::KeyValidationFailed("SAKKE RSK")
    );
}

/// Encapsulating to a vendor user and decapsulating with that user's
/// vendor-issued RSK round-trips; another user's key cannot open it.
#[test]
fn vendor_users_round_trip() {
    let v = vendor();
    let kms = KmsPublicKey::from_bytes(&hx(&v["kms"]["PubEncKey"])).unwrap();
    let bob = &v["users"]["Bob"];
    let bob_uid = hx(&bob["UserID"]);
    let bob_key = ReceiverKey::new(
        &kms,
        &bob_uid,
        &Rsk::from_bytes(&hx(&bob["UserDecryptKey"])).unwrap(),
    )
    .unwrap();
    let alice = &v["users"]["Alice"];
    let alice_key = ReceiverKey::new(
        &kms,
        &hx(&alice["UserID"]),
        &Rsk::from_bytes(&hx(&alice["UserDecryptKey"])).unwrap(),
    )
    .unwrap();
    let ssv = Ssv::from_bytes(&[0x5a; 16]).unwrap();
    let sed = sakke::encapsulate(&kms, &bob_uid, &ssv).unwrap();
    // The first decapsulation of each key walks R; the second builds and
    // evaluates the RSK's lines.
    for _ in 0..2 {
        assert_eq!(bob_key.decapsulate(&sed).unwrap(), ssv);
        assert_eq!(
            alice_key.decapsulate(&sed).unwrap_err(),
            Error::DecapsulationFailed
        );
    }
}

fn rfc_receiver() -> (ReceiverKey, Vec<u8>) {
    let v = rfc6508();
    let kms = KmsPublicKey::from_bytes(&v.kms).unwrap();
    let key = ReceiverKey::new(&kms, &v.id, &Rsk::from_bytes(&v.rsk).unwrap()).unwrap();
    (key, v.sed)
}

/// Decapsulates `sed` for the RFC 6508 receiver on both paths: a fresh
/// key's first decapsulation (R walked, R of order q and w = g^r checked)
/// and a key with the RSK's lines (evaluated at R, R = [r]([b]P + Z)
/// checked).
fn decapsulate_both_ways(sed: &[u8]) -> [Result<Ssv, Error>; 2] {
    static STEADY: OnceLock<ReceiverKey> = OnceLock::new();
    let steady = STEADY.get_or_init(|| rfc_receiver().0.with_lines());
    [rfc_receiver().0.decapsulate(sed), steady.decapsulate(sed)]
}

fn assert_refused_both_ways(sed: &[u8], what: &str) {
    for (path, result) in ["first", "steady"].iter().zip(decapsulate_both_ways(sed)) {
        assert_eq!(
            result.err(),
            Some(Error::DecapsulationFailed),
            "{what}, {path} decapsulation"
        );
    }
}

/// R replaced by points the mandatory check must refuse, on both paths:
/// R plus a point of order 2 or 4 (a component the reduced pairing
/// evaluated there cannot see: only the check on R catches it), the points
/// of order 2 and 4 themselves, and [r′]([b]P + Z) for r′ ≠ r. The
/// unaltered data opens on both paths, and [r]([b]P + Z) is R.
#[test]
fn altered_r_is_rejected_on_both_paths() {
    let v = rfc6508();
    for result in decapsulate_both_ways(&v.sed) {
        assert_eq!(result.unwrap().as_bytes().to_vec(), v.ssv);
    }
    let r_point = &v.sed[..sakke::POINT_LEN];
    let kms = KmsPublicKey::from_bytes(&v.kms).unwrap();
    let key = ReceiverKey::new(&kms, &v.id, &Rsk::from_bytes(&v.rsk).unwrap()).unwrap();
    let q_b = key.public_point();
    let r = sakke::internal::r_for(&Ssv::from_bytes(&v.ssv).unwrap(), &v.id);
    assert_eq!(
        sakke::internal::mul_point(&q_b, &r).unwrap().to_vec(),
        r_point
    );
    let mut r_wrong = r;
    r_wrong[127] ^= 1;
    let t4 = sakke::internal::point_of_order_four();
    let mut t2 = [0u8; sakke::POINT_LEN];
    t2[0] = 4;
    let cases = [
        (
            "R + (0, 0)",
            sakke::internal::add_order_two(r_point).unwrap(),
        ),
        ("R + T4", sakke::internal::add_points(r_point, &t4).unwrap()),
        ("(0, 0)", t2),
        ("T4", t4),
        (
            "[r']([b]P + Z)",
            sakke::internal::mul_point(&q_b, &r_wrong).unwrap(),
        ),
    ];
    for (what, point) in cases {
        let mut sed = v.sed.clone();
        sed[..sakke::POINT_LEN].copy_from_slice(&point);
        assert_refused_both_ways(&sed, what);
    }
}

/// An RSK with a component of order 2 or 4 added passes the pairing check
/// (the reduced pairing ignores it) but is refused by the order check.
#[test]
fn rsk_with_a_component_of_small_order_is_refused() {
    let v = rfc6508();
    let kms = KmsPublicKey::from_bytes(&v.kms).unwrap();
    let t4 = sakke::internal::point_of_order_four();
    for skewed in [
        sakke::internal::add_order_two(&v.rsk).unwrap(),
        sakke::internal::add_points(&v.rsk, &t4).unwrap(),
    ] {
        assert_eq!(
            ReceiverKey::new(&kms, &v.id, &Rsk::from_bytes(&skewed).unwrap()).unwrap_err(),
            Error::KeyValidationFailed("SAKKE RSK")
        );
    }
}

#[test]
fn altered_h_fails_the_mandatory_r_check() {
    let (_, mut sed) = rfc_receiver();
    sed[SED_LEN - 1] ^= 1;
    assert_refused_both_ways(&sed, "altered H");
}

#[test]
fn r_replaced_by_another_curve_point_fails() {
    // R := P, a valid point of order q that was not made for this SSV.
    let (_, mut sed) = rfc_receiver();
    let v = rfc();
    let p = &v["sakke_rfc6509_parameter_set_1"];
    sed[1..129].copy_from_slice(&hx(&p["Px"]));
    sed[129..257].copy_from_slice(&hx(&p["Py"]));
    assert_refused_both_ways(&sed, "R := P");
}

#[test]
fn malformed_sed_gets_named_errors() {
    let (key, sed) = rfc_receiver();
    assert_eq!(
        key.decapsulate(&sed[..272]).unwrap_err(),
        Error::InvalidLength {
            what: "SAKKE encapsulated data",
            expected: 273,
            actual: 272
        }
    );
    let mut bad = sed.clone();
    bad[0] = 0x02;
    assert_eq!(
        key.decapsulate(&bad).unwrap_err(),
        Error::InvalidPointEncoding("SAKKE R")
    );
    let mut bad = sed.clone();
    bad[200] ^= 0x01;
    assert_eq!(
        key.decapsulate(&bad).unwrap_err(),
        Error::PointNotOnCurve("SAKKE R")
    );
    // Coordinates not below p.
    let mut bad = sed.clone();
    bad[1..129].fill(0xff);
    assert_eq!(
        key.decapsulate(&bad).unwrap_err(),
        Error::PointNotOnCurve("SAKKE R")
    );
    // (0, 0) is on y² = x³ − 3x but has order 2: rejected by the R check.
    let mut bad = sed;
    bad[1..257].fill(0);
    assert_refused_both_ways(&bad, "R := (0, 0)");
}

#[test]
fn bad_keys_are_rejected_with_named_errors() {
    let v = rfc6508();
    assert_eq!(
        MasterSecret::from_bytes(&[0]).unwrap_err(),
        Error::ScalarOutOfRange("SAKKE master secret")
    );
    assert_eq!(
        MasterSecret::from_bytes(&[1]).unwrap_err(),
        Error::ScalarOutOfRange("SAKKE master secret")
    );
    let q = hx(&rfc()["sakke_rfc6509_parameter_set_1"]["q"]);
    assert_eq!(
        MasterSecret::from_bytes(&q).unwrap_err(),
        Error::ScalarOutOfRange("SAKKE master secret")
    );
    assert!(matches!(
        MasterSecret::from_bytes(&[1; 129]).unwrap_err(),
        Error::InvalidLength { .. }
    ));
    assert_eq!(
        KmsPublicKey::from_bytes(&v.kms[..256]).unwrap_err(),
        Error::InvalidLength {
            what: "SAKKE KMS public key",
            expected: 257,
            actual: 256
        }
    );
    let mut off = v.kms.clone();
    off[256] ^= 1;
    assert_eq!(
        KmsPublicKey::from_bytes(&off).unwrap_err(),
        Error::PointNotOnCurve("SAKKE KMS public key")
    );
    // (0, 0) is on the curve but of order 2, not q.
    let mut order2 = vec![0u8; 257];
    order2[0] = 4;
    assert_eq!(
        KmsPublicKey::from_bytes(&order2).unwrap_err(),
        Error::PointNotInSubgroup("SAKKE KMS public key")
    );
    let mut rsk = v.rsk.clone();
    rsk[5] ^= 0x10;
    assert_eq!(
        Rsk::from_bytes(&rsk).unwrap_err(),
        Error::PointNotOnCurve("SAKKE RSK")
    );
    let kms = KmsPublicKey::from_bytes(&v.kms).unwrap();
    let rsk = Rsk::from_bytes(&v.rsk).unwrap();
    assert_eq!(
        ReceiverKey::new(&kms, b"someone else", &rsk).unwrap_err(),
        Error::KeyValidationFailed("SAKKE RSK")
    );
    assert_eq!(
        Recipient::new(&kms, b"").unwrap_err(),
        Error::InvalidParameter("SAKKE identifier is empty")
    );
    assert!(matches!(
        Recipient::new(&kms, &[7; 257]).unwrap_err(),
        Error::InvalidLength { .. }
    ));
    assert!(matches!(
        Ssv::from_bytes(&[0; 15]).unwrap_err(),
        Error::InvalidLength { .. }
    ));
}

#[test]
fn secrets_do_not_print() {
    let v = rfc6508();
    let z = MasterSecret::from_bytes(&v.z).unwrap();
    let rsk = Rsk::from_bytes(&v.rsk).unwrap();
    let ssv = Ssv::from_bytes(&v.ssv).unwrap();
    for s in [format!("{z:?}"), format!("{rsk:?}"), format!("{ssv:?}")] {
        assert!(
            !s.contains("aff4") && !s.contains("1234") && !s.contains("93af"),
            "{s}"
        );
    }
}

#[test]
fn generated_community_round_trips() {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let z = MasterSecret::generate(&mut rng);
    let kms = z.public_key();
    let id = b"sip:member@example.org";
    let rsk = extract_rsk(&z, id).unwrap();
    let key = ReceiverKey::new(&kms, id, &rsk).unwrap();
    let ssv = Ssv::generate(&mut rng);
    let sed = Recipient::new(&kms, id).unwrap().encapsulate(&ssv).unwrap();
    assert_eq!(key.decapsulate(&sed).unwrap(), ssv);
}

/// The pairing walked directly and with stored lines agree, and match
/// RFC 6509's g for ⟨P, P⟩ and RFC 6508's g^r for ⟨R, K_b⟩ (the value the
/// mask is derived from is checked end to end by the decapsulations).
#[test]
fn direct_and_stored_line_pairings_agree() {
    let v = rfc();
    let p = &v["sakke_rfc6509_parameter_set_1"];
    let mut base = vec![4u8];
    base.extend(hx(&p["Px"]));
    base.extend(hx(&p["Py"]));
    let (direct, stored) = sakke::internal::pairings_both_ways(&base, &base).unwrap();
    assert_eq!(direct.to_vec(), rfc6508().g);
    assert_eq!(stored.to_vec(), rfc6508().g);
    let r = rfc6508();
    let (direct, stored) =
        sakke::internal::pairings_both_ways(&r.rsk, &r.sed[..sakke::POINT_LEN]).unwrap();
    assert_eq!(direct, stored);
    assert_eq!(direct.to_vec(), r.g_r);
}

/// Validation with the shared lines of P and Z rejects an RSK of another
/// identity, [2]K_b and K_b + (P of another KMS); a key with a component
/// of order 2 added, which the reduced pairing cannot see, still never
/// decapsulates.
#[test]
fn validation_rejects_wrong_rsks() {
    let v = rfc6508();
    let kms = KmsPublicKey::from_bytes(&v.kms).unwrap();
    let z = MasterSecret::from_bytes(&v.z).unwrap();
    let other = extract_rsk(&z, b"someone else").unwrap();
    assert_eq!(
        ReceiverKey::new(&kms, &v.id, &other).unwrap_err(),
        Error::KeyValidationFailed("SAKKE RSK")
    );
    let twice = sakke::internal::add_points(&v.rsk, &v.rsk).unwrap();
    assert_eq!(
        ReceiverKey::new(&kms, &v.id, &Rsk::from_bytes(&twice).unwrap()).unwrap_err(),
        Error::KeyValidationFailed("SAKKE RSK")
    );
    // A component of order 2 or 4: `rsk_with_a_component_of_small_order_is_refused`.
}

/// RFC 6508's Z plus a point of order 2 or 4 is on the curve but not of
/// order q: refused by the order test that replaced [q]Z.
#[test]
fn kms_key_with_a_component_of_small_order_is_refused() {
    let v = rfc6508();
    let t4 = sakke::internal::point_of_order_four();
    for skewed in [
        sakke::internal::add_order_two(&v.kms).unwrap(),
        sakke::internal::add_points(&v.kms, &t4).unwrap(),
        t4,
    ] {
        assert_eq!(
            KmsPublicKey::from_bytes(&skewed).unwrap_err(),
            Error::PointNotInSubgroup("SAKKE KMS public key")
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any single-bit change anywhere in the encapsulated data is caught.
    #[test]
    fn any_bit_flip_is_rejected(bit in 0usize..(SED_LEN * 8)) {
        let (key, mut sed) = rfc_receiver();
        sed[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(key.decapsulate(&sed).is_err());
    }

    /// Arbitrary bytes never panic the decoders or decapsulation.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (key, _) = rfc_receiver();
        let _ = key.decapsulate(&bytes);
        let _ = KmsPublicKey::from_bytes(&bytes);
        let _ = Rsk::from_bytes(&bytes);
        let _ = MasterSecret::from_bytes(&bytes);
    }

    /// Random SSVs to random identities round-trip through a fresh community.
    #[test]
    fn random_ssv_round_trip(ssv in any::<[u8; 16]>(), id in proptest::collection::vec(any::<u8>(), 1..64)) {
        let v = rfc6508();
        let z = MasterSecret::from_bytes(&v.z).unwrap();
        let kms = z.public_key();
        let rsk = extract_rsk(&z, &id).unwrap();
        let key = ReceiverKey::new(&kms, &id, &rsk).unwrap();
        let ssv = Ssv::from_bytes(&ssv).unwrap();
        let sed = sakke::encapsulate(&kms, &id, &ssv).unwrap();
        prop_assert_eq!(key.decapsulate(&sed).unwrap(), ssv);
    }
}
