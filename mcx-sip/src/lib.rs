//! Sans-IO SIP (RFC 3261) for mcx.
//!
//! ```text
//!  driver (mcx-server / mcx-client): sockets, TCP connections, Instant::now()
//!      │ bytes + now                          ▲ Transmit / poll_timeout / Event
//!      ▼                                      │
//!  framing: parse_datagram (UDP), StreamDecoder (TCP) ──► Message (Request/Response)
//!      ▼
//!  TransactionLayer: client/server, INVITE/non-INVITE, timers A–M (RFC 3261 17, RFC 6026)
//!      ▼
//!  dialog / TU (mcx-core)          multipart: Multipart::{parse, encode} (RFC 2046, RFC 5621)
//! ```
//!
//! The important types are [`Message`], [`Request`], [`Response`], [`StreamDecoder`],
//! [`Multipart`] and [`TransactionLayer`]. Parsing of URIs and typed headers is done by
//! `ezk-sip-types`, kept private (see docs/sip.md).
//!
//! **Non-features:** no sockets, threads, clock or RNG (randomness comes in as octets,
//! time as `now: Instant`); no DNS (RFC 3263); no TLS; no authentication; no proxy behaviour.
#![forbid(unsafe_code)]

mod dialog;
mod error;
mod framing;
pub mod headers;
mod message;
mod multipart;
mod position_index;
mod slots;
mod template;
mod transaction;

pub use dialog::{Dialog, DialogId};
pub use error::{BuildError, MultipartError, ParseError, TxError};
pub use framing::{Limits, StreamDecoder, parse_datagram, parse_datagram_bytes};
#[doc(hidden)]
pub use message::differential;
pub use message::{
    Header, Headers, MAGIC_COOKIE, Message, Method, NameAddr, Request, RequestBuilder, Response,
    StatusCode, Via, new_branch, new_call_id, new_tag,
};
pub use multipart::{Multipart, Part, boundary_param};
pub use position_index::PositionIndex;
pub use template::{AckTemplate, EncodedRequest, RequestTemplate, Slot, TransportVia};
pub use transaction::{
    Event, Remote, Role, State, Timers, TransactionLayer, Transmit, Transport, TxHandle, TxKey,
    ack_for_non2xx, server_key,
};
