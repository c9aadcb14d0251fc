//! The wrapped TGMK (issue point 4): wrap for several groups, every member
//! unwraps the same TGMK, and every check fails with its own error.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{rejected, resign, rng};
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::Community;
use mcx_mikey::message::{ExtBody, Payload, Sp};
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::tgmk::{self, ConstituentGroup, DecodedCopy, TgmkReceiver, TgmkWrap, VerifyingKeys};
use mcx_mikey::wire::{GeneralExtType, Purpose};
use mcx_mikey::{Error, Gmk, IdentityRole, KeyId, Message, Rejection, Tgmk};

const DISPATCHER: &str = "sip:dispatcher@example.org";
const MALLORY: &str = "sip:mallory@example.org";
const TEMP: &str = "sip:temporary-1@example.org";
const GROUPS: [&str; 3] = [
    "sip:group-a@example.org",
    "sip:group-b@example.org",
    "sip:group-c@example.org",
];
const NOW: u64 = 1_760_000_000;

struct World {
    kms: Community,
    dispatcher: SigningKey,
    mallory: SigningKey,
    gmks: Vec<(Gmk, KeyId)>,
    tgmk: Tgmk,
    tgmk_id: KeyId,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let mut rng = rng();
        let kms = Community::generate("kms.example.org", 2_592_000, 0, &mut rng).unwrap();
        let period = mcx_ibc::uid::key_period_no(NOW, 2_592_000, 0).unwrap();
        let p = kms.public();
        let signer = |uri: &str, rng: &mut _| {
            let k = kms.issue(uri, period, rng).unwrap();
            SigningKey::new(&p.kpak, &k.uid, k.ssk, k.pvt).unwrap()
        };
        let dispatcher = signer(DISPATCHER, &mut rng);
        let mallory = signer(MALLORY, &mut rng);
        let gmks = GROUPS
            .iter()
            .map(|_| {
                (
                    Gmk::generate(&mut rng),
                    KeyId::generate(Purpose::Gmk, &mut rng).unwrap(),
                )
            })
            .collect();
        let (tgmk, tgmk_id) = tgmk::generate(&mut rng);
        World {
            kms,
            dispatcher,
            mallory,
            gmks,
            tgmk,
            tgmk_id,
        }
    })
}

fn group(w: &World, i: usize) -> ConstituentGroup<'_> {
    ConstituentGroup {
        group_id: GROUPS[i],
        gmk: &w.gmks[i].0,
        gmk_id: w.gmks[i].1,
    }
}

fn wrap_spec(w: &World) -> TgmkWrap<'_> {
    TgmkWrap {
        initiator_uri: DISPATCHER,
        kms: w.kms.public(),
        temporary_group_id: TEMP,
        tgmk: &w.tgmk,
        tgmk_id: w.tgmk_id,
        activation: NOW,
        expiry: NOW + 3600,
        t_unix: NOW,
        policy: Sp::default_group_profile(),
    }
}

fn wrap_all(w: &World) -> Vec<tgmk::WrappedTgmk> {
    let groups: Vec<_> = (0..3).map(|i| group(w, i)).collect();
    wrap_spec(w)
        .wrap(&groups, &w.dispatcher, &mut rng())
        .unwrap()
}

#[test]
fn every_member_of_every_group_unwraps_the_same_tgmk() {
    let w = world();
    let copies = wrap_all(w);
    assert_eq!(copies.len(), 3);
    let mut keys = Vec::new();
    for (i, copy) in copies.iter().enumerate() {
        assert_eq!(copy.group_id, GROUPS[i]);
        // A member of only this group.
        let mine = [group(w, i)];
        let rx = TgmkReceiver {
            kms: w.kms.public(),
            groups: &mine,
            expected_initiator: Some(DISPATCHER),
        };
        let got = rx
            .unwrap(&copy.message, NOW + 3, &mut ReplayCache::default())
            .unwrap();
        assert_eq!(got.tgmk, w.tgmk);
        assert_eq!(got.tgmk_id, w.tgmk_id);
        assert_eq!(got.initiator_uri, DISPATCHER);
        assert_eq!(got.temporary_group_id, TEMP);
        assert_eq!(got.constituent_group_id, GROUPS[i]);
        assert_eq!(got.gmk_id, w.gmks[i].1);
        assert_eq!((got.activation, got.expiry), (NOW, NOW + 3600));
        keys.push(got.srtp_keys());
        // Re-encodes byte for byte.
        assert_eq!(
            Message::decode(&copy.message).unwrap().to_bytes().unwrap(),
            copy.message
        );
    }
    assert!(
        keys.windows(2).all(|k| k[0] == k[1]),
        "one set of media keys for all"
    );
    assert_eq!(keys[0].mki(), w.tgmk_id.to_bytes());
    // A member of groups A and B unwraps both copies (the replay key
    // includes the GMK-ID).
    let both = [group(w, 0), group(w, 1)];
    let rx = TgmkReceiver {
        kms: w.kms.public(),
        groups: &both,
        expected_initiator: None,
    };
    let mut replay = ReplayCache::default();
    for copy in &copies[..2] {
        assert_eq!(
            rx.unwrap(&copy.message, NOW, &mut replay).unwrap().tgmk,
            w.tgmk
        );
    }
}

#[test]
fn a_copy_stays_acceptable_for_the_life_of_its_call_and_its_replay_is_refused_as_long() {
    // Late entry 30 minutes into a call (far past the 5-minute window):
    // the signed expiry (T + 1 h) keeps the copy acceptable to a member
    // that has not seen it, and remembered so that it cannot be replayed.
    let w = world();
    let copies = wrap_all(w);
    let mine = [group(w, 0)];
    let rx = TgmkReceiver {
        kms: w.kms.public(),
        groups: &mine,
        expected_initiator: Some(DISPATCHER),
    };
    let mut replay = ReplayCache::default();
    let late = rx
        .unwrap(&copies[0].message, NOW + 1800, &mut replay)
        .unwrap();
    assert_eq!(late.tgmk.as_bytes(), w.tgmk.as_bytes());
    assert_eq!(late.expiry, NOW + 3600);
    // Its replay is refused until the expiry, long after the window...
    for at in [NOW + 1801, NOW + 2400, NOW + 3599] {
        assert_eq!(
            rejected(rx.unwrap(&copies[0].message, at, &mut replay)),
            Rejection::Replayed,
            "at {at}"
        );
    }
    // ...and after it, the copy is expired for everyone.
    assert_eq!(
        rejected(rx.unwrap(&copies[0].message, NOW + 3600, &mut ReplayCache::default())),
        Rejection::KeyExpired { expiry: NOW + 3600 }
    );
}

#[test]
fn each_failed_check_has_its_own_error() {
    let w = world();
    let copies = wrap_all(w);
    let a = &copies[0].message;
    let mine = [group(w, 0)];
    let rx = TgmkReceiver {
        kms: w.kms.public(),
        groups: &mine,
        expected_initiator: None,
    };
    let unwrap = |bytes: &[u8], now| rx.unwrap(bytes, now, &mut ReplayCache::default());

    // Signature: altered, or by someone else than the named initiator.
    let mut bad = a.clone();
    let at = bad.len() - 100;
    bad[at] ^= 1;
    assert_eq!(rejected(unwrap(&bad, NOW)), Rejection::SignatureInvalid);
    let by_mallory = resign(a, &w.mallory, |_| {});
    assert_eq!(
        rejected(unwrap(&by_mallory, NOW)),
        Rejection::SignatureInvalid
    );

    // Initiator not the authorised one.
    let only_mallory = TgmkReceiver {
        expected_initiator: Some(MALLORY),
        ..rx
    };
    assert_eq!(
        rejected(only_mallory.unwrap(a, NOW, &mut ReplayCache::default())),
        Rejection::WrongInitiator
    );

    // GMK-ID unknown: a member of group B only gets A's copy.
    let b_only = [group(w, 1)];
    let rx_b = TgmkReceiver {
        groups: &b_only,
        ..rx
    };
    assert_eq!(
        rejected(rx_b.unwrap(a, NOW, &mut ReplayCache::default())),
        Rejection::UnknownGmkId(w.gmks[0].1.0)
    );

    // Constituent group not ours: a copy wrapped under GMK-A that names group B.
    let wrong_group = ConstituentGroup {
        group_id: GROUPS[1],
        ..group(w, 0)
    };
    let copy = wrap_spec(w)
        .wrap(&[wrong_group], &w.dispatcher, &mut rng())
        .unwrap();
    assert_eq!(
        rejected(unwrap(&copy[0].message, NOW)),
        Rejection::NotAMember
    );

    // Freshness: from the future; past the call's signed life; older
    // than the window without a signed life; then a replay.
    assert!(matches!(
        rejected(unwrap(a, NOW - 400)),
        Rejection::TimestampOutsideWindow { .. }
    ));
    assert_eq!(
        rejected(unwrap(a, NOW + 3600)),
        Rejection::KeyExpired { expiry: NOW + 3600 }
    );
    let no_life = TgmkWrap {
        expiry: 0,
        ..wrap_spec(w)
    }
    .wrap(&[group(w, 0)], &w.dispatcher, &mut rng())
    .unwrap();
    assert!(matches!(
        rejected(unwrap(&no_life[0].message, NOW + 400)),
        Rejection::TimestampOutsideWindow { .. }
    ));
    let mut replay = ReplayCache::default();
    rx.unwrap(a, NOW, &mut replay).unwrap();
    assert_eq!(
        rejected(rx.unwrap(a, NOW, &mut replay)),
        Rejection::Replayed
    );
    // A lifetime longer than the receiver accepts.
    assert_eq!(
        rejected(rx.unwrap(
            a,
            NOW + 400,
            &mut ReplayCache::default().with_max_lifetime(1800)
        )),
        Rejection::LifetimeTooLong {
            lifetime_secs: 3600,
            max_secs: 1800
        }
    );

    // MAC: the initiator signs a copy whose MAC is wrong.
    let bad_mac = resign(a, &w.dispatcher, |m| {
        for p in &mut m.payloads {
            if let Payload::Kemac(k) = p {
                k.mac[0] ^= 1;
            }
        }
    });
    assert_eq!(rejected(unwrap(&bad_mac, NOW)), Rejection::MacInvalid);
    // Encrypted data altered (MAC no longer matches either).
    let bad_data = resign(a, &w.dispatcher, |m| {
        for p in &mut m.payloads {
            if let Payload::Kemac(k) = p {
                k.encr_data[5] ^= 1;
            }
        }
    });
    assert_eq!(rejected(unwrap(&bad_data, NOW)), Rejection::MacInvalid);

    // Format version.
    let v2 = resign(a, &w.dispatcher, |m| {
        for p in &mut m.payloads {
            if let Payload::GeneralExt(g) = p {
                if let ExtBody::KeyParameters(pp) = &mut g.body {
                    pp.payload_id = 2;
                }
            }
        }
    });
    assert_eq!(
        rejected(unwrap(&v2, NOW)),
        Rejection::UnsupportedFormatVersion(2)
    );

    // KMS named in IDRkmsi.
    let mut other = w.kms.public().clone();
    other.kms_uri = "kms.elsewhere.org".into();
    let spec = TgmkWrap {
        kms: &other,
        ..wrap_spec(w)
    };
    let copy = spec
        .wrap(&[group(w, 0)], &w.dispatcher, &mut rng())
        .unwrap();
    assert_eq!(
        rejected(unwrap(&copy[0].message, NOW)),
        Rejection::WrongKms {
            role: IdentityRole::InitiatorKms
        }
    );

    // Key parameters altered (their GCM tag fails).
    let bad_kp = resign(a, &w.dispatcher, |m| {
        for p in &mut m.payloads {
            if let Payload::GeneralExt(g) = p {
                if let ExtBody::KeyParameters(pp) = &mut g.body {
                    pp.ciphertext[0] ^= 1;
                }
            }
        }
    });
    assert_eq!(
        rejected(unwrap(&bad_kp, NOW)),
        Rejection::KeyParametersInvalid
    );

    // Expired.
    let spec = TgmkWrap {
        expiry: NOW - 1,
        ..wrap_spec(w)
    };
    let copy = spec
        .wrap(&[group(w, 0)], &w.dispatcher, &mut rng())
        .unwrap();
    assert_eq!(
        rejected(unwrap(&copy[0].message, NOW)),
        Rejection::KeyExpired { expiry: NOW - 1 }
    );

    // Unsigned.
    let mut msg = Message::decode(a).unwrap();
    msg.payloads.pop();
    assert_eq!(
        rejected(unwrap(&msg.to_bytes().unwrap(), NOW)),
        Rejection::NotSigned
    );

    // A GMK message is not a wrapped TGMK.
    let gmk_msg = common::imessage(common::GMK_MSG);
    assert!(matches!(
        rejected(unwrap(&gmk_msg, NOW)),
        Rejection::UnexpectedDataType {
            expected: 0,
            got: 26
        }
    ));

    // And the untouched copy still unwraps.
    unwrap(a, NOW).unwrap();
    assert!(
        Message::decode(a)
            .unwrap()
            .general_ext(GeneralExtType::KeyParameters)
            .is_some()
    );
}

#[test]
fn kemac_opens_with_the_gmk_only() {
    let w = world();
    let copies = wrap_all(w);
    let kd = tgmk::open_kemac(&copies[1].message, &w.gmks[1].0).unwrap();
    assert_eq!(kd.len(), 1);
    assert_eq!(kd[0].key.as_slice(), w.tgmk.as_bytes());
    assert_eq!(
        tgmk::open_kemac(&copies[1].message, &w.gmks[0].0).unwrap_err(),
        Error::Rejected(Rejection::MacInvalid)
    );
}

#[test]
fn a_member_keeps_the_initiators_verifying_key_and_still_refuses_what_does_not_verify() {
    let w = world();
    let mine = [group(w, 0)];
    let rx = TgmkReceiver {
        kms: w.kms.public(),
        groups: &mine,
        expected_initiator: None,
    };
    let mut verifiers = VerifyingKeys::new();
    let mut replay = ReplayCache::default();
    // Two calls from the dispatcher: the key is built on the first and
    // kept (one signer), both unwrap.
    for _ in 0..2 {
        let copy = &wrap_all(w)[0];
        let got = rx
            .unwrap_cached(&copy.message, NOW, &mut replay, &mut verifiers)
            .unwrap();
        assert_eq!(got.tgmk, w.tgmk);
        assert_eq!(verifiers.len(), 1);
    }
    // A copy signed by Mallory but naming the dispatcher: refused with the
    // dispatcher's key in the cache, which stays the only one kept.
    let forged = resign(&wrap_all(w)[0].message, &w.mallory, |_| {});
    assert_eq!(
        rejected(rx.unwrap_cached(&forged, NOW, &mut replay, &mut verifiers)),
        Rejection::SignatureInvalid
    );
    assert_eq!(verifiers.len(), 1);
    // A flipped signature octet is refused through the cached key too.
    let mut bad = wrap_all(w)[0].message.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(
        rx.unwrap_cached(&bad, NOW, &mut replay, &mut verifiers)
            .is_err()
    );
    // Mallory's own copy: her key is a second one kept.
    let spec = TgmkWrap {
        initiator_uri: MALLORY,
        ..wrap_spec(w)
    };
    let hers = spec.wrap(&mine, &w.mallory, &mut rng()).unwrap();
    rx.unwrap_cached(&hers[0].message, NOW, &mut replay, &mut verifiers)
        .unwrap();
    assert_eq!(verifiers.len(), 2);
}

/// The member's path (mcx-core's call request handling): the copy decoded
/// once, its IDRi read for authorisation, then unwrapped as decoded, with
/// every check of `unwrap_cached`: a forged signature, a copy for another
/// group and a replay are refused all the same.
#[test]
fn a_copy_decoded_once_is_unwrapped_with_every_check() {
    let w = world();
    let (mine, mut verifiers, mut replay) =
        ([group(w, 0)], VerifyingKeys::new(), ReplayCache::default());
    let expected_initiator = Some(DISPATCHER);
    let rx = TgmkReceiver {
        kms: w.kms.public(),
        groups: &mine,
        expected_initiator,
    };
    let copies = wrap_all(w);
    let copy = DecodedCopy::decode(&copies[0].message).unwrap();
    assert_eq!(copy.initiator_id(), Some(DISPATCHER.as_bytes()));
    let got = rx
        .unwrap_decoded_cached(&copy, NOW, &mut replay, &mut verifiers)
        .unwrap();
    assert_eq!(got.tgmk, w.tgmk);
    assert_eq!(got.constituent_group_id, GROUPS[0]);
    // The same copy again: a replay.
    assert_eq!(
        rejected(rx.unwrap_decoded_cached(&copy, NOW, &mut replay, &mut verifiers)),
        Rejection::Replayed
    );
    // Signed by Mallory, naming the dispatcher.
    let forged = resign(&wrap_all(w)[0].message, &w.mallory, |_| {});
    let forged = DecodedCopy::decode(&forged).unwrap();
    assert_eq!(forged.initiator_id(), Some(DISPATCHER.as_bytes()));
    assert_eq!(
        rejected(rx.unwrap_decoded_cached(&forged, NOW, &mut replay, &mut verifiers)),
        Rejection::SignatureInvalid
    );
    // The copy for group B, to a member of group A only.
    let for_b = wrap_all(w);
    let other = DecodedCopy::decode(&for_b[1].message).unwrap();
    assert_eq!(
        rejected(rx.unwrap_decoded_cached(&other, NOW, &mut replay, &mut verifiers)),
        Rejection::UnknownGmkId(w.gmks[1].1.0)
    );
    // Not MIKEY at all: refused at decoding, before any other check.
    assert!(matches!(
        DecodedCopy::decode(b"not mikey"),
        Err(Error::Decode(_))
    ));
}
