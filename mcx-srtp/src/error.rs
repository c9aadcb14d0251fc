//! Errors and the per-kind failure counters.

use crate::key::Mki;

/// Everything that can go wrong protecting or unprotecting a packet, or
/// managing the key ring.
///
/// Each packet-path failure is also counted in [`Stats`]. An authentication
/// failure carries no detail: it does not say whether the tag, the header,
/// the ROC or the key was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The packet could not be parsed as RTP/RTCP, or is shorter than its
    /// header and SRTP trailer (counted in [`Stats::too_short`],
    /// [`Stats::bad_version`] or [`Stats::too_long`]).
    #[error("invalid packet: {0}")]
    InvalidPacket(#[from] InvalidPacket),
    /// The AEAD tag did not verify (RFC 7714 section 7.1): forged, corrupted,
    /// wrong key or wrong ROC. The buffer is unchanged.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The packet index was already received, or is behind the 64-packet
    /// replay window (RFC 3711 section 3.3.2). On protect: the sequence
    /// number would reuse an index, that is reuse a GCM nonce.
    #[error("replay: {0}")]
    Replay(#[from] Replay),
    /// The packet's MKI names no key in the key ring.
    #[error("unknown MKI {0}")]
    UnknownMki(Mki),
    /// The caller's buffer has no room for the SRTP/SRTCP trailer.
    #[error("buffer too small: the protected packet needs {needed} octets, the buffer has {have}")]
    BufferTooSmall {
        /// Octets the protected packet needs.
        needed: usize,
        /// Octets the buffer has.
        have: usize,
    },
    /// A key usage limit or index space is used up: re-key (TS 33.180 7.4,
    /// RFC 7714 section 14.2 lifetimes).
    #[error("exhausted: {0}")]
    Exhausted(#[from] Exhausted),
    /// There is no key to protect with: the key ring is empty, or the active
    /// key was removed.
    #[error("no active key")]
    NoActiveKey,
    /// A new SSRC was seen, but the session already tracks its limit of
    /// streams in that direction.
    #[error("too many streams: the session tracks at most {limit} SSRCs per direction")]
    TooManyStreams {
        /// The configured limit ([`crate::Config::with_max_streams`]).
        limit: usize,
    },
    /// A key-ring operation was refused (not a packet failure; not counted).
    #[error("key ring: {0}")]
    KeyRing(#[from] KeyRingError),
}

/// A packet that is not well-formed RTP/RTCP, or too short for its SRTP
/// trailer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPacket {
    /// Fewer octets than the header (with CSRCs and extension) plus the
    /// SRTP/SRTCP trailer (tag, index, MKI, ROC) need.
    #[error("too short: {what} needs {needed} octets, the packet has {have}")]
    TooShort {
        /// What was being read.
        what: &'static str,
        /// Octets needed.
        needed: usize,
        /// Octets present.
        have: usize,
    },
    /// The RTP/RTCP version field is not 2 (RFC 3550 section 5.1).
    #[error("bad version {0} (RTP/RTCP version must be 2)")]
    BadVersion(u8),
    /// Longer than any UDP datagram ([`crate::MAX_PACKET_LEN`]).
    #[error("too long: {have} octets, at most {max}")]
    TooLong {
        /// The longest packet accepted.
        max: usize,
        /// Octets present.
        have: usize,
    },
}

/// Why a packet index was refused by the replay window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Replay {
    /// This index was already received (or, on protect, already used).
    #[error("index {index} was already seen")]
    Duplicate {
        /// The SRTP packet index (ROC || SEQ) or SRTCP index.
        index: u64,
    },
    /// The index is 64 or more behind the highest one seen.
    #[error("index {index} is behind the replay window")]
    TooOld {
        /// The SRTP packet index (ROC || SEQ) or SRTCP index; for an RTP
        /// sequence number that would need a negative ROC, the sequence number.
        index: u64,
    },
}

/// Which limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Exhausted {
    /// The master key protected [`crate::SRTP_PACKET_LIMIT`] SRTP packets.
    #[error("the master key has protected 2^48 SRTP packets")]
    SrtpPackets,
    /// The master key protected [`crate::SRTCP_PACKET_LIMIT`] SRTCP packets.
    #[error("the master key has protected 2^31 SRTCP packets")]
    SrtcpPackets,
    /// The ROC would wrap past 2^32 - 1 (the 48-bit SRTP index is used up).
    #[error("the rollover counter is used up")]
    Roc,
    /// The 31-bit SRTCP index of this SSRC is used up.
    #[error("the SRTCP index is used up")]
    SrtcpIndex,
}

/// A refused key-ring operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    /// An MKI longer than [`Mki::MAX_LEN`] octets.
    #[error("MKI of {0} octets (at most 8)")]
    MkiTooLong(usize),
    /// The MKI's length differs from the session's configured MKI length.
    #[error("MKI of {got} octets, the session uses {expected}")]
    MkiLength {
        /// The configured MKI length.
        expected: usize,
        /// The MKI's length.
        got: usize,
    },
    /// A key with this MKI is already in the ring.
    #[error("MKI {0} is already in the key ring")]
    DuplicateMki(Mki),
    /// Without an MKI only one master key can be in use.
    #[error("without an MKI the key ring holds one key")]
    OneKeyWithoutMki,
    /// A master key or salt of the wrong length.
    #[error("{what} of {got} octets, expected {expected}")]
    Length {
        /// "master key" or "master salt".
        what: &'static str,
        /// The required length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The MKI names no key in the ring.
    #[error("MKI {0} is not in the key ring")]
    NoSuchKey(Mki),
}

/// Packet counters: one per outcome, readable with [`crate::Session::stats`].
///
/// Every failure of [`crate::Session`]'s protect/unprotect functions is
/// counted in exactly one of the failure fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// RTP packets protected.
    pub rtp_protected: u64,
    /// SRTP packets authenticated and decrypted.
    pub rtp_unprotected: u64,
    /// RTCP packets protected.
    pub rtcp_protected: u64,
    /// SRTCP packets authenticated (and decrypted).
    pub rtcp_unprotected: u64,
    /// [`Error::AuthenticationFailed`].
    pub auth_failed: u64,
    /// [`Error::Replay`] (received replays, and refused index reuse on protect).
    pub replayed: u64,
    /// [`Error::UnknownMki`].
    pub unknown_mki: u64,
    /// [`InvalidPacket::TooShort`].
    pub too_short: u64,
    /// [`InvalidPacket::BadVersion`].
    pub bad_version: u64,
    /// [`InvalidPacket::TooLong`].
    pub too_long: u64,
    /// [`Error::BufferTooSmall`].
    pub buffer_too_small: u64,
    /// [`Error::Exhausted`].
    pub exhausted: u64,
    /// [`Error::NoActiveKey`].
    pub no_active_key: u64,
    /// [`Error::TooManyStreams`].
    pub too_many_streams: u64,
}

impl Stats {
    /// The sum of all failure counters.
    pub fn failures(&self) -> u64 {
        self.auth_failed
            + self.replayed
            + self.unknown_mki
            + self.too_short
            + self.bad_version
            + self.too_long
            + self.buffer_too_small
            + self.exhausted
            + self.no_active_key
            + self.too_many_streams
    }

    #[inline]
    pub(crate) fn record(&mut self, error: &Error) {
        let counter = match error {
            Error::InvalidPacket(InvalidPacket::TooShort { .. }) => &mut self.too_short,
            Error::InvalidPacket(InvalidPacket::BadVersion(_)) => &mut self.bad_version,
            Error::InvalidPacket(InvalidPacket::TooLong { .. }) => &mut self.too_long,
            Error::AuthenticationFailed => &mut self.auth_failed,
            Error::Replay(_) => &mut self.replayed,
            Error::UnknownMki(_) => &mut self.unknown_mki,
            Error::BufferTooSmall { .. } => &mut self.buffer_too_small,
            Error::Exhausted(_) => &mut self.exhausted,
            Error::NoActiveKey => &mut self.no_active_key,
            Error::TooManyStreams { .. } => &mut self.too_many_streams,
            // Not a packet-path error; never produced by protect/unprotect.
            Error::KeyRing(_) => return,
        };
        *counter += 1;
    }
}
