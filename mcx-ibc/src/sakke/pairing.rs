//! The reduced Tate–Lichtenbaum pairing of RFC 6508 section 3.2: with the
//! Miller-loop lines of a fixed point precomputed, or walked on the fly.
//!
//! RFC 6508 computes ⟨R, Q⟩ by walking multiples of R and evaluating lines at
//! ψ(Q) = (−Q_x, i·Q_y). For points of the order-q group the pairing is
//! symmetric (⟨aP, bP⟩ = ⟨P, P⟩^{ab} = ⟨bP, aP⟩), so we may walk multiples of
//! either argument. [`MillerLines`] walks a *fixed* point once (the base
//! point P, a KMS key Z, or a receiver's RSK) and stores, for each window of
//! two NAF digits (three where two zeros start it), the product of that
//! window's lines with the vertical lines divided out: a function
//! A(x) + B(x)·y of four to nine stored coefficients. A pairing then does
//! v ← v^(2^k)·g per window of k digits, g's value at the varying point
//! being an inner product of those coefficients with powers of the point's
//! coordinates, instead of k loop steps of line evaluations.
//! [`pairing_direct`] walks and evaluates in one pass without storing
//! anything: cheaper than building the lines for a pairing done once. The
//! line walk is the same fixed sequence for every point, so it is constant
//! time in the walked point.

use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

use super::curve::{Affine, Jacobian};
use super::fp::{Fp, Wide};
use super::fp2::{Fp2, batch_invert};
use super::params::Q_MINUS_ONE_NAF;

/// A line before normalisation: its value at ψ(x, y) is (A·x + B) + i·D·y,
/// the normalised value times D ∈ F_p*, which PF_p ignores.
// Made and consumed at once on the stack, one at a time: the variants'
// sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum RawLine {
    Tangent(Tangent),
    /// A chord, as (A, B, D).
    Chord {
        a: Fp,
        b: Fp,
        d: Fp,
    },
}

/// The tangent at C = (X, Y, Z), slope 3(X² − Z⁴)/(2YZ), times 2YZ³:
/// A = α·δ, B = α·X − 2γ, D = Z₃·δ, with α = 3(X² − Z⁴), δ = Z²,
/// γ = Y² and Z₃ = 2YZ from the doubling. Kept in those parts because
/// evaluating them directly costs one multiplication less than forming A,
/// B and D first.
struct Tangent {
    alpha: Fp,
    delta: Fp,
    gamma: Fp,
    x: Fp,
    z3: Fp,
}

impl RawLine {
    /// (A, B, D): the line's value at ψ(x, y) is (A·x + B) + i·D·y.
    fn coefficients(&self) -> (Fp, Fp, Fp) {
        match self {
            Self::Tangent(t) => (
                t.alpha.mul(&t.delta),
                t.alpha.mul(&t.x).sub(&t.gamma.double()),
                t.z3.mul(&t.delta),
            ),
            Self::Chord { a, b, d } => (*a, *b, *d),
        }
    }

    /// The value at ψ(point): for a tangent α·(δ·x + X) − 2γ + i·Z₃·(δ·y),
    /// four multiplications instead of five.
    fn eval(&self, point: &Affine) -> Fp2 {
        match self {
            Self::Tangent(t) => Fp2 {
                a: t.alpha
                    .mul(&t.delta.mul(&point.x).add(&t.x))
                    .sub(&t.gamma.double()),
                b: t.z3.mul(&t.delta.mul(&point.y)),
            },
            Self::Chord { a, b, d } => Fp2 {
                a: a.mul(&point.x).add(b),
                b: d.mul(&point.y),
            },
        }
    }
}

impl Drop for RawLine {
    fn drop(&mut self) {
        // Derived from the walked point, which may be an RSK.
        match self {
            Self::Tangent(t) => {
                for v in [
                    &mut t.alpha,
                    &mut t.delta,
                    &mut t.gamma,
                    &mut t.x,
                    &mut t.z3,
                ] {
                    v.zeroize();
                }
            }
            Self::Chord { a, b, d } => {
                for v in [a, b, d] {
                    v.zeroize();
                }
            }
        }
    }
}

/// Walks the Miller loop of `fixed` over the non-adjacent form of q − 1
/// (about 340 chord lines instead of 511 for the binary form), handing each
/// line to `emit` in loop order with `true` for a tangent (which follows a
/// squaring of the accumulator, except the first) and `false` for a chord.
/// A −1 digit uses the chord through −F; the vertical lines this leaves out
/// take values in F_p at ψ(x, y) and vanish in PF_p. Returns the end point,
/// [q − 1]·fixed when every step was exact (callers zeroize it when the
/// walked point is secret).
#[must_use]
fn walk(fixed: &Affine, mut emit: impl FnMut(bool, RawLine)) -> Jacobian {
    let mut c = fixed.to_jacobian();
    let negated = Affine {
        x: fixed.x,
        y: fixed.y.neg(),
    };
    for &digit in Q_MINUS_ONE_NAF.iter().skip(1) {
        let (doubled, parts) = c.double_with_parts();
        emit(
            true,
            RawLine::Tangent(Tangent {
                alpha: parts.alpha,
                delta: parts.delta,
                gamma: parts.gamma,
                x: c.x,
                z3: doubled.z,
            }),
        );
        c = doubled;
        if digit != 0 {
            // Chord through C and F = (x_F, y_F) (or −F for digit −1), from
            // the mixed addition's slope r/Z₃: A = r, B = r·x_F − y_F·Z₃,
            // D = Z₃. C is [k]·fixed for a prefix k of the NAF with
            // 2 ≤ k ≤ q − 2 and k ≢ ±1 (mod q) (`chords_never_meet_the_fixed_point`),
            // so C ≠ ±F and the mixed addition is exact.
            let fixed = if digit > 0 { fixed } else { &negated };
            let (sum, r) = c.add_affine_with_parts(fixed);
            emit(
                false,
                RawLine::Chord {
                    a: r,
                    b: r.mul(&fixed.x).sub(&fixed.y.mul(&sum.z)),
                    d: sum.z,
                },
            );
            c = sum;
        }
    }
    c
}

/// One step of the windowed loop: three NAF digits (0, 0, d) where two
/// zeros start the step, otherwise two digits, or the single digit left
/// over at the end. The sequence follows the public NAF of q − 1, never a
/// secret.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// Digits (0, 0, d).
    Triple(i8),
    Pair(i8, i8),
    Single(i8),
}

impl Shape {
    /// The pole order at O of the step's function once the verticals are
    /// divided out (its divisor, C the running point and F the fixed one):
    /// (0, 0): 4(C) + (−4C) − 5(O); (0, ±1): 4(C) + (±F) + (−(4C ± F)) − 6(O);
    /// (±1, 0): 4(C) + 2(±F) + (−(4C ± 2F)) − 7(O); (0, 0, 0):
    /// 8(C) + (−8C) − 9(O); (0, 0, ±1): 8(C) + (±F) + (−(8C ± F)) − 10(O);
    /// a single tangent: 2(C) + (−2C) − 3(O); a single tangent and chord:
    /// 2(C) + (±F) + (−(2C ± F)) − 4(O). (The NAF has no two adjacent
    /// non-zero digits, so (±1, ±1) does not occur.)
    fn pole_order(self) -> usize {
        match self {
            Self::Triple(0) => 9,
            Self::Triple(_) => 10,
            Self::Pair(0, 0) => 5,
            Self::Pair(0, _) => 6,
            Self::Pair(_, _) => 7,
            Self::Single(0) => 3,
            Self::Single(_) => 4,
        }
    }

    /// How the function A(x) + B(x)·y is stored: the number of stored
    /// coefficients of A (from x⁰) and of B, and whether the leading term
    /// (of the pole order, [`Poly::settle`]) belongs to A. Its coefficient
    /// is 1 and is not stored.
    fn layout(self) -> (usize, usize, bool) {
        let n = self.pole_order();
        let (na, nb) = lengths(n);
        if n % 2 == 0 {
            (na - 1, nb, true)
        } else {
            (na, nb - 1, false)
        }
    }

    /// Coefficients stored for this shape.
    fn stored(self) -> usize {
        let (na, nb, _) = self.layout();
        na + nb
    }

    /// NAF digits this shape covers.
    fn digits(self) -> usize {
        match self {
            Self::Triple(_) => 3,
            Self::Pair(..) => 2,
            Self::Single(_) => 1,
        }
    }
}

/// The numbers of coefficients of A and B (from x⁰ to the highest that
/// may be non-zero) for a function A + B·y with pole order n ≥ 3 at O:
/// that order is max(2·deg A, 3 + 2·deg B), the two of different parities.
fn lengths(n: usize) -> (usize, usize) {
    (n / 2 + 1, (n - 1) / 2)
}

/// The steps of the loop after the leading digit 1, in order: three
/// digits wherever the next two are zeros (a step of three costs one F_p²
/// product and one window evaluation fewer than a step and a half of two,
/// for one more coefficient or two), otherwise two.
fn shapes() -> impl Iterator<Item = Shape> {
    let digits = &Q_MINUS_ONE_NAF[1..];
    let mut at = 0;
    std::iter::from_fn(move || {
        let shape = match digits.get(at..)? {
            [0, 0, d, ..] => Shape::Triple(*d),
            [d1, d2, ..] => Shape::Pair(*d1, *d2),
            [d, ..] => Shape::Single(*d),
            [] => return None,
        };
        at += shape.digits();
        Some(shape)
    })
}

/// A line y = λ·x + μ through multiples of the fixed point, as the
/// function c₀ + c₁·x + y with c₀ = −μ and c₁ = −λ (monic in y). At
/// ψ(X, Y) = (−X, i·Y) it is (c₀ − c₁·X) + i·Y.
#[derive(Clone, Copy)]
struct AffineLine {
    c0: Fp,
    c1: Fp,
}

/// One loop step's affine data: the tangent at the running point C, the
/// x of 2C (the vertical after the tangent), and for a non-zero digit the
/// chord through 2C and ±F with the x of 2C ± F.
struct StepLines {
    tangent: AffineLine,
    doubled_x: Fp,
    chord: Option<(AffineLine, Fp)>,
}

impl Drop for StepLines {
    fn drop(&mut self) {
        // Derived from the walked point, which may be an RSK.
        self.tangent.c0.zeroize();
        self.tangent.c1.zeroize();
        self.doubled_x.zeroize();
        if let Some((l, x)) = &mut self.chord {
            l.c0.zeroize();
            l.c1.zeroize();
            x.zeroize();
        }
    }
}

/// Room for a window's polynomial: the largest, pole order 13 (h²·T₃ of a
/// (0, 0, d) window before its divisions), has x⁶ and x⁵·y.
const POLY_LEN: usize = 8;

/// A(x) + B(x)·y in F_p[x, y]/(y² − x³ + 3x), coefficients from x⁰, with
/// the number of coefficients in use (fixed by the window's shape, public).
struct Poly {
    a: [Fp; POLY_LEN],
    na: usize,
    b: [Fp; POLY_LEN],
    nb: usize,
    /// Cleared when a division by a vertical left a remainder or a
    /// coefficient above the shape's degrees is not zero: the result is
    /// then not the window's function (never, for a point of order q;
    /// `window_divisions_are_exact` checks it).
    exact: bool,
}

impl Poly {
    fn one() -> Self {
        let mut a = [Fp::ZERO; POLY_LEN];
        a[0] = Fp::ONE;
        Self {
            a,
            na: 1,
            b: [Fp::ZERO; POLY_LEN],
            nb: 0,
            exact: true,
        }
    }

    /// The square of a line c + y, c = c₀ + c₁·x:
    /// (c² + x³ − 3x) + 2c·y, three multiplications.
    fn line_square(l: &AffineLine) -> Self {
        let mut f = Self::one();
        let three = Fp::ONE.double().add(&Fp::ONE);
        f.a[0] = l.c0.square();
        f.a[1] = l.c0.mul(&l.c1).double().sub(&three);
        f.a[2] = l.c1.square();
        f.a[3] = Fp::ONE;
        f.na = 4;
        f.b[0] = l.c0.double();
        f.b[1] = l.c1.double();
        f.nb = 2;
        f
    }

    /// self²: (A² + B²·(x³ − 3x)) + 2AB·y.
    fn square(&mut self) {
        let mut a = [Fp::ZERO; POLY_LEN];
        let mut b = [Fp::ZERO; POLY_LEN];
        for i in 0..self.na {
            a[2 * i] = a[2 * i].add(&self.a[i].square());
            for j in i + 1..self.na {
                a[i + j] = a[i + j].add(&self.a[i].mul(&self.a[j]).double());
            }
            for j in 0..self.nb {
                b[i + j] = b[i + j].add(&self.a[i].mul(&self.b[j]).double());
            }
        }
        for i in 0..self.nb {
            for j in i..self.nb {
                let mut t = self.b[i].mul(&self.b[j]);
                if j > i {
                    t = t.double();
                }
                // t·x^(i+j)·(x³ − 3x)
                a[i + j + 3] = a[i + j + 3].add(&t);
                a[i + j + 1] = a[i + j + 1].sub(&t.double().add(&t));
                t.zeroize();
            }
        }
        let na = (2 * self.na - 1).max(2 * self.nb + 2);
        let nb = if self.nb == 0 {
            0
        } else {
            self.na + self.nb - 1
        };
        self.replace(a, b, na, nb);
    }

    fn replace(&mut self, mut a: [Fp; POLY_LEN], mut b: [Fp; POLY_LEN], na: usize, nb: usize) {
        self.a.zeroize();
        self.b.zeroize();
        self.a = a;
        self.b = b;
        self.na = na;
        self.nb = nb;
        a.zeroize();
        b.zeroize();
    }

    /// Multiplies by the line c + y, c = c₀ + c₁·x:
    /// (A + B·y)(c + y) = (A·c + B·(x³ − 3x)) + (A + B·c)·y, in place from
    /// the top coefficient down (each new coefficient reads old ones at its
    /// own index and below), c₀·u_k + c₁·u_{k−1} with one reduction.
    /// Coefficients beyond the lengths are zero.
    fn mul_line(&mut self, l: &AffineLine) {
        let na = if self.nb == 0 {
            self.na + 1
        } else {
            (self.na + 1).max(self.nb + 3)
        };
        let nb = self.na.max(self.nb + 1);
        for k in (0..na.max(nb)).rev() {
            let a_k = lin(&l.c0, &self.a, self.na, &l.c1, k);
            let b_k = lin(&l.c0, &self.b, self.nb, &l.c1, k);
            let mut a_new = a_k;
            if k >= 1 && k <= self.nb {
                let three = self.b[k - 1].double().add(&self.b[k - 1]);
                a_new = a_new.sub(&three);
            }
            if k >= 3 && k < self.nb + 3 {
                a_new = a_new.add(&self.b[k - 3]);
            }
            if k < nb {
                self.b[k] = b_k.add(&self.a[k]);
            }
            self.a[k] = a_new;
        }
        self.na = na;
        self.nb = nb;
    }

    /// Divides by the vertical x − x₀, A and B separately (the coordinate
    /// ring is free over F_p[x] with basis 1, y, so a multiple of x − x₀
    /// has both components divisible), by synthetic division; clears
    /// `exact` on a non-zero remainder.
    fn div_vertical(&mut self, x0: &Fp) {
        let ok_a = synthetic_division(&mut self.a, &mut self.na, x0);
        let ok_b = synthetic_division(&mut self.b, &mut self.nb, x0);
        self.exact &= bool::from(ok_a & ok_b);
    }

    /// Checks that the function has pole order `n` at O with leading
    /// coefficient 1 and no coefficient above ([`lengths`]), and drops the
    /// zeros above; clears `exact` otherwise. Every line is monic in y, so
    /// products of lines are monic in their leading term (y² is x³ + …),
    /// and so are quotients by the monic verticals x − x₀.
    fn settle(&mut self, n: usize) {
        let (na, nb) = lengths(n);
        let lead = if n % 2 == 0 {
            self.a[na - 1]
        } else {
            self.b[nb - 1]
        };
        let mut zero = lead.ct_eq(&Fp::ONE);
        for c in self.a.iter().take(self.na).skip(na) {
            zero &= c.is_zero();
        }
        for c in self.b.iter().take(self.nb).skip(nb) {
            zero &= c.is_zero();
        }
        self.exact &= bool::from(zero);
        for c in self.a.iter_mut().skip(na) {
            *c = Fp::ZERO;
        }
        for c in self.b.iter_mut().skip(nb) {
            *c = Fp::ZERO;
        }
        self.na = self.na.min(na);
        self.nb = self.nb.min(nb);
    }
}

/// c₀·u_k + c₁·u_{k−1} for the polynomial u of n coefficients (zero
/// beyond), with one reduction when both terms exist.
#[inline]
fn lin(c0: &Fp, u: &[Fp; POLY_LEN], n: usize, c1: &Fp, k: usize) -> Fp {
    let has_k = k < n;
    let has_prev = k >= 1 && k <= n;
    match (has_k, has_prev) {
        (true, true) => Wide::sum(&c0.mul_wide(&u[k]), &c1.mul_wide(&u[k - 1])).reduce(),
        (true, false) => c0.mul(&u[k]),
        (false, true) => c1.mul(&u[k - 1]),
        (false, false) => Fp::ZERO,
    }
}

/// c ← c / (x − x₀) for c = Σ_{k<n} c_k·x^k: q_{n−2} = c_{n−1},
/// q_{k−1} = c_k + x₀·q_k, remainder c₀ + x₀·q₀; whether it is zero.
fn synthetic_division(c: &mut [Fp; POLY_LEN], n: &mut usize, x0: &Fp) -> Choice {
    if *n == 0 {
        return Choice::from(1);
    }
    let mut carry = c[*n - 1];
    c[*n - 1] = Fp::ZERO;
    for k in (0..*n - 1).rev() {
        let next = c[k].add(&x0.mul(&carry));
        c[k] = carry;
        carry = next;
    }
    *n -= 1;
    let zero = carry.is_zero();
    carry.zeroize();
    zero
}

impl Drop for Poly {
    fn drop(&mut self) {
        // Derived from the walked point, which may be an RSK.
        self.a.zeroize();
        self.b.zeroize();
    }
}

/// Walks the loop of `fixed` ([`walk`]), normalises every line to
/// c₀ + c₁·x + y (one batch inversion, as the lines' y coefficients are
/// in F_p*), and follows the x coordinates of the running point from the
/// slopes (x(2C) = λ² − 2x(C), x(D ± F) = λ² − x(D) − x(F)): one
/// [`StepLines`] per NAF digit after the first.
fn affine_steps(fixed: &Affine) -> Vec<StepLines> {
    let mut num_a = Vec::with_capacity(1400);
    let mut num_b = Vec::with_capacity(1400);
    let mut den = Vec::with_capacity(1400);
    let mut end = walk(fixed, |_, line| {
        let (a, b, d) = line.coefficients();
        num_a.push(a);
        num_b.push(b);
        den.push(d);
    });
    end.zeroize();
    batch_invert(&mut den);
    // The line's value at ψ(X, Y) is (a·X + b) + i·y with a = A/D, b = B/D,
    // i.e. the function b − a·x + y.
    let mut lines = num_a
        .iter()
        .zip(num_b.iter())
        .zip(den.iter())
        .map(|((a, b), d)| AffineLine {
            c0: b.mul(d),
            c1: a.mul(d).neg(),
        });
    let mut steps = Vec::with_capacity(Q_MINUS_ONE_NAF.len());
    let mut x = fixed.x;
    for &digit in Q_MINUS_ONE_NAF.iter().skip(1) {
        // `walk` emits a tangent per digit and a chord per non-zero digit.
        let tangent = lines.next().unwrap_or(AffineLine {
            c0: Fp::ZERO,
            c1: Fp::ZERO,
        });
        let doubled_x = tangent.c1.square().sub(&x.double());
        x = doubled_x;
        let chord = if digit != 0 {
            let chord = lines.next().unwrap_or(tangent);
            x = chord.c1.square().sub(&x).sub(&fixed.x);
            Some((chord, x))
        } else {
            None
        };
        steps.push(StepLines {
            tangent,
            doubled_x,
            chord,
        });
    }
    x.zeroize();
    num_a.zeroize();
    num_b.zeroize();
    den.zeroize();
    steps
}

/// The function of one loop step (three digits, two, or one), the
/// verticals divided out: for three digits see the arm below; for digits
/// (d1, d2) from C, T₁²·Ch₁²·T₂·Ch₂ (absent chords
/// are 1) divided by V_{2C}² and, after a first chord, by V_{2C±F}², or
/// after a second chord by V_{4C}. Each division comes once both points of
/// the vertical are zeros of what is divided, so the quotient is regular.
fn window_poly(shape: Shape, steps: &[StepLines]) -> Poly {
    let mut f = Poly::one();
    match (shape, steps) {
        (Shape::Single(_), [s]) => {
            f.mul_line(&s.tangent);
            if let Some((ch, _)) = &s.chord {
                f.mul_line(ch);
                f.div_vertical(&s.doubled_x);
            }
        }
        (Shape::Triple(_), [s1, s2, s3]) => {
            // h = T₁²·T₂/V_{2C}² (a (0, 0) window), divisor 4(C) + (−4C)
            // − 5(O); then h²·T₃/V_{4C}², whose divisor 8(C) + (−8C) − 9(O)
            // takes a chord as a single step's does.
            f = Poly::line_square(&s1.tangent);
            f.mul_line(&s2.tangent);
            f.div_vertical(&s1.doubled_x);
            f.div_vertical(&s1.doubled_x);
            f.settle(5);
            f.square();
            f.mul_line(&s3.tangent);
            f.div_vertical(&s2.doubled_x);
            f.div_vertical(&s2.doubled_x);
            f.settle(9);
            if let Some((ch3, _)) = &s3.chord {
                f.mul_line(ch3);
                f.div_vertical(&s3.doubled_x);
            }
        }
        (Shape::Pair(..), [s1, s2]) => {
            if let Some((ch1, x1)) = &s1.chord {
                // h = T₁·Ch₁/V_{2C}, divisor 2(C) + (±F) + (−C₁) − 4(O)
                // with C₁ = 2C ± F; then h²·T₂/V_{C₁}².
                f.mul_line(&s1.tangent);
                f.mul_line(ch1);
                f.div_vertical(&s1.doubled_x);
                f.settle(4);
                f.square();
                f.mul_line(&s2.tangent);
                f.div_vertical(x1);
                f.div_vertical(x1);
            } else {
                f = Poly::line_square(&s1.tangent);
                f.mul_line(&s2.tangent);
                f.div_vertical(&s1.doubled_x);
                f.div_vertical(&s1.doubled_x);
                f.settle(5);
                if let Some((ch2, _)) = &s2.chord {
                    f.mul_line(ch2);
                    f.div_vertical(&s2.doubled_x);
                }
            }
        }
        // `window_polys` hands each shape its number of steps.
        _ => f.exact = false,
    }
    f.settle(shape.pole_order());
    f
}

/// The window functions of `fixed`, one [`Poly`] per [`Shape`] of
/// [`shapes`], not normalised.
fn window_polys(fixed: &Affine) -> Vec<Poly> {
    let steps = affine_steps(fixed);
    let mut polys = Vec::with_capacity(Q_MINUS_ONE_NAF.len() / 2 + 1);
    let mut at = 0;
    for shape in shapes() {
        let used = shape.digits();
        polys.push(window_poly(
            shape,
            steps.get(at..at + used).unwrap_or_default(),
        ));
        at += used;
    }
    polys
}

/// The precomputed Miller loop of one fixed point of order q, two NAF
/// digits per step.
pub(crate) struct MillerLines {
    /// For each [`Shape`] of [`shapes`] in order, the function of that step
    /// as stored coefficients ([`Shape::layout`]): A's from x⁰, then B's,
    /// without the leading coefficient, which is 1.
    coefficients: Vec<Fp>,
}

impl MillerLines {
    /// Walks the Miller loop of `fixed`, multiplies each window's lines
    /// into one function, divides out the verticals, and keeps the
    /// coefficients (the leading one is 1: [`Poly::trim`]).
    pub(crate) fn new(fixed: &Affine) -> Self {
        let polys = window_polys(fixed);
        debug_assert!(polys.iter().all(|p| p.exact), "inexact window");
        let mut coefficients = Vec::with_capacity(shapes().map(Shape::stored).sum());
        for (p, shape) in polys.iter().zip(shapes()) {
            let (na, nb, _) = shape.layout();
            coefficients.extend_from_slice(&p.a[..na]);
            coefficients.extend_from_slice(&p.b[..nb]);
        }
        Self { coefficients }
    }

    /// ⟨fixed, point⟩ as RFC 6508 represents it: the F_p integer b/a of the
    /// PF_p element v^((p+1)/q), v the Miller-loop value.
    pub(crate) fn pairing(&self, point: &Affine) -> Fp {
        final_exponentiation(miller_product(&[(self, point)]))
    }
}

impl Drop for MillerLines {
    fn drop(&mut self) {
        // A receiver's lines are derived from its RSK.
        self.coefficients.zeroize();
    }
}

/// The product of the Miller-loop values of each (fixed point's lines,
/// point) pair, sharing the squarings: the value whose final
/// exponentiation is the product of the pairings. Per window of k digits:
/// v^(2^k), then for each pair one F_p² product by the window's value at
/// ψ(point).
pub(crate) fn miller_product(pairs: &[(&MillerLines, &Affine)]) -> Fp2 {
    let points: Vec<(&MillerLines, PointPowers)> = pairs
        .iter()
        .map(|(lines, point)| (*lines, PointPowers::new(point)))
        .collect();
    let mut v = Fp2::ONE;
    let mut at = 0;
    for (i, shape) in shapes().enumerate() {
        if i > 0 {
            for _ in 0..shape.digits() {
                v = v.square();
            }
        }
        let n = shape.stored();
        for (lines, point) in &points {
            let c = lines.coefficients.get(at..at + n).unwrap_or_default();
            v = v.mul(&point.eval(shape, c));
        }
        at += n;
    }
    v
}

/// The powers of a point's coordinates that the window functions need at
/// ψ(X, Y) = (−X, i·Y): x_k = (−X)^k and y_k = Y·(−X)^k, so that
/// A(−X) + B(−X)·i·Y is Σ a_k·x_k + i·Σ b_k·y_k.
struct PointPowers {
    x: [Fp; 6],
    y: [Fp; 4],
}

impl PointPowers {
    fn new(p: &Affine) -> Self {
        let x1 = p.x.neg();
        let x2 = p.x.square();
        let x3 = x2.mul(&x1);
        let x4 = x2.square();
        Self {
            x: [Fp::ONE, x1, x2, x3, x4, x4.mul(&x1)],
            y: [p.y, p.y.mul(&x1), p.y.mul(&x2), p.y.mul(&x3)],
        }
    }

    /// The value at ψ(point) of a window of `shape` with stored
    /// coefficients `c` (the leading one, 1, implied), one reduction per
    /// component. The shape is public; nothing branches on the values.
    fn eval(&self, shape: Shape, c: &[Fp]) -> Fp2 {
        let (na, nb, lead_in_a) = shape.layout();
        let (ca, cb) = c.split_at(na.min(c.len()));
        let (a0, a_rest) = ca.split_first().unwrap_or((&Fp::ZERO, &[]));
        let mut re = a0.add(&dot(a_rest, &self.x[1..]));
        let mut im = dot(cb, &self.y);
        if lead_in_a {
            re = re.add(&self.x[na]);
        } else {
            im = im.add(&self.y[nb]);
        }
        Fp2 { a: re, b: im }
    }
}

impl Drop for PointPowers {
    fn drop(&mut self) {
        // The point may be an RSK (RSK validation evaluates at K_b).
        self.x.zeroize();
        self.y.zeroize();
    }
}

/// Σ c_k·p_k over the first c.len() ≤ 4 powers, with one Montgomery
/// reduction.
#[inline]
fn dot(c: &[Fp], p: &[Fp]) -> Fp {
    match (c, p) {
        ([c0], [p0, ..]) => c0.mul(p0),
        ([c0, c1], [p0, p1, ..]) => Wide::sum(&c0.mul_wide(p0), &c1.mul_wide(p1)).reduce(),
        ([c0, c1, c2], [p0, p1, p2, ..]) => {
            Wide::sum3(&c0.mul_wide(p0), &c1.mul_wide(p1), &c2.mul_wide(p2)).reduce()
        }
        ([c0, c1, c2, c3], [p0, p1, p2, p3, ..]) => Wide::sum4(
            &c0.mul_wide(p0),
            &c1.mul_wide(p1),
            &c2.mul_wide(p2),
            &c3.mul_wide(p3),
        )
        .reduce(),
        // Empty (a single tangent has no stored B coefficient); no window
        // has more than four products in a component.
        _ => Fp::ZERO,
    }
}

/// ⟨fixed, point⟩ walking the Miller loop of `fixed` and evaluating each
/// line at `point` as it comes, storing nothing: for a pairing with a
/// point that is used once.
pub(crate) fn pairing_direct(fixed: &Affine, point: &Affine) -> Fp {
    let (w, mut end) = walk_and_evaluate(fixed, point);
    end.zeroize();
    w
}

/// ⟨walked, at⟩ walking the loop of the *public* point `walked` and
/// evaluating its lines at `at` (constant time in `at`, which may be an
/// RSK), and whether `walked` has order q: a client's first decapsulation,
/// walking R.
///
/// The walk ends at [q − 1]·walked = −walked exactly when walked has order
/// q, provided every step was exact. A step that is not (doubling a point
/// with y = 0, or the mixed addition of C = ±walked or of C at infinity)
/// yields Z = 0: the doubling's Z₃ = 2·Y·Z, the mixed addition's
/// Z₃ = 2·Z·h with h = x·Z² − X = 0 for C = ±walked, and both keep Z = 0
/// once it is 0. Exact steps on finite points whose result is finite give
/// Z ≠ 0. So a final Z ≠ 0 means the end point is [q − 1]·walked, and it
/// equals −walked exactly when [q]·walked = O. Points of order 2 or 4 (and
/// those with such a component) either degenerate (Z = 0) or end elsewhere.
pub(crate) fn pairing_and_order_check(walked: &Affine, at: &Affine) -> (Fp, Choice) {
    let (w, end) = walk_and_evaluate(walked, at);
    let negated = Affine {
        x: walked.x,
        y: walked.y.neg(),
    };
    (w, end.ct_eq_affine(&negated))
}

fn walk_and_evaluate(fixed: &Affine, point: &Affine) -> (Fp, Jacobian) {
    let mut v = Fp2::ONE;
    let mut first = true;
    let end = walk(fixed, |tangent, line| {
        if tangent && !first {
            v = v.square();
        }
        first = false;
        v = v.mul(&line.eval(point));
    });
    (final_exponentiation(v), end)
}

/// Final exponentiation in PF_p: (p² − 1)/q reduces to (p + 1)/q = 4; the
/// result as RFC 6508 represents it.
pub(crate) fn final_exponentiation(v: Fp2) -> Fp {
    v.square().square().to_projective_ratio()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sakke::params::Q;
    use crypto_bigint::U1024;

    /// The walk's chords use the mixed addition, exact only when the
    /// running point C = [k]·fixed is neither fixed nor −fixed: replays the
    /// schedule on the integers k (the same for every point of order q) and
    /// checks 2 ≤ k ≤ q − 2 before each chord.
    #[test]
    fn chords_never_meet_the_fixed_point() {
        let q = U1024::from_words(Q);
        let two = U1024::from_u8(2);
        let q_minus_two = q.wrapping_sub(&two);
        let mut k = U1024::ONE;
        let mut chords = 0;
        for &digit in Q_MINUS_ONE_NAF.iter().skip(1) {
            k = k.shl(1);
            if digit != 0 {
                assert!(k >= two && k <= q_minus_two);
                chords += 1;
                k = if digit > 0 {
                    k.wrapping_add(&U1024::ONE)
                } else {
                    k.wrapping_sub(&U1024::ONE)
                };
            }
        }
        assert_eq!(k, q.wrapping_sub(&U1024::ONE));
        assert!(chords > 300);
    }

    /// Points of order q from small scalars times P (the tests' "random"
    /// points: any multiple of P other than O is as good as another).
    fn points() -> Vec<Affine> {
        let table = crate::sakke::curve::FixedBaseTable::new(&crate::sakke::params::BASE);
        [[7u64; 16], [0x0123_4567_89ab_cdef; 16], [3; 16], [1; 16]]
            .iter()
            .map(|k| {
                let mut k = *k;
                k[15] = 0; // below q
                Option::<Affine>::from(table.mul(&k).to_affine())
                    .unwrap_or(crate::sakke::params::BASE)
            })
            .collect()
    }

    /// Every division of every window by its verticals leaves no
    /// remainder, and no coefficient above the shape's degrees, for several
    /// fixed points; the shapes cover the NAF with the expected pattern.
    #[test]
    fn window_divisions_are_exact() {
        let digits: usize = shapes().map(Shape::digits).sum();
        assert_eq!(digits, Q_MINUS_ONE_NAF.len() - 1);
        assert!(shapes().all(|s| !matches!(s, Shape::Pair(a, b) if a != 0 && b != 0)));
        for fixed in points() {
            let polys = window_polys(&fixed);
            assert_eq!(polys.len(), shapes().count());
            for (i, p) in polys.iter().enumerate() {
                assert!(p.exact, "window {i} inexact");
            }
            // A corrupted vertical must be seen (the check can fail).
            let steps = affine_steps(&fixed);
            let mut f = Poly::one();
            f.mul_line(&steps[0].tangent);
            f.mul_line(&steps[0].tangent);
            f.mul_line(&steps[1].tangent);
            f.div_vertical(&steps[0].doubled_x.add(&Fp::ONE));
            assert!(!f.exact);
        }
    }

    /// Walking R tells R's order: true for points of order q, false for
    /// those plus a point of order 2 or 4, and for those points themselves
    /// (whose walks degenerate to Z = 0); the pairing is the direct one.
    /// (End to end, a wrong R usually also fails w = g^r, so this is where
    /// the order check itself is seen to work.)
    #[test]
    fn walking_r_checks_its_order() {
        let t4 = Affine::from_bytes(&crate::sakke::internal::point_of_order_four(), "T4")
            .unwrap_or(crate::sakke::params::BASE);
        let t2 = Affine {
            x: Fp::ZERO,
            y: Fp::ZERO,
        };
        let pts = points();
        let k = pts[0];
        for r in &pts {
            let (w, order_q) = pairing_and_order_check(r, &k);
            assert!(bool::from(order_q));
            assert_eq!(w.0, pairing_direct(&k, r).0);
            for t in [t2, t4] {
                let skewed: Option<Affine> =
                    r.to_jacobian().add(&t.to_jacobian()).to_affine().into();
                let skewed = skewed.unwrap_or(t2);
                assert!(!bool::from(pairing_and_order_check(&skewed, &k).1));
            }
        }
        for t in [t2, t4] {
            assert!(!bool::from(pairing_and_order_check(&t, &k).1));
        }
    }

    /// The windowed pairing with stored coefficients equals the walk
    /// evaluated on the fly, both ways, for several points of order q.
    #[test]
    fn windowed_pairing_matches_the_direct_walk() {
        let pts = points();
        for a in &pts {
            let lines = MillerLines::new(a);
            for b in &pts {
                assert_eq!(lines.pairing(b).0, pairing_direct(a, b).0);
                assert_eq!(lines.pairing(b).0, pairing_direct(b, a).0);
            }
        }
    }
}

#[cfg(test)]
mod joint_walk {
    //! The evaluation of one idea for a client's start-up (docs/ibc.md):
    //! validating the RSK K inside its first decapsulation by walking K's
    //! Miller loop once and evaluating each line at two points, [b]P + Z
    //! and R.
    use super::*;
    use crate::sakke::curve::FixedBaseTable;
    use crate::sakke::params::{BASE, G};
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    /// ⟨fixed, p⟩ for each point p, sharing one walk of fixed's loop.
    fn pairings_direct(fixed: &Affine, points: &[Affine]) -> Vec<Fp> {
        let mut vs = vec![Fp2::ONE; points.len()];
        let mut first = true;
        let _ = walk(fixed, |tangent, line| {
            for (v, point) in vs.iter_mut().zip(points) {
                if tangent && !first {
                    *v = v.square();
                }
                *v = v.mul(&line.eval(point));
            }
            first = false;
        });
        vs.into_iter().map(final_exponentiation).collect()
    }

    fn min_time(mut f: impl FnMut()) -> Duration {
        (0..15)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    }

    /// Run with `--ignored --nocapture` in release: prints the cost of a
    /// walk with one and with two evaluation points.
    #[test]
    #[ignore]
    fn joint_walk_cost() {
        let table = FixedBaseTable::new(&BASE);
        let k = Option::<Affine>::from(table.mul(&[7; 16]).to_affine()).unwrap_or(BASE);
        let q = Option::<Affine>::from(table.mul(&[11; 16]).to_affine()).unwrap_or(BASE);
        let both = pairings_direct(&k, &[q, BASE]);
        assert_eq!(both[1].0, pairing_direct(&k, &BASE).0);
        assert_eq!(pairing_direct(&BASE, &BASE).0, G.0);
        let one = min_time(|| {
            black_box(pairing_direct(black_box(&k), &q));
        });
        let two = min_time(|| {
            black_box(pairings_direct(black_box(&k), &[q, BASE]));
        });
        println!("walk, one point: {one:?}; two points: {two:?}");
    }
}
