//! MCPTT floor control (3GPP TS 24.380) for mission-critical push to talk,
//! without I/O.
//!
//! - **Codec** ([`Message`], [`decode_compound`]): floor control messages
//!   as RTCP APP packets named "MCPT" (RFC 3550 6.7, TS 24.380 8.2), their
//!   fields as typed [`Field`]s, unknown fields kept byte for byte.
//!   Decoding is strict and names the field and offset of any error
//!   ([`DecodeError`]); encoding reproduces decoded octets exactly.
//! - **Floor participant** ([`Participant`], TS 24.380 6.2 subset):
//!   request, granted, taken, deny, idle, release, revoke, Floor Ack, with
//!   timers T100/T101 and counters C100/C101.
//! - **Broadcast arbitrator** ([`BroadcastArbitrator`], TS 24.380 6.3
//!   subset): the floor control server of a temporary group – broadcast
//!   group call, where only the initiator is ever granted the floor.
//! - **Non-controlling function** ([`NonControlling`], TS 24.380 6.5
//!   subset): an MC server's floor control server towards its own members
//!   for the Floor Taken / Floor Idle the arbitrator sends once per call
//!   leg ([`BroadcastArbitrator::add_represented_receiver`]).
//! - **Code tables** ([`RejectCause`], [`RevokeCause`], [`Source`],
//!   [`FloorIndicator`]).
//!
//! Sans-IO (the quinn-proto shape): no sockets, no clock. Time comes in as
//! `now: Instant`; packets go out through `poll_transmit`, timer deadlines
//! through `poll_timeout`, happenings through `poll_event`.
//!
//! # Non-features
//! - No queueing, pre-emption, dual floor, multi-talker or off-network
//!   floor control (TS 24.380 7).
//! - No general floor arbitration: the arbitrator implements the broadcast
//!   group call rules only (see docs/floor.md).
//! - No SRTCP: protect the packets with `mcx-srtp`.
#![forbid(unsafe_code)]

mod arbitrator;
mod codes;
mod error;
pub mod message;
mod non_controlling;
mod participant;

pub use arbitrator::{
    ArbitratorConfig, ArbitratorEvent, ArbitratorState, BroadcastArbitrator, INITIATOR,
    ParticipantId, Transmit,
};
pub use codes::{FloorIndicator, RejectCause, RevokeCause, Source};
pub use error::{DecodeError, DecodeErrorKind, EncodeError, Error};
pub use message::{Field, Message, MessageType, OtherPacket, RtcpPacket, decode_compound};
pub use non_controlling::{NonControlling, NonControllingEvent};
pub use participant::{Participant, ParticipantConfig, ParticipantEvent, ParticipantState};
