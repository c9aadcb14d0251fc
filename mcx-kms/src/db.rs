//! Where a KMS or GMS keeps its state: the embedded SQLite default (a
//! file, or memory), or a PostgreSQL database that several instances
//! share (docs/deployment.md).
//!
//! # Why the `postgres` crate
//! `postgres` (the synchronous face of `tokio-postgres`, from the
//! rust-postgres project) is the maintained, pure-Rust PostgreSQL client
//! most Rust services use; it speaks the wire protocol itself (no libpq),
//! supports SCRAM-SHA-256 passwords, and being synchronous it fits the
//! stores' blocking interface: the services run on the blocking pool of
//! the tokio driver, as they do with SQLite. An ORM or a pool crate would
//! add much for the few statements the stores run over one connection
//! each.
//!
//! The connection is not TLS-protected (no TLS connector is linked): run
//! PostgreSQL on a local socket or a private network. Every secret the
//! stores keep is sealed under the operator's store key before it leaves
//! the process ([`crate::at_rest`]), so the database and the wire carry
//! only sealed values, token hashes, URIs and times.
//!
//! The database URL names a password: [`DatabaseUrl`]'s `Debug` and
//! `Display` never print it.

use core::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Environment variable with the KMS's PostgreSQL URL (`mcx run`/`mcx
/// up`; overrides the topology's `database_url`).
pub const KMS_DATABASE_URL_ENV: &str = "MCX_KMS_DATABASE_URL";
/// Environment variable with the GMS's PostgreSQL URL.
pub const GMS_DATABASE_URL_ENV: &str = "MCX_GMS_DATABASE_URL";

/// How long connecting to PostgreSQL may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL connection string (`postgres://user:password@host:port/db`
/// or `host=... user=... password=...`), parsed when made.
///
/// `Debug` and `Display` show user, hosts, ports and database only, never
/// the password.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: postgres::Config,
}

impl DatabaseUrl {
    /// Parses a connection string.
    ///
    /// # Errors
    /// A reason (without the string, which may hold a password) if it is
    /// not a PostgreSQL connection string.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut config = postgres::Config::from_str(text.trim())
            .map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
        if config.get_hosts().is_empty() {
            return Err("the PostgreSQL connection string names no host".into());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(Self { config })
    }

    /// The URL from environment variable `var`, if set.
    ///
    /// # Errors
    /// As [`Self::parse`], naming the variable.
    pub fn from_env(var: &str) -> Result<Option<Self>, String> {
        match std::env::var(var) {
            Ok(v) => Self::parse(&v).map(Some).map_err(|e| format!("{var}: {e}")),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{var} is not UTF-8")),
        }
    }

    /// Opens one connection whose statements see only the tables in
    /// `schema` (the KMS and the GMS may share a database; a store
    /// creates its schema under its lock, see [`Connection::open`]).
    /// Tools and tests use it to look into a store.
    ///
    /// # Errors
    /// The database's.
    pub fn connect(&self, schema: &str) -> Result<postgres::Client, postgres::Error> {
        let mut client = self.config.connect(postgres::NoTls)?;
        client.batch_execute(&format!("SET search_path TO {schema}"))?;
        Ok(client)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgres://")?;
        if let Some(user) = self.config.get_user() {
            write!(f, "{user}")?;
            if self.config.get_password().is_some() {
                f.write_str(":<redacted>")?;
            }
            f.write_str("@")?;
        }
        let ports = self.config.get_ports();
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match host {
                postgres::config::Host::Tcp(h) => write!(f, "{h}")?,
                postgres::config::Host::Unix(p) => write!(f, "[{}]", p.display())?,
            }
            if let Some(port) = ports.get(i).or_else(|| ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        write!(f, "/{}", self.config.get_dbname().unwrap_or(""))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Where a store lives.
#[derive(Clone, Copy, Debug)]
pub enum StoreLocation<'a> {
    /// SQLite in memory: gone when the process ends (tests, demos).
    Memory,
    /// A SQLite file on this host (the default).
    Sqlite(&'a Path),
    /// A PostgreSQL database, which several instances may share.
    Postgres(&'a DatabaseUrl),
}

impl<'a> From<Option<&'a Path>> for StoreLocation<'a> {
    /// `None` → memory, `Some(path)` → that SQLite file.
    fn from(path: Option<&'a Path>) -> Self {
        path.map_or(Self::Memory, Self::Sqlite)
    }
}

impl StoreLocation<'_> {
    /// Whether other processes may change the store (they may only on
    /// PostgreSQL): a service then reads what may have changed instead of
    /// trusting what it holds in memory.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// A store's connection to PostgreSQL, made anew when the server closed
/// it (a PostgreSQL restart or fail-over), so that an instance goes on
/// afterwards.
///
/// The `postgres` client blocks on a tokio runtime of its own: call the
/// store from a thread that may block (the drivers' blocking pool), never
/// from an async task. Dropping and closing are safe anywhere: they run
/// on a thread of their own.
pub struct Connection {
    url: DatabaseUrl,
    schema: &'static str,
    /// `None` only after a failed reconnect or once closed.
    client: Option<postgres::Client>,
}

/// What [`Connection::open`] found in `meta`.
pub struct Meta {
    /// `schema_version`.
    pub version: Option<Vec<u8>>,
    /// `store_check`: the store key's check record.
    pub check: Option<Vec<u8>>,
}

impl Connection {
    /// Connects to `schema` and, on first use, creates it: the `tables`
    /// (which must include `meta (key TEXT PRIMARY KEY, value BYTEA)`)
    /// with `version` and `new_check` in `meta`. All under the advisory
    /// lock `lock`, so that instances starting together create it once.
    /// Returns what `meta` holds, for the caller to check before use.
    ///
    /// # Errors
    /// The database's.
    pub fn open(
        url: &DatabaseUrl,
        schema: &'static str,
        lock: i64,
        tables: &str,
        version: &str,
        new_check: &[u8],
    ) -> Result<(Self, Meta), postgres::Error> {
        let mut client = url.connect(schema)?;
        let meta = locked(&mut client, lock, |tx| {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
            let exists: bool = tx
                .query_one(
                    "SELECT to_regclass($1) IS NOT NULL",
                    &[&format!("{schema}.meta")],
                )?
                .get(0);
            if !exists {
                tx.batch_execute(tables)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', $1), ('store_check', $2)",
                    &[&version.as_bytes(), &new_check],
                )?;
            }
            let mut get = |key: &str| {
                tx.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                    .map(|r| r.map(|r| r.get::<_, Vec<u8>>(0)))
            };
            Ok(Meta {
                version: get("schema_version")?,
                check: get("store_check")?,
            })
        })?;
        Ok((
            Self {
                url: url.clone(),
                schema,
                client: Some(client),
            },
            meta,
        ))
    }

    /// The connection, made anew if the server closed it.
    ///
    /// # Errors
    /// The database's, if connecting anew fails.
    pub fn client(&mut self) -> Result<&mut postgres::Client, postgres::Error> {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            dead => {
                if let Some(dead) = dead {
                    off_async(move || drop(dead));
                }
                self.url.connect(self.schema)?
            }
        };
        Ok(self.client.insert(client))
    }

    /// Whether the connection is gone (the server closed it): the next
    /// [`Connection::client`] connects anew.
    pub fn is_lost(&self) -> bool {
        self.client.as_ref().is_none_or(postgres::Client::is_closed)
    }

    /// Closes the connection in order (a thread of its own does it).
    ///
    /// # Errors
    /// The database's.
    pub fn close(mut self) -> Result<(), postgres::Error> {
        match self.client.take() {
            Some(client) => off_async(move || client.close()),
            None => Ok(()),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // postgres::Client's drop blocks on its runtime, which panics on
        // a thread that drives async tasks (a service dropped there).
        if let Some(client) = self.client.take() {
            off_async(move || drop(client));
        }
    }
}

/// Runs `f` on a new thread and waits for it: blocking on the `postgres`
/// client's runtime is refused on a thread that drives async tasks.
fn off_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Runs `body` in a transaction that first takes the transaction-scoped
/// advisory lock `lock`, so that instances changing the same things
/// (schema creation, configuration sync) take turns and never interleave.
///
/// # Errors
/// The database's.
pub fn locked<T>(
    client: &mut postgres::Client,
    lock: i64,
    body: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])?;
    let value = body(&mut tx)?;
    tx.commit()?;
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        for text in [
            "postgres://mcx:s3cr3t-pw@db.example.org:5433/mcx",
            "host=db.example.org port=5433 user=mcx password=s3cr3t-pw dbname=mcx",
        ] {
            let url = DatabaseUrl::parse(text).unwrap();
            let shown = format!("{url} {url:?}");
            assert!(!shown.contains("s3cr3t-pw"), "{shown}");
            assert!(shown.contains("postgres://mcx:<redacted>@db.example.org:5433/mcx"));
        }
        let err = DatabaseUrl::parse("postgres://mcx:s3cr3t-pw@db:notaport/x").unwrap_err();
        assert!(!err.contains("s3cr3t-pw"), "{err}");
        assert!(DatabaseUrl::parse("user=mcx").is_err(), "no host");
    }
}
