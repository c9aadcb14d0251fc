//! The GMS service: configuration, GMK lifecycle, HTTP handling.

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mcx_kms::StoreLocation;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_idms::jwt::TokenVerifier;
use mcx_kms::StoreKey;
use mcx_kms::http::{HttpRequest, HttpResponse};
use mcx_mikey::gmk::{GmkMessage, gmk_key_parameters};
use mcx_mikey::message::Sp;
use mcx_mikey::wire::Purpose;
use mcx_mikey::{Gmk, KeyId};
use rand_core::CryptoRng;

use crate::doc::{self, Document, Gktp};
use crate::error::GmsError;
use crate::path::{self, Route};
use crate::store::{Insert, RAND_LEN, Store, StoredGmk};
use crate::{GmsConfig, GmsUser};

mod regroup;

/// Largest time the key parameters carry (40 bits, TS 33.180 E.6).
const MAX_KEY_PARAMS_TIME: u64 = (1 << 40) - 1;

/// Signing keys kept for at most this many key periods (the newest).
const MAX_SIGNERS: usize = 3;

/// Attempts at drawing a GMK-ID not used before.
const GMK_ID_ATTEMPTS: usize = 32;

struct GroupState {
    members: Vec<String>,
    display_name: String,
    gmk: Option<StoredGmk>,
}

/// The GMS: groups, members, GMKs (in SQLite or PostgreSQL) and the HTTP
/// resources that give members their GKTPs. Sans-IO: [`Gms::handle`] maps one
/// request to one response. It takes `&self`, so requests are answered
/// concurrently (share the GMS in an `Arc`): GKTPs (a SAKKE encapsulation
/// and an ECCSI signature each) are built under a shared read lock of the
/// groups; making a GMK and each store statement are serialised.
pub struct Gms {
    store: Store,
    gms_uri: String,
    kms: CommunityPublic,
    signers: BTreeMap<u64, SigningKey>,
    groups: RwLock<BTreeMap<String, GroupState>>,
    /// Held while a GMK is looked up and made, so that concurrent requests
    /// never make two for the same group and time.
    making_gmk: Mutex<()>,
    users: Vec<GmsUser>,
    gmk_lifetime_secs: u64,
    /// With one, only IdMS access tokens are accepted (identity from the
    /// token); without, the configured static tokens (labs, tests).
    tokens: Option<TokenVerifier>,
    /// Temporary groups on demand (group regroup).
    regroups: Mutex<regroup::Regroups>,
}

impl fmt::Debug for Gms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gms")
            .field("gms_uri", &self.gms_uri)
            .field("kms_uri", &self.kms.kms_uri)
            .field("groups", &self.groups().keys().collect::<Vec<_>>())
            .field("users", &self.users.len())
            .field(
                "signing_key_periods",
                &self.signers.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn config_err(msg: impl Into<String>) -> GmsError {
    GmsError::Config(msg.into())
}

fn validate(config: &GmsConfig) -> Result<(), GmsError> {
    doc::check_uri("gms_uri", &config.gms_uri).map_err(|e| config_err(e.to_string()))?;
    if config.groups.len() > doc::MAX_GROUPS {
        return Err(config_err(format!("more than {} groups", doc::MAX_GROUPS)));
    }
    let mut ids = BTreeSet::new();
    for g in &config.groups {
        doc::check_uri("group id", &g.id).map_err(|e| config_err(e.to_string()))?;
        if !ids.insert(g.id.as_str()) {
            return Err(config_err(format!("group {} is listed twice", g.id)));
        }
        doc::check_text("display_name", &g.display_name, doc::MAX_DISPLAY_NAME_LEN)
            .map_err(|e| config_err(format!("group {}: {e}", g.id)))?;
        if g.members.len() > doc::MAX_MEMBERS {
            return Err(config_err(format!(
                "group {}: more than {} members",
                g.id,
                doc::MAX_MEMBERS
            )));
        }
        let mut members = BTreeSet::new();
        for m in &g.members {
            doc::check_uri("member", m).map_err(|e| config_err(format!("group {}: {e}", g.id)))?;
            if !members.insert(m.as_str()) {
                return Err(config_err(format!(
                    "group {}: member {m} listed twice",
                    g.id
                )));
            }
        }
    }
    let mut uris = BTreeSet::new();
    let mut tokens = BTreeSet::new();
    for u in &config.users {
        doc::check_uri("user", &u.uri).map_err(|e| config_err(e.to_string()))?;
        if !uris.insert(u.uri.as_str()) {
            return Err(config_err(format!("user {} is listed twice", u.uri)));
        }
        if u.token.is_empty() || u.token.len() > 4096 {
            return Err(config_err(format!(
                "user {}: token is empty or too long",
                u.uri
            )));
        }
        if !u.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(config_err(format!(
                "user {}: token must be printable ASCII without spaces",
                u.uri
            )));
        }
        if !tokens.insert(u.token.as_str()) {
            return Err(config_err(format!("user {}: token is not unique", u.uri)));
        }
    }
    Ok(())
}

/// Checks `keys` are the GMS's, issued by this KMS, and makes the signer.
fn signer_of(
    kms: &CommunityPublic,
    gms_uri: &str,
    keys: UserKeys,
) -> Result<(u64, SigningKey), GmsError> {
    if keys.user_uri != gms_uri {
        return Err(config_err(format!(
            "GMS keys are for {}, not for the GMS URI {gms_uri}",
            keys.user_uri
        )));
    }
    let uid = kms.uid(gms_uri, keys.key_period_no)?;
    if uid != keys.uid {
        return Err(config_err(
            "GMS keys' UID is not the GMS URI's UID under this KMS for their key period",
        ));
    }
    let period = keys.key_period_no;
    let (signer, _) = keys.into_validated(kms)?;
    Ok((period, signer))
}

/// Bytes equal, in time independent of where they differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// A new GMK for `group_id`, active from `activation` for `lifetime`
/// seconds, stored (made at `now`), with the one RAND all its GKTPs will
/// carry (TS 33.180 7.4.2) — unless a GMK of the group is in force at
/// `activation` by then (made meanwhile by a concurrent request or by
/// another instance sharing the store): then that one, so that a group
/// has one GMK at a time however many make one at once.
fn new_gmk(
    store: &Store,
    group_id: &str,
    (activation, now): (u64, u64),
    lifetime: u64,
    rng: &mut impl CryptoRng,
) -> Result<StoredGmk, GmsError> {
    let expiry = if lifetime == 0 {
        0
    } else {
        activation.saturating_add(lifetime).min(MAX_KEY_PARAMS_TIME)
    };
    for _ in 0..GMK_ID_ATTEMPTS {
        let mut rand = [0u8; RAND_LEN];
        rng.fill_bytes(&mut rand);
        let candidate = StoredGmk {
            gmk: Gmk::generate(rng),
            gmk_id: KeyId::generate(Purpose::Gmk, rng)?,
            rand,
            activation,
            expiry,
        };
        match store.insert_gmk(group_id, &candidate, now, rng)? {
            Insert::Inserted => return Ok(candidate),
            Insert::Existing(stored) => return Ok(stored),
            Insert::IdTaken => {}
        }
    }
    Err(GmsError::StorageFormat("no unused GMK-ID found"))
}

type Answer = Result<HttpResponse, HttpResponse>;

impl Gms {
    /// Opens or creates the state (`None` = in-memory SQLite), makes the
    /// stored groups and members those of `config` (a group that lost a
    /// member gets a new GMK: the old one is retired at `now`), and gives
    /// every group without a GMK in force at `now` a new one (random from
    /// `rng`, active from `now` for `gmk_lifetime_secs`). GMKs persist
    /// across reopen.
    ///
    /// `gms_keys` are the GMS's KMS keys (SSK/PVT for `config.gms_uri`)
    /// for one key period; add keys for later periods with
    /// [`Gms::add_gms_keys`].
    ///
    /// # Errors
    /// [`GmsError::Config`] for an invalid configuration or keys of
    /// another identity, [`GmsError::Keys`] if the keys were not issued by
    /// this KMS, [`GmsError::Storage`]/[`GmsError::StorageFormat`] for the
    /// database, [`GmsError::StoreKey`] for a database file without
    /// `store_key` or with another key than it was created with (GMKs are
    /// sealed under it; an in-memory store without one uses a random key).
    pub fn open(
        db: Option<&Path>,
        store_key: Option<&StoreKey>,
        config: GmsConfig,
        community: CommunityPublic,
        gms_keys: UserKeys,
        now_unix: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, GmsError> {
        Self::open_at(
            db.into(),
            store_key,
            config,
            community,
            gms_keys,
            now_unix,
            rng,
        )
    }

    /// [`Gms::open`] with the state at `location`: memory, a SQLite file,
    /// or a PostgreSQL database (which needs a store key too).
    ///
    /// Several instances may open one PostgreSQL database with the same
    /// configuration and store key, even at the same moment: the groups
    /// are synchronised once (under a lock), a group gets one GMK (and
    /// one RAND) however many instances make one at once, and each
    /// instance reads a group's members and GMK in force from the
    /// database on every group document request, so that a GMK one
    /// instance rolled ([`Gms::remove_member`], an expiry) is the one all
    /// of them serve.
    ///
    /// # Errors
    /// As [`Gms::open`]; [`GmsError::Storage`] if PostgreSQL cannot be
    /// reached.
    pub fn open_at(
        location: StoreLocation<'_>,
        store_key: Option<&StoreKey>,
        config: GmsConfig,
        community: CommunityPublic,
        gms_keys: UserKeys,
        now_unix: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, GmsError> {
        validate(&config)?;
        let (period, signer) = signer_of(&community, &config.gms_uri, gms_keys)?;
        let store = Store::open(location, store_key, rng)?;
        store.sync_groups(&config.groups, now_unix)?;
        let mut groups = BTreeMap::new();
        for g in &config.groups {
            let gmk = match store.current_gmk(&g.id, now_unix)? {
                Some(gmk) => gmk,
                None => new_gmk(
                    &store,
                    &g.id,
                    (now_unix, now_unix),
                    config.gmk_lifetime_secs,
                    rng,
                )?,
            };
            groups.insert(
                g.id.clone(),
                GroupState {
                    members: g.members.clone(),
                    display_name: g.display_name.clone(),
                    gmk: Some(gmk),
                },
            );
        }
        let mut signers = BTreeMap::new();
        signers.insert(period, signer);
        Ok(Self {
            store,
            gms_uri: config.gms_uri.clone(),
            kms: community,
            signers,
            groups: RwLock::new(groups),
            making_gmk: Mutex::new(()),
            users: config.users.clone(),
            gmk_lifetime_secs: config.gmk_lifetime_secs,
            tokens: None,
            regroups: Mutex::default(),
        })
    }

    /// Adds the GMS's keys for another key period (e.g. the next one,
    /// fetched from the KMS before the period starts). Keys for the
    /// newest three periods are kept.
    ///
    /// # Errors
    /// As the keys check of [`Gms::open`].
    pub fn add_gms_keys(&mut self, keys: UserKeys) -> Result<(), GmsError> {
        let (period, signer) = signer_of(&self.kms, &self.gms_uri, keys)?;
        self.signers.insert(period, signer);
        while self.signers.len() > MAX_SIGNERS {
            self.signers.pop_first();
        }
        Ok(())
    }

    /// Closes the store: a WAL, if any, is checkpointed into the database
    /// file and the connection closed (an orderly stop; dropping the GMS
    /// also closes it, but silently).
    ///
    /// # Errors
    /// [`GmsError::Storage`] if SQLite cannot checkpoint or close (or
    /// PostgreSQL close).
    pub fn close(self) -> Result<(), GmsError> {
        self.store.close()
    }

    /// The GMS URI.
    pub fn gms_uri(&self) -> &str {
        &self.gms_uri
    }

    /// The configured group IDs.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups().keys().cloned().collect()
    }

    /// The groups, read. A request that panicked while writing left them
    /// as they were or with its new GMK in place: go on.
    fn groups(&self) -> RwLockReadGuard<'_, BTreeMap<String, GroupState>> {
        self.groups.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The GMK-ID of a group's GMK (the one last put in force), if the
    /// group exists. Not secret.
    pub fn gmk_id(&self, group_id: &str) -> Option<KeyId> {
        self.groups().get(group_id)?.gmk.as_ref().map(|g| g.gmk_id)
    }

    /// How many GKTPs were issued to `member` for the GMK `gmk_id` (the
    /// `gktp_issued` log).
    ///
    /// # Errors
    /// [`GmsError::Storage`].
    pub fn gktps_issued(&self, member: &str, gmk_id: KeyId) -> Result<u64, GmsError> {
        self.store.issued_count(member, gmk_id)
    }

    /// Answers one request (see the crate docs for the resources).
    ///
    /// `GET` only (405 otherwise); `Authorization: Bearer <token>` of a
    /// configured user (401 if missing or unknown); a user may read only
    /// its own index (403) and only documents of groups it is a member of
    /// (403, never a GKTP); 400 for a malformed path, 404 for an unknown
    /// resource or group; 503 if the GMS has no signing key for the key
    /// period of `now_unix`; 500 if storage or message building fails.
    /// Every error has a plain-text reason body; none contains a secret.
    ///
    /// A group document for a member carries one GKTP: the group's GMK in
    /// force at `now_unix` (a new one is made from `rng` if the last one
    /// expired) encrypted to the member's UID for the key period of
    /// `now_unix`, time-stamped `now_unix` and signed by the GMS; once
    /// that GMK has at most half its lifetime left, a second GKTP with
    /// the next GMK (active from the current one's expiry, made on the
    /// first such request), so that members polling hold it before the
    /// current one expires. GKTPs are built fresh per request (so the
    /// client's replay cache never sees the same message twice); each
    /// issue is logged in `gktp_issued`. Every GKTP of one GMK, for every
    /// member and on every request, carries the RAND drawn when the GMK
    /// was made (TS 33.180 7.4.2: media keys derive from GMK and RAND).
    pub fn handle(
        &self,
        request: &HttpRequest,
        now_unix: u64,
        rng: &mut impl CryptoRng,
    ) -> HttpResponse {
        self.answer(request, now_unix, rng)
            .unwrap_or_else(|error| error)
    }

    fn answer(&self, request: &HttpRequest, now: u64, rng: &mut impl CryptoRng) -> Answer {
        if request.path.len() > path::MAX_PATH_LEN {
            return Err(HttpResponse::error(400, "request path too long"));
        }
        if request.path.contains(['?', '#']) {
            return Err(HttpResponse::error(
                400,
                "query and fragment are not supported",
            ));
        }
        let route = path::route(&request.path)
            .ok_or_else(|| HttpResponse::error(404, "no such resource"))?;
        if request.method != "GET" {
            return Err(HttpResponse::error(405, "method not allowed: use GET"));
        }
        let user = self.authenticate(request, now)?;
        match route {
            Route::Index(seg) => {
                let asked = decode(&seg, "user")?;
                if asked != self.users[user].uri {
                    return Err(HttpResponse::error(
                        403,
                        "the path names another user than the authenticated one",
                    ));
                }
                Ok(self.index(user))
            }
            Route::Group(seg) => {
                let group_id = decode(&seg, "group")?;
                self.group_document(user, &group_id, now, rng)
            }
        }
    }

    /// The index of the user's groups.
    fn index(&self, user: usize) -> HttpResponse {
        let uri = &self.users[user].uri;
        let ids: Vec<String> = self
            .groups()
            .iter()
            .filter(|(_, g)| g.members.iter().any(|m| m == uri))
            .map(|(id, _)| id.clone())
            .collect();
        HttpResponse::with_body(200, doc::INDEX_CONTENT_TYPE, doc::encode_index(&ids))
    }

    /// Index of the configured user whose token the request bears.
    /// Accepts only access tokens of the IdMS `verifier` trusts (TS 33.180
    /// B.6.2; scope [`mcx_idms::SCOPE_GMS`]) from now on, taking the user
    /// from the token's `mcptt_id`; configured static tokens no longer
    /// work.
    pub fn require_access_tokens(&mut self, verifier: TokenVerifier) {
        self.tokens = Some(verifier);
    }

    fn authenticate(&self, request: &HttpRequest, now_unix: u64) -> Result<usize, HttpResponse> {
        let token = request
            .bearer_token()
            .ok_or_else(|| HttpResponse::error(401, "missing bearer token"))?;
        if let Some(v) = &self.tokens {
            let claims = v
                .verify(token, mcx_idms::SCOPE_GMS, now_unix)
                .map_err(|e| HttpResponse::error(401, &format!("access token refused: {e}")))?;
            return self
                .users
                .iter()
                .position(|u| u.uri == claims.mcptt_id)
                .ok_or_else(|| HttpResponse::error(403, "the token's user is not a GMS user"));
        }
        // Compare with every user's token, without stopping at a match.
        let mut found = None;
        for (i, u) in self.users.iter().enumerate() {
            if ct_eq(u.token.as_bytes(), token.as_bytes()) {
                found = Some(i);
            }
        }
        found.ok_or_else(|| HttpResponse::error(401, "invalid bearer token"))
    }

    fn group_document(
        &self,
        user: usize,
        group_id: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Answer {
        let member = self.users[user].uri.clone();
        if self.store.is_shared() {
            self.refresh(group_id, now)
                .map_err(|e| internal("shared store", &e))?;
        }
        let is_member = self
            .groups()
            .get(group_id)
            .ok_or_else(|| HttpResponse::error(404, "no such group"))?
            .members
            .contains(&member);
        if !is_member {
            return Err(HttpResponse::error(403, "not a member of this group"));
        }
        let period =
            mcx_ibc::uid::key_period_no(now, self.kms.key_period_len, self.kms.key_period_offset)
                .map_err(|e| internal("key period", &e))?;
        if !self.signers.contains_key(&period) {
            return Err(HttpResponse::error(
                503,
                &format!("the GMS has no signing key for key period {period}"),
            ));
        }
        self.ensure_gmk(group_id, now, rng)
            .map_err(|e| internal("GMK", &e))?;
        let next = self
            .next_gmk(group_id, now, rng)
            .map_err(|e| internal("next GMK", &e))?;
        // Shared with other requests: the GKTPs' crypto runs concurrently.
        let groups = self.groups();
        let (Some(group), Some(signer)) = (groups.get(group_id), self.signers.get(&period)) else {
            return Err(HttpResponse::error(500, "internal error: state changed"));
        };
        let Some(gmk) = group.gmk.as_ref() else {
            return Err(HttpResponse::error(500, "internal error: no GMK"));
        };
        let mut gktps = Vec::with_capacity(2);
        for gmk in [Some(gmk), next.as_ref()].into_iter().flatten() {
            let i_message = GmkMessage {
                gms_uri: &self.gms_uri,
                member_uri: &member,
                kms: &self.kms,
                gmk: &gmk.gmk,
                gmk_id: gmk.gmk_id,
                key_params: Some(gmk_key_parameters(group_id, gmk.activation, gmk.expiry)),
                policy: Some(Sp::default_group_profile()),
                identity_hiding: false,
                t_unix: now,
                key_params_date_time: None,
            }
            .sign_with_rand(signer, &gmk.rand, rng)
            .map_err(|e| internal("GKTP", &GmsError::from(e)))?;
            self.store
                .record_issue(&member, group_id, gmk.gmk_id, period, now)
                .map_err(|e| internal("GKTP log", &e))?;
            gktps.push(Gktp {
                id: member.clone(),
                activation_time: Some(gmk.activation),
                i_message,
            });
        }
        let document = Document {
            group_id: group_id.to_owned(),
            display_name: group.display_name.clone(),
            members: group.members.clone(),
            gktps,
        };
        Ok(HttpResponse::with_body(
            200,
            doc::GROUP_DOCUMENT_CONTENT_TYPE,
            document.to_xml(),
        ))
    }

    /// The GMK that follows the group's current one, once the current one
    /// has at most half its lifetime left ([`Gms::handle`]): the stored
    /// one in force at the current one's expiry, or a new one active from
    /// then. `None` before, or if the current GMK never expires.
    fn next_gmk(
        &self,
        group_id: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Option<StoredGmk>, GmsError> {
        let Some((activation, expiry)) = self
            .groups()
            .get(group_id)
            .and_then(|g| g.gmk.as_ref())
            .map(|g| (g.activation, g.expiry))
        else {
            return Ok(None);
        };
        let half = expiry.saturating_sub(activation) / 2;
        if expiry == 0 || now < expiry.saturating_sub(half) {
            return Ok(None);
        }
        let _making = self
            .making_gmk
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let next = match self.store.current_gmk(group_id, expiry)? {
            Some(g) => g,
            None => new_gmk(
                &self.store,
                group_id,
                (expiry, now),
                self.gmk_lifetime_secs,
                rng,
            )?,
        };
        Ok(Some(next))
    }

    /// Removes `member` from `group_id` and rolls the group's GMK: every
    /// GMK of the group still in force or to come (a next one already
    /// issued) ends at `now`, and a new one (new GMK-ID) is active from
    /// `now` for the configured lifetime. From then on only the remaining
    /// members get GKTPs of the group, and only for the new GMK; members
    /// fetch it on their next poll (docs/key-lifecycle.md). Returns the
    /// new GMK-ID.
    ///
    /// The removal is stored, but the configuration stays authoritative:
    /// a later [`Gms::open`] whose configuration still lists the member
    /// adds it back (remove it there too).
    ///
    /// # Errors
    /// [`GmsError::UnknownGroup`], [`GmsError::NotAMember`], storage
    /// errors.
    pub fn remove_member(
        &mut self,
        group_id: &str,
        member: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<KeyId, GmsError> {
        let group = self
            .groups
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(group_id)
            .ok_or_else(|| GmsError::UnknownGroup(group_id.to_owned()))?;
        if !group.members.iter().any(|m| m == member) {
            return Err(GmsError::NotAMember {
                group_id: group_id.to_owned(),
                member: member.to_owned(),
            });
        }
        self.store.remove_member(group_id, member)?;
        group.members.retain(|m| m != member);
        self.store.retire_gmks(group_id, now)?;
        let gmk = new_gmk(
            &self.store,
            group_id,
            (now, now),
            self.gmk_lifetime_secs,
            rng,
        )?;
        let id = gmk.gmk_id;
        group.gmk = Some(gmk);
        Ok(id)
    }

    /// Takes a configured group's members and GMK in force at `now` from
    /// a store other instances share (they may have removed a member or
    /// rolled the GMK).
    fn refresh(&self, group_id: &str, now: u64) -> Result<(), GmsError> {
        if !self.groups().contains_key(group_id) {
            return Ok(());
        }
        let members = self.store.members(group_id)?;
        let gmk = self.store.current_gmk(group_id, now)?;
        let stale = |g: &GroupState| {
            g.members != members
                || gmk
                    .as_ref()
                    .is_some_and(|n| g.gmk.as_ref().is_none_or(|c| c.gmk_id != n.gmk_id))
        };
        if !self.groups().get(group_id).is_some_and(stale) {
            return Ok(());
        }
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(group) = groups.get_mut(group_id) {
            group.members = members;
            if gmk.is_some() {
                group.gmk = gmk;
            }
        }
        Ok(())
    }

    /// Makes sure the group's in-memory GMK is in force at `now`: loads
    /// the stored one in force, or makes a new one.
    fn ensure_gmk(
        &self,
        group_id: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<(), GmsError> {
        let current = |groups: &BTreeMap<String, GroupState>| {
            groups
                .get(group_id)
                .is_none_or(|g| g.gmk.as_ref().is_some_and(|g| g.current_at(now)))
        };
        if current(&self.groups()) {
            return Ok(());
        }
        // Rare (a GMK expired): one request makes or loads the new one.
        let _making = self
            .making_gmk
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if current(&groups) {
            return Ok(());
        }
        let Some(group) = groups.get_mut(group_id) else {
            return Ok(());
        };
        let gmk = match self.store.current_gmk(group_id, now)? {
            Some(g) => g,
            None => new_gmk(
                &self.store,
                group_id,
                (now, now),
                self.gmk_lifetime_secs,
                rng,
            )?,
        };
        group.gmk = Some(gmk);
        Ok(())
    }
}

fn decode(segment: &str, what: &str) -> Result<String, HttpResponse> {
    let value = path::decode_segment(segment)
        .map_err(|reason| HttpResponse::error(400, &format!("invalid {what} in path: {reason}")))?;
    doc::check_uri("path", &value)
        .map_err(|e| HttpResponse::error(400, &format!("invalid {what} in path: {e}")))?;
    Ok(value)
}

fn internal(what: &str, e: &dyn fmt::Display) -> HttpResponse {
    HttpResponse::error(500, &format!("internal error ({what}): {e}"))
}
