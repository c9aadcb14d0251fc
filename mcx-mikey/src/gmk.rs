//! GMK distribution (TS 33.180 5.7, E.2): the GMS builds a MIKEY-SAKKE
//! I_MESSAGE per member; the member accepts it only after every check.
//!
//! The message, in order (TS 33.180 E.2, as the Streamwide vectors have it):
//!
//! ```text
//! HDR   data type 26, V 0, PRF-HMAC-SHA-256, CSB ID = GUK-ID,
//!       #CS 1, GENERIC-ID { CS ID 4, SRTP, #P 1 (policy 0), SPI = GMK-ID || GUK-ID }
//! T     NTP-UTC
//! RAND  16 octets
//! IDR   initiator: GMS URI (role 1) or UID (role 8, identity hiding)
//! IDR   responder: member URI (role 2) or UID (role 9)
//! IDR   IDRkmsi: KMS URI (role 6)
//! IDR   IDRkmsr: KMS URI (role 7)
//! SP    the group's SRTP profile (default: Table E.2-1)
//! SAKKE GMK encapsulated to the member's UID (parameter set 1, ID scheme 2)
//! GEXT  type 7: key parameters (E.6) under DPCK = KDF(GMK, 0x53, GUK-ID)
//! SIGN  ECCSI by the GMS over everything up to and including the SIGN header
//! ```

use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::CommunityPublic;
use mcx_ibc::sakke::ReceiverKey;
use rand_core::CryptoRng;

use crate::error::{Error, Rejection};
use crate::kdf;
use crate::keyparams::{GroupIdIe, KeyParameters, STATUS_NOT_REVOKED};
use crate::message::{CsIdMap, ExtBody, GeneralExt, Message, Sp};
use crate::replay::ReplayCache;
use crate::sakke_msg::{KeyMessageRandom, KeyReceiver, KeyTransport, key_parameters, sign_message};
use crate::wire::Purpose;
use crate::{Gmk, KeyId, SrtpMasterKeys};

/// A GMK I_MESSAGE to build: everything but the randomness and the
/// signature. Build it with [`GmkMessage::sign`].
#[derive(Debug, Clone)]
pub struct GmkMessage<'a> {
    /// The GMS's MC service ID (the signer).
    pub gms_uri: &'a str,
    /// The member's MC service ID (the receiver).
    pub member_uri: &'a str,
    /// The KMS community of GMS and member (KMS URI, key periods, SAKKE Z).
    pub kms: &'a CommunityPublic,
    /// The group's GMK.
    pub gmk: &'a Gmk,
    /// Its GMK-ID (purpose tag 0).
    pub gmk_id: KeyId,
    /// The key parameters (E.6); `None` leaves the extension out.
    pub key_params: Option<KeyParameters>,
    /// The SP payload; `None` leaves it out (the receiver then uses the
    /// default profile).
    pub policy: Option<Sp>,
    /// Name GMS and member by UID (roles 8/9) instead of URI (roles 1/2).
    pub identity_hiding: bool,
    /// Time stamp, Unix seconds; also picks the key period of the UIDs.
    pub t_unix: u64,
    /// The "date and time" of the key parameters' protected payload;
    /// `None` puts the time stamp's Unix seconds.
    pub key_params_date_time: Option<u64>,
}

/// The random inputs of a GMK message (RAND and the key parameters' IV).
pub type GmkMessageRandom = KeyMessageRandom;

/// The key parameters a GMS sends with a GMK: type GMK, not revoked,
/// activation and expiry (40-bit, 0 = not set) and the group ID.
pub fn gmk_key_parameters(group_id: &str, activation: u64, expiry: u64) -> KeyParameters {
    KeyParameters {
        key_type: Purpose::Gmk.value(),
        status: STATUS_NOT_REVOKED,
        activation_time: activation,
        expiry_time: expiry,
        text: Vec::new(),
        group_ids: Some(vec![GroupIdIe::new(group_id)]),
    }
}

impl GmkMessage<'_> {
    /// The unsigned message with the given random values: everything the
    /// signature will cover except the SIGN payload.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if the GMK-ID's purpose is not GMK,
    /// [`Error::Ibc`] if a UID or the SAKKE encapsulation fails,
    /// [`Error::Encode`] if a field is too long.
    pub fn unsigned(&self, random: &GmkMessageRandom) -> Result<Message, Error> {
        if self.gmk_id.purpose() != Purpose::Gmk {
            return Err(Error::InvalidParameter("GMK-ID must have purpose tag 0"));
        }
        // E.2: CSB ID = GUK-ID (F.1.3); the crypto session is the group
        // call (CS ID 4) with SPI = GMK-ID || GUK-ID.
        let guk_id = kdf::guk_id(self.gmk, self.gmk_id, self.member_uri);
        let spi = kdf::gmk_mki(self.gmk_id, guk_id).to_vec();
        KeyTransport {
            kms: self.kms,
            initiator_uri: self.gms_uri,
            responder_uri: self.member_uri,
            identity_hiding: self.identity_hiding,
            t_unix: self.t_unix,
            csb_id: guk_id.0,
            cs_id: kdf::CS_ID_GROUP_CALL,
            spi,
            policy: self.policy.as_ref(),
            key: self.gmk.as_bytes(),
            key_params: self
                .key_params
                .as_ref()
                .map(|kp| (kp, self.key_params_date_time)),
            random,
        }
        .build()
    }

    /// Builds and signs the I_MESSAGE with the GMS's ECCSI key, with the
    /// GMK's `rand` as RAND and a fresh IV from `rng`.
    ///
    /// A GMS gives every member the same RAND for a GMK, on every fetch:
    /// TS 33.180 7.4.2 derives the media keys from the GMK and the RAND of
    /// the message that distributed it, so members given different RANDs
    /// would derive different keys for the same sender. Draw it once when
    /// the GMK is made and keep it with the GMK.
    ///
    /// # Errors
    /// As [`GmkMessage::unsigned`].
    pub fn sign_with_rand(
        &self,
        gms_key: &SigningKey,
        rand: &[u8; 16],
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        let random = GmkMessageRandom::with_rand(*rand, rng);
        sign_message(self.unsigned(&random)?, gms_key, rng)
    }

    /// [`GmkMessage::sign_with_rand`] with a RAND drawn from `rng` for
    /// this message alone: for one receiver only (tests, lab tools). A
    /// GMS sending one GMK to several members uses
    /// [`GmkMessage::sign_with_rand`].
    ///
    /// # Errors
    /// As [`GmkMessage::unsigned`].
    pub fn sign(&self, gms_key: &SigningKey, rng: &mut impl CryptoRng) -> Result<Vec<u8>, Error> {
        let random = GmkMessageRandom::generate(rng);
        sign_message(self.unsigned(&random)?, gms_key, rng)
    }
}

/// A member's view: what it needs to accept GMK messages.
#[derive(Debug, Clone, Copy)]
pub struct GmkReceiver<'a> {
    /// The member's MC service ID.
    pub own_uri: &'a str,
    /// The member's SAKKE key for its UID in `key_period_no`.
    pub own_key: &'a ReceiverKey,
    /// The key period `own_key` is for.
    pub key_period_no: u64,
    /// The trusted KMS community (URI, key periods, KPAK).
    pub kms: &'a CommunityPublic,
    /// The GMS's MC service ID: the only accepted signer.
    pub gms_uri: &'a str,
}

/// An accepted GMK with what the member stores.
#[derive(Debug, Clone)]
pub struct ReceivedGmk {
    /// The GMK.
    pub gmk: Gmk,
    /// The GMK-ID (recovered from the GUK-ID).
    pub gmk_id: KeyId,
    /// The GUK-ID (the CSB ID).
    pub guk_id: KeyId,
    /// The RAND of the message (input to the SRTP key derivation).
    pub rand: Vec<u8>,
    /// The message's time stamp, Unix seconds.
    pub t_unix: i64,
    /// The key parameters (E.6), if sent.
    pub key_params: Option<KeyParameters>,
    /// The SP payload, if sent.
    pub policy: Option<Sp>,
}

impl ReceivedGmk {
    /// The activation time of its key parameters, Unix seconds (0: not
    /// set, or no key parameters: active at once).
    pub fn activation(&self) -> u64 {
        self.key_params.as_ref().map_or(0, |kp| kp.activation_time)
    }

    /// The expiry time of its key parameters, Unix seconds (0: not set,
    /// or no key parameters: never expires).
    pub fn expiry(&self) -> u64 {
        self.key_params.as_ref().map_or(0, |kp| kp.expiry_time)
    }

    /// The SRTP master key, salt and MKI this member sends the group's
    /// media with (TS 33.180 7.4.2: CSB ID = its own GUK-ID). Other
    /// senders' keys: [`kdf::gmk_srtp_keys`] with their GUK-ID.
    pub fn srtp_keys(&self) -> SrtpMasterKeys {
        kdf::gmk_srtp_keys(&self.gmk, self.gmk_id, self.guk_id, &self.rand)
    }
}

impl GmkReceiver<'_> {
    /// Accepts a GMK I_MESSAGE: decodes it, checks data type and PRF, the
    /// KMS it names, the time stamp against the replay window and the key
    /// period, the initiator (the GMS) and responder (this member), the
    /// GMS's signature and freshness of (T, RAND); then decapsulates the
    /// GMK, recovers the GMK-ID from the GUK-ID (checking the SPI), and
    /// opens the key parameters (checking DPPK-ID, key type and expiry).
    /// (T, RAND) is remembered only once all of this passed.
    ///
    /// # Errors
    /// [`Error::Decode`] for a malformed message, [`Error::Rejected`] with
    /// the failed check.
    pub fn accept(
        &self,
        bytes: &[u8],
        now_unix: u64,
        replay: &mut ReplayCache,
    ) -> Result<ReceivedGmk, Error> {
        self.accept_inner(bytes, None, now_unix, replay)
    }

    /// [`GmkReceiver::accept`] for the GMK of `group_id`: also refuses a
    /// message whose key parameters (E.6) do not name `group_id` among
    /// their MC group IDs (TS 33.180 5.7.1: each MC group ID named there
    /// uses this GMK, and only those). A GMK without key parameters or
    /// without group IDs names no group and is refused. Nothing is
    /// remembered in `replay` for a refused message.
    ///
    /// # Errors
    /// As [`GmkReceiver::accept`]; [`Rejection::GroupNotNamed`] if the
    /// group is not named.
    pub fn accept_for_group(
        &self,
        group_id: &str,
        bytes: &[u8],
        now_unix: u64,
        replay: &mut ReplayCache,
    ) -> Result<ReceivedGmk, Error> {
        self.accept_inner(bytes, Some(group_id), now_unix, replay)
    }

    fn accept_inner(
        &self,
        bytes: &[u8],
        group_id: Option<&str>,
        now_unix: u64,
        replay: &mut ReplayCache,
    ) -> Result<ReceivedGmk, Error> {
        let opened = KeyReceiver {
            own_uri: self.own_uri,
            own_key: self.own_key,
            key_period_no: self.key_period_no,
            kms: self.kms,
        }
        .open(bytes, now_unix, replay, Some(self.gms_uri), |_| Ok(()))?;
        let msg = &opened.msg;
        let gmk = Gmk::from_bytes(opened.key.as_bytes())?;
        let guk_id = KeyId(msg.hdr.csb_id);
        let gmk_id = kdf::guk_id(&gmk, guk_id, self.own_uri);
        if gmk_id.purpose() != Purpose::Gmk {
            return Err(Rejection::WrongPurpose {
                id: gmk_id.0,
                expected: Purpose::Gmk.value(),
                got: gmk_id.purpose().value(),
            }
            .into());
        }
        if let CsIdMap::GenericId(entries) = &msg.hdr.map {
            let mki = kdf::gmk_mki(gmk_id, guk_id);
            if entries.iter().any(|e| !e.spi.is_empty() && e.spi != mki) {
                return Err(Rejection::GukIdMismatch.into());
            }
        }
        let key_params = key_parameters(
            msg,
            &opened.key,
            Purpose::Gmk,
            "key type is not GMK",
            now_unix,
        )?;
        if let Some(group_id) = group_id {
            let named = key_params
                .as_ref()
                .and_then(|kp| kp.group_ids.as_ref())
                .is_some_and(|ids| ids.iter().any(|g| g.id == group_id.as_bytes()));
            if !named {
                return Err(Rejection::GroupNotNamed {
                    group_id: group_id.to_owned(),
                }
                .into());
            }
        }
        opened.remember(replay, now_unix);
        Ok(ReceivedGmk {
            gmk,
            gmk_id,
            guk_id,
            rand: opened.rand.clone(),
            t_unix: opened.t_unix,
            key_params,
            policy: msg.sp().cloned(),
        })
    }
}

/// Opens an E.6 extension protected under `dppk` with DPPK-ID `dppk_id`.
///
/// # Errors
/// [`Rejection::KeyParametersMismatch`] if the DPPK-ID differs,
/// [`Rejection::KeyParametersInvalid`] if it does not authenticate or parse.
pub fn open_key_parameters(
    ext: &GeneralExt,
    dppk: &[u8],
    dppk_id: u32,
) -> Result<KeyParameters, Rejection> {
    let pp = match &ext.body {
        ExtBody::KeyParameters(pp) => pp,
        // In clear (legacy senders): the signature already covers them.
        ExtBody::KeyParametersClear { params, .. } => return Ok(params.clone()),
        _ => return Err(Rejection::KeyParametersInvalid),
    };
    if pp.dppk_id != dppk_id {
        return Err(Rejection::KeyParametersMismatch("DPPK-ID"));
    }
    let pt = pp.open(dppk).ok_or(Rejection::KeyParametersInvalid)?;
    KeyParameters::decode(&pt).map_err(|_| Rejection::KeyParametersInvalid)
}
