//! The KMS state in SQLite: the community secrets, the users and the audit
//! log of issued key sets.
//!
//! ```sql
//! community (id = 1, kms_uri, key_period_len, key_period_offset,
//!            ksak BLOB (32 octets), sakke_z BLOB (128 octets))
//! users     (uri PRIMARY KEY, token_sha256 BLOB (32 octets))
//! issued    (id, user_uri, key_period_no, issued_unix)   -- never keys
//! ```
//!
//! The secrets are stored as plain octets: protect the database file (it is
//! created owner-only on Unix) or keep it on an encrypted volume.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::KmsError;

/// Schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
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

pub(crate) struct Store {
    conn: Connection,
}

impl Store {
    pub(crate) fn open(path: Option<&Path>) -> Result<Self, KmsError> {
        let conn = match path {
            Some(path) => {
                let conn = Connection::open(path)?;
                restrict_permissions(path);
                conn
            }
            None => Connection::open_in_memory()?,
        };
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(KmsError::Database(format!(
                "database schema version {version} is newer than this KMS ({SCHEMA_VERSION})"
            )));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Self { conn })
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
                        Zeroizing::new(r.get::<_, Vec<u8>>(3)?),
                        Zeroizing::new(r.get::<_, Vec<u8>>(4)?),
                    ))
                },
            )
            .optional()?;
        row.map(|(kms_uri, len, offset, ksak, sakke_z)| {
            Ok(StoredCommunity {
                kms_uri,
                key_period_len: to_u64(len)?,
                key_period_offset: to_u64(offset)?,
                ksak,
                sakke_z,
            })
        })
        .transpose()
    }

    pub(crate) fn save_community(&self, c: &StoredCommunity) -> Result<(), KmsError> {
        self.conn.execute(
            "INSERT INTO community (id, kms_uri, key_period_len, key_period_offset, ksak, sakke_z)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![
                c.kms_uri,
                to_i64(c.key_period_len, "key period length")?,
                to_i64(c.key_period_offset, "key period offset")?,
                c.ksak.as_slice(),
                c.sakke_z.as_slice(),
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

/// Makes the database file readable by its owner only (it holds the KMS
/// secrets). Best effort: a failure leaves the permissions as they were.
#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

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
        let store = Store::open(Some(&path)).unwrap();
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
        let reopened = Store::open(Some(&path)).unwrap();
        assert_eq!(reopened.issued().unwrap().len(), 1);
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
