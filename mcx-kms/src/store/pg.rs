//! The KMS store's PostgreSQL engine: one database that several KMS
//! instances share (docs/deployment.md). Tables as in SQLite, in the
//! schema `mcx_kms`; the version in `meta.schema_version`.

use postgres::Client;

use super::{CommunityRow, Engine, SCHEMA_VERSION, UserKeysRow, schema_error};
use crate::KmsError;
use crate::db::{Connection, DatabaseUrl, locked};

/// The PostgreSQL schema (namespace) of the KMS tables.
const SCHEMA_NAME: &str = "mcx_kms";

/// The advisory lock of schema creation and user sync ("mcx-kms" as an
/// integer), so that instances starting together take turns.
const LOCK: i64 = 0x006d_6378_2d6b_6d73;

const SCHEMA: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);
CREATE TABLE user_keys (
    user_uri TEXT NOT NULL,
    key_period_no BIGINT NOT NULL,
    ssk BYTEA NOT NULL,
    rsk BYTEA NOT NULL,
    pvt BYTEA NOT NULL,
    PRIMARY KEY (user_uri, key_period_no)
);
CREATE TABLE community (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    kms_uri TEXT NOT NULL,
    key_period_len BIGINT NOT NULL,
    key_period_offset BIGINT NOT NULL,
    ksak BYTEA NOT NULL,
    sakke_z BYTEA NOT NULL
);
CREATE TABLE users (
    uri TEXT PRIMARY KEY NOT NULL,
    token_sha256 BYTEA NOT NULL
);
CREATE TABLE issued (
    id BIGSERIAL PRIMARY KEY,
    user_uri TEXT NOT NULL,
    key_period_no BIGINT NOT NULL,
    issued_unix BIGINT NOT NULL
);
CREATE INDEX issued_by_user ON issued (user_uri, key_period_no);
";

pub(super) struct Postgres(Connection);

impl From<postgres::Error> for KmsError {
    #[inline]
    fn from(e: postgres::Error) -> Self {
        // Statements bind their values as parameters and the connection
        // string is not part of the error: no secret in the text.
        Self::Database(format!("PostgreSQL: {e}"))
    }
}

impl Postgres {
    /// Connects, creates the schema on first use with `new_check` as the
    /// check record, and returns the stored check record, which the
    /// caller verifies before using the store.
    pub(super) fn open(url: &DatabaseUrl, new_check: &[u8]) -> Result<(Self, Vec<u8>), KmsError> {
        let version = SCHEMA_VERSION.to_string();
        let (conn, meta) = Connection::open(url, SCHEMA_NAME, LOCK, SCHEMA, &version, new_check)?;
        let version = meta
            .version
            .and_then(|v| String::from_utf8(v).ok()?.parse::<i64>().ok())
            .ok_or_else(|| KmsError::Database("the store has no schema version".into()))?;
        if version != SCHEMA_VERSION {
            return Err(schema_error(version));
        }
        let check = meta
            .check
            .ok_or_else(|| KmsError::Database("the store has no key check record".into()))?;
        Ok((Self(conn), check))
    }

    fn client(&mut self) -> Result<&mut Client, KmsError> {
        Ok(self.0.client()?)
    }
}

impl Engine for Postgres {
    fn community(&mut self) -> Result<Option<CommunityRow>, KmsError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT kms_uri, key_period_len, key_period_offset, ksak, sakke_z
                 FROM community WHERE id = 1",
                &[],
            )?
            .map(|r| CommunityRow {
                kms_uri: r.get(0),
                key_period_len: r.get(1),
                key_period_offset: r.get(2),
                ksak: r.get(3),
                sakke_z: r.get(4),
            }))
    }

    fn insert_community(&mut self, c: &CommunityRow) -> Result<CommunityRow, KmsError> {
        self.client()?.execute(
            "INSERT INTO community (id, kms_uri, key_period_len, key_period_offset, ksak, sakke_z)
             VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            &[
                &c.kms_uri,
                &c.key_period_len,
                &c.key_period_offset,
                &c.ksak,
                &c.sakke_z,
            ],
        )?;
        self.community()?.ok_or_else(|| {
            KmsError::Database("the community row is missing after its insert".into())
        })
    }

    fn user_keys(&mut self, user_uri: &str, period: i64) -> Result<Option<UserKeysRow>, KmsError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT ssk, rsk, pvt FROM user_keys WHERE user_uri = $1 AND key_period_no = $2",
                &[&user_uri, &period],
            )?
            .map(|r| UserKeysRow {
                ssk: r.get(0),
                rsk: r.get(1),
                pvt: r.get(2),
            }))
    }

    fn insert_user_keys(
        &mut self,
        user_uri: &str,
        period: i64,
        row: &UserKeysRow,
    ) -> Result<UserKeysRow, KmsError> {
        // A concurrent insert by another instance makes this one wait for
        // its commit and then do nothing: the first set stands.
        self.client()?.execute(
            "INSERT INTO user_keys (user_uri, key_period_no, ssk, rsk, pvt)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_uri, key_period_no) DO NOTHING",
            &[&user_uri, &period, &row.ssk, &row.rsk, &row.pvt],
        )?;
        self.user_keys(user_uri, period)?
            .ok_or_else(|| KmsError::Database("a key set is missing after its insert".into()))
    }

    fn replace_users(&mut self, users: &[(String, [u8; 32])]) -> Result<(), KmsError> {
        let uris: Vec<&str> = users.iter().map(|(u, _)| u.as_str()).collect();
        locked(self.client()?, LOCK, |tx| {
            let upsert = tx.prepare(
                "INSERT INTO users (uri, token_sha256) VALUES ($1, $2)
                 ON CONFLICT (uri) DO UPDATE SET token_sha256 = excluded.token_sha256",
            )?;
            for (uri, hash) in users {
                tx.execute(&upsert, &[uri, &hash.as_slice()])?;
            }
            tx.execute("DELETE FROM users WHERE uri <> ALL($1)", &[&uris])?;
            Ok(())
        })?;
        Ok(())
    }

    fn record_issue(&mut self, user_uri: &str, period: i64, now: i64) -> Result<(), KmsError> {
        self.client()?.execute(
            "INSERT INTO issued (user_uri, key_period_no, issued_unix) VALUES ($1, $2, $3)",
            &[&user_uri, &period, &now],
        )?;
        Ok(())
    }

    fn issued(&mut self) -> Result<Vec<(String, i64, i64)>, KmsError> {
        Ok(self
            .client()?
            .query(
                "SELECT user_uri, key_period_no, issued_unix FROM issued ORDER BY id",
                &[],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn close(self: Box<Self>) -> Result<(), KmsError> {
        Ok(self.0.close()?)
    }

    fn connection_lost(&self) -> bool {
        self.0.is_lost()
    }
}
