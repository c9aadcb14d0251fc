//! tokio networking for the MCX roles.
//!
//! The protocol logic lives in sans-IO crates (`mcx-core` roles, the
//! `mcx-sip` transaction layer behind [`mcx_core::SipLink`]); this crate
//! only moves their bytes between sockets and clocks, in the shape of
//! quinn's `ConnectionDriver`: one task per node loops over "feed input →
//! drain transmits → arm the next timer".
//!
//! - [`node`]: binds a node's sockets (SIP on UDP and TCP on one port,
//!   floor control on UDP) and drives any [`Role`] with them.
//! - [`Directory`]: maps the roles' addresses (SIP URIs) to sockets. The
//!   roles address each other by URI; the directory is configuration
//!   (the topology file), standing in for DNS/registrar lookups.
//! - [`http`]: a minimal HTTP/1.1 client (hyper) for provisioning from
//!   the KMS and the GMS.
#![forbid(unsafe_code)]

pub mod http;
pub mod node;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mcx_core::{
    Channel, Client, ClientEvent, ControllingEvent, ControllingServer, McServer, McServerEvent,
    Time, TimelineEntry, Transmit,
};
pub use mcx_sip::Transport;

/// The OS random number generator, as the roles take it.
pub type OsRng = rand_core::UnwrapErr<getrandom::SysRng>;

/// The OS random number generator.
pub fn os_rng() -> OsRng {
    rand_core::UnwrapErr(getrandom::SysRng)
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
        self.by_uri.insert(uri.to_owned(), peer);
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
}

/// A sans-IO role the node driver can run: the common shape of
/// [`Client`], [`McServer`] and [`ControllingServer`].
pub trait Role: Send + 'static {
    /// What the role reports to its application.
    type Event: Send + std::fmt::Debug + 'static;
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
}

impl Role for Client {
    type Event = ClientEvent;
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
}

impl Role for ControllingServer {
    type Event = ControllingEvent;
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
