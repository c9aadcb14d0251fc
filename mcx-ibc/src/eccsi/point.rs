//! P-256 point arithmetic for ECCSI: Jacobian coordinates with the `a = -3`
//! formulas, a constant-time fixed-base comb for `[k]G` (signing, issuing,
//! key validation) and variable-time multi-scalar multiplication for
//! verification, which handles only public data.
//!
//! Formulas (Explicit-Formulas Database, Bernstein–Lange): `dbl-2001-b`,
//! `madd-2007-bl`, `add-2007-bl`. The unit tests cross-check every
//! multiplication against the `p256` crate.
//!
//! # Comb (fixed base)
//! A scalar `k < 2^256` is recoded into 52 signed radix-32 digits
//! `d_i` in `[-15, 16]` (the last in `[0, 2]`), `k = sum d_i 32^i`, and
//! `[k]B = sum [d_i] T_i` with `T_i[d] = [d 32^i]B` for `d = 1..16` stored as
//! affine points. No doublings are needed: 52 mixed additions.
//!
//! The constant-time sum uses the incomplete mixed addition, which is wrong
//! only when adding a point to itself. That cannot happen here: before
//! window `i` the accumulator is `[A]B` with `|A| < (16/31) 32^i`, and the
//! addend is `[d_i 32^i]B` with `|d_i 32^i| >= 32^i`; for `i <= 50` the
//! difference is non-zero and below `q` in absolute value, so the points
//! differ. For the last window, `d_51 32^51 - A = d_51 2^256 - k` lies in
//! `(0, q)` when `d_51 = 1` and in `(q, 2q)` when `d_51 = 2`. Adding a
//! point's negation yields the point at infinity correctly (Z = 0), and an
//! accumulator at infinity is handled by a constant-time select.

use std::sync::LazyLock;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use super::field::Fe;

/// Number of signed radix-32 digits of a 256-bit scalar.
const COMB_WINDOWS: usize = 52;
/// Table entries per comb window: multiples 1..=16.
const COMB_ENTRIES: usize = 16;

/// wNAF width for variable bases in verification: odd multiples up to 15P.
const WNAF_VAR: u32 = 5;
/// wNAF width for the base point in verification: odd multiples up to 63G.
const WNAF_G: u32 = 7;
/// Length of a wNAF of a scalar below 2^256.
const WNAF_LEN: usize = 257;

/// A point other than the point at infinity, in affine coordinates.
#[derive(Clone, Copy)]
pub(super) struct Affine {
    x: Fe,
    y: Fe,
}

impl Affine {
    /// The P-256 base point G.
    pub(super) fn generator() -> Self {
        *GENERATOR
    }

    /// A point from coordinates already checked to be on the curve and
    /// below p (the caller decodes with the `p256` crate's validation).
    /// `None` only if a coordinate is not below p.
    pub(super) fn from_validated_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Option<Self> {
        Some(Self {
            x: Fe::from_bytes(x)?,
            y: Fe::from_bytes(y)?,
        })
    }

    /// `0x04 || x || y`.
    pub(super) fn to_uncompressed(self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        out[1..33].copy_from_slice(&self.x.to_bytes());
        out[33..].copy_from_slice(&self.y.to_bytes());
        out
    }

    fn neg(&self) -> Self {
        Self {
            x: self.x,
            y: self.y.neg(),
        }
    }
}

impl ConditionallySelectable for Affine {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
        }
    }
}

static GENERATOR: LazyLock<Affine> = LazyLock::new(|| {
    const GX: [u8; 32] = [
        0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40,
        0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98,
        0xc2, 0x96,
    ];
    const GY: [u8; 32] = [
        0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e,
        0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf,
        0x51, 0xf5,
    ];
    // Both constants are below p.
    Affine {
        x: Fe::from_bytes(&GX).unwrap_or(Fe::ZERO),
        y: Fe::from_bytes(&GY).unwrap_or(Fe::ZERO),
    }
});

/// A point in Jacobian coordinates `(X : Y : Z)` = `(X/Z^2, Y/Z^3)`; `Z = 0`
/// is the point at infinity.
#[derive(Clone, Copy)]
pub(super) struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl From<Affine> for Jacobian {
    fn from(p: Affine) -> Self {
        Self {
            x: p.x,
            y: p.y,
            z: Fe::ONE,
        }
    }
}

impl ConditionallySelectable for Jacobian {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Self {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
            z: Fe::conditional_select(&a.z, &b.z, choice),
        }
    }
}

impl Jacobian {
    /// The point at infinity.
    pub(super) const IDENTITY: Self = Self {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    /// The point at infinity as `(0 : 1 : 0)`: its X "matches" x = 0, which
    /// the tests use to pin the infinity checks.
    #[cfg(test)]
    pub(super) const IDENTITY_X_ZERO: Self = Self {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    /// Whether this is the point at infinity.
    pub(super) fn is_identity(&self) -> Choice {
        self.z.is_zero()
    }

    /// `2P` (`dbl-2001-b`, 3M + 5S). Complete on P-256: the point at
    /// infinity doubles to Z = 0, and no point of odd order has Y = 0.
    #[inline(always)]
    fn double(&self) -> Self {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let alpha = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = alpha.double().add(&alpha);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2 = gamma.square();
        let y3 = alpha
            .mul(&beta4.sub(&x3))
            .sub(&gamma2.double().double().double());
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `P + Q` for affine Q (`madd-2007-bl`, 7M + 4S), without special
    /// cases: correct unless P is the point at infinity or P = Q. P = -Q
    /// correctly gives Z = 0.
    #[inline(always)]
    fn add_affine_unchecked(&self, q: &Affine) -> Self {
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let r = s2.sub(&self.y).double();
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `P + Q` for affine Q, all cases, variable time (public data only).
    fn add_affine_vartime(&self, q: &Affine) -> Self {
        if bool::from(self.is_identity()) {
            return Self::from(*q);
        }
        let sum = self.add_affine_unchecked(q);
        if bool::from(sum.is_identity()) {
            // H = 0: P = Q (then r = 0 too) or P = -Q.
            let z1z1 = self.z.square();
            let s2 = q.y.mul(&self.z).mul(&z1z1);
            if bool::from(s2.ct_eq(&self.y)) {
                return self.double();
            }
        }
        sum
    }

    /// `P + Q` (`add-2007-bl`, 11M + 5S), all cases, variable time (public
    /// data only).
    fn add_vartime(&self, q: &Self) -> Self {
        if bool::from(self.is_identity()) {
            return *q;
        }
        if bool::from(q.is_identity()) {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = q.x.mul(&z1z1);
        let s1 = self.y.mul(&q.z).mul(&z2z2);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1).double();
        if bool::from(h.is_zero()) {
            return if bool::from(r.is_zero()) {
                self.double()
            } else {
                Self::IDENTITY
            };
        }
        let i = h.double().square();
        let j = h.mul(&i);
        let v = u1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&j).double());
        let z3 = self.z.add(&q.z).square().sub(&z1z1).sub(&z2z2).mul(&h);
        Self {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// The affine point, or `None` for the point at infinity. Constant time
    /// except for the final `Option`.
    pub(super) fn to_affine(self) -> Option<Affine> {
        if bool::from(self.is_identity()) {
            return None;
        }
        let zinv = self.z.invert();
        let zinv2 = zinv.square();
        Some(Affine {
            x: self.x.mul(&zinv2),
            y: self.y.mul(&zinv2).mul(&zinv),
        })
    }

    /// The affine x-coordinate as 32 big-endian octets (constant time), or
    /// `None` for the point at infinity.
    pub(super) fn affine_x_bytes(&self) -> Option<[u8; 32]> {
        if bool::from(self.is_identity()) {
            return None;
        }
        Some(self.x.mul(&self.z.invert().square()).to_bytes())
    }

    /// Whether the affine x-coordinate equals the integer `x` (< p), without
    /// an inversion: `X = x Z^2`. False for the point at infinity and when
    /// `x` is not below p. Variable time (public data only).
    pub(super) fn affine_x_equals_vartime(&self, x: &[u8; 32]) -> bool {
        if bool::from(self.is_identity()) {
            return false;
        }
        match Fe::from_bytes(x) {
            Some(x) => bool::from(self.x.ct_eq(&x.mul(&self.z.square()))),
            None => false,
        }
    }

    /// Whether `self` and `q` are the same point (constant time).
    pub(super) fn ct_eq(&self, q: &Self) -> Choice {
        // X1 Z2^2 = X2 Z1^2 and Y1 Z2^3 = Y2 Z1^3, or both at infinity.
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        let x_eq = self.x.mul(&z2z2).ct_eq(&q.x.mul(&z1z1));
        let y_eq = self
            .y
            .mul(&z2z2.mul(&q.z))
            .ct_eq(&q.y.mul(&z1z1.mul(&self.z)));
        let (inf1, inf2) = (self.is_identity(), q.is_identity());
        (inf1 & inf2) | (!inf1 & !inf2 & x_eq & y_eq)
    }
}

/// Converts points (none at infinity) to affine with a single inversion
/// (Montgomery's trick). Points at infinity map to garbage; callers only
/// pass non-zero multiples of a point of prime order.
fn batch_to_affine(points: &[Jacobian], out: &mut [Affine]) {
    let mut acc = Fe::ONE;
    let mut prefix = Vec::with_capacity(points.len());
    for p in points {
        prefix.push(acc);
        acc = acc.mul(&p.z);
    }
    let mut inv = acc.invert();
    for ((p, before), o) in points.iter().zip(prefix.iter()).zip(out.iter_mut()).rev() {
        let zinv = inv.mul(before);
        inv = inv.mul(&p.z);
        let zinv2 = zinv.square();
        *o = Affine {
            x: p.x.mul(&zinv2),
            y: p.y.mul(&zinv2).mul(&zinv),
        };
    }
}

// ---------------------------------------------------------------------------
// Scalar recodings
// ---------------------------------------------------------------------------

/// Big-endian 32 octets to little-endian limbs.
fn limbs(k: &[u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (limb, chunk) in w.iter_mut().rev().zip(k.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(b);
    }
    w
}

/// Signed radix-32 digits of `k`, least significant first, each in
/// `[-15, 16]` (the last in `[0, 2]`). Constant time.
fn comb_digits(k: &[u8; 32]) -> [i8; COMB_WINDOWS] {
    let mut w = limbs(k);
    let mut digits = [0i8; COMB_WINDOWS];
    let mut carry = 0u64;
    for (i, digit) in digits.iter_mut().enumerate() {
        let pos = 5 * i;
        let (limb, off) = (pos / 64, pos % 64);
        let lo = w.get(limb).copied().unwrap_or(0) >> off;
        let hi = match (off, w.get(limb + 1)) {
            (60.., Some(next)) => next << (64 - off),
            _ => 0,
        };
        // v in [0, 32]; digits above 16 borrow from the next window.
        let v = ((lo | hi) & 31) + carry;
        carry = (v + 15) >> 5;
        // v - 32 carry in [-15, 16] fits in i8.
        *digit = (v as i64 - ((carry as i64) << 5)) as i8;
    }
    w.zeroize();
    digits
}

/// Width-`W` non-adjacent form of `k`, least significant first: every
/// non-zero digit is odd, in `(-2^(W-1), 2^(W-1))`, and is followed by at
/// least `W - 1` zeros. Variable time (public scalars only).
fn wnaf<const W: u32>(k: &[u8; 32]) -> [i8; WNAF_LEN] {
    let l = limbs(k);
    let x = [l[0], l[1], l[2], l[3], 0u64];
    let width = 1u64 << W;
    let mask = width - 1;
    let mut naf = [0i8; WNAF_LEN];
    let mut pos = 0usize;
    let mut carry = 0u64;
    while pos < WNAF_LEN {
        let (idx, bit) = (pos / 64, pos % 64);
        let lo = x.get(idx).copied().unwrap_or(0) >> bit;
        let hi = match bit {
            0 => 0,
            _ => x.get(idx + 1).copied().unwrap_or(0) << (64 - bit),
        };
        let window = carry + ((lo | hi) & mask);
        if window & 1 == 0 {
            // Even (with the carry): this position is 0, the carry moves up.
            pos += 1;
            continue;
        }
        let digit = if window < width / 2 {
            carry = 0;
            window as i64
        } else {
            carry = 1;
            window as i64 - width as i64
        };
        if let Some(d) = naf.get_mut(pos) {
            // |digit| < 2^(W-1) <= 64 fits in i8.
            *d = digit as i8;
        }
        pos += W as usize;
    }
    naf
}

// ---------------------------------------------------------------------------
// Fixed-base comb
// ---------------------------------------------------------------------------

/// `T_i[d - 1] = [d 32^i]B` for `i < 52`, `d = 1..16`: 53,248 octets.
pub(super) struct CombTable(Box<[[Affine; COMB_ENTRIES]; COMB_WINDOWS]>);

impl CombTable {
    /// Precomputes the table of `base` (about 850 point additions and one
    /// inversion).
    pub(super) fn new(base: &Affine) -> Self {
        let mut jac = Vec::with_capacity(COMB_WINDOWS * COMB_ENTRIES);
        let mut b = Jacobian::from(*base);
        for _ in 0..COMB_WINDOWS {
            let mut m = b;
            for _ in 0..COMB_ENTRIES {
                jac.push(m);
                m = m.add_vartime(&b);
            }
            for _ in 0..5 {
                b = b.double();
            }
        }
        let mut flat = vec![*base; COMB_WINDOWS * COMB_ENTRIES];
        batch_to_affine(&jac, &mut flat);
        let mut table = Box::new([[*base; COMB_ENTRIES]; COMB_WINDOWS]);
        for (row, chunk) in table.iter_mut().zip(flat.chunks_exact(COMB_ENTRIES)) {
            row.copy_from_slice(chunk);
        }
        Self(table)
    }

    /// `[k]B` in constant time (k as 32 big-endian octets; any value).
    pub(super) fn mul(&self, k: &[u8; 32]) -> Jacobian {
        let mut digits = comb_digits(k);
        let mut acc = Jacobian::IDENTITY;
        for (row, &d) in self.0.iter().zip(digits.iter()) {
            let sign = d >> 7; // 0 or -1
            let abs = ((d ^ sign) - sign) as u8;
            let mut q = row[0];
            for (j, entry) in (1u8..).zip(row.iter()) {
                q.conditional_assign(entry, j.ct_eq(&abs));
            }
            let q = Affine::conditional_select(&q, &q.neg(), Choice::from((sign & 1) as u8));
            let sum = acc.add_affine_unchecked(&q);
            let sum = Jacobian::conditional_select(&sum, &Jacobian::from(q), acc.is_identity());
            acc = Jacobian::conditional_select(&sum, &acc, abs.ct_eq(&0));
        }
        digits.zeroize();
        acc
    }

    /// `[k]B` in variable time (public scalars only).
    fn mul_vartime(&self, k: &[u8; 32], acc: Jacobian) -> Jacobian {
        let digits = comb_digits(k);
        let mut acc = acc;
        for (row, &d) in self.0.iter().zip(digits.iter()) {
            let abs = d.unsigned_abs();
            if let Some(q) = abs.checked_sub(1).and_then(|i| row.get(usize::from(i))) {
                let q = if d < 0 { q.neg() } else { *q };
                acc = acc.add_affine_vartime(&q);
            }
        }
        acc
    }

    /// `[a]G + [b]B` in variable time, B being this table's base.
    pub(super) fn mul_add_generator_vartime(&self, a: &[u8; 32], b: &[u8; 32]) -> Jacobian {
        let acc = G_COMB.mul_vartime(a, Jacobian::IDENTITY);
        self.mul_vartime(b, acc)
    }
}

/// The comb table of G, built on first use.
static G_COMB: LazyLock<CombTable> = LazyLock::new(|| CombTable::new(&GENERATOR));

/// Odd multiples `G, 3G, ..., 63G` for verification, built on first use.
static G_ODD: LazyLock<[Affine; 1 << (WNAF_G - 2)]> = LazyLock::new(|| {
    let mut out = [*GENERATOR; 1 << (WNAF_G - 2)];
    batch_to_affine(
        &odd_multiples::<{ 1 << (WNAF_G - 2) }>(&GENERATOR),
        &mut out,
    );
    out
});

/// `[k]G` in constant time.
pub(super) fn mul_generator(k: &[u8; 32]) -> Jacobian {
    G_COMB.mul(k)
}

/// `P, 3P, 5P, ...` (N points), Jacobian.
fn odd_multiples<const N: usize>(p: &Affine) -> [Jacobian; N] {
    let p = Jacobian::from(*p);
    let p2 = p.double();
    let mut out = [p; N];
    for i in 1..N {
        out[i] = out[i - 1].add_vartime(&p2);
    }
    out
}

/// `sum [k_i]P_i` over `G` and the given affine points, variable time
/// (public data only): one shared doubling chain, wNAF digits.
pub(super) fn lincomb_vartime<const N: usize>(
    g: &[u8; 32],
    terms: [(&Affine, &[u8; 32]); N],
) -> Jacobian {
    const VAR: usize = 1 << (WNAF_VAR - 2);
    let mut jac = Vec::with_capacity(N * VAR);
    for (p, _) in &terms {
        jac.extend_from_slice(&odd_multiples::<VAR>(p));
    }
    let mut tables = vec![Affine::generator(); N * VAR];
    batch_to_affine(&jac, &mut tables);

    let g_naf = wnaf::<WNAF_G>(g);
    let nafs: Vec<[i8; WNAF_LEN]> = terms.iter().map(|(_, k)| wnaf::<WNAF_VAR>(k)).collect();
    let g_table: &[Affine] = &*G_ODD;

    let mut acc = Jacobian::IDENTITY;
    for i in (0..WNAF_LEN).rev() {
        if !bool::from(acc.is_identity()) {
            acc = acc.double();
        }
        let g_digit = g_naf.get(i).copied().unwrap_or(0);
        acc = add_digit(acc, g_table, g_digit);
        for (naf, table) in nafs.iter().zip(tables.chunks_exact(VAR)) {
            acc = add_digit(acc, table, naf.get(i).copied().unwrap_or(0));
        }
    }
    acc
}

/// `acc + [d]P` for an odd wNAF digit d, `table` holding `P, 3P, 5P, ...`.
fn add_digit(acc: Jacobian, table: &[Affine], d: i8) -> Jacobian {
    if d == 0 {
        return acc;
    }
    match table.get(usize::from(d.unsigned_abs() >> 1)) {
        Some(q) if d < 0 => acc.add_affine_vartime(&q.neg()),
        Some(q) => acc.add_affine_vartime(q),
        None => acc,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use p256::elliptic_curve::PrimeField;
    use p256::elliptic_curve::group::Group;
    use p256::elliptic_curve::ops::LinearCombination;
    use p256::elliptic_curve::sec1::ToSec1Point;
    use p256::{ProjectivePoint, Scalar};
    use proptest::prelude::*;

    const Q: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    fn reference(p: &ProjectivePoint) -> Option<[u8; 65]> {
        let enc = p.to_affine().to_sec1_point(false);
        let bytes = enc.as_bytes();
        (bytes.len() == 65).then(|| bytes.try_into().unwrap())
    }

    fn ours(p: &Jacobian) -> Option<[u8; 65]> {
        p.to_affine().map(Affine::to_uncompressed)
    }

    fn scalar(k: &[u8; 32]) -> Option<Scalar> {
        Scalar::from_repr((*k).into()).into()
    }

    fn to_affine_p256(p: &ProjectivePoint) -> Affine {
        let b = reference(p).unwrap();
        Affine::from_validated_coordinates(
            b[1..33].try_into().unwrap(),
            b[33..].try_into().unwrap(),
        )
        .unwrap()
    }

    /// Scalars below q, with edge cases over-represented: small values,
    /// q - 1 and q - 2, 2^255 and 2^255 - 1, powers of two, and runs of
    /// 0x10 octets (digits at the 16 / -15 boundary).
    fn scalar_bytes() -> impl Strategy<Value = [u8; 32]> {
        let mut q1 = Q;
        q1[31] -= 1;
        let mut q2 = Q;
        q2[31] -= 2;
        let mut pow = [0u8; 32];
        pow[0] = 0x80; // 2^255
        let mut top = [0u8; 32];
        top[0] = 0x7f;
        top[1..].fill(0xff);
        prop_oneof![
            4 => any::<[u8; 32]>().prop_filter("below q", |k| scalar(k).is_some()),
            1 => (0u64..64).prop_map(|v| {
                let mut k = [0u8; 32];
                k[24..].copy_from_slice(&v.to_be_bytes());
                k
            }),
            1 => Just(q1),
            1 => Just(q2),
            1 => Just(pow),
            1 => Just(top),
            1 => (0usize..255).prop_map(|bit| {
                let mut k = [0u8; 32];
                k[31 - bit / 8] = 1 << (bit % 8);
                k
            }),
            1 => (0usize..32).prop_map(|n| {
                let mut k = [0u8; 32];
                k[32 - n..].fill(0x10);
                k
            }),
        ]
    }

    #[test]
    fn generator_matches() {
        assert_eq!(
            Some(GENERATOR.to_uncompressed()),
            reference(&ProjectivePoint::GENERATOR)
        );
    }

    #[test]
    fn digits_reconstruct() {
        for k in [[0u8; 32], [0x11; 32], Q, [0x7f; 32]] {
            let d = comb_digits(&k);
            // Horner's rule modulo q, against p256's decoding.
            let mut acc = Scalar::ZERO;
            for &di in d.iter().rev() {
                acc = acc * Scalar::from(32u64)
                    + if di < 0 {
                        -Scalar::from(u64::from(di.unsigned_abs()))
                    } else {
                        Scalar::from(di as u64)
                    };
            }
            let expected: Scalar =
                Option::from(Scalar::from_repr(k.into())).unwrap_or(Scalar::ZERO); // Q reduces to 0
            assert_eq!(acc, expected);
            assert!(d.iter().all(|&x| (-15..=16).contains(&x)));
        }
    }

    #[test]
    fn wnaf_reconstructs() {
        let mut q1 = Q;
        q1[31] -= 1;
        for k in [
            [0u8; 32], [0xff; 32], [0x11; 32], Q, q1, [0x7f; 32], [0x80; 32],
        ] {
            for naf in [wnaf::<5>(&k).to_vec(), wnaf::<7>(&k).to_vec()] {
                let mut acc = Scalar::ZERO;
                for &di in naf.iter().rev() {
                    let d = Scalar::from(u64::from(di.unsigned_abs()));
                    acc = acc.double() + if di < 0 { -d } else { d };
                }
                let expected =
                    <Scalar as p256::elliptic_curve::ops::Reduce<p256::FieldBytes>>::reduce(
                        &k.into(),
                    );
                assert_eq!(acc, expected);
                assert!(naf.iter().all(|&d| d == 0 || d % 2 != 0));
            }
        }
    }

    #[test]
    fn zero_and_order_give_identity() {
        assert!(bool::from(mul_generator(&[0; 32]).is_identity()));
        assert!(bool::from(mul_generator(&Q).is_identity()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn comb_matches_p256(k in scalar_bytes()) {
            let s = scalar(&k).unwrap();
            let expected = reference(&ProjectivePoint::mul_by_generator(&s));
            prop_assert_eq!(ours(&mul_generator(&k)), expected);
            prop_assert_eq!(ours(&G_COMB.mul_vartime(&k, Jacobian::IDENTITY)), expected);
            prop_assert_eq!(
                mul_generator(&k).affine_x_bytes(),
                expected.map(|e| e[1..33].try_into().unwrap())
            );
        }
    }

    proptest! {
        // Each case builds a 52 KiB comb table.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn lincomb_matches_p256(
            a in scalar_bytes(),
            b in scalar_bytes(),
            c in scalar_bytes(),
            p in scalar_bytes(),
            q in scalar_bytes(),
        ) {
            let (sa, sb, sc) = (scalar(&a).unwrap(), scalar(&b).unwrap(), scalar(&c).unwrap());
            // Random bases (never the identity, which callers never pass).
            let sp = scalar(&p).unwrap() + Scalar::ONE;
            let sq = scalar(&q).unwrap() + Scalar::from(2u64);
            let pp = ProjectivePoint::mul_by_generator(&sp);
            let pq = ProjectivePoint::mul_by_generator(&sq);
            prop_assume!(!bool::from(pp.is_identity()) && !bool::from(pq.is_identity()));
            let expected = ProjectivePoint::lincomb(&[
                (ProjectivePoint::GENERATOR, sa),
                (pp, sb),
                (pq, sc),
            ]);
            let (ap, aq) = (to_affine_p256(&pp), to_affine_p256(&pq));
            let got = lincomb_vartime(&a, [(&ap, &b), (&aq, &c)]);
            prop_assert_eq!(ours(&got), reference(&expected));
            if let Some(e) = reference(&expected) {
                prop_assert!(got.affine_x_equals_vartime(e[1..33].try_into().unwrap()));
            }

            let table = CombTable::new(&ap);
            let expected2 =
                ProjectivePoint::lincomb(&[(ProjectivePoint::GENERATOR, sa), (pp, sb)]);
            prop_assert_eq!(
                ours(&table.mul_add_generator_vartime(&a, &b)),
                reference(&expected2)
            );
            prop_assert_eq!(ours(&table.mul(&b)), reference(&(pp * sb)));
            prop_assert_eq!(
                bool::from(table.mul(&b).ct_eq(&Jacobian::from(ap))),
                sb == Scalar::ONE
            );
        }
    }

    /// Exceptional cases of the variable-time additions: P + P, P + (-P),
    /// and a linear combination that cancels to the identity.
    #[test]
    fn exceptional_additions() {
        let g = Affine::generator();
        let gj = Jacobian::from(g);
        let two_g = reference(&ProjectivePoint::GENERATOR.double());
        assert_eq!(ours(&gj.add_affine_vartime(&g)), two_g);
        assert_eq!(ours(&gj.add_vartime(&gj)), two_g);
        assert!(bool::from(gj.add_affine_vartime(&g.neg()).is_identity()));
        assert!(bool::from(
            gj.add_vartime(&Jacobian::from(g.neg())).is_identity()
        ));
        // [1]G + [q-1]G = identity.
        let mut q1 = Q;
        q1[31] -= 1;
        let mut one = [0u8; 32];
        one[31] = 1;
        let sum = lincomb_vartime(&one, [(&g, &q1)]);
        assert!(bool::from(sum.is_identity()));
        assert!(!sum.affine_x_equals_vartime(&[0; 32]));
        assert_eq!(sum.affine_x_bytes(), None);
        let inf = Jacobian::IDENTITY_X_ZERO;
        assert!(bool::from(inf.is_identity()));
        assert!(!inf.affine_x_equals_vartime(&[0; 32]));
        assert_eq!(inf.affine_x_bytes(), None);
        assert!(inf.to_affine().is_none());
    }
}
