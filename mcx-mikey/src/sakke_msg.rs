//! What every signed MIKEY message of TS 33.180 shares: ECCSI signing and
//! verification over the signed range, identities, time and key periods,
//! SAKKE decapsulation.

use mcx_ibc::eccsi::{self, Kpak, SigningKey};
use mcx_ibc::kms::CommunityPublic;
use mcx_ibc::sakke::{ReceiverKey, SSV_LEN};
use mcx_ibc::uid::{self, UID_LEN};
use rand_core::CryptoRng;

use crate::error::{Error, IdentityRole, Rejection};
use crate::message::{Layout, Message, Payload, Sign};
use crate::wire::{IdRole, IdScheme, SakkeParams, SignType};
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
    eccsi::verify_bytes(kpak, signer, signed, &sign.signature)
        .map_err(|_| Rejection::SignatureInvalid)
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
