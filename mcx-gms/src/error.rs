//! Errors: [`GmsError`] for the service and client, [`DocError`] for the
//! group and index documents (what is wrong and where).

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GmsError {
    /// The configuration is unusable (names the field and why).
    #[error("invalid GMS configuration: {0}")]
    Config(String),
    /// The state (SQLite or PostgreSQL) could not be opened, read or
    /// written.
    #[error("GMS storage: {0}")]
    Storage(String),
    /// The stored state is not what this version writes.
    #[error("GMS storage is not usable: {0}")]
    StorageFormat(&'static str),
    /// The store key is missing, malformed or not the store's, or a sealed
    /// GMK does not open.
    #[error(transparent)]
    StoreKey(#[from] mcx_kms::StoreKeyError),
    /// A group or index document is malformed.
    #[error("invalid document: {0}")]
    Doc(#[from] DocError),
    /// The GMS's own KMS keys are unusable (not issued by this KMS for
    /// the GMS URI).
    #[error("GMS keys: {0}")]
    Keys(#[from] mcx_ibc::Error),
    /// A GMK I_MESSAGE could not be built.
    #[error("GMK message: {0}")]
    Mikey(#[from] mcx_mikey::Error),
    /// A command named a group that is not configured.
    #[error("no group {0}")]
    UnknownGroup(String),
    /// A command named a user who is not a member of the group.
    #[error("{member} is not a member of {group_id}")]
    NotAMember {
        /// The group.
        group_id: String,
        /// The user.
        member: String,
    },
    /// The GMS answered with an error status (client side).
    #[error("GMS answered {status}: {reason}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The reason body (truncated, lossy UTF-8).
        reason: String,
    },
}

impl From<mcx_kms::at_rest::StoreOpenError> for GmsError {
    #[inline]
    fn from(e: mcx_kms::at_rest::StoreOpenError) -> Self {
        use mcx_kms::at_rest::StoreOpenError;
        match e {
            StoreOpenError::Key(e) => Self::StoreKey(e),
            StoreOpenError::Sqlite(e) => e.into(),
            other => Self::Storage(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for GmsError {
    #[inline]
    fn from(e: rusqlite::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

/// A malformed group document or group index (TS 24.481 7.2; RFC 4826).
///
/// Every variant names what is wrong; none carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The document exceeds a size limit.
    #[error("document too large: {len} octets, at most {max}")]
    TooLarge {
        /// Octets received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not UTF-8 (or declares another encoding).
    #[error("document is not UTF-8")]
    NotUtf8,
    /// The XML is not well formed.
    #[error("malformed XML at octet {position}: {reason}")]
    Xml {
        /// Octet offset where the parser stopped.
        position: u64,
        /// The parser's description.
        reason: String,
    },
    /// A DOCTYPE (and so entity declarations) is present: never accepted.
    #[error("DOCTYPE is not allowed")]
    DoctypeNotAllowed,
    /// An entity reference other than the five predefined ones.
    #[error("unknown entity reference &{0};")]
    UnknownEntity(String),
    /// A namespace prefix that is not declared.
    #[error("undeclared namespace prefix {0:?}")]
    UnknownPrefix(String),
    /// Elements are nested too deeply.
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
    /// Too many elements, members, GKTPs or groups.
    #[error("too many {what}: more than {max}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// No root element, or content after it.
    #[error("document must have exactly one root element")]
    NotOneRoot,
    /// The root element is not the expected one.
    #[error("root element is {{{namespace}}}{got}, expected {expected}")]
    UnexpectedRoot {
        /// The expected `{namespace}name`.
        expected: &'static str,
        /// The namespace found (empty if none).
        namespace: String,
        /// The local name found.
        got: String,
    },
    /// A required element is missing.
    #[error("missing element <{0}>")]
    MissingElement(&'static str),
    /// An element that may occur once occurs more often.
    #[error("element <{0}> occurs more than once")]
    DuplicateElement(&'static str),
    /// A required attribute is missing.
    #[error("<{element}> has no {attribute} attribute")]
    MissingAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
    /// A URI attribute is empty, too long or not a URI.
    #[error("<{element}> has an invalid URI: {reason}")]
    InvalidUri {
        /// The element.
        element: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A text value is too long or holds control characters.
    #[error("<{element}> has an invalid value: {reason}")]
    InvalidText {
        /// The element.
        element: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The same URI is listed twice.
    #[error("<{element}> lists {uri} more than once")]
    DuplicateUri {
        /// The element.
        element: &'static str,
        /// The repeated URI.
        uri: String,
    },
    /// A GKTP is not valid hexBinary (the I_MESSAGE itself is not parsed
    /// here).
    #[error("GKTP #{index} is not valid hexBinary: {reason}")]
    InvalidHex {
        /// Position of the GKTP in the document (0-based).
        index: usize,
        /// Why.
        reason: &'static str,
    },
    /// An `activationtime` is not an `xs:dateTime` this crate accepts.
    #[error("invalid dateTime {value:?}: {reason}")]
    InvalidDateTime {
        /// The value (as sent, truncated).
        value: String,
        /// Why.
        reason: &'static str,
    },
}
