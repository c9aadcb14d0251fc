//! MIKEY for 3GPP mission-critical security (TS 33.180): the codec, GMK
//! distribution, the wrapped TGMK and the media keys, in pure Rust and
//! without I/O.
//!
//! - **Codec** ([`message`]): every MIKEY payload TS 33.180 uses or may
//!   receive (RFC 3830, RFC 4563, RFC 6043, RFC 6509; E.5 and E.6
//!   extensions): HDR with CS ID map types 0, 1 and 2 (GENERIC-ID), T,
//!   RAND, ID, IDR, SP, KEMAC and its key data, SAKKE, general extensions
//!   (SAKKE-to-self, key parameters), SIGN and ERR. Decoding is strict and
//!   names the payload, field and offset of any error ([`DecodeError`]);
//!   encoding reproduces the decoded octets exactly; the octets a signature
//!   covers are reported ([`message::Layout`]).
//! - **GMK distribution** ([`gmk`]): the GMS builds a MIKEY-SAKKE
//!   I_MESSAGE for a member ([`gmk::GmkMessage`]); the member accepts it
//!   only after checking signature, KMS, identities, time, replay and key
//!   period ([`gmk::GmkReceiver`]).
//! - **CSK upload** ([`csk`], TS 33.180 5.4, E.4): a client sends its
//!   client-server key to its MC server domain ([`csk::CskMessage`]); the
//!   server accepts it after every check ([`csk::CskReceiver`]); both
//!   derive the SRTCP keys of floor control from it, and servers from a
//!   configured SPK ([`csk::csk_srtcp_keys`], [`csk::spk_srtcp_keys`]).
//! - **Wrapped TGMK** ([`tgmk`], format version 1, docs/tgmk-wrap.md):
//!   the initiator wraps one TGMK under each constituent group's GMK
//!   ([`tgmk::TgmkWrap`]); a member unwraps its copy with every check
//!   ([`tgmk::TgmkReceiver`]).
//! - **Keys** ([`kdf`]): the TS 33.220 KDF, the MIKEY PRF with
//!   PRF-HMAC-SHA-256, SRTP master key/salt/MKI from a GMK
//!   ([`kdf::gmk_srtp_keys`]) or a TGMK ([`tgmk::srtp_keys`]), GUK-ID, DPCK.
//! - **Inspection** ([`describe`]): an annotated tree (text or JSON) of any
//!   message, verified and decrypted when keys are given.
//!
//! Sans-IO: no sockets, no clock, no OS RNG. Time comes in as Unix seconds
//! (converted to and from NTP here), randomness as a
//! [`rand_core::CryptoRng`]; replay state is a [`replay::ReplayCache`] the
//! caller owns. Secrets ([`Gmk`], [`Tgmk`], [`Csk`], [`Spk`], [`Key128`],
//! [`SrtpMasterKeys`], decrypted key data) are erased on drop, compared in
//! constant time and never printed by `Debug`; MACs are compared in
//! constant time.
//!
//! # Non-features
//! - No unauthenticated key transport: the GMK and TGMK procedures require
//!   an ECCSI signature; the codec alone decodes anything.
//! - No MIKEY exchanges other than TS 33.180's (no DH, PKE, RSA-R or
//!   ticket modes): their payloads are not decoded (`UnknownPayload`).
//! - No key storage or transport: see the roles in `mcx-core`.
#![forbid(unsafe_code)]

pub mod codec;
pub mod csk;
pub mod describe;
mod error;
pub mod gmk;
pub mod kdf;
pub mod keyparams;
mod keys;
pub mod message;
pub mod replay;
pub mod sakke_msg;
pub mod tgmk;
pub mod time;
pub mod wire;

pub use error::{DecodeError, DecodeErrorKind, EncodeError, Error, IdentityRole, Rejection};
pub use keys::{Csk, Gmk, KEY_LEN, Key128, KeyId, Spk, SrtpMasterKeys, Tgmk};
pub use message::Message;

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
