//! Parameter set 1 of RFC 6509 Appendix A (the only one TS 33.180 uses).

use super::curve::Affine;
use super::fp::{Fp, LIMBS};

/// The group order q = (p + 1)/4 (little-endian limbs), 1022 bits.
pub(crate) const Q: [u64; LIMBS] = [
    0xd99b601ebfaa17fb,
    0x203177c42b1eb3a1,
    0xff38fa08e2615f6c,
    0xa7e535abd5a5c7c7,
    0xa9f3cf14870f026a,
    0x6dabfd2a0c614aa0,
    0x144ab173595a0738,
    0x389b1921cc9ad335,
    0x4d5b49fd2999a9b4,
    0x39e46ce7fdf22286,
    0xc8a1cc354c69672c,
    0xbd02aac9f8bf03c6,
    0x6fa6b8d62cf8068b,
    0x905b0338672d2098,
    0x9971846636b4195e,
    0x265eaec7c2958ff6,
];
/// Bit length of q.
pub(crate) const Q_BITS: usize = 1022;

/// Number of digits in the non-adjacent form of q − 1.
const NAF_LEN: usize = naf_lsb_first().1;

/// Digits of the non-adjacent form of q − 1, most significant first: the
/// Miller loop's schedule. Its leading digit is 1.
pub(crate) const Q_MINUS_ONE_NAF: [i8; NAF_LEN] = {
    let (lsb_first, len) = naf_lsb_first();
    let mut out = [0i8; NAF_LEN];
    let mut i = 0;
    while i < len {
        out[i] = lsb_first[len - 1 - i];
        i += 1;
    }
    out
};

/// The NAF of q − 1, least significant digit first, and its length.
const fn naf_lsb_first() -> ([i8; Q_BITS + 1], usize) {
    let mut n = Q;
    n[0] -= 1; // q is odd
    let mut lsb_first = [0i8; Q_BITS + 1];
    let mut len = 0;
    while !is_zero(&n) {
        if n[0] & 1 == 1 {
            // Digit 2 − (n mod 4): +1 leaves n ≡ 0 mod 4, −1 makes it so.
            if n[0] & 3 == 1 {
                lsb_first[len] = 1;
                n[0] -= 1; // n[0] is odd, no borrow
            } else {
                lsb_first[len] = -1;
                add_one(&mut n);
            }
        }
        shr1(&mut n);
        len += 1;
    }
    (lsb_first, len)
}

const fn is_zero(n: &[u64; LIMBS]) -> bool {
    let mut i = 0;
    while i < LIMBS {
        if n[i] != 0 {
            return false;
        }
        i += 1;
    }
    true
}

const fn add_one(n: &mut [u64; LIMBS]) {
    let mut i = 0;
    while i < LIMBS {
        let (v, carry) = n[i].overflowing_add(1);
        n[i] = v;
        if !carry {
            return;
        }
        i += 1;
    }
}

const fn shr1(n: &mut [u64; LIMBS]) {
    let mut i = 0;
    while i < LIMBS {
        let hi = if i + 1 < LIMBS { n[i + 1] << 63 } else { 0 };
        n[i] = (n[i] >> 1) | hi;
        i += 1;
    }
}

/// The base point P = (P_x, P_y), Montgomery form.
pub(crate) const BASE: Affine = Affine {
    x: Fp::from_montgomery_limbs([
        0xbf9c7ec6e0162bc2,
        0xddecc6e310a89289,
        0x5d599df09e499d81,
        0x9a96ea286d358218,
        0x01aec7d370c5f8db,
        0xe72e49958cf5d066,
        0xc2e7297d3e91d7f8,
        0x8621db92da9f2f5a,
        0x4b26c8675a5679ed,
        0x233385df2c56aac1,
        0xb88e74d4c6a13f99,
        0x1214b173ffa8ec11,
        0xa0386a271f3f9fef,
        0xbd9b1b4ec0e7b44e,
        0xafe528dceecd3496,
        0x8dfff96a1c49f80b,
    ]),
    y: Fp::from_montgomery_limbs([
        0xb4a4753ac03c0c83,
        0x68e69d18abcdcd75,
        0xe3839b88f775b649,
        0x803f949abf58f352,
        0x5f702679bd0bc15c,
        0x85bf5d168ff298c2,
        0x3f6ebd98c6c7976e,
        0x20618af445e3e1b4,
        0x67d5598e54e64093,
        0xb047283b504fed9e,
        0x450cabfd70d87517,
        0x47d628bf3f5addbe,
        0x0037ef3078cb4cca,
        0x4e148d3c6b1c4908,
        0xe256d3294fcfd837,
        0x2aa1207bde3c01f3,
    ]),
};

/// g = ⟨P, P⟩ in its PF_p representation, Montgomery form.
pub(crate) const G: Fp = Fp::from_montgomery_limbs([
    0x170a46d2335c1685,
    0xeac9e971e1007a58,
    0x40e8f3df43ca4a73,
    0x2646f81582642475,
    0x3af49bb4b36576d1,
    0xd89e2d1472bf1afb,
    0x27be882c2fd151e6,
    0xaddedc858f88717c,
    0xd6d859bf16ac6c6f,
    0x0e741a1b2d8eae58,
    0x6faf7a0061c1f30d,
    0x66dbd09a9b67e096,
    0x21f11c067d3b4f7d,
    0x6152ba02c727c98e,
    0xafd58891e86cb221,
    0x59e93c6a6bd3baf4,
]);

/// n: bits of the shared secret value.
pub(crate) const SSV_BYTES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::U1024;

    #[test]
    fn naf_is_non_adjacent_and_sums_to_q_minus_one() {
        let mut acc = U1024::ZERO;
        for &d in Q_MINUS_ONE_NAF.iter() {
            acc = acc.shl(1);
            acc = match d {
                1 => acc.wrapping_add(&U1024::ONE),
                -1 => acc.wrapping_sub(&U1024::ONE),
                _ => acc,
            };
        }
        assert_eq!(acc, U1024::from_words(Q).wrapping_sub(&U1024::ONE));
        assert_eq!(Q_MINUS_ONE_NAF[0], 1);
        assert!(Q_MINUS_ONE_NAF.windows(2).all(|w| w[0] == 0 || w[1] == 0));
        let nonzero = Q_MINUS_ONE_NAF.iter().filter(|&&d| d != 0).count();
        assert!(nonzero < 400, "{nonzero} chord lines");
    }
}
