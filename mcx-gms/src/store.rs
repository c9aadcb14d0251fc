//! The GMS's SQLite state: groups, members, GMKs and a log of issued
//! GKTPs (no secrets in the log). Schema in docs/gms.md. GMKs are sealed
//! under the operator's store key (AES-256-GCM, GMK-ID and group as AAD;
//! see `mcx_kms::at_rest`); the file is created owner-only before SQLite
//! opens it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mcx_kms::at_rest::{StoreKey, open_sqlite};
use mcx_mikey::{Gmk, KeyId};
use rand_core::CryptoRng;
use rusqlite::{Connection, OptionalExtension, params};

use crate::GroupConfig;
use crate::error::GmsError;

/// The schema version this code writes (`meta.schema_version`; "1" kept
/// GMKs in clear and is refused; "2" had no RAND per GMK and is upgraded
/// on open: [`upgrade_from_2`]).
const SCHEMA_VERSION: &str = "3";

/// The store kind in the check record's identity.
const STORE_KIND: &str = "mcx-gms";

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

/// Octets of the RAND kept with each GMK.
pub(crate) const RAND_LEN: usize = 16;

/// A stored GMK with its GMK-ID, RAND and validity.
pub(crate) struct StoredGmk {
    pub(crate) gmk: Gmk,
    pub(crate) gmk_id: KeyId,
    /// The RAND of every GKTP of this GMK (TS 33.180 7.4.2: the media
    /// keys of every sender derive from the GMK and this RAND, so all
    /// members must get the same one). Not secret: MIKEY sends it in
    /// clear.
    pub(crate) rand: [u8; RAND_LEN],
    pub(crate) activation: u64,
    /// 0 = no expiry.
    pub(crate) expiry: u64,
}

impl StoredGmk {
    /// Whether the GMK is in force at `now`.
    pub(crate) fn current_at(&self, now: u64) -> bool {
        self.activation <= now && (self.expiry == 0 || self.expiry > now)
    }
}

/// SQLite integer of a `u64`.
pub(crate) fn int(v: u64) -> Result<i64, GmsError> {
    i64::try_from(v).map_err(|_| GmsError::Storage("value does not fit SQLite INTEGER".into()))
}

fn uint(v: i64) -> Result<u64, GmsError> {
    u64::try_from(v).map_err(|_| GmsError::StorageFormat("negative time or ID stored"))
}

/// The AAD parts of a sealed GMK: its GMK-ID and group.
fn gmk_record<'a>(gmk_id: &'a [u8; 4], group_id: &'a str) -> [&'a [u8]; 3] {
    [b"gmks", gmk_id, group_id.as_bytes()]
}

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

/// The GMS's SQLite state. The connection sits behind a mutex so that the
/// GMS can answer requests concurrently: each method holds it for its own
/// statements only (writes stay serialised, as SQLite wants).
pub(crate) struct Store {
    conn: Mutex<Connection>,
    key: StoreKey,
}

impl Store {
    /// Opens (creating if needed) the database; `None` = in memory. A
    /// database file needs the operator's `key`; an in-memory store
    /// without one seals under a random key that dies with it.
    pub(crate) fn open(
        path: Option<&Path>,
        key: Option<&StoreKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, GmsError> {
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
            Some("1") => {
                return Err(GmsError::StorageFormat(
                    "schema version 1 keeps GMKs in clear; this GMS seals them under a store \
                     key and does not convert: start from a new database",
                ));
            }
            Some(_) => return Err(GmsError::StorageFormat("unknown schema version")),
        }
        Ok(Self {
            conn: Mutex::new(conn),
            key,
        })
    }

    /// Checkpoints a WAL, if any, and closes the connection (orderly stop).
    pub(crate) fn close(self) -> Result<(), GmsError> {
        let conn = self
            .conn
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(mcx_kms::close_connection(conn)?)
    }

    /// The connection, for one method's statements. A panic while holding
    /// it left SQLite committed or rolled back: go on.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the stored groups and members those of `groups` (groups not
    /// configured are deleted with their GMKs). Returns the IDs of groups
    /// that lost a member (their GMK must be replaced).
    pub(crate) fn sync_groups(&mut self, groups: &[GroupConfig]) -> Result<Vec<String>, GmsError> {
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction()?;
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
        }
        tx.commit()?;
        Ok(lost)
    }

    /// Removes `member` from `group_id`'s stored members.
    pub(crate) fn remove_member(&self, group_id: &str, member: &str) -> Result<(), GmsError> {
        self.conn().execute(
            "DELETE FROM members WHERE group_id = ?1 AND member_uri = ?2",
            params![group_id, member],
        )?;
        Ok(())
    }

    /// Ends every GMK of `group_id` still in force at `now` (expiry = now).
    pub(crate) fn retire_gmks(&self, group_id: &str, now: u64) -> Result<(), GmsError> {
        self.conn().execute(
            "UPDATE gmks SET expiry = ?2 WHERE group_id = ?1 AND (expiry = 0 OR expiry > ?2)",
            params![group_id, int(now)?],
        )?;
        Ok(())
    }

    /// The GMK of `group_id` in force at `now`: the latest activated one.
    pub(crate) fn current_gmk(
        &self,
        group_id: &str,
        now: u64,
    ) -> Result<Option<StoredGmk>, GmsError> {
        let now = int(now)?;
        let row = self
            .conn()
            .query_row(
                "SELECT gmk_id, gmk, activation, expiry, rand FROM gmks
                 WHERE group_id = ?1 AND activation <= ?2 AND (expiry = 0 OR expiry > ?2)
                 ORDER BY activation DESC, created DESC, rowid DESC LIMIT 1",
                params![group_id, now],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, sealed, activation, expiry, rand)) = row else {
            return Ok(None);
        };
        let gmk_id = KeyId(
            u32::try_from(id)
                .map_err(|_| GmsError::StorageFormat("stored GMK-ID is not 32 bits"))?,
        );
        let plain = self.key.open(
            &gmk_record(&gmk_id.0.to_be_bytes(), group_id),
            &sealed,
            "GMK",
        )?;
        let gmk = Gmk::from_bytes(&plain)
            .map_err(|_| GmsError::StorageFormat("stored GMK is not 16 octets"))?;
        let rand = rand
            .try_into()
            .map_err(|_| GmsError::StorageFormat("stored RAND is not 16 octets"))?;
        Ok(Some(StoredGmk {
            gmk,
            gmk_id,
            rand,
            activation: uint(activation)?,
            expiry: uint(expiry)?,
        }))
    }

    /// Whether a GMK-ID is taken (GMK-IDs are unique across the GMS).
    pub(crate) fn gmk_id_taken(&self, gmk_id: KeyId) -> Result<bool, GmsError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM gmks WHERE gmk_id = ?1",
                [i64::from(gmk_id.0)],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Stores a new GMK.
    pub(crate) fn insert_gmk(
        &self,
        group_id: &str,
        g: &StoredGmk,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<(), GmsError> {
        let sealed = self.key.seal(
            &gmk_record(&g.gmk_id.0.to_be_bytes(), group_id),
            &g.gmk.as_bytes()[..],
            rng,
        );
        self.conn().execute(
            "INSERT INTO gmks (gmk_id, group_id, gmk, activation, expiry, created, rand)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                i64::from(g.gmk_id.0),
                group_id,
                sealed,
                int(g.activation)?,
                int(g.expiry)?,
                int(now)?,
                &g.rand[..]
            ],
        )?;
        Ok(())
    }

    /// Logs that `member` was given a GKTP for `gmk_id` in `key_period`.
    pub(crate) fn record_issue(
        &self,
        member: &str,
        group_id: &str,
        gmk_id: KeyId,
        key_period: u64,
        now: u64,
    ) -> Result<(), GmsError> {
        self.conn().execute(
            "INSERT INTO gktp_issued
                 (member_uri, group_id, gmk_id, key_period, first_unix, last_unix, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1)
             ON CONFLICT(member_uri, gmk_id, key_period)
             DO UPDATE SET last_unix = excluded.last_unix, count = count + 1",
            params![
                member,
                group_id,
                i64::from(gmk_id.0),
                int(key_period)?,
                int(now)?
            ],
        )?;
        Ok(())
    }

    /// How many GKTPs were issued to `member` for `gmk_id` (tests, audit).
    pub(crate) fn issued_count(&self, member: &str, gmk_id: KeyId) -> Result<u64, GmsError> {
        let n: Option<i64> = self
            .conn()
            .query_row(
                "SELECT SUM(count) FROM gktp_issued WHERE member_uri = ?1 AND gmk_id = ?2",
                params![member, i64::from(gmk_id.0)],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        uint(n.unwrap_or(0))
    }
}
