//! Arithmetic in F_p for the 1024-bit prime of RFC 6509 parameter set 1.
//!
//! Elements are kept in Montgomery form (x·2^1024 mod p) as sixteen 64-bit
//! limbs, least significant first, always fully reduced below p. Every
//! operation runs in time independent of the values: no branches or memory
//! indices depend on limb contents.

use crypto_bigint::{Odd, U1024};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeLess, CtOption};

/// Number of 64-bit limbs in an element.
pub(crate) const LIMBS: usize = 16;
/// Octets in the big-endian encoding of an element.
pub(crate) const BYTES: usize = 128;

/// The prime p of RFC 6509 Appendix A (little-endian limbs).
pub(crate) const P: [u64; LIMBS] = [
    0x666d807afea85feb,
    0x80c5df10ac7ace87,
    0xfce3e82389857db0,
    0x9f94d6af56971f1f,
    0xa7cf3c521c3c09aa,
    0xb6aff4a831852a82,
    0x512ac5cd65681ce1,
    0xe26c6487326b4cd4,
    0x356d27f4a666a6d0,
    0xe791b39ff7c88a19,
    0x228730d531a59cb0,
    0xf40aab27e2fc0f1b,
    0xbe9ae358b3e01a2e,
    0x416c0ce19cb48261,
    0x65c61198dad0657a,
    0x997abb1f0a563fda,
];
/// 2^2048 mod p: multiplying by it enters Montgomery form.
const R2: [u64; LIMBS] = [
    0xe199c8ceed17b0a1,
    0x7ffd8b4be3620f7f,
    0xca865d5f4f76e245,
    0x623ff8dc27ecf5cb,
    0x229900e1d19bb697,
    0xed6aef26ea40c71f,
    0xa3aed42cc906365c,
    0x17d461b69eab6451,
    0x2009367d7d666da9,
    0x8bcad1dcb63c1d56,
    0x5a126231c31a92dc,
    0x5fb41b0eb8d94c5b,
    0xc113d394843f623c,
    0x5d8d8e74f159f1eb,
    0xae4ba7edb5d48c14,
    0x191640b9698af16a,
];
/// 2^3072 mod p: corrects a plain-integer inverse back into Montgomery form.
const R3: [u64; LIMBS] = [
    0x90fca9b7a9a6fc4b,
    0x5420916d1e5677d8,
    0xcb12731402ea283a,
    0xd77b75d65ba08832,
    0x97a4e0591e8d9fc6,
    0x6e04d7a76f6fc767,
    0x897657f95e997256,
    0x6ef3e6f7a94505f1,
    0xd84e28babfa8c143,
    0x98704720c105719d,
    0x4d38d5afdd5f93c3,
    0x349ba0c687bf6d16,
    0x41ac3193420b4c1b,
    0x0dddaec38fed02e1,
    0x969112982b6316a9,
    0x813851f6d69d862f,
];
/// 2^1024 mod p: the element 1 in Montgomery form.
const ONE: [u64; LIMBS] = [
    0x99927f850157a015,
    0x7f3a20ef53853178,
    0x031c17dc767a824f,
    0x606b2950a968e0e0,
    0x5830c3ade3c3f655,
    0x49500b57ce7ad57d,
    0xaed53a329a97e31e,
    0x1d939b78cd94b32b,
    0xca92d80b5999592f,
    0x186e4c60083775e6,
    0xdd78cf2ace5a634f,
    0x0bf554d81d03f0e4,
    0x41651ca74c1fe5d1,
    0xbe93f31e634b7d9e,
    0x9a39ee67252f9a85,
    0x668544e0f5a9c025,
];
/// -p^-1 mod 2^64, the Montgomery reduction constant.
const INV: u64 = 0x290420077c8f2f3d;

/// An element of F_p in Montgomery form.
#[derive(Clone, Copy)]
pub(crate) struct Fp(pub(crate) [u64; LIMBS]);

#[inline(always)]
const fn mac(acc: u64, a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (acc as u128) + (a as u128) * (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
const fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
const fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub((b as u128) + ((borrow >> 63) as u128));
    (t as u64, (t >> 64) as u64)
}

/// Subtracts p from `t` (with `hi` as a 17th limb) if the result is not
/// negative, returning the 17 limbs.
#[inline(always)]
fn sub_p_if_not_below(t: &[u64; LIMBS], hi: u64) -> ([u64; LIMBS], u64) {
    let mut d = [0u64; LIMBS];
    let mut borrow = 0;
    for i in 0..LIMBS {
        (d[i], borrow) = sbb(t[i], P[i], borrow);
    }
    let (d_hi, borrow) = sbb(hi, 0, borrow);
    // borrow is all-ones when t < p: keep t, else keep t - p.
    let mut out = [0u64; LIMBS];
    for i in 0..LIMBS {
        out[i] = (t[i] & borrow) | (d[i] & !borrow);
    }
    (out, (hi & borrow) | (d_hi & !borrow))
}

/// Subtracts p from `t` (with `hi` as a 17th limb) if the result is not
/// negative; `t` must be below 2p.
#[inline(always)]
fn reduce_once(t: &[u64; LIMBS], hi: u64) -> [u64; LIMBS] {
    sub_p_if_not_below(t, hi).0
}

/// Limbs of a product of two elements before Montgomery reduction.
pub(crate) const WIDE: usize = 2 * LIMBS;

/// p² (a product of two elements is below it).
const P_SQUARED: [u64; WIDE] = square_const(&P);
/// 2p², below 2^2048 (p is 0.6·2^1024).
const TWO_P_SQUARED: [u64; WIDE] = double_const(&P_SQUARED);

/// 2a for a constant whose top bit is clear, at compile time.
const fn double_const(a: &[u64; WIDE]) -> [u64; WIDE] {
    let mut t = [0u64; WIDE];
    let mut i = 0;
    while i < WIDE {
        t[i] = a[i] << 1;
        if i > 0 {
            t[i] |= a[i - 1] >> 63;
        }
        i += 1;
    }
    assert!(a[WIDE - 1] >> 63 == 0, "2p² must fit in 2048 bits");
    t
}

/// The square of a constant, at compile time (schoolbook).
const fn square_const(a: &[u64; LIMBS]) -> [u64; WIDE] {
    let mut t = [0u64; WIDE];
    let mut i = 0;
    while i < LIMBS {
        let mut carry = 0;
        let mut j = 0;
        while j < LIMBS {
            (t[i + j], carry) = mac(t[i + j], a[i], a[j], carry);
            j += 1;
        }
        t[i + LIMBS] = carry;
        i += 1;
    }
    t
}

/// A product (or sum of products) of elements kept at double width so that
/// several can be combined before one Montgomery reduction ("lazy
/// reduction"): an F_p² product reduces its two components instead of
/// three products. Values stay below 2p² < 2^2048.
#[derive(Clone, Copy)]
pub(crate) struct Wide {
    t: [u64; WIDE],
}

impl Wide {
    /// The sum of two products of reduced elements (below 2p²).
    #[inline(always)]
    pub(crate) fn sum(x: &Self, y: &Self) -> Self {
        let mut t = [0u64; WIDE];
        let mut carry = 0;
        for i in 0..WIDE {
            (t[i], carry) = adc(x.t[i], y.t[i], carry);
        }
        debug_assert_eq!(carry, 0, "lazy sum outside [0, 2^2048)");
        Self { t }
    }

    /// The sum of three products of reduced elements, brought below 2p²
    /// by subtracting p² when it is not below p² (in constant time): the
    /// plain sum is below 3p², which can exceed 2^2048 (p is 0.6·2^1024),
    /// so it is kept in 33 limbs until the subtraction.
    #[inline(always)]
    pub(crate) fn sum3(x: &Self, y: &Self, z: &Self) -> Self {
        Self::sum_below(&[x, y, z], &P_SQUARED)
    }

    /// The sum of four products of reduced elements, brought below 2p² by
    /// subtracting 2p² when it is not below 2p² (the plain sum is below
    /// 4p²), in constant time.
    #[inline(always)]
    pub(crate) fn sum4(w: &Self, x: &Self, y: &Self, z: &Self) -> Self {
        Self::sum_below(&[w, x, y, z], &TWO_P_SQUARED)
    }

    /// Σ terms in 33 limbs, minus `bound` unless the sum is below it.
    #[inline(always)]
    fn sum_below(terms: &[&Self], bound: &[u64; WIDE]) -> Self {
        let mut t = [0u64; WIDE];
        let mut top = 0u128;
        for i in 0..WIDE {
            let mut acc = top;
            for term in terms {
                acc += u128::from(term.t[i]);
            }
            t[i] = acc as u64;
            top = acc >> 64;
        }
        let mut d = [0u64; WIDE];
        let mut borrow = 0;
        for i in 0..WIDE {
            (d[i], borrow) = sbb(t[i], bound[i], borrow);
        }
        let (_, borrow) = sbb(top as u64, 0, borrow);
        // borrow is all-ones when the sum is below the bound: keep it.
        for i in 0..WIDE {
            t[i] = (t[i] & borrow) | (d[i] & !borrow);
        }
        Self { t }
    }

    /// p² + Σ plus − Σ minus in one pass over the limbs. The caller
    /// guarantees the result lies in [0, 2p²) (see [`super::fp2::Fp2::mul`]);
    /// it is congruent to the plain sum, as p² ≡ 0.
    #[inline(always)]
    pub(crate) fn p2_plus_minus(plus: &[&Self], minus: &[&Self]) -> Self {
        let mut t = [0u64; WIDE];
        // A signed carry of a few units either way.
        let mut carry: i128 = 0;
        for i in 0..WIDE {
            let mut acc = carry + i128::from(P_SQUARED[i]);
            for w in plus {
                acc += i128::from(w.t[i]);
            }
            for w in minus {
                acc -= i128::from(w.t[i]);
            }
            t[i] = acc as u64;
            carry = acc >> 64;
        }
        debug_assert_eq!(carry, 0, "lazy sum outside [0, 2^2048)");
        Self { t }
    }

    /// Montgomery reduction to a fully reduced element; the value must be
    /// below 2p². Each row adds m·p to clear the lowest remaining limb; the
    /// result (t + M·p)/2^1024 is below 2p²/2^1024 + p < 2.2p (p is
    /// 0.6·2^1024, so 2p² exceeds p·2^1024 and one subtraction is not
    /// enough), and two conditional subtractions bring it below p.
    #[inline(always)]
    pub(crate) fn reduce(&self) -> Fp {
        let mut t = self.t;
        let mut top = 0u64;
        for i in 0..LIMBS {
            let m = t[i].wrapping_mul(INV);
            let mut carry = 0;
            for j in 0..LIMBS {
                (t[i + j], carry) = mac(t[i + j], m, P[j], carry);
            }
            (t[i + LIMBS], top) = adc(t[i + LIMBS], carry, top);
        }
        let mut hi = [0u64; LIMBS];
        hi.copy_from_slice(&t[LIMBS..]);
        let (once, hi_once) = sub_p_if_not_below(&hi, top);
        Fp(sub_p_if_not_below(&once, hi_once).0)
    }
}

/// One CIOS step: t = (t + a·b_i + m·p) / 2^64 with m chosen to clear
/// the low limb. Returns the new top word.
#[inline(always)]
fn mul_row(t: &mut [u64; LIMBS], t_hi: u64, a: &[u64; LIMBS], bi: u64) -> u64 {
    let mut carry = 0;
    for j in 0..LIMBS {
        (t[j], carry) = mac(t[j], a[j], bi, carry);
    }
    let (t16, t17) = adc(t_hi, carry, 0);
    let m = t[0].wrapping_mul(INV);
    let (_, mut carry) = mac(t[0], m, P[0], 0);
    for j in 1..LIMBS {
        (t[j - 1], carry) = mac(t[j], m, P[j], carry);
    }
    let (lo, c2) = adc(t16, carry, 0);
    t[LIMBS - 1] = lo;
    t17 + c2
}

impl Fp {
    /// The full 2048-bit product, not reduced (operand scanning).
    #[inline(always)]
    pub(crate) fn mul_wide(&self, rhs: &Self) -> Wide {
        let mut t = [0u64; WIDE];
        for i in 0..LIMBS {
            let mut carry = 0;
            for j in 0..LIMBS {
                (t[i + j], carry) = mac(t[i + j], self.0[j], rhs.0[i], carry);
            }
            t[i + LIMBS] = carry;
        }
        Wide { t }
    }

    pub(crate) const ZERO: Self = Self([0; LIMBS]);
    pub(crate) const ONE: Self = Self(ONE);

    /// Builds an element from Montgomery-form limbs known to be below p.
    pub(crate) const fn from_montgomery_limbs(limbs: [u64; LIMBS]) -> Self {
        Self(limbs)
    }

    /// Decodes a 128-octet big-endian integer; `None` unless it is below p.
    pub(crate) fn from_bytes(bytes: &[u8; BYTES]) -> CtOption<Self> {
        let mut limbs = [0u64; LIMBS];
        for (i, chunk) in bytes.rchunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            limbs[i] = u64::from_be_bytes(w);
        }
        let below_p = U1024::from_words(limbs).ct_lt(&U1024::from_words(P));
        CtOption::new(Self(limbs).mul(&Self(R2)), below_p)
    }

    /// Encodes as a 128-octet big-endian integer.
    pub(crate) fn to_bytes(&self) -> [u8; BYTES] {
        let plain = self.to_canonical_limbs();
        let mut out = [0u8; BYTES];
        for (i, chunk) in out.rchunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&plain[i].to_be_bytes());
        }
        out
    }

    /// Leaves Montgomery form: the plain integer's limbs.
    pub(crate) fn to_canonical_limbs(&self) -> [u64; LIMBS] {
        let mut one = [0u64; LIMBS];
        one[0] = 1;
        self.mul(&Self(one)).0
    }

    #[inline]
    pub(crate) fn add(&self, rhs: &Self) -> Self {
        let mut t = [0u64; LIMBS];
        let mut carry = 0;
        for i in 0..LIMBS {
            (t[i], carry) = adc(self.0[i], rhs.0[i], carry);
        }
        Self(reduce_once(&t, carry))
    }

    #[inline]
    pub(crate) fn double(&self) -> Self {
        self.add(self)
    }

    #[inline]
    pub(crate) fn sub(&self, rhs: &Self) -> Self {
        let mut t = [0u64; LIMBS];
        let mut borrow = 0;
        for i in 0..LIMBS {
            (t[i], borrow) = sbb(self.0[i], rhs.0[i], borrow);
        }
        // On underflow add p back; borrow is then all-ones and masks p in.
        let mut carry = 0;
        for i in 0..LIMBS {
            (t[i], carry) = adc(t[i], P[i] & borrow, carry);
        }
        Self(t)
    }

    #[inline]
    pub(crate) fn neg(&self) -> Self {
        Self::ZERO.sub(self)
    }

    /// Montgomery multiplication (CIOS), result fully reduced.
    ///
    /// The outer loop stays rolled while each 16-limb row is a separate
    /// always-inlined step that LLVM unrolls fully; that shape measured
    /// fastest of the portable variants tried (separate and fused CIOS
    /// passes, product scanning, separate product and reduction).
    #[inline]
    pub(crate) fn mul(&self, rhs: &Self) -> Self {
        let mut t = [0u64; LIMBS];
        let mut t_hi = 0u64;
        for &bi in rhs.0.iter() {
            t_hi = mul_row(&mut t, t_hi, &self.0, bi);
        }
        Self(reduce_once(&t, t_hi))
    }

    /// Montgomery squaring. A dedicated squaring (136 word products, not
    /// 256, then a separate reduction) measured no faster: the separate
    /// reduction's serial chain of m = t_i·(−p⁻¹) costs what the products
    /// save (docs/ibc.md).
    #[inline]
    pub(crate) fn square(&self) -> Self {
        self.mul(self)
    }

    /// Multiplicative inverse in constant time (Bernstein–Yang safegcd);
    /// zero maps to zero.
    pub(crate) fn invert(&self) -> Self {
        let modulus = Odd::new(U1024::from_words(P)).expect("p is odd");
        let inv = U1024::from_words(self.0).invert_odd_mod(&modulus);
        let inv: Option<U1024> = inv.into();
        // x·R has inverse x^-1·R^-1; one Montgomery product with R^3 gives x^-1·R.
        let limbs = inv.map(|v| v.to_words()).unwrap_or([0; LIMBS]);
        let is_zero = self.is_zero();
        let r = Self(limbs).mul(&Self(R3));
        Self::conditional_select(&r, &Self::ZERO, is_zero)
    }

    /// Whether this is a non-zero square (Legendre symbol 1), in constant
    /// time (crypto-bigint's constant-time Jacobi symbol). The Montgomery
    /// form x·R has the same symbol as x: R = 2^1024 is a square.
    pub(crate) fn is_square(&self) -> Choice {
        let p = Odd::new(U1024::from_words(P)).expect("p is odd");
        let symbol = U1024::from_words(self.0).jacobi_symbol(&p);
        symbol.ct_eq(&crypto_bigint::JacobiSymbol::One)
    }

    /// [`Fp::is_square`] in variable time, for public values.
    pub(crate) fn is_square_vartime(&self) -> bool {
        super::jacobi::jacobi_symbol_vartime(&self.0, &P) == 1
    }

    /// self^((p+1)/4): a square root of self when self is a square (p ≡ 3
    /// mod 4). Sliding windows of up to 5 bits over the exponent, which is
    /// a constant: the sequence of squarings and multiplications, and the
    /// table entries used, are the same for every self (constant time in
    /// self), and it takes about 90 multiplications fewer than fixed 4-bit
    /// windows.
    pub(crate) fn sqrt_candidate(&self) -> Self {
        // (p + 1)/4 is the group order q of RFC 6509.
        let e = super::params::Q;
        let bit = |i: usize| (e[i / 64] >> (i % 64)) & 1 == 1;
        // odd[j] = self^(2j + 1).
        let square = self.square();
        let mut odd = [*self; 16];
        for j in 1..16 {
            odd[j] = odd[j - 1].mul(&square);
        }
        let mut acc = Self::ONE;
        let mut i = LIMBS * 64;
        while i > 0 {
            if !bit(i - 1) {
                acc = acc.square();
                i -= 1;
                continue;
            }
            // The longest window e[i−1 .. j] of at most 5 bits ending in a 1.
            let mut j = i.saturating_sub(5);
            while !bit(j) {
                j += 1;
            }
            let mut value = 0usize;
            for k in (j..i).rev() {
                value = (value << 1) | usize::from(bit(k));
                acc = acc.square();
            }
            acc = acc.mul(&odd[value >> 1]);
            i = j;
        }
        acc
    }

    pub(crate) fn is_zero(&self) -> Choice {
        self.ct_eq(&Self::ZERO)
    }
}

impl ConstantTimeEq for Fp {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl ConditionallySelectable for Fp {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        let mut out = [0u64; LIMBS];
        for i in 0..LIMBS {
            out[i] = u64::conditional_select(&a.0[i], &b.0[i], choice);
        }
        Self(out)
    }
}

impl zeroize::Zeroize for Fp {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_hex(s: &str) -> Fp {
        let mut b = [0u8; BYTES];
        let raw = s.as_bytes();
        let start = BYTES * 2 - raw.len();
        let mut full = vec![b'0'; start];
        full.extend_from_slice(raw);
        for i in 0..BYTES {
            let hex = core::str::from_utf8(&full[2 * i..2 * i + 2]).unwrap_or("00");
            b[i] = u8::from_str_radix(hex, 16).unwrap_or(0);
        }
        Option::from(Fp::from_bytes(&b)).unwrap_or(Fp::ZERO)
    }

    #[test]
    fn one_round_trips_and_identities_hold() {
        let mut one = [0u8; BYTES];
        one[BYTES - 1] = 1;
        let x = Option::<Fp>::from(Fp::from_bytes(&one)).map(|v| v.0);
        assert_eq!(x, Some(ONE));
        let a = from_hex("123456789abcdef0fedcba9876543210deadbeef");
        let b = from_hex("997abb1f0a563fda65c61198dad0657a416c0ce19cb48261be9ae358b3e01a2e");
        assert_eq!(a.mul(&b).mul(&b.invert()).0, a.0);
        assert_eq!(a.square().0, a.mul(&a).0);
        assert_eq!(a.sub(&b).add(&b).0, a.0);
        assert_eq!(a.add(&a.neg()).0, Fp::ZERO.0);
        assert_eq!(Fp::ZERO.invert().0, Fp::ZERO.0);
        assert_eq!(from_hex("abc").to_bytes()[BYTES - 2..], [0x0a, 0xbc]);
    }

    /// Three products at the top of the range (p − 1 and the element
    /// whose Montgomery form is p − 1), where their plain sum exceeds
    /// 2^2048, and small ones: the lazy sum reduces to the sum of the
    /// reduced products.
    #[test]
    fn sums_of_three_and_four_products_match_reduced_sums() {
        let mut top = P;
        top[0] -= 1;
        let big = Fp(top);
        let big2 = big.neg().add(&Fp::ONE.neg());
        let a = from_hex("123456789abcdef0fedcba9876543210deadbeef");
        for (x, y, z) in [
            (big, big, big),
            (big, big2, big),
            (a, big, Fp::ZERO),
            (Fp::ZERO, Fp::ZERO, Fp::ONE),
            (a, a, a),
        ] {
            let lazy = Wide::sum3(&x.mul_wide(&x), &y.mul_wide(&big), &z.mul_wide(&z)).reduce();
            let plain = x.mul(&x).add(&y.mul(&big)).add(&z.mul(&z));
            assert_eq!(lazy.0, plain.0);
            // Four products reach 4p² with every operand p − 1.
            for w in [big, a, Fp::ZERO] {
                let lazy4 = Wide::sum4(
                    &x.mul_wide(&x),
                    &y.mul_wide(&big),
                    &z.mul_wide(&z),
                    &w.mul_wide(&big),
                )
                .reduce();
                assert_eq!(lazy4.0, plain.add(&w.mul(&big)).0);
            }
        }
    }

    /// Squares are squares and their roots come back (up to sign); 3 and
    /// −1 are not squares mod p (p ≡ 3 mod 4), −3 is.
    #[test]
    fn squares_and_square_roots() {
        let three = Fp::ONE.double().add(&Fp::ONE);
        assert!(!bool::from(three.is_square()));
        assert!(!bool::from(Fp::ONE.neg().is_square()));
        assert!(bool::from(three.neg().is_square()));
        assert!(!bool::from(Fp::ZERO.is_square()));
        let a = from_hex("123456789abcdef0fedcba9876543210deadbeef");
        let sq = a.square();
        assert!(bool::from(sq.is_square()));
        let root = sq.sqrt_candidate();
        assert!(root.0 == a.0 || root.0 == a.neg().0);
        assert!(!bool::from(sq.mul(&three).is_square()));
    }

    #[test]
    fn p_and_above_are_rejected() {
        let mut p_bytes = [0u8; BYTES];
        for (i, chunk) in p_bytes.rchunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&P[i].to_be_bytes());
        }
        assert!(bool::from(Fp::from_bytes(&p_bytes).is_none()));
        p_bytes[BYTES - 1] -= 1;
        assert!(bool::from(Fp::from_bytes(&p_bytes).is_some()));
        assert!(bool::from(Fp::from_bytes(&[0xff; BYTES]).is_none()));
    }

    #[test]
    fn square_of_large_values_matches_mul() {
        // p - 1 squared exercises every carry.
        let m1 = Fp::ONE.neg();
        assert_eq!(m1.square().0, Fp::ONE.0);
        assert_eq!(m1.mul(&m1).0, Fp::ONE.0);
    }
}
