//! Errors: decoding (`DecodeError`), encoding, and the rejections of the
//! GMK, CSK and TGMK procedures (`Rejection`), gathered under [`Error`].

use core::fmt;

/// Where and why a MIKEY message failed to decode.
///
/// `payload` names the payload being read (`"HDR"`, `"SAKKE"`, ...),
/// `field` the field inside it, and `offset` is the octet offset of that
/// field from the start of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{payload} {field} at offset {offset}: {kind}")]
pub struct DecodeError {
    /// The payload being decoded, e.g. `"HDR"` or `"KEMAC"`.
    pub payload: &'static str,
    /// The field inside the payload, e.g. `"SAKKE data"`.
    pub field: &'static str,
    /// Octet offset of the field from the start of the message.
    pub offset: usize,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

/// The kinds of decoding failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The field needs more octets than are left.
    Truncated {
        /// Octets the field needs.
        needed: usize,
        /// Octets left.
        available: usize,
    },
    /// Octets are left over after a structure that must end here (after the
    /// last payload, after SIGN, inside a length-delimited field).
    TrailingData(usize),
    /// MIKEY version other than 1 (RFC 3830 6.1).
    UnsupportedVersion(u8),
    /// A next-payload value this decoder cannot parse (its length is unknown).
    UnknownPayload(u8),
    /// A CS ID map type whose map info this decoder cannot parse.
    UnsupportedMapType(u8),
    /// A time stamp type whose length is unknown (RFC 3830 6.6).
    UnknownTimestampType(u8),
    /// A KEMAC MAC algorithm whose MAC length is unknown (RFC 3830 6.2).
    UnknownMacAlgorithm(u8),
    /// A key data type whose layout (salt present or not) is unknown.
    UnknownKeyDataType(u8),
    /// A key validity type whose layout is unknown (RFC 3830 6.13).
    UnknownKeyValidity(u8),
    /// A count field disagrees with the data (e.g. #CS, number of group IDs).
    CountMismatch {
        /// The count the field gives.
        declared: usize,
        /// The count found.
        found: usize,
    },
    /// A field holds a value the format does not allow.
    InvalidValue(u64),
    /// The input is empty.
    Empty,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, available } => {
                write!(f, "truncated: needs {needed} octets, {available} left")
            }
            Self::TrailingData(n) => write!(f, "{n} unexpected trailing octets"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported MIKEY version {v}"),
            Self::UnknownPayload(t) => write!(f, "unknown payload type {t}"),
            Self::UnsupportedMapType(t) => write!(f, "unsupported CS ID map type {t}"),
            Self::UnknownTimestampType(t) => write!(f, "unknown time stamp type {t}"),
            Self::UnknownMacAlgorithm(t) => write!(f, "unknown MAC algorithm {t}"),
            Self::UnknownKeyDataType(t) => write!(f, "unknown key data type {t}"),
            Self::UnknownKeyValidity(t) => write!(f, "unknown key validity type {t}"),
            Self::CountMismatch { declared, found } => {
                write!(f, "count says {declared}, found {found}")
            }
            Self::InvalidValue(v) => write!(f, "invalid value {v}"),
            Self::Empty => f.write_str("empty input"),
        }
    }
}

/// A message or field could not be encoded: a value is too long for its
/// length field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {0}: too long for its length field")]
pub struct EncodeError(pub &'static str);

/// Which identity payload a rejection is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityRole {
    /// The initiator (IDRi or IDRuidi).
    Initiator,
    /// The responder (IDRr or IDRuidr).
    Responder,
    /// The initiator's KMS (IDRkmsi).
    InitiatorKms,
    /// The responder's KMS (IDRkmsr).
    ResponderKms,
}

impl fmt::Display for IdentityRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Initiator => "initiator",
            Self::Responder => "responder",
            Self::InitiatorKms => "initiator's KMS",
            Self::ResponderKms => "responder's KMS",
        })
    }
}

/// A well-formed message that a receiver must not accept. Each check of
/// TS 33.180 and of the wrapped-TGMK format has its own variant.
///
/// Cryptographic failures ([`Rejection::SignatureInvalid`],
/// [`Rejection::DecapsulationFailed`], [`Rejection::MacInvalid`],
/// [`Rejection::KeyParametersInvalid`]) say nothing about which internal
/// step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The HDR data type is not the one this procedure expects.
    #[error("unexpected data type {got} (expected {expected})")]
    UnexpectedDataType {
        /// The data type expected.
        expected: u8,
        /// The data type received.
        got: u8,
    },
    /// The HDR PRF is not PRF-HMAC-SHA-256.
    #[error("unsupported PRF function {0}")]
    UnsupportedPrf(u8),
    /// A payload the procedure requires is missing.
    #[error("missing {0} payload")]
    MissingPayload(&'static str),
    /// A payload appears that the procedure does not allow (or twice).
    #[error("unexpected {0} payload")]
    UnexpectedPayload(&'static str),
    /// A payload has a value the procedure does not allow.
    #[error("unsupported {what}: {value}")]
    Unsupported {
        /// What is unsupported.
        what: &'static str,
        /// The value received.
        value: u64,
    },
    /// The message is not signed.
    #[error("message is not signed")]
    NotSigned,
    /// The ECCSI signature does not verify for the named initiator.
    #[error("signature is invalid")]
    SignatureInvalid,
    /// An IDR names a KMS other than the one trusted.
    #[error("{role} is not the trusted KMS")]
    WrongKms {
        /// Which KMS payload.
        role: IdentityRole,
    },
    /// The initiator is not the one expected (e.g. not the GMS).
    #[error("initiator is not the expected one")]
    WrongInitiator,
    /// The responder is not this receiver (or not the group it belongs to).
    #[error("responder is not this receiver")]
    WrongResponder,
    /// The time stamp is outside the replay window around now.
    #[error("time stamp {t_unix} is outside the replay window ({window_secs} s around {now_unix})")]
    TimestampOutsideWindow {
        /// The message's time, Unix seconds.
        t_unix: i64,
        /// The receiver's time, Unix seconds.
        now_unix: u64,
        /// The window's half-width in seconds.
        window_secs: u64,
    },
    /// The same (T, RAND) was accepted before.
    #[error("replayed message (time stamp and RAND seen before)")]
    Replayed,
    /// The message is older than the replay window and its signed
    /// lifetime is longer than the receiver accepts.
    #[error("signed lifetime of {lifetime_secs} s is longer than the {max_secs} s accepted")]
    LifetimeTooLong {
        /// From T to the expiry, seconds.
        lifetime_secs: i64,
        /// The longest accepted, seconds.
        max_secs: u64,
    },
    /// The replay cache is full of unexpired entries; refusing rather than
    /// forgetting.
    #[error("replay cache is full")]
    ReplayCacheFull,
    /// The message's time stamp falls in a key period other than the one
    /// the receiver's keys are for.
    #[error("message is for key period {message}, receiver keys are for {receiver}")]
    KeyPeriodMismatch {
        /// Key period of the message's time stamp.
        message: u64,
        /// Key period of the receiver's keys.
        receiver: u64,
    },
    /// SAKKE decapsulation failed.
    #[error("SAKKE decapsulation failed")]
    DecapsulationFailed,
    /// The key ID's purpose tag is not the one expected.
    #[error("key ID {id:08x} has purpose tag {got}, expected {expected}")]
    WrongPurpose {
        /// The key ID.
        id: u32,
        /// The purpose tag expected.
        expected: u8,
        /// The purpose tag found.
        got: u8,
    },
    /// GUK-ID, GMK-ID and SPI disagree (TS 33.180 F.1.3, E.1.2).
    #[error("GUK-ID does not match the GMK-ID carried in the SPI")]
    GukIdMismatch,
    /// The crypto session of the CS ID map does not name the key the
    /// message carries (its SPI is not the key ID in the CSB ID).
    #[error("SPI of the crypto session is not the key ID")]
    SpiMismatch,
    /// The key parameters (E.6) failed to authenticate or to parse.
    #[error("key parameters are invalid")]
    KeyParametersInvalid,
    /// The key parameters contradict the rest of the message.
    #[error("key parameters disagree with the message: {0}")]
    KeyParametersMismatch(&'static str),
    /// The key's expiry time has passed.
    #[error("key expired at {expiry}")]
    KeyExpired {
        /// The expiry time, as carried.
        expiry: u64,
    },
    /// The wrapped-TGMK format version is not supported.
    #[error("unsupported wrapped-TGMK format version {0}")]
    UnsupportedFormatVersion(u32),
    /// No GMK with this GMK-ID is known to the receiver.
    #[error("unknown GMK-ID {0:08x}")]
    UnknownGmkId(u32),
    /// The constituent group is not one the receiver belongs to (or the GMK
    /// named is not that group's).
    #[error("not a member of the constituent group")]
    NotAMember,
    /// The GMK's key parameters (E.6) do not name the group it was
    /// offered for (TS 33.180 5.7.1: a GMK is for the MC group IDs of its
    /// key parameters), or name no group at all.
    #[error("GMK is not for group {group_id}: its key parameters do not name it")]
    GroupNotNamed {
        /// The group the GMK was offered for.
        group_id: String,
    },
    /// The KEMAC MAC does not verify.
    #[error("MAC is invalid")]
    MacInvalid,
    /// The decrypted key data is malformed.
    #[error("key data is malformed: {0}")]
    KeyDataInvalid(&'static str),
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message is malformed.
    #[error("invalid MIKEY message: {0}")]
    Decode(#[from] DecodeError),
    /// A value does not fit its field.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The message is well formed but must not be accepted.
    #[error("MIKEY message rejected: {0}")]
    Rejected(#[from] Rejection),
    /// An identity-based crypto operation failed (e.g. a bad key or ID).
    #[error("identity-based crypto: {0}")]
    Ibc(#[from] mcx_ibc::Error),
    /// A parameter given to this crate is invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
}
