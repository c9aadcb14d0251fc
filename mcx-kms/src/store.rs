//! The KMS state in SQLite: the community secrets, the users and the audit
//! log of issued key sets.
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
//! Secrets are sealed under the operator's [`StoreKey`] (AES-256-GCM, the
//! record's identity as AAD; see [`crate::at_rest`]); the file is created
//! owner-only before SQLite opens it.

use std::path::Path;

use rand_core::CryptoRng;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::KmsError;
use crate::at_rest::{StoreKey, open_sqlite};

/// Schema version in `PRAGMA user_version` (1: secrets in clear, refused).
const SCHEMA_VERSION: i64 = 2;

/// The store kind in the check record's identity.
const STORE_KIND: &str = "mcx-kms";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS user_keys (
    user_uri TEXT NOT NULL,
    key_period_no INTEGER NOT NULL,
    ssk BLOB NOT NULL,
    rsk BLOB NOT NULL,
    pvt BLOB NOT NULL,
    PRIMARY KEY (user_uri, key_period_no)
);
CREATE TABLE IF NOT EXISTS community (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    kms_uri TEXT NOT NULL,
    key_period_len INTEGER NOT NULL,
    key_period_offset INTEGER NOT NULL,
    ksak BLOB NOT NULL,
    sakke_z BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    uri TEXT PRIMARY KEY NOT NULL,
    token_sha256 BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS issued (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_uri TEXT NOT NULL,
    key_period_no INTEGER NOT NULL,
    issued_unix INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_by_user ON issued (user_uri, key_period_no);
";

/// The community row as stored.
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

pub(crate) struct Store {
    conn: Connection,
    key: StoreKey,
}

impl Store {
    /// Opens (creating if needed) the store; `None` = in memory. A store
    /// file needs the operator's `key`; an in-memory store without one
    /// seals under a random key that dies with it.
    pub(crate) fn open(
        path: Option<&Path>,
        key: Option<&StoreKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, KmsError> {
        let (conn, key) = open_sqlite(path, key, rng)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(KmsError::Database(format!(
                "database schema version {version} is newer than this KMS ({SCHEMA_VERSION})"
            )));
        }
        if version == 1 {
            return Err(KmsError::Database(
                "database schema version 1 keeps the KMS secrets in clear; \
                 this KMS seals them under a store key and does not convert: \
                 start from a new database (the community keys change)"
                    .into(),
            ));
        }
        if version == SCHEMA_VERSION {
            // The key is checked before anything is written.
            let check: Vec<u8> = conn.query_row(
                "SELECT value FROM meta WHERE key = 'store_check'",
                [],
                |r| r.get(0),
            )?;
            key.verify_check_record(STORE_KIND, &check)?;
            conn.execute_batch(SCHEMA)?;
        } else {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(SCHEMA)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('store_check', ?1)",
                [key.check_record(STORE_KIND, rng)],
            )?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        }
        Ok(Self { conn, key })
    }

    pub(crate) fn load_community(&self) -> Result<Option<StoredCommunity>, KmsError> {
        let row = self
            .conn
            .query_row(
                "SELECT kms_uri, key_period_len, key_period_offset, ksak, sakke_z
                 FROM community WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(kms_uri, len, offset, ksak, sakke_z)| {
            Ok(StoredCommunity {
                kms_uri,
                key_period_len: to_u64(len)?,
                key_period_offset: to_u64(offset)?,
                ksak: self.key.open(&community_record("ksak"), &ksak, "KSAK")?,
                sakke_z: self.key.open(
                    &community_record("sakke_z"),
                    &sakke_z,
                    "SAKKE master secret",
                )?,
            })
        })
        .transpose()
    }

    pub(crate) fn save_community(
        &self,
        c: &StoredCommunity,
        rng: &mut impl CryptoRng,
    ) -> Result<(), KmsError> {
        let ksak = self.key.seal(&community_record("ksak"), &c.ksak, rng);
        let sakke_z = self.key.seal(&community_record("sakke_z"), &c.sakke_z, rng);
        self.conn.execute(
            "INSERT INTO community (id, kms_uri, key_period_len, key_period_offset, ksak, sakke_z)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![
                c.kms_uri,
                to_i64(c.key_period_len, "key period length")?,
                to_i64(c.key_period_offset, "key period offset")?,
                ksak,
                sakke_z,
            ],
        )?;
        Ok(())
    }

    /// The keys issued to `user_uri` for `key_period_no`, if any.
    pub(crate) fn user_keys(
        &self,
        user_uri: &str,
        key_period_no: u64,
    ) -> Result<Option<StoredUserKeys>, KmsError> {
        let period = to_i64(key_period_no, "key period number")?;
        let row = self
            .conn
            .query_row(
                "SELECT ssk, rsk, pvt FROM user_keys WHERE user_uri = ?1 AND key_period_no = ?2",
                params![user_uri, period],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((ssk, rsk, pvt)) = row else {
            return Ok(None);
        };
        let period = key_period_no.to_be_bytes();
        let record = |column| user_keys_record(column, user_uri, &period);
        Ok(Some(StoredUserKeys {
            ssk: self.key.open(&record("ssk"), &ssk, "issued SSK")?,
            rsk: self.key.open(&record("rsk"), &rsk, "issued RSK")?,
            pvt,
        }))
    }

    /// Stores the keys issued to `user_uri` for `key_period_no` (the
    /// first issue of a period; later requests get the same keys).
    pub(crate) fn save_user_keys(
        &self,
        user_uri: &str,
        key_period_no: u64,
        keys: &StoredUserKeys,
        rng: &mut impl CryptoRng,
    ) -> Result<(), KmsError> {
        let period = key_period_no.to_be_bytes();
        let record = |column| user_keys_record(column, user_uri, &period);
        let ssk = self.key.seal(&record("ssk"), &keys.ssk, rng);
        let rsk = self.key.seal(&record("rsk"), &keys.rsk, rng);
        self.conn.execute(
            "INSERT INTO user_keys (user_uri, key_period_no, ssk, rsk, pvt)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                user_uri,
                to_i64(key_period_no, "key period number")?,
                ssk,
                rsk,
                keys.pvt
            ],
        )?;
        Ok(())
    }

    /// Makes the users table exactly `users` (URI, SHA-256 of the token).
    pub(crate) fn replace_users(&mut self, users: &[(String, [u8; 32])]) -> Result<(), KmsError> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare(
                "INSERT INTO users (uri, token_sha256) VALUES (?1, ?2)
                 ON CONFLICT (uri) DO UPDATE SET token_sha256 = excluded.token_sha256",
            )?;
            for (uri, hash) in users {
                upsert.execute(params![uri, hash.as_slice()])?;
            }
            let mut existing = tx.prepare("SELECT uri FROM users")?;
            let stale: Vec<String> = existing
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|uri| !users.iter().any(|(u, _)| u == uri))
                .collect();
            for uri in stale {
                tx.execute("DELETE FROM users WHERE uri = ?1", params![uri])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn record_issue(
        &self,
        user_uri: &str,
        key_period_no: u64,
        now_unix: u64,
    ) -> Result<(), KmsError> {
        self.conn.execute(
            "INSERT INTO issued (user_uri, key_period_no, issued_unix) VALUES (?1, ?2, ?3)",
            params![
                user_uri,
                to_i64(key_period_no, "key period number")?,
                to_i64(now_unix, "time")?
            ],
        )?;
        Ok(())
    }

    /// Writes everything committed into the main database file and closes
    /// the connection, so that a stop leaves no `-wal`/`-journal` file
    /// behind and a copy of the file alone holds the whole state.
    pub(crate) fn close(self) -> Result<(), KmsError> {
        Ok(close_connection(self.conn)?)
    }

    pub(crate) fn issued(&self) -> Result<Vec<IssuedRecord>, KmsError> {
        let mut stmt = self
            .conn
            .prepare("SELECT user_uri, key_period_no, issued_unix FROM issued ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
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

/// Closes a store's connection after moving a WAL, if any, into the
/// database file (SQLite also checkpoints when the last connection
/// closes, but on a best-effort basis that reports no error, and a
/// dropped `Connection` hides the close error). Shared with the GMS.
pub fn close_connection(conn: Connection) -> Result<(), rusqlite::Error> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        // (busy, log frames, checkpointed frames): busy = 1 means another
        // connection kept the checkpoint from completing.
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("WAL checkpoint blocked by another connection".into()),
            ));
        }
    }
    conn.close().map_err(|(_, e)| e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A WAL database closed with `close_connection` leaves only the main
    /// file, which alone holds what was committed.
    #[test]
    fn close_connection_checkpoints_the_wal_into_the_file() {
        let dir = std::env::temp_dir().join(format!("mcx-kms-close-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kms.sqlite");
        let wal = dir.join("kms.sqlite-wal");
        let key = StoreKey::from_bytes([1; 32]);
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let store = Store::open(Some(&path), Some(&key), &mut rng).unwrap();
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        store
            .record_issue("sip:alice@example.org", 7, 1000)
            .unwrap();
        assert!(wal.exists(), "the commit went to the WAL");
        close_connection(store.conn).unwrap();
        assert!(!wal.exists(), "the WAL was left behind");
        let reopened = Store::open(Some(&path), Some(&key), &mut rng).unwrap();
        assert_eq!(reopened.issued().unwrap().len(), 1);
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
