//! The reduced Tate–Lichtenbaum pairing of RFC 6508 section 3.2: with the
//! Miller-loop lines of a fixed point precomputed, or walked on the fly.
//!
//! RFC 6508 computes ⟨R, Q⟩ by walking multiples of R and evaluating lines at
//! ψ(Q) = (−Q_x, i·Q_y). For points of the order-q group the pairing is
//! symmetric (⟨aP, bP⟩ = ⟨P, P⟩^{ab} = ⟨bP, aP⟩), so we may walk multiples of
//! either argument. [`MillerLines`] walks a *fixed* point once (the base
//! point P, a KMS key Z, or a receiver's RSK), stores each line normalised to
//! `a·x + b + i·y`, and per pairing only evaluates those lines at the varying
//! point: one multiplication per line instead of a point operation.
//! [`pairing_direct`] walks and evaluates in one pass without storing
//! anything: cheaper than building the lines for a pairing done once. The
//! line walk is the same fixed sequence for every point, so it is constant
//! time in the walked point.

use zeroize::Zeroize;

use super::curve::Affine;
use super::fp::Fp;
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
struct RawLine {
    a: Fp,
    b: Fp,
    d: Fp,
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
        // Tangent at C = (X, Y, Z): slope 3(X² − Z⁴)/(2YZ); times 2YZ³:
        // A = α·Z², B = α·X − 2Y², D = 2YZ·Z² (α, Z², Y² from the doubling).
        let (doubled, parts) = c.double_with_parts();
        emit(
            true,
            RawLine {
                a: parts.alpha.mul(&parts.delta),
                b: parts.alpha.mul(&c.x).sub(&parts.gamma.double()),
                d: doubled.z.mul(&parts.delta),
            },
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
                RawLine {
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
            num_a.push(line.a);
            num_b.push(line.b);
            den.push(line.d);
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
    let mut v = Fp2::ONE;
    let mut at = 0;
    for (step, &digit) in Q_MINUS_ONE_NAF.iter().skip(1).enumerate() {
        if step > 0 {
            v = v.square();
        }
        let used = if digit != 0 { 2 } else { 1 };
        for (lines, point) in pairs {
            for l in lines.lines.get(at..at + used).unwrap_or_default() {
                v = mul_by_line(&v, l, point);
            }
        }
        at += used;
    }
    v
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
        // v · ((A·x + B) + i·D·y): two multiplications and an F_p² product.
        let line = Fp2 {
            a: line.a.mul(&point.x).add(&line.b),
            b: line.d.mul(&point.y),
        };
        v = v.mul(&line);
    });
    final_exponentiation(v)
}

/// Final exponentiation in PF_p: (p² − 1)/q reduces to (p + 1)/q = 4; the
/// result as RFC 6508 represents it.
pub(crate) fn final_exponentiation(v: Fp2) -> Fp {
    v.square().square().to_projective_ratio()
}

/// v · ((a·x + b) + i·y): one multiplication and one (lazily reduced)
/// F_p² product.
#[inline]
fn mul_by_line(v: &Fp2, l: &Line, p: &Affine) -> Fp2 {
    v.mul(&Fp2 {
        a: l.a.mul(&p.x).add(&l.b),
        b: p.y,
    })
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
