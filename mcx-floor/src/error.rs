//! Errors: decoding ([`DecodeError`]), encoding ([`EncodeError`]) and the
//! state machines' refusals, gathered under [`Error`].

use crate::message::MessageType;

/// Where and why an RTCP buffer failed to decode.
///
/// `field` names the field being read (`"RTCP header"`, `"Floor Priority"`,
/// ...), and `offset` is the octet offset of that field from the start of
/// the buffer given to the decoder (also inside a compound packet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} at offset {offset}: {kind}")]
pub struct DecodeError {
    /// The field being decoded.
    pub field: &'static str,
    /// Octet offset of the field from the start of the buffer.
    pub offset: usize,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

/// The kinds of decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The buffer holds no packet at all.
    #[error("empty buffer")]
    Empty,
    /// The field needs more octets than are left.
    #[error("truncated: needs {needed} octets, {available} left")]
    Truncated {
        /// Octets the field needs.
        needed: usize,
        /// Octets left.
        available: usize,
    },
    /// RTCP version other than 2 (RFC 3550 6.4.1).
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// The RTCP length field claims more octets than the buffer holds.
    #[error("length claims {declared} octets, only {available} in the buffer")]
    LengthExceedsBuffer {
        /// Packet length in octets from the length field.
        declared: usize,
        /// Octets left in the buffer.
        available: usize,
    },
    /// The RTCP padding count is zero or larger than the packet body
    /// (RFC 3550 6.4.1).
    #[error("invalid RTCP padding count {0}")]
    BadPaddingCount(u8),
    /// The padding bit is set on a packet that is not the last one of a
    /// compound packet (RFC 3550 6.4.1: only the last may be padded).
    #[error("padding on a packet that is not the last of the compound packet")]
    PaddingNotLast,
    /// A single-packet decode found a packet other than an APP "MCPT" one.
    #[error("not an MCPTT floor control packet (PT {packet_type}, name {name:?})")]
    NotFloorControl {
        /// The RTCP packet type.
        packet_type: u8,
        /// The APP name, when the packet is an APP packet.
        name: Option<[u8; 4]>,
    },
    /// Octets are left over after the structure that must end here.
    #[error("{0} trailing octets")]
    TrailingData(usize),
    /// A field's length octet disagrees with the length TS 24.380 fixes
    /// for that field.
    #[error("length {found}, expected {expected}")]
    BadFieldLength {
        /// The length this field must have (or the minimum, for the
        /// Reject Cause field).
        expected: u8,
        /// The length found.
        found: u8,
    },
    /// A field's padding octets (to the 32-bit boundary) are not zero.
    #[error("non-zero padding octet")]
    NonZeroPadding,
    /// A spare octet is not zero.
    #[error("non-zero spare octet {0:#04x}")]
    NonZeroSpare(u8),
    /// A field holds a value the format does not allow.
    #[error("invalid value {0}")]
    InvalidValue(u64),
    /// A text field is not UTF-8.
    #[error("text is not UTF-8")]
    InvalidUtf8,
    /// A known field appears twice in one message.
    #[error("field {0} appears twice")]
    DuplicateField(u8),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field value is longer than its one-octet length allows (255).
    #[error("{field} value is {len} octets, at most 255 fit")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its value length.
        len: usize,
    },
    /// The packet is longer than the RTCP length field can express.
    #[error("packet of {0} octets is too long for RTCP")]
    PacketTooLong(usize),
    /// An unknown-field entry uses the ID of a field this crate decodes
    /// itself; use the typed variant instead.
    #[error("field ID {0} is a known field; use its typed variant")]
    KnownFieldId(u8),
    /// A message type code does not fit the 4 bits of the subtype.
    #[error("message type {0} does not fit in 4 bits")]
    MessageTypeOutOfRange(u8),
}

/// Everything the state machines can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The received buffer did not decode.
    #[error("decode error: {0}")]
    Decode(#[from] DecodeError),
    /// A message could not be encoded (identities longer than 255 octets).
    #[error("encode error: {0}")]
    Encode(#[from] EncodeError),
    /// A well-formed message that is not allowed in the current state or
    /// from this sender (TS 24.380 6.2/6.3 state tables).
    #[error("unexpected {got:?} in state {state}")]
    UnexpectedMessage {
        /// The message received.
        got: MessageType,
        /// The receiver's state when it arrived.
        state: &'static str,
    },
    /// An application command not allowed in the current state.
    #[error("{command} not allowed in state {state}")]
    InvalidCommand {
        /// The command.
        command: &'static str,
        /// The state.
        state: &'static str,
    },
    /// The floor control server said this participant may not request the
    /// floor (Permission to Request the Floor = 0, TS 24.380 8.2.3.10).
    #[error("not permitted to request the floor")]
    NotPermitted,
    /// The participant handle is not known to the arbitrator.
    #[error("unknown participant {0}")]
    UnknownParticipant(usize),
}
