//! The JSON files `mcx` reads and writes. All octet strings are lowercase
//! hex on output (any case on input); integers are JSON numbers.
//!
//! - Community (`mcx kms init`): the public values below plus the secrets
//!   `ksak` (32 octets) and `z` (128 octets).
//! - Community public values (`mcx kms public`): `kms_uri`, `key_period`,
//!   `key_period_offset` (seconds), `kpak` (65 octets), `z_public`
//!   (257 octets).
//! - User keys (`mcx kms issue`): `user_uri`, the community public values,
//!   `key_period_no`, `uid` (32 octets), `ssk` (32), `pvt` (65), `rsk` (257).
//!
//! Every file holds the community public values under the same names, so
//! any of them serves where only those are needed (`--community`). Unknown
//! fields are ignored.

use mcx_ibc::eccsi::{Kpak, Ksak, Pvt, SigningKey, Ssk};
use mcx_ibc::kms::{Community, CommunityPublic, UserKeys};
use mcx_ibc::sakke::{KmsPublicKey, MasterSecret, ReceiverKey, Rsk};
use mcx_ibc::uid::{UID_LEN, mikey_sakke_uid};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::input;

/// Reading a JSON key file and remembering its name for messages.
/// A JSON integer, or the same digits as a string ("16777215"), as some
/// tools write large integers.
fn u64_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative integer, as a number or a string of digits")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            let t = v.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::invalid_value(serde::de::Unexpected::Str(v), &self));
            }
            t.parse()
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
    d.deserialize_any(V)
}

/// A key file's name in messages: where it was read from, or "key file"
/// for one built in memory.
fn file_name(src: &str) -> &str {
    if src.is_empty() { "key file" } else { src }
}

pub(crate) trait KeyFile: DeserializeOwned {
    /// Records where the file was read from.
    fn set_src(&mut self, src: String);

    /// Reads the file at `path` (`-` for stdin).
    fn load(path: &str) -> Result<Self, CliError> {
        let mut file: Self = input::read_json(path)?;
        file.set_src(input::display_name(path));
        Ok(file)
    }

    /// Parses JSON `text`, naming it `src` in messages.
    fn from_json(text: &str, src: &str) -> Result<Self, CliError> {
        let mut file: Self = serde_json::from_str(text).map_err(|source| CliError::Json {
            path: src.to_owned(),
            source,
        })?;
        file.set_src(src.to_owned());
        Ok(file)
    }
}

/// The public values of a KMS community.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PublicFile {
    /// Where this was read from, for messages; not part of the format.
    #[serde(skip)]
    pub(crate) src: String,
    /// KMS URI (part of every UID).
    pub(crate) kms_uri: String,
    /// User key period length in seconds (UserKeyPeriod).
    #[serde(deserialize_with = "u64_or_string")]
    pub(crate) key_period: u64,
    /// User key period offset in seconds (UserKeyOffset).
    #[serde(deserialize_with = "u64_or_string")]
    pub(crate) key_period_offset: u64,
    /// ECCSI KPAK, 65 octets hex.
    pub(crate) kpak: String,
    /// SAKKE KMS public key Z, 257 octets hex.
    pub(crate) z_public: String,
}

impl KeyFile for PublicFile {
    fn set_src(&mut self, src: String) {
        self.src = src;
    }
}

impl PublicFile {
    /// The file form of `public`.
    pub(crate) fn from_public(public: &CommunityPublic) -> Self {
        Self {
            src: String::new(),
            kms_uri: public.kms_uri.clone(),
            key_period: public.key_period_len,
            key_period_offset: public.key_period_offset,
            kpak: hex::encode(public.kpak.to_bytes()),
            z_public: hex::encode(public.sakke_public.to_bytes()),
        }
    }

    /// `FILE: field`, for messages.
    fn what(&self, field: &str) -> String {
        format!("{}: {field}", file_name(&self.src))
    }

    /// The decoded KPAK.
    pub(crate) fn kpak(&self) -> Result<Kpak, CliError> {
        input::hex_with(&self.what("kpak"), &self.kpak, Kpak::from_bytes)
    }

    /// The decoded SAKKE KMS public key.
    pub(crate) fn z_public(&self) -> Result<KmsPublicKey, CliError> {
        input::hex_with(
            &self.what("z_public"),
            &self.z_public,
            KmsPublicKey::from_bytes,
        )
    }

    /// The UID of `user_uri` in key period `key_period_no` in this community.
    pub(crate) fn uid(
        &self,
        user_uri: &str,
        key_period_no: u64,
    ) -> Result<[u8; UID_LEN], CliError> {
        mikey_sakke_uid(
            user_uri,
            &self.kms_uri,
            self.key_period,
            self.key_period_offset,
            key_period_no,
        )
        .map_err(|err| CliError::value(file_name(&self.src), err))
    }
}

/// A KMS community: public values and the KMS secrets.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CommunityFile {
    /// Where this was read from, for messages; not part of the format.
    #[serde(skip)]
    src: String,
    /// KMS URI.
    kms_uri: String,
    /// User key period length in seconds.
    #[serde(deserialize_with = "u64_or_string")]
    key_period: u64,
    /// User key period offset in seconds.
    #[serde(deserialize_with = "u64_or_string")]
    key_period_offset: u64,
    /// ECCSI KPAK, 65 octets hex.
    kpak: String,
    /// SAKKE KMS public key Z, 257 octets hex.
    z_public: String,
    /// ECCSI KSAK (secret), 32 octets hex.
    ksak: String,
    /// SAKKE master secret z (secret), 128 octets hex.
    z: String,
}

impl KeyFile for CommunityFile {
    fn set_src(&mut self, src: String) {
        self.src = src;
    }
}

impl CommunityFile {
    /// The file form of `community`.
    pub(crate) fn from_community(community: &Community) -> Self {
        let public = PublicFile::from_public(community.public());
        Self {
            src: String::new(),
            kms_uri: public.kms_uri,
            key_period: public.key_period,
            key_period_offset: public.key_period_offset,
            kpak: public.kpak,
            z_public: public.z_public,
            ksak: hex::encode(community.ksak().to_bytes().as_ref()),
            z: hex::encode(community.sakke_master().to_bytes().as_ref()),
        }
    }

    /// Rebuilds the community from its secrets and checks that the public
    /// values in the file are the ones the secrets give.
    pub(crate) fn community(&self) -> Result<Community, CliError> {
        let what = |field: &str| format!("{}: {field}", file_name(&self.src));
        let ksak = input::hex_with(&what("ksak"), &self.ksak, Ksak::from_bytes)?;
        let z = input::hex_with(&what("z"), &self.z, MasterSecret::from_bytes)?;
        let community = Community::from_secrets(
            &self.kms_uri,
            self.key_period,
            self.key_period_offset,
            ksak,
            z,
        )
        .map_err(|err| CliError::value(file_name(&self.src), err))?;
        let public = community.public();
        if input::hex(&what("kpak"), &self.kpak)? != public.kpak.to_bytes() {
            return Err(CliError::invalid(
                file_name(&self.src),
                "kpak is not the KPAK of ksak",
            ));
        }
        if input::hex(&what("z_public"), &self.z_public)? != public.sakke_public.to_bytes() {
            return Err(CliError::invalid(
                file_name(&self.src),
                "z_public is not the Z of z",
            ));
        }
        Ok(community)
    }
}

/// One user's keys for one key period, with the community public values.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UserKeysFile {
    /// Where this was read from, for messages; not part of the format.
    #[serde(skip)]
    src: String,
    /// MC service user ID URI; absent for keys issued for a raw
    /// identifier (`mcx kms issue --uid`), whose UID cannot be checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_uri: Option<String>,
    /// KMS URI.
    kms_uri: String,
    /// User key period length in seconds.
    #[serde(deserialize_with = "u64_or_string")]
    key_period: u64,
    /// User key period offset in seconds.
    #[serde(deserialize_with = "u64_or_string")]
    key_period_offset: u64,
    /// The key period the keys are for.
    #[serde(deserialize_with = "u64_or_string")]
    key_period_no: u64,
    /// The UID the keys are bound to, 32 octets hex.
    uid: String,
    /// ECCSI KPAK, 65 octets hex.
    kpak: String,
    /// SAKKE KMS public key Z, 257 octets hex.
    z_public: String,
    /// ECCSI SSK (secret), 32 octets hex.
    ssk: String,
    /// ECCSI PVT, 65 octets hex.
    pvt: String,
    /// SAKKE RSK (secret), 257 octets hex.
    rsk: String,
}

impl KeyFile for UserKeysFile {
    fn set_src(&mut self, src: String) {
        self.src = src;
    }
}

impl UserKeysFile {
    /// The file form of `keys`, issued in community `public`.
    pub(crate) fn from_keys(keys: &UserKeys, public: &CommunityPublic) -> Self {
        let mut file = Self::from_raw(
            &keys.uid,
            keys.key_period_no,
            &keys.ssk,
            &keys.pvt,
            &keys.rsk,
            public,
        );
        file.user_uri = Some(keys.user_uri.clone());
        file
    }

    /// The file form of keys issued for the raw identifier `uid` (no URI)
    /// in community `public`.
    pub(crate) fn from_raw(
        uid: &[u8; UID_LEN],
        key_period_no: u64,
        ssk: &Ssk,
        pvt: &Pvt,
        rsk: &Rsk,
        public: &CommunityPublic,
    ) -> Self {
        let public = PublicFile::from_public(public);
        Self {
            src: String::new(),
            user_uri: None,
            kms_uri: public.kms_uri,
            key_period: public.key_period,
            key_period_offset: public.key_period_offset,
            key_period_no,
            uid: hex::encode(uid),
            kpak: public.kpak,
            z_public: public.z_public,
            ssk: hex::encode(ssk.to_bytes().as_ref()),
            pvt: hex::encode(pvt.to_bytes()),
            rsk: hex::encode(rsk.to_bytes().as_ref()),
        }
    }

    /// `FILE: field`, for messages.
    fn what(&self, field: &str) -> String {
        format!("{}: {field}", file_name(&self.src))
    }

    /// The key period the keys are for.
    pub(crate) fn key_period_no(&self) -> u64 {
        self.key_period_no
    }

    /// The community public values in this file.
    pub(crate) fn public(&self) -> PublicFile {
        PublicFile {
            src: self.src.clone(),
            kms_uri: self.kms_uri.clone(),
            key_period: self.key_period,
            key_period_offset: self.key_period_offset,
            kpak: self.kpak.clone(),
            z_public: self.z_public.clone(),
        }
    }

    /// The UID, checked against the one `user_uri`, the KMS and the key
    /// period give.
    pub(crate) fn uid(&self) -> Result<[u8; UID_LEN], CliError> {
        let uid = input::hex_array::<UID_LEN>(&self.what("uid"), &self.uid)?;
        let Some(user_uri) = &self.user_uri else {
            return Ok(uid);
        };
        if uid != self.public().uid(user_uri, self.key_period_no)? {
            return Err(CliError::invalid(
                file_name(&self.src),
                "uid is not the UID of user_uri in key_period_no under kms_uri",
            ));
        }
        Ok(uid)
    }

    /// The ECCSI signing key, validated against the KPAK and UID.
    pub(crate) fn signing_key(&self) -> Result<SigningKey, CliError> {
        let kpak = self.public().kpak()?;
        let uid = self.uid()?;
        let ssk = input::hex_with(&self.what("ssk"), &self.ssk, Ssk::from_bytes)?;
        let pvt = input::hex_with(&self.what("pvt"), &self.pvt, Pvt::from_bytes)?;
        SigningKey::new(&kpak, &uid, ssk, pvt)
            .map_err(|err| CliError::value(file_name(&self.src), err))
    }

    /// The SAKKE receiver key, validated against Z and the UID.
    pub(crate) fn receiver_key(&self) -> Result<ReceiverKey, CliError> {
        let z_public = self.public().z_public()?;
        let uid = self.uid()?;
        let rsk = input::hex_with(&self.what("rsk"), &self.rsk, Rsk::from_bytes)?;
        ReceiverKey::new(&z_public, &uid, &rsk)
            .map_err(|err| CliError::value(file_name(&self.src), err))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn public_json(period: &str) -> String {
        format!(
            "{{\"kms_uri\":\"kms.example.org\",\"key_period\":{period},\"key_period_offset\":\"0\",\
             \"kpak\":\"04\",\"z_public\":\"04\"}}"
        )
    }

    /// Integers as JSON numbers or as decimal strings, as another tool
    /// writes them ("16777215"); anything else is refused with the value.
    #[test]
    fn integers_as_numbers_or_strings() {
        for text in ["16777215", "\"16777215\"", "\" 16777215 \""] {
            let f = PublicFile::from_json(&public_json(text), "t").unwrap();
            assert_eq!((f.key_period, f.key_period_offset), (16_777_215, 0));
        }
        for bad in ["\"16777215x\"", "\"-1\"", "-1", "1.5"] {
            let e = PublicFile::from_json(&public_json(bad), "t").unwrap_err();
            assert!(
                e.to_string().contains("key_period") || e.to_string().contains("integer"),
                "{e}"
            );
        }
    }
}
