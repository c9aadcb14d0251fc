//! G.711 µ-law (PCMU, RFC 3551 payload type 0) encoding and decoding.
//!
//! ITU-T G.711 µ-law maps a 14-bit uniform PCM sample (sign and 13 bits of
//! magnitude) to an octet: sign, a 3-bit segment (exponent) and a 4-bit step
//! (mantissa), all bits inverted on the wire. The encoder here is the
//! classic segment/bias algorithm (bias 33 on the 14-bit scale, clip at
//! 8159), as in Sun Microsystems' public-domain `g711.c` and the encoders
//! derived from it (CPython's `audioop`, FFmpeg's `pcm_mulaw`): a 16-bit
//! sample is taken to 14 bits with an arithmetic shift (`x >> 2`, which
//! rounds towards −∞), and a negative value's magnitude is its negation.
//! The tests compare every one of the 65,536 encodings and all 256 decodings
//! with `audioop`.
//!
//! ITU-T G.191's `g711.c` takes the one's complement of negative samples
//! instead, so for one negative input in four on a step boundary it picks
//! the code one step nearer zero. Both are valid G.711 quantisers (the
//! decoder is the same); we follow the far more widespread one.

/// Bias added to the 14-bit magnitude so that every segment starts on a
/// power of two (G.711 µ-law's 33 on the 14-bit scale; 0x84 on 16 bits).
const BIAS14: i32 = 33;

/// Largest 14-bit magnitude the encoder looks at (G.711's overload point:
/// 8159 + 33 = 0x2000, which lands just past segment 7 and is coded as the
/// segment's top step).
const CLIP14: i32 = 8159;

/// Number of PCMU octets (and samples) in a 20 ms frame at 8000 Hz.
pub const FRAME_LEN: usize = 160;

/// Encodes one 16-bit linear sample to a µ-law octet.
#[inline]
#[must_use]
pub const fn encode_sample(sample: i16) -> u8 {
    // The encoder only sees the 14-bit value, so a 16 KiB table indexed by
    // it holds every answer; a lookup is several times faster than the
    // segment search (see docs/BENCHMARKS.md).
    ENCODE[(((sample as i32) >> 2) + 8192) as usize]
}

/// µ-law code of every 14-bit value -8192..=8191, computed at compile time.
static ENCODE: [u8; 16384] = {
    let mut table = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        table[i] = encode_computed(((i as i32 - 8192) << 2) as i16);
        i += 1;
    }
    table
};

/// The segment/bias encoder itself (builds [`ENCODE`]).
const fn encode_computed(sample: i16) -> u8 {
    // Arithmetic shift to the 14-bit scale G.711 µ-law is defined on.
    let mut v = (sample as i32) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > CLIP14 {
        v = CLIP14;
    }
    v += BIAS14;
    // v is in 33..=0x2000: segment 0 holds v <= 0x3F, and each next segment
    // doubles, so the segment is the bit length of v minus 6.
    let bits = 32 - v.leading_zeros();
    let seg = bits.saturating_sub(6);
    if seg >= 8 {
        // Only v = 0x2000 (full scale): the top code of segment 7.
        return 0x7F ^ mask;
    }
    let code = ((seg << 4) as i32 | ((v >> (seg + 1)) & 0x0F)) as u8;
    code ^ mask
}

/// Decodes one µ-law octet to a 16-bit linear sample (G.711 Table 2a
/// decoder output values, scaled by 4 to 16 bits).
#[inline]
#[must_use]
pub const fn decode_sample(code: u8) -> i16 {
    DECODE[code as usize]
}

const fn decode_computed(code: u8) -> i16 {
    let u = !code;
    // Segment start plus half a step, on the 16-bit scale (bias 0x84 = 4 * 33).
    let t = ((((u & 0x0F) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

/// The 256 decoder outputs, computed at compile time.
static DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_computed(i as u8);
        i += 1;
    }
    table
};

/// Encodes `pcm` into `out` and returns how many octets were written:
/// `min(pcm.len(), out.len())`, one octet per sample.
///
/// ```
/// let pcm = [0i16, 1000, -1000, i16::MAX];
/// let mut out = [0u8; 4];
/// assert_eq!(mcx_media::pcmu::encode(&pcm, &mut out), 4);
/// assert_eq!(out, [0xFF, 0xCE, 0x4E, 0x80]);
/// ```
pub fn encode(pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    for (o, &s) in out[..n].iter_mut().zip(&pcm[..n]) {
        *o = encode_sample(s);
    }
    n
}

/// Decodes `codes` into `out` and returns how many samples were written:
/// `min(codes.len(), out.len())`.
pub fn decode(codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&codes[..n]) {
        *o = DECODE[c as usize];
    }
    n
}

/// Decodes `codes`, appending the samples to `out`.
pub fn decode_append(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| DECODE[c as usize]));
}

/// The µ-law octet that decodes to silence (0): 0xFF, "positive zero".
pub const SILENCE: u8 = 0xFF;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_points() {
        // G.711 Table 2a: code 0xFF/0x7F decode to 0, 0x80 to +8031 on the
        // 14-bit scale (32124 on 16 bits), 0x00 to -32124.
        assert_eq!(decode_sample(0xFF), 0);
        assert_eq!(decode_sample(0x7F), 0);
        assert_eq!(decode_sample(0x80), 32124);
        assert_eq!(decode_sample(0x00), -32124);
        assert_eq!(encode_sample(0), 0xFF);
        assert_eq!(encode_sample(i16::MIN), 0x00);
        assert_eq!(encode_sample(i16::MAX), 0x80);
    }

    #[test]
    fn encode_decode_lengths() {
        let mut out = [0u8; 2];
        assert_eq!(encode(&[1, 2, 3], &mut out), 2);
        let mut pcm = [0i16; 5];
        assert_eq!(decode(&[0xFF; 3], &mut pcm), 3);
    }
}
