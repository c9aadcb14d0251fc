//! G.711 µ-law against an independent implementation: CPython 3.11's
//! `audioop` (Modules/audioop.c, from Sun Microsystems' public-domain
//! g711.c). `tests/data/gen.py` wrote its output once:
//! - `pcmu_decode_audioop.bin`: `audioop.ulaw2lin(bytes(range(256)), 2)`,
//!   the 256 decoder outputs as little-endian i16;
//! - `pcmu_encode_audioop.bin`: `audioop.lin2ulaw` of every i16 from
//!   -32768 to 32767 in order, one octet each.

use mcx_media::pcmu;
use proptest::prelude::*;

const DECODE: &[u8] = include_bytes!("data/pcmu_decode_audioop.bin");
const ENCODE: &[u8] = include_bytes!("data/pcmu_encode_audioop.bin");

#[test]
fn all_256_decodings_equal_audioop() {
    assert_eq!(DECODE.len(), 512);
    for code in 0..=255u8 {
        let i = 2 * usize::from(code);
        let expected = i16::from_le_bytes([DECODE[i], DECODE[i + 1]]);
        assert_eq!(pcmu::decode_sample(code), expected, "code {code:#04x}");
    }
}

#[test]
fn all_65536_encodings_equal_audioop() {
    assert_eq!(ENCODE.len(), 65536);
    let mismatches: Vec<(i16, u8, u8)> = (i16::MIN..=i16::MAX)
        .zip(ENCODE)
        .map(|(x, &want)| (x, pcmu::encode_sample(x), want))
        .filter(|(_, got, want)| got != want)
        .collect();
    assert!(
        mismatches.is_empty(),
        "first mismatches (x, ours, audioop): {:?}",
        &mismatches[..mismatches.len().min(10)]
    );
}

#[test]
fn slice_api_matches_per_sample() {
    let pcm: Vec<i16> = (0..160).map(|i| (i * 409 - 32_000) as i16).collect();
    let mut codes = [0u8; 160];
    assert_eq!(pcmu::encode(&pcm, &mut codes), 160);
    let mut back = [0i16; 160];
    assert_eq!(pcmu::decode(&codes, &mut back), 160);
    for i in 0..160 {
        assert_eq!(codes[i], pcmu::encode_sample(pcm[i]));
        assert_eq!(back[i], pcmu::decode_sample(codes[i]));
    }
}

proptest! {
    /// decode(encode(x)) is within half a quantisation step of x, plus the
    /// 3 that the 16 → 14-bit truncation can add (the step of the segment
    /// holding the code: 8 << segment on the 16-bit scale). Beyond the
    /// overload point (|x| > 32635) the output is full scale, ±32124.
    #[test]
    fn round_trip_within_the_step(x in any::<i16>()) {
        let code = pcmu::encode_sample(x);
        let y = pcmu::decode_sample(code);
        if i32::from(x).abs() > 32_635 {
            prop_assert_eq!(i32::from(y).abs(), 32_124);
        } else {
            let step = 8i32 << ((!code >> 4) & 7);
            let err = (i32::from(x) - i32::from(y)).abs();
            prop_assert!(2 * err <= step + 6, "x {} -> {:#04x} -> {}, step {}", x, code, y, step);
        }
        // Decoding is idempotent through the encoder: a decoded value
        // encodes back to a code that decodes to the same value.
        prop_assert_eq!(pcmu::decode_sample(pcmu::encode_sample(y)), y);
    }
}
