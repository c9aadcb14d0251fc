//! tokio driver for an MC service client.
//!
//! At start-up a client provisions itself (TS 33.180 5.2, 5.7): KmsInit
//! and KmsKeyProv from the KMS (community public keys, its own ECCSI and
//! SAKKE keys, validated), then its group list and group documents from
//! the GMS, whose GKTPs carry each group's GMK in a MIKEY-SAKKE
//! I_MESSAGE the client verifies and decrypts. Then the
//! [`mcx_core::Client`] role runs under [`mcx_net::node`].
//!
//! A call's voice ([`mcx_core::Client::voice`]) goes through
//! [`VoiceSender`] / [`VoiceReceiver`] (sans-IO: PCMU in SRTP under the
//! TGMK's keys) and the tokio adapters [`send_voice`] / [`receive_voice`].
#![forbid(unsafe_code)]

mod login;
mod voice;

pub use login::{Login, login};

pub use voice::{
    DEFAULT_PLAYOUT_DELAY, MAX_VOICE_PACKET, ReceiveLimits, SenderStats, VoiceDrop, VoiceError,
    VoiceReceiver, VoiceReport, VoiceSender, VoiceSent, receive_voice, send_voice,
    send_voice_logged,
};

use std::sync::{Mutex, OnceLock};

use mcx_core::{Client, ClientConfig, ClientEvent};
use mcx_gms::GroupDocument;
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_kms::http::HttpResponse;
use mcx_net::http::{Endpoint, fetch};

/// Where and as whom a client provisions.
#[derive(Clone)]
pub struct Provisioning {
    /// The user's MC service ID.
    pub user_uri: String,
    /// Its access token toward the KMS and GMS.
    pub token: String,
    /// The KMS URI (KmsUri).
    pub kms_uri: String,
    /// The KMS's HTTP(S) endpoint.
    pub kms_http: Endpoint,
    /// The GMS's HTTP(S) endpoint.
    pub gms_http: Endpoint,
    /// The user's TrK/InK (TS 33.180 D.1), provisioned out of band: when
    /// set, only InK-signed KMS responses with TrK-encrypted keys are
    /// accepted.
    pub kms_security: Option<mcx_kms::secext::SecurityKeys>,
}

impl std::fmt::Debug for Provisioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioning")
            .field("user_uri", &self.user_uri)
            .field("kms_uri", &self.kms_uri)
            .field("kms_http", &self.kms_http.addr)
            .field("gms_http", &self.gms_http.addr)
            .field("kms_security", &self.kms_security.is_some())
            .finish_non_exhaustive()
    }
}

/// What provisioning returned.
#[derive(Debug)]
pub struct Provisioned {
    /// The KMS community's public values.
    pub community: CommunityPublic,
    /// The user's keys for the current key period.
    pub keys: UserKeys,
    /// The user's groups, each with its GKTPs.
    pub groups: Vec<GroupDocument>,
}

/// Errors of client start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Network failure.
    #[error(transparent)]
    Net(#[from] mcx_net::NetError),
    /// A server answered with an error status.
    #[error("{service} answered {status}: {reason}")]
    Refused {
        /// KMS or GMS.
        service: &'static str,
        /// HTTP status.
        status: u16,
        /// The body (a reason).
        reason: String,
    },
    /// The KMS's answer was unusable.
    #[error("KMS: {0}")]
    Kms(#[from] mcx_kms::KmsError),
    /// The GMS's answer was unusable.
    #[error("GMS: {0}")]
    Gms(#[from] mcx_gms::GmsError),
    /// The IdMS refused the user or answered with something unusable.
    #[error("IdMS: {0}")]
    Idms(#[from] mcx_idms::FlowError),
    /// The role refused the keys or a GKTP.
    #[error(transparent)]
    Core(#[from] mcx_core::Error),
    /// A blocking task failed.
    #[error("start-up task failed")]
    Task,
}

fn ok(service: &'static str, resp: HttpResponse) -> Result<Vec<u8>, ClientError> {
    if resp.status == 200 {
        Ok(resp.body)
    } else {
        Err(ClientError::Refused {
            service,
            status: resp.status,
            reason: String::from_utf8_lossy(&resp.body)
                .chars()
                .take(200)
                .collect(),
        })
    }
}

/// One value per KMS community in this process, so that clients started
/// together (`mcx up`, `mcx demo`) share the community's precomputed
/// fixed-base table for Z (about 1 MB, built on first use) instead of
/// each building its own. Equal public values give the same results;
/// only the cost differs.
fn shared(community: CommunityPublic) -> CommunityPublic {
    static COMMUNITIES: OnceLock<Mutex<Vec<CommunityPublic>>> = OnceLock::new();
    let Ok(mut known) = COMMUNITIES.get_or_init(Mutex::default).lock() else {
        return community;
    };
    if let Some(c) = known.iter().find(|c| **c == community) {
        return c.clone();
    }
    known.push(community.clone());
    community
}

/// Fetches the KMS community (KmsInit) and `user_uri`'s keys for the
/// current key period (KmsKeyProv), validated. The GMS uses this too.
/// With `security` (the user's TrK/InK), both answers must carry the TS
/// 33.180 D.1 security extension: signed with the InK, keys encrypted
/// under the TrK.
///
/// # Errors
/// Network failures, refusals, and answers that do not validate (or, with
/// `security`, are unsigned, badly signed or not decryptable).
pub async fn provision_keys(
    kms_uri: &str,
    user_uri: &str,
    token: &str,
    kms_http: &Endpoint,
    security: Option<&mcx_kms::secext::SecurityKeys>,
) -> Result<(CommunityPublic, UserKeys), ClientError> {
    let now = mcx_net::now().unix;
    let init = mcx_kms::client::init_request(kms_uri, user_uri, token, now);
    let body = ok("KMS", fetch(kms_http.clone(), &init).await?)?;
    let community = shared(mcx_kms::client::parse_init_response_with(
        &body, kms_uri, security,
    )?);
    let prov = mcx_kms::client::key_prov_request(kms_uri, user_uri, token, now);
    let body = ok("KMS", fetch(kms_http.clone(), &prov).await?)?;
    let user = user_uri.to_owned();
    let security = security.cloned();
    // Validating an RSK is a pairing: CPU work off the async threads.
    tokio::task::spawn_blocking(move || {
        mcx_kms::client::parse_key_prov_response_with(
            &body,
            &community,
            &user,
            now,
            security.as_ref(),
        )
        .map(|k| (community, k))
    })
    .await
    .map_err(|_| ClientError::Task)?
    .map_err(ClientError::from)
}

/// Provisions `p.user_uri` from the KMS and the GMS.
///
/// # Errors
/// Network failures, refusals, and answers that do not validate.
pub async fn provision(p: &Provisioning) -> Result<Provisioned, ClientError> {
    let (community, keys) = provision_keys(
        &p.kms_uri,
        &p.user_uri,
        &p.token,
        &p.kms_http,
        p.kms_security.as_ref(),
    )
    .await?;
    let index = mcx_gms::client::group_index_request(&p.user_uri, &p.token);
    let body = ok("GMS", fetch(p.gms_http.clone(), &index).await?)?;
    let mut groups = Vec::new();
    for group in mcx_gms::client::parse_group_index(&body)? {
        let req = mcx_gms::client::group_document_request(&group, &p.token);
        let body = ok("GMS", fetch(p.gms_http.clone(), &req).await?)?;
        groups.push(mcx_gms::client::parse_group_document(&body)?);
    }
    Ok(Provisioned {
        community,
        keys,
        groups,
    })
}

/// Builds the client role from provisioned keys: validates the user keys
/// and accepts every GKTP (signature by the GMS, decryption to this user).
/// CPU work: run it on the blocking pool.
///
/// # Errors
/// Keys or GKTPs that do not validate.
pub fn build_client(config: ClientConfig, p: Provisioned) -> Result<Client, ClientError> {
    let mut client = Client::new(config, p.community, p.keys)?;
    let time = mcx_net::now();
    for doc in &p.groups {
        for gktp in &doc.gktps {
            client.accept_gmk(time, &doc.group_id, gktp)?;
        }
    }
    // The GMK acceptances are events the application may want to see;
    // they stay queued in the role until the node drains them.
    Ok(client)
}

/// Provisions and builds the client role.
///
/// # Errors
/// See [`provision`] and [`build_client`].
pub async fn start(config: ClientConfig, p: &Provisioning) -> Result<Client, ClientError> {
    let provisioned = provision(p).await?;
    tokio::task::spawn_blocking(move || build_client(config, provisioned))
        .await
        .map_err(|_| ClientError::Task)?
}

/// Waits for the first event matching `f`, returning it (other events are
/// passed to `skipped`).
pub async fn wait_for<T>(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<ClientEvent>,
    mut f: impl FnMut(&ClientEvent) -> Option<T>,
    mut skipped: impl FnMut(ClientEvent),
) -> Option<T> {
    while let Some(e) = events.recv().await {
        if let Some(t) = f(&e) {
            return Some(t);
        }
        skipped(e);
    }
    None
}
