//! The roles of a temporary group – broadcast group call (TS 33.180 CR
//! clause 7.3.X, SPEC section 1), as sans-IO state machines composing
//! `mcx-ibc`, `mcx-mikey`, `mcx-sip` and `mcx-floor`.
//!
//! ```text
//!  Client (initiator) ──INVITE(SDP, mcptt-info, wrapped TGMK per group)──► ControllingServer
//!  ControllingServer ──INVITE(only group A's wrap)──► McServer A ──INVITE──► members of A
//!  members ──200 OK / 403 / 488──► McServer A ──200 OK + call result──► ControllingServer
//!  ControllingServer ──200 OK + call result (per group)──► initiator; BroadcastArbitrator grants the floor
//! ```
//!
//! - [`Client`]: an MC service client. Holds its KMS user keys, the KMS
//!   community's public values and its groups' GMKs (accepted from GMS
//!   I_MESSAGEs); starts a temporary group call as initiator or takes
//!   part as a receiver (unwraps the TGMK only after every check).
//! - [`McServer`]: owns groups and their member lists; forwards a call
//!   request with that group's wrapped TGMK to the members; reports.
//! - [`ControllingServer`]: owns the temporary group call; checks the
//!   initiator; splits the request per constituent group; aggregates the
//!   per-group acceptance; arbitrates the floor. It holds no key
//!   material: it forwards the wrapped copies byte for byte, reading only
//!   their clear envelope to refuse stale or replayed call requests.
//! - [`SipLink`]: one per role instance, between the role and the
//!   sockets: SIP transactions and retransmissions (RFC 3261 17, RFC
//!   6026 via `mcx_sip::TransactionLayer`), 2xx/ACK handling, a 408 to
//!   the role on Timer B/F, and the peer URI of every message it hands
//!   the role.
//!
//! Every role has the same shape (quinn-proto style): `handle(time,
//! from, channel, bytes, rng)` for network input, `handle_timeout(time)`
//! for timers, application commands, then `poll_transmit` →
//! `poll_timeout` → `poll_event` → `poll_timeline`.
//!
//! Sans-IO: no sockets, no clock, no OS RNG. Time comes in as [`Time`]
//! (a monotonic `Instant` for timers and Unix seconds for MIKEY time
//! stamps), randomness as a [`rand_core::CryptoRng`].
//!
//! Many calls per role: the controlling server and the MC servers hold
//! any number of concurrent calls (one per temporary group at a time),
//! each with its own state, timers and floor; a client runs several
//! calls, named by their temporary group. Every wait is bounded (group
//! and member deadlines, the initiator's wait, ACK waits, maximum call
//! duration) and every call record ends. Results travel in the call
//! result body ([`CallResult`]).
//!
//! # Non-features
//! - The roles themselves work at SIP message level and assume every
//!   message arrives once; over real UDP/TCP put a [`SipLink`] in front
//!   of each role (docs/core.md "SIP over the network").
//! - No media sockets: every party announces the [`MediaEndpoint`] its
//!   driver bound; the servers emit [`RelayCommand`]s for their drivers'
//!   key-blind relays, and [`Client::voice`] tells a client's driver
//!   what to send or expect and with which keys (`mcx-srtp`).
#![forbid(unsafe_code)]

mod agenda;
mod client;
mod controlling;
mod copies;
mod error;
mod floor_guard;
mod gmks;
mod hashed;
mod info;
mod link;
mod mc_server;
mod own_keys;
mod registration;
mod result;
mod sdp;
mod sip;
mod summary;
mod ua;

use std::time::Instant;

pub use client::{Client, ClientConfig, ClientEvent, KeyConfirmation, Voice};
pub use controlling::{
    ControllingEvent, ControllingServer, ControllingServerConfig, GROUP_LOST_INFO_PACKAGE,
    TemporaryGroup,
};
pub use controlling::{Removal, TemporaryGroupError};
pub use error::Error;
pub use floor_guard::FloorDrops;
pub use gmks::{GmkError, GmkInfo, MAX_GMKS_PER_GROUP, MkiError, SenderKeys};
pub use info::{McpttInfo, NAMESPACE as MCPTT_INFO_NAMESPACE};
pub use link::{Delivery, LinkStats, SipLink};
pub use mc_server::{AnswerPolicy, McServer, McServerEvent, McServerLimits, P_ANSWER_STATE};
pub use mcx_relay::Route;
pub use own_keys::MAX_KEY_PERIODS;
pub use result::{
    CALL_RESULT_CONTENT_TYPE, CALL_RESULT_NAMESPACE, CallResult, FailureCause, GroupFailure,
    GroupReport, GroupResult, MemberOutcome, MemberResult,
};
pub use sdp::{
    Direction, MediaEndpoint, PCMU_PAYLOAD_TYPE, PTIME_MS, Sdp, SdpError, parse as parse_sdp,
};
pub use summary::{CallState, CallSummary};

/// The time input of every role: the monotonic clock for timers and the
/// wall clock (Unix seconds) for MIKEY time stamps and replay windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    /// Monotonic time (timers, floor control).
    pub instant: Instant,
    /// Unix seconds (MIKEY T payloads, key periods, replay windows).
    pub unix: u64,
}

/// Which protocol a datagram belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// SIP signalling (RFC 3261, TS 24.379).
    Sip,
    /// Floor control: RTCP APP "MCPT" packets (TS 24.380).
    Floor,
}

/// A datagram to send: the only network output of a role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The sender's address (its SIP URI).
    pub from: String,
    /// The destination's address (a SIP URI).
    pub to: String,
    /// The protocol.
    pub channel: Channel,
    /// The octets when there is no `sip` message (floor packets, SIP
    /// octets from elsewhere); empty when `sip` is given, which is then
    /// the datagram: read the octets with [`Transmit::octets`].
    pub contents: Vec<u8>,
    /// For SIP, the message as the role built it: a driver hands it to
    /// [`SipLink::send_message`], which encodes it once, after its Via
    /// rewrite, without parsing what the role has just written (the role
    /// does not encode it: that was a second encoding of every message).
    /// `None` for floor packets (and for SIP octets from elsewhere:
    /// [`SipLink::send`] parses them).
    pub sip: Option<mcx_sip::Message>,
    /// For SIP, a request the role encoded itself (from a template: an MC
    /// server's INVITE to each member): a driver hands it to
    /// [`SipLink::send_encoded`], which writes its Via and sends it as it
    /// is. `None` otherwise; `contents` is then empty. Boxed: a role may
    /// queue ten thousand transmits at once.
    pub encoded: Option<Box<mcx_sip::EncodedRequest>>,
}

impl Transmit {
    /// A datagram of these octets (floor packets, SIP octets from
    /// elsewhere).
    pub fn of_octets(from: String, to: String, channel: Channel, contents: Vec<u8>) -> Self {
        Self {
            from,
            to,
            channel,
            contents,
            sip: None,
            encoded: None,
        }
    }

    /// The datagram's octets: `sip` encoded if given, else `encoded`'s,
    /// else `contents`.
    /// Encodes on each call: for tests, traces and drivers without a link.
    pub fn octets(&self) -> std::borrow::Cow<'_, [u8]> {
        match (&self.sip, &self.encoded) {
            (Some(m), _) => std::borrow::Cow::Owned(m.to_bytes()),
            (None, Some(e)) => std::borrow::Cow::Borrowed(e.bytes()),
            (None, None) => std::borrow::Cow::Borrowed(&self.contents),
        }
    }

    /// Makes `contents` the datagram (tests and tools that alter what a
    /// role sent): the message value and encoded request are dropped.
    pub fn set_octets(&mut self, contents: Vec<u8>) {
        self.contents = contents;
        self.sip = None;
        self.encoded = None;
    }

    /// True if this is a SIP response (its message, or octets that start
    /// with the status line).
    pub fn is_sip_response(&self) -> bool {
        match (&self.sip, &self.encoded) {
            (Some(m), _) => matches!(m, mcx_sip::Message::Response(_)),
            (None, Some(_)) => false,
            (None, None) => self.channel == Channel::Sip && self.contents.starts_with(b"SIP/2.0 "),
        }
    }
}

/// A change to the server's key-blind media relay (`mcx_relay::Relay`),
/// from the SDP a role negotiated: the driver applies it to its relay
/// table. Only servers emit these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayCommand {
    /// Relay this stream (replacing any route of the same source and SSRC).
    Set(Route),
    /// Stop relaying the stream of this source and SSRC.
    Remove {
        /// The sender's socket.
        source: std::net::SocketAddr,
        /// Its SSRC, as in the route.
        ssrc: Option<u32>,
    },
}

/// What a server's relay must do for one stream of a call: route it to
/// `targets` while the call is `live` and has any, else drop the route if
/// one was set (`relaying` remembers that).
pub(crate) fn route_change(
    source: std::net::SocketAddr,
    ssrc: Option<u32>,
    targets: Vec<std::net::SocketAddr>,
    live: bool,
    relaying: &mut bool,
) -> Option<RelayCommand> {
    if live && !targets.is_empty() {
        *relaying = true;
        Some(RelayCommand::Set(Route {
            source,
            ssrc,
            targets,
        }))
    } else if std::mem::take(relaying) {
        Some(RelayCommand::Remove { source, ssrc })
    } else {
        None
    }
}

/// One entry of the timeline of the nine steps of SPEC section 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry {
    /// The step number (1–9).
    pub step: u8,
    /// The role's address.
    pub role: String,
    /// When it happened.
    pub at: Instant,
    /// What happened (never key material).
    pub detail: String,
}

/// The media type of the MCPTT info body (TS 24.379 F.1).
pub const MCPTT_INFO_CONTENT_TYPE: &str = "application/vnd.3gpp.mcptt-info+xml";
/// The media type of a MIKEY message in SIP (RFC 3830 / RFC 4567).
pub const MIKEY_CONTENT_TYPE: &str = "application/mikey";
/// The SDP media type.
pub const SDP_CONTENT_TYPE: &str = "application/sdp";
pub(crate) fn timeline(role: &str, step: u8, time: Time, detail: String) -> TimelineEntry {
    TimelineEntry {
        step,
        role: role.to_owned(),
        at: time.instant,
        detail,
    }
}

/// The sender SSRC of an RTCP packet (octets 4..8).
pub(crate) fn rtcp_ssrc(bytes: &[u8]) -> Option<u32> {
    let b: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}
