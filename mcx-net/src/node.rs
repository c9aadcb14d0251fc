//! The node driver: one role, its sockets and its timers.
//!
//! SIP listens on UDP and TCP on the same port (RFC 3261 18: a UAS
//! accepts both); what a peer is sent on is the transport the
//! [`Directory`] gives for it. A node whose own transport is TLS
//! ([`BoundNode::with_tls`]) speaks TLS on its TCP port (RFC 3261 26.2,
//! the `sips:` / port 5061 style) and ignores SIP over UDP except from
//! the peers the directory says speak UDP (a mixed lab topology): plain
//! signalling would bypass what TLS authenticates. Connecting to a TLS
//! peer, it checks that the certificate chains to its CA, names the
//! peer's address and the peer's URI in the [`Directory`]; what a
//! connecting peer's certificate names is kept ([`NodeHandle::tls_peer`])
//! and [`InviteSource`]s can require it. Every SIP message goes through a
//! [`SipLink`] (transactions, retransmissions, 2xx/ACK handling) before
//! the role sees it or after the role produced it. Floor control is one
//! RTCP APP packet per UDP datagram.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mcx_core::{Channel, RelayCommand, SipLink, TimelineEntry};
use mcx_sip::{Limits, Message, Method, Remote, StreamDecoder, Timers, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use mcx_tls::tokio_rustls::{TlsAcceptor, TlsStream};

use crate::{
    AcceptBackoff, Directory, NetError, NodeTls, OsRng, Peer, PeerIdentity, Role, TlsTarget,
    accept_loop, now, os_rng,
};

/// Largest UDP datagram read (SIP over UDP is bounded by `Limits::UDP`).
const DATAGRAM_MAX: usize = 65_535;

/// Receive buffer asked for on every UDP socket. An MC server's members
/// answer at once (hundreds of 200 OKs, floor Acks at the controlling
/// server); the Linux default (about 200 KiB, some 90 small datagrams)
/// overflows and costs a T1 retransmission. The kernel caps the value at
/// `net.core.rmem_max`.
const UDP_RECV_BUFFER: usize = 4 * 1024 * 1024;

/// Datagrams read from a socket before any is processed: reading is
/// cheap, processing is not, so draining first keeps the kernel buffer
/// from overflowing during a burst.
const READ_BATCH: usize = 512;

/// Messages from SIP/TCP connections (and connection events) queued for
/// the driver. Bounded: when the driver is behind, connection tasks wait
/// and stop reading, so TCP flow control slows the senders instead of
/// the queue growing.
const TCP_QUEUE: usize = 256;

/// Octets read from a SIP/TCP connection at a time.
const TCP_READ: usize = 16 * 1024;

/// Least time between two log lines about the same peer (or about
/// refused connections): a flood costs counter increments, not log lines.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Least time between two sweeps of idle entries from a full peer table.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a node accepts from its peers: the bounds that keep its work and
/// memory in proportion to honest traffic (see the crate docs for why
/// each default is what it is).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeLimits {
    /// Most inbound SIP/TCP connections open at once; further accepted
    /// connections are closed at once (counted in
    /// [`GuardStats::tcp_refused`]). Connections the node opens itself
    /// are not counted. Default 1024.
    pub max_tcp_connections: usize,
    /// A SIP/TCP connection on which no complete message arrived (and
    /// nothing was written) for this long is closed. Default 120 s.
    pub tcp_idle: Duration,
    /// Once the first octet of a SIP/TCP message has arrived, the whole
    /// message must arrive within this, else the connection is closed
    /// (slowloris). Also the longest a write to a peer may block. Default 10 s.
    pub tcp_message_timeout: Duration,
    /// Sustained SIP messages per second accepted from one source IP
    /// address, UDP and TCP together (a token bucket). Over UDP the
    /// excess is dropped before the transaction layer sees it (the
    /// sender retransmits); over TCP, where nothing is retransmitted, the
    /// connection is read no faster than this. 0 disables the cap.
    /// Default 200.
    pub max_messages_per_sec_per_peer: u32,
    /// Messages a source may send in a burst above the sustained rate
    /// (the bucket's size; at least 1). Default 400.
    pub peer_burst: u32,
    /// Most source addresses with a bucket of their own; when the table
    /// is full and no entry is idle, further sources share one bucket,
    /// so spoofed sources cannot grow the table. Default 4096.
    pub max_tracked_peers: usize,
    /// Where out-of-dialog INVITEs (no To tag: new calls) may come from;
    /// those from anywhere else are dropped before the transaction layer
    /// (counted in [`GuardStats::dropped_source`]). `None` accepts any
    /// source. For an MC server: its controlling server(s). Default `None`.
    /// Over TLS, a source with an identity must present a certificate
    /// naming it (mutual TLS).
    pub invite_sources: Option<Vec<InviteSource>>,
    /// Waits after accept errors (out of file descriptors).
    pub accept_backoff: AcceptBackoff,
}

impl Default for NodeLimits {
    fn default() -> Self {
        Self {
            max_tcp_connections: 1024,
            tcp_idle: Duration::from_secs(120),
            tcp_message_timeout: Duration::from_secs(10),
            max_messages_per_sec_per_peer: 200,
            peer_burst: 400,
            max_tracked_peers: 4096,
            invite_sources: None,
            accept_backoff: AcceptBackoff::default(),
        }
    }
}

/// A peer allowed to start calls (send out-of-dialog INVITEs), e.g. the
/// controlling server of the topology.
///
/// Over UDP a request must come from exactly `addr` (a node sends from
/// its SIP socket); over TCP only the IP address of the connection's peer
/// is compared, as the connection comes from an ephemeral port. Over TLS
/// with an `identity`, the connection's client certificate must name it
/// (the address is not enough: any process on that host could connect).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InviteSource {
    /// The peer's SIP socket.
    pub addr: SocketAddr,
    /// The identity (SIP URI) its TLS certificate names, if known.
    pub identity: Option<String>,
}

impl InviteSource {
    /// The peer whose SIP socket is `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            identity: None,
        }
    }

    /// The peer whose SIP socket is `addr` and whose TLS certificate names
    /// `identity`.
    pub fn with_identity(addr: SocketAddr, identity: impl Into<String>) -> Self {
        Self {
            addr,
            identity: Some(identity.into()),
        }
    }

    /// True if a message received from `from`, over a connection whose
    /// peer certificate names `peer` (TLS), comes from this peer.
    pub fn matches_peer(&self, from: Remote, peer: Option<&PeerIdentity>) -> bool {
        match (&self.identity, from.transport) {
            (Some(want), Transport::Tls) => peer.is_some_and(|p| p.names(want)),
            _ => self.matches(from),
        }
    }

    /// True if a message received from `from` comes from this peer.
    pub fn matches(&self, from: Remote) -> bool {
        if from.transport.is_reliable() {
            self.addr.ip().to_canonical() == from.addr.ip().to_canonical()
        } else {
            canonical(self.addr) == canonical(from.addr)
        }
    }
}

impl From<SocketAddr> for InviteSource {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr)
    }
}

/// `::ffff:a.b.c.d` (a dual-stack socket's view of an IPv4 peer) as `a.b.c.d`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// What the node's guards refused or cut off since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardStats {
    /// SIP/UDP datagrams dropped because their source was over its rate.
    pub dropped_rate: u64,
    /// SIP/TCP messages held back because their source was over its rate.
    pub throttled_rate: u64,
    /// Out-of-dialog INVITEs dropped because their source is not an
    /// [`InviteSource`].
    pub dropped_source: u64,
    /// Inbound SIP/TCP connections closed at once: too many were open.
    pub tcp_refused: u64,
    /// SIP/TCP connections closed after [`NodeLimits::tcp_idle`].
    pub tcp_idle_closed: u64,
    /// SIP/TCP connections closed because a message (or a write to the
    /// peer) took longer than [`NodeLimits::tcp_message_timeout`].
    pub tcp_slow_closed: u64,
    /// SIP/TCP connections closed because their stream could not be framed
    /// (malformed, or a message over `Limits::TCP`).
    pub tcp_framing_closed: u64,
    /// Failed accepts on the SIP/TCP listener.
    pub accept_errors: u64,
    /// Inbound SIP/TCP connections open now.
    pub tcp_open: u64,
    /// SIP/UDP datagrams dropped because the node speaks TLS only.
    pub dropped_plain: u64,
    /// SIP/TLS handshakes that failed (either side), or peers whose
    /// certificate did not name whom the directory says is there.
    pub tls_failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    dropped_rate: AtomicU64,
    throttled_rate: AtomicU64,
    dropped_source: AtomicU64,
    tcp_refused: AtomicU64,
    tcp_idle_closed: AtomicU64,
    tcp_slow_closed: AtomicU64,
    tcp_framing_closed: AtomicU64,
    accept_errors: AtomicU64,
    tcp_open: AtomicU64,
    dropped_plain: AtomicU64,
    tls_failed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One source's token bucket and log throttling.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    rate_limited: u64,
    rate_logged: Option<Instant>,
    source_dropped: u64,
    source_logged: Option<Instant>,
}

impl Bucket {
    fn new(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
            rate_limited: 0,
            rate_logged: None,
            source_dropped: 0,
            source_logged: None,
        }
    }
}

/// True (and the time noted) if a line about this may be logged now.
fn log_due(logged: &mut Option<Instant>, now: Instant) -> bool {
    if logged.is_some_and(|t| now.duration_since(t) < LOG_INTERVAL) {
        return false;
    }
    *logged = Some(now);
    true
}

#[derive(Debug)]
struct PeerTable {
    map: HashMap<IpAddr, Bucket>,
    /// Shared by sources that found the table full.
    overflow: Bucket,
    last_sweep: Option<Instant>,
}

/// The node's limits and counters, shared by the driver and the SIP/TCP
/// connection tasks (so one bucket covers a source's UDP and TCP).
#[derive(Debug)]
struct Guard {
    limits: NodeLimits,
    counters: Counters,
    peers: Mutex<PeerTable>,
    /// What the certificates of open TLS connections name, by the
    /// connection's peer address (with the connection's id).
    tls_peers: Mutex<HashMap<SocketAddr, (u64, Arc<PeerIdentity>)>>,
}

/// Why a message may not go on yet.
enum Refusal {
    /// The source is over its rate; a token is due in this long.
    Rate(Duration),
}

impl Guard {
    fn new(limits: NodeLimits) -> Self {
        let now = Instant::now();
        let burst = f64::from(limits.peer_burst.max(1));
        Self {
            limits,
            counters: Counters::default(),
            peers: Mutex::new(PeerTable {
                map: HashMap::new(),
                overflow: Bucket::new(burst, now),
                last_sweep: None,
            }),
            tls_peers: Mutex::new(HashMap::new()),
        }
    }

    fn tls_peer(&self, addr: SocketAddr) -> Option<Arc<PeerIdentity>> {
        let peers = self
            .tls_peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        peers.get(&addr).map(|(_, p)| p.clone())
    }

    fn stats(&self) -> GuardStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GuardStats {
            dropped_rate: get(&c.dropped_rate),
            throttled_rate: get(&c.throttled_rate),
            dropped_source: get(&c.dropped_source),
            tcp_refused: get(&c.tcp_refused),
            tcp_idle_closed: get(&c.tcp_idle_closed),
            tcp_slow_closed: get(&c.tcp_slow_closed),
            tcp_framing_closed: get(&c.tcp_framing_closed),
            accept_errors: get(&c.accept_errors),
            tcp_open: get(&c.tcp_open),
            dropped_plain: get(&c.dropped_plain),
            tls_failed: get(&c.tls_failed),
        }
    }

    /// Runs `f` on the bucket of `ip`, creating it if there is room.
    fn with_bucket<T>(
        &self,
        ip: IpAddr,
        now: Instant,
        f: impl FnOnce(&mut Bucket, bool) -> T,
    ) -> T {
        let ip = ip.to_canonical();
        // A panic elsewhere while holding the lock leaves plain numbers behind: keep going.
        let mut table = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let table = &mut *table;
        if !table.map.contains_key(&ip) && table.map.len() >= self.limits.max_tracked_peers {
            if table
                .last_sweep
                .is_none_or(|t| now.duration_since(t) >= SWEEP_INTERVAL)
            {
                table.last_sweep = Some(now);
                // A bucket idle long enough to be full again, whose log lines are
                // old, is the same as no bucket.
                let rate = f64::from(self.limits.max_messages_per_sec_per_peer.max(1));
                let refill = Duration::from_secs_f64(f64::from(self.limits.peer_burst) / rate);
                let idle = refill.max(LOG_INTERVAL);
                table.map.retain(|_, b| now.duration_since(b.last) < idle);
            }
            if table.map.len() >= self.limits.max_tracked_peers {
                return f(&mut table.overflow, true);
            }
        }
        let burst = f64::from(self.limits.peer_burst.max(1));
        let b = table
            .map
            .entry(ip)
            .or_insert_with(|| Bucket::new(burst, now));
        f(b, false)
    }

    /// Takes a token for a message from `ip`.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let rate = self.limits.max_messages_per_sec_per_peer;
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let burst = f64::from(self.limits.peer_burst.max(1));
        self.with_bucket(ip, now, |b, shared| {
            let elapsed = now.duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate).min(burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return Ok(());
            }
            b.rate_limited += 1;
            if log_due(&mut b.rate_logged, now) {
                let who = if shared {
                    "untracked sources (the peer table is full)".to_owned()
                } else {
                    ip.to_string()
                };
                tracing::warn!(
                    "SIP from {who}: over {rate}/s (burst {burst}); {} messages held back or \
                     dropped since the last report",
                    b.rate_limited
                );
                b.rate_limited = 0;
            }
            Err(Refusal::Rate(Duration::from_secs_f64(
                (1.0 - b.tokens) / rate,
            )))
        })
    }

    /// A SIP/UDP datagram from `ip` may be processed (else it is dropped and counted).
    fn admit_udp(&self, ip: IpAddr, now: Instant) -> bool {
        match self.take(ip, now) {
            Ok(()) => true,
            Err(Refusal::Rate(_)) => {
                bump(&self.counters.dropped_rate);
                false
            }
        }
    }

    /// Waits until a SIP/TCP message from `ip` may go on.
    async fn admit_tcp(&self, ip: IpAddr) {
        let mut counted = false;
        while let Err(Refusal::Rate(wait)) = self.take(ip, Instant::now()) {
            if !counted {
                counted = true;
                bump(&self.counters.throttled_rate);
            }
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// False (counted, logged once per source and interval) if `msg` is an
    /// out-of-dialog INVITE from a source not allowed to start calls.
    fn invite_allowed(
        &self,
        from: Remote,
        peer: Option<&PeerIdentity>,
        msg: &Message,
        now: Instant,
    ) -> bool {
        let Some(sources) = &self.limits.invite_sources else {
            return true;
        };
        let Message::Request(req) = msg else {
            return true;
        };
        if *req.method() != Method::Invite {
            return true;
        }
        // A To tag means a dialog exists (a re-INVITE): the transaction layer
        // and the role match it to the dialog or refuse it.
        if req.to().is_ok_and(|to| to.tag.is_some()) {
            return true;
        }
        if sources.iter().any(|s| s.matches_peer(from, peer)) {
            return true;
        }
        bump(&self.counters.dropped_source);
        self.with_bucket(from.addr.ip(), now, |b, _| {
            b.source_dropped += 1;
            if log_due(&mut b.source_logged, now) {
                tracing::warn!(
                    "INVITE from {} dropped: not a configured call source ({} since the last report)",
                    from.addr,
                    b.source_dropped
                );
                b.source_dropped = 0;
            }
        });
        false
    }
}

/// A UDP socket with large receive and send buffers (4 MiB asked for:
/// fan-out bursts), non-blocking, on the current tokio runtime.
///
/// # Errors
/// [`NetError::Io`] naming `what` and `addr` if it cannot be bound.
pub fn bind_udp(addr: SocketAddr, what: &str) -> Result<UdpSocket, NetError> {
    let io = |e| NetError::io(format!("binding {what} {addr}"), e);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(io)?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!("{what} {addr}: receive buffer: {e}");
    }
    // Fan-out bursts (an MC server's INVITEs to its members) stay in the
    // send buffer until the receivers read them.
    if let Err(e) = socket.set_send_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!("{what} {addr}: send buffer: {e}");
    }
    socket.set_nonblocking(true).map_err(io)?;
    socket.bind(&addr.into()).map_err(io)?;
    UdpSocket::from_std(socket.into()).map_err(io)
}

/// Sends a datagram; time spent waiting for room in the send buffer (the
/// receiver is slow) is added to `waited`, so that busy time counts work.
async fn send_udp(
    socket: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    waited: &mut Duration,
) -> std::io::Result<usize> {
    match socket.try_send_to(bytes, to) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let start = Instant::now();
            let r = socket.send_to(bytes, to).await;
            *waited += start.elapsed();
            r
        }
        r => r,
    }
}

/// The next datagram waiting on `socket`, read into `buf`: its length
/// and source. Each is handled from `buf` before the next is read, so no
/// datagram is copied out of it.
fn recv(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match socket.try_recv_from(buf) {
        Ok(got) => Some(got),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        Err(e) => {
            // E.g. ICMP port unreachable reported on the next read.
            tracing::debug!("UDP receive: {e}");
            None
        }
    }
}

/// A node's sockets, bound before the topology's directory is complete
/// (so ephemeral ports can be written into it).
#[derive(Debug)]
pub struct BoundNode {
    udp: UdpSocket,
    tcp: TcpListener,
    floor: Option<UdpSocket>,
    /// The voice socket: a server relays on it; a client's application
    /// takes it ([`BoundNode::take_media`]) to send or receive voice.
    media: Option<UdpSocket>,
    transport: Transport,
    tls: Option<NodeTls>,
}

impl BoundNode {
    /// Binds SIP (UDP and TCP on one port) and, if asked, the floor socket.
    /// Port 0 picks a free port (the same one for UDP and TCP).
    ///
    /// # Errors
    /// The sockets cannot be bound.
    pub async fn bind(
        sip: SocketAddr,
        transport: Transport,
        floor: Option<SocketAddr>,
    ) -> Result<Self, NetError> {
        let (udp, tcp) = bind_pair(sip).await?;
        let floor = match floor {
            Some(addr) => Some(bind_udp(addr, "floor socket")?),
            None => None,
        };
        Ok(Self {
            udp,
            tcp,
            floor,
            media: None,
            transport,
            tls: None,
        })
    }

    /// Gives the node its TLS configuration: needed if its transport is
    /// TLS (its TCP port then speaks TLS) or if it sends to TLS peers.
    #[must_use]
    pub fn with_tls(mut self, tls: NodeTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Binds the voice socket at `addr` (port 0: any free port; an
    /// unspecified address: the SIP socket's).
    ///
    /// # Errors
    /// The socket cannot be bound.
    pub fn bind_media(&mut self, addr: SocketAddr) -> Result<(), NetError> {
        let addr = if addr.ip().is_unspecified() {
            let sip = self
                .udp
                .local_addr()
                .map_err(|e| NetError::io("local SIP address", e))?;
            SocketAddr::new(sip.ip(), addr.port())
        } else {
            addr
        };
        self.media = Some(bind_udp(addr, "voice socket")?);
        Ok(())
    }

    /// What this node announces in its SDP: the voice socket's address and
    /// port and the floor socket's port (9, discard, for what is not bound).
    ///
    /// # Errors
    /// The OS cannot tell a local address.
    pub fn media_endpoint(&self) -> Result<mcx_core::MediaEndpoint, NetError> {
        let port = |s: &Option<UdpSocket>, what: &str| -> Result<Option<SocketAddr>, NetError> {
            s.as_ref()
                .map(|s| s.local_addr().map_err(|e| NetError::io(what, e)))
                .transpose()
        };
        let sip = self
            .udp
            .local_addr()
            .map_err(|e| NetError::io("local SIP address", e))?;
        let media = port(&self.media, "local voice address")?;
        let floor = port(&self.floor, "local floor address")?;
        Ok(mcx_core::MediaEndpoint {
            ip: media.map_or_else(|| sip.ip(), |m| m.ip()),
            rtp_port: media.map_or(9, |m| m.port()),
            floor_port: floor.map_or(9, |f| f.port()),
        })
    }

    /// Takes the voice socket (a client sends or receives voice on it
    /// itself; a server leaves it to [`BoundNode::run`]'s relay).
    pub fn take_media(&mut self) -> Option<UdpSocket> {
        self.media.take()
    }

    /// Where peers reach this node.
    ///
    /// # Errors
    /// The OS cannot tell the local address.
    pub fn peer(&self) -> Result<Peer, NetError> {
        let sip = self
            .udp
            .local_addr()
            .map_err(|e| NetError::io("local SIP address", e))?;
        let floor = match &self.floor {
            Some(f) => Some(
                f.local_addr()
                    .map_err(|e| NetError::io("local floor address", e))?,
            ),
            None => None,
        };
        Ok(Peer {
            sip,
            transport: self.transport,
            floor,
        })
    }

    /// Starts driving `role` with these sockets and [`NodeLimits::default`].
    /// Timeline entries go to `timeline` if given; events to the returned handle.
    ///
    /// # Errors
    /// The local address cannot be read.
    pub fn run<R: Role>(
        self,
        role: R,
        directory: Arc<Directory>,
        timers: Timers,
        timeline: Option<mpsc::UnboundedSender<TimelineEntry>>,
    ) -> Result<NodeHandle<R>, NetError> {
        self.run_with(role, directory, timers, timeline, NodeLimits::default())
    }

    /// Starts driving `role` with these sockets, bounding what peers can
    /// make it do by `limits`. Timeline entries go to `timeline` if given;
    /// events to the returned handle.
    ///
    /// # Errors
    /// The local address cannot be read.
    pub fn run_with<R: Role>(
        self,
        role: R,
        directory: Arc<Directory>,
        timers: Timers,
        timeline: Option<mpsc::UnboundedSender<TimelineEntry>>,
        limits: NodeLimits,
    ) -> Result<NodeHandle<R>, NetError> {
        let me = self.peer()?;
        if me.transport == Transport::Tls && self.tls.is_none() {
            return Err(NetError::Tls(format!(
                "node {}: transport TLS without a TLS configuration",
                me.sip
            )));
        }
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (tcp_tx, tcp_rx) = mpsc::channel(TCP_QUEUE);
        let busy = Arc::new(AtomicU64::new(0));
        let guard = Arc::new(Guard::new(limits));
        let relay = self.media.map(crate::media::spawn_relay);
        let name: Arc<str> = Arc::from(role.uri());
        let span = tracing::info_span!("node", role = %name);
        let mut role = role;
        let link = SipLink::new(
            timers,
            Remote {
                addr: me.sip,
                transport: me.transport,
            },
        );
        role.set_sent_by(me.transport, link.sent_by());
        let driver = Driver {
            name,
            relay: relay.as_ref().map(|r| r.commands.clone()),
            link,
            role,
            directory,
            udp: self.udp,
            floor: self.floor,
            conns: HashMap::new(),
            next_conn: 0,
            tcp_tx,
            events: events_tx,
            timeline,
            rng: os_rng(),
            busy: busy.clone(),
            guard: guard.clone(),
            tls: self.tls,
            tls_only: me.transport == Transport::Tls,
        };
        let accept = tokio::spawn(accept_tcp(self.tcp, driver.tcp_tx.clone(), guard.clone()));
        let task = tokio::spawn(tracing::Instrument::instrument(
            driver.run(commands, tcp_rx, accept),
            span,
        ));
        Ok(NodeHandle {
            commands: commands_tx,
            events,
            peer: me,
            task,
            busy,
            guard,
            relay,
        })
    }
}

/// The SIP/TCP accept loop: survives accept errors (backing off), and
/// closes connections beyond [`NodeLimits::max_tcp_connections`] at once.
async fn accept_tcp(listener: TcpListener, to_driver: mpsc::Sender<TcpInput>, guard: Arc<Guard>) {
    let slots = Arc::new(Semaphore::new(
        guard.limits.max_tcp_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut refusal_logged = None;
    accept_loop(
        "SIP/TCP",
        guard.limits.accept_backoff,
        &guard.counters.accept_errors,
        || listener.accept(),
        tokio::time::sleep,
        |(stream, peer): (TcpStream, SocketAddr)| {
            let slot = slots.clone().try_acquire_owned().ok();
            if slot.is_none() {
                bump(&guard.counters.tcp_refused);
                if log_due(&mut refusal_logged, Instant::now()) {
                    tracing::warn!(
                        "SIP/TCP: {} connections open, refusing more (e.g. {peer}); \
                         further refusals are counted, not logged, for {LOG_INTERVAL:?}",
                        guard.limits.max_tcp_connections
                    );
                }
            }
            let to_driver = to_driver.clone();
            async move {
                // Dropping the stream closes it.
                let Some(slot) = slot else {
                    return ControlFlow::Continue(());
                };
                match to_driver.send(TcpInput::Accepted(peer, stream, slot)).await {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            }
        },
    )
    .await;
}

/// Binds UDP and TCP on the same port, retrying when an ephemeral UDP
/// port is already taken for TCP.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), NetError> {
    let mut last = None;
    for _ in 0..16 {
        let udp = bind_udp(addr, "SIP/UDP")?;
        let local = udp
            .local_addr()
            .map_err(|e| NetError::io("local SIP address", e))?;
        match TcpListener::bind(local).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(NetError::io(format!("binding SIP/TCP {local}"), e)),
        }
    }
    Err(NetError::io(
        format!("binding SIP/TCP beside UDP on {addr}"),
        last.unwrap_or_else(|| std::io::Error::other("no port")),
    ))
}

/// A command run on the role inside its driver task.
pub type Command<R> = Box<dyn FnOnce(&mut R, mcx_core::Time, &mut OsRng) + Send>;

/// Sends commands to a running node's role (see [`NodeHandle::commander`]).
#[derive(Debug)]
pub struct Commander<R: Role> {
    commands: mpsc::UnboundedSender<Command<R>>,
}

impl<R: Role> Clone for Commander<R> {
    fn clone(&self) -> Self {
        Self {
            commands: self.commands.clone(),
        }
    }
}

impl<R: Role> Commander<R> {
    /// As [`NodeHandle::command`].
    ///
    /// # Errors
    /// The node stopped.
    pub fn command(
        &self,
        f: impl FnOnce(&mut R, mcx_core::Time, &mut OsRng) + Send + 'static,
    ) -> Result<(), NetError> {
        send_command(&self.commands, f)
    }

    /// As [`NodeHandle::query`].
    ///
    /// # Errors
    /// The node stopped.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut R, mcx_core::Time, &mut OsRng) -> T + Send + 'static,
    ) -> Result<T, NetError> {
        query_with(&self.commands, f).await
    }
}

async fn query_with<R: Role, T: Send + 'static>(
    commands: &mpsc::UnboundedSender<Command<R>>,
    f: impl FnOnce(&mut R, mcx_core::Time, &mut OsRng) -> T + Send + 'static,
) -> Result<T, NetError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    send_command(commands, move |role, time, rng| {
        let _ = tx.send(f(role, time, rng));
    })?;
    rx.await.map_err(|_| NetError::Stopped)
}

fn send_command<R: Role>(
    commands: &mpsc::UnboundedSender<Command<R>>,
    f: impl FnOnce(&mut R, mcx_core::Time, &mut OsRng) + Send + 'static,
) -> Result<(), NetError> {
    commands.send(Box::new(f)).map_err(|_| NetError::Stopped)
}

/// The application's side of a running node.
#[derive(Debug)]
pub struct NodeHandle<R: Role> {
    commands: mpsc::UnboundedSender<Command<R>>,
    /// The role's events.
    pub events: mpsc::UnboundedReceiver<R::Event>,
    peer: Peer,
    task: JoinHandle<()>,
    busy: Arc<AtomicU64>,
    guard: Arc<Guard>,
    relay: Option<crate::media::RelayTask>,
}

impl<R: Role> NodeHandle<R> {
    /// What the node's voice relay forwarded and dropped so far (`None`
    /// without a voice socket).
    pub fn relay_stats(&self) -> Option<mcx_relay::RelayStats> {
        self.relay.as_ref().map(crate::media::RelayTask::stats)
    }

    /// What the node's [`NodeLimits`] refused or cut off so far.
    pub fn guard_stats(&self) -> GuardStats {
        self.guard.stats()
    }

    /// What the certificate of the peer on the open TLS connection from
    /// (or to) `addr` names; `None` if there is none, or the peer
    /// presented no certificate.
    pub fn tls_peer(&self, addr: SocketAddr) -> Option<PeerIdentity> {
        self.guard
            .tls_peer(addr)
            .map(|p| (*p).clone())
            .filter(|p| *p != PeerIdentity::default())
    }

    /// Runs `f` on the role (e.g. `Client::start_call`) in the driver task,
    /// then sends whatever it produced.
    ///
    /// # Errors
    /// The node stopped.
    pub fn command(
        &self,
        f: impl FnOnce(&mut R, mcx_core::Time, &mut OsRng) + Send + 'static,
    ) -> Result<(), NetError> {
        send_command(&self.commands, f)
    }

    /// A handle that only sends commands, to hand to another task (e.g.
    /// one that fetches the role's keys while the node already runs).
    pub fn commander(&self) -> Commander<R> {
        Commander {
            commands: self.commands.clone(),
        }
    }

    /// Runs `f` on the role and returns its result.
    ///
    /// # Errors
    /// The node stopped.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut R, mcx_core::Time, &mut OsRng) -> T + Send + 'static,
    ) -> Result<T, NetError> {
        query_with(&self.commands, f).await
    }

    /// Takes the event stream (e.g. to log it in a task of its own); the
    /// handle's `events` is closed afterwards.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<R::Event> {
        let (_, closed) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.events, closed)
    }

    /// Time the node has spent working (handling input, running the role
    /// and the transaction layer, sending) since it started, as opposed to
    /// waiting: its processing share of whatever happened meanwhile.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy.load(Ordering::Relaxed))
    }

    /// Where peers reach this node.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Stops the node (its sockets close).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl<R: Role> Drop for NodeHandle<R> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What woke the driver.
enum Input<R: Role> {
    Sip(bool),
    Floor(bool),
    Tcp(TcpInput),
    Command(Command<R>),
    Timer,
}

enum TcpInput {
    /// An inbound connection and its slot under `max_tcp_connections`.
    Accepted(SocketAddr, TcpStream, OwnedSemaphorePermit),
    /// Boxed: a message (head kept as one buffer with spans) is larger than the other inputs.
    Message(Remote, Box<Message>),
    /// The connection with this id ended.
    Closed(SocketAddr, u64),
    /// Connecting (or the TLS handshake) failed: the transactions toward
    /// it fail now (RFC 3261 17.1.4).
    Unreachable(Remote, u64),
}

struct Driver<R: Role> {
    /// The role's URI, for the SIP trace.
    name: Arc<str>,
    link: SipLink,
    role: R,
    directory: Arc<Directory>,
    udp: UdpSocket,
    floor: Option<UdpSocket>,
    /// Open TCP connections by peer address: their id and writer side. The
    /// id tells a connection's end from that of an earlier one to the same
    /// address (a new connection may be open before the old one's end is seen).
    conns: HashMap<SocketAddr, (u64, mpsc::UnboundedSender<Vec<u8>>)>,
    next_conn: u64,
    tcp_tx: mpsc::Sender<TcpInput>,
    events: mpsc::UnboundedSender<R::Event>,
    timeline: Option<mpsc::UnboundedSender<TimelineEntry>>,
    rng: OsRng,
    /// Nanoseconds spent handling input and sending (not waiting).
    busy: Arc<AtomicU64>,
    guard: Arc<Guard>,
    /// The voice relay's command queue, if the node relays.
    relay: Option<mpsc::UnboundedSender<RelayCommand>>,
    tls: Option<NodeTls>,
    /// The node's transport is TLS: its TCP port speaks TLS, UDP is ignored.
    tls_only: bool,
}

impl<R: Role> Driver<R> {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command<R>>,
        mut tcp_rx: mpsc::Receiver<TcpInput>,
        accept: JoinHandle<()>,
    ) {
        let mut buf = vec![0u8; DATAGRAM_MAX];
        self.flush().await;
        loop {
            let deadline = match (self.role.poll_timeout(), self.link.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let floor_readable = async {
                match &self.floor {
                    Some(f) => f.readable().await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                r = self.udp.readable() => Input::Sip(r.is_ok()),
                r = floor_readable => Input::Floor(r.is_ok()),
                Some(input) = tcp_rx.recv() => Input::Tcp(input),
                cmd = commands.recv() => match cmd {
                    Some(f) => Input::Command(f),
                    None => break,
                },
                () = sleep => Input::Timer,
            };
            let started = Instant::now();
            match input {
                // Every datagram waiting (up to READ_BATCH), each handled
                // where it was read: no copy, no allocation per datagram.
                Input::Sip(true) => {
                    for _ in 0..READ_BATCH {
                        let Some((n, from)) = recv(&self.udp, &mut buf) else {
                            break;
                        };
                        self.on_udp(from, &buf[..n]);
                    }
                }
                Input::Floor(true) => {
                    for _ in 0..READ_BATCH {
                        let Some((n, from)) = self.floor.as_ref().and_then(|f| recv(f, &mut buf))
                        else {
                            break;
                        };
                        self.on_floor(from, &buf[..n]);
                    }
                }
                Input::Sip(false) | Input::Floor(false) => {}
                Input::Tcp(input) => self.on_tcp(input),
                Input::Command(f) => {
                    let time = now();
                    f(&mut self.role, time, &mut self.rng);
                }
                Input::Timer => {
                    let time = now();
                    self.link.handle_timeout(time.instant);
                    self.deliver();
                    if let Err(e) = self.role.handle_timeout(time, &mut self.rng) {
                        tracing::warn!("timer: {e}");
                    }
                }
            }
            let waited = self.flush().await;
            let spent = started.elapsed().saturating_sub(waited);
            let spent = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
            self.busy.fetch_add(spent, Ordering::Relaxed);
        }
        accept.abort();
    }

    /// Hands every SIP message the link has for the role to the role.
    fn deliver(&mut self) {
        while let Some(d) = self.link.poll_deliver() {
            crate::trace::sip(&self.name, "in from", &d.from, || d.message.to_bytes());
            let time = now();
            if let Err(e) = self
                .role
                .handle_sip(time, &d.from, d.message, &mut self.rng)
            {
                tracing::info!("SIP from {}: {e}", d.from);
            }
        }
    }

    /// A SIP datagram: rate-checked before it is parsed, parsed once, and
    /// source-checked before the transaction layer sees it.
    fn on_udp(&mut self, from: SocketAddr, bytes: &[u8]) {
        let at = Instant::now();
        if self.tls_only && !self.speaks_udp(from) {
            bump(&self.guard.counters.dropped_plain);
            tracing::debug!("SIP/UDP from {from} dropped: this node speaks TLS");
            return;
        }
        if !self.guard.admit_udp(from.ip(), at) {
            return;
        }
        let remote = Remote {
            addr: from,
            transport: Transport::Udp,
        };
        match mcx_sip::parse_datagram(bytes, &Limits::UDP) {
            Ok(msg) => {
                if !self.guard.invite_allowed(remote, None, &msg, at) {
                    return;
                }
                self.link.receive_message(at, remote, msg);
            }
            // The link counts it as malformed.
            Err(_) => self.link.receive(at, remote, bytes),
        }
        self.deliver();
    }

    /// True if the directory has a node at `from` that speaks SIP over UDP:
    /// a TLS node sends to such a peer over UDP and takes its answers (and
    /// its requests) that way; from anywhere else SIP/UDP is ignored.
    fn speaks_udp(&self, from: SocketAddr) -> bool {
        let from = canonical(from);
        self.directory
            .sip_owner(from)
            .and_then(|uri| self.directory.peer(uri))
            .is_some_and(|p| p.transport == Transport::Udp)
    }

    /// Starts a connection task: `stream` is an accepted connection
    /// (TLS server side if the node speaks TLS); `None` connects to
    /// `peer` over `transport` (TLS client side for TLS).
    fn new_connection(
        &mut self,
        peer: SocketAddr,
        transport: Transport,
        stream: Option<TcpStream>,
        slot: Option<OwnedSemaphorePermit>,
    ) -> mpsc::UnboundedSender<Vec<u8>> {
        let id = self.next_conn;
        self.next_conn += 1;
        let (transport, tls) = match (&stream, transport, &self.tls) {
            (Some(_), _, Some(t)) if self.tls_only => (
                Transport::Tls,
                Some(TlsSide::Accept(TlsAcceptor::from(t.server.clone()))),
            ),
            (Some(_), _, _) => (Transport::Tcp, None),
            (None, Transport::Tls, t) => (
                Transport::Tls,
                Some(TlsSide::Connect(t.as_ref().map(|t| TlsTarget {
                    config: t.client.clone(),
                    identity: self.directory.sip_owner(peer).map(str::to_owned),
                }))),
            ),
            (None, t, _) => (t, None),
        };
        let writer = spawn_connection(
            Connection {
                remote: Remote {
                    addr: peer,
                    transport,
                },
                id,
                inbound: self.tcp_tx.clone(),
                guard: self.guard.clone(),
                _slot: slot,
            },
            stream,
            tls,
        );
        self.conns.insert(peer, (id, writer.clone()));
        writer
    }

    fn on_floor(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Some(uri) = self.directory.floor_owner(from).map(str::to_owned) else {
            tracing::info!("floor packet from unknown socket {from} dropped");
            return;
        };
        if let Err(e) = self
            .role
            .handle(now(), &uri, Channel::Floor, bytes, &mut self.rng)
        {
            tracing::info!("floor packet from {uri}: {e}");
        }
    }

    fn on_tcp(&mut self, input: TcpInput) {
        match input {
            TcpInput::Accepted(peer, stream, slot) => {
                self.new_connection(peer, Transport::Tcp, Some(stream), Some(slot));
            }
            TcpInput::Message(remote, msg) => {
                self.link.receive_message(Instant::now(), remote, *msg);
                self.deliver();
            }
            TcpInput::Closed(peer, id) => {
                if self.conns.get(&peer).is_some_and(|(open, _)| *open == id) {
                    self.conns.remove(&peer);
                }
            }
            TcpInput::Unreachable(remote, id) => {
                if self
                    .conns
                    .get(&remote.addr)
                    .is_some_and(|(open, _)| *open == id)
                {
                    self.conns.remove(&remote.addr);
                }
                self.link.handle_transport_error(Instant::now(), remote);
                self.deliver();
            }
        }
    }

    /// Sends what the role and the link produced; forwards events and
    /// timeline entries. Loops because delivering can produce more.
    async fn flush(&mut self) -> Duration {
        let mut waited = Duration::ZERO;
        loop {
            let mut progressed = false;
            while let Some(r) = self.role.poll_relay() {
                if let Some(relay) = &self.relay {
                    let _ = relay.send(r);
                }
            }
            // One reading of the clock for the batch: the link's timers
            // are hundreds of milliseconds, the batch microseconds.
            let now = Instant::now();
            while let Some(mut t) = self.role.poll_transmit() {
                progressed = true;
                let peer = self.directory.peer(&t.to).copied();
                match t.channel {
                    Channel::Sip => {
                        // Responses go back through their server transaction to
                        // wherever the request came from; the remote is unused.
                        let remote = match peer {
                            Some(p) => Remote {
                                addr: p.sip,
                                transport: p.transport,
                            },
                            None if t.is_sip_response() => self.link.local(),
                            None => {
                                tracing::warn!("no address for {} in the directory; dropped", t.to);
                                continue;
                            }
                        };
                        // The role's message as a value or encoded when it
                        // gave one: the link then parses nothing.
                        // The link reads no URI: it is kept for the warning.
                        let to = std::mem::take(&mut t.to);
                        if let Err(e) = self.link.send_transmit(now, remote, t) {
                            tracing::warn!("SIP to {to}: {e}");
                        }
                    }
                    Channel::Floor => match (&self.floor, peer.and_then(|p| p.floor)) {
                        (Some(sock), Some(addr)) => {
                            if let Err(e) = send_udp(sock, &t.contents, addr, &mut waited).await {
                                tracing::info!("floor to {}: {e}", t.to);
                            }
                        }
                        _ => tracing::warn!("no floor socket toward {}; dropped", t.to),
                    },
                }
            }
            while let Some(t) = self.link.poll_transmit() {
                progressed = true;
                crate::trace::sip(&self.name, "out to", &t.destination, || t.bytes.to_vec());
                match t.transport {
                    Transport::Udp => {
                        if let Err(e) =
                            send_udp(&self.udp, &t.bytes, t.destination, &mut waited).await
                        {
                            tracing::info!("SIP/UDP to {}: {e}", t.destination);
                        }
                    }
                    Transport::Tcp | Transport::Tls => {
                        self.send_tcp(t.destination, t.transport, Vec::from(t.bytes));
                    }
                }
            }
            self.deliver();
            while let Some(e) = self.role.poll_event() {
                progressed = true;
                let _ = self.events.send(e);
            }
            while let Some(e) = self.role.poll_timeline() {
                progressed = true;
                if let Some(tl) = &self.timeline {
                    let _ = tl.send(e);
                }
            }
            if !progressed {
                break;
            }
        }
        waited
    }

    fn send_tcp(&mut self, to: SocketAddr, transport: Transport, bytes: Vec<u8>) {
        // A closed connection hands the bytes back: they go on a new one.
        let bytes = match self.conns.get(&to) {
            Some((_, w)) => match w.send(bytes) {
                Ok(()) => return,
                Err(mpsc::error::SendError(bytes)) => bytes,
            },
            None => bytes,
        };
        let writer = self.new_connection(to, transport, None, None);
        let _ = writer.send(bytes);
    }
}

/// One SIP/TCP (or TLS) connection's identity and what it answers to.
struct Connection {
    /// The peer's address and the connection's transport (TCP or TLS).
    remote: Remote,
    id: u64,
    inbound: mpsc::Sender<TcpInput>,
    guard: Arc<Guard>,
    /// Held while the connection is open (inbound connections only).
    _slot: Option<OwnedSemaphorePermit>,
}

/// Why a connection ended.
enum Close {
    /// The peer closed it, or reading or writing failed.
    Peer,
    /// The driver stopped, or dropped the connection.
    Driver,
    Idle,
    Slow,
    Framing,
}

/// The TLS side of a connection.
enum TlsSide {
    /// Accepted on a TLS node: the server handshake.
    Accept(TlsAcceptor),
    /// Toward a TLS peer: the client handshake, checking the peer's
    /// certificate (`None`: this node has no TLS configuration).
    Connect(Option<TlsTarget>),
}

/// Runs one TCP connection: connects if `stream` is `None`, handshakes if
/// `tls` says so, frames incoming messages with [`StreamDecoder`], writes
/// what the driver sends, and closes it when it is idle, slow or
/// unframeable (per [`NodeLimits`]).
fn spawn_connection(
    conn: Connection,
    stream: Option<TcpStream>,
    tls: Option<TlsSide>,
) -> mpsc::UnboundedSender<Vec<u8>> {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let (remote, id, inbound) = (conn.remote, conn.id, &conn.inbound);
        let peer = remote.addr;
        let stream = match stream {
            Some(s) => s,
            None => match TcpStream::connect(peer).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!("SIP/TCP connect {peer}: {e}");
                    let _ = inbound.send(TcpInput::Unreachable(remote, id)).await;
                    return;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let counted = conn._slot.is_some();
        if counted {
            conn.guard.counters.tcp_open.fetch_add(1, Ordering::Relaxed);
        }
        let c = &conn.guard.counters;
        let why = match tls {
            None => Some(serve_connection(&conn, stream, None, rx).await),
            Some(side) => match handshake(&conn, side, stream).await {
                Ok((stream, identity)) => {
                    let identity = Arc::new(identity);
                    conn.guard
                        .tls_peers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(peer, (id, identity.clone()));
                    let named = (*identity != PeerIdentity::default()).then_some(&*identity);
                    let why = serve_connection(&conn, stream, named, rx).await;
                    let mut peers = conn
                        .guard
                        .tls_peers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if peers.get(&peer).is_some_and(|(open, _)| *open == id) {
                        peers.remove(&peer);
                    }
                    Some(why)
                }
                Err(e) => {
                    bump(&c.tls_failed);
                    tracing::info!("SIP/TLS {peer}: {e}");
                    None
                }
            },
        };
        match why {
            Some(Close::Idle) => bump(&c.tcp_idle_closed),
            Some(Close::Slow) => bump(&c.tcp_slow_closed),
            Some(Close::Framing) => bump(&c.tcp_framing_closed),
            Some(Close::Peer | Close::Driver) | None => {}
        }
        if counted {
            c.tcp_open.fetch_sub(1, Ordering::Relaxed);
        }
        let end = match why {
            // The transactions toward a peer we could not authenticate fail now.
            None if conn._slot.is_none() => TcpInput::Unreachable(remote, id),
            _ => TcpInput::Closed(peer, id),
        };
        let _ = inbound.send(end).await;
    });
    tx
}

/// The TLS handshake of a connection, within `tcp_message_timeout`: the
/// stream and what the peer's certificate names (empty if it presented none).
async fn handshake(
    conn: &Connection,
    side: TlsSide,
    stream: TcpStream,
) -> Result<(TlsStream<TcpStream>, PeerIdentity), NetError> {
    let peer = conn.remote.addr;
    let limit = conn.guard.limits.tcp_message_timeout;
    let run = async {
        match side {
            TlsSide::Accept(acceptor) => {
                let tls = acceptor
                    .accept(stream)
                    .await
                    .map_err(|e| NetError::Tls(format!("handshake with {peer}: {e}")))?;
                let identity = PeerIdentity::of(tls.get_ref().1).unwrap_or_default();
                Ok((TlsStream::from(tls), identity))
            }
            TlsSide::Connect(Some(target)) => {
                let (tls, identity) = crate::tls::connect(&target, peer, stream).await?;
                Ok((TlsStream::from(tls), identity))
            }
            TlsSide::Connect(None) => Err(NetError::Tls(format!(
                "{peer} speaks TLS and this node has no TLS configuration"
            ))),
        }
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| NetError::Tls(format!("handshake with {peer}: timed out after {limit:?}")))?
}

async fn serve_connection<S: AsyncRead + AsyncWrite>(
    conn: &Connection,
    stream: S,
    identity: Option<&PeerIdentity>,
    mut outbound: mpsc::UnboundedReceiver<Vec<u8>>,
) -> Close {
    let limits = &conn.guard.limits;
    let remote = conn.remote;
    let peer = remote.addr;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut decoder = StreamDecoder::new(Limits::TCP);
    let mut buf = vec![0u8; TCP_READ];
    // Last complete message received, or write: the idle clock.
    let mut active = Instant::now();
    // When the first octet of a message still incomplete arrived: the slowloris clock.
    let mut message_started: Option<Instant> = None;
    loop {
        let idle_at = active + limits.tcp_idle;
        let deadline = match message_started {
            Some(t) => idle_at.min(t + limits.tcp_message_timeout),
            None => idle_at,
        };
        tokio::select! {
            r = reader.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => return Close::Peer,
                    Ok(n) => n,
                };
                decoder.push(&buf[..n]);
                let mut completed = false;
                loop {
                    match decoder.next_message() {
                        Ok(Some(msg)) => {
                            completed = true;
                            active = Instant::now();
                            conn.guard.admit_tcp(peer.ip()).await;
                            if !conn.guard.invite_allowed(remote, identity, &msg, Instant::now()) {
                                continue;
                            }
                            if conn.inbound.send(TcpInput::Message(remote, Box::new(msg))).await.is_err() {
                                return Close::Driver;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // A stream that cannot be framed cannot be resynchronised.
                            tracing::info!("SIP/TCP from {peer}: {e}; closing");
                            return Close::Framing;
                        }
                    }
                }
                message_started = if !decoder.in_message() {
                    None
                } else if completed || message_started.is_none() {
                    // A message begun in this read: timed from now, as the time spent
                    // delivering the ones before it (rate, a busy driver) is ours.
                    Some(Instant::now())
                } else {
                    message_started
                };
            }
            bytes = outbound.recv() => {
                let Some(bytes) = bytes else {
                    return Close::Driver;
                };
                // A peer that does not read would otherwise hold this task (and the
                // queue of what the driver sends it) forever.
                match tokio::time::timeout(limits.tcp_message_timeout, writer.write_all(&bytes)).await {
                    Ok(Ok(())) => active = Instant::now(),
                    Ok(Err(_)) => return Close::Peer,
                    Err(_) => {
                        tracing::info!("SIP/TCP to {peer}: not reading; closing");
                        return Close::Slow;
                    }
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                return if message_started.is_some_and(|t| Instant::now() >= t + limits.tcp_message_timeout) {
                    tracing::debug!("SIP/TCP from {peer}: message incomplete after {:?}; closing", limits.tcp_message_timeout);
                    Close::Slow
                } else {
                    tracing::debug!("SIP/TCP {peer}: idle for {:?}; closing", limits.tcp_idle);
                    Close::Idle
                };
            }
        }
    }
}
