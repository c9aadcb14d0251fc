//! Key identifiers and the symmetric keys this crate moves: GMK, TGMK and
//! derived SRTP master keys. Every secret is erased on drop, compared in
//! constant time and never printed.

use core::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::Error;
use crate::wire::Purpose;

/// Length of a GMK, TGMK, PCK, CSK: 128 bits.
pub const KEY_LEN: usize = 16;

/// A 32-bit key identifier: 4-bit purpose tag and 28 random bits
/// (TS 33.180 5.x, "GMK-ID", "PCK-ID", ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl KeyId {
    /// A fresh key ID with purpose `purpose` (values above 15 are refused).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the purpose does not fit 4 bits.
    pub fn generate(purpose: Purpose, rng: &mut impl CryptoRng) -> Result<Self, Error> {
        let tag = purpose.value();
        if tag > 0x0f {
            return Err(Error::InvalidParameter("purpose tag must fit 4 bits"));
        }
        Ok(Self(
            (u32::from(tag) << 28) | (rng.next_u32() & 0x0fff_ffff),
        ))
    }

    /// A fresh key ID of a purpose this crate names (tags up to 15): the
    /// tag in the top 4 bits, 28 random bits (TS 33.180 5.2.2).
    pub(crate) fn fresh(purpose: Purpose, rng: &mut impl CryptoRng) -> Self {
        Self((u32::from(purpose.value() & 0x0f) << 28) | (rng.next_u32() & 0x0fff_ffff))
    }

    /// The purpose tag (top 4 bits).
    pub fn purpose(self) -> Purpose {
        Purpose::from((self.0 >> 28) as u8)
    }

    /// Big-endian octets.
    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// From big-endian octets.
    pub fn from_bytes(b: [u8; 4]) -> Self {
        Self(u32::from_be_bytes(b))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({:08x})", self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

macro_rules! secret_key {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            /// Wraps 16 octets.
            ///
            /// # Errors
            /// [`Error::InvalidParameter`] if `bytes` is not 16 octets.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
                let k: [u8; KEY_LEN] = bytes
                    .try_into()
                    .map_err(|_| Error::InvalidParameter(concat!(stringify!($name), " must be 16 octets")))?;
                Ok(Self(k))
            }

            /// 16 fresh random octets from `rng` (the caller passes the OS RNG).
            pub fn generate(rng: &mut impl CryptoRng) -> Self {
                let mut k = [0u8; KEY_LEN];
                rng.fill_bytes(&mut k);
                Self(k)
            }

            /// The key's octets.
            ///
            /// # ⚠️ Warning: This value is key material
            pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl ZeroizeOnDrop for $name {}

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

secret_key! {
    /// A group master key (TS 33.180 5.7): 128 bits, created by the GMS.
    Gmk
}

secret_key! {
    /// A temporary group master key: 128 bits created by the initiating
    /// client of a temporary group – broadcast group call.
    Tgmk
}

secret_key! {
    /// A client-server key (TS 33.180 5.4): 128 bits created by an MC
    /// service client and uploaded to its MC server domain; it protects
    /// floor control between the client and its server (TS 24.380 13.1).
    Csk
}

secret_key! {
    /// A signalling protection key (TS 33.180 9.3): 128 bits configured
    /// between MC servers; it protects floor control between them
    /// (TS 24.380 13.1).
    Spk
}

secret_key! {
    /// A 128-bit key of another purpose (PCK, CSK, ...) carried by MIKEY-SAKKE.
    Key128
}

/// SRTP master key, master salt and MKI derived from a GMK or TGMK
/// (TS 33.180 7.4.2, RFC 3830 4.1.3), or the SRTCP ones from a CSK or SPK. Erased on drop; `Debug` shows the
/// MKI only.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpMasterKeys {
    master_key: [u8; 16],
    master_salt: [u8; 12],
    mki: Vec<u8>,
}

impl SrtpMasterKeys {
    pub(crate) fn new(master_key: [u8; 16], master_salt: [u8; 12], mki: Vec<u8>) -> Self {
        Self {
            master_key,
            master_salt,
            mki,
        }
    }

    /// The 16-octet SRTP master key.
    ///
    /// # ⚠️ Warning: This value is key material
    pub fn master_key(&self) -> &[u8; 16] {
        &self.master_key
    }

    /// The 12-octet SRTP master salt (RFC 7714).
    ///
    /// # ⚠️ Warning: This value is key material
    pub fn master_salt(&self) -> &[u8; 12] {
        &self.master_salt
    }

    /// The MKI that names these keys in SRTP packets.
    pub fn mki(&self) -> &[u8] {
        &self.mki
    }
}

impl Drop for SrtpMasterKeys {
    fn drop(&mut self) {
        self.master_key.zeroize();
        self.master_salt.zeroize();
    }
}

impl ZeroizeOnDrop for SrtpMasterKeys {}

impl fmt::Debug for SrtpMasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpMasterKeys")
            .field("mki", &crate::hex(&self.mki))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let g = Gmk::from_bytes(&[0x42; 16]).unwrap();
        assert_eq!(format!("{g:?}"), "Gmk { .. }");
        let k = SrtpMasterKeys::new([0x42; 16], [0x43; 12], vec![1, 2]);
        let s = format!("{k:?}");
        assert!(!s.contains("42") && s.contains("0102"), "{s}");
        assert!(Gmk::from_bytes(&[0; 15]).is_err());
    }

    #[test]
    fn purpose_tag() {
        assert_eq!(KeyId(0x0df9_bc39).purpose(), Purpose::Gmk);
        assert_eq!(KeyId(0x2ddd_5bf0).purpose(), Purpose::Csk);
        assert_eq!(KeyId(0x1699_2638).purpose(), Purpose::Pck);
    }
}
