//! What every signed MIKEY message of TS 33.180 shares: ECCSI signing and
//! verification over the signed range, identities, time and key periods,
//! SAKKE decapsulation; and the common key distribution of TS 33.180
//! 5.2.2 (one key, SAKKE-encrypted to the receiving entity and signed by
//! the initiating entity) that the GMK ([`crate::gmk`], 5.7) and CSK
//! ([`crate::csk`], 5.4) procedures are built on.

use mcx_ibc::eccsi::{self, Kpak, SigningKey};
use mcx_ibc::kms::CommunityPublic;
use mcx_ibc::sakke::{ReceiverKey, Recipient, SSV_LEN, Ssv};
use mcx_ibc::uid::{self, UID_LEN};
use rand_core::CryptoRng;

use crate::codec::Codec;
use crate::error::{Error, IdentityRole, Rejection};
use crate::keyparams::{KeyParameters, ProtectedPayload};
use crate::message::{
    CsIdMap, ExtBody, GeneralExt, GenericIdEntry, Hdr, Idr, Layout, Message, Payload, Rand, Sakke,
    Sign, Sp, Timestamp,
};
use crate::replay::ReplayCache;
use crate::time::unix_to_ntp64;
use crate::wire::{
    DataType, GeneralExtType, IdRole, IdScheme, IdType, PrfFunc, ProtType, Purpose, SakkeParams,
    SignType,
};
use crate::{KEY_LEN, Key128};

/// Length of an ECCSI signature in SIGN (RFC 6507: r || s || PVT).
pub const ECCSI_SIGNATURE_LEN: usize = eccsi::SIGNATURE_LEN;

/// Appends an ECCSI SIGN payload to `msg` and signs it: the signature
/// covers every octet from the start of HDR up to and including the
/// 2-octet SIGN header (RFC 6509 4.3, TS 33.180 E.2).
///
/// # Errors
/// [`Error::Encode`] if the message does not encode, or
/// [`Rejection::UnexpectedPayload`] if it is already signed.
pub fn sign_message(
    mut msg: Message,
    key: &SigningKey,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, Error> {
    if msg.sign().is_some() {
        return Err(Rejection::UnexpectedPayload("SIGN").into());
    }
    msg.payloads.push(Payload::Sign(Sign {
        sign_type: SignType::Eccsi,
        signature: vec![0; ECCSI_SIGNATURE_LEN],
    }));
    let (mut bytes, layout) = msg.encode_with_layout()?;
    let signed_len = layout
        .signed_len
        .ok_or(Error::InvalidParameter("message has no SIGN payload"))?;
    let sig = key.sign(&bytes[..signed_len], rng).to_bytes();
    bytes[signed_len..].copy_from_slice(&sig);
    Ok(bytes)
}

/// Verifies the ECCSI signature of a decoded message: `bytes` are the
/// octets `msg` and `layout` were decoded from, `signer` the signer's UID.
///
/// # Errors
/// [`Rejection::NotSigned`] if there is no SIGN payload,
/// [`Rejection::Unsupported`] for a non-ECCSI signature,
/// [`Rejection::SignatureInvalid`] if it does not verify.
pub fn verify_signature(
    bytes: &[u8],
    msg: &Message,
    layout: &Layout,
    kpak: &Kpak,
    signer: &[u8],
) -> Result<(), Rejection> {
    let (signed, signature) = signed_part(bytes, msg, layout)?;
    eccsi::verify_bytes(kpak, signer, signed, signature).map_err(|_| Rejection::SignatureInvalid)
}

/// The octets an ECCSI SIGN payload covers and its signature.
///
/// # Errors
/// [`Rejection::NotSigned`] without a SIGN payload,
/// [`Rejection::Unsupported`] for another signature type.
pub(crate) fn signed_part<'a>(
    bytes: &'a [u8],
    msg: &'a Message,
    layout: &Layout,
) -> Result<(&'a [u8], &'a [u8]), Rejection> {
    let (Some(sign), Some(signed_len)) = (msg.sign(), layout.signed_len) else {
        return Err(Rejection::NotSigned);
    };
    if sign.sign_type != SignType::Eccsi {
        return Err(Rejection::Unsupported {
            what: "signature type",
            value: sign.sign_type.value().into(),
        });
    }
    let signed = bytes.get(..signed_len).ok_or(Rejection::NotSigned)?;
    Ok((signed, &sign.signature))
}

/// The message's time stamp in Unix seconds (NTP era nearest `now_unix`).
///
/// # Errors
/// [`Rejection::MissingPayload`] without exactly one T payload,
/// [`Rejection::Unsupported`] for a counter time stamp.
pub fn message_time(msg: &Message, now_unix: u64) -> Result<i64, Rejection> {
    let t = msg.timestamp().ok_or(Rejection::MissingPayload("T"))?;
    t.to_unix(now_unix).ok_or_else(|| Rejection::Unsupported {
        what: "time stamp type",
        value: t.ts_type().value().into(),
    })
}

/// The key period (of `kms`) that `t_unix` falls in.
///
/// # Errors
/// [`Rejection::TimestampOutsideWindow`]-like failures are reported as
/// [`Rejection::Unsupported`] when the time is before key period 0.
pub fn key_period_of(kms: &CommunityPublic, t_unix: i64) -> Result<u64, Rejection> {
    let t = u64::try_from(t_unix).map_err(|_| Rejection::Unsupported {
        what: "time stamp before 1970",
        value: 0,
    })?;
    uid::key_period_no(t, kms.key_period_len, kms.key_period_offset).map_err(|_| {
        Rejection::Unsupported {
            what: "time stamp outside the KMS's key periods",
            value: t,
        }
    })
}

/// Checks an identity named by either a URI role (`uri_role`) or a UID
/// role (`uid_role`): whichever are present must match; one must be.
///
/// # Errors
/// `wrong` if a present IDR does not match, [`Rejection::MissingPayload`]
/// if neither is present.
pub fn check_identity(
    msg: &Message,
    uri_role: IdRole,
    uid_role: IdRole,
    expected_uri: &str,
    expected_uid: &[u8; UID_LEN],
    wrong: Rejection,
    missing: &'static str,
) -> Result<(), Rejection> {
    let by_uri = msg.idr(uri_role);
    let by_uid = msg.idr(uid_role);
    if by_uri.is_none() && by_uid.is_none() {
        return Err(Rejection::MissingPayload(missing));
    }
    if by_uri.is_some_and(|i| i.id != expected_uri.as_bytes())
        || by_uid.is_some_and(|i| i.id != expected_uid)
    {
        return Err(wrong);
    }
    Ok(())
}

/// Checks IDRkmsi and IDRkmsr (both required, TS 33.180 E.2) name `kms_uri`.
///
/// # Errors
/// [`Rejection::MissingPayload`] or [`Rejection::WrongKms`].
pub fn check_kms(msg: &Message, kms_uri: &str, both: bool) -> Result<(), Rejection> {
    for (role, who, name) in [
        (IdRole::InitiatorKms, IdentityRole::InitiatorKms, "IDRkmsi"),
        (IdRole::ResponderKms, IdentityRole::ResponderKms, "IDRkmsr"),
    ] {
        match msg.idr(role) {
            Some(i) if i.id != kms_uri.as_bytes() => return Err(Rejection::WrongKms { role: who }),
            None if both || role == IdRole::InitiatorKms => {
                return Err(Rejection::MissingPayload(name));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Decapsulates the SAKKE payload of `msg` with `receiver` (RFC 6509:
/// parameter set 1, ID scheme 2, the SSV is the key carried).
///
/// # Errors
/// [`Rejection::MissingPayload`], [`Rejection::Unsupported`] (parameter
/// set or ID scheme) or [`Rejection::DecapsulationFailed`].
pub fn decapsulate(msg: &Message, receiver: &ReceiverKey) -> Result<Key128, Rejection> {
    let s = msg.sakke().ok_or(Rejection::MissingPayload("SAKKE"))?;
    if s.params != SakkeParams::Set1 {
        return Err(Rejection::Unsupported {
            what: "SAKKE parameter set",
            value: s.params.value().into(),
        });
    }
    if s.id_scheme != IdScheme::McxHashedUid {
        return Err(Rejection::Unsupported {
            what: "SAKKE ID scheme",
            value: s.id_scheme.value().into(),
        });
    }
    let ssv = receiver
        .decapsulate(&s.data)
        .map_err(|_| Rejection::DecapsulationFailed)?;
    const _: () = assert!(SSV_LEN == KEY_LEN);
    Key128::from_bytes(ssv.as_bytes()).map_err(|_| Rejection::DecapsulationFailed)
}

/// The random inputs of a key distribution message: RAND and the IV of
/// the key parameters' protected payload.
#[derive(Debug, Clone)]
pub struct KeyMessageRandom {
    /// The RAND payload (16 octets; also an input to the SRTP/SRTCP key
    /// derivation of RFC 3830 4.1.3).
    pub rand: [u8; 16],
    /// The IV of the key parameters' protected payload.
    pub iv: [u8; 16],
}

impl KeyMessageRandom {
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

    /// The given RAND (one chosen for the key, e.g. a GMK's) and a fresh
    /// IV: the IV must never repeat under one key.
    pub fn with_rand(rand: [u8; 16], rng: &mut impl CryptoRng) -> Self {
        let mut r = Self { rand, iv: [0; 16] };
        rng.fill_bytes(&mut r.iv);
        r
    }
}

/// One key distributed as TS 33.180 5.2.2 describes (with the associated
/// parameters of 5.2.4 / E.6): everything of the I_MESSAGE but the
/// signature. The procedures fill it in: GMK (E.2) and CSK (E.4).
pub(crate) struct KeyTransport<'a> {
    /// The KMS community of both parties.
    pub kms: &'a CommunityPublic,
    /// The initiating entity's URI (IDRi; signer).
    pub initiator_uri: &'a str,
    /// The receiving entity's URI (IDRr; the SAKKE encapsulation is to it).
    pub responder_uri: &'a str,
    /// Name both by UID (roles 8/9, E.7) instead of URI (roles 1/2).
    pub identity_hiding: bool,
    /// Time stamp, Unix seconds; also picks the key period of the UIDs.
    pub t_unix: u64,
    /// The HDR's CSB ID.
    pub csb_id: u32,
    /// The CS ID of the one GENERIC-ID crypto session (RFC 6043 6.1.1).
    pub cs_id: u8,
    /// Its SPI.
    pub spi: Vec<u8>,
    /// The SP payload, if any.
    pub policy: Option<&'a Sp>,
    /// The key carried (the SAKKE SSV).
    pub key: &'a [u8; KEY_LEN],
    /// The associated parameters (E.6), if any, and their "date and time"
    /// (`None`: the time stamp's Unix seconds).
    pub key_params: Option<(&'a KeyParameters, Option<u64>)>,
    /// RAND and IV.
    pub random: &'a KeyMessageRandom,
}

impl KeyTransport<'_> {
    /// The unsigned I_MESSAGE (TS 33.180 E.1, RFC 6509 4): HDR (data type
    /// 26, V 0, PRF-HMAC-SHA-256, GENERIC-ID with one crypto session), T,
    /// RAND, IDRi, IDRr, IDRkmsi, IDRkmsr, SP (optional), SAKKE, key parameters
    /// (optional).
    ///
    /// # Errors
    /// [`Error::Ibc`] if a UID or the encapsulation fails,
    /// [`Error::Encode`] if a field is too long.
    pub(crate) fn build(&self) -> Result<Message, Error> {
        let period = uid::key_period_no(
            self.t_unix,
            self.kms.key_period_len,
            self.kms.key_period_offset,
        )?;
        let initiator_uid = self.kms.uid(self.initiator_uri, period)?;
        let responder_uid = self.kms.uid(self.responder_uri, period)?;
        let hdr = Hdr {
            data_type: DataType::Sakke,
            v: false,
            prf: PrfFunc::HmacSha256,
            csb_id: self.csb_id,
            map: CsIdMap::GenericId(vec![GenericIdEntry {
                cs_id: self.cs_id,
                prot_type: ProtType::Srtp,
                s: false,
                policies: vec![self.policy.map_or(0, |p| p.policy_no)],
                session_data: Vec::new(),
                spi: self.spi.clone(),
            }]),
        };
        let (ri, rr, idi, idr) = if self.identity_hiding {
            // As the vendor data: UIDs under ID type URI.
            (
                IdRole::InitiatorUid,
                IdRole::ResponderUid,
                initiator_uid.to_vec(),
                responder_uid.to_vec(),
            )
        } else {
            (
                IdRole::Initiator,
                IdRole::Responder,
                self.initiator_uri.as_bytes().to_vec(),
                self.responder_uri.as_bytes().to_vec(),
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
            Payload::Rand(Rand(self.random.rand.to_vec())),
            idr_of(ri, idi),
            idr_of(rr, idr),
            idr_of(IdRole::InitiatorKms, kms.clone()),
            idr_of(IdRole::ResponderKms, kms),
        ];
        if let Some(sp) = self.policy {
            payloads.push(Payload::Sp(sp.clone()));
        }
        let ssv = Ssv::from_bytes(self.key)?;
        let sed = Recipient::new(&self.kms.sakke_public, &responder_uid)?.encapsulate(&ssv)?;
        payloads.push(Payload::Sakke(Sakke {
            params: SakkeParams::Set1,
            id_scheme: IdScheme::McxHashedUid,
            data: sed.to_vec(),
        }));
        if let Some((kp, date_time)) = self.key_params {
            let pt = zeroize::Zeroizing::new(kp.get_encoding()?);
            // E.6: date and time of creation; payload ID and sequence 0;
            // DPPK = the key carried, DPPK-ID = the CSB ID.
            let date = date_time.unwrap_or(self.t_unix & ((1 << 40) - 1));
            let pp = ProtectedPayload::seal(self.key, self.csb_id, date, 0, self.random.iv, &pt)?;
            payloads.push(Payload::GeneralExt(GeneralExt {
                ext_type: GeneralExtType::KeyParameters,
                body: ExtBody::KeyParameters(pp),
            }));
        }
        Ok(Message { hdr, payloads })
    }
}

/// What identifies a signed key distribution message for replay
/// protection: T || RAND || SHA-256 of the signed octets.
///
/// T and RAND alone do not: a GMS sends one GMK with one RAND in every
/// GKTP (TS 33.180 7.4.2, the media keys depend on it), so two GKTPs of
/// one GMK fetched by a member within the same second share T and RAND,
/// and the second, a new message, would be refused as a replay. They
/// differ in the signed octets (the key parameters' fresh IV). The
/// signature itself is left out: ECCSI signatures are malleable
/// ((r, s) and (r, q − s) both verify), so a replay with the other `s`
/// would count as new.
fn replay_key(msg: &Message, rand: &[u8], bytes: &[u8], layout: &Layout) -> Vec<u8> {
    use sha2::Digest;
    let mut key = msg
        .timestamp()
        .map(Timestamp::value_bytes)
        .unwrap_or_default();
    key.extend_from_slice(rand);
    let signed = layout
        .signed_len
        .and_then(|n| bytes.get(..n))
        .unwrap_or(bytes);
    key.extend_from_slice(&sha2::Sha256::digest(signed));
    key
}

/// A receiving entity of TS 33.180 5.2.2: its URI, its SAKKE key for one
/// key period, and the trusted KMS.
#[derive(Clone, Copy)]
pub(crate) struct KeyReceiver<'a> {
    /// The receiving entity's URI (IDRr must name it).
    pub own_uri: &'a str,
    /// Its SAKKE receiver key for `key_period_no`.
    pub own_key: &'a ReceiverKey,
    /// The key period `own_key` is for.
    pub key_period_no: u64,
    /// The trusted KMS community (URI, key periods, KPAK).
    pub kms: &'a CommunityPublic,
}

/// A key distribution message that passed every common check: decoded,
/// signed by its initiator, addressed to this receiver, fresh, and its key
/// decapsulated. Not yet remembered as seen: see [`OpenedKey::remember`].
pub(crate) struct OpenedKey {
    /// The decoded message.
    pub msg: Message,
    /// The initiator's URI (the signer).
    pub initiator_uri: String,
    /// The RAND payload.
    pub rand: Vec<u8>,
    /// The time stamp, Unix seconds.
    pub t_unix: i64,
    /// The key carried.
    pub key: Key128,
    /// What identifies the message for replay protection: [`replay_key`].
    replay_key: Vec<u8>,
}

impl OpenedKey {
    /// Records the message as accepted; call once every check passed, so
    /// that a message refused for any reason cannot block the real one.
    pub(crate) fn remember(&self, replay: &mut ReplayCache, now_unix: u64) {
        replay.insert(self.t_unix, &self.replay_key, now_unix);
    }
}

/// The URI an IDR of `role` names (ID type URI); `name` names the
/// payload in the error.
///
/// # Errors
/// [`Rejection::MissingPayload`] or [`Rejection::Unsupported`] (another ID
/// type, or not UTF-8).
pub(crate) fn uri_of(msg: &Message, role: IdRole, name: &'static str) -> Result<String, Rejection> {
    let idr = msg.idr(role).ok_or(Rejection::MissingPayload(name))?;
    if idr.id_type != IdType::Uri {
        return Err(Rejection::Unsupported {
            what: "ID type",
            value: idr.id_type.value().into(),
        });
    }
    String::from_utf8(idr.id.clone()).map_err(|_| Rejection::Unsupported {
        what: "non-UTF-8 URI",
        value: 0,
    })
}

impl KeyReceiver<'_> {
    /// The checks of TS 33.180 5.2.2 on the receiving side, each failing
    /// with its own error: data type and PRF; `precheck` (the procedure's
    /// own structural checks, run before any expensive crypto); signed;
    /// both KMS IDRs name the trusted KMS; T within the replay window; the
    /// key period of T is the one the receiver's keys are for; the
    /// initiator (`initiator`, or if `None` the URI in IDRi) and the
    /// responder (this receiver) by URI or UID; the initiator's ECCSI
    /// signature; (T, RAND) not seen before; SAKKE decapsulation.
    ///
    /// # Errors
    /// [`Error::Decode`] or [`Error::Rejected`] with the failed check.
    pub(crate) fn open(
        &self,
        bytes: &[u8],
        now_unix: u64,
        replay: &ReplayCache,
        initiator: Option<&str>,
        precheck: impl FnOnce(&Message) -> Result<(), Rejection>,
    ) -> Result<OpenedKey, Error> {
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
        precheck(&msg)?;
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
        let initiator_uri = match initiator {
            Some(uri) => uri.to_owned(),
            None => uri_of(&msg, IdRole::Initiator, "IDRi")?,
        };
        let initiator_uid = self.kms.uid(&initiator_uri, period)?;
        let own_uid = self.kms.uid(self.own_uri, period)?;
        check_identity(
            &msg,
            IdRole::Initiator,
            IdRole::InitiatorUid,
            &initiator_uri,
            &initiator_uid,
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
        verify_signature(bytes, &msg, &layout, &self.kms.kpak, &initiator_uid)?;
        let replay_key = replay_key(&msg, &rand, bytes, &layout);
        replay.check(t_unix, &replay_key, now_unix)?;
        let key = decapsulate(&msg, self.own_key)?;
        Ok(OpenedKey {
            msg,
            initiator_uri,
            rand,
            t_unix,
            key,
            replay_key,
        })
    }
}

/// Opens and checks the associated parameters (E.6) of `msg`, if sent:
/// protected under the key carried with DPPK-ID = the CSB ID, key type =
/// `purpose` (E.6: the key's purpose tag), and not expired at `now_unix`.
///
/// # Errors
/// [`Rejection::KeyParametersInvalid`], [`Rejection::KeyParametersMismatch`]
/// (`wrong_type` names the key type expected) or [`Rejection::KeyExpired`].
pub(crate) fn key_parameters(
    msg: &Message,
    key: &Key128,
    purpose: Purpose,
    wrong_type: &'static str,
    now_unix: u64,
) -> Result<Option<KeyParameters>, Rejection> {
    let Some(ext) = msg.general_ext(GeneralExtType::KeyParameters) else {
        return Ok(None);
    };
    let kp = crate::gmk::open_key_parameters(ext, key.as_bytes(), msg.hdr.csb_id)?;
    if kp.key_type != purpose.value() {
        return Err(Rejection::KeyParametersMismatch(wrong_type));
    }
    if kp.expiry_time != 0 && kp.expiry_time <= now_unix {
        return Err(Rejection::KeyExpired {
            expiry: kp.expiry_time,
        });
    }
    Ok(Some(kp))
}
