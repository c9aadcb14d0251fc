//! The KMS security extension (TS 33.180 D.1): a transport key (TrK) and
//! an integrity key (InK) shared out of band between the KMS and one
//! client. D.1: the extension "allows messages to be signed using the
//! shared Integrity key (InK) or Transport Key (TrK) and key material to be
//! encrypted using a shared Transport Key (TrK). The signature algorithm
//! used to sign a KMS Request message or a KMS Response message shall be
//! HMAC-SHA256 with a signature length of 256."
//!
//! What this crate does with it (choices where the text we could read
//! leaves one are explained in `docs/kms.md`, "Security extension"):
//!
//! - **Signed responses.** A `SignedKmsResponse` holds the `KmsResponse`
//!   (with an `Id`) and an XML-DSig `Signature` whose `SignedInfo` names
//!   C14N 1.0 ([`C14N`]), HMAC-SHA256 ([`HMAC_SHA256`], 256-bit output,
//!   keyed with the InK) and one `Reference` to the `KmsResponse` with a
//!   SHA-256 digest ([`SHA256`]).
//! - **Encrypted keys.** The secret keys of each `KmsKeySet` (RSK, SSK)
//!   are `xsi:type="EncKeyContentType"`: an XML-Encryption
//!   `EncryptionMethod` ([`AES256_GCM`]) and `CipherData/CipherValue`
//!   (base64 of IV (12) || ciphertext || tag (16)) under the TrK.
//! - **Verification.** The client checks the HMAC over the `SignedInfo`
//!   octets as received, the digest over the `KmsResponse` octets as
//!   received, and then parses exactly those octets: nothing unsigned is
//!   ever read. A signer that does not emit those elements already in
//!   canonical form is refused (fails closed).

use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::at_rest::{gcm_open, gcm_seal};

/// XML-DSig namespace.
pub const DSIG_NAMESPACE: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML-Encryption namespace.
pub const XENC_NAMESPACE: &str = "http://www.w3.org/2001/04/xmlenc#";
/// Canonical XML 1.0 (the `CanonicalizationMethod`).
pub const C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
/// HMAC-SHA256 (RFC 4051), the signature algorithm D.1 requires.
pub const HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";
/// SHA-256 (XML Encryption), the `Reference` digest.
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// AES-256-GCM (XML Encryption 1.1), the key encryption under the TrK.
pub const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
/// The `Id` of the signed `KmsResponse`, the `Reference` URI's target.
pub const SIGNED_RESPONSE_ID: &str = "kms-response";

/// Why a protected response was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SecExtError {
    /// The client has an InK but the response is a bare `KmsResponse`.
    #[error("the response is not signed (a SignedKmsResponse is required: the client has an InK)")]
    NotSigned,
    /// The `SignatureValue` is not the HMAC of `SignedInfo` under the InK.
    #[error("the signature does not verify under the InK")]
    BadSignature,
    /// The signed digest is not the digest of the `KmsResponse`.
    #[error("the KmsResponse is not the one the signature covers")]
    DigestMismatch,
    /// An algorithm other than the one this extension uses.
    #[error("<{0}> names an unsupported algorithm")]
    Algorithm(&'static str),
    /// The signature or encrypted key structure is not as expected.
    #[error("malformed security extension: {0}")]
    Malformed(&'static str),
    /// A secret key arrived in clear although the client has a TrK.
    #[error("<{0}> is not encrypted under the TrK (the client has a TrK)")]
    KeyNotEncrypted(&'static str),
    /// An encrypted key does not decrypt under the TrK.
    #[error("<{0}> does not decrypt under the TrK")]
    Decrypt(&'static str),
}

/// One client's TrK and InK (32 octets each), shared out of band.
///
/// # ⚠️ Warning: This value is key material
///
/// `Debug` prints no key octets; both keys are zeroized on drop.
#[derive(Clone)]
pub struct SecurityKeys {
    trk: Zeroizing<[u8; 32]>,
    ink: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SecurityKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecurityKeys(<redacted>)")
    }
}

impl SecurityKeys {
    /// Keys from their octets.
    pub fn new(trk: [u8; 32], ink: [u8; 32]) -> Self {
        Self {
            trk: Zeroizing::new(trk),
            ink: Zeroizing::new(ink),
        }
    }

    /// Keys from 64 hex digits each (a configuration file's form).
    ///
    /// # Errors
    /// Names the key that is not 64 hex digits.
    pub fn from_hex(trk: &str, ink: &str) -> Result<Self, &'static str> {
        let mut t = Zeroizing::new([0u8; 32]);
        let mut i = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(trk.trim(), t.as_mut()).map_err(|_| "trk is not 64 hex digits")?;
        hex::decode_to_slice(ink.trim(), i.as_mut()).map_err(|_| "ink is not 64 hex digits")?;
        Ok(Self { trk: t, ink: i })
    }

    /// Fresh random keys (the demo topology's users get these).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut keys = Self::new([0; 32], [0; 32]);
        rng.fill_bytes(keys.trk.as_mut());
        rng.fill_bytes(keys.ink.as_mut());
        keys
    }

    /// The TrK and InK as hex (for writing a configuration).
    pub fn to_hex(&self) -> (Zeroizing<String>, Zeroizing<String>) {
        (
            Zeroizing::new(hex::encode(self.trk.as_ref())),
            Zeroizing::new(hex::encode(self.ink.as_ref())),
        )
    }

    /// Encrypts a key under the TrK: base64 of IV || ciphertext || tag.
    pub(crate) fn encrypt_key(&self, plaintext: &[u8], rng: &mut impl CryptoRng) -> String {
        BASE64.encode(gcm_seal(&self.trk, &[], plaintext, rng))
    }

    /// Decrypts a `CipherValue` made by [`SecurityKeys::encrypt_key`].
    pub(crate) fn decrypt_key(
        &self,
        cipher_value: &str,
        element: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, SecExtError> {
        let data = decode_base64(cipher_value)
            .ok_or(SecExtError::Malformed("CipherValue is not base64"))?;
        gcm_open(&self.trk, &[], &data).ok_or(SecExtError::Decrypt(element))
    }

    fn hmac(&self, data: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(self.ink.as_ref()) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(data);
        mac
    }

    /// Wraps a `KmsResponse` element (its octets, `Id` =
    /// [`SIGNED_RESPONSE_ID`]) into a `SignedKmsResponse` document signed
    /// with the InK.
    pub(crate) fn sign_response(&self, response: &str) -> Vec<u8> {
        let digest = BASE64.encode(Sha256::digest(response.as_bytes()));
        let signed_info = format!(
            "<SignedInfo xmlns=\"{DSIG_NAMESPACE}\">\
             <CanonicalizationMethod Algorithm=\"{C14N}\"></CanonicalizationMethod>\
             <SignatureMethod Algorithm=\"{HMAC_SHA256}\"></SignatureMethod>\
             <Reference URI=\"#{SIGNED_RESPONSE_ID}\">\
             <DigestMethod Algorithm=\"{SHA256}\"></DigestMethod>\
             <DigestValue>{digest}</DigestValue></Reference></SignedInfo>"
        );
        let value = BASE64.encode(self.hmac(signed_info.as_bytes()).finalize().into_bytes());
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <SignedKmsResponse xmlns=\"{ns}\">\n{response}\n\
             <Signature xmlns=\"{DSIG_NAMESPACE}\">{signed_info}\
             <SignatureValue>{value}</SignatureValue></Signature>\n\
             </SignedKmsResponse>\n",
            ns = crate::xml::NAMESPACE,
        )
        .into_bytes()
    }

    /// Checks `SignatureValue` = HMAC-SHA256(InK, `signed_info`), in
    /// constant time.
    pub(crate) fn verify_hmac(
        &self,
        signed_info: &[u8],
        signature_value: &str,
    ) -> Result<(), SecExtError> {
        let value = decode_base64(signature_value).ok_or(SecExtError::BadSignature)?;
        self.hmac(signed_info)
            .verify_slice(&value)
            .map_err(|_| SecExtError::BadSignature)
    }
}

/// Base64 with surrounding and embedded XML whitespace ignored.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64.decode(compact).ok()
}

/// The SHA-256 digest of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}
