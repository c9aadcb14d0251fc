//! The MC server of constituent groups (participating role): forwards a
//! temporary group call request with only that group's wrapped TGMK to
//! the group's members (step 4), gathers their answers and reports to the
//! controlling server (step 7). It holds no key material.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use bytes::Bytes;
use mcx_sip::{Dialog, Limits, Message, Method, Request, Response, StatusCode};
use rand_core::CryptoRng;

use crate::controlling::GroupResult;
use crate::info::McpttInfo;
use crate::sip::{self, rand8};
use crate::{
    ACCEPTANCE_HEADER, Channel, Error, MEMBER_HEADER, Time, TimelineEntry, Transmit, timeline,
};

/// What happened at an MC server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum McServerEvent {
    /// A member refused the call.
    MemberRejected {
        /// The group.
        group_id: String,
        /// The member.
        member: String,
        /// Its status code.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// Every member of a group answered; the controlling server was told.
    GroupReported(GroupResult),
    /// A request was refused.
    Rejected {
        /// Status sent.
        status: u16,
        /// Reason phrase sent.
        reason: String,
    },
}

struct MemberLeg {
    member: String,
    /// The leg's Call-ID, kept apart from `invite` so that matching a
    /// response does not parse every leg's INVITE again.
    call_id: String,
    invite: Request,
    status: Option<u16>,
    dialog: Option<Dialog>,
}

struct Fanout {
    group_id: String,
    upstream_addr: String,
    upstream: Request,
    upstream_dialog: Option<Dialog>,
    legs: Vec<MemberLeg>,
    reported: bool,
}

/// An MC server owning one or more groups (sans-IO).
///
/// Configure with [`McServer::add_group`]; inputs [`McServer::handle`];
/// outputs [`McServer::poll_transmit`], [`McServer::poll_event`],
/// [`McServer::poll_timeline`]. No timers.
pub struct McServer {
    uri: String,
    groups: BTreeMap<String, Vec<String>>,
    fanouts: Vec<Fanout>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<McServerEvent>,
    timeline: VecDeque<TimelineEntry>,
}

impl fmt::Debug for McServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McServer")
            .field("uri", &self.uri)
            .field("groups", &self.groups.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl McServer {
    /// An MC server with address `uri` and no groups.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            groups: BTreeMap::new(),
            fanouts: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timeline: VecDeque::new(),
        }
    }

    /// Its URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Adds (or replaces) a group and its member list (MC service IDs,
    /// which are also their addresses).
    pub fn add_group(&mut self, group_id: impl Into<String>, members: Vec<String>) -> &mut Self {
        self.groups.insert(group_id.into(), members);
        self
    }

    /// Handles a datagram from `from`.
    ///
    /// # Errors
    /// Malformed or unexpected input.
    pub fn handle(
        &mut self,
        time: Time,
        from: &str,
        channel: Channel,
        bytes: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        if channel != Channel::Sip {
            return Err(Error::Unexpected("floor packet at an MC server"));
        }
        self.handle_sip(time, from, sip::parse(bytes)?, rng)
    }

    /// Handles a SIP message from `from` that is already parsed (by
    /// [`crate::SipLink`], or by a TCP framer): the same as
    /// [`McServer::handle`] with [`Channel::Sip`] and its encoding,
    /// without parsing again. The message must be within
    /// `mcx_sip::Limits::TCP`.
    ///
    /// # Errors
    /// As [`McServer::handle`].
    pub fn handle_sip(
        &mut self,
        time: Time,
        from: &str,
        msg: Message,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        sip::check_limits(&msg, &Limits::TCP)?;
        match msg {
            Message::Request(req) => match req.method() {
                Method::Invite => self.on_invite(time, from, req, rng),
                Method::Bye => self.on_bye(from, &req, rng),
                _ => {
                    // An MC server takes any number of calls: never busy.
                    if let Some(r) = sip::answer_other_method(&req, false, &self.uri, rng)? {
                        self.send(from.to_owned(), r.to_bytes());
                    }
                    Ok(())
                }
            },
            Message::Response(resp) => self.on_response(time, &resp, rng),
        }
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next application event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<McServerEvent> {
        self.events.pop_front()
    }

    /// The next timeline entry.
    #[must_use]
    pub fn poll_timeline(&mut self) -> Option<TimelineEntry> {
        self.timeline.pop_front()
    }

    fn send(&mut self, to: String, contents: Vec<u8>) {
        self.transmits.push_back(Transmit {
            from: self.uri.clone(),
            to,
            channel: Channel::Sip,
            contents,
        });
    }

    fn reject(
        &mut self,
        from: &str,
        req: &Request,
        status: StatusCode,
        reason: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let tag = mcx_sip::new_tag(rand8(rng));
        let r = sip::respond(req, status, Some(reason), &self.uri, &tag, None)?;
        self.send(from.to_owned(), r.to_bytes());
        self.events.push_back(McServerEvent::Rejected {
            status: status.0,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Step 4.
    fn on_invite(
        &mut self,
        time: Time,
        from: &str,
        req: Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let group_id = req.uri().to_owned();
        let Some(members) = self.groups.get(&group_id).cloned() else {
            return self.reject(
                from,
                &req,
                StatusCode::NOT_FOUND,
                "Not Found - group not owned here",
                rng,
            );
        };
        let Ok(body) = sip::read_call_body(&req) else {
            return self.reject(
                from,
                &req,
                StatusCode::BAD_REQUEST,
                "Bad Request - malformed call request",
                rng,
            );
        };
        let Some(tg) = body
            .info
            .associated_group_id
            .clone()
            .filter(|_| body.info.broadcast)
        else {
            return self.reject(
                from,
                &req,
                StatusCode::NOT_ACCEPTABLE_HERE,
                "Not Acceptable Here - no temporary group indicator",
                rng,
            );
        };
        let mut own = body.wraps.iter().filter(|(g, _)| *g == group_id);
        let copy: Bytes = match (own.next(), own.next()) {
            (Some((_, b)), None) => b.clone(),
            _ => {
                return self.reject(
                    from,
                    &req,
                    StatusCode::NOT_ACCEPTABLE_HERE,
                    "Not Acceptable Here - need exactly one wrapped TGMK for the group",
                    rng,
                );
            }
        };
        let caller = body.info.calling_user_id.clone().unwrap_or_default();
        let info = McpttInfo {
            session_type: Some("prearranged".into()),
            request_uri: Some(group_id.clone()),
            calling_user_id: Some(caller.clone()),
            calling_group_id: Some(group_id.clone()),
            broadcast: true,
            associated_group_id: Some(tg.clone()),
        };
        let from_uri = sip::from_uri(&req)?;
        let mut legs = Vec::new();
        for m in members.iter().filter(|m| **m != caller) {
            let mut mp = sip::call_body(
                String::from_utf8_lossy(&body.sdp).into_owned(),
                &info,
                &[(group_id.as_str(), &copy)],
                rng,
            );
            let pai = [(mcx_sip::headers::P_ASSERTED_IDENTITY, format!("<{caller}>"))];
            let invite = sip::invite(&from_uri, &self.uri, &group_id, &mut mp, &pai, rng)?;
            self.send(m.clone(), invite.to_bytes());
            legs.push(MemberLeg {
                member: m.clone(),
                call_id: invite.call_id()?.to_owned(),
                invite,
                status: None,
                dialog: None,
            });
        }
        if legs.is_empty() {
            return self.reject(
                from,
                &req,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "Temporarily Unavailable - no members to call",
                rng,
            );
        }
        self.timeline.push_back(timeline(
            &self.uri,
            4,
            time,
            format!(
                "INVITE {group_id} (temporary group {tg}) with its wrapped TGMK to {} members",
                legs.len()
            ),
        ));
        self.fanouts.push(Fanout {
            group_id,
            upstream_addr: from.to_owned(),
            upstream: req,
            upstream_dialog: None,
            legs,
            reported: false,
        });
        Ok(())
    }

    /// Step 7.
    fn on_response(
        &mut self,
        time: Time,
        resp: &Response,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        if resp.cseq()?.1 != Method::Invite || resp.status().is_provisional() {
            return Ok(());
        }
        let cid = resp.call_id()?;
        let host = sip::host_of(&self.uri);
        // A leg is known by its Call-ID (random, one per member INVITE),
        // not by `from`: a response delivered by a `SipLink` names the
        // Request-URI (the group) when it carries no Contact, and a
        // synthesized 408 (Timer B) has none.
        let Some(fi) = self
            .fanouts
            .iter()
            .position(|f| f.legs.iter().any(|l| l.call_id == cid))
        else {
            return Ok(());
        };
        let fan = &mut self.fanouts[fi];
        let Some(leg) = fan.legs.iter_mut().find(|l| l.call_id == cid) else {
            return Ok(());
        };
        if leg.status.is_some() {
            return Ok(());
        }
        leg.status = Some(resp.status().0);
        let mut out = Vec::new();
        if resp.status().is_success() {
            let d = Dialog::uac(&leg.invite, resp)?;
            out.push((
                leg.member.clone(),
                d.ack(("UDP", &host), rand8(rng))?.to_bytes(),
            ));
            leg.dialog = Some(d);
        } else {
            self.events.push_back(McServerEvent::MemberRejected {
                group_id: fan.group_id.clone(),
                member: leg.member.clone(),
                status: resp.status().0,
                reason: resp.reason().to_owned(),
            });
        }
        let mut report = None;
        if !fan.reported && fan.legs.iter().all(|l| l.status.is_some()) {
            fan.reported = true;
            let accepted: Vec<&MemberLeg> =
                fan.legs.iter().filter(|l| l.dialog.is_some()).collect();
            let result = GroupResult {
                group_id: fan.group_id.clone(),
                accepted: u32::try_from(accepted.len()).unwrap_or(u32::MAX),
                rejected: u32::try_from(fan.legs.len() - accepted.len()).unwrap_or(u32::MAX),
            };
            let tag = mcx_sip::new_tag(rand8(rng));
            let (status, sdp) = if result.accepted > 0 {
                let sdp = crate::sdp::session(&self.uri, &host, u64::from(rng.next_u32()));
                (StatusCode::OK, Some(sdp))
            } else {
                (StatusCode::TEMPORARILY_UNAVAILABLE, None)
            };
            let mut r = sip::respond(&fan.upstream, status, None, &self.uri, &tag, sdp)?;
            r.headers_mut()
                .push(ACCEPTANCE_HEADER, &result.header_value())?;
            for l in &accepted {
                r.headers_mut()
                    .push(MEMBER_HEADER, &format!("<{}>", l.member))?;
            }
            if status.is_success() {
                fan.upstream_dialog = Some(Dialog::uas(&fan.upstream, &r)?);
            }
            out.push((fan.upstream_addr.clone(), r.to_bytes()));
            report = Some(result);
        }
        for (to, b) in out {
            self.send(to, b);
        }
        if let Some(result) = report {
            self.timeline.push_back(timeline(
                &self.uri,
                7,
                time,
                format!(
                    "reported {}: {} accepted, {} rejected",
                    result.group_id, result.accepted, result.rejected
                ),
            ));
            self.events.push_back(McServerEvent::GroupReported(result));
        }
        Ok(())
    }

    /// BYE from the controlling server: answer it and release every member.
    fn on_bye(&mut self, from: &str, req: &Request, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let tag = mcx_sip::new_tag(rand8(rng));
        let host = sip::host_of(&self.uri);
        let idx = self.fanouts.iter().position(|f| {
            f.upstream_addr == from && f.upstream_dialog.as_ref().is_some_and(|d| d.matches(req))
        });
        let status = if idx.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CALL_DOES_NOT_EXIST
        };
        let r = sip::respond(req, status, None, &self.uri, &tag, None)?;
        self.send(from.to_owned(), r.to_bytes());
        let Some(i) = idx else {
            return Ok(());
        };
        let mut fan = self.fanouts.remove(i);
        for l in &mut fan.legs {
            if let Some(d) = l.dialog.as_mut() {
                let bye = d.request_in_dialog(Method::Bye, ("UDP", &host), rand8(rng))?;
                self.transmits.push_back(Transmit {
                    from: self.uri.clone(),
                    to: l.member.clone(),
                    channel: Channel::Sip,
                    contents: bye.to_bytes(),
                });
            }
        }
        Ok(())
    }
}
