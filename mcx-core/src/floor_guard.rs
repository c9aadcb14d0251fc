//! SRTCP protection of floor control (TS 24.380 13, TS 33.180 7.5 and
//! E.4): between a client and its home server under the client's CSK
//! (uploaded in its REGISTER), between servers under a configured SPK.
//! AEAD_AES_128_GCM with the key's ID as MKI, encrypted (E flag set): the
//! floor message itself is secret, and a packet that does not
//! authenticate — forged, replayed, unprotected, from a peer without this
//! key — never reaches floor control.

use std::collections::HashMap;
use std::hash::Hash;

use mcx_mikey::SrtpMasterKeys;
use mcx_mikey::csk::{FloorDirection, SpkFloorKeys};
use mcx_srtp::{Config, MasterKey, Mki, Session};

use crate::Error;

/// Most SSRCs one protected floor channel carries: a guard, not reached
/// in normal operation. Between two servers a channel is one call leg's
/// (one SSRC per member of one group, [`LegFloor`]); a client's channel
/// carries two streams per call it is in.
pub(crate) const MAX_FLOOR_STREAMS: usize = 100_000;

/// Where a home server stops taking registration refreshes without a
/// fresh CSK: the client's floor channel holds this many SSRCs in one
/// direction (90 % of the cap). Our clients rekey at half the cap
/// (`ClientConfig::floor_rekey_streams`); this catches those that never do.
pub(crate) const SERVER_REKEY_STREAMS: usize = MAX_FLOOR_STREAMS / 10 * 9;

/// The refusal of a registration refresh that carries no CSK while the
/// client's floor channel (`guard`) holds `limit` SSRCs or more: the
/// client then registers anew with a fresh CSK (a fresh channel) instead
/// of running into the cap, where new SSRCs — new calls' floor
/// messages — would be refused.
pub(crate) fn worn_refusal(guard: Option<&FloorGuard>, limit: usize) -> Option<String> {
    guard
        .is_some_and(|g| g.most_streams() >= limit)
        .then(|| "Forbidden - floor key worn out: register with a fresh CSK".to_owned())
}

/// Why a floor packet was dropped (counted, never handled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FloorDrop {
    /// Did not authenticate under the peer's key: forged, tampered,
    /// unprotected, or from a peer that holds another key.
    Unauthenticated,
    /// Authenticated but already received (or behind the replay window).
    Replayed,
    /// Not an SRTCP/RTCP packet at all.
    Malformed,
}

/// Counters of dropped floor packets, for tests and operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FloorDrops {
    /// Failed authentication (forged, unprotected, wrong key).
    pub unauthenticated: u64,
    /// Replays.
    pub replayed: u64,
    /// Not RTCP.
    pub malformed: u64,
    /// From an address that is not the expected peer (for a client: not
    /// its home server), or in no call.
    pub wrong_source: u64,
}

impl FloorDrops {
    pub(crate) fn count(&mut self, d: FloorDrop) {
        match d {
            FloorDrop::Unauthenticated => self.unauthenticated += 1,
            FloorDrop::Replayed => self.replayed += 1,
            FloorDrop::Malformed => self.malformed += 1,
        }
    }

    /// Every packet dropped.
    pub fn total(&self) -> u64 {
        self.unauthenticated + self.replayed + self.malformed + self.wrong_source
    }
}

/// One protected floor channel (one key, both directions).
pub(crate) struct FloorGuard {
    session: Session,
}

impl FloorGuard {
    /// A channel under `keys` (from a CSK or an SPK).
    pub(crate) fn new(keys: &SrtpMasterKeys) -> Result<Self, Error> {
        let config = Config::ts33180(keys.mki().len()).with_max_streams(MAX_FLOOR_STREAMS);
        let mut session = Session::new(config).map_err(|_| Error::Unexpected("SRTCP config"))?;
        let mki = Mki::new(keys.mki()).map_err(|_| Error::Unexpected("floor key MKI"))?;
        let key = MasterKey::new(*keys.master_key(), *keys.master_salt());
        session
            .add_key(mki, key)
            .map_err(|_| Error::Unexpected("floor key"))?;
        Ok(Self { session })
    }

    /// The most SSRCs tracked in one direction (see
    /// [`mcx_srtp::Session::most_streams`]).
    pub(crate) fn most_streams(&self) -> usize {
        self.session.most_streams()
    }

    /// The SRTCP packet for the RTCP packet `rtcp`.
    pub(crate) fn protect(&mut self, rtcp: &[u8]) -> Result<Vec<u8>, Error> {
        let overhead = self.session.config().rtcp_overhead();
        let mut buf = Vec::with_capacity(rtcp.len() + overhead);
        buf.extend_from_slice(rtcp);
        buf.resize(rtcp.len() + overhead, 0);
        let n = self
            .session
            .protect_rtcp(&mut buf, rtcp.len())
            .map_err(|_| Error::Unexpected("floor packet could not be protected"))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// The RTCP packet inside the SRTCP packet `srtcp`, if it
    /// authenticates.
    pub(crate) fn unprotect(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, FloorDrop> {
        let mut buf = srtcp.to_vec();
        match self.session.unprotect_rtcp(&mut buf) {
            Ok(u) => {
                buf.truncate(u.len);
                Ok(buf)
            }
            Err(mcx_srtp::Error::Replay(_)) => Err(FloorDrop::Replayed),
            // RTCP without a valid SRTCP trailer is an unprotected (or
            // cut) packet: it failed authentication like a forged one.
            Err(mcx_srtp::Error::InvalidPacket(_))
                if srtcp.first().is_some_and(|b| b >> 6 == 2) =>
            {
                Err(FloorDrop::Unauthenticated)
            }
            Err(mcx_srtp::Error::InvalidPacket(_)) => Err(FloorDrop::Malformed),
            Err(_) => Err(FloorDrop::Unauthenticated),
        }
    }
}

/// Floor control on one call leg between the controlling server and an
/// MC server: one channel each way, under keys derived from the SPK for
/// this leg and direction ([`SpkFloorKeys::leg_keys`]). It lives in the
/// call's record and goes with it: state is bounded by the live calls,
/// and ending a call retires its keys (docs/core.md).
pub(crate) struct LegFloor {
    send: FloorGuard,
    receive: FloorGuard,
}

impl LegFloor {
    /// The controlling server's side of the leg whose INVITE has
    /// `call_id`: sends down, receives up.
    pub(crate) fn controlling(spk: &SpkFloorKeys, call_id: &str) -> Result<Self, Error> {
        Self::new(spk, call_id, FloorDirection::Down, FloorDirection::Up)
    }

    /// The MC server's side: sends up, receives down.
    pub(crate) fn mc_server(spk: &SpkFloorKeys, call_id: &str) -> Result<Self, Error> {
        Self::new(spk, call_id, FloorDirection::Up, FloorDirection::Down)
    }

    fn new(
        spk: &SpkFloorKeys,
        call_id: &str,
        send: FloorDirection,
        receive: FloorDirection,
    ) -> Result<Self, Error> {
        let keys = |d| {
            spk.leg_keys(call_id, d)
                .map_err(|_| Error::Unexpected("leg floor keys"))
        };
        Ok(Self {
            send: FloorGuard::new(&keys(send)?)?,
            receive: FloorGuard::new(&keys(receive)?)?,
        })
    }

    /// The SRTCP packet for `rtcp`, to the other server.
    pub(crate) fn protect(&mut self, rtcp: &[u8]) -> Result<Vec<u8>, Error> {
        self.send.protect(rtcp)
    }

    /// The RTCP packet inside `srtcp` from the other server, if it
    /// authenticates under this leg's key.
    pub(crate) fn unprotect(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, FloorDrop> {
        self.receive.unprotect(srtcp)
    }
}

/// Of the drops of one packet tried under several legs' keys, the one
/// counted: a replay under one key says more than a failure under the
/// others.
pub(crate) fn worst(a: Option<FloorDrop>, b: FloorDrop) -> FloorDrop {
    match (a, b) {
        (Some(FloorDrop::Replayed), _) | (_, FloorDrop::Replayed) => FloorDrop::Replayed,
        (Some(FloorDrop::Unauthenticated), _) => FloorDrop::Unauthenticated,
        _ => b,
    }
}

/// `packet` with its RTCP sender SSRC (octets 4..8) set to `ssrc`: how a
/// participating function tells which member a floor message is for.
pub(crate) fn with_ssrc(packet: &[u8], ssrc: u32) -> Vec<u8> {
    let mut p = packet.to_vec();
    if let Some(field) = p.get_mut(4..8) {
        field.copy_from_slice(&ssrc.to_be_bytes());
    }
    p
}

/// Files `value` in `key`'s list in `index`. A new list is made for one
/// entry (most keys have one: a member's SSRC), not grown to a first
/// capacity of four.
pub(crate) fn index<K: Hash + Eq, V>(index: &mut HashMap<K, Vec<V>>, key: K, value: V) {
    index
        .entry(key)
        .or_insert_with(|| Vec::with_capacity(1))
        .push(value);
}

/// Takes the entries `gone` picks out of `key`'s list in `index`, and
/// the key once its list is empty.
pub(crate) fn unindex<K: Hash + Eq, V>(
    index: &mut HashMap<K, Vec<V>>,
    key: K,
    gone: impl Fn(&V) -> bool,
) {
    if let Some(list) = index.get_mut(&key) {
        list.retain(|v| !gone(v));
        if list.is_empty() {
            index.remove(&key);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use mcx_mikey::{KeyId, Spk};

    use super::*;

    fn spk() -> SpkFloorKeys {
        SpkFloorKeys::new(
            Spk::from_bytes(&[3; 16]).unwrap(),
            KeyId(0x3000_0042),
            vec![9; 16],
        )
        .unwrap()
    }

    /// An RTCP APP packet (version 2, subtype 0) from `ssrc`.
    fn rtcp(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 204, 0, 3];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(b"MCPTdata");
        p
    }

    #[test]
    fn each_leg_and_direction_has_its_own_key() {
        let keys = spk();
        let mut ctrl = LegFloor::controlling(&keys, "leg-1").unwrap();
        let mut mc = LegFloor::mc_server(&keys, "leg-1").unwrap();
        let mut other_mc = LegFloor::mc_server(&keys, "leg-2").unwrap();
        let down = ctrl.protect(&rtcp(7)).unwrap();
        let up = mc.protect(&rtcp(7)).unwrap();
        // Same SSRC, same index (0) both ways: different keys, so
        // different ciphertexts of the same plaintext.
        assert_eq!(down[..8], up[..8]);
        assert_ne!(down[8..], up[8..]);
        assert_eq!(mc.unprotect(&down).unwrap(), rtcp(7));
        assert_eq!(ctrl.unprotect(&up).unwrap(), rtcp(7));
        // Neither side takes its own direction back, nor another leg's.
        let down2 = ctrl.protect(&rtcp(8)).unwrap();
        assert_eq!(ctrl.unprotect(&down2), Err(FloorDrop::Unauthenticated));
        assert_eq!(other_mc.unprotect(&down2), Err(FloorDrop::Unauthenticated));
        assert_eq!(mc.unprotect(&down), Err(FloorDrop::Replayed));
    }

    #[test]
    fn a_replay_under_one_key_outweighs_failures_under_others() {
        use FloorDrop::*;
        assert_eq!(worst(None, Unauthenticated), Unauthenticated);
        assert_eq!(worst(Some(Unauthenticated), Replayed), Replayed);
        assert_eq!(worst(Some(Replayed), Unauthenticated), Replayed);
        assert_eq!(worst(Some(Unauthenticated), Malformed), Unauthenticated);
        assert_eq!(worst(None, Malformed), Malformed);
    }

    #[test]
    fn index_files_each_entry_under_its_key() {
        let mut map = HashMap::new();
        index(&mut map, 1u32, 10);
        index(&mut map, 2, 20);
        index(&mut map, 1, 11);
        assert_eq!(map, HashMap::from([(1, vec![10, 11]), (2, vec![20])]));
        assert_eq!(map[&2].capacity(), 1);
    }

    #[test]
    fn unindex_takes_only_the_named_entries_and_empty_keys() {
        let mut index = HashMap::from([(1u32, vec![10, 11]), (2, vec![20])]);
        unindex(&mut index, 1, |&v| v == 10);
        unindex(&mut index, 2, |&v| v == 20);
        unindex(&mut index, 3, |_| true);
        assert_eq!(index, HashMap::from([(1, vec![11])]));
    }
}
