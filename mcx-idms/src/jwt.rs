//! Compact JWS with ES256 (RFC 7515, RFC 7518 3.4) carrying the JWT claims
//! of TS 33.180 Annex B: signing by the IdMS, validation by resource
//! servers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::TokenError;

/// Clock skew allowed on `exp` and `iat`: TS 33.180 B.2 allows "some small
/// leeway ... not to exceed 30 seconds".
pub const LEEWAY_SECS: u64 = 30;

/// The claims of an access token (TS 33.180 B.2.2: the standard claims and
/// the MC service ID).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The IdMS (its URL).
    pub iss: String,
    /// The user, never reassigned.
    pub sub: String,
    /// Who the token is for: the resource servers' audience.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issue time, Unix seconds.
    pub iat: u64,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes granted.
    pub scope: String,
    /// The user's MC service ID (MCPTT ID): the identity resource servers
    /// act on.
    pub mcptt_id: String,
}

impl Claims {
    /// The claims of an access token for `mcptt_id` (also its `sub`),
    /// issued at `iat` for `lifetime` seconds.
    pub fn access(
        issuer: &str,
        audience: &str,
        client_id: &str,
        mcptt_id: &str,
        scope: &str,
        iat: u64,
        lifetime: u64,
    ) -> Self {
        Self {
            iss: issuer.to_owned(),
            sub: mcptt_id.to_owned(),
            aud: audience.to_owned(),
            exp: iat.saturating_add(lifetime),
            iat,
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            mcptt_id: mcptt_id.to_owned(),
        }
    }

    /// Whether `scope` is among the granted scopes.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// Signs tokens with the IdMS's P-256 key (deterministic ECDSA, RFC 6979).
pub struct TokenSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer from a 32-octet P-256 private scalar.
    ///
    /// # Errors
    /// [`TokenError::Malformed`] if the scalar is zero or not below n.
    pub fn from_secret(secret: &[u8], key_id: impl Into<String>) -> Result<Self, TokenError> {
        let key = SigningKey::from_slice(secret)
            .map_err(|_| TokenError::Malformed("signing key is not a P-256 scalar"))?;
        Ok(Self {
            key,
            key_id: key_id.into(),
        })
    }

    /// The public key, uncompressed SEC1 (65 octets), for verifiers.
    pub fn public_key(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()
    }

    /// A compact JWS of `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "ES256".into(),
            typ: Some("JWT".into()),
            kid: Some(self.key_id.clone()),
        };
        // Serializing these plain structs cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let claims = serde_json::to_vec(claims).unwrap_or_default();
        let mut out = B64.encode(header);
        out.push('.');
        out.push_str(&B64.encode(claims));
        let sig: Signature = self.key.sign(out.as_bytes());
        out.push('.');
        out.push_str(&B64.encode(sig.to_bytes()));
        out
    }
}

/// Checks tokens as a resource server must (TS 33.180 B.6.2): the ES256
/// signature under the trusted IdMS key, the issuer, the audience, the
/// expiry and the scope; the identity is then the token's `mcptt_id`.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    key: VerifyingKey,
    issuer: String,
    audience: String,
}

impl TokenVerifier {
    /// A verifier trusting `public_key` (SEC1) of the IdMS `issuer`, for
    /// tokens whose `aud` is `audience`.
    ///
    /// # Errors
    /// [`TokenError::Malformed`] if the key is not a P-256 point.
    pub fn new(
        public_key: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, TokenError> {
        let key = VerifyingKey::from_sec1_bytes(public_key)
            .map_err(|_| TokenError::Malformed("IdMS key is not a P-256 point"))?;
        Ok(Self {
            key,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// Verifies the compact JWS signature alone (ES256), returning the
    /// decoded payload. Exposed for checking published JWS examples.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::UnsupportedAlgorithm`],
    /// [`TokenError::BadSignature`].
    pub fn verify_signature(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        verify_es256(&self.key, token)
    }

    /// Validates `token` at `now_unix` and requires `scope`.
    ///
    /// # Errors
    /// The first failed check, as a [`TokenError`].
    pub fn verify(&self, token: &str, scope: &str, now_unix: u64) -> Result<Claims, TokenError> {
        let payload = self.verify_signature(token)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| {
            TokenError::MissingClaim("iss/sub/aud/exp/iat/client_id/scope/mcptt_id")
        })?;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer(claims.iss));
        }
        if claims.aud != self.audience {
            return Err(TokenError::WrongAudience(self.audience.clone()));
        }
        if now_unix >= claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now: now_unix,
            });
        }
        if claims.iat > now_unix.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::IssuedInFuture {
                iat: claims.iat,
                now: now_unix,
            });
        }
        if claims.mcptt_id.is_empty() {
            return Err(TokenError::MissingClaim("mcptt_id"));
        }
        if !claims.has_scope(scope) {
            return Err(TokenError::MissingScope(scope.to_owned()));
        }
        Ok(claims)
    }
}

fn verify_es256(key: &VerifyingKey, token: &str) -> Result<Vec<u8>, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    let header = B64
        .decode(h)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|_| TokenError::Malformed("header is not JSON"))?;
    if header.alg != "ES256" {
        return Err(TokenError::UnsupportedAlgorithm(header.alg));
    }
    let sig = B64
        .decode(s)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    // RFC 7518 3.4: R || S, 32 octets each, not DER.
    let sig = Signature::from_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let signed_len = h.len() + 1 + p.len();
    key.verify(&token.as_bytes()[..signed_len], &sig)
        .map_err(|_| TokenError::BadSignature)?;
    B64.decode(p)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))
}
