//! GMK distribution (issue point 3): the GMS builds, the member accepts,
//! and each failed check is rejected with its own error.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{community, issue_receiver, issue_signer, rejected, rng};
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::{Community, CommunityPublic};
use mcx_ibc::sakke::ReceiverKey;
use mcx_mikey::gmk::{GmkMessage, GmkReceiver, gmk_key_parameters};
use mcx_mikey::message::{Payload, Sp};
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::wire::Purpose;
use mcx_mikey::{Error, Gmk, IdentityRole, KeyId, Message, Rejection};

const GMS: &str = "sip:gms@example.org";
const ALICE: &str = "sip:alice@example.org";
const BOB: &str = "sip:bob@example.org";
const GROUP: &str = "sip:group-a@example.org";
const NOW: u64 = 1_760_000_000;

struct World {
    kms: Community,
    period: u64,
    gms: SigningKey,
    bob_signer: SigningKey,
    alice: ReceiverKey,
    gmk: Gmk,
    gmk_id: KeyId,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let (kms, period) = community(NOW);
        let mut rng = rng();
        let gms = issue_signer(&kms, GMS, period);
        let bob_signer = issue_signer(&kms, BOB, period);
        let alice = issue_receiver(&kms, ALICE, period);
        World {
            kms,
            period,
            gms,
            bob_signer,
            alice,
            gmk: Gmk::generate(&mut rng),
            gmk_id: KeyId::generate(Purpose::Gmk, &mut rng).unwrap(),
        }
    })
}

fn spec<'a>(w: &'a World, kms: &'a CommunityPublic) -> GmkMessage<'a> {
    GmkMessage {
        gms_uri: GMS,
        member_uri: ALICE,
        kms,
        gmk: &w.gmk,
        gmk_id: w.gmk_id,
        key_params: Some(gmk_key_parameters(GROUP, NOW - 60, NOW + 3600)),
        policy: Some(Sp::default_group_profile()),
        identity_hiding: false,
        t_unix: NOW,
        key_params_date_time: None,
    }
}

fn receiver(w: &World) -> GmkReceiver<'_> {
    GmkReceiver {
        own_uri: ALICE,
        own_key: &w.alice,
        key_period_no: w.period,
        kms: w.kms.public(),
        gms_uri: GMS,
    }
}

#[test]
fn gms_build_then_member_accept() {
    let w = world();
    for hiding in [false, true] {
        let mut s = spec(w, w.kms.public());
        s.identity_hiding = hiding;
        let bytes = s.sign(&w.gms, &mut rng()).unwrap();
        let got = receiver(w)
            .accept(&bytes, NOW + 5, &mut ReplayCache::default())
            .unwrap();
        assert_eq!(got.gmk, w.gmk);
        assert_eq!(got.gmk_id, w.gmk_id);
        assert_eq!(got.guk_id, mcx_mikey::kdf::guk_id(&w.gmk, w.gmk_id, ALICE));
        assert_eq!(got.rand.len(), 16);
        let kp = got.key_params.as_ref().unwrap();
        assert_eq!(kp.group_ids.as_ref().unwrap()[0].id, GROUP.as_bytes());
        assert_eq!((kp.activation_time, kp.expiry_time), (NOW - 60, NOW + 3600));
        assert_eq!(got.policy, Some(Sp::default_group_profile()));
        assert_eq!(got.srtp_keys().mki().len(), 8);
        // The decoded message re-encodes to itself.
        assert_eq!(Message::decode(&bytes).unwrap().to_bytes().unwrap(), bytes);
    }
}

#[test]
fn bad_signature_is_rejected_and_not_remembered() {
    let w = world();
    let bytes = spec(w, w.kms.public()).sign(&w.gms, &mut rng()).unwrap();
    let mut replay = ReplayCache::default();
    let mut bad = bytes.clone();
    let at = bad.len() - 129 + 5; // inside r
    bad[at] ^= 0x10;
    assert_eq!(
        rejected(receiver(w).accept(&bad, NOW, &mut replay)),
        Rejection::SignatureInvalid
    );
    // Signed by Bob instead of the GMS.
    let forged = spec(w, w.kms.public())
        .sign(&w.bob_signer, &mut rng())
        .unwrap();
    assert_eq!(
        rejected(receiver(w).accept(&forged, NOW, &mut replay)),
        Rejection::SignatureInvalid
    );
    // The failures did not poison the replay cache.
    receiver(w).accept(&bytes, NOW, &mut replay).unwrap();
}

#[test]
fn wrong_kms_uri_is_rejected() {
    let w = world();
    let mut other = w.kms.public().clone();
    other.kms_uri = "kms.elsewhere.org".into();
    let bytes = spec(w, &other).sign(&w.gms, &mut rng()).unwrap();
    assert_eq!(
        rejected(receiver(w).accept(&bytes, NOW, &mut ReplayCache::default())),
        Rejection::WrongKms {
            role: IdentityRole::InitiatorKms
        }
    );
}

#[test]
fn wrong_responder_and_wrong_initiator_are_rejected() {
    let w = world();
    let mut s = spec(w, w.kms.public());
    s.member_uri = BOB;
    let for_bob = s.sign(&w.gms, &mut rng()).unwrap();
    assert_eq!(
        rejected(receiver(w).accept(&for_bob, NOW, &mut ReplayCache::default())),
        Rejection::WrongResponder
    );
    let mut s = spec(w, w.kms.public());
    s.gms_uri = BOB;
    let from_bob = s.sign(&w.bob_signer, &mut rng()).unwrap();
    assert_eq!(
        rejected(receiver(w).accept(&from_bob, NOW, &mut ReplayCache::default())),
        Rejection::WrongInitiator
    );
}

#[test]
fn replayed_t_and_rand_are_rejected() {
    let w = world();
    let bytes = spec(w, w.kms.public()).sign(&w.gms, &mut rng()).unwrap();
    let mut replay = ReplayCache::default();
    receiver(w).accept(&bytes, NOW, &mut replay).unwrap();
    assert_eq!(
        rejected(receiver(w).accept(&bytes, NOW + 1, &mut replay)),
        Rejection::Replayed
    );
    // Re-signed (a different signature) over the same T and RAND: still a replay.
    let mut msg = Message::decode(&bytes).unwrap();
    msg.payloads.pop();
    let resigned = mcx_mikey::sakke_msg::sign_message(msg, &w.gms, &mut rng()).unwrap();
    assert_ne!(resigned, bytes);
    assert_eq!(
        rejected(receiver(w).accept(&resigned, NOW + 2, &mut replay)),
        Rejection::Replayed
    );
}

/// TS 33.180 7.4.2: the GMS gives one GMK's RAND to every GKTP. Two
/// GKTPs with the same T and RAND (a re-fetch within a second) are two
/// messages (fresh IV): both accepted; each one again is a replay.
#[test]
fn gktps_with_the_gmks_rand_carry_it_and_are_not_taken_for_replays() {
    let w = world();
    let rand = [0x5a; 16];
    let s = spec(w, w.kms.public());
    let first = s.sign_with_rand(&w.gms, &rand, &mut rng()).unwrap();
    let second = s.sign_with_rand(&w.gms, &rand, &mut rng()).unwrap();
    assert_ne!(first, second);
    let mut replay = ReplayCache::default();
    for bytes in [&first, &second] {
        assert_eq!(Message::decode(bytes).unwrap().rand().unwrap().0, rand);
        let got = receiver(w).accept(bytes, NOW, &mut replay).unwrap();
        assert_eq!(got.rand, rand);
        // Alice's keys under this GMK: RFC 3830 4.1.3 with CSB ID = her
        // GUK-ID and the GMK's RAND.
        let (key, salt) = mcx_mikey::kdf::srtp_master(w.gmk.as_bytes(), 4, got.guk_id.0, &rand);
        let keys = got.srtp_keys();
        assert_eq!((keys.master_key(), keys.master_salt()), (&key, &salt));
    }
    for bytes in [&first, &second] {
        assert_eq!(
            rejected(receiver(w).accept(bytes, NOW + 1, &mut replay)),
            Rejection::Replayed
        );
    }
    // A message for Bob carries the same RAND, so Bob's view of Alice's
    // keys (from her MKI) is hers.
    let mut for_bob = spec(w, w.kms.public());
    for_bob.member_uri = BOB;
    let bob = for_bob.sign_with_rand(&w.gms, &rand, &mut rng()).unwrap();
    assert_eq!(Message::decode(&bob).unwrap().rand().unwrap().0, rand);
}

#[test]
fn time_stamp_outside_the_window_is_rejected() {
    let w = world();
    let bytes = spec(w, w.kms.public()).sign(&w.gms, &mut rng()).unwrap();
    let mut replay = ReplayCache::new(300, 1000);
    for now in [NOW + 301, NOW - 301] {
        assert!(matches!(
            rejected(receiver(w).accept(&bytes, now, &mut replay)),
            Rejection::TimestampOutsideWindow { .. }
        ));
    }
    receiver(w).accept(&bytes, NOW + 299, &mut replay).unwrap();
}

#[test]
fn wrong_key_period_is_rejected() {
    let w = world();
    let bytes = spec(w, w.kms.public()).sign(&w.gms, &mut rng()).unwrap();
    let mut rx = receiver(w);
    rx.key_period_no = w.period + 1;
    assert_eq!(
        rejected(rx.accept(&bytes, NOW, &mut ReplayCache::default())),
        Rejection::KeyPeriodMismatch {
            message: w.period,
            receiver: w.period + 1
        }
    );
}

#[test]
fn expired_gmk_and_unsigned_message_are_rejected() {
    let w = world();
    let mut s = spec(w, w.kms.public());
    s.key_params = Some(gmk_key_parameters(GROUP, NOW - 7200, NOW - 3600));
    let bytes = s.sign(&w.gms, &mut rng()).unwrap();
    assert_eq!(
        rejected(receiver(w).accept(&bytes, NOW, &mut ReplayCache::default())),
        Rejection::KeyExpired { expiry: NOW - 3600 }
    );
    let mut msg = Message::decode(&bytes).unwrap();
    assert!(matches!(msg.payloads.pop(), Some(Payload::Sign(_))));
    let unsigned = msg.to_bytes().unwrap();
    assert_eq!(
        rejected(receiver(w).accept(&unsigned, NOW, &mut ReplayCache::default())),
        Rejection::NotSigned
    );
    // Truncated: a decode error naming payload and offset.
    let Err(Error::Decode(e)) = receiver(w).accept(&bytes[..100], NOW, &mut ReplayCache::default())
    else {
        panic!("expected a decode error");
    };
    assert!(e.offset <= 100, "{e}");
}

/// What legacy interworking functions send (issue 12 point 1): HDR with
/// an SRTP-ID map (CS ID map type 0, RFC 3830 6.1.1) over two crypto
/// sessions, and the General Extension type 7 holding the Key Parameters
/// IE in clear (a type 6 IE: IEI, 2-octet length, Table E.6.1-1 content)
/// instead of an MCData protected payload. The message decodes, describes
/// completely, its signature verifies, and a GMK receiver takes the key
/// parameters from it (the signature covers them).
#[test]
fn legacy_srtp_id_map_and_key_parameters_in_clear() {
    use mcx_mikey::describe::{Keys, describe};
    use mcx_mikey::keyparams::KeyParameters;
    use mcx_mikey::message::{CsIdMap, ExtBody, SrtpIdEntry};

    let w = world();
    let bytes = spec(w, w.kms.public()).sign(&w.gms, &mut rng()).unwrap();
    let legacy = common::resign(&bytes, &w.gms, |m| {
        m.hdr.map = CsIdMap::SrtpId(vec![
            SrtpIdEntry {
                policy_no: 0,
                ssrc: 0x1122_3344,
                roc: 0,
            },
            SrtpIdEntry {
                policy_no: 0,
                ssrc: 0x5566_7788,
                roc: 7,
            },
        ]);
        for p in &mut m.payloads {
            if let Payload::GeneralExt(g) = p {
                g.body = ExtBody::KeyParametersClear {
                    iei: 0x01,
                    params: gmk_key_parameters(GROUP, NOW - 60, NOW + 3600),
                };
            }
        }
    });
    // The octets: after the CSB ID, #CS = 2, map type 0, then 9 octets
    // per session (policy no, SSRC, ROC).
    assert_eq!(&legacy[8..10], &[2, 0]);
    assert_eq!(&legacy[10..19], &[0, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0]);

    let msg = Message::decode(&legacy).unwrap();
    assert!(matches!(&msg.hdr.map, CsIdMap::SrtpId(v) if v.len() == 2));
    let ext = msg
        .general_ext(mcx_mikey::wire::GeneralExtType::KeyParameters)
        .unwrap();
    let ExtBody::KeyParametersClear { iei, params } = &ext.body else {
        panic!("{:?}", ext.body)
    };
    assert_eq!(*iei, 0x01);
    assert_eq!(params.group_ids.as_ref().unwrap()[0].id, GROUP.as_bytes());
    assert_eq!(msg.to_bytes().unwrap(), legacy, "re-encodes to itself");
    // The same IE content read on its own.
    let mut content = Vec::new();
    mcx_mikey::codec::Codec::encode(params, &mut content).unwrap();
    assert_eq!(KeyParameters::decode(&content).unwrap(), *params);

    let d = describe(
        &legacy,
        &Keys {
            kms: Some(w.kms.public()),
            ..Keys::default()
        },
    );
    assert!(d.error.is_none(), "{:?}", d.error);
    let text = d.to_text();
    for needle in [
        "CS ID map type: 0 (SRTP-ID)",
        "SSRC: 55667788",
        "key parameters (in clear)",
        "signature: valid",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn a_malformed_message_is_described_up_to_its_fault() {
    use mcx_mikey::describe::{Keys, describe};
    let w = world();
    let bytes = spec(w, w.kms.public()).sign(&w.gms, &mut rng()).unwrap();
    // Cut inside the SIGN payload: every payload before it still shows.
    let cut = &bytes[..bytes.len() - 40];
    let d = describe(cut, &Keys::default());
    let e = d.error.as_ref().unwrap();
    assert_eq!(e.payload, "SIGN", "{e}");
    let text = d.to_text();
    for needle in ["HDR (common header)", "RAND", "SAKKE", "General Extension"] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

/// TS 33.180 5.7.1: "each specified MC Group ID in the MIKEY general
/// extension payload shall use this GMK" (E.6 key parameters), so a GMK
/// message is a key for the groups it names and for no other. Offered as
/// group B's key, group A's GMK is refused, and the refusal leaves the
/// replay cache untouched (the same message is still accepted for A).
#[test]
fn gmk_for_group_a_is_refused_as_group_b_key() {
    const GROUP_B: &str = "sip:group-b@example.org";
    let w = world();
    let bytes = spec(w, w.kms.public()).sign(&w.gms, &mut rng()).unwrap();
    let mut replay = ReplayCache::default();
    assert_eq!(
        rejected(receiver(w).accept_for_group(GROUP_B, &bytes, NOW, &mut replay)),
        Rejection::GroupNotNamed {
            group_id: GROUP_B.into()
        }
    );
    // A prefix or suffix of the named ID is another group.
    assert!(matches!(
        rejected(receiver(w).accept_for_group("sip:group-a@example", &bytes, NOW, &mut replay)),
        Rejection::GroupNotNamed { .. }
    ));
    let got = receiver(w)
        .accept_for_group(GROUP, &bytes, NOW, &mut replay)
        .unwrap();
    assert_eq!(got.gmk_id, w.gmk_id);
    assert_eq!((got.activation(), got.expiry()), (NOW - 60, NOW + 3600));

    // One GMK for several groups (5.7.1): it is each named group's key.
    let mut s = spec(w, w.kms.public());
    s.key_params = Some(mcx_mikey::keyparams::KeyParameters {
        group_ids: Some(vec![
            mcx_mikey::keyparams::GroupIdIe::new(GROUP),
            mcx_mikey::keyparams::GroupIdIe::new(GROUP_B),
        ]),
        ..gmk_key_parameters(GROUP, 0, 0)
    });
    let both = s.sign(&w.gms, &mut rng()).unwrap();
    for g in [GROUP, GROUP_B] {
        let got = receiver(w)
            .accept_for_group(g, &both, NOW, &mut ReplayCache::default())
            .unwrap();
        assert_eq!(got.gmk_id, w.gmk_id);
    }

    // Key parameters without MC group IDs, or none at all, name no group.
    for key_params in [
        Some(mcx_mikey::keyparams::KeyParameters {
            group_ids: None,
            ..gmk_key_parameters(GROUP, 0, 0)
        }),
        None,
    ] {
        let mut s = spec(w, w.kms.public());
        s.key_params = key_params;
        let bytes = s.sign(&w.gms, &mut rng()).unwrap();
        assert!(matches!(
            rejected(receiver(w).accept_for_group(GROUP, &bytes, NOW, &mut replay)),
            Rejection::GroupNotNamed { .. }
        ));
    }
}
