//! The SRTP key derivation function: the AES-CM PRF of RFC 3711 section 4.3,
//! with a key derivation rate of 0 (keys are derived once per master key).
//!
//! RFC 7714 section 11 keeps this KDF for AEAD_AES_128_GCM. Its 96-bit master
//! salt is zero-extended on the right to the KDF's 112 bits (as libsrtp does:
//! "GCM mode uses a shorter master SALT (96 bits), but still relies on the
//! legacy CTR mode KDF, which uses a 112 bit master SALT").

use aes::Aes128;
use aes::cipher::{Block, BlockCipherEncrypt, KeyInit};
use zeroize::Zeroize;

/// Key derivation labels (RFC 3711 section 4.3.1 and 4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Label {
    /// k_e, the SRTP encryption key.
    RtpEncryption = 0x00,
    /// k_a, the SRTP authentication key (not used by AEAD transforms).
    #[cfg(test)]
    RtpAuthentication = 0x01,
    /// k_s, the SRTP session salt.
    RtpSalt = 0x02,
    /// The SRTCP encryption key.
    RtcpEncryption = 0x03,
    /// The SRTCP session salt.
    RtcpSalt = 0x05,
}

/// The RFC 3711 PRF keyed with one master key.
pub(crate) struct Kdf {
    cipher: Aes128,
    /// The master salt, zero-extended to 112 bits.
    salt: [u8; 14],
}

impl Kdf {
    /// A KDF for `master_key` and a master salt of up to 14 octets
    /// (zero-extended on the right).
    pub(crate) fn new(master_key: &[u8; 16], master_salt: &[u8]) -> Self {
        let mut salt = [0u8; 14];
        let n = master_salt.len().min(14);
        salt[..n].copy_from_slice(&master_salt[..n]);
        Self {
            cipher: Aes128::new(master_key.into()),
            salt,
        }
    }

    /// Fills `out` with PRF_n(k_master, x) for `label` and key derivation
    /// rate 0: x = (label || 0^48) XOR master_salt, and the output is the
    /// AES-CM keystream with IV = x * 2^16 (RFC 3711 sections 4.1.1, 4.3.1).
    pub(crate) fn derive(&self, label: Label, out: &mut [u8]) {
        let mut x = self.salt;
        // key_id = label || r (r = 0) is right-aligned in the 112-bit x, so
        // the label lands on octet 7.
        x[7] ^= label as u8;
        let mut block = Block::<Aes128>::default();
        for (counter, chunk) in out.chunks_mut(16).enumerate() {
            block[..14].copy_from_slice(&x);
            block[14..].copy_from_slice(&(counter as u16).to_be_bytes());
            self.cipher.encrypt_block(&mut block);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        block.zeroize();
        x.zeroize();
    }
}

impl Drop for Kdf {
    fn drop(&mut self) {
        // The AES key schedule zeroizes itself (the `aes/zeroize` feature).
        self.salt.zeroize();
    }
}
