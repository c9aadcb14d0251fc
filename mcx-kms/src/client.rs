//! The client side of Annex D: what an MC service client (or a GMS) sends
//! to the KMS, and how it reads and validates the answers.
//!
//! ```text
//! init_request ──▶ Kms::handle ──▶ parse_init_response ──▶ CommunityPublic
//! key_prov_request ──▶ Kms::handle ──▶ parse_key_prov_response ──▶ UserKeys
//! ```
//!
//! Nothing here trusts the KMS's answer blindly: the KMS URI and user URI
//! must be the expected ones, each `UserID` must be the UID of the user for
//! its key period, the SSK must validate against the PVT and KPAK
//! (RFC 6507 5.1.2) and the RSK against Z (RFC 6508 6.1.2).

use mcx_ibc::eccsi::{Kpak, Pvt, Ssk};
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_ibc::sakke::{KmsPublicKey, Rsk};
use mcx_ibc::uid::{NTP_UNIX_OFFSET, UID_LEN, key_period_no};

use crate::http::HttpRequest;
use crate::secext::SecurityKeys;
use crate::xml::{KmsCertificate, KmsKeySet, KmsMessage, KmsRequest, KmsResponse};
use crate::{INIT_PATH, KEY_PROV_PATH, KmsError, XmlError};

/// The `ClientReqUrl` for `path` at `kms_uri`: `kms_uri` itself if it is an
/// absolute URL, otherwise `https://<kms_uri>`.
fn client_req_url(kms_uri: &str, path: &str) -> String {
    if kms_uri.contains("://") {
        format!("{}{path}", kms_uri.trim_end_matches('/'))
    } else {
        format!("https://{kms_uri}{path}")
    }
}

fn request(path: String, kms_uri: &str, user_uri: &str, token: &str, now_unix: u64) -> HttpRequest {
    let base = path.split('?').next().unwrap_or(&path);
    let body = KmsRequest {
        user_uri: user_uri.to_owned(),
        kms_uri: kms_uri.to_owned(),
        time: now_unix,
        client_id: None,
        device_id: None,
        client_req_url: client_req_url(kms_uri, base),
    }
    .to_xml();
    HttpRequest {
        method: "POST".to_owned(),
        path,
        headers: vec![
            ("Authorization".to_owned(), format!("Bearer {token}")),
            ("Content-Type".to_owned(), "application/xml".to_owned()),
            ("Accept".to_owned(), "application/xml".to_owned()),
        ],
        body,
    }
}

/// A KMS Initialize request (D.2): `POST /keymanagement/identity/v1/init`
/// with a `KmsRequest` body for `user_uri`, authenticated by `token`.
pub fn init_request(kms_uri: &str, user_uri: &str, token: &str, now_unix: u64) -> HttpRequest {
    request(INIT_PATH.to_owned(), kms_uri, user_uri, token, now_unix)
}

/// A KMS KeyProvision request (D.2) for the key period containing
/// `now_unix`: `POST /keymanagement/identity/v1/keyprov`.
pub fn key_prov_request(kms_uri: &str, user_uri: &str, token: &str, now_unix: u64) -> HttpRequest {
    request(KEY_PROV_PATH.to_owned(), kms_uri, user_uri, token, now_unix)
}

/// A KMS KeyProvision request for the key period containing `at_unix`, in
/// the D.2.4 form `.../keyprov/<user URI, percent-encoded>/<64-bit NTP
/// timestamp in hex>`. The KMS issues only the current and the next key
/// period, so this is how a client fetches the next period's keys before
/// the period changes. Times past the end of NTP era 0 (2036-02-07) are
/// clamped to it.
pub fn key_prov_request_at(
    kms_uri: &str,
    user_uri: &str,
    token: &str,
    now_unix: u64,
    at_unix: u64,
) -> HttpRequest {
    let ntp = at_unix
        .saturating_add(NTP_UNIX_OFFSET)
        .min(u64::from(u32::MAX))
        << 32;
    let path = format!("{KEY_PROV_PATH}/{}/{ntp:016X}", percent_encode(user_uri));
    request(path, kms_uri, user_uri, token, now_unix)
}

/// A KMS KeyProvision request for the current key period and the next one
/// (`?next=1`, an extension of this KMS): the response carries two key sets.
pub fn key_prov_request_with_next(
    kms_uri: &str,
    user_uri: &str,
    token: &str,
    now_unix: u64,
) -> HttpRequest {
    request(
        format!("{KEY_PROV_PATH}?next=1"),
        kms_uri,
        user_uri,
        token,
        now_unix,
    )
}

/// Everything but RFC 3986 unreserved characters.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

fn expect_eq(what: &'static str, expected: &str, actual: &str) -> Result<(), KmsError> {
    if expected == actual {
        Ok(())
    } else {
        Err(KmsError::Mismatch {
            what,
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

/// Reads a KmsInit response and returns the community it describes.
///
/// # Errors
/// [`KmsError::Xml`] for a malformed document or one that is not a
/// KmsInit; [`KmsError::Mismatch`] if the response or certificate is from
/// another KMS than `expected_kms_uri`; the errors of
/// [`community_from_certificate`].
pub fn parse_init_response(
    body: &[u8],
    expected_kms_uri: &str,
) -> Result<CommunityPublic, KmsError> {
    parse_init_response_with(body, expected_kms_uri, None)
}

/// The response a client with `security` keys (TS 33.180 D.1) accepts:
/// a `SignedKmsResponse` verified with the InK and decrypted with the TrK
/// ([`KmsResponse::from_signed_xml`]); without keys, a plain response.
fn read_response(body: &[u8], security: Option<&SecurityKeys>) -> Result<KmsResponse, KmsError> {
    Ok(match security {
        Some(keys) => KmsResponse::from_signed_xml(body, keys)?,
        None => KmsResponse::from_xml(body)?,
    })
}

/// [`parse_init_response`] for a client that may hold a TrK/InK: with
/// `security`, only a `SignedKmsResponse` that verifies under the InK is
/// accepted (an unsigned one is [`crate::secext::SecExtError::NotSigned`]).
///
/// # Errors
/// Those of [`parse_init_response`] and of
/// [`KmsResponse::from_signed_xml`].
pub fn parse_init_response_with(
    body: &[u8],
    expected_kms_uri: &str,
    security: Option<&SecurityKeys>,
) -> Result<CommunityPublic, KmsError> {
    let response = read_response(body, security)?;
    expect_eq("KmsResponse KmsUri", expected_kms_uri, &response.kms_uri)?;
    let KmsMessage::Init(cert) = response.message else {
        return Err(XmlError::Missing {
            parent: "KmsMessage",
            element: "KmsInit",
        }
        .into());
    };
    community_from_certificate(&cert, expected_kms_uri)
}

/// Checks a root KMS certificate and decodes its public keys.
///
/// # Errors
/// [`KmsError::Mismatch`] for another KMS; [`KmsError::Revoked`];
/// [`KmsError::Unsupported`] for a Role other than `Root`, a UserIdFormat
/// other than 2 or a ParameterSet other than 1; [`KmsError::Crypto`] if
/// PubEncKey or PubAuthKey is not a valid point (or the key period length
/// is zero).
pub fn community_from_certificate(
    cert: &KmsCertificate,
    expected_kms_uri: &str,
) -> Result<CommunityPublic, KmsError> {
    expect_eq("KmsCertificate KmsUri", expected_kms_uri, &cert.kms_uri)?;
    if cert.role.as_deref().is_some_and(|r| r != "Root") {
        return Err(KmsError::Unsupported(
            "a KmsInit certificate whose Role is not Root",
        ));
    }
    if cert.revoked == Some(true) {
        return Err(KmsError::Revoked("the KMS certificate"));
    }
    if cert.user_id_format != "2" {
        return Err(KmsError::Unsupported("a UserIdFormat other than 2"));
    }
    if cert.parameter_set.is_some_and(|p| p != 1) {
        return Err(KmsError::Unsupported("a SAKKE ParameterSet other than 1"));
    }
    if cert.user_key_period == 0 {
        return Err(XmlError::InvalidValue {
            element: "UserKeyPeriod",
            reason: "is zero",
        }
        .into());
    }
    Ok(CommunityPublic {
        kms_uri: cert.kms_uri.clone(),
        key_period_len: cert.user_key_period,
        key_period_offset: cert.user_key_offset,
        kpak: Kpak::from_bytes(&cert.pub_auth_key)?,
        sakke_public: KmsPublicKey::from_bytes(&cert.pub_enc_key)?,
    })
}

/// Parses and validates a KmsKeyProv response and returns the key set for
/// the key period containing `now_unix`.
///
/// Every key set in the response is validated (see
/// [`user_keys_from_key_set`]); the response's `KmsUri` and `UserUri` must
/// be `community.kms_uri` and `user_uri`.
///
/// # Errors
/// The errors of [`parse_key_prov_response_all`], and
/// [`KmsError::NoKeySetForPeriod`] if no key set is for the current period.
pub fn parse_key_prov_response(
    body: &[u8],
    community: &CommunityPublic,
    user_uri: &str,
    now_unix: u64,
) -> Result<UserKeys, KmsError> {
    parse_key_prov_response_with(body, community, user_uri, now_unix, None)
}

/// [`parse_key_prov_response`] for a client that may hold a TrK/InK: with
/// `security`, the response must be signed with the InK and every secret
/// key encrypted under the TrK (TS 33.180 D.1).
///
/// # Errors
/// Those of [`parse_key_prov_response`] and of
/// [`KmsResponse::from_signed_xml`].
pub fn parse_key_prov_response_with(
    body: &[u8],
    community: &CommunityPublic,
    user_uri: &str,
    now_unix: u64,
    security: Option<&SecurityKeys>,
) -> Result<UserKeys, KmsError> {
    let period = key_period_no(
        now_unix,
        community.key_period_len,
        community.key_period_offset,
    )?;
    parse_key_prov_response_all_with(body, community, user_uri, security)?
        .into_iter()
        .find(|k| k.key_period_no == period)
        .ok_or(KmsError::NoKeySetForPeriod(period))
}

/// Parses and validates every key set of a KmsKeyProv response (e.g. the
/// current and the next period).
///
/// # Errors
/// [`KmsError::Xml`] for a malformed document or one that is not a
/// KmsKeyProv; [`KmsError::Mismatch`] for another KMS or user; the errors
/// of [`user_keys_from_key_set`].
pub fn parse_key_prov_response_all(
    body: &[u8],
    community: &CommunityPublic,
    user_uri: &str,
) -> Result<Vec<UserKeys>, KmsError> {
    parse_key_prov_response_all_with(body, community, user_uri, None)
}

/// [`parse_key_prov_response_all`] with the security extension (see
/// [`parse_key_prov_response_with`]).
///
/// # Errors
/// Those of [`parse_key_prov_response_all`] and of
/// [`KmsResponse::from_signed_xml`].
pub fn parse_key_prov_response_all_with(
    body: &[u8],
    community: &CommunityPublic,
    user_uri: &str,
    security: Option<&SecurityKeys>,
) -> Result<Vec<UserKeys>, KmsError> {
    let response = read_response(body, security)?;
    expect_eq("KmsResponse KmsUri", &community.kms_uri, &response.kms_uri)?;
    expect_eq("KmsResponse UserUri", user_uri, &response.user_uri)?;
    let KmsMessage::KeyProv(sets) = response.message else {
        return Err(XmlError::Missing {
            parent: "KmsMessage",
            element: "KmsKeyProv",
        }
        .into());
    };
    sets.iter()
        .map(|set| user_keys_from_key_set(set, community, user_uri))
        .collect()
}

/// Validates one key set and turns it into [`UserKeys`].
///
/// Checks that `KmsUri` and `UserUri` are the expected ones, that the set
/// is not revoked, that `UserID` is the UID of `user_uri` for `KeyPeriodNo`
/// under `community` (TS 33.180 F.2.1), that the SSK validates against the
/// PVT and KPAK (RFC 6507 5.1.2) and that the RSK validates against Z
/// (RFC 6508 6.1.2).
///
/// # Errors
/// [`KmsError::Mismatch`], [`KmsError::Revoked`], [`KmsError::Xml`] for a
/// `UserID` that is not 32 octets of hex, [`KmsError::Crypto`] for a key
/// that does not decode, [`KmsError::KeyValidation`] for keys that do not
/// validate.
pub fn user_keys_from_key_set(
    set: &KmsKeySet,
    community: &CommunityPublic,
    user_uri: &str,
) -> Result<UserKeys, KmsError> {
    expect_eq("KmsKeySet KmsUri", &community.kms_uri, &set.kms_uri)?;
    expect_eq("KmsKeySet UserUri", user_uri, &set.user_uri)?;
    if set.revoked == Some(true) {
        return Err(KmsError::Revoked("the key set"));
    }
    let uid = community.uid(user_uri, set.key_period_no)?;
    let mut user_id = [0u8; UID_LEN];
    if hex::decode_to_slice(set.user_id.as_bytes(), &mut user_id).is_err() {
        return Err(XmlError::InvalidValue {
            element: "UserID",
            reason: "is not a 32-octet UID in hex",
        }
        .into());
    }
    if user_id != uid {
        return Err(KmsError::Mismatch {
            what: "KmsKeySet UserID (UID of UserUri for KeyPeriodNo)",
            expected: hex::encode(uid),
            actual: set.user_id.clone(),
        });
    }
    let mut keys = UserKeys::new(
        user_uri,
        set.key_period_no,
        uid,
        Ssk::from_bytes(&set.user_signing_key_ssk)?,
        Pvt::from_bytes(&set.user_pub_token_pvt)?,
        Rsk::from_bytes(&set.user_decrypt_key)?,
    );
    // Validated once, here: the keys carry the signer and receiver this
    // makes to the role that uses them (UserKeys::into_validated).
    keys.validate(community).map_err(|e| match e {
        mcx_ibc::Error::KeyValidationFailed("SAKKE RSK") => {
            KmsError::KeyValidation("UserDecryptKey")
        }
        mcx_ibc::Error::KeyValidationFailed(_) => {
            KmsError::KeyValidation("UserSigningKeySSK with UserPubTokenPVT")
        }
        other => KmsError::Crypto(other),
    })?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shape() {
        let r = init_request("kms.example.org", "sip:a@example.org", "tok", 0);
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, INIT_PATH);
        assert_eq!(r.bearer_token(), Some("tok"));
        let at = key_prov_request_at(
            "kms.example.org",
            "sip:a@example.org",
            "t",
            0,
            1_393_144_754,
        );
        assert_eq!(
            at.path,
            "/keymanagement/identity/v1/keyprov/sip%3Aa%40example.org/D6B4323200000000"
        );
        assert_eq!(
            client_req_url("http://127.0.0.1:8080/", INIT_PATH),
            "http://127.0.0.1:8080/keymanagement/identity/v1/init"
        );
    }
}
