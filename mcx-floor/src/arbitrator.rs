//! The floor control server's arbitrator for a temporary group –
//! broadcast group call (TS 24.380 6.3, the subset TS 23.379 broadcast
//! calls need; SPEC.md sections 1 and 7).
//!
//! Rules: only the initiator is ever granted the floor. At call start the
//! initiator gets Floor Granted and every other participant Floor Taken
//! (Granted Party's Identity = the initiator, Permission to Request the
//! Floor = 0). Any other participant's Floor Request gets Floor Deny with
//! reject cause #5 "receive only". The initiator's Floor Release ends the
//! call: Floor Idle (permission 0) to everyone and
//! [`ArbitratorEvent::CallEnded`].

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::codes::{FloorIndicator, RejectCause, Source};
use crate::error::Error;
use crate::message::{self, Field, Message, MessageType, RtcpPacket};

/// Arbitrator configuration.
///
/// ```
/// # use std::time::Duration;
/// # use mcx_floor::ArbitratorConfig;
/// let mut config = ArbitratorConfig::new(0xF100_0001);
/// config.retransmit_interval(Duration::from_millis(200)).max_transmissions(4);
/// ```
#[derive(Clone, Debug)]
pub struct ArbitratorConfig {
    pub(crate) ssrc: u32,
    floor_indicator: FloorIndicator,
    duration: u16,
    pub(crate) ack_required: bool,
    pub(crate) retransmit_interval: Duration,
    pub(crate) max_transmissions: u32,
}

impl ArbitratorConfig {
    /// A configuration for the floor control server with SSRC `ssrc`.
    pub fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            floor_indicator: FloorIndicator::BROADCAST_GROUP_CALL
                | FloorIndicator::TEMPORARY_GROUP_CALL,
            duration: 300,
            ack_required: true,
            retransmit_interval: Duration::from_millis(500),
            max_transmissions: 3,
        }
    }

    /// Floor Indicator sent in every message (default broadcast group
    /// call | temporary group call, 0x4100).
    pub fn floor_indicator(&mut self, f: FloorIndicator) -> &mut Self {
        self.floor_indicator = f;
        self
    }

    /// Duration field of Floor Granted, seconds (default 300).
    pub fn duration(&mut self, secs: u16) -> &mut Self {
        self.duration = secs;
        self
    }

    /// Whether Floor Granted, Floor Taken and Floor Idle ask for a Floor
    /// Ack (default true).
    pub fn ack_required(&mut self, ack: bool) -> &mut Self {
        self.ack_required = ack;
        self
    }

    /// Interval between transmissions of an unacknowledged message
    /// (default 500 ms).
    pub fn retransmit_interval(&mut self, d: Duration) -> &mut Self {
        self.retransmit_interval = d;
        self
    }

    /// Transmissions of an unacknowledged message before giving up
    /// (default 3).
    pub fn max_transmissions(&mut self, n: u32) -> &mut Self {
        self.max_transmissions = n;
        self
    }
}

/// A participant of the call, as the arbitrator numbers them. The
/// initiator is always `ParticipantId(0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub usize);

/// A packet to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// To whom.
    pub destination: ParticipantId,
    /// The RTCP packet.
    pub contents: Vec<u8>,
}

/// What happened, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArbitratorEvent {
    /// The initiator was granted the floor (call start).
    FloorGranted(ParticipantId),
    /// A receiver asked for the floor and was denied.
    RequestDenied {
        /// Who asked.
        from: ParticipantId,
        /// The cause sent (always [`RejectCause::RECEIVE_ONLY`]).
        cause: RejectCause,
    },
    /// The call ended (the initiator released the floor, or
    /// [`BroadcastArbitrator::end_call`]).
    CallEnded,
    /// A message requiring a Floor Ack was sent the maximum number of times
    /// without one.
    AckTimeout {
        /// The silent participant.
        participant: ParticipantId,
        /// The unacknowledged message.
        message_type: MessageType,
    },
}

/// Arbitrator states (the TS 24.380 6.3.4 'G:' states this call uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArbitratorState {
    /// Before [`BroadcastArbitrator::start`] ('G: Start-stop').
    Setup,
    /// The initiator holds the floor ('G: Floor Taken').
    Taken,
    /// The call is over ('G: Releasing'): only Floor Acks are processed.
    Ended,
}

impl ArbitratorState {
    fn name(self) -> &'static str {
        match self {
            Self::Setup => "G: start-stop",
            Self::Taken => "G: Floor Taken",
            Self::Ended => "G: Releasing",
        }
    }

    fn may_move_to(self, to: Self) -> bool {
        matches!(
            (self, to),
            (Self::Setup, Self::Taken) | (Self::Setup | Self::Taken, Self::Ended)
        )
    }
}

#[derive(Clone, Debug)]
struct Pending {
    message_type: MessageType,
    packet: Vec<u8>,
    deadline: Instant,
    sent: u32,
}

#[derive(Clone, Debug)]
struct Member {
    user_id: String,
    /// Whether Floor Taken and Floor Idle go to it: false for a receiver
    /// a non-controlling function represents (it tells it those itself).
    broadcast: bool,
    next_seq: u16,
    pending: Option<Pending>,
}

/// The floor arbitrator of one broadcast group call (TS 24.380 6.3
/// subset), sans-IO.
///
/// Commands: [`BroadcastArbitrator::add_receiver`],
/// [`BroadcastArbitrator::start`], [`BroadcastArbitrator::end_call`].
/// Input: [`BroadcastArbitrator::handle`] with the sender's id, and
/// [`BroadcastArbitrator::handle_timeout`]. After each call drain
/// [`BroadcastArbitrator::poll_transmit`], then
/// [`BroadcastArbitrator::poll_timeout`], then
/// [`BroadcastArbitrator::poll_event`].
pub struct BroadcastArbitrator {
    config: ArbitratorConfig,
    state: ArbitratorState,
    members: Vec<Member>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ArbitratorEvent>,
}

impl fmt::Debug for BroadcastArbitrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastArbitrator")
            .field("ssrc", &self.config.ssrc)
            .field("state", &self.state)
            .field("participants", &self.members.len())
            .finish_non_exhaustive()
    }
}

/// The initiator's id.
pub const INITIATOR: ParticipantId = ParticipantId(0);

impl BroadcastArbitrator {
    /// An arbitrator for a call initiated by `initiator` (an MCPTT ID),
    /// who becomes [`INITIATOR`]. Fails if the ID does not fit a field.
    pub fn new(config: ArbitratorConfig, initiator: impl Into<String>) -> Result<Self, Error> {
        let mut a = Self {
            config,
            state: ArbitratorState::Setup,
            members: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        a.push_member(initiator.into(), true)?;
        Ok(a)
    }

    fn push_member(&mut self, user_id: String, broadcast: bool) -> Result<ParticipantId, Error> {
        Message::new(MessageType::FloorTaken, 0)
            .with(Field::GrantedPartyIdentity(user_id.clone()))
            .to_bytes()?;
        self.members.push(Member {
            user_id,
            broadcast,
            next_seq: 0,
            pending: None,
        });
        Ok(ParticipantId(self.members.len() - 1))
    }

    /// Adds a receiving participant. During the call (late entry, TS
    /// 24.380 6.3.5.x) it is sent Floor Taken at once.
    pub fn add_receiver(
        &mut self,
        now: Instant,
        user_id: impl Into<String>,
    ) -> Result<ParticipantId, Error> {
        if self.state == ArbitratorState::Ended {
            return Err(self.invalid("add receiver"));
        }
        let id = self.push_member(user_id.into(), true)?;
        if self.state == ArbitratorState::Taken {
            self.send_taken(now, id)?;
        }
        Ok(id)
    }

    /// Adds a receiver that a non-controlling function represents (TS
    /// 24.380 6.5: an MC server serving the receiver's group, itself added
    /// with [`BroadcastArbitrator::add_receiver`] for the whole call leg).
    /// Floor Taken and Floor Idle reach it from that function, never from
    /// here: it is sent only the answers to its own messages (Floor Deny
    /// to its Floor Request, Floor Ack), at any time of the call.
    pub fn add_represented_receiver(
        &mut self,
        user_id: impl Into<String>,
    ) -> Result<ParticipantId, Error> {
        if self.state == ArbitratorState::Ended {
            return Err(self.invalid("add receiver"));
        }
        self.push_member(user_id.into(), false)
    }

    /// The current state.
    pub fn state(&self) -> ArbitratorState {
        self.state
    }

    /// Number of participants, the initiator included.
    pub fn participants(&self) -> usize {
        self.members.len()
    }

    /// The MCPTT ID of a participant.
    pub fn user_id(&self, id: ParticipantId) -> Option<&str> {
        self.members.get(id.0).map(|m| m.user_id.as_str())
    }

    /// Whether any sent message still waits for its Floor Ack.
    pub fn awaiting_acks(&self) -> bool {
        self.members.iter().any(|m| m.pending.is_some())
    }

    /// Whether a message sent to `id` still waits for its Floor Ack.
    pub fn awaiting_ack(&self, id: ParticipantId) -> bool {
        self.members.get(id.0).is_some_and(|m| m.pending.is_some())
    }

    fn move_to(&mut self, to: ArbitratorState) {
        debug_assert!(
            self.state.may_move_to(to),
            "invalid arbitrator transition {:?} -> {:?}",
            self.state,
            to
        );
        self.state = to;
    }

    fn invalid(&self, command: &'static str) -> Error {
        Error::InvalidCommand {
            command,
            state: self.state.name(),
        }
    }

    /// Starts the call (TS 24.380 6.3.4.2, implicit floor request of the
    /// initiator): Floor Granted to the initiator, Floor Taken to every
    /// other receiver (not to represented ones).
    pub fn start(&mut self, now: Instant) -> Result<(), Error> {
        if self.state != ArbitratorState::Setup {
            return Err(self.invalid("start"));
        }
        self.move_to(ArbitratorState::Taken);
        self.send_granted(now)?;
        self.events
            .push_back(ArbitratorEvent::FloorGranted(INITIATOR));
        for i in 1..self.members.len() {
            if self.members[i].broadcast {
                self.send_taken(now, ParticipantId(i))?;
            }
        }
        Ok(())
    }

    /// Ends the call (e.g. the initiator left at the SIP level): Floor
    /// Idle to everyone (but represented receivers) and
    /// [`ArbitratorEvent::CallEnded`].
    pub fn end_call(&mut self, now: Instant) -> Result<(), Error> {
        if self.state == ArbitratorState::Ended {
            return Err(self.invalid("end call"));
        }
        let started = self.state == ArbitratorState::Taken;
        self.move_to(ArbitratorState::Ended);
        if started {
            for i in 0..self.members.len() {
                if self.members[i].broadcast {
                    self.send_idle(now, ParticipantId(i))?;
                }
            }
        }
        self.events.push_back(ArbitratorEvent::CallEnded);
        Ok(())
    }

    fn message(&self, t: MessageType) -> Message {
        Message::new(t, self.config.ssrc)
    }

    fn next_seq(&mut self, to: ParticipantId) -> u16 {
        let m = &mut self.members[to.0];
        let s = m.next_seq;
        m.next_seq = s.wrapping_add(1);
        s
    }

    fn send_granted(&mut self, now: Instant) -> Result<(), Error> {
        let msg = self
            .message(MessageType::FloorGranted)
            .with(Field::Duration(self.config.duration))
            .with(Field::FloorIndicator(self.config.floor_indicator));
        self.send(now, INITIATOR, msg)
    }

    fn send_taken(&mut self, now: Instant, to: ParticipantId) -> Result<(), Error> {
        let seq = self.next_seq(to);
        let msg = self
            .message(MessageType::FloorTaken)
            .with(Field::GrantedPartyIdentity(self.members[0].user_id.clone()))
            .with(Field::PermissionToRequest(false))
            .with(Field::SequenceNumber(seq))
            .with(Field::FloorIndicator(self.config.floor_indicator));
        self.send(now, to, msg)
    }

    fn send_idle(&mut self, now: Instant, to: ParticipantId) -> Result<(), Error> {
        let seq = self.next_seq(to);
        let msg = self
            .message(MessageType::FloorIdle)
            .with(Field::SequenceNumber(seq))
            .with(Field::PermissionToRequest(false))
            .with(Field::FloorIndicator(self.config.floor_indicator));
        self.send(now, to, msg)
    }

    fn send_deny(&mut self, to: ParticipantId) -> Result<(), Error> {
        let cause = RejectCause::RECEIVE_ONLY;
        let msg = self
            .message(MessageType::FloorDeny)
            .with(Field::RejectCause {
                cause,
                phrase: cause.to_string(),
            })
            .with(Field::FloorIndicator(self.config.floor_indicator));
        self.transmits.push_back(Transmit {
            destination: to,
            contents: msg.to_bytes()?,
        });
        Ok(())
    }

    /// Sends `msg` to `to`, with the ack-required bit and a retransmission
    /// timer when so configured (replacing any older unacknowledged one).
    fn send(&mut self, now: Instant, to: ParticipantId, msg: Message) -> Result<(), Error> {
        let ack = self.config.ack_required;
        let message_type = msg.message_type;
        let packet = msg.with_ack_required(ack).to_bytes()?;
        if ack {
            self.members[to.0].pending = Some(Pending {
                message_type,
                packet: packet.clone(),
                deadline: now + self.config.retransmit_interval,
                sent: 1,
            });
        }
        self.transmits.push_back(Transmit {
            destination: to,
            contents: packet,
        });
        Ok(())
    }

    /// Handles an RTCP buffer (possibly compound) from participant `from`.
    /// Each floor message is processed in turn; the first error stops
    /// processing and is returned.
    pub fn handle(&mut self, now: Instant, from: ParticipantId, buf: &[u8]) -> Result<(), Error> {
        if from.0 >= self.members.len() {
            return Err(Error::UnknownParticipant(from.0));
        }
        for p in message::decode_compound(buf)? {
            if let RtcpPacket::Floor(m) = p {
                self.handle_message(now, from, &m)?;
            }
        }
        Ok(())
    }

    /// Handles one decoded message from participant `from`.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: ParticipantId,
        m: &Message,
    ) -> Result<(), Error> {
        if from.0 >= self.members.len() {
            return Err(Error::UnknownParticipant(from.0));
        }
        if m.ack_required && m.message_type != MessageType::FloorAck {
            let ack = self
                .message(MessageType::FloorAck)
                .with(Field::Source(Source::CONTROLLING))
                .with(Field::MessageType(m.subtype()))
                .to_bytes()?;
            self.transmits.push_back(Transmit {
                destination: from,
                contents: ack,
            });
        }
        let initiator = from == INITIATOR;
        match (m.message_type, self.state) {
            (MessageType::FloorAck, _) => {
                let member = &mut self.members[from.0];
                if let Some(p) = &member.pending {
                    let code = p.message_type.code();
                    if m.acked_message_type().is_none_or(|t| t & 0x0f == code) {
                        member.pending = None;
                    }
                }
            }
            // TS 24.380 6.3.5.4: a Floor Request from the permitted
            // participant in 'G: Floor Taken' repeats Floor Granted.
            (MessageType::FloorRequest, ArbitratorState::Taken) if initiator => {
                self.send_granted(now)?;
            }
            // Broadcast group call: only the initiator may talk.
            (MessageType::FloorRequest, ArbitratorState::Taken | ArbitratorState::Setup) => {
                self.send_deny(from)?;
                self.events.push_back(ArbitratorEvent::RequestDenied {
                    from,
                    cause: RejectCause::RECEIVE_ONLY,
                });
            }
            (MessageType::FloorRelease, ArbitratorState::Taken) if initiator => {
                self.end_call(now)?;
            }
            // A receiver has nothing to release; a repeated release after
            // the end is answered by the Floor Idle retransmissions.
            (MessageType::FloorRelease, _) => {}
            _ => {
                return Err(Error::UnexpectedMessage {
                    got: m.message_type,
                    state: self.state.name(),
                });
            }
        }
        Ok(())
    }

    /// Retransmits every message whose Floor Ack is overdue, or gives up
    /// after the configured number of transmissions
    /// ([`ArbitratorEvent::AckTimeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let interval = self.config.retransmit_interval;
        let max = self.config.max_transmissions;
        for (i, member) in self.members.iter_mut().enumerate() {
            let Some(p) = member.pending.as_mut() else {
                continue;
            };
            if now < p.deadline {
                continue;
            }
            if p.sent < max {
                p.sent += 1;
                p.deadline = now + interval;
                self.transmits.push_back(Transmit {
                    destination: ParticipantId(i),
                    contents: p.packet.clone(),
                });
            } else {
                self.events.push_back(ArbitratorEvent::AckTimeout {
                    participant: ParticipantId(i),
                    message_type: p.message_type,
                });
                member.pending = None;
            }
        }
    }

    /// The next packet to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`BroadcastArbitrator::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members
            .iter()
            .filter_map(|m| m.pending.as_ref().map(|p| p.deadline))
            .min()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ArbitratorEvent> {
        self.events.pop_front()
    }
}
