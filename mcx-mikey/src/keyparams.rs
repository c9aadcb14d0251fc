//! TS 33.180 E.6 key parameters, carried in General Extension type 7 as an
//! MCData protected payload (TS 33.180 8.5.4).
//!
//! Protected payload, as TS 33.180 8.5.4.1 and the vendor data lay it out:
//!
//! ```text
//! message type (1) | date and time (5) | payload ID (4) | payload sequence number (1)
//! | payload algorithm (1) | IV (16) | DPPK-ID (4)
//! | payload IEI (1) | payload length (2) | AES-128-GCM ciphertext || tag (16)
//! ```
//!
//! `DPCK = KDF(DPPK, 0x53, DPPK-ID)` (F.1.5); the GCM nonce is the 16-octet
//! IV; the AAD is the first 12 octets || IV || DPPK-ID. E.6: DPPK is the key
//! the MIKEY message carries and DPPK-ID its CSB ID.
//!
//! Key parameters (Table E.6.1-1), the plaintext:
//!
//! ```text
//! key type (1) | status (4) | activation time (5) | expiry time (5)
//! | text length (2) | text | [ MC group IDs length (2) | number (1) | { IEI (1) | length (2) | ID } ]
//! ```

use aes::Aes128;
use aes_gcm::aead::consts::U16;
use aes_gcm::{AeadInOut, AesGcm, KeyInit};
use zeroize::Zeroizing;

use crate::codec::{Codec, Reader, put_len8, put_len16, put_u40};
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::kdf;

/// AES-128-GCM with the 16-octet nonce of TS 33.180 8.5.4.
type Gcm16 = AesGcm<Aes128, U16>;

/// The message type of a protected payload as TS 33.180 E.6 sends it.
pub const PROTECTED_PAYLOAD_MESSAGE_TYPE: u8 = 0x43;
/// Payload algorithm 1: AEAD_AES_128_GCM (TS 33.180 8.5.4).
pub const ALGORITHM_AES_128_GCM: u8 = 1;
/// Key parameters status bit 0: the key is not revoked (as the vendor
/// data sets it).
pub const STATUS_NOT_REVOKED: u32 = 1;
/// The IEI this crate puts on each MC group ID it sends (TS 24.282 leaves
/// the IEI to the message; receivers accept any).
pub const GROUP_ID_IEI: u8 = 0x00;

/// An MCData protected payload (TS 33.180 8.5.4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedPayload {
    /// Message type (0x43 in E.6).
    pub message_type: u8,
    /// Date and time, 40 bits.
    pub date_time: u64,
    /// Payload ID (E.6: 0).
    pub payload_id: u32,
    /// Payload sequence number (E.6: 0).
    pub payload_seq: u8,
    /// Payload algorithm (1: AEAD_AES_128_GCM).
    pub algorithm: u8,
    /// The 16-octet IV, used as the GCM nonce.
    pub iv: [u8; 16],
    /// The DPPK-ID: the ID of the key that protects the payload.
    pub dppk_id: u32,
    /// The payload's IEI (0 in the vendor data).
    pub payload_iei: u8,
    /// Ciphertext || 16-octet tag.
    pub ciphertext: Vec<u8>,
}

impl ProtectedPayload {
    /// The associated data: first 12 octets || IV || DPPK-ID.
    fn aad(&self) -> Result<Vec<u8>, EncodeError> {
        let mut a = Vec::with_capacity(32);
        a.push(self.message_type);
        put_u40(&mut a, self.date_time, "protected payload date and time")?;
        a.extend_from_slice(&self.payload_id.to_be_bytes());
        a.push(self.payload_seq);
        a.push(self.algorithm);
        a.extend_from_slice(&self.iv);
        a.extend_from_slice(&self.dppk_id.to_be_bytes());
        Ok(a)
    }

    /// Protects `plaintext` under `dppk` (F.1.5 DPCK, AES-128-GCM).
    ///
    /// # Errors
    /// [`EncodeError`] if the date does not fit 40 bits or the payload is
    /// too long.
    pub fn seal(
        dppk: &[u8],
        dppk_id: u32,
        date_time: u64,
        payload_id: u32,
        iv: [u8; 16],
        plaintext: &[u8],
    ) -> Result<Self, EncodeError> {
        let mut p = Self {
            message_type: PROTECTED_PAYLOAD_MESSAGE_TYPE,
            date_time,
            payload_id,
            payload_seq: 0,
            algorithm: ALGORITHM_AES_128_GCM,
            iv,
            dppk_id,
            payload_iei: 0,
            ciphertext: Vec::new(),
        };
        let aad = p.aad()?;
        let dpck = kdf::dpck(dppk, dppk_id);
        let cipher = Gcm16::new(&(*dpck).into());
        let mut buf = plaintext.to_vec();
        let tag = cipher
            .encrypt_inout_detached(&iv.into(), &aad, buf.as_mut_slice().into())
            .map_err(|_| EncodeError("protected payload (too long for AES-GCM)"))?;
        buf.extend_from_slice(&tag);
        if buf.len() > usize::from(u16::MAX) {
            return Err(EncodeError("protected payload"));
        }
        p.ciphertext = buf;
        Ok(p)
    }

    /// Authenticates and decrypts the payload under `dppk`. Returns `None`
    /// if the algorithm is not AES-128-GCM or the tag does not verify;
    /// nothing is released before the tag verifies.
    pub fn open(&self, dppk: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if self.algorithm != ALGORITHM_AES_128_GCM || self.ciphertext.len() < 16 {
            return None;
        }
        let aad = self.aad().ok()?;
        let dpck = kdf::dpck(dppk, self.dppk_id);
        let cipher = Gcm16::new(&(*dpck).into());
        let (ct, tag) = self.ciphertext.split_at(self.ciphertext.len() - 16);
        let mut buf = Zeroizing::new(ct.to_vec());
        let tag: [u8; 16] = tag.try_into().ok()?;
        cipher
            .decrypt_inout_detached(
                &self.iv.into(),
                &aad,
                buf.as_mut_slice().into(),
                &tag.into(),
            )
            .ok()?;
        Some(buf)
    }
}

impl Codec for ProtectedPayload {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.aad()?);
        out.push(self.payload_iei);
        put_len16(out, self.ciphertext.len(), "protected payload")?;
        out.extend_from_slice(&self.ciphertext);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let message_type = r.u8("message type")?;
        let date_time = r.u40("date and time")?;
        let payload_id = r.u32("payload ID")?;
        let payload_seq = r.u8("payload sequence number")?;
        let algorithm = r.u8("payload algorithm")?;
        let iv = r.array("IV")?;
        let dppk_id = r.u32("DPPK-ID")?;
        let payload_iei = r.u8("payload IEI")?;
        let len = r.u16("payload length")?;
        let ciphertext = r.take(usize::from(len), "payload")?.to_vec();
        Ok(Self {
            message_type,
            date_time,
            payload_id,
            payload_seq,
            algorithm,
            iv,
            dppk_id,
            payload_iei,
            ciphertext,
        })
    }
}

/// One MC group ID of the key parameters (an MCData group ID IE of
/// TS 24.282, TLV-E).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupIdIe {
    /// The IEI, as sent.
    pub iei: u8,
    /// The group ID (a URI's octets).
    pub id: Vec<u8>,
}

impl GroupIdIe {
    /// A group ID IE with this crate's IEI.
    pub fn new(id: &str) -> Self {
        Self {
            iei: GROUP_ID_IEI,
            id: id.as_bytes().to_vec(),
        }
    }
}

/// The key parameters of TS 33.180 Table E.6.1-1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyParameters {
    /// Key type: the purpose tag of the key (0 GMK, 1 PCK, 2 CSK, ...).
    pub key_type: u8,
    /// Status (bit 0: not revoked).
    pub status: u32,
    /// Activation time, 40 bits (0: not set).
    pub activation_time: u64,
    /// Expiry time, 40 bits (0: not set).
    pub expiry_time: u64,
    /// Free text.
    pub text: Vec<u8>,
    /// The MC group IDs, if the field is present (GMK: yes; PCK/CSK: no).
    pub group_ids: Option<Vec<GroupIdIe>>,
}

impl Codec for KeyParameters {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.key_type);
        out.extend_from_slice(&self.status.to_be_bytes());
        put_u40(out, self.activation_time, "activation time")?;
        put_u40(out, self.expiry_time, "expiry time")?;
        put_len16(out, self.text.len(), "key parameters text")?;
        out.extend_from_slice(&self.text);
        if let Some(ids) = &self.group_ids {
            let mut body = Vec::new();
            put_len8(&mut body, ids.len(), "number of MC group IDs")?;
            for g in ids {
                body.push(g.iei);
                put_len16(&mut body, g.id.len(), "MC group ID")?;
                body.extend_from_slice(&g.id);
            }
            put_len16(out, body.len(), "MC group IDs")?;
            out.extend_from_slice(&body);
        }
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key_type = r.u8("key type")?;
        let status = r.u32("status")?;
        let activation_time = r.u40("activation time")?;
        let expiry_time = r.u40("expiry time")?;
        let len = r.u16("text length")?;
        let text = r.take(usize::from(len), "text")?.to_vec();
        let group_ids = if r.any_left() {
            let len = r.u16("MC group IDs length")?;
            let mut body = r.sub(usize::from(len), "MC group IDs")?;
            let at = body.offset();
            let n = body.u8("number of MC group IDs")?;
            let mut ids = Vec::new();
            while body.any_left() {
                let iei = body.u8("MC group ID IEI")?;
                let len = body.u16("MC group ID length")?;
                ids.push(GroupIdIe {
                    iei,
                    id: body.take(usize::from(len), "MC group ID")?.to_vec(),
                });
            }
            if ids.len() != usize::from(n) {
                return Err(body.error_at(
                    at,
                    "number of MC group IDs",
                    DecodeErrorKind::CountMismatch {
                        declared: usize::from(n),
                        found: ids.len(),
                    },
                ));
            }
            Some(ids)
        } else {
            None
        };
        Ok(Self {
            key_type,
            status,
            activation_time,
            expiry_time,
            text,
            group_ids,
        })
    }
}

impl KeyParameters {
    /// Decodes the plaintext of a protected payload.
    ///
    /// # Errors
    /// [`DecodeError`] in payload "key parameters".
    pub fn decode(plaintext: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::at(plaintext, 0, "key parameters");
        let v = Self::read(&mut r)?;
        r.expect_empty("end of key parameters")?;
        Ok(v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let kp = KeyParameters {
            key_type: 0,
            status: 1,
            activation_time: 5,
            expiry_time: 6,
            text: b"hi".to_vec(),
            group_ids: Some(vec![GroupIdIe::new("sip:g@x")]),
        };
        let pt = kp.get_encoding().unwrap();
        assert_eq!(KeyParameters::decode(&pt).unwrap(), kp);
        let p = ProtectedPayload::seal(&[7; 16], 0x1234_5678, 1, 0, [9; 16], &pt).unwrap();
        assert_eq!(&*p.open(&[7; 16]).unwrap(), &pt);
        assert!(p.open(&[8; 16]).is_none());
        let mut q = p.clone();
        q.date_time = 2;
        assert!(q.open(&[7; 16]).is_none(), "header is authenticated");
        let enc = p.get_encoding().unwrap();
        assert_eq!(ProtectedPayload::read_bytes(&enc).unwrap(), p);
    }
}
