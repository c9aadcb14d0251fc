//! The KMS service: routes, authentication, issuing and the audit log.

use core::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use mcx_ibc::eccsi::Ksak;
use mcx_ibc::kms::{Community, CommunityPublic};
use mcx_ibc::sakke::MasterSecret;
use mcx_ibc::uid::{NTP_UNIX_OFFSET, key_period_no, key_period_start};
use mcx_idms::jwt::TokenVerifier;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::drbg::{HmacDrbg, SEED_LEN};
use crate::http::{HttpRequest, HttpResponse};
use crate::store::{IssuedRecord, Store, StoredCommunity, StoredUserKeys};
use crate::xml::{KmsCertificate, KmsKeySet, KmsMessage, KmsRequest, KmsResponse};
use crate::{INIT_PATH, KEY_PROV_PATH, KmsConfig, KmsError, StoreKey, StoreLocation};

/// Personalization string of the issuing DRBG.
const DRBG_PERSONALIZATION: &[u8] = b"mcx-kms key issuing HMAC_DRBG v1";

/// A user as the service keeps it: the URI and the SHA-256 of its token.
struct UserRecord {
    uri: String,
    token_sha256: [u8; 32],
    security: Option<crate::secext::SecurityKeys>,
}

/// What a request path asks for.
enum Route {
    Init,
    /// `keyprov`, optionally with the D.2.4 `/<user>/<NTP timestamp>` form.
    KeyProv {
        user: Option<String>,
        at_unix: Option<u64>,
    },
}

/// The KMS: community secrets, users and audit log in SQLite or
/// PostgreSQL, answering Annex D requests through [`Kms::handle`].
///
/// [`Kms::handle`] takes `&self`: requests are answered concurrently (share
/// the KMS in an `Arc`). Issuing keys (an RSK extraction and an ECCSI key
/// pair, milliseconds) runs outside every lock with a DRBG of its own,
/// forked from the KMS's; only the store's statements and the fork itself
/// are serialised.
///
/// `Debug` prints the KMS URI, key period parameters and number of users,
/// never secrets or tokens.
pub struct Kms {
    store: Mutex<Store>,
    community: Community,
    users: Vec<UserRecord>,
    drbg: Mutex<HmacDrbg>,
    /// With one, only IdMS access tokens are accepted (identity from the
    /// token); without, the configured static tokens (labs, tests).
    tokens: Option<TokenVerifier>,
}

impl fmt::Debug for Kms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public = self.community.public();
        f.debug_struct("Kms")
            .field("kms_uri", &public.kms_uri)
            .field("key_period_len", &public.key_period_len)
            .field("key_period_offset", &public.key_period_offset)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn validate_config(config: &KmsConfig) -> Result<Vec<UserRecord>, KmsError> {
    if config.kms_uri.trim().is_empty() {
        return Err(KmsError::Config("kms_uri is empty".into()));
    }
    if config.key_period_len == 0 {
        return Err(KmsError::Config("key_period_len is zero".into()));
    }
    let mut users: Vec<UserRecord> = Vec::with_capacity(config.users.len());
    for user in &config.users {
        if user.uri.trim().is_empty() {
            return Err(KmsError::Config("a user has an empty URI".into()));
        }
        if user.token.is_empty() {
            return Err(KmsError::Config(format!(
                "user {} has an empty token",
                user.uri
            )));
        }
        let hash = token_hash(&user.token);
        if users.iter().any(|u| u.uri == user.uri) {
            return Err(KmsError::Config(format!(
                "user {} is listed twice",
                user.uri
            )));
        }
        if users
            .iter()
            .any(|u| bool::from(u.token_sha256.ct_eq(&hash)))
        {
            return Err(KmsError::Config(format!(
                "user {} shares its token with another user",
                user.uri
            )));
        }
        users.push(UserRecord {
            uri: user.uri.clone(),
            token_sha256: hash,
            security: user.security.clone(),
        });
    }
    Ok(users)
}

impl Kms {
    /// Opens (or creates) the KMS state in SQLite: `db` names the file,
    /// `None` → in memory.
    ///
    /// The secrets are sealed under `store_key` (see [`crate::at_rest`]),
    /// which a database file requires; an in-memory store without one
    /// seals under a random key that dies with it.
    ///
    /// The first open generates the community secrets (ECCSI KSAK, SAKKE
    /// master secret z) with `rng` and stores them; later opens load them,
    /// so the community public keys survive restarts. A stored community
    /// whose KMS URI or key period parameters differ from `config` is an
    /// error (every UID would change). The users table is made to match
    /// `config.users` (upserted; users no longer configured are removed);
    /// only the SHA-256 of each token is stored. `rng` also seeds the
    /// DRBG the KMS issues keys with.
    ///
    /// # Errors
    /// [`KmsError::StoreKey`] if a database file is given without a store
    /// key ([`crate::StoreKeyError::Missing`]) or with another key than the
    /// one it was created with ([`crate::StoreKeyError::WrongKey`]),
    /// [`KmsError::Config`] for an unusable configuration,
    /// [`KmsError::Database`] if SQLite fails, [`KmsError::Crypto`] if the
    /// stored secrets do not decode.
    pub fn open(
        db: Option<&Path>,
        store_key: Option<&StoreKey>,
        config: KmsConfig,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, KmsError> {
        Self::open_at(db.into(), store_key, config, rng)
    }

    /// [`Kms::open`] with the state at `location`: memory, a SQLite file,
    /// or a PostgreSQL database (which a store key is needed for too).
    ///
    /// Several instances may open one PostgreSQL database with the same
    /// configuration and store key, even at the same moment: the first
    /// community stored is the one all of them use (the schema is created
    /// once, under a lock), and the first key set stored for a user and
    /// key period is the one every instance returns.
    ///
    /// # Errors
    /// As [`Kms::open`]; [`KmsError::Database`] if PostgreSQL cannot be
    /// reached.
    pub fn open_at(
        location: StoreLocation<'_>,
        store_key: Option<&StoreKey>,
        config: KmsConfig,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, KmsError> {
        let users = validate_config(&config)?;
        let mut store = Store::open(location, store_key, rng)?;
        let stored = match store.load_community()? {
            Some(stored) => stored,
            None => {
                let community = Community::generate(
                    &config.kms_uri,
                    config.key_period_len,
                    config.key_period_offset,
                    rng,
                )?;
                // Another instance on the same database may store its
                // community first: then that one is ours too.
                store.save_community(
                    &StoredCommunity {
                        kms_uri: config.kms_uri.clone(),
                        key_period_len: config.key_period_len,
                        key_period_offset: config.key_period_offset,
                        ksak: Zeroizing::new(community.ksak().to_bytes().to_vec()),
                        sakke_z: Zeroizing::new(community.sakke_master().to_bytes().to_vec()),
                    },
                    rng,
                )?
            }
        };
        if stored.kms_uri != config.kms_uri
            || stored.key_period_len != config.key_period_len
            || stored.key_period_offset != config.key_period_offset
        {
            return Err(KmsError::Config(format!(
                "the database holds the community of {} (period {} s, offset {} s); \
                 the configuration asks for {} (period {} s, offset {} s)",
                stored.kms_uri,
                stored.key_period_len,
                stored.key_period_offset,
                config.kms_uri,
                config.key_period_len,
                config.key_period_offset
            )));
        }
        let community = Community::from_secrets(
            &stored.kms_uri,
            stored.key_period_len,
            stored.key_period_offset,
            Ksak::from_bytes(&stored.ksak)?,
            MasterSecret::from_bytes(&stored.sakke_z)?,
        )?;
        let rows: Vec<(String, [u8; 32])> = users
            .iter()
            .map(|u| (u.uri.clone(), u.token_sha256))
            .collect();
        store.replace_users(&rows)?;
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        rng.fill_bytes(seed.as_mut());
        let drbg = HmacDrbg::new(seed.as_ref(), DRBG_PERSONALIZATION);
        Ok(Self {
            store: Mutex::new(store),
            community,
            users,
            drbg: Mutex::new(drbg),
            tokens: None,
        })
    }

    /// The community public keys and parameters (what KmsInit publishes).
    pub fn community_public(&self) -> &CommunityPublic {
        self.community.public()
    }

    /// Mixes fresh entropy from `rng` into the DRBG the KMS issues keys
    /// with. A long-running driver may call this now and then.
    pub fn reseed(&mut self, rng: &mut impl CryptoRng) {
        let mut entropy = Zeroizing::new([0u8; SEED_LEN]);
        rng.fill_bytes(entropy.as_mut());
        self.drbg
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .reseed(entropy.as_ref(), b"reseed");
    }

    /// The store, for one short sequence of statements. A request that
    /// panicked holding it left the database committed or rolled back, never
    /// half-written: go on.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A DRBG for one request, seeded from the KMS's (which mixes in
    /// `additional` first), so that the request's crypto runs outside the
    /// lock and two requests never share output.
    fn fork_drbg(&self, additional: &[&[u8]]) -> HmacDrbg {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        {
            let mut drbg = self.drbg.lock().unwrap_or_else(PoisonError::into_inner);
            drbg.mix(additional);
            drbg.generate(seed.as_mut());
        }
        HmacDrbg::new(seed.as_ref(), DRBG_PERSONALIZATION)
    }

    /// The audit log: every key set issued, oldest first (user, key period,
    /// time; never keys).
    ///
    /// # Errors
    /// [`KmsError::Database`] if the database fails.
    pub fn issued(&self) -> Result<Vec<IssuedRecord>, KmsError> {
        self.store().issued()
    }

    /// Closes the store: a WAL, if any, is checkpointed into the database
    /// file and the connection closed (an orderly stop; dropping the KMS
    /// also closes it, but silently).
    ///
    /// # Errors
    /// [`KmsError::Database`] if SQLite cannot checkpoint or close (or
    /// PostgreSQL close).
    pub fn close(self) -> Result<(), KmsError> {
        self.store
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .close()
    }

    /// Serves one HTTP request.
    ///
    /// - `POST /keymanagement/identity/v1/init` → `KmsInit` with the root
    ///   `KmsCertificate` (community public keys, UserKeyPeriod,
    ///   UserKeyOffset).
    /// - `POST /keymanagement/identity/v1/keyprov` → `KmsKeyProv` with the
    ///   authenticated user's `KmsKeySet` for the key period containing
    ///   `now_unix`. The D.2.4 form `.../keyprov/<user URI>/<NTP timestamp
    ///   in hex>` asks for the period containing that time (the current or
    ///   the next period only); the query `?next=1` adds the next period's
    ///   key set as a second `KmsKeySet`.
    ///
    /// Checks, in order: path (404), method (405), `Authorization: Bearer`
    /// token of a configured user (401), `KmsRequest` body (400, naming
    /// the problem; an empty body stands for the token's user, as
    /// libmikey-sakke sends it), `UserUri` (and a D.2.4 path user) equal to the
    /// token's user (403), `KmsUri` equal to this KMS (400). Error bodies
    /// are plain-text reasons and never carry keys. Each key set issued is
    /// recorded in the `issued` table before the response is returned.
    /// For a user configured with TrK/InK ([`crate::KmsUser::security`])
    /// the answer is a `SignedKmsResponse` (TS 33.180 D.1): secret keys
    /// encrypted under the TrK, the response signed with the InK.
    pub fn handle(&self, request: &HttpRequest, now_unix: u64) -> HttpResponse {
        let (path, query) = match request.path.split_once('?') {
            Some((path, query)) => (path, query),
            None => (request.path.as_str(), ""),
        };
        let route = match parse_route(path) {
            Ok(route) => route,
            Err(response) => return response,
        };
        if request.method != "POST" {
            return HttpResponse::error(405, "method not allowed: KMS requests use POST");
        }
        let (user, security) = match self.authenticate(request, now_unix) {
            Ok(index) => match self.users.get(index) {
                Some(user) => (user.uri.clone(), user.security.clone()),
                None => return HttpResponse::error(401, "unknown bearer token"),
            },
            Err(response) => return response,
        };
        // Clients that POST without a KmsRequest body (libmikey-sakke does,
        // when not using the security extension) ask for the token's user,
        // at this KMS, now.
        let kms_request = if request.body.iter().all(u8::is_ascii_whitespace) {
            KmsRequest {
                user_uri: user.clone(),
                kms_uri: self.community.public().kms_uri.clone(),
                time: now_unix,
                client_id: None,
                device_id: None,
                client_req_url: path.to_owned(),
            }
        } else {
            match KmsRequest::from_xml(&request.body) {
                Ok(r) => r,
                Err(e) => return HttpResponse::error(400, &format!("malformed KmsRequest: {e}")),
            }
        };
        if kms_request.user_uri != user {
            return HttpResponse::error(403, "UserUri is not the user the bearer token belongs to");
        }
        if kms_request.kms_uri != self.community.public().kms_uri {
            return HttpResponse::error(400, "KmsUri names another KMS");
        }
        let message = match route {
            Route::Init => KmsMessage::Init(Box::new(self.certificate())),
            Route::KeyProv {
                user: path_user,
                at_unix,
            } => {
                if path_user.is_some_and(|u| u != user) {
                    return HttpResponse::error(
                        403,
                        "the user in the request URI is not the user the bearer token belongs to",
                    );
                }
                let include_next = query.split('&').any(|p| p == "next=1" || p == "next=true");
                match self.key_sets(&user, now_unix, at_unix, include_next) {
                    Ok(sets) => KmsMessage::KeyProv(sets),
                    Err(response) => return response,
                }
            }
        };
        let response = KmsResponse {
            kms_uri: self.community.public().kms_uri.clone(),
            user_uri: user,
            time: now_unix,
            kms_id: None,
            client_req_url: kms_request.client_req_url,
            message,
        };
        // A user with a TrK/InK gets the D.1 security extension.
        match security {
            Some(keys) => {
                let mut drbg = self.fork_drbg(&[b"signed response"]);
                HttpResponse::xml(200, response.to_signed_xml(&keys, &mut drbg))
            }
            None => HttpResponse::xml(200, response.to_xml()),
        }
    }

    /// The index of the user whose token the request bears. Every user's
    /// hash is compared, in constant time.
    /// Accepts only access tokens of the IdMS `verifier` trusts (TS 33.180
    /// B.6.2; scope [`mcx_idms::SCOPE_KMS`]) from now on, taking the user
    /// from the token's `mcptt_id`; configured static tokens no longer
    /// work.
    pub fn require_access_tokens(&mut self, verifier: TokenVerifier) {
        self.tokens = Some(verifier);
    }

    fn authenticate(&self, request: &HttpRequest, now_unix: u64) -> Result<usize, HttpResponse> {
        let token = match request.bearer_token() {
            Some(token) if !token.is_empty() => token,
            _ => {
                return Err(HttpResponse::error(
                    401,
                    "missing bearer token (Authorization: Bearer <token>)",
                ));
            }
        };
        if let Some(v) = &self.tokens {
            // TS 33.180 B.6.2: the identity is the token's, never the
            // request's.
            let claims = v
                .verify(token, mcx_idms::SCOPE_KMS, now_unix)
                .map_err(|e| HttpResponse::error(401, &format!("access token refused: {e}")))?;
            return self
                .users
                .iter()
                .position(|u| u.uri == claims.mcptt_id)
                .ok_or_else(|| HttpResponse::error(403, "the token's user is not a KMS user"));
        }
        let hash = token_hash(token);
        let mut found = 0u64;
        let mut index = 0u64;
        for (i, user) in (0u64..).zip(&self.users) {
            let eq = user.token_sha256.ct_eq(&hash);
            found.conditional_assign(&1, eq);
            index.conditional_assign(&i, eq);
        }
        match (found, usize::try_from(index)) {
            (1, Ok(index)) => Ok(index),
            _ => Err(HttpResponse::error(401, "unknown bearer token")),
        }
    }

    /// The root KMS certificate of this community.
    fn certificate(&self) -> KmsCertificate {
        let public = self.community.public();
        KmsCertificate {
            role: Some("Root".into()),
            kms_uri: public.kms_uri.clone(),
            cert_uri: None,
            issuer: None,
            valid_from: None,
            valid_to: None,
            revoked: Some(false),
            user_id_format: "2".into(),
            user_key_period: public.key_period_len,
            user_key_offset: public.key_period_offset,
            pub_enc_key: public.sakke_public.to_bytes().to_vec(),
            pub_auth_key: public.kpak.to_bytes().to_vec(),
            parameter_set: Some(1),
            kms_domains: Vec::new(),
        }
    }

    /// The keys of `user` for `period`: those issued before in this period,
    /// or new ones, stored (sealed) before they are returned, so that every
    /// request in one key period gets the same SSK/PVT/RSK (one key set
    /// per user and key period, the set `KeyPeriodNo` names).
    fn user_keys(
        &self,
        user: &str,
        period: u64,
        now_unix: u64,
    ) -> Result<StoredUserKeys, KmsError> {
        if let Some(keys) = self.store().user_keys(user, period)? {
            return Ok(keys);
        }
        // Issued outside the store's lock, with a DRBG of this request's own.
        let mut drbg = self.fork_drbg(&[
            b"keyprov",
            user.as_bytes(),
            &period.to_be_bytes(),
            &now_unix.to_be_bytes(),
        ]);
        let keys = self.community.issue(user, period, &mut drbg)?;
        let keys = StoredUserKeys {
            ssk: Zeroizing::new(keys.ssk.to_bytes().to_vec()),
            rsk: Zeroizing::new(keys.rsk.to_bytes().to_vec()),
            pvt: keys.pvt.to_bytes().to_vec(),
        };
        // A concurrent request for the same user and period, here or on
        // another instance sharing the database, may have stored its set
        // meanwhile: that one stands (one set per period).
        self.store().save_user_keys(user, period, &keys, &mut drbg)
    }

    /// Issues and records the key sets a keyprov request gets.
    fn key_sets(
        &self,
        user: &str,
        now_unix: u64,
        at_unix: Option<u64>,
        include_next: bool,
    ) -> Result<Vec<KmsKeySet>, HttpResponse> {
        let public = self.community.public();
        let (len, offset) = (public.key_period_len, public.key_period_offset);
        let current = key_period_no(now_unix, len, offset)
            .map_err(|_| HttpResponse::error(500, "the KMS clock is before key period 0"))?;
        let requested = match at_unix {
            Some(at) => key_period_no(at, len, offset).map_err(|_| {
                HttpResponse::error(403, "the requested time is before key period 0")
            })?,
            None => current,
        };
        if requested != current && Some(requested) != current.checked_add(1) {
            return Err(HttpResponse::error(
                403,
                "only the current or the next key period is issued",
            ));
        }
        let mut periods = vec![requested];
        if include_next && requested == current {
            if let Some(next) = current.checked_add(1) {
                periods.push(next);
            }
        }
        let mut sets = Vec::with_capacity(periods.len());
        for period in periods {
            let keys = self
                .user_keys(user, period, now_unix)
                .map_err(|_| HttpResponse::error(500, "the KMS could not issue keys"))?;
            self.store()
                .record_issue(user, period, now_unix)
                .map_err(|_| HttpResponse::error(500, "the KMS could not record the issue"))?;
            let valid_from = key_period_start(period, len, offset).ok();
            let valid_to = period
                .checked_add(1)
                .and_then(|next| key_period_start(next, len, offset).ok())
                .and_then(|end| end.checked_sub(1));
            sets.push(KmsKeySet {
                kms_uri: self.community.public().kms_uri.clone(),
                cert_uri: None,
                issuer: None,
                user_uri: user.to_owned(),
                user_id: hex::encode(
                    self.community
                        .public()
                        .uid(user, period)
                        .map_err(|_| HttpResponse::error(500, "the KMS could not issue keys"))?,
                ),
                valid_from,
                valid_to,
                key_period_no: period,
                revoked: Some(false),
                user_decrypt_key: keys.rsk,
                user_signing_key_ssk: keys.ssk,
                user_pub_token_pvt: keys.pvt,
            });
        }
        Ok(sets)
    }
}

/// Maps a request path (without query) to a route, or a 404/400 response.
fn parse_route(path: &str) -> Result<Route, HttpResponse> {
    if path == INIT_PATH {
        return Ok(Route::Init);
    }
    let not_found = || HttpResponse::error(404, "no such KMS resource");
    let Some(rest) = path.strip_prefix(KEY_PROV_PATH) else {
        return Err(not_found());
    };
    if rest.is_empty() {
        return Ok(Route::KeyProv {
            user: None,
            at_unix: None,
        });
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(not_found());
    };
    let mut segments = rest.split('/');
    let user = segments
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(not_found)?;
    let user = percent_decode(user)
        .ok_or_else(|| HttpResponse::error(400, "the user in the request URI is not valid"))?;
    let at_unix = match segments.next() {
        None => None,
        Some(ts) => Some(parse_ntp_timestamp(ts).ok_or_else(|| {
            HttpResponse::error(
                400,
                "the timestamp in the request URI is not a 64-bit NTP timestamp in hex",
            )
        })?),
    };
    if segments.next().is_some() {
        return Err(not_found());
    }
    Ok(Route::KeyProv {
        user: Some(user),
        at_unix,
    })
}

/// A 64-bit NTP timestamp (32.32 fixed point, era 0) in hex → Unix seconds.
fn parse_ntp_timestamp(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let ntp = u64::from_str_radix(s, 16).ok()?;
    (ntp >> 32).checked_sub(NTP_UNIX_OFFSET)
}

/// Decodes `%XX` escapes; the result must be UTF-8 without control
/// characters.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = core::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.is_empty() && !s.chars().any(char::is_control)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_timestamps() {
        // TS 33.180 D.2.4's example: 23 Feb 2014 08:39:14 UTC.
        assert_eq!(parse_ntp_timestamp("D6B4323200000000"), Some(1_393_144_754));
        assert_eq!(parse_ntp_timestamp("d6b4323280000000"), Some(1_393_144_754));
        assert_eq!(parse_ntp_timestamp(""), None);
        assert_eq!(parse_ntp_timestamp("00000000FFFFFFFF"), None);
        assert_eq!(parse_ntp_timestamp("D6B43232000000000"), None);
        assert_eq!(parse_ntp_timestamp("+6B4323200000000"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("sip%3Aalice%40example.org").as_deref(),
            Some("sip:alice@example.org")
        );
        assert_eq!(percent_decode("sip:bob@x").as_deref(), Some("sip:bob@x"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%00"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
