//! Typed errors (STYLE.md section 3): one enum per layer, one doc line per variant.

/// Why bytes could not be read as a SIP message (framing, start line or a header).
///
/// For a TCP connection any of these means the stream is out of sync: close it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input holds nothing but CRLF keep-alives (or nothing at all).
    #[error("empty message")]
    Empty,
    /// The message (or the announced message) is larger than `Limits::max_message`.
    #[error("message larger than {limit} octets")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// More header lines than `Limits::max_headers`.
    #[error("more than {limit} header lines")]
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// A header line is longer than `Limits::max_line`.
    #[error("header line {line} longer than the limit")]
    LineTooLong {
        /// 0 is the start line.
        line: usize,
    },
    /// No empty line (CRLF CRLF) ends the message head.
    #[error("message head not terminated by CRLF CRLF")]
    IncompleteHead,
    /// The message head is not UTF-8.
    #[error("message head is not UTF-8")]
    NonUtf8Head,
    /// A control character (NUL, bare CR or LF) in the message head.
    #[error("control character in header line {line}")]
    ControlChar {
        /// 0 is the start line.
        line: usize,
    },
    /// The request or status line is malformed (RFC 3261 7.1, 7.2).
    #[error("malformed start line")]
    StartLine,
    /// A header line has no name or no colon (RFC 3261 7.3).
    #[error("malformed header line {line}")]
    HeaderLine {
        /// 1 is the first header after the start line.
        line: usize,
    },
    /// Content-Length is missing (TCP), not a decimal number, or given twice with different values.
    #[error("missing or malformed Content-Length")]
    ContentLength,
    /// Fewer body octets than Content-Length announces (RFC 3261 18.3).
    #[error("body shorter than Content-Length")]
    BodyTruncated,
    /// A header every request or response must carry is absent (RFC 3261 8.1.1).
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A header is present but its value does not parse.
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    /// The CSeq method differs from the request method (RFC 3261 8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
}

/// Why a message could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A CR, LF or NUL (header injection) in the named field.
    #[error("illegal control character in {0}")]
    IllegalChar(&'static str),
    /// A header name that is not an RFC 3261 token.
    #[error("header name is not a token")]
    BadHeaderName,
    /// A field that must not be empty is empty.
    #[error("empty {0}")]
    Empty(&'static str),
    /// A field the builder needs was not set.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field has the wrong form (for example a Request-URI without a scheme).
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Why a multipart body could not be parsed or built (RFC 2046 5.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MultipartError {
    /// The Content-Type is not `multipart/*`.
    #[error("content type is not multipart")]
    NotMultipart,
    /// The Content-Type has no usable `boundary` parameter (1 to 70 characters of RFC 2046 bchars).
    #[error("missing or malformed boundary parameter")]
    Boundary,
    /// No opening delimiter line was found.
    #[error("no opening boundary delimiter")]
    NoOpeningDelimiter,
    /// The body does not end with the close delimiter `--boundary--`.
    #[error("missing close delimiter")]
    NoCloseDelimiter,
    /// A delimiter line is followed by something other than CRLF or `--`.
    #[error("malformed delimiter line")]
    Delimiter,
    /// The headers of part `index` are malformed (not UTF-8, no colon, no CRLF CRLF).
    #[error("malformed headers in part {index}")]
    PartHeaders {
        /// Zero-based part index.
        index: usize,
    },
    /// There are no body parts.
    #[error("multipart body has no parts")]
    NoParts,
    /// Building: a part header value contains CR, LF or NUL.
    #[error("illegal control character in a part header")]
    IllegalChar,
    /// Building: the given boundary occurs inside a part.
    #[error("boundary occurs inside a part")]
    BoundaryInBody,
}

/// Why the transaction layer refused a command from the TU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// No live transaction has this key.
    #[error("no such transaction")]
    NoTransaction,
    /// The transaction is in a state where this command is not allowed (e.g. a second final response).
    #[error("command not allowed in the transaction state")]
    InvalidState,
    /// The request lacks what a transaction needs (top Via with a branch, CSeq).
    #[error("request cannot start a transaction: {0}")]
    BadRequest(ParseError),
    /// ACK never starts a client transaction (RFC 3261 17.1).
    #[error("ACK does not create a client transaction")]
    AckTransaction,
    /// A response code outside 100..=699.
    #[error("status code out of range")]
    BadStatus,
}
