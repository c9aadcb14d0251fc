//! The GMS store's SQLite engine (the default): one file on this host,
//! or memory.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use mcx_kms::at_rest::{StoreKey, open_sqlite};
use rand_core::CryptoRng;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Engine, GmkRow, Insert, RAND_LEN, SCHEMA_VERSION, STORE_KIND, int, schema_error};
use crate::GroupConfig;
use crate::error::GmsError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    group_id     TEXT PRIMARY KEY,
    display_name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    group_id   TEXT NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    member_uri TEXT NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_uri)
);
CREATE TABLE IF NOT EXISTS gmks (
    gmk_id     INTEGER PRIMARY KEY,
    group_id   TEXT NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    gmk        BLOB NOT NULL,
    activation INTEGER NOT NULL,
    expiry     INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    rand       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS gmks_by_group ON gmks(group_id, activation);
CREATE TABLE IF NOT EXISTS gktp_issued (
    member_uri TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    gmk_id     INTEGER NOT NULL,
    key_period INTEGER NOT NULL,
    first_unix INTEGER NOT NULL,
    last_unix  INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (member_uri, gmk_id, key_period)
);
";

/// Upgrades a version-2 store (no RAND per GMK; GKTPs drew a fresh RAND
/// each) to version 3: every stored GMK gets a RAND drawn now, in one
/// transaction. Members holding such a GMK from before derived media keys
/// from their GKTP's own RAND; their next fetch brings the GMK with the
/// new RAND, which replaces it (same GMK-ID) in the client.
fn upgrade_from_2(conn: &Connection, rng: &mut impl CryptoRng) -> Result<(), GmsError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "ALTER TABLE gmks ADD COLUMN rand BLOB NOT NULL DEFAULT x''",
        [],
    )?;
    let ids: Vec<i64> = tx
        .prepare("SELECT gmk_id FROM gmks")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        let mut rand = [0u8; RAND_LEN];
        rng.fill_bytes(&mut rand);
        tx.execute(
            "UPDATE gmks SET rand = ?2 WHERE gmk_id = ?1",
            params![id, &rand[..]],
        )?;
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Opens (creating if needed) the database; `None` = in memory.
    pub(super) fn open(
        path: Option<&Path>,
        key: Option<&StoreKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, StoreKey), GmsError> {
        let (conn, key) = open_sqlite(path, key, rng)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let has_meta: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |r| r.get(0),
        )?;
        let version: Option<String> = if has_meta {
            conn.query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?
        } else {
            None
        };
        match version.as_deref() {
            None => {
                let tx = conn.unchecked_transaction()?;
                tx.execute_batch(SCHEMA)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('store_check', ?2)",
                    params![SCHEMA_VERSION, key.check_record(STORE_KIND, rng)],
                )?;
                tx.commit()?;
            }
            Some(v @ (SCHEMA_VERSION | "2")) => {
                // The key is checked before anything is written.
                let check: Vec<u8> = conn
                    .query_row(
                        "SELECT value FROM meta WHERE key = 'store_check'",
                        [],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or(GmsError::StorageFormat("the store has no key check record"))?;
                key.verify_check_record(STORE_KIND, &check)?;
                if v == "2" {
                    upgrade_from_2(&conn, rng)?;
                }
                conn.execute_batch(SCHEMA)?;
            }
            Some(other) => return Err(schema_error(other)),
        }
        Ok((Self { conn }, key))
    }
}

impl Engine for Sqlite {
    fn sync_groups(&mut self, groups: &[GroupConfig], now: i64) -> Result<Vec<String>, GmsError> {
        let tx = self.conn.transaction()?;
        let mut lost = Vec::new();
        {
            let mut stored_members =
                tx.prepare("SELECT member_uri FROM members WHERE group_id = ?1")?;
            for g in groups {
                let before: BTreeSet<String> = stored_members
                    .query_map([&g.id], |r| r.get::<_, String>(0))?
                    .collect::<Result<_, _>>()?;
                if before.iter().any(|m| !g.members.contains(m)) {
                    lost.push(g.id.clone());
                }
                tx.execute(
                    "INSERT INTO groups (group_id, display_name) VALUES (?1, ?2)
                     ON CONFLICT(group_id) DO UPDATE SET display_name = excluded.display_name",
                    params![g.id, g.display_name],
                )?;
                tx.execute("DELETE FROM members WHERE group_id = ?1", [&g.id])?;
                for (i, m) in g.members.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO members (group_id, member_uri, position) VALUES (?1, ?2, ?3)",
                        params![g.id, m, int(u64::try_from(i).unwrap_or(u64::MAX))?],
                    )?;
                }
            }
            let configured: BTreeSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
            let stored: Vec<String> = tx
                .prepare("SELECT group_id FROM groups")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?;
            for g in stored.iter().filter(|g| !configured.contains(g.as_str())) {
                tx.execute("DELETE FROM groups WHERE group_id = ?1", [g])?;
            }
            for g in &lost {
                tx.execute(RETIRE, params![g, now])?;
            }
        }
        tx.commit()?;
        Ok(lost)
    }

    fn members(&mut self, group_id: &str) -> Result<Vec<String>, GmsError> {
        Ok(self
            .conn
            .prepare_cached("SELECT member_uri FROM members WHERE group_id = ?1 ORDER BY position")?
            .query_map([group_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn remove_member(&mut self, group_id: &str, member: &str) -> Result<(), GmsError> {
        self.conn.execute(
            "DELETE FROM members WHERE group_id = ?1 AND member_uri = ?2",
            params![group_id, member],
        )?;
        Ok(())
    }

    fn retire_gmks(&mut self, group_id: &str, now: i64) -> Result<(), GmsError> {
        self.conn.execute(RETIRE, params![group_id, now])?;
        Ok(())
    }

    fn current_gmk(&mut self, group_id: &str, at: i64) -> Result<Option<GmkRow>, GmsError> {
        current(&self.conn, group_id, at)
    }

    fn insert_gmk(
        &mut self,
        group_id: &str,
        row: &GmkRow,
        created: i64,
    ) -> Result<Insert<GmkRow>, GmsError> {
        // IMMEDIATE: the write lock is taken before the check, so that the
        // check and the insert are one step for every other connection.
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        if let Some(existing) = current(&tx, group_id, row.activation)? {
            return Ok(Insert::Existing(existing));
        }
        let inserted = tx.execute(
            "INSERT INTO gmks (gmk_id, group_id, gmk, activation, expiry, created, rand)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (gmk_id) DO NOTHING",
            params![
                row.gmk_id,
                group_id,
                row.sealed,
                row.activation,
                row.expiry,
                created,
                row.rand
            ],
        )?;
        tx.commit()?;
        Ok(if inserted == 1 {
            Insert::Inserted
        } else {
            Insert::IdTaken
        })
    }

    fn record_issue(
        &mut self,
        member: &str,
        group_id: &str,
        gmk_id: i64,
        key_period: i64,
        now: i64,
    ) -> Result<(), GmsError> {
        self.conn.execute(
            "INSERT INTO gktp_issued
                 (member_uri, group_id, gmk_id, key_period, first_unix, last_unix, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1)
             ON CONFLICT(member_uri, gmk_id, key_period)
             DO UPDATE SET last_unix = excluded.last_unix, count = count + 1",
            params![member, group_id, gmk_id, key_period, now],
        )?;
        Ok(())
    }

    fn issued_count(&mut self, member: &str, gmk_id: i64) -> Result<i64, GmsError> {
        let n: Option<i64> = self
            .conn
            .query_row(
                "SELECT SUM(count) FROM gktp_issued WHERE member_uri = ?1 AND gmk_id = ?2",
                params![member, gmk_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        Ok(n.unwrap_or(0))
    }

    fn close(self: Box<Self>) -> Result<(), GmsError> {
        Ok(mcx_kms::close_connection(self.conn)?)
    }
}

/// Ends a group's GMKs in force at a time or to come (?1 group, ?2 time).
const RETIRE: &str =
    "UPDATE gmks SET expiry = ?2 WHERE group_id = ?1 AND (expiry = 0 OR expiry > ?2)";

/// The group's GMK in force at `at`.
fn current(conn: &Connection, group_id: &str, at: i64) -> Result<Option<GmkRow>, GmsError> {
    Ok(conn
        .query_row(
            "SELECT gmk_id, gmk, activation, expiry, rand FROM gmks
             WHERE group_id = ?1 AND activation <= ?2 AND (expiry = 0 OR expiry > ?2)
             ORDER BY activation DESC, created DESC, rowid DESC LIMIT 1",
            params![group_id, at],
            |r| {
                Ok(GmkRow {
                    gmk_id: r.get(0)?,
                    sealed: r.get(1)?,
                    activation: r.get(2)?,
                    expiry: r.get(3)?,
                    rand: r.get(4)?,
                })
            },
        )
        .optional()?)
}
