//! The MIKEY message and its payloads (RFC 3830 6, RFC 4563, RFC 6043 6,
//! RFC 6509 4, TS 33.180 E.5/E.6).
//!
//! Decoding is strict: HDR first, every payload where the previous one's
//! next-payload field says, every length exact, SIGN (which has no
//! next-payload field) last, nothing after the last payload. Encoding
//! reproduces the decoded octets exactly; next-payload fields are not
//! stored but follow from the order of [`Message::payloads`].

use core::fmt;

use zeroize::Zeroizing;

use crate::codec::{Codec, Reader, put_len8, put_len16};
use crate::error::{DecodeError, DecodeErrorKind, EncodeError};
use crate::keyparams::{KeyParameters, ProtectedPayload};
use crate::wire::ErrorCode;
use crate::wire::{
    DataType, EncrAlg, GeneralExtType, IdRole, IdScheme, IdType, KeyDataType, KvType, MacAlg,
    MapType, PayloadType, PrfFunc, ProtType, SakkeParams, SignType, TsType,
};

/// The MIKEY version this crate speaks (RFC 3830 6.1).
pub const MIKEY_VERSION: u8 = 1;

/// A MIKEY message: the common header and the payloads after it, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The common header.
    pub hdr: Hdr,
    /// The payloads after HDR, in wire order; a SIGN payload can only be
    /// the last.
    pub payloads: Vec<Payload>,
}

/// Where each part of a decoded message starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Offset of each payload in [`Message::payloads`] (HDR is at 0).
    pub payload_offsets: Vec<usize>,
    /// Length of the octets an ECCSI signature covers: every octet up to
    /// and including the 2-octet SIGN header, if the message is signed.
    pub signed_len: Option<usize>,
    /// The message's length.
    pub len: usize,
}

/// What [`Message::decode_partial`] got of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialMessage {
    /// HDR, if it decoded.
    pub hdr: Option<Hdr>,
    /// The payloads that decoded, in order.
    pub payloads: Vec<Payload>,
    /// Where each of them starts.
    pub layout: Layout,
    /// The first error, if any.
    pub error: Option<DecodeError>,
}

impl Message {
    /// Decodes a whole message.
    ///
    /// # Errors
    /// [`DecodeError`] naming the payload, field and offset.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_with_layout(bytes).map(|(m, _)| m)
    }

    /// Decodes a whole message and reports where each payload starts and
    /// which octets a signature covers.
    ///
    /// # Errors
    /// [`DecodeError`] naming the payload, field and offset.
    pub fn decode_with_layout(bytes: &[u8]) -> Result<(Self, Layout), DecodeError> {
        let p = Self::decode_partial(bytes);
        match (p.error, p.hdr) {
            (None, Some(hdr)) => Ok((
                Self {
                    hdr,
                    payloads: p.payloads,
                },
                p.layout,
            )),
            (Some(e), _) => Err(e),
            (None, None) => Err(Reader::new(bytes).error("version", DecodeErrorKind::Empty)),
        }
    }

    /// Decodes as much of a message as decodes: HDR and the payloads up to
    /// the first error, with where each starts, and the error. For tools
    /// that show a malformed message up to its fault.
    pub fn decode_partial(bytes: &[u8]) -> PartialMessage {
        let mut r = Reader::new(bytes);
        let mut out = PartialMessage {
            hdr: None,
            payloads: Vec::new(),
            layout: Layout {
                payload_offsets: Vec::new(),
                signed_len: None,
                len: bytes.len(),
            },
            error: None,
        };
        if bytes.is_empty() {
            out.error = Some(r.error("version", DecodeErrorKind::Empty));
            return out;
        }
        r.set_payload("HDR");
        let mut next = match Hdr::read_with_next(&mut r) {
            Ok((hdr, next)) => {
                out.hdr = Some(hdr);
                next
            }
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        };
        while next != PayloadType::Last {
            let start = r.offset();
            match Payload::read(next, &mut r) {
                Ok((payload, following)) => {
                    if matches!(payload, Payload::Sign(_)) {
                        out.layout.signed_len = Some(start + 2);
                    }
                    out.layout.payload_offsets.push(start);
                    out.payloads.push(payload);
                    next = following;
                }
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        }
        out.error = r.expect_empty("end of message").err();
        out
    }

    /// Encodes the message.
    ///
    /// # Errors
    /// [`EncodeError`] if a field does not fit its length, or a SIGN
    /// payload is not last.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        self.encode_with_layout().map(|(b, _)| b)
    }

    /// Encodes the message and reports its layout.
    ///
    /// # Errors
    /// As [`Message::to_bytes`].
    pub fn encode_with_layout(&self) -> Result<(Vec<u8>, Layout), EncodeError> {
        let mut out = Vec::with_capacity(768);
        let first = self
            .payloads
            .first()
            .map_or(PayloadType::Last, Payload::payload_type);
        self.hdr.encode_with_next(first, &mut out)?;
        let mut offsets = Vec::with_capacity(self.payloads.len());
        let mut signed_len = None;
        for (i, p) in self.payloads.iter().enumerate() {
            offsets.push(out.len());
            let next = self
                .payloads
                .get(i + 1)
                .map_or(PayloadType::Last, Payload::payload_type);
            if let Payload::Sign(_) = p {
                if i + 1 != self.payloads.len() {
                    return Err(EncodeError("SIGN payload that is not last"));
                }
                signed_len = Some(out.len() + 2);
            }
            p.encode(next, &mut out)?;
        }
        let len = out.len();
        Ok((
            out,
            Layout {
                payload_offsets: offsets,
                signed_len,
                len,
            },
        ))
    }

    /// Payloads of one type.
    pub fn payloads_of(&self, t: PayloadType) -> impl Iterator<Item = &Payload> {
        self.payloads.iter().filter(move |p| p.payload_type() == t)
    }

    /// The T payload, if exactly one is present.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        single(self.payloads.iter().filter_map(|p| match p {
            Payload::T(t) => Some(t),
            _ => None,
        }))
    }

    /// The RAND payload, if exactly one is present.
    pub fn rand(&self) -> Option<&Rand> {
        single(self.payloads.iter().filter_map(|p| match p {
            Payload::Rand(r) => Some(r),
            _ => None,
        }))
    }

    /// The IDR payload with `role`, if exactly one is present.
    pub fn idr(&self, role: IdRole) -> Option<&Idr> {
        single(self.payloads.iter().filter_map(|p| match p {
            Payload::Idr(i) if i.role == role => Some(i),
            _ => None,
        }))
    }

    /// The SP payload, if exactly one is present.
    pub fn sp(&self) -> Option<&Sp> {
        single(self.payloads.iter().filter_map(|p| match p {
            Payload::Sp(s) => Some(s),
            _ => None,
        }))
    }

    /// The SAKKE payload, if exactly one is present.
    pub fn sakke(&self) -> Option<&Sakke> {
        single(self.payloads.iter().filter_map(|p| match p {
            Payload::Sakke(s) => Some(s),
            _ => None,
        }))
    }

    /// The KEMAC payload, if exactly one is present.
    pub fn kemac(&self) -> Option<&Kemac> {
        single(self.payloads.iter().filter_map(|p| match p {
            Payload::Kemac(k) => Some(k),
            _ => None,
        }))
    }

    /// The general extension of `ext_type`, if exactly one is present.
    pub fn general_ext(&self, ext_type: GeneralExtType) -> Option<&GeneralExt> {
        single(self.payloads.iter().filter_map(|p| match p {
            Payload::GeneralExt(g) if g.ext_type == ext_type => Some(g),
            _ => None,
        }))
    }

    /// The SIGN payload, if the message is signed.
    pub fn sign(&self) -> Option<&Sign> {
        match self.payloads.last() {
            Some(Payload::Sign(s)) => Some(s),
            _ => None,
        }
    }
}

fn single<T>(mut it: impl Iterator<Item = T>) -> Option<T> {
    let first = it.next()?;
    it.next().is_none().then_some(first)
}

/// The common header (RFC 3830 6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hdr {
    /// Data type: the kind of message.
    pub data_type: DataType,
    /// V flag: a verification message is requested.
    pub v: bool,
    /// PRF function (7 bits).
    pub prf: PrfFunc,
    /// Crypto session bundle ID.
    pub csb_id: u32,
    /// The crypto session ID map (with #CS and the map type).
    pub map: CsIdMap,
}

/// The CS ID map of HDR: #CS, map type and map info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CsIdMap {
    /// SRTP-ID map (RFC 3830 6.1.1): one entry per crypto session.
    SrtpId(Vec<SrtpIdEntry>),
    /// Empty map (RFC 4563): no map info; #CS as sent.
    Empty {
        /// The #CS field.
        cs_count: u8,
    },
    /// GENERIC-ID map (RFC 6043 6.1.1): one entry per crypto session.
    GenericId(Vec<GenericIdEntry>),
}

impl CsIdMap {
    /// The map type.
    pub fn map_type(&self) -> MapType {
        match self {
            Self::SrtpId(_) => MapType::SrtpId,
            Self::Empty { .. } => MapType::Empty,
            Self::GenericId(_) => MapType::GenericId,
        }
    }
}

/// One crypto session of an SRTP-ID map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrtpIdEntry {
    /// Policy number (the SP payload's).
    pub policy_no: u8,
    /// SSRC.
    pub ssrc: u32,
    /// Roll-over counter.
    pub roc: u32,
}

/// One crypto session of a GENERIC-ID map (RFC 6043 6.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenericIdEntry {
    /// CS ID (TS 33.180: 4 GMK group call, 6 CSK, ...).
    pub cs_id: u8,
    /// Security protocol.
    pub prot_type: ProtType,
    /// S flag: session data carries SSRC/ROC/SEQ.
    pub s: bool,
    /// Policy numbers (#P entries).
    pub policies: Vec<u8>,
    /// Session data.
    pub session_data: Vec<u8>,
    /// SPI (TS 33.180: the MKI, e.g. GMK-ID || GUK-ID).
    pub spi: Vec<u8>,
}

impl Hdr {
    fn read_with_next(r: &mut Reader<'_>) -> Result<(Self, PayloadType), DecodeError> {
        let at = r.offset();
        let version = r.u8("version")?;
        if version != MIKEY_VERSION {
            return Err(r.error_at(at, "version", DecodeErrorKind::UnsupportedVersion(version)));
        }
        let data_type = DataType::from(r.u8("data type")?);
        let next = PayloadType::from(r.u8("next payload")?);
        let vprf = r.u8("V/PRF func")?;
        let csb_id = r.u32("CSB ID")?;
        let cs_count = r.u8("#CS")?;
        let map_at = r.offset();
        let map_type = r.u8("CS ID map type")?;
        let map = match MapType::from(map_type) {
            MapType::SrtpId => {
                let mut v = Vec::with_capacity(usize::from(cs_count));
                for _ in 0..cs_count {
                    v.push(SrtpIdEntry {
                        policy_no: r.u8("SRTP-ID policy no")?,
                        ssrc: r.u32("SRTP-ID SSRC")?,
                        roc: r.u32("SRTP-ID ROC")?,
                    });
                }
                CsIdMap::SrtpId(v)
            }
            MapType::Empty => CsIdMap::Empty { cs_count },
            MapType::GenericId => {
                let mut v = Vec::with_capacity(usize::from(cs_count));
                for _ in 0..cs_count {
                    v.push(GenericIdEntry::read(r)?);
                }
                CsIdMap::GenericId(v)
            }
            MapType::Unknown(t) => {
                return Err(r.error_at(
                    map_at,
                    "CS ID map type",
                    DecodeErrorKind::UnsupportedMapType(t),
                ));
            }
        };
        Ok((
            Self {
                data_type,
                v: vprf & 0x80 != 0,
                prf: PrfFunc::from(vprf & 0x7f),
                csb_id,
                map,
            },
            next,
        ))
    }

    fn encode_with_next(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let prf = self.prf.value();
        if prf > 0x7f {
            return Err(EncodeError("HDR PRF func (7 bits)"));
        }
        out.extend_from_slice(&[
            MIKEY_VERSION,
            self.data_type.value(),
            next.value(),
            (u8::from(self.v) << 7) | prf,
        ]);
        out.extend_from_slice(&self.csb_id.to_be_bytes());
        match &self.map {
            CsIdMap::SrtpId(v) => {
                put_len8(out, v.len(), "HDR #CS")?;
                out.push(MapType::SrtpId.value());
                for e in v {
                    out.push(e.policy_no);
                    out.extend_from_slice(&e.ssrc.to_be_bytes());
                    out.extend_from_slice(&e.roc.to_be_bytes());
                }
            }
            CsIdMap::Empty { cs_count } => {
                out.push(*cs_count);
                out.push(MapType::Empty.value());
            }
            CsIdMap::GenericId(v) => {
                put_len8(out, v.len(), "HDR #CS")?;
                out.push(MapType::GenericId.value());
                for e in v {
                    e.encode(out)?;
                }
            }
        }
        Ok(())
    }
}

impl Codec for GenericIdEntry {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.cs_id);
        out.push(self.prot_type.value());
        let np = u8::try_from(self.policies.len())
            .ok()
            .filter(|&n| n <= 0x7f)
            .ok_or(EncodeError("GENERIC-ID #P (7 bits)"))?;
        out.push((u8::from(self.s) << 7) | np);
        out.extend_from_slice(&self.policies);
        put_len16(out, self.session_data.len(), "GENERIC-ID session data")?;
        out.extend_from_slice(&self.session_data);
        put_len8(out, self.spi.len(), "GENERIC-ID SPI")?;
        out.extend_from_slice(&self.spi);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let cs_id = r.u8("GENERIC-ID CS ID")?;
        let prot_type = ProtType::from(r.u8("GENERIC-ID prot type")?);
        let sp = r.u8("GENERIC-ID S/#P")?;
        let policies = r
            .take(usize::from(sp & 0x7f), "GENERIC-ID policies")?
            .to_vec();
        let sd_len = r.u16("GENERIC-ID session data length")?;
        let session_data = r
            .take(usize::from(sd_len), "GENERIC-ID session data")?
            .to_vec();
        let spi_len = r.u8("GENERIC-ID SPI length")?;
        let spi = r.take(usize::from(spi_len), "GENERIC-ID SPI")?.to_vec();
        Ok(Self {
            cs_id,
            prot_type,
            s: sp & 0x80 != 0,
            policies,
            session_data,
            spi,
        })
    }
}

/// A payload after HDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Key data transport (RFC 3830 6.2).
    Kemac(Kemac),
    /// Signature (RFC 3830 6.5, RFC 6509 4.3).
    Sign(Sign),
    /// Time stamp (RFC 3830 6.6).
    T(Timestamp),
    /// Identity (RFC 3830 6.7).
    Id(Id),
    /// Security policy (RFC 3830 6.10).
    Sp(Sp),
    /// Random value (RFC 3830 6.11).
    Rand(Rand),
    /// Error (RFC 3830 6.12).
    Err(ErrPayload),
    /// Identity with role (RFC 6043 6.6).
    Idr(Idr),
    /// General extension (RFC 3830 6.15).
    GeneralExt(GeneralExt),
    /// SAKKE encapsulated data (RFC 6509 4.2).
    Sakke(Sakke),
}

impl Payload {
    /// This payload's next-payload value.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Self::Kemac(_) => PayloadType::Kemac,
            Self::Sign(_) => PayloadType::Sign,
            Self::T(_) => PayloadType::T,
            Self::Id(_) => PayloadType::Id,
            Self::Sp(_) => PayloadType::Sp,
            Self::Rand(_) => PayloadType::Rand,
            Self::Err(_) => PayloadType::Err,
            Self::Idr(_) => PayloadType::Idr,
            Self::GeneralExt(_) => PayloadType::GeneralExt,
            Self::Sakke(_) => PayloadType::Sakke,
        }
    }

    /// A short name for messages and errors.
    pub fn name(&self) -> &'static str {
        payload_name(self.payload_type())
    }

    /// Reads a payload of type `t`; returns it and its next-payload value.
    fn read(t: PayloadType, r: &mut Reader<'_>) -> Result<(Self, PayloadType), DecodeError> {
        r.set_payload(payload_name(t));
        if t == PayloadType::Sign {
            return Ok((Self::Sign(Sign::read(r)?), PayloadType::Last));
        }
        let at = r.offset();
        let next = PayloadType::from(r.u8("next payload")?);
        let p = match t {
            PayloadType::Kemac => Self::Kemac(Kemac::read(r)?),
            PayloadType::T => Self::T(Timestamp::read(r)?),
            PayloadType::Id => Self::Id(Id::read(r)?),
            PayloadType::Sp => Self::Sp(Sp::read(r)?),
            PayloadType::Rand => Self::Rand(Rand::read(r)?),
            PayloadType::Err => Self::Err(ErrPayload::read(r)?),
            PayloadType::Idr => Self::Idr(Idr::read(r)?),
            PayloadType::GeneralExt => Self::GeneralExt(GeneralExt::read(r)?),
            PayloadType::Sakke => Self::Sakke(Sakke::read(r)?),
            other => {
                return Err(r.error_at(
                    at,
                    "payload",
                    DecodeErrorKind::UnknownPayload(other.value()),
                ));
            }
        };
        Ok((p, next))
    }

    fn encode(&self, next: PayloadType, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Self::Sign(s) = self {
            return s.encode(out);
        }
        out.push(next.value());
        match self {
            Self::Kemac(p) => p.encode(out),
            Self::T(p) => p.encode(out),
            Self::Id(p) => p.encode(out),
            Self::Sp(p) => p.encode(out),
            Self::Rand(p) => p.encode(out),
            Self::Err(p) => p.encode(out),
            Self::Idr(p) => p.encode(out),
            Self::GeneralExt(p) => p.encode(out),
            Self::Sakke(p) => p.encode(out),
            Self::Sign(_) => Ok(()),
        }
    }
}

/// The short name of a payload type.
pub fn payload_name(t: PayloadType) -> &'static str {
    t.name().unwrap_or("unknown payload")
}

/// KEMAC: encrypted key data sub-payloads and a MAC (RFC 3830 6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kemac {
    /// Encryption algorithm.
    pub encr_alg: EncrAlg,
    /// The encrypted key data sub-payloads.
    pub encr_data: Vec<u8>,
    /// MAC algorithm.
    pub mac_alg: MacAlg,
    /// The MAC.
    pub mac: Vec<u8>,
}

impl Codec for Kemac {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.encr_alg.value());
        put_len16(out, self.encr_data.len(), "KEMAC encr data")?;
        out.extend_from_slice(&self.encr_data);
        out.push(self.mac_alg.value());
        if self.mac_alg.mac_len() != Some(self.mac.len()) {
            return Err(EncodeError(
                "KEMAC MAC (length must match the MAC algorithm)",
            ));
        }
        out.extend_from_slice(&self.mac);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let encr_alg = EncrAlg::from(r.u8("encr alg")?);
        let len = r.u16("encr data length")?;
        let encr_data = r.take(usize::from(len), "encr data")?.to_vec();
        let at = r.offset();
        let mac_alg = MacAlg::from(r.u8("MAC alg")?);
        let mac_len = mac_alg.mac_len().ok_or_else(|| {
            r.error_at(
                at,
                "MAC alg",
                DecodeErrorKind::UnknownMacAlgorithm(mac_alg.value()),
            )
        })?;
        let mac = r.take(mac_len, "MAC")?.to_vec();
        Ok(Self {
            encr_alg,
            encr_data,
            mac_alg,
            mac,
        })
    }
}

/// A key data sub-payload (RFC 3830 6.13), found inside the decrypted
/// KEMAC data. The key is erased on drop and not printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyData {
    /// Key type.
    pub key_type: KeyDataType,
    /// The key.
    ///
    /// # ⚠️ Warning: This value is key material
    pub key: Zeroizing<Vec<u8>>,
    /// The salt, for TGK+SALT and TEK+SALT.
    pub salt: Option<Zeroizing<Vec<u8>>>,
    /// The key validity.
    pub kv: KeyValidity,
}

impl fmt::Debug for KeyData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyData")
            .field("key_type", &self.key_type)
            .field("key_len", &self.key.len())
            .field("kv", &self.kv)
            .finish_non_exhaustive()
    }
}

/// Key validity data (RFC 3830 6.14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValidity {
    /// No validity data.
    Null,
    /// SPI/MKI.
    Spi(Vec<u8>),
    /// Validity interval: from, to.
    Interval(Vec<u8>, Vec<u8>),
}

impl KeyData {
    /// Reads the chain of key data sub-payloads that fills `bytes` (the
    /// decrypted KEMAC data). `base` is the offset of `bytes`, for errors.
    ///
    /// # Errors
    /// [`DecodeError`] in payload "Key data".
    pub fn read_list(bytes: &[u8], base: usize) -> Result<Vec<Self>, DecodeError> {
        let mut r = Reader::at(bytes, base, "Key data");
        let mut out = Vec::new();
        loop {
            let at = r.offset();
            let next = PayloadType::from(r.u8("next payload")?);
            out.push(Self::read(&mut r)?);
            match next {
                PayloadType::Last => break,
                PayloadType::KeyData => {}
                other => {
                    return Err(r.error_at(
                        at,
                        "next payload",
                        DecodeErrorKind::UnknownPayload(other.value()),
                    ));
                }
            }
        }
        r.expect_empty("end of key data")?;
        Ok(out)
    }

    /// Encodes a chain of key data sub-payloads.
    ///
    /// # Errors
    /// [`EncodeError`] if a field is too long.
    pub fn encode_list(list: &[Self]) -> Result<Zeroizing<Vec<u8>>, EncodeError> {
        let mut out = Zeroizing::new(Vec::new());
        for (i, k) in list.iter().enumerate() {
            let next = if i + 1 == list.len() {
                PayloadType::Last
            } else {
                PayloadType::KeyData
            };
            out.push(next.value());
            k.encode(&mut out)?;
        }
        Ok(out)
    }

    fn has_salt(t: KeyDataType) -> Option<bool> {
        match t {
            KeyDataType::Tgk | KeyDataType::Tek => Some(false),
            KeyDataType::TgkSalt | KeyDataType::TekSalt => Some(true),
            KeyDataType::Unknown(_) => None,
        }
    }
}

impl Codec for KeyData {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let t = self.key_type.value();
        let kv = match &self.kv {
            KeyValidity::Null => KvType::Null,
            KeyValidity::Spi(_) => KvType::Spi,
            KeyValidity::Interval(..) => KvType::Interval,
        };
        if t > 0x0f || Self::has_salt(self.key_type) != Some(self.salt.is_some()) {
            return Err(EncodeError("key data type (salt must match the type)"));
        }
        out.push((t << 4) | kv.value());
        put_len16(out, self.key.len(), "key data")?;
        out.extend_from_slice(&self.key);
        if let Some(salt) = &self.salt {
            put_len16(out, salt.len(), "key data salt")?;
            out.extend_from_slice(salt);
        }
        match &self.kv {
            KeyValidity::Null => {}
            KeyValidity::Spi(spi) => {
                put_len8(out, spi.len(), "key data SPI")?;
                out.extend_from_slice(spi);
            }
            KeyValidity::Interval(from, to) => {
                put_len8(out, from.len(), "key data valid from")?;
                out.extend_from_slice(from);
                put_len8(out, to.len(), "key data valid to")?;
                out.extend_from_slice(to);
            }
        }
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        let tkv = r.u8("type/KV")?;
        let key_type = KeyDataType::from(tkv >> 4);
        let has_salt = Self::has_salt(key_type)
            .ok_or_else(|| r.error_at(at, "type", DecodeErrorKind::UnknownKeyDataType(tkv >> 4)))?;
        let len = r.u16("key data length")?;
        let key = Zeroizing::new(r.take(usize::from(len), "key data")?.to_vec());
        let salt = if has_salt {
            let len = r.u16("salt length")?;
            Some(Zeroizing::new(r.take(usize::from(len), "salt")?.to_vec()))
        } else {
            None
        };
        let kv = match KvType::from(tkv & 0x0f) {
            KvType::Null => KeyValidity::Null,
            KvType::Spi => {
                let len = r.u8("SPI length")?;
                KeyValidity::Spi(r.take(usize::from(len), "SPI")?.to_vec())
            }
            KvType::Interval => {
                let len = r.u8("VF length")?;
                let from = r.take(usize::from(len), "VF")?.to_vec();
                let len = r.u8("VT length")?;
                KeyValidity::Interval(from, r.take(usize::from(len), "VT")?.to_vec())
            }
            KvType::Unknown(v) => {
                return Err(r.error_at(at, "KV", DecodeErrorKind::UnknownKeyValidity(v)));
            }
        };
        Ok(Self {
            key_type,
            key,
            salt,
            kv,
        })
    }
}

/// SIGN (RFC 3830 6.5): a 4-bit type, a 12-bit length and the signature.
/// It has no next-payload field and is always the last payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sign {
    /// Signature type (TS 33.180: ECCSI).
    pub sign_type: SignType,
    /// The signature (ECCSI: r || s || PVT, 129 octets).
    pub signature: Vec<u8>,
}

impl Codec for Sign {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let t = self.sign_type.value();
        let len = self.signature.len();
        if t > 0x0f || len > 0x0fff {
            return Err(EncodeError(
                "SIGN type (4 bits) or signature (12-bit length)",
            ));
        }
        let hdr = (u16::from(t) << 12) | len as u16;
        out.extend_from_slice(&hdr.to_be_bytes());
        out.extend_from_slice(&self.signature);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let hdr = r.u16("S type/signature length")?;
        let signature = r.take(usize::from(hdr & 0x0fff), "signature")?.to_vec();
        r.expect_empty("after SIGN (SIGN must be the last payload)")?;
        Ok(Self {
            sign_type: SignType::from((hdr >> 12) as u8),
            signature,
        })
    }
}

/// T: a time stamp (RFC 3830 6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamp {
    /// NTP-UTC, 64 bits (32 seconds since 1900 + 32 fraction).
    NtpUtc(u64),
    /// NTP, 64 bits.
    Ntp(u64),
    /// A counter, 32 bits.
    Counter(u32),
}

impl Timestamp {
    /// The time stamp type.
    pub fn ts_type(&self) -> TsType {
        match self {
            Self::NtpUtc(_) => TsType::NtpUtc,
            Self::Ntp(_) => TsType::Ntp,
            Self::Counter(_) => TsType::Counter,
        }
    }

    /// An NTP-UTC time stamp for `unix_secs` (fraction 0).
    pub fn ntp_utc_from_unix(unix_secs: u64) -> Self {
        Self::NtpUtc(crate::time::unix_to_ntp64(unix_secs))
    }

    /// Unix seconds of an NTP(-UTC) time stamp, taking the NTP era nearest
    /// to `now_unix`; `None` for a counter.
    pub fn to_unix(&self, now_unix: u64) -> Option<i64> {
        match self {
            Self::NtpUtc(v) | Self::Ntp(v) => Some(crate::time::ntp64_to_unix(*v, now_unix)),
            Self::Counter(_) => None,
        }
    }

    /// The 8 (or 4) octets of the value, as the KDF and IV use them.
    pub fn value_bytes(&self) -> Vec<u8> {
        match self {
            Self::NtpUtc(v) | Self::Ntp(v) => v.to_be_bytes().to_vec(),
            Self::Counter(v) => v.to_be_bytes().to_vec(),
        }
    }
}

impl Codec for Timestamp {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.ts_type().value());
        out.extend_from_slice(&self.value_bytes());
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        match TsType::from(r.u8("TS type")?) {
            TsType::NtpUtc => Ok(Self::NtpUtc(r.u64("TS value")?)),
            TsType::Ntp => Ok(Self::Ntp(r.u64("TS value")?)),
            TsType::Counter => Ok(Self::Counter(r.u32("TS value")?)),
            TsType::Unknown(t) => {
                Err(r.error_at(at, "TS type", DecodeErrorKind::UnknownTimestampType(t)))
            }
        }
    }
}

/// RAND (RFC 3830 6.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rand(pub Vec<u8>);

impl Codec for Rand {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        put_len8(out, self.0.len(), "RAND")?;
        out.extend_from_slice(&self.0);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let len = r.u8("RAND length")?;
        Ok(Self(r.take(usize::from(len), "RAND")?.to_vec()))
    }
}

/// IDR: an identity with its role (RFC 6043 6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idr {
    /// ID role.
    pub role: IdRole,
    /// ID type.
    pub id_type: IdType,
    /// ID data (a URI's octets, or a 32-octet UID).
    pub id: Vec<u8>,
}

impl Codec for Idr {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.role.value());
        out.push(self.id_type.value());
        put_len16(out, self.id.len(), "IDR ID")?;
        out.extend_from_slice(&self.id);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let role = IdRole::from(r.u8("ID role")?);
        let id_type = IdType::from(r.u8("ID type")?);
        let len = r.u16("ID length")?;
        Ok(Self {
            role,
            id_type,
            id: r.take(usize::from(len), "ID data")?.to_vec(),
        })
    }
}

/// ID: an identity without role (RFC 3830 6.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id {
    /// ID type.
    pub id_type: IdType,
    /// ID data.
    pub id: Vec<u8>,
}

impl Codec for Id {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.id_type.value());
        put_len16(out, self.id.len(), "ID data")?;
        out.extend_from_slice(&self.id);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id_type = IdType::from(r.u8("ID type")?);
        let len = r.u16("ID length")?;
        Ok(Self {
            id_type,
            id: r.take(usize::from(len), "ID data")?.to_vec(),
        })
    }
}

/// SP: a security policy (RFC 3830 6.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sp {
    /// Policy number.
    pub policy_no: u8,
    /// Security protocol.
    pub prot_type: ProtType,
    /// The parameters, in order.
    pub params: Vec<SpParam>,
}

/// One SP parameter: type, value (RFC 3830 6.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpParam {
    /// Parameter type (for SRTP see [`crate::wire::SrtpParam`]).
    pub param_type: u8,
    /// The value.
    pub value: Vec<u8>,
}

impl Sp {
    /// The default group profile of TS 33.180 Table E.2-1 (policy 0,
    /// SRTP): AES-GCM, 16-octet key, RCCm3, 12-octet salt, SRTP PRF AES-CM,
    /// no key refresh, ROC in every packet, 4-octet SRTP tag (the ROC),
    /// no SRTCP tag, 16-octet AEAD tag.
    pub fn default_group_profile() -> Self {
        let p = |t: u8, v: u8| SpParam {
            param_type: t,
            value: vec![v],
        };
        Self {
            policy_no: 0,
            prot_type: ProtType::Srtp,
            params: vec![
                p(0, 6),
                p(1, 16),
                p(2, 4),
                p(4, 12),
                p(5, 0),
                p(6, 0),
                p(13, 1),
                p(18, 4),
                p(19, 0),
                p(20, 16),
            ],
        }
    }

    /// The first value of parameter `param_type`, if it is one octet.
    pub fn param_u8(&self, param_type: u8) -> Option<u8> {
        self.params
            .iter()
            .find(|p| p.param_type == param_type)
            .and_then(|p| (p.value.len() == 1).then(|| p.value[0]))
    }
}

impl Codec for Sp {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.policy_no);
        out.push(self.prot_type.value());
        let mut body = Vec::new();
        for p in &self.params {
            body.push(p.param_type);
            put_len8(&mut body, p.value.len(), "SP parameter")?;
            body.extend_from_slice(&p.value);
        }
        put_len16(out, body.len(), "SP parameters")?;
        out.extend_from_slice(&body);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let policy_no = r.u8("policy no")?;
        let prot_type = ProtType::from(r.u8("prot type")?);
        let len = r.u16("policy param length")?;
        let mut body = r.sub(usize::from(len), "policy params")?;
        let mut params = Vec::new();
        while body.any_left() {
            let param_type = body.u8("param type")?;
            let plen = body.u8("param length")?;
            params.push(SpParam {
                param_type,
                value: body.take(usize::from(plen), "param value")?.to_vec(),
            });
        }
        Ok(Self {
            policy_no,
            prot_type,
            params,
        })
    }
}

/// ERR (RFC 3830 6.12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrPayload {
    /// Error number.
    pub code: ErrorCode,
    /// The reserved field, as sent.
    pub reserved: u16,
}

impl Codec for ErrPayload {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.code.0);
        out.extend_from_slice(&self.reserved.to_be_bytes());
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            code: ErrorCode(r.u8("error no")?),
            reserved: r.u16("reserved")?,
        })
    }
}

/// SAKKE (RFC 6509 4.2): encapsulated data R || H.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sakke {
    /// SAKKE parameter set.
    pub params: SakkeParams,
    /// Identifier scheme.
    pub id_scheme: IdScheme,
    /// SAKKE data (SED, 273 octets for parameter set 1).
    pub data: Vec<u8>,
}

impl Codec for Sakke {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.params.value());
        out.push(self.id_scheme.value());
        put_len16(out, self.data.len(), "SAKKE data")?;
        out.extend_from_slice(&self.data);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let params = SakkeParams::from(r.u8("SAKKE params")?);
        let id_scheme = IdScheme::from(r.u8("ID scheme")?);
        let len = r.u16("SAKKE data length")?;
        Ok(Self {
            params,
            id_scheme,
            data: r.take(usize::from(len), "SAKKE data")?.to_vec(),
        })
    }
}

/// General extension (RFC 3830 6.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneralExt {
    /// Extension type.
    pub ext_type: GeneralExtType,
    /// The data, parsed for the types TS 33.180 defines.
    pub body: ExtBody,
}

/// The data of a general extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtBody {
    /// Data of a type this crate does not parse.
    Raw(Vec<u8>),
    /// Type 6 (TS 33.180 E.5): a whole SAKKE payload encapsulating the key
    /// to the initiator itself.
    SakkeToSelf {
        /// The inner payload's next-payload octet ("set to zero and
        /// ignored"), as sent.
        inner_next: u8,
        /// The inner SAKKE payload.
        sakke: Sakke,
    },
    /// Type 7 (TS 33.180 E.6): key parameters in an MCData protected
    /// payload (8.5.4).
    KeyParameters(ProtectedPayload),
    /// Type 7 with the Key Parameters information element in clear (a type
    /// 6 IE: IEI, 2-octet length, Table E.6.1-1 content), as legacy
    /// interworking functions send it: authenticated only by the message's
    /// signature. Accepted, never sent.
    KeyParametersClear {
        /// The Key Parameters IEI, as sent.
        iei: u8,
        /// The key parameters.
        params: KeyParameters,
    },
}

/// The Key Parameters IE in clear: IEI (1) | length (2) | content.
fn read_clear_key_parameters(r: &mut Reader<'_>) -> Result<ExtBody, DecodeError> {
    let iei = r.u8("key parameters IEI")?;
    let len = r.u16("key parameters IE length")?;
    let mut content = r.sub(usize::from(len), "key parameters IE")?;
    let params = KeyParameters::read(&mut content)?;
    content.expect_empty("end of key parameters")?;
    r.expect_empty("end of key parameters IE")?;
    Ok(ExtBody::KeyParametersClear { iei, params })
}

impl Codec for GeneralExt {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.ext_type.value());
        let mut data = Vec::new();
        match &self.body {
            ExtBody::Raw(d) => data.extend_from_slice(d),
            ExtBody::SakkeToSelf { inner_next, sakke } => {
                data.push(*inner_next);
                sakke.encode(&mut data)?;
            }
            ExtBody::KeyParameters(p) => p.encode(&mut data)?,
            ExtBody::KeyParametersClear { iei, params } => {
                let mut content = Vec::new();
                params.encode(&mut content)?;
                data.push(*iei);
                put_len16(&mut data, content.len(), "key parameters IE")?;
                data.extend_from_slice(&content);
            }
        }
        put_len16(out, data.len(), "general extension data")?;
        out.extend_from_slice(&data);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ext_type = GeneralExtType::from(r.u8("type")?);
        let len = r.u16("length")?;
        let mut data = r.sub(usize::from(len), "data")?;
        let body = match ext_type {
            GeneralExtType::SakkeToSelf => {
                data.set_payload("SAKKE-to-self");
                let inner_next = data.u8("inner next payload")?;
                let sakke = Sakke::read(&mut data)?;
                data.expect_empty("end of SAKKE-to-self")?;
                ExtBody::SakkeToSelf { inner_next, sakke }
            }
            GeneralExtType::KeyParameters => {
                data.set_payload("key parameters");
                // The protected form (TS 33.180 E.6.1), else the Key
                // Parameters IE in clear; if neither reads, the protected
                // form's error (the one this release specifies).
                let mut protected = data.clone();
                let read_protected = ProtectedPayload::read(&mut protected).and_then(|p| {
                    protected
                        .expect_empty("end of protected payload")
                        .map(|()| p)
                });
                match read_protected {
                    Ok(p) => ExtBody::KeyParameters(p),
                    Err(e) => read_clear_key_parameters(&mut data).map_err(|_| e)?,
                }
            }
            _ => ExtBody::Raw(data.rest().to_vec()),
        };
        Ok(Self { ext_type, body })
    }
}
