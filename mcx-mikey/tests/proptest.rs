//! Property tests (issue point 1): the decoder never panics, whatever the
//! input, and encode∘decode is the identity on generated messages.

#![allow(clippy::unwrap_used)]

mod common;

use mcx_mikey::keyparams::ProtectedPayload;
use mcx_mikey::message::{
    CsIdMap, ErrPayload, ExtBody, GeneralExt, GenericIdEntry, Hdr, Id, Idr, Kemac, Payload, Rand,
    Sakke, Sign, Sp, SpParam, SrtpIdEntry, Timestamp,
};
use mcx_mikey::wire::{
    DataType, EncrAlg, ErrorCode, GeneralExtType, IdRole, IdScheme, IdType, MacAlg, PrfFunc,
    ProtType, SakkeParams, SignType,
};
use mcx_mikey::{Message, describe};
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn map() -> impl Strategy<Value = CsIdMap> {
    prop_oneof![
        vec((any::<u8>(), any::<u32>(), any::<u32>()), 0..4).prop_map(|v| CsIdMap::SrtpId(
            v.into_iter()
                .map(|(policy_no, ssrc, roc)| SrtpIdEntry {
                    policy_no,
                    ssrc,
                    roc
                })
                .collect()
        )),
        any::<u8>().prop_map(|cs_count| CsIdMap::Empty { cs_count }),
        vec(
            (
                any::<u8>(),
                any::<u8>(),
                any::<bool>(),
                bytes(5),
                bytes(12),
                bytes(10)
            ),
            0..3
        )
        .prop_map(|v| CsIdMap::GenericId(
            v.into_iter()
                .map(
                    |(cs_id, p, s, policies, session_data, spi)| GenericIdEntry {
                        cs_id,
                        prot_type: ProtType::from(p),
                        s,
                        policies,
                        session_data,
                        spi,
                    }
                )
                .collect()
        )),
    ]
}

fn protected() -> impl Strategy<Value = ProtectedPayload> {
    (
        (
            any::<u8>(),
            0u64..(1 << 40),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
        ),
        (any::<[u8; 16]>(), any::<u32>(), any::<u8>(), bytes(40)),
    )
        .prop_map(
            |(
                (message_type, date_time, payload_id, payload_seq, algorithm),
                (iv, dppk_id, payload_iei, ciphertext),
            )| {
                ProtectedPayload {
                    message_type,
                    date_time,
                    payload_id,
                    payload_seq,
                    algorithm,
                    iv,
                    dppk_id,
                    payload_iei,
                    ciphertext,
                }
            },
        )
}

fn sakke() -> impl Strategy<Value = Sakke> {
    (any::<u8>(), any::<u8>(), bytes(300)).prop_map(|(p, s, data)| Sakke {
        params: SakkeParams::from(p),
        id_scheme: IdScheme::from(s),
        data,
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        any::<u64>().prop_map(|v| Payload::T(Timestamp::NtpUtc(v))),
        any::<u64>().prop_map(|v| Payload::T(Timestamp::Ntp(v))),
        any::<u32>().prop_map(|v| Payload::T(Timestamp::Counter(v))),
        bytes(32).prop_map(|v| Payload::Rand(Rand(v))),
        (any::<u8>(), any::<u8>(), bytes(40)).prop_map(|(r, t, id)| Payload::Idr(Idr {
            role: IdRole::from(r),
            id_type: IdType::from(t),
            id
        })),
        (any::<u8>(), bytes(20)).prop_map(|(t, id)| Payload::Id(Id {
            id_type: IdType::from(t),
            id
        })),
        (any::<u8>(), any::<u8>(), vec((any::<u8>(), bytes(3)), 0..6)).prop_map(|(n, p, ps)| {
            Payload::Sp(Sp {
                policy_no: n,
                prot_type: ProtType::from(p),
                params: ps
                    .into_iter()
                    .map(|(param_type, value)| SpParam { param_type, value })
                    .collect(),
            })
        }),
        (any::<u8>(), bytes(50), 0u8..3).prop_map(|(e, encr_data, m)| {
            let mac_alg = MacAlg::from(m);
            Payload::Kemac(Kemac {
                encr_alg: EncrAlg::from(e),
                encr_data,
                mac_alg,
                mac: vec![0xa5; mac_alg.mac_len().unwrap_or(0)],
            })
        }),
        sakke().prop_map(Payload::Sakke),
        (any::<u8>(), bytes(30))
            .prop_filter("6 and 7 are parsed", |(t, _)| *t != 6 && *t != 7)
            .prop_map(|(t, d)| Payload::GeneralExt(GeneralExt {
                ext_type: GeneralExtType::from(t),
                body: ExtBody::Raw(d)
            })),
        (any::<u8>(), sakke()).prop_map(|(inner_next, sakke)| Payload::GeneralExt(GeneralExt {
            ext_type: GeneralExtType::SakkeToSelf,
            body: ExtBody::SakkeToSelf { inner_next, sakke }
        })),
        protected().prop_map(|p| Payload::GeneralExt(GeneralExt {
            ext_type: GeneralExtType::KeyParameters,
            body: ExtBody::KeyParameters(p)
        })),
        (any::<u8>(), any::<u16>()).prop_map(|(c, reserved)| Payload::Err(ErrPayload {
            code: ErrorCode(c),
            reserved
        })),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        (any::<u8>(), any::<bool>(), 0u8..128, any::<u32>(), map()),
        vec(payload(), 0..8),
        proptest::option::of((0u8..16, bytes(140))),
    )
        .prop_map(|((dt, v, prf, csb_id, map), mut payloads, sign)| {
            if let Some((t, signature)) = sign {
                payloads.push(Payload::Sign(Sign {
                    sign_type: SignType::from(t),
                    signature,
                }));
            }
            Message {
                hdr: Hdr {
                    data_type: DataType::from(dt),
                    v,
                    prf: PrfFunc::from(prf),
                    csb_id,
                    map,
                },
                payloads,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity(msg in message()) {
        let bytes = msg.to_bytes().unwrap();
        let (back, layout) = Message::decode_with_layout(&bytes).unwrap();
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(layout.len, bytes.len());
        prop_assert_eq!(&back.to_bytes().unwrap(), &bytes);
        // Describing it never panics either.
        let _ = describe::describe(&bytes, &describe::Keys::default()).to_text();
    }

    #[test]
    fn decoder_never_panics_on_random_bytes(b in bytes(800)) {
        if let Ok(m) = Message::decode(&b) {
            // Whatever decodes re-encodes to the same octets.
            prop_assert_eq!(&m.to_bytes().unwrap(), &b);
        }
        let _ = describe::describe(&b, &describe::Keys::default()).to_json();
    }

    #[test]
    fn decoder_never_panics_on_mutated_vendor_messages(
        which in 0usize..3,
        edits in vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let key = [common::GMK_MSG, common::CSK_MSG, common::PCK_MSG][which];
        let mut b = common::imessage(key);
        for (at, v) in edits {
            let i = at % b.len();
            b[i] = v;
        }
        b.truncate(cut % (b.len() + 1));
        if let Ok(m) = Message::decode(&b) {
            prop_assert_eq!(&m.to_bytes().unwrap(), &b);
        }
    }
}
