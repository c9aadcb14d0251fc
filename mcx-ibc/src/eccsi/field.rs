//! Arithmetic modulo the P-256 field prime
//! `p = 2^256 - 2^224 + 2^192 + 2^96 - 1`, specialised for speed.
//!
//! Elements are four little-endian 64-bit limbs in Montgomery form
//! (`a * 2^256 mod p`), always fully reduced below p. Every operation is
//! constant time: no branches or memory accesses depend on the values, only
//! fixed sequences of multiplications, additions with carries and masks.
//!
//! The reduction is the word-by-word Montgomery reduction that uses
//! `-p^-1 mod 2^64 = 1` and the zero limb of p (as in the `p256` crate's
//! `field64.rs`, which the unit tests cross-check against through
//! `crypto-bigint`).

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// p, little-endian limbs.
const P: [u64; 4] = [
    0xffff_ffff_ffff_ffff,
    0x0000_0000_ffff_ffff,
    0x0000_0000_0000_0000,
    0xffff_ffff_0000_0001,
];

/// `2^512 mod p`, to convert into Montgomery form.
const R2: Fe = Fe([
    0x0000_0000_0000_0003,
    0xffff_fffb_ffff_ffff,
    0xffff_ffff_ffff_fffe,
    0x0000_0004_ffff_fffd,
]);

/// A field element modulo p, in Montgomery form.
#[derive(Clone, Copy)]
pub(super) struct Fe([u64; 4]);

#[inline(always)]
const fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// `a - b - borrow` with `borrow` in {0, 1}; returns the new borrow in {0, 1}.
#[inline(always)]
const fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub((b as u128) + (borrow as u128));
    (t as u64, ((t >> 64) as u64) & 1)
}

/// `a * b + c + carry`, which always fits in 128 bits.
#[inline(always)]
const fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) * (b as u128) + (c as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// Subtracts p from `w + hi * 2^256` if that does not go negative. Input
/// below 2p, output below p.
#[inline(always)]
const fn sub_p_if_ge(w: [u64; 4], hi: u64) -> [u64; 4] {
    let (r0, b) = sbb(w[0], P[0], 0);
    let (r1, b) = sbb(w[1], P[1], b);
    let (r2, b) = sbb(w[2], P[2], b);
    let (r3, b) = sbb(w[3], P[3], b);
    let (_, b) = sbb(hi, 0, b);
    // b = 1: the subtraction went negative, keep w.
    let keep = 0u64.wrapping_sub(b);
    [
        (w[0] & keep) | (r0 & !keep),
        (w[1] & keep) | (r1 & !keep),
        (w[2] & keep) | (r2 & !keep),
        (w[3] & keep) | (r3 & !keep),
    ]
}

/// Montgomery reduction of the 512-bit `w` (below `p * 2^256`): `w / 2^256
/// mod p`.
#[inline(always)]
const fn montgomery_reduce(w: [u64; 8]) -> Fe {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = w;

    let (a1, carry) = mac(a0, P[1], a1, a0);
    let (a2, carry) = adc(a2, 0, carry);
    let (a3, carry) = mac(a0, P[3], a3, carry);
    let (a4, carry2) = adc(a4, 0, carry);

    let (a2, carry) = mac(a1, P[1], a2, a1);
    let (a3, carry) = adc(a3, 0, carry);
    let (a4, carry) = mac(a1, P[3], a4, carry);
    let (a5, carry2) = adc(a5, carry2, carry);

    let (a3, carry) = mac(a2, P[1], a3, a2);
    let (a4, carry) = adc(a4, 0, carry);
    let (a5, carry) = mac(a2, P[3], a5, carry);
    let (a6, carry2) = adc(a6, carry2, carry);

    let (a4, carry) = mac(a3, P[1], a4, a3);
    let (a5, carry) = adc(a5, 0, carry);
    let (a6, carry) = mac(a3, P[3], a6, carry);
    let (a7, a8) = adc(a7, carry2, carry);

    Fe(sub_p_if_ge([a4, a5, a6, a7], a8))
}

impl Fe {
    /// 0.
    pub(super) const ZERO: Self = Self([0; 4]);
    /// 1, that is `2^256 mod p` in Montgomery form.
    pub(super) const ONE: Self = Self([
        0x0000_0000_0000_0001,
        0xffff_ffff_0000_0000,
        0xffff_ffff_ffff_ffff,
        0x0000_0000_ffff_fffe,
    ]);

    /// Decodes 32 big-endian octets; `None` unless the value is below p.
    ///
    /// Constant time except for the final `Option`.
    pub(super) fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let mut w = [0u64; 4];
        for (limb, chunk) in w.iter_mut().rev().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *limb = u64::from_be_bytes(b);
        }
        // Below p iff w - p borrows.
        let (_, b) = sbb(w[0], P[0], 0);
        let (_, b) = sbb(w[1], P[1], b);
        let (_, b) = sbb(w[2], P[2], b);
        let (_, b) = sbb(w[3], P[3], b);
        if b == 1 { Some(Self(w).mul(&R2)) } else { None }
    }

    /// Encodes as 32 big-endian octets (the canonical integer below p).
    pub(super) fn to_bytes(self) -> [u8; 32] {
        let Self(w) = montgomery_reduce([self.0[0], self.0[1], self.0[2], self.0[3], 0, 0, 0, 0]);
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(w.iter().rev()) {
            chunk.copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// `self + rhs`.
    #[inline(always)]
    pub(super) const fn add(&self, rhs: &Self) -> Self {
        let (w0, c) = adc(self.0[0], rhs.0[0], 0);
        let (w1, c) = adc(self.0[1], rhs.0[1], c);
        let (w2, c) = adc(self.0[2], rhs.0[2], c);
        let (w3, c) = adc(self.0[3], rhs.0[3], c);
        Self(sub_p_if_ge([w0, w1, w2, w3], c))
    }

    /// `2 * self`.
    #[inline(always)]
    pub(super) const fn double(&self) -> Self {
        self.add(self)
    }

    /// `self - rhs`.
    #[inline(always)]
    pub(super) const fn sub(&self, rhs: &Self) -> Self {
        let (w0, b) = sbb(self.0[0], rhs.0[0], 0);
        let (w1, b) = sbb(self.0[1], rhs.0[1], b);
        let (w2, b) = sbb(self.0[2], rhs.0[2], b);
        let (w3, b) = sbb(self.0[3], rhs.0[3], b);
        // Went negative: add p back.
        let mask = 0u64.wrapping_sub(b);
        let (w0, c) = adc(w0, P[0] & mask, 0);
        let (w1, c) = adc(w1, P[1] & mask, c);
        let (w2, c) = adc(w2, P[2] & mask, c);
        let (w3, _) = adc(w3, P[3] & mask, c);
        Self([w0, w1, w2, w3])
    }

    /// `-self`.
    #[inline(always)]
    pub(super) const fn neg(&self) -> Self {
        Self::ZERO.sub(self)
    }

    /// `self * rhs`.
    #[inline(always)]
    pub(super) const fn mul(&self, rhs: &Self) -> Self {
        let [a0, a1, a2, a3] = self.0;
        let [b0, b1, b2, b3] = rhs.0;

        let (w0, c) = mac(a0, b0, 0, 0);
        let (w1, c) = mac(a0, b1, 0, c);
        let (w2, c) = mac(a0, b2, 0, c);
        let (w3, w4) = mac(a0, b3, 0, c);

        let (w1, c) = mac(a1, b0, w1, 0);
        let (w2, c) = mac(a1, b1, w2, c);
        let (w3, c) = mac(a1, b2, w3, c);
        let (w4, w5) = mac(a1, b3, w4, c);

        let (w2, c) = mac(a2, b0, w2, 0);
        let (w3, c) = mac(a2, b1, w3, c);
        let (w4, c) = mac(a2, b2, w4, c);
        let (w5, w6) = mac(a2, b3, w5, c);

        let (w3, c) = mac(a3, b0, w3, 0);
        let (w4, c) = mac(a3, b1, w4, c);
        let (w5, c) = mac(a3, b2, w5, c);
        let (w6, w7) = mac(a3, b3, w6, c);

        montgomery_reduce([w0, w1, w2, w3, w4, w5, w6, w7])
    }

    /// `self^2`, with the cross products computed once.
    #[inline(always)]
    pub(super) const fn square(&self) -> Self {
        let [a0, a1, a2, a3] = self.0;

        let (w1, c) = mac(a0, a1, 0, 0);
        let (w2, c) = mac(a0, a2, 0, c);
        let (w3, w4) = mac(a0, a3, 0, c);
        let (w3, c) = mac(a1, a2, w3, 0);
        let (w4, w5) = mac(a1, a3, w4, c);
        let (w5, w6) = mac(a2, a3, w5, 0);

        let w7 = w6 >> 63;
        let w6 = (w6 << 1) | (w5 >> 63);
        let w5 = (w5 << 1) | (w4 >> 63);
        let w4 = (w4 << 1) | (w3 >> 63);
        let w3 = (w3 << 1) | (w2 >> 63);
        let w2 = (w2 << 1) | (w1 >> 63);
        let w1 = w1 << 1;

        let (w0, c) = mac(a0, a0, 0, 0);
        let (w1, c) = adc(w1, 0, c);
        let (w2, c) = mac(a1, a1, w2, c);
        let (w3, c) = adc(w3, 0, c);
        let (w4, c) = mac(a2, a2, w4, c);
        let (w5, c) = adc(w5, 0, c);
        let (w6, c) = mac(a3, a3, w6, c);
        let (w7, _) = adc(w7, 0, c);

        montgomery_reduce([w0, w1, w2, w3, w4, w5, w6, w7])
    }

    /// `self^(2^n)`.
    #[inline(always)]
    fn sqn(&self, n: u32) -> Self {
        let mut t = *self;
        for _ in 0..n {
            t = t.square();
        }
        t
    }

    /// `self^-1` by Fermat, `self^(p-2)`, with a fixed addition chain
    /// (255 squarings, 12 multiplications). Maps 0 to 0.
    pub(super) fn invert(&self) -> Self {
        // x_k = self^(2^k - 1)
        let x1 = *self;
        let x2 = x1.square().mul(&x1);
        let x3 = x2.square().mul(&x1);
        let x6 = x3.sqn(3).mul(&x3);
        let x12 = x6.sqn(6).mul(&x6);
        let x15 = x12.sqn(3).mul(&x3);
        let x30 = x15.sqn(15).mul(&x15);
        let x32 = x30.sqn(2).mul(&x2);
        // p - 2 = 1{32} 0{31} 1 0{96} 1{94} 0 1 (most significant bit first).
        let t = x32.sqn(32).mul(&x1);
        let t = t.sqn(96);
        let t = t.sqn(32).mul(&x32);
        let t = t.sqn(32).mul(&x32);
        let t = t.sqn(30).mul(&x30);
        t.sqn(2).mul(&x1)
    }

    /// Whether `self` is 0.
    #[inline(always)]
    pub(super) fn is_zero(&self) -> Choice {
        (self.0[0] | self.0[1] | self.0[2] | self.0[3]).ct_eq(&0)
    }
}

impl ConditionallySelectable for Fe {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self([
            u64::conditional_select(&a.0[0], &b.0[0], choice),
            u64::conditional_select(&a.0[1], &b.0[1], choice),
            u64::conditional_select(&a.0[2], &b.0[2], choice),
            u64::conditional_select(&a.0[3], &b.0[3], choice),
        ])
    }
}

impl ConstantTimeEq for Fe {
    #[inline(always)]
    fn ct_eq(&self, other: &Self) -> Choice {
        // Both are fully reduced, so equal values have equal limbs.
        self.0[0].ct_eq(&other.0[0])
            & self.0[1].ct_eq(&other.0[1])
            & self.0[2].ct_eq(&other.0[2])
            & self.0[3].ct_eq(&other.0[3])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crypto_bigint::{NonZero, Odd, U256};
    use proptest::prelude::*;

    const P_HEX: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";

    fn p() -> U256 {
        U256::from_be_hex(P_HEX)
    }

    fn to_u256(fe: Fe) -> U256 {
        U256::from_be_slice(&fe.to_bytes())
    }

    fn from_u256(u: &U256) -> Fe {
        let mut b = [0u8; 32];
        b.copy_from_slice(&u.to_be_bytes());
        Fe::from_bytes(&b).unwrap()
    }

    /// Values below p, with the edges over-represented.
    fn element() -> impl Strategy<Value = U256> {
        prop_oneof![
            any::<[u8; 32]>()
                .prop_map(|b| U256::from_be_slice(&b).rem(&NonZero::new(p()).unwrap())),
            Just(U256::ZERO),
            Just(U256::ONE),
            Just(p().wrapping_sub(&U256::ONE)),
            Just(p().wrapping_sub(&U256::from_u8(2))),
            Just(U256::ONE.shl(255)),
            Just(U256::MAX.shr(32)),
        ]
    }

    #[test]
    fn constants() {
        assert_eq!(to_u256(Fe::ONE), U256::ONE);
        assert_eq!(to_u256(Fe::ZERO), U256::ZERO);
        let mut p_bytes = [0u8; 32];
        p_bytes.copy_from_slice(&p().to_be_bytes());
        assert!(Fe::from_bytes(&p_bytes).is_none());
        assert!(Fe::from_bytes(&[0xff; 32]).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_reference(a in element(), b in element()) {
            let n = NonZero::new(p()).unwrap();
            let (fa, fb) = (from_u256(&a), from_u256(&b));
            prop_assert_eq!(to_u256(fa), a);
            prop_assert_eq!(to_u256(fa.mul(&fb)), a.mul_mod(&b, &n));
            prop_assert_eq!(to_u256(fa.square()), a.mul_mod(&a, &n));
            prop_assert_eq!(to_u256(fa.add(&fb)), a.add_mod(&b, &n));
            prop_assert_eq!(to_u256(fa.sub(&fb)), a.sub_mod(&b, &n));
            prop_assert_eq!(to_u256(fa.neg()), U256::ZERO.sub_mod(&a, &n));
            prop_assert_eq!(bool::from(fa.ct_eq(&fb)), a == b);
            prop_assert_eq!(bool::from(fa.is_zero()), a == U256::ZERO);
            let inv = fa.invert();
            if a == U256::ZERO {
                prop_assert!(bool::from(inv.is_zero()));
            } else {
                let expected = a.invert_odd_mod(&Odd::new(p()).unwrap()).unwrap();
                prop_assert_eq!(to_u256(inv), expected);
                prop_assert!(bool::from(inv.mul(&fa).ct_eq(&Fe::ONE)));
            }
        }
    }
}
