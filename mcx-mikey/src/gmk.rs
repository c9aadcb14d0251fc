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
use mcx_ibc::sakke::{ReceiverKey, Recipient, Ssv};
use rand_core::CryptoRng;

use crate::codec::Codec;
use crate::error::{Error, Rejection};
use crate::kdf;
use crate::keyparams::{GroupIdIe, KeyParameters, ProtectedPayload, STATUS_NOT_REVOKED};
use crate::message::{
    CsIdMap, ExtBody, GeneralExt, GenericIdEntry, Hdr, Idr, Message, Payload, Rand, Sakke, Sp,
    Timestamp,
};
use crate::replay::ReplayCache;
use crate::sakke_msg::{
    check_identity, check_kms, decapsulate, key_period_of, message_time, sign_message,
    verify_signature,
};
use crate::time::unix_to_ntp64;
use crate::wire::{
    DataType, GeneralExtType, IdRole, IdScheme, IdType, PrfFunc, ProtType, Purpose, SakkeParams,
};
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

/// The random inputs of a GMK message.
#[derive(Debug, Clone)]
pub struct GmkMessageRandom {
    /// The RAND payload (16 octets).
    pub rand: [u8; 16],
    /// The IV of the key parameters' protected payload.
    pub iv: [u8; 16],
}

impl GmkMessageRandom {
    /// Fresh random values.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut r = Self {
            rand: [0; 16],
            iv: [0; 16],
        };
        rng.fill_bytes(&mut r.rand);
        rng.fill_bytes(&mut r.iv);
        r
    }
}

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
        let period = mcx_ibc::uid::key_period_no(
            self.t_unix,
            self.kms.key_period_len,
            self.kms.key_period_offset,
        )?;
        let gms_uid = self.kms.uid(self.gms_uri, period)?;
        let member_uid = self.kms.uid(self.member_uri, period)?;
        let guk_id = kdf::guk_id(self.gmk, self.gmk_id, self.member_uri);
        let mut spi = self.gmk_id.to_bytes().to_vec();
        spi.extend_from_slice(&guk_id.to_bytes());
        let hdr = Hdr {
            data_type: DataType::Sakke,
            v: false,
            prf: PrfFunc::HmacSha256,
            csb_id: guk_id.0,
            map: CsIdMap::GenericId(vec![GenericIdEntry {
                cs_id: kdf::CS_ID_GROUP_CALL,
                prot_type: ProtType::Srtp,
                s: false,
                policies: vec![self.policy.as_ref().map_or(0, |p| p.policy_no)],
                session_data: Vec::new(),
                spi,
            }]),
        };
        let (ri, rr, idi, idr) = if self.identity_hiding {
            // As the vendor data: UIDs under ID type URI.
            (
                IdRole::InitiatorUid,
                IdRole::ResponderUid,
                gms_uid.to_vec(),
                member_uid.to_vec(),
            )
        } else {
            (
                IdRole::Initiator,
                IdRole::Responder,
                self.gms_uri.as_bytes().to_vec(),
                self.member_uri.as_bytes().to_vec(),
            )
        };
        let idr_of = |role, id: Vec<u8>| {
            Payload::Idr(Idr {
                role,
                id_type: IdType::Uri,
                id,
            })
        };
        let kms = self.kms.kms_uri.as_bytes().to_vec();
        let mut payloads = vec![
            Payload::T(Timestamp::NtpUtc(unix_to_ntp64(self.t_unix))),
            Payload::Rand(Rand(random.rand.to_vec())),
            idr_of(ri, idi),
            idr_of(rr, idr),
            idr_of(IdRole::InitiatorKms, kms.clone()),
            idr_of(IdRole::ResponderKms, kms),
        ];
        if let Some(sp) = &self.policy {
            payloads.push(Payload::Sp(sp.clone()));
        }
        let ssv = Ssv::from_bytes(self.gmk.as_bytes())?;
        let sed = Recipient::new(&self.kms.sakke_public, &member_uid)?.encapsulate(&ssv)?;
        payloads.push(Payload::Sakke(Sakke {
            params: SakkeParams::Set1,
            id_scheme: IdScheme::McxHashedUid,
            data: sed.to_vec(),
        }));
        if let Some(kp) = &self.key_params {
            let pt = zeroize::Zeroizing::new(kp.get_encoding()?);
            // E.6: date and time of creation; payload ID and sequence 0.
            let date = self
                .key_params_date_time
                .unwrap_or(self.t_unix & ((1 << 40) - 1));
            let pp =
                ProtectedPayload::seal(self.gmk.as_bytes(), guk_id.0, date, 0, random.iv, &pt)?;
            payloads.push(Payload::GeneralExt(GeneralExt {
                ext_type: GeneralExtType::KeyParameters,
                body: ExtBody::KeyParameters(pp),
            }));
        }
        Ok(Message { hdr, payloads })
    }

    /// Builds and signs the I_MESSAGE with the GMS's ECCSI key, drawing
    /// RAND and the IV from `rng`.
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
    /// The SRTP master key, salt and MKI of the group's media
    /// (TS 33.180 7.4.2).
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
        let (msg, layout) = Message::decode_with_layout(bytes)?;
        if msg.hdr.data_type != DataType::Sakke {
            return Err(Rejection::UnexpectedDataType {
                expected: DataType::Sakke.value(),
                got: msg.hdr.data_type.value(),
            }
            .into());
        }
        if msg.hdr.prf != PrfFunc::HmacSha256 {
            return Err(Rejection::UnsupportedPrf(msg.hdr.prf.value()).into());
        }
        if msg.sign().is_none() {
            return Err(Rejection::NotSigned.into());
        }
        let rand = msg
            .rand()
            .ok_or(Rejection::MissingPayload("RAND"))?
            .0
            .clone();
        check_kms(&msg, &self.kms.kms_uri, true)?;
        let t_unix = message_time(&msg, now_unix)?;
        replay.check_time(t_unix, now_unix)?;
        let period = key_period_of(self.kms, t_unix)?;
        if period != self.key_period_no {
            return Err(Rejection::KeyPeriodMismatch {
                message: period,
                receiver: self.key_period_no,
            }
            .into());
        }
        let gms_uid = self.kms.uid(self.gms_uri, period)?;
        let own_uid = self.kms.uid(self.own_uri, period)?;
        check_identity(
            &msg,
            IdRole::Initiator,
            IdRole::InitiatorUid,
            self.gms_uri,
            &gms_uid,
            Rejection::WrongInitiator,
            "IDRi",
        )?;
        check_identity(
            &msg,
            IdRole::Responder,
            IdRole::ResponderUid,
            self.own_uri,
            &own_uid,
            Rejection::WrongResponder,
            "IDRr",
        )?;
        verify_signature(bytes, &msg, &layout, &self.kms.kpak, &gms_uid)?;
        let replay_key = replay_key(&msg, &rand);
        replay.check(t_unix, &replay_key, now_unix)?;

        let key = decapsulate(&msg, self.own_key)?;
        let gmk = Gmk::from_bytes(key.as_bytes())?;
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
            let mut mki = gmk_id.to_bytes().to_vec();
            mki.extend_from_slice(&guk_id.to_bytes());
            if entries.iter().any(|e| !e.spi.is_empty() && e.spi != mki) {
                return Err(Rejection::GukIdMismatch.into());
            }
        }
        let key_params = match msg.general_ext(GeneralExtType::KeyParameters) {
            Some(ext) => Some(open_key_parameters(ext, gmk.as_bytes(), guk_id.0)?),
            None => None,
        };
        if let Some(kp) = &key_params {
            if kp.key_type != Purpose::Gmk.value() {
                return Err(Rejection::KeyParametersMismatch("key type is not GMK").into());
            }
            if kp.expiry_time != 0 && kp.expiry_time <= now_unix {
                return Err(Rejection::KeyExpired {
                    expiry: kp.expiry_time,
                }
                .into());
            }
        }
        replay.insert(t_unix, &replay_key, now_unix);
        Ok(ReceivedGmk {
            gmk,
            gmk_id,
            guk_id,
            rand,
            t_unix,
            key_params,
            policy: msg.sp().cloned(),
        })
    }
}

/// T || RAND: what identifies a message for replay protection.
fn replay_key(msg: &Message, rand: &[u8]) -> Vec<u8> {
    let mut k = msg
        .timestamp()
        .map(Timestamp::value_bytes)
        .unwrap_or_default();
    k.extend_from_slice(rand);
    k
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
    let ExtBody::KeyParameters(pp) = &ext.body else {
        return Err(Rejection::KeyParametersInvalid);
    };
    if pp.dppk_id != dppk_id {
        return Err(Rejection::KeyParametersMismatch("DPPK-ID"));
    }
    let pt = pp.open(dppk).ok_or(Rejection::KeyParametersInvalid)?;
    KeyParameters::decode(&pt).map_err(|_| Rejection::KeyParametersInvalid)
}
