//! Parameter set 1 of RFC 6509 Appendix A (the only one TS 33.180 uses).

use super::curve::Affine;
use super::fp::{Fp, LIMBS};

/// The group order q = (p + 1)/4 (little-endian limbs), 1022 bits.
pub(crate) const Q: [u64; LIMBS] = [
    0xd99b601ebfaa17fb, 0x203177c42b1eb3a1, 0xff38fa08e2615f6c, 0xa7e535abd5a5c7c7,
    0xa9f3cf14870f026a, 0x6dabfd2a0c614aa0, 0x144ab173595a0738, 0x389b1921cc9ad335,
    0x4d5b49fd2999a9b4, 0x39e46ce7fdf22286, 0xc8a1cc354c69672c, 0xbd02aac9f8bf03c6,
    0x6fa6b8d62cf8068b, 0x905b0338672d2098, 0x9971846636b4195e, 0x265eaec7c2958ff6,
];
/// Bit length of q.
pub(crate) const Q_BITS: usize = 1022;

/// The bits of q − 1, most significant first: the Miller loop's schedule.
pub(crate) const Q_MINUS_ONE_BITS: [bool; Q_BITS] = {
    let mut bits = [false; Q_BITS];
    let mut i = 0;
    while i < Q_BITS {
        let pos = Q_BITS - 1 - i;
        // q is odd, so q − 1 is q with bit 0 cleared.
        bits[i] = pos != 0 && (Q[pos / 64] >> (pos % 64)) & 1 == 1;
        i += 1;
    }
    bits
};

/// The base point P = (P_x, P_y), Montgomery form.
pub(crate) const BASE: Affine = Affine {
    x: Fp::from_montgomery_limbs([
        0xbf9c7ec6e0162bc2, 0xddecc6e310a89289, 0x5d599df09e499d81, 0x9a96ea286d358218,
        0x01aec7d370c5f8db, 0xe72e49958cf5d066, 0xc2e7297d3e91d7f8, 0x8621db92da9f2f5a,
        0x4b26c8675a5679ed, 0x233385df2c56aac1, 0xb88e74d4c6a13f99, 0x1214b173ffa8ec11,
        0xa0386a271f3f9fef, 0xbd9b1b4ec0e7b44e, 0xafe528dceecd3496, 0x8dfff96a1c49f80b,
    ]),
    y: Fp::from_montgomery_limbs([
        0xb4a4753ac03c0c83, 0x68e69d18abcdcd75, 0xe3839b88f775b649, 0x803f949abf58f352,
        0x5f702679bd0bc15c, 0x85bf5d168ff298c2, 0x3f6ebd98c6c7976e, 0x20618af445e3e1b4,
        0x67d5598e54e64093, 0xb047283b504fed9e, 0x450cabfd70d87517, 0x47d628bf3f5addbe,
        0x0037ef3078cb4cca, 0x4e148d3c6b1c4908, 0xe256d3294fcfd837, 0x2aa1207bde3c01f3,
    ]),
};

/// g = ⟨P, P⟩ in its PF_p representation, Montgomery form.
pub(crate) const G: Fp = Fp::from_montgomery_limbs([
    0x170a46d2335c1685, 0xeac9e971e1007a58, 0x40e8f3df43ca4a73, 0x2646f81582642475,
    0x3af49bb4b36576d1, 0xd89e2d1472bf1afb, 0x27be882c2fd151e6, 0xaddedc858f88717c,
    0xd6d859bf16ac6c6f, 0x0e741a1b2d8eae58, 0x6faf7a0061c1f30d, 0x66dbd09a9b67e096,
    0x21f11c067d3b4f7d, 0x6152ba02c727c98e, 0xafd58891e86cb221, 0x59e93c6a6bd3baf4,
]);

/// n: bits of the shared secret value.
pub(crate) const SSV_BYTES: usize = 16;
