//! Temporary groups on demand: group regroup (TS 23.280 10.2.4; TS 24.481
//! group regroup) through the GMS.
//!
//! An authorised user asks the GMS to form a temporary group from chosen
//! constituent groups; the GMS checks the user's right to regroup each of
//! them, makes the temporary group ID and tells the controlling server
//! before it answers (the driver sends that notice: [`Handled::Form`]);
//! tear-down goes the same way ([`Handled::Dissolve`]). Temporary groups
//! live in memory, each for at most the configured lifetime.

use std::collections::{BTreeMap, BTreeSet};

use mcx_kms::http::{HttpRequest, HttpResponse};
use rand_core::CryptoRng;

use super::{Gms, decode};
use crate::doc::{self, Document};
use crate::error::GmsError;
use crate::path;
use crate::regroup::{Dissolution, Formation, Handled, RegroupConfig, TemporaryGroup};

/// Most temporary groups held at once.
pub(crate) const MAX_TEMPORARY_GROUPS: usize = 4_096;

/// Most constituent groups in one temporary group.
pub(crate) const MAX_CONSTITUENTS: usize = 256;

/// The regroup state of a GMS.
#[derive(Default)]
pub(crate) struct Regroups {
    config: Option<RegroupConfig>,
    /// Rights: user → groups it may regroup.
    rights: BTreeMap<String, BTreeSet<String>>,
    /// The temporary groups formed and taken by the controlling server.
    formed: BTreeMap<String, TemporaryGroup>,
}

impl Regroups {
    /// Forgets groups past their lifetime (the controlling server drops
    /// its copy by the same expiry).
    fn forget_expired(&mut self, now: u64) {
        self.formed.retain(|_, g| g.expires_unix > now);
    }
}

impl Gms {
    /// Lets the users named in `config` form temporary groups from the
    /// groups they may regroup ([`Gms::handle_request`]). Replaces any
    /// earlier regroup configuration (groups already formed stay).
    ///
    /// # Errors
    /// [`GmsError::Config`] naming a user who is not a GMS user, a group
    /// that is not configured, or a zero lifetime.
    pub fn set_regroup(&mut self, config: RegroupConfig) -> Result<(), GmsError> {
        if config.max_lifetime_secs == 0 {
            return Err(GmsError::Config(
                "regroup: max_lifetime_secs must be positive".into(),
            ));
        }
        let mut rights: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in &config.rights {
            if !self.users.iter().any(|u| u.uri == r.user) {
                return Err(GmsError::Config(format!(
                    "regroup: {} is not a GMS user",
                    r.user
                )));
            }
            for g in &r.groups {
                if !self.groups().contains_key(g) {
                    return Err(GmsError::Config(format!(
                        "regroup: {} may regroup {g}, which is not a configured group",
                        r.user
                    )));
                }
            }
            rights
                .entry(r.user.clone())
                .or_default()
                .extend(r.groups.iter().cloned());
        }
        let regroups = self
            .regroups
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        regroups.rights = rights;
        regroups.config = Some(config);
        Ok(())
    }

    /// The regroup state (held briefly; never across I/O).
    fn regroups(&self) -> std::sync::MutexGuard<'_, Regroups> {
        self.regroups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The temporary groups formed and not yet dissolved or expired at
    /// `now_unix`.
    pub fn temporary_groups(&self, now_unix: u64) -> Vec<TemporaryGroup> {
        self.regroups()
            .formed
            .values()
            .filter(|g| g.expires_unix > now_unix)
            .cloned()
            .collect()
    }

    /// Handles any request: the read-only resources as [`Gms::handle`]
    /// does, plus group regroup:
    ///
    /// - `POST /org.openmobilealliance.groups/regroup` with an RFC 4826
    ///   resource list of the constituent group IDs: forms a temporary
    ///   group ([`Handled::Form`]: tell the controlling server, then
    ///   [`Gms::complete_formation`] gives the answer);
    /// - `DELETE /org.openmobilealliance.groups/global/<temporary group>`:
    ///   tears it down ([`Handled::Dissolve`], then
    ///   [`Gms::complete_dissolution`]).
    ///
    /// Refusals: 401 without a valid token; 403 for a user without
    /// regroup rights, a constituent group the user may not regroup, or
    /// the dissolution of a group another user formed; 404 for an unknown
    /// constituent or temporary group; 400 for a malformed, empty or
    /// oversized list or a group named twice; 503 when too many temporary
    /// groups are held.
    pub fn handle_request(
        &self,
        request: &HttpRequest,
        now_unix: u64,
        rng: &mut impl CryptoRng,
    ) -> Handled {
        self.regroups().forget_expired(now_unix);
        let regroup = request.path == path::regroup_path();
        let dissolve = request.method == "DELETE"
            && matches!(path::route(&request.path), Some(path::Route::Group(_)));
        if !regroup && !dissolve {
            return Handled::Answer(self.handle(request, now_unix, rng));
        }
        let handled = if regroup {
            self.form(request, now_unix, rng)
        } else {
            self.dissolve(request, now_unix)
        };
        handled.unwrap_or_else(Handled::Answer)
    }

    fn form(
        &self,
        request: &HttpRequest,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Handled, HttpResponse> {
        if request.method != "POST" {
            return Err(HttpResponse::error(405, "method not allowed: use POST"));
        }
        let user = self.authenticate(request, now)?;
        let uri = self.users[user].uri.clone();
        // Held to the end: two formations never pick one ID.
        let regroups = self.regroups();
        let (Some(config), Some(rights)) = (&regroups.config, regroups.rights.get(&uri)) else {
            return Err(HttpResponse::error(
                403,
                "this user may not form temporary groups",
            ));
        };
        let lifetime = config.max_lifetime_secs;
        let constituents = doc::parse_index(&request.body).map_err(|e| {
            HttpResponse::error(400, &format!("invalid list of constituent groups: {e}"))
        })?;
        if constituents.is_empty() {
            return Err(HttpResponse::error(400, "no constituent groups"));
        }
        if constituents.len() > MAX_CONSTITUENTS {
            return Err(HttpResponse::error(
                400,
                &format!("more than {MAX_CONSTITUENTS} constituent groups"),
            ));
        }
        let mut seen = BTreeSet::new();
        for g in &constituents {
            if !seen.insert(g.as_str()) {
                return Err(HttpResponse::error(
                    400,
                    &format!("constituent group {g} is named twice"),
                ));
            }
            if !self.groups().contains_key(g) {
                return Err(HttpResponse::error(404, &format!("no such group: {g}")));
            }
            if !rights.contains(g) {
                return Err(HttpResponse::error(
                    403,
                    &format!("this user may not regroup {g}"),
                ));
            }
        }
        if regroups.formed.len() >= MAX_TEMPORARY_GROUPS {
            return Err(HttpResponse::error(
                503,
                "too many temporary groups: dissolve some first",
            ));
        }
        let id = loop {
            let id = temporary_group_id(&self.gms_uri, rng);
            if !regroups.formed.contains_key(&id) && !self.groups().contains_key(&id) {
                break id;
            }
        };
        Ok(Handled::Form(Formation {
            group: TemporaryGroup {
                id,
                constituents,
                formed_by: uri,
                expires_unix: now.saturating_add(lifetime),
            },
        }))
    }

    fn dissolve(&self, request: &HttpRequest, now: u64) -> Result<Handled, HttpResponse> {
        let Some(path::Route::Group(seg)) = path::route(&request.path) else {
            return Err(HttpResponse::error(404, "no such resource"));
        };
        let user = self.authenticate(request, now)?;
        let id = decode(&seg, "group")?;
        let regroups = self.regroups();
        let Some(group) = regroups.formed.get(&id) else {
            let why = if self.groups().contains_key(&id) {
                (405, "configured groups cannot be deleted")
            } else {
                (404, "no such temporary group")
            };
            return Err(HttpResponse::error(why.0, why.1));
        };
        if group.formed_by != self.users[user].uri {
            return Err(HttpResponse::error(
                403,
                "the temporary group was formed by another user",
            ));
        }
        Ok(Handled::Dissolve(Dissolution { group_id: id }))
    }

    /// Finishes a formation once the driver told the controlling server
    /// (`delivered`: `Ok`, or why not): 201 with the temporary group's
    /// document (its ID, its constituent groups as entries), the group
    /// held until dissolved or expired; else 502 and the group is not
    /// formed.
    pub fn complete_formation(
        &self,
        formation: Formation,
        delivered: Result<(), String>,
    ) -> HttpResponse {
        if let Err(why) = delivered {
            return HttpResponse::error(
                502,
                &format!("the controlling server did not take the temporary group: {why}"),
            );
        }
        let g = formation.group;
        let document = Document {
            group_id: g.id.clone(),
            display_name: format!("Temporary group formed by {}", g.formed_by),
            members: g.constituents.clone(),
            gktps: Vec::new(),
        };
        self.regroups().formed.insert(g.id.clone(), g);
        HttpResponse::with_body(201, doc::GROUP_DOCUMENT_CONTENT_TYPE, document.to_xml())
    }

    /// Finishes a tear-down once the driver told the controlling server:
    /// 200 and the group is forgotten; else 502 and it is kept (the
    /// dissolution may be asked again; it ends at its lifetime anyway).
    pub fn complete_dissolution(
        &self,
        dissolution: Dissolution,
        delivered: Result<(), String>,
    ) -> HttpResponse {
        if let Err(why) = delivered {
            return HttpResponse::error(
                502,
                &format!("the controlling server did not drop the temporary group: {why}"),
            );
        }
        self.regroups().formed.remove(&dissolution.group_id);
        HttpResponse::with_body(200, "text/plain", b"dissolved\n".to_vec())
    }
}

/// `sip:regroup-<16 hex digits>@<the GMS's domain>`.
fn temporary_group_id(gms_uri: &str, rng: &mut impl CryptoRng) -> String {
    let domain = gms_uri
        .rsplit_once('@')
        .map_or_else(|| gms_uri.trim_start_matches("sip:"), |(_, d)| d);
    let mut tag = [0u8; 8];
    rng.fill_bytes(&mut tag);
    format!("sip:regroup-{}@{domain}", hex::encode(tag))
}
