//! The MCPTT media plane without keys or sockets: G.711 µ-law voice, WAV
//! files, RTP packets, receiver statistics and playout (for issue 10, voice
//! under the TGMK).
//!
//! ```text
//!  sender:   WAV ─wav::read─▶ Audio ─to_mono_8k─▶ 8 kHz i16 ─Packetizer::packetize─▶ RTP ─▶ mcx-srtp protect
//!  receiver: mcx-srtp unprotect ─▶ RTP ─Packet::parse─▶ ReceiverStats::record
//!                                                    └─▶ Playout::push ─▶ 8 kHz i16 ─wav::write─▶ WAV
//! ```
//!
//! The crate is sans-IO: it never reads a clock, a socket or the OS RNG.
//! Arrival times are arguments, randomness comes in through `rand_core`.
//!
//! What is here:
//! - [`pcmu`]: ITU-T G.711 µ-law encode/decode (RFC 3551 PCMU).
//! - [`wav`]: RIFF/WAVE reading (8/16/24/32-bit PCM, 32-bit float, any rate,
//!   up to 8 channels) with typed errors, downmix and windowed-sinc
//!   resampling to 8 kHz mono; 16-bit PCM writing.
//! - [`signal`]: a deterministic 3 s tone sequence for when no WAV is given.
//! - [`rtp`]: [`rtp::Packetizer`] (RFC 3550 5.1 header, 20 ms PCMU frames,
//!   marker on talk-spurt starts) and [`rtp::Packet::parse`].
//! - [`ReceiverStats`]: RFC 3550 A.1/A.3/A.8 received, expected, lost,
//!   duplicates, reordering and interarrival jitter.
//! - [`Playout`]: fixed-delay reordering buffer that rebuilds the sender's
//!   sample timeline, silence for lost frames, late packets counted.
//! - [`Receiver`]: one PCMU stream end to end (parse, SSRC and payload type
//!   checks, statistics, playout) with a [`Report`] of received, lost,
//!   late and jitter.
//!
//! # Non-features
//! - No I/O, timers or randomness of its own (sans-IO).
//! - No SRTP: mcx-srtp protects and unprotects the packets this crate
//!   builds and parses.
//! - No RTCP, no packet loss concealment beyond silence, no adaptive
//!   playout delay, no codec but G.711 µ-law.
#![forbid(unsafe_code)]

pub mod pcmu;
mod playout;
mod receiver;
mod resample;
pub mod rtp;
pub mod signal;
mod stats;
pub mod wav;

pub use playout::{Placement, Playout, PlayoutStats};
pub use receiver::{ReceiveError, Receiver, Report};
pub use stats::{Arrival, IntervalLoss, ReceiverStats, Snapshot};
