//! Identity management for MC services as TS 33.180 Annex B profiles
//! OpenID Connect, sans-IO.
//!
//! - [`server::Idms`]: the IdMS. Its authorization endpoint authenticates
//!   a user (HTTP Basic) and returns a one-time code bound to the client's
//!   PKCE challenge (RFC 7636 S256); its token endpoint exchanges the code
//!   and verifier for an access token and an ID token.
//! - [`jwt`]: tokens are JWTs signed with ES256 (RFC 7515/7518) carrying
//!   `iss`, `sub`, `aud`, `exp`, `iat`, `client_id`, `scope` and the user's
//!   `mcptt_id`; [`jwt::TokenVerifier`] is what a resource server (KMS,
//!   GMS, MC servers) checks them with, taking the identity from the token.
//! - [`flow::AuthFlow`]: the client side of the flow.
//!
//! No I/O and no clock: times come in as Unix seconds, randomness as a
//! [`rand_core::CryptoRng`].
//!
//! # Non-features
//! - No refresh tokens (B.5): a client runs the flow again before its
//!   access token expires; tokens are short-lived (10 minutes default).
//! - No consent step, no web or browser-based clients (B.4.1 defines only
//!   native clients).
//! - One signing key; no key rotation or JWKS endpoint: resource servers
//!   are given the IdMS's public key in their configuration.
#![forbid(unsafe_code)]

mod error;
pub mod flow;
pub mod jwt;
pub mod pkce;
pub mod server;

pub use error::{FlowError, OAuthError, TokenError};

/// The OpenID Connect scope every request carries.
pub const SCOPE_OPENID: &str = "openid";
/// Scope of the MCPTT service (MC servers and the registrar).
pub const SCOPE_PTT: &str = "3gpp:mc:ptt_service";
/// Scope of the key management server.
pub const SCOPE_KMS: &str = "3gpp:mc:ptt_key_management_service";
/// Scope of the group management server.
pub const SCOPE_GMS: &str = "3gpp:mc:ptt_group_management_service";
/// Every scope a client of this system asks for.
pub const ALL_SCOPES: [&str; 4] = [SCOPE_OPENID, SCOPE_PTT, SCOPE_KMS, SCOPE_GMS];

/// The space-separated scope string a client asks for.
pub fn requested_scope() -> String {
    ALL_SCOPES.join(" ")
}
