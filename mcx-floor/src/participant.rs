//! The floor participant (client side, TS 24.380 6.2, on-network): the
//! subset a broadcast group call needs: request, granted, taken, deny,
//! idle, release, revoke and Floor Ack.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::codes::{FloorIndicator, RejectCause, RevokeCause, Source};
use crate::error::Error;
use crate::message::{self, Field, Message, MessageType, RtcpPacket};

/// Participant configuration, with the TS 24.380 timers and counters.
///
/// ```
/// # use std::time::Duration;
/// # use mcx_floor::ParticipantConfig;
/// let mut config = ParticipantConfig::new(0x1234, "sip:alice@example.org");
/// config.t101(Duration::from_millis(500)).c101(3);
/// ```
#[derive(Clone, Debug)]
pub struct ParticipantConfig {
    ssrc: u32,
    user_id: String,
    priority: u8,
    t100: Duration,
    c100: u32,
    t101: Duration,
    c101: u32,
}

impl ParticipantConfig {
    /// A configuration for the participant with SSRC `ssrc` and MCPTT ID
    /// `user_id`, with the default timers.
    pub fn new(ssrc: u32, user_id: impl Into<String>) -> Self {
        Self {
            ssrc,
            user_id: user_id.into(),
            priority: 0,
            t100: Duration::from_millis(40),
            c100: 3,
            t101: Duration::from_millis(500),
            c101: 3,
        }
    }

    /// Floor Priority put in Floor Requests (default 0).
    pub fn priority(&mut self, p: u8) -> &mut Self {
        self.priority = p;
        self
    }

    /// T100 "Floor Release" retransmission interval (default 40 ms).
    pub fn t100(&mut self, d: Duration) -> &mut Self {
        self.t100 = d;
        self
    }

    /// C100: Floor Release transmissions before giving up (default 3).
    pub fn c100(&mut self, n: u32) -> &mut Self {
        self.c100 = n;
        self
    }

    /// T101 "Floor Request" retransmission interval (default 500 ms).
    pub fn t101(&mut self, d: Duration) -> &mut Self {
        self.t101 = d;
        self
    }

    /// C101: Floor Request transmissions before giving up (default 3).
    pub fn c101(&mut self, n: u32) -> &mut Self {
        self.c101 = n;
        self
    }
}

/// Floor participant states (TS 24.380 6.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParticipantState {
    /// 'U: start-stop': before the call is set up.
    StartStop,
    /// 'U: has no permission'.
    HasNoPermission,
    /// 'U: pending Request': a Floor Request is outstanding.
    PendingRequest,
    /// 'U: has permission': the participant may send media.
    HasPermission,
    /// 'U: pending Release': a Floor Release is outstanding.
    PendingRelease,
    /// The call is released; nothing more is sent or accepted.
    Released,
}

impl ParticipantState {
    fn name(self) -> &'static str {
        match self {
            Self::StartStop => "U: start-stop",
            Self::HasNoPermission => "U: has no permission",
            Self::PendingRequest => "U: pending Request",
            Self::HasPermission => "U: has permission",
            Self::PendingRelease => "U: pending Release",
            Self::Released => "released",
        }
    }

    /// Whether TS 24.380 6.2.4 (as far as this crate implements it) allows
    /// the transition `self -> to`.
    fn may_move_to(self, to: Self) -> bool {
        use ParticipantState::*;
        match (self, to) {
            (_, Released) => self != Released,
            (StartStop, HasNoPermission | PendingRequest) => true,
            (HasNoPermission, PendingRequest) => true,
            (PendingRequest, HasPermission | HasNoPermission | PendingRelease) => true,
            (HasPermission, PendingRelease) => true,
            (PendingRelease, HasNoPermission) => true,
            _ => false,
        }
    }
}

impl fmt::Display for ParticipantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParticipantEvent {
    /// Floor Granted: the participant may send media.
    FloorGranted {
        /// Seconds the permission lasts, when the server says.
        duration: Option<u16>,
    },
    /// Floor Taken: someone else holds the floor.
    FloorTaken {
        /// The holder's identity, when the server says.
        granted_party: Option<String>,
        /// Whether this participant may request the floor.
        permission_to_request: bool,
    },
    /// Floor Deny.
    FloorDenied {
        /// Why.
        cause: RejectCause,
        /// The reason phrase (may be empty).
        phrase: String,
    },
    /// Floor Idle: nobody holds the floor.
    FloorIdle {
        /// Whether this participant may request the floor.
        permission_to_request: bool,
    },
    /// Floor Revoke: permission withdrawn; a Floor Release was sent.
    FloorRevoked {
        /// Why.
        cause: RevokeCause,
    },
    /// T101 expired C101 times without an answer to the Floor Request.
    RequestTimedOut,
    /// T100 expired C100 times without an answer to the Floor Release.
    ReleaseTimedOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerKind {
    T100,
    T101,
}

#[derive(Clone, Debug)]
struct Timer {
    kind: TimerKind,
    deadline: Instant,
    /// Transmissions so far.
    sent: u32,
    packet: Vec<u8>,
}

/// A floor participant (TS 24.380 6.2), sans-IO.
///
/// Feed it received packets with [`Participant::handle`] and timer
/// expiries with [`Participant::handle_timeout`]; issue commands with
/// [`Participant::start`], [`Participant::request_floor`],
/// [`Participant::release_floor`] and [`Participant::leave`]. After each
/// call drain [`Participant::poll_transmit`] (packets for the floor control
/// server), then [`Participant::poll_timeout`], then
/// [`Participant::poll_event`].
pub struct Participant {
    config: ParticipantConfig,
    state: ParticipantState,
    permission_to_request: bool,
    floor_indicator: Option<FloorIndicator>,
    /// Message Sequence Number of the last Floor Taken / Floor Idle, to
    /// recognise retransmissions (TS 24.380 8.2.3.10).
    last_seq: Option<(MessageType, u16)>,
    timer: Option<Timer>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<ParticipantEvent>,
}

impl fmt::Debug for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Participant")
            .field("ssrc", &self.config.ssrc)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Participant {
    /// A participant in 'U: start-stop'. Fails if the user ID does not fit
    /// a field (255 octets).
    pub fn new(config: ParticipantConfig) -> Result<Self, Error> {
        Message::new(MessageType::FloorRequest, 0)
            .with(Field::UserId(config.user_id.clone()))
            .to_bytes()?;
        Ok(Self {
            config,
            state: ParticipantState::StartStop,
            permission_to_request: true,
            floor_indicator: None,
            last_seq: None,
            timer: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The current state.
    pub fn state(&self) -> ParticipantState {
        self.state
    }

    /// Whether the server last allowed this participant to request the
    /// floor (true until a message says otherwise).
    pub fn permission_to_request(&self) -> bool {
        self.permission_to_request
    }

    /// The floor indicator the server last sent.
    pub fn floor_indicator(&self) -> Option<FloorIndicator> {
        self.floor_indicator
    }

    /// The configuration.
    pub fn config(&self) -> &ParticipantConfig {
        &self.config
    }

    /// The guarded transition: every state change goes through here.
    fn move_to(&mut self, to: ParticipantState) {
        debug_assert!(
            self.state.may_move_to(to),
            "invalid floor participant transition {} -> {}",
            self.state,
            to
        );
        self.state = to;
    }

    /// The call is established (TS 24.380 6.2.4.2): with
    /// `implicit_request` (the originator asked for the floor in the call
    /// setup) the participant waits for Floor Granted in 'U: pending
    /// Request', otherwise it enters 'U: has no permission'.
    pub fn start(&mut self, now: Instant, implicit_request: bool) -> Result<(), Error> {
        let _ = now;
        if self.state != ParticipantState::StartStop {
            return Err(self.invalid("start"));
        }
        self.move_to(if implicit_request {
            ParticipantState::PendingRequest
        } else {
            ParticipantState::HasNoPermission
        });
        Ok(())
    }

    /// Sends a Floor Request (TS 24.380 6.2.4.3.1) and starts T101.
    pub fn request_floor(&mut self, now: Instant) -> Result<(), Error> {
        if self.state != ParticipantState::HasNoPermission {
            return Err(self.invalid("request floor"));
        }
        if !self.permission_to_request {
            return Err(Error::NotPermitted);
        }
        let msg = self
            .message(MessageType::FloorRequest)
            .with(Field::FloorPriority(self.config.priority));
        let packet = self.with_indicator(msg).to_bytes()?;
        self.send_with_timer(now, TimerKind::T101, packet);
        self.move_to(ParticipantState::PendingRequest);
        Ok(())
    }

    /// Sends a Floor Release (TS 24.380 6.2.4.5.1 / 6.2.4.4.x: also
    /// cancels a pending request) and starts T100.
    pub fn release_floor(&mut self, now: Instant) -> Result<(), Error> {
        if !matches!(
            self.state,
            ParticipantState::HasPermission | ParticipantState::PendingRequest
        ) {
            return Err(self.invalid("release floor"));
        }
        self.send_release(now)
    }

    /// The call is released (TS 24.380 6.2.4.8): stops all timers; nothing
    /// more is sent.
    pub fn leave(&mut self) {
        if self.state != ParticipantState::Released {
            self.timer = None;
            self.move_to(ParticipantState::Released);
        }
    }

    fn send_release(&mut self, now: Instant) -> Result<(), Error> {
        let msg = self
            .message(MessageType::FloorRelease)
            .with(Field::UserId(self.config.user_id.clone()));
        let packet = self.with_indicator(msg).to_bytes()?;
        self.send_with_timer(now, TimerKind::T100, packet);
        self.move_to(ParticipantState::PendingRelease);
        Ok(())
    }

    fn invalid(&self, command: &'static str) -> Error {
        Error::InvalidCommand {
            command,
            state: self.state.name(),
        }
    }

    fn message(&self, t: MessageType) -> Message {
        Message::new(t, self.config.ssrc)
    }

    fn with_indicator(&self, msg: Message) -> Message {
        match self.floor_indicator {
            Some(f) => msg.with(Field::FloorIndicator(f)),
            None => msg,
        }
    }

    fn send_with_timer(&mut self, now: Instant, kind: TimerKind, packet: Vec<u8>) {
        let interval = self.interval(kind);
        self.transmits.push_back(packet.clone());
        self.timer = Some(Timer {
            kind,
            deadline: now + interval,
            sent: 1,
            packet,
        });
    }

    fn interval(&self, kind: TimerKind) -> Duration {
        match kind {
            TimerKind::T100 => self.config.t100,
            TimerKind::T101 => self.config.t101,
        }
    }

    fn stop_timer(&mut self, kind: TimerKind) {
        if self.timer.as_ref().is_some_and(|t| t.kind == kind) {
            self.timer = None;
        }
    }

    /// Handles a received RTCP buffer (possibly compound; packets other
    /// than floor control are ignored). Each message is processed in turn;
    /// the first error stops processing and is returned.
    pub fn handle(&mut self, now: Instant, buf: &[u8]) -> Result<(), Error> {
        for p in message::decode_compound(buf)? {
            if let RtcpPacket::Floor(m) = p {
                self.handle_message(now, &m)?;
            }
        }
        Ok(())
    }

    /// Handles one decoded floor control message.
    pub fn handle_message(&mut self, now: Instant, m: &Message) -> Result<(), Error> {
        use ParticipantState::*;
        if matches!(self.state, Released | StartStop) {
            return Err(self.unexpected(m));
        }
        if m.ack_required {
            // TS 24.380 6.2.4.x: a message with the acknowledgement bit set
            // is answered with Floor Ack whatever the state.
            let ack = self
                .message(MessageType::FloorAck)
                .with(Field::Source(Source::FLOOR_PARTICIPANT))
                .with(Field::MessageType(m.subtype()))
                .to_bytes()?;
            self.transmits.push_back(ack);
        }
        if let Some(seq) = m.sequence_number() {
            let key = (m.message_type, seq);
            if self.last_seq == Some(key) && self.state == HasNoPermission {
                // A retransmission already processed (its ack was lost).
                return Ok(());
            }
            self.last_seq = Some(key);
        }
        if let Some(f) = m.floor_indicator() {
            self.floor_indicator = Some(f);
        }
        if let Some(p) = m.permission_to_request() {
            self.permission_to_request = p;
        }
        match (m.message_type, self.state) {
            (MessageType::FloorGranted, PendingRequest) => {
                self.stop_timer(TimerKind::T101);
                self.move_to(HasPermission);
                self.events.push_back(ParticipantEvent::FloorGranted {
                    duration: m.duration(),
                });
            }
            // A retransmitted Floor Granted: already acknowledged above.
            (MessageType::FloorGranted, HasPermission) => {}
            (MessageType::FloorTaken, HasNoPermission | PendingRequest | PendingRelease) => {
                self.timer = None;
                if self.state != HasNoPermission {
                    self.move_to(HasNoPermission);
                }
                self.events.push_back(ParticipantEvent::FloorTaken {
                    granted_party: m.granted_party().map(str::to_owned),
                    permission_to_request: self.permission_to_request,
                });
            }
            (MessageType::FloorDeny, PendingRequest | HasNoPermission) => {
                if self.state == PendingRequest {
                    self.stop_timer(TimerKind::T101);
                    self.move_to(HasNoPermission);
                }
                let (cause, phrase) = m.reject_cause().unwrap_or((RejectCause::OTHER, ""));
                self.events.push_back(ParticipantEvent::FloorDenied {
                    cause,
                    phrase: phrase.to_owned(),
                });
            }
            (MessageType::FloorIdle, HasNoPermission | PendingRequest | PendingRelease) => {
                if self.state == PendingRelease {
                    self.stop_timer(TimerKind::T100);
                    self.move_to(HasNoPermission);
                }
                self.events.push_back(ParticipantEvent::FloorIdle {
                    permission_to_request: self.permission_to_request,
                });
            }
            (MessageType::FloorRevoke, HasPermission) => {
                let cause = m
                    .reject_cause()
                    .map_or(RevokeCause::OTHER, |(c, _)| RevokeCause(c.0));
                self.events
                    .push_back(ParticipantEvent::FloorRevoked { cause });
                self.send_release(now)?;
            }
            (MessageType::FloorAck, _) => {
                let release = MessageType::FloorRelease.code();
                if self.state == PendingRelease
                    && m.acked_message_type().is_none_or(|t| t & 0x0f == release)
                {
                    self.stop_timer(TimerKind::T100);
                    self.move_to(HasNoPermission);
                }
            }
            _ => return Err(self.unexpected(m)),
        }
        Ok(())
    }

    fn unexpected(&self, m: &Message) -> Error {
        Error::UnexpectedMessage {
            got: m.message_type,
            state: self.state.name(),
        }
    }

    /// Handles timer expiry: retransmits the outstanding Floor Request
    /// (T101) or Floor Release (T100), or gives up after C101/C100
    /// transmissions and enters 'U: has no permission'.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(t) = self.timer.as_mut() else {
            return;
        };
        if now < t.deadline {
            return;
        }
        let (kind, limit) = match t.kind {
            TimerKind::T100 => (TimerKind::T100, self.config.c100),
            TimerKind::T101 => (TimerKind::T101, self.config.c101),
        };
        let interval = match kind {
            TimerKind::T100 => self.config.t100,
            TimerKind::T101 => self.config.t101,
        };
        if t.sent < limit {
            t.sent += 1;
            t.deadline = now + interval;
            let packet = t.packet.clone();
            self.transmits.push_back(packet);
            return;
        }
        self.timer = None;
        self.move_to(ParticipantState::HasNoPermission);
        self.events.push_back(match kind {
            TimerKind::T100 => ParticipantEvent::ReleaseTimedOut,
            TimerKind::T101 => ParticipantEvent::RequestTimedOut,
        });
    }

    /// The next packet to send to the floor control server.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// When [`Participant::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer.as_ref().map(|t| t.deadline)
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ParticipantEvent> {
        self.events.pop_front()
    }
}
