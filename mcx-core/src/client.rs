//! The MC service client role: GMK reception, temporary group call start
//! (initiator, steps 1–2), call reception (receiver, steps 5–6), floor
//! participation (step 9).

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use mcx_floor::{Participant, ParticipantConfig, ParticipantEvent, ParticipantState};
use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_ibc::sakke::ReceiverKey;
use mcx_mikey::gmk::GmkReceiver;
use mcx_mikey::message::Sp;
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::tgmk::{ConstituentGroup, TgmkReceiver, TgmkWrap};
use mcx_mikey::wire::IdRole;
use mcx_mikey::{Gmk, KeyId, SrtpMasterKeys, Tgmk};
use mcx_sip::{Dialog, Limits, Message, Method, Request, Response, StatusCode};
use rand_core::CryptoRng;

use crate::controlling::{GroupResult, parse_acceptance};
use crate::info::McpttInfo;
use crate::sip::{self, rand8};
use crate::{Channel, Error, Time, TimelineEntry, Transmit, timeline};

/// Static configuration of a client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The MC service ID (also this client's address).
    pub uri: String,
    /// The controlling server of temporary group calls (address).
    pub controlling_server: String,
    /// The GMS: the only accepted signer of GMK messages.
    pub gms_uri: String,
    /// The users authorised to start a temporary group call toward this
    /// client (the authorisation check of step 5). A wrapped TGMK signed
    /// by anyone else is refused.
    pub allowed_initiators: Vec<String>,
    /// SSRC of this client's floor control packets.
    pub floor_ssrc: u32,
}

/// A key-confirmation value: the TGMK-ID and HMAC-SHA-256(TGMK,
/// "confirm"). Lets tests and operators compare keys without revealing
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyConfirmation {
    /// The TGMK-ID.
    pub tgmk_id: KeyId,
    /// HMAC-SHA-256(TGMK, "confirm").
    pub value: [u8; 32],
}

/// What happened at a client, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A GMK was accepted from the GMS.
    GmkAccepted {
        /// The group.
        group_id: String,
        /// Its GMK-ID.
        gmk_id: KeyId,
    },
    /// A temporary group call was accepted and its TGMK unwrapped.
    IncomingCall {
        /// The temporary group.
        temporary_group_id: String,
        /// The constituent group through which the call arrived.
        group_id: String,
        /// The initiator (ECCSI signature verified).
        initiator: String,
        /// The TGMK-ID.
        tgmk_id: KeyId,
    },
    /// An incoming call request was refused.
    IncomingRejected {
        /// The status sent (403 or 488, 486 when busy, 400 when malformed).
        status: u16,
        /// The reason phrase sent.
        reason: String,
    },
    /// The call this client initiated is established.
    CallEstablished {
        /// The temporary group.
        temporary_group_id: String,
        /// Acceptance per constituent group.
        groups: Vec<GroupResult>,
    },
    /// The call this client initiated was refused.
    CallFailed {
        /// The final status.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A floor control event.
    Floor(ParticipantEvent),
    /// The call ended (BYE received).
    CallEnded,
}

struct GroupKey {
    group_id: String,
    gmk: Gmk,
    gmk_id: KeyId,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CallRole {
    Initiator,
    Receiver,
}

struct Call {
    role: CallRole,
    temporary_group_id: String,
    invite: Request,
    /// Where the call's SIP messages come from (controlling or MC server).
    peer: String,
    tgmk: Tgmk,
    tgmk_id: KeyId,
    rand: Vec<u8>,
    dialog: Option<Dialog>,
    floor: Participant,
}

/// An MC service client (sans-IO).
///
/// Inputs: [`Client::accept_gmk`] (GMK I_MESSAGEs from the GMS),
/// [`Client::start_call`], [`Client::request_floor`],
/// [`Client::release_floor`], [`Client::handle`] (datagrams),
/// [`Client::handle_timeout`]. Outputs: [`Client::poll_transmit`],
/// [`Client::poll_timeout`], [`Client::poll_event`],
/// [`Client::poll_timeline`].
pub struct Client {
    config: ClientConfig,
    kms: CommunityPublic,
    key_period_no: u64,
    signer: SigningKey,
    receiver_key: ReceiverKey,
    gmks: Vec<GroupKey>,
    replay: ReplayCache,
    call: Option<Call>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    timeline: VecDeque<TimelineEntry>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("uri", &self.config.uri)
            .field(
                "groups",
                &self.gmks.iter().map(|g| &g.group_id).collect::<Vec<_>>(),
            )
            .field("in_call", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with its KMS user keys (validated here against the
    /// community) and the community's public values.
    ///
    /// # Errors
    /// [`Error::Ibc`] if the SSK/PVT or RSK were not issued by this KMS
    /// for `keys.uid`.
    pub fn new(config: ClientConfig, kms: CommunityPublic, keys: UserKeys) -> Result<Self, Error> {
        let UserKeys {
            key_period_no,
            uid,
            ssk,
            pvt,
            rsk,
            ..
        } = keys;
        let signer = SigningKey::new(&kms.kpak, &uid, ssk, pvt)?;
        let receiver_key = ReceiverKey::new(&kms.sakke_public, &uid, &rsk)?;
        Ok(Self {
            config,
            kms,
            key_period_no,
            signer,
            receiver_key,
            gmks: Vec::new(),
            replay: ReplayCache::default(),
            call: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timeline: VecDeque::new(),
        })
    }

    /// The MC service ID.
    pub fn uri(&self) -> &str {
        &self.config.uri
    }

    /// Whether this client holds a GMK for `group_id`.
    pub fn has_gmk(&self, group_id: &str) -> bool {
        self.gmks.iter().any(|g| g.group_id == group_id)
    }

    /// Whether a call is in progress.
    pub fn in_call(&self) -> bool {
        self.call.is_some()
    }

    /// The TGMK-ID and HMAC-SHA-256(TGMK, "confirm") of the current call.
    pub fn tgmk_confirmation(&self) -> Option<KeyConfirmation> {
        self.call.as_ref().map(|c| KeyConfirmation {
            tgmk_id: c.tgmk_id,
            value: mcx_mikey::kdf::hmac_sha256(c.tgmk.as_bytes(), b"confirm"),
        })
    }

    /// The SRTP master key, salt and MKI of the current call (SPEC
    /// section 6), for `mcx-srtp`.
    pub fn media_keys(&self) -> Option<SrtpMasterKeys> {
        self.call
            .as_ref()
            .map(|c| mcx_mikey::tgmk::srtp_keys(&c.tgmk, c.tgmk_id, &c.rand))
    }

    /// The floor participant state of the current call.
    pub fn floor_state(&self) -> Option<ParticipantState> {
        self.call.as_ref().map(|c| c.floor.state())
    }

    /// Accepts a GMK I_MESSAGE from the GMS for `group_id` (TS 33.180
    /// 5.7) after every check of [`GmkReceiver::accept`]; replaces any
    /// older GMK of the group.
    ///
    /// # Errors
    /// [`Error::Mikey`] with the failed check.
    pub fn accept_gmk(
        &mut self,
        time: Time,
        group_id: &str,
        message: &[u8],
    ) -> Result<KeyId, Error> {
        let received = GmkReceiver {
            own_uri: &self.config.uri,
            own_key: &self.receiver_key,
            key_period_no: self.key_period_no,
            kms: &self.kms,
            gms_uri: &self.config.gms_uri,
        }
        .accept(message, time.unix, &mut self.replay)?;
        let gmk_id = received.gmk_id;
        self.gmks.retain(|g| g.group_id != group_id);
        self.gmks.push(GroupKey {
            group_id: group_id.to_owned(),
            gmk: received.gmk,
            gmk_id,
        });
        self.events.push_back(ClientEvent::GmkAccepted {
            group_id: group_id.to_owned(),
            gmk_id,
        });
        Ok(gmk_id)
    }

    /// Starts a temporary group – broadcast group call to the constituent
    /// `groups` (steps 1 and 2): generates the TGMK, wraps it under each
    /// group's GMK, signs each copy and sends one INVITE to the
    /// controlling server.
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] during a call, [`Error::Unknown`] for a
    /// group without a GMK, [`Error::Mikey`] or [`Error::SipBuild`].
    pub fn start_call(
        &mut self,
        time: Time,
        temporary_group_id: &str,
        groups: &[&str],
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        if self.call.is_some() {
            return Err(Error::InvalidCommand("start_call during a call"));
        }
        let mut constituents = Vec::with_capacity(groups.len());
        for g in groups {
            let k = self
                .gmks
                .iter()
                .find(|k| k.group_id == *g)
                .ok_or_else(|| Error::Unknown(format!("no GMK for group {g}")))?;
            constituents.push(ConstituentGroup {
                group_id: &k.group_id,
                gmk: &k.gmk,
                gmk_id: k.gmk_id,
            });
        }
        let (tgmk, tgmk_id) = mcx_mikey::tgmk::generate(rng);
        let uri = self.config.uri.clone();
        self.timeline.push_back(timeline(
            &uri,
            1,
            time,
            format!("generated TGMK {tgmk_id} for {temporary_group_id}"),
        ));
        let wraps = TgmkWrap {
            initiator_uri: &self.config.uri,
            kms: &self.kms,
            temporary_group_id,
            tgmk: &tgmk,
            tgmk_id,
            activation: time.unix,
            expiry: 0,
            t_unix: time.unix,
            policy: Sp::default_group_profile(),
        }
        .wrap(&constituents, &self.signer, rng)?;
        let first = wraps
            .first()
            .ok_or(Error::InvalidCommand("no constituent group"))?;
        let (msg, _) = mcx_mikey::Message::decode_with_layout(&first.message)
            .map_err(mcx_mikey::Error::from)?;
        let rand = msg.rand().ok_or(Error::Missing("RAND"))?.0.clone();
        let info = McpttInfo {
            session_type: Some("prearranged".into()),
            request_uri: Some(temporary_group_id.to_owned()),
            calling_user_id: Some(uri.clone()),
            calling_group_id: None,
            broadcast: true,
            associated_group_id: None,
        };
        let parts: Vec<(&str, &[u8])> = wraps
            .iter()
            .map(|w| (w.group_id.as_str(), w.message.as_slice()))
            .collect();
        let sdp = crate::sdp::session(&uri, &sip::host_of(&uri), u64::from(rng.next_u32()));
        let mut body = sip::call_body(sdp, &info, &parts, rng);
        let invite = sip::invite(&uri, &uri, temporary_group_id, &mut body, &[], rng)?;
        let mut floor_cfg = ParticipantConfig::new(self.config.floor_ssrc, uri.clone());
        floor_cfg.priority(7);
        let mut floor = Participant::new(floor_cfg)?;
        // The INVITE carries the implicit floor request (TS 24.380 6.2.4.2):
        // 'U: pending Request' now, so a Floor Granted that overtakes the
        // 200 OK (floor and SIP travel on different sockets) is taken.
        floor.start(time.instant, true)?;
        self.send_sip(
            self.config.controlling_server.clone(),
            &Message::from(invite.clone()),
        );
        self.timeline.push_back(timeline(
            &uri,
            2,
            time,
            format!(
                "INVITE {temporary_group_id} to {} with {} wrapped TGMK copies",
                self.config.controlling_server,
                wraps.len()
            ),
        ));
        self.call = Some(Call {
            role: CallRole::Initiator,
            temporary_group_id: temporary_group_id.to_owned(),
            invite,
            peer: self.config.controlling_server.clone(),
            tgmk,
            tgmk_id,
            rand,
            dialog: None,
            floor,
        });
        Ok(())
    }

    /// Asks for the floor (TS 24.380 6.2.4.3). In a broadcast call a
    /// receiver has no permission to request and gets
    /// `Error::Floor(NotPermitted)` locally.
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] outside a call, [`Error::Floor`].
    pub fn request_floor(&mut self, time: Time) -> Result<(), Error> {
        let call = self.call.as_mut().ok_or(Error::InvalidCommand("no call"))?;
        call.floor.request_floor(time.instant)?;
        self.drain_floor(time);
        Ok(())
    }

    /// Sends a Floor Request even without permission to request (a
    /// misbehaving or out-of-date client); the server must deny it with
    /// cause 5 "receive only".
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] outside a call, [`Error::Floor`].
    pub fn request_floor_anyway(&mut self, _time: Time) -> Result<(), Error> {
        let call = self.call.as_ref().ok_or(Error::InvalidCommand("no call"))?;
        let pkt =
            mcx_floor::Message::new(mcx_floor::MessageType::FloorRequest, self.config.floor_ssrc)
                .with(mcx_floor::Field::FloorPriority(1))
                .to_bytes()?;
        let _ = call;
        self.transmits.push_back(Transmit {
            from: self.config.uri.clone(),
            to: self.config.controlling_server.clone(),
            channel: Channel::Floor,
            contents: pkt,
        });
        Ok(())
    }

    /// Releases the floor; for the initiator of a broadcast call this
    /// ends the call (TS 23.379).
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] outside a call, [`Error::Floor`].
    pub fn release_floor(&mut self, time: Time) -> Result<(), Error> {
        let call = self.call.as_mut().ok_or(Error::InvalidCommand("no call"))?;
        call.floor.release_floor(time.instant)?;
        self.drain_floor(time);
        Ok(())
    }

    /// Handles a datagram from `from`.
    ///
    /// # Errors
    /// A malformed or unexpected message; refusals of call requests are
    /// not errors (they are answered and reported as events).
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
                let r = call.floor.handle(time.instant, bytes);
                self.drain_floor(time);
                r?;
                Ok(())
            }
            Channel::Sip => self.handle_sip(time, from, sip::parse(bytes)?, rng),
        }
    }

    /// Handles a SIP message from `from` that is already parsed (by
    /// [`crate::SipLink`], or by a TCP framer): the same as
    /// [`Client::handle`] with [`Channel::Sip`] and its encoding, without
    /// parsing again. The message must be within `mcx_sip::Limits::TCP`.
    ///
    /// # Errors
    /// As [`Client::handle`].
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
                    let busy = self.call.is_some();
                    if let Some(r) = sip::answer_other_method(&req, busy, &self.config.uri, rng)? {
                        self.send_sip(from.to_owned(), &r.into());
                    }
                    Ok(())
                }
            },
            Message::Response(resp) => self.on_response(time, resp, rng),
        }
    }

    /// Timers of the floor participant.
    pub fn handle_timeout(&mut self, time: Time) {
        if let Some(c) = self.call.as_mut() {
            c.floor.handle_timeout(time.instant);
        }
        self.drain_floor(time);
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next timer deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.call.as_ref().and_then(|c| c.floor.poll_timeout())
    }

    /// The next application event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next timeline entry.
    #[must_use]
    pub fn poll_timeline(&mut self) -> Option<TimelineEntry> {
        self.timeline.pop_front()
    }

    fn send_sip(&mut self, to: String, m: &Message) {
        self.transmits.push_back(Transmit {
            from: self.config.uri.clone(),
            to,
            channel: Channel::Sip,
            contents: m.to_bytes(),
        });
    }

    fn drain_floor(&mut self, time: Time) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        // Floor control runs between the client and the controlling server.
        let to = self.config.controlling_server.clone();
        while let Some(p) = call.floor.poll_transmit() {
            self.transmits.push_back(Transmit {
                from: self.config.uri.clone(),
                to: to.clone(),
                channel: Channel::Floor,
                contents: p,
            });
        }
        while let Some(e) = call.floor.poll_event() {
            let note = match &e {
                ParticipantEvent::FloorGranted { .. } => Some("floor granted: transmitting"),
                ParticipantEvent::FloorTaken { .. } => Some("floor taken: receiving"),
                _ => None,
            };
            if let Some(n) = note {
                self.timeline
                    .push_back(timeline(&self.config.uri, 9, time, n.to_owned()));
            }
            self.events.push_back(ClientEvent::Floor(e));
        }
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
        self.send_sip(from.to_owned(), &r.into());
        self.events.push_back(ClientEvent::IncomingRejected {
            status: status.0,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Steps 5 and 6: check, unwrap, answer.
    fn on_invite(
        &mut self,
        time: Time,
        from: &str,
        req: Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        if self.call.is_some() {
            return self.reject(from, &req, StatusCode::BUSY_HERE, "Busy Here", rng);
        }
        let Ok(body) = sip::read_call_body(&req) else {
            return self.reject(
                from,
                &req,
                StatusCode::BAD_REQUEST,
                "Bad Request - malformed call request",
                rng,
            );
        };
        let info = body.info;
        let Some(temporary_group_id) = info.associated_group_id.clone().filter(|_| info.broadcast)
        else {
            return self.reject(
                from,
                &req,
                StatusCode::NOT_ACCEPTABLE_HERE,
                "Not Acceptable Here - not a temporary group broadcast call",
                rng,
            );
        };
        let group_id = req.uri().to_owned();
        let Some(k) = self.gmks.iter().find(|k| k.group_id == group_id) else {
            return self.reject(
                from,
                &req,
                StatusCode::FORBIDDEN,
                "Forbidden - not a member of the constituent group",
                rng,
            );
        };
        let wraps: Vec<_> = body.wraps.iter().filter(|(g, _)| *g == group_id).collect();
        let [(_, wrap)] = wraps.as_slice() else {
            return self.reject(
                from,
                &req,
                StatusCode::NOT_ACCEPTABLE_HERE,
                "Not Acceptable Here - no single wrapped TGMK for the group",
                rng,
            );
        };
        // Authorisation (step 5): who signed the TGMK must be allowed.
        let initiator = match mcx_mikey::Message::decode_with_layout(wrap) {
            Ok((m, _)) => m
                .idr(IdRole::Initiator)
                .and_then(|i| String::from_utf8(i.id.clone()).ok()),
            Err(_) => None,
        };
        let Some(initiator) = initiator.filter(|i| {
            self.config.allowed_initiators.iter().any(|a| a == i)
                && info.calling_user_id.as_deref().is_none_or(|c| c == i)
        }) else {
            return self.reject(
                from,
                &req,
                StatusCode::FORBIDDEN,
                "Forbidden - initiator not authorised for temporary group calls",
                rng,
            );
        };
        let groups = [ConstituentGroup {
            group_id: &k.group_id,
            gmk: &k.gmk,
            gmk_id: k.gmk_id,
        }];
        let unwrapped = TgmkReceiver {
            kms: &self.kms,
            groups: &groups,
            expected_initiator: Some(&initiator),
        }
        .unwrap(wrap, time.unix, &mut self.replay);
        let unwrapped = match unwrapped {
            Ok(u)
                if u.temporary_group_id == temporary_group_id
                    && u.constituent_group_id == group_id =>
            {
                u
            }
            _ => {
                return self.reject(
                    from,
                    &req,
                    StatusCode::NOT_ACCEPTABLE_HERE,
                    "Not Acceptable Here - wrapped TGMK rejected",
                    rng,
                );
            }
        };
        let uri = self.config.uri.clone();
        self.timeline.push_back(timeline(
            &uri,
            5,
            time,
            format!(
                "authorised {initiator}; unwrapped TGMK {} with GMK of {group_id}",
                unwrapped.tgmk_id
            ),
        ));
        let sdp = crate::sdp::session(&uri, &sip::host_of(&uri), u64::from(rng.next_u32()));
        let tag = mcx_sip::new_tag(rand8(rng));
        let resp = sip::respond(&req, StatusCode::OK, None, &uri, &tag, Some(sdp))?;
        let dialog = Dialog::uas(&req, &resp)?;
        let mut floor =
            Participant::new(ParticipantConfig::new(self.config.floor_ssrc, uri.clone()))?;
        floor.start(time.instant, false)?;
        self.send_sip(from.to_owned(), &resp.into());
        self.timeline
            .push_back(timeline(&uri, 6, time, format!("200 OK to {from}")));
        self.events.push_back(ClientEvent::IncomingCall {
            temporary_group_id: temporary_group_id.clone(),
            group_id,
            initiator,
            tgmk_id: unwrapped.tgmk_id,
        });
        self.call = Some(Call {
            role: CallRole::Receiver,
            temporary_group_id,
            invite: req,
            peer: from.to_owned(),
            tgmk: unwrapped.tgmk,
            tgmk_id: unwrapped.tgmk_id,
            rand: unwrapped.rand,
            dialog: Some(dialog),
            floor,
        });
        Ok(())
    }

    fn on_response(
        &mut self,
        _time: Time,
        resp: Response,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let Some(call) = self.call.as_mut() else {
            return Ok(()); // e.g. the 200 to our BYE answer after the call
        };
        if call.role != CallRole::Initiator
            || call.dialog.is_some()
            || resp.call_id()? != call.invite.call_id()?
            || resp.cseq()?.1 != Method::Invite
        {
            return Ok(());
        }
        let status = resp.status();
        if status.is_provisional() {
            return Ok(());
        }
        if !status.is_success() {
            self.events.push_back(ClientEvent::CallFailed {
                status: status.0,
                reason: resp.reason().to_owned(),
            });
            self.call = None;
            return Ok(());
        }
        let dialog = Dialog::uac(&call.invite, &resp)?;
        let ack = dialog.ack(("UDP", &sip::host_of(&self.config.uri)), rand8(rng))?;
        let groups = resp
            .headers()
            .get_all(crate::ACCEPTANCE_HEADER)
            .filter_map(parse_acceptance)
            .collect();
        call.dialog = Some(dialog);
        let peer = call.peer.clone();
        let tg = call.temporary_group_id.clone();
        self.send_sip(peer, &ack.into());
        self.events.push_back(ClientEvent::CallEstablished {
            temporary_group_id: tg,
            groups,
        });
        Ok(())
    }

    fn on_bye(&mut self, from: &str, req: &Request, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let matches = self
            .call
            .as_ref()
            .and_then(|c| c.dialog.as_ref())
            .is_some_and(|d| d.matches(req));
        let tag = mcx_sip::new_tag(rand8(rng));
        if !matches {
            let r = sip::respond(
                req,
                StatusCode::CALL_DOES_NOT_EXIST,
                None,
                &self.config.uri,
                &tag,
                None,
            )?;
            self.send_sip(from.to_owned(), &r.into());
            return Ok(());
        }
        let r = sip::respond(req, StatusCode::OK, None, &self.config.uri, &tag, None)?;
        self.send_sip(from.to_owned(), &r.into());
        if let Some(mut c) = self.call.take() {
            c.floor.leave();
        }
        self.events.push_back(ClientEvent::CallEnded);
        Ok(())
    }
}
