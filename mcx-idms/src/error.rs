//! Typed errors of token validation, the IdMS endpoints and the client flow.

/// Why an access or ID token was refused (TS 33.180 B.6 token validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts, or a part does not decode.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// The JOSE header names another algorithm than ES256 (RFC 7518 3.4);
    /// `none` and HMAC algorithms are never accepted.
    #[error("token algorithm {0:?} is not accepted (ES256 only)")]
    UnsupportedAlgorithm(String),
    /// The ES256 signature does not verify under the IdMS key.
    #[error("token signature does not verify")]
    BadSignature,
    /// `iss` is not the trusted IdMS.
    #[error("token issuer {0:?} is not the trusted IdMS")]
    WrongIssuer(String),
    /// `aud` does not name this resource server's audience.
    #[error("token audience does not include {0:?}")]
    WrongAudience(String),
    /// `exp` has passed (beyond the leeway).
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`, Unix seconds.
        exp: u64,
        /// The verifier's time, Unix seconds.
        now: u64,
    },
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future ({iat}, now {now})")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// The verifier's time.
        now: u64,
    },
    /// A claim the profile requires is missing or mistyped.
    #[error("token claim {0} missing or invalid")]
    MissingClaim(&'static str),
    /// The token lacks the scope this resource server serves.
    #[error("token scope does not include {0:?}")]
    MissingScope(String),
}

/// An OAuth 2.0 error of the IdMS endpoints (RFC 6749 4.1.2.1 and 5.2):
/// the HTTP status and the `error` code it answers with, and a
/// description for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// HTTP status (400 or 401).
    pub status: u16,
    /// The RFC 6749 error code (`invalid_request`, `access_denied`,
    /// `invalid_grant`, `invalid_client`, `unsupported_response_type`,
    /// `unsupported_grant_type`, `invalid_scope`, `temporarily_unavailable`).
    pub code: &'static str,
    /// What was wrong.
    pub description: String,
}

impl OAuthError {
    pub(crate) fn new(status: u16, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }

    /// The JSON body of the error response (RFC 6749 5.2).
    pub fn to_json(&self) -> String {
        serde_json::json!({ "error": self.code, "error_description": self.description }).to_string()
    }
}

/// Why the client side of the flow failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The authorization response redirects elsewhere than our redirect URI.
    #[error("authorization response goes to {0:?}, not our redirect URI")]
    WrongRedirect(String),
    /// The `state` does not match the request's (RFC 6749 10.12).
    #[error("authorization response state does not match")]
    StateMismatch,
    /// The IdMS answered with an OAuth error.
    #[error("IdMS refused: {code}: {description}")]
    Refused {
        /// The `error` code.
        code: String,
        /// The `error_description`.
        description: String,
    },
    /// A response is not what the profile says.
    #[error("IdMS response malformed: {0}")]
    Malformed(String),
}
