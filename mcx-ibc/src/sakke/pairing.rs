//! The reduced Tate–Lichtenbaum pairing of RFC 6508 section 3.2: with the
//! Miller-loop lines of a fixed point precomputed, or walked on the fly.
//!
//! RFC 6508 computes ⟨R, Q⟩ by walking multiples of R and evaluating lines at
//! ψ(Q) = (−Q_x, i·Q_y). For points of the order-q group the pairing is
//! symmetric (⟨aP, bP⟩ = ⟨P, P⟩^{ab} = ⟨bP, aP⟩), so we may walk multiples of
//! either argument. [`MillerLines`] walks a *fixed* point once (the base
//! point P, a KMS key Z, or a receiver's RSK), stores each line normalised to
//! `a·x + b + i·y`, and per pairing only evaluates those lines at the varying
//! point (about 1.6 multiplications per line, at (x/y, 1/y)) instead of a
//! point operation.
//! [`pairing_direct`] walks and evaluates in one pass without storing
//! anything: cheaper than building the lines for a pairing done once. The
//! line walk is the same fixed sequence for every point, so it is constant
//! time in the walked point.

use zeroize::Zeroize;

use super::curve::Affine;
use super::fp::{Fp, Wide};
use super::fp2::{Fp2, batch_invert};
use super::params::Q_MINUS_ONE_NAF;

/// A Miller-loop line through multiples of the fixed point, scaled so that
/// its value at ψ(x, y) is (a·x + b) + i·y.
#[derive(Clone, Copy)]
struct Line {
    a: Fp,
    b: Fp,
}

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
    /// (A, B, D), for storing.
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
/// take values in F_p at ψ(x, y) and vanish in PF_p.
fn walk(fixed: &Affine, mut emit: impl FnMut(bool, RawLine)) {
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
    c.x.zeroize();
    c.y.zeroize();
    c.z.zeroize();
}

/// The precomputed Miller loop of one fixed point of order q.
pub(crate) struct MillerLines {
    /// One tangent line per digit of the NAF of q − 1 after the first, then
    /// one chord line per non-zero digit, in loop order.
    lines: Vec<Line>,
}

impl MillerLines {
    /// Walks the Miller loop of `fixed` and keeps its lines, normalised with
    /// one batch inversion.
    pub(crate) fn new(fixed: &Affine) -> Self {
        // Each line is kept as (A, B, D), then divided by D once for all
        // lines together.
        let mut num_a = Vec::with_capacity(1536);
        let mut num_b = Vec::with_capacity(1536);
        let mut den = Vec::with_capacity(1536);
        walk(fixed, |_, line| {
            let (a, b, d) = line.coefficients();
            num_a.push(a);
            num_b.push(b);
            den.push(d);
        });
        batch_invert(&mut den);
        let lines = num_a
            .iter()
            .zip(num_b.iter())
            .zip(den.iter())
            .map(|((a, b), d)| Line {
                a: a.mul(d),
                b: b.mul(d),
            })
            .collect();
        num_a.zeroize();
        num_b.zeroize();
        den.zeroize();
        Self { lines }
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
        for l in &mut self.lines {
            l.a.zeroize();
            l.b.zeroize();
        }
    }
}

/// The product of the Miller-loop values of each (fixed point's lines,
/// point) pair, sharing the squarings: the value whose final
/// exponentiation is the product of the pairings.
pub(crate) fn miller_product(pairs: &[(&MillerLines, &Affine)]) -> Fp2 {
    let points: Vec<(&MillerLines, ScaledPoint)> = pairs
        .iter()
        .map(|(lines, point)| (*lines, ScaledPoint::new(point)))
        .collect();
    let mut v = Fp2::ONE;
    let mut at = 0;
    for (step, &digit) in Q_MINUS_ONE_NAF.iter().skip(1).enumerate() {
        if step > 0 {
            v = v.square();
        }
        let used = if digit != 0 { 2 } else { 1 };
        for (lines, point) in &points {
            for l in lines.lines.get(at..at + used).unwrap_or_default() {
                v = mul_by_line(&v, l, point);
            }
        }
        at += used;
    }
    v
}

/// A point (x, y) as (x/y, 1/y), so that a stored line's value
/// (a·x + b) + i·y, divided by y ∈ F_p (which PF_p ignores), is α + i with
/// α = a·x/y + b/y: the F_p² product by it is then two multiplications.
/// y = 0 (a point of order 2, never of order q) maps to (0, 0) and gives a
/// meaningless value, which the callers' checks reject.
struct ScaledPoint {
    x_over_y: Fp,
    inv_y: Fp,
}

impl ScaledPoint {
    fn new(p: &Affine) -> Self {
        let inv_y = p.y.invert();
        Self {
            x_over_y: p.x.mul(&inv_y),
            inv_y,
        }
    }
}

/// ⟨fixed, point⟩ walking the Miller loop of `fixed` and evaluating each
/// line at `point` as it comes, storing nothing: for a pairing with a
/// point that is used once (a client's first decapsulation).
pub(crate) fn pairing_direct(fixed: &Affine, point: &Affine) -> Fp {
    let mut v = Fp2::ONE;
    let mut first = true;
    walk(fixed, |tangent, line| {
        if tangent && !first {
            v = v.square();
        }
        first = false;
        v = v.mul(&line.eval(point));
    });
    final_exponentiation(v)
}

/// Final exponentiation in PF_p: (p² − 1)/q reduces to (p + 1)/q = 4; the
/// result as RFC 6508 represents it.
pub(crate) fn final_exponentiation(v: Fp2) -> Fp {
    v.square().square().to_projective_ratio()
}

/// v · ((a·x + b) + i·y) up to the factor y: v · (α + i) with
/// α = a·(x/y) + b·(1/y) (two products, one reduction), then
/// (v_a·α − v_b) + (v_a + v_b·α)·i (two multiplications).
#[inline]
fn mul_by_line(v: &Fp2, l: &Line, p: &ScaledPoint) -> Fp2 {
    let alpha = Wide::sum(&l.a.mul_wide(&p.x_over_y), &l.b.mul_wide(&p.inv_y)).reduce();
    Fp2 {
        a: v.a.mul(&alpha).sub(&v.b),
        b: v.b.mul(&alpha).add(&v.a),
    }
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
        walk(fixed, |tangent, line| {
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
