//! A sans-IO GMS (group management server) for 3GPP mission-critical
//! services: TS 24.481 group documents carrying each member's GMK in a
//! GKTP, the MIKEY-SAKKE I_MESSAGE of TS 33.180 5.7 and E.2.
//!
//! The GMS owns groups and their members (from [`GmsConfig`]), creates
//! each group's GMK (16 random octets, GMK-ID with purpose tag 0 and 28
//! random bits) with an activation and expiry time, keeps them in SQLite
//! across restarts (or, with [`Gms::open_at`], in a PostgreSQL database
//! several GMS instances share, one GMK per group and time among them), and serves two resources over HTTP ([`Gms::handle`]):
//!
//! - `GET /org.openmobilealliance.groups/users/<user>/index`: the IDs of
//!   the groups the (authenticated) user belongs to, as an RFC 4826
//!   resource list;
//! - `GET /org.openmobilealliance.groups/global/<group>`: the group
//!   document ([`doc`]); for a member it carries one `<mgktp:GKTP>`: the
//!   GMK encrypted (SAKKE) to the member's UID for the key period of the
//!   request time and signed (ECCSI) by the GMS, built fresh per request.
//!
//! An authorised user may also form a temporary group from groups it may
//! regroup (group regroup, TS 23.280 10.2.4; [`regroup`]): the GMS makes
//! its ID and answers only after its driver told the controlling server.
//!
//! Clients build requests and read answers with [`client`]; the member
//! then accepts the GKTP with `mcx_mikey::gmk::GmkReceiver::accept`
//! (`mcx_core::Client::accept_gmk`).
//!
//! The GMS is a KMS user: it signs with its own ECCSI key (SSK/PVT for the
//! GMS URI) and encrypts with the community's SAKKE public key, both given
//! to [`Gms::open`] (the driver fetches them from the KMS).
//!
//! Sans-IO: no sockets, no clock, no OS RNG; time comes in as Unix
//! seconds and randomness as a [`rand_core::CryptoRng`]. The only I/O is
//! the store given to [`Gms::open`] / [`Gms::open_at`]: a SQLite file
//! (created 0600) or a PostgreSQL database; GMKs sealed with AES-256-GCM
//! under the operator's `mcx_kms::StoreKey` either way.
//!
//! Secrets: GMKs held in memory are erased on drop (`mcx_mikey::Gmk`);
//! bearer tokens are compared in constant time and erased on drop;
//! `Debug` prints neither; the crate logs nothing.
//!
//! # Non-features
//! - No XCAP writes of group documents, no XCAP diff or SIP
//!   SUBSCRIBE/NOTIFY of document changes (TS 24.481 8.3): configured
//!   groups are read-only. The only writes are temporary groups on demand
//!   ([`regroup`]: `POST …/regroup`, `DELETE …/global/<temporary group>`
//!   through [`Gms::handle_request`]), held in memory.
//! - No GKTP delivery over SIP (TS 33.180 5.7 allows both).
//! - No MKFC GKTPs, no GKTPs for temporary groups
//!   (`on-network-regrouped-GKTPs`).
//! - The SQLite file as a whole is not encrypted: the GMKs in it are
//!   sealed under the operator's store key (`mcx_kms::at_rest`), group
//!   names and members are not.
//! - No token issuance: bearer tokens are configured (TS 33.180's IdMS
//!   access tokens are out of scope).
#![forbid(unsafe_code)]

use core::fmt;

use zeroize::Zeroize;

pub mod client;
pub mod doc;
mod error;
mod path;
pub mod regroup;
mod service;
mod store;
mod xml;

pub use error::{DocError, GmsError};
pub use service::Gms;

/// One group as configured.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// The MCPTT group ID (a SIP URI).
    pub id: String,
    /// The group's display name.
    pub display_name: String,
    /// The members' MC service IDs.
    pub members: Vec<String>,
}

/// A user allowed to read documents, with its bearer token.
///
/// `Debug` does not print the token; the token is erased on drop.
#[derive(Clone)]
pub struct GmsUser {
    /// The user's MC service ID.
    pub uri: String,
    /// The bearer token the user presents (`Authorization: Bearer ...`).
    ///
    /// # ⚠️ Warning: This value is a credential
    pub token: String,
}

impl fmt::Debug for GmsUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GmsUser")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Drop for GmsUser {
    fn drop(&mut self) {
        self.token.zeroize();
    }
}

/// The GMS configuration.
#[derive(Clone, Debug)]
pub struct GmsConfig {
    /// The GMS's own URI: signer of every GKTP (IDRi), the identity its
    /// KMS keys are for.
    pub gms_uri: String,
    /// The groups (the configuration is authoritative: stored groups not
    /// listed are deleted, members not listed are removed).
    pub groups: Vec<GroupConfig>,
    /// The users who may read documents.
    pub users: Vec<GmsUser>,
    /// Lifetime of a GMK from its activation, seconds (0 = no expiry).
    pub gmk_lifetime_secs: u64,
}

/// A group document as a member receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDocument {
    /// The MCPTT group ID.
    pub group_id: String,
    /// The display name.
    pub display_name: String,
    /// The members' MC service IDs.
    pub members: Vec<String>,
    /// The GKTPs (GMK I_MESSAGEs) in the document, in order: the GMS puts
    /// only those for the requesting member.
    pub gktps: Vec<Vec<u8>>,
}
