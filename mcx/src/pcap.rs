//! A small, strict reader of capture files (`mcx srtp decrypt`): classic
//! pcap (microsecond or nanosecond, either byte order) and pcapng (any
//! number of sections and interfaces), then the UDP datagrams inside the
//! frames of the link types a lab meets: Ethernet (with 802.1Q tags),
//! BSD loopback (NULL and LOOP), raw IP, Linux cooked (SLL and SLL2).
//!
//! Written for files from the network or a colleague: every length is
//! checked against what is left before it is used, so a malformed file
//! gives a [`PcapError`] naming the record and its offset, never a panic.
//! Timestamps are not kept: decryption places audio by RTP timestamp.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a capture file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PcapError {
    /// The first four octets are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (it starts with {0})")]
    UnknownFormat(String),
    /// A header, record or block runs past the end of the file.
    #[error(
        "{what} at offset {offset} needs {need} octets, {left} are left (the file is cut short)"
    )]
    Truncated {
        /// What was being read (`pcap record 3 header`, …).
        what: String,
        /// Where it starts in the file.
        offset: usize,
        /// Octets it needs.
        need: usize,
        /// Octets left in the file from `offset`.
        left: usize,
    },
    /// A version this reader does not know.
    #[error("{format} version {major}.{minor} is not supported")]
    Version {
        /// `pcap` or `pcapng`.
        format: &'static str,
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A pcapng block whose length is impossible or inconsistent.
    #[error("pcapng block at offset {offset}: {detail}")]
    Block {
        /// Where the block starts.
        offset: usize,
        /// What is wrong with it.
        detail: String,
    },
}

/// One captured frame: its link type and the octets captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// The link-layer header type (tcpdump.org LINKTYPE_* value).
    pub(crate) link: u16,
    /// The frame as captured (possibly cut at the snapshot length).
    pub(crate) data: &'a [u8],
}

const PCAP_HEADER: usize = 24;
const PCAP_RECORD: usize = 16;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BYTE_ORDER: u32 = 0x1A2B_3C4D;

/// Reads a whole capture file into its frames.
pub(crate) fn read(bytes: &[u8]) -> Result<Vec<Frame<'_>>, PcapError> {
    let magic: [u8; 4] = take(bytes, 0, 4, || "file header".into())?
        .try_into()
        .map_err(|_| PcapError::UnknownFormat(String::new()))?;
    if let Some(e) = pcap_endian(&magic) {
        return read_pcap(bytes, e);
    }
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => read_pcapng(bytes),
        other => Err(PcapError::UnknownFormat(hex::encode(other))),
    }
}

/// The byte order of a classic pcap file by its magic number
/// (microsecond or nanosecond timestamps alike).
fn pcap_endian(magic: &[u8]) -> Option<Endian> {
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => Some(Endian::Little),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(Endian::Big),
        _ => None,
    }
}

/// The major version at `b[at..]` must be `want` (minor versions are
/// compatible by definition of both formats).
fn check_version(
    format: &'static str,
    want: u16,
    b: &[u8],
    at: usize,
    e: Endian,
) -> Result<(), PcapError> {
    let (major, minor) = (e.u16(b, at), e.u16(b, at + 2));
    if major == want {
        Ok(())
    } else {
        Err(PcapError::Version {
            format,
            major,
            minor,
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let v = [byte(b, at), byte(b, at + 1)];
        match self {
            Self::Little => u16::from_le_bytes(v),
            Self::Big => u16::from_be_bytes(v),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let v = [
            byte(b, at),
            byte(b, at + 1),
            byte(b, at + 2),
            byte(b, at + 3),
        ];
        match self {
            Self::Little => u32::from_le_bytes(v),
            Self::Big => u32::from_be_bytes(v),
        }
    }
}

/// The octet at `at`, 0 past the end (callers check lengths first; this
/// keeps a missed check from becoming a panic).
fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn be16(b: &[u8], at: usize) -> u16 {
    Endian::Big.u16(b, at)
}

/// `bytes[offset..offset + need]`, or [`PcapError::Truncated`] naming `what`.
fn take(
    bytes: &[u8],
    offset: usize,
    need: usize,
    what: impl FnOnce() -> String,
) -> Result<&[u8], PcapError> {
    offset
        .checked_add(need)
        .and_then(|end| bytes.get(offset..end))
        .ok_or_else(|| PcapError::Truncated {
            what: what(),
            offset,
            need,
            left: bytes.len().saturating_sub(offset),
        })
}

fn read_pcap(bytes: &[u8], e: Endian) -> Result<Vec<Frame<'_>>, PcapError> {
    let header = take(bytes, 0, PCAP_HEADER, || "pcap file header".into())?;
    check_version("pcap", 2, header, 4, e)?;
    // The upper bits of the link-type field carry FCS information.
    let link = (e.u32(header, 20) & 0xffff) as u16;
    let mut frames = Vec::new();
    let mut offset = PCAP_HEADER;
    while offset < bytes.len() {
        let n = frames.len() + 1;
        let rec = take(bytes, offset, PCAP_RECORD, || {
            format!("pcap record {n} header")
        })?;
        let captured = e.u32(rec, 8) as usize;
        let data = take(bytes, offset + PCAP_RECORD, captured, || {
            format!("pcap record {n} data")
        })?;
        frames.push(Frame { link, data });
        offset += PCAP_RECORD + captured;
    }
    Ok(frames)
}

/// The length of the longest prefix of a classic pcap stream that holds
/// the file header and whole records only, and the end of the first
/// record whose data contains `tag` (`mcx demo --pcap` cuts dumpcap's
/// output there). `None` for the second while no whole record holds it.
pub(crate) fn pcap_record_holding(bytes: &[u8], tag: &[u8]) -> Option<usize> {
    let e = pcap_endian(bytes.get(..4)?)?;
    let mut offset = PCAP_HEADER;
    loop {
        let rec = bytes.get(offset..offset.checked_add(PCAP_RECORD)?)?;
        let end = (offset + PCAP_RECORD).checked_add(e.u32(rec, 8) as usize)?;
        let data = bytes.get(offset + PCAP_RECORD..end)?;
        if data.windows(tag.len().max(1)).any(|w| w == tag) {
            return Some(end);
        }
        offset = end;
    }
}

fn read_pcapng(bytes: &[u8]) -> Result<Vec<Frame<'_>>, PcapError> {
    let mut frames = Vec::new();
    // Link types of the current section's interfaces, by interface ID.
    let mut interfaces: Vec<u16> = Vec::new();
    let mut e = Endian::Little;
    let mut offset = 0;
    while offset < bytes.len() {
        let head = take(bytes, offset, 12, || "pcapng block header".into())?;
        let raw_type = Endian::Little.u32(head, 0);
        if raw_type == PCAPNG_SHB {
            // A new section: its byte-order magic says how to read it.
            e = match Endian::Little.u32(head, 8) {
                PCAPNG_BYTE_ORDER => Endian::Little,
                v if v.swap_bytes() == PCAPNG_BYTE_ORDER => Endian::Big,
                v => {
                    return Err(PcapError::Block {
                        offset,
                        detail: format!("section header with byte-order magic {v:08x}"),
                    });
                }
            };
            interfaces.clear();
        }
        let block_type = e.u32(head, 0);
        let len = e.u32(head, 4) as usize;
        if len < 12 || len % 4 != 0 {
            return Err(PcapError::Block {
                offset,
                detail: format!("total length {len} (at least 12 and a multiple of 4)"),
            });
        }
        let block = take(bytes, offset, len, || {
            format!("pcapng block of type {block_type}")
        })?;
        let trailer = e.u32(block, len - 4) as usize;
        if trailer != len {
            return Err(PcapError::Block {
                offset,
                detail: format!("total length {len} at the start, {trailer} at the end"),
            });
        }
        let body = &block[8..len - 4];
        let short = |need: usize| PcapError::Block {
            offset,
            detail: format!(
                "a block of type {block_type} needs {need} octets of body, it has {}",
                body.len()
            ),
        };
        match block_type {
            PCAPNG_SHB => {
                if body.len() < 16 {
                    return Err(short(16));
                }
                check_version("pcapng", 1, body, 4, e)?;
            }
            // Interface Description Block.
            1 => {
                if body.len() < 8 {
                    return Err(short(8));
                }
                interfaces.push(e.u16(body, 0));
            }
            // Enhanced Packet Block, and the obsolete Packet Block (whose
            // interface ID is 16 bits, followed by a drop count).
            6 | 2 => {
                if body.len() < 20 {
                    return Err(short(20));
                }
                let interface = if block_type == 6 {
                    e.u32(body, 0) as usize
                } else {
                    usize::from(e.u16(body, 0))
                };
                let captured = e.u32(body, 12) as usize;
                let data = body
                    .get(20..20usize.saturating_add(captured))
                    .ok_or_else(|| PcapError::Block {
                        offset,
                        detail: format!(
                            "captured length {captured} exceeds the block's {} octets of data",
                            body.len() - 20
                        ),
                    })?;
                let link = *interfaces.get(interface).ok_or_else(|| PcapError::Block {
                    offset,
                    detail: format!(
                        "packet on interface {interface}, but the section describes {}",
                        interfaces.len()
                    ),
                })?;
                frames.push(Frame { link, data });
            }
            // Simple Packet Block: interface 0, the rest of the block is
            // the data (with padding: the original length bounds it).
            3 => {
                if body.len() < 4 {
                    return Err(short(4));
                }
                let original = e.u32(body, 0) as usize;
                let data = &body[4..body.len().min(4usize.saturating_add(original))];
                let link = *interfaces.first().ok_or_else(|| PcapError::Block {
                    offset,
                    detail: "simple packet block before any interface description".into(),
                })?;
                frames.push(Frame { link, data });
            }
            // Name resolution, statistics, secrets, custom blocks: nothing
            // to decrypt voice with.
            _ => {}
        }
        offset += len;
    }
    Ok(frames)
}

/// A UDP datagram found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Datagram<'a> {
    /// Source address and port.
    pub(crate) src: SocketAddr,
    /// Destination address and port.
    pub(crate) dst: SocketAddr,
    /// The UDP payload.
    pub(crate) payload: &'a [u8],
}

/// Why a frame holds no UDP datagram to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum NotUdp {
    /// A link type this reader does not parse.
    LinkType(u16),
    /// Not IPv4 or IPv6 (ARP, …).
    NotIp,
    /// IP, but not UDP (TCP, ICMP, …).
    OtherProtocol,
    /// A fragment of a datagram (not reassembled).
    Fragment,
    /// Shorter than its headers say (cut by the snapshot length, or
    /// malformed).
    Truncated,
}

impl std::fmt::Display for NotUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LinkType(l) => write!(f, "link type {l} not supported"),
            Self::NotIp => f.write_str("not IP"),
            Self::OtherProtocol => f.write_str("not UDP"),
            Self::Fragment => f.write_str("IP fragment"),
            Self::Truncated => f.write_str("truncated"),
        }
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The UDP datagram in `frame`, or why there is none.
pub(crate) fn udp(frame: Frame<'_>) -> Result<Datagram<'_>, NotUdp> {
    let d = frame.data;
    let need = |n: usize| {
        if d.len() < n {
            Err(NotUdp::Truncated)
        } else {
            Ok(())
        }
    };
    let (ethertype, ip) = match frame.link {
        // Ethernet, with any number of 802.1Q / 802.1ad tags.
        1 => {
            need(14)?;
            let mut at = 12;
            let mut t = be16(d, at);
            while t == 0x8100 || t == 0x88a8 {
                at += 4;
                need(at + 2)?;
                t = be16(d, at);
            }
            (t, &d[at + 2..])
        }
        // BSD loopback: a 4-octet address family, host order (NULL) or
        // network order (LOOP). 2 is IPv4; IPv6 differs by OS (24, 28, 30).
        0 | 108 => {
            need(4)?;
            let family = if frame.link == 0 {
                let le = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
                // Host order of the capturing machine: take whichever
                // reading is a small number.
                if le > 0xffff { le.swap_bytes() } else { le }
            } else {
                u32::from_be_bytes([d[0], d[1], d[2], d[3]])
            };
            let t = match family {
                2 => ETHERTYPE_IPV4,
                24 | 28 | 30 => ETHERTYPE_IPV6,
                _ => return Err(NotUdp::NotIp),
            };
            (t, &d[4..])
        }
        // Raw IP: the version nibble says which.
        101 | 12 | 14 => match d.first().map(|b| b >> 4) {
            Some(4) => (ETHERTYPE_IPV4, d),
            Some(6) => (ETHERTYPE_IPV6, d),
            _ => return Err(NotUdp::NotIp),
        },
        228 => (ETHERTYPE_IPV4, d),
        229 => (ETHERTYPE_IPV6, d),
        // Linux cooked capture v1: protocol at 14.
        113 => {
            need(16)?;
            (be16(d, 14), &d[16..])
        }
        // Linux cooked capture v2: protocol at 0, 20-octet header.
        276 => {
            need(20)?;
            (be16(d, 0), &d[20..])
        }
        other => return Err(NotUdp::LinkType(other)),
    };
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(ip),
        ETHERTYPE_IPV6 => ipv6(ip),
        _ => Err(NotUdp::NotIp),
    }
}

fn ipv4(p: &[u8]) -> Result<Datagram<'_>, NotUdp> {
    if p.len() < 20 {
        return Err(NotUdp::Truncated);
    }
    if p[0] >> 4 != 4 {
        return Err(NotUdp::NotIp);
    }
    let header = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(be16(p, 2));
    if header < 20 || total < header || p.len() < total {
        return Err(NotUdp::Truncated);
    }
    if p[9] != 17 {
        return Err(NotUdp::OtherProtocol);
    }
    // More fragments, or a fragment offset: part of a bigger datagram.
    if be16(p, 6) & 0x3fff != 0 {
        return Err(NotUdp::Fragment);
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    datagram(IpAddr::V4(src), IpAddr::V4(dst), &p[header..total])
}

fn ipv6(p: &[u8]) -> Result<Datagram<'_>, NotUdp> {
    if p.len() < 40 {
        return Err(NotUdp::Truncated);
    }
    if p[0] >> 4 != 6 {
        return Err(NotUdp::NotIp);
    }
    let payload_len = usize::from(be16(p, 4));
    let end = 40 + payload_len;
    if p.len() < end {
        return Err(NotUdp::Truncated);
    }
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&p[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let (src, dst) = (addr(8), addr(24));
    let mut next = p[6];
    let mut at = 40;
    // Skip hop-by-hop, routing and destination options headers.
    while matches!(next, 0 | 43 | 60) {
        if end < at + 8 {
            return Err(NotUdp::Truncated);
        }
        next = p[at];
        at += (usize::from(p[at + 1]) + 1) * 8;
    }
    match next {
        17 if at <= end => datagram(src, dst, &p[at..end]),
        17 => Err(NotUdp::Truncated),
        44 => Err(NotUdp::Fragment),
        _ => Err(NotUdp::OtherProtocol),
    }
}

fn datagram(src: IpAddr, dst: IpAddr, u: &[u8]) -> Result<Datagram<'_>, NotUdp> {
    if u.len() < 8 {
        return Err(NotUdp::Truncated);
    }
    let len = usize::from(be16(u, 4));
    if len < 8 || u.len() < len {
        return Err(NotUdp::Truncated);
    }
    Ok(Datagram {
        src: SocketAddr::new(src, be16(u, 0)),
        dst: SocketAddr::new(dst, be16(u, 2)),
        payload: &u[8..len],
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// An IPv4/UDP packet from 10.0.0.1:5000 to 10.0.0.2:6000.
    pub(crate) fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend([10, 0, 0, 1, 10, 0, 0, 2]);
        let ulen = 8 + payload.len();
        p.extend([0x13, 0x88, 0x17, 0x70, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn pcap_le(link: u32, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend([0; 8]);
        f.extend(65535u32.to_le_bytes());
        f.extend(link.to_le_bytes());
        for d in frames {
            f.extend([0; 8]);
            f.extend((d.len() as u32).to_le_bytes());
            f.extend((d.len() as u32).to_le_bytes());
            f.extend_from_slice(d);
        }
        f
    }

    fn block(e: fn(u32) -> [u8; 4], kind: u32, body: &[u8]) -> Vec<u8> {
        let len = 12 + body.len().div_ceil(4) * 4;
        let mut b = e(kind).to_vec();
        b.extend(e(len as u32));
        b.extend_from_slice(body);
        b.resize(len - 4, 0);
        b.extend(e(len as u32));
        b
    }

    fn pcapng(e: fn(u32) -> [u8; 4], link: u16, frames: &[Vec<u8>]) -> Vec<u8> {
        let half = |v: u16| {
            let w = e(u32::from(v));
            if w[0] == 0 {
                [w[2], w[3]]
            } else {
                [w[0], w[1]]
            }
        };
        let mut shb = e(PCAPNG_BYTE_ORDER).to_vec();
        shb.extend(half(1));
        shb.extend(half(0));
        shb.extend([0xff; 8]);
        let mut f = block(e, PCAPNG_SHB, &shb);
        let mut idb = half(link).to_vec();
        idb.extend([0, 0]);
        idb.extend(e(65535));
        f.extend(block(e, 1, &idb));
        for d in frames {
            let mut epb = e(0).to_vec();
            epb.extend([0; 8]);
            epb.extend(e(d.len() as u32));
            epb.extend(e(d.len() as u32));
            epb.extend_from_slice(d);
            f.extend(block(e, 6, &epb));
        }
        f
    }

    #[test]
    fn pcap_in_either_byte_order_and_ethernet_frames_give_the_datagram() {
        let mut eth = vec![0; 12];
        eth.extend([0x08, 0x00]);
        eth.extend(ipv4_udp(b"hello"));
        let le = pcap_le(1, std::slice::from_ref(&eth));
        // The same file big-endian: swap every header field.
        let mut be = vec![0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4];
        be.extend([0; 8]);
        be.extend(65535u32.to_be_bytes());
        be.extend(1u32.to_be_bytes());
        be.extend([0; 8]);
        be.extend((eth.len() as u32).to_be_bytes());
        be.extend((eth.len() as u32).to_be_bytes());
        be.extend_from_slice(&eth);
        for file in [le, be] {
            let frames = read(&file).unwrap();
            assert_eq!(frames.len(), 1);
            let d = udp(frames[0]).unwrap();
            assert_eq!(d.src, "10.0.0.1:5000".parse().unwrap());
            assert_eq!(d.dst, "10.0.0.2:6000".parse().unwrap());
            assert_eq!(d.payload, b"hello");
        }
    }

    #[test]
    fn pcapng_in_either_byte_order_gives_every_packet() {
        let raw = ipv4_udp(b"voice");
        for e in [u32::to_le_bytes as fn(u32) -> [u8; 4], u32::to_be_bytes] {
            let file = pcapng(e, 101, &[raw.clone(), raw.clone()]);
            let frames = read(&file).unwrap();
            assert_eq!(frames.len(), 2);
            assert_eq!(udp(frames[1]).unwrap().payload, b"voice");
        }
    }

    #[test]
    fn other_link_types_and_what_is_not_udp() {
        let raw = ipv4_udp(b"x");
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend(&raw);
        let mut sll = vec![0; 14];
        sll.extend([0x08, 0x00]);
        sll.extend(&raw);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend([0; 18]);
        sll2.extend(&raw);
        let mut vlan = vec![0; 12];
        vlan.extend([0x81, 0x00, 0, 5, 0x08, 0x00]);
        vlan.extend(&raw);
        for (link, data) in [
            (0, &null),
            (113, &sll),
            (276, &sll2),
            (1, &vlan),
            (228, &raw),
        ] {
            assert_eq!(
                udp(Frame { link, data }).unwrap().payload,
                b"x",
                "link {link}"
            );
        }
        let mut tcp = raw.clone();
        tcp[9] = 6;
        let mut frag = raw.clone();
        frag[6] = 0x20;
        let cut = &raw[..raw.len() - 1];
        for (link, data, why) in [
            (101, &tcp[..], NotUdp::OtherProtocol),
            (101, &frag[..], NotUdp::Fragment),
            (101, cut, NotUdp::Truncated),
            (147, &raw[..], NotUdp::LinkType(147)),
        ] {
            assert_eq!(udp(Frame { link, data }), Err(why));
        }
    }

    #[test]
    fn malformed_files_name_what_is_wrong() {
        assert!(matches!(
            read(b"GET / HTTP/1.1"),
            Err(PcapError::UnknownFormat(_))
        ));
        assert!(matches!(
            read(b"\xd4\xc3"),
            Err(PcapError::Truncated { .. })
        ));
        let mut cut = pcap_le(1, &[vec![1; 40]]);
        cut.truncate(cut.len() - 1);
        let err = read(&cut).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pcap record 1 data at offset 40 needs 40 octets, 39 are left (the file is cut short)"
        );
        let mut ng = pcapng(u32::to_le_bytes, 1, &[vec![1; 8]]);
        let last = ng.len() - 4;
        ng[last] ^= 4;
        assert!(
            matches!(read(&ng), Err(PcapError::Block { .. })),
            "{:?}",
            read(&ng)
        );
    }

    #[test]
    fn the_record_holding_a_tag_ends_where_its_data_ends() {
        let file = pcap_le(1, &[vec![1; 10], b"..end-tag..".to_vec(), vec![2; 10]]);
        let end = pcap_record_holding(&file, b"end-tag").unwrap();
        assert_eq!(end, 24 + 26 + 27);
        assert_eq!(pcap_record_holding(&file[..end - 1], b"end-tag"), None);
    }

    proptest! {
        #[test]
        fn random_octets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(frames) = read(&bytes) {
                for f in frames {
                    let _ = udp(f);
                }
            }
            let _ = pcap_record_holding(&bytes, b"tag");
        }

        #[test]
        fn random_octets_after_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..600),
            ng in any::<bool>(),
            link in prop::sample::select(vec![0u16, 1, 12, 14, 101, 108, 113, 228, 229, 276]),
        ) {
            let mut file = if ng {
                pcapng(u32::to_le_bytes, link, &[])
            } else {
                pcap_le(u32::from(link), &[])
            };
            file.extend(tail);
            if let Ok(frames) = read(&file) {
                for f in frames {
                    let _ = udp(f);
                }
            }
        }

        #[test]
        fn random_frames_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            link in prop::sample::select(vec![0u16, 1, 12, 14, 101, 108, 113, 228, 229, 276]),
        ) {
            let _ = udp(Frame { link, data: &data });
        }
    }
}
