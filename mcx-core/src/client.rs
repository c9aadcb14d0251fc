//! The MC service client role: GMK reception, temporary group call start
//! (initiator, steps 1–2), call reception (receiver, steps 5–6), floor
//! participation (step 9), for several calls at once: a dispatcher runs
//! calls on several temporary groups, a member is in the calls of each
//! of its groups. Calls are named by their temporary group (one call per
//! temporary group at a time).
//!
//! Every wait is bounded: the initiator gives up on its call request
//! after [`ClientConfig::call_timeout`] (CANCEL, or abandon without a
//! provisional response), and a 2xx this client sent that is never ACKed
//! ends the call with BYE (RFC 3261 13.3.1.4).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcx_floor::{Participant, ParticipantConfig, ParticipantEvent, ParticipantState};
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_mikey::gmk::GmkReceiver;
use mcx_mikey::message::Sp;
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::tgmk::{ConstituentGroup, DecodedCopy, TgmkReceiver, TgmkWrap, VerifyingKeys};
use mcx_mikey::{KeyId, SrtpMasterKeys, Tgmk};
use mcx_sip::{Dialog, Limits, Message, Method, Request, Response, StatusCode};
use rand_core::CryptoRng;

use crate::controlling::GROUP_LOST_INFO_PACKAGE;
use crate::floor_guard::{FloorDrops, FloorGuard};
use crate::gmks::{GmkError, GmkInfo, GmkRing, MkiError, SenderKeys};
use crate::info::McpttInfo;
use crate::own_keys::OwnKeys;
use crate::registration::{Outcome, RegState, Registration};
use crate::result::{CALL_RESULT_CONTENT_TYPE, CallResult, GroupResult, MemberResult};
use crate::sdp::{Description, Direction, MediaEndpoint};
use crate::sip::{self, without_body};
use crate::ua::{Answer, GoneLegs, UserAgent, cancels};
use crate::{
    CallState, CallSummary, Channel, Error, Time, TimelineEntry, Transmit, rtcp_ssrc, timeline,
};

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
    /// How long the initiator waits for the final answer to its call
    /// request. Longer than the controlling server's group deadline, so
    /// that the initiator hears which groups failed and why.
    pub call_timeout: Duration,
    /// How long a 2xx this client sent may stay un-ACKed (64·T1).
    pub ack_wait: Duration,
    /// Most calls at once (as initiator and receiver); beyond, 486.
    pub max_calls: usize,
    /// Where this client takes voice and floor control (its driver's
    /// bound sockets), announced in its SDP.
    pub media: MediaEndpoint,
    /// Its home server (the MC server of its groups, its participating
    /// function), which [`Client::register`] registers with.
    pub home_server: Option<String>,
    /// The registration expiry asked for.
    pub registration_expiry: Duration,
    /// How many SSRCs the floor channel with the home server may track
    /// (in either direction) before the next registration refresh uploads
    /// a fresh CSK. Each call adds one SSRC each way, and a channel past
    /// its cap (100,000) refuses new ones; a fresh CSK is a fresh channel
    /// at both ends. Default: half the cap.
    pub floor_rekey_streams: usize,
    /// The servers that may invite this client into calls (the MC servers
    /// of its groups); a new call request from anyone else is refused
    /// with 403 before its wrapped TGMK is looked at. Empty: anyone. The
    /// driver should enforce the same by source address (mcx-net's
    /// `invite_sources`), as the name here is the sender's own claim.
    pub call_sources: Vec<String>,
    /// How long a call this client starts may last: the wrapped TGMK's
    /// signed expiry is its T plus this, so late joiners accept it for the
    /// whole call and refuse its replays as long. Match the servers'
    /// maximum call duration.
    pub call_lifetime: Duration,
}

impl ClientConfig {
    /// Default initiator wait.
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default ACK wait.
    pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(32);
    /// Default most calls at once.
    pub const DEFAULT_MAX_CALLS: usize = 8;
    /// Default [`ClientConfig::floor_rekey_streams`]: half the floor
    /// channel's cap.
    pub const DEFAULT_FLOOR_REKEY_STREAMS: usize = crate::floor_guard::MAX_FLOOR_STREAMS / 2;
    /// Default registration expiry (refreshed at 80 %).
    pub const DEFAULT_REGISTRATION_EXPIRY: Duration = Duration::from_secs(600);
    /// Default call lifetime (the MC server's default maximum call
    /// duration).
    pub const DEFAULT_CALL_LIFETIME: Duration = Duration::from_secs(3600);

    /// A configuration with the default waits and limits.
    pub fn new(
        uri: impl Into<String>,
        controlling_server: impl Into<String>,
        gms_uri: impl Into<String>,
        allowed_initiators: Vec<String>,
    ) -> Self {
        Self {
            uri: uri.into(),
            controlling_server: controlling_server.into(),
            gms_uri: gms_uri.into(),
            allowed_initiators,
            call_timeout: Self::DEFAULT_CALL_TIMEOUT,
            media: MediaEndpoint::UNBOUND,
            home_server: None,
            registration_expiry: Self::DEFAULT_REGISTRATION_EXPIRY,
            floor_rekey_streams: Self::DEFAULT_FLOOR_REKEY_STREAMS,
            call_lifetime: Self::DEFAULT_CALL_LIFETIME,
            call_sources: Vec::new(),
            ack_wait: Self::DEFAULT_ACK_WAIT,
            max_calls: Self::DEFAULT_MAX_CALLS,
        }
    }
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

impl KeyConfirmation {
    /// The confirmation of `tgmk`, named by `tgmk_id`.
    fn of(tgmk: &Tgmk, tgmk_id: KeyId) -> Self {
        Self {
            tgmk_id,
            value: mcx_mikey::kdf::hmac_sha256(tgmk.as_bytes(), b"confirm"),
        }
    }
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
    /// A call request was refused because the GMK its wrapped TGMK names
    /// is not one of the group's GMKs in force (expired, not yet active,
    /// unknown: e.g. a GMK rolled after this client left the group). A
    /// 488 answers the request.
    GmkRefused {
        /// Why.
        error: GmkError,
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
        /// The TGMK's key confirmation, as [`Client::tgmk_confirmation`]
        /// gives it while the call lasts: carried here so that a call that
        /// ends before the application asks still shows which key it had.
        confirmation: KeyConfirmation,
    },
    /// The home server registered us (RFC 3261 10.3), for `expires`.
    Registered {
        /// The home server.
        server: String,
        /// How long the registration holds (refreshed before).
        expires: Duration,
    },
    /// Our withdrawal of the registration was answered.
    Deregistered {
        /// The home server.
        server: String,
    },
    /// The registration was refused or the home server unreachable;
    /// retried after `retry_in`.
    RegistrationFailed {
        /// The home server.
        server: String,
        /// Its status (408/503 when unreachable).
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// When the next attempt goes.
        retry_in: Duration,
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
        /// Acceptance per constituent group (failed ones with `failure`).
        groups: Vec<GroupResult>,
    },
    /// The call this client initiated was refused, failed or timed out.
    CallFailed {
        /// The temporary group.
        temporary_group_id: String,
        /// The final status (408 when this client gave up waiting).
        status: u16,
        /// Its reason phrase.
        reason: String,
        /// Per-group results, when the answer carried them.
        groups: Vec<GroupResult>,
    },
    /// A constituent group left an established call (the controlling
    /// server's in-dialog INFO).
    GroupLost {
        /// The temporary group.
        temporary_group_id: String,
        /// The group, with `failure` set.
        result: GroupResult,
    },
    /// A constituent group's counts changed during the call (the
    /// controlling server's in-dialog INFO): members of an MC server that
    /// answered at once (`P-Answer-State: Unconfirmed`) joined or did not,
    /// or a member joined late.
    GroupUpdated {
        /// The temporary group.
        temporary_group_id: String,
        /// The group's counts now (no `failure`).
        result: GroupResult,
        /// The members this update names that did not join.
        members: Vec<MemberResult>,
    },
    /// A floor control event of a call.
    Floor {
        /// The temporary group.
        temporary_group_id: String,
        /// The event.
        event: ParticipantEvent,
    },
    /// A call ended (BYE received or sent, or the call was given up).
    CallEnded {
        /// The temporary group.
        temporary_group_id: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CallRole {
    Initiator,
    Receiver,
}

struct Call {
    role: CallRole,
    /// Our INVITE (initiator) or the received one (receiver), body-less.
    invite: Request,
    /// Where the call's SIP messages go (controlling or MC server).
    peer: String,
    tgmk: Tgmk,
    tgmk_id: KeyId,
    rand: Vec<u8>,
    dialog: Option<Dialog>,
    /// A provisional answer came (initiator: CANCEL allowed).
    provisional: bool,
    /// Until when the initiator waits for the final answer, or the
    /// receiver for the ACK of its 2xx.
    deadline: Option<Instant>,
    floor: Participant,
    /// The floor control server's SSRC in this call (from its SDP).
    server_ssrc: Option<u32>,
    /// Our floor-control SSRC in this call.
    floor_ssrc: u32,
    /// The voice stream's SSRC: ours (initiator) or the sender's as the
    /// offer announced it (receiver; `None` if it announced none).
    voice_ssrc: Option<u32>,
    /// Initiator: where to send voice (the controlling server's relay,
    /// from its answer).
    voice_to: Option<SocketAddr>,
    /// When the call was asked for or offered.
    started: Instant,
    /// The initiator (receiver: as the request named it) and the
    /// constituent group it came through (receiver only).
    initiator: String,
    group_id: Option<String>,
}

/// What a client's driver does with a call's voice: send it (the
/// initiator, once granted the floor) or receive it, as SRTP under the
/// call's keys (SPEC section 6: every party derives the same keys from
/// the TGMK).
#[derive(Clone, Debug)]
pub struct Voice {
    /// True for the initiator (the only sender of a broadcast call).
    pub sending: bool,
    /// The stream's SSRC: the one to send with, or the one expected
    /// (`None`: the sender announced none).
    pub ssrc: Option<u32>,
    /// Where to send (the initiator, once the answer came); `None` for a
    /// receiver, whose voice arrives from its MC server's relay.
    pub to: Option<SocketAddr>,
    /// SRTP master key, salt and MKI.
    pub keys: SrtpMasterKeys,
}

/// An MC service client (sans-IO).
///
/// Inputs: [`Client::accept_gmk`] (GMK I_MESSAGEs from the GMS),
/// [`Client::start_call`], [`Client::hang_up`], [`Client::request_floor`],
/// [`Client::release_floor`], [`Client::handle`] (datagrams),
/// [`Client::handle_timeout`], [`Client::shutdown`]. Outputs:
/// [`Client::poll_transmit`], [`Client::poll_timeout`],
/// [`Client::poll_event`], [`Client::poll_timeline`].
pub struct Client {
    config: ClientConfig,
    ua: UserAgent,
    kms: CommunityPublic,
    /// Our KMS keys, per key period.
    own_keys: OwnKeys,
    gmks: GmkRing,
    replay: ReplayCache,
    /// The initiators' ECCSI verifying keys, built on their first call
    /// request (each later one costs a third of a verification).
    verifiers: VerifyingKeys,
    /// The registration with the home server, once asked for.
    registration: Option<Registration>,
    /// The IdMS access token REGISTERs carry (RFC 8898 Bearer), if any.
    access_token: Option<zeroize::Zeroizing<String>>,
    /// The floor-control keys of the CSK uploaded in the REGISTER being
    /// answered; they protect floor control once the home server took it.
    pending_floor: Option<FloorGuard>,
    /// Floor control with the home server, under the CSK (TS 24.380 13).
    floor_guard: Option<FloorGuard>,
    floor_drops: FloorDrops,
    /// Calls by temporary group.
    calls: BTreeMap<String, Call>,
    /// Floor packets whose call is not known yet (a Floor Granted that
    /// overtook the 200 OK), kept briefly.
    early_floor: VecDeque<(Instant, String, Vec<u8>)>,
    /// Call requests given up on, for a late 2xx (ACK and BYE it).
    gone: GoneLegs,
    events: VecDeque<ClientEvent>,
    timeline: VecDeque<TimelineEntry>,
}

/// Early floor packets kept at most, and for how long.
const EARLY_FLOOR_MAX: usize = 32;
const EARLY_FLOOR_KEEP: Duration = Duration::from_secs(5);
/// Reason of the 486 to a second request for a call we are already in.
const ALREADY_IN_CALL: &str = "Busy Here - already in this temporary group's call";

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("uri", &self.config.uri)
            .field("groups", &self.gmks.groups())
            .field("calls", &self.calls.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn nonzero_ssrc(rng: &mut impl CryptoRng) -> u32 {
    loop {
        let s = rng.next_u32();
        if s != 0 {
            return s;
        }
    }
}

impl Client {
    /// A client with its KMS user keys for one key period (validated here
    /// against the community) and the community's public values. Add the
    /// keys of later periods with [`Client::add_user_keys`].
    ///
    /// # Errors
    /// [`Error::ForeignKeys`] if the keys are not for `config.uri` (user
    /// URI, UID of their period); [`Error::Ibc`] if the SSK/PVT or RSK
    /// were not issued by this KMS for their UID.
    pub fn new(config: ClientConfig, kms: CommunityPublic, keys: UserKeys) -> Result<Self, Error> {
        let own_keys = OwnKeys::new(&kms, &config.uri, keys)?;
        Ok(Self::with_keys(config, kms, own_keys, VerifyingKeys::new()))
    }

    /// A receive-only client: no KMS user keys of its own (it cannot start
    /// calls, register or take GMK I_MESSAGEs), its groups' GMKs installed
    /// with [`Client::install_gmk`]. It answers call requests with every
    /// check a member makes (authorisation, the initiator's signature,
    /// the unwrap). `verifiers` may hold initiators' verifying keys
    /// already (cloning shares their tables). For load generation
    /// (`mcx bench call`), where provisioning ten thousand members over
    /// SAKKE is not what is measured.
    #[must_use]
    pub fn receive_only(
        config: ClientConfig,
        kms: CommunityPublic,
        verifiers: VerifyingKeys,
    ) -> Self {
        Self::with_keys(config, kms, OwnKeys::default(), verifiers)
    }

    fn with_keys(
        config: ClientConfig,
        kms: CommunityPublic,
        own_keys: OwnKeys,
        verifiers: VerifyingKeys,
    ) -> Self {
        Self {
            ua: UserAgent::new(&config.uri),
            config,
            kms,
            own_keys,
            gmks: GmkRing::default(),
            replay: ReplayCache::default(),
            verifiers,
            registration: None,
            access_token: None,
            pending_floor: None,
            floor_guard: None,
            floor_drops: FloorDrops::default(),
            calls: BTreeMap::new(),
            early_floor: VecDeque::new(),
            gone: GoneLegs::default(),
            events: VecDeque::new(),
            timeline: VecDeque::new(),
        }
    }

    /// Adds our KMS keys for another key period (the next one, fetched
    /// before it starts: [`Client::next_key_refresh`]), checked as in
    /// [`Client::new`]. The keys of the newest [`crate::MAX_KEY_PERIODS`]
    /// periods are kept: around a boundary both the ending and the
    /// starting period's. We sign with the keys of the period of the time
    /// stamp (call start, registration) and decrypt GMK messages with those
    /// of the message's period. Returns the period.
    ///
    /// # Errors
    /// As [`Client::new`].
    pub fn add_user_keys(&mut self, keys: UserKeys) -> Result<u64, Error> {
        self.own_keys.add(&self.kms, &self.config.uri, keys)
    }

    /// The KMS community's public values this client trusts.
    pub fn community(&self) -> &CommunityPublic {
        &self.kms
    }

    /// The key periods we hold keys for, oldest first.
    pub fn key_periods(&self) -> Vec<u64> {
        self.own_keys.periods()
    }

    /// When to fetch our keys for the key period after the newest held,
    /// and when that period starts (Unix seconds): `lead` before it
    /// starts. The driver asks the KMS for the keys of the period
    /// containing the start (`mcx_kms::client::key_prov_request_at`) and
    /// hands them to [`Client::add_user_keys`].
    pub fn next_key_refresh(&self, lead: Duration) -> Option<(u64, u64)> {
        self.own_keys.next_refresh(&self.kms, lead.as_secs())
    }

    /// The MC service ID.
    pub fn uri(&self) -> &str {
        &self.config.uri
    }

    /// The top Via its driver's SIP link sends with (transport token and
    /// socket address, RFC 3261 18.1.1): the role writes its requests
    /// with it, so that the link need not rewrite them.
    pub fn set_sent_by(&mut self, transport: mcx_sip::Transport, sent_by: &str) {
        self.ua.set_via(transport, sent_by);
    }

    /// Whether this client holds a GMK for `group_id` (in force or to
    /// come).
    pub fn has_gmk(&self, group_id: &str) -> bool {
        self.gmks.has(group_id)
    }

    /// The GMKs of `group_id` held, by activation time (no key material).
    pub fn gmks(&self, group_id: &str) -> Vec<GmkInfo> {
        self.gmks.infos(group_id)
    }

    /// The groups this client holds GMKs for.
    pub fn gmk_groups(&self) -> Vec<String> {
        self.gmks.groups().into_iter().map(str::to_owned).collect()
    }

    /// Drops every GMK of `group_id`: the GMS no longer lists the group
    /// for this user (it was removed). Calls of the group are refused
    /// from now on.
    pub fn forget_group(&mut self, group_id: &str) {
        self.gmks.forget(group_id);
    }

    /// The GMK-ID a call started at `time` would wrap under for
    /// `group_id`: of its GMKs in force, the latest activated.
    ///
    /// # Errors
    /// [`GmkError`] if none is in force.
    pub fn sending_gmk_id(&self, time: Time, group_id: &str) -> Result<KeyId, GmkError> {
        Ok(self.gmks.for_sending(group_id, time.unix)?.info.gmk_id)
    }

    /// The SRTP master key, salt and MKI this client sends media of
    /// `group_id` with at `time` under the group's GMK (TS 33.180 7.4.2):
    /// the GMK in force with the latest activation, CSB ID = this user's
    /// GUK-ID, the RAND the GMK came with; MKI = GMK-ID || GUK-ID.
    ///
    /// # Errors
    /// [`GmkError`] if no GMK of the group is in force.
    pub fn group_sending_keys(
        &self,
        time: Time,
        group_id: &str,
    ) -> Result<SrtpMasterKeys, GmkError> {
        self.group_sender_keys(time, group_id, &self.config.uri)
    }

    /// The keys `sender` (a member's MC service ID) sends media of
    /// `group_id` with at `time`, as [`Client::group_sending_keys`] gives
    /// them to that member: same GMK (in force, latest activation) and
    /// RAND, CSB ID = the sender's GUK-ID. For a receiver that knows who
    /// talks; one that knows only the packets uses
    /// [`Client::group_receive_keys`].
    ///
    /// # Errors
    /// [`GmkError`] if no GMK of the group is in force.
    pub fn group_sender_keys(
        &self,
        time: Time,
        group_id: &str,
        sender: &str,
    ) -> Result<SrtpMasterKeys, GmkError> {
        let held = self.gmks.for_sending(group_id, time.unix)?;
        Ok(held.keys_of(sender))
    }

    /// The keys of the media a group member sends with `mki` (TS 33.180
    /// 7.4.2: media keys are per sender; the MKI names the GMK-ID and the
    /// sender's GUK-ID): the held GMK with that GMK-ID, in force at
    /// `time`, and the sender's keys derived from it, the GUK-ID and the
    /// GMK's RAND. Which user the GUK-ID belongs to is not checked here
    /// (the GUK-ID of a member URI is `mcx_mikey::kdf::guk_id`).
    ///
    /// # Errors
    /// [`MkiError::Length`] / [`MkiError::NotGmk`] for an MKI that is not
    /// GMK-ID || GUK-ID, [`MkiError::UnknownGmk`] if no such GMK is held,
    /// [`MkiError::NotInForce`] if it expired or is not active yet.
    pub fn group_receive_keys(&self, time: Time, mki: &[u8]) -> Result<SenderKeys, MkiError> {
        self.gmks.for_mki(mki, time.unix)
    }

    /// The groups whose next GMK should be fetched at `time`: every GMK
    /// held for them expires within `lead` (the driver fetches their
    /// group documents; see [`Client::next_gmk_refresh`]).
    pub fn gmk_refresh_due(&self, time: Time, lead: Duration) -> Vec<String> {
        let lead = lead.as_secs();
        self.gmks
            .groups()
            .into_iter()
            .filter(|g| {
                self.gmks
                    .refresh_at(g, lead)
                    .is_some_and(|t| t <= time.unix)
            })
            .map(str::to_owned)
            .collect()
    }

    /// The earliest Unix time at which [`Client::gmk_refresh_due`] names a
    /// group (`None`: no held GMK expires).
    pub fn next_gmk_refresh(&self, lead: Duration) -> Option<u64> {
        let lead = lead.as_secs();
        self.gmks
            .groups()
            .into_iter()
            .filter_map(|g| self.gmks.refresh_at(g, lead))
            .min()
    }

    /// Whether a call of `temporary_group_id` is in progress.
    pub fn in_call(&self, temporary_group_id: &str) -> bool {
        self.calls.contains_key(temporary_group_id)
    }

    /// The temporary groups of the calls in progress.
    pub fn calls(&self) -> Vec<String> {
        self.calls.keys().cloned().collect()
    }

    /// Every call in progress, for operators (`mcx calls`).
    #[must_use]
    pub fn call_summaries(&self) -> Vec<CallSummary> {
        self.calls
            .iter()
            .map(|(tg, c)| CallSummary {
                call_id: c.invite.call_id().unwrap_or_default().to_owned(),
                temporary_group_id: tg.clone(),
                group_id: c.group_id.clone(),
                initiator: c.initiator.clone(),
                state: if c.dialog.is_some() {
                    CallState::Established
                } else {
                    CallState::SettingUp
                },
                joined: usize::from(c.dialog.is_some()),
                started: c.started,
            })
            .collect()
    }

    /// Leaves or ends the call whose INVITE had `call_id`, as
    /// [`Client::hang_up`] does. Returns whether there was such a call.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a request cannot be built.
    pub fn end_call_by_id(
        &mut self,
        time: Time,
        call_id: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<bool, Error> {
        let Some(tg) = self
            .calls
            .iter()
            .find(|(_, c)| c.invite.call_id().is_ok_and(|id| id == call_id))
            .map(|(tg, _)| tg.clone())
        else {
            return Ok(false);
        };
        self.hang_up(time, &tg, rng)?;
        Ok(true)
    }

    /// The TGMK-ID and HMAC-SHA-256(TGMK, "confirm") of a call.
    pub fn tgmk_confirmation(&self, temporary_group_id: &str) -> Option<KeyConfirmation> {
        self.calls
            .get(temporary_group_id)
            .map(|c| KeyConfirmation::of(&c.tgmk, c.tgmk_id))
    }

    /// The SRTP master key, salt and MKI of a call (SPEC section 6), for
    /// `mcx-srtp`.
    pub fn media_keys(&self, temporary_group_id: &str) -> Option<SrtpMasterKeys> {
        self.calls
            .get(temporary_group_id)
            .map(|c| mcx_mikey::tgmk::srtp_keys(&c.tgmk, c.tgmk_id, &c.rand))
    }

    /// What to do with a call's voice, once there is a call.
    pub fn voice(&self, temporary_group_id: &str) -> Option<Voice> {
        let c = self.calls.get(temporary_group_id)?;
        Some(Voice {
            sending: c.role == CallRole::Initiator,
            ssrc: c.voice_ssrc,
            to: c.voice_to,
            keys: mcx_mikey::tgmk::srtp_keys(&c.tgmk, c.tgmk_id, &c.rand),
        })
    }

    /// Floor packets dropped: failed authentication under the CSK,
    /// replays, from anyone but the call's floor server.
    pub fn floor_drops(&self) -> FloorDrops {
        self.floor_drops
    }

    /// Whether floor control is protected (the home server took our CSK).
    pub fn floor_protected(&self) -> bool {
        self.floor_guard.is_some()
    }

    /// The most SSRCs the floor channel with the home server tracks in
    /// one direction (0 without one): what
    /// [`ClientConfig::floor_rekey_streams`] is compared with.
    pub fn floor_streams(&self) -> usize {
        self.floor_guard
            .as_ref()
            .map_or(0, FloorGuard::most_streams)
    }

    /// The floor participant state of a call.
    pub fn floor_state(&self, temporary_group_id: &str) -> Option<ParticipantState> {
        self.calls.get(temporary_group_id).map(|c| c.floor.state())
    }

    /// Installs a GMK provisioned out of band (not from a GMS I_MESSAGE,
    /// whose checks [`Client::accept_gmk`] makes): the caller vouches for
    /// it. Held like an accepted one. For load generation and tests.
    pub fn install_gmk(
        &mut self,
        time: Time,
        group_id: &str,
        gmk: mcx_mikey::Gmk,
        rand: Vec<u8>,
        info: GmkInfo,
    ) {
        self.gmks.insert(group_id, gmk, rand, info, time.unix);
    }

    /// Accepts a GMK I_MESSAGE from the GMS for `group_id` (TS 33.180
    /// 5.7) after every check of [`GmkReceiver::accept_for_group`] (its
    /// key parameters must name `group_id`, and it must not have
    /// expired), and holds it beside the group's other GMKs with its
    /// activation and expiry time (at most
    /// [`crate::MAX_GMKS_PER_GROUP`]; expired ones are dropped). The same
    /// GMK-ID again replaces the one held.
    ///
    /// # Errors
    /// [`Error::Mikey`] with the failed check.
    pub fn accept_gmk(
        &mut self,
        time: Time,
        group_id: &str,
        message: &[u8],
    ) -> Result<KeyId, Error> {
        // The GMS encrypts to our UID of the period of its time stamp:
        // try the period of now, then the message's if we hold it (a
        // message sent just before a boundary, received after).
        let first = self.own_keys.period_for(&self.kms, time.unix);
        let received = match self.accept_gmk_in(first, time, group_id, message) {
            Err(Error::Mikey(mcx_mikey::Error::Rejected(
                mcx_mikey::Rejection::KeyPeriodMismatch { message: p, .. },
            ))) if p != first && self.own_keys.get(p).is_some() => {
                self.accept_gmk_in(p, time, group_id, message)
            }
            other => other,
        }?;
        let gmk_id = received.gmk_id;
        let info = GmkInfo {
            gmk_id,
            activation: received.activation(),
            expiry: received.expiry(),
        };
        self.gmks
            .insert(group_id, received.gmk, received.rand, info, time.unix);
        self.events.push_back(ClientEvent::GmkAccepted {
            group_id: group_id.to_owned(),
            gmk_id,
        });
        Ok(gmk_id)
    }

    fn accept_gmk_in(
        &mut self,
        period: u64,
        time: Time,
        group_id: &str,
        message: &[u8],
    ) -> Result<mcx_mikey::gmk::ReceivedGmk, Error> {
        let keys = self
            .own_keys
            .get(period)
            .ok_or(Error::NoKeysForPeriod(period))?;
        Ok(GmkReceiver {
            own_uri: &self.config.uri,
            own_key: &keys.receiver,
            key_period_no: period,
            kms: &self.kms,
            gms_uri: &self.config.gms_uri,
        }
        .accept_for_group(group_id, message, time.unix, &mut self.replay)?)
    }

    /// Starts a temporary group – broadcast group call to the constituent
    /// `groups` (steps 1 and 2): generates the TGMK, wraps it under each
    /// group's GMK, signs each copy and sends one INVITE to the
    /// controlling server.
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] if a call of this temporary group is in
    /// progress, [`Error::Limit`] at [`ClientConfig::max_calls`],
    /// [`Error::Gmk`] for a group without a GMK in force at `time` (each
    /// group's copy is wrapped under its GMK in force with the latest
    /// activation), [`Error::Mikey`] or [`Error::SipBuild`].
    pub fn start_call(
        &mut self,
        time: Time,
        temporary_group_id: &str,
        groups: &[&str],
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        if self.calls.contains_key(temporary_group_id) {
            return Err(Error::InvalidCommand(
                "start_call: a call of this temporary group is in progress",
            ));
        }
        if self.calls.len() >= self.config.max_calls {
            return Err(Error::Limit("concurrent calls of this client"));
        }
        // Our keys for the period of the call's time stamp sign it.
        self.own_keys.at(&self.kms, time.unix)?;
        self.gmks.prune(time.unix);
        let mut constituents = Vec::with_capacity(groups.len());
        for g in groups {
            let k = self.gmks.for_sending(g, time.unix)?;
            constituents.push(ConstituentGroup {
                group_id: &k.group_id,
                gmk: &k.gmk,
                gmk_id: k.info.gmk_id,
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
            expiry: time
                .unix
                .saturating_add(self.config.call_lifetime.as_secs()),
            t_unix: time.unix,
            policy: Sp::default_group_profile(),
        }
        .wrap(
            &constituents,
            &self.own_keys.at(&self.kms, time.unix)?.signer,
            rng,
        )?;
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
        let floor_ssrc = nonzero_ssrc(rng);
        let voice_ssrc = nonzero_ssrc(rng);
        let media = self.config.media;
        let sdp = Description {
            user: &uri,
            session_id: u64::from(rng.next_u32()),
            audio: media.rtp(),
            direction: Direction::SendOnly,
            media_ssrc: Some(voice_ssrc),
            floor: Some(media.floor()),
            floor_ssrc: Some(floor_ssrc),
            // The INVITE is the floor request (TS 24.380 6.2.4.2).
            fmtp: "mc_implicit_request",
        }
        .write();
        let mut body = sip::call_body(sdp, &info, &parts, rng);
        // We take in-call group-loss reports (RFC 6086 Recv-Info).
        let extra = [
            ("Recv-Info", GROUP_LOST_INFO_PACKAGE.to_owned()),
            sip::preferred_service(),
        ];
        let invite = sip::invite(
            &uri,
            &uri,
            temporary_group_id,
            temporary_group_id,
            &mut body,
            &extra,
            rng,
        )?;
        let mut floor_cfg = ParticipantConfig::new(floor_ssrc, uri.clone());
        floor_cfg.priority(7);
        let mut floor = Participant::new(floor_cfg)?;
        // The INVITE carries the implicit floor request (TS 24.380 6.2.4.2):
        // 'U: pending Request' now, so a Floor Granted that overtakes the
        // 200 OK (floor and SIP travel on different sockets) is taken.
        floor.start(time.instant, true)?;
        let peer = self.config.controlling_server.clone();
        self.ua.send_request(&peer, &invite);
        self.timeline.push_back(timeline(
            &uri,
            2,
            time,
            format!(
                "INVITE {temporary_group_id} to {peer} with {} wrapped TGMK copies",
                wraps.len()
            ),
        ));
        self.calls.insert(
            temporary_group_id.to_owned(),
            Call {
                role: CallRole::Initiator,
                invite: without_body(&invite),
                peer,
                tgmk,
                tgmk_id,
                rand,
                dialog: None,
                provisional: false,
                deadline: Some(time.instant + self.config.call_timeout),
                floor,
                server_ssrc: None,
                floor_ssrc,
                voice_ssrc: Some(voice_ssrc),
                voice_to: None,
                started: time.instant,
                initiator: uri.clone(),
                group_id: None,
            },
        );
        Ok(())
    }

    /// Leaves or ends a call: BYE once in a dialog; as the initiator
    /// before the answer, CANCEL (or abandon, without a provisional
    /// response). The call's record goes at once.
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] if there is no such call.
    pub fn hang_up(
        &mut self,
        time: Time,
        temporary_group_id: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        self.leave(time, temporary_group_id, None, rng)
    }

    /// [`Client::hang_up`], reporting `failure` (if any) before `CallEnded`.
    fn leave(
        &mut self,
        time: Time,
        temporary_group_id: &str,
        failure: Option<ClientEvent>,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let mut call = self
            .calls
            .remove(temporary_group_id)
            .ok_or(Error::InvalidCommand("hang_up: no such call"))?;
        if let Some(d) = call.dialog.as_mut() {
            self.ua.bye(&call.peer, d, rng)?;
        } else if call.role == CallRole::Initiator {
            if call.provisional {
                self.ua.cancel(&call.peer, &call.invite)?;
            }
            if let Ok(c) = call.invite.call_id() {
                self.gone
                    .remember(c, call.peer.clone(), call.invite.clone(), time.instant);
            }
        }
        call.floor.leave();
        self.timeline.push_back(timeline(
            &self.config.uri,
            9,
            time,
            format!("hung up {temporary_group_id}"),
        ));
        self.events.extend(failure);
        self.events.push_back(ClientEvent::CallEnded {
            temporary_group_id: temporary_group_id.to_owned(),
        });
        Ok(())
    }

    /// Hangs up every call (orderly stop).
    ///
    /// # Errors
    /// As [`Client::hang_up`].
    pub fn shutdown(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        for tg in self.calls() {
            self.hang_up(time, &tg, rng)?;
        }
        // Withdraw the registration: the home server stops inviting us.
        if self
            .registration
            .as_ref()
            .is_some_and(|r| matches!(r.state, RegState::Registered { .. }))
        {
            self.deregister(rng)?;
        }
        Ok(())
    }

    /// Registers with the home server (and keeps the registration
    /// refreshed): it then invites us into calls of our groups, including
    /// those already going on (late entry).
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] without a `home_server`.
    pub fn register(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let server = self
            .config
            .home_server
            .clone()
            .ok_or(Error::InvalidCommand("register: no home server configured"))?;
        let expiry = self.config.registration_expiry;
        let uri = self.config.uri.clone();
        let r = self
            .registration
            .get_or_insert_with(|| Registration::new(&server, &uri, expiry, rng));
        let refresh = matches!(r.state, RegState::Registered { until } if until > time.instant);
        let mut req = r.request(expiry, rng)?;
        authorize(&mut req, self.access_token.as_deref())?;
        // A floor channel that has tracked many SSRCs (one more each way
        // per call) is rekeyed before its cap is reached.
        let worn = self
            .floor_guard
            .as_ref()
            .is_some_and(|g| g.most_streams() >= self.config.floor_rekey_streams);
        if !refresh || worn {
            // A new binding uploads a fresh CSK for floor control (TS
            // 33.180 5.4, E.4): SAKKE-encrypted to the home server's
            // identity, signed by us. A refresh keeps the one it holds,
            // unless its channel is worn.
            let (csk, csk_id) = mcx_mikey::csk::generate(rng);
            let random = mcx_mikey::csk::CskMessageRandom::generate(rng);
            let message = mcx_mikey::csk::CskMessage {
                client_uri: &uri,
                server_uri: &server,
                kms: &self.kms,
                csk: &csk,
                csk_id,
                key_params: None,
                policy: None,
                identity_hiding: false,
                t_unix: time.unix,
                key_params_date_time: None,
            }
            .sign_with(
                &self.own_keys.at(&self.kms, time.unix)?.signer,
                &random,
                rng,
            )?;
            req.set_body(Some(crate::MIKEY_CONTENT_TYPE), bytes::Bytes::from(message))?;
            let keys = mcx_mikey::csk::csk_srtcp_keys(&csk, csk_id, &random.rand);
            self.pending_floor = Some(FloorGuard::new(&keys)?);
        }
        self.ua.send_request(&server, &req);
        self.timeline
            .push_back(timeline(&uri, 0, time, format!("REGISTER to {server}")));
        Ok(())
    }

    /// Withdraws the registration (`Expires: 0`): the home server stops
    /// inviting us until we register again.
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] if we never registered.
    pub fn deregister(&mut self, rng: &mut impl CryptoRng) -> Result<(), Error> {
        let r = self
            .registration
            .as_mut()
            .ok_or(Error::InvalidCommand("deregister: not registered"))?;
        let mut req = r.request(Duration::ZERO, rng)?;
        let to = r.server.clone();
        authorize(&mut req, self.access_token.as_deref())?;
        self.ua.send_request(&to, &req);
        Ok(())
    }

    /// The access token (from the IdMS, TS 33.180 B.4) that REGISTERs carry
    /// from now on, in `Authorization: Bearer` (RFC 8898): the home server
    /// takes our identity from it. The driver sets a fresh one before the
    /// current one expires.
    pub fn set_access_token(&mut self, token: &str) {
        self.access_token = Some(zeroize::Zeroizing::new(token.to_owned()));
    }

    /// The access token set last, for the driver's requests to the KMS and
    /// GMS.
    pub fn access_token(&self) -> Option<&str> {
        self.access_token.as_deref().map(String::as_str)
    }

    /// Whether the home server holds our registration now.
    pub fn is_registered(&self, now: Instant) -> bool {
        self.registration
            .as_ref()
            .is_some_and(|r| matches!(r.state, RegState::Registered { until } if until > now))
    }

    fn call_mut(&mut self, temporary_group_id: &str) -> Result<&mut Call, Error> {
        self.calls
            .get_mut(temporary_group_id)
            .ok_or(Error::InvalidCommand("no such call"))
    }

    /// Asks for the floor in a call (TS 24.380 6.2.4.3). In a broadcast
    /// call a receiver has no permission to request and gets
    /// `Error::Floor(NotPermitted)` locally.
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] without such a call, [`Error::Floor`].
    pub fn request_floor(&mut self, time: Time, temporary_group_id: &str) -> Result<(), Error> {
        self.call_mut(temporary_group_id)?
            .floor
            .request_floor(time.instant)?;
        self.drain_floor(time, temporary_group_id);
        Ok(())
    }

    /// Sends a Floor Request even without permission to request (a
    /// misbehaving or out-of-date client); the server must deny it with
    /// cause 5 "receive only".
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] without such a call, [`Error::Floor`].
    pub fn request_floor_anyway(
        &mut self,
        _time: Time,
        temporary_group_id: &str,
    ) -> Result<(), Error> {
        let call = self.call_mut(temporary_group_id)?;
        let pkt = mcx_floor::Message::new(mcx_floor::MessageType::FloorRequest, call.floor_ssrc)
            .with(mcx_floor::Field::FloorPriority(1))
            .to_bytes()?;
        let to = match call.role {
            CallRole::Initiator => self.config.controlling_server.clone(),
            CallRole::Receiver => call.peer.clone(),
        };
        self.send_floor(&to, pkt);
        Ok(())
    }

    /// Releases the floor of a call; for the initiator of a broadcast
    /// call this ends the call (TS 23.379).
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] without such a call, [`Error::Floor`].
    pub fn release_floor(&mut self, time: Time, temporary_group_id: &str) -> Result<(), Error> {
        self.call_mut(temporary_group_id)?
            .floor
            .release_floor(time.instant)?;
        self.drain_floor(time, temporary_group_id);
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
            Channel::Floor => self.on_floor(time, from, bytes),
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
                Method::Bye => self.on_bye(time, from, &req, rng),
                Method::Cancel => self.on_cancel(time, from, &req, rng),
                Method::Info => self.on_info(from, &req, rng),
                Method::Ack => {
                    self.on_ack(&req);
                    Ok(())
                }
                _ => {
                    let busy = self.calls.len() >= self.config.max_calls;
                    let calls = &self.calls;
                    let known = |r: &Request| {
                        calls
                            .values()
                            .any(|c| c.dialog.as_ref().is_some_and(|d| d.matches(r)))
                    };
                    self.ua.answer_other_method(from, &req, busy, known, rng)
                }
            },
            Message::Response(resp) => self.on_response(time, resp, rng),
        }
    }

    /// Timers: floor participants, the initiator's wait, ACK waits.
    ///
    /// # Errors
    /// [`Error::SipBuild`] if a CANCEL or BYE cannot be built.
    pub fn handle_timeout(&mut self, time: Time, rng: &mut impl CryptoRng) -> Result<(), Error> {
        self.gmks.prune(time.unix);
        if self
            .registration
            .as_ref()
            .and_then(|r| r.next)
            .is_some_and(|t| t <= time.instant)
        {
            self.register(time, rng)?;
        }
        let due: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= time.instant))
            .map(|(tg, _)| tg.clone())
            .collect();
        for tg in due {
            let Some(call) = self.calls.get(&tg) else {
                continue;
            };
            if call.role == CallRole::Initiator && call.dialog.is_none() {
                let waited = self.config.call_timeout.as_millis();
                let failure = ClientEvent::CallFailed {
                    temporary_group_id: tg.clone(),
                    status: 408,
                    reason: format!("Request Timeout - no final answer within {waited} ms"),
                    groups: Vec::new(),
                };
                self.leave(time, &tg, Some(failure), rng)?;
            } else {
                // Our 2xx was never ACKed (13.3.1.4).
                self.hang_up(time, &tg, rng)?;
            }
        }
        let tgs: Vec<String> = self.calls.keys().cloned().collect();
        for tg in tgs {
            if let Some(c) = self.calls.get_mut(&tg) {
                c.floor.handle_timeout(time.instant);
            }
            self.drain_floor(time, &tg);
        }
        let keep = time.instant.checked_sub(EARLY_FLOOR_KEEP);
        self.early_floor
            .retain(|(t, _, _)| keep.is_none_or(|k| *t >= k));
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
        self.calls
            .values()
            .flat_map(|c| [c.deadline, c.floor.poll_timeout()])
            .flatten()
            .chain(
                self.early_floor
                    .front()
                    .map(|(t, _, _)| *t + EARLY_FLOOR_KEEP),
            )
            .chain(self.registration.as_ref().and_then(|r| r.next))
            .min()
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

    /// A floor packet: to the call whose floor control server uses its
    /// SSRC; kept briefly if no call knows that SSRC yet.
    fn on_floor(&mut self, time: Time, from: &str, bytes: &[u8]) -> Result<(), Error> {
        // Under the CSK, nothing that does not authenticate reaches floor
        // control (forged, replayed, unprotected).
        let plain;
        let bytes = match self.floor_guard.as_mut() {
            Some(g) => match g.unprotect(bytes) {
                Ok(p) => {
                    plain = p;
                    &plain[..]
                }
                Err(d) => match self.try_pending_floor_key(bytes) {
                    Some(p) => {
                        plain = p;
                        &plain[..]
                    }
                    None => {
                        self.floor_drops.count(d);
                        return Ok(());
                    }
                },
            },
            None => match self.try_pending_floor_key(bytes) {
                Some(p) => {
                    plain = p;
                    &plain[..]
                }
                None => bytes,
            },
        };
        self.on_plain_floor(time, from, bytes)
    }

    /// A floor packet under the CSK we just uploaded can overtake the home
    /// server's 200 to our REGISTER (a late INVITE and its Floor Taken
    /// over UDP, the 200 over TCP): if the pending key authenticates it,
    /// the home server took the CSK, and we switch to it now.
    fn try_pending_floor_key(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let plain = self.pending_floor.as_mut()?.unprotect(bytes).ok()?;
        self.floor_guard = self.pending_floor.take();
        Some(plain)
    }

    fn on_plain_floor(&mut self, time: Time, from: &str, bytes: &[u8]) -> Result<(), Error> {
        let ssrc = rtcp_ssrc(bytes).ok_or(Error::Unexpected("floor packet too short"))?;
        let tg = self
            .calls
            .iter()
            .find(|(_, c)| c.server_ssrc == Some(ssrc))
            .map(|(tg, _)| tg.clone());
        let Some(tg) = tg else {
            let waiting = self
                .calls
                .values()
                .any(|c| c.role == CallRole::Initiator && c.dialog.is_none());
            if !waiting {
                return Err(Error::Unexpected("floor packet outside a call"));
            }
            if self.early_floor.len() >= EARLY_FLOOR_MAX {
                self.early_floor.pop_front();
            }
            self.early_floor
                .push_back((time.instant, from.to_owned(), bytes.to_vec()));
            return Ok(());
        };
        let call = self
            .calls
            .get_mut(&tg)
            .ok_or(Error::Unexpected("call gone"))?;
        // Floor control comes from the call's floor server only: the
        // controlling server for the initiator, our MC server (the
        // participating function) for a receiver.
        let expected = match call.role {
            CallRole::Initiator => &self.config.controlling_server,
            CallRole::Receiver => &call.peer,
        };
        if from != expected {
            self.floor_drops.wrong_source += 1;
            return Ok(());
        }
        let r = call.floor.handle(time.instant, bytes);
        self.drain_floor(time, &tg);
        r?;
        Ok(())
    }

    /// Sends a floor packet to `to`, under the CSK once the home server
    /// took it.
    fn send_floor(&mut self, to: &str, packet: Vec<u8>) {
        let packet = match self.floor_guard.as_mut() {
            Some(g) => match g.protect(&packet) {
                Ok(p) => p,
                Err(_) => return,
            },
            None => packet,
        };
        self.ua.send(to, Channel::Floor, packet);
    }

    /// Replays the early floor packets of the call that just learned its
    /// server's SSRC.
    fn replay_early_floor(&mut self, time: Time) {
        let early: Vec<_> = self.early_floor.drain(..).collect();
        for (at, from, bytes) in early {
            let known = rtcp_ssrc(&bytes)
                .is_some_and(|s| self.calls.values().any(|c| c.server_ssrc == Some(s)));
            if known {
                let _ = self.on_plain_floor(time, &from, &bytes);
            } else {
                self.early_floor.push_back((at, from, bytes));
            }
        }
    }

    fn drain_floor(&mut self, time: Time, temporary_group_id: &str) {
        let Some(call) = self.calls.get_mut(temporary_group_id) else {
            return;
        };
        // The initiator's floor server is the controlling server; a
        // receiver's floor control goes through its MC server.
        let to = match call.role {
            CallRole::Initiator => self.config.controlling_server.clone(),
            CallRole::Receiver => call.peer.clone(),
        };
        let mut out = Vec::new();
        while let Some(p) = call.floor.poll_transmit() {
            out.push(p);
        }
        let mut evs = Vec::new();
        while let Some(e) = call.floor.poll_event() {
            evs.push(e);
        }
        for p in out {
            self.send_floor(&to, p);
        }
        for e in evs {
            let note = match &e {
                ParticipantEvent::FloorGranted { .. } => Some("floor granted: transmitting"),
                ParticipantEvent::FloorTaken { .. } => Some("floor taken: receiving"),
                _ => None,
            };
            if let Some(n) = note {
                self.timeline.push_back(timeline(
                    &self.config.uri,
                    9,
                    time,
                    format!("{n} ({temporary_group_id})"),
                ));
            }
            self.events.push_back(ClientEvent::Floor {
                temporary_group_id: temporary_group_id.to_owned(),
                event: e,
            });
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
        if !self.config.call_sources.is_empty()
            && !self.config.call_sources.iter().any(|s| s == from)
        {
            return self.reject(
                from,
                &req,
                StatusCode::FORBIDDEN,
                "Forbidden - call requests come from the MC servers of our groups only",
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
        // The controlling server holds one call per temporary group, so
        // a new call request for a group we receive in means the old call
        // ended without our hearing it (a restarted MC server, a lost
        // BYE): the old one is superseded once the new one checks out.
        // Only as the initiator are we really busy with it.
        let stale = match self.calls.get(&temporary_group_id) {
            Some(c) if c.role == CallRole::Initiator => {
                return self.reject(from, &req, StatusCode::BUSY_HERE, ALREADY_IN_CALL, rng);
            }
            Some(_) => true,
            None => false,
        };
        if !stale && self.calls.len() >= self.config.max_calls {
            return self.reject(
                from,
                &req,
                StatusCode::BUSY_HERE,
                "Busy Here - too many calls",
                rng,
            );
        }
        let group_id = req.uri().to_owned();
        self.gmks.prune(time.unix);
        if !self.gmks.knows(&group_id) {
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
        // Authorisation (step 5): who signed the TGMK must be allowed. The
        // copy is decoded once, here, and unwrapped below as decoded.
        let copy = DecodedCopy::decode(wrap).ok();
        let authorised = copy.as_ref().and_then(|c| {
            let i = std::str::from_utf8(c.initiator_id()?).ok()?;
            let allowed = self.config.allowed_initiators.iter().any(|a| a == i)
                && info.calling_user_id.as_deref().is_none_or(|c| c == i);
            allowed.then_some((c, i))
        });
        let Some((copy, initiator)) = authorised else {
            return self.reject(
                from,
                &req,
                StatusCode::FORBIDDEN,
                "Forbidden - initiator not authorised for temporary group calls",
                rng,
            );
        };
        // Only the group's GMKs in force now may unwrap (TS 33.180 5.7.1);
        // the wrap names the GMK-ID it used.
        let groups: Vec<ConstituentGroup<'_>> = self
            .gmks
            .in_force(&group_id, time.unix)
            .map(|k| ConstituentGroup {
                group_id: &k.group_id,
                gmk: &k.gmk,
                gmk_id: k.info.gmk_id,
            })
            .collect();
        let unwrapped = TgmkReceiver {
            kms: &self.kms,
            groups: &groups,
            expected_initiator: Some(initiator),
        }
        .unwrap_decoded_cached(copy, time.unix, &mut self.replay, &mut self.verifiers);
        let initiator = initiator.to_owned();
        let unwrapped = match unwrapped {
            Ok(u)
                if u.temporary_group_id == temporary_group_id
                    && u.constituent_group_id == group_id =>
            {
                u
            }
            Err(mcx_mikey::Error::Rejected(mcx_mikey::Rejection::UnknownGmkId(id))) => {
                let error = match self.gmks.for_receiving(&group_id, KeyId(id), time.unix) {
                    Err(e) => e,
                    Ok(_) => GmkError::UnknownGmkId {
                        group_id: group_id.clone(),
                        gmk_id: KeyId(id),
                    },
                };
                let reason = format!("Not Acceptable Here - {error}");
                self.events.push_back(ClientEvent::GmkRefused { error });
                return self.reject(from, &req, StatusCode::NOT_ACCEPTABLE_HERE, &reason, rng);
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
        if stale {
            // The same call reaching us through another of our groups
            // carries the same TGMK: we are in it already.
            if self
                .calls
                .get(&temporary_group_id)
                .is_some_and(|c| c.tgmk_id == unwrapped.tgmk_id)
            {
                return self.reject(from, &req, StatusCode::BUSY_HERE, ALREADY_IN_CALL, rng);
            }
            self.leave(time, &temporary_group_id, None, rng)?;
        }
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
        let floor_ssrc = nonzero_ssrc(rng);
        let media = self.config.media;
        let sdp = Description {
            user: &uri,
            session_id: u64::from(rng.next_u32()),
            audio: media.rtp(),
            direction: Direction::RecvOnly,
            media_ssrc: None,
            floor: Some(media.floor()),
            floor_ssrc: Some(floor_ssrc),
            fmtp: "",
        }
        .write();
        let offer = crate::sdp::parse(&body.sdp).ok();
        let dialog = self.ua.accept(from, &req, Answer::Sdp(sdp), rng)?;
        let mut floor = Participant::new(ParticipantConfig::new(floor_ssrc, uri.clone()))?;
        floor.start(time.instant, false)?;
        self.timeline
            .push_back(timeline(&uri, 6, time, format!("200 OK to {from}")));
        self.events.push_back(ClientEvent::IncomingCall {
            temporary_group_id: temporary_group_id.clone(),
            group_id: group_id.clone(),
            initiator: initiator.clone(),
            tgmk_id: unwrapped.tgmk_id,
            confirmation: KeyConfirmation::of(&unwrapped.tgmk, unwrapped.tgmk_id),
        });
        self.calls.insert(
            temporary_group_id,
            Call {
                role: CallRole::Receiver,
                invite: body_dropped(req),
                peer: from.to_owned(),
                tgmk: unwrapped.tgmk,
                tgmk_id: unwrapped.tgmk_id,
                rand: unwrapped.rand,
                dialog: Some(dialog),
                provisional: false,
                deadline: Some(time.instant + self.config.ack_wait),
                floor,
                server_ssrc: offer.as_ref().and_then(|o| o.floor_ssrc),
                floor_ssrc,
                voice_ssrc: offer.as_ref().and_then(|o| o.media_ssrc),
                voice_to: None,
                started: time.instant,
                initiator,
                group_id: Some(group_id),
            },
        );
        Ok(())
    }

    /// The home server's answer to our REGISTER.
    fn on_register_answer(&mut self, time: Time, resp: &Response) {
        let Some(r) = self.registration.as_mut().filter(|r| r.answers(resp)) else {
            return;
        };
        if resp.status().is_provisional() {
            return;
        }
        let server = r.server.clone();
        let event = match r.on_response(time.instant, resp) {
            Outcome::Registered(expires) => {
                // The home server took our CSK: floor control is protected
                // from now on.
                if let Some(guard) = self.pending_floor.take() {
                    self.floor_guard = Some(guard);
                }
                ClientEvent::Registered { server, expires }
            }
            Outcome::Withdrawn => ClientEvent::Deregistered { server },
            Outcome::Failed(retry_in) => ClientEvent::RegistrationFailed {
                server,
                status: resp.status().0,
                reason: resp.reason().to_owned(),
                retry_in,
            },
        };
        self.events.push_back(event);
    }

    /// The call whose dialog `req` belongs to.
    fn call_in_dialog(&self, req: &Request) -> Option<String> {
        self.calls
            .iter()
            .find(|(_, c)| c.dialog.as_ref().is_some_and(|d| d.matches(req)))
            .map(|(tg, _)| tg.clone())
    }

    /// The call whose INVITE had this Call-ID.
    fn call_of(&self, call_id: &str) -> Option<String> {
        self.calls
            .iter()
            .find(|(_, c)| c.invite.call_id().is_ok_and(|id| id == call_id))
            .map(|(tg, _)| tg.clone())
    }

    fn on_ack(&mut self, ack: &Request) {
        let Some(tg) = ack.call_id().ok().and_then(|c| self.call_of(c)) else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&tg) {
            if c.role == CallRole::Receiver {
                c.deadline = None;
            }
        }
    }

    fn on_response(
        &mut self,
        time: Time,
        resp: Response,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        match resp.cseq()?.1 {
            Method::Invite => {}
            Method::Register => {
                self.on_register_answer(time, &resp);
                return Ok(());
            }
            _ => return Ok(()), // answers to BYE and CANCEL
        }
        let Some(tg) = self.call_of(resp.call_id()?) else {
            // The call was given up: a late 2xx is ACKed and ended.
            // (The controlling server's record went with our CANCEL; a
            // 2xx that crossed it makes a dialog we do not want.)
            if resp.status().is_success() {
                if let Some((peer, invite)) = self.gone.take(resp.call_id()?) {
                    self.ua.refuse_late_2xx(&peer, &invite, &resp, rng)?;
                }
            }
            return Ok(());
        };
        let Some(call) = self.calls.get_mut(&tg) else {
            return Ok(());
        };
        if call.role != CallRole::Initiator || call.dialog.is_some() {
            return Ok(());
        }
        let status = resp.status();
        if status.is_provisional() {
            call.provisional = true;
            return Ok(());
        }
        let body = sip::read_answer(&resp).ok();
        let groups: Vec<GroupResult> = body
            .as_ref()
            .and_then(|b| b.result.as_ref())
            .map(|r| r.groups.iter().map(|g| g.result.clone()).collect())
            .unwrap_or_default();
        if !status.is_success() {
            if let Some(mut c) = self.calls.remove(&tg) {
                c.floor.leave();
            }
            self.events.push_back(ClientEvent::CallFailed {
                temporary_group_id: tg,
                status: status.0,
                reason: resp.reason().to_owned(),
                groups,
            });
            return Ok(());
        }
        let peer = call.peer.clone();
        let invite = call.invite.clone();
        let dialog = self.ua.confirm(&peer, &invite, &resp, rng)?;
        let answer = body
            .as_ref()
            .and_then(|b| b.sdp.as_ref())
            .and_then(|s| crate::sdp::parse(s).ok());
        if let Some(call) = self.calls.get_mut(&tg) {
            call.dialog = Some(dialog);
            call.deadline = None;
            call.server_ssrc = answer.as_ref().and_then(|a| a.floor_ssrc);
            call.voice_to = answer.as_ref().and_then(|a| a.audio);
        }
        self.events.push_back(ClientEvent::CallEstablished {
            temporary_group_id: tg,
            groups,
        });
        self.replay_early_floor(time);
        Ok(())
    }

    fn on_bye(
        &mut self,
        time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let Some(tg) = self.call_in_dialog(req) else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        self.ua
            .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)?;
        if let Some(mut c) = self.calls.remove(&tg) {
            c.floor.leave();
        }
        self.timeline.push_back(timeline(
            &self.config.uri,
            9,
            time,
            format!("BYE: {tg} ended"),
        ));
        self.events.push_back(ClientEvent::CallEnded {
            temporary_group_id: tg,
        });
        Ok(())
    }

    /// A CANCEL for a call request this client already answered: 200 to
    /// the CANCEL, no effect on the call (RFC 3261 9.2); the canceller
    /// ends it with BYE.
    fn on_cancel(
        &mut self,
        _time: Time,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let known = self
            .calls
            .values()
            .any(|c| c.role == CallRole::Receiver && cancels(req, &c.invite));
        if known {
            self.ua
                .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)
                .map(|_| ())
        } else {
            self.ua.no_such_transaction(from, req, rng)
        }
    }

    /// The controlling server's in-call report that a group left.
    fn on_info(
        &mut self,
        from: &str,
        req: &Request,
        rng: &mut impl CryptoRng,
    ) -> Result<(), Error> {
        let Some(tg) = self.call_in_dialog(req) else {
            return self.ua.no_such_transaction(from, req, rng);
        };
        let ours = req
            .header("Info-Package")
            .is_some_and(|p| p.trim() == GROUP_LOST_INFO_PACKAGE)
            && req
                .content_type()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case(CALL_RESULT_CONTENT_TYPE));
        let parsed = ours.then(|| CallResult::parse(req.body()));
        let Some(Ok(doc)) = parsed else {
            // RFC 6086 4.2.2: an Info-Package we did not ask for is 469.
            return self
                .ua
                .respond(
                    from,
                    req,
                    StatusCode(469),
                    Some("Bad Info Package"),
                    Answer::Empty,
                    rng,
                )
                .map(|_| ());
        };
        self.ua
            .respond(from, req, StatusCode::OK, None, Answer::Empty, rng)?;
        for g in doc.groups {
            self.events.push_back(if g.result.failure.is_some() {
                ClientEvent::GroupLost {
                    temporary_group_id: tg.clone(),
                    result: g.result,
                }
            } else {
                ClientEvent::GroupUpdated {
                    temporary_group_id: tg.clone(),
                    result: g.result,
                    members: g.members,
                }
            });
        }
        Ok(())
    }
}

/// Puts the access token in a REGISTER (RFC 8898 Bearer).
/// A received INVITE kept for its call, without its body: the call's
/// headers are what later matching needs (ACK, CANCEL, a late 2xx); the
/// body, parsed already, would only hold memory. Takes the request rather
/// than copying it.
fn body_dropped(mut req: Request) -> Request {
    // Cannot fail: without a content type nothing is written.
    let _ = req.set_body(None, bytes::Bytes::new());
    req
}

fn authorize(req: &mut Request, token: Option<&String>) -> Result<(), Error> {
    if let Some(t) = token {
        req.headers_mut()
            .set("Authorization", &format!("Bearer {t}"))?;
    }
    Ok(())
}
