//! Just enough RTP and RTCP header parsing for SRTP: header length (with
//! CSRCs and header extension), sequence number, SSRC, and the AEAD IVs.

use crate::error::InvalidPacket;

/// RTP fixed header length (RFC 3550 section 5.1).
pub(crate) const RTP_FIXED_HEADER: usize = 12;

/// The part of the RTCP header SRTCP leaves in the clear and authenticates:
/// the first header word and the sender's SSRC (RFC 3711 section 3.4).
pub(crate) const RTCP_HEADER: usize = 8;

/// The SRTCP trailer word: E flag and 31-bit SRTCP index.
pub(crate) const SRTCP_INDEX_LEN: usize = 4;

/// The ROC field of RCCm3 (RFC 4771 section 3).
pub(crate) const ROC_LEN: usize = 4;

/// The fields of an RTP header SRTP needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtpHeader {
    /// Header length: 12 + 4 * CC, plus the header extension if X is set.
    /// The AEAD associated data is `packet[..len]` (RFC 7714 section 8.2).
    pub(crate) len: usize,
    pub(crate) seq: u16,
    pub(crate) ssrc: u32,
}

#[inline]
fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

#[inline]
pub(crate) fn be32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

#[inline]
fn check_version(first: u8) -> Result<(), InvalidPacket> {
    let version = first >> 6;
    if version == 2 {
        Ok(())
    } else {
        Err(InvalidPacket::BadVersion(version))
    }
}

/// Parses the RTP header at the start of `packet` (RFC 3550 section 5.1 and
/// 5.3.1). Checks only the version and that the header fits.
#[inline]
pub(crate) fn parse_rtp(packet: &[u8]) -> Result<RtpHeader, InvalidPacket> {
    if packet.len() < RTP_FIXED_HEADER {
        return Err(InvalidPacket::TooShort {
            what: "RTP header",
            needed: RTP_FIXED_HEADER,
            have: packet.len(),
        });
    }
    let first = packet[0];
    check_version(first)?;
    let csrc_count = usize::from(first & 0x0f);
    let mut len = RTP_FIXED_HEADER + 4 * csrc_count;
    if first & 0x10 != 0 {
        // Header extension: 16-bit profile, 16-bit length in 32-bit words.
        if packet.len() < len + 4 {
            return Err(InvalidPacket::TooShort {
                what: "RTP header extension",
                needed: len + 4,
                have: packet.len(),
            });
        }
        len += 4 + 4 * usize::from(be16(packet, len + 2));
    }
    if packet.len() < len {
        return Err(InvalidPacket::TooShort {
            what: "RTP header",
            needed: len,
            have: packet.len(),
        });
    }
    Ok(RtpHeader {
        len,
        seq: be16(packet, 2),
        ssrc: be32(packet, 8),
    })
}

/// Checks the RTCP header: version 2 and at least the 8 octets SRTCP keeps
/// in the clear, plus `trailer` more. Returns the sender's SSRC.
#[inline]
pub(crate) fn parse_rtcp(packet: &[u8], trailer: usize) -> Result<u32, InvalidPacket> {
    if packet.is_empty() {
        return Err(InvalidPacket::TooShort {
            what: "RTCP header",
            needed: RTCP_HEADER + trailer,
            have: 0,
        });
    }
    check_version(packet[0])?;
    if packet.len() < RTCP_HEADER + trailer {
        return Err(InvalidPacket::TooShort {
            what: if trailer == 0 {
                "RTCP header"
            } else {
                "SRTCP packet (header, tag, index, MKI)"
            },
            needed: RTCP_HEADER + trailer,
            have: packet.len(),
        });
    }
    Ok(be32(packet, 4))
}

/// The SRTP AEAD IV (RFC 7714 section 8.1):
/// (00 00 || SSRC || ROC || SEQ) XOR salt, with ROC || SEQ = the 48-bit index.
#[inline]
pub(crate) fn rtp_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = *salt;
    let s = ssrc.to_be_bytes();
    let i = index.to_be_bytes();
    for k in 0..4 {
        iv[2 + k] ^= s[k];
    }
    for k in 0..6 {
        iv[6 + k] ^= i[2 + k];
    }
    iv
}

/// The SRTCP AEAD IV (RFC 7714 section 9.1):
/// (00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR salt.
#[inline]
pub(crate) fn rtcp_iv(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; 12] {
    let mut iv = *salt;
    let s = ssrc.to_be_bytes();
    let i = (index & 0x7fff_ffff).to_be_bytes();
    for k in 0..4 {
        iv[2 + k] ^= s[k];
        iv[8 + k] ^= i[k];
    }
    iv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths() {
        let mut p = [0u8; 40];
        p[0] = 0x80;
        assert_eq!(parse_rtp(&p[..12]).map(|h| h.len), Ok(12));
        p[0] = 0x82; // two CSRCs
        assert_eq!(parse_rtp(&p[..20]).map(|h| h.len), Ok(20));
        assert!(parse_rtp(&p[..19]).is_err());
        p[0] = 0x92; // two CSRCs and an extension of one word
        p[20..24].copy_from_slice(&[0xbe, 0xde, 0x00, 0x01]);
        assert_eq!(parse_rtp(&p[..28]).map(|h| h.len), Ok(28));
        assert!(matches!(
            parse_rtp(&p[..27]),
            Err(InvalidPacket::TooShort { needed: 28, .. })
        ));
        p[0] = 0x40;
        assert_eq!(
            parse_rtp(&p).map(|h| h.len),
            Err(InvalidPacket::BadVersion(1))
        );
    }
}
