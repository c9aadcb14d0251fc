//! A built-in test signal for when no WAV file is given: 3 seconds at
//! 8 kHz mono, six 0.5 s tones rising and falling (A4, C#5, E5, A5, E5,
//! C#5: an A-major arpeggio), each faded in and out over 10 ms so there are
//! no clicks, at −10 dBFS.
//!
//! It is bit-for-bit the same on every platform: the sine comes from a
//! polynomial evaluated with plain IEEE-754 additions and multiplications
//! (no libm, no fused multiply-add), so a recording made elsewhere can be
//! compared sample by sample.

/// Sample rate of the test signal.
pub const SAMPLE_RATE: u32 = 8000;
/// Length of the test signal in samples (3 s).
pub const LEN: usize = 24_000;

/// Tone frequencies in Hz, one per 0.5 s step.
const STEPS: [f64; 6] = [440.0, 554.365, 659.255, 880.0, 659.255, 554.365];
/// Samples per step (0.5 s).
const STEP_LEN: usize = LEN / STEPS.len();
/// Fade-in and fade-out length (10 ms).
const FADE: usize = 80;
/// Peak amplitude: −10 dBFS.
const AMPLITUDE: f64 = 10_362.0;

/// sin(2π·x) for x in [0, 1), from a Taylor polynomial on [−π/2, π/2]
/// (error below 4e-6, far under one 16-bit step at this amplitude).
fn sin_turns(x: f64) -> f64 {
    // Fold to [-0.25, 0.25] turns, where the polynomial is accurate.
    let x = if x > 0.75 {
        x - 1.0
    } else if x > 0.25 {
        0.5 - x
    } else {
        x
    };
    let r = x * core::f64::consts::TAU;
    let r2 = r * r;
    // r - r^3/3! + r^5/5! - r^7/7! + r^9/9! - r^11/11!
    r * (1.0
        + r2 * (-1.0 / 6.0
            + r2 * (1.0 / 120.0
                + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0 + r2 * (-1.0 / 39_916_800.0))))))
}

/// The test signal: [`LEN`] samples at [`SAMPLE_RATE`].
///
/// ```
/// let s = mcx_media::signal::test_signal();
/// assert_eq!(s.len(), 24_000);
/// assert_eq!(s[0], 0);
/// ```
pub fn test_signal() -> Vec<i16> {
    let mut out = Vec::with_capacity(LEN);
    for freq in STEPS {
        let inc = freq / f64::from(SAMPLE_RATE);
        let mut phase = 0.0f64;
        for n in 0..STEP_LEN {
            let fade = (n.min(STEP_LEN - 1 - n).min(FADE)) as f64 / FADE as f64;
            out.push((AMPLITUDE * fade * sin_turns(phase)).round() as i16);
            phase += inc;
            if phase >= 1.0 {
                phase -= 1.0;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_sine_is_accurate() {
        for i in 0..10_000 {
            let x = i as f64 / 10_000.0;
            let err = (sin_turns(x) - (core::f64::consts::TAU * x).sin()).abs();
            assert!(err < 4e-6, "sin error {err} at {x}");
        }
    }

    #[test]
    fn steps_have_their_pitch() {
        let s = test_signal();
        for (k, &f) in STEPS.iter().enumerate() {
            let step = &s[k * STEP_LEN..(k + 1) * STEP_LEN];
            // Count upward zero crossings over the step: about f/2 in 0.5 s.
            let ups = step.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
            assert!(
                (ups as f64 - f / 2.0).abs() <= 2.0,
                "step {k}: {ups} crossings for {f} Hz"
            );
            let peak = step.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            assert!((10_300..=10_362).contains(&peak), "step {k}: peak {peak}");
        }
    }

    #[test]
    fn is_pinned() {
        // A change to the signal changes these sums; update them knowingly.
        // The same polynomial and loop evaluated in Python (IEEE doubles,
        // same operation order) gives the same two numbers.
        let s = test_signal();
        let sum: i64 = s
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 % 97) * i64::from(v))
            .sum();
        let energy: i64 = s.iter().map(|&v| i64::from(v) * i64::from(v)).sum();
        assert_eq!((sum, energy), (-74_086_553, 1_253_758_327_748));
    }
}
