//! RTP packets (RFC 3550 section 5.1) for G.711 PCMU voice (RFC 3551
//! payload type 0, 8000 Hz): a [`Packetizer`] for the sender and a
//! zero-copy [`Packet`] parser for the receiver.
//!
//! The packets are plain RTP; mcx-srtp protects them in place afterwards.

use rand_core::Rng;

use crate::pcmu;

/// RTP version this crate speaks (RFC 3550 section 5.1, `V`).
pub const VERSION: u8 = 2;

/// Length of the fixed RTP header without CSRCs (RFC 3550 section 5.1).
pub const HEADER_LEN: usize = 12;

/// Static payload type of G.711 µ-law (RFC 3551 section 6, Table 4).
pub const PT_PCMU: u8 = 0;

/// RTP clock rate of PCMU (RFC 3551 section 4.5.14: 8000 Hz).
pub const PCMU_CLOCK_RATE: u32 = 8000;

/// Samples in one 20 ms PCMU frame (RFC 3551 section 4.2 default
/// packetisation interval of 20 ms at 8000 Hz).
pub const FRAME_SAMPLES: usize = 160;

/// Why an RTP packet could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Fewer octets than the 12-octet fixed header.
    #[error("RTP packet too short: {len} octets, the fixed header needs 12")]
    TooShort {
        /// Octets received.
        len: usize,
    },
    /// The version field (two top bits) is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The CSRC count says more CSRCs than the packet holds.
    #[error("RTP packet ends inside its CSRC list ({count} CSRCs declared, {len} octets)")]
    CsrcTruncated {
        /// CSRC count (CC field).
        count: u8,
        /// Octets in the packet.
        len: usize,
    },
    /// The X bit is set but the extension header or its data is cut short.
    #[error(
        "RTP header extension truncated: needs {needed} octets after the CSRCs, {available} left"
    )]
    ExtensionTruncated {
        /// Octets the extension declares (header plus data).
        needed: usize,
        /// Octets left in the packet.
        available: usize,
    },
    /// The P bit is set but the padding count is 0 or longer than the payload.
    #[error("RTP padding count {count} invalid with {available} octets after the header")]
    BadPadding {
        /// The last octet of the packet (padding count).
        count: u8,
        /// Octets after the header (payload plus padding).
        available: usize,
    },
    /// The caller's output buffer cannot hold header plus payload.
    #[error("output buffer of {have} octets too small for an RTP packet of {need}")]
    BufferTooSmall {
        /// Octets needed.
        need: usize,
        /// Octets available.
        have: usize,
    },
    /// A frame's sample count does not fit the 32-bit RTP timestamp step.
    #[error("frame of {0} samples is too long for one RTP packet")]
    FrameTooLong(usize),
}

/// An RTP header extension (RFC 3550 section 5.3.1): the profile-defined
/// 16 bits and the extension data (a whole number of 32-bit words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The "defined by profile" field.
    pub profile: u16,
    /// Extension data, without the 4-octet extension header.
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing the received octets (RFC 3550 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// M bit: for audio, the first packet of a talk spurt (RFC 3551 section 4.1).
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp (sampling instant of the first payload octet).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    csrcs: &'a [u8],
    /// Header extension, when the X bit is set.
    pub extension: Option<Extension<'a>>,
    /// Payload, without header, CSRCs, extension and padding.
    pub payload: &'a [u8],
    /// Padding octets removed from the end (0 when the P bit is clear).
    pub padding: u8,
}

impl<'a> Packet<'a> {
    /// Parses an RTP packet: version 2, CSRC list, header extension skipped
    /// by its length, padding removed (RFC 3550 section 5.1 and 5.3.1).
    ///
    /// ```
    /// use mcx_media::rtp::Packet;
    /// let p = Packet::parse(&[0x80, 0x80, 0, 7, 0, 0, 1, 0x40, 1, 2, 3, 4, 0xFF, 0xFF])?;
    /// assert!(p.marker);
    /// assert_eq!((p.payload_type, p.sequence, p.timestamp, p.ssrc), (0, 7, 320, 0x0102_0304));
    /// assert_eq!(p.payload, &[0xFF, 0xFF]);
    /// # Ok::<(), mcx_media::rtp::RtpError>(())
    /// ```
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let len = buf.len();
        let Some(fixed) = buf.first_chunk::<HEADER_LEN>() else {
            return Err(RtpError::TooShort { len });
        };
        let version = fixed[0] >> 6;
        if version != VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let count = fixed[0] & 0x0F;
        let mut at = HEADER_LEN + 4 * usize::from(count);
        let csrcs = buf
            .get(HEADER_LEN..at)
            .ok_or(RtpError::CsrcTruncated { count, len })?;
        let extension = if has_extension {
            let available = len - at;
            let Some(hdr) = buf.get(at..at + 4) else {
                return Err(RtpError::ExtensionTruncated {
                    needed: 4,
                    available,
                });
            };
            let words = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
            let needed = 4 + 4 * words;
            let data = buf
                .get(at + 4..at + needed)
                .ok_or(RtpError::ExtensionTruncated { needed, available })?;
            at += needed;
            Some(Extension {
                profile: u16::from_be_bytes([hdr[0], hdr[1]]),
                data,
            })
        } else {
            None
        };
        let mut body = &buf[at..];
        let mut padding = 0;
        if has_padding {
            // RFC 3550 5.1: the last octet counts the padding, itself included.
            let count = body.last().copied().unwrap_or(0);
            if count == 0 || usize::from(count) > body.len() {
                return Err(RtpError::BadPadding {
                    count,
                    available: body.len(),
                });
            }
            body = &body[..body.len() - usize::from(count)];
            padding = count;
        }
        Ok(Self {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7F,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            csrcs,
            extension,
            payload: body,
            padding,
        })
    }

    /// The contributing sources (CSRC list), in order.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.csrcs
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// Builds RTP packets for one PCMU source: 12-octet header plus payload in
/// the caller's buffer, sequence number +1 and timestamp +samples per packet.
///
/// RFC 3550 section 5.1 wants the initial sequence number and timestamp
/// random; pass them, or an RNG to [`Packetizer::with_rng`]. The marker
/// bit is set on the first packet and on the first after
/// [`Packetizer::start_talk_spurt`] (RFC 3551 section 4.1).
///
/// ```
/// use mcx_media::rtp::{Packet, Packetizer, FRAME_SAMPLES, HEADER_LEN};
/// let mut tx = Packetizer::new(0xCAFE_BABE, 1000, 40_000);
/// let mut buf = [0u8; 200];
/// let n = tx.packetize(&[0i16; FRAME_SAMPLES], &mut buf)?;
/// assert_eq!(n, HEADER_LEN + FRAME_SAMPLES);
/// let p = Packet::parse(&buf[..n])?;
/// assert!(p.marker && p.sequence == 1000 && p.timestamp == 40_000);
/// let n = tx.packetize(&[0i16; FRAME_SAMPLES], &mut buf)?;
/// let p = Packet::parse(&buf[..n])?;
/// assert!(!p.marker && p.sequence == 1001 && p.timestamp == 40_160);
/// # Ok::<(), mcx_media::rtp::RtpError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Packetizer {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    payload_type: u8,
    marker: bool,
}

impl Packetizer {
    /// A packetizer for PCMU (payload type 0) with the given SSRC, initial
    /// sequence number and initial timestamp.
    pub fn new(ssrc: u32, initial_sequence: u16, initial_timestamp: u32) -> Self {
        Self {
            ssrc,
            sequence: initial_sequence,
            timestamp: initial_timestamp,
            payload_type: PT_PCMU,
            marker: true,
        }
    }

    /// A packetizer whose initial sequence number and timestamp are drawn
    /// from `rng` (RFC 3550 section 5.1: "SHOULD be random").
    pub fn with_rng<R: Rng + ?Sized>(ssrc: u32, rng: &mut R) -> Self {
        let r = rng.next_u64();
        Self::new(ssrc, r as u16, (r >> 32) as u32)
    }

    /// Sets the payload type written into each header (default
    /// [`PT_PCMU`]); the low 7 bits are used.
    pub fn set_payload_type(&mut self, payload_type: u8) -> &mut Self {
        self.payload_type = payload_type & 0x7F;
        self
    }

    /// Marks the next packet as the first of a talk spurt (M bit).
    pub fn start_talk_spurt(&mut self) {
        self.marker = true;
    }

    /// Advances the timestamp by `samples` without sending (a silent
    /// period: RFC 3550 section 5.1, the timestamp follows the sampling
    /// clock), and marks the next packet as a talk spurt's first.
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.marker = true;
    }

    /// SSRC written into each header.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet gets.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Timestamp the next packet gets.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// µ-law encodes `pcm` (normally [`FRAME_SAMPLES`] samples, 20 ms) as
    /// the payload of the next packet, written to the start of `out`;
    /// returns the packet's length.
    pub fn packetize(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, RtpError> {
        let len = self.header(pcm.len(), out)?;
        pcmu::encode(pcm, &mut out[HEADER_LEN..len]);
        Ok(len)
    }

    /// Writes the next packet with an already encoded `payload` covering
    /// `samples` sampling periods; returns the packet's length.
    pub fn packetize_payload(
        &mut self,
        payload: &[u8],
        samples: usize,
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let len = self.header_with(payload.len(), samples, out)?;
        out[HEADER_LEN..len].copy_from_slice(payload);
        Ok(len)
    }

    fn header(&mut self, samples: usize, out: &mut [u8]) -> Result<usize, RtpError> {
        // PCMU: one octet per sample.
        self.header_with(samples, samples, out)
    }

    fn header_with(
        &mut self,
        payload_len: usize,
        samples: usize,
        out: &mut [u8],
    ) -> Result<usize, RtpError> {
        let need = HEADER_LEN + payload_len;
        if out.len() < need {
            return Err(RtpError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        let step = u32::try_from(samples).map_err(|_| RtpError::FrameTooLong(samples))?;
        out[0] = VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | self.payload_type;
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.marker = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(step);
        Ok(need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_csrc_extension_padding() {
        // V=2 P=1 X=1 CC=2, M=0 PT=0, seq 0xBEEF, ts 1, SSRC 2, CSRCs 3 and 4,
        // extension profile 0xBEDE with 1 word, payload AA BB, padding 3.
        let pkt = [
            0xB2, 0x00, 0xBE, 0xEF, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0xBE, 0xDE, 0,
            1, 9, 9, 9, 9, 0xAA, 0xBB, 0, 0, 3,
        ];
        let p = Packet::parse(&pkt).expect("valid packet");
        assert_eq!(p.sequence, 0xBEEF);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), [3, 4]);
        assert_eq!(
            p.extension,
            Some(Extension {
                profile: 0xBEDE,
                data: &[9, 9, 9, 9]
            })
        );
        assert_eq!(p.payload, &[0xAA, 0xBB]);
        assert_eq!(p.padding, 3);
    }

    #[test]
    fn parse_errors_name_the_fault() {
        assert_eq!(
            Packet::parse(&[0x80; 11]),
            Err(RtpError::TooShort { len: 11 })
        );
        assert_eq!(Packet::parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        let mut p = [0u8; 16];
        p[0] = 0x82;
        assert_eq!(
            Packet::parse(&p),
            Err(RtpError::CsrcTruncated { count: 2, len: 16 })
        );
        p[0] = 0x90;
        p[14] = 0;
        p[15] = 2;
        assert_eq!(
            Packet::parse(&p),
            Err(RtpError::ExtensionTruncated {
                needed: 12,
                available: 4
            })
        );
        p[0] = 0x90;
        assert_eq!(
            Packet::parse(&p[..14]),
            Err(RtpError::ExtensionTruncated {
                needed: 4,
                available: 2
            })
        );
        let mut q = [0u8; 14];
        q[0] = 0xA0;
        q[13] = 5;
        assert_eq!(
            Packet::parse(&q),
            Err(RtpError::BadPadding {
                count: 5,
                available: 2
            })
        );
        q[13] = 0;
        assert_eq!(
            Packet::parse(&q),
            Err(RtpError::BadPadding {
                count: 0,
                available: 2
            })
        );
        assert_eq!(
            Packet::parse(&q[..12]),
            Err(RtpError::BadPadding {
                count: 0,
                available: 0
            })
        );
    }

    #[test]
    fn packetizer_wraps_and_marks() {
        let mut tx = Packetizer::new(7, u16::MAX, u32::MAX - 100);
        let mut buf = [0u8; 172];
        let n = tx.packetize(&[0; FRAME_SAMPLES], &mut buf).expect("fits");
        let p = Packet::parse(&buf[..n]).expect("parses");
        assert!(p.marker);
        assert_eq!((p.sequence, p.timestamp), (u16::MAX, u32::MAX - 100));
        let n = tx.packetize(&[0; FRAME_SAMPLES], &mut buf).expect("fits");
        let p = Packet::parse(&buf[..n]).expect("parses");
        assert!(!p.marker);
        assert_eq!((p.sequence, p.timestamp), (0, 59));
        tx.skip(FRAME_SAMPLES as u32);
        let n = tx.packetize(&[0; FRAME_SAMPLES], &mut buf).expect("fits");
        let p = Packet::parse(&buf[..n]).expect("parses");
        assert!(p.marker);
        assert_eq!((p.sequence, p.timestamp), (1, 59 + 320));
        assert_eq!(
            tx.packetize(&[0; FRAME_SAMPLES], &mut buf[..171]),
            Err(RtpError::BufferTooSmall {
                need: 172,
                have: 171
            })
        );
        // A refused packet consumes no sequence number.
        assert_eq!(tx.next_sequence(), 2);
    }
}
