//! A minimal dialog helper (RFC 3261 12): the dialog id and building in-dialog requests
//! (ACK for a 2xx, BYE). Route sets are taken from Record-Route (12.1.1, 12.1.2).

use crate::error::{BuildError, ParseError};
use crate::message::{
    Decimal, Method, Request, Response, check_nonempty_token, check_request_uri, check_value,
    new_branch,
};

/// Dialog identifier: Call-ID, local tag, remote tag (RFC 3261 12).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (From tag at the UAC, To tag at the UAS).
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// The state of one dialog that in-dialog requests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// The identifier.
    pub id: DialogId,
    /// Our From/To value (with tag), as sent.
    local: String,
    /// The peer's From/To value (with tag), as received.
    remote: String,
    /// The peer's Contact URI: the Request-URI of in-dialog requests.
    pub remote_target: String,
    /// Route set, in the order to send.
    pub route_set: Vec<String>,
    /// Last CSeq number we used.
    pub local_cseq: u32,
    /// CSeq number of the INVITE (the 2xx ACK reuses it).
    invite_cseq: u32,
}

fn contact_uri(
    resp_or_req_contact: Result<Option<&crate::message::NameAddr>, ParseError>,
) -> Result<String, ParseError> {
    resp_or_req_contact?
        .map(|c| c.uri.clone())
        .ok_or(ParseError::MissingHeader("Contact"))
}

/// The tag of a From or To read without copying the rest of the value.
fn tag_of(
    name_addr: Result<&crate::message::NameAddr, ParseError>,
    which: &'static str,
) -> Result<String, ParseError> {
    name_addr?.tag.clone().ok_or(ParseError::BadHeader(which))
}

impl Dialog {
    /// The UAC side, from our INVITE and a 2xx (or 1xx with To tag) for it (RFC 3261 12.1.2).
    pub fn uac(invite: &Request, resp: &Response) -> Result<Self, ParseError> {
        let local_tag = tag_of(invite.from_ref(), "From")?;
        let (n, _) = invite.cseq()?;
        Self::uac_from_parts(
            invite.header("From").unwrap_or_default().to_owned(),
            &local_tag,
            invite.call_id()?,
            n,
            resp,
        )
    }

    /// [`Dialog::uac`] from what it reads of our INVITE — its From value
    /// (`local`, with our tag `local_tag`), Call-ID and CSeq number — for
    /// a sender that keeps those rather than the request (an MC server
    /// keeps them for thousands of members).
    pub fn uac_from_parts(
        local: String,
        local_tag: &str,
        call_id: &str,
        cseq: u32,
        resp: &Response,
    ) -> Result<Self, ParseError> {
        let remote_tag = tag_of(resp.to_ref(), "To")?;
        let mut route_set: Vec<String> = resp
            .headers()
            .get_all("Record-Route")
            .map(str::to_owned)
            .collect();
        route_set.reverse();
        Ok(Self {
            id: DialogId {
                call_id: call_id.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag,
            },
            local,
            remote: resp.header("To").unwrap_or_default().to_owned(),
            remote_target: contact_uri(resp.contact_ref())?,
            route_set,
            local_cseq: cseq,
            invite_cseq: cseq,
        })
    }

    /// The UAS side, from a received INVITE and the 2xx we send (its To carries our tag) (12.1.1).
    pub fn uas(invite: &Request, resp: &Response) -> Result<Self, ParseError> {
        let local_tag = tag_of(resp.to_ref(), "To")?;
        let remote_tag = tag_of(invite.from_ref(), "From")?;
        let (n, _) = invite.cseq()?;
        Ok(Self {
            id: DialogId {
                call_id: invite.call_id()?.to_owned(),
                local_tag,
                remote_tag,
            },
            local: resp.header("To").unwrap_or_default().to_owned(),
            remote: invite.header("From").unwrap_or_default().to_owned(),
            remote_target: contact_uri(invite.contact_ref())?,
            route_set: invite
                .headers()
                .get_all("Record-Route")
                .map(str::to_owned)
                .collect(),
            local_cseq: 0,
            invite_cseq: n,
        })
    }

    fn request(
        &self,
        method: Method,
        cseq: u32,
        via: (&str, &str),
        branch: String,
    ) -> Result<Request, BuildError> {
        let mut r = Request::new(method.clone(), &self.remote_target)?;
        // One allocation for the text: the values below, and 64 octets
        // for the Via's fixed parts, Max-Forwards and CSeq.
        let values = [
            via.0,
            via.1,
            &branch,
            &self.local,
            &self.remote,
            &self.id.call_id,
        ];
        let text = values.iter().map(|v| v.len()).sum::<usize>()
            + self.route_set.iter().map(String::len).sum::<usize>();
        r.headers_mut().reserve(text + 64, 6 + self.route_set.len());
        r.headers_mut().push_via_line(via.0, via.1, &branch)?;
        let h = r.headers_mut();
        for route in &self.route_set {
            h.push("Route", route)?;
        }
        h.push("Max-Forwards", "70")?;
        h.push("From", &self.local)?;
        h.push("To", &self.remote)?;
        h.push("Call-ID", &self.id.call_id)?;
        h.push_cseq(cseq, &method);
        Ok(r)
    }

    /// The ACK for the 2xx to the INVITE (13.2.2.4): same CSeq number, new branch.
    /// `via` is (transport token, sent-by); `random` feeds the branch.
    pub fn ack(&self, via: (&str, &str), random: [u8; 8]) -> Result<Request, BuildError> {
        self.request(Method::Ack, self.invite_cseq, via, new_branch(random))
    }

    /// [`Dialog::ack`] encoded, without building the request: octet for
    /// octet what `ack(..).to_bytes()` gives, for a transport to finish
    /// with its own Via ([`crate::EncodedRequest::set_top_via`]). The ACK
    /// of every member's 2xx at an MC server.
    ///
    /// # Errors
    /// As [`Dialog::ack`]: a Request-URI, Via part or header value that
    /// [`Request::new`] or [`crate::Headers::push`] would refuse.
    pub fn ack_encoded(
        &self,
        via: (&str, &str),
        random: [u8; 8],
    ) -> Result<crate::EncodedRequest, BuildError> {
        let branch = new_branch(random);
        check_request_uri(&self.remote_target)?;
        check_nonempty_token(via.0, "Via transport")?;
        check_nonempty_token(via.1, "Via sent-by")?;
        check_nonempty_token(&branch, "Via branch")?;
        let values = [&self.local, &self.remote, &self.id.call_id];
        for v in values.iter().copied().chain(&self.route_set) {
            check_value(v, "header value")?;
        }
        let cseq = Decimal::new(self.invite_cseq.into());
        // Exactly the octets written below (the ACK is kept for 64·T1).
        const FIXED: usize = "ACK  SIP/2.0\r\nVia: SIP/2.0/ ;branch=\r\n".len()
            + "Max-Forwards: 70\r\nFrom: \r\nTo: \r\nCall-ID: \r\nCSeq:  ACK\r\n".len()
            + "Content-Length: 0\r\n\r\n".len();
        let size = FIXED
            + cseq.as_str().len()
            + self.remote_target.len()
            + via.0.len()
            + via.1.len()
            + branch.len()
            + values.iter().map(|v| v.trim().len()).sum::<usize>()
            + self
                .route_set
                .iter()
                .map(|r| r.trim().len() + "Route: \r\n".len())
                .sum::<usize>();
        let mut b = Vec::with_capacity(size);
        for part in ["ACK ", &self.remote_target, " SIP/2.0\r\nVia: "] {
            b.extend_from_slice(part.as_bytes());
        }
        let via_start = b.len();
        for part in ["SIP/2.0/", via.0, " ", via.1, ";branch=", &branch] {
            b.extend_from_slice(part.as_bytes());
        }
        let via_span = via_start..b.len();
        b.extend_from_slice(b"\r\n");
        for route in &self.route_set {
            for part in ["Route: ", route.trim(), "\r\n"] {
                b.extend_from_slice(part.as_bytes());
            }
        }
        for (name, value) in [
            ("Max-Forwards: ", "70"),
            ("From: ", self.local.trim()),
            ("To: ", self.remote.trim()),
            ("Call-ID: ", self.id.call_id.trim()),
            ("CSeq: ", cseq.as_str()),
        ] {
            for part in [name, value] {
                b.extend_from_slice(part.as_bytes());
            }
            if name == "CSeq: " {
                b.extend_from_slice(b" ACK");
            }
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        debug_assert_eq!(b.len(), size, "the ACK's size is computed exactly");
        Ok(crate::EncodedRequest::ack(
            b,
            via_span,
            branch,
            &self.id.call_id,
            &self.remote_target,
            self.invite_cseq,
        ))
    }

    /// A new in-dialog request (BYE, INFO, UPDATE…) with the next CSeq number (12.2.1.1).
    pub fn request_in_dialog(
        &mut self,
        method: Method,
        via: (&str, &str),
        random: [u8; 8],
    ) -> Result<Request, BuildError> {
        self.local_cseq = self
            .local_cseq
            .checked_add(1)
            .ok_or(BuildError::Malformed("CSeq"))?;
        self.request(method, self.local_cseq, via, new_branch(random))
    }

    /// Our From value (with our tag), as sent.
    pub(crate) fn local(&self) -> &str {
        &self.local
    }

    /// The peer's To value (with its tag), as received.
    pub(crate) fn remote(&self) -> &str {
        &self.remote
    }

    /// The INVITE's CSeq number (the 2xx's ACK reuses it).
    pub(crate) fn invite_cseq(&self) -> u32 {
        self.invite_cseq
    }

    /// True if `req` belongs to this dialog (Call-ID, From tag = remote, To tag = local).
    pub fn matches(&self, req: &Request) -> bool {
        req.call_id().is_ok_and(|c| c == self.id.call_id)
            && req
                .from_ref()
                .is_ok_and(|f| f.tag.as_deref() == Some(&self.id.remote_tag))
            && req
                .to_ref()
                .is_ok_and(|t| t.tag.as_deref() == Some(&self.id.local_tag))
    }
}
