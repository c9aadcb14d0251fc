//! Temporary groups on demand (group regroup, TS 23.280 10.2.4), the
//! driver side: the GMS's notices to the controlling server, the
//! controlling server's endpoint that takes them, and the dispatcher's
//! formation and tear-down (`mcx call --groups`). The decisions are in
//! the sans-IO roles (`mcx_gms::regroup`, `ControllingServer::
//! add_temporary_group`); this module only carries them over HTTP(S).

use std::sync::Arc;
use std::time::Duration;

use mcx_core::{ControllingServer, Removal, TemporaryGroup};
use mcx_gms::regroup::{self as r, Handled, Notice};
use mcx_idms::jwt::TokenVerifier;
use mcx_kms::http::{HttpRequest, HttpResponse};
use mcx_net::http::Endpoint;
use mcx_net::node::Commander;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::topology::Topology;

/// Longest wait for the controlling server to take or drop a group; the
/// GMS answers the dispatcher 502 past it.
pub(crate) const NOTICE_TIMEOUT: Duration = Duration::from_secs(5);

/// The GMS's rights table from the topology (`regroup = [...]` per
/// user), or `None` if nobody may regroup.
pub(crate) fn gms_config(t: &Topology) -> Option<r::RegroupConfig> {
    let rights: Vec<r::RegroupRight> = t
        .users
        .iter()
        .filter(|u| !u.regroup.is_empty())
        .map(|u| r::RegroupRight {
            user: u.uri.clone(),
            groups: u.regroup.clone(),
        })
        .collect();
    (!rights.is_empty()).then_some(r::RegroupConfig {
        rights,
        max_lifetime_secs: t.gms.temporary_group_lifetime_secs,
    })
}

/// How the GMS reaches the controlling server: its HTTP(S) endpoint and
/// the GMS's own credential (an IdMS access token is fetched per notice,
/// so it is never stale).
#[derive(Clone)]
pub(crate) struct Notifier {
    runtime: tokio::runtime::Handle,
    topology: Arc<Topology>,
    controlling: Option<Endpoint>,
    idms: Option<Endpoint>,
}

impl Notifier {
    pub(crate) fn new(t: &Topology, controlling: Option<Endpoint>, idms: Option<Endpoint>) -> Self {
        Self {
            runtime: tokio::runtime::Handle::current(),
            topology: Arc::new(t.clone()),
            controlling,
            idms,
        }
    }

    /// Sends `notice(token)` and waits for a 2xx (runs on the HTTP
    /// adapter's blocking pool, where waiting is allowed).
    fn send(&self, notice: impl FnOnce(&str) -> HttpRequest) -> Result<(), String> {
        let Some(to) = self.controlling.clone() else {
            return Err("the topology gives the controlling server no http address".into());
        };
        let t = &self.topology;
        self.runtime.block_on(async {
            let token = crate::identity::token(t, self.idms.clone(), &t.gms.uri, &t.gms.token)
                .await
                .map_err(|e| format!("GMS login at the IdMS: {e}"))?;
            let request = notice(&token);
            let answer = tokio::time::timeout(NOTICE_TIMEOUT, mcx_net::http::fetch(to, &request))
                .await
                .map_err(|_| format!("no answer within {} s", NOTICE_TIMEOUT.as_secs()))?
                .map_err(|e| e.to_string())?;
            if (200..300).contains(&answer.status) {
                Ok(())
            } else {
                Err(format!(
                    "answered {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                ))
            }
        })
    }
}

/// Answers one GMS request; a formation or tear-down is answered only
/// after the controlling server took or dropped the group (at most
/// [`NOTICE_TIMEOUT`]). Other requests go on meanwhile; a group enters
/// the GMS's list only once the controlling server holds it.
pub(crate) fn answer_gms(
    gms: &mcx_gms::Gms,
    request: &HttpRequest,
    notifier: &Notifier,
) -> HttpResponse {
    match gms.handle_request(request, mcx_net::now().unix, &mut mcx_net::os_rng()) {
        Handled::Answer(a) => a,
        Handled::Form(f) => {
            let delivered = notifier.send(|token| r::formed_notice(&f.group, token));
            match &delivered {
                Ok(()) => tracing::info!(
                    "GMS: temporary group {} formed by {} over {}",
                    f.group.id,
                    f.group.formed_by,
                    f.group.constituents.join(", ")
                ),
                Err(e) => tracing::warn!("GMS: temporary group {} not formed: {e}", f.group.id),
            }
            gms.complete_formation(f, delivered)
        }
        Handled::Dissolve(d) => {
            let delivered = notifier.send(|token| r::dissolved_notice(&d.group_id, token));
            gms.complete_dissolution(d, delivered)
        }
    }
}

/// Who may send notices to the controlling server: the GMS only.
enum NoticeAuth {
    /// No IdMS: the GMS's static bearer token.
    Static(Zeroizing<String>),
    /// An IdMS access token whose `mcptt_id` is the GMS.
    Idms(TokenVerifier, String),
}

impl NoticeAuth {
    fn check(&self, request: &HttpRequest) -> Result<(), HttpResponse> {
        let token = request
            .bearer_token()
            .ok_or_else(|| HttpResponse::error(401, "missing bearer token"))?;
        match self {
            Self::Static(expected) => {
                if ct_eq(expected.as_bytes(), token.as_bytes()) {
                    Ok(())
                } else {
                    Err(HttpResponse::error(401, "invalid bearer token"))
                }
            }
            Self::Idms(v, gms) => {
                let claims = v
                    .verify(token, mcx_idms::SCOPE_PTT, mcx_net::now().unix)
                    .map_err(|e| HttpResponse::error(401, &format!("access token refused: {e}")))?;
                if &claims.mcptt_id == gms {
                    Ok(())
                } else {
                    Err(HttpResponse::error(
                        403,
                        "only the GMS may form temporary groups",
                    ))
                }
            }
        }
    }
}

/// Bytes equal, in time independent of where they differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the controlling server's temporary group resources
/// (`PUT`/`DELETE /temporary-groups/<id>`, from the GMS only) on
/// `listener`, handing each to the role through `commander`.
pub(crate) fn serve_controlling(
    t: &Topology,
    listener: TcpListener,
    https: Option<Arc<mcx_tls::rustls::ServerConfig>>,
    commander: Commander<ControllingServer>,
) -> Result<JoinHandle<()>, CliError> {
    let auth = match crate::identity::verifier(t)? {
        Some(v) => NoticeAuth::Idms(v, t.gms.uri.clone()),
        None => NoticeAuth::Static(Zeroizing::new(t.gms.token.clone())),
    };
    let topology = Arc::new(t.clone());
    let runtime = tokio::runtime::Handle::current();
    let handler: mcx_server::Handler = Arc::new(move |req| {
        if let Err(refused) = auth.check(&req) {
            return refused;
        }
        let notice = match r::parse_notice(&req) {
            Ok(n) => n,
            Err(refused) => return refused,
        };
        runtime.block_on(take_notice(&topology, &commander, notice))
    });
    Ok(match https {
        Some(tls) => {
            mcx_server::serve_https_with(listener, handler, mcx_server::HttpLimits::default(), tls)
        }
        None => mcx_server::serve_http(listener, handler),
    })
}

async fn take_notice(
    t: &Topology,
    commander: &Commander<ControllingServer>,
    notice: Notice,
) -> HttpResponse {
    let unavailable = |e: mcx_net::NetError| HttpResponse::error(503, &format!("role: {e}"));
    match notice {
        Notice::Formed {
            id,
            constituents,
            expires_unix,
        } => {
            let mut with_servers = Vec::with_capacity(constituents.len());
            for g in constituents {
                let Some(server) = t.owner_of(&g) else {
                    return HttpResponse::error(404, &format!("no MC server owns group {g}"));
                };
                with_servers.push((g, server.uri.clone()));
            }
            let group = TemporaryGroup {
                id,
                constituents: with_servers,
            };
            match commander
                .query(move |c, time, _| c.add_temporary_group(group, Some(expires_unix), time))
                .await
            {
                Ok(Ok(())) => HttpResponse::with_body(201, "text/plain", b"taken\n".to_vec()),
                Ok(Err(e @ mcx_core::TemporaryGroupError::Exists(_))) => {
                    HttpResponse::error(409, &e.to_string())
                }
                Ok(Err(e)) => HttpResponse::error(400, &e.to_string()),
                Err(e) => unavailable(e),
            }
        }
        Notice::Dissolved { id } => {
            match commander
                .query(move |c, _, _| c.remove_temporary_group(&id))
                .await
            {
                // Gone already (its call ended) counts as done: the GMS
                // may forget it either way.
                Ok(removal) => {
                    let what = match removal {
                        Removal::Removed => "removed\n",
                        Removal::AfterCall => "removed when its call ends\n",
                        Removal::Unknown => "not held (its call ended or it expired)\n",
                    };
                    HttpResponse::with_body(200, "text/plain", what.as_bytes().to_vec())
                }
                Err(e) => unavailable(e),
            }
        }
    }
}

/// The dispatcher forms a temporary group of `groups` through the GMS at
/// `gms` with its bearer `token`; returns the temporary group ID.
pub(crate) async fn form(
    gms: Endpoint,
    groups: &[String],
    token: &str,
) -> Result<String, CliError> {
    let answer = mcx_net::http::fetch(gms, &r::regroup_request(groups, token))
        .await
        .map_err(|e| CliError::System(format!("forming the temporary group: {e}")))?;
    let doc = r::parse_regroup_response(&answer)
        .map_err(|e| CliError::System(format!("the GMS refused the temporary group: {e}")))?;
    Ok(doc.group_id)
}

/// The dispatcher tears a temporary group down through the GMS.
pub(crate) async fn dissolve(gms: Endpoint, id: &str, token: &str) -> Result<(), CliError> {
    let answer = mcx_net::http::fetch(gms, &r::dissolve_request(id, token))
        .await
        .map_err(|e| CliError::System(format!("dissolving {id}: {e}")))?;
    if answer.status == 200 {
        Ok(())
    } else {
        Err(CliError::System(format!(
            "dissolving {id}: the GMS answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )))
    }
}
