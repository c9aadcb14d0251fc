//! SRTP and SRTCP with AEAD_AES_128_GCM for 3GPP mission-critical media
//! (TS 33.180 clause 7.4): RFC 3711 with RFC 7714's AEAD transform, an MKI
//! key ring, and RFC 4771 RCCm3 ROC carriage.
//!
//! The crate is sans-IO: it transforms packets in place in the caller's
//! buffers and never touches sockets, clocks or the OS RNG.
//!
//! ```text
//!  RTP packet ──protect_rtp──▶ header ‖ ciphertext ‖ tag(16) ‖ MKI ‖ ROC(4)
//!  SRTP packet ─unprotect_rtp─▶ RTP packet (same buffer, shorter length)
//!  RTCP packet ─protect_rtcp─▶ header(8) ‖ ciphertext ‖ tag(16) ‖ E|index(4) ‖ MKI
//! ```
//!
//! The types that matter:
//! - [`Session`]: a key ring plus per-SSRC state (ROC, replay window, SRTCP
//!   index) for both directions; [`Session::protect_rtp`],
//!   [`Session::unprotect_rtp`], [`Session::protect_rtcp`],
//!   [`Session::unprotect_rtcp`].
//! - [`Config`]: MKI length (0 to 8 octets), [`RocCarriage`], SRTCP
//!   encryption, stream limit. [`Config::ts33180`] is the TS 33.180 profile.
//! - [`MasterKey`] (16-octet key, 12-octet salt; zeroized, never printed)
//!   and [`Mki`]. Several master keys live in the ring at once; each packet
//!   is protected with the active key or one named by MKI, and received
//!   packets find their key by MKI.
//! - [`Error`] (typed, per failure kind) and [`Stats`] (one counter each).
//!
//! Features:
//! - RFC 7714 IV and AAD for SRTP and SRTCP (encrypted and E=0), 16-octet tag.
//! - RFC 3711 key derivation (AES-CM PRF, key derivation rate 0) from master
//!   key and salt, once per key: the AES key schedule and GHASH key are
//!   computed when a key is added, never per packet.
//! - 64-packet replay window (RFC 3711 section 3.3.2), updated only after a
//!   packet authenticates; ROC estimation (RFC 3711 Appendix A); RCCm3 ROC
//!   carriage (RFC 4771) for late joiners.
//! - RTP CSRCs and header extensions (authenticated, not encrypted).
//! - Key usage limits: 2^48 SRTP and 2^31 SRTCP packets per master key
//!   ([`KeyUsage`]); the ROC and SRTCP index spaces are checked too.
//!
//! # Example
//! ```
//! use mcx_srtp::{Config, MasterKey, Mki, Session};
//!
//! let tgmk_id = Mki::from_u32(0x1234_5678);
//! let config = Config::ts33180(4);
//! let mut alice = Session::new(config)?;
//! let mut bob = Session::new(config)?;
//! alice.add_key(tgmk_id, MasterKey::new([1; 16], [2; 12]))?;
//! bob.add_key(tgmk_id, MasterKey::new([1; 16], [2; 12]))?;
//!
//! let rtp = [0x80, 0x60, 0x00, 0x01, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe, b'h', b'i'];
//! let mut buf = [0u8; 64];
//! buf[..rtp.len()].copy_from_slice(&rtp);
//! let n = alice.protect_rtp(&mut buf, rtp.len())?;
//! assert_eq!(n, rtp.len() + config.rtp_overhead());
//!
//! let got = bob.unprotect_rtp(&mut buf[..n])?;
//! assert_eq!(&buf[..got.len], &rtp);
//! assert_eq!(got.mki, tgmk_id);
//! # Ok::<(), mcx_srtp::Error>(())
//! ```
//!
//! # Non-features
//! - No network I/O, timers or randomness (sans-IO).
//! - Only AEAD_AES_128_GCM, the TS 33.180 transform: no AES-CM/HMAC-SHA1,
//!   no AES-256, no key derivation rate other than 0, no RFC 6904 header
//!   extension encryption.
//! - RCCm1/RCCm2 (ROC with an HMAC tag) are not needed with an AEAD.
#![forbid(unsafe_code)]

mod error;
mod gcm;
mod kdf;
mod key;
mod packet;
mod replay;
mod session;

#[cfg(test)]
mod test_vectors;

pub use error::{Error, Exhausted, InvalidPacket, KeyRingError, Replay, Stats};
pub use key::{KeyUsage, MasterKey, Mki, SRTCP_PACKET_LIMIT, SRTP_PACKET_LIMIT, TAG_LEN};
pub use replay::REPLAY_WINDOW;
pub use session::{Config, DEFAULT_MAX_STREAMS, MAX_PACKET_LEN, RocCarriage, Session, Unprotected};
