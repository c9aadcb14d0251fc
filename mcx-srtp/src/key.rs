//! Master keys, MKIs, and the per-key AEAD session keys.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::KeyRingError;
use crate::gcm::Gcm;
use crate::kdf::{Kdf, Label};

/// The AEAD authentication tag length (RFC 7714 section 7.2: 16 octets).
pub const TAG_LEN: usize = 16;

/// At most this many SRTP packets may be protected under one master key
/// (RFC 7714 section 14.2, RFC 3711 section 9.2: 2^48).
pub const SRTP_PACKET_LIMIT: u64 = 1 << 48;

/// At most this many SRTCP packets may be protected under one master key
/// (RFC 7714 section 14.2, RFC 3711 section 9.2: 2^31).
pub const SRTCP_PACKET_LIMIT: u64 = 1 << 31;

/// An SRTP master key and master salt for AEAD_AES_128_GCM: 16 + 12 octets
/// (RFC 7714 section 12; TS 33.180 7.4 derives them from the GMK or TGMK).
///
/// Zeroized on drop; `Debug` prints no key material; equality is constant
/// time.
pub struct MasterKey {
    key: [u8; 16],
    salt: [u8; 12],
}

impl MasterKey {
    /// Master key length in octets.
    pub const KEY_LEN: usize = 16;
    /// Master salt length in octets.
    pub const SALT_LEN: usize = 12;

    /// A master key and salt.
    pub fn new(key: [u8; 16], salt: [u8; 12]) -> Self {
        Self { key, salt }
    }

    /// A master key and salt from slices of 16 and 12 octets.
    ///
    /// # Errors
    /// [`KeyRingError::Length`] for any other length.
    pub fn from_slices(key: &[u8], salt: &[u8]) -> Result<Self, KeyRingError> {
        let key: [u8; 16] = key.try_into().map_err(|_| KeyRingError::Length {
            what: "master key",
            expected: Self::KEY_LEN,
            got: key.len(),
        })?;
        let salt: [u8; 12] = salt.try_into().map_err(|_| KeyRingError::Length {
            what: "master salt",
            expected: Self::SALT_LEN,
            got: salt.len(),
        })?;
        Ok(Self { key, salt })
    }

    /// Derives the SRTP and SRTCP session keys and salts (RFC 3711 section
    /// 4.3, key derivation rate 0).
    pub(crate) fn derive(&self) -> SessionKeys {
        let kdf = Kdf::new(&self.key, &self.salt);
        let rtp = AeadKey::derive(&kdf, Label::RtpEncryption, Label::RtpSalt);
        let rtcp = AeadKey::derive(&kdf, Label::RtcpEncryption, Label::RtcpSalt);
        SessionKeys { rtp, rtcp }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").finish_non_exhaustive()
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        (self.key.ct_eq(&other.key) & self.salt.ct_eq(&other.salt)).into()
    }
}

impl Eq for MasterKey {}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

impl ZeroizeOnDrop for MasterKey {}

/// A Master Key Identifier (RFC 3711 section 3.1): 0 to 8 octets naming the
/// master key a packet was protected with.
///
/// TS 33.180 uses GMK-ID || GUK-ID (8 octets, [`Mki::from_u64`]) for a group
/// key and the TGMK-ID (4 octets, [`Mki::from_u32`]) for a temporary group
/// key. An MKI is not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mki {
    len: u8,
    bytes: [u8; 8],
}

impl Mki {
    /// The longest MKI supported, in octets.
    pub const MAX_LEN: usize = 8;

    /// The empty MKI (no MKI field in the packet).
    pub const NONE: Self = Self {
        len: 0,
        bytes: [0; 8],
    };

    /// An MKI of up to 8 octets.
    ///
    /// # Errors
    /// [`KeyRingError::MkiTooLong`] for more than 8 octets.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyRingError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(KeyRingError::MkiTooLong(bytes.len()));
        }
        Ok(Self::from_slice_unchecked(bytes))
    }

    /// A 4-octet MKI holding `id` in network byte order (a TGMK-ID).
    pub const fn from_u32(id: u32) -> Self {
        let b = id.to_be_bytes();
        Self {
            len: 4,
            bytes: [b[0], b[1], b[2], b[3], 0, 0, 0, 0],
        }
    }

    /// An 8-octet MKI holding `id` in network byte order (GMK-ID || GUK-ID).
    pub const fn from_u64(id: u64) -> Self {
        Self {
            len: 8,
            bytes: id.to_be_bytes(),
        }
    }

    /// `bytes.len()` must be at most 8.
    #[inline]
    pub(crate) fn from_slice_unchecked(bytes: &[u8]) -> Self {
        let mut mki = Self::NONE;
        mki.len = bytes.len() as u8;
        mki.bytes[..bytes.len()].copy_from_slice(bytes);
        mki
    }

    /// The MKI octets as sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The MKI length in octets.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether this is the empty MKI.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Mki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Mki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mki({self})")
    }
}

/// How much a master key has been used (RFC 3711 section 9.2 key lifetime).
///
/// Protect refuses with [`crate::Error::Exhausted`] once
/// [`SRTP_PACKET_LIMIT`] or [`SRTCP_PACKET_LIMIT`] packets were protected;
/// re-key well before that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// SRTP packets protected under this key.
    pub srtp_protected: u64,
    /// SRTP packets unprotected under this key.
    pub srtp_unprotected: u64,
    /// SRTCP packets protected under this key.
    pub srtcp_protected: u64,
    /// SRTCP packets unprotected under this key.
    pub srtcp_unprotected: u64,
}

impl KeyUsage {
    /// SRTP packets this key may still protect.
    pub fn srtp_remaining(&self) -> u64 {
        SRTP_PACKET_LIMIT.saturating_sub(self.srtp_protected)
    }

    /// SRTCP packets this key may still protect.
    pub fn srtcp_remaining(&self) -> u64 {
        SRTCP_PACKET_LIMIT.saturating_sub(self.srtcp_protected)
    }
}

/// A keyed AEAD (k_e's key schedule and GHASH key) and its session salt k_s.
pub(crate) struct AeadKey {
    pub(crate) cipher: Gcm,
    pub(crate) salt: Zeroizing<[u8; 12]>,
}

impl AeadKey {
    fn derive(kdf: &Kdf, key_label: Label, salt_label: Label) -> Self {
        let mut key = Zeroizing::new([0u8; 16]);
        let mut salt = Zeroizing::new([0u8; 12]);
        kdf.derive(key_label, &mut key[..]);
        kdf.derive(salt_label, &mut salt[..]);
        Self::new(&key, salt)
    }

    /// From a session key and salt directly (the RFC 7714 vectors give these).
    pub(crate) fn new(key: &[u8; 16], salt: Zeroizing<[u8; 12]>) -> Self {
        Self {
            cipher: Gcm::new(key),
            salt,
        }
    }
}

/// The session keys derived from one master key.
pub(crate) struct SessionKeys {
    pub(crate) rtp: AeadKey,
    pub(crate) rtcp: AeadKey,
}
