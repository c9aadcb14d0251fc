//! The TS 33.180 Annex D documents: `KmsRequest` (D.2) and `KmsResponse`
//! (D.3) carrying `KmsInit` (a `KmsCertificate`) or `KmsKeyProv` (one or
//! more `KmsKeySet`s), in namespace [`NAMESPACE`].
//!
//! Encoding writes the elements in the schema's sequence order. Parsing is
//! strict: the root must be the expected element in [`NAMESPACE`], the
//! elements of that namespace must come in schema order, required elements
//! must be present and values must be valid (hex, integers, `xs:dateTime`,
//! booleans); errors name the element. Elements of other namespaces are
//! skipped, as D.1 reserves other namespaces for extensions. Documents over
//! [`MAX_DOCUMENT_LEN`] octets, DTDs and non-UTF-8 input are refused.
//!
//! Element names and their order follow the published base schema as
//! public implementations reproduce it (see `docs/kms.md` for sources and
//! for what could not be confirmed). Keys are `xs:hexBinary`: points as
//! `04 || x || y`, the SSK as 32 big-endian octets. The `UserID` is the
//! 32-octet UID in hex.
//!
//! The security extension ([`crate::secext`]): [`KmsResponse::to_signed_xml`]
//! writes a `SignedKmsResponse` whose secret keys are TrK-encrypted
//! `EncKeyContentType`s and whose `KmsResponse` is signed with the InK;
//! [`KmsResponse::from_signed_xml`] verifies, decrypts and parses it.
//! Signed requests are not implemented.

mod datetime;
mod dom;

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

pub use self::datetime::{format_date_time, parse_date_time};
use self::dom::{Element, sanitize};
use crate::error::XmlError;
use crate::secext::{
    self, AES256_GCM, C14N, DSIG_NAMESPACE, HMAC_SHA256, SIGNED_RESPONSE_ID, SecExtError,
    SecurityKeys, XENC_NAMESPACE,
};

/// The Annex D namespace.
pub const NAMESPACE: &str = "urn:3gpp:ns:mcsecKMSInterface:1.0";
/// The XML Schema instance namespace (for `xsi:type` on key elements).
pub const XSI_NAMESPACE: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The largest document accepted, in octets. A key provisioning response
/// with two key sets is under 4 KiB.
pub const MAX_DOCUMENT_LEN: usize = 64 * 1024;
/// The longest URI accepted in any URI element.
pub const MAX_URI_LEN: usize = 2048;

/// `Version` written on `KmsRequest` (the value Streamwide's client sends).
const REQUEST_VERSION: &str = "1.0.0";
/// `Version` written on `KmsResponse` (fixed in the schema).
const RESPONSE_VERSION: &str = "1.0.0";
/// `Version` written on `KmsInit` and `KmsKeyProv`.
const MESSAGE_VERSION: &str = "1.0.0";
/// `Version` written on `KmsCertificate` and `KmsKeySet` (fixed in the schema).
const CERT_VERSION: &str = "1.1.0";

/// A KMS request (TS 33.180 D.2, table D.2.2-1): who asks which KMS, when,
/// and for which resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsRequest {
    /// `UserUri`: the MC service ID URI of the user the request is for.
    pub user_uri: String,
    /// `KmsUri`: the KMS the request is sent to.
    pub kms_uri: String,
    /// `Time`: when the request was made (Unix seconds, `xs:dateTime` on
    /// the wire).
    pub time: u64,
    /// `ClientId` (optional).
    pub client_id: Option<String>,
    /// `DeviceId` (optional).
    pub device_id: Option<String>,
    /// `ClientReqUrl`: the URL the request was sent to.
    pub client_req_url: String,
}

/// A KMS response (TS 33.180 D.3, table D.3.1-1).
#[derive(Debug)]
pub struct KmsResponse {
    /// `KmsUri`: the KMS sending the response.
    pub kms_uri: String,
    /// `UserUri`: the user the response is for.
    pub user_uri: String,
    /// `Time`: when the KMS sent it (Unix seconds).
    pub time: u64,
    /// `KmsId` (optional).
    pub kms_id: Option<String>,
    /// `ClientReqUrl`: the request URL the response answers.
    pub client_req_url: String,
    /// `KmsMessage`: the payload.
    pub message: KmsMessage,
}

/// The `KmsMessage` choice this crate handles.
#[derive(Debug)]
pub enum KmsMessage {
    /// `KmsInit`: the KMS's root certificate.
    Init(Box<KmsCertificate>),
    /// `KmsKeyProv`: the user's key sets (possibly none).
    KeyProv(Vec<KmsKeySet>),
}

/// A KMS certificate (TS 33.180 D.3.2, table D.3.2.2-1): the community's
/// public parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsCertificate {
    /// The `Role` attribute (`Root` or `External`), if present.
    pub role: Option<String>,
    /// `KmsUri`.
    pub kms_uri: String,
    /// `CertUri` (optional).
    pub cert_uri: Option<String>,
    /// `Issuer` (optional).
    pub issuer: Option<String>,
    /// `ValidFrom` (optional, Unix seconds).
    pub valid_from: Option<u64>,
    /// `ValidTo` (optional, Unix seconds).
    pub valid_to: Option<u64>,
    /// `Revoked` (optional).
    pub revoked: Option<bool>,
    /// `UserIdFormat`: `2` for the TS 33.180 F.2.1 UID.
    pub user_id_format: String,
    /// `UserKeyPeriod` in seconds.
    pub user_key_period: u64,
    /// `UserKeyOffset` in seconds.
    pub user_key_offset: u64,
    /// `PubEncKey`: the SAKKE KMS public key Z, `04 || x || y`.
    pub pub_enc_key: Vec<u8>,
    /// `PubAuthKey`: the ECCSI KPAK, `04 || x || y`.
    pub pub_auth_key: Vec<u8>,
    /// `ParameterSet` (optional): the RFC 6509 SAKKE parameter set, 1.
    pub parameter_set: Option<u64>,
    /// `KmsDomainList/KmsDomain` (optional).
    pub kms_domains: Vec<String>,
}

/// One user's key set for one key period (TS 33.180 D.3.3, table
/// D.3.3.2-1).
///
/// Holds key material: the secret fields are zeroized on drop and `Debug`
/// does not print them.
pub struct KmsKeySet {
    /// `KmsUri`.
    pub kms_uri: String,
    /// `CertUri` (optional).
    pub cert_uri: Option<String>,
    /// `Issuer` (optional).
    pub issuer: Option<String>,
    /// `UserUri`.
    pub user_uri: String,
    /// `UserID`: the UID as the document writes it (hex).
    pub user_id: String,
    /// `ValidFrom` (optional, Unix seconds).
    pub valid_from: Option<u64>,
    /// `ValidTo` (optional, Unix seconds).
    pub valid_to: Option<u64>,
    /// `KeyPeriodNo`.
    pub key_period_no: u64,
    /// `Revoked` (optional).
    pub revoked: Option<bool>,
    /// `UserDecryptKey`: the SAKKE RSK, `04 || x || y`.
    ///
    /// # ⚠️ Warning: This value is key material
    pub user_decrypt_key: Zeroizing<Vec<u8>>,
    /// `UserSigningKeySSK`: the ECCSI SSK, 32 octets.
    ///
    /// # ⚠️ Warning: This value is key material
    pub user_signing_key_ssk: Zeroizing<Vec<u8>>,
    /// `UserPubTokenPVT`: the ECCSI PVT, `04 || x || y`.
    pub user_pub_token_pvt: Vec<u8>,
}

impl core::fmt::Debug for KmsKeySet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KmsKeySet")
            .field("kms_uri", &self.kms_uri)
            .field("user_uri", &self.user_uri)
            .field("user_id", &self.user_id)
            .field("key_period_no", &self.key_period_no)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Encrypts a secret key under the TrK into a base64 `CipherValue`.
type KeyEncryptor<'a> = &'a mut dyn FnMut(&[u8]) -> String;

/// A document under construction; indents two spaces per level. With an
/// encryptor, secret keys are written as `EncKeyContentType`.
struct Writer<'a> {
    out: String,
    depth: usize,
    encrypt: Option<KeyEncryptor<'a>>,
}

impl<'a> Writer<'a> {
    fn new() -> Self {
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
            depth: 0,
            encrypt: None,
        }
    }

    /// An element (no XML declaration) whose secret keys are encrypted.
    fn encrypting(encrypt: KeyEncryptor<'a>) -> Self {
        Self {
            out: String::new(),
            depth: 0,
            encrypt: Some(encrypt),
        }
    }

    /// A secret key element: `EncKeyContentType` under the TrK when
    /// encrypting, else plain hex.
    fn secret_key(&mut self, name: &str, bytes: &[u8]) {
        let Some(encrypt) = self.encrypt.as_mut() else {
            self.key(name, bytes);
            return;
        };
        let cipher_value = encrypt(bytes);
        self.open(name, &[("xsi:type", "EncKeyContentType")]);
        self.open("xenc:EncryptionMethod", &[("Algorithm", AES256_GCM)]);
        self.close("xenc:EncryptionMethod");
        self.open("xenc:CipherData", &[]);
        self.leaf("xenc:CipherValue", &cipher_value);
        self.close("xenc:CipherData");
        self.close(name);
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&quick_xml::escape::escape(*v));
            self.out.push('"');
        }
        self.out.push_str(">\n");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    fn leaf(&mut self, name: &str, value: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(&quick_xml::escape::escape(value));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    fn opt_leaf(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.leaf(name, value);
        }
    }

    fn opt_time(&mut self, name: &str, value: Option<u64>) {
        if let Some(t) = value {
            self.leaf(name, &format_date_time(t));
        }
    }

    fn opt_bool(&mut self, name: &str, value: Option<bool>) {
        if let Some(b) = value {
            self.leaf(name, if b { "true" } else { "false" });
        }
    }

    /// A key element: upper-case hex (the canonical `xs:hexBinary` form).
    fn key(&mut self, name: &str, bytes: &[u8]) {
        let hex = Zeroizing::new(hex::encode_upper(bytes));
        self.leaf(name, &hex);
    }

    fn finish(self) -> Vec<u8> {
        self.out.into_bytes()
    }
}

impl KmsRequest {
    /// Encodes the request as a `KmsRequest` document.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open(
            "KmsRequest",
            &[
                ("xmlns", NAMESPACE),
                ("xmlns:xsi", XSI_NAMESPACE),
                ("Version", REQUEST_VERSION),
            ],
        );
        w.leaf("UserUri", &self.user_uri);
        w.leaf("KmsUri", &self.kms_uri);
        w.leaf("Time", &format_date_time(self.time));
        w.opt_leaf("ClientId", self.client_id.as_deref());
        w.opt_leaf("DeviceId", self.device_id.as_deref());
        w.leaf("ClientReqUrl", &self.client_req_url);
        w.close("KmsRequest");
        w.finish()
    }

    /// Parses a `KmsRequest` document.
    ///
    /// # Errors
    /// An [`XmlError`] naming what was wrong.
    pub fn from_xml(doc: &[u8]) -> Result<Self, XmlError> {
        let root = parse_root(doc, "KmsRequest")?;
        let mut seq = Seq::new(&root, "KmsRequest")?;
        let request = Self {
            user_uri: uri(seq.required("UserUri")?, "UserUri")?,
            kms_uri: uri(seq.required("KmsUri")?, "KmsUri")?,
            time: date_time(seq.required("Time")?, "Time")?,
            client_id: seq
                .optional("ClientId")
                .map(|e| string(e, "ClientId"))
                .transpose()?,
            device_id: seq
                .optional("DeviceId")
                .map(|e| string(e, "DeviceId"))
                .transpose()?,
            client_req_url: uri(seq.required("ClientReqUrl")?, "ClientReqUrl")?,
        };
        seq.finish()?;
        Ok(request)
    }
}

impl KmsResponse {
    /// Encodes the response as a `KmsResponse` document.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w, None);
        w.finish()
    }

    /// Encodes the response with the security extension for the client
    /// holding `keys`: the secret keys of every `KmsKeySet` encrypted under
    /// the TrK (fresh IVs from `rng`) and the whole `KmsResponse` signed
    /// with the InK, in a `SignedKmsResponse` document.
    pub fn to_signed_xml(&self, keys: &SecurityKeys, rng: &mut impl CryptoRng) -> Vec<u8> {
        let mut encrypt = |plain: &[u8]| keys.encrypt_key(plain, rng);
        let mut w = Writer::encrypting(&mut encrypt);
        self.write(&mut w, Some(SIGNED_RESPONSE_ID));
        let response = w.out;
        keys.sign_response(response.trim_end())
    }

    fn write(&self, w: &mut Writer<'_>, id: Option<&str>) {
        let mut attrs = vec![("xmlns", NAMESPACE), ("xmlns:xsi", XSI_NAMESPACE)];
        if w.encrypt.is_some() {
            attrs.push(("xmlns:xenc", XENC_NAMESPACE));
        }
        if let Some(id) = id {
            attrs.push(("Id", id));
        }
        attrs.push(("Version", RESPONSE_VERSION));
        w.open("KmsResponse", &attrs);
        w.leaf("KmsUri", &self.kms_uri);
        w.leaf("UserUri", &self.user_uri);
        w.leaf("Time", &format_date_time(self.time));
        w.opt_leaf("KmsId", self.kms_id.as_deref());
        w.leaf("ClientReqUrl", &self.client_req_url);
        w.open("KmsMessage", &[]);
        match &self.message {
            KmsMessage::Init(cert) => {
                w.open("KmsInit", &[("Version", MESSAGE_VERSION)]);
                cert.write(w);
                w.close("KmsInit");
            }
            KmsMessage::KeyProv(sets) => {
                w.open("KmsKeyProv", &[("Version", MESSAGE_VERSION)]);
                for set in sets {
                    set.write(w);
                }
                w.close("KmsKeyProv");
            }
        }
        w.close("KmsMessage");
        w.close("KmsResponse");
    }

    /// Parses a `KmsResponse` document carrying a `KmsInit` or a
    /// `KmsKeyProv`.
    ///
    /// # Errors
    /// An [`XmlError`] naming what was wrong.
    pub fn from_xml(doc: &[u8]) -> Result<Self, XmlError> {
        Self::read(doc, None)
    }

    /// Parses a `SignedKmsResponse` made for the client holding `keys`
    /// (TS 33.180 D.1 security extension): the HMAC-SHA256 signature over
    /// `SignedInfo` must verify under the InK, the SHA-256 digest must be
    /// that of the `KmsResponse`'s octets, and every secret key must be
    /// `EncKeyContentType` and decrypt under the TrK. Only the octets the
    /// signature covers are parsed.
    ///
    /// # Errors
    /// [`XmlError::SecExt`] with [`SecExtError::NotSigned`] for a bare
    /// `KmsResponse`, [`SecExtError::BadSignature`],
    /// [`SecExtError::DigestMismatch`], [`SecExtError::Algorithm`],
    /// [`SecExtError::KeyNotEncrypted`] or [`SecExtError::Decrypt`]; other
    /// [`XmlError`]s for a malformed document.
    pub fn from_signed_xml(doc: &[u8], keys: &SecurityKeys) -> Result<Self, XmlError> {
        let response = verify_signed_response(doc, keys)?;
        Self::read(response.as_bytes(), Some(keys))
    }

    fn read(doc: &[u8], keys: Option<&SecurityKeys>) -> Result<Self, XmlError> {
        let root = parse_root(doc, "KmsResponse")?;
        let mut seq = Seq::new(&root, "KmsResponse")?;
        // KmsUri, UserUri (our order, the base schema's) or UserUri,
        // KmsUri (as another vendor's schema and responses have it).
        let [kms_uri, user_uri] = seq.any_order(["KmsUri", "UserUri"]);
        let kms_uri = uri(seq.need(kms_uri, "KmsUri")?, "KmsUri")?;
        let user_uri = uri(seq.need(user_uri, "UserUri")?, "UserUri")?;
        let time = date_time(seq.required("Time")?, "Time")?;
        let kms_id = seq
            .optional("KmsId")
            .map(|e| string(e, "KmsId"))
            .transpose()?;
        let client_req_url = uri(seq.required("ClientReqUrl")?, "ClientReqUrl")?;
        let message_el = seq.required("KmsMessage")?;
        seq.finish()?;

        let mut inner = Seq::new(message_el, "KmsMessage")?;
        let message = if let Some(init) = inner.optional("KmsInit") {
            let mut init_seq = Seq::new(init, "KmsInit")?;
            let cert = KmsCertificate::read(init_seq.required("KmsCertificate")?)?;
            init_seq.finish()?;
            KmsMessage::Init(Box::new(cert))
        } else if let Some(prov) = inner.optional("KmsKeyProv") {
            let mut prov_seq = Seq::new(prov, "KmsKeyProv")?;
            let sets = prov_seq
                .repeated("KmsKeySet")
                .into_iter()
                .map(|set| KmsKeySet::read(set, keys))
                .collect::<Result<Vec<_>, _>>()?;
            prov_seq.finish()?;
            KmsMessage::KeyProv(sets)
        } else {
            return Err(XmlError::Missing {
                parent: "KmsMessage",
                element: "KmsInit",
            });
        };
        inner.finish()?;
        Ok(Self {
            kms_uri,
            user_uri,
            time,
            kms_id,
            client_req_url,
            message,
        })
    }
}

impl KmsCertificate {
    fn write(&self, w: &mut Writer<'_>) {
        let mut attrs = vec![("Version", CERT_VERSION)];
        if let Some(role) = &self.role {
            attrs.push(("Role", role.as_str()));
        }
        w.open("KmsCertificate", &attrs);
        w.leaf("KmsUri", &self.kms_uri);
        w.opt_leaf("CertUri", self.cert_uri.as_deref());
        w.opt_leaf("Issuer", self.issuer.as_deref());
        w.opt_time("ValidFrom", self.valid_from);
        w.opt_time("ValidTo", self.valid_to);
        w.opt_bool("Revoked", self.revoked);
        w.leaf("UserIdFormat", &self.user_id_format);
        w.leaf("UserKeyPeriod", &self.user_key_period.to_string());
        w.leaf("UserKeyOffset", &self.user_key_offset.to_string());
        w.key("PubEncKey", &self.pub_enc_key);
        w.key("PubAuthKey", &self.pub_auth_key);
        if let Some(set) = self.parameter_set {
            w.leaf("ParameterSet", &set.to_string());
        }
        if !self.kms_domains.is_empty() {
            w.open("KmsDomainList", &[]);
            for domain in &self.kms_domains {
                w.leaf("KmsDomain", domain);
            }
            w.close("KmsDomainList");
        }
        w.close("KmsCertificate");
    }

    fn read(el: &Element) -> Result<Self, XmlError> {
        let mut seq = Seq::new(el, "KmsCertificate")?;
        // KmsUri, CertUri or CertUri, KmsUri: vendors disagree.
        let [kms_uri, cert_uri] = seq.any_order(["KmsUri", "CertUri"]);
        let cert = Self {
            role: el.attr(None, "Role").map(str::to_owned),
            kms_uri: uri(seq.need(kms_uri, "KmsUri")?, "KmsUri")?,
            cert_uri: cert_uri.map(|e| uri(e, "CertUri")).transpose()?,
            issuer: seq
                .optional("Issuer")
                .map(|e| string(e, "Issuer"))
                .transpose()?,
            valid_from: seq
                .optional("ValidFrom")
                .map(|e| date_time(e, "ValidFrom"))
                .transpose()?,
            valid_to: seq
                .optional("ValidTo")
                .map(|e| date_time(e, "ValidTo"))
                .transpose()?,
            revoked: seq
                .optional("Revoked")
                .map(|e| boolean(e, "Revoked"))
                .transpose()?,
            user_id_format: string(seq.required("UserIdFormat")?, "UserIdFormat")?,
            user_key_period: integer(seq.required("UserKeyPeriod")?, "UserKeyPeriod")?,
            user_key_offset: integer(seq.required("UserKeyOffset")?, "UserKeyOffset")?,
            pub_enc_key: hex_binary(seq.required("PubEncKey")?, "PubEncKey")?.to_vec(),
            pub_auth_key: hex_binary(seq.required("PubAuthKey")?, "PubAuthKey")?.to_vec(),
            parameter_set: seq
                .optional("ParameterSet")
                .map(|e| integer(e, "ParameterSet"))
                .transpose()?,
            kms_domains: match seq.optional("KmsDomainList") {
                Some(list) => {
                    let mut list_seq = Seq::new(list, "KmsDomainList")?;
                    let domains = list_seq
                        .repeated("KmsDomain")
                        .into_iter()
                        .map(|e| uri(e, "KmsDomain"))
                        .collect::<Result<Vec<_>, _>>()?;
                    list_seq.finish()?;
                    domains
                }
                None => Vec::new(),
            },
        };
        seq.finish()?;
        Ok(cert)
    }
}

impl KmsKeySet {
    fn write(&self, w: &mut Writer<'_>) {
        w.open("KmsKeySet", &[("Version", CERT_VERSION)]);
        w.leaf("KmsUri", &self.kms_uri);
        w.opt_leaf("CertUri", self.cert_uri.as_deref());
        w.opt_leaf("Issuer", self.issuer.as_deref());
        w.leaf("UserUri", &self.user_uri);
        w.leaf("UserID", &self.user_id);
        w.opt_time("ValidFrom", self.valid_from);
        w.opt_time("ValidTo", self.valid_to);
        w.leaf("KeyPeriodNo", &self.key_period_no.to_string());
        w.opt_bool("Revoked", self.revoked);
        w.secret_key("UserDecryptKey", &self.user_decrypt_key);
        w.secret_key("UserSigningKeySSK", &self.user_signing_key_ssk);
        w.key("UserPubTokenPVT", &self.user_pub_token_pvt);
        w.close("KmsKeySet");
    }

    fn read(el: &Element, keys: Option<&SecurityKeys>) -> Result<Self, XmlError> {
        let mut seq = Seq::new(el, "KmsKeySet")?;
        let [kms_uri, cert_uri] = seq.any_order(["KmsUri", "CertUri"]);
        let set = Self {
            kms_uri: uri(seq.need(kms_uri, "KmsUri")?, "KmsUri")?,
            cert_uri: cert_uri.map(|e| uri(e, "CertUri")).transpose()?,
            issuer: seq
                .optional("Issuer")
                .map(|e| string(e, "Issuer"))
                .transpose()?,
            user_uri: uri(seq.required("UserUri")?, "UserUri")?,
            user_id: string(seq.required("UserID")?, "UserID")?,
            valid_from: seq
                .optional("ValidFrom")
                .map(|e| date_time(e, "ValidFrom"))
                .transpose()?,
            valid_to: seq
                .optional("ValidTo")
                .map(|e| date_time(e, "ValidTo"))
                .transpose()?,
            key_period_no: integer(seq.required("KeyPeriodNo")?, "KeyPeriodNo")?,
            revoked: seq
                .optional("Revoked")
                .map(|e| boolean(e, "Revoked"))
                .transpose()?,
            user_decrypt_key: secret_key_content(
                seq.required("UserDecryptKey")?,
                "UserDecryptKey",
                keys,
            )?,
            user_signing_key_ssk: secret_key_content(
                seq.required("UserSigningKeySSK")?,
                "UserSigningKeySSK",
                keys,
            )?,
            user_pub_token_pvt: key_content(seq.required("UserPubTokenPVT")?, "UserPubTokenPVT")?
                .to_vec(),
        };
        seq.finish()?;
        Ok(set)
    }
}

// ---------------------------------------------------------------------------
// Parsing helpers
// ---------------------------------------------------------------------------

/// Checks size and encoding, parses, and checks the root element.
fn parse_root(doc: &[u8], expected: &'static str) -> Result<Element, XmlError> {
    if doc.len() > MAX_DOCUMENT_LEN {
        return Err(XmlError::TooLarge {
            limit: MAX_DOCUMENT_LEN,
            actual: doc.len(),
        });
    }
    let text = core::str::from_utf8(doc).map_err(|_| XmlError::NotUtf8)?;
    // A byte order mark is allowed before the declaration.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = dom::parse(text)?;
    if root.name != expected {
        return Err(XmlError::WrongRoot {
            expected,
            actual: sanitize(&root.name),
        });
    }
    if root.ns.as_deref() != Some(NAMESPACE) {
        return Err(XmlError::WrongNamespace(sanitize(&root.name)));
    }
    Ok(root)
}

/// The children of one element in [`NAMESPACE`], read in schema order.
struct Seq<'a> {
    parent: &'static str,
    items: Vec<&'a Element>,
    pos: usize,
}

impl<'a> Seq<'a> {
    fn new(el: &'a Element, parent: &'static str) -> Result<Self, XmlError> {
        if !el.text.chars().all(char::is_whitespace) {
            return Err(XmlError::InvalidValue {
                element: parent,
                reason: "text mixed with child elements",
            });
        }
        Ok(Self {
            parent,
            items: el
                .children
                .iter()
                .filter(|c| c.ns.as_deref() == Some(NAMESPACE))
                .collect(),
            pos: 0,
        })
    }

    fn optional(&mut self, name: &str) -> Option<&'a Element> {
        let item = self
            .items
            .get(self.pos)
            .copied()
            .filter(|e| e.name == name)?;
        self.pos += 1;
        Some(item)
    }

    fn required(&mut self, name: &'static str) -> Result<&'a Element, XmlError> {
        let found = self.optional(name);
        self.need(found, name)
    }

    /// `found`, or the error naming the missing `name`.
    fn need(
        &self,
        found: Option<&'a Element>,
        name: &'static str,
    ) -> Result<&'a Element, XmlError> {
        found.ok_or(XmlError::Missing {
            parent: self.parent,
            element: name,
        })
    }

    /// The next elements named in `names`, each at most once, in whatever
    /// order they come (where implementations disagree on the order).
    fn any_order<const N: usize>(&mut self, names: [&str; N]) -> [Option<&'a Element>; N] {
        let mut found = [None; N];
        while let Some(item) = self.items.get(self.pos) {
            let Some(i) = names.iter().position(|n| *n == item.name) else {
                break;
            };
            if found[i].is_some() {
                break; // twice: left for `finish` to refuse
            }
            found[i] = Some(*item);
            self.pos += 1;
        }
        found
    }

    fn repeated(&mut self, name: &str) -> Vec<&'a Element> {
        let mut out = Vec::new();
        while let Some(item) = self.optional(name) {
            out.push(item);
        }
        out
    }

    fn finish(self) -> Result<(), XmlError> {
        match self.items.get(self.pos) {
            Some(extra) => Err(XmlError::Unexpected {
                parent: self.parent,
                element: sanitize(&extra.name),
            }),
            None => Ok(()),
        }
    }
}

/// The whitespace-collapsed text of a leaf element.
fn leaf<'a>(el: &'a Element, name: &'static str) -> Result<&'a str, XmlError> {
    if !el.children.is_empty() {
        return Err(XmlError::InvalidValue {
            element: name,
            reason: "has child elements",
        });
    }
    Ok(el.text.trim())
}

fn string(el: &Element, name: &'static str) -> Result<String, XmlError> {
    let text = leaf(el, name)?;
    if text.is_empty() {
        return Err(XmlError::InvalidValue {
            element: name,
            reason: "is empty",
        });
    }
    if text.len() > MAX_URI_LEN {
        return Err(XmlError::InvalidValue {
            element: name,
            reason: "is too long",
        });
    }
    if text.chars().any(char::is_control) {
        return Err(XmlError::InvalidValue {
            element: name,
            reason: "contains control characters",
        });
    }
    Ok(text.to_owned())
}

fn uri(el: &Element, name: &'static str) -> Result<String, XmlError> {
    let text = string(el, name)?;
    if text.chars().any(char::is_whitespace) {
        return Err(XmlError::InvalidValue {
            element: name,
            reason: "contains whitespace",
        });
    }
    Ok(text)
}

fn integer(el: &Element, name: &'static str) -> Result<u64, XmlError> {
    let text = leaf(el, name)?;
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(XmlError::InvalidValue {
            element: name,
            reason: "is not a non-negative integer",
        });
    }
    digits.parse().map_err(|_| XmlError::InvalidValue {
        element: name,
        reason: "is out of range",
    })
}

fn boolean(el: &Element, name: &'static str) -> Result<bool, XmlError> {
    match leaf(el, name)? {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(XmlError::InvalidValue {
            element: name,
            reason: "is not a boolean",
        }),
    }
}

fn date_time(el: &Element, name: &'static str) -> Result<u64, XmlError> {
    parse_date_time(leaf(el, name)?).ok_or(XmlError::InvalidValue {
        element: name,
        reason: "is not an xs:dateTime at or after 1970",
    })
}

fn hex_binary(el: &Element, name: &'static str) -> Result<Zeroizing<Vec<u8>>, XmlError> {
    let text = leaf(el, name)?;
    if text.is_empty() {
        return Err(XmlError::InvalidValue {
            element: name,
            reason: "is empty",
        });
    }
    let mut bytes = Zeroizing::new(vec![0u8; text.len() / 2]);
    if text.len() % 2 != 0 || hex::decode_to_slice(text, &mut bytes).is_err() {
        bytes.zeroize();
        return Err(XmlError::InvalidValue {
            element: name,
            reason: "is not hexBinary",
        });
    }
    Ok(bytes)
}

/// The local part of a key element's `xsi:type`, if any.
fn key_type(el: &Element) -> Option<&str> {
    el.attr(Some(XSI_NAMESPACE), "type")
        .map(|ty| ty.rsplit(':').next().unwrap_or(ty))
}

/// A public key element: plain `KeyContentType` hex. `EncKeyContentType`
/// is refused (only secret keys are encrypted).
fn key_content(el: &Element, name: &'static str) -> Result<Zeroizing<Vec<u8>>, XmlError> {
    match key_type(el) {
        None | Some("KeyContentType") => hex_binary(el, name),
        Some("EncKeyContentType") => Err(XmlError::InvalidValue {
            element: name,
            reason: "is TrK-encrypted (EncKeyContentType) and no TrK is configured",
        }),
        Some(_) => Err(XmlError::InvalidValue {
            element: name,
            reason: "is neither KeyContentType nor EncKeyContentType",
        }),
    }
}

/// A secret key element. Without `keys`: plain hex as [`key_content`].
/// With `keys` (the security extension): it must be `EncKeyContentType`
/// (AES-256-GCM under the TrK) and decrypt.
fn secret_key_content(
    el: &Element,
    name: &'static str,
    keys: Option<&SecurityKeys>,
) -> Result<Zeroizing<Vec<u8>>, XmlError> {
    let Some(keys) = keys else {
        return key_content(el, name);
    };
    if key_type(el) != Some("EncKeyContentType") {
        return Err(SecExtError::KeyNotEncrypted(name).into());
    }
    let xenc: Vec<&Element> = el
        .children
        .iter()
        .filter(|c| c.ns.as_deref() == Some(XENC_NAMESPACE))
        .collect();
    let (Some(method), Some(data), None) = (xenc.first(), xenc.get(1), xenc.get(2)) else {
        return Err(
            SecExtError::Malformed("EncKeyContentType needs EncryptionMethod, CipherData").into(),
        );
    };
    if method.name != "EncryptionMethod" || data.name != "CipherData" {
        return Err(
            SecExtError::Malformed("EncKeyContentType needs EncryptionMethod, CipherData").into(),
        );
    }
    if method.attr(None, "Algorithm") != Some(AES256_GCM) {
        return Err(SecExtError::Algorithm("EncryptionMethod").into());
    }
    let value = match data.children.as_slice() {
        [v] if v.ns.as_deref() == Some(XENC_NAMESPACE) && v.name == "CipherValue" => v,
        _ => return Err(SecExtError::Malformed("CipherData needs one CipherValue").into()),
    };
    Ok(keys.decrypt_key(&value.text, name)?)
}

/// Checks a `SignedKmsResponse` (see [`KmsResponse::from_signed_xml`]) and
/// returns the signed `KmsResponse` element's octets.
fn verify_signed_response<'d>(doc: &'d [u8], keys: &SecurityKeys) -> Result<&'d str, XmlError> {
    let root = match parse_root(doc, "SignedKmsResponse") {
        Err(XmlError::WrongRoot { actual, .. }) if actual == "KmsResponse" => {
            return Err(SecExtError::NotSigned.into());
        }
        other => other?,
    };
    let malformed = |what| XmlError::from(SecExtError::Malformed(what));
    let (Some(response), Some(signature), None) = (
        root.children.first(),
        root.children.get(1),
        root.children.get(2),
    ) else {
        return Err(malformed("SignedKmsResponse needs KmsResponse, Signature"));
    };
    if response.ns.as_deref() != Some(NAMESPACE)
        || response.name != "KmsResponse"
        || signature.ns.as_deref() != Some(DSIG_NAMESPACE)
        || signature.name != "Signature"
    {
        return Err(malformed("SignedKmsResponse needs KmsResponse, Signature"));
    }
    let id = response
        .attr(None, "Id")
        .ok_or_else(|| malformed("the KmsResponse has no Id"))?;
    let signature_value = match signature.children.as_slice() {
        [info, value, ..]
            if info.name == "SignedInfo"
                && value.name == "SignatureValue"
                && info.ns.as_deref() == Some(DSIG_NAMESPACE)
                && value.ns.as_deref() == Some(DSIG_NAMESPACE) =>
        {
            value.text.as_str()
        }
        _ => return Err(malformed("Signature needs SignedInfo, SignatureValue")),
    };
    // parse_root checked UTF-8.
    let text = core::str::from_utf8(doc).map_err(|_| XmlError::NotUtf8)?;
    let signed_info = element_octets(text, "SignedInfo")?;
    let response_octets = element_octets(text, "KmsResponse")?;
    // The signature first: nothing below is read unless the InK holder
    // made it.
    keys.verify_hmac(signed_info.as_bytes(), signature_value)?;
    // Only the octets just verified are read.
    let info = dom::parse(signed_info)?;
    if info.ns.as_deref() != Some(DSIG_NAMESPACE) || info.name != "SignedInfo" {
        return Err(malformed("SignedInfo is not in the XML-DSig namespace"));
    }
    let child = |name: &'static str| {
        info.children
            .iter()
            .find(|c| c.name == name && c.ns.as_deref() == Some(DSIG_NAMESPACE))
            .ok_or_else(|| malformed("SignedInfo lacks a required element"))
    };
    if child("CanonicalizationMethod")?.attr(None, "Algorithm") != Some(C14N) {
        return Err(SecExtError::Algorithm("CanonicalizationMethod").into());
    }
    let method = child("SignatureMethod")?;
    if method.attr(None, "Algorithm") != Some(HMAC_SHA256) {
        return Err(SecExtError::Algorithm("SignatureMethod").into());
    }
    // D.1: a signature length of 256 bits; a truncated HMAC is refused.
    if let Some(len) = method
        .children
        .iter()
        .find(|c| c.name == "HMACOutputLength")
    {
        if len.text.trim() != "256" {
            return Err(SecExtError::Algorithm("HMACOutputLength").into());
        }
    }
    let references: Vec<&Element> = info
        .children
        .iter()
        .filter(|c| c.name == "Reference")
        .collect();
    let [reference] = references.as_slice() else {
        return Err(malformed("SignedInfo needs exactly one Reference"));
    };
    if reference.attr(None, "URI") != Some(&format!("#{id}")) {
        return Err(malformed("the Reference does not point at the KmsResponse"));
    }
    if reference.children.iter().any(|c| c.name == "Transforms") {
        return Err(SecExtError::Algorithm("Transforms").into());
    }
    let digest_method = reference
        .children
        .iter()
        .find(|c| c.name == "DigestMethod")
        .ok_or_else(|| malformed("the Reference lacks DigestMethod"))?;
    if digest_method.attr(None, "Algorithm") != Some(secext::SHA256) {
        return Err(SecExtError::Algorithm("DigestMethod").into());
    }
    let digest_value = reference
        .children
        .iter()
        .find(|c| c.name == "DigestValue")
        .and_then(|c| secext::decode_base64(&c.text))
        .ok_or_else(|| malformed("the Reference lacks a base64 DigestValue"))?;
    if digest_value != secext::sha256(response_octets.as_bytes()) {
        return Err(SecExtError::DigestMismatch.into());
    }
    Ok(response_octets)
}

/// The octets of the one element `name` in `text`, from `<name` to
/// `</name>` (unprefixed, as [`KmsResponse::to_signed_xml`] writes them).
fn element_octets<'t>(text: &'t str, name: &'static str) -> Result<&'t str, XmlError> {
    let start = text.find(&format!("<{name}"));
    let end_tag = format!("</{name}>");
    let end = text.rfind(&end_tag).map(|e| e + end_tag.len());
    match (start, end) {
        (Some(start), Some(end)) if start < end => text
            .get(start..end)
            .ok_or_else(|| SecExtError::Malformed("element boundaries").into()),
        _ => Err(SecExtError::Malformed("an unprefixed signed element is missing").into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request() -> KmsRequest {
        KmsRequest {
            user_uri: "sip:alice@example.org".into(),
            kms_uri: "kms.example.org".into(),
            time: 1_700_000_000,
            client_id: Some("client & <1>".into()),
            device_id: None,
            client_req_url: "https://kms.example.org/keymanagement/identity/v1/init".into(),
        }
    }

    #[test]
    fn request_round_trip() {
        let r = request();
        let xml = r.to_xml();
        assert_eq!(KmsRequest::from_xml(&xml).unwrap(), r);
    }

    #[test]
    fn request_errors_name_the_element() {
        let doc = |body: &str| {
            format!(r#"<KmsRequest xmlns="{NAMESPACE}" Version="1.0.0">{body}</KmsRequest>"#)
        };
        let missing = doc("<UserUri>sip:a@b</UserUri><Time>2020-01-01T00:00:00Z</Time>");
        assert_eq!(
            KmsRequest::from_xml(missing.as_bytes()).unwrap_err(),
            XmlError::Missing {
                parent: "KmsRequest",
                element: "KmsUri"
            }
        );
        let bad_time = doc(
            "<UserUri>sip:a@b</UserUri><KmsUri>k</KmsUri><Time>yesterday</Time>\
             <ClientReqUrl>u</ClientReqUrl>",
        );
        assert!(matches!(
            KmsRequest::from_xml(bad_time.as_bytes()).unwrap_err(),
            XmlError::InvalidValue {
                element: "Time",
                ..
            }
        ));
        let extra = doc(
            "<UserUri>sip:a@b</UserUri><KmsUri>k</KmsUri><Time>2020-01-01T00:00:00Z</Time>\
             <ClientReqUrl>u</ClientReqUrl><Bogus/>",
        );
        assert_eq!(
            KmsRequest::from_xml(extra.as_bytes()).unwrap_err(),
            XmlError::Unexpected {
                parent: "KmsRequest",
                element: "Bogus".into()
            }
        );
        // Extensions in another namespace are skipped.
        let ext = doc(
            "<UserUri>sip:a@b</UserUri><x:Ext xmlns:x=\"urn:example\">1</x:Ext><KmsUri>k</KmsUri>\
             <Time>2020-01-01T00:00:00Z</Time><ClientReqUrl>u</ClientReqUrl>",
        );
        assert!(KmsRequest::from_xml(ext.as_bytes()).is_ok());
        let no_ns = "<KmsRequest><UserUri>a</UserUri></KmsRequest>";
        assert_eq!(
            KmsRequest::from_xml(no_ns.as_bytes()).unwrap_err(),
            XmlError::WrongNamespace("KmsRequest".into())
        );
        assert!(matches!(
            KmsRequest::from_xml(&vec![b' '; MAX_DOCUMENT_LEN + 1]).unwrap_err(),
            XmlError::TooLarge { .. }
        ));
    }

    #[test]
    fn encrypted_key_content_is_refused() {
        let el = dom::parse(&format!(
            r#"<K xmlns:xsi="{XSI_NAMESPACE}" xsi:type="EncKeyContentType">00</K>"#
        ))
        .unwrap();
        assert!(matches!(
            key_content(&el, "UserDecryptKey"),
            Err(XmlError::InvalidValue {
                element: "UserDecryptKey",
                ..
            })
        ));
        let el = dom::parse(&format!(
            r#"<K xmlns:xsi="{XSI_NAMESPACE}" xsi:type="mk:KeyContentType">0a0B</K>"#
        ))
        .unwrap();
        assert_eq!(key_content(&el, "K").unwrap().as_slice(), [0x0a, 0x0b]);
    }
}
