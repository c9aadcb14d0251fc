//! Human- and machine-readable views of any MIKEY message, for
//! `mcx mikey decode`: an annotated tree (text or JSON) and, given keys, the
//! results of verifying and decrypting it.
//!
//! ```
//! use mcx_mikey::describe::{describe, parse_input, Keys};
//! let bytes = parse_input("mikey ARoFAQahKuoBAQ==").unwrap();
//! let d = describe(&bytes, &Keys::default());
//! assert!(d.error.is_some()); // truncated: the description says where
//! println!("{}", d.to_text());
//! ```

use core::fmt::Write as _;

use base64::Engine as _;
use mcx_ibc::kms::CommunityPublic;
use mcx_ibc::sakke::ReceiverKey;
use serde::Serialize;

use crate::error::DecodeError;
use crate::keyparams::{KeyParameters, ProtectedPayload};
use crate::message::{
    CsIdMap, ExtBody, KeyValidity, Layout, Message, Payload, Sakke, Sp, Timestamp,
};
use crate::sakke_msg::{decapsulate, key_period_of, verify_signature};
use crate::wire::{
    DataType, GeneralExtType, IdRole, IdType, KeyDataType, ProtType, Purpose, SrtpParam,
};
use crate::{Gmk, KeyId, hex, kdf, tgmk};

/// Keys that let [`describe`] verify and decrypt.
#[derive(Debug, Default, Clone, Copy)]
pub struct Keys<'a> {
    /// The KMS community: KMS URI and key periods (to compute a signer's
    /// UID from its URI) and KPAK (to verify).
    pub kms: Option<&'a CommunityPublic>,
    /// The receiver's SAKKE key (to decapsulate a MIKEY-SAKKE message).
    pub receiver: Option<&'a ReceiverKey>,
    /// The receiver's MC service ID (to recover a GMK-ID from a GUK-ID).
    pub receiver_uri: Option<&'a str>,
    /// Known GMKs by GMK-ID (to open a wrapped TGMK).
    pub gmks: &'a [(KeyId, &'a Gmk)],
}

/// One node of the annotated tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// What the node is (a payload or field name).
    pub name: String,
    /// Its value, annotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Octet offset in the message, for payloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// Sub-fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Self>,
}

impl Node {
    fn new(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            value: Some(value.into()),
            offset: None,
            children: Vec::new(),
        }
    }

    fn group(name: &str, children: Vec<Self>) -> Self {
        Self {
            name: name.to_owned(),
            value: None,
            offset: None,
            children,
        }
    }
}

/// The description of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Description {
    /// Octets given.
    pub length: usize,
    /// Why decoding failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_err")]
    pub error: Option<DecodeError>,
    /// The payloads, HDR first.
    pub payloads: Vec<Node>,
    /// Verification and decryption results (with keys).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Node>,
}

fn ser_err<S: serde::Serializer>(e: &Option<DecodeError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl Description {
    /// The annotated tree as indented text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "MIKEY message, {} octets", self.length);
        for n in &self.payloads {
            write_node(&mut out, n, 0);
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "error: {e}");
        }
        if !self.checks.is_empty() {
            out.push_str("checks:\n");
            for n in &self.checks {
                write_node(&mut out, n, 1);
            }
        }
        out
    }

    /// The annotated tree as JSON:
    /// `{"length", "error"?, "payloads": [node], "checks"?: [node]}`, a node
    /// being `{"name", "value"?, "offset"?, "children"?}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn write_node(out: &mut String, n: &Node, depth: usize) {
    let indent = "  ".repeat(depth);
    let at = n.offset.map(|o| format!("[{o:04}] ")).unwrap_or_default();
    match &n.value {
        Some(v) => {
            let _ = writeln!(out, "{indent}{at}{}: {v}", n.name);
        }
        None => {
            let _ = writeln!(out, "{indent}{at}{}", n.name);
        }
    }
    for c in &n.children {
        write_node(out, c, depth + 1);
    }
}

/// Errors of [`parse_input`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MIKEY message in base64 or hex: {0}")]
pub struct InputError(&'static str);

/// Reads a MIKEY message given as text: base64, hex, the SDP key-mgmt
/// form `mikey <base64>` (with or without `a=key-mgmt:`), with white space
/// anywhere.
///
/// # Errors
/// [`InputError`] if it is neither base64 nor hex.
pub fn parse_input(text: &str) -> Result<Vec<u8>, InputError> {
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("a=key-mgmt:") {
        t = rest.trim_start();
    }
    if let Some(rest) = t.strip_prefix("mikey") {
        t = rest.trim_start();
    }
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(InputError("empty"));
    }
    let is_hex = compact.len() % 2 == 0 && compact.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex {
        let h = compact.trim_start_matches("0x");
        let mut out = Vec::with_capacity(h.len() / 2);
        for i in (0..h.len()).step_by(2) {
            out.push(u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| InputError("bad hex"))?);
        }
        return Ok(out);
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map_err(|_| InputError("bad base64"))
}

/// Describes `bytes`: decodes every payload into an annotated tree and,
/// with `keys`, verifies the signature, decapsulates SAKKE, opens the key
/// parameters and a wrapped TGMK, and derives the SRTP keys. Never fails:
/// a decoding error is part of the description.
///
/// # ⚠️ Warning: with keys, the description contains key material
pub fn describe(bytes: &[u8], keys: &Keys<'_>) -> Description {
    match Message::decode_with_layout(bytes) {
        // The tree up to the fault, and the fault.
        Err(e) => Description {
            length: bytes.len(),
            error: Some(e),
            payloads: {
                let p = Message::decode_partial(bytes);
                p.hdr.map_or_else(Vec::new, |hdr| {
                    let msg = Message {
                        hdr,
                        payloads: p.payloads,
                    };
                    tree(&msg, &p.layout)
                })
            },
            checks: Vec::new(),
        },
        Ok((msg, layout)) => Description {
            length: bytes.len(),
            error: None,
            payloads: tree(&msg, &layout),
            checks: checks(bytes, &msg, &layout, keys),
        },
    }
}

fn text_or_hex(b: &[u8]) -> String {
    match core::str::from_utf8(b) {
        Ok(s) if !s.is_empty() && s.chars().all(|c| !c.is_control()) => format!("\"{s}\""),
        _ => hex(b),
    }
}

fn tree(msg: &Message, layout: &Layout) -> Vec<Node> {
    let mut out = Vec::with_capacity(msg.payloads.len() + 1);
    let h = &msg.hdr;
    let mut hdr = Node::group(
        "HDR (common header)",
        vec![
            Node::new("version", "1"),
            Node::new("data type", h.data_type.to_string()),
            Node::new("V", u8::from(h.v).to_string()),
            Node::new("PRF func", h.prf.to_string()),
            Node::new(
                "CSB ID",
                format!("{:08x} ({})", h.csb_id, KeyId(h.csb_id).purpose()),
            ),
            Node::new("CS ID map type", h.map.map_type().to_string()),
        ],
    );
    hdr.offset = Some(0);
    match &h.map {
        CsIdMap::Empty { cs_count } => hdr.children.push(Node::new("#CS", cs_count.to_string())),
        CsIdMap::SrtpId(v) => {
            hdr.children.push(Node::new("#CS", v.len().to_string()));
            for (i, e) in v.iter().enumerate() {
                hdr.children.push(Node::group(
                    &format!("CS {}", i + 1),
                    vec![
                        Node::new("policy no", e.policy_no.to_string()),
                        Node::new("SSRC", format!("{:08x}", e.ssrc)),
                        Node::new("ROC", e.roc.to_string()),
                    ],
                ));
            }
        }
        CsIdMap::GenericId(v) => {
            hdr.children.push(Node::new("#CS", v.len().to_string()));
            for (i, e) in v.iter().enumerate() {
                hdr.children.push(Node::group(
                    &format!("CS {}", i + 1),
                    vec![
                        Node::new("CS ID", e.cs_id.to_string()),
                        Node::new("prot type", e.prot_type.to_string()),
                        Node::new("S", u8::from(e.s).to_string()),
                        Node::new("policies", format!("{:?}", e.policies)),
                        Node::new("session data", hex(&e.session_data)),
                        Node::new("SPI", hex(&e.spi)),
                    ],
                ));
            }
        }
    }
    out.push(hdr);
    for (p, off) in msg.payloads.iter().zip(&layout.payload_offsets) {
        let mut n = payload_node(p);
        n.offset = Some(*off);
        out.push(n);
    }
    out
}

fn sakke_children(s: &Sakke) -> Vec<Node> {
    vec![
        Node::new("SAKKE params", s.params.to_string()),
        Node::new("ID scheme", s.id_scheme.to_string()),
        Node::new("SAKKE data length", s.data.len().to_string()),
        Node::new("SAKKE data (R || H)", hex(&s.data)),
    ]
}

fn sp_children(sp: &Sp) -> Vec<Node> {
    let mut v = vec![
        Node::new("policy no", sp.policy_no.to_string()),
        Node::new("prot type", sp.prot_type.to_string()),
    ];
    for p in &sp.params {
        let name = if sp.prot_type == ProtType::Srtp {
            SrtpParam::from(p.param_type).to_string()
        } else {
            p.param_type.to_string()
        };
        let val = match (SrtpParam::from(p.param_type), p.value.as_slice()) {
            (SrtpParam::EncrAlg, [x]) => format!(
                "{x} ({})",
                match x {
                    0 => "NULL",
                    1 => "AES-CM",
                    2 => "AES-F8",
                    6 => "AES-GCM",
                    _ => "?",
                }
            ),
            (SrtpParam::AuthAlg, [x]) => format!(
                "{x} ({})",
                match x {
                    0 => "NULL",
                    1 => "HMAC-SHA-1",
                    2 => "RCCm1",
                    3 => "RCCm2",
                    4 => "RCCm3",
                    _ => "?",
                }
            ),
            (_, [x]) => x.to_string(),
            (_, v) => hex(v),
        };
        v.push(Node::new(&format!("type {name}"), val));
    }
    v
}

fn payload_node(p: &Payload) -> Node {
    match p {
        Payload::T(t) => {
            let v = match t {
                Timestamp::NtpUtc(x) | Timestamp::Ntp(x) => {
                    let unix = crate::time::ntp64_to_unix(*x, 0x7000_0000);
                    format!("{x:016x} (Unix {unix})")
                }
                Timestamp::Counter(c) => c.to_string(),
            };
            Node::group(
                "T (time stamp)",
                vec![
                    Node::new("TS type", t.ts_type().to_string()),
                    Node::new("TS value", v),
                ],
            )
        }
        Payload::Rand(r) => Node::group(
            "RAND",
            vec![
                Node::new("length", r.0.len().to_string()),
                Node::new("RAND", hex(&r.0)),
            ],
        ),
        Payload::Idr(i) => {
            let id = if i.id_type == IdType::Uri
                && i.id.len() == 32
                && core::str::from_utf8(&i.id).is_err()
            {
                format!("{} (UID)", hex(&i.id))
            } else {
                text_or_hex(&i.id)
            };
            Node::group(
                "IDR (identity)",
                vec![
                    Node::new("ID role", i.role.to_string()),
                    Node::new("ID type", i.id_type.to_string()),
                    Node::new("ID", id),
                ],
            )
        }
        Payload::Id(i) => Node::group(
            "ID (identity)",
            vec![
                Node::new("ID type", i.id_type.to_string()),
                Node::new("ID", text_or_hex(&i.id)),
            ],
        ),
        Payload::Sp(sp) => Node::group("SP (security policy)", sp_children(sp)),
        Payload::Kemac(k) => Node::group(
            "KEMAC",
            vec![
                Node::new("encr alg", k.encr_alg.to_string()),
                Node::new("encr data", hex(&k.encr_data)),
                Node::new("MAC alg", k.mac_alg.to_string()),
                Node::new("MAC", hex(&k.mac)),
            ],
        ),
        Payload::Sakke(s) => Node::group("SAKKE", sakke_children(s)),
        Payload::GeneralExt(g) => {
            let body = match &g.body {
                ExtBody::Raw(d) => vec![Node::new("data", hex(d))],
                ExtBody::SakkeToSelf { inner_next, sakke } => {
                    let mut v = vec![Node::new("inner next payload", inner_next.to_string())];
                    v.extend(sakke_children(sakke));
                    v
                }
                ExtBody::KeyParameters(pp) => protected_children(pp),
                ExtBody::KeyParametersClear { iei, params } => vec![
                    Node::new("key parameters IEI", format!("{iei:#04x} (in clear)")),
                    key_params_node(params, "key parameters (in clear)"),
                ],
            };
            let mut v = vec![Node::new("type", g.ext_type.to_string())];
            v.extend(body);
            Node::group("General Extension", v)
        }
        Payload::Err(e) => Node::group("ERR", vec![Node::new("error no", e.code.to_string())]),
        Payload::Sign(s) => Node::group(
            "SIGN",
            vec![
                Node::new("S type", s.sign_type.to_string()),
                Node::new("signature length", s.signature.len().to_string()),
                Node::new("signature", hex(&s.signature)),
            ],
        ),
    }
}

fn protected_children(pp: &ProtectedPayload) -> Vec<Node> {
    vec![Node::group(
        "MCData protected payload",
        vec![
            Node::new("message type", format!("{:#04x}", pp.message_type)),
            Node::new("date and time", pp.date_time.to_string()),
            Node::new("payload ID", pp.payload_id.to_string()),
            Node::new("payload sequence number", pp.payload_seq.to_string()),
            Node::new(
                "payload algorithm",
                format!(
                    "{}{}",
                    pp.algorithm,
                    if pp.algorithm == 1 {
                        " (AEAD_AES_128_GCM)"
                    } else {
                        ""
                    }
                ),
            ),
            Node::new("IV", hex(&pp.iv)),
            Node::new("DPPK-ID", format!("{:08x}", pp.dppk_id)),
            Node::new("payload IEI", pp.payload_iei.to_string()),
            Node::new("encrypted key parameters || tag", hex(&pp.ciphertext)),
        ],
    )]
}

fn key_params_node(kp: &KeyParameters, title: &str) -> Node {
    let mut v = vec![
        Node::new("key type", Purpose::from(kp.key_type).to_string()),
        Node::new("status", format!("{:#010x}", kp.status)),
        Node::new("activation time", kp.activation_time.to_string()),
        Node::new("expiry time", kp.expiry_time.to_string()),
        Node::new("text", text_or_hex(&kp.text)),
    ];
    if let Some(ids) = &kp.group_ids {
        v.push(Node::group(
            "MC group IDs",
            ids.iter()
                .map(|g| Node::new(&format!("IEI {}", g.iei), text_or_hex(&g.id)))
                .collect(),
        ));
    }
    Node::group(title, v)
}

/// Signer UID: IDRuidi, or the UID of IDRi's URI under the KMS.
fn signer_uid(msg: &Message, kms: &CommunityPublic) -> Option<Vec<u8>> {
    if let Some(i) = msg.idr(IdRole::InitiatorUid) {
        return Some(i.id.clone());
    }
    let uri = core::str::from_utf8(&msg.idr(IdRole::Initiator)?.id).ok()?;
    let t = msg.timestamp()?.to_unix(0x7000_0000)?;
    let period = key_period_of(kms, t).ok()?;
    kms.uid(uri, period).ok().map(|u| u.to_vec())
}

fn checks(bytes: &[u8], msg: &Message, layout: &Layout, keys: &Keys<'_>) -> Vec<Node> {
    let mut out = Vec::new();
    if let Some(kms) = keys.kms {
        let v = match (msg.sign(), signer_uid(msg, kms)) {
            (None, _) => "not signed".to_owned(),
            (Some(_), None) => "cannot tell the signer (no IDRi/IDRuidi or T)".to_owned(),
            (Some(_), Some(uid)) => match verify_signature(bytes, msg, layout, &kms.kpak, &uid) {
                Ok(()) => format!("valid (signer UID {})", hex(&uid)),
                Err(e) => format!("INVALID: {e} (signer UID {})", hex(&uid)),
            },
        };
        out.push(Node::new("signature", v));
    }
    if let Some(rx) = keys.receiver {
        if msg.sakke().is_some() {
            match decapsulate(msg, rx) {
                Err(e) => out.push(Node::new("SAKKE", format!("FAILED: {e}"))),
                Ok(k) => {
                    let mut n = Node::new("SAKKE", "decapsulated");
                    n.children.push(Node::new("key (SSV)", hex(k.as_bytes())));
                    let csb = msg.hdr.csb_id;
                    if let Some(ext) = msg.general_ext(GeneralExtType::KeyParameters) {
                        n.children.push(open_params(ext, k.as_bytes(), csb));
                    }
                    if msg.hdr.data_type == DataType::Sakke && KeyId(csb).purpose() == Purpose::Gmk
                    {
                        if let (Some(uri), Ok(gmk), Some(rand)) =
                            (keys.receiver_uri, Gmk::from_bytes(k.as_bytes()), msg.rand())
                        {
                            let gmk_id = kdf::guk_id(&gmk, KeyId(csb), uri);
                            let s = kdf::gmk_srtp_keys(&gmk, gmk_id, KeyId(csb), &rand.0);
                            n.children
                                .push(Node::new("GMK-ID (from GUK-ID)", gmk_id.to_string()));
                            n.children.push(srtp_node(&s));
                        }
                    }
                    out.push(n);
                }
            }
        }
    }
    if msg.kemac().is_some() {
        if let Some(ExtBody::KeyParameters(pp)) = msg
            .general_ext(GeneralExtType::KeyParameters)
            .map(|g| &g.body)
        {
            if let Some((_, gmk)) = keys.gmks.iter().find(|(id, _)| id.0 == pp.dppk_id) {
                out.push(open_tgmk(bytes, msg, gmk));
            } else if !keys.gmks.is_empty() {
                out.push(Node::new(
                    "KEMAC",
                    format!("no GMK with GMK-ID {:08x}", pp.dppk_id),
                ));
            }
        }
    }
    out
}

fn open_params(ext: &crate::message::GeneralExt, dppk: &[u8], dppk_id: u32) -> Node {
    match crate::gmk::open_key_parameters(ext, dppk, dppk_id) {
        Ok(kp) => key_params_node(&kp, "key parameters (decrypted)"),
        Err(e) => Node::new("key parameters", format!("FAILED: {e}")),
    }
}

fn srtp_node(s: &crate::SrtpMasterKeys) -> Node {
    Node::group(
        "SRTP (derived)",
        vec![
            Node::new("master key", hex(s.master_key())),
            Node::new("master salt", hex(s.master_salt())),
            Node::new("MKI", hex(s.mki())),
        ],
    )
}

fn open_tgmk(bytes: &[u8], msg: &Message, gmk: &Gmk) -> Node {
    match tgmk::open_kemac(bytes, gmk) {
        Err(e) => Node::new("KEMAC", format!("FAILED: {e}")),
        Ok(list) => {
            let mut n = Node::new("KEMAC", "MAC valid, decrypted");
            for kd in &list {
                let kv = match &kd.kv {
                    KeyValidity::Null => "none".to_owned(),
                    KeyValidity::Spi(s) => format!("SPI {}", hex(s)),
                    KeyValidity::Interval(a, b) => format!("{}..{}", hex(a), hex(b)),
                };
                n.children.push(Node::group(
                    "key data",
                    vec![
                        Node::new("type", kd.key_type.to_string()),
                        Node::new("key", hex(&kd.key)),
                        Node::new("validity", kv),
                    ],
                ));
                if kd.key_type == KeyDataType::Tgk {
                    if let (Ok(t), Some(rand)) = (crate::Tgmk::from_bytes(&kd.key), msg.rand()) {
                        n.children.push(srtp_node(&tgmk::srtp_keys(
                            &t,
                            KeyId(msg.hdr.csb_id),
                            &rand.0,
                        )));
                    }
                }
            }
            if let Some(ext) = msg.general_ext(GeneralExtType::KeyParameters) {
                if let ExtBody::KeyParameters(pp) = &ext.body {
                    n.children
                        .push(open_params(ext, gmk.as_bytes(), pp.dppk_id));
                }
            }
            n.children.push(Node::new(
                "note",
                "a full unwrap also checks signature, membership and freshness: see tgmk::TgmkReceiver",
            ));
            n
        }
    }
}
