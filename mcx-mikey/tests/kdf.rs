//! Key derivation vectors (issue point 5): TS 33.220 KDF uses of
//! TS 33.180 (GUK-ID, DPCK), RFC 3830 4.1.3 with PRF-HMAC-SHA-256, and the
//! derived SRTP keys of Alice's GMK.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mcx_mikey::{Gmk, KeyId, Tgmk, kdf, tgmk};

fn id(v: &serde_json::Value) -> KeyId {
    KeyId::from_bytes(hex(v).try_into().unwrap())
}

#[test]
fn guk_id_vector() {
    let v = &kdf_vectors()["guk_id"];
    let gmk = Gmk::from_bytes(&hex(&v["gmk"])).unwrap();
    assert_eq!(
        kdf::guk_id(&gmk, id(&v["gmk_id"]), s(&v["user_uri"])),
        id(&v["guk_id"])
    );
    // Another user gets another GUK-ID with the same purpose nibble.
    let other = kdf::guk_id(&gmk, id(&v["gmk_id"]), "sip:bob@streamwide.com");
    assert_ne!(other, id(&v["guk_id"]));
    assert_eq!(other.0 >> 28, 0);
}

#[test]
fn dpck_vector() {
    let v = &kdf_vectors()["dpck"];
    let dppk_id = u32::from_be_bytes(hex(&v["dppk_id"]).try_into().unwrap());
    assert_eq!(
        kdf::dpck(&hex(&v["dppk"]), dppk_id).to_vec(),
        hex(&v["dpck"])
    );
}

#[test]
fn mikey_srtp_kdf_vector() {
    let v = &kdf_vectors()["mikey_srtp_kdf"];
    for case in v["cases"].as_array().unwrap() {
        let csb = u32::from_be_bytes(hex(&case["csb_id"]).try_into().unwrap());
        let cs = u8::try_from(case["cs_id"].as_u64().unwrap()).unwrap();
        let (k, salt) = kdf::srtp_master(&hex(&v["tgk"]), cs, csb, &hex(&v["rand"]));
        assert_eq!(
            [k.as_slice(), &salt].concat(),
            hex(&case["master_key_then_salt"])
        );
    }
}

#[test]
fn alice_gmk_media_keys() {
    let m = message(GMK_MSG);
    let gmk = Gmk::from_bytes(&hex(&m["GMK"])).unwrap();
    let keys = kdf::gmk_srtp_keys(
        &gmk,
        id(&m["GMK-ID"]),
        id(&m["GUK-ID"]),
        &hex(&m["GMK-RAND"]),
    );
    assert_alice_gmk_keys(&keys);
}

/// Another member derives Alice's media keys from the MKI of her packets
/// (GMK-ID || GUK-ID), the GMK and the GMK message's RAND alone, and gets
/// the published values (TS 33.180 7.4.2; Streamwide derived vector).
#[test]
fn a_receiver_derives_alices_media_keys_from_her_mki() {
    let m = message(GMK_MSG);
    let mki = hex(&sw()["derived"]["alice_gmk_mki"]);
    let (gmk_id, guk_id) = kdf::split_gmk_mki(&mki).unwrap();
    assert_eq!((gmk_id, guk_id), (id(&m["GMK-ID"]), id(&m["GUK-ID"])));
    assert_eq!(kdf::gmk_mki(gmk_id, guk_id).to_vec(), mki);
    let gmk = Gmk::from_bytes(&hex(&m["GMK"])).unwrap();
    assert_alice_gmk_keys(&kdf::gmk_srtp_keys(
        &gmk,
        gmk_id,
        guk_id,
        &hex(&m["GMK-RAND"]),
    ));
    assert_eq!(kdf::split_gmk_mki(&mki[..7]), None);
    assert_eq!(kdf::split_gmk_mki(&[mki.as_slice(), &[0]].concat()), None);
}

#[test]
fn tgmk_media_keys_follow_spec_section_6() {
    // TGK = TGMK, CS ID 4, CSB ID = TGMK-ID, MKI = TGMK-ID: the same
    // RFC 3830 4.1.3 derivation as the published vector.
    let v = &kdf_vectors()["mikey_srtp_kdf"];
    let case = &v["cases"][0];
    let t = Tgmk::from_bytes(&hex(&v["tgk"])).unwrap();
    let tid = id(&case["csb_id"]);
    let keys = tgmk::srtp_keys(&t, tid, &hex(&v["rand"]));
    assert_eq!(
        [keys.master_key().as_slice(), keys.master_salt()].concat(),
        hex(&case["master_key_then_salt"])
    );
    assert_eq!(keys.mki(), tid.to_bytes());
}

#[test]
fn pre_shared_key_derivation_uses_rfc3830_constants() {
    // RFC 3830 4.1.4: label = const || 0xFF || CSB ID || RAND.
    let psk = [7u8; 16];
    let rand = [9u8; 16];
    let k = kdf::kemac_keys(&psk, 0x7000_0001, &rand);
    let mut label = 0x1505_33E1u32.to_be_bytes().to_vec();
    label.push(0xff);
    label.extend_from_slice(&0x7000_0001u32.to_be_bytes());
    label.extend_from_slice(&rand);
    let mut e = [0u8; 16];
    kdf::mikey_prf(&psk, &label, &mut e);
    assert_eq!(*k.encr, e);
    assert_ne!(k.auth[..16], k.encr[..]);
}
