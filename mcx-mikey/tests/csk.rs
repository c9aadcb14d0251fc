//! CSK upload (issue 10 point 3): the client builds, the server accepts,
//! each failed check is refused with its own error; the Streamwide CSK
//! message is accepted and rebuilt; the SRTCP keys match an independent
//! computation (tests/data/csk_srtcp_kdf.py).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::*;
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::{Community, CommunityPublic};
use mcx_ibc::sakke::ReceiverKey;
use mcx_mikey::csk::{
    self, CS_ID_CSK, CskMessage, CskMessageRandom, CskReceiver, FloorDirection, SpkFloorKeys,
    csk_key_parameters, csk_srtcp_keys, spk_leg_rand, spk_leg_srtcp_keys, spk_srtcp_keys,
};
use mcx_mikey::gmk::{GmkMessage, gmk_key_parameters};
use mcx_mikey::keyparams::KeyParameters;
use mcx_mikey::message::{CsIdMap, ExtBody, Payload, Sp};
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::wire::{GeneralExtType, Purpose};
use mcx_mikey::{Csk, Error, Gmk, IdentityRole, KeyId, Message, Rejection, Spk};
use proptest::prelude::*;
use serde_json::Value;

const ALICE: &str = "sip:alice@example.org";
const BOB: &str = "sip:bob@example.org";
/// The MC server domain's security identifier (MDSI, TS 33.180 5.4).
const MDSI: &str = "sip:mcptt-server.example.org";
const OTHER_MDSI: &str = "sip:mcptt-server.elsewhere.org";
const NOW: u64 = 1_760_000_000;

struct World {
    kms: Community,
    period: u64,
    alice: SigningKey,
    bob: SigningKey,
    server: ReceiverKey,
    csk: Csk,
    csk_id: KeyId,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let (kms, period) = community(NOW);
        let mut rng = rng();
        let alice = issue_signer(&kms, ALICE, period);
        let bob = issue_signer(&kms, BOB, period);
        let server = issue_receiver(&kms, MDSI, period);
        let (csk, csk_id) = csk::generate(&mut rng);
        World {
            kms,
            period,
            alice,
            bob,
            server,
            csk,
            csk_id,
        }
    })
}

fn spec<'a>(w: &'a World, kms: &'a CommunityPublic) -> CskMessage<'a> {
    CskMessage {
        client_uri: ALICE,
        server_uri: MDSI,
        kms,
        csk: &w.csk,
        csk_id: w.csk_id,
        key_params: Some(csk_key_parameters(0, NOW + 86_400)),
        policy: Some(Sp::default_group_profile()),
        identity_hiding: false,
        t_unix: NOW,
        key_params_date_time: None,
    }
}

fn server(w: &World) -> CskReceiver<'_> {
    CskReceiver {
        server_uri: MDSI,
        server_key: &w.server,
        key_period_no: w.period,
        kms: w.kms.public(),
    }
}

/// Why a fresh server (empty replay cache) at NOW refuses `bytes`.
fn refused(w: &World, bytes: &[u8]) -> Rejection {
    rejected(server(w).accept(bytes, NOW, &mut ReplayCache::default()))
}

fn signed(w: &World) -> Vec<u8> {
    spec(w, w.kms.public()).sign(&w.alice, &mut rng()).unwrap()
}

#[test]
fn client_upload_then_server_accept_and_both_derive_the_same_srtcp_keys() {
    let w = world();
    let random = CskMessageRandom::generate(&mut rng());
    let bytes = spec(w, w.kms.public())
        .sign_with(&w.alice, &random, &mut rng())
        .unwrap();
    let mut replay = ReplayCache::default();
    let got = server(w).accept(&bytes, NOW + 3, &mut replay).unwrap();
    assert_eq!(got.client_uri, ALICE);
    assert_eq!(got.csk, w.csk);
    assert_eq!(got.csk_id, w.csk_id);
    assert_eq!(got.rand, random.rand);
    assert_eq!(got.t_unix, NOW as i64);
    assert_eq!(got.key_params, Some(csk_key_parameters(0, NOW + 86_400)));
    assert_eq!(got.policy, Some(Sp::default_group_profile()));
    let client_keys = csk_srtcp_keys(&w.csk, w.csk_id, &random.rand);
    assert_eq!(got.srtcp_keys(), client_keys);
    assert_eq!(client_keys.mki(), w.csk_id.to_bytes());
    // E.4 structure: CSB ID = CSK-ID, GENERIC-ID with CS ID 6 and SPI = CSK-ID.
    let msg = Message::decode(&bytes).unwrap();
    assert_eq!(msg.hdr.csb_id, w.csk_id.0);
    let CsIdMap::GenericId(e) = &msg.hdr.map else {
        panic!("map")
    };
    assert_eq!((e.len(), e[0].cs_id), (1, CS_ID_CSK));
    assert_eq!(e[0].spi, w.csk_id.to_bytes());
    assert_eq!(msg.to_bytes().unwrap(), bytes);
}

#[test]
fn identity_hidden_upload_needs_the_client_named_by_sip() {
    let w = world();
    let mut s = spec(w, w.kms.public());
    s.identity_hiding = true;
    let bytes = s.sign(&w.alice, &mut rng()).unwrap();
    // IDRuidi only: the server cannot know whose signature to check.
    assert_eq!(refused(w, &bytes), Rejection::MissingPayload("IDRi"));
    // A client the SIP layer names that is not the UID's: refused.
    assert_eq!(
        rejected(server(w).accept_from(&bytes, BOB, NOW, &mut ReplayCache::default())),
        Rejection::WrongInitiator
    );
    let got = server(w)
        .accept_from(&bytes, ALICE, NOW, &mut ReplayCache::default())
        .unwrap();
    assert_eq!((got.client_uri.as_str(), &got.csk), (ALICE, &w.csk));
}

#[test]
fn tampered_or_forged_signature_is_refused_and_not_remembered() {
    let w = world();
    let bytes = signed(w);
    let mut replay = ReplayCache::default();
    let mut bad = bytes.clone();
    let at = bad.len() - 129 + 7; // inside r
    bad[at] ^= 0x01;
    assert_eq!(
        rejected(server(w).accept(&bad, NOW, &mut replay)),
        Rejection::SignatureInvalid
    );
    // Bob signs a message that says it is Alice's.
    let forged = spec(w, w.kms.public()).sign(&w.bob, &mut rng()).unwrap();
    assert_eq!(
        rejected(server(w).accept(&forged, NOW, &mut replay)),
        Rejection::SignatureInvalid
    );
    // An edit after signing (a RAND octet) breaks the signature.
    let (_, layout) = Message::decode_with_layout(&bytes).unwrap();
    let mut edited = bytes.clone();
    edited[layout.payload_offsets[1] + 2] ^= 0x01;
    assert_eq!(
        rejected(server(w).accept(&edited, NOW, &mut replay)),
        Rejection::SignatureInvalid
    );
    // An edit of the CSK-ID alone no longer matches the SPI: refused by
    // the structure check, before any crypto.
    let mut edited = bytes.clone();
    edited[7] ^= 0x01;
    assert_eq!(
        rejected(server(w).accept(&edited, NOW, &mut replay)),
        Rejection::SpiMismatch
    );
    // None of this poisoned the replay cache.
    server(w).accept(&bytes, NOW, &mut replay).unwrap();
}

#[test]
fn upload_to_another_server_identity_is_refused() {
    let w = world();
    let mut s = spec(w, w.kms.public());
    s.server_uri = OTHER_MDSI;
    let bytes = s.sign(&w.alice, &mut rng()).unwrap();
    assert_eq!(refused(w, &bytes), Rejection::WrongResponder);
    // IDRr rewritten to us and re-signed: the SAKKE data is still for the
    // other identity, so it does not decapsulate.
    let redirected = resign(&bytes, &w.alice, |m| {
        for p in &mut m.payloads {
            if let Payload::Idr(i) = p
                && i.id == OTHER_MDSI.as_bytes()
            {
                i.id = MDSI.as_bytes().to_vec();
            }
        }
    });
    assert_eq!(refused(w, &redirected), Rejection::DecapsulationFailed);
}

#[test]
fn key_id_that_is_not_a_csk_is_refused() {
    let w = world();
    let bytes = signed(w);
    // CSB ID with purpose tag 1 (PCK), signed properly.
    let pck_id = (w.csk_id.0 & 0x0fff_ffff) | 0x1000_0000;
    let wrong = resign(&bytes, &w.alice, |m| {
        m.hdr.csb_id = pck_id;
        if let CsIdMap::GenericId(e) = &mut m.hdr.map {
            e[0].spi = pck_id.to_be_bytes().to_vec();
        }
    });
    assert_eq!(
        refused(w, &wrong),
        Rejection::WrongPurpose {
            id: pck_id,
            expected: 2,
            got: 1
        }
    );
    // Our client refuses to build one.
    let mut s = spec(w, w.kms.public());
    s.csk_id = KeyId(pck_id);
    assert!(matches!(
        s.sign(&w.alice, &mut rng()),
        Err(Error::InvalidParameter(_))
    ));
    // A GMK message (CSB ID = a GUK-ID, purpose 0) is not a CSK upload.
    let gmk = Gmk::generate(&mut rng());
    let gmk_msg = GmkMessage {
        gms_uri: ALICE,
        member_uri: MDSI,
        kms: w.kms.public(),
        gmk: &gmk,
        gmk_id: KeyId::generate(Purpose::Gmk, &mut rng()).unwrap(),
        key_params: Some(gmk_key_parameters("sip:group@example.org", 0, 0)),
        policy: None,
        identity_hiding: false,
        t_unix: NOW,
        key_params_date_time: None,
    }
    .sign(&w.alice, &mut rng())
    .unwrap();
    assert!(matches!(
        refused(w, &gmk_msg),
        Rejection::WrongPurpose {
            expected: 2,
            got: 0,
            ..
        }
    ));
}

#[test]
fn crypto_session_other_than_e4_is_refused() {
    let w = world();
    let bytes = signed(w);
    let cs4 = resign(&bytes, &w.alice, |m| {
        if let CsIdMap::GenericId(e) = &mut m.hdr.map {
            e[0].cs_id = 4;
        }
    });
    assert_eq!(
        refused(w, &cs4),
        Rejection::Unsupported {
            what: "CS ID for a CSK",
            value: 4
        }
    );
    let spi = resign(&bytes, &w.alice, |m| {
        if let CsIdMap::GenericId(e) = &mut m.hdr.map {
            e[0].spi = vec![0x2f, 0xff, 0xff, 0xff];
        }
    });
    assert_eq!(refused(w, &spi), Rejection::SpiMismatch);
    // #CS 0 with the empty map (the default profile) is E.4's other form.
    let empty = resign(&bytes, &w.alice, |m| {
        m.hdr.map = CsIdMap::Empty { cs_count: 0 };
    });
    server(w)
        .accept(&empty, NOW, &mut ReplayCache::default())
        .unwrap();
}

#[test]
fn stale_or_future_time_stamp_and_wrong_key_period_are_refused() {
    let w = world();
    let bytes = signed(w);
    let mut replay = ReplayCache::new(300, 1000);
    for now in [NOW + 301, NOW - 301] {
        assert_eq!(
            rejected(server(w).accept(&bytes, now, &mut replay)),
            Rejection::TimestampOutsideWindow {
                t_unix: NOW as i64,
                now_unix: now,
                window_secs: 300
            }
        );
    }
    let mut rx = server(w);
    rx.key_period_no = w.period + 1;
    assert_eq!(
        rejected(rx.accept(&bytes, NOW, &mut replay)),
        Rejection::KeyPeriodMismatch {
            message: w.period,
            receiver: w.period + 1
        }
    );
    server(w).accept(&bytes, NOW + 299, &mut replay).unwrap();
}

#[test]
fn replayed_upload_is_refused_even_when_signed_again() {
    let w = world();
    let bytes = signed(w);
    let mut replay = ReplayCache::default();
    server(w).accept(&bytes, NOW, &mut replay).unwrap();
    assert_eq!(
        rejected(server(w).accept(&bytes, NOW + 1, &mut replay)),
        Rejection::Replayed
    );
    let again = resign(&bytes, &w.alice, |_| {});
    assert_ne!(again, bytes);
    assert_eq!(
        rejected(server(w).accept(&again, NOW + 2, &mut replay)),
        Rejection::Replayed
    );
}

#[test]
fn wrong_kms_key_parameters_and_unsigned_are_refused() {
    let w = world();
    let mut other = w.kms.public().clone();
    other.kms_uri = "kms.elsewhere.org".into();
    let bytes = spec(w, &other).sign(&w.alice, &mut rng()).unwrap();
    assert_eq!(
        refused(w, &bytes),
        Rejection::WrongKms {
            role: IdentityRole::InitiatorKms
        }
    );
    let mut s = spec(w, w.kms.public());
    s.key_params = Some(csk_key_parameters(0, NOW - 1));
    assert_eq!(
        refused(w, &s.sign(&w.alice, &mut rng()).unwrap()),
        Rejection::KeyExpired { expiry: NOW - 1 }
    );
    s.key_params = Some(KeyParameters {
        key_type: 0,
        ..csk_key_parameters(0, 0)
    });
    assert_eq!(
        refused(w, &s.sign(&w.alice, &mut rng()).unwrap()),
        Rejection::KeyParametersMismatch("key type is not CSK")
    );
    let mut msg = Message::decode(&signed(w)).unwrap();
    msg.payloads.pop();
    assert_eq!(refused(w, &msg.to_bytes().unwrap()), Rejection::NotSigned);
}

/// The vendor's MC server identity and the server view of it.
fn vendor_server() -> CskReceiver<'static> {
    static KEY: OnceLock<ReceiverKey> = OnceLock::new();
    CskReceiver {
        server_uri: s(&message(CSK_MSG)["Responder URI"]),
        server_key: KEY.get_or_init(|| receiver("GMS")),
        key_period_no: 236,
        kms: sw_kms(),
    }
}

#[test]
fn vendor_csk_message_is_accepted_once_and_its_srtcp_keys_match_the_script() {
    let m = message(CSK_MSG);
    let rx = vendor_server();
    let alice = s(&m["Initiator URI"]);
    let bytes = imessage(CSK_MSG);
    let mut replay = ReplayCache::default();
    let got = rx
        .accept_from(&bytes, alice, VENDOR_T_UNIX + 2, &mut replay)
        .unwrap();
    assert_eq!(got.client_uri, alice);
    assert_eq!(got.csk.as_bytes().to_vec(), hex(&m["CSK"]));
    assert_eq!(got.csk_id.to_bytes().to_vec(), hex(&m["CSK-ID"]));
    assert_eq!(got.rand, hex(&m["CSK-RAND"]));
    let kp = got.key_params.as_ref().unwrap();
    assert_eq!((kp.key_type, kp.group_ids.as_ref()), (2, None));
    let v = srtcp_vector("csk", &m["CSK"]);
    let keys = got.srtcp_keys();
    assert_eq!(keys.master_key().to_vec(), hex(&v["srtcp_master_key"]));
    assert_eq!(keys.master_salt().to_vec(), hex(&v["srtcp_master_salt"]));
    assert_eq!(keys.mki(), hex(&v["mki"]));
    assert_eq!(
        rejected(rx.accept_from(&bytes, alice, VENDOR_T_UNIX + 3, &mut replay)),
        Rejection::Replayed
    );
    // Bob is not the client that signed it.
    assert_eq!(
        rejected(rx.accept_from(
            &bytes,
            s(&user("Bob")["UserUri"]),
            VENDOR_T_UNIX,
            &mut ReplayCache::default()
        )),
        Rejection::WrongInitiator
    );
}

#[test]
fn our_client_rebuilds_the_vendor_csk_message_up_to_the_signature() {
    let m = message(CSK_MSG);
    let vendor = imessage(CSK_MSG);
    let (vmsg, layout) = Message::decode_with_layout(&vendor).unwrap();
    let csk = Csk::from_bytes(&hex(&m["CSK"])).unwrap();
    let ExtBody::KeyParameters(pp) = &vmsg
        .general_ext(GeneralExtType::KeyParameters)
        .unwrap()
        .body
    else {
        panic!("key parameters")
    };
    let kp = KeyParameters::decode(&pp.open(csk.as_bytes()).unwrap()).unwrap();
    let spec = CskMessage {
        client_uri: s(&m["Initiator URI"]),
        server_uri: s(&m["Responder URI"]),
        kms: sw_kms(),
        csk: &csk,
        csk_id: KeyId::from_bytes(hex(&m["CSK-ID"]).try_into().unwrap()),
        key_params: Some(kp),
        policy: vmsg.sp().cloned(),
        identity_hiding: true,
        t_unix: VENDOR_T_UNIX,
        key_params_date_time: Some(pp.date_time),
    };
    let random = CskMessageRandom {
        rand: hex(&m["CSK-RAND"]).try_into().unwrap(),
        iv: pp.iv,
    };
    let ours = spec.unsigned(&random).unwrap().to_bytes().unwrap();
    // Ours has no SIGN yet: the last next-payload octet is 0 where the
    // vendor's is 4 (SIGN); all else up to the SIGN header is identical,
    // the SAKKE data included (deterministic in SSV and the MDSI's UID).
    let signed_len = layout.signed_len.unwrap() - 2;
    let ext_at = layout.payload_offsets[layout.payload_offsets.len() - 2];
    let mut expect = vendor[..signed_len].to_vec();
    expect[ext_at] = 0;
    assert_eq!(hex::encode(&ours), hex::encode(&expect));
    // Signed by us as Alice, the vendor's server identity accepts it.
    let bytes = spec
        .sign_with(&signer("Alice"), &random, &mut rng())
        .unwrap();
    let rx = vendor_server();
    let got = rx
        .accept_from(
            &bytes,
            spec.client_uri,
            VENDOR_T_UNIX,
            &mut ReplayCache::default(),
        )
        .unwrap();
    assert_eq!(got.csk, csk);
}

fn srtcp_vectors() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| serde_json::from_str(include_str!("data/csk-srtcp-kdf.json")).unwrap())
}

/// The script's case whose `field` is `key`.
fn srtcp_vector(field: &str, key: &Value) -> &'static Value {
    srtcp_vectors()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c.get(field) == Some(key))
        .unwrap()
}

#[test]
fn srtcp_keys_match_the_independent_computation() {
    let cases = srtcp_vectors()["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        assert_eq!(num(&c["cs_id"]), 6, "{}", c["name"]);
        let id = KeyId::from_bytes(hex(&c["key_id"]).try_into().unwrap());
        let rand = hex(&c["rand"]);
        let keys = if let Some(k) = c.get("csk") {
            csk_srtcp_keys(&Csk::from_bytes(&hex(k)).unwrap(), id, &rand)
        } else {
            spk_srtcp_keys(&Spk::from_bytes(&hex(&c["spk"])).unwrap(), id, &rand).unwrap()
        };
        assert_eq!(keys.master_key().to_vec(), hex(&c["srtcp_master_key"]));
        assert_eq!(keys.master_salt().to_vec(), hex(&c["srtcp_master_salt"]));
        assert_eq!(keys.mki(), hex(&c["mki"]));
    }
}

#[test]
fn leg_floor_keys_match_the_independent_computation() {
    let cases = srtcp_vectors()["leg_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let id = KeyId::from_bytes(hex(&c["key_id"]).try_into().unwrap());
        let spk = Spk::from_bytes(&hex(&c["spk"])).unwrap();
        let spk_rand = hex(&c["spk_rand"]);
        let call_id = c["call_id"].as_str().unwrap();
        let direction = match c["direction"].as_str().unwrap() {
            "down" => FloorDirection::Down,
            _ => FloorDirection::Up,
        };
        assert_eq!(
            spk_leg_rand(&spk_rand, call_id, direction),
            hex(&c["rand"]),
            "{}",
            c["name"]
        );
        let keys = SpkFloorKeys::new(spk.clone(), id, spk_rand.clone())
            .unwrap()
            .leg_keys(call_id, direction)
            .unwrap();
        let direct = spk_leg_srtcp_keys(&spk, id, &spk_rand, call_id, direction).unwrap();
        assert_eq!(keys, direct);
        assert_eq!(keys.master_key().to_vec(), hex(&c["srtcp_master_key"]));
        assert_eq!(keys.master_salt().to_vec(), hex(&c["srtcp_master_salt"]));
        assert_eq!(keys.mki(), hex(&c["mki"]));
    }
}

#[test]
fn csk_and_spk_keys_differ_from_media_keys_of_the_same_octets() {
    // The same 16 octets as a TGK under CS ID 4 (media) give other keys:
    // the CS ID separates the crypto sessions (RFC 3830 4.1.3).
    let octets = [0x42; 16];
    let rand = [7; 16];
    let csk = csk_srtcp_keys(
        &Csk::from_bytes(&octets).unwrap(),
        KeyId(0x2000_0001),
        &rand,
    );
    let (media, _) = mcx_mikey::kdf::srtp_master(&octets, 4, 0x2000_0001, &rand);
    assert_ne!(csk.master_key(), &media);
}

fn valid_message() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| signed(world()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Truncated uploads never panic and are never accepted.
    #[test]
    fn truncated_upload_is_refused(len in 0usize..1000) {
        let bytes = valid_message();
        let cut = &bytes[..len.min(bytes.len() - 1)];
        let r = server(world()).accept(cut, NOW, &mut ReplayCache::default());
        prop_assert!(r.is_err());
    }

    /// Uploads with one or more flipped bits never panic and are never
    /// accepted.
    #[test]
    fn bit_flipped_upload_is_refused(flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4)) {
        let mut bytes = valid_message().to_vec();
        let n = bytes.len();
        for (at, bit) in &flips {
            bytes[at % n] ^= 1 << bit;
        }
        prop_assume!(bytes != valid_message());
        let r = server(world()).accept(&bytes, NOW, &mut ReplayCache::default());
        prop_assert!(r.is_err());
    }
}
