//! The GMKs a client holds: several per group, each with the activation
//! and expiry of its key parameters (TS 33.180 E.6).
//!
//! TS 33.180 5.7.1: a client may hold several active GMKs for a group
//! and then uses the one with the latest activation time. A GMK is used
//! (to wrap or to unwrap a TGMK) only while it is in force: from its
//! activation time, before its expiry time (0 = not set). Expired GMKs
//! are dropped; their GMK-IDs are remembered (without the key) so that a
//! call wrapped under one is refused as "expired", not "unknown".
//!
//! Each GMK is held with the RAND of the GKTP that brought it: TS 33.180
//! 7.4.2 derives a sender's media keys from the GMK, the sender's GUK-ID
//! (CSB ID) and that RAND, and the GMS sends one RAND per GMK to every
//! member. A receiver finds a sender's keys from the MKI of its packets
//! (GMK-ID || GUK-ID): [`GmkRing::for_mki`].

use std::collections::VecDeque;

use mcx_mikey::kdf::{self, GMK_MKI_LEN};
use mcx_mikey::wire::Purpose;
use mcx_mikey::{Gmk, KeyId, SrtpMasterKeys};

/// Most GMKs held per group (the one in use, the next one fetched ahead,
/// and one rolled in between); beyond, the one activated earliest goes.
pub const MAX_GMKS_PER_GROUP: usize = 4;

/// GMK-IDs of expired GMKs remembered (for the error only).
const MAX_RETIRED: usize = 64;

/// Why a group's GMK could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GmkError {
    /// The client holds no GMK for the group.
    #[error("no GMK for group {group_id}")]
    NoGmk {
        /// The group.
        group_id: String,
    },
    /// The GMK is not active yet.
    #[error("GMK {gmk_id} of group {group_id} is not active before {activation}")]
    NotYetActive {
        /// The group.
        group_id: String,
        /// The GMK-ID.
        gmk_id: KeyId,
        /// Its activation time, Unix seconds.
        activation: u64,
    },
    /// The GMK has expired (and was dropped).
    #[error("GMK {gmk_id} of group {group_id} expired at {expiry}")]
    Expired {
        /// The group.
        group_id: String,
        /// The GMK-ID.
        gmk_id: KeyId,
        /// Its expiry time, Unix seconds.
        expiry: u64,
    },
    /// The GMK-ID is not one of the group's GMKs this client holds.
    #[error("GMK-ID {gmk_id} is not a GMK of group {group_id} held here")]
    UnknownGmkId {
        /// The group.
        group_id: String,
        /// The GMK-ID.
        gmk_id: KeyId,
    },
}

/// Why the keys named by a received MKI could not be found (media under a
/// GMK: MKI = GMK-ID || GUK-ID, TS 33.180 7.4.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MkiError {
    /// The MKI is not GMK-ID || GUK-ID.
    #[error("MKI of {len} octets is not GMK-ID || GUK-ID ({GMK_MKI_LEN} octets)")]
    Length {
        /// Its length in octets.
        len: usize,
    },
    /// The MKI names a key ID whose purpose tag is not the GMK's (0): the
    /// media is under another kind of key.
    #[error("MKI names key ID {id} with purpose tag {tag}, not a GMK (0)")]
    NotGmk {
        /// The key ID (GMK-ID or GUK-ID half of the MKI).
        id: KeyId,
        /// Its purpose tag.
        tag: u8,
    },
    /// No GMK with this GMK-ID is held, nor was one held and expired.
    #[error("MKI names GMK-ID {gmk_id} (sender GUK-ID {guk_id}): no such GMK is held")]
    UnknownGmk {
        /// The GMK-ID.
        gmk_id: KeyId,
        /// The sender's GUK-ID.
        guk_id: KeyId,
    },
    /// The GMK is held but not in force (expired, or not active yet).
    #[error("MKI names a GMK not in force: {0}")]
    NotInForce(GmkError),
}

/// A sender's media keys found from the MKI of its packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderKeys {
    /// The group whose GMK the MKI names.
    pub group_id: String,
    /// The GMK-ID.
    pub gmk_id: KeyId,
    /// The sender's GUK-ID (the CSB ID of its keys).
    pub guk_id: KeyId,
    /// The sender's SRTP master key, salt and MKI.
    pub keys: SrtpMasterKeys,
}

/// What a client holds of one GMK, without the key (not secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GmkInfo {
    /// The GMK-ID.
    pub gmk_id: KeyId,
    /// Activation time, Unix seconds (0: not set).
    pub activation: u64,
    /// Expiry time, Unix seconds (0: never).
    pub expiry: u64,
}

impl GmkInfo {
    /// Whether the GMK may be used at `now`.
    pub fn in_force_at(&self, now: u64) -> bool {
        self.activation <= now && (self.expiry == 0 || now < self.expiry)
    }

    fn expired_at(&self, now: u64) -> bool {
        self.expiry != 0 && now >= self.expiry
    }
}

pub(crate) struct HeldGmk {
    pub(crate) group_id: String,
    pub(crate) gmk: Gmk,
    pub(crate) info: GmkInfo,
    /// The RAND of the GKTP that brought the GMK (one per GMK, the same
    /// at every member).
    pub(crate) rand: Vec<u8>,
}

impl HeldGmk {
    /// The SRTP master key, salt and MKI of the sender with `guk_id`
    /// under this GMK (TS 33.180 7.4.2).
    pub(crate) fn sender_keys(&self, guk_id: KeyId) -> SrtpMasterKeys {
        kdf::gmk_srtp_keys(&self.gmk, self.info.gmk_id, guk_id, &self.rand)
    }

    /// The sending keys of the user `uri`: CSB ID = its GUK-ID (F.1.3).
    pub(crate) fn keys_of(&self, uri: &str) -> SrtpMasterKeys {
        self.sender_keys(kdf::guk_id(&self.gmk, self.info.gmk_id, uri))
    }
}

/// The GMKs of every group of a client.
#[derive(Default)]
pub(crate) struct GmkRing {
    held: Vec<HeldGmk>,
    retired: VecDeque<(String, GmkInfo)>,
}

impl GmkRing {
    /// Drops the GMKs expired at `now`.
    pub(crate) fn prune(&mut self, now: u64) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|k| k.info.expired_at(now));
        self.held = kept;
        for k in gone {
            self.retire(k);
        }
    }

    fn retire(&mut self, k: HeldGmk) {
        if self.retired.len() >= MAX_RETIRED {
            self.retired.pop_front();
        }
        self.retired.push_back((k.group_id, k.info));
    }

    /// Holds a GMK of `group_id` with the RAND it came with (replacing
    /// one with the same GMK-ID, and its RAND).
    pub(crate) fn insert(
        &mut self,
        group_id: &str,
        gmk: Gmk,
        rand: Vec<u8>,
        info: GmkInfo,
        now: u64,
    ) {
        self.prune(now);
        self.held
            .retain(|k| !(k.group_id == group_id && k.info.gmk_id == info.gmk_id));
        self.held.push(HeldGmk {
            group_id: group_id.to_owned(),
            gmk,
            info,
            rand,
        });
        while self.held.iter().filter(|k| k.group_id == group_id).count() > MAX_GMKS_PER_GROUP {
            let oldest = self
                .held
                .iter()
                .enumerate()
                .filter(|(_, k)| k.group_id == group_id)
                .min_by_key(|(_, k)| k.info.activation)
                .map(|(i, _)| i);
            let Some(i) = oldest else { break };
            let k = self.held.remove(i);
            self.retire(k);
        }
    }

    /// Whether any GMK of `group_id` is held (in force or not yet).
    pub(crate) fn has(&self, group_id: &str) -> bool {
        self.held.iter().any(|k| k.group_id == group_id)
    }

    /// Whether `group_id` has or had a GMK here (held, or expired and
    /// remembered): the client is or was a member.
    pub(crate) fn knows(&self, group_id: &str) -> bool {
        self.has(group_id) || self.retired.iter().any(|(g, _)| g == group_id)
    }

    /// The groups with a GMK, once each.
    pub(crate) fn groups(&self) -> Vec<&str> {
        let mut g: Vec<&str> = self.held.iter().map(|k| k.group_id.as_str()).collect();
        g.sort_unstable();
        g.dedup();
        g
    }

    /// The GMKs of `group_id` held, by activation time.
    pub(crate) fn infos(&self, group_id: &str) -> Vec<GmkInfo> {
        let mut v: Vec<GmkInfo> = self
            .held
            .iter()
            .filter(|k| k.group_id == group_id)
            .map(|k| k.info)
            .collect();
        v.sort_by_key(|i| i.activation);
        v
    }

    fn latest_retired(&self, group_id: &str, gmk_id: Option<KeyId>) -> Option<GmkInfo> {
        self.retired
            .iter()
            .rev()
            .find(|(g, i)| g == group_id && gmk_id.is_none_or(|id| id == i.gmk_id))
            .map(|(_, i)| *i)
    }

    fn expired(group_id: &str, info: GmkInfo) -> GmkError {
        GmkError::Expired {
            group_id: group_id.to_owned(),
            gmk_id: info.gmk_id,
            expiry: info.expiry,
        }
    }

    /// The GMK to send with at `now`: of those in force, the one with
    /// the latest activation time (TS 33.180 5.7.1).
    pub(crate) fn for_sending(&self, group_id: &str, now: u64) -> Result<&HeldGmk, GmkError> {
        let mine = || self.held.iter().filter(|k| k.group_id == group_id);
        if let Some(k) = mine()
            .filter(|k| k.info.in_force_at(now))
            .max_by_key(|k| k.info.activation)
        {
            return Ok(k);
        }
        if let Some(k) = mine().min_by_key(|k| k.info.activation) {
            return Err(GmkError::NotYetActive {
                group_id: group_id.to_owned(),
                gmk_id: k.info.gmk_id,
                activation: k.info.activation,
            });
        }
        match self.latest_retired(group_id, None) {
            Some(i) => Err(Self::expired(group_id, i)),
            None => Err(GmkError::NoGmk {
                group_id: group_id.to_owned(),
            }),
        }
    }

    /// The GMK `gmk_id` of `group_id`, if it is in force at `now`.
    pub(crate) fn for_receiving(
        &self,
        group_id: &str,
        gmk_id: KeyId,
        now: u64,
    ) -> Result<&HeldGmk, GmkError> {
        let held = self
            .held
            .iter()
            .find(|k| k.group_id == group_id && k.info.gmk_id == gmk_id);
        match held {
            Some(k) if k.info.in_force_at(now) => Ok(k),
            Some(k) if k.info.expired_at(now) => Err(Self::expired(group_id, k.info)),
            Some(k) => Err(GmkError::NotYetActive {
                group_id: group_id.to_owned(),
                gmk_id,
                activation: k.info.activation,
            }),
            None => match self.latest_retired(group_id, Some(gmk_id)) {
                Some(i) => Err(Self::expired(group_id, i)),
                None if self.has(group_id) => Err(GmkError::UnknownGmkId {
                    group_id: group_id.to_owned(),
                    gmk_id,
                }),
                None => Err(GmkError::NoGmk {
                    group_id: group_id.to_owned(),
                }),
            },
        }
    }

    /// The keys of the sender whose media carries `mki` (GMK-ID ||
    /// GUK-ID): the GMK with that GMK-ID, of whichever group, if in force
    /// at `now`, and the sender's GUK-ID from the MKI.
    pub(crate) fn for_mki(&self, mki: &[u8], now: u64) -> Result<SenderKeys, MkiError> {
        let (gmk_id, guk_id) =
            kdf::split_gmk_mki(mki).ok_or(MkiError::Length { len: mki.len() })?;
        for id in [gmk_id, guk_id] {
            if id.purpose() != Purpose::Gmk {
                return Err(MkiError::NotGmk {
                    id,
                    tag: id.purpose().value(),
                });
            }
        }
        // GMK-IDs are unique across a GMS: the ID alone finds the group.
        let group_id = self
            .held
            .iter()
            .find(|k| k.info.gmk_id == gmk_id)
            .map(|k| k.group_id.as_str())
            .or_else(|| {
                self.retired
                    .iter()
                    .find(|(_, i)| i.gmk_id == gmk_id)
                    .map(|(g, _)| g.as_str())
            })
            .ok_or(MkiError::UnknownGmk { gmk_id, guk_id })?;
        let held = self
            .for_receiving(group_id, gmk_id, now)
            .map_err(MkiError::NotInForce)?;
        Ok(SenderKeys {
            group_id: held.group_id.clone(),
            gmk_id,
            guk_id,
            keys: held.sender_keys(guk_id),
        })
    }

    /// The GMKs of `group_id` in force at `now`.
    pub(crate) fn in_force(&self, group_id: &str, now: u64) -> impl Iterator<Item = &HeldGmk> {
        let group_id = group_id.to_owned();
        self.held
            .iter()
            .filter(move |k| k.group_id == group_id && k.info.in_force_at(now))
    }

    /// Drops every GMK of `group_id` (the client left the group).
    pub(crate) fn forget(&mut self, group_id: &str) {
        self.held.retain(|k| k.group_id != group_id);
        self.retired.retain(|(g, _)| g != group_id);
    }

    /// When the next GMK of `group_id` should be fetched: `lead` seconds
    /// before the last of its GMKs expires, but not before half its
    /// lifetime (when the GMS starts handing out the next one); `None`:
    /// one never expires, or none is held.
    pub(crate) fn refresh_at(&self, group_id: &str, lead: u64) -> Option<u64> {
        let mine = self.held.iter().filter(|k| k.group_id == group_id);
        let mut last: Option<GmkInfo> = None;
        for k in mine {
            if k.info.expiry == 0 {
                return None;
            }
            if last.is_none_or(|l| k.info.expiry > l.expiry) {
                last = Some(k.info);
            }
        }
        let last = last?;
        // The GMS's rule exactly (odd lifetimes round the same way).
        let half = if last.activation == 0 {
            0
        } else {
            last.expiry - last.expiry.saturating_sub(last.activation) / 2
        };
        Some(last.expiry.saturating_sub(lead).max(half))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const G: &str = "sip:g@x";

    fn info(id: u32, activation: u64, expiry: u64) -> GmkInfo {
        GmkInfo {
            gmk_id: KeyId(id),
            activation,
            expiry,
        }
    }

    fn ring(keys: &[GmkInfo]) -> GmkRing {
        let mut r = GmkRing::default();
        for i in keys {
            r.insert(G, Gmk::from_bytes(&[7; 16]).unwrap(), vec![9; 16], *i, 0);
        }
        r
    }

    #[test]
    fn sending_takes_the_latest_activated_in_force() {
        let r = ring(&[info(1, 100, 200), info(2, 150, 300), info(3, 250, 400)]);
        assert_eq!(
            r.for_sending(G, 99)
                .err()
                .map(|e| matches!(e, GmkError::NotYetActive { .. })),
            Some(true)
        );
        assert_eq!(r.for_sending(G, 100).unwrap().info.gmk_id, KeyId(1));
        assert_eq!(r.for_sending(G, 160).unwrap().info.gmk_id, KeyId(2));
        assert_eq!(r.for_sending(G, 260).unwrap().info.gmk_id, KeyId(3));
        assert!(matches!(
            r.for_sending(G, 400),
            Err(GmkError::NotYetActive { .. } | GmkError::Expired { .. })
        ));
    }

    #[test]
    fn expired_gmks_are_dropped_and_refused_as_expired() {
        let mut r = ring(&[info(1, 0, 200), info(2, 200, 0)]);
        assert_eq!(
            r.for_receiving(G, KeyId(1), 199).unwrap().info.gmk_id,
            KeyId(1)
        );
        assert_eq!(
            r.for_receiving(G, KeyId(1), 200).err(),
            Some(GmkError::Expired {
                group_id: G.into(),
                gmk_id: KeyId(1),
                expiry: 200
            })
        );
        r.prune(200);
        assert_eq!(r.infos(G), vec![info(2, 200, 0)]);
        assert!(matches!(
            r.for_receiving(G, KeyId(1), 200),
            Err(GmkError::Expired { .. })
        ));
        assert!(matches!(
            r.for_receiving(G, KeyId(9), 200),
            Err(GmkError::UnknownGmkId { .. })
        ));
        assert!(matches!(
            r.for_receiving("sip:other@x", KeyId(2), 200),
            Err(GmkError::NoGmk { .. })
        ));
        assert_eq!(r.refresh_at(G, 10), None);
    }

    #[test]
    fn a_senders_keys_are_found_from_its_mki() {
        let mut r = ring(&[info(0x0123_4567, 0, 200)]);
        let gmk = Gmk::from_bytes(&[7; 16]).unwrap();
        let guk_id = kdf::guk_id(&gmk, KeyId(0x0123_4567), "sip:a@x");
        let mki = kdf::gmk_mki(KeyId(0x0123_4567), guk_id);
        let found = r.for_mki(&mki, 10).unwrap();
        assert_eq!((found.group_id.as_str(), found.guk_id), (G, guk_id));
        // Independent of the ring: the RFC 3830 4.1.3 derivation with the
        // RAND given at insert.
        let (key, salt) = kdf::srtp_master(&[7; 16], 4, guk_id.0, &[9; 16]);
        assert_eq!(
            (
                found.keys.master_key(),
                found.keys.master_salt(),
                found.keys.mki()
            ),
            (&key, &salt, &mki[..])
        );
        assert_eq!(found.keys, r.held[0].keys_of("sip:a@x"));
        assert_eq!(r.for_mki(&mki[..7], 10), Err(MkiError::Length { len: 7 }));
        let mut csk = mki;
        csk[0] = 0x21;
        assert_eq!(
            r.for_mki(&csk, 10),
            Err(MkiError::NotGmk {
                id: KeyId(0x2123_4567),
                tag: 2
            })
        );
        let other = kdf::gmk_mki(KeyId(0x0999_9999), guk_id);
        assert_eq!(
            r.for_mki(&other, 10),
            Err(MkiError::UnknownGmk {
                gmk_id: KeyId(0x0999_9999),
                guk_id
            })
        );
        r.prune(200);
        assert!(matches!(
            r.for_mki(&mki, 200),
            Err(MkiError::NotInForce(GmkError::Expired { expiry: 200, .. }))
        ));
    }

    #[test]
    fn at_most_four_per_group_and_refresh_time() {
        let r = ring(&[
            info(1, 10, 100),
            info(2, 20, 110),
            info(3, 30, 120),
            info(4, 40, 130),
            info(5, 50, 140),
        ]);
        let ids: Vec<u32> = r.infos(G).iter().map(|i| i.gmk_id.0).collect();
        assert_eq!(ids, [2, 3, 4, 5]);
        assert_eq!(r.refresh_at(G, 40), Some(100));
        // Not before half the lifetime of the last GMK (odd: rounded up,
        // as the GMS does).
        assert_eq!(r.refresh_at(G, 80), Some(95));
        let r = ring(&[info(1, 10, 101)]);
        assert_eq!(r.refresh_at(G, 80), Some(56));
    }
}
