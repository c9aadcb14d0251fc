//! The wrapped TGMK, format version 1 (SPEC section 5; docs/tgmk-wrap.md).
//!
//! TS 33.180 says the initiating client sends "the TGMK encrypted using the
//! GMK" of each constituent group but not how. This module is the one place
//! that decides; [`FORMAT_VERSION`] names the decision. One wrapped copy is a
//! MIKEY pre-shared-key message (RFC 3830) keyed by the constituent group's
//! GMK and signed by the initiator:
//!
//! ```text
//! HDR   data type 0 (Pre-shared), V 0, PRF-HMAC-SHA-256, CSB ID = TGMK-ID,
//!       #CS 1, GENERIC-ID { CS ID 4, SRTP, #P 1 (the SP's policy), SPI = TGMK-ID }
//! T     NTP-UTC (the same in every copy)
//! RAND  16 octets (the same in every copy: media keys derive from it)
//! IDR   role 1 (IDRi), URI: the initiator's MC service ID
//! IDR   role 2 (IDRr), URI: the constituent group's ID
//! IDR   role 6 (IDRkmsi), URI: the initiator's KMS
//! SP    the temporary group's SRTP profile
//! KEMAC AES-CM-128 (encr alg 1), HMAC-SHA-256-256 (MAC alg 2):
//!       Key data { TGK, KV = SPI (TGMK-ID), the TGMK }, keys from the GMK
//!       by RFC 3830 4.1.4 with PRF-HMAC-SHA-256 (label: const || 0xFF || TGMK-ID || RAND)
//! GEXT  type 7: key parameters (E.6 layout) in a protected payload with
//!       DPPK = GMK, DPPK-ID = GMK-ID, payload ID = format version;
//!       key type 7 (TGMK), MC group IDs = [temporary group, constituent group]
//! SIGN  ECCSI by the initiator over everything up to and including the SIGN header
//! ```
//!
//! The KEMAC MAC covers every octet from the start of HDR up to and
//! including the MAC algorithm octet (RFC 3830 5.2, for the message as it
//! stands when the MAC is computed); the key parameters are authenticated
//! by their own GCM tag, and everything by the signature.

use std::collections::HashMap;

use mcx_ibc::eccsi::{Kpak, Pvt, Signature, SigningKey, VerifyingKey};
use mcx_ibc::kms::CommunityPublic;
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::codec::Codec;
use crate::error::{Error, Rejection};
use crate::gmk::open_key_parameters;
use crate::kdf;
use crate::keyparams::{GroupIdIe, KeyParameters, ProtectedPayload, STATUS_NOT_REVOKED};
use crate::message::{
    CsIdMap, ExtBody, GeneralExt, GenericIdEntry, Hdr, Idr, Kemac, KeyData, KeyValidity, Layout,
    Message, Payload, Rand, Sign, Sp, Timestamp,
};
use crate::replay::ReplayCache;
use crate::sakke_msg::{
    ECCSI_SIGNATURE_LEN, check_kms, key_period_of, message_time, signed_part, uri_of,
    verify_signature,
};
use crate::time::unix_to_ntp64;
use crate::wire::{
    DataType, EncrAlg, GeneralExtType, IdRole, IdType, KeyDataType, MacAlg, PayloadType, PrfFunc,
    ProtType, Purpose, SignType,
};
use crate::{Gmk, KeyId, SrtpMasterKeys, Tgmk};

/// The version of the wrapped-TGMK format this module writes and reads.
/// It travels as the payload ID of the key parameters' protected payload.
pub const FORMAT_VERSION: u32 = 1;

/// The purpose tag of a TGMK-ID (provisional: TS 33.180 assigns tags 0–6).
pub const PURPOSE: Purpose = Purpose::Tgmk;

/// A fresh TGMK (16 octets from `rng`; the caller passes the OS RNG) and
/// TGMK-ID (purpose tag [`PURPOSE`], 28 random bits).
pub fn generate(rng: &mut impl CryptoRng) -> (Tgmk, KeyId) {
    (Tgmk::generate(rng), KeyId::fresh(PURPOSE, rng))
}

/// SRTP master keys from a TGMK (SPEC section 6): TGK = TGMK, CS ID 4,
/// CSB ID = TGMK-ID, RAND of the wrapped-TGMK message, MKI = TGMK-ID.
pub fn srtp_keys(tgmk: &Tgmk, tgmk_id: KeyId, rand: &[u8]) -> SrtpMasterKeys {
    kdf::srtp_keys_named_by_id(tgmk.as_bytes(), kdf::CS_ID_GROUP_CALL, tgmk_id, rand)
}

/// A constituent group as the initiator or a member knows it.
#[derive(Debug, Clone, Copy)]
pub struct ConstituentGroup<'a> {
    /// The group's MC group ID.
    pub group_id: &'a str,
    /// The group's GMK.
    pub gmk: &'a Gmk,
    /// Its GMK-ID.
    pub gmk_id: KeyId,
}

/// One wrapped copy of the TGMK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedTgmk {
    /// The constituent group it is for.
    pub group_id: String,
    /// The GMK-ID it is wrapped under.
    pub gmk_id: KeyId,
    /// The signed MIKEY message.
    pub message: Vec<u8>,
}

/// What the initiator wraps: the TGMK and its parameters.
#[derive(Debug, Clone)]
pub struct TgmkWrap<'a> {
    /// The initiator's MC service ID (the signer).
    pub initiator_uri: &'a str,
    /// The initiator's KMS community (its URI goes in IDRkmsi).
    pub kms: &'a CommunityPublic,
    /// The temporary group's ID.
    pub temporary_group_id: &'a str,
    /// The TGMK.
    pub tgmk: &'a Tgmk,
    /// The TGMK-ID (purpose tag [`PURPOSE`]).
    pub tgmk_id: KeyId,
    /// Activation time (40-bit Unix seconds; 0 = not set).
    pub activation: u64,
    /// Expiry time (40-bit Unix seconds; 0 = not set): the end of the
    /// call's life. Receivers accept the copy past their replay window
    /// until then (late entry into a long call), and refuse its replays
    /// until then.
    pub expiry: u64,
    /// Time stamp, Unix seconds.
    pub t_unix: u64,
    /// The SRTP profile of the temporary group call.
    pub policy: Sp,
}

impl TgmkWrap<'_> {
    /// The copy for `group` with the given RAND and IV, MAC'd but not
    /// signed: the SIGN payload is present with a zero signature, and the
    /// returned layout's `signed_len` says what to sign.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a TGMK-ID without the TGMK purpose,
    /// [`Error::Encode`] if a field is too long.
    pub fn copy_unsigned(
        &self,
        group: &ConstituentGroup<'_>,
        rand: &[u8; 16],
        iv: [u8; 16],
    ) -> Result<(Vec<u8>, Layout), Error> {
        if self.tgmk_id.purpose() != PURPOSE {
            return Err(Error::InvalidParameter(
                "TGMK-ID must have the TGMK purpose tag",
            ));
        }
        let t = unix_to_ntp64(self.t_unix);
        let keys = kdf::kemac_keys(group.gmk.as_bytes(), self.tgmk_id.0, rand);
        let plain = KeyData::encode_list(&[KeyData {
            key_type: KeyDataType::Tgk,
            key: Zeroizing::new(self.tgmk.as_bytes().to_vec()),
            salt: None,
            kv: KeyValidity::Spi(self.tgmk_id.to_bytes().to_vec()),
        }])?;
        let encr_data = aes_cm(&keys, self.tgmk_id.0, t, &plain);
        let params = KeyParameters {
            key_type: PURPOSE.value(),
            status: STATUS_NOT_REVOKED,
            activation_time: self.activation,
            expiry_time: self.expiry,
            text: Vec::new(),
            group_ids: Some(vec![
                GroupIdIe::new(self.temporary_group_id),
                GroupIdIe::new(group.group_id),
            ]),
        };
        let pt = Zeroizing::new(params.get_encoding()?);
        let date = self.t_unix & ((1 << 40) - 1);
        let pp = ProtectedPayload::seal(
            group.gmk.as_bytes(),
            group.gmk_id.0,
            date,
            FORMAT_VERSION,
            iv,
            &pt,
        )?;
        let uri = |role, s: &str| {
            Payload::Idr(Idr {
                role,
                id_type: IdType::Uri,
                id: s.as_bytes().to_vec(),
            })
        };
        let msg = Message {
            hdr: Hdr {
                data_type: DataType::PreShared,
                v: false,
                prf: PrfFunc::HmacSha256,
                csb_id: self.tgmk_id.0,
                map: CsIdMap::GenericId(vec![GenericIdEntry {
                    cs_id: kdf::CS_ID_GROUP_CALL,
                    prot_type: ProtType::Srtp,
                    s: false,
                    policies: vec![self.policy.policy_no],
                    session_data: Vec::new(),
                    spi: self.tgmk_id.to_bytes().to_vec(),
                }]),
            },
            payloads: vec![
                Payload::T(Timestamp::NtpUtc(t)),
                Payload::Rand(Rand(rand.to_vec())),
                uri(IdRole::Initiator, self.initiator_uri),
                uri(IdRole::Responder, group.group_id),
                uri(IdRole::InitiatorKms, &self.kms.kms_uri),
                Payload::Sp(self.policy.clone()),
                Payload::Kemac(Kemac {
                    encr_alg: EncrAlg::AesCm128,
                    encr_data,
                    mac_alg: MacAlg::HmacSha256_256,
                    mac: vec![0; 32],
                }),
                Payload::GeneralExt(GeneralExt {
                    ext_type: GeneralExtType::KeyParameters,
                    body: ExtBody::KeyParameters(pp),
                }),
                Payload::Sign(Sign {
                    sign_type: SignType::Eccsi,
                    signature: vec![0; ECCSI_SIGNATURE_LEN],
                }),
            ],
        };
        let (mut bytes, layout) = msg.encode_with_layout()?;
        let mac_at = mac_offset(&msg, &layout).ok_or(Error::InvalidParameter("no KEMAC"))?;
        let mac = kdf::hmac_sha256(keys.auth.as_ref(), &bytes[..mac_at]);
        bytes[mac_at..mac_at + 32].copy_from_slice(&mac);
        Ok((bytes, layout))
    }

    /// Wraps the TGMK for every group in `groups`, each copy signed with
    /// the initiator's ECCSI key. All copies share T and RAND (so every
    /// participant derives the same media keys); each gets its own IV.
    ///
    /// # Errors
    /// As [`TgmkWrap::copy_unsigned`].
    pub fn wrap(
        &self,
        groups: &[ConstituentGroup<'_>],
        signer: &SigningKey,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<WrappedTgmk>, Error> {
        let mut rand = [0u8; 16];
        rng.fill_bytes(&mut rand);
        groups
            .iter()
            .map(|g| {
                let mut iv = [0u8; 16];
                rng.fill_bytes(&mut iv);
                let (mut bytes, layout) = self.copy_unsigned(g, &rand, iv)?;
                let signed_len = layout
                    .signed_len
                    .ok_or(Error::InvalidParameter("no SIGN"))?;
                let sig = signer.sign(&bytes[..signed_len], rng).to_bytes();
                bytes[signed_len..].copy_from_slice(&sig);
                Ok(WrappedTgmk {
                    group_id: g.group_id.to_owned(),
                    gmk_id: g.gmk_id,
                    message: bytes,
                })
            })
            .collect()
    }
}

/// Offset of the KEMAC's MAC field in the encoding described by `layout`.
/// The CSB-ID as a TGMK-ID, which must carry the TGMK purpose tag.
fn tgmk_id_of(msg: &Message) -> Result<KeyId, Rejection> {
    let tgmk_id = KeyId(msg.hdr.csb_id);
    if tgmk_id.purpose() != PURPOSE {
        return Err(Rejection::WrongPurpose {
            id: tgmk_id.0,
            expected: PURPOSE.value(),
            got: tgmk_id.purpose().value(),
        });
    }
    Ok(tgmk_id)
}

/// T || RAND || `context`: a copy's identity in a replay cache.
fn replay_key(msg: &Message, rand: &[u8], context: &[u8]) -> Vec<u8> {
    let mut key = msg
        .timestamp()
        .map(Timestamp::value_bytes)
        .unwrap_or_default();
    key.extend_from_slice(rand);
    key.extend_from_slice(context);
    key
}

fn mac_offset(msg: &Message, layout: &Layout) -> Option<usize> {
    let i = msg
        .payloads
        .iter()
        .position(|p| p.payload_type() == PayloadType::Kemac)?;
    let Payload::Kemac(k) = &msg.payloads[i] else {
        return None;
    };
    let end = layout
        .payload_offsets
        .get(i + 1)
        .copied()
        .unwrap_or(layout.len);
    end.checked_sub(k.mac.len())
}

/// AES-CM-128 of RFC 3830 4.2.3: counter block
/// `IV = (S XOR (0x0000 || CSB ID || T)) * 2^16`, S the 112-bit salting key.
fn aes_cm(keys: &kdf::KemacKeys, csb_id: u32, t: u64, data: &[u8]) -> Vec<u8> {
    use aes::Aes128;
    use ctr::cipher::{KeyIvInit, StreamCipher};
    let mut x = [0u8; 14];
    x[2..6].copy_from_slice(&csb_id.to_be_bytes());
    x[6..].copy_from_slice(&t.to_be_bytes());
    let mut iv = [0u8; 16];
    for (o, (s, v)) in iv.iter_mut().zip(keys.salt.iter().zip(x.iter())) {
        *o = s ^ v;
    }
    let mut out = data.to_vec();
    let mut c = ctr::Ctr128BE::<Aes128>::new(&(*keys.encr).into(), &iv.into());
    c.apply_keystream(&mut out);
    out
}

/// A member's view: its groups and GMKs, the trusted KMS, and optionally
/// the only initiator it accepts.
#[derive(Debug, Clone, Copy)]
pub struct TgmkReceiver<'a> {
    /// The trusted KMS community (URI, key periods, KPAK).
    pub kms: &'a CommunityPublic,
    /// The groups this member belongs to, with their current GMKs.
    pub groups: &'a [ConstituentGroup<'a>],
    /// If set, the only initiator accepted (an authorisation policy).
    pub expected_initiator: Option<&'a str>,
}

/// An unwrapped TGMK and its parameters.
#[derive(Debug, Clone)]
pub struct UnwrappedTgmk {
    /// The TGMK.
    pub tgmk: Tgmk,
    /// The TGMK-ID.
    pub tgmk_id: KeyId,
    /// RAND of the message (input to the media key derivation).
    pub rand: Vec<u8>,
    /// The time stamp, Unix seconds.
    pub t_unix: i64,
    /// Who made the TGMK (signature verified).
    pub initiator_uri: String,
    /// The temporary group.
    pub temporary_group_id: String,
    /// The constituent group this copy was for.
    pub constituent_group_id: String,
    /// The GMK-ID it was wrapped under.
    pub gmk_id: KeyId,
    /// Activation time as carried.
    pub activation: u64,
    /// Expiry time as carried.
    pub expiry: u64,
    /// The SRTP profile.
    pub policy: Option<Sp>,
}

impl UnwrappedTgmk {
    /// The SRTP master key, salt and MKI of the temporary group call.
    pub fn srtp_keys(&self) -> SrtpMasterKeys {
        srtp_keys(&self.tgmk, self.tgmk_id, &self.rand)
    }
}

/// A wrapped copy decoded once, with the octets it was decoded from: what
/// a member reads before deciding whether to unwrap at all (the initiator
/// it names, for authorisation) and then unwraps
/// ([`TgmkReceiver::unwrap_decoded_cached`]) without decoding it again.
/// Built only by [`DecodedCopy::decode`], so the decoded message always
/// describes exactly the octets its signature and MAC are checked over.
pub struct DecodedCopy<'a> {
    bytes: &'a [u8],
    msg: Message,
    layout: Layout,
}

impl<'a> DecodedCopy<'a> {
    /// Decodes a wrapped copy (no check beyond the MIKEY format).
    ///
    /// # Errors
    /// [`Error::Decode`] if `bytes` is not a MIKEY message.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        let (msg, layout) = Message::decode_with_layout(bytes)?;
        Ok(Self { bytes, msg, layout })
    }

    /// The identity the IDRi payload names (not authenticated until the
    /// copy is unwrapped), if there is exactly one.
    #[must_use]
    pub fn initiator_id(&self) -> Option<&[u8]> {
        self.msg.idr(IdRole::Initiator).map(|i| i.id.as_slice())
    }
}

impl std::fmt::Debug for DecodedCopy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The KEMAC is encrypted, but a copy is not for logs either way.
        f.debug_struct("DecodedCopy")
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl TgmkReceiver<'_> {
    /// Unwraps one copy with every check, each failing with its own error:
    /// format and structure; the KMS named; the initiator (if restricted);
    /// the initiator's ECCSI signature; the GMK-ID known; the constituent
    /// group one this member belongs to (and the GMK that group's); T in
    /// the replay window, or older but within the expiry signed in its key
    /// parameters (late entry into a long call), and (T, RAND, GMK-ID) not
    /// seen before; the KEMAC MAC; the key data; the key parameters. Only
    /// then is the message remembered in `replay` (until its expiry) and
    /// the TGMK released.
    ///
    /// # Errors
    /// [`Error::Decode`] or [`Error::Rejected`] with the failed check.
    pub fn unwrap(
        &self,
        bytes: &[u8],
        now_unix: u64,
        replay: &mut ReplayCache,
    ) -> Result<UnwrappedTgmk, Error> {
        self.unwrap_with(&DecodedCopy::decode(bytes)?, now_unix, replay, None)
    }

    /// [`TgmkReceiver::unwrap`] verifying the initiator's signature with a
    /// verifying key kept in `verifiers` (built on the first copy from that
    /// initiator and PVT, about a third of a verification's cost after
    /// that): what a device that hears the same initiators again does.
    ///
    /// # Errors
    /// As [`TgmkReceiver::unwrap`].
    pub fn unwrap_cached(
        &self,
        bytes: &[u8],
        now_unix: u64,
        replay: &mut ReplayCache,
        verifiers: &mut VerifyingKeys,
    ) -> Result<UnwrappedTgmk, Error> {
        self.unwrap_decoded_cached(&DecodedCopy::decode(bytes)?, now_unix, replay, verifiers)
    }

    /// [`TgmkReceiver::unwrap_cached`] of a copy already decoded (every
    /// check but the decoding, which [`DecodedCopy::decode`] did).
    ///
    /// # Errors
    /// [`Error::Rejected`] with the failed check.
    pub fn unwrap_decoded_cached(
        &self,
        copy: &DecodedCopy<'_>,
        now_unix: u64,
        replay: &mut ReplayCache,
        verifiers: &mut VerifyingKeys,
    ) -> Result<UnwrappedTgmk, Error> {
        self.unwrap_with(copy, now_unix, replay, Some(verifiers))
    }

    fn unwrap_with(
        &self,
        copy: &DecodedCopy<'_>,
        now_unix: u64,
        replay: &mut ReplayCache,
        verifiers: Option<&mut VerifyingKeys>,
    ) -> Result<UnwrappedTgmk, Error> {
        let DecodedCopy { bytes, msg, layout } = copy;
        // Structure.
        if msg.hdr.data_type != DataType::PreShared {
            return Err(Rejection::UnexpectedDataType {
                expected: DataType::PreShared.value(),
                got: msg.hdr.data_type.value(),
            }
            .into());
        }
        if msg.hdr.prf != PrfFunc::HmacSha256 {
            return Err(Rejection::UnsupportedPrf(msg.hdr.prf.value()).into());
        }
        let tgmk_id = tgmk_id_of(msg)?;
        if msg.sign().is_none() {
            return Err(Rejection::NotSigned.into());
        }
        let kemac = msg.kemac().ok_or(Rejection::MissingPayload("KEMAC"))?;
        if kemac.encr_alg != EncrAlg::AesCm128 || kemac.mac_alg != MacAlg::HmacSha256_256 {
            return Err(Rejection::Unsupported {
                what: "KEMAC algorithm",
                value: (u64::from(kemac.encr_alg.value()) << 8) | u64::from(kemac.mac_alg.value()),
            }
            .into());
        }
        let ext = msg
            .general_ext(GeneralExtType::KeyParameters)
            .ok_or(Rejection::MissingPayload("key parameters"))?;
        let ExtBody::KeyParameters(pp) = &ext.body else {
            return Err(Rejection::KeyParametersInvalid.into());
        };
        if pp.payload_id != FORMAT_VERSION {
            return Err(Rejection::UnsupportedFormatVersion(pp.payload_id).into());
        }
        let rand = msg
            .rand()
            .ok_or(Rejection::MissingPayload("RAND"))?
            .0
            .clone();
        let initiator = uri_of(msg, IdRole::Initiator, "IDRi")?;
        let group_id = uri_of(msg, IdRole::Responder, "IDRr")?;
        check_kms(msg, &self.kms.kms_uri, false)?;
        if self.expected_initiator.is_some_and(|e| e != initiator) {
            return Err(Rejection::WrongInitiator.into());
        }
        let t_unix = message_time(msg, now_unix)?;

        // 1. Signature, by the named initiator.
        let period = key_period_of(self.kms, t_unix)?;
        let initiator_uid = self.kms.uid(&initiator, period)?;
        match verifiers {
            Some(v) => v.verify_message(bytes, msg, layout, &self.kms.kpak, &initiator_uid)?,
            None => verify_signature(bytes, msg, layout, &self.kms.kpak, &initiator_uid)?,
        }

        // 2. GMK-ID known.
        let gmk_id = KeyId(pp.dppk_id);
        let group = self
            .groups
            .iter()
            .find(|g| g.gmk_id == gmk_id)
            .ok_or(Rejection::UnknownGmkId(gmk_id.0))?;

        // 3. The constituent group is ours, and the GMK is that group's.
        if group.group_id != group_id {
            return Err(Rejection::NotAMember.into());
        }

        // 4. Not seen, and not older than any lifetime (the lifetime
        // itself is checked once the key parameters are authenticated).
        let replay_key = replay_key(msg, &rand, &gmk_id.to_bytes());
        replay.check_unseen(t_unix, &replay_key, now_unix)?;

        // 5. MAC.
        let keys = kdf::kemac_keys(group.gmk.as_bytes(), tgmk_id.0, &rand);
        let mac_at = mac_offset(msg, layout).ok_or(Rejection::MissingPayload("KEMAC"))?;
        let mac = kdf::hmac_sha256(keys.auth.as_ref(), &bytes[..mac_at]);
        if !bool::from(mac.ct_eq(kemac.mac.as_slice())) {
            return Err(Rejection::MacInvalid.into());
        }

        // 6. The key data.
        let t = msg.timestamp().map_or(0, |t| match t {
            Timestamp::NtpUtc(v) | Timestamp::Ntp(v) => *v,
            Timestamp::Counter(v) => u64::from(*v),
        });
        let plain = Zeroizing::new(aes_cm(&keys, tgmk_id.0, t, &kemac.encr_data));
        let list = KeyData::read_list(&plain, 0)
            .map_err(|_| Rejection::KeyDataInvalid("does not parse"))?;
        let [kd] = list.as_slice() else {
            return Err(Rejection::KeyDataInvalid("not exactly one key").into());
        };
        if kd.key_type != KeyDataType::Tgk || kd.salt.is_some() {
            return Err(Rejection::KeyDataInvalid("not a TGK").into());
        }
        if kd.kv != KeyValidity::Spi(tgmk_id.to_bytes().to_vec()) {
            return Err(Rejection::KeyDataInvalid("SPI is not the TGMK-ID").into());
        }
        let tgmk = Tgmk::from_bytes(&kd.key)
            .map_err(|_| Rejection::KeyDataInvalid("TGMK is not 16 octets"))?;

        // 7. Key parameters.
        let kp = open_key_parameters(ext, group.gmk.as_bytes(), gmk_id.0)?;
        if kp.key_type != PURPOSE.value() {
            return Err(Rejection::KeyParametersMismatch("key type is not TGMK").into());
        }
        let ids: Vec<&[u8]> = kp
            .group_ids
            .iter()
            .flatten()
            .map(|g| g.id.as_slice())
            .collect();
        let [temporary, constituent] = ids.as_slice() else {
            return Err(Rejection::KeyParametersMismatch("group IDs").into());
        };
        if *constituent != group_id.as_bytes() {
            return Err(Rejection::KeyParametersMismatch("constituent group").into());
        }
        let temporary_group_id = String::from_utf8(temporary.to_vec())
            .map_err(|_| Rejection::KeyParametersMismatch("temporary group ID"))?;
        if kp.expiry_time != 0 && kp.expiry_time <= now_unix {
            return Err(Rejection::KeyExpired {
                expiry: kp.expiry_time,
            }
            .into());
        }
        // 8. Fresh: in the window, or within the signed life of its call
        // (late entry); remembered as long as it could be accepted.
        replay.check_lifetime(t_unix, kp.expiry_time, now_unix)?;

        replay.insert_until(t_unix, &replay_key, kp.expiry_time, now_unix);
        Ok(UnwrappedTgmk {
            tgmk,
            tgmk_id,
            rand,
            t_unix,
            initiator_uri: initiator,
            temporary_group_id,
            constituent_group_id: group_id,
            gmk_id,
            activation: kp.activation_time,
            expiry: kp.expiry_time,
            policy: msg.sp().cloned(),
        })
    }
}

/// Signers' ECCSI verifying keys (RFC 6507 HS and Y precomputed), by KMS
/// public key, signer UID and PVT: a member keeps one per initiator it
/// hears, so that each further call request from that initiator costs a
/// cached verification. Cloning shares the precomputed tables. At most
/// [`VerifyingKeys::MAX_SIGNERS`] are kept (a new one replaces an
/// arbitrary one beyond that); a key is kept only after a signature
/// verified with it.
#[derive(Clone, Default)]
pub struct VerifyingKeys {
    by_signer: HashMap<(Vec<u8>, Vec<u8>), VerifyingKey>,
}

impl std::fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKeys")
            .field("signers", &self.by_signer.len())
            .finish()
    }
}

impl VerifyingKeys {
    /// Most signers kept.
    pub const MAX_SIGNERS: usize = 64;

    /// No signer known yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many signers' keys are kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_signer.len()
    }

    /// True if none is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_signer.is_empty()
    }

    /// Verifies `signature` (RFC 6507 encoding) by the signer `signer_uid`
    /// over `signed` under `kpak`, with the signer's key if kept (and the
    /// signature carries the same PVT), else with a new key, kept once the
    /// signature verified.
    ///
    /// # Errors
    /// [`Rejection::SignatureInvalid`] if the signature does not verify
    /// or does not parse.
    pub fn verify(
        &mut self,
        kpak: &Kpak,
        signer_uid: &[u8],
        signed: &[u8],
        signature: &[u8],
    ) -> Result<(), Rejection> {
        let sig = Signature::from_bytes(signature).map_err(|_| Rejection::SignatureInvalid)?;
        let key = (kpak.to_bytes().to_vec(), signer_uid.to_vec());
        if let Some(k) = self.by_signer.get(&key).filter(|k| k.pvt() == sig.pvt()) {
            return k
                .verify(signed, &sig)
                .map_err(|_| Rejection::SignatureInvalid);
        }
        let k = verifying_key(kpak, signer_uid, sig.pvt())?;
        k.verify(signed, &sig)
            .map_err(|_| Rejection::SignatureInvalid)?;
        if self.by_signer.len() >= Self::MAX_SIGNERS
            && let Some(old) = self.by_signer.keys().next().cloned()
        {
            self.by_signer.remove(&old);
        }
        self.by_signer.insert(key, k);
        Ok(())
    }

    /// [`VerifyingKeys::verify`] of a decoded MIKEY message's SIGN payload.
    fn verify_message(
        &mut self,
        bytes: &[u8],
        msg: &Message,
        layout: &Layout,
        kpak: &Kpak,
        signer_uid: &[u8],
    ) -> Result<(), Rejection> {
        let (signed, signature) = signed_part(bytes, msg, layout)?;
        self.verify(kpak, signer_uid, signed, signature)
    }
}

fn verifying_key(kpak: &Kpak, signer_uid: &[u8], pvt: &Pvt) -> Result<VerifyingKey, Rejection> {
    VerifyingKey::new(kpak, signer_uid, pvt).map_err(|_| Rejection::SignatureInvalid)
}

/// What anyone can read of a wrapped copy without any key: enough for a
/// server that relays it to refuse a stale or replayed call request before
/// fanning it out (it learns nothing of the TGMK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyEnvelope {
    /// The TGMK-ID (CSB-ID).
    pub tgmk_id: KeyId,
    /// T, Unix seconds.
    pub t_unix: i64,
    /// The initiator (IDRi).
    pub initiator_uri: String,
    /// The constituent group (IDRr).
    pub group_id: String,
    /// T || RAND || IDRr: the copy's identity in a replay cache.
    pub replay_key: Vec<u8>,
}

impl CopyEnvelope {
    /// Reads the clear fields of a wrapped copy.
    ///
    /// # Errors
    /// [`Error::Decode`], or [`Error::Rejected`] for a missing T, RAND or
    /// IDR, a TGMK-ID without the TGMK purpose, or an unsupported time
    /// stamp.
    pub fn read(bytes: &[u8], now_unix: u64) -> Result<Self, Error> {
        let msg = Message::decode(bytes)?;
        let tgmk_id = tgmk_id_of(&msg)?;
        let t_unix = message_time(&msg, now_unix)?;
        let rand = &msg.rand().ok_or(Rejection::MissingPayload("RAND"))?.0;
        let initiator_uri = uri_of(&msg, IdRole::Initiator, "IDRi")?;
        let group_id = uri_of(&msg, IdRole::Responder, "IDRr")?;
        let replay_key = replay_key(&msg, rand, group_id.as_bytes());
        Ok(Self {
            tgmk_id,
            t_unix,
            initiator_uri,
            group_id,
            replay_key,
        })
    }
}

/// Decrypts the KEMAC of a wrapped TGMK with `gmk` after checking its MAC,
/// without any other check (for inspection tools).
///
/// # Errors
/// [`Rejection::MacInvalid`] or [`Rejection::KeyDataInvalid`].
pub fn open_kemac(bytes: &[u8], gmk: &Gmk) -> Result<Vec<KeyData>, Error> {
    let (msg, layout) = Message::decode_with_layout(bytes)?;
    let kemac = msg.kemac().ok_or(Rejection::MissingPayload("KEMAC"))?;
    let rand = msg.rand().ok_or(Rejection::MissingPayload("RAND"))?;
    let keys = kdf::kemac_keys(gmk.as_bytes(), msg.hdr.csb_id, &rand.0);
    let mac_at = mac_offset(&msg, &layout).ok_or(Rejection::MissingPayload("KEMAC"))?;
    let mac = kdf::hmac_sha256(keys.auth.as_ref(), &bytes[..mac_at]);
    if !bool::from(mac.ct_eq(kemac.mac.as_slice())) {
        return Err(Rejection::MacInvalid.into());
    }
    let t = match msg.timestamp() {
        Some(Timestamp::NtpUtc(v) | Timestamp::Ntp(v)) => *v,
        Some(Timestamp::Counter(v)) => u64::from(*v),
        None => return Err(Rejection::MissingPayload("T").into()),
    };
    let plain = Zeroizing::new(aes_cm(&keys, msg.hdr.csb_id, t, &kemac.encr_data));
    Ok(KeyData::read_list(&plain, 0).map_err(|_| Rejection::KeyDataInvalid("does not parse"))?)
}
