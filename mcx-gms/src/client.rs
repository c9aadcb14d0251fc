//! The client side: the requests a member sends to the GMS and how it
//! reads the answers. The member then accepts each GKTP with
//! `mcx_mikey::gmk::GmkReceiver::accept` (in `mcx-core`:
//! `Client::accept_gmk`).

use mcx_kms::http::{HttpRequest, HttpResponse};

use crate::error::GmsError;
use crate::{GroupDocument, doc, path};

fn get(path: String, token: &str, accept: &str) -> HttpRequest {
    let mut r = HttpRequest::new("GET", &path);
    r.headers
        .push(("Authorization".to_owned(), format!("Bearer {token}")));
    r.headers.push(("Accept".to_owned(), accept.to_owned()));
    r
}

/// `GET /org.openmobilealliance.groups/users/<user>/index` with the
/// user's bearer token: the IDs of the user's groups.
pub fn group_index_request(user_uri: &str, token: &str) -> HttpRequest {
    get(path::index_path(user_uri), token, doc::INDEX_CONTENT_TYPE)
}

/// Reads the body of a group index answer.
///
/// # Errors
/// [`GmsError::Doc`] naming what is wrong.
pub fn parse_group_index(body: &[u8]) -> Result<Vec<String>, GmsError> {
    Ok(doc::parse_index(body)?)
}

/// `GET /org.openmobilealliance.groups/global/<group>` with the member's
/// bearer token: the group document with the member's GKTP.
pub fn group_document_request(group_id: &str, token: &str) -> HttpRequest {
    get(
        path::group_path(group_id),
        token,
        doc::GROUP_DOCUMENT_CONTENT_TYPE,
    )
}

/// Reads the body of a group document answer.
///
/// # Errors
/// [`GmsError::Doc`] naming what is wrong.
pub fn parse_group_document(body: &[u8]) -> Result<GroupDocument, GmsError> {
    Ok(doc::Document::parse(body)?.into())
}

/// The body of a 200 answer.
///
/// # Errors
/// [`GmsError::Status`] with the status and (at most 200 characters of)
/// the reason body otherwise.
pub fn check_response(response: &HttpResponse) -> Result<&[u8], GmsError> {
    if response.status == 200 {
        return Ok(&response.body);
    }
    Err(GmsError::Status {
        status: response.status,
        reason: String::from_utf8_lossy(&response.body)
            .chars()
            .take(200)
            .collect(),
    })
}
