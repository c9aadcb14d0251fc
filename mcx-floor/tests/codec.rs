//! Byte-level codec tests: expected octets written by hand from the
//! TS 24.380 8.2 / RFC 3550 6.7 layout, one comment per field.
#![allow(clippy::unwrap_used, missing_docs)]

use mcx_floor::{
    DecodeError, DecodeErrorKind, EncodeError, Field, FloorIndicator, Message, MessageType,
    OtherPacket, RejectCause, RtcpPacket, Source, decode_compound,
};

const BROADCAST_TEMP: FloorIndicator = FloorIndicator(0x4100);

/// Floor Taken (ack required) from the server to a receiver.
#[rustfmt::skip]
const TAKEN: &[u8] = &[
    0x92, 0xcc, 0x00, 0x08,       // V=2 P=0 subtype=0x12 (Taken | ack), PT=204, length 8 (36 octets)
    0xf1, 0x00, 0x00, 0x01,       // SSRC of the floor control server
    b'M', b'C', b'P', b'T',       // name
    106, 7,                       // Granted Party's Identity, length 7
    b's', b'i', b'p', b':', b'a', b'@', b'x',
    0, 0, 0,                      //   padding to 32 bits (2 + 7 + 3 = 12)
    108, 2, 0x00, 0x00,           // Permission to Request the Floor = 0
    111, 2, 0x00, 0x01,           // Message Sequence Number = 1
    116, 2, 0x41, 0x00,           // Floor Indicator = broadcast | temporary group
];

/// Floor Deny, cause #5 with its phrase.
#[rustfmt::skip]
const DENY: &[u8] = &[
    0x83, 0xcc, 0x00, 0x07,       // V=2 subtype=3 (Deny), PT=204, length 7 (32 octets)
    0xf1, 0x00, 0x00, 0x01,       // SSRC
    b'M', b'C', b'P', b'T',       // name
    104, 14,                      // Reject Cause, length 14 (no padding: 2 + 14 = 16)
    0x00, 0x05,                   //   cause #5
    b'r', b'e', b'c', b'e', b'i', b'v', b'e', b' ', b'o', b'n', b'l', b'y',
    116, 2, 0x41, 0x00,           // Floor Indicator
];

/// Floor Ack from a participant for the Taken above.
#[rustfmt::skip]
const ACK: &[u8] = &[
    0x8a, 0xcc, 0x00, 0x04,       // V=2 subtype=10 (Ack), PT=204, length 4 (20 octets)
    0x00, 0x00, 0x12, 0x34,       // SSRC of the participant
    b'M', b'C', b'P', b'T',       // name
    113, 2, 0x00, 0x00,           // Source = floor participant
    115, 2, 0x12, 0x00,           // Message Type = 0x12 (Taken, ack required), spare
];

/// An RTCP RR without report blocks (RFC 3550 6.4.2).
#[rustfmt::skip]
const RR: &[u8] = &[
    0x80, 0xc9, 0x00, 0x01,       // V=2 RC=0, PT=201, length 1
    0x00, 0x00, 0x00, 0x07,       // SSRC
];

fn taken() -> Message {
    Message::new(MessageType::FloorTaken, 0xf100_0001)
        .with_ack_required(true)
        .with(Field::GrantedPartyIdentity("sip:a@x".into()))
        .with(Field::PermissionToRequest(false))
        .with(Field::SequenceNumber(1))
        .with(Field::FloorIndicator(BROADCAST_TEMP))
}

#[test]
fn floor_taken_bytes() {
    assert_eq!(taken().to_bytes().unwrap(), TAKEN);
    let m = Message::decode(TAKEN).unwrap();
    assert_eq!(m, taken());
    assert_eq!(m.subtype(), 0x12);
    assert_eq!(m.granted_party(), Some("sip:a@x"));
    assert_eq!(m.permission_to_request(), Some(false));
    assert_eq!(m.sequence_number(), Some(1));
    assert!(
        m.floor_indicator()
            .unwrap()
            .contains(FloorIndicator::BROADCAST_GROUP_CALL)
    );
}

#[test]
fn floor_deny_bytes() {
    let m = Message::new(MessageType::FloorDeny, 0xf100_0001)
        .with(Field::RejectCause {
            cause: RejectCause::RECEIVE_ONLY,
            phrase: "receive only".into(),
        })
        .with(Field::FloorIndicator(BROADCAST_TEMP));
    assert_eq!(m.to_bytes().unwrap(), DENY);
    let d = Message::decode(DENY).unwrap();
    assert_eq!(d, m);
    assert_eq!(d.reject_cause(), Some((RejectCause(5), "receive only")));
}

#[test]
fn floor_ack_bytes() {
    let m = Message::new(MessageType::FloorAck, 0x1234)
        .with(Field::Source(Source::FLOOR_PARTICIPANT))
        .with(Field::MessageType(0x12));
    assert_eq!(m.to_bytes().unwrap(), ACK);
    let d = Message::decode(ACK).unwrap();
    assert_eq!(d.acked_message_type(), Some(0x12));
    assert_eq!(d.source(), Some(Source::FLOOR_PARTICIPANT));
}

#[test]
fn request_with_priority_and_duration_fields() {
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x80, 0xcc, 0x00, 0x04,   // V=2 subtype=0 (Request), PT=204, length 4
        0x00, 0x00, 0x00, 0x09,   // SSRC
        b'M', b'C', b'P', b'T',   // name
        102, 2, 0x07, 0x00,       // Floor Priority 7, spare
        103, 2, 0x01, 0x2c,       // Duration 300 s
    ];
    let m = Message::new(MessageType::FloorRequest, 9)
        .with(Field::FloorPriority(7))
        .with(Field::Duration(300));
    assert_eq!(m.to_bytes().unwrap(), expected);
    assert_eq!(Message::decode(expected).unwrap(), m);
}

#[test]
fn unknown_fields_round_trip_byte_for_byte() {
    #[rustfmt::skip]
    let bytes: &[u8] = &[
        0x85, 0xcc, 0x00, 0x06,   // V=2 subtype=5 (Idle), PT=204, length 6 (28 octets)
        0x00, 0x00, 0x00, 0x01,   // SSRC
        b'M', b'C', b'P', b'T',   // name
        200, 3, 1, 2, 3, 0, 0, 0, // unknown field 200, length 3, padding 3
        114, 0, 0, 0,             // Track Info (not decoded here), empty, padding 2
        111, 2, 0x00, 0x05,       // Message Sequence Number 5
    ];
    let m = Message::decode(bytes).unwrap();
    assert_eq!(
        m.fields[0],
        Field::Unknown {
            id: 200,
            value: vec![1, 2, 3]
        }
    );
    assert_eq!(
        m.fields[1],
        Field::Unknown {
            id: 114,
            value: vec![]
        }
    );
    assert_eq!(m.to_bytes().unwrap(), bytes);
}

#[test]
fn compound_reports_other_packets() {
    #[rustfmt::skip]
    let app_other: &[u8] = &[
        0x81, 0xcc, 0x00, 0x02,   // APP subtype 1, length 2
        0x00, 0x00, 0x00, 0x07,   // SSRC
        b'A', b'B', b'C', b'D',   // another application's name
    ];
    let buf = [RR, TAKEN, app_other, ACK].concat();
    let packets = decode_compound(&buf).unwrap();
    assert_eq!(packets.len(), 4);
    assert_eq!(
        packets[0],
        RtcpPacket::Other(OtherPacket {
            offset: 0,
            packet_type: 201,
            count: 0,
            name: None,
            len: 8
        })
    );
    assert_eq!(packets[1], RtcpPacket::Floor(taken()));
    assert_eq!(
        packets[2],
        RtcpPacket::Other(OtherPacket {
            offset: 8 + TAKEN.len(),
            packet_type: 204,
            count: 1,
            name: Some(*b"ABCD"),
            len: 12
        })
    );
    assert!(matches!(&packets[3], RtcpPacket::Floor(m) if m.message_type == MessageType::FloorAck));
}

#[test]
fn rtcp_padding_on_last_packet_is_stripped() {
    let mut p = ACK.to_vec();
    p[0] |= 0x20; // P bit
    p[3] += 1; // one more word
    p.extend_from_slice(&[0, 0, 0, 4]); // 4 padding octets, count in the last
    let m = Message::decode(&p).unwrap();
    assert_eq!(m, Message::decode(ACK).unwrap());
}

fn err(field: &'static str, offset: usize, kind: DecodeErrorKind) -> DecodeError {
    DecodeError {
        field,
        offset,
        kind,
    }
}

/// `ACK` with its first field replaced by `field` (4 octets).
fn with_field(field: [u8; 4]) -> Vec<u8> {
    let mut p = ACK.to_vec();
    p[12..16].copy_from_slice(&field);
    p
}

#[test]
fn malformed_header_errors() {
    use DecodeErrorKind::*;
    assert_eq!(
        decode_compound(&[]).unwrap_err(),
        err("RTCP header", 0, Empty)
    );
    assert_eq!(
        Message::decode(&ACK[..3]).unwrap_err(),
        err(
            "RTCP header",
            0,
            Truncated {
                needed: 4,
                available: 3
            }
        )
    );
    let mut v1 = ACK.to_vec();
    v1[0] = 0x4a;
    assert_eq!(
        Message::decode(&v1).unwrap_err(),
        err("version", 0, BadVersion(1))
    );
    assert_eq!(
        Message::decode(&ACK[..16]).unwrap_err(),
        err(
            "length",
            2,
            LengthExceedsBuffer {
                declared: 20,
                available: 16
            }
        )
    );
    // A compound buffer whose second packet is cut: offset names it.
    let cut = [RR, &ACK[..19]].concat();
    assert_eq!(
        decode_compound(&cut).unwrap_err(),
        err(
            "length",
            10,
            LengthExceedsBuffer {
                declared: 20,
                available: 19
            }
        )
    );
    let mut zero_pad = ACK.to_vec();
    zero_pad[0] |= 0x20;
    zero_pad[19] = 0;
    assert_eq!(
        Message::decode(&zero_pad).unwrap_err(),
        err("padding", 19, BadPaddingCount(0))
    );
    let mut big_pad = ACK.to_vec();
    big_pad[0] |= 0x20;
    big_pad[19] = 17;
    assert_eq!(
        Message::decode(&big_pad).unwrap_err(),
        err("padding", 19, BadPaddingCount(17))
    );
    let mut padded_rr = RR.to_vec();
    padded_rr[0] |= 0x20;
    padded_rr[7] = 4;
    let buf = [&padded_rr[..], ACK].concat();
    assert_eq!(
        decode_compound(&buf).unwrap_err(),
        err("padding", 0, PaddingNotLast)
    );
    #[rustfmt::skip]
    let short_app: &[u8] = &[0x80, 0xcc, 0x00, 0x01, 0, 0, 0, 1];
    assert_eq!(
        Message::decode(short_app).unwrap_err(),
        err(
            "APP header",
            0,
            Truncated {
                needed: 12,
                available: 8
            }
        )
    );
    assert_eq!(
        Message::decode(RR).unwrap_err(),
        err(
            "RTCP header",
            0,
            NotFloorControl {
                packet_type: 201,
                name: None
            }
        )
    );
    let trailing = [ACK, RR].concat();
    assert_eq!(
        Message::decode(&trailing).unwrap_err(),
        err("packet", 20, TrailingData(8))
    );
}

#[test]
fn malformed_field_errors() {
    use DecodeErrorKind::*;
    // User ID claiming 10 octets with 2 left.
    assert_eq!(
        Message::decode(&with_field([109, 10, b'a', b'b'])).unwrap_err(),
        err(
            "User ID",
            14,
            Truncated {
                needed: 10,
                available: 6
            }
        )
    );
    // Unknown field whose padding is cut by RTCP padding (count 1).
    #[rustfmt::skip]
    let pad_cut: &[u8] = &[
        0xa0, 0xcc, 0x00, 0x04, 0, 0, 0, 1, b'M', b'C', b'P', b'T',
        200, 5, 1, 2, 3, 4, 5, 1, // field of 7 octets needs 1 padding; RTCP padding eats it
    ];
    assert_eq!(
        Message::decode(pad_cut).unwrap_err(),
        err(
            "unknown field",
            19,
            Truncated {
                needed: 1,
                available: 0
            }
        )
    );
    assert_eq!(
        Message::decode(&with_field([109, 1, b'a', 9])).unwrap_err(),
        err("User ID", 15, NonZeroPadding)
    );
    let mut dur3 = ACK.to_vec();
    dur3[12..20].copy_from_slice(&[103, 3, 0, 1, 2, 0, 0, 0]);
    assert_eq!(
        Message::decode(&dur3).unwrap_err(),
        err(
            "Duration",
            13,
            BadFieldLength {
                expected: 2,
                found: 3
            }
        )
    );
    assert_eq!(
        Message::decode(&with_field([102, 2, 5, 1])).unwrap_err(),
        err("Floor Priority", 15, NonZeroSpare(1))
    );
    assert_eq!(
        Message::decode(&with_field([108, 2, 0, 2])).unwrap_err(),
        err("Permission to Request the Floor", 14, InvalidValue(2))
    );
    assert_eq!(
        Message::decode(&with_field([109, 1, 0xff, 0])).unwrap_err(),
        err("User ID", 14, InvalidUtf8)
    );
    assert_eq!(
        Message::decode(&with_field([104, 1, 5, 0])).unwrap_err(),
        err(
            "Reject Cause",
            13,
            BadFieldLength {
                expected: 2,
                found: 1
            }
        )
    );
    assert_eq!(
        Message::decode(&with_field([115, 2, 0x12, 0])).unwrap_err(),
        err("Message Type", 16, DuplicateField(115))
    );
}

#[test]
fn errors_display_field_and_offset() {
    let e = Message::decode(&with_field([108, 2, 0, 2])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Permission to Request the Floor at offset 14: invalid value 2"
    );
}

#[test]
fn encode_errors() {
    let long = Message::new(MessageType::FloorRelease, 1).with(Field::UserId("x".repeat(256)));
    let mut out = vec![0xaa];
    assert_eq!(
        long.encode(&mut out).unwrap_err(),
        EncodeError::FieldTooLong {
            field: "User ID",
            len: 256
        }
    );
    assert_eq!(out, [0xaa], "output untouched on error");
    let known = Message::new(MessageType::FloorIdle, 1).with(Field::Unknown {
        id: 111,
        value: vec![0, 1],
    });
    assert_eq!(
        known.to_bytes().unwrap_err(),
        EncodeError::KnownFieldId(111)
    );
    let wide = Message::new(MessageType::Unknown(0x20), 1);
    assert_eq!(
        wide.to_bytes().unwrap_err(),
        EncodeError::MessageTypeOutOfRange(0x20)
    );
}

#[test]
fn message_type_codes() {
    for v in 0..16u8 {
        assert_eq!(MessageType::from(v).code(), v);
    }
    assert_eq!(MessageType::from(0x11), MessageType::FloorGranted);
    assert_eq!(MessageType::from(10), MessageType::FloorAck);
}
