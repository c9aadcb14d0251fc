//! The byte-level example of docs/tgmk-wrap.md is what this crate
//! produces: the test rebuilds it from the documented inputs and compares
//! every octet up to the SIGN header (the signature itself is randomised).

#![allow(clippy::unwrap_used)]

mod common;

use mcx_mikey::message::Sp;
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::tgmk::{ConstituentGroup, TgmkReceiver, TgmkWrap};
use mcx_mikey::{Gmk, KeyId, Message, Tgmk};

const DOC: &str = include_str!("../../docs/tgmk-wrap.md");

fn example() -> (Vec<u8>, mcx_mikey::message::Layout) {
    let gmk = Gmk::from_bytes(&(0u8..16).collect::<Vec<_>>()).unwrap();
    let tgmk = Tgmk::from_bytes(&(0xf0u8..=0xff).collect::<Vec<_>>()).unwrap();
    let wrap = TgmkWrap {
        initiator_uri: "sip:dispatcher@example.org",
        kms: common::sw_kms(),
        temporary_group_id: "sip:temporary-1@example.org",
        tgmk: &tgmk,
        tgmk_id: KeyId(0x7abc_def0),
        activation: 1_760_000_000,
        expiry: 1_760_003_600,
        t_unix: 1_760_000_000,
        policy: Sp::default_group_profile(),
    };
    let group = ConstituentGroup {
        group_id: "sip:group-a@example.org",
        gmk: &gmk,
        gmk_id: KeyId(0x0123_4567),
    };
    let rand: [u8; 16] = core::array::from_fn(|i| 0xa0 + i as u8);
    let iv: [u8; 16] = core::array::from_fn(|i| 0xb0 + i as u8);
    wrap.copy_unsigned(&group, &rand, iv).unwrap()
}

/// The hex lines of the doc's example block (between the markers).
fn doc_hex() -> String {
    let start = DOC.find("<!-- example-begin -->").unwrap();
    let end = DOC.find("<!-- example-end -->").unwrap();
    DOC[start..end]
        .lines()
        .filter_map(|l| l.split('|').nth(2))
        .map(|h| h.trim().replace(' ', ""))
        .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
        .collect()
}

#[test]
fn documented_example_matches_the_code() {
    let (bytes, layout) = example();
    let signed = layout.signed_len.unwrap();
    // Print the annotated layout (cargo test -- --nocapture) to refresh the doc.
    let msg = Message::decode(&bytes).unwrap();
    let mut starts = vec![0usize];
    starts.extend(&layout.payload_offsets);
    for (i, s) in starts.iter().enumerate() {
        let e = starts.get(i + 1).copied().unwrap_or(signed);
        let name = if i == 0 {
            "HDR"
        } else {
            msg.payloads[i - 1].name()
        };
        println!("{s:4} {name:10} {}", hex::encode(&bytes[*s..e.min(signed)]));
    }
    assert_eq!(doc_hex(), hex::encode(&bytes[..signed]));
}

#[test]
fn the_mac_covers_the_identities() {
    // The example KMS is the vendor's, so a vendor user can sign.
    let (bytes, _) = example();
    let mut msg = Message::decode(&bytes).unwrap();
    msg.payloads.pop();
    // Re-sign under the name in IDRi: we have no key for the dispatcher in
    // the vendor KMS, so check the MAC and key data path with the vendor
    // user Alice as initiator instead.
    for p in &mut msg.payloads {
        if let mcx_mikey::message::Payload::Idr(i) = p {
            if i.role == mcx_mikey::wire::IdRole::Initiator {
                i.id = b"sip:alice@streamwide.com".to_vec();
            }
        }
    }
    let resigned =
        mcx_mikey::sakke_msg::sign_message(msg, &common::signer("Alice"), &mut common::rng())
            .unwrap();
    let gmk = Gmk::from_bytes(&(0u8..16).collect::<Vec<_>>()).unwrap();
    let groups = [ConstituentGroup {
        group_id: "sip:group-a@example.org",
        gmk: &gmk,
        gmk_id: KeyId(0x0123_4567),
    }];
    let rx = TgmkReceiver {
        kms: common::sw_kms(),
        groups: &groups,
        expected_initiator: None,
    };
    // The MAC covered IDRi, so changing it must fail the MAC, not the signature.
    let err = rx
        .unwrap(&resigned, 1_760_000_000, &mut ReplayCache::default())
        .unwrap_err();
    assert_eq!(
        err,
        mcx_mikey::Error::Rejected(mcx_mikey::Rejection::MacInvalid)
    );
}
