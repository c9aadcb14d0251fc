//! The supersingular curve E: y² = x³ − 3x over F_p (RFC 6508 section 3.1).
//!
//! Points are handled in Jacobian coordinates (x = X/Z², y = Y/Z³, Z = 0 for
//! the point at infinity). Scalar multiplication by secret scalars uses fixed
//! windows with constant-time table scans, so neither timing nor memory
//! access depends on the scalar.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption};
use zeroize::Zeroize;

use super::fp::{BYTES, Fp, LIMBS};
use super::fp2::batch_invert;

/// Octets of an uncompressed point: 0x04 || x || y.
pub(crate) const POINT_BYTES: usize = 1 + 2 * BYTES;

/// Bits of window per table lookup.
const WINDOW: usize = 4;
/// Windows covering a 1024-bit scalar.
const WINDOWS: usize = 1024 / WINDOW;

/// A finite point with affine coordinates.
#[derive(Clone, Copy)]
pub(crate) struct Affine {
    pub(crate) x: Fp,
    pub(crate) y: Fp,
}

/// A point in Jacobian coordinates; Z = 0 is the point at infinity.
#[derive(Clone, Copy)]
pub(crate) struct Jacobian {
    pub(crate) x: Fp,
    pub(crate) y: Fp,
    pub(crate) z: Fp,
}

impl Zeroize for Jacobian {
    fn zeroize(&mut self) {
        self.x.zeroize();
        self.y.zeroize();
        self.z.zeroize();
    }
}

/// x³ − 3x.
fn curve_rhs(x: &Fp) -> Fp {
    x.square().sub(&Fp::ONE.double().add(&Fp::ONE)).mul(x)
}

/// y² == x³ − 3x.
fn on_curve(x: &Fp, y: &Fp) -> Choice {
    y.square().ct_eq(&curve_rhs(x))
}

/// c = (−3)^((p+1)/4), the square root of −3 that is itself a square.
static SQRT_MINUS_THREE: std::sync::LazyLock<Fp> =
    std::sync::LazyLock::new(|| Fp::ONE.double().add(&Fp::ONE).neg().sqrt_candidate());

impl Affine {
    /// Whether this (finite) point has order q, in constant time: one
    /// square root and one Legendre symbol (about 0.5 ms), not a scalar
    /// multiplication by q.
    ///
    /// E(F_p) is cyclic of order 4q (p + 1 = 4q), so the points of order q
    /// are 4·E(F_p) minus O. The 2-isogeny descent of y² = x(x² − 3)
    /// decides halving: a point (x, y) ≠ (0, 0) lies in 2·E(F_p) exactly
    /// when x is a square (the map (x, y) ↦ x mod squares is a
    /// homomorphism onto F_p*/F_p*², whose kernel is the only subgroup of
    /// index 2 of the cyclic group), i.e. when d = x² − 3 is one
    /// (y² = x·d with y ≠ 0), checked as s² = d for s = d^((p+1)/4). Its
    /// halves M then have x(M) + (−3)/x(M) = w for the root w of
    /// w² − 4x·w + 12 = 0 that is a square (the image of M under the
    /// 2-isogeny has x = w and lies in the kernel of the dual descent map,
    /// and 12 is not a square, so one root is), and the two halves'
    /// x-coordinates u₁, u₂ have u₁·u₂ = −3 = c² and u₁ + u₂ = w, so
    /// w + 2c = (u₁ + c)²/u₁ has the symbol of u₁: M ∈ 2·E(F_p) exactly when
    /// w + 2c is a square. With t = x + s the roots are w₁ = 2t and
    /// w₂ = 12/w₁, and (w₁ + 2c)(w₂ + 2c) = 8c·x, whose symbol is
    /// (2/p)(c/p)(x/p) = −1 (p ≡ 3 mod 8, c a square, x a square): so the
    /// symbol of the square root's w + 2c is that of w₁·(w₁ + 2c), i.e. of
    /// t·(t + c). `order_q_test_matches_multiplication_by_q` checks all
    /// this against [q]·point.
    pub(crate) fn has_order_q(&self) -> Choice {
        self.order_q_test(Fp::is_square)
    }

    /// [`Affine::has_order_q`] for a *public* point (the R of a SAKKE
    /// message, a KMS key): the Jacobi symbol in variable time
    /// (`jacobi.rs`, ~5 µs against ~120 µs in constant time).
    pub(crate) fn has_order_q_public(&self) -> Choice {
        self.order_q_test(|u| Choice::from(u8::from(u.is_square_vartime())))
    }

    fn order_q_test(&self, is_square: impl Fn(&Fp) -> Choice) -> Choice {
        let d = self.x.square().sub(&Fp::ONE.double().add(&Fp::ONE));
        let s = d.sqrt_candidate();
        let t = self.x.add(&s);
        let u = t.mul(&t.add(&SQRT_MINUS_THREE));
        !self.x.is_zero() & s.square().ct_eq(&d) & is_square(&u)
    }

    /// A point with this x, if x³ − 3x is a square (one of the two; for
    /// tests and their hooks, which search for points: variable time).
    pub(crate) fn lift_x(x: Fp) -> Option<Self> {
        let rhs = curve_rhs(&x);
        let y = rhs.sqrt_candidate();
        bool::from(y.square().ct_eq(&rhs)).then_some(Self { x, y })
    }

    /// A point of order 4: \[q\]S for the first point S (by x = 1, 2, …)
    /// whose \[q\]S has order 4 (E(F_p) is cyclic of order 4q, so \[q\]S
    /// has order dividing 4). For tests and their hooks: variable time.
    pub(crate) fn point_of_order_four() -> Self {
        let mut x = Fp::ZERO;
        loop {
            x = x.add(&Fp::ONE);
            let Some(s) = Self::lift_x(x) else {
                continue;
            };
            let t: Option<Self> = s.to_jacobian().mul(&super::params::Q).to_affine().into();
            if let Some(t) = t.filter(|t| !bool::from(t.y.is_zero())) {
                return t;
            }
        }
    }

    /// Decodes 0x04 || x || y; errors name what was wrong.
    pub(crate) fn from_bytes(bytes: &[u8], what: &'static str) -> Result<Self, crate::Error> {
        if bytes.len() != POINT_BYTES {
            return Err(crate::Error::InvalidLength {
                what,
                expected: POINT_BYTES,
                actual: bytes.len(),
            });
        }
        if bytes[0] != 0x04 {
            return Err(crate::Error::InvalidPointEncoding(what));
        }
        let mut xb = [0u8; BYTES];
        let mut yb = [0u8; BYTES];
        xb.copy_from_slice(&bytes[1..1 + BYTES]);
        yb.copy_from_slice(&bytes[1 + BYTES..]);
        let x = Option::<Fp>::from(Fp::from_bytes(&xb));
        let y = Option::<Fp>::from(Fp::from_bytes(&yb));
        match (x, y) {
            (Some(x), Some(y)) if bool::from(on_curve(&x, &y)) => Ok(Self { x, y }),
            _ => Err(crate::Error::PointNotOnCurve(what)),
        }
    }

    pub(crate) fn to_bytes(&self) -> [u8; POINT_BYTES] {
        let mut out = [0u8; POINT_BYTES];
        out[0] = 0x04;
        out[1..1 + BYTES].copy_from_slice(&self.x.to_bytes());
        out[1 + BYTES..].copy_from_slice(&self.y.to_bytes());
        out
    }

    pub(crate) fn to_jacobian(self) -> Jacobian {
        Jacobian {
            x: self.x,
            y: self.y,
            z: Fp::ONE,
        }
    }
}

impl ConditionallySelectable for Affine {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self {
            x: Fp::conditional_select(&a.x, &b.x, choice),
            y: Fp::conditional_select(&a.y, &b.y, choice),
        }
    }
}

impl ConditionallySelectable for Jacobian {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self {
            x: Fp::conditional_select(&a.x, &b.x, choice),
            y: Fp::conditional_select(&a.y, &b.y, choice),
            z: Fp::conditional_select(&a.z, &b.z, choice),
        }
    }
}

/// Intermediate values of a doubling that the Miller loop reuses for its
/// tangent line.
pub(crate) struct DoublingParts {
    /// 3(X² − Z⁴), the tangent slope's numerator.
    pub(crate) alpha: Fp,
    /// Z².
    pub(crate) delta: Fp,
    /// Y².
    pub(crate) gamma: Fp,
}

impl Jacobian {
    pub(crate) const IDENTITY: Self = Self {
        x: Fp::ONE,
        y: Fp::ONE,
        z: Fp::ZERO,
    };

    pub(crate) fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    /// Doubling for a = −3 ("dbl-2001-b", 3M + 5S); infinity stays infinity.
    pub(crate) fn double(&self) -> Self {
        self.double_with_parts().0
    }

    pub(crate) fn double_with_parts(&self) -> (Self, DoublingParts) {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2 = gamma.square();
        let y3 = alpha
            .mul(&beta4.sub(&x3))
            .sub(&gamma2.double().double().double());
        (
            Self {
                x: x3,
                y: y3,
                z: z3,
            },
            DoublingParts {
                alpha,
                delta,
                gamma,
            },
        )
    }

    /// General addition handling every special case in constant time:
    /// either input at infinity, P + P and P + (−P).
    pub(crate) fn add(&self, rhs: &Self) -> Self {
        let (sum, h_and_r_zero) = self.add_unchecked(rhs);
        let same = h_and_r_zero & !self.is_identity() & !rhs.is_identity();
        let out = Self::conditional_select(&sum, &self.double(), same);
        let out = Self::conditional_select(&out, rhs, self.is_identity());
        Self::conditional_select(&out, self, rhs.is_identity())
    }

    /// Addition "add-2007-bl" (11M + 5S) of two finite points that are
    /// neither equal nor opposite; also returns whether they were equal
    /// (so that [`Self::add`] can repair that case).
    pub(crate) fn add_unchecked(&self, rhs: &Self) -> (Self, Choice) {
        let z1z1 = self.z.square();
        let z2z2 = rhs.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = rhs.x.mul(&z1z1);
        let s1 = self.y.mul(&rhs.z).mul(&z2z2);
        let s2 = rhs.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let i = h.double().square();
        let j = h.mul(&i);
        let r = s2.sub(&s1).double();
        let v = u1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&j).double());
        let z3 = self.z.add(&rhs.z).square().sub(&z1z1).sub(&z2z2).mul(&h);
        let sum = Self {
            x: x3,
            y: y3,
            z: z3,
        };
        (sum, h.is_zero() & r.is_zero())
    }

    /// Mixed addition with an affine point ("madd-2007-bl", 7M + 4S).
    ///
    /// Handles `self` at infinity and `skip` (add nothing) in constant time.
    /// It does not handle self == ±rhs: callers guarantee that cannot occur
    /// (see [`FixedBaseTable::mul`]).
    pub(crate) fn add_affine_unchecked(&self, rhs: &Affine, skip: Choice) -> Self {
        let (sum, _) = self.add_affine_with_parts(rhs);
        let sum = Self::conditional_select(&sum, &rhs.to_jacobian(), self.is_identity());
        Self::conditional_select(&sum, self, skip)
    }

    /// The mixed addition of two finite points that are neither equal nor
    /// opposite, and r = 2(y_F·Z³ − Y), the numerator of the chord's slope
    /// r/Z₃ (Z₃ = 2·Z·(x_F·Z² − X)), which the Miller loop reuses for its
    /// chord line.
    pub(crate) fn add_affine_with_parts(&self, rhs: &Affine) -> (Self, Fp) {
        let z1z1 = self.z.square();
        let u2 = rhs.x.mul(&z1z1);
        let s2 = rhs.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let r = s2.sub(&self.y).double();
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        (
            Self {
                x: x3,
                y: y3,
                z: z3,
            },
            r,
        )
    }

    /// Converts to affine; `None` for the point at infinity.
    pub(crate) fn to_affine(&self) -> CtOption<Affine> {
        let zinv = self.z.invert();
        let zinv2 = zinv.square();
        let a = Affine {
            x: self.x.mul(&zinv2),
            y: self.y.mul(&zinv2.mul(&zinv)),
        };
        CtOption::new(a, !self.is_identity())
    }

    /// Whether this point equals the affine point `a`, in constant time.
    pub(crate) fn ct_eq_affine(&self, a: &Affine) -> Choice {
        let z2 = self.z.square();
        let z3 = z2.mul(&self.z);
        !self.is_identity() & self.x.ct_eq(&a.x.mul(&z2)) & self.y.ct_eq(&a.y.mul(&z3))
    }

    /// [k]self for any point and any scalar below 2^1024, in constant time:
    /// 4-bit fixed windows over a 16-entry table scanned in full each time.
    pub(crate) fn mul(&self, k: &[u64; LIMBS]) -> Self {
        self.mul_from_window(k, WINDOWS - 1)
    }

    /// [k]self for a *public* scalar k below q (SAKKE's b: a 256-bit UID
    /// costs a quarter of a full scalar): constant time in the point, not
    /// in k. Fixed 4-bit windows from k's highest non-zero one, the table
    /// indexed by each digit and zero digits skipped, with the cheaper
    /// unchecked addition. That is exact for any finite point of E(F_p)
    /// (order dividing 4q): before each addition the running value is
    /// [16·k']self with 16·k' ≤ k < q, and 16·k' ∓ d for a digit
    /// 1 ≤ d ≤ 15 is neither 0 nor a multiple of 4q, so the two points are
    /// neither equal nor opposite; likewise the table's (d − 1)·self and
    /// self for d ≥ 3.
    pub(crate) fn mul_public(&self, k: &[u64; LIMBS]) -> Self {
        let Some(top) = (0..WINDOWS).rev().find(|&w| window_digit(k, w) != 0) else {
            return Self::IDENTITY;
        };
        let mut table = [*self; 1 << WINDOW];
        table[2] = self.double();
        for d in 3..(1 << WINDOW) {
            table[d] = table[d - 1].add_unchecked(self).0;
        }
        let mut acc = table[window_digit(k, top) as usize];
        for w in (0..top).rev() {
            for _ in 0..WINDOW {
                acc = acc.double();
            }
            let digit = window_digit(k, w) as usize;
            if digit != 0 {
                acc = acc.add_unchecked(&table[digit]).0;
            }
        }
        acc
    }

    /// [k]self for k below 16^(top + 1), fixed 4-bit windows from `top` down.
    fn mul_from_window(&self, k: &[u64; LIMBS], top: usize) -> Self {
        let mut table = [Self::IDENTITY; 1 << WINDOW];
        table[1] = *self;
        for d in 2..(1 << WINDOW) {
            table[d] = table[d - 1].add(self);
        }
        let mut acc = Self::IDENTITY;
        for w in (0..=top).rev() {
            for _ in 0..WINDOW {
                acc = acc.double();
            }
            let digit = window_digit(k, w);
            let mut entry = Self::IDENTITY;
            for (d, t) in table.iter().enumerate() {
                entry.conditional_assign(t, (d as u32).ct_eq(&digit));
            }
            acc = acc.add(&entry);
        }
        acc
    }
}

/// The 4-bit digit of `k` at window `w` (bits 4w .. 4w+3).
#[inline(always)]
fn window_digit(k: &[u64; LIMBS], w: usize) -> u32 {
    let bit = w * WINDOW;
    ((k[bit / 64] >> (bit % 64)) & ((1 << WINDOW) - 1)) as u32
}

/// Converts many Jacobian points (none at infinity) to affine with one
/// field inversion.
pub(crate) fn batch_to_affine(points: &[Jacobian]) -> Vec<Affine> {
    let mut zs: Vec<Fp> = points.iter().map(|p| p.z).collect();
    batch_invert(&mut zs);
    points
        .iter()
        .zip(zs.iter())
        .map(|(p, zinv)| {
            let zinv2 = zinv.square();
            Affine {
                x: p.x.mul(&zinv2),
                y: p.y.mul(&zinv2.mul(zinv)),
            }
        })
        .collect()
}

/// Bits per signed digit of the fixed-base tables.
pub(crate) const SIGNED_WINDOW: usize = 6;
/// Signed digits covering any scalar below q (< 2^1022), plus the final carry.
pub(crate) const SIGNED_WINDOWS: usize = 1023_usize.div_ceil(SIGNED_WINDOW);
/// Table entries per signed window: multiples 1..=2^(w−1).
pub(crate) const SIGNED_ENTRIES: usize = 1 << (SIGNED_WINDOW - 1);

/// Recodes k < 2^1022 into signed digits d_i in [−2^(w−1), 2^(w−1)) with
/// k = Σ d_i·2^(w·i), without branches: each digit is returned as
/// (|d_i|, d_i < 0).
pub(crate) fn signed_digits(k: &[u64; LIMBS]) -> ([u8; SIGNED_WINDOWS], [u8; SIGNED_WINDOWS]) {
    let mut mag = [0u8; SIGNED_WINDOWS];
    let mut neg = [0u8; SIGNED_WINDOWS];
    let mut carry = 0u32;
    for w in 0..SIGNED_WINDOWS {
        let pos = w * SIGNED_WINDOW;
        let limb = pos / 64;
        let shift = pos % 64;
        let mut bits = k[limb] >> shift;
        if shift + SIGNED_WINDOW > 64 && limb + 1 < LIMBS {
            bits |= k[limb + 1] << (64 - shift);
        }
        let mask = (1u32 << SIGNED_WINDOW) - 1;
        let v = (bits as u32 & mask) + carry;
        carry = (v + (1 << (SIGNED_WINDOW - 1))) >> SIGNED_WINDOW;
        let d = v as i32 - ((carry as i32) << SIGNED_WINDOW);
        let is_neg = (d >> 31) & 1;
        mag[w] = ((d ^ -is_neg) + is_neg) as u8;
        neg[w] = is_neg as u8;
    }
    (mag, neg)
}

/// `entries[digit − 1]`, or all-zero limbs for digit 0, reading every entry:
/// one mask per entry (through `subtle`'s optimisation barrier) applied to
/// all 32 limbs, which the compiler vectorises.
#[inline]
fn ct_lookup(entries: &[Affine; SIGNED_ENTRIES], digit: u32) -> Affine {
    let mut x = [0u64; LIMBS];
    let mut y = [0u64; LIMBS];
    for (m, e) in entries.iter().enumerate() {
        let mask = 0u64.wrapping_sub(u64::from(((m + 1) as u32).ct_eq(&digit).unwrap_u8()));
        for i in 0..LIMBS {
            x[i] |= e.x.0[i] & mask;
            y[i] |= e.y.0[i] & mask;
        }
    }
    Affine { x: Fp(x), y: Fp(y) }
}

/// Precomputed multiples of a fixed point of order q for fast constant-time
/// scalar multiplication with signed 6-bit digits: entry [w][m−1] =
/// [m·64^w]B for m in 1..=32 (171 windows, about 1.4 MB).
pub(crate) struct FixedBaseTable {
    windows: Vec<[Affine; SIGNED_ENTRIES]>,
}

impl FixedBaseTable {
    /// Builds the table for `base`, which must be a point of order q.
    pub(crate) fn new(base: &Affine) -> Self {
        let mut jac = Vec::with_capacity(SIGNED_WINDOWS * SIGNED_ENTRIES);
        let mut b = base.to_jacobian();
        for _ in 0..SIGNED_WINDOWS {
            jac.push(b);
            let b2 = b.double();
            let mut m = b2;
            jac.push(m);
            // For m ≥ 3, (m − 1)·B and B are distinct and not opposite
            // (B has order q > 32), so the unchecked addition is exact.
            for _ in 3..=SIGNED_ENTRIES {
                m = m.add_unchecked(&b).0;
                jac.push(m);
            }
            // 32·B doubled is the next window's base 64·B.
            b = m.double();
        }
        let affine = batch_to_affine(&jac);
        let windows = affine
            .chunks_exact(SIGNED_ENTRIES)
            .map(|c| {
                let mut w = [c[0]; SIGNED_ENTRIES];
                w.copy_from_slice(c);
                w
            })
            .collect();
        Self { windows }
    }

    /// [k]B for a scalar k below q, in constant time.
    ///
    /// For every window but the last, the partial sum S = Σ_{j<w} d_j·64^j
    /// has |S| ≤ 32·(64^w − 1)/63 < 64^w/1.9 while the entry is ±m·64^w with
    /// m ≥ 1, and S ∓ m·64^w stays below 33·64^169 < q in absolute value;
    /// so the accumulator is never equal or opposite to the entry (as points
    /// of order q) unless one is the point at infinity, which the mixed
    /// addition handles. The last window lacks that margin and uses the
    /// complete addition (tested on the edge scalars below).
    pub(crate) fn mul(&self, k: &[u64; LIMBS]) -> Jacobian {
        let (mut mag, mut neg) = signed_digits(k);
        let mut acc = Jacobian::IDENTITY;
        let last = self.windows.len() - 1;
        for (w, entries) in self.windows.iter().enumerate() {
            let digit = u32::from(mag[w]);
            let mut entry = ct_lookup(entries, digit);
            let neg_y = entry.y.neg();
            entry.y.conditional_assign(&neg_y, Choice::from(neg[w]));
            let skip = digit.ct_eq(&0);
            if w == last {
                let sum = acc.add(&entry.to_jacobian());
                acc = Jacobian::conditional_select(&sum, &acc, skip);
            } else {
                acc = acc.add_affine_unchecked(&entry, skip);
            }
        }
        mag.zeroize();
        neg.zeroize();
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sakke::params::{BASE, Q};
    use crypto_bigint::U1024;

    fn same(a: &Jacobian, b: &Jacobian) -> bool {
        match (
            Option::<Affine>::from(a.to_affine()),
            Option::<Affine>::from(b.to_affine()),
        ) {
            (Some(x), Some(y)) => x.to_bytes() == y.to_bytes(),
            (None, None) => true,
            _ => false,
        }
    }

    /// The fixed-base table agrees with the plain ladder on scalars at the
    /// edges of the signed recoding: top-window carries, all-ones and
    /// all-sixteen digit patterns, and values next to q and 2^1021.
    #[test]
    fn fixed_base_matches_variable_base_on_edge_scalars() {
        let table = FixedBaseTable::new(&BASE);
        let q = U1024::from_words(Q);
        let one = U1024::ONE;
        let two_1021 = one.shl(1021);
        // Every window holding 16, or 2^(w−1) (which recodes to −2^(w−1)
        // with a carry into the next window).
        let mut pattern16 = [0u64; LIMBS];
        let mut pattern_half = [0u64; LIMBS];
        for w in 0..(1014 / SIGNED_WINDOW) {
            let pos = w * SIGNED_WINDOW + 4;
            pattern16[pos / 64] |= 1 << (pos % 64);
            let pos = w * SIGNED_WINDOW + SIGNED_WINDOW - 1;
            pattern_half[pos / 64] |= 1 << (pos % 64);
        }
        let scalars = [
            one,
            U1024::from_u8(2),
            U1024::from_u8(16),
            U1024::from_u8(17),
            q.wrapping_sub(&one),
            q.wrapping_sub(&U1024::from_u8(16)),
            two_1021,
            two_1021.wrapping_sub(&one),
            q.wrapping_sub(&two_1021),
            two_1021.shl(1).wrapping_sub(&q),
            one.shl(1020),
            one.shl(1015).wrapping_mul(&U1024::from_u8(17)),
            U1024::from_words(pattern16),
            U1024::from_words(pattern_half),
            U1024::MAX.shr(2).wrapping_rem_vartime(&q),
        ];
        for k in scalars {
            let words = k.to_words();
            assert!(
                same(&table.mul(&words), &BASE.to_jacobian().mul(&words)),
                "{k}"
            );
        }
        assert!(bool::from(table.mul(&[0; LIMBS]).is_identity()));
    }

    /// The constant-time order test agrees with [q]·S == O on points of
    /// every order dividing 4q: random points S of E(F_p), 4S, and those
    /// plus the points of order 2 and 4.
    #[test]
    fn order_q_test_matches_multiplication_by_q() {
        let three = Fp::ONE.double().add(&Fp::ONE);
        let mut points = Vec::new();
        let mut x = BASE.x.add(&Fp::ONE);
        while points.len() < 12 {
            x = x.add(&three.square());
            points.extend(Affine::lift_x(x));
        }
        let q_mul = |p: &Affine| p.to_jacobian().mul(&Q);
        let four =
            |p: &Affine| -> Option<Affine> { p.to_jacobian().double().double().to_affine().into() };
        let t4 = Affine::point_of_order_four();
        assert!(bool::from(t4.to_jacobian().double().double().is_identity()));
        let t2 = Affine {
            x: Fp::ZERO,
            y: Fp::ZERO,
        };
        let mut cases = Vec::new();
        for s in &points {
            cases.push(*s);
            if let Some(f) = four(s) {
                cases.push(f);
                for t in [t2, t4] {
                    if let Some(sum) =
                        Option::<Affine>::from(f.to_jacobian().add(&t.to_jacobian()).to_affine())
                    {
                        cases.push(sum);
                    }
                }
            }
        }
        cases.extend([t2, t4, BASE]);
        let mut in_q = 0;
        for c in &cases {
            let expected = bool::from(q_mul(c).is_identity());
            assert_eq!(bool::from(c.has_order_q()), expected);
            assert_eq!(bool::from(c.has_order_q_public()), expected);
            in_q += usize::from(expected);
        }
        assert!(in_q >= 12 && in_q < cases.len());
    }

    #[test]
    fn order_of_base_is_q() {
        assert!(bool::from(BASE.to_jacobian().mul(&Q).is_identity()));
        let mut q_minus_1 = Q;
        q_minus_1[0] -= 1;
        assert!(!bool::from(
            BASE.to_jacobian().mul(&q_minus_1).is_identity()
        ));
    }

    #[test]
    fn signed_digits_reconstruct_the_scalar() {
        let k = U1024::MAX.shr(3).to_words();
        let (mag, neg) = signed_digits(&k);
        let mut acc = U1024::ZERO;
        for w in (0..SIGNED_WINDOWS).rev() {
            acc = acc.shl(SIGNED_WINDOW as u32);
            let d = U1024::from_u8(mag[w]);
            acc = if neg[w] == 1 {
                acc.wrapping_sub(&d)
            } else {
                acc.wrapping_add(&d)
            };
        }
        assert_eq!(acc.to_words(), k);
    }
}
