//! `describe` (issue point 6): the vendor messages print completely, the
//! JSON is machine-readable, and with keys the message is verified and
//! decrypted.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::*;
use mcx_mikey::describe::{Keys, describe, parse_input};

#[test]
fn input_forms() {
    let b64 = s(&message(GMK_MSG)["I-MESSAGE"]);
    let bytes = imessage(GMK_MSG);
    assert_eq!(parse_input(b64).unwrap(), bytes);
    assert_eq!(parse_input(&format!("mikey {b64}")).unwrap(), bytes);
    assert_eq!(
        parse_input(&format!("a=key-mgmt:mikey {b64}\r\n")).unwrap(),
        bytes
    );
    assert_eq!(parse_input(&hex::encode(&bytes)).unwrap(), bytes);
    let spaced: String = hex::encode(&bytes)
        .as_bytes()
        .chunks(32)
        .map(|c| std::str::from_utf8(c).unwrap().to_owned() + "\n")
        .collect();
    assert_eq!(parse_input(&spaced).unwrap(), bytes);
    assert!(parse_input("not mikey!").is_err());
    let nopad = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes[..10]);
    assert_eq!(parse_input(&nopad).unwrap(), bytes[..10]);
}

#[test]
fn vendor_message_tree_without_keys() {
    let d = describe(&imessage(GMK_MSG), &Keys::default());
    assert!(d.error.is_none());
    assert!(d.checks.is_empty());
    let text = d.to_text();
    for needle in [
        "MIKEY message, 701 octets",
        "data type: 26 (SAKKE msg)",
        "CS ID map type: 2 (GENERIC-ID)",
        "SPI: 0df9bc3906a12aea",
        "TS type: 0 (NTP-UTC)",
        "ID role: 8 (IDRuidi)",
        "ID: \"kms.mydev.streamwide.com\"",
        "type 20 (AEAD authentication tag length): 16",
        "type 0 (Encryption algorithm): 6 (AES-GCM)",
        "ID scheme: 2 (3GPP MCX hashed UID)",
        "type: 7 (3GPP key parameters)",
        "DPPK-ID: 06a12aea",
        "S type: 2 (ECCSI)",
        "signature length: 129",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let json = d.to_json();
    assert_eq!(json["length"], 701);
    assert_eq!(json["payloads"].as_array().unwrap().len(), 11);
    assert_eq!(json["payloads"][10]["name"], "SIGN");
    assert_eq!(json["payloads"][10]["offset"], 570);
}

#[test]
fn vendor_message_verified_and_decrypted_with_keys() {
    let rx = alice_receiver();
    let keys = Keys {
        kms: Some(sw_kms()),
        receiver: Some(rx),
        receiver_uri: Some(s(&user("Alice")["UserUri"])),
        gmks: &[],
    };
    let text = describe(&imessage(GMK_MSG), &keys).to_text();
    let d = &sw()["derived"];
    for needle in [
        "signature: valid",
        "key (SSV): 07d1a1677ac36d8e81620484689b3c2d",
        "GMK-ID (from GUK-ID): 0df9bc39",
        &format!("master key: {}", s(&d["alice_gmk_srtp_master_key"])),
        &format!("master salt: {}", s(&d["alice_gmk_srtp_master_salt"])),
        "key type: 0 (GMK)",
        "status: 0x00000001",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // A tampered message says so.
    let mut b = imessage(GMK_MSG);
    b[40] ^= 1;
    let text = describe(&b, &keys).to_text();
    assert!(text.contains("signature: INVALID"), "{text}");
}

#[test]
fn decode_errors_name_payload_and_offset() {
    let b = imessage(PCK_MSG);
    let d = describe(&b[..300], &Keys::default());
    let e = d.error.clone().unwrap();
    assert_eq!(e.payload, "SAKKE");
    assert_eq!(e.field, "SAKKE data");
    assert_eq!(e.offset, 207);
    assert!(d.to_json()["error"].as_str().unwrap().contains("SAKKE"));
}
