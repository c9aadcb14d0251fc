//! The GMS's state: groups, members, GMKs and a log of issued GKTPs (no
//! secrets in the log), kept by a storage [`Engine`]: SQLite by default,
//! PostgreSQL for several instances on one database
//! (`mcx_kms::StoreLocation`). Schema in docs/gms.md. GMKs are sealed
//! here, above the engine, under the operator's store key (AES-256-GCM,
//! GMK-ID and group as AAD; see `mcx_kms::at_rest`); a SQLite file is
//! created owner-only before SQLite opens it.

mod pg;
mod sqlite;

use std::sync::{Mutex, PoisonError};

use mcx_kms::StoreLocation;
use mcx_kms::at_rest::StoreKey;
use mcx_mikey::{Gmk, KeyId};
use rand_core::CryptoRng;

use crate::GroupConfig;
use crate::error::GmsError;

/// The schema version this code writes (`meta.schema_version`; "1" kept
/// GMKs in clear and is refused; "2" had no RAND per GMK and is upgraded
/// on open, SQLite only: PostgreSQL stores start at "3").
const SCHEMA_VERSION: &str = "3";

/// The store kind in the check record's identity.
const STORE_KIND: &str = "mcx-gms";

/// Octets of the RAND kept with each GMK.
pub(crate) const RAND_LEN: usize = 16;

/// A `gmks` row as an engine keeps it: the GMK sealed.
pub(crate) struct GmkRow {
    pub(crate) gmk_id: i64,
    pub(crate) sealed: Vec<u8>,
    pub(crate) activation: i64,
    pub(crate) expiry: i64,
    pub(crate) rand: Vec<u8>,
}

/// What [`Engine::insert_gmk`] did.
pub(crate) enum Insert<T> {
    /// The row given is stored.
    Inserted,
    /// Another GMK of the group was in force at the activation time (made
    /// meanwhile by a concurrent request or another instance): that one.
    Existing(T),
    /// The GMK-ID is taken (by another group): draw another.
    IdTaken,
}

/// What a storage engine does: rows in, rows out, GMKs opaque.
pub(crate) trait Engine: Send {
    /// Makes the stored groups and members those of `groups` (groups not
    /// configured are deleted with their GMKs) and, in the same
    /// transaction, retires at `now` the GMKs of groups that lost a
    /// member. Returns those groups' IDs.
    fn sync_groups(&mut self, groups: &[GroupConfig], now: i64) -> Result<Vec<String>, GmsError>;
    /// A group's stored members, in configured order.
    fn members(&mut self, group_id: &str) -> Result<Vec<String>, GmsError>;
    /// Removes a member.
    fn remove_member(&mut self, group_id: &str, member: &str) -> Result<(), GmsError>;
    /// Ends every GMK of the group in force at `now` or to come.
    fn retire_gmks(&mut self, group_id: &str, now: i64) -> Result<(), GmsError>;
    /// The group's GMK in force at `at`: the latest activated one.
    fn current_gmk(&mut self, group_id: &str, at: i64) -> Result<Option<GmkRow>, GmsError>;
    /// Stores `row` unless a GMK of the group is in force at its
    /// activation time, atomically with that check (one GMK per group
    /// and time, however many requests and instances race).
    fn insert_gmk(
        &mut self,
        group_id: &str,
        row: &GmkRow,
        created: i64,
    ) -> Result<Insert<GmkRow>, GmsError>;
    /// Logs a GKTP issued.
    fn record_issue(
        &mut self,
        member: &str,
        group_id: &str,
        gmk_id: i64,
        key_period: i64,
        now: i64,
    ) -> Result<(), GmsError>;
    /// GKTPs issued to `member` for `gmk_id`.
    fn issued_count(&mut self, member: &str, gmk_id: i64) -> Result<i64, GmsError>;
    /// An orderly close (SQLite: WAL checkpointed into the file).
    fn close(self: Box<Self>) -> Result<(), GmsError>;
    /// Whether the last failure was the loss of the connection (a
    /// PostgreSQL restart or fail-over), after which the next call
    /// connects anew.
    fn connection_lost(&self) -> bool {
        false
    }
}

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

/// Database integer of a `u64`.
pub(crate) fn int(v: u64) -> Result<i64, GmsError> {
    i64::try_from(v).map_err(|_| GmsError::Storage("value does not fit a 64-bit integer".into()))
}

fn uint(v: i64) -> Result<u64, GmsError> {
    u64::try_from(v).map_err(|_| GmsError::StorageFormat("negative time or ID stored"))
}

/// The AAD parts of a sealed GMK: its GMK-ID and group.
fn gmk_record<'a>(gmk_id: &'a [u8; 4], group_id: &'a str) -> [&'a [u8]; 3] {
    [b"gmks", gmk_id, group_id.as_bytes()]
}

/// The refusal of a schema version this code does not read.
fn schema_error(version: &str) -> GmsError {
    if version == "1" {
        GmsError::StorageFormat(
            "schema version 1 keeps GMKs in clear; this GMS seals them under a store \
             key and does not convert: start from a new database",
        )
    } else {
        GmsError::StorageFormat("unknown schema version")
    }
}

/// The GMS's state: an engine behind a mutex (each method holds it for
/// its own statements only, so the GMS answers requests concurrently),
/// and the key GMKs are sealed under.
pub(crate) struct Store {
    engine: Mutex<Box<dyn Engine>>,
    key: StoreKey,
    /// Whether other instances share the store (PostgreSQL).
    shared: bool,
}

impl Store {
    /// Opens (creating or migrating the schema if needed) the store at
    /// `location`. A SQLite file or PostgreSQL database needs the
    /// operator's `key`, which must open the store's check record before
    /// anything is written; an in-memory store without one seals under a
    /// random key that dies with it.
    pub(crate) fn open(
        location: StoreLocation<'_>,
        key: Option<&StoreKey>,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, GmsError> {
        let shared = location.is_shared();
        let (engine, key): (Box<dyn Engine>, StoreKey) = match location {
            StoreLocation::Postgres(url) => {
                let key = key.ok_or(mcx_kms::StoreKeyError::Missing)?.clone();
                let new_check = key.check_record(STORE_KIND, rng);
                let engine = pg::Postgres::open(url, &new_check, |check| {
                    key.verify_check_record(STORE_KIND, check)
                })?;
                (Box::new(engine), key)
            }
            StoreLocation::Sqlite(path) => {
                let (engine, key) = sqlite::Sqlite::open(Some(path), key, rng)?;
                (Box::new(engine), key)
            }
            StoreLocation::Memory => {
                let (engine, key) = sqlite::Sqlite::open(None, key, rng)?;
                (Box::new(engine), key)
            }
        };
        Ok(Self {
            engine: Mutex::new(engine),
            key,
            shared,
        })
    }

    /// Whether other instances may change the store meanwhile.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared
    }

    /// Closes the engine in order.
    pub(crate) fn close(self) -> Result<(), GmsError> {
        self.engine
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .close()
    }

    /// Runs `f` on the engine, held for `f` only, and once more if it
    /// failed because the engine lost its connection (a PostgreSQL
    /// restart): the request that meets it is answered, not refused.
    /// (Every statement is a read, an insert-if-absent, an upsert, an
    /// idempotent update or a delete: running one again does no harm.) A
    /// panic while holding the engine left the database committed or
    /// rolled back: go on.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut dyn Engine) -> Result<T, GmsError>,
    ) -> Result<T, GmsError> {
        let mut engine = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        match f(engine.as_mut()) {
            Err(GmsError::Storage(_)) if engine.connection_lost() => f(engine.as_mut()),
            done => done,
        }
    }

    /// See [`Engine::sync_groups`].
    pub(crate) fn sync_groups(
        &self,
        groups: &[GroupConfig],
        now: u64,
    ) -> Result<Vec<String>, GmsError> {
        let now = int(now)?;
        self.with(|e| e.sync_groups(groups, now))
    }

    /// A group's stored members.
    pub(crate) fn members(&self, group_id: &str) -> Result<Vec<String>, GmsError> {
        self.with(|e| e.members(group_id))
    }

    /// Removes `member` from `group_id`'s stored members.
    pub(crate) fn remove_member(&self, group_id: &str, member: &str) -> Result<(), GmsError> {
        self.with(|e| e.remove_member(group_id, member))
    }

    /// Ends every GMK of `group_id` still in force at `now` (expiry = now).
    pub(crate) fn retire_gmks(&self, group_id: &str, now: u64) -> Result<(), GmsError> {
        let now = int(now)?;
        self.with(|e| e.retire_gmks(group_id, now))
    }

    fn open_gmk(&self, group_id: &str, row: GmkRow) -> Result<StoredGmk, GmsError> {
        let gmk_id = KeyId(
            u32::try_from(row.gmk_id)
                .map_err(|_| GmsError::StorageFormat("stored GMK-ID is not 32 bits"))?,
        );
        let plain = self.key.open(
            &gmk_record(&gmk_id.0.to_be_bytes(), group_id),
            &row.sealed,
            "GMK",
        )?;
        let gmk = Gmk::from_bytes(&plain)
            .map_err(|_| GmsError::StorageFormat("stored GMK is not 16 octets"))?;
        let rand = row
            .rand
            .try_into()
            .map_err(|_| GmsError::StorageFormat("stored RAND is not 16 octets"))?;
        Ok(StoredGmk {
            gmk,
            gmk_id,
            rand,
            activation: uint(row.activation)?,
            expiry: uint(row.expiry)?,
        })
    }

    /// The GMK of `group_id` in force at `now`: the latest activated one.
    pub(crate) fn current_gmk(
        &self,
        group_id: &str,
        now: u64,
    ) -> Result<Option<StoredGmk>, GmsError> {
        let now = int(now)?;
        let row = self.with(|e| e.current_gmk(group_id, now))?;
        row.map(|row| self.open_gmk(group_id, row)).transpose()
    }

    /// Stores `g` (made at `now`) unless a GMK of the group is in force
    /// at its activation time (see [`Engine::insert_gmk`]).
    pub(crate) fn insert_gmk(
        &self,
        group_id: &str,
        g: &StoredGmk,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Insert<StoredGmk>, GmsError> {
        let row = GmkRow {
            gmk_id: i64::from(g.gmk_id.0),
            sealed: self.key.seal(
                &gmk_record(&g.gmk_id.0.to_be_bytes(), group_id),
                &g.gmk.as_bytes()[..],
                rng,
            ),
            activation: int(g.activation)?,
            expiry: int(g.expiry)?,
            rand: g.rand.to_vec(),
        };
        let now = int(now)?;
        let done = self.with(|e| e.insert_gmk(group_id, &row, now))?;
        Ok(match done {
            Insert::Inserted => Insert::Inserted,
            Insert::IdTaken => Insert::IdTaken,
            Insert::Existing(row) => Insert::Existing(self.open_gmk(group_id, row)?),
        })
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
        let (key_period, now) = (int(key_period)?, int(now)?);
        let gmk_id = i64::from(gmk_id.0);
        self.with(|e| e.record_issue(member, group_id, gmk_id, key_period, now))
    }

    /// How many GKTPs were issued to `member` for `gmk_id` (tests, audit).
    pub(crate) fn issued_count(&self, member: &str, gmk_id: KeyId) -> Result<u64, GmsError> {
        uint(self.with(|e| e.issued_count(member, i64::from(gmk_id.0)))?)
    }
}
