//! The error type of the roles.

/// Why a role refused an input or a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A SIP message did not parse.
    #[error("SIP parse: {0}")]
    SipParse(#[from] mcx_sip::ParseError),
    /// A SIP message could not be built.
    #[error("SIP build: {0}")]
    SipBuild(#[from] mcx_sip::BuildError),
    /// The SIP transaction layer refused a message (e.g. a response
    /// that answers no live request).
    #[error("SIP transaction: {0}")]
    Transaction(#[from] mcx_sip::TxError),
    /// A multipart body was malformed.
    #[error("multipart: {0}")]
    Multipart(#[from] mcx_sip::MultipartError),
    /// MIKEY failed (decode, a rejected check, or wrapping).
    #[error("MIKEY: {0}")]
    Mikey(#[from] mcx_mikey::Error),
    /// Identity-based crypto failed (key validation).
    #[error("identity-based crypto: {0}")]
    Ibc(#[from] mcx_ibc::Error),
    /// Floor control failed.
    #[error("floor control: {0}")]
    Floor(#[from] mcx_floor::Error),
    /// A floor control message could not be encoded.
    #[error("floor control encode: {0}")]
    FloorEncode(#[from] mcx_floor::EncodeError),
    /// The MCPTT info body was malformed.
    #[error("mcptt-info: {0}")]
    Info(&'static str),
    /// The call result body was malformed.
    #[error("call result body: {0}")]
    CallResult(&'static str),
    /// A limit of this role was reached (open calls, concurrent calls).
    #[error("limit reached: {0}")]
    Limit(&'static str),
    /// A required part of a message is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A message arrived that this role does not expect now.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// A command is not valid in the current state.
    #[error("invalid command: {0}")]
    InvalidCommand(&'static str),
    /// A group's GMK cannot be used (none held, expired, not yet
    /// active).
    #[error("GMK: {0}")]
    Gmk(#[from] crate::GmkError),
    /// The client holds no KMS keys for this key period (fetch them
    /// before the period starts: `Client::next_key_refresh`).
    #[error("no KMS keys for key period {0}")]
    NoKeysForPeriod(u64),
    /// KMS keys given to a role are not its own.
    #[error("KMS keys are not this user's: {0}")]
    ForeignKeys(&'static str),
    /// A group or user is not known to this role.
    #[error("unknown: {0}")]
    Unknown(String),
}
