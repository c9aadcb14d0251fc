//! WAV (RIFF/WAVE) reading and writing, with downmix and resampling to the
//! 8 kHz mono that PCMU carries.
//!
//! Reads integer PCM (format tag 1) of 8, 16, 24 or 32 bits and IEEE float
//! (format tag 3) of 32 bits, also inside `WAVE_FORMAT_EXTENSIBLE`, any
//! sample rate from 1 Hz to 768 kHz and 1 to 8 channels. Chunks may come in
//! any order; unknown chunks (`LIST`, `fact`, ...) are skipped. Writes
//! 16-bit PCM. Every malformed input gives a [`WavError`] saying what was
//! wrong; nothing is allocated from a size field before that size has been
//! checked against the octets actually present.

use crate::resample;

/// `WAVE_FORMAT_PCM`: integer PCM.
const FORMAT_PCM: u16 = 1;
/// `WAVE_FORMAT_IEEE_FLOAT`.
const FORMAT_FLOAT: u16 = 3;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format is in the sub-format GUID.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Most channels accepted (7.1 surround).
pub const MAX_CHANNELS: u16 = 8;
/// Highest sample rate accepted, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Largest data chunk accepted, in octets (about 25 minutes of 48 kHz
/// stereo 16-bit): a cap on what one file may make us allocate.
pub const MAX_DATA_LEN: usize = 256 << 20;

/// Why a WAV file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file does not start with `RIFF` .... `WAVE`.
    #[error("not a RIFF/WAVE file (no \"RIFF\" ... \"WAVE\" header)")]
    NotRiffWave,
    /// A chunk header declares more octets than the file holds.
    #[error("chunk {id:?} declares {declared} octets but only {available} remain")]
    TruncatedChunk {
        /// The chunk's four-character id.
        id: String,
        /// Size from the chunk header.
        declared: u64,
        /// Octets left in the file after the chunk header.
        available: usize,
    },
    /// The data chunk declares more octets than the file holds.
    #[error("data chunk declares {declared} octets but only {available} remain")]
    TruncatedData {
        /// Size from the data chunk header.
        declared: u64,
        /// Octets left in the file after the data chunk header.
        available: usize,
    },
    /// There is no `fmt ` chunk.
    #[error("no \"fmt \" chunk")]
    NoFmtChunk,
    /// There is no `data` chunk.
    #[error("no \"data\" chunk")]
    NoDataChunk,
    /// A `fmt ` or `data` chunk appears twice.
    #[error("more than one {0:?} chunk")]
    DuplicateChunk(&'static str),
    /// The `fmt ` chunk is shorter than its format needs.
    #[error("\"fmt \" chunk of {len} octets, format needs {needed}")]
    FmtTooShort {
        /// The chunk's size.
        len: usize,
        /// Octets the format needs (16, or 40 for WAVE_FORMAT_EXTENSIBLE).
        needed: usize,
    },
    /// The format tag is neither PCM (1) nor IEEE float (3).
    #[error("unsupported WAV format tag {0:#06x} (only PCM 1 and IEEE float 3)")]
    UnsupportedFormat(u16),
    /// The bit depth does not go with the format.
    #[error("unsupported {bits}-bit samples for format tag {format}")]
    UnsupportedBits {
        /// Format tag (1 or 3).
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// Zero channels, or more than [`MAX_CHANNELS`].
    #[error("unsupported channel count {0} (1 to 8)")]
    BadChannels(u16),
    /// Sample rate 0 or above [`MAX_SAMPLE_RATE`].
    #[error("absurd sample rate {0} Hz")]
    BadSampleRate(u32),
    /// The block align field is not channels × bytes per sample.
    #[error("block align {got} does not match {channels} channels of {bits} bits ({expected})")]
    BadBlockAlign {
        /// Block align from the file.
        got: u16,
        /// channels × bits / 8.
        expected: u32,
        /// Channels.
        channels: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// The data chunk is not a whole number of sample frames.
    #[error("data chunk of {len} octets is not a whole number of {block_align}-octet frames")]
    PartialFrame {
        /// Data chunk size.
        len: usize,
        /// Octets per frame.
        block_align: u16,
    },
    /// The data chunk exceeds [`MAX_DATA_LEN`].
    #[error("data chunk of {0} octets is larger than the 256 MiB this reader accepts")]
    TooLarge(u64),
}

/// The sample encoding a WAV file had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampleFormat {
    /// Unsigned 8-bit PCM (offset 128).
    U8,
    /// Signed 16-bit little-endian PCM.
    I16,
    /// Signed 24-bit little-endian PCM.
    I24,
    /// Signed 32-bit little-endian PCM.
    I32,
    /// 32-bit IEEE float, full scale ±1.0.
    F32,
}

/// Audio read from a WAV file: interleaved 16-bit samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// Frames per second.
    pub sample_rate: u32,
    /// Channels per frame.
    pub channels: u16,
    /// What the file stored; `samples` are converted to 16 bits (24- and
    /// 32-bit integers keep their top 16 bits, floats are scaled by 32767
    /// and clamped).
    pub format: SampleFormat,
    /// Interleaved samples, `channels` per frame.
    pub samples: Vec<i16>,
}

impl Audio {
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// The audio as 8 kHz mono: channels averaged, then resampled with the
    /// windowed-sinc resampler (see the crate's docs/media.md). 8 kHz mono
    /// input comes back unchanged.
    pub fn to_mono_8k(&self) -> Vec<i16> {
        self.to_mono_at(8000)
    }

    /// The audio as mono at `rate` Hz (see [`Audio::to_mono_8k`]).
    pub fn to_mono_at(&self, rate: u32) -> Vec<i16> {
        let ch = usize::from(self.channels.max(1));
        if ch == 1 && self.sample_rate == rate {
            return self.samples.clone();
        }
        let mono: Vec<f32> = self
            .samples
            .chunks_exact(ch)
            .map(|f| f.iter().map(|&s| f32::from(s)).sum::<f32>() / ch as f32)
            .collect();
        resample::resample(&mono, self.sample_rate, rate)
            .into_iter()
            .map(to_i16)
            .collect()
    }
}

fn to_i16(x: f32) -> i16 {
    // `as` saturates on overflow (and maps NaN to 0).
    x.round() as i16
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a WAV file held in memory.
///
/// ```
/// let wav = mcx_media::wav::write(&[0, 1000, -1000]);
/// let audio = mcx_media::wav::read(&wav)?;
/// assert_eq!((audio.sample_rate, audio.channels), (8000, 1));
/// assert_eq!(audio.samples, [0, 1000, -1000]);
/// # Ok::<(), mcx_media::wav::WavError>(())
/// ```
pub fn read(file: &[u8]) -> Result<Audio, WavError> {
    if file.len() < 12 || &file[0..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Err(WavError::NotRiffWave);
    }
    // The RIFF size field is not trusted: streaming writers leave it 0 or
    // 0xFFFFFFFF. Chunks are walked within the octets actually present.
    let mut fmt: Option<&[u8]> = None;
    let mut data: Option<&[u8]> = None;
    let mut at = 12;
    while file.len() - at >= 8 {
        let id = &file[at..at + 4];
        let declared = u32_at(file, at + 4);
        let body_at = at + 8;
        let available = file.len() - body_at;
        let len = usize::try_from(declared).unwrap_or(usize::MAX);
        if id == b"data" {
            if u64::from(declared) > MAX_DATA_LEN as u64 {
                return Err(WavError::TooLarge(declared.into()));
            }
            if len > available {
                return Err(WavError::TruncatedData {
                    declared: declared.into(),
                    available,
                });
            }
            if data.replace(&file[body_at..body_at + len]).is_some() {
                return Err(WavError::DuplicateChunk("data"));
            }
        } else if len > available {
            return Err(WavError::TruncatedChunk {
                id: String::from_utf8_lossy(id).into_owned(),
                declared: declared.into(),
                available,
            });
        } else if id == b"fmt " && fmt.replace(&file[body_at..body_at + len]).is_some() {
            return Err(WavError::DuplicateChunk("fmt "));
        }
        // Chunks are padded to an even length (RIFF); a missing final pad
        // octet is tolerated.
        at = (body_at + len + (len & 1)).min(file.len());
    }
    let fmt = fmt.ok_or(WavError::NoFmtChunk)?;
    let data = data.ok_or(WavError::NoDataChunk)?;
    let (format, channels, sample_rate) = parse_fmt(fmt)?;
    let block_align = u16_at(fmt, 12);
    if data.len() % usize::from(block_align) != 0 {
        return Err(WavError::PartialFrame {
            len: data.len(),
            block_align,
        });
    }
    let samples = match format {
        SampleFormat::U8 => data.iter().map(|&b| (i16::from(b) - 128) << 8).collect(),
        SampleFormat::I16 => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
        SampleFormat::I24 => data
            .chunks_exact(3)
            .map(|c| i16::from_le_bytes([c[1], c[2]]))
            .collect(),
        SampleFormat::I32 => data
            .chunks_exact(4)
            .map(|c| i16::from_le_bytes([c[2], c[3]]))
            .collect(),
        SampleFormat::F32 => data
            .chunks_exact(4)
            .map(|c| to_i16(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * 32767.0))
            .collect(),
    };
    Ok(Audio {
        sample_rate,
        channels,
        format,
        samples,
    })
}

/// Checks a `fmt ` chunk (WAVEFORMATEX, or WAVEFORMATEXTENSIBLE whose
/// sub-format GUID starts with the real format tag).
fn parse_fmt(fmt: &[u8]) -> Result<(SampleFormat, u16, u32), WavError> {
    if fmt.len() < 16 {
        return Err(WavError::FmtTooShort {
            len: fmt.len(),
            needed: 16,
        });
    }
    let mut tag = u16_at(fmt, 0);
    let channels = u16_at(fmt, 2);
    let sample_rate = u32_at(fmt, 4);
    let block_align = u16_at(fmt, 12);
    let bits = u16_at(fmt, 14);
    if tag == FORMAT_EXTENSIBLE {
        if fmt.len() < 40 {
            return Err(WavError::FmtTooShort {
                len: fmt.len(),
                needed: 40,
            });
        }
        // The GUID's first two octets are the format tag (KSDATAFORMAT_SUBTYPE_*).
        tag = u16_at(fmt, 24);
    }
    let format = match (tag, bits) {
        (FORMAT_PCM, 8) => SampleFormat::U8,
        (FORMAT_PCM, 16) => SampleFormat::I16,
        (FORMAT_PCM, 24) => SampleFormat::I24,
        (FORMAT_PCM, 32) => SampleFormat::I32,
        (FORMAT_FLOAT, 32) => SampleFormat::F32,
        (FORMAT_PCM | FORMAT_FLOAT, _) => {
            return Err(WavError::UnsupportedBits { format: tag, bits });
        }
        _ => return Err(WavError::UnsupportedFormat(tag)),
    };
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(WavError::BadChannels(channels));
    }
    if sample_rate == 0 || sample_rate > MAX_SAMPLE_RATE {
        return Err(WavError::BadSampleRate(sample_rate));
    }
    let expected = u32::from(channels) * u32::from(bits / 8);
    if u32::from(block_align) != expected {
        return Err(WavError::BadBlockAlign {
            got: block_align,
            expected,
            channels,
            bits,
        });
    }
    Ok((format, channels, sample_rate))
}

/// Writes 8 kHz mono 16-bit PCM as a WAV file.
pub fn write(samples: &[i16]) -> Vec<u8> {
    write_pcm16(samples, 8000, 1)
}

/// Writes interleaved 16-bit PCM with the given rate and channel count (1
/// to 32767) as a canonical 44-octet-header WAV file. Samples past what a
/// RIFF size field can describe (4 GiB) are left out, as is a trailing
/// partial frame.
pub fn write_pcm16(samples: &[i16], sample_rate: u32, channels: u16) -> Vec<u8> {
    // At most 32767 channels, so that the block align fits its 16 bits.
    let ch = channels.clamp(1, i16::MAX as u16);
    let block_align = 2 * ch;
    let ch = usize::from(ch);
    let max_samples = (u32::MAX as usize - 36) / 2;
    let n = samples.len().min(max_samples) / ch * ch;
    let data_len = (2 * n) as u32;
    let mut out = Vec::with_capacity(44 + 2 * n);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&(ch as u16).to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(
        &sample_rate
            .saturating_mul(u32::from(block_align))
            .to_le_bytes(),
    );
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &samples[..n] {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * (bits / 8);
        let mut f = Vec::new();
        f.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0");
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        f.extend_from_slice(&block.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f.extend_from_slice(b"data");
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn float_and_wide_integers() {
        let mut d = Vec::new();
        for x in [0.5f32, -1.0, 2.0] {
            d.extend_from_slice(&x.to_le_bytes());
        }
        let a = read(&header(3, 1, 48000, 32, &d)).expect("float wav");
        assert_eq!(a.format, SampleFormat::F32);
        assert_eq!(a.samples, [16384, -32767, 32767]);
        let a = read(&header(1, 1, 8000, 24, &[0x11, 0x34, 0x12, 0, 0, 0x80])).expect("24-bit");
        assert_eq!(a.samples, [0x1234, i16::MIN]);
        let a = read(&header(1, 1, 8000, 32, &[0, 0, 0x34, 0x12])).expect("32-bit");
        assert_eq!(a.samples, [0x1234]);
    }

    #[test]
    fn extensible_and_odd_chunks() {
        let mut f = b"RIFF\xff\xff\xff\xffWAVEJUNK\x03\0\0\0abc\0fmt \x28\0\0\0".to_vec();
        f.extend_from_slice(&0xFFFEu16.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&16000u32.to_le_bytes());
        f.extend_from_slice(&64000u32.to_le_bytes());
        f.extend_from_slice(&4u16.to_le_bytes());
        f.extend_from_slice(&16u16.to_le_bytes());
        f.extend_from_slice(&[22, 0, 16, 0, 3, 0, 0, 0]);
        f.extend_from_slice(&[
            1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
        ]);
        f.extend_from_slice(b"data\x04\0\0\0\x01\0\x02\0");
        let a = read(&f).expect("extensible wav");
        assert_eq!((a.channels, a.sample_rate), (2, 16000));
        assert_eq!(a.samples, [1, 2]);
    }

    #[test]
    fn malformed_inputs_name_the_fault() {
        let ok = header(1, 1, 8000, 16, &[1, 0, 2, 0]);
        assert_eq!(read(b"RIFX\0\0\0\0WAVE"), Err(WavError::NotRiffWave));
        assert_eq!(read(&ok[..8]), Err(WavError::NotRiffWave));
        assert_eq!(read(&ok[..36]), Err(WavError::NoDataChunk));
        let mut no_fmt = b"RIFF\0\0\0\0WAVE".to_vec();
        no_fmt.extend_from_slice(&ok[36..]);
        assert_eq!(read(&no_fmt), Err(WavError::NoFmtChunk));
        assert_eq!(
            read(&ok[..46]),
            Err(WavError::TruncatedData {
                declared: 4,
                available: 2
            })
        );
        assert_eq!(
            read(&ok[..30]),
            Err(WavError::TruncatedChunk {
                id: "fmt ".into(),
                declared: 16,
                available: 10
            })
        );
        let mut huge = ok.clone();
        huge[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&huge), Err(WavError::TooLarge(u32::MAX.into())));
        assert_eq!(
            read(&header(2, 1, 8000, 4, &[0])),
            Err(WavError::UnsupportedFormat(2))
        );
        assert_eq!(
            read(&header(3, 1, 8000, 16, &[0, 0])),
            Err(WavError::UnsupportedBits {
                format: 3,
                bits: 16
            })
        );
        assert_eq!(
            read(&header(1, 0, 8000, 16, &[])),
            Err(WavError::BadChannels(0))
        );
        assert_eq!(
            read(&header(1, 1, 0, 16, &[])),
            Err(WavError::BadSampleRate(0))
        );
        assert_eq!(
            read(&header(1, 2, 8000, 16, &[0, 0, 0])),
            Err(WavError::PartialFrame {
                len: 3,
                block_align: 4
            })
        );
        let mut bad_align = ok.clone();
        bad_align[32] = 3;
        assert_eq!(
            read(&bad_align),
            Err(WavError::BadBlockAlign {
                got: 3,
                expected: 2,
                channels: 1,
                bits: 16
            })
        );
        let mut short_fmt = b"RIFF\0\0\0\0WAVEfmt \x0e\0\0\0".to_vec();
        short_fmt.extend_from_slice(&ok[20..34]);
        short_fmt.extend_from_slice(&ok[36..]);
        assert_eq!(
            read(&short_fmt),
            Err(WavError::FmtTooShort {
                len: 14,
                needed: 16
            })
        );
        let mut twice = ok.clone();
        twice.extend_from_slice(&ok[36..]);
        assert_eq!(read(&twice), Err(WavError::DuplicateChunk("data")));
    }

    #[test]
    fn writer_round_trips_and_drops_partial_frames() {
        let w = write_pcm16(&[1, 2, 3], 44100, 2);
        let a = read(&w).expect("our own file");
        assert_eq!(
            (a.sample_rate, a.channels, a.samples.as_slice()),
            (44100, 2, &[1, 2][..])
        );
    }
}
