//! The controlling server of temporary group calls: authorisation (step
//! 2), fan-out per constituent group (steps 3 and 8), aggregation under a
//! deadline (step 7) and floor arbitration (step 9), for any number of
//! concurrent calls (one per temporary group at a time).
//!
//! Structurally keyless: it has no GMK, TGMK or user key field and never
//! calls into `mcx_mikey`'s key functions. The wrapped copies pass
//! through byte for byte; only their clear envelope (T, RAND, IDRs,
//! TGMK-ID) is read, to refuse stale or replayed call requests.
//!
//! Every call record ends: on the initiator's BYE or CANCEL, the floor
//! release, a failed set-up, the initiator's 2xx never ACKed, the
//! maximum call duration or [`ControllingServer::shutdown`]. Every wait
//! is bounded: a constituent group that has not answered by the group
//! deadline is CANCELled (if it sent a provisional response) or abandoned
//! (RFC 3261 9.1), and the initiator is answered with what is known.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcx_floor::{ArbitratorConfig, ArbitratorEvent, BroadcastArbitrator, ParticipantId};
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_idms::jwt::TokenVerifier;
use mcx_mikey::csk::SpkFloorKeys;
use mcx_mikey::replay::ReplayCache;
use mcx_sip::{Dialog, Limits, Message, Method, PositionIndex, Request, Response, StatusCode};
use rand_core::CryptoRng;

use crate::agenda::{Agenda, Slot};
use crate::floor_guard::{FloorDrop, FloorDrops, FloorGuard, LegFloor, with_ssrc, worst};
use crate::info::McpttInfo;
use crate::mc_server::ServerIdentity;
use crate::registration::{
    RegisteredSources, asked_expiry, carries_mikey, check_access_token, registered_ok,
};
use crate::result::{
    CallResult, FailureCause, GroupFailure, GroupReport, GroupResult, MemberOutcome,
};
use crate::sdp::{Description, Direction, MediaEndpoint};
use crate::sip::{self, without_body};
use crate::ua::{Answer, GoneLegs, UserAgent, cancels};
use crate::{
    CallState, CallSummary, Channel, Error, RelayCommand, Time, TimelineEntry, Transmit, rtcp_ssrc,
    timeline,
};

/// The Info-Package of the in-dialog INFO by which the controlling server
/// tells the initiator that a constituent group left the call (body: a
/// call result whose group has `failure="lost"`; RFC 6086).
pub const GROUP_LOST_INFO_PACKAGE: &str = "mcx.call-result";

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
    /// How long each constituent group has to answer before the
    /// initiator is answered without it. Must be shorter than the
    /// initiator's own wait and longer than the MC servers' member
    /// deadline.
    pub group_deadline: Duration,
    /// Longest call; then it is ended with BYE on every leg.
    pub max_call_duration: Duration,
    /// How long a 2xx to the initiator may stay un-ACKed before the call
    /// is ended with BYE (RFC 3261 13.3.1.4: 64·T1).
    pub ack_wait: Duration,
    /// Most concurrent calls; beyond, 503.
    pub max_calls: usize,
    /// How often each MC server holding joined legs is probed with an
    /// in-dialog OPTIONS (one of its legs per interval, in turn);
    /// `Duration::ZERO` turns the keep-alive off.
    pub keepalive_interval: Duration,
    /// An MC server that answers nothing for this long has lost its legs:
    /// their groups are reported lost in-call. Loss is thus detected
    /// within `leg_silence + keepalive_interval` of the last answer.
    pub leg_silence: Duration,
    /// Where this server takes voice (its relay) and floor control (its
    /// driver's bound sockets), announced in its SDP.
    pub media: MediaEndpoint,
}

impl ControllingServerConfig {
    /// Default group deadline.
    pub const DEFAULT_GROUP_DEADLINE: Duration = Duration::from_secs(5);
    /// Default maximum call duration.
    pub const DEFAULT_MAX_CALL_DURATION: Duration = Duration::from_secs(3600);
    /// Default ACK wait (64·T1 with T1 = 500 ms).
    pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(32);
    /// Default most concurrent calls.
    pub const DEFAULT_MAX_CALLS: usize = 10_000;
    /// Default keep-alive interval: two probes a second per MC server
    /// (not per call), so that a lossy network gets many tries, each
    /// retransmitted by its transaction, within one silence period.
    pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
    /// Default silence after which an MC server's legs are lost: with the
    /// default interval, a loss is reported within 4.5 s, and at 10 %
    /// datagram loss a false report needs about ten exchanges in a row
    /// to fail.
    pub const DEFAULT_LEG_SILENCE: Duration = Duration::from_secs(4);

    /// A configuration with the default deadlines and limits.
    pub fn new(
        uri: impl Into<String>,
        allowed_initiators: Vec<String>,
        temporary_groups: Vec<TemporaryGroup>,
    ) -> Self {
        Self {
            uri: uri.into(),
            allowed_initiators,
            temporary_groups,
            group_deadline: Self::DEFAULT_GROUP_DEADLINE,
            max_call_duration: Self::DEFAULT_MAX_CALL_DURATION,
            ack_wait: Self::DEFAULT_ACK_WAIT,
            max_calls: Self::DEFAULT_MAX_CALLS,
            keepalive_interval: Self::DEFAULT_KEEPALIVE_INTERVAL,
            leg_silence: Self::DEFAULT_LEG_SILENCE,
            media: MediaEndpoint::UNBOUND,
        }
    }
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
    /// A constituent group's leg was decided (answered, or failed).
    GroupReported {
        /// The temporary group.
        temporary_group_id: String,
        /// The group's result.
        result: GroupResult,
    },
    /// Every constituent group answered or failed; the initiator was
    /// answered 200 (at least one group joined).
    CallEstablished {
        /// The temporary group.
        temporary_group_id: String,
        /// Per-group acceptance.
        groups: Vec<GroupResult>,
        /// From the initiator's INVITE to its 200 OK, at this server.
        setup_time: Duration,
    },
    /// No group joined: the initiator was answered 480 with the reasons.
    CallFailed {
        /// The temporary group.
        temporary_group_id: String,
        /// Per-group results with their failures.
        groups: Vec<GroupResult>,
    },
    /// A group left an established call; the initiator was told (INFO).
    GroupLost {
        /// The temporary group.
        temporary_group_id: String,
        /// The group, with `failure` set.
        result: GroupResult,
    },
    /// A floor arbitration event of a call.
    Floor {
        /// The temporary group.
        temporary_group_id: String,
        /// The event.
        event: ArbitratorEvent,
    },
    /// The call ended; BYE sent on its legs.
    CallEnded {
        /// The temporary group.
        temporary_group_id: String,
        /// Why.
        reason: String,
    },
    /// A temporary group formed on demand
    /// ([`ControllingServer::add_temporary_group`]) was dropped: its call
    /// ended (such a group serves one call), its removal waited for its
    /// call's end, or its lifetime ran out.
    TemporaryGroupDissolved {
        /// The temporary group.
        temporary_group_id: String,
        /// Why.
        reason: String,
    },
}

/// A leg toward one constituent group's MC server.
enum LegState {
    /// INVITE sent; `provisional` once a 1xx came (CANCEL allowed).
    Trying { provisional: bool },
    /// 2xx received and ACKed.
    Joined(Dialog),
    /// Failed, refused, cancelled or abandoned; a late 2xx is ACKed and BYEd.
    Over,
}

struct Leg {
    group_id: String,
    server: String,
    /// The INVITE as sent, without its body (CANCEL, dialog).
    invite: Request,
    state: LegState,
    result: Option<GroupReport>,
    /// Where the MC server takes the call's voice (its answer's SDP).
    audio: Option<SocketAddr>,
    /// Floor control with the MC server in this leg, under this leg's
    /// keys (made when first needed; goes with the call).
    floor: Option<LegFloor>,
}

impl Leg {
    /// This leg's floor channel under `spk`, made on first use.
    fn floor(&mut self, spk: &SpkFloorKeys) -> Option<&mut LegFloor> {
        if self.floor.is_none() {
            let call_id = self.invite.call_id().ok()?;
            self.floor = Some(LegFloor::controlling(spk, call_id).ok()?);
        }
        self.floor.as_mut()
    }
}

enum Phase {
    /// Waiting for the legs.
    SettingUp,
    /// The initiator was answered 200; `acked` once its ACK came.
    Established { acked: bool },
    /// The initiator cancelled and was answered 487: nothing more to it.
    Cancelled,
}

type CallNo = u64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timer {
    GroupDeadline,
    AckWait,
    MaxDuration,
    Floor,
    /// The keep-alive round over every watched MC server (not a call's
    /// timer: armed under [`KEEPALIVE`]).
    Keepalive,
}

/// The call number the keep-alive round is armed under (calls start at 1).
const KEEPALIVE: CallNo = 0;

/// An MC server that holds joined legs, watched by the keep-alive.
struct ServerWatch {
    /// Its joined legs: (call, leg index).
    legs: BTreeSet<(CallNo, usize)>,
    /// When it last answered anything.
    last_heard: Instant,
    /// The leg probed last (the next probe takes the one after).
    cursor: Option<(CallNo, usize)>,
}

struct Call {
    temporary_group_id: String,
    initiator: String,
    initiator_addr: String,
    /// The initiator's INVITE without its body.
    invite: Request,
    initiator_ssrc: Option<u32>,
    legs: Vec<Leg>,
    phase: Phase,
    initiator_dialog: Option<Dialog>,
    floor_ssrc: u32,
    arbitrator: Option<BroadcastArbitrator>,
    participants: Participants,
    /// Participants whose group left the call (no more floor messages).
    left: Vec<usize>,
    /// The accepted members of each leg, by `ParticipantId`.
    leg_participants: Vec<(String, Vec<usize>)>,
    /// Pending timers: (kind, slot in the server's agenda).
    timers: Vec<(Timer, Slot)>,
    /// Last SIP activity (for the late-2xx memory of its legs).
    last_touch: Instant,
    /// When the call request came.
    started: Instant,
    /// The initiator's voice: its announced socket and SSRC (relay source).
    voice_source: Option<SocketAddr>,
    voice_ssrc: Option<u32>,
    /// Whether a relay route is set for this call.
    relaying: bool,
}

/// A floor participant: who it is, and where its floor messages go.
///
/// Through an MC server there are two kinds (TS 24.380 6.5, decision in
/// docs/core.md): the leg itself — the MC server as non-controlling
/// function, one participant per call leg, sent Floor Taken and Floor Idle
/// once for all its members, under the call's floor SSRC — and each member
/// it represents, sent only the answers to its own messages (Floor Deny),
/// under its relay SSRC.
/// A call's floor participants, by `ParticipantId` (their position) and by
/// URI: a member in two of the call's groups is one participant, checked
/// per member as thousands join (a scan of the list made establishing a
/// call quadratic: 60 % of the controlling server's time at 10,000).
#[derive(Default)]
struct Participants {
    list: Vec<FloorPeer>,
    by_uri: PositionIndex,
}

impl Participants {
    fn get(&self, pid: usize) -> Option<&FloorPeer> {
        self.list.get(pid)
    }

    fn knows(&self, uri: &str) -> bool {
        let list = &self.list;
        self.by_uri
            .find(uri, |pid| list.get(pid).map(|p| p.uri.as_str()))
            .is_some()
    }

    /// Adds a participant (its URI not one yet): its `ParticipantId`.
    fn add(&mut self, peer: FloorPeer) -> usize {
        let pid = self.list.len();
        self.by_uri.insert(self.by_uri.hash(peer.uri.as_str()), pid);
        self.list.push(peer);
        pid
    }

    /// Empties the list and makes room for `n` participants.
    fn reset(&mut self, n: usize) {
        self.list.clear();
        self.by_uri.clear();
        self.list.reserve(n);
        self.by_uri.reserve(n);
    }
}

struct FloorPeer {
    /// Its MCPTT ID (for a leg: the group's ID).
    uri: String,
    /// The address floor messages go to: the initiator itself, or a
    /// member's MC server (its participating function).
    to: String,
    /// Through an MC server, for a member: its relay SSRC, written into
    /// the messages so the MC server knows whom they are for. `None` for
    /// a leg: its messages keep the call's floor SSRC, which no member's
    /// relay SSRC equals (the MC server avoids it).
    ssrc: Option<u32>,
    /// Through an MC server: the index of the leg (its floor channel).
    leg: Option<usize>,
}

impl Call {
    fn leg_by_call_id(&mut self, call_id: &str) -> Option<&mut Leg> {
        self.legs
            .iter_mut()
            .find(|l| l.invite.call_id().is_ok_and(|c| c == call_id))
    }

    fn leg_index(&self, call_id: &str) -> Option<usize> {
        self.legs
            .iter()
            .position(|l| l.invite.call_id().is_ok_and(|c| c == call_id))
    }

    /// Whether `req` belongs to the initiator's dialog or a joined leg's.
    fn knows_dialog(&self, req: &Request) -> bool {
        self.initiator_dialog
            .as_ref()
            .is_some_and(|d| d.matches(req))
            || self
                .legs
                .iter()
                .any(|l| matches!(&l.state, LegState::Joined(d) if d.matches(req)))
    }
}

/// The controlling server (sans-IO). Holds no key material.
///
/// Inputs: [`ControllingServer::handle`] / [`ControllingServer::handle_sip`]
/// (network), [`ControllingServer::handle_timeout`],
/// [`ControllingServer::shutdown`]. Outputs:
/// [`ControllingServer::poll_transmit`], [`ControllingServer::poll_timeout`],
/// [`ControllingServer::poll_event`], [`ControllingServer::poll_timeline`].
pub struct ControllingServer {
    config: ControllingServerConfig,
    ua: UserAgent,
    calls: BTreeMap<CallNo, Call>,
    next_no: CallNo,
    /// Live call of each temporary group.
    by_group: HashMap<String, CallNo>,
    /// Call-IDs of the initiator's INVITE and of every leg.
    by_call_id: HashMap<String, CallNo>,
    /// Floor participants by (address, floor SSRC); SSRC 0 when the
    /// participant announced none. Several calls' (or legs') members at
    /// one MC server may share an SSRC: the key of the leg that
    /// authenticates the packet tells them apart.
    floor_index: HashMap<(String, u32), Vec<(CallNo, usize)>>,
    agenda: Agenda<(CallNo, Timer)>,
    /// MC servers holding joined legs, by address.
    watch: HashMap<String, ServerWatch>,
    /// The armed keep-alive round.
    keepalive_slot: Option<Slot>,
    gone_legs: GoneLegs,
    /// Floor participants of recently ended calls, and when it ended.
    ended_floor: HashMap<(String, u32), Instant>,
    /// Floor packets that matched no call (dropped).
    stray_floor: u64,
    /// Protected floor channels with each registered initiator under its
    /// CSK (MC servers: each leg has its own, [`Leg::floor`]).
    floor_guards: HashMap<String, FloorGuard>,
    /// The MC servers of our temporary groups (the SPK's peers): looked up
    /// on every floor packet from a peer without a channel yet.
    mc_servers: HashSet<String>,
    identity: Option<ServerIdentity>,
    csk_replay: ReplayCache,
    /// With one, REGISTERs need an IdMS access token and calls are
    /// authorised by the registered identity of their source.
    tokens: Option<TokenVerifier>,
    /// Who registered from where.
    sources: RegisteredSources,
    /// The wrapped copies of the call requests relayed (replay window).
    copies_seen: ReplayCache,
    /// The SPK shared with the MC servers: each leg's floor keys come
    /// from it.
    spk: Option<SpkFloorKeys>,
    floor_drops: FloorDrops,
    events: VecDeque<ControllingEvent>,
    timeline: VecDeque<TimelineEntry>,
    relay: VecDeque<RelayCommand>,
    /// Temporary groups formed on demand (group regroup through the GMS),
    /// besides the configured ones.
    on_demand: HashMap<String, OnDemandGroup>,
}

impl fmt::Debug for ControllingServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllingServer")
            .field("uri", &self.config.uri)
            .field("calls", &self.calls.len())
            .finish_non_exhaustive()
    }
}

impl ControllingServer {
    /// A controlling server.
    pub fn new(config: ControllingServerConfig) -> Self {
        let ua = UserAgent::new(&config.uri);
        let mc_servers = config
            .temporary_groups
            .iter()
            .flat_map(|t| t.constituents.iter().map(|(_, s)| s.clone()))
            .collect();
        Self {
            config,
            ua,
            calls: BTreeMap::new(),
            next_no: 1,
            by_group: HashMap::new(),
            by_call_id: HashMap::new(),
            floor_index: HashMap::new(),
            agenda: Agenda::new(),
            watch: HashMap::new(),
            keepalive_slot: None,
            gone_legs: GoneLegs::default(),
            ended_floor: HashMap::new(),
            stray_floor: 0,
            floor_guards: HashMap::new(),
            mc_servers,
            identity: None,
            csk_replay: ReplayCache::default(),
            tokens: None,
            sources: RegisteredSources::default(),
            copies_seen: ReplayCache::default(),
            spk: None,
            floor_drops: FloorDrops::default(),
            events: VecDeque::new(),
            timeline: VecDeque::new(),
            relay: VecDeque::new(),
            on_demand: HashMap::new(),
        }
    }

    /// Its URI.
    pub fn uri(&self) -> &str {
        &self.config.uri
    }

    /// The top Via its driver's SIP link sends with (transport token and
    /// socket address, RFC 3261 18.1.1): the role writes its requests
    /// with it, so that the link need not rewrite them.
    pub fn set_sent_by(&mut self, transport: mcx_sip::Transport, sent_by: &str) {
        self.ua.set_via(transport, sent_by);
    }

    /// Number of call records held (set-up and established).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The temporary groups with a call now.
    pub fn active_calls(&self) -> Vec<String> {
        self.calls
            .values()
            .map(|c| c.temporary_group_id.clone())
            .collect()
    }

    /// Every call record, for operators (`mcx calls`).
    #[must_use]
    pub fn call_summaries(&self) -> Vec<CallSummary> {
        self.calls
            .values()
            .filter(|c| !matches!(c.phase, Phase::Cancelled))
            .map(|c| CallSummary {
                call_id: c.invite.call_id().unwrap_or_default().to_owned(),
                temporary_group_id: c.temporary_group_id.clone(),
                group_id: None,
                initiator: c.initiator.clone(),
                state: match c.phase {
                    Phase::SettingUp | Phase::Cancelled => CallState::SettingUp,
                    Phase::Established { .. } => CallState::Established,
                },
                joined: c
                    .legs
                    .iter()
                    .filter(|l| matches!(l.state, LegState::Joined(_)))
                    .count(),
                started: c.started,
            })
            .collect()
    }

    /// Ends the call whose initiator's INVITE had `call_id`, as
    /// [`ControllingServer::shutdown`] ends every call (503 or BYE to the
    /// initiator, CANCEL or BYE on its legs). Returns whether there was
    /// such a call.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a request cannot be built.
    pub fn end_call_by_id(
        &mut self,
        time: Time,
        call_id: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<bool, Error> {
        let Some(no) = self.by_call_id.get(call_id).copied() else {
            return Ok(false);
        };
        // A leg's Call-ID names the same record, but operators name calls
        // by what `call_summaries` shows: the initiator's.
        if !self
            .calls
            .get(&no)
            .is_some_and(|c| c.invite.call_id().is_ok_and(|id| id == call_id))
        {
            return Ok(false);
        }
        self.end_call(time, no, "ended by the operator", rng)?;
        Ok(true)
    }

    /// Floor packets dropped because they matched no call.
    pub fn stray_floor_packets(&self) -> u64 {
        self.stray_floor
    }

    /// Floor-control state held for calls through MC servers: live leg
    /// floor channels plus participants indexed by floor SSRC. It goes
    /// with the calls (0 when none is up), whatever the number of calls
    /// before.
    pub fn inter_server_floor_state(&self) -> usize {
        let channels = self
            .calls
            .values()
            .flat_map(|c| &c.legs)
            .filter(|l| l.floor.is_some())
            .count();
        channels + self.floor_index.values().map(Vec::len).sum::<usize>()
    }

    /// Floor packets dropped for failing authentication (CSK or SPK) or
    /// as replays.
    pub fn floor_drops(&self) -> FloorDrops {
        self.floor_drops
    }

    /// Whether it holds its identity keys (CSK uploads in REGISTERs can
    /// be decrypted): what readiness checks.
    #[must_use]
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// Our keys from the KMS, for our URI: initiators upload their CSKs to
    /// us in their REGISTER.
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
    /// RFC 8898), and requests are authorised by the identity registered
    /// from their transport source, never by their From.
    pub fn require_access_tokens(&mut self, verifier: TokenVerifier) -> &mut Self {
        self.tokens = Some(verifier);
        self
    }

    /// The SPK protecting floor control between us and the MC servers
    /// (TS 24.380 13.1): each call leg's floor keys, one per direction,
    /// are derived from it ([`SpkFloorKeys::leg_keys`]). Set it before
    /// calls start.
    pub fn set_spk(&mut self, keys: SpkFloorKeys) -> &mut Self {
        self.spk = Some(keys);
        self
    }

    /// An initiator registers with us, its home server, uploading its CSK
    /// for floor control (TS 33.180 5.4, E.4). Only allowed initiators.
    fn on_register(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let aor = req.to()?.uri;
        let refusal = if req.from()?.uri != aor {
            Some("Forbidden - registering someone else".to_owned())
        } else if !self.config.allowed_initiators.contains(&aor) {
            Some("Forbidden - not an initiator served here".to_owned())
        } else {
            self.tokens
                .as_ref()
                .and_then(|v| check_access_token(req, v, &aor, time.unix).err())
        };
        let granted = asked_expiry(req).min(Duration::from_secs(3600));
        let refusal = refusal.or_else(|| {
            if granted.is_zero() {
                self.floor_guards.remove(&aor);
                return None;
            }
            if !carries_mikey(req) {
                // A refresh is fine if we hold its CSK; after our restart
                // we do not, and the client must register anew with one.
                return (self.identity.is_some() && !self.floor_guards.contains_key(&aor))
                    .then(|| "Forbidden - no CSK held for you: register with one".to_owned())
                    .or_else(|| {
                        crate::floor_guard::worn_refusal(
                            self.floor_guards.get(&aor),
                            crate::floor_guard::SERVER_REKEY_STREAMS,
                        )
                    });
            }
            let me = self.config.uri.clone();
            let r = match self.identity.as_ref() {
                Some(id) => id
                    .accept_csk(&me, &aor, req.body(), time.unix, &mut self.csk_replay)
                    .map_err(|e| format!("Forbidden - CSK rejected: {e}")),
                None => Err("Forbidden - this server takes no CSK".to_owned()),
            };
            match r {
                Ok(g) => {
                    self.floor_guards.insert(aor.clone(), g);
                    None
                }
                Err(reason) => Some(reason),
            }
        });
        if let Some(reason) = refusal {
            return self
                .ua
                .respond(
                    from,
                    req,
                    StatusCode::FORBIDDEN,
                    Some(&reason),
                    Answer::Empty,
                    rng,
                )
                .map(|_| ());
        }
        self.sources
            .bind(req.source(), &aor, time.instant, time.instant + granted);
        let ok = registered_ok(req, &aor, granted, rng)?;
        self.ua.send_sip(from, ok);
        Ok(())
    }

    /// The floor arbitrator of the call of `temporary_group_id`, once
    /// established.
    pub fn arbitrator(&self, temporary_group_id: &str) -> Option<&BroadcastArbitrator> {
        let no = self.by_group.get(temporary_group_id)?;
        self.calls.get(no)?.arbitrator.as_ref()
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
            Channel::Floor => self.on_floor(time, from, bytes, rng),
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
                Method::Cancel => self.on_cancel(time, from, &req, rng),
                Method::Info => self.on_info(time, from, &req, rng),
                Method::Register => self.on_register(time, from, &req, rng),
                Method::Ack => {
                    self.on_ack(&req);
                    Ok(())
                }
                _ => {
                    let (by_call_id, calls) = (&self.by_call_id, &self.calls);
                    let known = |r: &Request| {
                        r.call_id()
                            .ok()
                            .and_then(|c| calls.get(by_call_id.get(c)?))
                            .is_some_and(|c| c.knows_dialog(r))
                    };
                    self.ua.answer_other_method(from, &req, false, known, rng)
                }
            },
            Message::Response(resp) => self.on_response(time, &resp, rng),
        }
    }

    /// Fires the timers due at `time`: group deadlines, ACK waits,
    /// maximum call durations, floor retransmissions.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a request cannot be built.
    pub fn handle_timeout(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        while let Some((no, timer)) = self.agenda.pop_due(time.instant) {
            if timer == Timer::Keepalive {
                self.keepalive_slot = None;
                self.keepalive(time, rng)?;
                continue;
            }
            let Some(call) = self.calls.get_mut(&no) else {
                continue;
            };
            call.timers.retain(|(t, _)| *t != timer);
            match timer {
                Timer::GroupDeadline => self.deadline(time, no, rng)?,
                Timer::AckWait => {
                    self.end_call(time, no, "the initiator never ACKed the 2xx", rng)?;
                }
                Timer::MaxDuration => {
                    self.end_call(time, no, "maximum call duration reached", rng)?;
                }
                Timer::Floor => {
                    if let Some(a) = call.arbitrator.as_mut() {
                        a.handle_timeout(time.instant);
                    }
                    self.drain_floor(time, no, rng)?;
                }
                Timer::Keepalive => {}
            }
        }
        Ok(())
    }

    /// Ends every call: set-ups are answered 503 and their legs cancelled,
    /// established calls get BYE on every leg. For an orderly stop
    /// (SIGTERM); the driver then lets the transactions finish.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a request cannot be built.
    pub fn shutdown(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let nos: Vec<CallNo> = self.calls.keys().copied().collect();
        for no in nos {
            self.end_call(time, no, "the controlling server is shutting down", rng)?;
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
    pub fn poll_event(&mut self) -> Option<ControllingEvent> {
        self.events.pop_front()
    }

    /// The next timeline entry.
    #[must_use]
    pub fn poll_timeline(&mut self) -> Option<TimelineEntry> {
        self.timeline.pop_front()
    }

    /// The next change to the driver's media relay.
    #[must_use]
    pub fn poll_relay(&mut self) -> Option<RelayCommand> {
        self.relay.pop_front()
    }

    /// Points the relay of call `no` at its joined legs: the initiator's
    /// voice goes to every MC server still in the call; none left (or the
    /// call `ending`) removes the route.
    fn update_route(&mut self, no: CallNo, ending: bool) {
        let Some(call) = self.calls.get_mut(&no) else {
            return;
        };
        let Some(source) = call.voice_source else {
            return;
        };
        let targets: Vec<SocketAddr> = call
            .legs
            .iter()
            .filter(|l| matches!(l.state, LegState::Joined(_)))
            .filter_map(|l| l.audio)
            .collect();
        let live = matches!(call.phase, Phase::Established { .. }) && !ending;
        self.relay.extend(crate::route_change(
            source,
            call.voice_ssrc,
            targets,
            live,
            &mut call.relaying,
        ));
    }

    fn set_timer(&mut self, no: CallNo, timer: Timer, at: Instant) {
        if let Some(c) = self.calls.get_mut(&no) {
            self.agenda.set(&mut c.timers, no, timer, at);
        }
    }

    fn clear_timer(&mut self, no: CallNo, timer: Timer) {
        if let Some(c) = self.calls.get_mut(&no) {
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
        if req.to_ref()?.tag.is_some() {
            // No re-INVITE in this call model.
            return self.reject(
                from,
                &req,
                StatusCode(488),
                "Not Acceptable Here - re-INVITE not supported",
                rng,
            );
        }
        let initiator = match &self.tokens {
            // The caller is who registered from where the request comes
            // (with a token), never its From; nothing about the call is
            // looked at before that.
            Some(_) => {
                let Some(identity) = self.sources.identity(&req, time.instant) else {
                    return self.reject(
                        from,
                        &req,
                        StatusCode::FORBIDDEN,
                        "Forbidden - not registered",
                        rng,
                    );
                };
                let identity = identity.to_owned();
                if sip::from_uri(&req)? != identity {
                    return self.reject(
                        from,
                        &req,
                        StatusCode::FORBIDDEN,
                        "Forbidden - From is not the registered identity",
                        rng,
                    );
                }
                identity
            }
            None => sip::from_uri(&req)?,
        };
        if !self.config.allowed_initiators.contains(&initiator) {
            return self.reject(
                from,
                &req,
                StatusCode::FORBIDDEN,
                "Forbidden - initiator not authorised for temporary group calls",
                rng,
            );
        }
        let Some(tg) = self.temporary_group(req.uri(), time.unix) else {
            return self.reject(
                from,
                &req,
                StatusCode::NOT_FOUND,
                "Not Found - unknown temporary group",
                rng,
            );
        };
        if self.by_group.contains_key(&tg.id) {
            return self.reject(
                from,
                &req,
                StatusCode::BUSY_HERE,
                "Busy Here - a call of this temporary group is in progress",
                rng,
            );
        }
        if self.calls.len() >= self.config.max_calls {
            return self.reject(
                from,
                &req,
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable - call limit reached",
                rng,
            );
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
        // Fresh and never relayed before: a call request replayed into
        // another call stops here, before any fan-out.
        let named: Vec<(&str, &Bytes)> = tg
            .constituents
            .iter()
            .map(|(g, _)| g.as_str())
            .zip(&copies)
            .collect();
        if let Err(why) = crate::copies::admit(&named, &initiator, time.unix, &mut self.copies_seen)
        {
            let reason = format!("{} ({why})", crate::copies::STALE_OR_REPLAYED);
            return self.reject(from, &req, StatusCode::NOT_ACCEPTABLE_HERE, &reason, rng);
        }
        let me = self.config.uri.clone();
        self.timeline.push_back(timeline(
            &me,
            2,
            time,
            format!(
                "INVITE {} from {initiator} authorised; {} wrapped copies (fresh; relayed unopened)",
                tg.id,
                copies.len()
            ),
        ));
        // The floor control server of this call is us: members learn our
        // per-call floor SSRC from the offer we forward.
        let floor_ssrc = loop {
            let s = rng.next_u32();
            if s != 0 {
                break s;
            }
        };
        // We relay the voice: the MC servers get our address, and the
        // initiator's SSRC, which routes it.
        let initiator_sdp = crate::sdp::parse(&body.sdp).ok();
        let voice_ssrc = initiator_sdp.as_ref().and_then(|o| o.media_ssrc);
        let media = self.config.media;
        let offer = Description {
            user: &me,
            session_id: u64::from(rng.next_u32()),
            audio: media.rtp(),
            direction: Direction::SendOnly,
            media_ssrc: voice_ssrc,
            floor: Some(media.floor()),
            floor_ssrc: Some(floor_ssrc),
            fmtp: "",
        }
        .write();
        let no = self.next_no;
        self.next_no += 1;
        let resource_priority = sip::resource_priority(&req);
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
            let mut mp = sip::call_body(offer.clone(), &info, &[(group_id.as_str(), &copy)], rng);
            let pai = [
                (
                    mcx_sip::headers::P_ASSERTED_IDENTITY,
                    format!("<{initiator}>"),
                ),
                sip::asserted_service(),
            ];
            // Resource-Priority passes through as it came (RFC 4412 3.1;
            // TS 24.379 asks none for a broadcast group call: docs/core.md).
            let rp = resource_priority
                .iter()
                .map(|v| (mcx_sip::headers::RESOURCE_PRIORITY, v.clone()));
            let headers: Vec<(&str, String)> = pai.into_iter().chain(rp).collect();
            let invite = sip::invite(&initiator, &me, group_id, group_id, &mut mp, &headers, rng)?;
            self.ua.send_request(server, &invite);
            self.by_call_id.insert(invite.call_id()?.to_owned(), no);
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
                invite: without_body(&invite),
                state: LegState::Trying { provisional: false },
                result: None,
                audio: None,
                floor: None,
            });
        }
        self.by_call_id.insert(req.call_id()?.to_owned(), no);
        self.by_group.insert(tg.id.clone(), no);
        self.calls.insert(
            no,
            Call {
                temporary_group_id: tg.id,
                initiator,
                initiator_addr: from.to_owned(),
                invite: without_body(&req),
                initiator_ssrc: initiator_sdp.as_ref().and_then(|o| o.floor_ssrc),
                legs,
                phase: Phase::SettingUp,
                initiator_dialog: None,
                floor_ssrc,
                arbitrator: None,
                participants: Participants::default(),
                left: Vec::new(),
                leg_participants: Vec::new(),
                timers: Vec::new(),
                last_touch: time.instant,
                started: time.instant,
                voice_source: initiator_sdp.as_ref().and_then(|o| o.audio),
                voice_ssrc,
                relaying: false,
            },
        );
        self.set_timer(
            no,
            Timer::GroupDeadline,
            time.instant + self.config.group_deadline,
        );
        self.set_timer(
            no,
            Timer::MaxDuration,
            time.instant + self.config.max_call_duration,
        );
        Ok(())
    }

    /// Step 7: a leg's answer.
    fn on_response(
        &mut self,
        time: Time,
        resp: &Response,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let (_, method) = resp.cseq()?;
        if method == Method::Options {
            return self.on_keepalive_answer(time, resp, rng);
        }
        if method != Method::Invite {
            return Ok(()); // answers to BYE, CANCEL, INFO
        }
        let cid = resp.call_id()?;
        let Some(&no) = self.by_call_id.get(cid) else {
            // A leg of a call that is over: a late 2xx still makes a
            // dialog at the MC server, which must be ended.
            if resp.status().is_success() {
                if let Some((server, invite)) = self.gone_legs.take(cid) {
                    self.ua.refuse_late_2xx(&server, &invite, resp, rng)?;
                }
            }
            return Ok(());
        };
        if let Some(c) = self.calls.get_mut(&no) {
            c.last_touch = time.instant;
        }
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        let tg = call.temporary_group_id.clone();
        let Some(leg) = call.leg_by_call_id(cid) else {
            return Ok(());
        };
        let status = resp.status();
        match (&mut leg.state, status.is_provisional()) {
            (LegState::Trying { provisional }, true) => {
                *provisional = true;
                return Ok(());
            }
            (_, true) | (LegState::Joined(_), false) => return Ok(()),
            (LegState::Over, false) => {
                if status.is_success() {
                    let (server, invite) = (leg.server.clone(), leg.invite.clone());
                    self.ua.refuse_late_2xx(&server, &invite, resp, rng)?;
                }
                return Ok(());
            }
            (LegState::Trying { .. }, false) => {}
        }
        let body = sip::read_answer(resp);
        let group_id = leg.group_id.clone();
        let server = leg.server.clone();
        let mut report = body
            .as_ref()
            .ok()
            .and_then(|b| b.result.as_ref())
            .and_then(|r| r.groups.iter().find(|g| g.result.group_id == group_id))
            .cloned();
        if status.is_success() {
            let d = self.ua.confirm(&server, &leg.invite, resp, rng)?;
            leg.state = LegState::Joined(d);
            leg.audio = body
                .as_ref()
                .ok()
                .and_then(|b| b.sdp.as_ref())
                .and_then(|s| crate::sdp::parse(s).ok())
                .and_then(|s| s.audio);
            if let Some(i) = call.leg_index(cid) {
                self.watch_leg(&server, no, i, time.instant);
            }
            let report = report.get_or_insert_with(|| GroupReport {
                result: GroupResult::joined(group_id.clone(), 0, 0),
                members: Vec::new(),
            });
            report.result.failure = None;
        } else {
            leg.state = LegState::Over;
            let failure = match report.as_ref().and_then(|r| r.result.failure.clone()) {
                Some(f) => f,
                None => leg_failure(&server, resp),
            };
            let rejected = report.as_ref().map_or(0, |r| r.result.rejected);
            let members = report.map(|r| r.members).unwrap_or_default();
            report = Some(GroupReport {
                result: GroupResult {
                    group_id: group_id.clone(),
                    accepted: 0,
                    rejected,
                    failure: Some(failure),
                },
                members,
            });
        }
        let report = report.unwrap_or_else(|| GroupReport {
            result: GroupResult::joined(group_id.clone(), 0, 0),
            members: Vec::new(),
        });
        self.record_leg(time, no, &group_id, report, &tg);
        self.answer_if_complete(time, no, rng)
    }

    fn record_leg(
        &mut self,
        time: Time,
        no: CallNo,
        group_id: &str,
        report: GroupReport,
        tg: &str,
    ) {
        let Some(call) = self.calls.get_mut(&no) else {
            return;
        };
        let Some(leg) = call.legs.iter_mut().find(|l| l.group_id == group_id) else {
            return;
        };
        let r = &report.result;
        let detail = match &r.failure {
            None => format!(
                "{} reported {}: {} accepted, {} rejected",
                leg.server, r.group_id, r.accepted, r.rejected
            ),
            Some(f) => format!(
                "{} failed for {}: {} ({})",
                leg.server,
                r.group_id,
                f.cause.as_str(),
                f.detail
            ),
        };
        self.events.push_back(ControllingEvent::GroupReported {
            temporary_group_id: tg.to_owned(),
            result: report.result.clone(),
        });
        leg.result = Some(report);
        self.timeline
            .push_back(timeline(&self.config.uri, 7, time, detail));
    }

    /// The group deadline: CANCEL the legs that sent a provisional
    /// response, abandon the others (RFC 3261 9.1), answer the initiator.
    fn deadline(&mut self, time: Time, no: CallNo, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let ms = self.config.group_deadline.as_millis();
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        if !matches!(call.phase, Phase::SettingUp) {
            return Ok(());
        }
        let tg = call.temporary_group_id.clone();
        let mut decided = Vec::new();
        let mut cancels = Vec::new();
        for leg in &mut call.legs {
            let LegState::Trying { provisional } = leg.state else {
                continue;
            };
            if provisional {
                cancels.push((leg.server.clone(), leg.invite.clone()));
            }
            leg.state = LegState::Over;
            let detail = if provisional {
                format!(
                    "no final answer from {} within {ms} ms; cancelled",
                    leg.server
                )
            } else {
                format!("no answer at all from {} within {ms} ms", leg.server)
            };
            decided.push((
                leg.group_id.clone(),
                GroupReport {
                    result: GroupResult::failed(
                        leg.group_id.clone(),
                        GroupFailure {
                            cause: if provisional {
                                FailureCause::Timeout
                            } else {
                                FailureCause::Unreachable
                            },
                            status: None,
                            member: None,
                            detail,
                        },
                    ),
                    members: Vec::new(),
                },
            ));
        }
        for (server, invite) in cancels {
            self.ua.cancel(&server, &invite)?;
        }
        for (g, r) in decided {
            self.record_leg(time, no, &g, r, &tg);
        }
        self.answer_if_complete(time, no, rng)
    }

    fn answer_if_complete(
        &mut self,
        time: Time,
        no: CallNo,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let me = self.config.uri.clone();
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        if !matches!(call.phase, Phase::SettingUp) || call.legs.iter().any(|l| l.result.is_none()) {
            return Ok(());
        }
        let reports: Vec<GroupReport> = call.legs.iter().filter_map(|l| l.result.clone()).collect();
        let groups: Vec<GroupResult> = reports.iter().map(|r| r.result.clone()).collect();
        // Toward the initiator: every group's summary, and of the
        // members only those that did not accept.
        let for_initiator = CallResult {
            groups: reports
                .iter()
                .map(|r| GroupReport {
                    result: r.result.clone(),
                    members: r
                        .members
                        .iter()
                        .filter(|m| !matches!(m.outcome, MemberOutcome::Accepted { .. }))
                        .cloned()
                        .collect(),
                })
                .collect(),
        };
        let tg = call.temporary_group_id.clone();
        let to = call.initiator_addr.clone();
        let joined = groups.iter().any(|g| g.failure.is_none());
        self.clear_timer(no, Timer::GroupDeadline);
        if !joined {
            let call = self.calls.get(&no).ok_or(Error::Unexpected("call gone"))?;
            let invite = call.invite.clone();
            self.ua.respond(
                &to,
                &invite,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                Some("Temporarily Unavailable - no constituent group joined"),
                Answer::Result(for_initiator),
                rng,
            )?;
            self.events.push_back(ControllingEvent::CallFailed {
                temporary_group_id: tg,
                groups,
            });
            self.timeline.push_back(timeline(
                &me,
                9,
                time,
                "480 to initiator: no constituent group joined".to_owned(),
            ));
            self.remove_call(no);
            return Ok(());
        }
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        let media = self.config.media;
        let sdp = Description {
            user: &me,
            session_id: u64::from(rng.next_u32()),
            audio: media.rtp(),
            direction: Direction::RecvOnly,
            media_ssrc: None,
            floor: Some(media.floor()),
            floor_ssrc: Some(call.floor_ssrc),
            // The implicit floor request is granted (TS 24.380 12.1.2).
            fmtp: "mc_granted",
        }
        .write();
        let invite = call.invite.clone();
        let dialog = self
            .ua
            .accept(&to, &invite, Answer::SdpAndResult(sdp, for_initiator), rng)?;
        let call = self
            .calls
            .get_mut(&no)
            .ok_or(Error::Unexpected("call gone"))?;
        call.initiator_dialog = Some(dialog);
        call.phase = Phase::Established { acked: false };
        let mut arb = BroadcastArbitrator::new(
            ArbitratorConfig::new(call.floor_ssrc),
            call.initiator.clone(),
        )?;
        // The initiator, a receiver per leg and each member reported.
        let most = 1
            + call.legs.len()
            + (call.legs.iter())
                .filter_map(|l| l.result.as_ref())
                .map(|r| r.members.len())
                .sum::<usize>();
        call.participants.reset(most);
        call.participants.add(FloorPeer {
            uri: call.initiator.clone(),
            to: call.initiator_addr.clone(),
            ssrc: None,
            leg: None,
        });
        let mut index = vec![(
            (
                call.initiator_addr.clone(),
                call.initiator_ssrc.unwrap_or(0),
            ),
            0,
        )];
        let mut total = 0u32;
        for (leg, l) in call.legs.iter().enumerate() {
            let Some(r) = l.result.as_ref() else { continue };
            total = total.saturating_add(r.result.accepted);
            let mut pids = Vec::new();
            if matches!(l.state, LegState::Joined(_)) {
                // The MC server is the leg's non-controlling function (TS
                // 24.380 6.5): one receiver for all its members, also for
                // those that join later (it tells them the floor state).
                arb.add_receiver(time.instant, l.group_id.clone())?;
                let pid = call.participants.add(FloorPeer {
                    uri: l.group_id.clone(),
                    to: l.server.clone(),
                    ssrc: None,
                    leg: Some(leg),
                });
                pids.push(pid);
                index.push(((l.server.clone(), call.floor_ssrc), pid));
            }
            for m in &r.members {
                let MemberOutcome::Accepted { ssrc } = m.outcome else {
                    continue;
                };
                if call.participants.knows(&m.uri) {
                    continue;
                }
                arb.add_represented_receiver(m.uri.clone())?;
                let pid = call.participants.add(FloorPeer {
                    uri: m.uri.clone(),
                    to: l.server.clone(),
                    ssrc,
                    leg: Some(leg),
                });
                pids.push(pid);
                // Its floor messages come from its MC server.
                index.push(((l.server.clone(), ssrc.unwrap_or(0)), pid));
            }
            call.leg_participants.push((l.group_id.clone(), pids));
        }
        arb.start(time.instant)?;
        call.arbitrator = Some(arb);
        for (k, pid) in index {
            self.floor_index.entry(k).or_default().push((no, pid));
        }
        self.events.push_back(ControllingEvent::CallEstablished {
            temporary_group_id: tg,
            groups,
            setup_time: time.instant.saturating_duration_since(call.started),
        });
        self.timeline.push_back(timeline(
            &me,
            9,
            time,
            format!(
                "200 OK to initiator; floor granted to initiator, taken for {total} receivers \
                 (once per MC server leg)"
            ),
        ));
        self.set_timer(no, Timer::AckWait, time.instant + self.config.ack_wait);
        self.update_route(no, false);
        self.drain_floor(time, no, rng)
    }

    fn on_ack(&mut self, ack: &Request) {
        let Some(&no) = ack.call_id().ok().and_then(|c| self.by_call_id.get(c)) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&no) else {
            return;
        };
        if let Phase::Established { acked } = &mut call.phase {
            *acked = true;
        }
        self.clear_timer(no, Timer::AckWait);
    }

    /// A floor packet: from an initiator under its CSK, or from an MC
    /// server under the keys of the leg it belongs to. The SSRC (in clear
    /// in SRTCP) names the candidates among the live calls' participants
    /// at that address; the leg whose key authenticates the packet is the
    /// one. From an MC server, a packet no live leg's key authenticates is
    /// counted unauthenticated, but late packets of a call that ended
    /// less than 10 s ago are absorbed.
    fn on_floor(
        &mut self,
        time: Time,
        from: &str,
        bytes: &[u8],
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let ssrc = rtcp_ssrc(bytes).ok_or(Error::Unexpected("floor packet too short"))?;
        let candidates = self
            .floor_index
            .get(&(from.to_owned(), ssrc))
            .or_else(|| self.floor_index.get(&(from.to_owned(), 0)))
            .cloned()
            .unwrap_or_default();
        let late = |s: &Self| {
            s.ended_floor
                .get(&(from.to_owned(), ssrc))
                .is_some_and(|t| {
                    time.instant.saturating_duration_since(*t) < Duration::from_secs(10)
                })
        };
        let plain;
        let (bytes, found) = match (&self.spk, self.floor_guards.get_mut(from)) {
            (_, Some(g)) => match g.unprotect(bytes) {
                Ok(p) => {
                    plain = p;
                    (&plain[..], candidates.last().copied())
                }
                Err(d) => {
                    self.floor_drops.count(d);
                    return Ok(());
                }
            },
            (Some(spk), None) if self.mc_servers.contains(from) => {
                let mut drop = None;
                let mut found = None;
                for &(no, pid) in &candidates {
                    let Some(call) = self.calls.get_mut(&no) else {
                        continue;
                    };
                    let Some(leg) = call.participants.get(pid).and_then(|p| p.leg) else {
                        continue;
                    };
                    let Some(g) = call.legs.get_mut(leg).and_then(|l| l.floor(spk)) else {
                        continue;
                    };
                    match g.unprotect(bytes) {
                        Ok(p) => {
                            found = Some((no, pid, p));
                            break;
                        }
                        Err(d) => drop = Some(worst(drop, d)),
                    }
                }
                let Some((no, pid, p)) = found else {
                    if candidates.is_empty() && late(self) {
                        return Ok(()); // a late Floor Ack of an ended call
                    }
                    self.floor_drops
                        .count(drop.unwrap_or(FloorDrop::Unauthenticated));
                    return Ok(());
                };
                plain = p;
                (&plain[..], Some((no, pid)))
            }
            // Unprotected: the SSRC alone names the participant. Two legs
            // of one call at one MC server share the leg-wide SSRC; a Floor
            // Ack on it goes to a leg still waiting for one.
            _ => {
                let waiting = candidates.iter().rev().find(|&&(no, pid)| {
                    self.calls
                        .get(&no)
                        .and_then(|c| c.arbitrator.as_ref())
                        .is_some_and(|a| a.awaiting_ack(ParticipantId(pid)))
                });
                (bytes, waiting.or_else(|| candidates.last()).copied())
            }
        };
        let Some((no, pid)) = found else {
            if late(self) {
                return Ok(()); // a late Floor Ack of an ended call
            }
            self.stray_floor += 1;
            return Err(Error::Unknown(format!(
                "floor packet from {from} (SSRC {ssrc:#x}) in no call"
            )));
        };
        let Some(arb) = self.calls.get_mut(&no).and_then(|c| c.arbitrator.as_mut()) else {
            return Err(Error::Unexpected("floor packet before set-up"));
        };
        let r = arb.handle(time.instant, ParticipantId(pid), bytes);
        self.drain_floor(time, no, rng)?;
        Ok(r?)
    }

    fn drain_floor(
        &mut self,
        time: Time,
        no: CallNo,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        let Some(arb) = call.arbitrator.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::new();
        while let Some(t) = arb.poll_transmit() {
            if call.left.contains(&t.destination.0) {
                continue; // its group left the call
            }
            if let Some(p) = call.participants.get(t.destination.0) {
                let contents = match p.ssrc {
                    Some(s) => with_ssrc(&t.contents, s),
                    None => t.contents,
                };
                // Through an MC server with an SPK: under the leg's keys,
                // never in clear.
                let contents = match (&self.spk, p.leg) {
                    (Some(spk), Some(i)) => match call.legs.get_mut(i).and_then(|l| l.floor(spk)) {
                        Some(g) => match g.protect(&contents) {
                            Ok(c) => c,
                            Err(_) => continue,
                        },
                        None => continue,
                    },
                    _ => contents,
                };
                out.push((p.to.clone(), p.leg.is_none(), contents));
            }
        }
        let mut ended = false;
        let mut evs = Vec::new();
        while let Some(e) = arb.poll_event() {
            ended |= e == ArbitratorEvent::CallEnded;
            evs.push(e);
        }
        let next = arb.poll_timeout();
        let tg = call.temporary_group_id.clone();
        for (to, direct, c) in out {
            // The initiator's, under its CSK.
            let c = match self.floor_guards.get_mut(&to).filter(|_| direct) {
                Some(g) => match g.protect(&c) {
                    Ok(p) => p,
                    Err(_) => continue,
                },
                None => c,
            };
            self.ua.send(&to, Channel::Floor, c);
        }
        self.events
            .extend(evs.into_iter().map(|event| ControllingEvent::Floor {
                temporary_group_id: tg.clone(),
                event,
            }));
        match next {
            Some(at) => self.set_timer(no, Timer::Floor, at),
            None => self.clear_timer(no, Timer::Floor),
        }
        if ended {
            self.end_call(time, no, "the initiator released the floor", rng)?;
        }
        Ok(())
    }

    /// Ends call `no` on every leg and drops its record: BYE where a
    /// dialog exists, CANCEL where a leg is still trying (after a
    /// provisional), 503 to an initiator still waiting for its answer.
    fn end_call(
        &mut self,
        time: Time,
        no: CallNo,
        reason: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        if let Some(c) = self.calls.get_mut(&no) {
            c.last_touch = time.instant;
        }
        let Some(mut call) = self.remove_call(no) else {
            return Ok(());
        };
        // Floor control ends with the dialogs: the BYEs below end every
        // participant's floor state (a Floor Idle to an initiator that
        // holds the floor would be out of place in TS 24.380).
        call.arbitrator = None;
        match call.phase {
            Phase::SettingUp => {
                self.ua.respond(
                    &call.initiator_addr,
                    &call.invite,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&format!("Service Unavailable - {reason}")),
                    Answer::Empty,
                    rng,
                )?;
            }
            Phase::Established { .. } => {
                if let Some(d) = call.initiator_dialog.as_mut() {
                    self.ua.bye(&call.initiator_addr, d, rng)?;
                }
            }
            Phase::Cancelled => {}
        }
        for l in &mut call.legs {
            match &mut l.state {
                LegState::Joined(d) => self.ua.bye(&l.server, d, rng)?,
                LegState::Trying { provisional: true } => self.ua.cancel(&l.server, &l.invite)?,
                _ => {}
            }
        }
        self.timeline.push_back(timeline(
            &self.config.uri,
            9,
            time,
            format!("call ended ({reason}): BYE to all legs"),
        ));
        self.events.push_back(ControllingEvent::CallEnded {
            temporary_group_id: call.temporary_group_id,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Drops a call's record, its indexes and its timers.
    fn remove_call(&mut self, no: CallNo) -> Option<Call> {
        self.update_route(no, true);
        let call = self.calls.remove(&no)?;
        self.agenda.clear_all(&call.timers);
        self.by_group.remove(&call.temporary_group_id);
        self.dissolve_after_call(&call.temporary_group_id);
        if let Ok(c) = call.invite.call_id() {
            self.by_call_id.remove(c);
        }
        for (i, l) in call.legs.iter().enumerate() {
            self.unwatch_leg(&l.server, no, i);
            if let Ok(c) = l.invite.call_id() {
                self.by_call_id.remove(c);
                // A leg that may still answer 2xx: remembered for a while
                // so that a late 2xx is ACKed and BYEd, not left open.
                if !matches!(l.state, LegState::Joined(_)) {
                    self.gone_legs
                        .remember(c, l.server.clone(), l.invite.clone(), call.last_touch);
                }
            }
        }
        // Floor Acks of the Floor Idle that ended the call still come:
        // absorbed for a while, not errors.
        let now = call.last_touch;
        let keep = Duration::from_secs(10);
        if self.ended_floor.len() > 16_384 {
            self.ended_floor
                .retain(|_, t| now.saturating_duration_since(*t) < keep);
        }
        let ended = &mut self.ended_floor;
        self.floor_index.retain(|k, entries| {
            if entries.iter().any(|(n, _)| *n == no) {
                ended.insert(k.clone(), now);
                entries.retain(|(n, _)| *n != no);
            }
            !entries.is_empty()
        });
        Some(call)
    }

    fn on_bye(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let no = self.call_no_of(req);
        let Some(no) = no else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        if let Some(c) = self.calls.get_mut(&no) {
            c.last_touch = time.instant;
        }
        let Some(call) = self.calls.get_mut(&no) else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        // The initiator hangs up: the call ends.
        if call
            .initiator_dialog
            .as_ref()
            .is_some_and(|d| d.matches(req))
        {
            self.ua
                .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)?;
            if let Some(call) = self.calls.get_mut(&no) {
                call.initiator_dialog = None; // no BYE back to it
            }
            return self.end_call(time, no, "the initiator hung up", rng);
        }
        // An MC server ends its leg: the group is lost to the call.
        let Some(i) = call
            .legs
            .iter()
            .position(|l| matches!(&l.state, LegState::Joined(d) if d.matches(req)))
        else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        self.ua
            .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)?;
        self.lose_leg(time, no, i, LegLoss::EndedByServer, rng)
    }

    /// The call a request belongs to, by its Call-ID.
    fn call_no_of(&self, req: &Request) -> Option<CallNo> {
        req.call_id()
            .ok()
            .and_then(|c| self.by_call_id.get(c))
            .copied()
    }

    /// An MC server's in-call report (INFO, `mcx.call-result`): members
    /// that joined late become floor receivers (their MC server, the
    /// leg's non-controlling function, sends them Floor Taken).
    fn on_info(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let no = self.call_no_of(req);
        let leg = no.and_then(|no| {
            let c = self.calls.get(&no)?;
            let l = c
                .legs
                .iter()
                .find(|l| matches!(&l.state, LegState::Joined(d) if d.matches(req)))?;
            Some((no, l.group_id.clone(), l.server.clone()))
        });
        let Some((no, group, server)) = leg else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        let body = (req.header("Info-Package") == Some(GROUP_LOST_INFO_PACKAGE))
            .then(|| CallResult::parse(req.body()).ok())
            .flatten();
        let Some(body) = body else {
            self.ua.respond(
                from,
                req,
                StatusCode(469),
                Some("Bad Info Package"),
                Answer::Empty,
                rng,
            )?;
            return Ok(());
        };
        self.ua
            .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)?;
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        let Some(update) = body.groups.into_iter().find(|g| g.result.group_id == group) else {
            return Ok(());
        };
        // The group's record takes the new counts and these members' outcomes.
        if let Some(r) = call
            .legs
            .iter_mut()
            .find(|l| l.group_id == group)
            .and_then(|l| l.result.as_mut())
        {
            r.result.accepted = update.result.accepted;
            r.result.rejected = update.result.rejected;
            for m in &update.members {
                match r.members.iter_mut().find(|k| k.uri == m.uri) {
                    Some(k) => k.outcome = m.outcome.clone(),
                    None => r.members.push(m.clone()),
                }
            }
        }
        if call.arbitrator.is_none() {
            // Still setting up: the initiator's answer and the floor
            // arbitration are built from the record just updated.
            return Ok(());
        }
        // The initiator learns the group's counts now, and the members
        // that did not join (as in its 200 OK).
        let to = call.initiator_addr.clone();
        if let Some(d) = call.initiator_dialog.as_mut() {
            let for_initiator = CallResult {
                groups: vec![GroupReport {
                    result: update.result.clone(),
                    members: update
                        .members
                        .iter()
                        .filter(|m| !matches!(m.outcome, MemberOutcome::Accepted { .. }))
                        .cloned()
                        .collect(),
                }],
            };
            self.ua.send_call_result_info(&to, d, &for_initiator, rng)?;
        }
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        let mut joined = Vec::new();
        let leg = call.legs.iter().position(|l| l.group_id == group);
        for m in &update.members {
            let MemberOutcome::Accepted { ssrc } = m.outcome else {
                continue;
            };
            if call.participants.knows(&m.uri) {
                continue;
            }
            let Some(arb) = call.arbitrator.as_mut() else {
                break;
            };
            // Its MC server tells it the floor state (TS 24.380 6.5): here
            // it only needs a handle for its own messages.
            arb.add_represented_receiver(m.uri.clone())?;
            let pid = call.participants.add(FloorPeer {
                uri: m.uri.clone(),
                to: server.clone(),
                ssrc,
                leg,
            });
            if let Some((_, pids)) = call.leg_participants.iter_mut().find(|(g, _)| *g == group) {
                pids.push(pid);
            }
            self.floor_index
                .entry((server.clone(), ssrc.unwrap_or(0)))
                .or_default()
                .push((no, pid));
            joined.push(m.uri.clone());
        }
        for uri in joined {
            self.timeline.push_back(timeline(
                &self.config.uri,
                9,
                time,
                format!("late entry: {uri} joined through {group}; Floor Taken from its MC server"),
            ));
        }
        self.drain_floor(time, no, rng)
    }

    /// Takes leg `i` of call `no` out of the call (its group is lost) and
    /// tells the initiator; BYE to the MC server unless it already knows.
    fn lose_leg(
        &mut self,
        time: Time,
        no: CallNo,
        i: usize,
        loss: LegLoss,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        let Some(leg) = call.legs.get_mut(i) else {
            return Ok(());
        };
        let LegState::Joined(mut dialog) = std::mem::replace(&mut leg.state, LegState::Over) else {
            return Ok(());
        };
        let server = leg.server.clone();
        let group = leg.group_id.clone();
        if loss == LegLoss::Silent {
            // It may come back (a healed partition): it must then release
            // its members rather than keep a call nobody controls.
            self.ua.bye(&server, &mut dialog, rng)?;
        }
        let result = GroupResult::failed(
            group.clone(),
            GroupFailure {
                cause: FailureCause::Lost,
                status: None,
                member: None,
                detail: loss.detail(&server, self.config.leg_silence),
            },
        );
        if matches!(call.phase, Phase::SettingUp) {
            // Not answered yet: the initiator's answer reports the loss.
            leg.result = Some(GroupReport {
                result: result.clone(),
                members: Vec::new(),
            });
        }
        if let Some((_, pids)) = call.leg_participants.iter().find(|(g, _)| *g == group) {
            call.left.extend(pids.iter().copied());
        }
        self.unwatch_leg(&server, no, i);
        self.update_route(no, false);
        self.group_lost(time, no, result, rng)
    }

    /// Starts watching leg `i` of call `no` at `server`.
    fn watch_leg(&mut self, server: &str, no: CallNo, i: usize, now: Instant) {
        if self.config.keepalive_interval.is_zero() {
            return;
        }
        let w = self
            .watch
            .entry(server.to_owned())
            .or_insert_with(|| ServerWatch {
                legs: BTreeSet::new(),
                last_heard: now,
                cursor: None,
            });
        w.legs.insert((no, i));
        if self.keepalive_slot.is_none() {
            let at = now + self.config.keepalive_interval;
            self.keepalive_slot = Some(self.agenda.insert(at, (KEEPALIVE, Timer::Keepalive)));
        }
    }

    fn unwatch_leg(&mut self, server: &str, no: CallNo, i: usize) {
        if let Some(w) = self.watch.get_mut(server) {
            w.legs.remove(&(no, i));
            if w.legs.is_empty() {
                self.watch.remove(server);
            }
        }
    }

    /// The keep-alive round: an MC server silent for `leg_silence` loses
    /// every leg; every other one gets an in-dialog OPTIONS on its next
    /// leg in turn (one probe per server per interval, however many calls
    /// it serves).
    fn keepalive(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let servers: Vec<String> = self.watch.keys().cloned().collect();
        for server in servers {
            let Some(w) = self.watch.get_mut(&server) else {
                continue;
            };
            if time.instant.saturating_duration_since(w.last_heard) >= self.config.leg_silence {
                let legs: Vec<_> = w.legs.iter().copied().collect();
                for (no, i) in legs {
                    self.lose_leg(time, no, i, LegLoss::Silent, rng)?;
                }
                continue;
            }
            let next = match w.cursor {
                Some(c) => w
                    .legs
                    .range((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                    .next(),
                None => None,
            }
            .or_else(|| w.legs.first())
            .copied();
            if let Some((no, i)) = next {
                w.cursor = Some((no, i));
                self.probe(&server, no, i, rng)?;
            }
        }
        if !self.watch.is_empty() {
            let at = time.instant + self.config.keepalive_interval;
            self.keepalive_slot = Some(self.agenda.insert(at, (KEEPALIVE, Timer::Keepalive)));
        }
        Ok(())
    }

    /// Sends an in-dialog OPTIONS on leg `i` of call `no`.
    fn probe(
        &mut self,
        server: &str,
        no: CallNo,
        i: usize,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let host = sip::host_of(&self.config.uri);
        let Some(LegState::Joined(d)) = self
            .calls
            .get_mut(&no)
            .and_then(|c| c.legs.get_mut(i))
            .map(|l| &mut l.state)
        else {
            return Ok(());
        };
        let options = d.request_in_dialog(Method::Options, ("UDP", &host), sip::rand8(rng))?;
        self.ua.send_request(server, &options);
        Ok(())
    }

    /// An answer to a keep-alive OPTIONS. Anything the MC server itself
    /// says proves it alive; 481 means it no longer knows the leg (it
    /// restarted), and then its other legs are probed at once; a 408 or
    /// 503 that our own link made up (no body) means it is unreachable.
    fn on_keepalive_answer(
        &mut self,
        time: Time,
        resp: &Response,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let status = resp.status();
        if status.is_provisional() {
            return Ok(());
        }
        let cid = resp.call_id()?;
        let Some(&no) = self.by_call_id.get(cid) else {
            return Ok(());
        };
        let Some(i) = self.calls.get(&no).and_then(|c| c.leg_index(cid)) else {
            return Ok(());
        };
        let server = self.calls[&no].legs[i].server.clone();
        match status.0 {
            481 => {
                self.lose_leg(time, no, i, LegLoss::Forgotten, rng)?;
                if let Some(w) = self.watch.get_mut(&server) {
                    w.last_heard = time.instant;
                }
                let others: Vec<_> = self
                    .watch
                    .get(&server)
                    .map(|w| w.legs.iter().copied().collect())
                    .unwrap_or_default();
                for (no, i) in others {
                    self.probe(&server, no, i, rng)?;
                }
            }
            408 | 503 if resp.body().is_empty() => {
                let legs: Vec<_> = self
                    .watch
                    .get(&server)
                    .map(|w| w.legs.iter().copied().collect())
                    .unwrap_or_default();
                for (no, i) in legs {
                    self.lose_leg(time, no, i, LegLoss::Unreachable, rng)?;
                }
            }
            _ => {
                if let Some(w) = self.watch.get_mut(&server) {
                    w.last_heard = time.instant;
                }
            }
        }
        Ok(())
    }

    /// Tells the initiator in-call that a group left (INFO with the call
    /// result); ends the call if no group is left.
    fn group_lost(
        &mut self,
        time: Time,
        no: CallNo,
        result: GroupResult,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let Some(call) = self.calls.get_mut(&no) else {
            return Ok(());
        };
        let tg = call.temporary_group_id.clone();
        let to = call.initiator_addr.clone();
        if let Some(d) = call.initiator_dialog.as_mut() {
            let body = CallResult {
                groups: vec![GroupReport {
                    result: result.clone(),
                    members: Vec::new(),
                }],
            };
            self.ua.send_call_result_info(&to, d, &body, rng)?;
        }
        let none_left = !call
            .legs
            .iter()
            .any(|l| matches!(l.state, LegState::Joined(_) | LegState::Trying { .. }));
        self.timeline.push_back(timeline(
            &self.config.uri,
            9,
            time,
            format!("group {} lost; initiator told", result.group_id),
        ));
        self.events.push_back(ControllingEvent::GroupLost {
            temporary_group_id: tg,
            result,
        });
        if none_left {
            self.end_call(time, no, "every constituent group left", rng)?;
        }
        Ok(())
    }

    /// The initiator cancels its call request (RFC 3261 9.2): 200 to the
    /// CANCEL, 487 to the INVITE, the legs cancelled or ended.
    fn on_cancel(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let no = self.call_no_of(req);
        let pending = no.and_then(|no| {
            let c = self.calls.get(&no)?;
            (matches!(c.phase, Phase::SettingUp) && cancels(req, &c.invite))
                .then(|| (no, c.invite.clone(), c.initiator_addr.clone()))
        });
        let Some((no, invite, to)) = pending else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        self.ua
            .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)?;
        self.ua.respond(
            &to,
            &invite,
            StatusCode::REQUEST_TERMINATED,
            None,
            Answer::Empty,
            rng,
        )?;
        if let Some(c) = self.calls.get_mut(&no) {
            c.phase = Phase::Cancelled;
        }
        self.end_call(time, no, "the initiator cancelled", rng)
    }
}

/// Why a joined leg left its call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LegLoss {
    /// The MC server sent BYE.
    EndedByServer,
    /// The MC server answered a keep-alive with 481: it forgot the call.
    Forgotten,
    /// Our link could not reach the MC server with a keep-alive.
    Unreachable,
    /// The MC server answered nothing for `leg_silence`.
    Silent,
}

impl LegLoss {
    fn detail(self, server: &str, silence: Duration) -> String {
        match self {
            Self::EndedByServer => format!("{server} ended the group's leg"),
            Self::Forgotten => {
                format!("{server} no longer knows the call (481 to a keep-alive; it restarted?)")
            }
            Self::Unreachable => format!("{server} cannot be reached (keep-alive failed)"),
            Self::Silent => format!(
                "no answer from {server} for {} ms (keep-alive)",
                silence.as_millis()
            ),
        }
    }
}

/// The failure of a leg answered with a non-2xx and no call result.
fn leg_failure(server: &str, resp: &Response) -> GroupFailure {
    let status = resp.status();
    // 408 and 503 without a body are what the link synthesizes when the
    // MC server cannot be reached (Timer B, transport error).
    let cause = match status.0 {
        408 | 503 if resp.body().is_empty() => FailureCause::Unreachable,
        487 => FailureCause::Timeout,
        _ => FailureCause::Refused,
    };
    GroupFailure {
        cause,
        status: Some(status.0),
        member: None,
        detail: format!("{server}: {} {}", status.0, resp.reason()),
    }
}

/// A temporary group formed on demand (TS 23.280 10.2.4 group regroup:
/// the GMS tells the controlling server of a group it formed, and of its
/// tear-down).
struct OnDemandGroup {
    group: TemporaryGroup,
    /// Unix seconds after which it takes no new call (`None`: no limit).
    expires_unix: Option<u64>,
    /// Its removal was asked while its call was in progress: it goes when
    /// the call ends (it would anyway: an on-demand group serves one call).
    removal_asked: bool,
}

/// Why [`ControllingServer::add_temporary_group`] refused a group.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemporaryGroupError {
    /// A configured or on-demand temporary group already has this ID.
    #[error("temporary group {0} already exists")]
    Exists(String),
    /// The group names no constituent group.
    #[error("temporary group {0} has no constituent groups")]
    NoConstituents(String),
    /// A constituent group is named twice.
    #[error("temporary group {id}: constituent group {group} is named twice")]
    DuplicateConstituent {
        /// The temporary group.
        id: String,
        /// The repeated constituent group.
        group: String,
    },
    /// Its lifetime ended before it was added.
    #[error("temporary group {0} has already expired")]
    Expired(String),
}

/// What [`ControllingServer::remove_temporary_group`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The group is gone: no call of it may start.
    Removed,
    /// A call of the group is in progress: the group goes when it ends
    /// (the call is not cut).
    AfterCall,
    /// No on-demand group has this ID (never added, or already gone).
    Unknown,
}

impl ControllingServer {
    /// Takes a temporary group formed on demand (group regroup, TS 23.280
    /// 10.2.4: the GMS formed it from constituent groups at an authorised
    /// user's request). From now on calls to `group.id` are handled as to
    /// a configured temporary group, until one call of it ends, its
    /// removal ([`ControllingServer::remove_temporary_group`]) or
    /// `expires_unix` (no new call after it; checked when a call request
    /// arrives and whenever a group is added).
    ///
    /// # Errors
    /// [`TemporaryGroupError`]: an ID in use, no or repeated constituent
    /// groups, already expired at `time`.
    pub fn add_temporary_group(
        &mut self,
        group: TemporaryGroup,
        expires_unix: Option<u64>,
        time: Time,
    ) -> Result<(), TemporaryGroupError> {
        self.drop_expired(time.unix);
        let id = group.id.clone();
        if group.constituents.is_empty() {
            return Err(TemporaryGroupError::NoConstituents(id));
        }
        let mut seen = BTreeSet::new();
        for (g, _) in &group.constituents {
            if !seen.insert(g.as_str()) {
                return Err(TemporaryGroupError::DuplicateConstituent {
                    id,
                    group: g.clone(),
                });
            }
        }
        if expires_unix.is_some_and(|e| e <= time.unix) {
            return Err(TemporaryGroupError::Expired(id));
        }
        if self.on_demand.contains_key(&id)
            || self.config.temporary_groups.iter().any(|t| t.id == id)
        {
            return Err(TemporaryGroupError::Exists(id));
        }
        self.mc_servers
            .extend(group.constituents.iter().map(|(_, s)| s.clone()));
        self.on_demand.insert(
            id,
            OnDemandGroup {
                group,
                expires_unix,
                removal_asked: false,
            },
        );
        Ok(())
    }

    /// Tears down a temporary group formed on demand: at once if no call
    /// of it is in progress, else when that call ends (the call goes on).
    /// Configured temporary groups are not touched ([`Removal::Unknown`]).
    pub fn remove_temporary_group(&mut self, id: &str) -> Removal {
        let in_call = self.by_group.contains_key(id);
        match self.on_demand.get_mut(id) {
            None => Removal::Unknown,
            Some(g) if in_call => {
                g.removal_asked = true;
                Removal::AfterCall
            }
            Some(_) => {
                self.on_demand.remove(id);
                self.events
                    .push_back(ControllingEvent::TemporaryGroupDissolved {
                        temporary_group_id: id.to_owned(),
                        reason: "removed".into(),
                    });
                Removal::Removed
            }
        }
    }

    /// The IDs of the temporary groups formed on demand it holds (those
    /// whose call is in progress included).
    pub fn on_demand_groups(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.on_demand.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The temporary group a call request names: configured, or formed on
    /// demand and not expired at `now_unix` (an expired one without a
    /// call is dropped here).
    fn temporary_group(&mut self, id: &str, now_unix: u64) -> Option<TemporaryGroup> {
        if let Some(t) = self.config.temporary_groups.iter().find(|t| t.id == id) {
            return Some(t.clone());
        }
        let g = self.on_demand.get(id)?;
        if g.expires_unix.is_some_and(|e| e <= now_unix) && !self.by_group.contains_key(id) {
            self.dissolve(id, "lifetime ended");
            return None;
        }
        Some(g.group.clone())
    }

    /// A call of `id` ended: an on-demand group served its call and goes.
    fn dissolve_after_call(&mut self, id: &str) {
        let Some(g) = self.on_demand.get(id) else {
            return;
        };
        let reason = if g.removal_asked {
            "removal asked during its call"
        } else {
            "its call ended"
        };
        self.dissolve(id, reason);
    }

    fn dissolve(&mut self, id: &str, reason: &str) {
        if self.on_demand.remove(id).is_some() {
            self.events
                .push_back(ControllingEvent::TemporaryGroupDissolved {
                    temporary_group_id: id.to_owned(),
                    reason: reason.to_owned(),
                });
        }
    }

    /// Drops on-demand groups past their lifetime without a call, so that
    /// groups formed and never called do not pile up.
    fn drop_expired(&mut self, now_unix: u64) {
        let expired: Vec<String> = self
            .on_demand
            .iter()
            .filter(|(id, g)| {
                g.expires_unix.is_some_and(|e| e <= now_unix) && !self.by_group.contains_key(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.dissolve(&id, "lifetime ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uri: &str, leg: usize) -> FloorPeer {
        FloorPeer {
            uri: uri.to_owned(),
            to: format!("sip:mcs-{leg}@mcx.test"),
            ssrc: Some(u32::try_from(leg).unwrap_or(0)),
            leg: Some(leg),
        }
    }

    #[test]
    fn a_member_of_two_groups_is_one_participant_found_by_uri() {
        let mut p = Participants::default();
        // Two groups of 1,000 that share their last 100 members.
        let mut added = 0;
        for (leg, range) in [(0, 0..1000), (1, 900..1900)] {
            for i in range {
                let uri = format!("sip:member-{i}@mcx.test");
                if p.knows(&uri) {
                    continue;
                }
                let pid = p.add(peer(&uri, leg));
                assert_eq!(pid, added, "ids are positions, in order");
                added += 1;
            }
        }
        assert_eq!(added, 1900, "the 100 shared members once");
        assert_eq!(
            p.get(950).map(|f| f.leg),
            Some(Some(0)),
            "kept from its first group"
        );
        assert_eq!(
            p.get(1899).map(|f| f.uri.as_str()),
            Some("sip:member-1899@mcx.test")
        );
        assert!(!p.knows("sip:member-1900@mcx.test"));
        p.reset(10);
        assert!(!p.knows("sip:member-0@mcx.test"));
        assert!(p.get(0).is_none());
    }
}
