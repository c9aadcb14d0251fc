//! The KMS state: the community secrets, the users and the audit log of
//! issued key sets, kept by a storage [`Engine`] (SQLite by default,
//! PostgreSQL for several instances on one database; see
//! [`crate::db::StoreLocation`]).
//!
//! ```sql
//! meta      (key PRIMARY KEY, value BLOB)       -- 'store_check': sealed check record
//! community (id = 1, kms_uri, key_period_len, key_period_offset,
//!            ksak BLOB (sealed 32 octets), sakke_z BLOB (sealed 128 octets))
//! users     (uri PRIMARY KEY, token_sha256 BLOB (32 octets))
//! user_keys (user_uri, key_period_no, ssk BLOB (sealed), rsk BLOB (sealed),
//!            pvt BLOB, PRIMARY KEY (user_uri, key_period_no))
//! issued    (id, user_uri, key_period_no, issued_unix)   -- never keys
//! ```
//!
//! Secrets are sealed here, above the engine, under the operator's
//! [`StoreKey`] (AES-256-GCM, the record's identity as AAD; see
//! [`crate::at_rest`]): an engine only ever sees sealed values. A SQLite
//! file is created owner-only before SQLite opens it.

mod pg;
mod sqlite;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::KmsError;
use crate::at_rest::StoreKey;
use crate::db::StoreLocation;

/// Schema version (SQLite `PRAGMA user_version`, PostgreSQL
/// `meta.schema_version`; 1: secrets in clear, refused).
const SCHEMA_VERSION: i64 = 2;

/// The store kind in the check record's identity.
const STORE_KIND: &str = "mcx-kms";

/// The community row as stored, secrets sealed.
pub(crate) struct CommunityRow {
    pub(crate) kms_uri: String,
    pub(crate) key_period_len: i64,
    pub(crate) key_period_offset: i64,
    pub(crate) ksak: Vec<u8>,
    pub(crate) sakke_z: Vec<u8>,
}

/// A `user_keys` row as stored, secrets sealed.
pub(crate) struct UserKeysRow {
    pub(crate) ssk: Vec<u8>,
    pub(crate) rsk: Vec<u8>,
    pub(crate) pvt: Vec<u8>,
}

/// What a storage engine does: rows in, rows out, sealed values opaque.
/// The inserts that two instances may race on keep the first row stored
/// and return it, so both go on with the same community and key sets.
pub(crate) trait Engine: Send {
    /// The stored community, if any.
    fn community(&mut self) -> Result<Option<CommunityRow>, KmsError>;
    /// Stores `row` unless a community is stored; returns the stored one.
    fn insert_community(&mut self, row: &CommunityRow) -> Result<CommunityRow, KmsError>;
    /// The key set of `user_uri` for `period`, if issued.
    fn user_keys(&mut self, user_uri: &str, period: i64) -> Result<Option<UserKeysRow>, KmsError>;
    /// Stores `row` unless a set is stored for the user and period;
    /// returns the stored one.
    fn insert_user_keys(
        &mut self,
        user_uri: &str,
        period: i64,
        row: &UserKeysRow,
    ) -> Result<UserKeysRow, KmsError>;
    /// Makes the users table exactly `users` (URI, SHA-256 of the token).
    fn replace_users(&mut self, users: &[(String, [u8; 32])]) -> Result<(), KmsError>;
    /// Appends to the audit log.
    fn record_issue(&mut self, user_uri: &str, period: i64, now: i64) -> Result<(), KmsError>;
    /// The audit log, oldest first: (user, period, time).
    fn issued(&mut self) -> Result<Vec<(String, i64, i64)>, KmsError>;
    /// An orderly close (SQLite: WAL checkpointed into the file).
    fn close(self: Box<Self>) -> Result<(), KmsError>;
    /// Whether the last failure was the loss of the connection (a
    /// PostgreSQL restart or fail-over), after which the next call
    /// connects anew.
    fn connection_lost(&self) -> bool {
        false
    }
}

/// Runs `f` on `engine`, and once more if it failed because the engine
/// lost its connection: the request that meets a restarted PostgreSQL is
/// answered, not refused. (Every statement here is a read, an
/// insert-if-absent, an upsert or an audit row: running one again does
/// no harm.)
fn retried<T>(
    engine: &mut dyn Engine,
    mut f: impl FnMut(&mut dyn Engine) -> Result<T, KmsError>,
) -> Result<T, KmsError> {
    match f(engine) {
        Err(KmsError::Database(_)) if engine.connection_lost() => f(engine),
        done => done,
    }
}

/// The community as the service uses it, secrets open.
pub(crate) struct StoredCommunity {
    pub(crate) kms_uri: String,
    pub(crate) key_period_len: u64,
    pub(crate) key_period_offset: u64,
    /// # ⚠️ Warning: This value is key material
    pub(crate) ksak: Zeroizing<Vec<u8>>,
    /// # ⚠️ Warning: This value is key material
    pub(crate) sakke_z: Zeroizing<Vec<u8>>,
}

/// A user's keys for one key period as issued (octets as in KmsKeySet).
pub(crate) struct StoredUserKeys {
    /// # ⚠️ Warning: This value is key material
    pub(crate) ssk: Zeroizing<Vec<u8>>,
    /// # ⚠️ Warning: This value is key material
    pub(crate) rsk: Zeroizing<Vec<u8>>,
    pub(crate) pvt: Vec<u8>,
}

/// One row of the `issued` table: who got keys for which period, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedRecord {
    /// The user's MC service ID URI.
    pub user_uri: String,
    /// The key period of the key set.
    pub key_period_no: u64,
    /// When it was issued (Unix seconds).
    pub issued_unix: u64,
}

fn to_i64(v: u64, what: &str) -> Result<i64, KmsError> {
    i64::try_from(v).map_err(|_| KmsError::Config(format!("{what} is too large to store")))
}

fn to_u64(v: i64) -> Result<u64, KmsError> {
    u64::try_from(v).map_err(|_| KmsError::Database("negative value in an unsigned column".into()))
}

/// The AAD parts of a sealed `community` column.
fn community_record(column: &'static str) -> [&'static [u8]; 3] {
    [b"community", column.as_bytes(), b"1"]
}

/// The AAD parts of a sealed `user_keys` column.
fn user_keys_record<'a>(
    column: &'static str,
    user_uri: &'a str,
    period: &'a [u8; 8],
) -> [&'a [u8]; 4] {
    [b"user_keys", column.as_bytes(), user_uri.as_bytes(), period]
}

/// The refusal of a schema this code does not read.
fn schema_error(version: i64) -> KmsError {
    if version == 1 {
        KmsError::Database(
            "database schema version 1 keeps the KMS secrets in clear; \
             this KMS seals them under a store key and does not convert: \
             start from a new database (the community keys change)"
                .into(),
        )
    } else {
        KmsError::Database(format!(
            "database schema version {version} is newer than this KMS ({SCHEMA_VERSION})"
        ))
    }
}

/// The store: an engine, and the key its secrets are sealed under.
pub(crate) struct Store {
    engine: Box<dyn Engine>,
    key: StoreKey,
}

impl Store {
    /// Opens (creating and migrating the schema if needed) the store at
    /// `location`. A SQLite file or a PostgreSQL database needs the
    /// operator's `key`, which must open the store's check record; an
    /// in-memory store without one seals under a random key that dies
    /// with it.
    pub(crate) fn open(
        location: StoreLocation<'_>,
        key: Option<&StoreKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, KmsError> {
        let (engine, key): (Box<dyn Engine>, StoreKey) = match location {
            StoreLocation::Postgres(url) => {
                let key = key.ok_or(crate::StoreKeyError::Missing)?.clone();
                let new_check = key.check_record(STORE_KIND, rng);
                let (engine, check) = pg::Postgres::open(url, &new_check)?;
                key.verify_check_record(STORE_KIND, &check)?;
                (Box::new(engine), key)
            }
            local => {
                let path = match local {
                    StoreLocation::Sqlite(path) => Some(path),
                    _ => None,
                };
                let (engine, key) = sqlite::Sqlite::open(path, key, rng)?;
                (Box::new(engine), key)
            }
        };
        Ok(Self { engine, key })
    }

    fn open_community(&self, row: CommunityRow) -> Result<StoredCommunity, KmsError> {
        Ok(StoredCommunity {
            kms_uri: row.kms_uri,
            key_period_len: to_u64(row.key_period_len)?,
            key_period_offset: to_u64(row.key_period_offset)?,
            ksak: self
                .key
                .open(&community_record("ksak"), &row.ksak, "KSAK")?,
            sakke_z: self.key.open(
                &community_record("sakke_z"),
                &row.sakke_z,
                "SAKKE master secret",
            )?,
        })
    }

    pub(crate) fn load_community(&mut self) -> Result<Option<StoredCommunity>, KmsError> {
        retried(self.engine.as_mut(), |e| e.community())?
            .map(|row| self.open_community(row))
            .transpose()
    }

    /// Stores `c` unless a community is stored (another instance on the
    /// same database may have been first); returns the stored one.
    pub(crate) fn save_community(
        &mut self,
        c: &StoredCommunity,
        rng: &mut impl CryptoRng,
    ) -> Result<StoredCommunity, KmsError> {
        let row = CommunityRow {
            kms_uri: c.kms_uri.clone(),
            key_period_len: to_i64(c.key_period_len, "key period length")?,
            key_period_offset: to_i64(c.key_period_offset, "key period offset")?,
            ksak: self.key.seal(&community_record("ksak"), &c.ksak, rng),
            sakke_z: self.key.seal(&community_record("sakke_z"), &c.sakke_z, rng),
        };
        let stored = retried(self.engine.as_mut(), |e| e.insert_community(&row))?;
        self.open_community(stored)
    }

    fn open_user_keys(
        &self,
        user_uri: &str,
        key_period_no: u64,
        row: UserKeysRow,
    ) -> Result<StoredUserKeys, KmsError> {
        let period = key_period_no.to_be_bytes();
        let record = |column| user_keys_record(column, user_uri, &period);
        Ok(StoredUserKeys {
            ssk: self.key.open(&record("ssk"), &row.ssk, "issued SSK")?,
            rsk: self.key.open(&record("rsk"), &row.rsk, "issued RSK")?,
            pvt: row.pvt,
        })
    }

    /// The keys issued to `user_uri` for `key_period_no`, if any.
    pub(crate) fn user_keys(
        &mut self,
        user_uri: &str,
        key_period_no: u64,
    ) -> Result<Option<StoredUserKeys>, KmsError> {
        let period = to_i64(key_period_no, "key period number")?;
        retried(self.engine.as_mut(), |e| e.user_keys(user_uri, period))?
            .map(|row| self.open_user_keys(user_uri, key_period_no, row))
            .transpose()
    }

    /// Stores the keys issued to `user_uri` for `key_period_no` unless a
    /// set is stored for that period (by a concurrent request, here or on
    /// another instance): returns the stored set, which every request of
    /// the period gets.
    pub(crate) fn save_user_keys(
        &mut self,
        user_uri: &str,
        key_period_no: u64,
        keys: &StoredUserKeys,
        rng: &mut impl CryptoRng,
    ) -> Result<StoredUserKeys, KmsError> {
        let period = key_period_no.to_be_bytes();
        let record = |column| user_keys_record(column, user_uri, &period);
        let row = UserKeysRow {
            ssk: self.key.seal(&record("ssk"), &keys.ssk, rng),
            rsk: self.key.seal(&record("rsk"), &keys.rsk, rng),
            pvt: keys.pvt.clone(),
        };
        let period = to_i64(key_period_no, "key period number")?;
        let stored = retried(self.engine.as_mut(), |e| {
            e.insert_user_keys(user_uri, period, &row)
        })?;
        self.open_user_keys(user_uri, key_period_no, stored)
    }

    /// Makes the users table exactly `users` (URI, SHA-256 of the token).
    pub(crate) fn replace_users(&mut self, users: &[(String, [u8; 32])]) -> Result<(), KmsError> {
        retried(self.engine.as_mut(), |e| e.replace_users(users))
    }

    pub(crate) fn record_issue(
        &mut self,
        user_uri: &str,
        key_period_no: u64,
        now_unix: u64,
    ) -> Result<(), KmsError> {
        let period = to_i64(key_period_no, "key period number")?;
        let now = to_i64(now_unix, "time")?;
        retried(self.engine.as_mut(), |e| {
            e.record_issue(user_uri, period, now)
        })
    }

    /// Closes the engine in order (SQLite: everything committed moved
    /// into the main database file, so that a copy of it alone holds the
    /// whole state).
    pub(crate) fn close(self) -> Result<(), KmsError> {
        self.engine.close()
    }

    pub(crate) fn issued(&mut self) -> Result<Vec<IssuedRecord>, KmsError> {
        retried(self.engine.as_mut(), |e| e.issued())?
            .into_iter()
            .map(|(user_uri, period, t)| {
                Ok(IssuedRecord {
                    user_uri,
                    key_period_no: to_u64(period)?,
                    issued_unix: to_u64(t)?,
                })
            })
            .collect()
    }
}

pub use sqlite::close_connection;
