//! [`BufferedOsRng`]: the OS random number generator read in blocks.
//!
//! Roles draw random values all the time: every tag, branch and Call-ID
//! (RFC 3261 19.3, 8.1.1.7, 8.1.1.4 ask them unguessable), every SDP
//! session id and multipart boundary. One `getrandom` system call per
//! value made the kernel's per-call set-up (`crng_make_state`) and the
//! system call itself a visible share of an MC server's time at hundreds
//! of members. Here the OS is asked for [`BLOCK`] octets at once and the
//! values are cut from them: every octet handed out is still the OS
//! CSPRNG's output, used once.
//!
//! Octets are wiped as they are handed out (and the rest when the
//! generator is dropped), so that memory read later does not reveal
//! values already used (tags, keys made from them). What is buffered and
//! not yet used is as secret as the state of any user-space CSPRNG; a
//! process that forks without exec would share it (the roles never do).

use std::convert::Infallible;
use std::fmt;

use rand_core::{TryCryptoRng, TryRng};
use zeroize::Zeroize;

/// How many octets one OS read fetches: 4 KiB serves the From tag,
/// branch and Call-ID (32 octets) of 128 members' INVITEs.
pub(crate) const BLOCK: usize = 4096;

/// The OS CSPRNG, read 4 KiB (`BLOCK`) at a time (see the module
/// documentation). Like `rand_core::UnwrapErr<getrandom::SysRng>` it
/// panics if the OS cannot give randomness (there is no safe way on).
pub struct BufferedOsRng {
    buf: Box<[u8; BLOCK]>,
    /// Octets of `buf` before this are used (and wiped).
    pos: usize,
}

impl BufferedOsRng {
    /// An empty buffer: the OS is first read at the first draw.
    #[must_use]
    pub fn new() -> Self {
        Self {
            buf: Box::new([0; BLOCK]),
            pos: BLOCK,
        }
    }

    fn refill(&mut self) {
        #[allow(clippy::expect_used)] // the OS RNG failing is not input: nothing is safe after it
        getrandom::fill(&mut self.buf[..]).expect("the OS random number generator failed");
        self.pos = 0;
    }
}

impl Default for BufferedOsRng {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for BufferedOsRng {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

impl fmt::Debug for BufferedOsRng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the buffered octets.
        f.debug_struct("BufferedOsRng").finish_non_exhaustive()
    }
}

impl TryRng for BufferedOsRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, mut dst: &mut [u8]) -> Result<(), Infallible> {
        while !dst.is_empty() {
            if self.pos == BLOCK {
                self.refill();
            }
            let n = dst.len().min(BLOCK - self.pos);
            let (now, rest) = dst.split_at_mut(n);
            let src = &mut self.buf[self.pos..self.pos + n];
            now.copy_from_slice(src);
            src.zeroize();
            self.pos += n;
            dst = rest;
        }
        Ok(())
    }
}

/// Every octet is the OS CSPRNG's, handed out once.
impl TryCryptoRng for BufferedOsRng {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand_core::Rng;

    use super::*;

    /// Values cut from the buffer never repeat, across many refills and
    /// draws of every size (a buffer handed out twice, or not advanced,
    /// would repeat at once).
    #[test]
    fn draws_never_repeat_across_refills() {
        let mut rng = BufferedOsRng::new();
        let mut seen = HashSet::new();
        // 20,000 × 8 octets: ~40 OS reads.
        for _ in 0..20_000 {
            let mut b = [0u8; 8];
            rng.fill_bytes(&mut b);
            assert!(seen.insert(b.to_vec()), "a 64-bit draw repeated");
        }
        for _ in 0..2_000 {
            assert!(seen.insert(rng.next_u64().to_le_bytes().to_vec()));
            let mut b = [0u8; 16];
            rng.fill_bytes(&mut b);
            assert!(seen.insert(b.to_vec()));
        }
        // A draw larger than the buffer, straddling refills.
        let mut big = vec![0u8; BLOCK * 2 + 100];
        rng.fill_bytes(&mut big);
        let chunks: HashSet<&[u8]> = big.chunks(16).collect();
        assert_eq!(chunks.len(), big.len().div_ceil(16));
    }

    /// What was handed out is wiped from the buffer; the rest is not
    /// zero (it came from the OS).
    #[test]
    fn used_octets_are_wiped() {
        let mut rng = BufferedOsRng::new();
        let mut b = [0u8; 100];
        rng.fill_bytes(&mut b);
        assert_eq!(rng.pos, 100);
        assert!(rng.buf[..100].iter().all(|&x| x == 0));
        assert!(rng.buf[100..].iter().any(|&x| x != 0));
        assert_ne!(b, [0u8; 100]);
    }

    /// Debug shows no octets.
    #[test]
    fn debug_hides_the_buffer() {
        let mut rng = BufferedOsRng::new();
        let _ = rng.next_u32();
        assert_eq!(format!("{rng:?}"), "BufferedOsRng { .. }");
    }
}
