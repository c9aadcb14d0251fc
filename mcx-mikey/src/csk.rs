//! CSK upload (TS 33.180 5.4, E.4) and the floor-control SRTCP keys
//! derived from a CSK or an SPK (TS 24.380 13.1; RFC 3830 4.1.3).
//!
//! An MC service client generates a client-server key (CSK) and sends it
//! to its MC server domain in a MIKEY-SAKKE I_MESSAGE carried by SIP
//! (TS 24.379: in the REGISTER). The message follows the common key
//! distribution of 5.2.2 with the client as initiating entity and the MC
//! server domain's security identifier (MDSI) as receiving entity:
//!
//! ```text
//! HDR   data type 26, V 0, PRF-HMAC-SHA-256, CSB ID = CSK-ID (purpose tag 2),
//!       #CS 1, GENERIC-ID { CS ID 6, SRTP, #P 1 (the SP's policy), SPI = CSK-ID }
//! T     NTP-UTC
//! RAND  16 octets (input to the SRTCP key derivation)
//! IDR   initiator: the client's MC service ID (role 1) or UID (role 8)
//! IDR   responder: the MDSI (role 2) or its UID (role 9)
//! IDR   IDRkmsi, IDRkmsr: the KMS URI (roles 6, 7)
//! SP    optional
//! SAKKE the CSK encapsulated to the MDSI's UID (parameter set 1, ID scheme 2)
//! GEXT  type 7: key parameters (E.6), key type 2 (CSK), no group IDs; optional
//! SIGN  ECCSI by the client over everything up to and including the SIGN header
//! ```
//!
//! The layout is the one of TS 36.579-1 Table 5.5.9.1-1 ("CSK distribution
//! by the UE") and of the Streamwide CSK message, which this crate
//! rebuilds octet for octet up to its signature (tests/csk.rs).
//!
//! Floor control between a client and its server is SRTCP under the CSK;
//! between servers under a configured SPK (TS 24.380 13.1). Both take
//! their SRTCP master key, salt and MKI from the key by RFC 3830 4.1.3 as
//! media keys do (TS 33.180 7.4): [`csk_srtcp_keys`], [`spk_srtcp_keys`].
//! docs/mikey.md ("CSK and SPK") records the decisions where the
//! specifications were not at hand or are silent.

use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::CommunityPublic;
use mcx_ibc::sakke::ReceiverKey;
use rand_core::CryptoRng;

use crate::error::{Error, Rejection};
use crate::kdf;
use crate::keyparams::{KeyParameters, STATUS_NOT_REVOKED};
use crate::message::{CsIdMap, Message, Sp};
use crate::replay::ReplayCache;
use crate::sakke_msg::{KeyMessageRandom, KeyReceiver, KeyTransport, key_parameters, sign_message};
use crate::wire::Purpose;
use crate::{Csk, KeyId, Spk, SrtpMasterKeys};

/// The CS ID of the CSK's crypto session: floor control (SRTCP) between
/// an MCPTT client and its server. TS 33.180 E.4.2 (Table E.1.3-1), as
/// TS 36.579-1 Table 5.5.9.1-1 quotes it: "'6' for CSK use within MCPTT";
/// the Streamwide CSK message carries it.
pub const CS_ID_CSK: u8 = 6;

/// The CS ID used to derive the SRTCP keys of floor control between MC
/// servers from the SPK. Decision (docs/mikey.md): no source at hand gives
/// a CS ID for the SPK; this is the one of MCPTT floor control (the CSK's,
/// E.4.2). The SPK-ID, not the CS ID, keeps the two derivations apart.
pub const CS_ID_SPK: u8 = CS_ID_CSK;

/// The purpose tag of a CSK-ID (TS 33.180 5.2.2: the 4 most significant
/// bits; TS 36.579-1 Table 5.5.9.1-1: "'0010'B").
pub const PURPOSE: Purpose = Purpose::Csk;

/// A fresh CSK (16 octets from `rng`; the caller passes the OS RNG) and
/// CSK-ID (purpose tag 2 and 28 random bits, TS 33.180 5.2.2).
pub fn generate(rng: &mut impl CryptoRng) -> (Csk, KeyId) {
    (Csk::generate(rng), KeyId::fresh(PURPOSE, rng))
}

/// The SRTCP master key, salt and MKI of floor control between a client
/// and its server, from the client's CSK: RFC 3830 4.1.3 with
/// PRF-HMAC-SHA-256 (RFC 6043 6.1) as for media keys (TS 33.180 7.4),
/// TGK = CSK, CS ID 6 ([`CS_ID_CSK`]), CSB ID = CSK-ID, RAND of the CSK
/// message; MKI = CSK-ID (as the PCK-ID is the MKI of private calls,
/// TS 33.180 7.4.1).
pub fn csk_srtcp_keys(csk: &Csk, csk_id: KeyId, rand: &[u8]) -> SrtpMasterKeys {
    kdf::srtp_keys_named_by_id(csk.as_bytes(), CS_ID_CSK, csk_id, rand)
}

/// The SRTCP master key, salt and MKI of floor control between two MC
/// servers, from the SPK configured between them (TS 24.380 13.1): the
/// derivation of [`csk_srtcp_keys`] with TGK = SPK, CS ID [`CS_ID_SPK`],
/// CSB ID = SPK-ID, MKI = SPK-ID. No MIKEY message carries an SPK, so
/// `rand` is configured with it (decision: 16 octets, the same on both
/// servers; see docs/mikey.md).
///
/// # Errors
/// [`Error::InvalidParameter`] if the SPK-ID's purpose tag is not 3 (SPK)
/// or `rand` is empty: both come from configuration, not from a checked
/// message.
pub fn spk_srtcp_keys(spk: &Spk, spk_id: KeyId, rand: &[u8]) -> Result<SrtpMasterKeys, Error> {
    check_spk_config(spk_id, rand)?;
    Ok(kdf::srtp_keys_named_by_id(
        spk.as_bytes(),
        CS_ID_SPK,
        spk_id,
        rand,
    ))
}

/// The configured SPK-ID and RAND are usable: purpose tag 3, RAND not
/// empty.
fn check_spk_config(spk_id: KeyId, rand: &[u8]) -> Result<(), Error> {
    if spk_id.purpose() != Purpose::Spk {
        return Err(Error::InvalidParameter("SPK-ID must have purpose tag 3"));
    }
    if rand.is_empty() {
        return Err(Error::InvalidParameter("SPK RAND must not be empty"));
    }
    Ok(())
}

/// Which way a call leg's floor context carries floor messages between
/// the controlling server and an MC server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FloorDirection {
    /// Controlling server → MC server.
    Down,
    /// MC server → controlling server.
    Up,
}

impl FloorDirection {
    /// The octet that names the direction in a leg RAND
    /// ([`spk_leg_srtcp_keys`]).
    pub const fn octet(self) -> u8 {
        match self {
            Self::Down => 1,
            Self::Up => 2,
        }
    }
}

/// The RAND of one call leg's floor keys in one direction:
/// `spk_rand || direction octet || SHA-256(Call-ID)`. The last 33 octets
/// have a fixed length, so the encoding is unambiguous whatever the
/// configured `spk_rand`'s length and the Call-ID's.
pub fn spk_leg_rand(spk_rand: &[u8], call_id: &str, direction: FloorDirection) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut rand = Vec::with_capacity(spk_rand.len() + 33);
    rand.extend_from_slice(spk_rand);
    rand.push(direction.octet());
    rand.extend_from_slice(&Sha256::digest(call_id.as_bytes()));
    rand
}

/// The SRTCP master key, salt and MKI of floor control on one call leg
/// between the controlling server and an MC server, in one direction:
/// the derivation of [`spk_srtcp_keys`] (TGK = SPK, CS ID [`CS_ID_SPK`],
/// CSB ID = SPK-ID, MKI = SPK-ID) with RAND = [`spk_leg_rand`] of the
/// configured `spk_rand`, the Call-ID of the controlling server's INVITE
/// to that MC server, and the direction.
///
/// Why (decision, docs/mikey.md): the channel is multiplexed by member
/// SSRC and both servers send with the member's SSRC from SRTCP index 0;
/// under one key for everything, the two directions of a call, two MC
/// servers and calls after calls would reuse AES-GCM nonces. One key per
/// leg and direction keeps every (key, SSRC, index) apart, and ending a
/// call retires its keys.
///
/// # Errors
/// [`Error::InvalidParameter`] as [`spk_srtcp_keys`], or if `call_id` is
/// empty.
pub fn spk_leg_srtcp_keys(
    spk: &Spk,
    spk_id: KeyId,
    spk_rand: &[u8],
    call_id: &str,
    direction: FloorDirection,
) -> Result<SrtpMasterKeys, Error> {
    if call_id.is_empty() {
        return Err(Error::InvalidParameter("leg Call-ID must not be empty"));
    }
    // The configured RAND is checked alone: the leg RAND is never empty.
    check_spk_config(spk_id, spk_rand)?;
    spk_srtcp_keys(spk, spk_id, &spk_leg_rand(spk_rand, call_id, direction))
}

/// A configured SPK with its SPK-ID and RAND, checked once: what servers
/// hold to derive each call leg's floor keys ([`spk_leg_srtcp_keys`]).
/// `Debug` shows the SPK-ID only.
#[derive(Clone)]
pub struct SpkFloorKeys {
    spk: Spk,
    spk_id: KeyId,
    rand: Vec<u8>,
}

impl SpkFloorKeys {
    /// The SPK, its SPK-ID and the configured RAND.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the SPK-ID's purpose tag is not 3
    /// (SPK) or `rand` is empty.
    pub fn new(spk: Spk, spk_id: KeyId, rand: Vec<u8>) -> Result<Self, Error> {
        check_spk_config(spk_id, &rand)?;
        Ok(Self { spk, spk_id, rand })
    }

    /// The SPK-ID (the MKI of every leg's packets).
    pub fn spk_id(&self) -> KeyId {
        self.spk_id
    }

    /// The floor keys of the leg whose INVITE has `call_id`, one way.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `call_id` is empty.
    pub fn leg_keys(
        &self,
        call_id: &str,
        direction: FloorDirection,
    ) -> Result<SrtpMasterKeys, Error> {
        spk_leg_srtcp_keys(&self.spk, self.spk_id, &self.rand, call_id, direction)
    }
}

impl std::fmt::Debug for SpkFloorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpkFloorKeys")
            .field("spk_id", &self.spk_id)
            .finish_non_exhaustive()
    }
}

/// The key parameters (E.6) a client may send with its CSK: key type 2
/// (the purpose tag, as the vendor data), not revoked, activation and
/// expiry (40-bit Unix seconds, 0 = not set), no MC group IDs.
pub fn csk_key_parameters(activation: u64, expiry: u64) -> KeyParameters {
    KeyParameters {
        key_type: PURPOSE.value(),
        status: STATUS_NOT_REVOKED,
        activation_time: activation,
        expiry_time: expiry,
        text: Vec::new(),
        group_ids: None,
    }
}

/// The random inputs of a CSK message (RAND and the key parameters' IV).
pub type CskMessageRandom = KeyMessageRandom;

/// A CSK I_MESSAGE to build (TS 33.180 5.4, E.4): everything but the
/// randomness and the signature. Build it with [`CskMessage::sign`].
#[derive(Debug, Clone)]
pub struct CskMessage<'a> {
    /// The client's MC service ID (the initiating entity and signer).
    pub client_uri: &'a str,
    /// The MC server domain's security identifier (MDSI, TS 33.180 5.4):
    /// the receiving entity the CSK is encapsulated to.
    pub server_uri: &'a str,
    /// The KMS community of client and server (KMS URI, key periods, Z).
    pub kms: &'a CommunityPublic,
    /// The CSK.
    pub csk: &'a Csk,
    /// Its CSK-ID (purpose tag 2).
    pub csk_id: KeyId,
    /// The key parameters (E.6); `None` leaves the extension out.
    pub key_params: Option<KeyParameters>,
    /// The SP payload; `None` leaves it out.
    pub policy: Option<Sp>,
    /// Name client and server by UID (roles 8/9, identity hiding as
    /// TS 33.180 5.2.6) instead of URI (roles 1/2).
    pub identity_hiding: bool,
    /// Time stamp, Unix seconds; also picks the key period of the UIDs.
    pub t_unix: u64,
    /// The "date and time" of the key parameters' protected payload;
    /// `None` puts the time stamp's Unix seconds.
    pub key_params_date_time: Option<u64>,
}

impl CskMessage<'_> {
    /// The unsigned message with the given random values: everything the
    /// signature will cover except the SIGN payload.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the CSK-ID's purpose is not CSK,
    /// [`Error::Ibc`] if a UID or the SAKKE encapsulation fails,
    /// [`Error::Encode`] if a field is too long.
    pub fn unsigned(&self, random: &CskMessageRandom) -> Result<Message, Error> {
        if self.csk_id.purpose() != PURPOSE {
            return Err(Error::InvalidParameter("CSK-ID must have purpose tag 2"));
        }
        // 5.2.2: K-ID in the CSB ID; E.4.2: CS ID 6 with SPI = CSK-ID.
        KeyTransport {
            kms: self.kms,
            initiator_uri: self.client_uri,
            responder_uri: self.server_uri,
            identity_hiding: self.identity_hiding,
            t_unix: self.t_unix,
            csb_id: self.csk_id.0,
            cs_id: CS_ID_CSK,
            spi: self.csk_id.to_bytes().to_vec(),
            policy: self.policy.as_ref(),
            key: self.csk.as_bytes(),
            key_params: self
                .key_params
                .as_ref()
                .map(|kp| (kp, self.key_params_date_time)),
            random,
        }
        .build()
    }

    /// Builds and signs the I_MESSAGE with the client's ECCSI key,
    /// drawing RAND and the IV from `rng`. A client that derives its own
    /// SRTCP keys needs the RAND: use [`CskMessage::sign_with`].
    ///
    /// # Errors
    /// As [`CskMessage::unsigned`].
    pub fn sign(
        &self,
        client_key: &SigningKey,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        let random = CskMessageRandom::generate(rng);
        self.sign_with(client_key, &random, rng)
    }

    /// Builds and signs the I_MESSAGE with the given RAND and IV; then
    /// [`csk_srtcp_keys`]`(csk, csk_id, &random.rand)` are the client's
    /// floor-control keys.
    ///
    /// # Errors
    /// As [`CskMessage::unsigned`].
    pub fn sign_with(
        &self,
        client_key: &SigningKey,
        random: &CskMessageRandom,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        sign_message(self.unsigned(random)?, client_key, rng)
    }
}

/// A server's view: what it needs to accept CSK uploads.
#[derive(Debug, Clone, Copy)]
pub struct CskReceiver<'a> {
    /// The MC server domain's security identifier (MDSI): IDRr must name
    /// it, and the CSK is encapsulated to it.
    pub server_uri: &'a str,
    /// The SAKKE receiver key of `server_uri` for `key_period_no`.
    pub server_key: &'a ReceiverKey,
    /// The key period `server_key` is for.
    pub key_period_no: u64,
    /// The trusted KMS community (URI, key periods, KPAK).
    pub kms: &'a CommunityPublic,
}

/// A CSK the server accepted, with what it stores against the client.
#[derive(Debug, Clone)]
pub struct AcceptedCsk {
    /// The client that signed it (its MC service ID).
    pub client_uri: String,
    /// The CSK.
    pub csk: Csk,
    /// The CSK-ID (the CSB ID).
    pub csk_id: KeyId,
    /// The RAND of the message (input to the SRTCP key derivation).
    pub rand: Vec<u8>,
    /// The message's time stamp, Unix seconds.
    pub t_unix: i64,
    /// The key parameters (E.6), if sent.
    pub key_params: Option<KeyParameters>,
    /// The SP payload, if sent.
    pub policy: Option<Sp>,
}

impl AcceptedCsk {
    /// The SRTCP master key, salt and MKI of floor control with this
    /// client ([`csk_srtcp_keys`]).
    pub fn srtcp_keys(&self) -> SrtpMasterKeys {
        csk_srtcp_keys(&self.csk, self.csk_id, &self.rand)
    }
}

/// E.4's structure, checked before any expensive crypto: the CSB ID is a
/// CSK-ID, and the CS ID map is empty (#CS 0: default profile) or names
/// CS ID 6 with the CSK-ID (or no SPI) as SPI.
fn check_structure(msg: &Message) -> Result<(), Rejection> {
    let id = KeyId(msg.hdr.csb_id);
    if id.purpose() != PURPOSE {
        return Err(Rejection::WrongPurpose {
            id: id.0,
            expected: PURPOSE.value(),
            got: id.purpose().value(),
        });
    }
    match &msg.hdr.map {
        CsIdMap::Empty { .. } => Ok(()),
        CsIdMap::GenericId(entries) => {
            for e in entries {
                if e.cs_id != CS_ID_CSK {
                    return Err(Rejection::Unsupported {
                        what: "CS ID for a CSK",
                        value: e.cs_id.into(),
                    });
                }
                if !e.spi.is_empty() && e.spi != id.to_bytes() {
                    return Err(Rejection::SpiMismatch);
                }
            }
            Ok(())
        }
        other => Err(Rejection::Unsupported {
            what: "CS ID map type",
            value: other.map_type().value().into(),
        }),
    }
}

impl CskReceiver<'_> {
    /// Accepts a CSK upload whose IDRi names the client by URI; the client
    /// is whoever IDRi names, and the signature must be that client's.
    ///
    /// Checks, each failing with its own [`Rejection`]: data type and PRF;
    /// the CSB ID's purpose tag is CSK and the CS ID map is E.4's
    /// (before any crypto); signed; both KMS IDRs name the trusted KMS; T
    /// within the replay window; the key period of T is the server key's;
    /// IDRi present; IDRr (URI or UID) is this server's MDSI; the ECCSI
    /// signature by the client IDRi names; (T, RAND) not seen before;
    /// SAKKE decapsulation; the key parameters, if sent, authenticate
    /// under the CSK with DPPK-ID = CSK-ID, have key type CSK and have not
    /// expired. (T, RAND) is remembered only once all of this passed.
    ///
    /// # Errors
    /// [`Error::Decode`] for a malformed message, [`Error::Rejected`] with
    /// the failed check.
    pub fn accept(
        &self,
        bytes: &[u8],
        now_unix: u64,
        replay: &mut ReplayCache,
    ) -> Result<AcceptedCsk, Error> {
        self.accept_inner(bytes, None, now_unix, replay)
    }

    /// As [`CskReceiver::accept`], for a client the SIP layer already
    /// names (e.g. the MCPTT ID of the REGISTER): IDRi (URI) or IDRuidi
    /// (UID, identity hiding) must name `client_uri`, else
    /// [`Rejection::WrongInitiator`]. A message that names its initiator
    /// by UID only can be accepted this way alone.
    ///
    /// # Errors
    /// As [`CskReceiver::accept`].
    pub fn accept_from(
        &self,
        bytes: &[u8],
        client_uri: &str,
        now_unix: u64,
        replay: &mut ReplayCache,
    ) -> Result<AcceptedCsk, Error> {
        self.accept_inner(bytes, Some(client_uri), now_unix, replay)
    }

    fn accept_inner(
        &self,
        bytes: &[u8],
        client_uri: Option<&str>,
        now_unix: u64,
        replay: &mut ReplayCache,
    ) -> Result<AcceptedCsk, Error> {
        let opened = KeyReceiver {
            own_uri: self.server_uri,
            own_key: self.server_key,
            key_period_no: self.key_period_no,
            kms: self.kms,
        }
        .open(bytes, now_unix, replay, client_uri, check_structure)?;
        let key_params = key_parameters(
            &opened.msg,
            &opened.key,
            PURPOSE,
            "key type is not CSK",
            now_unix,
        )?;
        let csk = Csk::from_bytes(opened.key.as_bytes())?;
        opened.remember(replay, now_unix);
        Ok(AcceptedCsk {
            csk,
            csk_id: KeyId(opened.msg.hdr.csb_id),
            rand: opened.rand,
            t_unix: opened.t_unix,
            key_params,
            policy: opened.msg.sp().cloned(),
            client_uri: opened.initiator_uri,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_the_csk_purpose() {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        for _ in 0..32 {
            let (_, id) = generate(&mut rng);
            assert_eq!(id.purpose(), Purpose::Csk);
        }
    }

    #[test]
    fn spk_keys_refuse_a_non_spk_id_and_an_empty_rand() {
        let spk = Spk::from_bytes(&[7; 16]).unwrap();
        assert!(spk_srtcp_keys(&spk, KeyId(0x2000_0001), &[0; 16]).is_err());
        assert!(spk_srtcp_keys(&spk, KeyId(0x3000_0001), &[]).is_err());
        let k = spk_srtcp_keys(&spk, KeyId(0x3000_0001), &[0; 16]).unwrap();
        assert_eq!(k.mki(), [0x30, 0, 0, 1]);
    }

    #[test]
    fn leg_keys_differ_per_direction_and_call_id_and_from_the_plain_spk_keys() {
        let spk = Spk::from_bytes(&[7; 16]).unwrap();
        let id = KeyId(0x3000_0001);
        let keys = SpkFloorKeys::new(spk.clone(), id, vec![1; 16]).unwrap();
        let down = keys.leg_keys("a@x", FloorDirection::Down).unwrap();
        let up = keys.leg_keys("a@x", FloorDirection::Up).unwrap();
        let other = keys.leg_keys("b@x", FloorDirection::Down).unwrap();
        let plain = spk_srtcp_keys(&spk, id, &[1; 16]).unwrap();
        let all = [&down, &up, &other, &plain];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.mki(), [0x30, 0, 0, 1]);
            for b in &all[i + 1..] {
                assert_ne!(a.master_key(), b.master_key());
                assert_ne!(a.master_salt(), b.master_salt());
            }
        }
        assert!(keys.leg_keys("", FloorDirection::Up).is_err());
        assert!(SpkFloorKeys::new(spk.clone(), KeyId(0x2000_0001), vec![1]).is_err());
        assert!(SpkFloorKeys::new(spk, id, Vec::new()).is_err());
        assert_eq!(
            format!("{keys:?}"),
            format!("SpkFloorKeys {{ spk_id: {id:?}, .. }}")
        );
    }
}
