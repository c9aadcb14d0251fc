//! Band-limited resampling by windowed-sinc interpolation (J. O. Smith,
//! "Digital Audio Resampling", the method of libresample and sox's `rate`
//! at low quality settings).
//!
//! Each output sample is the input convolved with a low-pass sinc centred on
//! the output instant, so any ratio works (44.1 kHz → 8 kHz included) and no
//! intermediate rate is needed. The low-pass cut-off is 95 % of the lower
//! Nyquist frequency, so downsampling to 8 kHz keeps speech up to 3.8 kHz
//! and suppresses what would alias. The sinc spans 16 zero crossings each
//! side and is shaped by a Blackman window (sidelobes below −74 dB, well
//! under G.711's own quantisation noise of about −38 dB for speech).
//! Linear interpolation would alias everything between 4 and 22 kHz of a
//! 44.1 kHz file back into the voice band, which is why it is not used.
//!
//! The kernel is tabulated at 256 points per zero crossing and read with
//! linear interpolation between table points.

use core::f64::consts::PI;

/// Zero crossings of the sinc on each side of the centre.
const ZERO_CROSSINGS: usize = 16;
/// Table points per zero crossing.
const PHASES: usize = 256;
/// Cut-off as a fraction of the lower of the two Nyquist frequencies.
const ROLLOFF: f64 = 0.95;

/// sinc(u)·Blackman(u/Z) for u = i/PHASES, i in 0..=Z·PHASES (plus one
/// zero so the interpolation can read index+1 at the end).
fn kernel() -> Vec<f64> {
    let n = ZERO_CROSSINGS * PHASES;
    (0..=n + 1)
        .map(|i| {
            if i >= n {
                return 0.0;
            }
            let u = i as f64 / PHASES as f64;
            let sinc = if i == 0 {
                1.0
            } else {
                (PI * u).sin() / (PI * u)
            };
            let x = u / ZERO_CROSSINGS as f64;
            let window = 0.42 + 0.5 * (PI * x).cos() + 0.08 * (2.0 * PI * x).cos();
            sinc * window
        })
        .collect()
}

/// Resamples `input` from `from` Hz to `to` Hz. Equal rates return the
/// input unchanged; a zero rate returns nothing.
pub(crate) fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to {
        return input.to_vec();
    }
    if from == 0 || to == 0 || input.is_empty() {
        return Vec::new();
    }
    let table = kernel();
    let step = f64::from(from) / f64::from(to);
    // Cut-off in cycles per input sample, times two (1.0 = input Nyquist).
    let fc = (f64::from(to) / f64::from(from)).min(1.0) * ROLLOFF;
    let half_width = ZERO_CROSSINGS as f64 / fc;
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let last = input.len() as i64 - 1;
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len {
        let t = n as f64 * step;
        let lo = ((t - half_width).ceil() as i64).max(0);
        let hi = ((t + half_width).floor() as i64).min(last);
        let mut acc = 0.0f64;
        for j in lo..=hi {
            let pos = (t - j as f64).abs() * fc * PHASES as f64;
            let i = pos as usize;
            if i >= ZERO_CROSSINGS * PHASES {
                continue;
            }
            let frac = pos - i as f64;
            let h = table[i] + frac * (table[i + 1] - table[i]);
            acc += f64::from(input[j as usize]) * h;
        }
        out.push((acc * fc) as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| (amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    /// Amplitude of `freq` in `x` (sampled at `rate`), by correlation with
    /// a sine and a cosine, over the middle of the signal (edges excluded).
    fn amplitude(x: &[f32], freq: f64, rate: u32) -> f64 {
        let (a, b) = (x.len() / 4, 3 * x.len() / 4);
        let (mut s, mut c) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate().take(b).skip(a) {
            let w = 2.0 * PI * freq * i as f64 / f64::from(rate);
            s += f64::from(v) * w.sin();
            c += f64::from(v) * w.cos();
        }
        2.0 * (s * s + c * c).sqrt() / (b - a) as f64
    }

    #[test]
    fn passband_kept_and_alias_band_removed() {
        for from in [44_100, 48_000, 16_000] {
            let y = resample(&tone(1000.0, from, 0.5, 10_000.0), from, 8000);
            assert_eq!(y.len(), 4000);
            let a = amplitude(&y, 1000.0, 8000);
            assert!(
                (a - 10_000.0).abs() < 50.0,
                "{from} Hz: 1 kHz amplitude {a}"
            );
            let y = resample(&tone(3000.0, from, 0.5, 10_000.0), from, 8000);
            let a = amplitude(&y, 3000.0, 8000);
            assert!(
                (a - 10_000.0).abs() < 200.0,
                "{from} Hz: 3 kHz amplitude {a}"
            );
            // 6 kHz would alias to 2 kHz at 8 kHz: it must be gone (< -60 dB).
            let y = resample(&tone(6000.0, from, 0.5, 10_000.0), from, 8000);
            let mid = &y[y.len() / 4..3 * y.len() / 4];
            let rms =
                (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
            assert!(rms < 10.0, "{from} Hz: 6 kHz leaked, rms {rms}");
        }
    }

    #[test]
    fn upsampling_keeps_a_tone() {
        let y = resample(&tone(440.0, 8000, 0.5, 8000.0), 8000, 11_025);
        let a = amplitude(&y, 440.0, 11_025);
        assert!((a - 8000.0).abs() < 40.0, "440 Hz amplitude {a}");
    }
}
