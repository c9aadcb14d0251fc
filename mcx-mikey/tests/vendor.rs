//! The Streamwide vendor messages (issue points 1, 2): decode, re-encode,
//! verify, decapsulate, decrypt the key parameters, and rebuild the GMK
//! message byte for byte up to its signature.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mcx_mikey::gmk::{GmkMessage, GmkMessageRandom, GmkReceiver};
use mcx_mikey::keyparams::KeyParameters;
use mcx_mikey::message::{CsIdMap, ExtBody, GenericIdEntry, Payload, Timestamp};
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::sakke_msg::{decapsulate, verify_signature};
use mcx_mikey::wire::{
    DataType, GeneralExtType, IdRole, IdScheme, IdType, PayloadType, PrfFunc, ProtType,
    SakkeParams, SignType,
};
use mcx_mikey::{Error, Gmk, KeyId, Message, Rejection, kdf};

const ALL: [&str; 3] = [GMK_MSG, CSK_MSG, PCK_MSG];

#[test]
fn vendor_messages_decode_and_reencode_byte_exact() {
    for key in ALL {
        let bytes = imessage(key);
        let (msg, layout) = Message::decode_with_layout(&bytes).unwrap();
        assert_eq!(msg.to_bytes().unwrap(), bytes, "{key}");
        let (_, layout2) = msg.encode_with_layout().unwrap();
        assert_eq!(layout, layout2);
        assert_eq!(layout.signed_len, Some(bytes.len() - 129), "{key}");
        assert_eq!(msg.hdr.data_type, DataType::Sakke);
        assert!(!msg.hdr.v);
        assert_eq!(msg.hdr.prf, PrfFunc::HmacSha256);
        assert_eq!(
            msg.timestamp(),
            Some(&Timestamp::NtpUtc(0xec89_8da8_0000_0000))
        );
        let types: Vec<PayloadType> = msg.payloads.iter().map(Payload::payload_type).collect();
        assert_eq!(
            types,
            [
                PayloadType::T,
                PayloadType::Rand,
                PayloadType::Idr,
                PayloadType::Idr,
                PayloadType::Idr,
                PayloadType::Idr,
                PayloadType::Sp,
                PayloadType::Sakke,
                PayloadType::GeneralExt,
                PayloadType::Sign,
            ],
            "{key}"
        );
        let kms = sw_kms().kms_uri.as_bytes();
        assert_eq!(msg.idr(IdRole::InitiatorKms).unwrap().id, kms);
        assert_eq!(msg.idr(IdRole::ResponderKms).unwrap().id, kms);
        assert_eq!(msg.idr(IdRole::InitiatorUid).unwrap().id_type, IdType::Uri);
        let sakke = msg.sakke().unwrap();
        assert_eq!(sakke.params, SakkeParams::Set1);
        assert_eq!(sakke.id_scheme, IdScheme::McxHashedUid);
        assert_eq!(sakke.data.len(), 273);
        let sign = msg.sign().unwrap();
        assert_eq!(sign.sign_type, SignType::Eccsi);
        assert_eq!(sign.signature.len(), 129);
        assert_eq!(bytes[layout.signed_len.unwrap() - 2], 0x20);
        assert!(msg.general_ext(GeneralExtType::KeyParameters).is_some());
        let rand_key = match key {
            GMK_MSG => "GMK-RAND",
            CSK_MSG => "CSK-RAND",
            _ => "PCK-RAND",
        };
        assert_eq!(msg.rand().unwrap().0, hex(&message(key)[rand_key]));
        // SP: TS 33.180 Table E.2-1 less the ROC transmission rate.
        let sp = msg.sp().unwrap();
        assert_eq!(sp.prot_type, ProtType::Srtp);
        let params: Vec<(u8, u8)> = sp
            .params
            .iter()
            .map(|p| (p.param_type, p.value[0]))
            .collect();
        assert_eq!(
            params,
            [
                (0, 6),
                (1, 16),
                (2, 4),
                (4, 12),
                (5, 0),
                (6, 0),
                (18, 4),
                (19, 0),
                (20, 16)
            ]
        );
    }
}

#[test]
fn vendor_cs_id_maps() {
    let gmk = Message::decode(&imessage(GMK_MSG)).unwrap();
    let m = message(GMK_MSG);
    assert_eq!(gmk.hdr.csb_id.to_be_bytes().to_vec(), hex(&m["GUK-ID"]));
    let mut spi = hex(&m["GMK-ID"]);
    spi.extend(hex(&m["GUK-ID"]));
    assert_eq!(
        gmk.hdr.map,
        CsIdMap::GenericId(vec![GenericIdEntry {
            cs_id: 4,
            prot_type: ProtType::Srtp,
            s: false,
            policies: vec![0],
            session_data: vec![],
            spi,
        }])
    );
    let csk = Message::decode(&imessage(CSK_MSG)).unwrap();
    let CsIdMap::GenericId(e) = &csk.hdr.map else {
        panic!("CSK map")
    };
    assert_eq!(e[0].cs_id, 6);
    assert_eq!(e[0].spi, hex(&message(CSK_MSG)["CSK-ID"]));
    let pck = Message::decode(&imessage(PCK_MSG)).unwrap();
    assert_eq!(pck.hdr.map, CsIdMap::Empty { cs_count: 0 });
    assert_eq!(
        pck.hdr.csb_id.to_be_bytes().to_vec(),
        hex(&message(PCK_MSG)["PCK-ID"])
    );
}

#[test]
fn vendor_signatures_verify_and_every_flipped_bit_fails() {
    let kms = sw_kms();
    for (key, signer) in [(GMK_MSG, "GMS"), (CSK_MSG, "Alice"), (PCK_MSG, "Alice")] {
        let bytes = imessage(key);
        let (msg, layout) = Message::decode_with_layout(&bytes).unwrap();
        // The initiator's UID is in IDRuidi.
        assert_eq!(msg.idr(IdRole::InitiatorUid).unwrap().id, uid(signer));
        verify_signature(&bytes, &msg, &layout, &kms.kpak, &uid(signer)).unwrap();
        // Another signer ID fails.
        assert_eq!(
            verify_signature(&bytes, &msg, &layout, &kms.kpak, &uid("Bob")),
            Err(Rejection::SignatureInvalid)
        );
        // One flipped bit at every octet position: decoding or verification fails.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1 << (i % 8);
            let ok = match Message::decode_with_layout(&b) {
                Ok((m, l)) => verify_signature(&b, &m, &l, &kms.kpak, &uid(signer)).is_ok(),
                Err(_) => false,
            };
            assert!(!ok, "{key}: flip at {i} still verifies");
        }
    }
}

#[test]
fn gmk_message_decapsulates_for_alice_with_guk_id_mapping() {
    let m = message(GMK_MSG);
    let msg = Message::decode(&imessage(GMK_MSG)).unwrap();
    let key = decapsulate(&msg, alice_receiver()).unwrap();
    assert_eq!(key.as_bytes().to_vec(), hex(&m["GMK"]));
    let gmk = Gmk::from_bytes(key.as_bytes()).unwrap();
    let gmk_id = KeyId::from_bytes(hex(&m["GMK-ID"]).try_into().unwrap());
    let guk_id = KeyId(msg.hdr.csb_id);
    let alice = s(&user("Alice")["UserUri"]);
    assert_eq!(s(&m["Responder URI"]), alice);
    assert_eq!(kdf::guk_id(&gmk, gmk_id, alice), guk_id);
    assert_eq!(
        kdf::guk_id(&gmk, guk_id, alice),
        gmk_id,
        "GUK-ID maps back to GMK-ID"
    );
    let d = &sw()["derived"];
    assert_eq!(
        guk_id.to_bytes().to_vec(),
        hex(&d["alice_guk_id_from_gmk_id_0df9bc39"])
    );
    // Bob cannot decapsulate Alice's GMK.
    assert_eq!(
        decapsulate(&msg, &receiver("Bob")).unwrap_err(),
        Rejection::DecapsulationFailed
    );
}

#[test]
fn csk_and_pck_decapsulate_for_their_responders() {
    let csk = Message::decode(&imessage(CSK_MSG)).unwrap();
    assert_eq!(csk.idr(IdRole::ResponderUid).unwrap().id, uid("GMS"));
    let k = decapsulate(&csk, &receiver("GMS")).unwrap();
    assert_eq!(k.as_bytes().to_vec(), hex(&message(CSK_MSG)["CSK"]));
    let pck = Message::decode(&imessage(PCK_MSG)).unwrap();
    assert_eq!(pck.idr(IdRole::ResponderUid).unwrap().id, uid("Bob"));
    let k = decapsulate(&pck, &receiver("Bob")).unwrap();
    assert_eq!(k.as_bytes().to_vec(), hex(&message(PCK_MSG)["PCK"]));
}

#[test]
fn key_parameters_extension_decrypts_to_the_published_plaintext() {
    let v = &kdf_vectors()["key_parameters_extension"];
    let msg = Message::decode(&imessage(GMK_MSG)).unwrap();
    let gmk = hex(&message(GMK_MSG)["GMK"]);
    assert_eq!(kdf::dpck(&gmk, msg.hdr.csb_id).to_vec(), hex(&v["dpck"]));
    let ext = msg.general_ext(GeneralExtType::KeyParameters).unwrap();
    let ExtBody::KeyParameters(pp) = &ext.body else {
        panic!("not parsed")
    };
    assert_eq!(pp.dppk_id, msg.hdr.csb_id, "DPPK-ID = CSB-ID");
    assert_eq!(
        (pp.message_type, pp.date_time, pp.payload_id, pp.algorithm),
        (0x43, 1, 0, 1)
    );
    let pt = pp.open(&gmk).unwrap();
    assert_eq!(pt.to_vec(), hex(&v["plaintext"]));
    let kp = KeyParameters::decode(&pt).unwrap();
    assert_eq!(kp.key_type, 0);
    assert_eq!(kp.status, 1);
    assert_eq!(kp.group_ids, Some(vec![]));
    // A wrong key does not open it.
    assert!(pp.open(&[0; 16]).is_none());
    // CSK and PCK carry key type = purpose tag and no group IDs.
    for (key, name, ty) in [(CSK_MSG, "CSK", 2), (PCK_MSG, "PCK", 1)] {
        let msg = Message::decode(&imessage(key)).unwrap();
        let ExtBody::KeyParameters(pp) =
            &msg.general_ext(GeneralExtType::KeyParameters).unwrap().body
        else {
            panic!()
        };
        let kp = KeyParameters::decode(&pp.open(&hex(&message(key)[name])).unwrap()).unwrap();
        assert_eq!((kp.key_type, kp.group_ids), (ty, None));
    }
}

#[test]
fn alice_accepts_the_vendor_gmk_message_once() {
    let kms = sw_kms();
    let rx = GmkReceiver {
        own_uri: s(&user("Alice")["UserUri"]),
        own_key: alice_receiver(),
        key_period_no: 236,
        kms,
        gms_uri: s(&user("GMS")["UserUri"]),
    };
    let mut replay = ReplayCache::default();
    let now = VENDOR_T_UNIX + 7;
    let got = rx.accept(&imessage(GMK_MSG), now, &mut replay).unwrap();
    let m = message(GMK_MSG);
    assert_eq!(got.gmk.as_bytes().to_vec(), hex(&m["GMK"]));
    assert_eq!(got.gmk_id.to_bytes().to_vec(), hex(&m["GMK-ID"]));
    assert_eq!(got.guk_id.to_bytes().to_vec(), hex(&m["GUK-ID"]));
    assert_eq!(got.rand, hex(&m["GMK-RAND"]));
    assert_eq!(got.t_unix, VENDOR_T_UNIX as i64);
    // TS 33.180 7.4.2 media keys: the published derived values.
    assert_alice_gmk_keys(&got.srtp_keys());
    // The same message again is a replay.
    assert_eq!(
        rx.accept(&imessage(GMK_MSG), now, &mut replay).unwrap_err(),
        Error::Rejected(Rejection::Replayed)
    );
}

#[test]
fn our_gms_rebuilds_the_vendor_gmk_message_up_to_the_signature() {
    let vendor = imessage(GMK_MSG);
    let (vmsg, layout) = Message::decode_with_layout(&vendor).unwrap();
    let m = message(GMK_MSG);
    let gmk = Gmk::from_bytes(&hex(&m["GMK"])).unwrap();
    let ExtBody::KeyParameters(pp) = &vmsg
        .general_ext(GeneralExtType::KeyParameters)
        .unwrap()
        .body
    else {
        panic!()
    };
    let spec = GmkMessage {
        gms_uri: s(&m["Initiator URI"]),
        member_uri: s(&m["Responder URI"]),
        kms: sw_kms(),
        gmk: &gmk,
        gmk_id: KeyId::from_bytes(hex(&m["GMK-ID"]).try_into().unwrap()),
        key_params: Some(KeyParameters {
            key_type: 0,
            status: 1,
            activation_time: 0,
            expiry_time: 0,
            text: vec![],
            group_ids: Some(vec![]),
        }),
        policy: vmsg.sp().cloned(),
        identity_hiding: true,
        t_unix: VENDOR_T_UNIX,
        key_params_date_time: Some(1),
    };
    let random = GmkMessageRandom {
        rand: hex(&m["GMK-RAND"]).try_into().unwrap(),
        iv: pp.iv,
    };
    let ours = spec.unsigned(&random).unwrap().to_bytes().unwrap();
    // Ours has no SIGN payload: the last next-payload is 0 where the
    // vendor's is 4. Everything else up to the SIGN header is identical,
    // including the SAKKE encapsulated data (deterministic in SSV and UID).
    let signed = layout.signed_len.unwrap() - 2;
    assert_eq!(ours.len(), signed);
    let ext_at = layout.payload_offsets[layout.payload_offsets.len() - 2];
    let mut expect = vendor[..signed].to_vec();
    expect[ext_at] = 0;
    assert_eq!(hex::encode(&ours), hex::encode(&expect));
    // Signed by us as the GMS, Alice accepts it.
    let bytes = spec.sign(&signer("GMS"), &mut rng()).unwrap();
    let rx = GmkReceiver {
        own_uri: s(&m["Responder URI"]),
        own_key: alice_receiver(),
        key_period_no: 236,
        kms: sw_kms(),
        gms_uri: s(&m["Initiator URI"]),
    };
    let got = rx
        .accept(&bytes, VENDOR_T_UNIX, &mut ReplayCache::default())
        .unwrap();
    assert_eq!(got.gmk, gmk);
}
