//! AES-128-GCM (NIST SP 800-38D) with a 96-bit IV and a 16-octet tag,
//! composed from RustCrypto's `aes` block cipher and `ghash` universal hash.
//!
//! Why not the `aes-gcm` crate's own composition: it makes several small
//! calls per message into the runtime-dispatched AES-NI and PCLMULQDQ
//! backends (one for the tag mask, one for the keystream, several for
//! GHASH), and on short packets that dispatch costs as much as the
//! cryptography. Here one `encrypt_blocks` call produces the tag mask and
//! up to 15 keystream blocks, and one `GHash::update` call takes the padded
//! AAD, ciphertext and length block together. No AES or GHASH arithmetic is
//! written here; the tests below check this against the `aes-gcm` crate
//! (every length around the batch boundaries, and random keys, IVs and
//! inputs), and the RFC 7714 vectors and libsrtp check it byte for byte.
//!
//! Open verifies the tag (constant time) before decrypting anything.

use aes::Aes128Enc;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

type Block = aes::Block;

/// AES blocks per `encrypt_blocks` call (a multiple of the backends' 8-way
/// parallelism).
const CTR_BATCH: usize = 16;
/// GHASH blocks per `update` call.
const GHASH_BATCH: usize = 32;

/// An AES-128-GCM key: the AES key schedule and the GHASH key H = E(K, 0).
/// Both zeroize on drop (the `aes`/`ghash` `zeroize` features).
pub(crate) struct Gcm {
    aes: Aes128Enc,
    ghash: GHash,
}

/// The tag did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagMismatch;

impl Gcm {
    pub(crate) fn new(key: &[u8; 16]) -> Self {
        let aes = Aes128Enc::new(key.into());
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.zeroize();
        Self { aes, ghash }
    }

    /// Encrypts `data` in place and returns the tag over `aad` and the
    /// ciphertext. `data` must be shorter than 2^32 - 2 blocks (packets are
    /// at most 65535 octets).
    #[inline]
    pub(crate) fn seal(&self, iv: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let mut ks = [Block::default(); CTR_BATCH];
        // ks[0] = E(K, J0), the tag mask; ks[1..] the first keystream blocks.
        let first = self.first_batch(iv, data.len(), &mut ks);
        xor_keystream(&mut data[..first], &ks[1..]);
        self.apply_keystream_from(iv, &mut data[first..], first);
        let s = self.ghash(aad, data);
        let mut tag = [0u8; 16];
        for (t, (s, m)) in tag.iter_mut().zip(s.iter().zip(ks[0].iter())) {
            *t = s ^ m;
        }
        wipe(&mut ks);
        tag
    }

    /// Checks `tag` over `aad` and the ciphertext `data`, then decrypts
    /// `data` in place. On a mismatch `data` is not touched.
    #[inline]
    pub(crate) fn open(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), TagMismatch> {
        let s = self.ghash(aad, data);
        let mut ks = [Block::default(); CTR_BATCH];
        let first = self.first_batch(iv, data.len(), &mut ks);
        let mut expected = [0u8; 16];
        for (e, (s, m)) in expected.iter_mut().zip(s.iter().zip(ks[0].iter())) {
            *e = s ^ m;
        }
        let ok: bool = expected[..].ct_eq(tag).into();
        if ok {
            xor_keystream(&mut data[..first], &ks[1..]);
            self.apply_keystream_from(iv, &mut data[first..], first);
        }
        wipe(&mut ks);
        expected.zeroize();
        if ok { Ok(()) } else { Err(TagMismatch) }
    }

    /// Fills `ks[0]` with E(K, J0) and `ks[1..]` with as many keystream
    /// blocks as `len` needs, up to the batch; returns the octets covered.
    #[inline]
    fn first_batch(&self, iv: &[u8; 12], len: usize, ks: &mut [Block; CTR_BATCH]) -> usize {
        let blocks = len.div_ceil(16).min(CTR_BATCH - 1);
        // J0 = IV || 0^31 || 1 (SP 800-38D 7.1, 96-bit IV).
        counter_blocks(iv, 1, &mut ks[..=blocks]);
        self.aes.encrypt_blocks(&mut ks[..=blocks]);
        (blocks * 16).min(len)
    }

    /// CTR-encrypts `data`, which starts `offset` octets (a multiple of 16)
    /// into the message.
    #[inline]
    fn apply_keystream_from(&self, iv: &[u8; 12], data: &mut [u8], offset: usize) {
        if data.is_empty() {
            return;
        }
        let mut ks = [Block::default(); CTR_BATCH];
        // Message block i uses counter 2 + i.
        let mut counter = 2 + (offset / 16) as u32;
        for chunk in data.chunks_mut(CTR_BATCH * 16) {
            let blocks = chunk.len().div_ceil(16);
            counter_blocks(iv, counter, &mut ks[..blocks]);
            self.aes.encrypt_blocks(&mut ks[..blocks]);
            xor_keystream(chunk, &ks[..blocks]);
            counter = counter.wrapping_add(blocks as u32);
        }
        wipe(&mut ks);
    }

    /// GHASH_H(A || 0* || C || 0* || [len(A)]_64 || [len(C)]_64).
    #[inline]
    fn ghash(&self, aad: &[u8], ciphertext: &[u8]) -> ghash::Tag {
        let mut g = self.ghash.clone();
        let mut blocks = [Block::default(); GHASH_BATCH];
        let mut n = 0;
        for part in [aad, ciphertext] {
            let mut full = part.chunks_exact(16);
            for chunk in &mut full {
                if n == GHASH_BATCH {
                    g.update(&blocks);
                    n = 0;
                }
                blocks[n].copy_from_slice(chunk);
                n += 1;
            }
            let tail = full.remainder();
            if !tail.is_empty() {
                if n == GHASH_BATCH {
                    g.update(&blocks);
                    n = 0;
                }
                blocks[n] = Block::default();
                blocks[n][..tail.len()].copy_from_slice(tail);
                n += 1;
            }
        }
        if n == GHASH_BATCH {
            g.update(&blocks);
            n = 0;
        }
        blocks[n][..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        blocks[n][8..].copy_from_slice(&(ciphertext.len() as u64 * 8).to_be_bytes());
        g.update(&blocks[..=n]);
        g.finalize()
    }
}

/// Counter blocks IV || (start + i) for i = 0.. (inc32 of SP 800-38D).
#[inline]
fn counter_blocks(iv: &[u8; 12], start: u32, out: &mut [Block]) {
    for (i, b) in out.iter_mut().enumerate() {
        b[..12].copy_from_slice(iv);
        b[12..].copy_from_slice(&start.wrapping_add(i as u32).to_be_bytes());
    }
}

/// Zeroizes keystream blocks.
#[inline]
fn wipe(blocks: &mut [Block]) {
    for b in blocks {
        b.as_mut_slice().zeroize();
    }
}

#[inline]
fn xor_keystream(data: &mut [u8], ks: &[Block]) {
    let mut full = data.chunks_exact_mut(16);
    let mut ks = ks.iter();
    for (chunk, k) in (&mut full).zip(&mut ks) {
        let x = u128::from_ne_bytes(chunk[..16].try_into().unwrap_or_default())
            ^ u128::from_ne_bytes(k.0);
        chunk.copy_from_slice(&x.to_ne_bytes());
    }
    let tail = full.into_remainder();
    if let Some(k) = ks.next() {
        for (d, k) in tail.iter_mut().zip(k.iter()) {
            *d ^= k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::consts::U12;
    use aes_gcm::{AeadInOut, AesGcm};
    use proptest::prelude::*;

    proptest! {
        /// Random key, IV, AAD and plaintext: the same ciphertext and tag
        /// as `aes-gcm`, and open inverts seal.
        #[test]
        fn same_as_aes_gcm(
            key in any::<[u8; 16]>(),
            iv in any::<[u8; 12]>(),
            aad in prop::collection::vec(any::<u8>(), 0..80),
            plain in prop::collection::vec(any::<u8>(), 0..700),
        ) {
            let ours = Gcm::new(&key);
            let theirs = AesGcm::<Aes128Enc, U12>::new((&key).into());
            let mut a = plain.clone();
            let mut b = plain.clone();
            let tag = ours.seal(&iv, &aad, &mut a);
            let expected = theirs
                .encrypt_inout_detached((&iv).into(), &aad, b.as_mut_slice().into())
                .expect("aes-gcm");
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&tag[..], &expected[..]);
            prop_assert_eq!(ours.open(&iv, &aad, &mut a, &tag), Ok(()));
            prop_assert_eq!(a, plain);
        }
    }

    /// Against RustCrypto's `aes-gcm` at every length around the batch
    /// boundaries.
    #[test]
    fn matches_aes_gcm() {
        let key = [0x5au8; 16];
        let ours = Gcm::new(&key);
        let theirs = AesGcm::<Aes128Enc, U12>::new((&key).into());
        let iv = [0x3cu8; 12];
        for aad_len in [0usize, 12, 16, 17, 100, 600] {
            let aad: Vec<u8> = (0..aad_len).map(|i| i as u8).collect();
            for len in (0..300).chain([511, 512, 513, 1000, 4096, 65535]) {
                let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let mut a = plain.clone();
                let mut b = plain.clone();
                let tag = ours.seal(&iv, &aad, &mut a);
                let expected = theirs
                    .encrypt_inout_detached((&iv).into(), &aad, b.as_mut_slice().into())
                    .expect("aes-gcm");
                assert_eq!(a, b, "ciphertext, aad {aad_len}, len {len}");
                assert_eq!(tag[..], expected[..], "tag, aad {aad_len}, len {len}");
                assert_eq!(ours.open(&iv, &aad, &mut a, &tag), Ok(()));
                assert_eq!(a, plain);
                let mut bad = tag;
                bad[15] ^= 1;
                let before = b.clone();
                assert_eq!(ours.open(&iv, &aad, &mut b, &bad), Err(TagMismatch));
                assert_eq!(b, before);
            }
        }
    }
}
