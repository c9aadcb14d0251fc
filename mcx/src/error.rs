//! The binary's error type: every failure names what was wrong (a flag, a
//! file, a field of a file) and prints as one line.

use std::io;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A value (a flag, or a field of a file) was refused by `mcx_ibc`
    /// while decoding or validating it.
    #[error("{}: {source}", named(what))]
    Value {
        /// The flag or `FILE: field` the value came from.
        what: String,
        /// Why `mcx_ibc` refused it.
        source: mcx_ibc::Error,
    },
    /// A cryptographic operation failed on well-formed input (invalid
    /// signature, failed decapsulation).
    #[error("{0}")]
    Crypto(#[from] mcx_ibc::Error),
    /// A value was not valid hex.
    #[error("{}: {}", named(what), describe_hex(source, *offset))]
    Hex {
        /// The flag or `FILE: field` the value came from.
        what: String,
        /// The decoding error.
        source: hex::FromHexError,
        /// Characters skipped before the digits (a `0x` prefix), added to
        /// the reported position.
        offset: usize,
    },
    /// A value decoded but does not fit (wrong length, inconsistent with
    /// another value).
    #[error("{}: {detail}", named(what))]
    Invalid {
        /// The flag or `FILE: field` the value came from.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file (`<stdin>` for `-`).
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A file or stdout could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file (`<stdout>` for standard output).
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// An output file exists and `--force` was not given.
    #[error("{path}: already exists (use --force to overwrite)")]
    Exists {
        /// The file.
        path: String,
    },
    /// A file is not the JSON expected.
    #[error("{path}: {source}")]
    Json {
        /// The file (`<stdin>` for `-`).
        path: String,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// The operating system's random number generator failed.
    #[error("operating system RNG: {0}")]
    Rng(getrandom::Error),
    /// The system clock is unusable (before 1970).
    #[error("system clock is before 1970-01-01; pass --at or --period-no")]
    Clock,
    /// A topology file is invalid.
    #[error("{path}: {detail}")]
    Topology {
        /// The file (`<default topology>` for the embedded one).
        path: String,
        /// What is wrong, naming the entry.
        detail: String,
    },
    /// A role could not start, or the call could not be made.
    #[error("{0}")]
    System(String),
    /// `mcx demo` or `mcx call` found failures (already reported on stdout).
    #[error("{failed} checks failed")]
    DemoFailed {
        /// Checks that failed.
        failed: usize,
    },
    /// `mcx selfcheck` found failures (already reported on stdout).
    #[error("selfcheck: {failed} of {total} checks failed")]
    SelfcheckFailed {
        /// Checks that failed.
        failed: usize,
        /// Checks run.
        total: usize,
    },
}

impl CliError {
    /// A value that `mcx_ibc` refused, named by `what`.
    pub(crate) fn value(what: impl Into<String>, source: mcx_ibc::Error) -> Self {
        Self::Value {
            what: what.into(),
            source,
        }
    }

    /// A value that is wrong for a reason of the binary's own.
    pub(crate) fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// What an error is about, never empty: an error line never starts
/// "error: : ..." whatever a caller passed (a key file built in memory
/// has no file name).
fn named(what: &str) -> &str {
    if what.trim().is_empty() {
        "input"
    } else {
        what
    }
}

/// One line about a hex decoding error; positions count characters from 0
/// after surrounding whitespace is removed.
fn describe_hex(err: &hex::FromHexError, offset: usize) -> String {
    match err {
        hex::FromHexError::InvalidHexCharacter { c, index } => {
            format!("invalid hex character {c:?} at position {}", index + offset)
        }
        hex::FromHexError::OddLength => "invalid hex: odd number of digits".to_owned(),
        hex::FromHexError::InvalidStringLength => "invalid hex: wrong length".to_owned(),
    }
}
