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
use serde_json::Value;

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
    assert_eq!(sakke::encapsulate(&kms, &v.id, &ssv).unwrap().to_vec(), v.sed);
    let cached = Recipient::new(&kms, &v.id).unwrap().with_table();
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
}
