//! The IdMS of a topology and the tokens every role logs in for (TS 33.180
//! Annex B): the IdMS itself, the verifier every service checks access
//! tokens with, logins with the configured credentials, and refreshing a
//! client's token before it expires.

use std::sync::OnceLock;
use std::time::Duration;

use mcx_idms::jwt::{TokenSigner, TokenVerifier};
use mcx_idms::server::{Idms, IdmsConfig, RegisteredClient};
use mcx_net::http::Endpoint;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::topology::Topology;

/// The `client_id` every client of this system is registered with.
pub(crate) const CLIENT_ID: &str = "mcx";
/// Its registered redirect URI (the native client reads the code from
/// the redirect; nothing listens there).
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1/mcx/callback";

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(what.to_string())
}

/// The IdMS's signing key: the topology's, else one per process (the
/// roles of `mcx up`/`mcx demo` share it).
fn secret(t: &Topology) -> Result<Option<Zeroizing<[u8; 32]>>, CliError> {
    let Some(idms) = &t.idms else {
        return Ok(None);
    };
    if let Some(hex_key) = &idms.signing_key {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_key, key.as_mut())
            .map_err(|e| failed(format!("idms.signing_key: {e} (64 hex digits)")))?;
        return Ok(Some(key));
    }
    static PER_PROCESS: OnceLock<Zeroizing<[u8; 32]>> = OnceLock::new();
    Ok(Some(
        PER_PROCESS
            .get_or_init(|| {
                let mut key = Zeroizing::new([0u8; 32]);
                rand_core::Rng::fill_bytes(&mut mcx_net::os_rng(), key.as_mut());
                key
            })
            .clone(),
    ))
}

fn signer(t: &Topology) -> Result<Option<TokenSigner>, CliError> {
    secret(t)?
        .map(|k| TokenSigner::from_secret(k.as_ref(), "mcx-idms-1"))
        .transpose()
        .map_err(|e| failed(format!("idms.signing_key: {e}")))
}

/// What every service checks access tokens with (`None`: no IdMS).
pub(crate) fn verifier(t: &Topology) -> Result<Option<TokenVerifier>, CliError> {
    let (Some(idms), Some(s)) = (&t.idms, signer(t)?) else {
        return Ok(None);
    };
    TokenVerifier::new(&s.public_key(), idms.uri.clone(), idms.audience.clone())
        .map(Some)
        .map_err(|e| failed(format!("IdMS key: {e}")))
}

/// Roles running as separate processes must share the IdMS key.
pub(crate) fn check_separate_processes(t: &Topology) -> Result<(), CliError> {
    match &t.idms {
        Some(i) if i.signing_key.is_none() => Err(failed(
            "idms.signing_key is needed when the roles run as separate processes",
        )),
        _ => Ok(()),
    }
}

/// Every principal and its credential: users, the GMS and the servers.
fn principals(t: &Topology) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = t
        .users
        .iter()
        .map(|u| (u.uri.clone(), u.token.clone()))
        .collect();
    all.push((t.gms.uri.clone(), t.gms.token.clone()));
    all.push((
        t.controlling.uri.clone(),
        Topology::server_token(&t.controlling.uri, t.controlling.token.as_ref()),
    ));
    for s in &t.mc_servers {
        all.push((
            s.uri.clone(),
            Topology::server_token(&s.uri, s.token.as_ref()),
        ));
    }
    all
}

/// Starts the IdMS (if the topology has one) on `listener`.
pub(crate) fn start_idms(
    t: &Topology,
    listener: TcpListener,
    https: Option<std::sync::Arc<mcx_tls::rustls::ServerConfig>>,
) -> Result<JoinHandle<()>, CliError> {
    let (Some(node), Some(signer)) = (&t.idms, signer(t)?) else {
        return Err(failed("the topology has no [idms]"));
    };
    let mut config = IdmsConfig::new(
        node.uri.clone(),
        node.audience.clone(),
        vec![RegisteredClient {
            client_id: CLIENT_ID.into(),
            redirect_uri: REDIRECT_URI.into(),
        }],
    );
    config.token_lifetime_secs = node.token_lifetime_secs;
    config.pbkdf2_rounds = node.pbkdf2_rounds;
    let principals = principals(t);
    let idms = Idms::new(
        config,
        signer,
        principals.iter().map(|(u, p)| (u.as_str(), p.as_str())),
        &mut mcx_net::os_rng(),
    );
    let handler = crate::admin::metered("idms", mcx_server::idms_handler(idms));
    Ok(match https {
        Some(tls) => {
            mcx_server::serve_https_with(listener, handler, mcx_server::HttpLimits::default(), tls)
        }
        None => mcx_server::serve_http(listener, handler),
    })
}

/// The bearer token `uri` presents: an access token from the IdMS at
/// `idms_http` for its credential `secret`, or (no IdMS) the credential
/// itself. Retries while the IdMS is not reachable yet.
pub(crate) async fn token(
    t: &Topology,
    idms_http: Option<Endpoint>,
    uri: &str,
    secret: &str,
) -> Result<Zeroizing<String>, mcx_client::ClientError> {
    let Some(endpoint) = idms_http.filter(|_| t.idms.is_some()) else {
        return Ok(Zeroizing::new(secret.to_owned()));
    };
    let login = mcx_client::Login {
        idms_http: endpoint,
        client_id: CLIENT_ID.into(),
        redirect_uri: REDIRECT_URI.into(),
        user_uri: uri.to_owned(),
        password: Zeroizing::new(secret.to_owned()),
    };
    let t = crate::system::with_retries(uri, "IdMS", || mcx_client::login(&login)).await?;
    Ok(t.token)
}

/// How long before its expiry a client logs in again.
fn refresh_after(t: &Topology) -> Option<Duration> {
    let lifetime = t.idms.as_ref()?.token_lifetime_secs;
    Some(Duration::from_secs(
        lifetime.saturating_sub(lifetime / 4).max(1),
    ))
}

/// Keeps `client`'s access token fresh: logs in again at three quarters
/// of the token's lifetime and hands the new token to the role, whose
/// registration refreshes carry it.
pub(crate) fn keep_fresh(
    t: &Topology,
    idms_http: Option<Endpoint>,
    uri: &str,
    secret: &str,
    client: mcx_net::node::Commander<mcx_core::Client>,
) -> Option<JoinHandle<()>> {
    let every = refresh_after(t)?;
    let (t, uri, secret) = (t.clone(), uri.to_owned(), Zeroizing::new(secret.to_owned()));
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match token(&t, idms_http.clone(), &uri, &secret).await {
                Ok(fresh) => {
                    if client
                        .command(move |c, _, _| c.set_access_token(&fresh))
                        .is_err()
                    {
                        return; // the client stopped
                    }
                }
                Err(e) => tracing::warn!("{uri}: no fresh access token: {e}"),
            }
        }
    }))
}
