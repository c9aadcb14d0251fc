//! The KMS store's SQLite engine (the default): one file on this host,
//! or memory.

use std::path::Path;

use rand_core::CryptoRng;
use rusqlite::{Connection, OptionalExtension, params};

use super::{CommunityRow, Engine, SCHEMA_VERSION, STORE_KIND, UserKeysRow, schema_error};
use crate::KmsError;
use crate::at_rest::{StoreKey, open_sqlite};

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

pub(super) struct Sqlite {
    pub(super) conn: Connection,
}

impl Sqlite {
    /// Opens (creating if needed) the store; `None` = in memory. A store
    /// file needs the operator's `key`, checked before anything is
    /// written; an in-memory store without one seals under a random key.
    pub(super) fn open(
        path: Option<&Path>,
        key: Option<&StoreKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, StoreKey), KmsError> {
        let (conn, key) = open_sqlite(path, key, rng)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == SCHEMA_VERSION {
            let check: Vec<u8> = conn.query_row(
                "SELECT value FROM meta WHERE key = 'store_check'",
                [],
                |r| r.get(0),
            )?;
            key.verify_check_record(STORE_KIND, &check)?;
            conn.execute_batch(SCHEMA)?;
        } else if version == 0 {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(SCHEMA)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('store_check', ?1)",
                [key.check_record(STORE_KIND, rng)],
            )?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        } else {
            return Err(schema_error(version));
        }
        Ok((Self { conn }, key))
    }
}

impl Engine for Sqlite {
    fn community(&mut self) -> Result<Option<CommunityRow>, KmsError> {
        Ok(self
            .conn
            .query_row(
                "SELECT kms_uri, key_period_len, key_period_offset, ksak, sakke_z
                 FROM community WHERE id = 1",
                [],
                |r| {
                    Ok(CommunityRow {
                        kms_uri: r.get(0)?,
                        key_period_len: r.get(1)?,
                        key_period_offset: r.get(2)?,
                        ksak: r.get(3)?,
                        sakke_z: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    fn insert_community(&mut self, c: &CommunityRow) -> Result<CommunityRow, KmsError> {
        self.conn.execute(
            "INSERT INTO community (id, kms_uri, key_period_len, key_period_offset, ksak, sakke_z)
             VALUES (1, ?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
            params![
                c.kms_uri,
                c.key_period_len,
                c.key_period_offset,
                c.ksak,
                c.sakke_z
            ],
        )?;
        self.community()?.ok_or_else(|| {
            KmsError::Database("the community row is missing after its insert".into())
        })
    }

    fn user_keys(&mut self, user_uri: &str, period: i64) -> Result<Option<UserKeysRow>, KmsError> {
        Ok(self
            .conn
            .query_row(
                "SELECT ssk, rsk, pvt FROM user_keys WHERE user_uri = ?1 AND key_period_no = ?2",
                params![user_uri, period],
                |r| {
                    Ok(UserKeysRow {
                        ssk: r.get(0)?,
                        rsk: r.get(1)?,
                        pvt: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn insert_user_keys(
        &mut self,
        user_uri: &str,
        period: i64,
        row: &UserKeysRow,
    ) -> Result<UserKeysRow, KmsError> {
        self.conn.execute(
            "INSERT INTO user_keys (user_uri, key_period_no, ssk, rsk, pvt)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_uri, key_period_no) DO NOTHING",
            params![user_uri, period, row.ssk, row.rsk, row.pvt],
        )?;
        self.user_keys(user_uri, period)?
            .ok_or_else(|| KmsError::Database("a key set is missing after its insert".into()))
    }

    fn replace_users(&mut self, users: &[(String, [u8; 32])]) -> Result<(), KmsError> {
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

    fn record_issue(&mut self, user_uri: &str, period: i64, now: i64) -> Result<(), KmsError> {
        self.conn.execute(
            "INSERT INTO issued (user_uri, key_period_no, issued_unix) VALUES (?1, ?2, ?3)",
            params![user_uri, period, now],
        )?;
        Ok(())
    }

    fn issued(&mut self) -> Result<Vec<(String, i64, i64)>, KmsError> {
        let mut stmt = self
            .conn
            .prepare("SELECT user_uri, key_period_no, issued_unix FROM issued ORDER BY id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn close(self: Box<Self>) -> Result<(), KmsError> {
        Ok(close_connection(self.conn)?)
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
        let (mut store, _) = Sqlite::open(Some(&path), Some(&key), &mut rng).unwrap();
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
        let (mut reopened, _) = Sqlite::open(Some(&path), Some(&key), &mut rng).unwrap();
        assert_eq!(reopened.issued().unwrap().len(), 1);
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
