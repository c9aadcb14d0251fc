//! A sans-IO KMS for 3GPP mission-critical security (TS 33.180 5.2 and
//! Annex D), and the client side of its interface.
//!
//! The KMS issues identity-based keys: every user of its community gets,
//! per key period, an ECCSI signing key (SSK + PVT, RFC 6507) and a SAKKE
//! receiver secret key (RSK, RFC 6508) bound to the user's MIKEY-SAKKE UID
//! (TS 33.180 F.2.1). The crypto is `mcx_ibc`; this crate adds:
//!
//! - [`Kms`]: the service. [`Kms::open`] loads or creates the community
//!   secrets, users and audit log in SQLite ([`Kms::open_at`]: or in a
//!   PostgreSQL database several KMS instances share, see [`db`]); [`Kms::handle`] answers one
//!   [`http::HttpRequest`] (`POST .../init` → KmsInit, `POST .../keyprov` →
//!   KmsKeyProv) with an [`http::HttpResponse`].
//! - [`xml`]: the Annex D documents (`KmsRequest`, `KmsResponse` with
//!   `KmsInit`/`KmsCertificate` or `KmsKeyProv`/`KmsKeySet`), encoded in
//!   schema order and parsed strictly, with typed errors and size limits.
//! - [`client`]: the requests a client sends and the validating parsers of
//!   the answers.
//! - [`secext`]: the TS 33.180 D.1 security extension (InK-signed
//!   responses, TrK-encrypted secret keys) for users configured with keys.
//! - [`at_rest`]: the operator's [`StoreKey`] that seals the secrets in the
//!   store (AES-256-GCM; SQLite or PostgreSQL), and store files created owner-only; the
//!   GMS uses it too. One key set per user and key period is stored, so
//!   every KmsKeyProv of a period returns the same SSK/PVT/RSK.
//!
//! The crate does no network I/O and reads no clock: the tokio adapter in
//! `mcx-server` turns hyper requests into [`http::HttpRequest`]s and passes
//! the time in. Randomness comes from the RNG given to [`Kms::open`], which
//! seeds an internal HMAC_DRBG.
//!
//! # Non-features
//! - The TrK/InK security extension ([`secext`]) protects responses
//!   (InK-signed, TrK-encrypted secret keys) for users configured with
//!   keys; signed *requests* are not produced or checked, and the KMS never
//!   sends new TrKs/InKs (they are provisioned out of band only).
//! - No KMS CertCache, Cert or Discovery requests; no external KMSs.
//! - Authentication is a configured bearer token per user, a stand-in for
//!   the TS 33.180 5.2 IdM access token.
//!
//! See `docs/kms.md` for the XML layout, the store schema and what
//! deviates from Annex D.
#![forbid(unsafe_code)]

pub mod at_rest;
pub mod db;
mod drbg;
mod error;
mod service;
mod store;

pub mod client;
pub mod http;
pub mod secext;
pub mod xml;

use core::fmt;

use zeroize::Zeroize;

pub use at_rest::{StoreKey, StoreKeyError};
pub use db::{DatabaseUrl, StoreLocation};
pub use error::{KmsError, XmlError};
pub use service::Kms;
pub use store::{IssuedRecord, close_connection};

/// The KMS Initialize resource (TS 33.180 D.2.3).
pub const INIT_PATH: &str = "/keymanagement/identity/v1/init";
/// The KMS KeyProvision resource (TS 33.180 D.2.4).
pub const KEY_PROV_PATH: &str = "/keymanagement/identity/v1/keyprov";

/// One user the KMS may provision: its MC service ID URI and the bearer
/// token it authenticates with (a stand-in for the TS 33.180 5.2 IdM
/// access token).
///
/// `Debug` does not print the token or keys; the token is zeroized on
/// drop.
#[derive(Clone)]
pub struct KmsUser {
    /// The MC service ID URI, e.g. `sip:alice@example.org`.
    pub uri: String,
    /// The bearer token.
    ///
    /// # ⚠️ Warning: This value is a credential
    pub token: String,
    /// The user's TrK and InK (TS 33.180 D.1 security extension), shared
    /// with its client out of band: when set, every response to this user
    /// is a `SignedKmsResponse` with TrK-encrypted secret keys.
    pub security: Option<secext::SecurityKeys>,
}

impl fmt::Debug for KmsUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsUser")
            .field("uri", &self.uri)
            .field("token", &"<redacted>")
            .field("security", &self.security.is_some())
            .finish()
    }
}

impl Drop for KmsUser {
    fn drop(&mut self) {
        self.token.zeroize();
    }
}

/// How a [`Kms`] is set up.
#[derive(Clone, Debug)]
pub struct KmsConfig {
    /// The KMS URI (part of every UID), e.g. `kms.example.org`.
    pub kms_uri: String,
    /// UserKeyPeriod: the key period length in seconds.
    pub key_period_len: u64,
    /// UserKeyOffset: the key period offset in seconds (from the NTP epoch).
    pub key_period_offset: u64,
    /// The users the KMS provisions.
    pub users: Vec<KmsUser>,
}
