//! Secrets at rest: the operator's store key, AES-256-GCM sealing of the
//! secret columns, and store files created owner-only.
//!
//! The KMS (community secrets, issued SSKs and RSKs) and the GMS (GMKs)
//! keep their secrets in SQLite sealed under a 32-octet [`StoreKey`] the
//! operator supplies: [`STORE_KEY_ENV`] (64 hex digits) or
//! [`STORE_KEY_FILE_ENV`] (a file holding 32 raw octets or 64 hex digits).
//! Each sealed value is `nonce (12) || ciphertext || tag (16)` with a fresh
//! random nonce and the record's identity (table, column, row key) as
//! additional authenticated data, so a value copied to another row does
//! not open there. Every store holds one check record sealed at creation:
//! a key that does not open it is refused with
//! [`StoreKeyError::WrongKey`] before anything else is read.

use core::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
use rand_core::CryptoRng;
use thiserror::Error;
use zeroize::Zeroizing;

/// Environment variable holding the store key as 64 hex digits.
pub const STORE_KEY_ENV: &str = "MCX_STORE_KEY";
/// Environment variable naming a file that holds the store key (32 raw
/// octets, or 64 hex digits with optional surrounding whitespace).
pub const STORE_KEY_FILE_ENV: &str = "MCX_STORE_KEY_FILE";

/// Octets of the AES-256-GCM nonce in front of each sealed value.
const NONCE_LEN: usize = 12;
/// Octets of the GCM tag at the end of each sealed value.
const TAG_LEN: usize = 16;

/// The plaintext of the check record every store holds.
const CHECK_PLAINTEXT: &[u8] = b"mcx store key check v1";

/// What went wrong with the store key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreKeyError {
    /// A store file was asked for without a store key.
    #[error(
        "no store key: set {STORE_KEY_ENV} (64 hex digits) or {STORE_KEY_FILE_ENV} \
         (a file of 32 octets or 64 hex digits), or name a store key file in the topology"
    )]
    Missing,
    /// The key text is not 32 raw octets or 64 hex digits.
    #[error("the store key from {from} is not 32 octets or 64 hex digits")]
    Malformed {
        /// Where the key came from (a variable or a file).
        from: String,
    },
    /// The key file could not be read.
    #[error("cannot read store key file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key does not open the store's check record: another key.
    #[error("store key does not open this store")]
    WrongKey,
    /// A sealed value does not open although the check record does: the
    /// value was damaged or moved from another record.
    #[error("sealed {0} does not open under the store key (damaged or moved)")]
    Damaged(&'static str),
}

/// The operator's 32-octet key the stores seal their secrets under.
///
/// # ⚠️ Warning: This value is key material
///
/// `Debug` prints no key octets; the key is zeroized on drop.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// Length-prefixes each part so that no two identities share an AAD.
fn aad(record: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in record {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

impl StoreKey {
    /// A key from its 32 octets.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// A fresh random key (the demo writes one next to its stores).
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// The key as 64 lowercase hex digits (what [`StoreKey::parse`] reads).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    /// Reads a key: exactly 32 raw octets, or 64 hex digits with optional
    /// surrounding ASCII whitespace. `from` names the source in errors.
    ///
    /// # Errors
    /// [`StoreKeyError::Malformed`] for anything else.
    pub fn parse(bytes: &[u8], from: &str) -> Result<Self, StoreKeyError> {
        let malformed = || StoreKeyError::Malformed {
            from: from.to_owned(),
        };
        let trimmed = bytes.trim_ascii();
        let mut key = Zeroizing::new([0u8; 32]);
        if trimmed.len() == 64 && hex::decode_to_slice(trimmed, key.as_mut()).is_ok() {
            return Ok(Self(key));
        }
        let raw: &[u8; 32] = bytes.try_into().map_err(|_| malformed())?;
        key.copy_from_slice(raw);
        Ok(Self(key))
    }

    /// Reads a key file (see [`StoreKey::parse`]).
    ///
    /// # Errors
    /// [`StoreKeyError::Unreadable`] or [`StoreKeyError::Malformed`].
    pub fn read_file(path: &Path) -> Result<Self, StoreKeyError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| StoreKeyError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?);
        Self::parse(&bytes, &path.display().to_string())
    }

    /// The key from the environment: [`STORE_KEY_ENV`] if set, else the
    /// file [`STORE_KEY_FILE_ENV`] names.
    ///
    /// # Errors
    /// [`StoreKeyError::Missing`] if neither is set, or the errors of
    /// [`StoreKey::parse`] and [`StoreKey::read_file`].
    pub fn from_env() -> Result<Self, StoreKeyError> {
        if let Some(value) = std::env::var_os(STORE_KEY_ENV) {
            let value = Zeroizing::new(value.into_encoded_bytes());
            return Self::parse(&value, STORE_KEY_ENV);
        }
        match std::env::var_os(STORE_KEY_FILE_ENV) {
            Some(path) => Self::read_file(Path::new(&path)),
            None => Err(StoreKeyError::Missing),
        }
    }

    /// Writes the key as hex into a new file created owner-only (mode
    /// 0600 from the start), for an operator tool that generates a key.
    ///
    /// # Errors
    /// The I/O error, e.g. if the file exists.
    pub fn write_new_file(&self, path: &Path) -> std::io::Result<()> {
        let mut file = private_options().open(path)?;
        file.write_all(self.to_hex().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    }

    /// Seals `plaintext` for the record `record` (its identity: table,
    /// column, row key), with a fresh nonce from `rng`.
    pub fn seal(&self, record: &[&[u8]], plaintext: &[u8], rng: &mut impl CryptoRng) -> Vec<u8> {
        gcm_seal(&self.0, &aad(record), plaintext, rng)
    }

    /// Opens a value [`StoreKey::seal`] sealed for `record`; `what` names
    /// the value in the error.
    ///
    /// # Errors
    /// [`StoreKeyError::Damaged`] if it does not open (another key,
    /// another record, altered octets).
    pub fn open(
        &self,
        record: &[&[u8]],
        sealed: &[u8],
        what: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, StoreKeyError> {
        gcm_open(&self.0, &aad(record), sealed).ok_or(StoreKeyError::Damaged(what))
    }

    /// The check record a new store keeps (`store` names the store kind).
    pub fn check_record(&self, store: &str, rng: &mut impl CryptoRng) -> Vec<u8> {
        self.seal(&[b"check", store.as_bytes()], CHECK_PLAINTEXT, rng)
    }

    /// Whether this key opens a store's check record.
    ///
    /// # Errors
    /// [`StoreKeyError::WrongKey`] if it does not.
    pub fn verify_check_record(&self, store: &str, sealed: &[u8]) -> Result<(), StoreKeyError> {
        match self.open(&[b"check", store.as_bytes()], sealed, "check record") {
            Ok(p) if p.as_slice() == CHECK_PLAINTEXT => Ok(()),
            _ => Err(StoreKeyError::WrongKey),
        }
    }
}

/// AES-256-GCM with a fresh random 96-bit nonce: `nonce || C || tag`.
/// (Shared with the TrK encryption of the security extension.)
pub(crate) fn gcm_seal(
    key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(&(*key).into());
    let mut buf = Zeroizing::new(plaintext.to_vec());
    // AES-GCM refuses only messages over 2^36 octets; keys are a few
    // hundred.
    let Ok(tag) = cipher.encrypt_inout_detached(&nonce.into(), aad, buf.as_mut_slice().into())
    else {
        unreachable!("AES-GCM seals any value under 64 GiB")
    };
    let mut out = Vec::with_capacity(NONCE_LEN + buf.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out.extend_from_slice(&tag);
    out
}

/// Opens what [`gcm_seal`] made; `None` if it does not authenticate.
pub(crate) fn gcm_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let rest = sealed.get(NONCE_LEN..)?;
    let ct_len = rest.len().checked_sub(TAG_LEN)?;
    let nonce: [u8; NONCE_LEN] = sealed.get(..NONCE_LEN)?.try_into().ok()?;
    let tag: [u8; TAG_LEN] = rest.get(ct_len..)?.try_into().ok()?;
    let cipher = Aes256Gcm::new(&(*key).into());
    let mut buf = Zeroizing::new(rest.get(..ct_len)?.to_vec());
    cipher
        .decrypt_inout_detached(&nonce.into(), aad, buf.as_mut_slice().into(), &tag.into())
        .ok()?;
    Some(buf)
}

/// Why a store could not be opened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreOpenError {
    /// The store key is missing.
    #[error(transparent)]
    Key(#[from] StoreKeyError),
    /// The file could not be created owner-only.
    #[error("{0}")]
    Create(String),
    /// SQLite could not open it.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Opens a store's SQLite connection and settles its key: a file (created
/// owner-only first, see [`create_private_file`]) needs the operator's
/// `key`; an in-memory store (`path = None`) without one seals under a
/// random key that dies with it.
///
/// # Errors
/// [`StoreKeyError::Missing`] for a file without a key, or the creation
/// or SQLite error.
pub fn open_sqlite(
    path: Option<&Path>,
    key: Option<&StoreKey>,
    rng: &mut impl CryptoRng,
) -> Result<(rusqlite::Connection, StoreKey), StoreOpenError> {
    match path {
        Some(path) => {
            let key = key.ok_or(StoreKeyError::Missing)?.clone();
            create_private_file(path).map_err(StoreOpenError::Create)?;
            Ok((rusqlite::Connection::open(path)?, key))
        }
        None => Ok((
            rusqlite::Connection::open_in_memory()?,
            key.cloned().unwrap_or_else(|| StoreKey::generate(rng)),
        )),
    }
}

/// Options that create a new file with mode 0600 (on Unix), failing if it
/// exists.
fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Creates a store file owner-only (mode 0600 on Unix, given to `open(2)`
/// itself, so the file never exists with wider permissions) before SQLite
/// opens it. SQLite creates its `-journal`, `-wal` and `-shm` companions
/// with the mode of the database file. An existing file is left as it
/// is, except that permissions for group or others are removed.
///
/// # Errors
/// The I/O error, naming the file.
pub fn create_private_file(path: &Path) -> Result<(), String> {
    match private_options().open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => restrict_existing(path),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

#[cfg(unix)]
fn restrict_existing(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| format!("cannot restrict {}: {e}", path.display());
    let mode = std::fs::metadata(path).map_err(fail)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(fail)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_existing(_path: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl rand_core::TryRng for Counter {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(u32::from(self.0))
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(u64::from(self.0))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            self.0 = self.0.wrapping_add(1);
            dst.fill(self.0);
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}

    /// The AES-256-GCM construction is the standard one: NIST's
    /// gcmEncryptExtIV256.rsp [Keylen = 256, IVlen = 96, PTlen = 128,
    /// AADlen = 0, Taglen = 128] Count = 0 reproduces through `seal`'s
    /// layout (nonce || ciphertext || tag) when the AAD is empty.
    #[test]
    fn aes256_gcm_matches_nist_vector() {
        let key = StoreKey::parse(
            b"31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
            "test",
        )
        .unwrap();
        let nonce = hex::decode("0d18e06c7c725ac9e362e1ce").unwrap();
        let pt = hex::decode("2db5168e932556f8089a0622981d017d").unwrap();
        let cipher = Aes256Gcm::new(&(*key.0).into());
        let mut buf = pt.clone();
        let n: [u8; 12] = nonce.as_slice().try_into().unwrap();
        let tag = cipher
            .encrypt_inout_detached(&n.into(), &[], buf.as_mut_slice().into())
            .unwrap();
        assert_eq!(hex::encode(&buf), "fa4362189661d163fcd6a56d8bf0405a");
        assert_eq!(hex::encode(tag), "d636ac1bbedd5cc3ee727dc2ab4a9489");
        let sealed = [nonce.as_slice(), &buf, tag.as_slice()].concat();
        assert_eq!(*key.open(&[], &sealed, "vector").unwrap(), pt);
    }

    #[test]
    fn seal_binds_the_record_and_the_key() {
        let key = StoreKey::from_bytes([7; 32]);
        let mut rng = Counter(0);
        let sealed = key.seal(&[b"t", b"row1"], b"secret", &mut rng);
        assert_eq!(
            key.open(&[b"t", b"row1"], &sealed, "x").unwrap().as_slice(),
            b"secret"
        );
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        // Another row, another split of the same octets, another key.
        assert_eq!(
            key.open(&[b"t", b"row2"], &sealed, "x"),
            Err(StoreKeyError::Damaged("x"))
        );
        assert!(key.open(&[b"tr", b"ow1"], &sealed, "x").is_err());
        assert!(
            StoreKey::from_bytes([8; 32])
                .open(&[b"t", b"row1"], &sealed, "x")
                .is_err()
        );
        // Nonces differ per value.
        assert_ne!(sealed, key.seal(&[b"t", b"row1"], b"secret", &mut rng));
        let check = key.check_record("kms", &mut rng);
        assert_eq!(key.verify_check_record("kms", &check), Ok(()));
        assert_eq!(
            StoreKey::from_bytes([8; 32]).verify_check_record("kms", &check),
            Err(StoreKeyError::WrongKey)
        );
    }

    #[test]
    fn parse_accepts_hex_or_raw_only() {
        let hex64 = "00".repeat(31) + "ff";
        let k = StoreKey::parse(format!(" {hex64}\n").as_bytes(), "f").unwrap();
        assert_eq!(k.to_hex().as_str(), hex64);
        assert!(StoreKey::parse(&[0xAB; 32], "f").is_ok());
        for bad in [&b""[..], b"abcd", &[0u8; 33], &hex64.as_bytes()[..62]] {
            assert_eq!(
                StoreKey::parse(bad, "f").unwrap_err(),
                StoreKeyError::Malformed { from: "f".into() }
            );
        }
        assert_eq!(
            format!("{:?}", StoreKey::from_bytes([0xAB; 32])),
            "StoreKey(<redacted>)"
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_file_is_created_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mcx-at-rest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.sqlite");
        let _ = std::fs::remove_file(&path);
        create_private_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // An existing file readable by others is narrowed.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_private_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let key_file = dir.join("store.key");
        let _ = std::fs::remove_file(&key_file);
        let key = StoreKey::from_bytes([3; 32]);
        key.write_new_file(&key_file).unwrap();
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert_eq!(
            StoreKey::read_file(&key_file).unwrap().to_hex(),
            key.to_hex()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
