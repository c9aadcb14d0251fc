//! The floor control message codec: one RTCP APP packet (RFC 3550 6.7)
//! named "MCPT" per message (TS 24.380 8.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |V=2|P| subtype |   PT=APP=204  |             length            |
//! |                   SSRC of the sender                          |
//! |                      name = "MCPT"                            |
//! |   field ID    | field length  |  value ... (padded to 32 bits)|
//! ```
//!
//! The subtype's low 4 bits are the message type (TS 24.380 8.2.2,
//! [`MessageType`]); its 0x10 bit asks the receiver for a Floor Ack.
//! Each field is ID (1 octet), length of the value (1 octet), value, then
//! zero octets up to the next 32-bit boundary (TS 24.380 8.2.3.1).

use crate::codes::{FloorIndicator, RejectCause, Source};
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};

/// RTCP packet type APP (RFC 3550 6.7).
pub const PT_APP: u8 = 204;
/// The APP name of MCPTT floor control (TS 24.380 8.2.1).
pub const NAME: [u8; 4] = *b"MCPT";
/// The subtype bit asking for a Floor Ack (TS 24.380 8.2.2).
pub const ACK_REQUIRED: u8 = 0x10;
/// Octets before the first field: RTCP header, SSRC, name.
const HEADER_LEN: usize = 12;

/// Floor control message types: the low 4 bits of the APP subtype
/// (TS 24.380 8.2.2, Table 8.2.2-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 0: Floor Request (TS 24.380 8.2.4.1).
    FloorRequest,
    /// 1: Floor Granted (8.2.4.2).
    FloorGranted,
    /// 2: Floor Taken (8.2.4.4).
    FloorTaken,
    /// 3: Floor Deny (8.2.4.3).
    FloorDeny,
    /// 4: Floor Release (8.2.4.5).
    FloorRelease,
    /// 5: Floor Idle (8.2.4.6).
    FloorIdle,
    /// 6: Floor Revoke (8.2.4.7).
    FloorRevoke,
    /// 10: Floor Ack (8.2.4.10).
    FloorAck,
    /// Any other 4-bit value (kept as is).
    Unknown(u8),
}

impl MessageType {
    /// The 4-bit code.
    pub fn code(self) -> u8 {
        match self {
            Self::FloorRequest => 0,
            Self::FloorGranted => 1,
            Self::FloorTaken => 2,
            Self::FloorDeny => 3,
            Self::FloorRelease => 4,
            Self::FloorIdle => 5,
            Self::FloorRevoke => 6,
            Self::FloorAck => 10,
            Self::Unknown(v) => v,
        }
    }
}

impl From<u8> for MessageType {
    /// From the low 4 bits of `v`.
    fn from(v: u8) -> Self {
        match v & 0x0f {
            0 => Self::FloorRequest,
            1 => Self::FloorGranted,
            2 => Self::FloorTaken,
            3 => Self::FloorDeny,
            4 => Self::FloorRelease,
            5 => Self::FloorIdle,
            6 => Self::FloorRevoke,
            10 => Self::FloorAck,
            v => Self::Unknown(v),
        }
    }
}

/// Field IDs (TS 24.380 8.2.3.1, Table 8.2.3.1-2), as far as this crate
/// decodes them; other IDs become [`Field::Unknown`].
pub mod field_id {
    /// Floor Priority (8.2.3.2).
    pub const FLOOR_PRIORITY: u8 = 102;
    /// Duration (8.2.3.3).
    pub const DURATION: u8 = 103;
    /// Reject Cause (8.2.3.4).
    pub const REJECT_CAUSE: u8 = 104;
    /// Granted Party's Identity (8.2.3.6).
    pub const GRANTED_PARTY_IDENTITY: u8 = 106;
    /// Permission to Request the Floor (8.2.3.7).
    pub const PERMISSION_TO_REQUEST: u8 = 108;
    /// User ID (8.2.3.8).
    pub const USER_ID: u8 = 109;
    /// Message Sequence Number (8.2.3.10).
    pub const MESSAGE_SEQUENCE_NUMBER: u8 = 111;
    /// Source (8.2.3.12).
    pub const SOURCE: u8 = 113;
    /// Message Type (8.2.3.14).
    pub const MESSAGE_TYPE: u8 = 115;
    /// Floor Indicator (8.2.3.15).
    pub const FLOOR_INDICATOR: u8 = 116;

    /// Whether this crate decodes `id` into a typed [`super::Field`].
    pub fn is_known(id: u8) -> bool {
        matches!(
            id,
            102 | 103 | 104 | 106 | 108 | 109 | 111 | 113 | 115 | 116
        )
    }
}

/// One field of a floor control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// Floor Priority: priority octet then a zero spare octet.
    FloorPriority(u8),
    /// Duration in seconds (16 bits).
    Duration(u16),
    /// Reject Cause: 16-bit cause code and an optional reason phrase.
    RejectCause {
        /// The cause code (its meaning depends on the message: Floor Deny
        /// uses [`RejectCause`], Floor Revoke [`crate::RevokeCause`]).
        cause: RejectCause,
        /// The phrase after the code (may be empty).
        phrase: String,
    },
    /// Granted Party's Identity: the MCPTT ID of the floor holder.
    GrantedPartyIdentity(String),
    /// Permission to Request the Floor: 16-bit value, 0 or 1.
    PermissionToRequest(bool),
    /// User ID: an MCPTT ID.
    UserId(String),
    /// Message Sequence Number (16 bits).
    SequenceNumber(u16),
    /// Source: which entity sent the message.
    Source(Source),
    /// Message Type of the acknowledged message (in a Floor Ack): the
    /// subtype octet as received, then a zero spare octet.
    MessageType(u8),
    /// Floor Indicator bit field.
    FloorIndicator(FloorIndicator),
    /// A field this crate does not decode, kept byte for byte.
    Unknown {
        /// Field ID (never one of [`field_id::is_known`]).
        id: u8,
        /// The value, without padding.
        value: Vec<u8>,
    },
}

impl Field {
    /// The field ID.
    pub fn id(&self) -> u8 {
        use field_id::*;
        match self {
            Self::FloorPriority(_) => FLOOR_PRIORITY,
            Self::Duration(_) => DURATION,
            Self::RejectCause { .. } => REJECT_CAUSE,
            Self::GrantedPartyIdentity(_) => GRANTED_PARTY_IDENTITY,
            Self::PermissionToRequest(_) => PERMISSION_TO_REQUEST,
            Self::UserId(_) => USER_ID,
            Self::SequenceNumber(_) => MESSAGE_SEQUENCE_NUMBER,
            Self::Source(_) => SOURCE,
            Self::MessageType(_) => MESSAGE_TYPE,
            Self::FloorIndicator(_) => FLOOR_INDICATOR,
            Self::Unknown { id, .. } => *id,
        }
    }

    /// The field's name in TS 24.380, for errors.
    pub fn name(&self) -> &'static str {
        field_name(self.id())
    }

    fn encode_value(&self, out: &mut Vec<u8>) {
        match self {
            Self::FloorPriority(p) => out.extend_from_slice(&[*p, 0]),
            Self::Duration(v) | Self::SequenceNumber(v) => out.extend_from_slice(&v.to_be_bytes()),
            Self::RejectCause { cause, phrase } => {
                out.extend_from_slice(&cause.0.to_be_bytes());
                out.extend_from_slice(phrase.as_bytes());
            }
            Self::GrantedPartyIdentity(s) | Self::UserId(s) => out.extend_from_slice(s.as_bytes()),
            Self::PermissionToRequest(b) => out.extend_from_slice(&u16::from(*b).to_be_bytes()),
            Self::Source(s) => out.extend_from_slice(&s.0.to_be_bytes()),
            Self::MessageType(t) => out.extend_from_slice(&[*t, 0]),
            Self::FloorIndicator(f) => out.extend_from_slice(&f.0.to_be_bytes()),
            Self::Unknown { value, .. } => out.extend_from_slice(value),
        }
    }

    /// Decodes the value of field `id`; `at` is the value's offset.
    fn decode(id: u8, value: &[u8], at: usize) -> Result<Self, DecodeError> {
        use field_id::*;
        let name = field_name(id);
        let err = |offset, kind| DecodeError {
            field: name,
            offset,
            kind,
        };
        let fixed2 = || -> Result<u16, DecodeError> {
            match value {
                [a, b] => Ok(u16::from_be_bytes([*a, *b])),
                _ => Err(err(
                    at.saturating_sub(1),
                    DecodeErrorKind::BadFieldLength {
                        expected: 2,
                        found: value.len() as u8,
                    },
                )),
            }
        };
        let text = |bytes: &[u8]| {
            String::from_utf8(bytes.to_vec()).map_err(|_| err(at, DecodeErrorKind::InvalidUtf8))
        };
        Ok(match id {
            FLOOR_PRIORITY | MESSAGE_TYPE => {
                let [v, spare] = fixed2()?.to_be_bytes();
                if spare != 0 {
                    return Err(err(at + 1, DecodeErrorKind::NonZeroSpare(spare)));
                }
                if id == FLOOR_PRIORITY {
                    Self::FloorPriority(v)
                } else {
                    Self::MessageType(v)
                }
            }
            DURATION => Self::Duration(fixed2()?),
            MESSAGE_SEQUENCE_NUMBER => Self::SequenceNumber(fixed2()?),
            SOURCE => Self::Source(Source(fixed2()?)),
            FLOOR_INDICATOR => Self::FloorIndicator(FloorIndicator(fixed2()?)),
            PERMISSION_TO_REQUEST => match fixed2()? {
                0 => Self::PermissionToRequest(false),
                1 => Self::PermissionToRequest(true),
                v => return Err(err(at, DecodeErrorKind::InvalidValue(v.into()))),
            },
            REJECT_CAUSE => {
                let [a, b, phrase @ ..] = value else {
                    return Err(err(
                        at.saturating_sub(1),
                        DecodeErrorKind::BadFieldLength {
                            expected: 2,
                            found: value.len() as u8,
                        },
                    ));
                };
                let phrase = String::from_utf8(phrase.to_vec())
                    .map_err(|_| err(at + 2, DecodeErrorKind::InvalidUtf8))?;
                Self::RejectCause {
                    cause: RejectCause(u16::from_be_bytes([*a, *b])),
                    phrase,
                }
            }
            GRANTED_PARTY_IDENTITY => Self::GrantedPartyIdentity(text(value)?),
            USER_ID => Self::UserId(text(value)?),
            _ => Self::Unknown {
                id,
                value: value.to_vec(),
            },
        })
    }
}

/// The TS 24.380 name of field `id`.
fn field_name(id: u8) -> &'static str {
    use field_id::*;
    match id {
        FLOOR_PRIORITY => "Floor Priority",
        DURATION => "Duration",
        REJECT_CAUSE => "Reject Cause",
        GRANTED_PARTY_IDENTITY => "Granted Party's Identity",
        PERMISSION_TO_REQUEST => "Permission to Request the Floor",
        USER_ID => "User ID",
        MESSAGE_SEQUENCE_NUMBER => "Message Sequence Number",
        SOURCE => "Source",
        MESSAGE_TYPE => "Message Type",
        FLOOR_INDICATOR => "Floor Indicator",
        _ => "unknown field",
    }
}

/// Zero octets after a field of `value_len` octets, to the 32-bit boundary.
fn field_padding(value_len: usize) -> usize {
    (4 - (2 + value_len) % 4) % 4
}

/// One floor control message (one RTCP APP "MCPT" packet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message type (low 4 bits of the subtype).
    pub message_type: MessageType,
    /// The 0x10 subtype bit: the receiver must answer with a Floor Ack.
    pub ack_required: bool,
    /// SSRC of the sender.
    pub ssrc: u32,
    /// The fields in wire order.
    pub fields: Vec<Field>,
}

impl Message {
    /// A message without fields.
    pub fn new(message_type: MessageType, ssrc: u32) -> Self {
        Self {
            message_type,
            ack_required: false,
            ssrc,
            fields: Vec::new(),
        }
    }

    /// Appends a field.
    #[must_use]
    pub fn with(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    /// Sets the ack-required bit.
    #[must_use]
    pub fn with_ack_required(mut self, ack: bool) -> Self {
        self.ack_required = ack;
        self
    }

    /// The 5-bit APP subtype: message type plus the ack-required bit.
    pub fn subtype(&self) -> u8 {
        (self.message_type.code() & 0x0f) | if self.ack_required { ACK_REQUIRED } else { 0 }
    }

    /// The first field with ID `id`.
    pub fn field(&self, id: u8) -> Option<&Field> {
        self.fields.iter().find(|f| f.id() == id)
    }

    /// The Floor Priority field's value.
    pub fn floor_priority(&self) -> Option<u8> {
        self.fields.iter().find_map(|f| match f {
            Field::FloorPriority(v) => Some(*v),
            _ => None,
        })
    }

    /// The Duration field's value (seconds).
    pub fn duration(&self) -> Option<u16> {
        self.fields.iter().find_map(|f| match f {
            Field::Duration(v) => Some(*v),
            _ => None,
        })
    }

    /// The Reject Cause field: cause and phrase.
    pub fn reject_cause(&self) -> Option<(RejectCause, &str)> {
        self.fields.iter().find_map(|f| match f {
            Field::RejectCause { cause, phrase } => Some((*cause, phrase.as_str())),
            _ => None,
        })
    }

    /// The Granted Party's Identity field.
    pub fn granted_party(&self) -> Option<&str> {
        self.fields.iter().find_map(|f| match f {
            Field::GrantedPartyIdentity(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// The Permission to Request the Floor field.
    pub fn permission_to_request(&self) -> Option<bool> {
        self.fields.iter().find_map(|f| match f {
            Field::PermissionToRequest(v) => Some(*v),
            _ => None,
        })
    }

    /// The User ID field.
    pub fn user_id(&self) -> Option<&str> {
        self.fields.iter().find_map(|f| match f {
            Field::UserId(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// The Message Sequence Number field.
    pub fn sequence_number(&self) -> Option<u16> {
        self.fields.iter().find_map(|f| match f {
            Field::SequenceNumber(v) => Some(*v),
            _ => None,
        })
    }

    /// The Source field.
    pub fn source(&self) -> Option<Source> {
        self.fields.iter().find_map(|f| match f {
            Field::Source(v) => Some(*v),
            _ => None,
        })
    }

    /// The Message Type field (the acknowledged subtype, in a Floor Ack).
    pub fn acked_message_type(&self) -> Option<u8> {
        self.fields.iter().find_map(|f| match f {
            Field::MessageType(v) => Some(*v),
            _ => None,
        })
    }

    /// The Floor Indicator field.
    pub fn floor_indicator(&self) -> Option<FloorIndicator> {
        self.fields.iter().find_map(|f| match f {
            Field::FloorIndicator(v) => Some(*v),
            _ => None,
        })
    }

    /// Appends the packet to `out`. On error `out` is left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let MessageType::Unknown(v) = self.message_type {
            if v > 0x0f {
                return Err(EncodeError::MessageTypeOutOfRange(v));
            }
        }
        let start = out.len();
        let res = self.encode_inner(out, start);
        if res.is_err() {
            out.truncate(start);
        }
        res
    }

    fn encode_inner(&self, out: &mut Vec<u8>, start: usize) -> Result<(), EncodeError> {
        // Length 0xffff until patched: an interrupted encode never parses.
        out.extend_from_slice(&[0x80 | self.subtype(), PT_APP, 0xff, 0xff]);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&NAME);
        for f in &self.fields {
            if let Field::Unknown { id, .. } = f {
                if field_id::is_known(*id) {
                    return Err(EncodeError::KnownFieldId(*id));
                }
            }
            let at = out.len();
            out.extend_from_slice(&[f.id(), 0]);
            f.encode_value(out);
            let len = out.len() - at - 2;
            let Ok(len8) = u8::try_from(len) else {
                return Err(EncodeError::FieldTooLong {
                    field: f.name(),
                    len,
                });
            };
            out[at + 1] = len8;
            out.resize(out.len() + field_padding(len), 0);
        }
        let total = out.len() - start;
        let words = u16::try_from(total / 4 - 1).map_err(|_| EncodeError::PacketTooLong(total))?;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
        Ok(())
    }

    /// The packet as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Decodes a buffer holding exactly one RTCP APP "MCPT" packet.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (packet, end) = decode_one(buf, 0, true)?;
        if end != buf.len() {
            return Err(DecodeError {
                field: "packet",
                offset: end,
                kind: DecodeErrorKind::TrailingData(buf.len() - end),
            });
        }
        match packet {
            RtcpPacket::Floor(m) => Ok(m),
            RtcpPacket::Other(o) => Err(DecodeError {
                field: "RTCP header",
                offset: 0,
                kind: DecodeErrorKind::NotFloorControl {
                    packet_type: o.packet_type,
                    name: o.name,
                },
            }),
        }
    }
}

/// An RTCP packet in a compound buffer that is not floor control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherPacket {
    /// Offset of the packet in the buffer.
    pub offset: usize,
    /// RTCP packet type (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, ...).
    pub packet_type: u8,
    /// The 5-bit count / subtype field.
    pub count: u8,
    /// The APP name, for an APP packet that is not "MCPT".
    pub name: Option<[u8; 4]>,
    /// Length of the packet in octets (including header and padding).
    pub len: usize,
}

/// One packet of a compound RTCP buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RtcpPacket {
    /// An MCPTT floor control message.
    Floor(Message),
    /// Any other RTCP packet: reported, not decoded.
    Other(OtherPacket),
}

/// Decodes every RTCP packet of a (possibly compound) buffer (RFC 3550
/// 6.1): floor control messages are decoded, others reported as
/// [`RtcpPacket::Other`]. Any malformed packet fails the whole buffer.
pub fn decode_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, DecodeError> {
    if buf.is_empty() {
        return Err(DecodeError {
            field: "RTCP header",
            offset: 0,
            kind: DecodeErrorKind::Empty,
        });
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (p, end) = decode_one(buf, pos, false)?;
        out.push(p);
        pos = end;
    }
    Ok(out)
}

/// Decodes the packet at `pos`; returns it and the offset after it.
/// `single`: the packet need not be the last for padding purposes.
fn decode_one(buf: &[u8], pos: usize, single: bool) -> Result<(RtcpPacket, usize), DecodeError> {
    let rest = &buf[pos.min(buf.len())..];
    let err = |field, offset, kind| DecodeError {
        field,
        offset,
        kind,
    };
    let [b0, pt, l0, l1, ..] = *rest else {
        return Err(err(
            "RTCP header",
            pos,
            if rest.is_empty() {
                DecodeErrorKind::Empty
            } else {
                DecodeErrorKind::Truncated {
                    needed: 4,
                    available: rest.len(),
                }
            },
        ));
    };
    if b0 >> 6 != 2 {
        return Err(err("version", pos, DecodeErrorKind::BadVersion(b0 >> 6)));
    }
    let total = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
    if total > rest.len() {
        return Err(err(
            "length",
            pos + 2,
            DecodeErrorKind::LengthExceedsBuffer {
                declared: total,
                available: rest.len(),
            },
        ));
    }
    let packet = &rest[..total];
    let mut body_end = total;
    if b0 & 0x20 != 0 {
        if !single && pos + total != buf.len() {
            return Err(err("padding", pos, DecodeErrorKind::PaddingNotLast));
        }
        let count = packet[total - 1];
        if count == 0 || usize::from(count) > total - 4 {
            return Err(err(
                "padding",
                pos + total - 1,
                DecodeErrorKind::BadPaddingCount(count),
            ));
        }
        body_end = total - usize::from(count);
    }
    let count = b0 & 0x1f;
    if pt != PT_APP {
        let other = OtherPacket {
            offset: pos,
            packet_type: pt,
            count,
            name: None,
            len: total,
        };
        return Ok((RtcpPacket::Other(other), pos + total));
    }
    let [_, _, _, _, s0, s1, s2, s3, n0, n1, n2, n3, ..] = packet[..body_end] else {
        return Err(err(
            "APP header",
            pos,
            DecodeErrorKind::Truncated {
                needed: HEADER_LEN,
                available: body_end,
            },
        ));
    };
    let name = [n0, n1, n2, n3];
    if name != NAME {
        let other = OtherPacket {
            offset: pos,
            packet_type: pt,
            count,
            name: Some(name),
            len: total,
        };
        return Ok((RtcpPacket::Other(other), pos + total));
    }
    let fields = decode_fields(&packet[HEADER_LEN..body_end], pos + HEADER_LEN)?;
    let msg = Message {
        message_type: MessageType::from(count),
        ack_required: count & ACK_REQUIRED != 0,
        ssrc: u32::from_be_bytes([s0, s1, s2, s3]),
        fields,
    };
    Ok((RtcpPacket::Floor(msg), pos + total))
}

/// Decodes the fields of the application data `data`, which starts at
/// offset `base` of the buffer.
fn decode_fields(data: &[u8], base: usize) -> Result<Vec<Field>, DecodeError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let at = base + pos;
        let [id, len, ..] = data[pos..] else {
            return Err(DecodeError {
                field: "field header",
                offset: at,
                kind: DecodeErrorKind::Truncated {
                    needed: 2,
                    available: data.len() - pos,
                },
            });
        };
        let name = field_name(id);
        let len = usize::from(len);
        let value_at = pos + 2;
        let Some(value) = data.get(value_at..value_at + len) else {
            return Err(DecodeError {
                field: name,
                offset: base + value_at,
                kind: DecodeErrorKind::Truncated {
                    needed: len,
                    available: data.len() - value_at,
                },
            });
        };
        let pad_at = value_at + len;
        let pad = field_padding(len);
        let Some(padding) = data.get(pad_at..pad_at + pad) else {
            return Err(DecodeError {
                field: name,
                offset: base + pad_at,
                kind: DecodeErrorKind::Truncated {
                    needed: pad,
                    available: data.len() - pad_at,
                },
            });
        };
        if let Some(i) = padding.iter().position(|b| *b != 0) {
            return Err(DecodeError {
                field: name,
                offset: base + pad_at + i,
                kind: DecodeErrorKind::NonZeroPadding,
            });
        }
        if field_id::is_known(id) && fields.iter().any(|f| f.id() == id) {
            return Err(DecodeError {
                field: name,
                offset: at,
                kind: DecodeErrorKind::DuplicateField(id),
            });
        }
        fields.push(Field::decode(id, value, base + value_at)?);
        pos = pad_at + pad;
    }
    Ok(fields)
}
