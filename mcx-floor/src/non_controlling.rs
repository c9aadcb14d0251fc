//! The floor control server interface of a non-controlling MCPTT function
//! (TS 24.380 6.5), for the broadcast group call's Floor Taken and Floor
//! Idle.
//!
//! An MC server that serves one constituent group of a call is one floor
//! participant towards the controlling function (one per call leg) and the
//! floor control server towards its own members: the controlling function
//! sends it each Floor Taken / Floor Idle once for the whole leg, and it
//! sends them on to every member with its own Message Sequence Number
//! (6.5.2.2: one per session), asks each member for a Floor Ack,
//! retransmits to a member that does not acknowledge, and ends a member's
//! Floor Ack to those messages here. A member that joins later is told the
//! current floor state (Floor Taken while the floor is taken).
//!
//! Only Floor Taken and Floor Idle come this way; whatever concerns one
//! member (its Floor Request and the Floor Deny to it) still goes between
//! that member and the controlling function through the MC server.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Instant;

use crate::arbitrator::{ArbitratorConfig, ParticipantId, Transmit};
use crate::codes::Source;
use crate::error::Error;
use crate::message::{Field, Message, MessageType};

/// What happened, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonControllingEvent {
    /// A member never acknowledged a message sent the maximum number of
    /// times.
    AckTimeout {
        /// The silent member.
        member: ParticipantId,
        /// The unacknowledged message.
        message_type: MessageType,
    },
}

/// A message to the members, encoded once: every member gets the same
/// octets (the SSRC and the sequence number are the function's, not the
/// member's).
#[derive(Clone, Debug)]
struct Sent {
    message_type: MessageType,
    packet: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    deadline: Instant,
    sent: u32,
}

/// The non-controlling floor function of one call leg (TS 24.380 6.5
/// subset), sans-IO.
///
/// Commands: [`NonControlling::add_member`],
/// [`NonControlling::remove_member`]. Input:
/// [`NonControlling::handle_upstream`] (a message from the controlling
/// function), [`NonControlling::handle_member`] (a message from a
/// member), [`NonControlling::handle_timeout`]. After each call drain
/// [`NonControlling::poll_transmit`] (packets to members), then
/// [`NonControlling::poll_timeout`] and [`NonControlling::poll_event`].
///
/// Its state is one entry per joined member and the last message sent:
/// bounded by the leg's members, dropped with it.
pub struct NonControlling {
    config: ArbitratorConfig,
    /// The last Floor Taken or Floor Idle sent to the members.
    current: Option<Sent>,
    /// The last message taken from upstream (type, sequence number): a
    /// retransmission of it, or a message numbered before it (a late
    /// retransmission overtaken by the next message), is acknowledged
    /// again, not sent on again.
    last_upstream: Option<(MessageType, Option<u16>)>,
    /// The Message Sequence Number of the next Floor Taken / Floor Idle
    /// (TS 24.380 6.5.2.2: one per session).
    next_seq: u16,
    /// Joined members and their unacknowledged message, if any.
    members: HashMap<ParticipantId, Option<Pending>>,
    /// Retransmission deadlines in the order they were set (they only
    /// grow); an entry whose member has since acknowledged, or was given
    /// a later deadline, is skipped when it comes due.
    deadlines: VecDeque<(Instant, ParticipantId)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NonControllingEvent>,
}

impl fmt::Debug for NonControlling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonControlling")
            .field("ssrc", &self.config.ssrc)
            .field("members", &self.members.len())
            .field("current", &self.current.as_ref().map(|s| s.message_type))
            .finish_non_exhaustive()
    }
}

impl NonControlling {
    /// A function with no members yet and no floor state. Of `config`
    /// it takes the SSRC — the call's floor SSRC as the members know it
    /// (the controlling function's) — and the acknowledgement settings
    /// (ack required, retransmission interval, transmissions), the same
    /// as the arbitrator's by default; the floor indicator and the
    /// granted party come from the controlling function's messages.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use mcx_floor::{ArbitratorConfig, NonControlling};
    /// let mut config = ArbitratorConfig::new(0xF100_0001);
    /// config.ack_required(false);
    /// let function = NonControlling::new(config);
    /// assert_eq!(function.members(), 0);
    /// ```
    pub fn new(config: ArbitratorConfig) -> Self {
        Self {
            config,
            current: None,
            last_upstream: None,
            next_seq: 0,
            members: HashMap::new(),
            deadlines: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Makes room for `additional` more members at once (a leg's set-up
    /// joins its members one by one: without it the table grows, and
    /// rehashes, as they come).
    pub fn reserve(&mut self, additional: usize) {
        self.members.reserve(additional);
    }

    /// Number of joined members.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Whether the floor is taken, as the controlling function last said.
    pub fn floor_taken(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| s.message_type == MessageType::FloorTaken)
    }

    /// Whether `member` still owes a Floor Ack.
    pub fn awaiting_ack(&self, member: ParticipantId) -> bool {
        self.members.get(&member).is_some_and(Option::is_some)
    }

    /// A member joined the leg. While the floor is taken it is sent Floor
    /// Taken at once (late entry); a member already joined is left as it
    /// is.
    pub fn add_member(&mut self, now: Instant, member: ParticipantId) {
        // One lookup of the member, not two.
        let std::collections::hash_map::Entry::Vacant(e) = self.members.entry(member) else {
            return;
        };
        e.insert(None);
        if let Some(sent) = self
            .current
            .clone()
            .filter(|s| s.message_type == MessageType::FloorTaken)
        {
            self.send(now, member, &sent);
        }
    }

    /// A member left: nothing more is sent to it.
    pub fn remove_member(&mut self, member: ParticipantId) {
        self.members.remove(&member);
    }

    /// Handles a message of the controlling function for the whole leg:
    /// Floor Taken or Floor Idle go on to every member. Returns the Floor
    /// Ack to send back when the message asked for one (also for a
    /// retransmission, which is not sent on again).
    ///
    /// # Errors
    /// [`Error::UnexpectedMessage`] for any other message type (nothing
    /// else is sent leg-wide), [`Error::Encode`] if the granted party's
    /// identity does not fit a field.
    pub fn handle_upstream(&mut self, now: Instant, m: &Message) -> Result<Option<Vec<u8>>, Error> {
        if !matches!(
            m.message_type,
            MessageType::FloorTaken | MessageType::FloorIdle
        ) {
            return Err(Error::UnexpectedMessage {
                got: m.message_type,
                state: "non-controlling",
            });
        }
        let ack = if m.ack_required {
            Some(
                Message::new(MessageType::FloorAck, self.config.ssrc)
                    .with(Field::Source(Source::NON_CONTROLLING))
                    .with(Field::MessageType(m.subtype()))
                    .to_bytes()?,
            )
        } else {
            None
        };
        let key = (m.message_type, m.sequence_number());
        let stale = match (self.last_upstream, key.1) {
            (Some(last), _) if last == key => true,
            // Serial number order (RFC 1982): not after the last one.
            (Some((_, Some(last))), Some(seq)) => seq.wrapping_sub(last) >= 0x8000 || seq == last,
            _ => false,
        };
        if stale {
            return Ok(ack);
        }
        let seq = self.next_seq;
        let mut out = Message::new(m.message_type, self.config.ssrc);
        if let Some(party) = m.granted_party() {
            out = out.with(Field::GrantedPartyIdentity(party.to_owned()));
        }
        out = out
            .with(Field::PermissionToRequest(
                m.permission_to_request().unwrap_or(false),
            ))
            .with(Field::SequenceNumber(seq));
        if let Some(f) = m.floor_indicator() {
            out = out.with(Field::FloorIndicator(f));
        }
        let sent = Sent {
            message_type: m.message_type,
            packet: out.with_ack_required(self.config.ack_required).to_bytes()?,
        };
        self.next_seq = seq.wrapping_add(1);
        self.last_upstream = Some(key);
        let mut ids: Vec<ParticipantId> = self.members.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.send(now, id, &sent);
        }
        self.current = Some(sent);
        Ok(ack)
    }

    /// Handles a message from `member`. Returns true when it was for this
    /// function and is consumed here: a Floor Ack of a Floor Taken or Floor
    /// Idle (this function sent those; the controlling function no longer
    /// sends them to members). Anything else is the controlling
    /// function's, and the caller passes it on.
    pub fn handle_member(&mut self, member: ParticipantId, m: &Message) -> bool {
        if m.message_type != MessageType::FloorAck {
            return false;
        }
        let acked = m.acked_message_type().map(|t| t & 0x0f);
        let ours = [MessageType::FloorTaken, MessageType::FloorIdle].map(MessageType::code);
        let current = self.current.as_ref().map(|s| s.message_type.code());
        match acked {
            Some(t) if !ours.contains(&t) => false,
            // An ack without the Message Type field is ours only when we
            // wait for one from this member.
            None if !self.awaiting_ack(member) => false,
            _ => {
                if acked.is_none() || acked == current {
                    if let Some(p) = self.members.get_mut(&member) {
                        *p = None;
                    }
                }
                true
            }
        }
    }

    fn send(&mut self, now: Instant, to: ParticipantId, sent: &Sent) {
        if self.config.ack_required {
            let deadline = now + self.config.retransmit_interval;
            self.members.insert(to, Some(Pending { deadline, sent: 1 }));
            self.deadlines.push_back((deadline, to));
        }
        self.transmits.push_back(Transmit {
            destination: to,
            contents: sent.packet.clone(),
        });
    }

    /// Retransmits the current message to every member whose Floor Ack is
    /// overdue, or gives up after the configured number of transmissions
    /// ([`NonControllingEvent::AckTimeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let interval = self.config.retransmit_interval;
        let max = self.config.max_transmissions;
        while let Some(&(at, id)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            let Some(slot) = self.members.get_mut(&id) else {
                continue; // gone
            };
            let Some(p) = slot.as_mut() else {
                continue; // acknowledged
            };
            if p.deadline != at {
                continue; // a later message's deadline is queued too
            }
            match self.current.as_ref() {
                Some(sent) if p.sent < max => {
                    p.sent += 1;
                    p.deadline = now + interval;
                    self.deadlines.push_back((p.deadline, id));
                    self.transmits.push_back(Transmit {
                        destination: id,
                        contents: sent.packet.clone(),
                    });
                }
                current => {
                    let message_type = current.map_or(MessageType::FloorTaken, |s| s.message_type);
                    *slot = None;
                    self.events.push_back(NonControllingEvent::AckTimeout {
                        member: id,
                        message_type,
                    });
                }
            }
        }
    }

    /// The next packet to send to a member.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`NonControlling::handle_timeout`] should next be called (it
    /// may find nothing due: an acknowledged member's deadline is dropped
    /// only then).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.front().map(|&(at, _)| at)
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<NonControllingEvent> {
        self.events.pop_front()
    }
}
