//! tokio driver for an MC service client.
//!
//! At start-up a client provisions itself (TS 33.180 5.2, 5.7): KmsInit
//! and KmsKeyProv from the KMS (community public keys, its own ECCSI and
//! SAKKE keys, validated), then its group list and group documents from
//! the GMS, whose GKTPs carry each group's GMK in a MIKEY-SAKKE
//! I_MESSAGE the client verifies and decrypts. The KMS and the GMS may
//! each be several instances on one database ([`Servers`]): a request
//! fails over from one to the next on a connection failure, a timeout or
//! a 5xx (docs/deployment.md). Then the
//! [`mcx_core::Client`] role runs under [`mcx_net::node`], and
//! [`keep_gmks_fresh`] polls the GMS for its groups' documents (every
//! [`DEFAULT_GMK_POLL_INTERVAL`], and [`DEFAULT_GMK_RENEWAL_LEAD`] before
//! its GMKs expire) so that it holds the next GMK before the current one
//! expires and a GMK rolled after a member's removal within one poll
//! interval (docs/key-lifecycle.md).
//!
//! A call's voice ([`mcx_core::Client::voice`]) goes through
//! [`VoiceSender`] / [`VoiceReceiver`] (sans-IO: PCMU in SRTP under the
//! TGMK's keys) and the tokio adapters [`send_voice`] / [`receive_voice`].
#![forbid(unsafe_code)]

mod failover;
mod login;
mod voice;

pub use failover::{DEFAULT_ATTEMPT_TIMEOUT, Servers};

pub use login::{Login, login};

pub use voice::{
    DEFAULT_PLAYOUT_DELAY, MAX_VOICE_PACKET, ReceiveLimits, SenderStats, VoiceDrop, VoiceError,
    VoiceReceiver, VoiceReport, VoiceSender, VoiceSent, receive_voice, send_voice,
    send_voice_logged,
};

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use mcx_core::{Client, ClientConfig, ClientEvent};
use mcx_gms::GroupDocument;
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_kms::http::HttpResponse;
use mcx_net::node::Commander;

/// Where and as whom a client provisions.
#[derive(Clone)]
pub struct Provisioning {
    /// The user's MC service ID.
    pub user_uri: String,
    /// Its access token toward the KMS and GMS.
    pub token: String,
    /// The KMS URI (KmsUri).
    pub kms_uri: String,
    /// The KMS instances' HTTP(S) endpoints (fail-over in order).
    pub kms_http: Servers,
    /// The GMS instances' HTTP(S) endpoints (fail-over in order).
    pub gms_http: Servers,
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
            .field("kms_http", &self.kms_http)
            .field("gms_http", &self.gms_http)
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
    /// Its keys for the next key period, if that starts within
    /// [`DEFAULT_KEY_PERIOD_LEAD`] (a start-up near a boundary).
    pub next_keys: Option<UserKeys>,
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
    /// No instance of the service answered (each unreachable, too slow
    /// or answering 5xx).
    #[error("no {service} instance answered: {}", tried.join("; "))]
    AllFailed {
        /// KMS or GMS.
        service: &'static str,
        /// Each instance tried, as `URL (why it failed)`.
        tried: Vec<String>,
    },
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
    kms_http: &Servers,
    security: Option<&mcx_kms::secext::SecurityKeys>,
) -> Result<(CommunityPublic, UserKeys), ClientError> {
    let (community, keys, _) =
        provision_key_periods(kms_uri, user_uri, token, kms_http, security).await?;
    Ok((community, keys))
}

/// [`provision_keys`], and when the next key period starts within
/// [`DEFAULT_KEY_PERIOD_LEAD`] (a start-up near a boundary), the next
/// period's keys too, from the same KmsKeyProv (`?next=1`). If the KMS's
/// clock is already in the next period, its current keys are taken for
/// ours.
///
/// # Errors
/// Network failures, refusals, and answers that do not validate.
pub async fn provision_key_periods(
    kms_uri: &str,
    user_uri: &str,
    token: &str,
    kms_http: &Servers,
    security: Option<&mcx_kms::secext::SecurityKeys>,
) -> Result<(CommunityPublic, UserKeys, Option<UserKeys>), ClientError> {
    let now = mcx_net::now().unix;
    let init = mcx_kms::client::init_request(kms_uri, user_uri, token, now);
    let body = ok("KMS", kms_http.fetch("KMS", &init).await?)?;
    let community = shared(mcx_kms::client::parse_init_response_with(
        &body, kms_uri, security,
    )?);
    let period =
        mcx_ibc::uid::key_period_no(now, community.key_period_len, community.key_period_offset)
            .map_err(mcx_kms::KmsError::from)?;
    let next_start = mcx_ibc::uid::key_period_start(
        period.saturating_add(1),
        community.key_period_len,
        community.key_period_offset,
    )
    .map_err(mcx_kms::KmsError::from)?;
    let near = next_start.saturating_sub(now) <= DEFAULT_KEY_PERIOD_LEAD.as_secs();
    let prov = if near {
        mcx_kms::client::key_prov_request_with_next(kms_uri, user_uri, token, now)
    } else {
        mcx_kms::client::key_prov_request(kms_uri, user_uri, token, now)
    };
    let body = ok("KMS", kms_http.fetch("KMS", &prov).await?)?;
    // Validating the keys is CPU work (RSK checks): off the async threads.
    let user = user_uri.to_owned();
    let security = security.cloned();
    tokio::task::spawn_blocking(move || {
        let mut sets = mcx_kms::client::parse_key_prov_response_all_with(
            &body,
            &community,
            &user,
            security.as_ref(),
        )?;
        sets.sort_by_key(|k| k.key_period_no);
        // Ours, or the KMS's current one if it is already a period ahead.
        let at = sets
            .iter()
            .position(|k| k.key_period_no == period)
            .or_else(|| (!sets.is_empty()).then_some(0))
            .ok_or(mcx_kms::KmsError::NoKeySetForPeriod(period))?;
        let keys = sets.remove(at);
        let next = sets
            .into_iter()
            .find(|k| k.key_period_no == keys.key_period_no + 1);
        Ok((community, keys, next))
    })
    .await
    .map_err(|_| ClientError::Task)?
}

/// Fetches the user's group index and each listed group's document (with
/// the user's GKTPs) from the GMS.
///
/// # Errors
/// Network failures, refusals, and documents that do not parse.
pub async fn fetch_group_documents(p: &Provisioning) -> Result<Vec<GroupDocument>, ClientError> {
    let index = mcx_gms::client::group_index_request(&p.user_uri, &p.token);
    let body = ok("GMS", p.gms_http.fetch("GMS", &index).await?)?;
    let mut groups = Vec::new();
    for group in mcx_gms::client::parse_group_index(&body)? {
        let req = mcx_gms::client::group_document_request(&group, &p.token);
        let body = ok("GMS", p.gms_http.fetch("GMS", &req).await?)?;
        groups.push(mcx_gms::client::parse_group_document(&body)?);
    }
    Ok(groups)
}

/// Fetches `user_uri`'s keys for the key period containing `at_unix`
/// (e.g. the start of the next period, before it starts: the KMS issues
/// the current and the next period) from the KMS, validated against
/// `community` (and with `security`, the TS 33.180 D.1 extension). The GMS
/// uses this too.
///
/// # Errors
/// Network failures, refusals, answers that do not validate, and
/// [`mcx_kms::KmsError::NoKeySetForPeriod`] if the answer has no key set
/// for that period.
pub async fn fetch_keys_at(
    kms_uri: &str,
    user_uri: &str,
    token: &str,
    kms_http: &Servers,
    community: &CommunityPublic,
    at_unix: u64,
    security: Option<&mcx_kms::secext::SecurityKeys>,
) -> Result<UserKeys, ClientError> {
    let now = mcx_net::now().unix;
    let req = mcx_kms::client::key_prov_request_at(kms_uri, user_uri, token, now, at_unix);
    let body = ok("KMS", kms_http.fetch("KMS", &req).await?)?;
    let community = community.clone();
    let user = user_uri.to_owned();
    let security = security.cloned();
    tokio::task::spawn_blocking(move || {
        let period = mcx_ibc::uid::key_period_no(
            at_unix,
            community.key_period_len,
            community.key_period_offset,
        )
        .map_err(mcx_kms::KmsError::from)?;
        mcx_kms::client::parse_key_prov_response_all_with(
            &body,
            &community,
            &user,
            security.as_ref(),
        )?
        .into_iter()
        .find(|k| k.key_period_no == period)
        .ok_or(mcx_kms::KmsError::NoKeySetForPeriod(period))
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
    // Near a boundary, the next period's keys too: GKTPs and calls may
    // already be of the next period.
    let (community, keys, next_keys) = provision_key_periods(
        &p.kms_uri,
        &p.user_uri,
        &p.token,
        &p.kms_http,
        p.kms_security.as_ref(),
    )
    .await?;
    let groups = fetch_group_documents(p).await?;
    Ok(Provisioned {
        community,
        keys,
        next_keys,
        groups,
    })
}

/// Builds the client role from provisioned keys: validates the user keys
/// (both periods' near a boundary) and accepts every GKTP (signature by the GMS, decryption to this user).
/// CPU work: run it on the blocking pool.
///
/// # Errors
/// Keys or GKTPs that do not validate.
pub fn build_client(config: ClientConfig, p: Provisioned) -> Result<Client, ClientError> {
    let mut client = Client::new(config, p.community, p.keys)?;
    if let Some(keys) = p.next_keys {
        client.add_user_keys(keys)?;
    }
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

/// How often a running client polls the GMS for its groups' documents
/// ([`keep_gmks_fresh`]): a GMK rolled after a member's removal reaches
/// the remaining members within this time.
pub const DEFAULT_GMK_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// How long before the last of a group's GMKs expires a running client
/// fetches the next one (but not before half that GMK's lifetime, when
/// the GMS starts handing the next one out).
pub const DEFAULT_GMK_RENEWAL_LEAD: Duration = Duration::from_secs(600);

/// What one GMS poll changed in the client role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GmkRefresh {
    /// GKTPs accepted (a GMK already held counts again).
    pub accepted: usize,
    /// GKTPs refused, with the reason (never key material).
    pub refused: Vec<String>,
    /// Groups the GMS no longer lists for the user: their GMKs were
    /// dropped.
    pub left: Vec<String>,
}

/// `p` with the access token the running client holds now (the driver
/// keeps it fresh: tokens are short-lived), or `p`'s own (a static token);
/// `None` if the client stopped.
async fn with_current_token(
    p: &Provisioning,
    commander: &Commander<Client>,
) -> Option<Provisioning> {
    let current = ask(commander, |c, _| c.access_token().map(str::to_owned)).await?;
    let mut p = p.clone();
    if let Some(token) = current {
        p.token = token;
    }
    Some(p)
}

/// Polls the GMS once: fetches the user's group index and documents and
/// hands every GKTP to the running client role (which keeps several GMKs
/// per group with their activation and expiry); the GMKs of groups the
/// index no longer lists are dropped.
///
/// # Errors
/// Network failures, refusals and unparsable documents (nothing changes
/// in the role then); [`ClientError::Task`] if the node stopped.
pub async fn refresh_gmks(
    p: &Provisioning,
    commander: &Commander<Client>,
) -> Result<GmkRefresh, ClientError> {
    let docs = fetch_group_documents(p).await?;
    ask(commander, move |client, time| {
        let mut r = GmkRefresh::default();
        let listed: Vec<&str> = docs.iter().map(|d| d.group_id.as_str()).collect();
        for g in client.gmk_groups() {
            if !listed.contains(&g.as_str()) {
                client.forget_group(&g);
                r.left.push(g);
            }
        }
        for doc in &docs {
            for gktp in &doc.gktps {
                match client.accept_gmk(time, &doc.group_id, gktp) {
                    Ok(_) => r.accepted += 1,
                    Err(e) => r.refused.push(format!("{}: {e}", doc.group_id)),
                }
            }
        }
        r
    })
    .await
    .ok_or(ClientError::Task)
}

/// Runs `f` on the running role and returns its result (`None`: the node
/// stopped).
async fn ask<T: Send + 'static>(
    commander: &Commander<Client>,
    f: impl FnOnce(&mut Client, mcx_core::Time) -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    commander
        .command(move |client, time, _| {
            let _ = tx.send(f(client, time));
        })
        .ok()?;
    rx.await.ok()
}

/// Keeps a running client's GMKs fresh until its node stops: polls the
/// GMS ([`refresh_gmks`]) every `interval`, and sooner when the client's
/// GMKs come within `lead` of their expiry
/// ([`mcx_core::Client::next_gmk_refresh`]). A failed poll is logged and
/// tried again after `interval`.
pub async fn keep_gmks_fresh(
    p: Provisioning,
    commander: Commander<Client>,
    interval: Duration,
    lead: Duration,
) {
    loop {
        let asked = ask(&commander, move |c, time| {
            (c.next_gmk_refresh(lead), time.unix)
        });
        let Some((next, now)) = asked.await else {
            return;
        };
        let wait = match next {
            Some(at) if at > now => interval.min(Duration::from_secs(at - now)),
            _ => interval,
        };
        tokio::time::sleep(wait).await;
        let Some(p) = with_current_token(&p, &commander).await else {
            return;
        };
        match refresh_gmks(&p, &commander).await {
            Ok(r) => {
                for reason in &r.refused {
                    tracing::warn!(user = %p.user_uri, "GKTP refused: {reason}");
                }
                for g in &r.left {
                    tracing::info!(user = %p.user_uri, "no longer in {g}: its GMKs dropped");
                }
            }
            Err(ClientError::Task) => return,
            Err(e) => tracing::warn!(user = %p.user_uri, "GMK poll: {e}"),
        }
    }
}

/// How long before a KMS key period starts a running client fetches its
/// keys for it ([`keep_keys_fresh`]).
pub const DEFAULT_KEY_PERIOD_LEAD: Duration = Duration::from_secs(3600);

/// After a failed fetch, the wait before the next try.
const RETRY: Duration = Duration::from_secs(60);

/// Longest single wait: the clock is looked at again at least this often.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Keeps a running client's KMS keys ahead of the key period until its
/// node stops: `lead` before the period after the newest one held starts
/// ([`mcx_core::Client::next_key_refresh`]), fetches the keys for it
/// ([`fetch_keys_at`]) and hands them to the role
/// ([`mcx_core::Client::add_user_keys`]), which then holds both periods
/// across the boundary. A failed fetch is logged and tried again after a
/// minute.
pub async fn keep_keys_fresh(p: Provisioning, commander: Commander<Client>, lead: Duration) {
    let Some(community) = ask(&commander, |c, _| c.community().clone()).await else {
        return;
    };
    loop {
        let asked = ask(&commander, move |c, time| {
            (c.next_key_refresh(lead), time.unix)
        });
        let Some((Some((fetch_at, starts)), now)) = asked.await else {
            return;
        };
        if fetch_at > now {
            tokio::time::sleep(MAX_WAIT.min(Duration::from_secs(fetch_at - now))).await;
            continue;
        }
        let Some(p) = with_current_token(&p, &commander).await else {
            return;
        };
        let fetched = fetch_keys_at(
            &p.kms_uri,
            &p.user_uri,
            &p.token,
            &p.kms_http,
            &community,
            starts,
            p.kms_security.as_ref(),
        );
        let result = match fetched.await {
            Ok(keys) => match ask(&commander, move |c, _| c.add_user_keys(keys)).await {
                Some(added) => added.map_err(ClientError::from),
                None => return,
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(period) => tracing::info!(user = %p.user_uri, "KMS keys for key period {period}"),
            Err(ClientError::Task) => return,
            Err(e) => {
                tracing::warn!(user = %p.user_uri, "KMS keys for the next key period: {e}");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
