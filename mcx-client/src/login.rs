//! Logging in at the IdMS (TS 33.180 B.4.2): the authorization code flow
//! with PKCE, done by the client with the user's credentials from its
//! configuration, for a short-lived access token.

use mcx_idms::flow::{AccessToken, AuthFlow};
use mcx_kms::http::HttpRequest;
use mcx_net::http::{Endpoint, HttpClient};
use zeroize::Zeroizing;

use crate::ClientError;

/// Who logs in where.
#[derive(Clone)]
pub struct Login {
    /// The IdMS's HTTP(S) endpoint.
    pub idms_http: Endpoint,
    /// The registered client's `client_id`.
    pub client_id: String,
    /// Its registered redirect URI (never followed: the native client reads
    /// the code from the redirect).
    pub redirect_uri: String,
    /// The user's MC service ID.
    pub user_uri: String,
    /// The user's password.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("idms_http", &self.idms_http.addr)
            .field("client_id", &self.client_id)
            .field("user_uri", &self.user_uri)
            .finish_non_exhaustive()
    }
}

/// Runs the flow: the authentication request with the user's credentials,
/// then the token request with the PKCE verifier.
///
/// # Errors
/// [`ClientError::Net`], [`ClientError::Idms`] (refused, or an answer the
/// profile does not allow).
pub async fn login(l: &Login) -> Result<AccessToken, ClientError> {
    let mut rng = mcx_net::os_rng();
    // Both requests on one connection (one TLS handshake), closed when
    // the login is done. The token request is not repeated on a fresh
    // connection once sent: its code is for one use.
    let http = HttpClient::default();
    let (flow, path) = AuthFlow::start(
        &l.client_id,
        &l.redirect_uri,
        &mcx_idms::requested_scope(),
        &mut rng,
    );
    let mut authorize = HttpRequest::new("GET", &path);
    authorize.headers.push((
        "Authorization".into(),
        AuthFlow::basic_credentials(&l.user_uri, &l.password).to_string(),
    ));
    let resp = http.fetch(&l.idms_http, &authorize).await?;
    let Some(location) = resp.header("location").filter(|_| resp.status == 302) else {
        return Err(ClientError::Refused {
            service: "IdMS",
            status: resp.status,
            reason: String::from_utf8_lossy(&resp.body)
                .chars()
                .take(200)
                .collect(),
        });
    };
    let code = flow.code_from_redirect(location)?;
    let mut token = HttpRequest::new("POST", "/token");
    token.headers.push((
        "Content-Type".into(),
        "application/x-www-form-urlencoded".into(),
    ));
    token.body = flow.token_request(&code).as_bytes().to_vec();
    let resp = http.fetch(&l.idms_http, &token).await?;
    Ok(AuthFlow::parse_token_response(
        resp.status,
        &resp.body,
        mcx_net::now().unix,
    )?)
}
