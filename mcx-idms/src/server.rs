//! The IdMS endpoints (TS 33.180 B.4.2, RFC 6749 4.1, RFC 7636): the
//! authorization endpoint authenticates the user (HTTP Basic, as B.4.2.1
//! allows) and answers with a one-time code bound to the client's PKCE
//! challenge; the token endpoint exchanges the code and the verifier for
//! an ES256-signed access token and ID token.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use rand_core::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::OAuthError;
use crate::jwt::{Claims, TokenSigner, TokenVerifier};
use crate::{SCOPE_OPENID, pkce};

/// A registered native client (TS 33.180 B.3: client identifier and
/// redirect URI, registered before use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredClient {
    /// `client_id`.
    pub client_id: String,
    /// The one redirect URI it may use (compared exactly).
    pub redirect_uri: String,
}

/// What the IdMS serves.
#[derive(Clone, Debug)]
pub struct IdmsConfig {
    /// `iss` of every token: the IdMS's URL.
    pub issuer: String,
    /// `aud` of access tokens: the resource servers of this MC system.
    pub audience: String,
    /// Lifetime of access and ID tokens, seconds (short: clients fetch a
    /// new one before it ends).
    pub token_lifetime_secs: u64,
    /// Lifetime of an authorization code, seconds (RFC 6749 4.1.2
    /// recommends at most 10 minutes; one minute is plenty for a native
    /// client).
    pub code_lifetime_secs: u64,
    /// Registered clients.
    pub clients: Vec<RegisteredClient>,
    /// The scopes the IdMS grants (others asked for are left out).
    pub scopes: Vec<String>,
    /// PBKDF2-HMAC-SHA-256 iterations for stored passwords.
    pub pbkdf2_rounds: u32,
    /// Most authorization codes outstanding at once.
    pub max_pending_codes: usize,
}

impl IdmsConfig {
    /// Default token lifetime: 10 minutes.
    pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 600;
    /// Default PBKDF2 iterations.
    pub const DEFAULT_PBKDF2_ROUNDS: u32 = 100_000;

    /// A configuration with the defaults and every MC scope.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        clients: Vec<RegisteredClient>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            token_lifetime_secs: Self::DEFAULT_TOKEN_LIFETIME_SECS,
            code_lifetime_secs: 60,
            clients,
            scopes: crate::ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            pbkdf2_rounds: Self::DEFAULT_PBKDF2_ROUNDS,
            max_pending_codes: 10_000,
        }
    }
}

/// A user's stored credential: salt and PBKDF2 hash, never the password.
struct Credential {
    salt: [u8; 16],
    hash: Zeroizing<[u8; 32]>,
}

/// An authorization code waiting for its token request.
struct PendingCode {
    mcptt_id: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    expires: u64,
}

/// An IdMS answer, for the HTTP adapter to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdmsResponse {
    /// HTTP status.
    pub status: u16,
    /// `Location` of a 302.
    pub location: Option<String>,
    /// Whether to ask for Basic credentials (`WWW-Authenticate`) on a 401.
    pub challenge_basic: bool,
    /// JSON body (empty for a redirect).
    pub body: String,
}

impl IdmsResponse {
    fn error(e: &OAuthError) -> Self {
        Self {
            status: e.status,
            location: None,
            challenge_basic: e.status == 401,
            body: e.to_json(),
        }
    }
}

/// The identity management server.
pub struct Idms {
    config: IdmsConfig,
    signer: TokenSigner,
    users: HashMap<String, Credential>,
    codes: HashMap<String, PendingCode>,
}

impl std::fmt::Debug for Idms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idms")
            .field("issuer", &self.config.issuer)
            .field("users", &self.users.len())
            .field("pending_codes", &self.codes.len())
            .finish_non_exhaustive()
    }
}

fn pbkdf2(password: &str, salt: &[u8], rounds: u32) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, rounds.max(1), out.as_mut());
    out
}

impl Idms {
    /// An IdMS signing with `signer`, knowing `users` as (MC service ID,
    /// password); passwords are kept only as salted PBKDF2 hashes.
    pub fn new<'a>(
        config: IdmsConfig,
        signer: TokenSigner,
        users: impl IntoIterator<Item = (&'a str, &'a str)>,
        rng: &mut impl CryptoRng,
    ) -> Self {
        let users = users
            .into_iter()
            .map(|(id, password)| {
                let mut salt = [0u8; 16];
                rng.fill_bytes(&mut salt);
                let hash = pbkdf2(password, &salt, config.pbkdf2_rounds);
                (id.to_owned(), Credential { salt, hash })
            })
            .collect();
        Self {
            config,
            signer,
            users,
            codes: HashMap::new(),
        }
    }

    /// The IdMS's public key (uncompressed SEC1), for resource servers'
    /// configuration.
    pub fn verifier_key(&self) -> Vec<u8> {
        self.signer.public_key()
    }

    /// A verifier for this IdMS's access tokens.
    pub fn verifier(&self) -> TokenVerifier {
        // Our own key and names: this cannot fail.
        TokenVerifier::new(
            &self.signer.public_key(),
            self.config.issuer.clone(),
            self.config.audience.clone(),
        )
        .unwrap_or_else(|_| unreachable!("the IdMS's own key is a P-256 point"))
    }

    /// Answers one HTTP request: `GET /authorize?…` or `POST /token`.
    pub fn handle(
        &mut self,
        method: &str,
        path_and_query: &str,
        authorization: Option<&str>,
        body: &[u8],
        now_unix: u64,
        rng: &mut impl CryptoRng,
    ) -> IdmsResponse {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let result = match (method, path) {
            ("GET", "/authorize") => {
                self.authorize(query, authorization, now_unix, rng)
                    .map(|location| IdmsResponse {
                        status: 302,
                        location: Some(location),
                        challenge_basic: false,
                        body: String::new(),
                    })
            }
            ("POST", "/token") => self.token(body, now_unix).map(|json| IdmsResponse {
                status: 200,
                location: None,
                challenge_basic: false,
                body: json,
            }),
            (_, "/authorize" | "/token") => Err(OAuthError::new(
                405,
                "invalid_request",
                format!("{method} not allowed on {path}"),
            )),
            _ => Err(OAuthError::new(
                404,
                "invalid_request",
                format!("no endpoint {path}"),
            )),
        };
        result.unwrap_or_else(|e| IdmsResponse::error(&e))
    }

    /// The authorization endpoint: checks the request, authenticates the
    /// user, and returns the redirect `Location` with a fresh code.
    ///
    /// # Errors
    /// The OAuth error to answer with.
    pub fn authorize(
        &mut self,
        query: &str,
        authorization: Option<&str>,
        now_unix: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<String, OAuthError> {
        let q = Params::parse(query.as_bytes())?;
        let client_id = q.required("client_id")?;
        let redirect_uri = q.required("redirect_uri")?;
        // An unknown client or redirect URI gets no redirect (RFC 6749
        // 4.1.2.1): the error goes back to whoever asked.
        if !self
            .config
            .clients
            .iter()
            .any(|c| c.client_id == client_id && c.redirect_uri == redirect_uri)
        {
            return Err(OAuthError::new(
                400,
                "invalid_request",
                "client_id and redirect_uri are not a registered client",
            ));
        }
        if q.required("response_type")? != "code" {
            return Err(OAuthError::new(
                400,
                "unsupported_response_type",
                "only the authorization code flow (response_type=code)",
            ));
        }
        let challenge = q.required("code_challenge")?;
        if q.get("code_challenge_method") != Some("S256") {
            return Err(OAuthError::new(
                400,
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            ));
        }
        let asked: Vec<&str> = q.required("scope")?.split(' ').collect();
        if !asked.contains(&SCOPE_OPENID) {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                "scope must include openid",
            ));
        }
        let scope = asked
            .iter()
            .filter(|s| self.config.scopes.iter().any(|g| g == *s))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let mcptt_id = self.authenticate(authorization)?;
        self.codes.retain(|_, c| c.expires > now_unix);
        if self.codes.len() >= self.config.max_pending_codes {
            return Err(OAuthError::new(
                503,
                "temporarily_unavailable",
                "too many authorization codes outstanding",
            ));
        }
        let mut raw = [0u8; 32];
        rng.fill_bytes(&mut raw);
        let code = B64.encode(raw);
        self.codes.insert(
            code.clone(),
            PendingCode {
                mcptt_id,
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                scope,
                expires: now_unix.saturating_add(self.config.code_lifetime_secs),
            },
        );
        let mut location = form_urlencoded::Serializer::new(String::new());
        location.append_pair("code", &code);
        if let Some(state) = q.get("state") {
            location.append_pair("state", state);
        }
        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
        Ok(format!("{redirect_uri}{sep}{}", location.finish()))
    }

    /// The token endpoint: exchanges a code (once) for tokens.
    ///
    /// # Errors
    /// The OAuth error to answer with.
    pub fn token(&mut self, form: &[u8], now_unix: u64) -> Result<String, OAuthError> {
        let f = Params::parse(form)?;
        if f.required("grant_type")? != "authorization_code" {
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                "only grant_type=authorization_code",
            ));
        }
        // A code is used at most once, whatever happens next.
        let pending = self
            .codes
            .remove(f.required("code")?)
            .ok_or_else(|| OAuthError::new(400, "invalid_grant", "unknown or used code"))?;
        if pending.expires <= now_unix {
            return Err(OAuthError::new(400, "invalid_grant", "code expired"));
        }
        if f.required("client_id")? != pending.client_id
            || f.required("redirect_uri")? != pending.redirect_uri
        {
            return Err(OAuthError::new(
                400,
                "invalid_grant",
                "client_id or redirect_uri differ from the authorization request",
            ));
        }
        if !pkce::verifies(f.required("code_verifier")?, &pending.challenge) {
            return Err(OAuthError::new(
                400,
                "invalid_grant",
                "code_verifier does not match the code_challenge",
            ));
        }
        let exp = now_unix.saturating_add(self.config.token_lifetime_secs);
        let access = Claims {
            iss: self.config.issuer.clone(),
            sub: pending.mcptt_id.clone(),
            aud: self.config.audience.clone(),
            exp,
            iat: now_unix,
            client_id: pending.client_id.clone(),
            scope: pending.scope.clone(),
            mcptt_id: pending.mcptt_id.clone(),
        };
        // The ID token is for the client (aud = client_id, B.2.1).
        let id = Claims {
            aud: pending.client_id.clone(),
            ..access.clone()
        };
        Ok(serde_json::json!({
            "access_token": self.signer.sign(&access),
            "token_type": "Bearer",
            "expires_in": self.config.token_lifetime_secs,
            "id_token": self.signer.sign(&id),
            "scope": pending.scope,
        })
        .to_string())
    }

    /// The user named by HTTP Basic credentials, if the password matches.
    fn authenticate(&self, authorization: Option<&str>) -> Result<String, OAuthError> {
        let denied = || OAuthError::new(401, "access_denied", "user authentication failed");
        let encoded = authorization
            .and_then(|a| a.strip_prefix("Basic "))
            .ok_or_else(denied)?;
        let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| denied())?);
        let decoded = std::str::from_utf8(&decoded).map_err(|_| denied())?;
        let (user, password) = decoded.split_once(':').ok_or_else(denied)?;
        // Both form-urlencoded (see `AuthFlow::basic_credentials`).
        let user: String = form_urlencoded::parse(format!("u={user}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect();
        let password = Zeroizing::new(
            form_urlencoded::parse(format!("p={password}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .collect::<String>(),
        );
        let (user, password) = (user.as_str(), password.as_str());
        let Some(c) = self.users.get(user) else {
            // Same work for an unknown user, so timing does not tell.
            let _ = pbkdf2(password, &[0u8; 16], self.config.pbkdf2_rounds);
            return Err(denied());
        };
        let hash = pbkdf2(password, &c.salt, self.config.pbkdf2_rounds);
        if bool::from(hash.ct_eq(c.hash.as_ref())) {
            Ok(user.to_owned())
        } else {
            Err(denied())
        }
    }
}

/// `application/x-www-form-urlencoded` parameters, each at most once.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(bytes: &[u8]) -> Result<Self, OAuthError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(p, _)| p == k) {
                // RFC 6749 3.1: parameters must not be repeated.
                return Err(OAuthError::new(
                    400,
                    "invalid_request",
                    format!("parameter {k} repeated"),
                ));
            }
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| OAuthError::new(400, "invalid_request", format!("{name} missing")))
    }
}
