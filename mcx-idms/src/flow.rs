//! The client side of the authorization code flow with PKCE (TS 33.180
//! B.4.2), sans-IO: it builds the requests and checks the answers; the
//! caller does the HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use rand_core::CryptoRng;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::FlowError;
use crate::pkce;

/// One run of the flow: the PKCE verifier and `state` it must remember
/// between the two requests.
pub struct AuthFlow {
    client_id: String,
    redirect_uri: String,
    verifier: Zeroizing<String>,
    state: String,
}

impl std::fmt::Debug for AuthFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFlow")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An access token and when it stops being good.
pub struct AccessToken {
    /// The bearer token (a JWT, opaque to the client: B.2.2).
    pub token: Zeroizing<String>,
    /// Unix seconds after which it is no longer accepted.
    pub expires_at: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl AuthFlow {
    /// Starts a flow for `client_id` asking for `scope`; returns it and
    /// the path and query of the authentication request (B.4.2.2).
    pub fn start(
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        rng: &mut impl CryptoRng,
    ) -> (Self, String) {
        let verifier = pkce::new_verifier(rng);
        let mut raw = [0u8; 16];
        rng.fill_bytes(&mut raw);
        let state = B64.encode(raw);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &state)
            .append_pair("code_challenge", &pkce::s256_challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .finish();
        (
            Self {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                verifier,
                state,
            },
            format!("/authorize?{query}"),
        )
    }

    /// The `Authorization` header carrying the user's credentials to the
    /// authorization endpoint (HTTP Basic, B.4.2.1). An MC service ID is a
    /// URI with a colon, which RFC 7617 does not allow in a user-id: both
    /// parts are form-urlencoded first, as RFC 6749 2.3.1 does for client
    /// credentials.
    pub fn basic_credentials(user: &str, password: &str) -> Zeroizing<String> {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let raw = Zeroizing::new(format!(
            "{}:{}",
            enc(user),
            Zeroizing::new(enc(password)).as_str()
        ));
        Zeroizing::new(format!("Basic {}", STANDARD.encode(raw.as_bytes())))
    }

    /// The code from the authorization response's `Location` (B.4.2.3),
    /// after checking it goes to our redirect URI with our `state`.
    ///
    /// # Errors
    /// [`FlowError::WrongRedirect`], [`FlowError::StateMismatch`],
    /// [`FlowError::Refused`] (an `error` parameter) or
    /// [`FlowError::Malformed`].
    pub fn code_from_redirect(&self, location: &str) -> Result<Zeroizing<String>, FlowError> {
        let (base, query) = location.split_once('?').unwrap_or((location, ""));
        if base != self.redirect_uri {
            return Err(FlowError::WrongRedirect(base.to_owned()));
        }
        let mut code = None;
        let mut state = None;
        let mut error = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "code" => code = Some(Zeroizing::new(v.into_owned())),
                "state" => state = Some(v.into_owned()),
                "error" => error = Some(v.into_owned()),
                _ => {}
            }
        }
        if let Some(code) = error {
            return Err(FlowError::Refused {
                code,
                description: String::new(),
            });
        }
        if state.as_deref() != Some(self.state.as_str()) {
            return Err(FlowError::StateMismatch);
        }
        code.ok_or_else(|| FlowError::Malformed("no code in the authorization response".into()))
    }

    /// The form body of the token request (B.4.2.4).
    pub fn token_request(&self, code: &str) -> Zeroizing<String> {
        Zeroizing::new(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("client_id", &self.client_id)
                .append_pair("code_verifier", &self.verifier)
                .finish(),
        )
    }

    /// The access token from the token response (B.4.2.5) received at
    /// `now_unix`.
    ///
    /// # Errors
    /// [`FlowError::Refused`] for an OAuth error body, else
    /// [`FlowError::Malformed`].
    pub fn parse_token_response(
        status: u16,
        body: &[u8],
        now_unix: u64,
    ) -> Result<AccessToken, FlowError> {
        if status != 200 {
            return Err(match serde_json::from_slice::<ErrorResponse>(body) {
                Ok(e) => FlowError::Refused {
                    code: e.error,
                    description: e.error_description,
                },
                Err(_) => FlowError::Malformed(format!("token endpoint answered {status}")),
            });
        }
        let r: TokenResponse = serde_json::from_slice(body)
            .map_err(|e| FlowError::Malformed(format!("token response: {e}")))?;
        if !r.token_type.eq_ignore_ascii_case("bearer") {
            return Err(FlowError::Malformed(format!(
                "token_type {:?}, not Bearer",
                r.token_type
            )));
        }
        Ok(AccessToken {
            token: Zeroizing::new(r.access_token),
            expires_at: now_unix.saturating_add(r.expires_in),
        })
    }
}
