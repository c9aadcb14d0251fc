//! The reduced Tate–Lichtenbaum pairing of RFC 6508 section 3.2, with the
//! Miller-loop lines of a fixed point precomputed.
//!
//! RFC 6508 computes ⟨R, Q⟩ by walking multiples of R and evaluating lines at
//! ψ(Q) = (−Q_x, i·Q_y). For points of the order-q group the pairing is
//! symmetric (⟨aP, bP⟩ = ⟨P, P⟩^{ab} = ⟨bP, aP⟩), so we walk multiples of the
//! *fixed* argument (the receiver's RSK) once, store each line normalised to
//! `a·x + b + i·y`, and per pairing only evaluate those lines at the varying
//! point: one multiplication per line instead of a point operation. The
//! line walk is the same fixed sequence for every key, so it is constant time.

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

/// The precomputed Miller loop of one fixed point of order q.
pub(crate) struct MillerLines {
    /// One tangent line per digit of the NAF of q − 1 after the first, then
    /// one chord line per non-zero digit, in loop order.
    lines: Vec<Line>,
}

impl MillerLines {
    /// Walks the Miller loop of `fixed` over the non-adjacent form of q − 1
    /// (about 340 chord lines instead of 511 for the binary form). A −1
    /// digit uses the chord through −F; the vertical lines this leaves out
    /// take values in F_p at ψ(x, y) and vanish in PF_p.
    pub(crate) fn new(fixed: &Affine) -> Self {
        // Each line is kept as (A, B, D) with value (A·x + B) + i·D·y, then
        // divided by D once for all lines together.
        let mut num_a = Vec::with_capacity(1536);
        let mut num_b = Vec::with_capacity(1536);
        let mut den = Vec::with_capacity(1536);
        let mut c = fixed.to_jacobian();
        let negated = Affine {
            x: fixed.x,
            y: fixed.y.neg(),
        };
        for &digit in Q_MINUS_ONE_NAF.iter().skip(1) {
            // Tangent at C = (X, Y, Z): slope 3(X² − Z⁴)/(2YZ); times 2YZ³:
            // A = α·Z², B = α·X − 2Y², D = 2YZ·Z² (α, Z², Y² from the doubling).
            let (doubled, parts) = c.double_with_parts();
            num_a.push(parts.alpha.mul(&parts.delta));
            num_b.push(parts.alpha.mul(&c.x).sub(&parts.gamma.double()));
            den.push(doubled.z.mul(&parts.delta));
            c = doubled;
            if digit != 0 {
                // Chord through C and F = (x_F, y_F) (or −F for digit −1):
                // H = x_F·Z² − X, r = y_F·Z³ − Y, slope r/(Z·H);
                // A = r, B = r·x_F − y_F·Z·H, D = Z·H.
                let fixed = if digit > 0 { fixed } else { &negated };
                let z2 = c.z.square();
                let h = fixed.x.mul(&z2).sub(&c.x);
                let r = fixed.y.mul(&z2.mul(&c.z)).sub(&c.y);
                let zh = c.z.mul(&h);
                num_a.push(r);
                num_b.push(r.mul(&fixed.x).sub(&fixed.y.mul(&zh)));
                den.push(zh);
                c = c.add(&fixed.to_jacobian());
            }
        }
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
        Self { lines }
    }

    /// ⟨fixed, point⟩ as RFC 6508 represents it: the F_p integer b/a of the
    /// PF_p element v^((p+1)/q), v the Miller-loop value.
    pub(crate) fn pairing(&self, point: &Affine) -> Fp {
        let mut v = Fp2::ONE;
        let mut lines = self.lines.iter();
        let mut first = true;
        for &digit in Q_MINUS_ONE_NAF.iter().skip(1) {
            if !first {
                v = v.square();
            }
            first = false;
            if let Some(l) = lines.next() {
                v = mul_by_line(&v, l, point);
            }
            if digit != 0 {
                if let Some(l) = lines.next() {
                    v = mul_by_line(&v, l, point);
                }
            }
        }
        // Final exponentiation in PF_p: (p² − 1)/q reduces to (p + 1)/q = 4.
        v.square().square().to_projective_ratio()
    }
}

/// v · ((a·x + b) + i·y): four multiplications.
#[inline]
fn mul_by_line(v: &Fp2, l: &Line, p: &Affine) -> Fp2 {
    let re = l.a.mul(&p.x).add(&l.b);
    let t0 = v.a.mul(&re);
    let t1 = v.b.mul(&p.y);
    let t2 = v.a.add(&v.b).mul(&re.add(&p.y));
    Fp2 {
        a: t0.sub(&t1),
        b: t2.sub(&t0).sub(&t1),
    }
}
