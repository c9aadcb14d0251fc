//! The errors of the KMS service, the Annex D codec and the client.

use thiserror::Error;

/// Everything that can go wrong in this crate.
///
/// Errors name what was wrong (an element, a URI, a check) but never carry
/// key material: a key that fails validation is reported only by the name
/// of the check.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KmsError {
    /// An Annex D document was malformed, incomplete or too large.
    #[error("KMS XML: {0}")]
    Xml(#[from] XmlError),
    /// The identity-based crypto refused a value (a point not on the curve,
    /// a zero key period length, ...).
    #[error("identity-based crypto: {0}")]
    Crypto(#[from] mcx_ibc::Error),
    /// The store (SQLite or PostgreSQL) failed.
    #[error("KMS database: {0}")]
    Database(String),
    /// The store key is missing, malformed or not the store's, or a sealed
    /// value does not open.
    #[error(transparent)]
    StoreKey(#[from] crate::StoreKeyError),
    /// The configuration cannot be used (empty URI, duplicate user, a stored
    /// community that differs from the configuration, ...).
    #[error("invalid KMS configuration: {0}")]
    Config(String),
    /// A value in a response is not the one the client expects (another
    /// KMS, another user, a UID that does not belong to the user).
    #[error("{what} mismatch: expected {expected:?}, got {actual:?}")]
    Mismatch {
        /// What was compared, e.g. "KmsKeySet UserUri".
        what: &'static str,
        /// The value the client expected.
        expected: String,
        /// The value in the document.
        actual: String,
    },
    /// The KMS marked the certificate or key set as revoked.
    #[error("{0} is revoked")]
    Revoked(&'static str),
    /// The response carries no key set for the key period the client needs.
    #[error("the response has no key set for key period {0}")]
    NoKeySetForPeriod(u64),
    /// Issued keys do not validate against the community public keys
    /// (RFC 6507 5.1.2 for the SSK/PVT, RFC 6508 6.1.2 for the RSK).
    #[error("{0} does not validate against the KMS public keys")]
    KeyValidation(&'static str),
    /// The document uses a feature this crate does not implement (the TrK
    /// security extension, another UserIdFormat or SAKKE parameter set).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

impl From<rusqlite::Error> for KmsError {
    #[inline]
    fn from(e: rusqlite::Error) -> Self {
        // rusqlite errors name the failing statement or constraint; every
        // statement here binds its values as parameters, so no key material
        // can appear in the text.
        Self::Database(e.to_string())
    }
}

impl From<crate::at_rest::StoreOpenError> for KmsError {
    #[inline]
    fn from(e: crate::at_rest::StoreOpenError) -> Self {
        use crate::at_rest::StoreOpenError;
        match e {
            StoreOpenError::Key(e) => Self::StoreKey(e),
            StoreOpenError::Sqlite(e) => e.into(),
            other => Self::Database(other.to_string()),
        }
    }
}

/// A TS 33.180 Annex D document could not be read.
///
/// Every variant names the element that was wrong or missing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The document is larger than [`crate::xml::MAX_DOCUMENT_LEN`].
    #[error("document is {actual} octets, more than the limit of {limit}")]
    TooLarge {
        /// The limit in octets.
        limit: usize,
        /// The size of the document.
        actual: usize,
    },
    /// The document is empty.
    #[error("document is empty")]
    Empty,
    /// The document is not UTF-8.
    #[error("document is not UTF-8")]
    NotUtf8,
    /// The document is not well-formed XML.
    #[error("XML is not well-formed: {0}")]
    Syntax(String),
    /// The document ends inside an element.
    #[error("document is truncated inside <{0}>")]
    Truncated(String),
    /// The document has a DTD (`<!DOCTYPE ...>`), which is refused so that
    /// no entity is ever expanded.
    #[error("document type declarations are not accepted")]
    DocType,
    /// A structural limit (depth, number of elements, text length) was hit.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The root element is not the one expected.
    #[error("root element is <{actual}>, expected <{expected}>")]
    WrongRoot {
        /// The root element expected.
        expected: &'static str,
        /// The root element found.
        actual: String,
    },
    /// The root element is not in the `urn:3gpp:ns:mcsecKMSInterface:1.0`
    /// namespace.
    #[error("<{0}> is not in namespace urn:3gpp:ns:mcsecKMSInterface:1.0")]
    WrongNamespace(String),
    /// A required element is absent (or not where the schema's sequence
    /// puts it).
    #[error("<{parent}> lacks <{element}> (or it is out of order)")]
    Missing {
        /// The element that should contain it.
        parent: &'static str,
        /// The element that is missing.
        element: &'static str,
    },
    /// An element of the KMS namespace that the schema does not allow there.
    #[error("unexpected <{element}> in <{parent}>")]
    Unexpected {
        /// The element that contains it.
        parent: &'static str,
        /// The element found.
        element: String,
    },
    /// The security extension refused the document (TS 33.180 D.1: a
    /// missing or bad signature, an unencrypted or undecryptable key).
    #[error("KMS security extension: {0}")]
    SecExt(#[from] crate::secext::SecExtError),
    /// An element's content is not a valid value of its type.
    #[error("<{element}> is invalid: {reason}")]
    InvalidValue {
        /// The element.
        element: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}
