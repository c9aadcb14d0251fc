//! WAV against another implementation: CPython's `wave` module.
//! - Files `wave` wrote (`tests/data/py_wave_*.wav`, by `tests/data/gen.py`)
//!   must read as the samples `wave.readframes` returns for them (the
//!   committed `.raw` files).
//! - A file we write must read back in `wave` (run live when python3 is
//!   installed) as 8 kHz mono 16-bit with exactly our samples.

use std::process::Command;

use mcx_media::wav::{self, SampleFormat};
use mcx_media::{pcmu, signal};

fn le_i16(raw: &[u8]) -> Vec<i16> {
    raw.chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

#[test]
fn reads_a_python_wave_44100_stereo_file() {
    let audio = wav::read(include_bytes!("data/py_wave_44100_stereo_s16.wav")).expect("valid");
    assert_eq!((audio.sample_rate, audio.channels), (44_100, 2));
    assert_eq!(audio.format, SampleFormat::I16);
    assert_eq!(
        audio.samples,
        le_i16(include_bytes!("data/py_wave_44100_stereo_s16.raw"))
    );
    assert_eq!(audio.frames(), 4410);

    // Downmix and resample: 0.1 s at 8 kHz, left 440 Hz at 12000 and right
    // 1 kHz at -8000 average to 6000 and 4000.
    let mono = audio.to_mono_8k();
    assert_eq!(mono.len(), 800);
    let amp = |f: f64| {
        let (a, b) = (200, 600);
        let (mut s, mut c) = (0.0, 0.0);
        for (i, &v) in mono.iter().enumerate().take(b).skip(a) {
            let w = 2.0 * std::f64::consts::PI * f * i as f64 / 8000.0;
            s += f64::from(v) * w.sin();
            c += f64::from(v) * w.cos();
        }
        2.0 * (s * s + c * c).sqrt() / (b - a) as f64
    };
    assert!(
        (amp(440.0) - 6000.0).abs() < 120.0,
        "440 Hz: {}",
        amp(440.0)
    );
    assert!(
        (amp(1000.0) - 4000.0).abs() < 80.0,
        "1 kHz: {}",
        amp(1000.0)
    );
}

#[test]
fn reads_a_python_wave_8bit_file() {
    let audio = wav::read(include_bytes!("data/py_wave_8000_mono_u8.wav")).expect("valid");
    assert_eq!((audio.sample_rate, audio.channels), (8000, 1));
    assert_eq!(audio.format, SampleFormat::U8);
    let expected: Vec<i16> = include_bytes!("data/py_wave_8000_mono_u8.raw")
        .iter()
        .map(|&b| (i16::from(b) - 128) * 256)
        .collect();
    assert_eq!(audio.samples, expected);
    // 8 kHz mono passes through untouched.
    assert_eq!(audio.to_mono_8k(), expected);
}

#[test]
fn python_wave_reads_what_we_write() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed; cannot check our WAV with python's wave");
        return;
    }
    // The test signal after a G.711 round trip: what a member records.
    let pcm: Vec<i16> = signal::test_signal()
        .iter()
        .map(|&s| pcmu::decode_sample(pcmu::encode_sample(s)))
        .collect();
    let path = std::env::temp_dir().join(format!("mcx-media-wav-{}.wav", std::process::id()));
    std::fs::write(&path, wav::write(&pcm)).expect("write temp file");
    let script = "import sys, wave\n\
        w = wave.open(sys.argv[1], 'rb')\n\
        print(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes())\n\
        print(w.readframes(w.getnframes()).hex())\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("1 2 8000 {}", pcm.len()).as_str())
    );
    let hex = lines.next().expect("frames line");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(le_i16(&bytes), pcm);
}
