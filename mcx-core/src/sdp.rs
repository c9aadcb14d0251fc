//! SDP offers and answers (RFC 4566, RFC 3264) for an MCPTT temporary
//! group – broadcast call: one voice stream (G.711 µ-law over SRTP,
//! `RTP/SAVP`) and the MCPTT floor-control channel (TS 24.380 12.1).
//!
//! Every party writes the address and ports it actually bound
//! ([`MediaEndpoint`], set by the driver); the servers write their own
//! relay address into what they forward, so each hop sends to the next.
//! The voice line carries the sender's SSRC (RFC 5576 `a=ssrc`) so the
//! servers' relays route by it; the floor line carries the SSRC of the
//! sender's floor packets in this call, so a party in many calls knows
//! which call a floor packet belongs to.
//!
//! Floor-control `fmtp` (TS 24.380 12.1.2): the initiator offers
//! `mc_implicit_request` (the INVITE is its floor request) and the
//! controlling server answers `mc_granted`; nobody offers `mc_queueing`,
//! since a broadcast call has no queue (receivers may not request).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Where a party of a call takes its media: its IP address and the UDP
/// ports it bound for voice (RTP/SRTP) and floor control (RTCP/SRTCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MediaEndpoint {
    /// The address peers reach (not a wildcard).
    pub ip: IpAddr,
    /// The voice port.
    pub rtp_port: u16,
    /// The floor-control port.
    pub floor_port: u16,
}

impl MediaEndpoint {
    /// Not bound: what a role without a media socket announces (the
    /// in-memory tests). Port 9 (discard) rather than 0, which would
    /// reject the stream (RFC 3264 6).
    pub const UNBOUND: Self = Self {
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        rtp_port: 9,
        floor_port: 9,
    };

    /// The voice socket address.
    pub fn rtp(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.rtp_port)
    }

    /// The floor-control socket address.
    pub fn floor(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.floor_port)
    }
}

/// The voice codec: G.711 µ-law, static payload type 0 (RFC 3551 6).
pub const PCMU_PAYLOAD_TYPE: u8 = 0;
/// Voice packet duration in ms.
pub const PTIME_MS: u32 = 20;

/// Who sends voice on a line (RFC 4566 6 direction attributes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendonly`: the broadcast initiator, and the servers toward receivers.
    SendOnly,
    /// `a=recvonly`: receivers, and the servers toward the sender.
    RecvOnly,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
        }
    }
}

/// An SDP body to write.
pub(crate) struct Description<'a> {
    /// The writer (its URI, for `o=` and the SSRCs' cname).
    pub user: &'a str,
    pub session_id: u64,
    /// Voice: the address to send it to (offer) or that sends it.
    pub audio: SocketAddr,
    pub direction: Direction,
    /// SSRC of the voice stream (only the sender's is known).
    pub media_ssrc: Option<u32>,
    /// Floor control: the address floor packets go to; `None` rejects
    /// the floor line (port 0: this leg carries no floor control).
    pub floor: Option<SocketAddr>,
    pub floor_ssrc: Option<u32>,
    /// MCPTT `fmtp` parameters (empty: none).
    pub fmtp: &'a str,
}

fn addr_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

impl Description<'_> {
    pub(crate) fn write(&self) -> String {
        let user = self.user.replace([' ', '\r', '\n'], "");
        let ip = self.audio.ip();
        let mut s = String::with_capacity(400);
        // Infallible: writing to a String.
        let _ = write!(
            s,
            "v=0\r\n\
             o=- {sid} 1 IN {at} {ip}\r\n\
             s=-\r\n\
             c=IN {at} {ip}\r\n\
             t=0 0\r\n\
             m=audio {port} RTP/SAVP {pt}\r\n\
             a=rtpmap:{pt} PCMU/8000\r\n\
             a=ptime:{PTIME_MS}\r\n\
             a={dir}\r\n",
            sid = self.session_id,
            at = addr_type(ip),
            port = self.audio.port(),
            pt = PCMU_PAYLOAD_TYPE,
            dir = self.direction.as_str(),
        );
        if let Some(ssrc) = self.media_ssrc {
            let _ = write!(s, "a=ssrc:{ssrc} cname:{user}\r\n");
        }
        match self.floor {
            Some(f) => {
                let _ = write!(s, "m=application {} udp MCPTT\r\n", f.port());
                if f.ip() != ip {
                    let _ = write!(s, "c=IN {} {}\r\n", addr_type(f.ip()), f.ip());
                }
            }
            None => s.push_str("m=application 0 udp MCPTT\r\n"),
        }
        if self.fmtp.is_empty() {
            s.push_str("a=fmtp:MCPTT\r\n");
        } else {
            let _ = write!(s, "a=fmtp:MCPTT {}\r\n", self.fmtp);
        }
        if let Some(ssrc) = self.floor_ssrc {
            let _ = write!(s, "a=ssrc:{ssrc} cname:{user}\r\n");
        }
        s
    }
}

/// Why an SDP body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// Not UTF-8 text.
    #[error("SDP is not UTF-8 text")]
    NotText,
    /// No `v=0` first line.
    #[error("SDP does not start with v=0")]
    NoVersion,
    /// A required media line is missing.
    #[error("SDP has no {0} media line")]
    MissingMedia(&'static str),
    /// A line could not be read.
    #[error("SDP line {line}: {what}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        what: &'static str,
    },
}

/// What a received SDP body says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sdp {
    /// The voice line's address (its `c=`, else the session's) and port;
    /// `None` if its port is 0 (rejected) or no address is given.
    pub audio: Option<SocketAddr>,
    /// The voice line's payload types.
    pub payload_types: Vec<u8>,
    /// `a=sendonly` / `a=recvonly` of the voice line, if given.
    pub direction: Option<Direction>,
    /// The first `a=ssrc` of the voice line.
    pub media_ssrc: Option<u32>,
    /// The floor line's address and port; `None` if rejected (port 0).
    pub floor: Option<SocketAddr>,
    /// The first `a=ssrc` of the floor line.
    pub floor_ssrc: Option<u32>,
    /// The floor line's `a=fmtp:MCPTT` parameters.
    pub floor_fmtp: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Session,
    Audio,
    Floor,
    Other,
}

/// Reads an SDP body: the voice line (`m=audio … RTP/SAVP`) and the
/// MCPTT floor line (`m=application … udp MCPTT`) must both be there.
///
/// # Errors
/// [`SdpError`] naming what is wrong.
pub fn parse(bytes: &[u8]) -> Result<Sdp, SdpError> {
    let text = core::str::from_utf8(bytes).map_err(|_| SdpError::NotText)?;
    if !text.starts_with("v=0") {
        return Err(SdpError::NoVersion);
    }
    let mut out = Sdp::default();
    let mut session_ip: Option<IpAddr> = None;
    let (mut audio_ip, mut floor_ip) = (None, None);
    let (mut audio_port, mut floor_port): (Option<u16>, Option<u16>) = (None, None);
    let mut section = Section::Session;
    for (n, line) in split_at_octet(text, b'\n').enumerate() {
        let bad = |what| SdpError::BadLine { line: n + 1, what };
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = split_at_octet(m, b' ');
            let (media, port, proto) = (f.next(), f.next(), f.next());
            let port = port
                .and_then(|p| split_at_octet(p, b'/').next())
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| bad("m= port is not a number"))?;
            section = match (media, proto) {
                (Some("audio"), Some("RTP/SAVP")) if audio_port.is_none() => {
                    audio_port = Some(port);
                    for pt in f {
                        out.payload_types.push(
                            pt.parse()
                                .map_err(|_| bad("payload type is not a number"))?,
                        );
                    }
                    Section::Audio
                }
                (Some("application"), Some("udp")) if f.next() == Some("MCPTT") => {
                    floor_port = Some(port);
                    Section::Floor
                }
                _ => Section::Other,
            };
        } else if let Some(c) = line.strip_prefix("c=") {
            let host = split_at_octet(c, b' ')
                .nth(2)
                .and_then(|a| split_at_octet(a, b'/').next())
                .ok_or_else(|| bad("c= has no address"))?;
            // RFC 4566 also allows a host name: valid, but nothing we can
            // send to without a resolver, so that line's address is unknown.
            let Ok(ip) = host.parse::<IpAddr>() else {
                continue;
            };
            match section {
                Section::Session => session_ip = Some(ip),
                Section::Audio => audio_ip = Some(ip),
                Section::Floor => floor_ip = Some(ip),
                Section::Other => {}
            }
        } else if let Some(a) = line.strip_prefix("a=") {
            match (section, a) {
                (Section::Audio, "sendonly") => out.direction = Some(Direction::SendOnly),
                (Section::Audio, "recvonly") => out.direction = Some(Direction::RecvOnly),
                (Section::Audio | Section::Floor, _) if a.starts_with("ssrc:") => {
                    let ssrc: u32 = split_at_octet(&a[5..], b' ')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| bad("a=ssrc is not a number"))?;
                    let slot = if section == Section::Audio {
                        &mut out.media_ssrc
                    } else {
                        &mut out.floor_ssrc
                    };
                    slot.get_or_insert(ssrc);
                }
                (Section::Floor, _) if a.starts_with("fmtp:MCPTT") => {
                    out.floor_fmtp = Some(a["fmtp:MCPTT".len()..].trim().to_owned());
                }
                _ => {}
            }
        }
    }
    let audio_port = audio_port.ok_or(SdpError::MissingMedia("RTP/SAVP audio"))?;
    let floor_port = floor_port.ok_or(SdpError::MissingMedia("udp MCPTT"))?;
    let at = |ip: Option<IpAddr>, port: u16| {
        let ip = ip.or(session_ip).filter(|_| port != 0)?;
        Some(SocketAddr::new(ip, port))
    };
    out.audio = at(audio_ip, audio_port);
    out.floor = at(floor_ip, floor_port);
    Ok(out)
}

/// The pieces of `text` between occurrences of the ASCII octet `sep`
/// (as `str::split` with a char, which costs several times more on SDP's
/// short lines: a member's answer is read at every call set-up). Slicing
/// next to an ASCII octet always falls on a character boundary.
fn split_at_octet(text: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(sep, r.as_bytes()) {
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Whether an SDP has the two media lines this call needs.
pub(crate) fn is_valid(sdp: &[u8]) -> bool {
    parse(sdp).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn offer() -> String {
        Description {
            user: "sip:d@x",
            session_id: 1,
            audio: "192.0.2.1:40000".parse().unwrap(),
            direction: Direction::SendOnly,
            media_ssrc: Some(77),
            floor: Some("192.0.2.1:40002".parse().unwrap()),
            floor_ssrc: Some(42),
            fmtp: "mc_implicit_request",
        }
        .write()
    }

    #[test]
    fn what_is_written_is_read_back() {
        let s = parse(offer().as_bytes()).unwrap();
        assert_eq!(s.audio, Some("192.0.2.1:40000".parse().unwrap()));
        assert_eq!(s.floor, Some("192.0.2.1:40002".parse().unwrap()));
        assert_eq!(s.payload_types, vec![0]);
        assert_eq!(s.direction, Some(Direction::SendOnly));
        assert_eq!(s.media_ssrc, Some(77));
        assert_eq!(s.floor_ssrc, Some(42));
        assert_eq!(s.floor_fmtp.as_deref(), Some("mc_implicit_request"));
    }

    #[test]
    fn media_level_connection_and_rejected_lines() {
        let s = Description {
            user: "sip:mc@x",
            session_id: 2,
            audio: "192.0.2.5:41000".parse().unwrap(),
            direction: Direction::RecvOnly,
            media_ssrc: None,
            floor: Some("198.51.100.7:5000".parse().unwrap()),
            floor_ssrc: None,
            fmtp: "",
        }
        .write();
        let p = parse(s.as_bytes()).unwrap();
        assert_eq!(p.floor, Some("198.51.100.7:5000".parse().unwrap()));
        assert_eq!(p.audio, Some("192.0.2.5:41000".parse().unwrap()));
        let rejected = s.replace("m=application 5000", "m=application 0");
        assert_eq!(parse(rejected.as_bytes()).unwrap().floor, None);
    }

    #[test]
    fn another_vendors_offer_is_read() {
        // RFC 4566 example shape: session-level c=, IPv6, extra lines,
        // several payload types, a=ssrc with more attributes.
        let s = "v=0\r\no=alice 2890844526 2890844526 IN IP6 2001:db8::1\r\ns=MCPTT\r\n\
                 c=IN IP6 2001:db8::1\r\nt=0 0\r\nm=audio 49170 RTP/SAVP 96 0\r\n\
                 a=rtpmap:96 AMR-WB/16000\r\na=ssrc:12345 cname:alice\r\n\
                 m=application 49172 udp MCPTT\r\na=fmtp:MCPTT mc_queueing;mc_priority=5\r\n";
        let p = parse(s.as_bytes()).unwrap();
        assert_eq!(p.audio, Some("[2001:db8::1]:49170".parse().unwrap()));
        assert_eq!(p.payload_types, vec![96, 0]);
        assert_eq!(p.media_ssrc, Some(12345));
        assert_eq!(p.floor_ssrc, None);
        assert_eq!(p.floor_fmtp.as_deref(), Some("mc_queueing;mc_priority=5"));
    }

    #[test]
    fn octet_split_is_str_split() {
        for text in ["", "a", " a  b ", "a/b/", "\r\n", "é x/ü"] {
            for sep in [b' ', b'/'] {
                let ours: Vec<&str> = split_at_octet(text, sep).collect();
                let std: Vec<&str> = text.split(char::from(sep)).collect();
                assert_eq!(ours, std, "{text:?} at {:?}", char::from(sep));
            }
        }
    }

    #[test]
    fn malformed_sdp_is_named() {
        assert_eq!(parse(b"\xff"), Err(SdpError::NotText));
        assert_eq!(parse(b"o=x"), Err(SdpError::NoVersion));
        let no_floor = offer().replace("m=application", "m=video");
        assert_eq!(
            parse(no_floor.as_bytes()),
            Err(SdpError::MissingMedia("udp MCPTT"))
        );
        let bad_port = offer().replace("m=audio 40000", "m=audio 4x");
        assert!(matches!(
            parse(bad_port.as_bytes()),
            Err(SdpError::BadLine { line: 6, .. })
        ));
        let no_c = offer().replace("c=IN IP4 192.0.2.1", "c=IN IP4");
        assert!(matches!(
            parse(no_c.as_bytes()),
            Err(SdpError::BadLine { line: 4, .. })
        ));
        // A host name is valid SDP, but gives no address to send to.
        let fqdn = offer().replace("c=IN IP4 192.0.2.1", "c=IN IP4 example.com");
        assert_eq!(parse(fqdn.as_bytes()).unwrap().audio, None);
    }
}
