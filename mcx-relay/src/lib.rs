//! A key-blind media relay (sans-IO).
//!
//! In a temporary group – broadcast call the initiator's SRTP goes to the
//! controlling server, which copies it to the MC server of every
//! constituent group, which copies it to the group's members. Neither
//! server holds or derives a media key (TS 33.180 7.3.X: the TGMK is end
//! to end), so relaying is a table lookup on what SRTP leaves in clear:
//! the sender's socket and the SSRC of the RTP (RFC 3550 5.1) or RTCP
//! (6.4.1) header. The packet is passed on byte for byte; this crate has
//! no API that could take a key.
//!
//! [`Relay`] is the table: the roles set a [`Route`] per call from the
//! SDP they negotiated (source = the sender's announced RTP address, its
//! announced SSRC, targets = the receivers' answered RTP addresses); the
//! node driver asks [`Relay::forward`] for each datagram and sends the
//! same bytes to every target. A packet from an unannounced source, with
//! an unknown SSRC or that is not RTP/RTCP at all is dropped and counted
//! ([`RelayStats`]), so a host that is not the call's sender cannot
//! inject media into it through the relay.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Most routes a relay holds (one per sending stream of a call).
pub const DEFAULT_MAX_ROUTES: usize = 100_000;
/// Most targets of one route (receivers of one stream at one hop).
pub const MAX_TARGETS: usize = 100_000;

/// Why a route was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The relay holds `max_routes` routes already.
    #[error("relay full: {0} routes")]
    Full(usize),
    /// More targets than [`MAX_TARGETS`].
    #[error("route to {0} targets, more than {MAX_TARGETS}")]
    TooManyTargets(usize),
}

/// Why a datagram was not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dropped {
    /// Shorter than an RTP (12 octets) or RTCP (8 octets) header.
    Truncated,
    /// Not RTP/RTCP version 2.
    NotRtp,
    /// No route for this source and SSRC.
    NoRoute,
}

/// What the relay did, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Datagrams forwarded (each counted once, whatever its fan-out).
    pub forwarded: u64,
    /// Copies to send (the sum of the fan-outs).
    pub copies: u64,
    /// Octets received in forwarded datagrams.
    pub octets: u64,
    /// Dropped: too short.
    pub truncated: u64,
    /// Dropped: not RTP/RTCP version 2.
    pub not_rtp: u64,
    /// Dropped: no route (unknown source or SSRC).
    pub no_route: u64,
}

impl RelayStats {
    /// Every datagram dropped.
    pub fn dropped(&self) -> u64 {
        self.truncated + self.not_rtp + self.no_route
    }
}

/// One relayed stream: who may send it and where copies go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The sender's socket (its announced RTP address).
    pub source: SocketAddr,
    /// The stream's SSRC (announced in the sender's SDP, RFC 5576);
    /// `None`: any SSRC from this source (a sender that announced none).
    pub ssrc: Option<u32>,
    /// Receivers' sockets.
    pub targets: Vec<SocketAddr>,
}

/// The relay table. See the crate documentation.
#[derive(Debug)]
pub struct Relay {
    routes: HashMap<(SocketAddr, Option<u32>), Vec<SocketAddr>>,
    max_routes: usize,
    stats: RelayStats,
}

impl Default for Relay {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ROUTES)
    }
}

/// The SSRC of an RTP or RTCP packet, as far as it can be read in clear.
///
/// RTCP and RTP share a socket here only if the sender muxes them (RFC
/// 5761); the second octet tells them apart: RTCP packet types 192–223
/// fall on the RTP marker bit plus payload types 64–95, which RFC 5761 4
/// forbids for RTP.
///
/// # Errors
/// [`Dropped::Truncated`] or [`Dropped::NotRtp`].
pub fn ssrc_of(packet: &[u8]) -> Result<u32, Dropped> {
    let [first, second, ..] = *packet else {
        return Err(Dropped::Truncated);
    };
    if first >> 6 != 2 {
        return Err(Dropped::NotRtp);
    }
    let rtcp = (192..=223).contains(&second);
    let at = if rtcp { 4 } else { 8 };
    let bytes = packet.get(at..at + 4).ok_or(Dropped::Truncated)?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// An IPv4-mapped IPv6 address as plain IPv4, so a dual-stack socket's
/// view of a sender matches its SDP.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

impl Relay {
    /// An empty relay holding at most `max_routes` routes.
    pub fn new(max_routes: usize) -> Self {
        Self {
            routes: HashMap::new(),
            max_routes,
            stats: RelayStats::default(),
        }
    }

    /// Sets (or replaces) a route.
    ///
    /// # Errors
    /// [`RelayError::Full`] or [`RelayError::TooManyTargets`].
    pub fn set(&mut self, route: Route) -> Result<(), RelayError> {
        if route.targets.len() > MAX_TARGETS {
            return Err(RelayError::TooManyTargets(route.targets.len()));
        }
        let key = (canonical(route.source), route.ssrc);
        if !self.routes.contains_key(&key) && self.routes.len() >= self.max_routes {
            return Err(RelayError::Full(self.routes.len()));
        }
        let targets = route.targets.into_iter().map(canonical).collect();
        self.routes.insert(key, targets);
        Ok(())
    }

    /// Removes the route of `source` and `ssrc`; whether there was one.
    pub fn remove(&mut self, source: SocketAddr, ssrc: Option<u32>) -> bool {
        self.routes.remove(&(canonical(source), ssrc)).is_some()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Where the datagram `packet` from `from` goes: the targets of its
    /// route, to each of which the driver sends `packet` unchanged.
    ///
    /// # Errors
    /// Why it is dropped (counted in [`RelayStats`]).
    pub fn forward(&mut self, from: SocketAddr, packet: &[u8]) -> Result<&[SocketAddr], Dropped> {
        let ssrc = match ssrc_of(packet) {
            Ok(s) => s,
            Err(d) => {
                match d {
                    Dropped::Truncated => self.stats.truncated += 1,
                    _ => self.stats.not_rtp += 1,
                }
                return Err(d);
            }
        };
        let from = canonical(from);
        let Some(targets) = self
            .routes
            .get(&(from, Some(ssrc)))
            .or_else(|| self.routes.get(&(from, None)))
        else {
            self.stats.no_route += 1;
            return Err(Dropped::NoRoute);
        };
        self.stats.forwarded += 1;
        self.stats.copies += targets.len() as u64;
        self.stats.octets += packet.len() as u64;
        Ok(targets)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0x00, 0x12, 0x34, 0, 0, 0, 160];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xAA; 160]);
        p
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwards_only_the_announced_source_and_ssrc() {
        let mut r = Relay::default();
        let targets = vec![addr("10.0.0.2:4000"), addr("10.0.0.3:4000")];
        r.set(Route {
            source: addr("10.0.0.1:5000"),
            ssrc: Some(0xDEAD_BEEF),
            targets: targets.clone(),
        })
        .unwrap();
        let p = rtp(0xDEAD_BEEF);
        assert_eq!(r.forward(addr("10.0.0.1:5000"), &p).unwrap(), &targets[..]);
        // Another host with the right SSRC, or the right host with another
        // SSRC: dropped.
        assert_eq!(r.forward(addr("10.0.0.9:5000"), &p), Err(Dropped::NoRoute));
        assert_eq!(
            r.forward(addr("10.0.0.1:5000"), &rtp(1)),
            Err(Dropped::NoRoute)
        );
        assert_eq!(
            r.forward(addr("10.0.0.1:5000"), &p[..11]),
            Err(Dropped::Truncated)
        );
        let mut stun = p.clone();
        stun[0] = 0x00;
        assert_eq!(
            r.forward(addr("10.0.0.1:5000"), &stun),
            Err(Dropped::NotRtp)
        );
        let s = r.stats();
        assert_eq!(
            (s.forwarded, s.copies, s.no_route, s.truncated, s.not_rtp),
            (1, 2, 2, 1, 1)
        );
        assert!(r.remove(addr("10.0.0.1:5000"), Some(0xDEAD_BEEF)));
        assert!(r.is_empty());
    }

    #[test]
    fn srtcp_is_routed_by_its_sender_ssrc() {
        // RFC 3550 6.4.1 sender report: PT 200, SSRC at octet 4.
        let mut sr = vec![0x80, 200, 0x00, 0x06];
        sr.extend_from_slice(&7u32.to_be_bytes());
        sr.extend_from_slice(&[0; 20]);
        assert_eq!(ssrc_of(&sr), Ok(7));
        assert_eq!(ssrc_of(&rtp(9)), Ok(9));
        // RTP with marker bit and PT 0 is not RTCP.
        let mut m = rtp(11);
        m[1] = 0x80;
        assert_eq!(ssrc_of(&m), Ok(11));
    }

    #[test]
    fn a_sender_without_announced_ssrc_is_routed_by_source() {
        let mut r = Relay::default();
        r.set(Route {
            source: addr("10.0.0.1:5000"),
            ssrc: None,
            targets: vec![addr("10.0.0.2:1")],
        })
        .unwrap();
        assert!(r.forward(addr("10.0.0.1:5000"), &rtp(123)).is_ok());
        assert_eq!(
            r.forward(addr("10.0.0.3:5000"), &rtp(123)),
            Err(Dropped::NoRoute)
        );
    }

    #[test]
    fn ipv4_mapped_senders_match_their_sdp_address() {
        let mut r = Relay::default();
        r.set(Route {
            source: addr("127.0.0.1:5000"),
            ssrc: Some(5),
            targets: vec![addr("127.0.0.1:6000")],
        })
        .unwrap();
        assert!(r.forward(addr("[::ffff:127.0.0.1]:5000"), &rtp(5)).is_ok());
    }

    #[test]
    fn caps_routes_and_targets() {
        let mut r = Relay::new(1);
        let route = |ssrc| Route {
            source: addr("10.0.0.1:5000"),
            ssrc: Some(ssrc),
            targets: vec![],
        };
        r.set(route(1)).unwrap();
        r.set(route(1)).unwrap(); // a replacement is not a new route
        assert_eq!(r.set(route(2)), Err(RelayError::Full(1)));
        let many = Route {
            targets: vec![addr("10.0.0.2:1"); MAX_TARGETS + 1],
            ..route(1)
        };
        assert_eq!(
            r.set(many),
            Err(RelayError::TooManyTargets(MAX_TARGETS + 1))
        );
    }

    proptest::proptest! {
        #[test]
        fn any_datagram_is_forwarded_or_counted(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut r = Relay::default();
            r.set(Route { source: addr("10.0.0.1:5000"), ssrc: Some(0x8000_0000), targets: vec![addr("10.0.0.2:1")] }).unwrap();
            let before = r.stats();
            let out = r.forward(addr("10.0.0.1:5000"), &bytes).is_ok();
            let after = r.stats();
            proptest::prop_assert_eq!(after.forwarded + after.dropped(), before.forwarded + before.dropped() + 1);
            proptest::prop_assert_eq!(out, after.forwarded == 1);
        }
    }
}
