//! F_p² = F_p[i]/(i² + 1), and its projective quotient PF_p = F_p²*/F_p*.
//!
//! RFC 6508 section 2.1 works in PF_p: an element a + b·i is only defined up
//! to a non-zero factor in F_p and is represented by the integer b/a mod p.
//! That lets the pairing skip the (p − 1) part of the final exponentiation.

use subtle::{Choice, ConditionallySelectable};

use super::fp::Fp;

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

    /// Karatsuba product: three multiplications.
    #[inline]
    pub(crate) fn mul(&self, rhs: &Self) -> Self {
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
