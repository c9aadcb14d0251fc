//! The controlling server of the temporary group call: authorisation
//! (step 2), fan-out per constituent group (steps 3 and 8), aggregation
//! (step 7) and floor arbitration (step 9).
//!
//! Structurally keyless: it has no GMK, TGMK or user key field and never
//! calls into `mcx_mikey`'s key functions. The wrapped copies pass
//! through as opaque octets.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use mcx_floor::{ArbitratorConfig, ArbitratorEvent, BroadcastArbitrator, ParticipantId};
use mcx_sip::{Dialog, Limits, Message, Method, Request, Response, StatusCode};
use rand_core::CryptoRng;

use crate::info::McpttInfo;
use crate::sip::{self, rand8};
use crate::{
    ACCEPTANCE_HEADER, Channel, Error, MEMBER_HEADER, Time, TimelineEntry, Transmit, timeline,
};

/// A temporary group the controlling server owns: its ID and, per
/// constituent group, the address of the MC server owning it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemporaryGroup {
    /// The temporary group ID.
    pub id: String,
    /// (constituent group ID, MC server address).
    pub constituents: Vec<(String, String)>,
}

/// Configuration of a controlling server.
#[derive(Clone, Debug)]
pub struct ControllingServerConfig {
    /// Its SIP URI (and address).
    pub uri: String,
    /// Users authorised to start temporary group calls; others get 403.
    pub allowed_initiators: Vec<String>,
    /// The temporary groups it controls.
    pub temporary_groups: Vec<TemporaryGroup>,
    /// SSRC of its floor control packets.
    pub floor_ssrc: u32,
}

/// The acceptance of one constituent group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupResult {
    /// The constituent group.
    pub group_id: String,
    /// Members that accepted (unwrapped the TGMK and answered 200).
    pub accepted: u32,
    /// Members that refused or failed.
    pub rejected: u32,
}

impl GroupResult {
    pub(crate) fn header_value(&self) -> String {
        format!(
            "group=\"{}\";accepted={};rejected={}",
            self.group_id, self.accepted, self.rejected
        )
    }
}

/// Parses an [`ACCEPTANCE_HEADER`] value.
pub(crate) fn parse_acceptance(v: &str) -> Option<GroupResult> {
    let mut group = None;
    let mut accepted = None;
    let mut rejected = None;
    for p in v.split(';') {
        let (k, val) = p.trim().split_once('=')?;
        match k {
            "group" => group = Some(val.trim_matches('"').to_owned()),
            "accepted" => accepted = val.parse().ok(),
            "rejected" => rejected = val.parse().ok(),
            _ => {}
        }
    }
    Some(GroupResult {
        group_id: group?,
        accepted: accepted?,
        rejected: rejected?,
    })
}

/// What happened at the controlling server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControllingEvent {
    /// A call request was refused.
    CallRejected {
        /// The caller.
        initiator: String,
        /// Status sent.
        status: u16,
        /// Reason phrase sent.
        reason: String,
    },
    /// An MC server reported a group's acceptance.
    GroupReported(GroupResult),
    /// Every constituent group answered; the initiator was answered.
    CallEstablished {
        /// The temporary group.
        temporary_group_id: String,
        /// Per-group acceptance.
        groups: Vec<GroupResult>,
    },
    /// A floor arbitration event.
    Floor(ArbitratorEvent),
    /// The call ended; BYE sent to the initiator and the MC servers.
    CallEnded,
}

struct Leg {
    group_id: String,
    server: String,
    invite: Request,
    result: Option<GroupResult>,
    members: Vec<String>,
    dialog: Option<Dialog>,
}

struct Call {
    temporary_group_id: String,
    initiator: String,
    initiator_addr: String,
    invite: Request,
    legs: Vec<Leg>,
    initiator_dialog: Option<Dialog>,
    arbitrator: Option<BroadcastArbitrator>,
    /// Address of each floor participant, by `ParticipantId`.
    participants: Vec<String>,
    ended: bool,
}

/// The controlling server (sans-IO). Holds no key material.
///
/// Inputs: [`ControllingServer::handle`] (datagrams),
/// [`ControllingServer::handle_timeout`]. Outputs:
/// [`ControllingServer::poll_transmit`], [`ControllingServer::poll_timeout`],
/// [`ControllingServer::poll_event`], [`ControllingServer::poll_timeline`].
pub struct ControllingServer {
    config: ControllingServerConfig,
    call: Option<Call>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ControllingEvent>,
    timeline: VecDeque<TimelineEntry>,
}

impl fmt::Debug for ControllingServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllingServer")
            .field("uri", &self.config.uri)
            .field("in_call", &self.call.as_ref().is_some_and(|c| !c.ended))
            .finish_non_exhaustive()
    }
}

impl ControllingServer {
    /// A controlling server.
    pub fn new(config: ControllingServerConfig) -> Self {
        Self {
            config,
            call: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timeline: VecDeque::new(),
        }
    }

    /// Its URI.
    pub fn uri(&self) -> &str {
        &self.config.uri
    }

    /// The floor arbitrator of the current call, once established.
    pub fn arbitrator(&self) -> Option<&BroadcastArbitrator> {
        self.call.as_ref().and_then(|c| c.arbitrator.as_ref())
    }

    /// Handles a datagram from `from`.
    ///
    /// # Errors
    /// Malformed or unexpected input; refused call requests are answered
    /// and reported as events, not errors.
    pub fn handle(
        &mut self,
        time: Time,
        from: &str,
        channel: Channel,
        bytes: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        match channel {
            Channel::Floor => {
                let call = self
                    .call
                    .as_mut()
                    .ok_or(Error::Unexpected("floor packet outside a call"))?;
                let pid = call
                    .participants
                    .iter()
                    .position(|p| p == from)
                    .ok_or_else(|| Error::Unknown(format!("floor participant {from}")))?;
                let arb = call
                    .arbitrator
                    .as_mut()
                    .ok_or(Error::Unexpected("floor packet before set-up"))?;
                let r = arb.handle(time.instant, ParticipantId(pid), bytes);
                self.drain_floor(time, rng)?;
                Ok(r?)
            }
            Channel::Sip => self.handle_sip(time, from, sip::parse(bytes)?, rng),
        }
    }

    /// Handles a SIP message from `from` that is already parsed (by
    /// [`crate::SipLink`], or by a TCP framer): the same as
    /// [`ControllingServer::handle`] with [`Channel::Sip`] and its
    /// encoding, without parsing again. The message must be within
    /// `mcx_sip::Limits::TCP`.
    ///
    /// # Errors
    /// As [`ControllingServer::handle`].
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
                Method::Bye => self.on_bye(time, from, &req, rng),
                _ => {
                    let busy = self.call.as_ref().is_some_and(|c| !c.ended);
                    if let Some(r) = sip::answer_other_method(&req, busy, &self.config.uri, rng)? {
                        self.send(from.to_owned(), Channel::Sip, r.to_bytes());
                    }
                    Ok(())
                }
            },
            Message::Response(resp) => self.on_response(time, &resp, rng),
        }
    }

    /// Floor timers (Floor Ack retransmissions).
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a BYE cannot be built.
    pub fn handle_timeout(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        if let Some(a) = self.call.as_mut().and_then(|c| c.arbitrator.as_mut()) {
            a.handle_timeout(time.instant);
        }
        self.drain_floor(time, rng)
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next timer deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.call
            .as_ref()
            .and_then(|c| c.arbitrator.as_ref())
            .and_then(BroadcastArbitrator::poll_timeout)
    }

    /// The next application event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ControllingEvent> {
        self.events.pop_front()
    }

    /// The next timeline entry.
    #[must_use]
    pub fn poll_timeline(&mut self) -> Option<TimelineEntry> {
        self.timeline.pop_front()
    }

    fn send(&mut self, to: String, channel: Channel, contents: Vec<u8>) {
        self.transmits.push_back(Transmit {
            from: self.config.uri.clone(),
            to,
            channel,
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
        let r = sip::respond(req, status, Some(reason), &self.config.uri, &tag, None)?;
        self.send(from.to_owned(), Channel::Sip, r.to_bytes());
        self.events.push_back(ControllingEvent::CallRejected {
            initiator: sip::from_uri(req).unwrap_or_default(),
            status: status.0,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Steps 2 (receipt and authorisation), 3 and 8 (fan-out).
    fn on_invite(
        &mut self,
        time: Time,
        from: &str,
        req: Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        if self.call.as_ref().is_some_and(|c| !c.ended) {
            return self.reject(from, &req, StatusCode::BUSY_HERE, "Busy Here", rng);
        }
        let initiator = sip::from_uri(&req)?;
        if !self.config.allowed_initiators.contains(&initiator) {
            return self.reject(
                from,
                &req,
                StatusCode::FORBIDDEN,
                "Forbidden - initiator not authorised for temporary group calls",
                rng,
            );
        }
        let Some(tg) = self
            .config
            .temporary_groups
            .iter()
            .find(|t| t.id == req.uri())
            .cloned()
        else {
            return self.reject(
                from,
                &req,
                StatusCode::NOT_FOUND,
                "Not Found - unknown temporary group",
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
        if !body.info.broadcast || body.info.calling_user_id.as_deref() != Some(initiator.as_str())
        {
            return self.reject(
                from,
                &req,
                StatusCode::NOT_ACCEPTABLE_HERE,
                "Not Acceptable Here - not a broadcast call from the caller",
                rng,
            );
        }
        let mut copies: Vec<Bytes> = Vec::with_capacity(tg.constituents.len());
        for (g, _) in &tg.constituents {
            let mut found = body.wraps.iter().filter(|(w, _)| w == g);
            match (found.next(), found.next()) {
                (Some((_, b)), None) => copies.push(b.clone()),
                _ => {
                    return self.reject(
                        from,
                        &req,
                        StatusCode::NOT_ACCEPTABLE_HERE,
                        "Not Acceptable Here - need exactly one wrapped TGMK per constituent group",
                        rng,
                    );
                }
            }
        }
        let me = self.config.uri.clone();
        self.timeline.push_back(timeline(
            &me,
            2,
            time,
            format!(
                "INVITE {} from {initiator} authorised; {} wrapped copies (opaque)",
                tg.id,
                copies.len()
            ),
        ));
        let mut legs = Vec::with_capacity(copies.len());
        for (i, ((group_id, server), copy)) in tg.constituents.iter().zip(copies).enumerate() {
            let info = McpttInfo {
                session_type: Some("prearranged".into()),
                request_uri: Some(group_id.clone()),
                calling_user_id: Some(initiator.clone()),
                calling_group_id: Some(group_id.clone()),
                broadcast: true,
                associated_group_id: Some(tg.id.clone()),
            };
            let mut mp = sip::call_body(
                String::from_utf8_lossy(&body.sdp).into_owned(),
                &info,
                &[(group_id.as_str(), &copy)],
                rng,
            );
            let pai = [(
                mcx_sip::headers::P_ASSERTED_IDENTITY,
                format!("<{initiator}>"),
            )];
            let invite = sip::invite(&initiator, &me, group_id, &mut mp, &pai, rng)?;
            self.send(server.clone(), Channel::Sip, invite.to_bytes());
            let (step, what) = if i == 0 {
                (3, "")
            } else {
                (8, " (steps 3-7 again)")
            };
            self.timeline.push_back(timeline(
                &me,
                step,
                time,
                format!("INVITE {group_id} with only its wrapped TGMK to {server}{what}"),
            ));
            legs.push(Leg {
                group_id: group_id.clone(),
                server: server.clone(),
                invite,
                result: None,
                members: Vec::new(),
                dialog: None,
            });
        }
        self.call = Some(Call {
            temporary_group_id: tg.id,
            initiator,
            initiator_addr: from.to_owned(),
            invite: req,
            legs,
            initiator_dialog: None,
            arbitrator: None,
            participants: Vec::new(),
            ended: false,
        });
        Ok(())
    }

    /// Step 7 (reports) and the answer to the initiator.
    fn on_response(
        &mut self,
        time: Time,
        resp: &Response,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let Some(call) = self.call.as_mut() else {
            return Ok(());
        };
        if resp.cseq()?.1 != Method::Invite || resp.status().is_provisional() {
            return Ok(()); // BYE answers, 1xx
        }
        let cid = resp.call_id()?;
        // The leg is known by its Call-ID (random, one per MC server
        // INVITE), not by `from`: a synthesized 408 (Timer B) delivered by
        // a `SipLink` names the Request-URI (the group), not the server.
        let Some(leg) = call
            .legs
            .iter_mut()
            .find(|l| l.invite.call_id().is_ok_and(|c| c == cid))
        else {
            return Ok(());
        };
        if leg.result.is_some() {
            return Ok(()); // retransmitted final answer
        }
        let reported = resp
            .headers()
            .get_all(ACCEPTANCE_HEADER)
            .find_map(parse_acceptance);
        let mut result = reported.unwrap_or_else(|| GroupResult {
            group_id: leg.group_id.clone(),
            accepted: 0,
            rejected: 0,
        });
        result.group_id.clone_from(&leg.group_id);
        let me = self.config.uri.clone();
        if resp.status().is_success() {
            let d = Dialog::uac(&leg.invite, resp)?;
            let ack = d.ack(("UDP", &sip::host_of(&me)), rand8(rng))?;
            leg.dialog = Some(d);
            leg.members = resp
                .headers()
                .get_all(MEMBER_HEADER)
                .map(|m| m.trim_matches(['<', '>']).to_owned())
                .collect();
            let server = leg.server.clone();
            self.transmits.push_back(Transmit {
                from: me.clone(),
                to: server,
                channel: Channel::Sip,
                contents: ack.to_bytes(),
            });
        } else {
            result.accepted = 0;
        }
        leg.result = Some(result.clone());
        self.timeline.push_back(timeline(
            &me,
            7,
            time,
            format!(
                "{} reported {}: {} accepted, {} rejected",
                leg.server, result.group_id, result.accepted, result.rejected
            ),
        ));
        self.events
            .push_back(ControllingEvent::GroupReported(result));
        if call.legs.iter().any(|l| l.result.is_none()) {
            return Ok(());
        }
        self.answer_initiator(time, rng)
    }

    fn answer_initiator(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let me = self.config.uri.clone();
        let Some(call) = self.call.as_mut() else {
            return Ok(());
        };
        let groups: Vec<GroupResult> = call.legs.iter().filter_map(|l| l.result.clone()).collect();
        let total: u32 = groups.iter().map(|g| g.accepted).sum();
        let tag = mcx_sip::new_tag(rand8(rng));
        let (status, sdp) = if total > 0 {
            let sdp = crate::sdp::session(&me, &sip::host_of(&me), u64::from(rng.next_u32()));
            (StatusCode::OK, Some(sdp))
        } else {
            (StatusCode::TEMPORARILY_UNAVAILABLE, None)
        };
        let mut resp = sip::respond(&call.invite, status, None, &me, &tag, sdp)?;
        for g in &groups {
            resp.headers_mut()
                .push(ACCEPTANCE_HEADER, &g.header_value())?;
        }
        let to = call.initiator_addr.clone();
        if !status.is_success() {
            call.ended = true;
            self.send(to, Channel::Sip, resp.to_bytes());
            return Ok(());
        }
        call.initiator_dialog = Some(Dialog::uas(&call.invite, &resp)?);
        let mut arb = BroadcastArbitrator::new(
            ArbitratorConfig::new(self.config.floor_ssrc),
            call.initiator.clone(),
        )?;
        call.participants = vec![call.initiator_addr.clone()];
        for m in call.legs.iter().flat_map(|l| l.members.iter()) {
            if !call.participants.contains(m) {
                arb.add_receiver(time.instant, m.clone())?;
                call.participants.push(m.clone());
            }
        }
        arb.start(time.instant)?;
        call.arbitrator = Some(arb);
        let tg = call.temporary_group_id.clone();
        self.send(to, Channel::Sip, resp.to_bytes());
        self.events.push_back(ControllingEvent::CallEstablished {
            temporary_group_id: tg,
            groups,
        });
        self.timeline.push_back(timeline(
            &me,
            9,
            time,
            format!("200 OK to initiator; floor granted to initiator, taken for {total} receivers"),
        ));
        self.drain_floor(time, rng)
    }

    fn drain_floor(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let Some(call) = self.call.as_mut() else {
            return Ok(());
        };
        let Some(arb) = call.arbitrator.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        while let Some(t) = arb.poll_transmit() {
            if let Some(to) = call.participants.get(t.destination.0) {
                out.push((to.clone(), t.contents));
            }
        }
        let mut ended = false;
        let mut evs = Vec::new();
        while let Some(e) = arb.poll_event() {
            ended |= e == ArbitratorEvent::CallEnded;
            evs.push(e);
        }
        for (to, c) in out {
            self.send(to, Channel::Floor, c);
        }
        self.events
            .extend(evs.into_iter().map(ControllingEvent::Floor));
        if ended {
            self.end_call(time, rng)?;
        }
        Ok(())
    }

    /// Sends BYE to the initiator and every MC server (TS 23.379: the
    /// call ends with the originator's transmission).
    fn end_call(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let me = self.config.uri.clone();
        let host = sip::host_of(&me);
        let Some(call) = self.call.as_mut() else {
            return Ok(());
        };
        if call.ended {
            return Ok(());
        }
        call.ended = true;
        let mut out = Vec::new();
        if let Some(d) = call.initiator_dialog.as_mut() {
            out.push((
                call.initiator_addr.clone(),
                d.request_in_dialog(Method::Bye, ("UDP", &host), rand8(rng))?,
            ));
        }
        for l in &mut call.legs {
            if let Some(d) = l.dialog.as_mut() {
                out.push((
                    l.server.clone(),
                    d.request_in_dialog(Method::Bye, ("UDP", &host), rand8(rng))?,
                ));
            }
        }
        for (to, bye) in out {
            self.send(to, Channel::Sip, bye.to_bytes());
        }
        self.timeline.push_back(timeline(
            &me,
            9,
            time,
            "initiator released the floor: BYE to all legs".to_owned(),
        ));
        self.events.push_back(ControllingEvent::CallEnded);
        Ok(())
    }

    fn on_bye(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let tag = mcx_sip::new_tag(rand8(rng));
        let me = self.config.uri.clone();
        let ours = self
            .call
            .as_ref()
            .and_then(|c| c.initiator_dialog.as_ref())
            .is_some_and(|d| d.matches(req));
        let status = if ours {
            StatusCode::OK
        } else {
            StatusCode::CALL_DOES_NOT_EXIST
        };
        let r = sip::respond(req, status, None, &me, &tag, None)?;
        self.send(from.to_owned(), Channel::Sip, r.to_bytes());
        if ours {
            if let Some(c) = self.call.as_mut() {
                // The initiator hung up: no BYE back to it.
                c.initiator_dialog = None;
                if let Some(a) = c.arbitrator.as_mut() {
                    if a.state() != mcx_floor::ArbitratorState::Ended {
                        a.end_call(time.instant)?;
                    }
                }
            }
            self.drain_floor(time, rng)?;
            self.end_call(time, rng)?;
        }
        Ok(())
    }
}
