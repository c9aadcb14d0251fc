//! The GMS store's PostgreSQL engine: one database that several GMS
//! instances share (docs/deployment.md). Tables as in SQLite, in the
//! schema `mcx_gms`; the version in `meta.schema_version`.

use std::collections::BTreeSet;

use mcx_kms::DatabaseUrl;
use mcx_kms::db::{Connection, locked};
use postgres::{Client, GenericClient};

use super::{Engine, GmkRow, Insert, SCHEMA_VERSION, int, schema_error};
use crate::GroupConfig;
use crate::error::GmsError;

/// The PostgreSQL schema (namespace) of the GMS tables.
const SCHEMA_NAME: &str = "mcx_gms";

/// The advisory lock of schema creation and group sync ("mcx-gms" as an
/// integer), so that instances starting together take turns.
const LOCK: i64 = 0x006d_6378_2d67_6d73;

const SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE groups (
    group_id     TEXT PRIMARY KEY,
    display_name TEXT NOT NULL
);
CREATE TABLE members (
    group_id   TEXT NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    member_uri TEXT NOT NULL,
    position   BIGINT NOT NULL,
    PRIMARY KEY (group_id, member_uri)
);
CREATE TABLE gmks (
    gmk_id     BIGINT PRIMARY KEY,
    group_id   TEXT NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    gmk        BYTEA NOT NULL,
    activation BIGINT NOT NULL,
    expiry     BIGINT NOT NULL,
    created    BIGINT NOT NULL,
    rand       BYTEA NOT NULL
);
CREATE INDEX gmks_by_group ON gmks(group_id, activation);
CREATE TABLE gktp_issued (
    member_uri TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    gmk_id     BIGINT NOT NULL,
    key_period BIGINT NOT NULL,
    first_unix BIGINT NOT NULL,
    last_unix  BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    PRIMARY KEY (member_uri, gmk_id, key_period)
);
";

/// Ends a group's GMKs in force at a time or to come ($1 group, $2 time).
const RETIRE: &str =
    "UPDATE gmks SET expiry = $2 WHERE group_id = $1 AND (expiry = 0 OR expiry > $2)";

pub(super) struct Postgres(Connection);

impl From<postgres::Error> for GmsError {
    #[inline]
    fn from(e: postgres::Error) -> Self {
        // Statements bind their values as parameters and the connection
        // string is not part of the error: no secret in the text.
        Self::Storage(format!("PostgreSQL: {e}"))
    }
}

impl Postgres {
    /// Connects and creates the schema on first use with `new_check` as
    /// the check record; `verify` must accept the stored check record
    /// before the store is used.
    pub(super) fn open(
        url: &DatabaseUrl,
        new_check: &[u8],
        verify: impl FnOnce(&[u8]) -> Result<(), mcx_kms::StoreKeyError>,
    ) -> Result<Self, GmsError> {
        let (conn, meta) =
            Connection::open(url, SCHEMA_NAME, LOCK, SCHEMA, SCHEMA_VERSION, new_check)?;
        let version = meta
            .version
            .ok_or(GmsError::StorageFormat("the store has no schema version"))?;
        let version = String::from_utf8_lossy(&version);
        if version != SCHEMA_VERSION {
            return Err(schema_error(&version));
        }
        verify(
            &meta
                .check
                .ok_or(GmsError::StorageFormat("the store has no key check record"))?,
        )?;
        Ok(Self(conn))
    }

    fn client(&mut self) -> Result<&mut Client, GmsError> {
        Ok(self.0.client()?)
    }
}

/// The group's GMK in force at `at`.
fn current(
    client: &mut impl GenericClient,
    group_id: &str,
    at: i64,
) -> Result<Option<GmkRow>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT gmk_id, gmk, activation, expiry, rand FROM gmks
             WHERE group_id = $1 AND activation <= $2 AND (expiry = 0 OR expiry > $2)
             ORDER BY activation DESC, created DESC, gmk_id DESC LIMIT 1",
            &[&group_id, &at],
        )?
        .map(|r| GmkRow {
            gmk_id: r.get(0),
            sealed: r.get(1),
            activation: r.get(2),
            expiry: r.get(3),
            rand: r.get(4),
        }))
}

impl Engine for Postgres {
    fn sync_groups(&mut self, groups: &[GroupConfig], now: i64) -> Result<Vec<String>, GmsError> {
        let mut positions = Vec::with_capacity(groups.len());
        for g in groups {
            let p: Result<Vec<i64>, GmsError> = (0..g.members.len())
                .map(|i| int(u64::try_from(i).unwrap_or(u64::MAX)))
                .collect();
            positions.push(p?);
        }
        Ok(locked(self.client()?, LOCK, |tx| {
            let mut lost = Vec::new();
            for (g, positions) in groups.iter().zip(&positions) {
                let before: BTreeSet<String> = tx
                    .query(
                        "SELECT member_uri FROM members WHERE group_id = $1",
                        &[&g.id],
                    )?
                    .into_iter()
                    .map(|r| r.get(0))
                    .collect();
                if before.iter().any(|m| !g.members.contains(m)) {
                    lost.push(g.id.clone());
                }
                tx.execute(
                    "INSERT INTO groups (group_id, display_name) VALUES ($1, $2)
                     ON CONFLICT (group_id) DO UPDATE SET display_name = excluded.display_name",
                    &[&g.id, &g.display_name],
                )?;
                tx.execute("DELETE FROM members WHERE group_id = $1", &[&g.id])?;
                tx.execute(
                    "INSERT INTO members (group_id, member_uri, position)
                     SELECT $1, m, p FROM unnest($2::TEXT[], $3::BIGINT[]) AS u(m, p)",
                    &[&g.id, &g.members, positions],
                )?;
            }
            let configured: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
            tx.execute(
                "DELETE FROM groups WHERE group_id <> ALL($1)",
                &[&configured],
            )?;
            for g in &lost {
                tx.execute(RETIRE, &[g, &now])?;
            }
            Ok(lost)
        })?)
    }

    fn members(&mut self, group_id: &str) -> Result<Vec<String>, GmsError> {
        Ok(self
            .client()?
            .query(
                "SELECT member_uri FROM members WHERE group_id = $1 ORDER BY position",
                &[&group_id],
            )?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn remove_member(&mut self, group_id: &str, member: &str) -> Result<(), GmsError> {
        self.client()?.execute(
            "DELETE FROM members WHERE group_id = $1 AND member_uri = $2",
            &[&group_id, &member],
        )?;
        Ok(())
    }

    fn retire_gmks(&mut self, group_id: &str, now: i64) -> Result<(), GmsError> {
        self.client()?.execute(RETIRE, &[&group_id, &now])?;
        Ok(())
    }

    fn current_gmk(&mut self, group_id: &str, at: i64) -> Result<Option<GmkRow>, GmsError> {
        Ok(current(self.client()?, group_id, at)?)
    }

    fn insert_gmk(
        &mut self,
        group_id: &str,
        row: &GmkRow,
        created: i64,
    ) -> Result<Insert<GmkRow>, GmsError> {
        let mut tx = self.client()?.transaction()?;
        // The group's row lock orders every instance's check-and-insert
        // for the group: the second sees the first's GMK (READ COMMITTED
        // reads what committed before each statement).
        tx.execute(
            "SELECT 1 FROM groups WHERE group_id = $1 FOR UPDATE",
            &[&group_id],
        )?;
        if let Some(existing) = current(&mut tx, group_id, row.activation)? {
            tx.commit()?;
            return Ok(Insert::Existing(existing));
        }
        let inserted = tx.execute(
            "INSERT INTO gmks (gmk_id, group_id, gmk, activation, expiry, created, rand)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (gmk_id) DO NOTHING",
            &[
                &row.gmk_id,
                &group_id,
                &row.sealed,
                &row.activation,
                &row.expiry,
                &created,
                &row.rand,
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
        self.client()?.execute(
            "INSERT INTO gktp_issued
                 (member_uri, group_id, gmk_id, key_period, first_unix, last_unix, count)
             VALUES ($1, $2, $3, $4, $5, $5, 1)
             ON CONFLICT (member_uri, gmk_id, key_period)
             DO UPDATE SET last_unix = excluded.last_unix, count = gktp_issued.count + 1",
            &[&member, &group_id, &gmk_id, &key_period, &now],
        )?;
        Ok(())
    }

    fn issued_count(&mut self, member: &str, gmk_id: i64) -> Result<i64, GmsError> {
        Ok(self
            .client()?
            .query_one(
                "SELECT COALESCE(SUM(count), 0)::BIGINT FROM gktp_issued
                 WHERE member_uri = $1 AND gmk_id = $2",
                &[&member, &gmk_id],
            )?
            .get(0))
    }

    fn close(self: Box<Self>) -> Result<(), GmsError> {
        Ok(self.0.close()?)
    }

    fn connection_lost(&self) -> bool {
        self.0.is_lost()
    }
}
