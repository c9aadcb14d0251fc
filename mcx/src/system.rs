//! Starting the roles of a topology: in one process (`mcx up`, `mcx
//! demo`) or one role per process (`mcx run`). Wiring only: the roles are
//! `mcx-core`'s, the services `mcx-kms`'s and `mcx-gms`'s, the I/O
//! `mcx-net`/`mcx-server`/`mcx-client`'s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use mcx_core::{
    Client, ClientConfig, ClientEvent, ControllingEvent, ControllingServer,
    ControllingServerConfig, McServer, McServerEvent, McServerLimits, MediaEndpoint,
    TemporaryGroup, TimelineEntry,
};
use mcx_kms::http::{HttpRequest, HttpResponse};
use mcx_net::http::Endpoint;
use mcx_net::node::{BoundNode, InviteSource, NodeHandle, NodeLimits};
use mcx_net::{Directory, Peer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::CliError;
use crate::tls::TlsMaterial;
use crate::topology::{McServerNode, Topology, User};

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(what.to_string())
}

/// Sockets of every role of a topology, bound.
pub(crate) struct Bound {
    pub(crate) idms: Option<TcpListener>,
    /// The IdMS's HTTP address, if the topology has one.
    pub(crate) idms_http: Option<SocketAddr>,
    pub(crate) kms: Option<TcpListener>,
    pub(crate) gms: Option<TcpListener>,
    pub(crate) controlling: Option<BoundNode>,
    /// The controlling server's notice endpoint (group regroup), if here.
    pub(crate) controlling_http: Option<TcpListener>,
    /// Its address (bound here, or the topology's), if it has one.
    pub(crate) controlling_http_addr: Option<SocketAddr>,
    pub(crate) mc_servers: BTreeMap<String, BoundNode>,
    pub(crate) clients: BTreeMap<String, BoundNode>,
    pub(crate) kms_http: SocketAddr,
    pub(crate) gms_http: SocketAddr,
    pub(crate) directory: Directory,
    /// The certificates of the roles bound here, if the topology has `[tls]`.
    pub(crate) tls: Option<TlsMaterial>,
}

/// The ports a capture of this process's roles needs, by protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CapturePorts {
    /// SIP (UDP), floor control and voice.
    pub(crate) udp: Vec<u16>,
    /// SIP (TCP) and the KMS's and GMS's HTTP.
    pub(crate) tcp: Vec<u16>,
}

impl Bound {
    /// Every port this process's roles send from or listen on: each SIP
    /// node's SIP port (UDP and TCP: a node binds both whatever its
    /// transport), floor and voice ports (servers' relays included), and
    /// the HTTP ports of the KMS and GMS (clients provision from them
    /// over ephemeral TCP ports, caught by the server's port).
    pub(crate) fn capture_ports(&self) -> Result<CapturePorts, CliError> {
        let mut p = CapturePorts::default();
        p.tcp.push(self.kms_http.port());
        p.tcp.push(self.gms_http.port());
        p.tcp.extend(self.idms_http.map(|a| a.port()));
        let nodes = self
            .controlling
            .iter()
            .chain(self.mc_servers.values())
            .chain(self.clients.values());
        for node in nodes {
            let sip = node.peer().map_err(failed)?.sip.port();
            let media = node.media_endpoint().map_err(failed)?;
            p.udp.push(sip);
            p.tcp.push(sip);
            // Port 9 stands for "not bound" in the SDP: nothing to capture.
            p.udp.extend(
                [media.rtp_port, media.floor_port]
                    .into_iter()
                    .filter(|&q| q != 9),
            );
        }
        for ports in [&mut p.udp, &mut p.tcp] {
            ports.sort_unstable();
            ports.dedup();
        }
        Ok(p)
    }
}

/// Which roles this process runs.
#[derive(Clone, Debug)]
pub(crate) enum Selection {
    /// Everything (`mcx up`, `mcx demo`).
    All,
    /// One role by name: `kms`, `gms`, `controlling`, an MC server URI or a
    /// user URI.
    One(String),
}

impl Selection {
    pub(crate) fn wants(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::One(n) => n == name,
        }
    }
}

async fn listen(addr: SocketAddr, what: &str) -> Result<TcpListener, CliError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| failed(format!("{what}: cannot listen on {addr}: {e}")))
}

/// Binds a node's SIP and floor sockets and its voice socket (on the SIP
/// address, any free port: the SDP tells peers which).
async fn bind_node(
    uri: &str,
    sip: SocketAddr,
    transport: crate::topology::TransportName,
    floor: Option<SocketAddr>,
) -> Result<BoundNode, CliError> {
    let mut b = BoundNode::bind(sip, transport.transport(), floor)
        .await
        .map_err(|e| failed(format!("{uri}: {e}")))?;
    b.bind_media(SocketAddr::new(sip.ip(), 0))
        .map_err(|e| failed(format!("{uri}: {e}")))?;
    Ok(b)
}

fn static_peer(
    sip: SocketAddr,
    transport: crate::topology::TransportName,
    floor: Option<SocketAddr>,
) -> Peer {
    Peer {
        sip,
        transport: transport.transport(),
        floor,
    }
}

/// Binds the sockets of the selected roles and builds the directory
/// (bound addresses for ours, configured addresses for the others).
pub(crate) async fn bind(t: &Topology, sel: &Selection) -> Result<Bound, CliError> {
    let tls = TlsMaterial::for_topology(t, sel)?;
    let mut directory = Directory::new();
    let (idms, idms_http) = match &t.idms {
        Some(i) if sel.wants("idms") => {
            let l = listen(i.http, "IdMS").await?;
            let a = l.local_addr().map_err(|e| failed(format!("IdMS: {e}")))?;
            (Some(l), Some(a))
        }
        Some(i) => (None, Some(i.http)),
        None => (None, None),
    };
    let (kms, kms_http) = if sel.wants("kms") {
        let l = listen(t.kms.http, "KMS").await?;
        let a = l.local_addr().map_err(|e| failed(format!("KMS: {e}")))?;
        (Some(l), a)
    } else {
        (None, t.kms.http)
    };
    let (gms, gms_http) = if sel.wants("gms") {
        let l = listen(t.gms.http, "GMS").await?;
        let a = l.local_addr().map_err(|e| failed(format!("GMS: {e}")))?;
        (Some(l), a)
    } else {
        (None, t.gms.http)
    };
    let c = &t.controlling;
    let controlling = if sel.wants("controlling") || sel.wants(&c.uri) {
        let b = bind_node(&c.uri, c.sip, c.transport, Some(c.floor)).await?;
        directory.insert(&c.uri, b.peer().map_err(failed)?);
        Some(b)
    } else {
        directory.insert(&c.uri, static_peer(c.sip, c.transport, Some(c.floor)));
        None
    };
    let (controlling_http, controlling_http_addr) = match c.http {
        Some(addr) if controlling.is_some() => {
            let l = listen(addr, "controlling server").await?;
            let a = l
                .local_addr()
                .map_err(|e| failed(format!("controlling server: {e}")))?;
            (Some(l), Some(a))
        }
        addr => (None, addr),
    };
    let mut mc_servers = BTreeMap::new();
    for s in &t.mc_servers {
        if sel.wants(&s.uri) {
            let b = bind_node(&s.uri, s.sip, s.transport, Some(s.floor_addr())).await?;
            directory.insert(&s.uri, b.peer().map_err(failed)?);
            mc_servers.insert(s.uri.clone(), b);
        } else {
            directory.insert(
                &s.uri,
                static_peer(s.sip, s.transport, Some(s.floor_addr())),
            );
        }
    }
    let mut clients = BTreeMap::new();
    for u in &t.users {
        if sel.wants(&u.uri) {
            let b = bind_node(&u.uri, u.sip, u.transport, Some(u.floor)).await?;
            directory.insert(&u.uri, b.peer().map_err(failed)?);
            clients.insert(u.uri.clone(), b);
        } else {
            directory.insert(&u.uri, static_peer(u.sip, u.transport, Some(u.floor)));
        }
    }
    Ok(Bound {
        idms,
        idms_http,
        kms,
        gms,
        controlling,
        controlling_http,
        controlling_http_addr,
        mc_servers,
        clients,
        kms_http,
        gms_http,
        directory,
        tls,
    })
}

/// A KMS or GMS store this process closes at shutdown (checkpoint and
/// close, with the error reported), rather than leaving it to be dropped
/// silently when the runtime goes.
pub(crate) struct OpenStore {
    what: &'static str,
    close: Box<dyn FnOnce() -> Result<(), String> + Send>,
}

/// Serves `service` over HTTP. The service sits in a slot requests
/// borrow shared (they run concurrently; the KMS and GMS lock only their
/// own state); closing the store takes it out (after the requests in
/// progress), so that later requests get 503 instead of touching a closed
/// database.
fn serve_closable<S, E>(
    what: &'static str,
    listener: TcpListener,
    https: Option<Arc<mcx_tls::rustls::ServerConfig>>,
    service: S,
    handle: impl Fn(&S, &HttpRequest) -> HttpResponse + Send + Sync + 'static,
    close: fn(S) -> Result<(), E>,
) -> (JoinHandle<()>, OpenStore)
where
    S: Send + Sync + 'static,
    E: std::fmt::Display + 'static,
{
    let slot = Arc::new(RwLock::new(Some(service)));
    let served = slot.clone();
    let handler: mcx_server::Handler = Arc::new(move |req| {
        // A request that panicked the service poisons the lock; the state
        // itself is in SQLite, committed or not, so go on serving.
        match served
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            Some(s) => handle(s, &req),
            None => HttpResponse::error(503, "shutting down"),
        }
    });
    let store = OpenStore {
        what,
        close: Box::new(move || {
            let taken = slot.write().unwrap_or_else(PoisonError::into_inner).take();
            taken.map_or(Ok(()), |s| close(s).map_err(|e| e.to_string()))
        }),
    };
    let handler = crate::admin::metered(if what == "KMS" { "kms" } else { "gms" }, handler);
    let task = match https {
        Some(tls) => {
            mcx_server::serve_https_with(listener, handler, mcx_server::HttpLimits::default(), tls)
        }
        None => mcx_server::serve_http(listener, handler),
    };
    (task, store)
}

/// Warns on stderr that a service keeps its state in memory: a restart
/// makes a new community (KMS) or new GMKs (GMS), and every client
/// provisioned before it no longer interworks with those provisioned
/// after.
fn warn_in_memory(what: &str, location: mcx_kms::StoreLocation<'_>) {
    if matches!(location, mcx_kms::StoreLocation::Memory) {
        eprintln!(
            "warning: {what}: no `database` in the topology; its state is in memory and will not survive a restart (clients provisioned before a restart will not interwork with those provisioned after)"
        );
    }
}

/// The operator's store key of a node: its topology's `store_key_file`,
/// else `MCX_STORE_KEY` / `MCX_STORE_KEY_FILE`. A store in memory needs
/// none (it seals under a random key that dies with the process); a
/// database file without one is refused with the error naming the ways
/// to give it.
fn store_key(
    what: &str,
    location: mcx_kms::StoreLocation<'_>,
    key_file: Option<&std::path::Path>,
) -> Result<Option<mcx_kms::StoreKey>, CliError> {
    let key = match key_file {
        Some(path) => mcx_kms::StoreKey::read_file(path).map(Some),
        None if matches!(location, mcx_kms::StoreLocation::Memory) => return Ok(None),
        None => mcx_kms::StoreKey::from_env().map(Some),
    };
    key.map_err(|e| failed(format!("{what}: {e}")))
}

/// A service's instances as the roles of this process reach them: at
/// `first` (the address this process bound, or the configured one), then
/// at the topology's `replicas` (instances on the same PostgreSQL
/// database), failing over in that order.
fn servers(
    tls: Option<&TlsMaterial>,
    first: SocketAddr,
    replicas: &[SocketAddr],
    uri: &str,
) -> Result<mcx_client::Servers, CliError> {
    let mut list = vec![crate::tls::endpoint(tls, first, uri)?];
    for r in replicas.iter().filter(|r| **r != first) {
        list.push(crate::tls::endpoint(tls, *r, uri)?);
    }
    Ok(mcx_client::Servers::new(list))
}

/// Where a KMS or GMS keeps its state: the PostgreSQL database the
/// environment variable `env` or the topology's `database_url` names
/// (the variable wins), else the SQLite `database` file, else memory.
/// Returns the URL too (the location borrows it).
fn store_url(
    what: &str,
    env: &str,
    in_topology: Option<&crate::topology::DatabaseUrlText>,
) -> Result<Option<mcx_kms::DatabaseUrl>, CliError> {
    let from_env =
        mcx_kms::DatabaseUrl::from_env(env).map_err(|e| failed(format!("{what}: {e}")))?;
    let url = match from_env {
        Some(url) => Some(url),
        None => in_topology
            .map(crate::topology::DatabaseUrlText::parse)
            .transpose()
            .map_err(|e| failed(format!("{what}: database_url: {e}")))?,
    };
    if let Some(url) = &url {
        // Display leaves the password out.
        eprintln!("{what}: state in PostgreSQL at {url}");
    }
    Ok(url)
}

fn location<'a>(
    url: Option<&'a mcx_kms::DatabaseUrl>,
    database: Option<&'a std::path::Path>,
) -> mcx_kms::StoreLocation<'a> {
    url.map_or_else(|| database.into(), mcx_kms::StoreLocation::Postgres)
}

/// Opens the KMS and serves it.
pub(crate) fn start_kms(
    t: &Topology,
    listener: TcpListener,
    https: Option<Arc<mcx_tls::rustls::ServerConfig>>,
) -> Result<(JoinHandle<()>, OpenStore), CliError> {
    let url = store_url(
        "KMS",
        mcx_kms::db::KMS_DATABASE_URL_ENV,
        t.kms.database_url.as_ref(),
    )?;
    let location = location(url.as_ref(), t.kms.database.as_deref());
    warn_in_memory("KMS", location);
    let mut users: Vec<mcx_kms::KmsUser> = t
        .users
        .iter()
        .map(|u| mcx_kms::KmsUser {
            uri: u.uri.clone(),
            token: u.token.clone(),
            security: u.kms_security(),
        })
        .collect();
    users.push(mcx_kms::KmsUser {
        uri: t.gms.uri.clone(),
        token: t.gms.token.clone(),
        security: None,
    });
    // The servers' identities: clients encrypt their CSKs to them.
    users.push(mcx_kms::KmsUser {
        uri: t.controlling.uri.clone(),
        token: Topology::server_token(&t.controlling.uri, t.controlling.token.as_ref()),
        security: None,
    });
    for s in &t.mc_servers {
        users.push(mcx_kms::KmsUser {
            uri: s.uri.clone(),
            token: Topology::server_token(&s.uri, s.token.as_ref()),
            security: None,
        });
    }
    let config = mcx_kms::KmsConfig {
        kms_uri: t.kms.uri.clone(),
        key_period_len: t.kms.key_period_len,
        key_period_offset: t.kms.key_period_offset,
        users,
    };
    let key = store_key("KMS", location, t.kms.store_key_file.as_deref())?;
    // Off the async threads: the PostgreSQL client blocks on a runtime
    // of its own, which may not start inside this one.
    let mut kms = std::thread::scope(|s| {
        s.spawn(|| mcx_kms::Kms::open_at(location, key.as_ref(), config, &mut mcx_net::os_rng()))
            .join()
    })
    .map_err(|_| failed("KMS: start-up failed"))?
    .map_err(|e| failed(format!("KMS: {e}")))?;
    if let Some(v) = crate::identity::verifier(t)? {
        kms.require_access_tokens(v);
    }
    Ok(serve_closable(
        "KMS",
        listener,
        https,
        kms,
        |k, req| k.handle(req, mcx_net::now().unix),
        mcx_kms::Kms::close,
    ))
}

/// Provisions the GMS's own keys from the KMS, opens the GMS and serves it.
pub(crate) async fn start_gms(
    t: &Topology,
    listener: TcpListener,
    https: Option<Arc<mcx_tls::rustls::ServerConfig>>,
    kms_http: mcx_client::Servers,
    idms_http: Option<Endpoint>,
    controlling_http: Option<Endpoint>,
) -> Result<(JoinHandle<()>, OpenStore), CliError> {
    let url = store_url(
        "GMS",
        mcx_kms::db::GMS_DATABASE_URL_ENV,
        t.gms.database_url.as_ref(),
    )?;
    warn_in_memory("GMS", location(url.as_ref(), t.gms.database.as_deref()));
    let notifier = crate::regroup::Notifier::new(t, controlling_http, idms_http.clone());
    let token = crate::identity::token(t, idms_http, &t.gms.uri, &t.gms.token)
        .await
        .map_err(|e| failed(format!("GMS login at the IdMS: {e}")))?;
    // The GMS may start before the KMS, like any client of it.
    let (community, keys) = with_retries(&t.gms.uri, "KMS", || {
        mcx_client::provision_keys(&t.kms.uri, &t.gms.uri, &token, &kms_http, None)
    })
    .await
    .map_err(|e| failed(format!("GMS provisioning from the KMS: {e}")))?;
    // Its keys for the next key period too, so that GKTPs go on past the
    // boundary (docs/key-lifecycle.md: one boundary; no refresh loop yet).
    let next = mcx_ibc::uid::key_period_start(
        keys.key_period_no + 1,
        community.key_period_len,
        community.key_period_offset,
    )
    .map_err(|e| failed(format!("GMS: next key period: {e}")))?;
    let next_keys = mcx_client::fetch_keys_at(
        &t.kms.uri, &t.gms.uri, &token, &kms_http, &community, next, None,
    )
    .await
    .map_err(|e| failed(format!("GMS keys for the next key period: {e}")))?;
    let config = mcx_gms::GmsConfig {
        gms_uri: t.gms.uri.clone(),
        groups: t
            .groups
            .iter()
            .map(|g| mcx_gms::GroupConfig {
                id: g.id.clone(),
                display_name: g.name.clone(),
                members: g.members.clone(),
            })
            .collect(),
        users: t
            .users
            .iter()
            .map(|u| mcx_gms::GmsUser {
                uri: u.uri.clone(),
                token: u.token.clone(),
            })
            .collect(),
        gmk_lifetime_secs: t.gms.gmk_lifetime_secs,
    };
    let db = t.gms.database.clone();
    let key = store_key(
        "GMS",
        location(url.as_ref(), db.as_deref()),
        t.gms.store_key_file.as_deref(),
    )?;
    let mut gms = tokio::task::spawn_blocking(move || {
        let mut gms = mcx_gms::Gms::open_at(
            location(url.as_ref(), db.as_deref()),
            key.as_ref(),
            config,
            community,
            keys,
            mcx_net::now().unix,
            &mut mcx_net::os_rng(),
        )?;
        gms.add_gms_keys(next_keys)?;
        Ok::<_, mcx_gms::GmsError>(gms)
    })
    .await
    .map_err(|_| failed("GMS: start-up task failed"))?
    .map_err(|e| failed(format!("GMS: {e}")))?;
    if let Some(v) = crate::identity::verifier(t)? {
        gms.require_access_tokens(v);
    }
    if let Some(regroup) = crate::regroup::gms_config(t) {
        gms.set_regroup(regroup)
            .map_err(|e| failed(format!("GMS: {e}")))?;
    }
    Ok(serve_closable(
        "GMS",
        listener,
        https,
        gms,
        move |g, req| crate::regroup::answer_gms(g, req, &notifier),
        mcx_gms::Gms::close,
    ))
}

/// The controlling server's role.
pub(crate) fn controlling_role(t: &Topology, media: MediaEndpoint) -> ControllingServer {
    let c = &t.controlling;
    let mut config = ControllingServerConfig::new(
        c.uri.clone(),
        c.allowed_initiators.clone(),
        c.temporary_groups
            .iter()
            .map(|tg| TemporaryGroup {
                id: tg.id.clone(),
                constituents: tg
                    .groups
                    .iter()
                    .filter_map(|g| Some((g.clone(), t.owner_of(g)?.uri.clone())))
                    .collect(),
            })
            .collect(),
    );
    config.group_deadline = t.deadlines.group();
    config.max_call_duration = t.deadlines.max_call();
    config.keepalive_interval = t.deadlines.keepalive();
    config.leg_silence = t.deadlines.leg_silence();
    config.max_calls = t.limits.controlling_calls;
    config.media = media;
    let mut role = ControllingServer::new(config);
    if let Ok(Some(v)) = crate::identity::verifier(t) {
        role.require_access_tokens(v);
    }
    role
}

/// An MC server's role.
pub(crate) fn mc_server_role(t: &Topology, s: &McServerNode, media: MediaEndpoint) -> McServer {
    let mut m = McServer::new(s.uri.clone());
    m.set_media(media);
    if let Ok(Some(v)) = crate::identity::verifier(t) {
        m.require_access_tokens(v);
    }
    m.trust_controlling_server(t.controlling.uri.clone());
    m.set_limits(McServerLimits {
        member_deadline: t.deadlines.member(),
        max_call_duration: t.deadlines.max_call(),
        max_calls: t.limits.mc_server_calls,
        // The controlling server probes us every keepalive_ms: twice its
        // own silence limit without a word means it is gone.
        upstream_silence: if t.deadlines.keepalive_ms == 0 {
            std::time::Duration::ZERO
        } else {
            t.deadlines.leg_silence() * 2
        },
        answer: s.answer.into(),
        floor_ack_required: t.limits.member_floor_ack,
        ..McServerLimits::default()
    });
    for g in &s.groups {
        if let Some(group) = t.group(g) {
            m.add_group(g.clone(), group.members.clone());
        }
    }
    m
}

/// The address book of MC server `s`: the controlling server, the MC
/// servers and the members of its groups, the only nodes it talks to (a
/// REGISTER or floor packet from anyone else is refused or dropped as
/// before; its answers go back where the request came from).
pub(crate) fn mc_server_directory(t: &Topology, s: &McServerNode, all: &Directory) -> Directory {
    let members = s
        .groups
        .iter()
        .filter_map(|g| t.group(g))
        .flat_map(|g| g.members.iter().map(String::as_str));
    let servers = t.mc_servers.iter().map(|m| m.uri.as_str());
    all.restricted_to(
        std::iter::once(t.controlling.uri.as_str())
            .chain(servers)
            .chain(members),
    )
}

/// The caps of a node. A node given `call_sources` takes new calls only
/// from their SIP addresses: an MC server from the controlling server, a
/// member from the MC servers of its groups (a replayed call request from
/// anywhere else never reaches it).
pub(crate) fn node_limits(
    t: &Topology,
    directory: &Directory,
    call_sources: Option<&[String]>,
) -> NodeLimits {
    let l = t.limits;
    let invite_sources = call_sources.map(|uris| {
        uris.iter()
            .filter_map(|u| Some((u, directory.peer(u)?)))
            .map(|(u, p)| InviteSource::with_identity(p.sip, u.clone()))
            .collect()
    });
    NodeLimits {
        max_tcp_connections: l.max_tcp_connections,
        tcp_idle: std::time::Duration::from_secs(l.tcp_idle_s),
        tcp_message_timeout: std::time::Duration::from_secs(l.tcp_message_s),
        max_messages_per_sec_per_peer: l.peer_rate,
        peer_burst: l.peer_burst.max(1),
        invite_sources,
        ..NodeLimits::default()
    }
}

/// A client's configuration.
pub(crate) fn client_config(t: &Topology, u: &User, media: MediaEndpoint) -> ClientConfig {
    let mut c = ClientConfig::new(
        u.uri.clone(),
        t.controlling.uri.clone(),
        t.gms.uri.clone(),
        u.allowed_initiators
            .clone()
            .unwrap_or_else(|| t.controlling.allowed_initiators.clone()),
    );
    c.call_timeout = t.deadlines.call();
    c.media = media;
    // Its home server: the controlling server for an initiator (its floor
    // control runs there), else the MC server of its first group.
    c.home_server = if t.controlling.allowed_initiators.contains(&u.uri) {
        Some(t.controlling.uri.clone())
    } else {
        t.groups
            .iter()
            .find(|g| g.members.contains(&u.uri))
            .and_then(|g| t.owner_of(&g.id))
            .map(|s| s.uri.clone())
    };
    // Calls reach a member through the MC servers of its groups only.
    c.call_sources = t
        .groups
        .iter()
        .filter(|g| g.members.contains(&u.uri))
        .filter_map(|g| t.owner_of(&g.id))
        .map(|s| s.uri.clone())
        .collect();
    c.call_sources.dedup();
    c.call_lifetime = t.deadlines.max_call();
    c.max_calls = t.limits.client_calls;
    c
}

/// Logs a server's events (refusals as warnings, with their reasons) so
/// that nobody has to read them and they do not pile up.
pub(crate) fn log_events<E: std::fmt::Debug + Send + 'static>(
    role: &str,
    mut events: mpsc::UnboundedReceiver<E>,
    is_refusal: impl Fn(&E) -> bool + Send + 'static,
    count: fn(&mcx_metrics::Metrics, &str, &E),
) {
    let role = role.to_owned();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            count(crate::admin::metrics(), &role, &e);
            if is_refusal(&e) {
                tracing::warn!("{role}: {e:?}");
            } else {
                tracing::info!("{role}: {e:?}");
            }
        }
    });
}

/// Aborts a task when dropped (the admin API of `mcx run`).
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running topology (or the part of it this process runs).
pub(crate) struct Running {
    pub(crate) services: Vec<JoinHandle<()>>,
    /// The KMS and GMS stores, closed by [`shutdown`].
    pub(crate) stores: Vec<OpenStore>,
    pub(crate) controlling: Option<NodeHandle<ControllingServer>>,
    pub(crate) mc_servers: BTreeMap<String, NodeHandle<McServer>>,
    pub(crate) clients: BTreeMap<String, NodeHandle<Client>>,
    pub(crate) timeline: mpsc::UnboundedReceiver<TimelineEntry>,
    pub(crate) kms_http: SocketAddr,
    pub(crate) gms_http: SocketAddr,
    /// The IdMS's address, if the topology has one.
    pub(crate) idms_http: Option<SocketAddr>,
    /// The IdMS, KMS and GMS serve HTTPS.
    pub(crate) https: bool,
    /// How this process reaches the GMS and the IdMS (if any): for the
    /// dispatcher's temporary group formation.
    pub(crate) gms_endpoint: Endpoint,
    pub(crate) idms_endpoint: Option<Endpoint>,
    pub(crate) directory: Arc<Directory>,
    /// How long client provisioning took (all clients, concurrently).
    pub(crate) provisioning: std::time::Duration,
    /// Each running client's voice socket (the address its SDP announces).
    pub(crate) voice: BTreeMap<String, Arc<tokio::net::UdpSocket>>,
    /// The HTTP services this process runs, and their sockets.
    pub(crate) services_here: Vec<(&'static str, SocketAddr)>,
    /// The controlling server's URI (whether it runs here or not).
    pub(crate) controlling_uri: String,
}

impl Running {
    /// The roles here, as the admin API reaches them.
    pub(crate) fn admin_roles(&self) -> crate::admin::AdminRoles {
        crate::admin::AdminRoles {
            controlling: self
                .controlling
                .iter()
                .map(|h| (self.controlling_uri.clone(), h.commander()))
                .collect(),
            mc_servers: self
                .mc_servers
                .iter()
                .map(|(u, h)| (u.clone(), h.commander()))
                .collect(),
            clients: self
                .clients
                .iter()
                .map(|(u, h)| (u.clone(), h.commander()))
                .collect(),
            services: self.services_here.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for s in &self.services {
            s.abort();
        }
    }
}

/// Starts the selected roles: services first, then servers, then clients
/// (which provision from the KMS and the GMS).
pub(crate) async fn start(t: &Topology, sel: &Selection) -> Result<Running, CliError> {
    start_bound(t, bind(t, sel).await?).await
}

/// [`start`] on sockets already bound: for a caller that must know every
/// port before the first packet (`mcx demo --pcap` starts its capture in
/// between).
pub(crate) async fn start_bound(t: &Topology, bound: Bound) -> Result<Running, CliError> {
    let kms_here = bound.kms.is_some();
    let tls = bound.tls;
    let https = t.tls.as_ref().is_some_and(|s| s.https);
    let kms_servers = servers(tls.as_ref(), bound.kms_http, &t.kms.replicas, &t.kms.uri)?;
    let gms_servers = servers(tls.as_ref(), bound.gms_http, &t.gms.replicas, &t.gms.uri)?;
    let gms_endpoint = crate::tls::endpoint(tls.as_ref(), bound.gms_http, &t.gms.uri)?;
    let idms_endpoint = match (&t.idms, bound.idms_http) {
        (Some(i), Some(addr)) => Some(crate::tls::endpoint(tls.as_ref(), addr, &i.uri)?),
        _ => None,
    };
    // A node gets its TLS if the topology has any: it may speak TLS
    // itself, or send to peers that do.
    let with_tls = |b: BoundNode, role: &str, server: bool| -> Result<BoundNode, CliError> {
        Ok(match &tls {
            Some(m) => b.with_tls(m.node(role, server)?),
            None => b,
        })
    };
    let https_of = |role: &str| match &tls {
        Some(m) => m.https_server(role),
        None => Ok(None),
    };
    let directory = Arc::new(bound.directory);
    let timers = t.sip_timers.timers();
    let (timeline_tx, timeline) = mpsc::unbounded_channel();
    let mut services = Vec::new();
    let mut stores = Vec::new();
    let mut services_here = Vec::new();
    if bound.idms.is_some()
        && let Some(a) = bound.idms_http
    {
        services_here.push(("idms", a));
    }
    if bound.kms.is_some() {
        services_here.push(("kms", bound.kms_http));
    }
    if bound.gms.is_some() {
        services_here.push(("gms", bound.gms_http));
    }
    if let Some(l) = bound.idms {
        services.push(crate::identity::start_idms(t, l, https_of("idms")?)?);
    }
    if let Some(l) = bound.kms {
        let (task, store) = start_kms(t, l, https_of("kms")?)?;
        services.push(task);
        stores.push(store);
    }
    if let Some(l) = bound.gms {
        let (task, store) = start_gms(
            t,
            l,
            https_of("gms")?,
            kms_servers.clone(),
            idms_endpoint.clone(),
            bound
                .controlling_http_addr
                .map(|a| crate::tls::endpoint(tls.as_ref(), a, &t.controlling.uri))
                .transpose()?,
        )
        .await?;
        services.push(task);
        stores.push(store);
    }
    let spk = t.floor.spk_keys().map_err(failed)?;
    if spk.is_none() && (bound.controlling.is_some() || !bound.mc_servers.is_empty()) {
        eprintln!(
            "warning: no [floor] spk: floor control between the controlling server and the MC servers is not protected"
        );
    }
    let mut identities = Vec::new();
    let controlling = match bound.controlling {
        Some(b) => {
            let media = b.media_endpoint().map_err(failed)?;
            let mut role = controlling_role(t, media);
            if let Some(k) = &spk {
                role.set_spk(k.clone());
            }
            let mut h = with_tls(b, "controlling", true)?
                .run_with(
                    role,
                    directory.clone(),
                    timers,
                    Some(timeline_tx.clone()),
                    node_limits(t, &directory, None),
                )
                .map_err(failed)?;
            log_events(
                &t.controlling.uri,
                h.take_events(),
                |e| matches!(e, ControllingEvent::CallRejected { .. }),
                crate::admin::observe_controlling,
            );
            if let Some(l) = bound.controlling_http {
                services.push(crate::regroup::serve_controlling(
                    t,
                    l,
                    https_of("controlling")?,
                    h.commander(),
                )?);
            }
            let commander = h.commander();
            identities.push(fetch_identity(
                t,
                &t.controlling.uri,
                t.controlling.token.as_ref(),
                kms_servers.clone(),
                idms_endpoint.clone(),
                move |kms, keys| {
                    let _ = commander.command(move |r, _, _| {
                        if let Err(e) = r.set_identity(kms, keys) {
                            tracing::warn!("identity keys: {e}");
                        }
                    });
                },
            ));
            Some(h)
        }
        None => None,
    };
    let mut mc_servers = BTreeMap::new();
    for (uri, b) in bound.mc_servers {
        let Some(node) = t.mc_servers.iter().find(|s| s.uri == uri) else {
            continue;
        };
        let media = b.media_endpoint().map_err(failed)?;
        let mut role = mc_server_role(t, node, media);
        if let Some(k) = &spk {
            role.set_spk(k.clone());
        }
        let known = Arc::new(mc_server_directory(t, node, &directory));
        let h = with_tls(b, &uri, true)?
            .run_with(
                role,
                known.clone(),
                timers,
                Some(timeline_tx.clone()),
                node_limits(t, &known, Some(std::slice::from_ref(&t.controlling.uri))),
            )
            .map_err(failed)?;
        let mut h = h;
        log_events(
            &uri,
            h.take_events(),
            |e| {
                matches!(
                    e,
                    McServerEvent::Rejected { .. } | McServerEvent::MemberRejected { .. }
                )
            },
            crate::admin::observe_mc_server,
        );
        let commander = h.commander();
        identities.push(fetch_identity(
            t,
            &node.uri,
            node.token.as_ref(),
            kms_servers.clone(),
            idms_endpoint.clone(),
            move |kms, keys| {
                let _ = commander.command(move |r, _, _| {
                    if let Err(e) = r.set_identity(kms, keys) {
                        tracing::warn!("identity keys: {e}");
                    }
                });
            },
        ));
        mc_servers.insert(uri, h);
    }
    // With the KMS in this process, the servers hold their keys before
    // any client registers (elsewhere a client retries until they do).
    if kms_here {
        for task in identities {
            let _ = task.await;
        }
    }
    let started = std::time::Instant::now();
    // Start-up is CPU work (RSK validation, GMK decryption) on both sides
    // of HTTP: a few at a time keeps every exchange well inside its timeout.
    let parallel = std::thread::available_parallelism().map_or(2, usize::from) * 2;
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut pending = Vec::new();
    for (uri, b) in bound.clients {
        let Some(user) = t.users.iter().find(|u| u.uri == uri) else {
            continue;
        };
        let config = client_config(t, user, b.media_endpoint().map_err(failed)?);
        let call_sources = config.call_sources.clone();
        let mut prov = mcx_client::Provisioning {
            user_uri: user.uri.clone(),
            token: String::new(),
            kms_uri: t.kms.uri.clone(),
            kms_http: kms_servers.clone(),
            gms_http: gms_servers.clone(),
            kms_security: user.kms_security(),
        };
        let (topology, idms_http, secret) = (t.clone(), idms_endpoint.clone(), user.token.clone());
        pending.push((
            uri,
            b,
            call_sources,
            prov.clone(),
            tokio::spawn({
                let gate = gate.clone();
                async move {
                    let _permit = gate.acquire_owned().await;
                    let token =
                        crate::identity::token(&topology, idms_http, &prov.user_uri, &secret)
                            .await?;
                    prov.token = token.to_string();
                    let mut client = start_client_with_retries(config, &prov).await?;
                    if topology.idms.is_some() {
                        client.set_access_token(&token);
                    }
                    Ok::<_, mcx_client::ClientError>(client)
                }
            }),
        ));
    }
    let mut clients = BTreeMap::new();
    let mut voice = BTreeMap::new();
    let mut waiting = Vec::new();
    for (uri, mut b, call_sources, prov, task) in pending {
        // A client's voice socket is its application's, not a relay's.
        if let Some(socket) = b.take_media() {
            voice.insert(uri.clone(), Arc::new(socket));
        }
        let client = task
            .await
            .map_err(|_| failed(format!("{uri}: start-up task failed")))?
            .map_err(|e| failed(format!("{uri}: {e}")))?;
        let limits = node_limits(
            t,
            &directory,
            (!call_sources.is_empty()).then_some(&call_sources[..]),
        );
        let h = with_tls(b, &uri, false)?
            .run_with(
                client,
                directory.clone(),
                timers,
                Some(timeline_tx.clone()),
                limits,
            )
            .map_err(failed)?;
        if let Some(user) = t.users.iter().find(|u| u.uri == uri)
            && let Some(task) = crate::identity::keep_fresh(
                t,
                idms_endpoint.clone(),
                &uri,
                &user.token,
                h.commander(),
            )
        {
            services.push(task);
        }
        // Registers with its home server (and keeps it refreshed): the
        // MC server then knows it is on duty and takes it into calls
        // already going on.
        let registering = h
            .query(|c, time, rng| c.register(time, rng).is_ok())
            .await
            .unwrap_or(false);
        if registering {
            waiting.push(uri.clone());
        }
        // Next GMKs before the current ones expire, rolled GMKs after a
        // member's removal (docs/key-lifecycle.md), and KMS keys for the
        // next key period before it starts.
        services.push(tokio::spawn(mcx_client::keep_gmks_fresh(
            prov.clone(),
            h.commander(),
            mcx_client::DEFAULT_GMK_POLL_INTERVAL,
            mcx_client::DEFAULT_GMK_RENEWAL_LEAD,
        )));
        services.push(tokio::spawn(mcx_client::keep_keys_fresh(
            prov,
            h.commander(),
            mcx_client::DEFAULT_KEY_PERIOD_LEAD,
        )));
        clients.insert(uri, h);
    }
    // A client is ready once its home server answered its registration
    // (its floor control is then protected from the first call); one whose
    // server refused or is not up yet goes on retrying in the background.
    let deadline = tokio::time::Instant::now() + REGISTRATION_WAIT;
    for uri in waiting {
        let Some(node) = clients.get_mut(&uri) else {
            continue;
        };
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, node.events.recv()).await {
            if matches!(
                e,
                ClientEvent::Registered { .. } | ClientEvent::RegistrationFailed { .. }
            ) {
                break;
            }
        }
    }
    Ok(Running {
        services,
        stores,
        controlling,
        mc_servers,
        clients,
        timeline,
        kms_http: bound.kms_http,
        gms_http: bound.gms_http,
        idms_http: bound.idms_http,
        https,
        gms_endpoint,
        idms_endpoint,
        directory,
        provisioning: started.elapsed(),
        voice,
        services_here,
        controlling_uri: t.controlling.uri.clone(),
    })
}

/// The longest start-up waits for the clients' registrations: answers
/// take milliseconds; a home server that is not up yet is not waited for
/// (the client retries in the background).
const REGISTRATION_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Fetches a server's identity keys from the KMS in the background
/// (members' and initiators' CSKs are SAKKE-encrypted to its URI),
/// retrying while the KMS is not up, and hands them to `done`. The server
/// runs meanwhile: signalling does not wait for the KMS; until the keys
/// come, CSK uploads are refused (clients retry their registration).
fn fetch_identity(
    t: &Topology,
    uri: &str,
    token: Option<&String>,
    kms_http: mcx_client::Servers,
    idms_http: Option<Endpoint>,
    done: impl FnOnce(mcx_ibc::kms::CommunityPublic, mcx_ibc::kms::UserKeys) + Send + 'static,
) -> JoinHandle<()> {
    let secret = Topology::server_token(uri, token);
    let (kms_uri, uri, t) = (t.kms.uri.clone(), uri.to_owned(), t.clone());
    tokio::spawn(async move {
        let token = match crate::identity::token(&t, idms_http, &uri, &secret).await {
            Ok(token) => token,
            Err(e) => {
                eprintln!("{uri}: no access token from the IdMS ({e}): CSK uploads are refused");
                return;
            }
        };
        let keys = with_retries(&uri, "KMS", || {
            mcx_client::provision_keys(&kms_uri, &uri, &token, &kms_http, None)
        })
        .await;
        match keys {
            Ok((kms, keys)) => done(kms, keys),
            Err(e) => {
                eprintln!("{uri}: no identity keys from the KMS ({e}): CSK uploads are refused")
            }
        }
    })
}

/// Provisions a client, retrying while the KMS or GMS cannot be reached.
async fn start_client_with_retries(
    config: ClientConfig,
    prov: &mcx_client::Provisioning,
) -> Result<Client, mcx_client::ClientError> {
    with_retries(&prov.user_uri, "KMS or GMS", || {
        mcx_client::start(config.clone(), prov)
    })
    .await
}

/// Runs `attempt` until it succeeds, retrying with backoff while `what`
/// (the KMS, the GMS) cannot be reached: a role may start before them.
/// Says so on stderr for `who`. Gives up after [`STARTUP_PATIENCE`].
pub(crate) async fn with_retries<T, F>(
    who: &str,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Result<T, mcx_client::ClientError>
where
    F: Future<Output = Result<T, mcx_client::ClientError>>,
{
    let started = std::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if is_unreachable(&e) && started.elapsed() + wait < STARTUP_PATIENCE => {
                eprintln!(
                    "{who}: {what} not reachable yet ({e}); retrying in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long a client (or the GMS) keeps retrying its provisioning at
/// start-up.
pub(crate) const STARTUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// A provisioning failure that another try may cure: the KMS or GMS
/// (every instance of it) could not be reached (not a refusal or a bad
/// answer).
fn is_unreachable(e: &mcx_client::ClientError) -> bool {
    matches!(
        e,
        mcx_client::ClientError::Net(_) | mcx_client::ClientError::AllFailed { .. }
    )
}

/// Ends every call of the roles this process runs (BYE, CANCEL, 503),
/// gives the transactions a moment to complete, then stops serving HTTP
/// and closes the KMS and GMS stores. Returns how many SIP roles were
/// stopped; an error if a store could not be closed cleanly. For SIGINT
/// and SIGTERM.
pub(crate) async fn shutdown(running: &mut Running) -> Result<usize, CliError> {
    use mcx_net::Role;
    let mut stopped = 0;
    let mut roles = 0;
    if let Some(c) = &running.controlling {
        roles += 1;
        stopped += usize::from(c.query(Role::shutdown).await.is_ok());
    }
    for m in running.mc_servers.values() {
        roles += 1;
        stopped += usize::from(m.query(Role::shutdown).await.is_ok());
    }
    for c in running.clients.values() {
        roles += 1;
        stopped += usize::from(c.query(Role::shutdown).await.is_ok());
    }
    // BYEs over UDP are retransmitted from T1: let the first answers in.
    // A KMS or GMS alone has no SIP transactions to wait for.
    if roles > 0 {
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    }
    for s in &running.services {
        s.abort();
    }
    let mut errors = Vec::new();
    for store in std::mem::take(&mut running.stores) {
        let what = store.what;
        // Closing waits for a request in progress, on the blocking pool.
        match tokio::task::spawn_blocking(store.close).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("{what}: closing the store: {e}")),
            Err(_) => errors.push(format!("{what}: closing the store: the task failed")),
        }
    }
    if errors.is_empty() {
        Ok(stopped)
    } else {
        Err(failed(errors.join("; ")))
    }
}

/// How long in-flight transactions get at shutdown.
pub(crate) const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

/// SIGINT and SIGTERM, listened for from the moment this is made: a
/// role prints `ready` only once a stop signal would reach this handler
/// (before, the signal's default action would kill the process with its
/// calls still up).
pub(crate) struct StopSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignal {
    /// Starts listening (inside the runtime).
    pub(crate) fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub(crate) async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(self.term.as_mut()) => {}
                () = next(self.int.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
