//! The Jacobi symbol of public values in variable time, by batched
//! "positive divsteps": a variant of Bernstein and Yang's divsteps
//! ("Fast constant-time gcd computation and modular inversion", 2019) in
//! which f and g stay non-negative, so that the symbol can be tracked from
//! their low bits alone (quadratic reciprocity on a swap, the second
//! supplementary law on a halving). Sixty-two steps run on single 64-bit
//! words and are recorded as a 2×2 matrix of non-negative entries that is
//! then applied to the full 1024-bit values once.
//!
//! The binary algorithm it replaces (crypto-bigint's) touches every limb
//! of both operands once per bit removed, about 2,000 full-width passes for
//! a 1024-bit modulus; this takes at most about 51 matrix applications
//! (measured) over operands that shrink as it goes.

use crypto_bigint::{JacobiSymbol, Odd, U1024};

use super::fp::LIMBS;

/// Steps per batch: the low 64 bits of f and g decide 62 steps exactly
/// (each halving of g consumes one exact bit, and the last step still
/// needs f mod 8).
const STEPS: u32 = 62;

/// Batches after which the computation gives up (the callers then fall
/// back to the binary algorithm). Convergence is not bounded by a proof
/// for positive divsteps; 1024-bit operands take at most about 51 batches
/// (`legendre_symbols_modulo_p_and_batches_stay_far_below_the_cap`).
const MAX_BATCHES: usize = 400;

/// The transition of one batch: [f; g] ← [u v; q r]·[f; g] / 2^62.
struct Transition {
    u: u64,
    v: u64,
    q: u64,
    r: u64,
}

/// The Jacobi symbol (x | m) for odd m and x < m, as −1, 0 or 1, or
/// `None` if the batches did not converge (see [`MAX_BATCHES`]). Variable
/// time: for public values only.
pub(crate) fn jacobi_vartime(x: &[u64; LIMBS], m: &[u64; LIMBS]) -> Option<i8> {
    jacobi_counting(x, m).0
}

/// The Jacobi symbol (x | m) for odd m and x < m: by positive divsteps,
/// or by the binary algorithm in the (unseen) case they did not converge.
pub(crate) fn jacobi_symbol_vartime(x: &[u64; LIMBS], m: &[u64; LIMBS]) -> i8 {
    jacobi_vartime(x, m).unwrap_or_else(|| binary_jacobi(x, m))
}

/// (x | m) by crypto-bigint's binary algorithm, which touches every limb
/// per bit removed: the fallback, and the reference tests and fuzzing
/// compare with. 0 for an even m (outside the contract).
pub(crate) fn binary_jacobi(x: &[u64; LIMBS], m: &[u64; LIMBS]) -> i8 {
    let Some(m) = Odd::new(U1024::from_words(*m)).into_option() else {
        return 0;
    };
    match U1024::from_words(*x).jacobi_symbol_vartime(&m) {
        JacobiSymbol::One => 1,
        JacobiSymbol::MinusOne => -1,
        JacobiSymbol::Zero => 0,
    }
}

/// [`jacobi_vartime`] and the number of batches it took.
fn jacobi_counting(x: &[u64; LIMBS], m: &[u64; LIMBS]) -> (Option<i8>, usize) {
    debug_assert!(m[0] & 1 == 1, "the modulus must be odd");
    if x.iter().all(|&l| l == 0) {
        // (0 | m) is 0, except (0 | 1) = 1.
        let m_is_one = m[0] == 1 && m[1..].iter().all(|&l| l == 0);
        return (Some(i8::from(m_is_one)), 0);
    }
    let mut f = *m;
    let mut g = *x;
    let mut len = LIMBS;
    // Bit 0 flips whenever (g | f) changes sign; the other bits are noise.
    let mut flips = 0u64;
    let mut delta: i64 = 1;
    for batches in 0..MAX_BATCHES {
        while len > 1 && f[len - 1] == 0 && g[len - 1] == 0 {
            len -= 1;
        }
        if f[..len] == g[..len] {
            // The fixed point: f = g = gcd(x, m).
            let gcd_is_one = f[0] == 1 && f[1..len].iter().all(|&l| l == 0);
            let symbol = match (gcd_is_one, flips & 1) {
                (false, _) => 0,
                (true, 0) => 1,
                (true, _) => -1,
            };
            return (Some(symbol), batches);
        }
        let t = batch(&mut delta, f[0], g[0], &mut flips);
        let (nf, ng) = apply(&t, &f, &g, len);
        f = nf;
        g = ng;
    }
    (None, MAX_BATCHES)
}

/// Sixty-two positive divsteps on the low words of f and g (exact in the
/// bits that decide them), tracking the symbol (g | f) in `flips`:
/// - δ > 0 and g odd: swap f and g (δ ← −δ); by reciprocity the symbol
///   flips when both are 3 mod 4;
/// - g odd: g ← g + f (the same residue mod f);
/// - g ← g/2, δ ← δ + 1: the symbol flips when f ≡ 3 or 5 mod 8.
fn batch(delta: &mut i64, f0: u64, g0: u64, flips: &mut u64) -> Transition {
    let (mut f, mut g) = (f0, g0);
    // Rows of the scaled transition: 2^k·f_k = u·f + v·g, 2^k·g_k = q·f + r·g.
    let (mut u, mut v, mut q, mut r) = (1u64, 0u64, 0u64, 1u64);
    let mut left = STEPS;
    while left > 0 {
        // A run of even g: halvings only (no swap can happen while g is
        // even), their flips in one go.
        let zeros = g.trailing_zeros().min(left);
        if zeros > 0 {
            g >>= zeros;
            u <<= zeros;
            v <<= zeros;
            *delta += i64::from(zeros);
            *flips ^= u64::from(zeros) & ((f >> 1) ^ (f >> 2));
            left -= zeros;
            if left == 0 {
                break;
            }
        }
        // g is odd here.
        if *delta > 0 {
            std::mem::swap(&mut f, &mut g);
            std::mem::swap(&mut u, &mut q);
            std::mem::swap(&mut v, &mut r);
            *delta = -*delta;
            *flips ^= (f & g) >> 1;
        }
        g = g.wrapping_add(f);
        q += u;
        r += v;
        g >>= 1;
        u <<= 1;
        v <<= 1;
        *delta += 1;
        *flips ^= (f >> 1) ^ (f >> 2);
        left -= 1;
    }
    Transition { u, v, q, r }
}

/// ([u v; q r]·[f; g]) / 2^62 over the `len` low limbs (the others are
/// zero). The entries are at most 2^62 and the results stay below the
/// modulus, so each fits in LIMBS limbs; the divisions are exact.
fn apply(
    t: &Transition,
    f: &[u64; LIMBS],
    g: &[u64; LIMBS],
    len: usize,
) -> ([u64; LIMBS], [u64; LIMBS]) {
    (combine(t.u, f, t.v, g, len), combine(t.q, f, t.r, g, len))
}

fn combine(a: u64, f: &[u64; LIMBS], b: u64, g: &[u64; LIMBS], len: usize) -> [u64; LIMBS] {
    let mut wide = [0u64; LIMBS + 1];
    let mut carry = 0u128;
    for i in 0..len {
        let acc = u128::from(a) * u128::from(f[i]) + u128::from(b) * u128::from(g[i]) + carry;
        wide[i] = acc as u64;
        carry = acc >> 64;
    }
    wide[len] = carry as u64;
    debug_assert!(wide[0] & ((1 << STEPS) - 1) == 0, "inexact division");
    debug_assert!(wide[len] >> STEPS == 0, "result above the modulus");
    let mut out = [0u64; LIMBS];
    for i in 0..len {
        out[i] = (wide[i] >> STEPS) | (wide[i + 1] << (64 - STEPS));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(x: &[u64; LIMBS], m: &[u64; LIMBS]) -> i8 {
        binary_jacobi(x, m)
    }

    /// p of RFC 6509 (≡ 3 mod 4): −1 is not a square, squares are, and
    /// the symbol is multiplicative; the number of batches for 1024-bit
    /// operands stays far below the cap.
    #[test]
    fn legendre_symbols_modulo_p_and_batches_stay_far_below_the_cap() {
        use crate::sakke::fp::{Fp, P};
        let minus_one = Fp::ONE.neg();
        assert_eq!(
            jacobi_vartime(&minus_one.to_canonical_limbs(), &P),
            Some(-1)
        );
        assert_eq!(jacobi_vartime(&[0; LIMBS], &P), Some(0));
        let mut most = 0;
        let mut x = Fp::ONE.double().add(&Fp::ONE);
        for _ in 0..200 {
            x = x.mul(&x.add(&minus_one)).add(&minus_one.neg().double());
            let canonical = x.to_canonical_limbs();
            let (symbol, batches) = jacobi_counting(&canonical, &P);
            most = most.max(batches);
            assert_eq!(symbol, Some(reference(&canonical, &P)));
            let square = x.square().to_canonical_limbs();
            assert_eq!(jacobi_vartime(&square, &P), Some(1));
            let negated = x.neg().to_canonical_limbs();
            assert_eq!(jacobi_vartime(&negated, &P), symbol.map(|s| -s));
        }
        assert!(most < MAX_BATCHES / 3, "{most} batches");
        println!("most batches: {most}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Agrees with crypto-bigint's binary Jacobi symbol on random odd
        /// moduli of every size up to 1024 bits, composite ones included.
        #[test]
        fn matches_the_binary_algorithm(
            m in proptest::array::uniform16(any::<u64>()),
            x in proptest::array::uniform16(any::<u64>()),
            top in 0usize..LIMBS,
        ) {
            let mut m = m;
            m[0] |= 1;
            for l in m.iter_mut().skip(top + 1) {
                *l = 0;
            }
            let x = U1024::from_words(x).rem_vartime(&U1024::from_words(m).to_nz().expect("odd")).to_words();
            prop_assert_eq!(jacobi_vartime(&x, &m), Some(reference(&x, &m)));
        }
    }
}
