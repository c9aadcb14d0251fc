//! HMAC_DRBG with SHA-256 (NIST SP 800-90A Rev. 1, 10.1.2): the KMS's own
//! deterministic random bit generator for issuing keys.
//!
//! [`crate::Kms::handle`] takes no RNG, yet issuing an ECCSI key pair needs
//! a fresh random `v` (RFC 6507 5.1.1). The KMS therefore seeds this DRBG
//! from the caller's RNG when it opens (and on [`crate::Kms::reseed`]) and
//! mixes each request's user and time in as additional input. With a
//! deterministic seed RNG, runs replay exactly.

use core::convert::Infallible;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha256 = Hmac<Sha256>;

/// Octets of seed material drawn from the caller's RNG: 256 bits of
/// entropy plus a 128-bit nonce (SP 800-90A 8.6.7).
pub(crate) const SEED_LEN: usize = 48;

/// HMAC_DRBG state. Zeroized on drop; no `Debug`, no `Clone`.
pub(crate) struct HmacDrbg {
    k: [u8; 32],
    v: [u8; 32],
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length: this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl HmacDrbg {
    /// Instantiate (10.1.2.3) from `seed` (entropy || nonce) and a
    /// personalization string.
    pub(crate) fn new(seed: &[u8], personalization: &[u8]) -> Self {
        let mut drbg = Self {
            k: [0x00; 32],
            v: [0x01; 32],
        };
        drbg.update(&[seed, personalization]);
        drbg
    }

    /// HMAC_DRBG_Update (10.1.2.2).
    fn update(&mut self, data: &[&[u8]]) {
        let empty = data.iter().all(|d| d.is_empty());
        for round in [0x00u8, 0x01] {
            if round == 0x01 && empty {
                break;
            }
            let mut parts: Vec<&[u8]> = Vec::with_capacity(data.len() + 2);
            let v = self.v;
            let sep = [round];
            parts.push(&v);
            parts.push(&sep);
            parts.extend_from_slice(data);
            self.k = hmac(&self.k, &parts);
            self.v = hmac(&self.k, &[&self.v]);
        }
    }

    /// Reseed (10.1.2.4) with fresh entropy and additional input.
    pub(crate) fn reseed(&mut self, entropy: &[u8], additional: &[u8]) {
        self.update(&[entropy, additional]);
    }

    /// Mixes additional input into the state (as a generate call with
    /// additional input does before producing output).
    pub(crate) fn mix(&mut self, additional: &[&[u8]]) {
        self.update(additional);
    }

    /// Generate (10.1.2.5) without additional input.
    pub(crate) fn generate(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            self.v = hmac(&self.k, &[&self.v]);
            chunk.copy_from_slice(&self.v[..chunk.len()]);
        }
        self.update(&[]);
    }
}

impl Drop for HmacDrbg {
    fn drop(&mut self) {
        self.k.zeroize();
        self.v.zeroize();
    }
}

impl ZeroizeOnDrop for HmacDrbg {}

impl rand_core::TryRng for HmacDrbg {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.generate(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.generate(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.generate(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for HmacDrbg {}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST CAVP HMAC_DRBG test vector (drbgvectors_pr_false, HMAC_DRBG.rsp,
    /// [SHA-256], PredictionResistance = False, EntropyInputLen = 256,
    /// NonceLen = 128, PersonalizationStringLen = 0, AdditionalInputLen = 0,
    /// ReturnedBitsLen = 1024), COUNT = 0: instantiate, reseed, generate
    /// twice, compare the second output.
    #[test]
    fn nist_cavp_sha256_count0() {
        let entropy =
            hex::decode("06032cd5eed33f39265f49ecb142c511da9aff2af71203bffaf34a9ca5bd9c0d")
                .unwrap_or_default();
        let nonce = hex::decode("0e66f71edc43e42a45ad3c6fc6cdc4df").unwrap_or_default();
        let reseed =
            hex::decode("01920a4e669ed3a85ae8a33b35a74ad7fb2a6bb4cf395ce00334a9c9a5a5d552")
                .unwrap_or_default();
        let expected = "76fc79fe9b50beccc991a11b5635783a83536add03c157fb30645e611c2898bb2b1bc215000209208cd506cb28da2a51bdb03826aaf2bd2335d576d519160842e7158ad0949d1a9ec3e66ea1b1a064b005de914eac2e9d4f2d72a8616a80225422918250ff66a41bd2f864a6a38cc5b6499dc43f7f2bd09e1e0f8f5885935124";
        let seed = [entropy.as_slice(), nonce.as_slice()].concat();
        let mut drbg = HmacDrbg::new(&seed, &[]);
        drbg.reseed(&reseed, &[]);
        let mut out = [0u8; 128];
        drbg.generate(&mut out);
        drbg.generate(&mut out);
        assert_eq!(hex::encode(out), expected);
    }
}
