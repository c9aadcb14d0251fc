//! The one error type of this crate.

use core::fmt;

/// Everything that can go wrong in identity-based crypto.
///
/// Decoding errors name what was wrong; cryptographic failures
/// ([`Error::SignatureInvalid`], [`Error::DecapsulationFailed`],
/// [`Error::KeyValidationFailed`]) deliberately say nothing about which
/// internal check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An encoded value had the wrong length.
    InvalidLength {
        /// What was being decoded, e.g. "ECCSI signature".
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A point did not start with the 0x04 (uncompressed) octet.
    InvalidPointEncoding(&'static str),
    /// A point's coordinates are not below the field prime, or the point is
    /// not on the curve.
    PointNotOnCurve(&'static str),
    /// A point was the point at infinity where a proper point is required.
    PointAtInfinity(&'static str),
    /// A point is on the curve but not in the prime-order subgroup.
    PointNotInSubgroup(&'static str),
    /// A scalar was zero or not below the group order.
    ScalarOutOfRange(&'static str),
    /// An ECCSI signature did not verify.
    SignatureInvalid,
    /// SAKKE decapsulation failed: the encapsulated data was not made for
    /// this receiver's key, or was altered.
    DecapsulationFailed,
    /// A key issued by a KMS (SSK/PVT or RSK) did not validate against the
    /// KMS public key for the identity.
    KeyValidationFailed(&'static str),
    /// A parameter was outside what the algorithm allows (e.g. a zero key
    /// period length).
    InvalidParameter(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidLength {
                what,
                expected,
                actual,
            } => write!(f, "{what}: expected {expected} octets, got {actual}"),
            Self::InvalidPointEncoding(what) => {
                write!(
                    f,
                    "{what}: not an uncompressed point (must start with 0x04)"
                )
            }
            Self::PointNotOnCurve(what) => write!(f, "{what}: point is not on the curve"),
            Self::PointAtInfinity(what) => write!(f, "{what}: point at infinity is not allowed"),
            Self::PointNotInSubgroup(what) => {
                write!(f, "{what}: point is not in the prime-order subgroup")
            }
            Self::ScalarOutOfRange(what) => {
                write!(f, "{what}: scalar is zero or not below the group order")
            }
            Self::SignatureInvalid => f.write_str("ECCSI signature is invalid"),
            Self::DecapsulationFailed => f.write_str("SAKKE decapsulation failed"),
            Self::KeyValidationFailed(what) => {
                write!(f, "{what} does not validate against the KMS public key")
            }
            Self::InvalidParameter(what) => write!(f, "invalid parameter: {what}"),
        }
    }
}

impl std::error::Error for Error {}
