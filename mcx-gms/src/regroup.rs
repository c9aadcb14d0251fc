//! Temporary groups on demand (group regroup, TS 23.280 10.2.4): the
//! types of [`Gms::handle_request`](crate::Gms::handle_request), the
//! dispatcher's requests, and the notices the GMS's driver sends to the
//! controlling server (and how that server reads them).
//!
//! ```text
//! dispatcher ──POST …/regroup (constituent groups)──▶ GMS: rights, new ID
//!                                                     │ Handled::Form
//!            controlling server ◀──PUT /temporary-groups/<id>── driver
//!                                 ──201──▶ driver ──▶ Gms::complete_formation
//! dispatcher ◀──201 group document (temporary group ID, constituents)──
//! dispatcher ──INVITE <temporary group ID>──▶ controlling server …
//! ```

use mcx_kms::http::{HttpRequest, HttpResponse};

use crate::error::GmsError;
use crate::{GroupDocument, doc, path};

/// The groups one user may regroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegroupRight {
    /// The user's MC service ID.
    pub user: String,
    /// The group IDs it may put into a temporary group.
    pub groups: Vec<String>,
}

/// Who may form temporary groups, and for how long they live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegroupConfig {
    /// The users allowed to regroup, each with its groups.
    pub rights: Vec<RegroupRight>,
    /// Longest life of a temporary group, seconds (positive): the GMS
    /// forgets it and the controlling server takes no new call of it
    /// after that, whether it was dissolved or not.
    pub max_lifetime_secs: u64,
}

/// A temporary group formed on demand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemporaryGroup {
    /// Its ID, made by the GMS (`sip:regroup-<16 hex>@<GMS domain>`).
    pub id: String,
    /// Its constituent group IDs, in the order asked.
    pub constituents: Vec<String>,
    /// The user who formed it (the only one who may dissolve it).
    pub formed_by: String,
    /// Unix seconds at which it ends.
    pub expires_unix: u64,
}

/// A formation waiting for the controlling server to take the group.
#[derive(Debug)]
#[must_use = "tell the controlling server, then call Gms::complete_formation"]
pub struct Formation {
    /// The group to announce ([`formed_notice`]).
    pub group: TemporaryGroup,
}

/// A tear-down waiting for the controlling server to drop the group.
#[derive(Debug)]
#[must_use = "tell the controlling server, then call Gms::complete_dissolution"]
pub struct Dissolution {
    /// The temporary group to drop ([`dissolved_notice`]).
    pub group_id: String,
}

/// What [`Gms::handle_request`](crate::Gms::handle_request) asks of its
/// driver.
#[derive(Debug)]
pub enum Handled {
    /// Send this answer.
    Answer(HttpResponse),
    /// Send [`formed_notice`] to the controlling server, then answer with
    /// [`Gms::complete_formation`](crate::Gms::complete_formation).
    Form(Formation),
    /// Send [`dissolved_notice`] to the controlling server, then answer
    /// with [`Gms::complete_dissolution`](crate::Gms::complete_dissolution).
    Dissolve(Dissolution),
}

/// `POST /org.openmobilealliance.groups/regroup`: the dispatcher asks for
/// a temporary group of `constituents` (an RFC 4826 resource list).
pub fn regroup_request(constituents: &[String], token: &str) -> HttpRequest {
    let mut r = HttpRequest::new("POST", &path::regroup_path());
    r.headers
        .push(("Authorization".to_owned(), format!("Bearer {token}")));
    r.headers.push((
        "Content-Type".to_owned(),
        doc::INDEX_CONTENT_TYPE.to_owned(),
    ));
    r.body = doc::encode_index(constituents);
    r
}

/// Reads the GMS's answer to [`regroup_request`]: the temporary group's
/// document (its ID; its constituent groups as `members`).
///
/// # Errors
/// [`GmsError::Status`] for a refusal (status and reason),
/// [`GmsError::Doc`] for a malformed document.
pub fn parse_regroup_response(response: &HttpResponse) -> Result<GroupDocument, GmsError> {
    if response.status != 201 {
        return Err(status(response));
    }
    Ok(doc::Document::parse(&response.body)?.into())
}

/// `DELETE /org.openmobilealliance.groups/global/<temporary group>`: the
/// dispatcher tears the group down.
pub fn dissolve_request(temporary_group_id: &str, token: &str) -> HttpRequest {
    let mut r = HttpRequest::new("DELETE", &path::group_path(temporary_group_id));
    r.headers
        .push(("Authorization".to_owned(), format!("Bearer {token}")));
    r
}

/// Path prefix of the controlling server's temporary group resources.
pub const NOTICE_PATH: &str = "/temporary-groups/";

/// Header carrying the group's end (Unix seconds) in [`formed_notice`].
pub const EXPIRES_HEADER: &str = "Mcx-Expires";

/// `PUT /temporary-groups/<id>` to the controlling server: the GMS formed
/// `group` (body: its document, constituent groups as entries; the end
/// in [`EXPIRES_HEADER`]), with the GMS's bearer `token`.
pub fn formed_notice(group: &TemporaryGroup, token: &str) -> HttpRequest {
    let mut r = HttpRequest::new("PUT", &notice_path(&group.id));
    r.headers
        .push(("Authorization".to_owned(), format!("Bearer {token}")));
    r.headers.push((
        "Content-Type".to_owned(),
        doc::GROUP_DOCUMENT_CONTENT_TYPE.to_owned(),
    ));
    r.headers
        .push((EXPIRES_HEADER.to_owned(), group.expires_unix.to_string()));
    r.body = doc::Document {
        group_id: group.id.clone(),
        display_name: format!("Temporary group formed by {}", group.formed_by),
        members: group.constituents.clone(),
        gktps: Vec::new(),
    }
    .to_xml();
    r
}

/// `DELETE /temporary-groups/<id>` to the controlling server.
pub fn dissolved_notice(temporary_group_id: &str, token: &str) -> HttpRequest {
    let mut r = HttpRequest::new("DELETE", &notice_path(temporary_group_id));
    r.headers
        .push(("Authorization".to_owned(), format!("Bearer {token}")));
    r
}

fn notice_path(id: &str) -> String {
    format!("{NOTICE_PATH}{}", path::encode_segment(id))
}

/// A notice as the controlling server reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Take this temporary group (constituent group IDs) until
    /// `expires_unix`.
    Formed {
        /// The temporary group ID.
        id: String,
        /// Its constituent group IDs.
        constituents: Vec<String>,
        /// Its end, Unix seconds.
        expires_unix: u64,
    },
    /// Drop this temporary group (after its call, if one is going on).
    Dissolved {
        /// The temporary group ID.
        id: String,
    },
}

/// Reads a notice (the controlling server's side; the sender is
/// authenticated by the caller). `Err` is an HTTP answer naming what is
/// wrong (400, 404, 405).
///
/// # Errors
/// The answer to send instead.
pub fn parse_notice(request: &HttpRequest) -> Result<Notice, HttpResponse> {
    let seg = request
        .path
        .strip_prefix(NOTICE_PATH)
        .filter(|s| !s.is_empty() && !s.contains(['/', '?', '#']))
        .ok_or_else(|| HttpResponse::error(404, "no such resource"))?;
    let id = path::decode_segment(seg)
        .map_err(|why| HttpResponse::error(400, &format!("invalid group in path: {why}")))?;
    match request.method.as_str() {
        "DELETE" => Ok(Notice::Dissolved { id }),
        "PUT" => {
            let d = doc::Document::parse(&request.body).map_err(|e| {
                HttpResponse::error(400, &format!("invalid temporary group document: {e}"))
            })?;
            if d.group_id != id {
                return Err(HttpResponse::error(
                    400,
                    "the document names another group than the path",
                ));
            }
            let expires_unix = request
                .header(EXPIRES_HEADER)
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| {
                    HttpResponse::error(400, &format!("missing or invalid {EXPIRES_HEADER}"))
                })?;
            Ok(Notice::Formed {
                id,
                constituents: d.members,
                expires_unix,
            })
        }
        _ => Err(HttpResponse::error(
            405,
            "method not allowed: use PUT or DELETE",
        )),
    }
}

fn status(response: &HttpResponse) -> GmsError {
    GmsError::Status {
        status: response.status,
        reason: String::from_utf8_lossy(&response.body)
            .chars()
            .take(200)
            .collect(),
    }
}
