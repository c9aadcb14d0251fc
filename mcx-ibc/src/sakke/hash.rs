//! HashToIntegerRange (RFC 6508 section 5.1) with SHA-256.

use crypto_bigint::{NonZero, U1024};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::params::Q;

/// HashToIntegerRange(s, q): four SHA-256 blocks (⌈1022/256⌉) reduced mod q.
/// Constant time in `s`: the reduction does not branch on the value.
pub(crate) fn to_scalar_mod_q(s: &[&[u8]]) -> U1024 {
    let v = expand::<4>(s);
    let q = NonZero::new(U1024::from_words(Q)).expect("q is non-zero");
    U1024::from_be_slice(&v).rem(&q)
}

/// HashToIntegerRange(s, 2^128): one block, its low 128 bits.
pub(crate) fn to_mask_128(s: &[u8]) -> [u8; 16] {
    let v = expand::<1>(&[s]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&v[16..32]);
    out
}

/// v_1 || … || v_L where A = H(s), h_0 = 0^256, h_i = H(h_{i−1}),
/// v_i = H(h_i || A). Returned as a byte vector of L·32 octets.
fn expand<const L: usize>(s: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut hasher = Sha256::new();
    for part in s {
        hasher.update(part);
    }
    let a = hasher.finalize();
    let mut h = [0u8; 32];
    let mut out = Zeroizing::new(Vec::with_capacity(32 * L));
    for _ in 0..L {
        h = Sha256::digest(h).into();
        let mut vh = Sha256::new();
        vh.update(h);
        vh.update(a);
        out.extend_from_slice(&vh.finalize());
    }
    out
}
