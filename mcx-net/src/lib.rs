//! tokio networking for the MCX roles.
//!
//! The protocol logic lives in sans-IO crates (`mcx-core` roles, the
//! `mcx-sip` transaction layer behind [`mcx_core::SipLink`]); this crate
//! only moves their bytes between sockets and clocks, in the shape of
//! quinn's `ConnectionDriver`: one task per node loops over "feed input →
//! drain transmits → arm the next timer".
//!
//! - [`node`]: binds a node's sockets (SIP on UDP and TCP on one port,
//!   or TLS on that TCP port; floor control on UDP) and drives any
//!   [`Role`] with them.
//! - [`tls`]: the TLS side of connections ([`NodeTls`], [`TlsTarget`]):
//!   certificates checked against the topology's CA, the peer's address
//!   and its identity; what a peer's certificate names ([`PeerIdentity`]).
//! - [`Directory`]: maps the roles' addresses (SIP URIs) to sockets. The
//!   roles address each other by URI; the directory is configuration
//!   (the topology file), standing in for DNS/registrar lookups.
//! - [`http`]: a minimal HTTP/1.1 client (hyper) for provisioning from
//!   the KMS and the GMS.
//! - [`accept_loop`]: the accept loop of the node's SIP/TCP listener and
//!   of the servers' HTTP listeners: an accept error never ends it.
//!
//! # Hostile peers
//!
//! A node's work and memory stay in proportion to honest traffic whatever
//! its peers send. [`node::NodeLimits`] (given to
//! [`node::BoundNode::run_with`]; [`node::BoundNode::run`] uses the
//! defaults) sets the bounds, and [`node::NodeHandle::guard_stats`] counts
//! what they refused:
//!
//! | limit | default | why |
//! |---|---|---|
//! | `max_tcp_connections` | 1024 | each connection holds a descriptor, a task and up to one message (`Limits::TCP`, 1 MiB) plus one read; beyond the cap, accepted connections are closed at once |
//! | `tcp_idle` | 120 s | a connection with no complete message (and nothing written) for this long is only holding resources; peers reconnect when they need to |
//! | `tcp_message_timeout` | 10 s | a message whose first octet has arrived must be whole within this (slowloris); honest messages take milliseconds. Also bounds a write to a peer that does not read |
//! | `max_messages_per_sec_per_peer`, `peer_burst` | 200/s, 400 | a token bucket per source IP, UDP and TCP together, so one peer cannot take the node: excess UDP is dropped before parsing (the sender retransmits), a TCP connection is read no faster than the rate (nothing is retransmitted on TCP, so dropping would lose messages). A burst of 400 covers an MC server's whole group answering at once |
//! | `max_tracked_peers` | 4096 | bounds the bucket table: idle buckets are swept, and if the table is still full new sources share one bucket (spoofed UDP sources cannot grow it) |
//! | `invite_sources` | `None` (any) | an MC server takes calls (out-of-dialog INVITEs) only from its controlling server(s): exact socket over UDP, IP of the connection over TCP, the client certificate's name over TLS when the source has an identity (mutual TLS); other INVITEs are dropped before the transaction layer |
//! | `accept_backoff` | 50 ms doubling to 1 s | out of descriptors, accepting again at once would spin; each burst of errors is logged once |
//!
//! SIP/TCP framing ([`mcx_sip::StreamDecoder`]) is linear in the octets
//! received, however they are cut, and a connection's buffer holds at
//! most one maximal message plus one read. The defaults suit a
//! deployment where each member is its own host: a topology that puts
//! hundreds of members on one address (a loopback benchmark) shares one
//! bucket among them and should raise the rate.
#![forbid(unsafe_code)]

pub mod http;
mod media;
pub use media::RelayTask;
pub mod node;
mod rng;
pub use rng::BufferedOsRng;
pub mod tls;
pub mod trace;
pub use mcx_tls::PeerIdentity;
pub use tls::{NodeTls, TlsTarget};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcx_core::{
    Channel, Client, ClientEvent, ControllingEvent, ControllingServer, McServer, McServerEvent,
    RelayCommand, Time, TimelineEntry, Transmit,
};
pub use mcx_sip::Transport;

/// The OS random number generator, as the roles take it: read in
/// blocks ([`BufferedOsRng`]), one system call for many tags, branches
/// and Call-IDs.
pub type OsRng = BufferedOsRng;

/// The OS random number generator (nothing is read until the first draw).
pub fn os_rng() -> OsRng {
    BufferedOsRng::new()
}

/// The current time as the roles take it.
pub fn now() -> Time {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Time {
        instant: Instant::now(),
        unix,
    }
}

/// Where a node can be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its SIP socket (UDP and TCP listen on the same port).
    pub sip: SocketAddr,
    /// The transport peers use toward it.
    pub transport: Transport,
    /// Its floor-control (RTCP APP) socket, if it takes part in floor control.
    pub floor: Option<SocketAddr>,
}

/// Address book of a topology: role URI → sockets, and floor socket →
/// URI (floor packets carry no SIP URI, so their sender is known by its
/// socket).
#[derive(Clone, Debug, Default)]
pub struct Directory {
    by_uri: HashMap<String, Peer>,
    by_floor: HashMap<SocketAddr, String>,
    by_sip: HashMap<SocketAddr, String>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a node.
    pub fn insert(&mut self, uri: &str, peer: Peer) {
        if let Some(floor) = peer.floor {
            self.by_floor.insert(floor, uri.to_owned());
        }
        self.by_sip.insert(peer.sip, uri.to_owned());
        self.by_uri.insert(uri.to_owned(), peer);
    }

    /// The URI of the node whose SIP socket is `addr`: the identity its
    /// TLS certificate must name when this node connects to it.
    pub fn sip_owner(&self, addr: SocketAddr) -> Option<&str> {
        self.by_sip.get(&addr).map(String::as_str)
    }

    /// The sockets of `uri`.
    pub fn peer(&self, uri: &str) -> Option<&Peer> {
        self.by_uri.get(uri)
    }

    /// The URI of the node whose floor socket is `addr`.
    pub fn floor_owner(&self, addr: SocketAddr) -> Option<&str> {
        self.by_floor.get(&addr).map(String::as_str)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.by_uri.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.by_uri.is_empty()
    }

    /// The part of this directory naming `uris` (those it has): the
    /// address book of a node that only ever talks to them, such as an MC
    /// server (the controlling server, the other MC servers, its groups'
    /// members). Smaller is also faster: a node looks the destination of
    /// every datagram up, and in a 10,000-user table each lookup was a
    /// cache miss (about 4 % of an MC server's time at 10,000 members).
    pub fn restricted_to<'a>(&self, uris: impl IntoIterator<Item = &'a str>) -> Self {
        let mut d = Self::new();
        for uri in uris {
            if let Some(p) = self.peer(uri) {
                d.insert(uri, *p);
            }
        }
        d
    }
}

/// A sans-IO role the node driver can run: the common shape of
/// [`Client`], [`McServer`] and [`ControllingServer`].
pub trait Role: Send + 'static {
    /// What the role reports to its application.
    type Event: Send + std::fmt::Debug + 'static;
    /// Its URI (names the node in logs and the SIP trace).
    fn uri(&self) -> &str;
    /// Network input.
    fn handle(
        &mut self,
        time: Time,
        from: &str,
        channel: Channel,
        bytes: &[u8],
        rng: &mut OsRng,
    ) -> Result<(), mcx_core::Error>;
    /// A SIP message, parsed once by the [`mcx_core::SipLink`].
    fn handle_sip(
        &mut self,
        time: Time,
        from: &str,
        msg: mcx_sip::Message,
        rng: &mut OsRng,
    ) -> Result<(), mcx_core::Error>;
    /// A timer of the role expired.
    fn handle_timeout(&mut self, time: Time, rng: &mut OsRng) -> Result<(), mcx_core::Error>;
    /// Ends the role's calls for an orderly stop (BYE, CANCEL, 503).
    fn shutdown(&mut self, time: Time, rng: &mut OsRng) -> Result<(), mcx_core::Error>;
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next timer.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The next timeline entry.
    fn poll_timeline(&mut self) -> Option<TimelineEntry>;
    /// The next change to the node's media relay (servers only).
    fn poll_relay(&mut self) -> Option<RelayCommand> {
        None
    }
    /// The top Via the node's SIP link sends with (its transport and
    /// address): a role that writes its requests with it spares the link
    /// a rewrite of each.
    fn set_sent_by(&mut self, _transport: Transport, _sent_by: &str) {}
}

impl Role for Client {
    type Event = ClientEvent;
    fn uri(&self) -> &str {
        Self::uri(self)
    }
    fn set_sent_by(&mut self, transport: Transport, sent_by: &str) {
        Self::set_sent_by(self, transport, sent_by);
    }
    fn handle(
        &mut self,
        time: Time,
        from: &str,
        channel: Channel,
        bytes: &[u8],
        rng: &mut OsRng,
    ) -> Result<(), mcx_core::Error> {
        Self::handle(self, time, from, channel, bytes, rng)
    }
    fn handle_sip(
        &mut self,
        time: Time,
        from: &str,
        msg: mcx_sip::Message,
        rng: &mut OsRng,
    ) -> Result<(), mcx_core::Error> {
        Self::handle_sip(self, time, from, msg, rng)
    }
    fn handle_timeout(&mut self, time: Time, rng: &mut OsRng) -> Result<(), mcx_core::Error> {
        Self::handle_timeout(self, time, rng)
    }
    fn shutdown(&mut self, time: Time, rng: &mut OsRng) -> Result<(), mcx_core::Error> {
        Self::shutdown(self, time, rng)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Self::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<ClientEvent> {
        Self::poll_event(self)
    }
    fn poll_timeline(&mut self) -> Option<TimelineEntry> {
        Self::poll_timeline(self)
    }
}

impl Role for McServer {
    type Event = McServerEvent;
    fn uri(&self) -> &str {
        Self::uri(self)
    }
    fn set_sent_by(&mut self, transport: Transport, sent_by: &str) {
        Self::set_sent_by(self, transport, sent_by);
    }
    fn handle(
        &mut self,
        time: Time,
        from: &str,
        channel: Channel,
        bytes: &[u8],
        rng: &mut OsRng,
    ) -> Result<(), mcx_core::Error> {
        Self::handle(self, time, from, channel, bytes, rng)
    }
    fn handle_sip(
        &mut self,
        time: Time,
        from: &str,
        msg: mcx_sip::Message,
        rng: &mut OsRng,
    ) -> Result<(), mcx_core::Error> {
        Self::handle_sip(self, time, from, msg, rng)
    }
    fn handle_timeout(&mut self, time: Time, rng: &mut OsRng) -> Result<(), mcx_core::Error> {
        Self::handle_timeout(self, time, rng)
    }
    fn shutdown(&mut self, time: Time, rng: &mut OsRng) -> Result<(), mcx_core::Error> {
        Self::shutdown(self, time, rng)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Self::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<McServerEvent> {
        Self::poll_event(self)
    }
    fn poll_timeline(&mut self) -> Option<TimelineEntry> {
        Self::poll_timeline(self)
    }
    fn poll_relay(&mut self) -> Option<RelayCommand> {
        Self::poll_relay(self)
    }
}

impl Role for ControllingServer {
    type Event = ControllingEvent;
    fn uri(&self) -> &str {
        Self::uri(self)
    }
    fn set_sent_by(&mut self, transport: Transport, sent_by: &str) {
        Self::set_sent_by(self, transport, sent_by);
    }
    fn handle(
        &mut self,
        time: Time,
        from: &str,
        channel: Channel,
        bytes: &[u8],
        rng: &mut OsRng,
    ) -> Result<(), mcx_core::Error> {
        Self::handle(self, time, from, channel, bytes, rng)
    }
    fn handle_sip(
        &mut self,
        time: Time,
        from: &str,
        msg: mcx_sip::Message,
        rng: &mut OsRng,
    ) -> Result<(), mcx_core::Error> {
        Self::handle_sip(self, time, from, msg, rng)
    }
    fn handle_timeout(&mut self, time: Time, rng: &mut OsRng) -> Result<(), mcx_core::Error> {
        Self::handle_timeout(self, time, rng)
    }
    fn shutdown(&mut self, time: Time, rng: &mut OsRng) -> Result<(), mcx_core::Error> {
        Self::shutdown(self, time, rng)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Self::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<ControllingEvent> {
        Self::poll_event(self)
    }
    fn poll_timeline(&mut self) -> Option<TimelineEntry> {
        Self::poll_timeline(self)
    }
    fn poll_relay(&mut self) -> Option<RelayCommand> {
        Self::poll_relay(self)
    }
}

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An HTTP exchange failed.
    #[error("HTTP {0}")]
    Http(String),
    /// A TLS handshake failed, or the peer's certificate does not name
    /// whom it should.
    #[error("TLS {0}")]
    Tls(String),
    /// The node's task ended.
    #[error("the node has stopped")]
    Stopped,
}

impl NetError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// How an accept loop waits after an accept error that is not about one
/// connection (out of file descriptors, out of memory): retrying at once
/// would spin on the same error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptBackoff {
    /// The first wait of a burst of errors.
    pub initial: Duration,
    /// The longest wait: each further error of the burst doubles the wait up to this.
    pub max: Duration,
}

impl Default for AcceptBackoff {
    /// 50 ms doubling to 1 s: short enough that a listener is back soon
    /// after descriptors are freed, long enough that a lasting shortage
    /// costs a few wake-ups per second.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        }
    }
}

/// Errors that concern one connection (it was reset before it was
/// accepted): the next accept can succeed at once.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// Accepts connections until `on_accept` breaks: an accept error never
/// ends the loop.
///
/// `accept` yields the next connection (e.g. `|| listener.accept()`),
/// `sleep` waits (`tokio::time::sleep` in production; tests record the
/// waits). After an error that is not about one connection the loop
/// waits per `backoff`, doubling while the errors last. Each error is
/// counted in `errors`; a burst is logged once, when it starts (warn),
/// and once when accepting works again (info), never per error: a node
/// out of file descriptors must not fill the disk with its log too.
pub async fn accept_loop<T, A, AF, S, SF, H, HF>(
    what: &str,
    backoff: AcceptBackoff,
    errors: &AtomicU64,
    mut accept: A,
    mut sleep: S,
    mut on_accept: H,
) where
    A: FnMut() -> AF,
    AF: Future<Output = std::io::Result<T>>,
    S: FnMut(Duration) -> SF,
    SF: Future<Output = ()>,
    H: FnMut(T) -> HF,
    HF: Future<Output = ControlFlow<()>>,
{
    let mut wait = backoff.initial;
    let mut burst = 0u64;
    loop {
        match accept().await {
            Ok(conn) => {
                if burst > 0 {
                    tracing::info!("{what}: accepting again after {burst} accept errors");
                    burst = 0;
                    wait = backoff.initial;
                }
                if on_accept(conn).await.is_break() {
                    return;
                }
            }
            Err(e) if is_connection_error(&e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("{what}: accept: {e}");
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                if burst == 0 {
                    tracing::warn!(
                        "{what}: accept failed: {e}; retrying with back-off up to {:?}, \
                         further errors are not logged until accepting works again",
                        backoff.max
                    );
                }
                burst += 1;
                sleep(wait).await;
                wait = (wait * 2).min(backoff.max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16, floor: Option<u16>) -> Peer {
        Peer {
            sip: SocketAddr::from(([127, 0, 0, 1], port)),
            transport: Transport::Udp,
            floor: floor.map(|f| SocketAddr::from(([127, 0, 0, 1], f))),
        }
    }

    #[test]
    fn a_restricted_directory_knows_only_the_nodes_named_both_ways() {
        let mut all = Directory::new();
        all.insert("sip:ctrl@x", peer(5060, Some(6000)));
        all.insert("sip:m1@x", peer(5061, Some(6001)));
        all.insert("sip:m2@x", peer(5062, Some(6002)));
        let d = all.restricted_to(["sip:ctrl@x", "sip:m1@x", "sip:unknown@x"]);
        assert_eq!(d.len(), 2, "names it does not have are skipped");
        assert_eq!(d.peer("sip:m1@x"), all.peer("sip:m1@x"));
        assert_eq!(d.peer("sip:m2@x"), None);
        // The reverse lookups follow: a packet from m2's sockets is from
        // nobody this node knows.
        let m2 = peer(5062, Some(6002));
        assert_eq!(d.sip_owner(m2.sip), None);
        assert_eq!(d.floor_owner(m2.floor.unwrap_or(m2.sip)), None);
        let m1 = peer(5061, Some(6001));
        assert_eq!(d.sip_owner(m1.sip), Some("sip:m1@x"));
        assert_eq!(d.floor_owner(m1.floor.unwrap_or(m1.sip)), Some("sip:m1@x"));
    }
}
