//! The MC server of constituent groups (participating role): forwards a
//! temporary group call request with only that group's wrapped TGMK to
//! the group's members (step 4), gathers their answers under a deadline
//! and reports to the controlling server (step 7), for any number of
//! concurrent calls. It holds no key material.
//!
//! Every call record ends: on the controlling server's BYE or CANCEL, a
//! failed fan-out, its 2xx never ACKed, the maximum call duration or
//! [`McServer::shutdown`]. Members that have not answered by the member
//! deadline are CANCELled (after a provisional response) or abandoned,
//! and the group is reported with what is known.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcx_floor::{
    ArbitratorConfig, MessageType, NonControlling, NonControllingEvent, ParticipantId, RtcpPacket,
};
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_ibc::sakke::ReceiverKey;
use mcx_idms::jwt::TokenVerifier;
use mcx_mikey::csk::SpkFloorKeys;
use mcx_mikey::replay::ReplayCache;
use mcx_sip::{Dialog, Limits, Message, Method, PositionIndex, Request, Response, StatusCode};
use rand_core::CryptoRng;

use crate::agenda::{Agenda, Slot};
use crate::floor_guard::{
    FloorDrop, FloorDrops, FloorGuard, LegFloor, unindex, with_ssrc, worn_refusal, worst,
};
use crate::info::McpttInfo;
use crate::registration::{asked_expiry, carries_mikey, check_access_token, registered_ok};
use crate::result::{
    CallResult, FailureCause, GroupFailure, GroupReport, GroupResult, MemberOutcome, MemberResult,
};
use crate::sdp::{Description, Direction, MediaEndpoint};
use crate::sip::{self, InviteForm, InviteIds, without_body};
use crate::ua::{Answer, GoneLegs, UserAgent, cancels};
use crate::{
    CallState, CallSummary, Channel, Error, RelayCommand, Time, TimelineEntry, Transmit, timeline,
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
    /// The group's fan-out was decided; the controlling server was told.
    GroupReported(GroupResult),
    /// A request was refused.
    Rejected {
        /// Status sent.
        status: u16,
        /// Reason phrase sent.
        reason: String,
    },
    /// A call of a group ended; its members were sent BYE.
    CallEnded {
        /// The group.
        group_id: String,
        /// Why.
        reason: String,
    },
    /// A member never acknowledged the Floor Taken or Floor Idle this
    /// server sent it as the leg's non-controlling floor function, after
    /// every transmission (TS 24.380 6.5): no more are sent; its call
    /// goes on.
    FloorAckTimeout {
        /// The group.
        group_id: String,
        /// The member.
        member: String,
        /// The unacknowledged message.
        message_type: MessageType,
    },
}

/// When an MC server answers the controlling server's call request: the
/// two answering modes of the participating function in TS 24.379 (an
/// answer on behalf of its members before they confirm, or after them),
/// named by the `P-Answer-State` values of RFC 4964 section 6 that the
/// 200 OK carries. docs/core.md "Answer policy" says what follows each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerPolicy {
    /// After every invited member answered or the member deadline passed:
    /// 200 OK with `P-Answer-State: Confirmed` and every member's outcome
    /// (480 when none joined). The behaviour before the policy existed.
    #[default]
    Confirmed,
    /// At once: 200 OK with `P-Answer-State: Unconfirmed`, the invited
    /// members `pending`; each member's outcome follows in-call (INFO
    /// `mcx.call-result`), the member deadline still bounds the wait, and
    /// the leg is ended (BYE) if no member joined by then.
    Unconfirmed,
}

impl AnswerPolicy {
    /// The `P-Answer-State` value (RFC 4964 6).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "Confirmed",
            Self::Unconfirmed => "Unconfirmed",
        }
    }
}

/// RFC 4964: the header naming whether the callee confirmed the answer.
pub const P_ANSWER_STATE: &str = "P-Answer-State";

/// Deadlines and limits of an MC server.
#[derive(Clone, Debug)]
pub struct McServerLimits {
    /// How long members have to answer before the group is reported
    /// without them. Shorter than the controlling server's group deadline.
    pub member_deadline: Duration,
    /// Longest call.
    pub max_call_duration: Duration,
    /// How long its 2xx may stay un-ACKed (RFC 3261 13.3.1.4: 64·T1).
    pub ack_wait: Duration,
    /// Most concurrent calls (fan-outs); beyond, 503.
    pub max_calls: usize,
    /// A controlling server that sends nothing for this long (its
    /// keep-alive probes every MC server it has calls with) is taken as
    /// gone: its calls here end (BYE to the members). Longer than the
    /// controlling server's probe interval times its retransmissions;
    /// `Duration::ZERO` (the default) turns the watch off, for controlling
    /// servers that send no keep-alive.
    pub upstream_silence: Duration,
    /// The longest registration granted (RFC 3261 10.3: the registrar
    /// may shorten what was asked).
    pub max_registration: Duration,
    /// When the controlling server gets its answer.
    pub answer: AnswerPolicy,
    /// A member's registration refresh without a fresh CSK is refused once
    /// its floor channel holds this many SSRCs in one direction (each call
    /// adds one each way; the cap is 100,000): it registers anew with a
    /// fresh CSK. Default: 90 % of the cap.
    pub floor_rekey_streams: usize,
    /// Whether the Floor Taken and Floor Idle this server sends its
    /// members (as the call leg's non-controlling floor function, TS
    /// 24.380 6.5) ask for a Floor Ack; a member that does not answer is
    /// sent the message again every 500 ms, three transmissions in all.
    /// Default true, as the controlling server's arbitrator.
    pub floor_ack_required: bool,
}

impl Default for McServerLimits {
    fn default() -> Self {
        Self {
            member_deadline: Duration::from_secs(4),
            max_call_duration: Duration::from_secs(3600),
            ack_wait: Duration::from_secs(32),
            max_calls: 1000,
            upstream_silence: Duration::ZERO,
            max_registration: Duration::from_secs(3600),
            answer: AnswerPolicy::Confirmed,
            floor_rekey_streams: crate::floor_guard::SERVER_REKEY_STREAMS,
            floor_ack_required: true,
        }
    }
}

enum MemberState {
    Trying {
        provisional: bool,
    },
    Joined {
        dialog: Dialog,
        /// The member's own floor SSRC (its answer's SDP).
        ssrc: Option<u32>,
        /// The SSRC its floor messages carry to and from the controlling
        /// server: its own, unless another member of this leg has that
        /// one ([`Fanout::relay_ssrc`]).
        relay: Option<u32>,
        /// Where the member takes voice (its answer's SDP).
        audio: Option<SocketAddr>,
    },
    Done(MemberOutcome),
    /// Left the call (BYE from the member).
    Left,
}

/// A member of a group served here.
#[derive(Debug)]
struct Member {
    uri: String,
    /// The To value of its INVITEs, checked once when its group was
    /// added (the builder's error if `uri` is not a SIP URI, returned
    /// when a call would invite it, as the builder did then).
    to: Result<String, mcx_sip::BuildError>,
}

impl Member {
    fn new(uri: String) -> Self {
        Self {
            to: sip::to_value(&uri),
            uri,
        }
    }

    fn to(&self) -> Result<&str, Error> {
        self.to.as_deref().map_err(|e| Error::SipBuild(e.clone()))
    }
}

struct MemberLeg {
    member: Arc<Member>,
    /// Its INVITE's own values: with the fan-out's [`InviteForm`], what
    /// its 2xx or CANCEL needs of the INVITE is made again when needed,
    /// rather than a copy of each member's INVITE kept.
    ids: InviteIds,
    state: MemberState,
}

impl MemberLeg {
    /// The INVITE sent to this member as kept ([`InviteForm::kept`]):
    /// what its dialog, ACK and CANCEL are made from.
    fn invite(&self, form: &InviteForm) -> Result<Request, Error> {
        form.kept(self.member.to()?, &self.ids)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timer {
    MemberDeadline,
    AckWait,
    MaxDuration,
    /// Checks that the controlling server is still heard.
    UpstreamWatch,
    /// A Floor Taken / Floor Idle to a member is due again
    /// ([`Fanout::floor_fan`]).
    Floor,
}

type CallNo = u64;

/// Whose Call-ID it is within a fan-out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Party {
    /// The controlling server's INVITE.
    Upstream,
    /// The member leg at this index.
    Member(usize),
}

struct Fanout {
    group_id: String,
    upstream_addr: String,
    /// The controlling server's INVITE without its body.
    upstream: Request,
    upstream_dialog: Option<Dialog>,
    legs: Vec<MemberLeg>,
    /// `legs` by member URI: a member that registers during the call is
    /// found in each fan-out without a scan of its legs (a registration
    /// storm during a call was quadratic in the group's size).
    leg_by_member: PositionIndex,
    reported: bool,
    /// Legs still waiting for a final answer.
    trying: usize,
    timers: Vec<(Timer, Slot)>,
    last_touch: Instant,
    /// When the controlling server's INVITE came.
    started: Instant,
    /// The voice from upstream: the controlling server's relay socket
    /// and the initiator's SSRC (as the offer announced them).
    voice_source: Option<SocketAddr>,
    voice_ssrc: Option<u32>,
    relaying: bool,
    /// What a member invited later gets (late entry): the same offer,
    /// mcptt-info and wrapped TGMK as the others.
    late: LateEntry,
    /// The controlling server's floor SSRC in this call (what members
    /// know the call's floor messages by).
    upstream_floor_ssrc: Option<u32>,
    /// Floor control with the controlling server in this call, under
    /// this leg's keys (made when first needed; goes with the call).
    floor: Option<LegFloor>,
    /// The legs by the SSRC their floor messages carry upstream. Kept
    /// for members that left (packets for them still authenticate).
    floor_relays: HashMap<u32, usize>,
    /// Where the last search for a free relay SSRC stopped
    /// ([`pick_relay_ssrc`]).
    relay_cursor: Option<u32>,
    /// This leg's non-controlling floor function (TS 24.380 6.5): the
    /// controlling server sends Floor Taken / Floor Idle once for the leg,
    /// under `upstream_floor_ssrc`, and this sends them to each joined
    /// member (by leg index), with its own sequence numbers and
    /// retransmissions. Made once the fan-out is (none without a call
    /// floor SSRC); goes with the call.
    floor_fan: Option<NonControlling>,
    /// The controlling server ACKed our 2xx: in-call reports may go.
    acked: bool,
    /// Members' outcomes decided after our answer and before its ACK:
    /// sent in one INFO when the ACK comes (an INFO that overtook the
    /// 2xx would find no dialog at the controlling server).
    held: Vec<MemberResult>,
}

/// The parts of a fan-out's INVITE kept for late entry.
struct LateEntry {
    /// Every member's INVITE but its own parts: the call request's body
    /// for a member (SDP, mcptt-info, the group's wrapped copy), encoded
    /// once, the caller asserted, the call request's Resource-Priority
    /// values passed on as they came (RFC 4412; TS 24.379 asks none for
    /// a broadcast group call).
    form: InviteForm,
    info: McpttInfo,
    caller: String,
}

/// A member's registration with this MC server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    /// Registered until then.
    Until(Instant),
    /// Withdrawn or lapsed: not invited until it registers again.
    Gone,
}

/// `own` unless `taken`; else the first free value after where the last
/// such search stopped (`cursor`, then kept), or after `own` on the first.
/// Searching on from the cursor costs each member one probe however many
/// answer with one SSRC: searching from `own` each time, members that all
/// announce one SSRC (broken or hostile) made a leg's set-up quadratic in
/// its size (10,000 such members: ~5·10⁷ probes).
fn pick_relay_ssrc(own: u32, cursor: &mut Option<u32>, taken: impl Fn(u32) -> bool) -> u32 {
    if !taken(own) {
        return own;
    }
    let mut r = cursor.unwrap_or(own).wrapping_add(1);
    while taken(r) {
        r = r.wrapping_add(1);
    }
    *cursor = Some(r);
    r
}

impl Fanout {
    /// The SSRC a member that announced `own` gets on the floor channel
    /// upstream: `own`, unless a member of this leg already has it (two
    /// members with one SSRC could not be told apart by the controlling
    /// server); then a free one ([`pick_relay_ssrc`]). Decision:
    /// docs/core.md. Never the call's floor SSRC either: that one names
    /// the leg-wide messages ([`Fanout::floor_fan`]).
    fn relay_ssrc(&mut self, own: u32) -> u32 {
        let (upstream, relays) = (self.upstream_floor_ssrc, &self.floor_relays);
        pick_relay_ssrc(own, &mut self.relay_cursor, |r| {
            r == 0 || Some(r) == upstream || relays.contains_key(&r)
        })
    }

    /// This call's floor channel under `spk`, made on first use.
    fn floor(&mut self, spk: &SpkFloorKeys) -> Option<&mut LegFloor> {
        if self.floor.is_none() {
            let call_id = self.upstream.call_id().ok()?;
            self.floor = Some(LegFloor::mc_server(spk, call_id).ok()?);
        }
        self.floor.as_mut()
    }

    /// Whether `req` belongs to the dialog of `party` in this fan-out.
    fn knows_dialog(&self, party: Party, req: &Request) -> bool {
        match party {
            Party::Upstream => self
                .upstream_dialog
                .as_ref()
                .is_some_and(|d| d.matches(req)),
            Party::Member(i) => self.legs.get(i).is_some_and(
                |l| matches!(&l.state, MemberState::Joined { dialog, .. } if dialog.matches(req)),
            ),
        }
    }
}

/// An MC server owning one or more groups (sans-IO).
///
/// Configure with [`McServer::add_group`], [`McServer::trust_controlling_server`]
/// and [`McServer::set_limits`]; inputs [`McServer::handle`] /
/// [`McServer::handle_sip`], [`McServer::handle_timeout`],
/// [`McServer::shutdown`]; outputs [`McServer::poll_transmit`],
/// [`McServer::poll_timeout`], [`McServer::poll_event`],
/// [`McServer::poll_timeline`].
pub struct McServer {
    ua: UserAgent,
    groups: BTreeMap<String, Arc<[Arc<Member>]>>,
    /// How many of `groups` list each member: a REGISTER is checked
    /// against it, not against every group's list.
    group_members: HashMap<String, u32>,
    trusted: Vec<String>,
    limits: McServerLimits,
    fanouts: BTreeMap<CallNo, Fanout>,
    next_no: CallNo,
    /// Call-IDs of upstream INVITEs and of every member leg: O(1) per
    /// member answer, whatever the group's size.
    by_call_id: HashMap<String, (CallNo, Party)>,
    agenda: Agenda<(CallNo, Timer)>,
    gone_legs: GoneLegs,
    events: VecDeque<McServerEvent>,
    timeline: VecDeque<TimelineEntry>,
    media: MediaEndpoint,
    relay: VecDeque<RelayCommand>,
    /// Controlling servers with calls here: when each was last heard, and
    /// how many fan-outs it has.
    upstreams: HashMap<String, (Instant, usize)>,
    /// Members' registrations (only members of our groups are taken).
    registrations: HashMap<String, Binding>,
    /// Our identity with the KMS: SAKKE key to take members' CSKs.
    identity: Option<ServerIdentity>,
    csk_replay: ReplayCache,
    /// With one, REGISTERs need an IdMS access token.
    tokens: Option<TokenVerifier>,
    /// The wrapped copies of the call requests relayed (replay window).
    copies_seen: ReplayCache,
    /// Floor control with each member, under its CSK.
    member_guards: HashMap<String, FloorGuard>,
    /// The SPK configured between us and the controlling servers: each
    /// call's floor keys come from it ([`Fanout::floor`]).
    spk: Option<SpkFloorKeys>,
    /// Joined members by their own floor SSRC: (call, leg). One member
    /// in two calls, or two members, may share one.
    floor_members: HashMap<u32, Vec<(CallNo, usize)>>,
    /// Calls by the SSRCs their floor messages carry upstream
    /// ([`Fanout::floor_relays`]).
    floor_relays: HashMap<u32, Vec<CallNo>>,
    /// Calls by their leg-wide floor SSRC (the controlling server's floor
    /// SSRC of the call): its Floor Taken / Floor Idle for all our members
    /// of the leg come under it, and our Floor Acks to them go back under
    /// it ([`Fanout::floor_fan`]).
    leg_floor: HashMap<u32, Vec<CallNo>>,
    /// Floor SSRCs of recently ended calls, and when: their last Floor
    /// Acks still come, and are absorbed, not counted.
    ended_floor: HashMap<u32, Instant>,
    floor_drops: FloorDrops,
}

/// How long floor packets of an ended call are absorbed.
const ENDED_FLOOR_KEEP: Duration = Duration::from_secs(10);

/// A server's identity keys from the KMS (to take CSKs).
pub(crate) struct ServerIdentity {
    pub(crate) kms: CommunityPublic,
    pub(crate) receiver_key: ReceiverKey,
    pub(crate) key_period_no: u64,
}

impl ServerIdentity {
    pub(crate) fn new(kms: CommunityPublic, keys: UserKeys) -> Result<Self, Error> {
        let key_period_no = keys.key_period_no;
        let (_, receiver_key) = keys.into_validated(&kms)?;
        Ok(Self {
            kms,
            // A server decapsulates the CSK of every client that registers:
            // the RSK's lines make each pairing a third as costly.
            receiver_key: receiver_key.with_lines(),
            key_period_no,
        })
    }

    /// Takes a CSK upload from `client` (TS 33.180 5.4 / E.4).
    pub(crate) fn accept_csk(
        &self,
        server_uri: &str,
        client: &str,
        body: &[u8],
        now_unix: u64,
        replay: &mut ReplayCache,
    ) -> Result<FloorGuard, Error> {
        let accepted = mcx_mikey::csk::CskReceiver {
            server_uri,
            server_key: &self.receiver_key,
            key_period_no: self.key_period_no,
            kms: &self.kms,
        }
        .accept_from(body, client, now_unix, replay)?;
        FloorGuard::new(&accepted.srtcp_keys())
    }
}

impl fmt::Debug for McServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McServer")
            .field("uri", &self.ua.uri())
            .field("groups", &self.groups.keys().collect::<Vec<_>>())
            .field("calls", &self.fanouts.len())
            .finish_non_exhaustive()
    }
}

impl McServer {
    /// An MC server with address `uri`, no groups, default limits, and
    /// call requests accepted from any controlling server.
    pub fn new(uri: impl Into<String>) -> Self {
        let uri = uri.into();
        Self {
            ua: UserAgent::new(&uri),
            groups: BTreeMap::new(),
            group_members: HashMap::new(),
            trusted: Vec::new(),
            limits: McServerLimits::default(),
            fanouts: BTreeMap::new(),
            next_no: 1,
            by_call_id: HashMap::new(),
            agenda: Agenda::new(),
            gone_legs: GoneLegs::default(),
            events: VecDeque::new(),
            timeline: VecDeque::new(),
            media: MediaEndpoint::UNBOUND,
            relay: VecDeque::new(),
            upstreams: HashMap::new(),
            registrations: HashMap::new(),
            identity: None,
            csk_replay: ReplayCache::default(),
            tokens: None,
            copies_seen: ReplayCache::default(),
            member_guards: HashMap::new(),
            spk: None,
            floor_members: HashMap::new(),
            floor_relays: HashMap::new(),
            leg_floor: HashMap::new(),
            ended_floor: HashMap::new(),
            floor_drops: FloorDrops::default(),
        }
    }

    /// Whether it holds its identity keys (CSK uploads in REGISTERs can
    /// be decrypted): what readiness checks.
    #[must_use]
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// Our keys from the KMS, for our URI: members upload their CSKs to
    /// us in their REGISTER, SAKKE-encrypted to this identity.
    ///
    /// # Errors
    /// [`Error::Ibc`] if the RSK was not issued by this KMS for `keys.uid`.
    pub fn set_identity(
        &mut self,
        kms: CommunityPublic,
        keys: UserKeys,
    ) -> Result<&mut Self, Error> {
        self.identity = Some(ServerIdentity::new(kms, keys)?);
        Ok(self)
    }

    /// From now on REGISTERs must carry a valid access token of the IdMS
    /// `verifier` trusts, issued to the user registering (TS 33.180 B.6.2,
    /// RFC 8898). (Calls reach us only from the controlling server.)
    pub fn require_access_tokens(&mut self, verifier: TokenVerifier) -> &mut Self {
        self.tokens = Some(verifier);
        self
    }

    /// The SPK protecting floor control between us and the controlling
    /// servers (TS 24.380 13.1), as SRTCP keys.
    pub fn set_spk(&mut self, keys: SpkFloorKeys) -> &mut Self {
        self.spk = Some(keys);
        self
    }

    /// Floor-control state held for calls with controlling servers: live
    /// call floor channels, non-controlling floor functions and their
    /// members, plus members and calls indexed by floor SSRC. It goes with
    /// the calls (0 when none is up), whatever the number of calls before.
    pub fn inter_server_floor_state(&self) -> usize {
        let channels = self.fanouts.values().filter(|f| f.floor.is_some()).count();
        let fans: usize = self
            .fanouts
            .values()
            .filter_map(|f| f.floor_fan.as_ref())
            .map(|n| 1 + n.members())
            .sum();
        channels
            + fans
            + self.floor_members.values().map(Vec::len).sum::<usize>()
            + self.floor_relays.values().map(Vec::len).sum::<usize>()
            + self.leg_floor.values().map(Vec::len).sum::<usize>()
    }

    /// Floor packets dropped (failed authentication, replays, unknown
    /// senders).
    pub fn floor_drops(&self) -> FloorDrops {
        self.floor_drops
    }

    /// Where this server relays voice (its driver's bound socket),
    /// announced in its SDP.
    pub fn set_media(&mut self, media: MediaEndpoint) -> &mut Self {
        self.media = media;
        self
    }

    /// The next change to the driver's media relay.
    #[must_use]
    pub fn poll_relay(&mut self) -> Option<RelayCommand> {
        self.relay.pop_front()
    }

    /// Points the relay of fan-out `no` at its joined members (the voice
    /// from upstream to each of them); none left, or `ending`, removes it.
    fn update_route(&mut self, no: CallNo, ending: bool) {
        let Some(f) = self.fanouts.get_mut(&no) else {
            return;
        };
        let Some(source) = f.voice_source else {
            return;
        };
        let targets: Vec<SocketAddr> = f
            .legs
            .iter()
            .filter_map(|l| match l.state {
                MemberState::Joined { audio, .. } => audio,
                _ => None,
            })
            .collect();
        let live = f.reported && !ending;
        self.relay.extend(crate::route_change(
            source,
            f.voice_ssrc,
            targets,
            live,
            &mut f.relaying,
        ));
    }

    /// Its URI.
    pub fn uri(&self) -> &str {
        self.ua.uri()
    }

    /// The top Via its driver's SIP link sends with (transport token and
    /// socket address, RFC 3261 18.1.1): the role writes its requests
    /// with it, so that the link need not rewrite them.
    pub fn set_sent_by(&mut self, transport: mcx_sip::Transport, sent_by: &str) {
        self.ua.set_via(transport, sent_by);
    }

    /// Adds (or replaces) a group and its member list (MC service IDs,
    /// which are also their addresses).
    pub fn add_group(&mut self, group_id: impl Into<String>, members: Vec<String>) -> &mut Self {
        let members: Arc<[Arc<Member>]> = members
            .into_iter()
            .map(|m| Arc::new(Member::new(m)))
            .collect();
        for m in members.iter() {
            *self.group_members.entry(m.uri.clone()).or_default() += 1;
        }
        if let Some(old) = self.groups.insert(group_id.into(), members) {
            for m in old.iter() {
                if let Some(n) = self.group_members.get_mut(&m.uri) {
                    *n -= 1;
                    if *n == 0 {
                        self.group_members.remove(&m.uri);
                    }
                }
            }
        }
        self
    }

    /// Accepts call requests only from this controlling server (by the
    /// Contact of its INVITE; the driver checks the source address).
    /// Without any, every caller is accepted.
    pub fn trust_controlling_server(&mut self, uri: impl Into<String>) -> &mut Self {
        self.trusted.push(uri.into());
        self
    }

    /// The limits in force ([`McServer::set_limits`]).
    #[must_use]
    pub fn limits(&self) -> &McServerLimits {
        &self.limits
    }

    /// Sets the deadlines and limits.
    pub fn set_limits(&mut self, limits: McServerLimits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// Number of call records held.
    pub fn call_count(&self) -> usize {
        self.fanouts.len()
    }

    /// Every call record, for operators (`mcx calls`).
    #[must_use]
    pub fn call_summaries(&self) -> Vec<CallSummary> {
        self.fanouts
            .values()
            .map(|f| CallSummary {
                call_id: f.upstream.call_id().unwrap_or_default().to_owned(),
                temporary_group_id: f.late.info.associated_group_id.clone().unwrap_or_default(),
                group_id: Some(f.group_id.clone()),
                initiator: f.late.caller.clone(),
                state: if f.upstream_dialog.is_some() {
                    CallState::Established
                } else {
                    CallState::SettingUp
                },
                joined: f
                    .legs
                    .iter()
                    .filter(|l| matches!(l.state, MemberState::Joined { .. }))
                    .count(),
                started: f.started,
            })
            .collect()
    }

    /// Ends the record created by the controlling server's INVITE with
    /// `call_id`, as [`McServer::shutdown`] ends every record (503 or BYE
    /// upstream, CANCEL or BYE to its members). Returns whether there was
    /// such a record.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a request cannot be built.
    pub fn end_call_by_id(
        &mut self,
        time: Time,
        call_id: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<bool, Error> {
        let Some(&(no, Party::Upstream)) = self.by_call_id.get(call_id) else {
            return Ok(false);
        };
        self.end(time, no, "ended by the operator", rng)?;
        Ok(true)
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
        match channel {
            Channel::Floor => {
                self.on_floor(time.instant, from, bytes);
                Ok(())
            }
            Channel::Sip => self.handle_sip(time, from, sip::parse(bytes)?, rng),
        }
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
        if let (Message::Request(_), Some(u)) = (&msg, self.upstreams.get_mut(from)) {
            u.0 = time.instant;
        }
        match msg {
            Message::Request(req) => match req.method() {
                Method::Invite => self.on_invite(time, from, req, rng),
                Method::Bye => self.on_bye(time, from, &req, rng),
                Method::Cancel => self.on_cancel(time, from, &req, rng),
                Method::Register => self.on_register(time, from, &req, rng),
                Method::Ack => self.on_ack(&req, rng),
                _ => {
                    let busy = self.fanouts.len() >= self.limits.max_calls;
                    let (by_call_id, fanouts) = (&self.by_call_id, &self.fanouts);
                    let known = |r: &Request| {
                        r.call_id()
                            .ok()
                            .and_then(|c| by_call_id.get(c))
                            .and_then(|&(n, party)| Some((fanouts.get(&n)?, party)))
                            .is_some_and(|(f, party)| f.knows_dialog(party, r))
                    };
                    self.ua.answer_other_method(from, &req, busy, known, rng)
                }
            },
            Message::Response(resp) => self.on_response(time, &resp, rng),
        }
    }

    /// Fires due timers: member deadlines, ACK waits, call durations.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a request cannot be built.
    pub fn handle_timeout(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        while let Some((no, timer)) = self.agenda.pop_due(time.instant) {
            let Some(f) = self.fanouts.get_mut(&no) else {
                continue;
            };
            f.timers.retain(|(t, _)| *t != timer);
            match timer {
                Timer::MemberDeadline => self.deadline(time, no, rng)?,
                Timer::AckWait => {
                    self.end(time, no, "the controlling server never ACKed the 2xx", rng)?;
                }
                Timer::MaxDuration => self.end(time, no, "maximum call duration reached", rng)?,
                Timer::UpstreamWatch => self.watch_upstream(time, no, rng)?,
                Timer::Floor => {
                    if let Some(n) = self.fanouts.get_mut(&no).and_then(|f| f.floor_fan.as_mut()) {
                        n.handle_timeout(time.instant);
                    }
                    self.drain_floor_fan(no);
                }
            }
        }
        Ok(())
    }

    /// Ends every call (orderly stop): unreported fan-outs are answered
    /// 503 and their members cancelled; reported ones get BYE upstream and
    /// to every member.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a request cannot be built.
    pub fn shutdown(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let nos: Vec<CallNo> = self.fanouts.keys().copied().collect();
        for no in nos {
            self.end(time, no, "the MC server is shutting down", rng)?;
        }
        Ok(())
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ua.poll_transmit()
    }

    /// The next timer deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.agenda.first()
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

    /// A floor packet: from a member (under its CSK) to the controlling
    /// server (under the call's keys, with the member's relay SSRC) — but
    /// its Floor Ack to our own Floor Taken / Floor Idle stays here — or
    /// from the controlling server: for the member its SSRC names, with
    /// the call's floor SSRC put back, or for the whole leg under the
    /// call's floor SSRC (TS 24.380 6.5, [`Fanout::floor_fan`]). The SSRC
    /// (in clear in SRTCP) names the candidate calls; the one whose key
    /// authenticates the packet is it. What does not authenticate or
    /// belongs to no call is dropped and counted; late packets of a call
    /// that ended are absorbed.
    fn on_floor(&mut self, now: Instant, from: &str, bytes: &[u8]) {
        if self.upstreams.contains_key(from) {
            return self.on_floor_from_upstream(now, from, bytes);
        }
        let plain = match self.member_guards.get_mut(from) {
            Some(g) => match g.unprotect(bytes) {
                Ok(p) => p,
                Err(d) => return self.floor_drops.count(d),
            },
            None => bytes.to_vec(),
        };
        let Some(own) = crate::rtcp_ssrc(&plain) else {
            return self.floor_drops.count(FloorDrop::Malformed);
        };
        let target = self.floor_members.get(&own).and_then(|calls| {
            calls.iter().find_map(|&(no, i)| {
                let f = self.fanouts.get(&no)?;
                let l = f.legs.get(i)?;
                let MemberState::Joined { relay, .. } = l.state else {
                    return None;
                };
                (l.member.uri == from).then_some((no, i, relay))
            })
        });
        let Some((no, i, relay)) = target else {
            if !self.ended_floor.contains_key(&own) {
                self.floor_drops.wrong_source += 1;
            }
            return;
        };
        if self.floor_fan_keeps(no, i, &plain) {
            return;
        }
        let out = match relay {
            Some(r) if r != own => with_ssrc(&plain, r),
            _ => plain,
        };
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return;
        };
        let out = match self.spk.as_ref() {
            Some(spk) => match fan.floor(spk).map(|g| g.protect(&out)) {
                Some(Ok(p)) => p,
                _ => return,
            },
            None => out,
        };
        let upstream = fan.upstream_addr.clone();
        self.ua.send(&upstream, Channel::Floor, out);
    }

    /// Whether the non-controlling function of call `no` keeps the floor
    /// packet `plain` of the member of leg `i`: its Floor Ack to our own
    /// Floor Taken / Floor Idle ends here (the controlling server sent
    /// those only once, to us). Anything else goes on upstream.
    fn floor_fan_keeps(&mut self, no: CallNo, i: usize, plain: &[u8]) -> bool {
        let Some(n) = self.fanouts.get_mut(&no).and_then(|f| f.floor_fan.as_mut()) else {
            return false;
        };
        let Ok(packets) = mcx_floor::decode_compound(plain) else {
            return false; // the controlling server judges it
        };
        let mut kept = false;
        for p in &packets {
            match p {
                RtcpPacket::Floor(m) if n.handle_member(ParticipantId(i), m) => kept = true,
                _ => return false,
            }
        }
        kept
    }

    /// Sends what the non-controlling function of call `no` has for its
    /// members, each under its CSK, and sets its retransmission timer: how
    /// many packets went.
    fn drain_floor_fan(&mut self, no: CallNo) -> usize {
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return 0;
        };
        let Some(n) = fan.floor_fan.as_mut() else {
            return 0;
        };
        let mut sent = 0;
        while let Some(t) = n.poll_transmit() {
            let Some(leg) = fan.legs.get(t.destination.0) else {
                continue;
            };
            if !matches!(leg.state, MemberState::Joined { .. }) {
                continue;
            }
            let member = leg.member.uri.as_str();
            let out = match self.member_guards.get_mut(member) {
                Some(g) => match g.protect(&t.contents) {
                    Ok(p) => p,
                    Err(_) => continue,
                },
                None => t.contents,
            };
            self.ua.send(member, Channel::Floor, out);
            sent += 1;
        }
        // A member that never acknowledges is given up on (its call and
        // its other floor messages go on); the application hears of it.
        while let Some(e) = n.poll_event() {
            let NonControllingEvent::AckTimeout {
                member,
                message_type,
            } = e;
            if let Some(leg) = fan.legs.get(member.0) {
                self.events.push_back(McServerEvent::FloorAckTimeout {
                    group_id: fan.group_id.clone(),
                    member: leg.member.uri.clone(),
                    message_type,
                });
            }
        }
        match n.poll_timeout() {
            Some(at) => self.agenda.set(&mut fan.timers, no, Timer::Floor, at),
            None => self.agenda.clear(&mut fan.timers, Timer::Floor),
        }
        sent
    }

    /// Step 9 at this server: the controlling server's leg-wide `kind`
    /// sent on to `members` joined members (TS 24.380 6.5).
    fn floor_fan_timeline(&mut self, now: Instant, no: CallNo, kind: MessageType, members: usize) {
        let Some(fan) = self.fanouts.get(&no) else {
            return;
        };
        let what = match kind {
            MessageType::FloorTaken => "Floor Taken",
            MessageType::FloorIdle => "Floor Idle",
            _ => return,
        };
        let acks = if self.limits.floor_ack_required {
            ", Floor Ack asked of each"
        } else {
            ""
        };
        self.timeline.push_back(TimelineEntry {
            step: 9,
            role: self.ua.uri().to_owned(),
            at: now,
            detail: format!(
                "{what} for {} sent on to {members} members under this server's sequence numbers{acks} (TS 24.380 6.5)",
                fan.group_id
            ),
        });
    }

    /// Makes call `no`'s non-controlling floor function, indexed by the
    /// call's floor SSRC, when the offer announced one.
    fn start_floor_fan(&mut self, no: CallNo) {
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return;
        };
        let Some(ssrc) = fan.upstream_floor_ssrc else {
            return;
        };
        let mut config = ArbitratorConfig::new(ssrc);
        config.ack_required(self.limits.floor_ack_required);
        let mut floor_fan = NonControlling::new(config);
        floor_fan.reserve(fan.trying);
        fan.floor_fan = Some(floor_fan);
        self.leg_floor.entry(ssrc).or_default().push(no);
    }

    /// Member `i` of call `no` joined: its floor function may owe it a
    /// Floor Taken (a late joiner).
    fn join_floor_fan(&mut self, now: Instant, no: CallNo, i: usize) {
        if let Some(n) = self.fanouts.get_mut(&no).and_then(|f| f.floor_fan.as_mut()) {
            n.add_member(now, ParticipantId(i));
        }
        self.drain_floor_fan(no);
    }

    /// A leg-wide floor packet of call `no` (authenticated, `plain`) from
    /// the controlling server: Floor Taken / Floor Idle for every member,
    /// and one Floor Ack back when it asks for one. Without an SPK two
    /// legs of one call from one controlling server (two of its groups
    /// here) cannot be told apart: each takes it (a repeat changes
    /// nothing), and it is acknowledged once.
    fn on_leg_floor(&mut self, now: Instant, no: CallNo, ssrc: u32, plain: &[u8]) {
        let Ok(packets) = mcx_floor::decode_compound(plain) else {
            return self.floor_drops.count(FloorDrop::Malformed);
        };
        let Some(upstream) = self.fanouts.get(&no).map(|f| f.upstream_addr.clone()) else {
            return;
        };
        let nos: Vec<CallNo> = match self.spk {
            Some(_) => vec![no],
            None => self
                .leg_floor
                .get(&ssrc)
                .into_iter()
                .flatten()
                .copied()
                .filter(|n| {
                    self.fanouts
                        .get(n)
                        .is_some_and(|f| f.upstream_addr == upstream)
                })
                .collect(),
        };
        let mut acks = Vec::new();
        for (k, &n) in nos.iter().enumerate() {
            let Some(fan) = self.fanouts.get_mut(&n).and_then(|f| f.floor_fan.as_mut()) else {
                continue;
            };
            let mut taken = None;
            for p in &packets {
                let RtcpPacket::Floor(m) = p else { continue };
                // Only Floor Taken and Floor Idle come leg-wide; anything
                // else is not the controlling server's to send so, and
                // changes nothing here.
                if let Ok(ack) = fan.handle_upstream(now, m) {
                    taken = Some(m.message_type);
                    if let (0, Some(ack)) = (k, ack) {
                        acks.push(ack);
                    }
                }
            }
            let sent = self.drain_floor_fan(n);
            // A fresh leg-wide message went on to the members (a repeated
            // one is only acknowledged): the timeline shows this hop.
            if let (Some(kind), true) = (taken, sent > 0) {
                self.floor_fan_timeline(now, n, kind, sent);
            }
        }
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return;
        };
        for ack in acks {
            let out = match self.spk.as_ref() {
                Some(spk) => match fan.floor(spk).map(|g| g.protect(&ack)) {
                    Some(Ok(p)) => p,
                    _ => continue,
                },
                None => ack,
            };
            self.ua.send(&upstream, Channel::Floor, out);
        }
    }

    /// A floor packet from a controlling server: for the whole leg of one
    /// of its calls here (the call's floor SSRC), or for the member whose
    /// relay SSRC it carries.
    fn on_floor_from_upstream(&mut self, now: Instant, from: &str, bytes: &[u8]) {
        let Some(ssrc) = crate::rtcp_ssrc(bytes) else {
            return self.floor_drops.count(FloorDrop::Malformed);
        };
        let leg_wide = self.leg_floor.get(&ssrc).into_iter().flatten();
        let relayed = self.floor_relays.get(&ssrc).into_iter().flatten();
        let calls: Vec<(CallNo, bool)> = leg_wide
            .map(|&n| (n, true))
            .chain(relayed.map(|&n| (n, false)))
            .collect();
        let mut drop = None;
        let mut found = None;
        for (no, wide) in calls {
            let Some(fan) = self
                .fanouts
                .get_mut(&no)
                .filter(|f| f.upstream_addr == from)
            else {
                continue;
            };
            let plain = match self.spk.as_ref() {
                Some(spk) => match fan.floor(spk).map(|g| g.unprotect(bytes)) {
                    Some(Ok(p)) => p,
                    Some(Err(d)) => {
                        drop = Some(worst(drop, d));
                        continue;
                    }
                    None => continue,
                },
                None => bytes.to_vec(),
            };
            found = Some((no, wide, plain));
            break;
        }
        let Some((no, wide, plain)) = found else {
            match drop {
                Some(d) => self.floor_drops.count(d),
                // For a member of a call that ended: absorbed.
                None if self.ended_floor.contains_key(&ssrc) => {}
                // No call's key to authenticate it under.
                None if self.spk.is_some() => self.floor_drops.count(FloorDrop::Unauthenticated),
                None => self.floor_drops.wrong_source += 1,
            }
            return;
        };
        if wide {
            return self.on_leg_floor(now, no, ssrc, &plain);
        }
        let target = self.fanouts.get(&no).and_then(|f| {
            let leg = f.legs.get(*f.floor_relays.get(&ssrc)?)?;
            matches!(leg.state, MemberState::Joined { .. })
                .then(|| (leg.member.uri.clone(), f.upstream_floor_ssrc))
        });
        let Some((member, call_ssrc)) = target else {
            self.floor_drops.wrong_source += 1;
            return;
        };
        let out = match call_ssrc {
            Some(s) => with_ssrc(&plain, s),
            None => plain,
        };
        let out = match self.member_guards.get_mut(&member) {
            Some(g) => match g.protect(&out) {
                Ok(p) => p,
                Err(_) => return,
            },
            None => out,
        };
        self.ua.send(&member, Channel::Floor, out);
    }

    /// A member registers (RFC 3261 10.3): only members of our groups, for
    /// themselves; the grant is capped at `max_registration`. A member
    /// that was not registered gets the calls of its groups that are going
    /// on (late entry).
    fn on_register(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let aor = req.to()?.uri;
        let mut refuse = |this: &mut Self, reason: &str| {
            this.ua
                .respond(
                    from,
                    req,
                    StatusCode::FORBIDDEN,
                    Some(reason),
                    Answer::Empty,
                    rng,
                )
                .map(|_| ())
        };
        if req.from()?.uri != aor {
            return refuse(self, "Forbidden - registering someone else");
        }
        if !self.group_members.contains_key(&aor) {
            return refuse(self, "Forbidden - not a member of a group served here");
        }
        if let Some(why) = self
            .tokens
            .as_ref()
            .and_then(|v| check_access_token(req, v, &aor, time.unix).err())
        {
            return refuse(self, &why);
        }
        let granted = asked_expiry(req).min(self.limits.max_registration);
        // A CSK for floor control (TS 33.180 5.4, E.4), uploaded in a new
        // binding: taken only if it checks out, or the registration fails.
        if !granted.is_zero() && carries_mikey(req) {
            let me = self.ua.uri().to_owned();
            let guard = match self.identity.as_ref() {
                Some(id) => id
                    .accept_csk(&me, &aor, req.body(), time.unix, &mut self.csk_replay)
                    .map_err(|e| format!("Forbidden - CSK rejected: {e}")),
                None => Err("Forbidden - this server takes no CSK".to_owned()),
            };
            match guard {
                Ok(g) => {
                    self.member_guards.insert(aor.clone(), g);
                }
                Err(reason) => return refuse(self, &reason),
            }
        } else if !granted.is_zero()
            && self.identity.is_some()
            && !self.member_guards.contains_key(&aor)
        {
            // A refresh for a binding whose CSK we do not hold (we
            // restarted): refused, so that the client registers anew with
            // a fresh CSK rather than protect floor control we cannot read.
            return refuse(self, "Forbidden - no CSK held for you: register with one");
        } else if !granted.is_zero()
            && let Some(why) = worn_refusal(
                self.member_guards.get(&aor),
                self.limits.floor_rekey_streams,
            )
        {
            return refuse(self, &why);
        }
        if granted.is_zero() {
            self.member_guards.remove(&aor);
        }
        let was = self.registrations.get(&aor).copied();
        let was_registered = matches!(was, Some(Binding::Until(t)) if t > time.instant);
        self.registrations.insert(
            aor.clone(),
            if granted.is_zero() {
                Binding::Gone
            } else {
                Binding::Until(time.instant + granted)
            },
        );
        let ok = registered_ok(req, &aor, granted, rng)?;
        self.ua.send_sip(from, ok);
        if !granted.is_zero() && !was_registered {
            self.late_entry(time, &aor, rng)?;
        }
        Ok(())
    }

    /// Late entry (TS 23.379): `member` just became reachable; every call
    /// of its groups that is going on and that it is not in invites it,
    /// with the group's wrapped TGMK, the same offer and mcptt-info.
    fn late_entry(
        &mut self,
        time: Time,
        member: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let nos: Vec<CallNo> = self.fanouts.keys().copied().collect();
        for no in nos {
            let Some(fan) = self.fanouts.get(&no) else {
                continue;
            };
            let legs = &fan.legs;
            let Some(i) = fan
                .leg_by_member
                .find(member, |i| legs.get(i).map(|l| l.member.uri.as_str()))
            else {
                continue;
            };
            let absent = matches!(
                fan.legs[i].state,
                MemberState::Left
                    | MemberState::Done(
                        MemberOutcome::NotRegistered
                            | MemberOutcome::Unreachable { .. }
                            | MemberOutcome::Timeout
                    )
            );
            if !absent || fan.upstream_dialog.is_none() && fan.reported {
                continue;
            }
            let group = fan.group_id.clone();
            let ids = fan.late.form.draw(rng);
            let who = Arc::clone(&fan.legs[i].member);
            let invite = fan.late.form.encoded(who.to()?, &ids)?;
            let old_invite = fan.legs[i].invite(&fan.late.form)?;
            self.ua.send_encoded(member, invite);
            let new_id = ids.call_id.clone();
            let Some(fan) = self.fanouts.get_mut(&no) else {
                continue;
            };
            let old = std::mem::replace(
                &mut fan.legs[i],
                MemberLeg {
                    member: who,
                    ids,
                    state: MemberState::Trying { provisional: false },
                },
            );
            if !fan.reported {
                fan.trying += 1;
            }
            self.by_call_id.remove(&old.ids.call_id);
            // A 2xx to the earlier INVITE may still come.
            self.gone_legs.remember(
                &old.ids.call_id,
                member.to_owned(),
                old_invite,
                time.instant,
            );
            self.by_call_id.insert(new_id, (no, Party::Member(i)));
            self.timeline.push_back(timeline(
                self.ua.uri(),
                4,
                time,
                format!("late entry: INVITE {group} to {member}, who just registered"),
            ));
        }
        Ok(())
    }

    /// Members' outcomes decided after our answer (a member invited late
    /// that joined; with [`AnswerPolicy::Unconfirmed`] every member's
    /// answer): joiners get the voice, and the controlling server learns
    /// them in-call (INFO with the call result: the group's counts now and
    /// these members), so that joiners get Floor Taken. Held until the
    /// controlling server ACKed our 2xx.
    fn report_in_call(
        &mut self,
        time: Time,
        no: CallNo,
        members: Vec<MemberResult>,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        self.update_route(no, false);
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return Ok(());
        };
        for m in &members {
            self.timeline.push_back(timeline(
                self.ua.uri(),
                7,
                time,
                match m.outcome {
                    MemberOutcome::Accepted { .. } => {
                        format!("{} joined {} after our answer", m.uri, fan.group_id)
                    }
                    _ => format!("{} did not join {} after our answer", m.uri, fan.group_id),
                },
            ));
        }
        fan.held.extend(members);
        if fan.acked {
            self.flush_held(no, rng)?;
        }
        Ok(())
    }

    /// Sends the held in-call report of fan-out `no` (one INFO).
    fn flush_held(&mut self, no: CallNo, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return Ok(());
        };
        if fan.held.is_empty() {
            return Ok(());
        }
        let members = std::mem::take(&mut fan.held);
        let (accepted, rejected) = counts(&fan.legs);
        let result = CallResult {
            groups: vec![GroupReport {
                result: GroupResult::joined(fan.group_id.clone(), accepted, rejected),
                members,
            }],
        };
        let to = fan.upstream_addr.clone();
        if let Some(d) = fan.upstream_dialog.as_mut() {
            self.ua.send_call_result_info(&to, d, &result, rng)?;
        }
        Ok(())
    }

    /// With the report made, no member in the call and none still asked:
    /// the group's leg ends (BYE to the controlling server, which tells
    /// the initiator the group is lost).
    fn end_if_empty(
        &mut self,
        time: Time,
        no: CallNo,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let empty = self.fanouts.get(&no).is_some_and(|f| {
            f.reported
                && f.upstream_dialog.is_some()
                && !f.legs.iter().any(|l| {
                    matches!(
                        l.state,
                        MemberState::Joined { .. } | MemberState::Trying { .. }
                    )
                })
        });
        if !empty {
            return Ok(());
        }
        // The outcomes go first, so the controlling server knows why.
        self.flush_held(no, rng)?;
        self.end(time, no, "no member joined", rng)
    }

    /// The upstream watch of fan-out `no`: ends it if its controlling
    /// server has been silent for `upstream_silence`, else looks again
    /// when that much time has passed since it was last heard.
    fn watch_upstream(
        &mut self,
        time: Time,
        no: CallNo,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let silence = self.limits.upstream_silence;
        let Some(f) = self.fanouts.get(&no) else {
            return Ok(());
        };
        let heard = self
            .upstreams
            .get(&f.upstream_addr)
            .map_or(time.instant, |u| u.0);
        if time.instant.saturating_duration_since(heard) >= silence {
            let reason = format!(
                "nothing from the controlling server {} for {} ms",
                f.upstream_addr,
                silence.as_millis()
            );
            return self.end(time, no, &reason, rng);
        }
        self.set_timer(no, Timer::UpstreamWatch, heard + silence);
        Ok(())
    }

    fn set_timer(&mut self, no: CallNo, timer: Timer, at: Instant) {
        if let Some(c) = self.fanouts.get_mut(&no) {
            self.agenda.set(&mut c.timers, no, timer, at);
        }
    }

    fn clear_timer(&mut self, no: CallNo, timer: Timer) {
        if let Some(c) = self.fanouts.get_mut(&no) {
            self.agenda.clear(&mut c.timers, timer);
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
        self.ua
            .respond(from, req, status, Some(reason), Answer::Empty, rng)?;
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
        if !self.trusted.is_empty() && !self.trusted.iter().any(|t| t == from) {
            return self.reject(
                from,
                &req,
                StatusCode::FORBIDDEN,
                "Forbidden - not a controlling server of this MC server",
                rng,
            );
        }
        if req.to_ref()?.tag.is_some() {
            return self.reject(
                from,
                &req,
                StatusCode(488),
                "Not Acceptable Here - re-INVITE not supported",
                rng,
            );
        }
        if self.fanouts.len() >= self.limits.max_calls {
            return self.reject(
                from,
                &req,
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable - call limit reached",
                rng,
            );
        }
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
        // The caller as the controlling server asserts it (RFC 3325: we
        // take P-Asserted-Identity only from the server we trust, whose
        // requests alone reach here); mcptt-info must agree.
        let asserted = req.header(mcx_sip::headers::P_ASSERTED_IDENTITY).map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        });
        let claimed = body.info.calling_user_id.clone();
        let caller = match (asserted, claimed) {
            (Some(a), Some(c)) if a != c => {
                return self.reject(
                    from,
                    &req,
                    StatusCode::FORBIDDEN,
                    "Forbidden - calling user differs from the asserted identity",
                    rng,
                );
            }
            (Some(a), _) => a,
            (None, c) => c.unwrap_or_default(),
        };
        // Fresh and never relayed before: a call request replayed into
        // another call stops here, before any member hears of it.
        if let Err(why) = crate::copies::admit(
            &[(group_id.as_str(), &copy)],
            &caller,
            time.unix,
            &mut self.copies_seen,
        ) {
            let reason = format!("{} ({why})", crate::copies::STALE_OR_REPLAYED);
            return self.reject(from, &req, StatusCode::NOT_ACCEPTABLE_HERE, &reason, rng);
        }
        let info = McpttInfo {
            session_type: Some("prearranged".into()),
            request_uri: Some(group_id.clone()),
            calling_user_id: Some(caller.clone()),
            calling_group_id: Some(group_id.clone()),
            broadcast: true,
            associated_group_id: Some(tg.clone()),
        };
        let from_uri = sip::from_uri(&req)?;
        let no = self.next_no;
        self.next_no += 1;
        // Voice comes through our relay; floor control goes on between
        // the members and the controlling server (its address and SSRC).
        let me = self.ua.uri().to_owned();
        let upstream_sdp = crate::sdp::parse(&body.sdp).ok();
        let sdp = Description {
            user: &me,
            session_id: u64::from(rng.next_u32()),
            audio: self.media.rtp(),
            direction: Direction::SendOnly,
            media_ssrc: upstream_sdp.as_ref().and_then(|o| o.media_ssrc),
            // We relay floor control (the participating function): its
            // messages carry the controlling server's per-call SSRC.
            floor: Some(self.media.floor()),
            floor_ssrc: upstream_sdp.as_ref().and_then(|o| o.floor_ssrc),
            fmtp: "",
        }
        .write();
        // What every member's INVITE shares, written and checked once.
        let shared = [
            (mcx_sip::headers::P_ASSERTED_IDENTITY, format!("<{caller}>")),
            sip::asserted_service(),
        ];
        let rp = sip::resource_priority(&req)
            .into_iter()
            .map(|v| (mcx_sip::headers::RESOURCE_PRIORITY, v));
        let shared: Vec<(&str, String)> = shared.into_iter().chain(rp).collect();
        let body = sip::EncodedBody::of(&mut sip::call_body(
            sdp,
            &info,
            &[(group_id.as_str(), &copy)],
            rng,
        ))?;
        let late = LateEntry {
            form: InviteForm::new(&from_uri, &me, &group_id, body, &shared, self.ua.via())?,
            info,
            caller: caller.clone(),
        };
        let mut legs = Vec::with_capacity(members.len());
        let mut leg_by_member = PositionIndex::default();
        let mut invited = 0;
        for m in members.iter().filter(|m| m.uri != caller) {
            let ids = late.form.draw(rng);
            let to = m.to()?;
            // A member known to be away (its registration withdrawn or
            // lapsed) is not called now; it is when it registers again.
            let away = match self.registrations.get(&m.uri) {
                Some(Binding::Gone) => true,
                Some(Binding::Until(t)) => *t <= time.instant,
                None => false,
            };
            self.by_call_id
                .insert(ids.call_id.clone(), (no, Party::Member(legs.len())));
            let state = if away {
                MemberState::Done(MemberOutcome::NotRegistered)
            } else {
                self.ua.send_encoded(&m.uri, late.form.encoded(to, &ids)?);
                invited += 1;
                MemberState::Trying { provisional: false }
            };
            let hash = leg_by_member.hash(m.uri.as_str());
            let uri_at = |i: usize| legs.get(i).map(|l: &MemberLeg| l.member.uri.as_str());
            if leg_by_member.get(hash, m.uri.as_str(), uri_at).is_none() {
                leg_by_member.insert(hash, legs.len());
            }
            legs.push(MemberLeg {
                member: Arc::clone(m),
                ids,
                state,
            });
        }
        if invited == 0 {
            for l in &legs {
                self.by_call_id.remove(&l.ids.call_id);
            }
            return self.reject(
                from,
                &req,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "Temporarily Unavailable - no members to call",
                rng,
            );
        }
        self.timeline.push_back(timeline(
            &me,
            4,
            time,
            format!(
                "INVITE {group_id} (temporary group {tg}) with its wrapped TGMK to {invited} members"
            ),
        ));
        self.by_call_id
            .insert(req.call_id()?.to_owned(), (no, Party::Upstream));
        let trying = invited;
        let u = self
            .upstreams
            .entry(from.to_owned())
            .or_insert((time.instant, 0));
        u.0 = time.instant;
        u.1 += 1;
        self.fanouts.insert(
            no,
            Fanout {
                group_id,
                upstream_addr: from.to_owned(),
                upstream: without_body(&req),
                upstream_dialog: None,
                legs,
                leg_by_member,
                reported: false,
                trying,
                voice_source: upstream_sdp.as_ref().and_then(|o| o.audio),
                voice_ssrc: upstream_sdp.as_ref().and_then(|o| o.media_ssrc),
                relaying: false,
                late,
                upstream_floor_ssrc: upstream_sdp.as_ref().and_then(|o| o.floor_ssrc),
                floor: None,
                // Every invited member may join: sized once, not grown
                // (and rehashed) step by step as they answer.
                floor_relays: HashMap::with_capacity(trying),
                relay_cursor: None,
                floor_fan: None,
                timers: Vec::new(),
                last_touch: time.instant,
                started: time.instant,
                acked: false,
                held: Vec::new(),
            },
        );
        self.set_timer(
            no,
            Timer::MemberDeadline,
            time.instant + self.limits.member_deadline,
        );
        self.set_timer(
            no,
            Timer::MaxDuration,
            time.instant + self.limits.max_call_duration,
        );
        self.start_floor_fan(no);
        if self.limits.answer == AnswerPolicy::Unconfirmed {
            // Answer for the members before they do (they are `pending`).
            self.report(time, no, rng)?;
        }
        Ok(())
    }

    /// Step 7: a member's answer.
    fn on_response(
        &mut self,
        time: Time,
        resp: &Response,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        if resp.cseq()?.1 != Method::Invite {
            return Ok(());
        }
        let cid = resp.call_id()?;
        let status = resp.status();
        let Some(&(no, Party::Member(i))) = self.by_call_id.get(cid) else {
            if status.is_success() {
                if let Some((member, invite)) = self.gone_legs.take(cid) {
                    self.ua.refuse_late_2xx(&member, &invite, resp, rng)?;
                }
            }
            return Ok(());
        };
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return Ok(());
        };
        fan.last_touch = time.instant;
        let Some(leg) = fan.legs.get_mut(i) else {
            return Ok(());
        };
        match (&mut leg.state, status.is_provisional()) {
            (MemberState::Trying { provisional }, true) => {
                *provisional = true;
                return Ok(());
            }
            (MemberState::Trying { .. }, false) => fan.trying = fan.trying.saturating_sub(1),
            (_, true) => return Ok(()),
            (_, false) => {
                // After the deadline: a late 2xx is ACKed and ended.
                if status.is_success() && matches!(leg.state, MemberState::Done(_)) {
                    let inv = leg.invite(&fan.late.form)?;
                    let m = leg.member.uri.clone();
                    self.ua.refuse_late_2xx(&m, &inv, resp, rng)?;
                }
                return Ok(());
            }
        }
        let member = leg.member.uri.clone();
        if status.is_success() {
            let answer = resp
                .content_type()
                .is_some()
                .then(|| sip::read_answer(resp).ok())
                .flatten()
                .and_then(|a| a.sdp)
                .and_then(|s| crate::sdp::parse(&s).ok());
            let form = &fan.late.form;
            let dialog = form.dialog(&leg.ids, resp)?;
            let dialog = self.ua.acknowledge_from(&member, dialog, form.ack(), rng)?;
            let ssrc = answer.as_ref().and_then(|a| a.floor_ssrc);
            let mut relay = None;
            if let Some(f) = self.fanouts.get_mut(&no) {
                relay = ssrc.map(|s| f.relay_ssrc(s));
                if let Some(r) = relay {
                    f.floor_relays.insert(r, i);
                    crate::floor_guard::index(&mut self.floor_relays, r, no);
                }
                if let Some(leg) = f.legs.get_mut(i) {
                    leg.state = MemberState::Joined {
                        dialog,
                        ssrc,
                        relay,
                        audio: answer.as_ref().and_then(|a| a.audio),
                    };
                }
            }
            if let Some(ssrc) = ssrc {
                crate::floor_guard::index(&mut self.floor_members, ssrc, (no, i));
                self.join_floor_fan(time.instant, no, i);
            }
            if self.fanouts.get(&no).is_some_and(|f| f.reported) {
                let joined = MemberResult {
                    uri: member,
                    outcome: MemberOutcome::Accepted { ssrc: relay },
                };
                return self.report_in_call(time, no, vec![joined], rng);
            }
        } else {
            let outcome = match status.0 {
                408 | 503 if resp.body().is_empty() => {
                    MemberOutcome::Unreachable { status: status.0 }
                }
                _ => MemberOutcome::Refused {
                    status: status.0,
                    reason: resp.reason().to_owned(),
                },
            };
            leg.state = MemberState::Done(outcome.clone());
            let reported = fan.reported;
            self.events.push_back(McServerEvent::MemberRejected {
                group_id: fan.group_id.clone(),
                member: member.clone(),
                status: status.0,
                reason: resp.reason().to_owned(),
            });
            if reported {
                let m = MemberResult {
                    uri: member,
                    outcome,
                };
                self.report_in_call(time, no, vec![m], rng)?;
                return self.end_if_empty(time, no, rng);
            }
        }
        if self.fanouts.get(&no).is_some_and(|f| f.trying == 0) {
            self.report(time, no, rng)?;
        }
        Ok(())
    }

    /// The member deadline: CANCEL members that sent a provisional
    /// response, abandon the others, report.
    fn deadline(&mut self, time: Time, no: CallNo, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return Ok(());
        };
        let mut cancels = Vec::new();
        let mut decided = Vec::new();
        for l in &mut fan.legs {
            if let MemberState::Trying { provisional } = l.state {
                if provisional {
                    cancels.push((l.member.uri.clone(), l.invite(&fan.late.form)?));
                }
                fan.trying = fan.trying.saturating_sub(1);
                let outcome = if provisional {
                    MemberOutcome::Timeout
                } else {
                    MemberOutcome::Unreachable { status: 408 }
                };
                decided.push(MemberResult {
                    uri: l.member.uri.clone(),
                    outcome: outcome.clone(),
                });
                l.state = MemberState::Done(outcome);
            }
        }
        let reported = fan.reported;
        for (m, inv) in cancels {
            self.ua.cancel(&m, &inv)?;
        }
        if !reported {
            return self.report(time, no, rng);
        }
        // Answered at once (Unconfirmed): those still silent are reported
        // in-call, and the leg ends if nobody joined.
        if !decided.is_empty() {
            self.report_in_call(time, no, decided, rng)?;
        }
        self.end_if_empty(time, no, rng)
    }

    /// The group's report to the controlling server: 200 with SDP and the
    /// call result when a member joined, else 480 with the call result.
    fn report(&mut self, time: Time, no: CallNo, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let me = self.ua.uri().to_owned();
        let Some(fan) = self.fanouts.get_mut(&no) else {
            return Ok(());
        };
        if fan.reported {
            return Ok(());
        }
        fan.reported = true;
        let members: Vec<MemberResult> = fan
            .legs
            .iter()
            .map(|l| MemberResult {
                uri: l.member.uri.clone(),
                outcome: match &l.state {
                    MemberState::Joined { relay, .. } => MemberOutcome::Accepted { ssrc: *relay },
                    MemberState::Done(o) => o.clone(),
                    // Only when answering at once (Unconfirmed).
                    MemberState::Trying { .. } => MemberOutcome::Pending,
                    MemberState::Left => MemberOutcome::Refused {
                        status: 200,
                        reason: "left".into(),
                    },
                },
            })
            .collect();
        let (accepted, rejected) = counts(&fan.legs);
        let unconfirmed = fan.trying > 0;
        let failure = (accepted == 0 && !unconfirmed).then(|| group_failure(&members));
        let result = GroupResult {
            group_id: fan.group_id.clone(),
            accepted,
            rejected,
            failure,
        };
        let doc = CallResult {
            groups: vec![GroupReport {
                result: result.clone(),
                members,
            }],
        };
        let upstream = fan.upstream.clone();
        let to = fan.upstream_addr.clone();
        if !unconfirmed {
            self.clear_timer(no, Timer::MemberDeadline);
        }
        let state = if unconfirmed {
            AnswerPolicy::Unconfirmed
        } else {
            AnswerPolicy::Confirmed
        };
        if accepted > 0 || unconfirmed {
            // Floor control runs between the members and the controlling
            // server: this answer announces no floor SSRC of its own.
            let sdp = Description {
                user: &me,
                session_id: u64::from(rng.next_u32()),
                audio: self.media.rtp(),
                direction: Direction::RecvOnly,
                media_ssrc: None,
                // Our members' floor control comes through us.
                floor: Some(self.media.floor()),
                floor_ssrc: None,
                fmtp: "",
            }
            .write();
            let d = self.ua.accept_with(
                &to,
                &upstream,
                &[(P_ANSWER_STATE, state.as_str())],
                Answer::SdpAndResult(sdp, doc),
                rng,
            )?;
            if let Some(f) = self.fanouts.get_mut(&no) {
                f.upstream_dialog = Some(d);
            }
            self.set_timer(no, Timer::AckWait, time.instant + self.limits.ack_wait);
            self.update_route(no, false);
            if !self.limits.upstream_silence.is_zero() {
                let at = time.instant + self.limits.upstream_silence;
                self.set_timer(no, Timer::UpstreamWatch, at);
            }
        } else {
            self.ua.respond(
                &to,
                &upstream,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                Some("Temporarily Unavailable - no member joined"),
                Answer::Result(doc),
                rng,
            )?;
        }
        self.timeline.push_back(timeline(
            &me,
            7,
            time,
            format!(
                "reported {}: {} accepted, {} rejected{}",
                result.group_id,
                result.accepted,
                result.rejected,
                if unconfirmed {
                    " (answered at once: P-Answer-State Unconfirmed)"
                } else {
                    ""
                }
            ),
        ));
        self.events.push_back(McServerEvent::GroupReported(result));
        if accepted == 0 && !unconfirmed {
            self.remove(no);
        }
        Ok(())
    }

    fn on_ack(&mut self, ack: &Request, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let Some(&(no, Party::Upstream)) = ack.call_id().ok().and_then(|c| self.by_call_id.get(c))
        else {
            return Ok(());
        };
        self.clear_timer(no, Timer::AckWait);
        if let Some(f) = self.fanouts.get_mut(&no) {
            f.acked = true;
        }
        self.flush_held(no, rng)
    }

    /// BYE from the controlling server (the call ends: every member is
    /// released) or from a member (it leaves).
    fn on_bye(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let found = req
            .call_id()
            .ok()
            .and_then(|c| self.by_call_id.get(c))
            .copied();
        let Some((no, party, fan)) =
            found.and_then(|(n, p)| Some((n, p, self.fanouts.get_mut(&n)?)))
        else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        if party == Party::Upstream && fan.upstream_dialog.as_ref().is_some_and(|d| d.matches(req))
        {
            fan.upstream_dialog = None; // no BYE back upstream
            self.ua
                .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)?;
            return self.end(time, no, "the controlling server ended the call", rng);
        }
        let Party::Member(i) = party else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        let Some(leg) = fan.legs.get_mut(i).filter(
            |l| matches!(&l.state, MemberState::Joined { dialog, .. } if dialog.matches(req)),
        ) else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        if let MemberState::Joined {
            ssrc: Some(ssrc), ..
        } = leg.state
        {
            unindex(&mut self.floor_members, ssrc, |&e| e == (no, i));
        }
        leg.state = MemberState::Left;
        if let Some(n) = fan.floor_fan.as_mut() {
            n.remove_member(ParticipantId(i));
        }
        self.update_route(no, false);
        self.ua
            .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)
            .map(|_| ())
    }

    /// The controlling server cancels before the report (RFC 3261 9.2).
    fn on_cancel(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let no = req
            .call_id()
            .ok()
            .and_then(|c| self.by_call_id.get(c))
            .copied();
        let pending = no.and_then(|(n, _)| {
            let f = self.fanouts.get(&n)?;
            (!f.reported && cancels(req, &f.upstream)).then(|| (n, f.upstream.clone()))
        });
        let Some((no, upstream)) = pending else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        self.ua
            .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)?;
        self.ua.respond(
            from,
            &upstream,
            StatusCode::REQUEST_TERMINATED,
            None,
            Answer::Empty,
            rng,
        )?;
        if let Some(f) = self.fanouts.get_mut(&no) {
            f.reported = true; // answered
        }
        self.end(time, no, "the controlling server cancelled", rng)
    }

    /// Ends fan-out `no`: 503 upstream if unanswered, BYE upstream if in a
    /// dialog, CANCEL to trying members after a provisional, BYE to joined
    /// members; the record goes.
    fn end(
        &mut self,
        time: Time,
        no: CallNo,
        reason: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let Some(mut fan) = self.remove(no) else {
            return Ok(());
        };
        if !fan.reported {
            self.ua.respond(
                &fan.upstream_addr,
                &fan.upstream,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&format!("Service Unavailable - {reason}")),
                Answer::Empty,
                rng,
            )?;
        }
        if let Some(d) = fan.upstream_dialog.as_mut() {
            self.ua.bye(&fan.upstream_addr, d, rng)?;
        }
        for l in &mut fan.legs {
            match &mut l.state {
                MemberState::Joined { dialog, .. } => self.ua.bye(&l.member.uri, dialog, rng)?,
                MemberState::Trying { provisional: true } => {
                    let invite = l.invite(&fan.late.form)?;
                    self.ua.cancel(&l.member.uri, &invite)?
                }
                _ => {}
            }
        }
        self.timeline.push_back(timeline(
            self.ua.uri(),
            9,
            time,
            format!("call of {} ended ({reason})", fan.group_id),
        ));
        self.events.push_back(McServerEvent::CallEnded {
            group_id: fan.group_id,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    fn remove(&mut self, no: CallNo) -> Option<Fanout> {
        self.update_route(no, true);
        let fan = self.fanouts.remove(&no)?;
        let now = fan.last_touch;
        if self.ended_floor.len() > 16_384 {
            self.ended_floor
                .retain(|_, t| now.saturating_duration_since(*t) < ENDED_FLOOR_KEEP);
        }
        for (i, l) in fan.legs.iter().enumerate() {
            if let MemberState::Joined {
                ssrc: Some(ssrc), ..
            } = l.state
            {
                unindex(&mut self.floor_members, ssrc, |&e| e == (no, i));
                self.ended_floor.insert(ssrc, now);
            }
        }
        // The call's floor keys go with `fan`: nothing of it stays but
        // the note that its SSRCs ended.
        for &r in fan.floor_relays.keys() {
            unindex(&mut self.floor_relays, r, |&n| n == no);
            self.ended_floor.insert(r, now);
        }
        if let (Some(s), Some(_)) = (fan.upstream_floor_ssrc, &fan.floor_fan) {
            unindex(&mut self.leg_floor, s, |&n| n == no);
            self.ended_floor.insert(s, now);
        }
        if let Some(u) = self.upstreams.get_mut(&fan.upstream_addr) {
            u.1 = u.1.saturating_sub(1);
            if u.1 == 0 {
                self.upstreams.remove(&fan.upstream_addr);
            }
        }
        self.agenda.clear_all(&fan.timers);
        if let Ok(c) = fan.upstream.call_id() {
            self.by_call_id.remove(c);
        }
        for l in &fan.legs {
            let c = &l.ids.call_id;
            self.by_call_id.remove(c);
            if matches!(l.state, MemberState::Trying { .. } | MemberState::Done(_)) {
                // Only a bad member URI fails, and such a leg was never sent.
                if let Ok(invite) = l.invite(&fan.late.form) {
                    self.gone_legs
                        .remember(c, l.member.uri.clone(), invite, fan.last_touch);
                }
            }
        }
        Some(fan)
    }
}

/// Why a group none of whose members joined failed: unreachable if no
/// member could be reached, timeout if none answered in time, else the
/// first refusal.
/// A fan-out's (accepted, rejected) counts now: members in the call, and
/// members out of it (refused, silent, not registered, left); members
/// still asked count in neither.
fn counts(legs: &[MemberLeg]) -> (u32, u32) {
    let (mut accepted, mut rejected) = (0u32, 0u32);
    for l in legs {
        match l.state {
            MemberState::Joined { .. } => accepted = accepted.saturating_add(1),
            MemberState::Trying { .. } => {}
            MemberState::Done(_) | MemberState::Left => rejected = rejected.saturating_add(1),
        }
    }
    (accepted, rejected)
}

fn group_failure(members: &[MemberResult]) -> GroupFailure {
    let refused = members.iter().find_map(|m| match &m.outcome {
        MemberOutcome::Refused { status, reason } => Some((m.uri.clone(), *status, reason.clone())),
        _ => None,
    });
    if let Some((member, status, reason)) = refused {
        return GroupFailure {
            cause: FailureCause::Refused,
            status: Some(status),
            member: Some(member.clone()),
            detail: format!("{member} answered {status} {reason}"),
        };
    }
    let timeouts = members
        .iter()
        .filter(|m| m.outcome == MemberOutcome::Timeout)
        .count();
    if timeouts > 0 {
        GroupFailure {
            cause: FailureCause::Timeout,
            status: None,
            member: None,
            detail: format!("{timeouts} members did not answer in time"),
        }
    } else {
        GroupFailure {
            cause: FailureCause::Unreachable,
            status: Some(408),
            member: members.first().map(|m| m.uri.clone()),
            detail: format!("none of {} members could be reached", members.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::HashSet;

    use super::pick_relay_ssrc;

    /// 2,000 members announcing one SSRC get 2,000 distinct relay SSRCs,
    /// never a reserved one, in about one probe each (a search from the
    /// announced SSRC each time took ~2·10⁶ probes here).
    #[test]
    fn members_sharing_one_ssrc_get_distinct_relays_in_linear_probes() {
        let upstream = 0x5000_0002; // the call's floor SSRC, inside the probed range
        let mut given = HashSet::new();
        let probes = Cell::new(0u64);
        let mut cursor = None;
        for _ in 0..2_000 {
            let r = pick_relay_ssrc(0x5000_0001, &mut cursor, |r| {
                probes.set(probes.get() + 1);
                r == 0 || r == upstream || given.contains(&r)
            });
            assert!(r != 0 && r != upstream, "{r:#x}");
            assert!(given.insert(r), "{r:#x} given twice");
        }
        assert!(probes.get() <= 3 * 2_000, "{} probes", probes.get());
    }

    #[test]
    fn a_free_ssrc_is_kept_and_zero_is_skipped_across_the_wrap() {
        let mut cursor = None;
        assert_eq!(pick_relay_ssrc(7, &mut cursor, |_| false), 7);
        assert_eq!(cursor, None);
        let taken = |r: u32| r == u32::MAX || r == 0;
        assert_eq!(pick_relay_ssrc(u32::MAX, &mut cursor, taken), 1);
        assert_eq!(cursor, Some(1));
    }
}
