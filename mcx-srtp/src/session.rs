//! The SRTP/SRTCP session: key ring, per-SSRC streams, protect/unprotect.

use core::fmt;
use core::num::NonZeroU16;

use crate::error::{Error, Exhausted, InvalidPacket, KeyRingError, Stats};
use crate::gcm::Gcm;
use crate::key::{
    KeyUsage, MasterKey, Mki, SRTCP_PACKET_LIMIT, SRTP_PACKET_LIMIT, SessionKeys, TAG_LEN,
};
use crate::packet::{
    ROC_LEN, RTCP_HEADER, SRTCP_INDEX_LEN, be32, parse_rtcp, parse_rtp, rtcp_iv, rtp_iv,
};
use crate::replay::{ReplayWindow, estimate_index};

/// The longest packet accepted, protected or not: 65535 octets, the most a
/// UDP datagram (or an RFC 4571 frame) can carry.
pub const MAX_PACKET_LEN: usize = 65535;

/// Default limit on SSRCs tracked per direction ([`Config::with_max_streams`]).
pub const DEFAULT_MAX_STREAMS: usize = 64;

/// Whether and how often the ROC is carried in SRTP packets (RFC 4771).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RocCarriage {
    /// No ROC in the packet: receivers estimate it (RFC 3711 Appendix A).
    Off,
    /// RCCm3 (RFC 4771 section 3.3): packets whose sequence number is a
    /// multiple of `rate` carry the 4-octet ROC in the authentication tag
    /// field, after the MKI. Integrity comes from the AEAD, whose IV includes
    /// the ROC: a wrong ROC fails authentication.
    Rccm3 {
        /// The ROC transmission rate R: carry the ROC when SEQ mod R == 0.
        rate: NonZeroU16,
    },
}

impl RocCarriage {
    /// RCCm3 with the ROC in every packet: the TS 33.180 default security
    /// policy ("SRTP auth tag length 4", "ROC transmission rate 1").
    pub const RCCM3_EVERY_PACKET: Self = Self::Rccm3 {
        rate: NonZeroU16::MIN,
    };

    /// Whether the packet with sequence number `seq` carries the ROC.
    #[inline]
    pub fn carries_roc(&self, seq: u16) -> bool {
        match self {
            Self::Off => false,
            Self::Rccm3 { rate } => seq % rate.get() == 0,
        }
    }
}

/// Session parameters. Build with [`Config::new`] or [`Config::ts33180`]
/// and the `with_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    mki_len: usize,
    roc_carriage: RocCarriage,
    encrypt_rtcp: bool,
    max_streams: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// AEAD_AES_128_GCM, no MKI, no ROC carriage, SRTCP encrypted, at most
    /// [`DEFAULT_MAX_STREAMS`] SSRCs per direction.
    pub const fn new() -> Self {
        Self {
            mki_len: 0,
            roc_carriage: RocCarriage::Off,
            encrypt_rtcp: true,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }

    /// The TS 33.180 media profile: AEAD_AES_128_GCM with an MKI of
    /// `mki_len` octets (8 for GMK-ID || GUK-ID, 4 for a TGMK-ID) and the ROC
    /// in every packet (RCCm3, rate 1).
    pub const fn ts33180(mki_len: usize) -> Self {
        Self::new()
            .with_mki_len(mki_len)
            .with_roc_carriage(RocCarriage::RCCM3_EVERY_PACKET)
    }

    /// The MKI length in octets, 0 to [`Mki::MAX_LEN`]; 0 means no MKI
    /// field and a single master key. Checked by [`Session::new`].
    pub const fn with_mki_len(mut self, mki_len: usize) -> Self {
        self.mki_len = mki_len;
        self
    }

    /// ROC carriage (RFC 4771).
    pub const fn with_roc_carriage(mut self, roc_carriage: RocCarriage) -> Self {
        self.roc_carriage = roc_carriage;
        self
    }

    /// Whether protect encrypts SRTCP (E flag, RFC 3711 section 3.4). Unprotect
    /// accepts both, as the E flag (which is authenticated) says.
    pub const fn with_rtcp_encryption(mut self, encrypt: bool) -> Self {
        self.encrypt_rtcp = encrypt;
        self
    }

    /// The most SSRCs tracked per direction (RTP in, RTP out, RTCP in, RTCP
    /// out). Unauthenticated packets never create a stream.
    pub const fn with_max_streams(mut self, max_streams: usize) -> Self {
        self.max_streams = max_streams;
        self
    }

    /// The MKI length in octets.
    pub const fn mki_len(&self) -> usize {
        self.mki_len
    }

    /// The ROC carriage.
    pub const fn roc_carriage(&self) -> RocCarriage {
        self.roc_carriage
    }

    /// Whether protect encrypts SRTCP.
    pub const fn rtcp_encryption(&self) -> bool {
        self.encrypt_rtcp
    }

    /// The most SSRCs tracked per direction.
    pub const fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// The most octets protect adds to an RTP packet: tag, MKI and ROC.
    pub const fn rtp_overhead(&self) -> usize {
        let roc = match self.roc_carriage {
            RocCarriage::Off => 0,
            RocCarriage::Rccm3 { .. } => ROC_LEN,
        };
        TAG_LEN + self.mki_len + roc
    }

    /// The octets protect adds to an RTCP packet: tag, E flag and index, MKI.
    pub const fn rtcp_overhead(&self) -> usize {
        TAG_LEN + SRTCP_INDEX_LEN + self.mki_len
    }
}

/// What [`Session::unprotect_rtp`] and [`Session::unprotect_rtcp`] return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unprotected {
    /// The RTP/RTCP packet is `buffer[..len]`.
    pub len: usize,
    /// The MKI of the master key that authenticated the packet.
    pub mki: Mki,
    /// The SRTP packet index (ROC || SEQ, 48 bits) or the SRTCP index.
    pub index: u64,
    /// Whether the payload was encrypted (always for SRTP; the E flag for SRTCP).
    pub encrypted: bool,
}

/// One key of the ring: its MKI, derived session keys, and usage.
struct KeyEntry {
    mki: Mki,
    keys: SessionKeys,
    usage: KeyUsage,
}

/// Per-SSRC SRTP state, one direction.
#[derive(Debug, Clone, Copy, Default)]
struct RtpStream {
    /// Replay window; its top is ROC || s_l. `None` before the first packet.
    window: Option<ReplayWindow>,
    /// The ROC to assume for the first packet.
    initial_roc: u32,
}

impl RtpStream {
    #[inline]
    fn index_for(&self, seq: u16) -> Result<u64, Error> {
        match &self.window {
            Some(w) => estimate_index(w.top(), seq),
            None => Ok(u64::from(self.initial_roc) << 16 | u64::from(seq)),
        }
    }

    #[inline]
    fn check(&self, index: u64) -> Result<(), Error> {
        match &self.window {
            Some(w) => Ok(w.check(index)?),
            None => Ok(()),
        }
    }

    #[inline]
    fn accept(&mut self, index: u64) {
        match &mut self.window {
            Some(w) => w.accept(index),
            None => self.window = Some(ReplayWindow::starting_at(index)),
        }
    }

    fn roc(&self) -> u32 {
        match &self.window {
            Some(w) => (w.top() >> 16) as u32,
            None => self.initial_roc,
        }
    }
}

/// A small SSRC-keyed table: a sorted vector plus the last hit. No
/// allocation once a stream exists.
struct Streams<T> {
    entries: Vec<(u32, T)>,
    last: usize,
}

impl<T: Copy + Default> Streams<T> {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
            last: 0,
        }
    }

    #[inline]
    fn find(&mut self, ssrc: u32) -> Option<usize> {
        if let Some((s, _)) = self.entries.get(self.last) {
            if *s == ssrc {
                return Some(self.last);
            }
        }
        let i = self.entries.binary_search_by_key(&ssrc, |e| e.0).ok()?;
        self.last = i;
        Some(i)
    }

    /// The stream of `ssrc`, without touching the last-hit cache.
    fn get(&self, ssrc: u32) -> Option<&T> {
        let i = self.entries.binary_search_by_key(&ssrc, |e| e.0).ok()?;
        Some(&self.entries[i].1)
    }

    /// The stream at `slot`, or a fresh one.
    #[inline]
    fn get_or_default(&self, slot: Option<usize>) -> T {
        slot.map(|i| self.entries[i].1).unwrap_or_default()
    }

    /// Whether a new stream may be added.
    #[inline]
    fn room(&self, slot: Option<usize>, limit: usize) -> Result<(), Error> {
        if slot.is_none() && self.entries.len() >= limit {
            Err(Error::TooManyStreams { limit })
        } else {
            Ok(())
        }
    }

    /// Stores `value` at `slot`, or inserts it for `ssrc`.
    #[inline]
    fn put(&mut self, slot: Option<usize>, ssrc: u32, value: T) {
        match slot {
            Some(i) => self.entries[i].1 = value,
            None => {
                let i = self.entries.partition_point(|e| e.0 < ssrc);
                self.entries.insert(i, (ssrc, value));
                self.last = i;
            }
        }
    }
}

/// Which key protect uses.
#[derive(Clone, Copy)]
enum KeySelect<'a> {
    Active,
    Mki(&'a Mki),
}

/// An SRTP/SRTCP session with AEAD_AES_128_GCM (RFC 7714): a key ring of
/// master keys named by MKI, and per-SSRC state for both directions.
///
/// Protect and unprotect work in place on the caller's buffer and never
/// allocate, except once when a new SSRC is first seen. Every call either
/// succeeds or returns a typed [`Error`], and every outcome is counted in
/// [`Stats`].
///
/// The SRTP packet layout is `header || ciphertext || tag(16) || MKI ||
/// ROC(4)` (MKI when configured, ROC under RCCm3); SRTCP is `header(8) ||
/// ciphertext || tag(16) || E|index(4) || MKI`.
pub struct Session {
    config: Config,
    /// Boxed so that growing or shrinking the ring moves pointers, not key
    /// material (which is zeroized where it lives, on drop).
    #[allow(clippy::vec_box)]
    keys: Vec<Box<KeyEntry>>,
    active: Option<usize>,
    rtp_out: Streams<RtpStream>,
    rtp_in: Streams<RtpStream>,
    /// Next SRTCP index per sending SSRC.
    rtcp_out: Streams<u32>,
    rtcp_in: Streams<Option<ReplayWindow>>,
    stats: Stats,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mkis: Vec<Mki> = self.keys.iter().map(|k| k.mki).collect();
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("keys", &mkis)
            .field("active", &self.active.map(|i| self.keys[i].mki))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with an empty key ring.
    ///
    /// # Errors
    /// [`KeyRingError::MkiTooLong`] if the configured MKI length is over 8.
    pub fn new(config: Config) -> Result<Self, Error> {
        if config.mki_len > Mki::MAX_LEN {
            return Err(KeyRingError::MkiTooLong(config.mki_len).into());
        }
        Ok(Self {
            config,
            keys: Vec::new(),
            active: None,
            rtp_out: Streams::new(),
            rtp_in: Streams::new(),
            rtcp_out: Streams::new(),
            rtcp_in: Streams::new(),
            stats: Stats::default(),
        })
    }

    /// The session's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The packet counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The most SSRCs tracked in any one of the session's four stream
    /// tables (SRTP and SRTCP, each way): how near the session is to
    /// [`Config::max_streams`], past which a new SSRC is refused. A
    /// long-lived session whose peers keep drawing new SSRCs gets there;
    /// rekeying (a new session) is the way out.
    pub fn most_streams(&self) -> usize {
        [
            self.rtp_out.entries.len(),
            self.rtp_in.entries.len(),
            self.rtcp_out.entries.len(),
            self.rtcp_in.entries.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    // ---------------------------------------------------------------- keys

    /// Adds a master key under `mki`, deriving its session keys (once). The
    /// first key added becomes the active key.
    ///
    /// # Errors
    /// [`KeyRingError`] if the MKI's length is not the configured one, the
    /// MKI is already in the ring, or (without MKI) a key is already there.
    pub fn add_key(&mut self, mki: Mki, key: MasterKey) -> Result<(), Error> {
        let keys = key.derive();
        drop(key);
        self.add_session_keys(mki, keys)
    }

    pub(crate) fn add_session_keys(&mut self, mki: Mki, keys: SessionKeys) -> Result<(), Error> {
        if mki.len() != self.config.mki_len {
            return Err(KeyRingError::MkiLength {
                expected: self.config.mki_len,
                got: mki.len(),
            }
            .into());
        }
        if self.config.mki_len == 0 && !self.keys.is_empty() {
            return Err(KeyRingError::OneKeyWithoutMki.into());
        }
        if self.keys.iter().any(|k| k.mki == mki) {
            return Err(KeyRingError::DuplicateMki(mki).into());
        }
        self.keys.push(Box::new(KeyEntry {
            mki,
            keys,
            usage: KeyUsage::default(),
        }));
        if self.active.is_none() {
            self.active = Some(self.keys.len() - 1);
        }
        Ok(())
    }

    /// Removes the key named `mki` (its session keys are zeroized). Returns
    /// whether it was there. Removing the active key leaves none active.
    pub fn remove_key(&mut self, mki: &Mki) -> bool {
        let Some(i) = self.keys.iter().position(|k| k.mki == *mki) else {
            return false;
        };
        self.keys.remove(i);
        self.active = match self.active {
            Some(a) if a == i => None,
            Some(a) if a > i => Some(a - 1),
            other => other,
        };
        true
    }

    /// Makes the key named `mki` the one [`Self::protect_rtp`] and
    /// [`Self::protect_rtcp`] use.
    ///
    /// # Errors
    /// [`KeyRingError::NoSuchKey`] if it is not in the ring.
    pub fn set_active_key(&mut self, mki: &Mki) -> Result<(), Error> {
        let i = self
            .keys
            .iter()
            .position(|k| k.mki == *mki)
            .ok_or(KeyRingError::NoSuchKey(*mki))?;
        self.active = Some(i);
        Ok(())
    }

    /// The MKI of the active key.
    pub fn active_key(&self) -> Option<Mki> {
        self.active.map(|i| self.keys[i].mki)
    }

    /// The MKIs in the ring, in the order added.
    pub fn keys(&self) -> impl Iterator<Item = &Mki> + '_ {
        self.keys.iter().map(|k| &k.mki)
    }

    /// How much the key named `mki` has been used.
    pub fn key_usage(&self, mki: &Mki) -> Option<KeyUsage> {
        self.keys.iter().find(|k| k.mki == *mki).map(|k| k.usage)
    }

    #[inline]
    fn select(&self, which: KeySelect<'_>) -> Result<usize, Error> {
        match which {
            KeySelect::Active => self.active.ok_or(Error::NoActiveKey),
            KeySelect::Mki(mki) => self
                .keys
                .iter()
                .position(|k| k.mki == *mki)
                .ok_or(Error::UnknownMki(*mki)),
        }
    }

    /// The key named by the MKI field `wire` of a received packet.
    #[inline]
    fn lookup(&self, wire: &[u8]) -> Result<usize, Error> {
        if wire.is_empty() {
            // Without MKI the ring holds at most one key.
            return if self.keys.is_empty() {
                Err(Error::NoActiveKey)
            } else {
                Ok(0)
            };
        }
        self.keys
            .iter()
            .position(|k| k.mki.as_bytes() == wire)
            .ok_or_else(|| Error::UnknownMki(Mki::from_slice_unchecked(wire)))
    }

    // ------------------------------------------------------------- streams

    /// Sets the ROC assumed for the first SRTP packet received from `ssrc`
    /// (signalled out of band; RFC 3711 section 3.3.1). Returns `false`, and
    /// changes nothing, if a packet from `ssrc` was already accepted.
    ///
    /// # Errors
    /// [`Error::TooManyStreams`] if a new stream does not fit.
    pub fn set_inbound_roc(&mut self, ssrc: u32, roc: u32) -> Result<bool, Error> {
        Self::set_roc(&mut self.rtp_in, self.config.max_streams, ssrc, roc)
    }

    /// Sets the ROC of the first SRTP packet protected for `ssrc`. Returns
    /// `false`, and changes nothing, if a packet for `ssrc` was already
    /// protected (the ROC then follows the sequence numbers).
    ///
    /// # Errors
    /// [`Error::TooManyStreams`] if a new stream does not fit.
    pub fn set_outbound_roc(&mut self, ssrc: u32, roc: u32) -> Result<bool, Error> {
        Self::set_roc(&mut self.rtp_out, self.config.max_streams, ssrc, roc)
    }

    fn set_roc(
        streams: &mut Streams<RtpStream>,
        limit: usize,
        ssrc: u32,
        roc: u32,
    ) -> Result<bool, Error> {
        let slot = streams.find(ssrc);
        streams.room(slot, limit)?;
        let mut stream = streams.get_or_default(slot);
        if stream.window.is_some() {
            return Ok(false);
        }
        stream.initial_roc = roc;
        streams.put(slot, ssrc, stream);
        Ok(true)
    }

    /// The ROC of the SRTP stream received from `ssrc` (of its highest index).
    pub fn inbound_roc(&self, ssrc: u32) -> Option<u32> {
        self.rtp_in.get(ssrc).map(RtpStream::roc)
    }

    /// The ROC of the SRTP stream sent as `ssrc` (of its highest index).
    pub fn outbound_roc(&self, ssrc: u32) -> Option<u32> {
        self.rtp_out.get(ssrc).map(RtpStream::roc)
    }

    // ---------------------------------------------------------------- SRTP

    /// Protects the RTP packet `buffer[..len]` in place with the active key
    /// and returns the SRTP packet's length. `buffer` must have room for
    /// [`Config::rtp_overhead`] more octets.
    ///
    /// The packet index comes from the sequence number and the stream's ROC,
    /// which advances when the sequence number wraps. An index already used
    /// is refused ([`Error::Replay`]): GCM must never reuse an IV.
    ///
    /// # Errors
    /// [`Error`]; on error `buffer[..len]` is unchanged.
    pub fn protect_rtp(&mut self, buffer: &mut [u8], len: usize) -> Result<usize, Error> {
        let r = self.protect_rtp_inner(KeySelect::Active, buffer, len);
        self.count(r, |s| &mut s.rtp_protected)
    }

    /// [`Self::protect_rtp`] with the key named `mki`.
    ///
    /// # Errors
    /// As [`Self::protect_rtp`], and [`Error::UnknownMki`].
    pub fn protect_rtp_with_key(
        &mut self,
        mki: &Mki,
        buffer: &mut [u8],
        len: usize,
    ) -> Result<usize, Error> {
        let r = self.protect_rtp_inner(KeySelect::Mki(mki), buffer, len);
        self.count(r, |s| &mut s.rtp_protected)
    }

    /// Authenticates and decrypts the SRTP packet `buffer` in place; the RTP
    /// packet is then `buffer[..n]` with `n` = [`Unprotected::len`].
    ///
    /// The key is the one the MKI names; the index comes from the carried
    /// ROC (RCCm3) or is estimated (RFC 3711 Appendix A). The replay window
    /// is checked before and updated only after authentication succeeds.
    ///
    /// # Errors
    /// [`Error`]; on error `buffer` is unchanged.
    pub fn unprotect_rtp(&mut self, buffer: &mut [u8]) -> Result<Unprotected, Error> {
        let r = self.unprotect_rtp_inner(buffer);
        self.count(r, |s| &mut s.rtp_unprotected)
    }

    /// Counts the outcome of a protect/unprotect call.
    #[inline]
    fn count<T>(
        &mut self,
        r: Result<T, Error>,
        ok: fn(&mut Stats) -> &mut u64,
    ) -> Result<T, Error> {
        match &r {
            Ok(_) => *ok(&mut self.stats) += 1,
            Err(e) => self.stats.record(e),
        }
        r
    }

    #[inline]
    fn protect_rtp_inner(
        &mut self,
        which: KeySelect<'_>,
        buffer: &mut [u8],
        len: usize,
    ) -> Result<usize, Error> {
        let Some(packet) = buffer.get(..len) else {
            return Err(Error::BufferTooSmall {
                needed: len,
                have: buffer.len(),
            });
        };
        check_max_len(len)?;
        let header = parse_rtp(packet)?;
        let carries_roc = self.config.roc_carriage.carries_roc(header.seq);
        let mki_len = self.config.mki_len;
        let out_len = len + TAG_LEN + mki_len + if carries_roc { ROC_LEN } else { 0 };
        if buffer.len() < out_len {
            return Err(Error::BufferTooSmall {
                needed: out_len,
                have: buffer.len(),
            });
        }
        let k = self.select(which)?;
        if self.keys[k].usage.srtp_protected >= SRTP_PACKET_LIMIT {
            return Err(Exhausted::SrtpPackets.into());
        }
        let slot = self.rtp_out.find(header.ssrc);
        let mut stream = self.rtp_out.get_or_default(slot);
        let index = stream.index_for(header.seq)?;
        stream.check(index)?;
        self.rtp_out.room(slot, self.config.max_streams)?;

        let entry = &mut self.keys[k];
        let key = &entry.keys.rtp;
        let iv = rtp_iv(&key.salt, header.ssrc, index);
        let (aad, rest) = buffer.split_at_mut(header.len);
        let (payload, trailer) = rest.split_at_mut(len - header.len);
        let tag = key.cipher.seal(&iv, aad, payload);
        trailer[..TAG_LEN].copy_from_slice(&tag);
        trailer[TAG_LEN..TAG_LEN + mki_len].copy_from_slice(entry.mki.as_bytes());
        if carries_roc {
            let roc = (index >> 16) as u32;
            trailer[TAG_LEN + mki_len..TAG_LEN + mki_len + ROC_LEN]
                .copy_from_slice(&roc.to_be_bytes());
        }

        entry.usage.srtp_protected += 1;
        stream.accept(index);
        self.rtp_out.put(slot, header.ssrc, stream);
        Ok(out_len)
    }

    #[inline]
    fn unprotect_rtp_inner(&mut self, buffer: &mut [u8]) -> Result<Unprotected, Error> {
        let len = buffer.len();
        check_max_len(len)?;
        let header = parse_rtp(buffer)?;
        let roc_len = if self.config.roc_carriage.carries_roc(header.seq) {
            ROC_LEN
        } else {
            0
        };
        let mki_len = self.config.mki_len;
        let trailer = TAG_LEN + mki_len + roc_len;
        if len < header.len + trailer {
            return Err(InvalidPacket::TooShort {
                what: "SRTP packet (header, tag, MKI, ROC)",
                needed: header.len + trailer,
                have: len,
            }
            .into());
        }
        let mki_at = len - roc_len - mki_len;
        let k = self.lookup(&buffer[mki_at..mki_at + mki_len])?;

        let slot = self.rtp_in.find(header.ssrc);
        let mut stream = self.rtp_in.get_or_default(slot);
        let index = if roc_len == ROC_LEN {
            // RCCm3: the sender's ROC. Authenticated through the IV.
            u64::from(be32(buffer, len - ROC_LEN)) << 16 | u64::from(header.seq)
        } else {
            stream.index_for(header.seq)?
        };
        stream.check(index)?;
        self.rtp_in.room(slot, self.config.max_streams)?;

        let entry = &mut self.keys[k];
        let key = &entry.keys.rtp;
        let iv = rtp_iv(&key.salt, header.ssrc, index);
        let end = len - trailer;
        let (aad, rest) = buffer.split_at_mut(header.len);
        let (ciphertext, tail) = rest.split_at_mut(end - header.len);
        open(&key.cipher, &iv, aad, ciphertext, &tail[..TAG_LEN])?;

        entry.usage.srtp_unprotected += 1;
        let mki = entry.mki;
        stream.accept(index);
        self.rtp_in.put(slot, header.ssrc, stream);
        Ok(Unprotected {
            len: end,
            mki,
            index,
            encrypted: true,
        })
    }

    // --------------------------------------------------------------- SRTCP

    /// Protects the RTCP (compound) packet `buffer[..len]` in place with the
    /// active key and returns the SRTCP packet's length. `buffer` must have
    /// room for [`Config::rtcp_overhead`] more octets. The SRTCP index is
    /// this session's per-SSRC counter, starting at 0.
    ///
    /// # Errors
    /// [`Error`]; on error `buffer[..len]` is unchanged.
    pub fn protect_rtcp(&mut self, buffer: &mut [u8], len: usize) -> Result<usize, Error> {
        let r = self.protect_rtcp_inner(KeySelect::Active, buffer, len);
        self.count(r, |s| &mut s.rtcp_protected)
    }

    /// [`Self::protect_rtcp`] with the key named `mki`.
    ///
    /// # Errors
    /// As [`Self::protect_rtcp`], and [`Error::UnknownMki`].
    pub fn protect_rtcp_with_key(
        &mut self,
        mki: &Mki,
        buffer: &mut [u8],
        len: usize,
    ) -> Result<usize, Error> {
        let r = self.protect_rtcp_inner(KeySelect::Mki(mki), buffer, len);
        self.count(r, |s| &mut s.rtcp_protected)
    }

    /// Authenticates (and, when the E flag is set, decrypts) the SRTCP
    /// packet `buffer` in place; the RTCP packet is then `buffer[..n]` with
    /// `n` = [`Unprotected::len`].
    ///
    /// # Errors
    /// [`Error`]; on error `buffer` is unchanged.
    pub fn unprotect_rtcp(&mut self, buffer: &mut [u8]) -> Result<Unprotected, Error> {
        let r = self.unprotect_rtcp_inner(buffer);
        self.count(r, |s| &mut s.rtcp_unprotected)
    }

    fn protect_rtcp_inner(
        &mut self,
        which: KeySelect<'_>,
        buffer: &mut [u8],
        len: usize,
    ) -> Result<usize, Error> {
        let Some(packet) = buffer.get(..len) else {
            return Err(Error::BufferTooSmall {
                needed: len,
                have: buffer.len(),
            });
        };
        check_max_len(len)?;
        let ssrc = parse_rtcp(packet, 0)?;
        let mki_len = self.config.mki_len;
        let out_len = len + TAG_LEN + SRTCP_INDEX_LEN + mki_len;
        if buffer.len() < out_len {
            return Err(Error::BufferTooSmall {
                needed: out_len,
                have: buffer.len(),
            });
        }
        let k = self.select(which)?;
        if self.keys[k].usage.srtcp_protected >= SRTCP_PACKET_LIMIT {
            return Err(Exhausted::SrtcpPackets.into());
        }
        let slot = self.rtcp_out.find(ssrc);
        let index = self.rtcp_out.get_or_default(slot);
        if index > 0x7fff_ffff {
            return Err(Exhausted::SrtcpIndex.into());
        }
        self.rtcp_out.room(slot, self.config.max_streams)?;

        let encrypt = self.config.encrypt_rtcp;
        let word = (u32::from(encrypt) << 31 | index).to_be_bytes();
        let entry = &mut self.keys[k];
        let key = &entry.keys.rtcp;
        let iv = rtcp_iv(&key.salt, ssrc, index);
        let tag = if encrypt {
            // AAD: the 8 clear header octets || E flag and index (RFC 7714 section 9.2).
            let mut aad = [0u8; RTCP_HEADER + SRTCP_INDEX_LEN];
            aad[..RTCP_HEADER].copy_from_slice(&buffer[..RTCP_HEADER]);
            aad[RTCP_HEADER..].copy_from_slice(&word);
            key.cipher.seal(&iv, &aad, &mut buffer[RTCP_HEADER..len])
        } else {
            // AAD: the whole packet || E flag and index (RFC 7714 section 9.3).
            buffer[len..len + SRTCP_INDEX_LEN].copy_from_slice(&word);
            key.cipher
                .seal(&iv, &buffer[..len + SRTCP_INDEX_LEN], &mut [])
        };
        let trailer = &mut buffer[len..out_len];
        trailer[..TAG_LEN].copy_from_slice(&tag);
        trailer[TAG_LEN..TAG_LEN + SRTCP_INDEX_LEN].copy_from_slice(&word);
        trailer[TAG_LEN + SRTCP_INDEX_LEN..].copy_from_slice(entry.mki.as_bytes());

        entry.usage.srtcp_protected += 1;
        self.rtcp_out.put(slot, ssrc, index + 1);
        Ok(out_len)
    }

    fn unprotect_rtcp_inner(&mut self, buffer: &mut [u8]) -> Result<Unprotected, Error> {
        let len = buffer.len();
        check_max_len(len)?;
        let mki_len = self.config.mki_len;
        let trailer = TAG_LEN + SRTCP_INDEX_LEN + mki_len;
        let ssrc = parse_rtcp(buffer, trailer)?;
        let mki_at = len - mki_len;
        let k = self.lookup(&buffer[mki_at..])?;
        let word_at = mki_at - SRTCP_INDEX_LEN;
        let word = be32(buffer, word_at);
        let encrypted = word >> 31 == 1;
        let index = word & 0x7fff_ffff;

        let slot = self.rtcp_in.find(ssrc);
        let window = self.rtcp_in.get_or_default(slot);
        if let Some(w) = &window {
            w.check(u64::from(index))?;
        }
        self.rtcp_in.room(slot, self.config.max_streams)?;

        let entry = &mut self.keys[k];
        let key = &entry.keys.rtcp;
        let iv = rtcp_iv(&key.salt, ssrc, index);
        let end = word_at - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buffer[end..word_at]);
        if encrypted {
            let mut aad = [0u8; RTCP_HEADER + SRTCP_INDEX_LEN];
            aad[..RTCP_HEADER].copy_from_slice(&buffer[..RTCP_HEADER]);
            aad[RTCP_HEADER..].copy_from_slice(&word.to_be_bytes());
            open(&key.cipher, &iv, &aad, &mut buffer[RTCP_HEADER..end], &tag)?;
        } else {
            // The AAD is the packet followed by the E/index word: put the word
            // after the packet (over the tag, kept above) to make it one slice.
            buffer[end..end + SRTCP_INDEX_LEN].copy_from_slice(&word.to_be_bytes());
            if let Err(e) = open(
                &key.cipher,
                &iv,
                &buffer[..end + SRTCP_INDEX_LEN],
                &mut [],
                &tag,
            ) {
                buffer[end..end + SRTCP_INDEX_LEN].copy_from_slice(&tag[..SRTCP_INDEX_LEN]);
                return Err(e);
            }
        }

        entry.usage.srtcp_unprotected += 1;
        let mki = entry.mki;
        let window = match window {
            Some(mut w) => {
                w.accept(u64::from(index));
                w
            }
            None => ReplayWindow::starting_at(u64::from(index)),
        };
        self.rtcp_in.put(slot, ssrc, Some(window));
        Ok(Unprotected {
            len: end,
            mki,
            index: u64::from(index),
            encrypted,
        })
    }
}

#[inline]
fn check_max_len(len: usize) -> Result<(), Error> {
    if len > MAX_PACKET_LEN {
        Err(InvalidPacket::TooLong {
            max: MAX_PACKET_LEN,
            have: len,
        }
        .into())
    } else {
        Ok(())
    }
}

/// AES-GCM tag check then decryption in place; `data` is untouched unless
/// the tag verifies.
#[inline]
fn open(cipher: &Gcm, iv: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), Error> {
    cipher
        .open(iv, aad, data, tag)
        .map_err(|_| Error::AuthenticationFailed)
}

/// Test-only: install session keys directly (the RFC 7714 vectors give
/// session keys, not master keys) and set the next SRTCP index.
#[cfg(test)]
impl Session {
    pub(crate) fn add_raw_session_keys(
        &mut self,
        mki: Mki,
        key: &[u8; 16],
        salt: &[u8; 12],
    ) -> Result<(), Error> {
        use crate::key::AeadKey;
        let keys = SessionKeys {
            rtp: AeadKey::new(key, zeroize::Zeroizing::new(*salt)),
            rtcp: AeadKey::new(key, zeroize::Zeroizing::new(*salt)),
        };
        self.add_session_keys(mki, keys)
    }

    pub(crate) fn set_next_rtcp_index(&mut self, ssrc: u32, index: u32) {
        let slot = self.rtcp_out.find(ssrc);
        self.rtcp_out.put(slot, ssrc, index);
    }
}
