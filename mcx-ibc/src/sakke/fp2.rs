//! F_p² = F_p[i]/(i² + 1), and its projective quotient PF_p = F_p²*/F_p*.
//!
//! RFC 6508 section 2.1 works in PF_p: an element a + b·i is only defined up
//! to a non-zero factor in F_p and is represented by the integer b/a mod p.
//! That lets the pairing skip the (p − 1) part of the final exponentiation.

use subtle::{Choice, ConditionallySelectable};

use super::fp::{Fp, Wide};

/// a + b·i.
#[derive(Clone, Copy)]
pub(crate) struct Fp2 {
    pub(crate) a: Fp,
    pub(crate) b: Fp,
}

impl Fp2 {
    pub(crate) const ONE: Self = Self {
        a: Fp::ONE,
        b: Fp::ZERO,
    };

    /// (a + bi)² = (a + b)(a − b) + 2ab·i: two multiplications.
    #[inline]
    pub(crate) fn square(&self) -> Self {
        let s = self.a.add(&self.b);
        let d = self.a.sub(&self.b);
        let ab = self.a.mul(&self.b);
        Self {
            a: s.mul(&d),
            b: ab.double(),
        }
    }

    /// Karatsuba product with lazy reduction: three 2048-bit products and
    /// two Montgomery reductions (instead of three of each).
    ///
    /// Each component is p² plus the products, in [0, 2p²) as
    /// [`Wide::reduce`] needs. Real: a0b0 + p² − a1b1, as a1b1 < p².
    /// Imaginary: s·t + p² − a0b0 − a1b1 with s = a0 + a1 − εp and
    /// t = b0 + b1 − δp reduced (ε, δ ∈ {0, 1}). Expanding: for ε = δ = 0
    /// it is a0b1 + a1b0 + p² ∈ [p², 2p²) (then a0 + a1 < p); for ε = 1,
    /// δ = 0 it is a0b1 + a1b0 + p(p − b0 − b1) ∈ [0, p²]; for ε = δ = 1
    /// it is (p − a0)(p − b1) + (p − a1)(p − b0) ∈ [0, 2p²).
    #[inline]
    pub(crate) fn mul(&self, rhs: &Self) -> Self {
        let t0 = self.a.mul_wide(&rhs.a);
        let t1 = self.b.mul_wide(&rhs.b);
        let t2 = self.a.add(&self.b).mul_wide(&rhs.a.add(&rhs.b));
        Self {
            a: Wide::p2_plus_minus(&[&t0], &[&t1]).reduce(),
            b: Wide::p2_plus_minus(&[&t2], &[&t0, &t1]).reduce(),
        }
    }

    /// The Karatsuba product with three full multiplications (the variant
    /// the lazy one is measured against).
    #[inline]
    pub(crate) fn mul_eager(&self, rhs: &Self) -> Self {
        let t0 = self.a.mul(&rhs.a);
        let t1 = self.b.mul(&rhs.b);
        let t2 = self.a.add(&self.b).mul(&rhs.a.add(&rhs.b));
        Self {
            a: t0.sub(&t1),
            b: t2.sub(&t0).sub(&t1),
        }
    }

    /// Multiplies by 1 + x·i (an element of PF_p in its normalised form):
    /// two multiplications.
    #[inline]
    pub(crate) fn mul_by_one_plus(&self, x: &Fp) -> Self {
        Self {
            a: self.a.sub(&self.b.mul(x)),
            b: self.b.add(&self.a.mul(x)),
        }
    }

    /// The PF_p representation b/a (RFC 6508 section 2.1), in constant time.
    pub(crate) fn to_projective_ratio(&self) -> Fp {
        self.b.mul(&self.a.invert())
    }
}

impl ConditionallySelectable for Fp2 {
    fn conditional_select(x: &Self, y: &Self, choice: Choice) -> Self {
        Self {
            a: Fp::conditional_select(&x.a, &y.a, choice),
            b: Fp::conditional_select(&x.b, &y.b, choice),
        }
    }
}

/// Inverts every element of `values` in place with one field inversion
/// (Montgomery's trick). Zeros stay zero only if no element is zero, so
/// callers pass non-zero values.
pub(crate) fn batch_invert(values: &mut [Fp]) {
    let mut prefix = Vec::with_capacity(values.len());
    let mut acc = Fp::ONE;
    for v in values.iter() {
        prefix.push(acc);
        acc = acc.mul(v);
    }
    let mut inv = acc.invert();
    for (v, before) in values.iter_mut().zip(prefix.iter()).rev() {
        let next_inv = inv.mul(v);
        *v = inv.mul(before);
        inv = next_inv;
    }
}

#[cfg(test)]
mod tests {
    //! The field code against crypto-bigint's modular arithmetic, on random
    //! operands and on the edge values 0, 1, 2, p − 2 and p − 1 (where
    //! every carry and the lazy reduction's bounds are tightest).
    use super::*;
    use crate::sakke::fp::{BYTES, P};
    use crypto_bigint::{NonZero, U1024};
    use proptest::prelude::*;

    fn modulus() -> NonZero<U1024> {
        NonZero::new(U1024::from_words(P)).expect("p is non-zero")
    }

    fn to_fp(v: &U1024) -> Fp {
        let bytes: [u8; BYTES] = v.to_be_bytes().into();
        Option::from(Fp::from_bytes(&bytes)).expect("below p")
    }

    fn to_int(v: &Fp) -> U1024 {
        U1024::from_be_slice(&v.to_bytes())
    }

    /// An operand below p: one of the edge values (selector below 5) or
    /// the random 1024 bits reduced mod p.
    fn operand() -> impl Strategy<Value = U1024> {
        (
            0u8..10,
            proptest::array::uniform32(any::<u32>()),
            proptest::array::uniform32(any::<u32>()),
        )
            .prop_map(|(sel, hi, lo)| {
                let p = U1024::from_words(P);
                match sel {
                    0 => U1024::ZERO,
                    1 => U1024::ONE,
                    2 => U1024::from_u8(2),
                    3 => p.wrapping_sub(&U1024::from_u8(2)),
                    4 => p.wrapping_sub(&U1024::ONE),
                    _ => {
                        let mut bytes = [0u8; BYTES];
                        for (i, w) in hi.iter().chain(lo.iter()).enumerate() {
                            bytes[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes()[2..]);
                        }
                        U1024::from_be_slice(&bytes).rem(&modulus())
                    }
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn fp_matches_crypto_bigint(a in operand(), b in operand()) {
            let p = modulus();
            let (x, y) = (to_fp(&a), to_fp(&b));
            prop_assert_eq!(to_int(&x.mul(&y)), a.mul_mod(&b, &p));
            prop_assert_eq!(to_int(&x.square()), a.mul_mod(&a, &p));
            prop_assert_eq!(to_int(&x.add(&y)), a.add_mod(&b, &p));
            prop_assert_eq!(to_int(&x.sub(&y)), a.sub_mod(&b, &p));
            prop_assert_eq!(to_int(&x.neg()), a.neg_mod(&p));
            prop_assert_eq!(to_int(&x.mul_wide(&y).reduce()), a.mul_mod(&b, &p));
            let inv: Option<U1024> = a.invert_odd_mod(&crypto_bigint::Odd::new(U1024::from_words(P)).expect("odd")).into();
            prop_assert_eq!(to_int(&x.invert()), inv.unwrap_or(U1024::ZERO));
        }

        #[test]
        fn fp2_product_matches_crypto_bigint(
            a0 in operand(), a1 in operand(), b0 in operand(), b1 in operand()
        ) {
            let p = modulus();
            let x = Fp2 { a: to_fp(&a0), b: to_fp(&a1) };
            let y = Fp2 { a: to_fp(&b0), b: to_fp(&b1) };
            let re = a0.mul_mod(&b0, &p).sub_mod(&a1.mul_mod(&b1, &p), &p);
            let im = a0.mul_mod(&b1, &p).add_mod(&a1.mul_mod(&b0, &p), &p);
            for v in [x.mul(&y), x.mul_eager(&y)] {
                prop_assert_eq!(to_int(&v.a), re);
                prop_assert_eq!(to_int(&v.b), im);
            }
            let sq = x.square();
            prop_assert_eq!(to_int(&sq.a), a0.mul_mod(&a0, &p).sub_mod(&a1.mul_mod(&a1, &p), &p));
            prop_assert_eq!(to_int(&sq.b), a0.mul_mod(&a1, &p).add_mod(&a0.mul_mod(&a1, &p), &p));
        }
    }

    /// The lazy product at its bounds: every component p − 1 gives the
    /// largest imaginary sum (close to 3p²) and a zero real part.
    #[test]
    fn lazy_product_at_the_bounds() {
        let m1 = Fp::ONE.neg();
        let x = Fp2 { a: m1, b: m1 };
        let v = x.mul(&x);
        // (−1 − i)² = 2i.
        assert_eq!(v.a.0, Fp::ZERO.0);
        assert_eq!(v.b.0, Fp::ONE.double().0);
        let y = Fp2 { a: m1, b: Fp::ZERO };
        let w = y.mul(&x);
        assert_eq!(w.a.0, Fp::ONE.0);
        assert_eq!(w.b.0, Fp::ONE.0);
    }
}

#[cfg(test)]
mod micro {
    use super::*;
    use crate::sakke::params::{BASE, G};
    use std::hint::black_box;
    use std::time::Instant;

    fn min_ns(mut f: impl FnMut()) -> f64 {
        let mut best = f64::MAX;
        for _ in 0..300 {
            let t = Instant::now();
            for _ in 0..50 {
                f();
            }
            best = best.min(t.elapsed().as_nanos() as f64 / 50.0);
        }
        best
    }

    /// Minimum times per operation, the variants interleaved (run with
    /// --ignored --nocapture): robust to a loaded machine.
    #[test]
    #[ignore]
    fn field_variants_min_time() {
        let x = Fp2 { a: G, b: BASE.x };
        let y = Fp2 {
            a: BASE.y,
            b: BASE.x,
        };
        for round in 0..3 {
            let mul = min_ns(|| {
                black_box(black_box(&G).mul(black_box(&BASE.x)));
            });
            let lazy = min_ns(|| {
                black_box(black_box(&x).mul(black_box(&y)));
            });
            let eager = min_ns(|| {
                black_box(black_box(&x).mul_eager(black_box(&y)));
            });
            let w = black_box(&G).mul_wide(black_box(&BASE.x));
            let wide = min_ns(|| {
                black_box(black_box(&G).mul_wide(black_box(&BASE.x)));
            });
            let red = min_ns(|| {
                black_box(black_box(&w).reduce());
            });
            println!("  mul_wide {wide:.0} ns, reduce {red:.0}");
            println!("round {round}: mul {mul:.0} ns, fp2 lazy {lazy:.0}, fp2 eager {eager:.0}");
        }
    }
}
