//! Documents written by hand after TS 33.180 Annex D's structure, with the
//! Streamwide vendor vectors as values (see the comment in each file in
//! `tests/data/`): they must parse, reproduce the vendor's UIDs and yield
//! keys that validate and work.
#![allow(clippy::unwrap_used)]

mod common;

use mcx_ibc::eccsi::{self, SigningKey};
use mcx_ibc::sakke::{self, ReceiverKey, Ssv};
use mcx_ibc::uid::key_period_no;
use mcx_kms::client::{parse_init_response, parse_key_prov_response};
use mcx_kms::xml::{KmsMessage, KmsResponse};
use mcx_kms::{KmsError, XmlError};

const INIT: &[u8] = include_bytes!("data/annex-d-kms-init-streamwide.xml");
const KEY_PROV: &[u8] = include_bytes!("data/annex-d-kms-keyprov-streamwide-alice.xml");
const KMS: &str = "kms.mydev.streamwide.com";
const ALICE: &str = "sip:alice@streamwide.com";
/// Inside key period 236 (2025-06-20T15:39:00Z to 2025-12-31T19:59:14Z).
const NOW: u64 = 1_760_000_000;

/// UIDs from Streamwide's vectors (KeyPeriodNo 236).
const VENDOR_UIDS: [(&str, &str); 3] = [
    (
        "sip:alice@streamwide.com",
        "b5c452309219da6a3d805615548d6c1b0f4de45a6b48fb13d9a24d857fc03dc4",
    ),
    (
        "sip:bob@streamwide.com",
        "780851cda91a9c33f941cd3a2831697e2893264754e363f8a0cef827eb201a81",
    ),
    (
        "gms@streamwide.com",
        "15a4d5b12856538d02d91fedbb766e6dd377b014c92e216666c8fb678608d20e",
    ),
];

#[test]
fn hand_written_init_parses_and_reproduces_vendor_uids() {
    let community = parse_init_response(INIT, KMS).unwrap();
    assert_eq!(community.kms_uri, KMS);
    assert_eq!(community.key_period_len, 16_777_215);
    assert_eq!(community.key_period_offset, 0);
    assert_eq!(key_period_no(NOW, 16_777_215, 0).unwrap(), 236);
    for (uri, uid) in VENDOR_UIDS {
        assert_eq!(hex::encode(community.uid(uri, 236).unwrap()), uid, "{uri}");
    }
    // All the optional certificate elements were read.
    let KmsMessage::Init(cert) = KmsResponse::from_xml(INIT).unwrap().message else {
        panic!("not a KmsInit")
    };
    assert_eq!(cert.role.as_deref(), Some("Root"));
    assert_eq!(
        cert.cert_uri.as_deref(),
        Some("cert1.kms.mydev.streamwide.com")
    );
    assert_eq!(cert.valid_from, Some(948_844_800));
    assert_eq!(cert.revoked, Some(false));
    assert_eq!(cert.parameter_set, Some(1));
    assert_eq!(cert.kms_domains, ["mydev.streamwide.com"]);
}

#[test]
fn hand_written_key_prov_validates_and_works() {
    let community = parse_init_response(INIT, KMS).unwrap();
    let alice = parse_key_prov_response(KEY_PROV, &community, ALICE, NOW).unwrap();
    assert_eq!(alice.key_period_no, 236);
    assert_eq!(hex::encode(alice.uid), VENDOR_UIDS[0].1);

    let mut rng = common::TestRng(236);
    let uid = alice.uid;
    let signer = SigningKey::new(&community.kpak, &uid, alice.ssk, alice.pvt).unwrap();
    let sig = signer.sign(b"vendor keys", &mut rng);
    eccsi::verify(&community.kpak, &uid, b"vendor keys", &sig).unwrap();
    let receiver = ReceiverKey::new(&community.sakke_public, &uid, &alice.rsk).unwrap();
    let ssv = Ssv::generate(&mut rng);
    let sed = sakke::encapsulate(&community.sakke_public, &uid, &ssv).unwrap();
    assert_eq!(receiver.decapsulate(&sed).unwrap(), ssv);

    // Outside key period 236 the client has no keys from this document.
    assert_eq!(
        parse_key_prov_response(KEY_PROV, &community, ALICE, NOW + 16_777_215).unwrap_err(),
        KmsError::NoKeySetForPeriod(237)
    );
}

#[test]
fn hand_written_documents_with_defects_are_refused() {
    let text = String::from_utf8(KEY_PROV.to_vec()).unwrap();
    let community = parse_init_response(INIT, KMS).unwrap();
    let parse = |doc: String| parse_key_prov_response(doc.as_bytes(), &community, ALICE, NOW);

    let swapped = text.replace("<KeyPeriodNo>236</KeyPeriodNo>", "").replace(
        "<Revoked>false</Revoked>",
        "<Revoked>false</Revoked><KeyPeriodNo>236</KeyPeriodNo>",
    );
    // The key set's Revoked comes before KeyPeriodNo moved after it.
    assert_eq!(
        parse(swapped).unwrap_err(),
        KmsError::Xml(XmlError::Missing {
            parent: "KmsKeySet",
            element: "KeyPeriodNo"
        })
    );
    let encrypted = text.replace(
        "<UserDecryptKey xsi:type=\"KeyContentType\">",
        "<UserDecryptKey xsi:type=\"EncKeyContentType\">",
    );
    assert!(matches!(
        parse(encrypted).unwrap_err(),
        KmsError::Xml(XmlError::InvalidValue {
            element: "UserDecryptKey",
            ..
        })
    ));
    let revoked = text.replacen("<Revoked>false</Revoked>", "<Revoked>true</Revoked>", 1);
    assert_eq!(
        parse(revoked).unwrap_err(),
        KmsError::Revoked("the key set")
    );
    let odd_hex = text.replacen("</UserSigningKeySSK>", "0</UserSigningKeySSK>", 1);
    assert!(matches!(
        parse(odd_hex).unwrap_err(),
        KmsError::Xml(XmlError::InvalidValue {
            element: "UserSigningKeySSK",
            ..
        })
    ));
    let bad_time = text.replace("2025-06-20T15:39:00", "2025-06-31T15:39:00");
    assert!(matches!(
        parse(bad_time).unwrap_err(),
        KmsError::Xml(XmlError::InvalidValue {
            element: "ValidFrom",
            ..
        })
    ));
    let wrong_ns = text.replace("urn:3gpp:ns:mcsecKMSInterface:1.0", "urn:example:kms");
    assert_eq!(
        parse(wrong_ns).unwrap_err(),
        KmsError::Xml(XmlError::WrongNamespace("KmsResponse".into()))
    );

    let init = String::from_utf8(INIT.to_vec()).unwrap();
    let other_format = init.replace(
        "<UserIdFormat>2</UserIdFormat>",
        "<UserIdFormat>1</UserIdFormat>",
    );
    assert!(matches!(
        parse_init_response(other_format.as_bytes(), KMS).unwrap_err(),
        KmsError::Unsupported(_)
    ));
    let off_curve = init.replacen("<PubAuthKey>0448", "<PubAuthKey>0449", 1);
    assert!(matches!(
        parse_init_response(off_curve.as_bytes(), KMS).unwrap_err(),
        KmsError::Crypto(_)
    ));
}

/// `doc` with the element pairs `a`/`b` swapped wherever `a` is directly
/// followed by `b` (white space between kept).
fn swap_elements(doc: &str, a: &str, b: &str) -> String {
    let mut out = String::new();
    let mut rest = doc;
    let open_a = format!("<{a}>");
    let close_b = format!("</{b}>");
    while let Some(i) = rest.find(&open_a) {
        let (before, from_a) = rest.split_at(i);
        let end_a = from_a.find(&format!("</{a}>")).unwrap() + a.len() + 3;
        let (elem_a, after_a) = from_a.split_at(end_a);
        let ws_len = after_a.len() - after_a.trim_start().len();
        let (ws, after_ws) = after_a.split_at(ws_len);
        out.push_str(before);
        if after_ws.starts_with(&format!("<{b}>")) {
            let end_b = after_ws.find(&close_b).unwrap() + close_b.len();
            out.push_str(&after_ws[..end_b]);
            out.push_str(ws);
            out.push_str(elem_a);
            rest = &after_ws[end_b..];
        } else {
            out.push_str(elem_a);
            rest = after_a;
        }
    }
    out.push_str(rest);
    out
}

/// Both element orders seen in the field, and namespace prefixes: Annex D
/// (namespace urn:3gpp:ns:mcsecKMSInterface:1.0, table D.3.1-1) as the
/// base schema has it (KmsUri, UserUri; KmsUri, CertUri) and as another
/// vendor's schema and responses have it (UserUri, KmsUri; CertUri,
/// KmsUri), with or without a prefix: each parses to the same response.
#[test]
fn both_element_orders_and_namespace_prefixes_parse_alike() {
    for doc in [INIT, KEY_PROV] {
        let text = std::str::from_utf8(doc).unwrap();
        let base = KmsResponse::from_xml(doc).unwrap().to_xml();
        let vendor = swap_elements(
            &swap_elements(text, "KmsUri", "UserUri"),
            "KmsUri",
            "CertUri",
        );
        assert_ne!(vendor, text);
        assert!(vendor.contains("<UserUri>sip:alice@streamwide.com</UserUri>\n  <KmsUri>"));
        assert_eq!(
            KmsResponse::from_xml(vendor.as_bytes()).unwrap().to_xml(),
            base
        );
        // The same with the namespace bound to a prefix.
        let prefixed = vendor
            .replace("xmlns=\"urn:3gpp", "xmlns:k=\"urn:3gpp")
            .replace("</", "</k:")
            .replace('<', "<k:")
            .replace("<k:/k:", "</k:")
            .replace("<k:?xml", "<?xml")
            .replace("<k:!--", "<!--");
        assert!(prefixed.contains("<k:KmsResponse"), "{prefixed}");
        assert_eq!(
            KmsResponse::from_xml(prefixed.as_bytes()).unwrap().to_xml(),
            base
        );
    }
    // Still strict: an element twice, or a required one missing.
    let text = std::str::from_utf8(INIT).unwrap();
    let twice = text.replacen(
        "<UserUri>sip:alice@streamwide.com</UserUri>",
        "<UserUri>sip:alice@streamwide.com</UserUri><UserUri>x</UserUri>",
        1,
    );
    assert!(KmsResponse::from_xml(twice.as_bytes()).is_err());
    let missing = text.replacen("<UserUri>sip:alice@streamwide.com</UserUri>", "", 1);
    assert!(matches!(
        KmsResponse::from_xml(missing.as_bytes()),
        Err(XmlError::Missing {
            element: "UserUri",
            ..
        })
    ));
}
