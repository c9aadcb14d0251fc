//! Property tests: decoding arbitrary bytes never panics, and
//! decode(encode(m)) = m with encode(decode(b)) = b.
#![allow(clippy::unwrap_used, missing_docs)]

use mcx_floor::message::field_id;
use mcx_floor::{
    Field, FloorIndicator, Message, MessageType, RejectCause, RtcpPacket, Source, decode_compound,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9:@.é-]{0,40}"
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        any::<u8>().prop_map(Field::FloorPriority),
        any::<u16>().prop_map(Field::Duration),
        (any::<u16>(), text()).prop_map(|(c, phrase)| Field::RejectCause {
            cause: RejectCause(c),
            phrase
        }),
        text().prop_map(Field::GrantedPartyIdentity),
        any::<bool>().prop_map(Field::PermissionToRequest),
        text().prop_map(Field::UserId),
        any::<u16>().prop_map(Field::SequenceNumber),
        any::<u16>().prop_map(|s| Field::Source(Source(s))),
        any::<u8>().prop_map(Field::MessageType),
        any::<u16>().prop_map(|f| Field::FloorIndicator(FloorIndicator(f))),
        (
            any::<u8>().prop_filter("unknown IDs only", |id| !field_id::is_known(*id)),
            proptest::collection::vec(any::<u8>(), 0..=255)
        )
            .prop_map(|(id, value)| Field::Unknown { id, value }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        0u8..16,
        any::<bool>(),
        any::<u32>(),
        proptest::collection::vec(field(), 0..12),
    )
        .prop_map(|(t, ack, ssrc, fields)| {
            let mut m = Message::new(MessageType::from(t), ssrc).with_ack_required(ack);
            // Known fields appear at most once (the decoder rejects repeats).
            for f in fields {
                if !field_id::is_known(f.id()) || m.field(f.id()).is_none() {
                    m.fields.push(f);
                }
            }
            m
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Message::decode(&bytes);
        if let Ok(packets) = decode_compound(&bytes) {
            for p in packets {
                if let RtcpPacket::Floor(m) = p {
                    let again = Message::decode(&m.to_bytes().unwrap()).unwrap();
                    prop_assert_eq!(again, m);
                }
            }
        }
    }

    #[test]
    fn header_shaped_bytes_never_panic(
        fields in proptest::collection::vec(any::<u8>(), 0..200),
        sub in 0u8..32,
    ) {
        // A valid MCPT header over random field octets, to reach the
        // field decoder far more often than fully random input does.
        let words = fields.len().div_ceil(4) + 2;
        let mut p = vec![0x80 | sub, 204];
        p.extend_from_slice(&u16::try_from(words).unwrap().to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(b"MCPT");
        p.extend_from_slice(&fields);
        p.resize((words + 1) * 4, 0);
        if let Ok(m) = Message::decode(&p) {
            prop_assert_eq!(m.to_bytes().unwrap(), p);
        }
    }

    #[test]
    fn encode_then_decode_is_identity(m in message()) {
        let bytes = m.to_bytes().unwrap();
        prop_assert_eq!(bytes.len() % 4, 0);
        let d = Message::decode(&bytes).unwrap();
        prop_assert_eq!(&d, &m);
        prop_assert_eq!(d.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn compound_of_messages_decodes_in_order(ms in proptest::collection::vec(message(), 1..5)) {
        let mut buf = Vec::new();
        for m in &ms {
            m.encode(&mut buf).unwrap();
        }
        let got: Vec<Message> = decode_compound(&buf)
            .unwrap()
            .into_iter()
            .map(|p| match p {
                RtcpPacket::Floor(m) => m,
                RtcpPacket::Other(o) => panic!("unexpected {o:?}"),
            })
            .collect();
        prop_assert_eq!(got, ms);
    }
}
